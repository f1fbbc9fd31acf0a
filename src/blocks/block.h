/* Blocks: residual wrappers around one or two mixers. Every block maps [B, T, d] to [B, T, d], so
 * a model's `blocks` list may mix kinds freely (hybrid stacks are just configs).
 *
 *   metaformer (two mixers):  pre:  h = x + drop(tok(norm1(x)));   y = h + drop(ch(norm2(h)))
 *                             post: h = norm1(x + drop(tok(x)));   y = norm2(h + drop(ch(h)))
 *                             peri: h = x + drop(norm1_out(tok(norm1(x))));
 *                                   y = h + drop(norm2_out(ch(norm2(h))))
 *                             (Peri-LN, Kim et al. 2025; Gemma 2's pre + post norms)
 *   residual (one mixer):     pre:  y = x + drop(mix(norm(x)))     post: y = norm(x + drop(mix(x)))
 *   parallel (two mixers):    pre:  n = norm(x); y = x + drop(tok(n)) + drop(ch(n))
 *                             post: y = norm(x + drop(tok(x)) + drop(ch(x)))
 * Parameter names: metaformer <p>.norm1, <p>.mixer, <p>.norm2, <p>.ffn (peri adds
 * <p>.norm1_out after the mixer and <p>.norm2_out after the ffn); residual <p>.norm,
 * <p>.mixer; parallel <p>.norm, <p>.mixer, <p>.ffn (docs/config.md).
 *
 * Each kind is one file (metaformer.c, residual.c, parallel.c) providing forward, backward and
 * step; block.c holds what they share and the registry of kinds. */
#ifndef SF_BLOCKS_BLOCK_H
#define SF_BLOCKS_BLOCK_H

#include "layers/layer.h"
#include "layers/norm.h"

typedef struct sf_block sf_block;

typedef struct {
    sf_part_info info;
    int n_mixers;                    /* 1 or 2 */
    const char *mixer_keys[2];       /* config keys of the mixers: token_mixer/channel_mixer, mixer */
    unsigned mixer_slots[2];         /* SF_SLOT_* each mixer key accepts */
    int n_norms;                     /* norms the block owns (names from norm_names) */
    const char *norm_names[2];
    size_t saved_bytes;              /* its per-call record */
    void (*forward)(sf_block *b, sf_ctx *ctx, const float *x, float *y);
    void (*backward)(sf_block *b, sf_ctx *ctx, const float *dy, float *dx);
    void (*step)(const sf_block *b, const float *x_t, float *state, float *y_t, int t);
} sf_block_def;

struct sf_block {
    const sf_block_def *def;
    int d, pre;    /* width; 1: pre-norm placement, 0: post */
    int peri;      /* 1: peri placement (metaformer only): norm on each mixer's input and output */
    float dropout; /* residual dropout */
    sf_norm_spec norm_spec;
    sf_norm norm[2];
    sf_norm norm_out[2]; /* peri only: the norms on the mixers' outputs */
    sf_mixer *mixer[2];
    size_t slot; /* its record in sf_ctx.saved */
};

extern const sf_block_def *const sf_block_registry[];
extern const int sf_block_registry_n;
const sf_block_def *sf_block_find(const char *name);
/* The options every block kind takes (repeat, placement, dropout) and the sub-object key "norm". */
extern const sf_option sf_block_options[3];

/* Build from a normalised block object (kind, placement, dropout, norm, mixers): the mixers are
 * created here. SF_ERR with the message of the failing mixer, prefixed by `path`. */
int sf_block_create(sf_block *b, const cJSON *cfg, int d_model, int max_T, const char *path);
/* The same with the model's normalised positions object: rope and t5 reach the softmax token
 * mixers (sf_mixer_args.positions); any other token mixer (except identity) is refused with them,
 * naming the block and mixer. Other kinds (or NULL) are ignored here. */
int sf_block_create_pos(sf_block *b, const cJSON *cfg, int d_model, int max_T, const char *path,
                        const cJSON *positions);
void sf_block_declare(sf_block *b, sf_params *ps, const char *prefix);
void sf_block_init(sf_block *b, sf_rng *rng);
void sf_block_destroy(sf_block *b);
/* x, y: [B, T, d]; x must stay alive until backward. */
void sf_block_forward(sf_block *b, sf_ctx *ctx, const float *x, float *y);
void sf_block_backward(sf_block *b, sf_ctx *ctx, const float *dy, float *dx);
/* Streaming: state holds mixer 0's state then mixer 1's. sf_block_can_step: 1 if every mixer
 * can stream. sf_block_check_step: SF_OK, or SF_ERR naming the block (`path`), the mixer's key and
 * kind ("blocks[2].token_mixer: mixer 'fastformer' cannot stream ...") for a caller that is about
 * to stream. */
size_t sf_block_state_floats(const sf_block *b);
int sf_block_can_step(const sf_block *b);
int sf_block_check_step(const sf_block *b, const char *path);
/* Padding: SF_OK if every mixer honours ctx->lens, else SF_ERR naming the block (`path`), the
 * mixer's key and kind. Models and tasks that pass lens call it when the config is read. */
int sf_block_check_pad(const sf_block *b, const char *path);
void sf_block_step(const sf_block *b, const float *x_t, float *state, float *y_t, int t);

/* A model's stack: the normalised `blocks` list with each entry's `repeat` expanded, created for
 * d_model and max_T (errors prefixed "blocks[i]"), declared as "blocks.{k}", destroyed, and the
 * mixers' forward FLOPs over T tokens. *out is allocated (never NULL on success). */
int sf_block_stack_create(const cJSON *blocks, int d_model, int max_T, sf_block **out, int *n);
int sf_block_stack_create_pos(const cJSON *blocks, int d_model, int max_T, const cJSON *positions,
                              sf_block **out, int *n);
void sf_block_stack_declare(sf_block *b, int n, sf_params *ps);
void sf_block_stack_destroy(sf_block *b, int n); /* also frees b */
double sf_block_stack_flops(const sf_block *b, int n, int T);

/* Shared by the kinds: y = a + b over n floats (threaded when large). */
void sf_block_add(float *y, const float *a, const float *b, long n);

extern const sf_block_def sf_block_metaformer, sf_block_residual, sf_block_parallel;

#endif
