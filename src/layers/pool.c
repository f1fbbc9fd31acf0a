#include "layers/pool.h"

#include <string.h>

#include "core/error.h"

static int valid(const sf_ctx *ctx, int b) {
    int n = ctx->lens ? ctx->lens[b] : ctx->T;
    SF_ASSERT(n >= 1 && n <= ctx->T);
    return n;
}

void sf_mean_pool_forward(const sf_ctx *ctx, int d, const float *x, float *y) {
    for (int b = 0; b < ctx->B; b++) {
        int n = valid(ctx, b);
        float *yb = y + (size_t)b * d;
        memset(yb, 0, (size_t)d * sizeof(float));
        for (int t = 0; t < n; t++) {
            const float *xt = x + ((size_t)b * ctx->T + t) * d;
            for (int i = 0; i < d; i++) yb[i] += xt[i];
        }
        for (int i = 0; i < d; i++) yb[i] /= (float)n;
    }
}

void sf_mean_pool_backward(const sf_ctx *ctx, int d, const float *dy, float *dx) {
    for (int b = 0; b < ctx->B; b++) {
        int n = valid(ctx, b);
        const float *g = dy + (size_t)b * d;
        for (int t = 0; t < ctx->T; t++) {
            float *o = dx + ((size_t)b * ctx->T + t) * d;
            if (t >= n) {
                memset(o, 0, (size_t)d * sizeof(float));
                continue;
            }
            for (int i = 0; i < d; i++) o[i] = g[i] / (float)n;
        }
    }
}
