/* Inverted dropout on an activation buffer, with its mask kept on the arena for backward.
 * A no-op (mask NULL) when p == 0 or when not training, so eval and p=0 cost nothing. */
#ifndef SF_LAYERS_DROPOUT_H
#define SF_LAYERS_DROPOUT_H

#include <stdint.h>

#include "layers/layer.h"

/* In place on x[n]; returns the mask to hand to sf_dropout_back (NULL: identity). */
uint8_t *sf_dropout_fwd(sf_ctx *ctx, float *x, long n, float p);
/* In place on dx[n] (dx = dx * mask / (1-p)); identity when mask is NULL. */
void sf_dropout_back(const sf_ctx *ctx, float *dx, const uint8_t *mask, long n, float p);
/* The same out of place: dx[n] = dy * mask / (1-p), or a copy of dy when mask is NULL. One
 * parallel pass instead of a serial memcpy and then the in-place pass (the copy alone was 1.4 ms
 * of PatchTST's training step, with the second core idle). */
void sf_dropout_back_into(const sf_ctx *ctx, float *dx, const float *dy, const uint8_t *mask,
                          long n, float p);

#endif
