/* The MetaFormer block: a token mixer and a channel mixer, each wrapped in a norm, dropout and a
 * residual connection. Any sf_mixer fits either slot.
 *   pre-norm:  x = x + drop(token(norm1(x)));   x = x + drop(channel(norm2(x)))
 *   post-norm: x = norm1(x + drop(token(x)));   x = norm2(x + drop(channel(x)))   (PatchTST)
 * Names: <prefix>.norm1, <prefix>.mixer, <prefix>.norm2, <prefix>.ffn. */
#ifndef SF_BLOCKS_METAFORMER_H
#define SF_BLOCKS_METAFORMER_H

#include "layers/layer.h"
#include "layers/norm.h"

typedef struct {
    const char *token_mixer;   /* "softmax" | "linear" */
    const char *channel_mixer; /* "mlp" */
    sf_norm_kind norm;
    int pre_norm;
    sf_mixer_opts opts; /* d_model, n_heads, d_ff, causal, dropout, max_T */
} sf_block_config;

typedef struct {
    sf_block_config cfg;
    sf_norm norm1, norm2;
    sf_mixer *token, *channel;
    /* saved by forward */
    const float *x;
    float *t_out, *h1, *n1, *c_out, *n2;
    uint8_t *mask1, *mask2;
} sf_block;

/* SF_ERR (message set) if a mixer name or option is invalid. */
int sf_block_create(sf_block *b, const sf_block_config *cfg);
void sf_block_declare(sf_block *b, sf_params *ps, const char *prefix);
void sf_block_init(sf_block *b, sf_rng *rng);
void sf_block_destroy(sf_block *b);
/* x, y: [B, T, d]; x must stay alive until backward. */
void sf_block_forward(sf_block *b, sf_ctx *ctx, const float *x, float *y);
void sf_block_backward(sf_block *b, sf_ctx *ctx, const float *dy, float *dx);
/* Streaming: state holds the token mixer's state then the channel mixer's. */
size_t sf_block_state_floats(const sf_block *b);
void sf_block_step(const sf_block *b, const float *x_t, float *state, float *y_t, int t);

#endif
