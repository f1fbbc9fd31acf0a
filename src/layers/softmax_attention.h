/* Attention weights of the "softmax" token mixer, for pictures (interpretability), not for
 * training: after a forward with ctx->keep = 1 (so the mixer's q, k, log-sum-exp and t5 bias are
 * still in ctx), p[h, i, j] = exp(scale q_i . k_j (+ t5 bias) - lse_i) for example b: the exact
 * softmax the forward used (rope already applied to the saved q and k). Keys past the example's
 * valid length (ctx->lens) and, when causal, after i get 0; rows of padding queries are 0. */
#ifndef SF_LAYERS_SOFTMAX_ATTENTION_H
#define SF_LAYERS_SOFTMAX_ATTENTION_H

#include "layers/layer.h"

/* 1 when m is a "softmax" token mixer. */
int sf_mixer_is_softmax_attention(const sf_mixer *m);
/* Heads of a softmax mixer. */
int sf_softmax_attention_heads(const sf_mixer *m);
/* p [H, T, T] (T = ctx->T) for example b of the last kept forward in ctx. */
void sf_softmax_attention_probs(const sf_mixer *m, const sf_ctx *ctx, int b, float *p);

#endif
