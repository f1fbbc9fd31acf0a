#include "layers/circular_conv.h"

#include <math.h>
#include <string.h>

typedef struct {
    float *cols; /* [B*T, 3*c_in] */
} cc_saved;

void sf_circular_conv_declare(sf_circular_conv *cv, sf_params *ps, const char *name, int c_in,
                              int c_out, int bias) {
    cv->c_in = c_in;
    cv->c_out = c_out;
    sf_linear_declare(&cv->lin, ps, name, 3 * c_in, c_out, bias);
    cv->slot = sf_params_reserve_saved(ps, sizeof(cc_saved));
}

void sf_circular_conv_init(sf_circular_conv *cv, sf_rng *rng) { sf_linear_init(&cv->lin, rng); }

void sf_circular_conv_init_kaiming(sf_circular_conv *cv, sf_rng *rng) {
    /* gain sqrt(2 / (1 + a^2)) with leaky_relu's default a = 0, over fan_in = 3 c_in */
    sf_rng_fill_normal(rng, cv->lin.w, (long)cv->c_out * 3 * cv->c_in, 0.0f,
                       sqrtf(2.0f / (3.0f * (float)cv->c_in)));
    if (cv->lin.has_bias) memset(cv->lin.b, 0, (size_t)cv->c_out * sizeof(float));
}

void sf_circular_conv_forward(sf_circular_conv *cv, sf_ctx *ctx, const float *x, float *y) {
    cc_saved *sv = SF_SAVED(ctx, cv->slot, cc_saved);
    int B = ctx->B, T = ctx->T, C = cv->c_in;
    long N = (long)B * T;
    sv->cols = sf_arena_push(ctx->arena, (size_t)N * 3 * C);
    if (sf_arena_planning(ctx->arena)) return;
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            float *col = sv->cols + ((size_t)b * T + t) * 3 * C;
            for (int k = 0; k < 3; k++) {
                const float *xs = x + ((size_t)b * T + (t + k - 1 + T) % T) * C;
                for (int c = 0; c < C; c++) col[c * 3 + k] = xs[c];
            }
        }
    sf_linear_forward(&cv->lin, y, sv->cols, N);
}

void sf_circular_conv_backward(sf_circular_conv *cv, sf_ctx *ctx, const float *dy, float *dx) {
    const cc_saved *sv = SF_SAVED(ctx, cv->slot, cc_saved);
    int B = ctx->B, T = ctx->T, C = cv->c_in;
    long N = (long)B * T;
    size_t mark = sf_arena_mark(ctx->arena);
    /* pushed even when dx is not wanted: the planning pass cannot tell */
    float *dcols = sf_arena_push(ctx->arena, (size_t)N * 3 * C);
    if (!sf_arena_planning(ctx->arena)) {
        sf_linear_backward(&cv->lin, dx ? dcols : NULL, dy, sv->cols, N);
        if (dx) { /* fold the windows back onto the rows they were read from */
            memset(dx, 0, (size_t)N * C * sizeof(float));
            for (int b = 0; b < B; b++)
                for (int t = 0; t < T; t++) {
                    const float *col = dcols + ((size_t)b * T + t) * 3 * C;
                    for (int k = 0; k < 3; k++) {
                        float *xs = dx + ((size_t)b * T + (t + k - 1 + T) % T) * C;
                        for (int c = 0; c < C; c++) xs[c] += col[c * 3 + k];
                    }
                }
        }
    }
    sf_arena_reset_to(ctx->arena, mark);
}
