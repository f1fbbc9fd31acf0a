/* Model configs (docs/config.md): the JSON object that describes a model, stored in every
 * checkpoint's __metadata__["config"] so a checkpoint describes itself.
 *
 * sf_config_normalize() is the one place that reads a user's config: it checks every key against
 * the registries (models, tasks, inputs, positions, heads, block kinds, mixers, norms) and their
 * option tables, and returns the canonical object (every option present, defaults filled, keys in
 * table order, floats in their shortest exact form). Errors name the field path:
 * "blocks[3].token_mixer.n_heads: must be >= 1 (got 0)". Cross-field checks that need the model
 * (n_heads dividing d_model, patch_len <= seq_len) happen when the model is built, with the same
 * kind of path. format_version 1 configs (checkpoints of seqformer 0.1) are converted. */
#ifndef SF_MODELS_CONFIG_H
#define SF_MODELS_CONFIG_H

#include <cjson/cJSON.h>

#define SF_FORMAT_VERSION 2

/* *out: a new canonical object (cJSON_Delete it). `name` prefixes parse errors (a file name). */
int sf_config_normalize(const cJSON *in, cJSON **out);
/* Parse JSON text and normalise it. Malformed JSON: "NAME: malformed JSON at line L, column C". */
int sf_config_parse(const char *text, const char *name, cJSON **out);
/* malloc'd JSON text (pretty: indented, for --print-config and files). */
char *sf_config_print(const cJSON *cfg, int pretty);

/* A format_version 1 object (flat: model, mixer, norm, norm_place, pos, e_layers, ...) as v2. */
cJSON *sf_config_v1_to_v2(const cJSON *v1);

/* One entry of a `blocks` list, normalised (for tests and tools); path "blocks[index]". */
int sf_config_normalize_block(const cJSON *in, int index, cJSON **out);

/* The flat shorthand the training flags fill (and format_version 1 stored): one block kind
 * repeated e_layers times. sf_flat_config_to_json() gives the equivalent v2 object (not yet
 * normalised). */
typedef struct {
    char model[16]; /* "patchtst" | "dlinear" | "itransformer" */
    int seq_len, pred_len, n_channels;
    /* patchtst */
    int d_model, n_heads, e_layers, d_ff, patch_len, stride;
    int revin; /* itransformer: use_norm */
    float dropout, head_dropout;
    char mixer[16]; /* token mixer */
    int causal;
    char norm[16];      /* "layernorm" | "rmsnorm" | "batchnorm" */
    char norm_place[8]; /* "post" | "pre" */
    char pos[16];       /* "learned" | "sinusoidal" | "none" */
    /* dlinear */
    int kernel_size;
} sf_flat_config;

/* PatchTST paper's ETTh1 settings (d_model 16, 4 heads, 3 layers, d_ff 128, patch 16/8,
 * dropout 0.3, head dropout 0, post-norm BatchNorm, learned positions), DLinear's (kernel 25) or
 * iTransformer's run.py defaults (seq_len 96, d_model 512, 8 heads, 2 layers, d_ff 2048, dropout
 * 0.1, post-norm LayerNorm, no positions). */
void sf_flat_config_defaults(sf_flat_config *c, const char *model);
cJSON *sf_flat_config_to_json(const sf_flat_config *c);

#endif
