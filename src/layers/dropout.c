#include "layers/dropout.h"

#include <string.h>

#include "core/profile.h"
#include "kernels/activations.h"

uint8_t *sf_dropout_fwd(sf_ctx *ctx, float *x, long n, float p) {
    if (!ctx->training || p <= 0.0f) return NULL;
    uint8_t *mask = sf_arena_push_bytes(ctx->arena, (size_t)n);
    if (sf_arena_planning(ctx->arena)) return mask;
    SF_PROF(SF_PROF_DROPOUT, sf_dropout_forward(x, mask, x, n, p, ctx->rng));
    return mask;
}

void sf_dropout_back(const sf_ctx *ctx, float *dx, const uint8_t *mask, long n, float p) {
    if (!mask || sf_arena_planning(ctx->arena)) return;
    SF_PROF(SF_PROF_DROPOUT, sf_dropout_backward(dx, dx, mask, n, p));
}

void sf_dropout_back_into(const sf_ctx *ctx, float *dx, const float *dy, const uint8_t *mask,
                          long n, float p) {
    if (sf_arena_planning(ctx->arena)) return;
    if (!mask) {
        if (dx != dy) memcpy(dx, dy, (size_t)n * sizeof(float));
        return;
    }
    SF_PROF(SF_PROF_DROPOUT, sf_dropout_backward(dx, dy, mask, n, p));
}
