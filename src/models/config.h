/* Model configuration: the small JSON object stored in every checkpoint's __metadata__["config"],
 * so a checkpoint describes itself. CLI flags fill this struct; sf_config_validate() is the one
 * place that decides whether a combination is possible. */
#ifndef SF_MODELS_CONFIG_H
#define SF_MODELS_CONFIG_H

#define SF_FORMAT_VERSION 1

typedef struct {
    char model[16]; /* "patchtst" | "dlinear" */
    int seq_len, pred_len, n_channels;
    /* patchtst */
    int d_model, n_heads, e_layers, d_ff, patch_len, stride;
    int revin;
    float dropout, head_dropout;
    char mixer[16]; /* "softmax" | "linear" */
    int causal;
    char norm[16];       /* "layernorm" | "rmsnorm" | "batchnorm" */
    char norm_place[8];  /* "post" | "pre" */
    char pos[16];        /* "learned" | "sinusoidal" */
    /* dlinear */
    int kernel_size;
} sf_model_config;

/* PatchTST paper's ETTh1 settings (d_model 16, 4 heads, 3 layers, d_ff 128, patch 16/8,
 * dropout 0.3, head dropout 0, post-norm BatchNorm, learned positions) or DLinear's (kernel 25). */
void sf_config_defaults(sf_model_config *c, const char *model);
int sf_config_validate(const sf_model_config *c); /* SF_ERR names the field */
int sf_config_n_patches(const sf_model_config *c);
/* Returns a malloc'd JSON string. */
char *sf_config_to_json(const sf_model_config *c);
/* SF_ERR with a message naming the field when missing, mistyped or out of range. */
int sf_config_from_json(const char *json, sf_model_config *c);

#endif
