/* Mean pooling over the valid tokens of each sequence: y[b] = mean over t < len[b] of x[b, t]
 * (len = ctx->lens, or T for every sequence when lens is NULL). Padding never reaches y, and the
 * backward pass gives padded tokens a zero gradient. x [B, T, d] -> y [B, d]. */
#ifndef SF_LAYERS_POOL_H
#define SF_LAYERS_POOL_H

#include "layers/layer.h"

void sf_mean_pool_forward(const sf_ctx *ctx, int d, const float *x, float *y);
/* dx overwritten: dy[b] / len[b] on valid tokens, 0 on padding. */
void sf_mean_pool_backward(const sf_ctx *ctx, int d, const float *dy, float *dx);

#endif
