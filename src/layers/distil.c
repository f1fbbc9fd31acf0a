#include "layers/distil.h"

#include <math.h>
#include <string.h>

typedef struct {
    float *c, *n, *e; /* conv, norm, ELU outputs [B*T, d] */
    int *arg;         /* [B*To*d] row (within the sequence) each pooled value came from */
} distil_saved;

int sf_distil_out_len(int T) { return (T - 1) / 2 + 1; }

void sf_distil_declare(sf_distil *l, sf_params *ps, const char *prefix, int d) {
    char buf[SF_PARAM_NAME_MAX];
    l->d = d;
    snprintf(buf, sizeof buf, "%s.conv", prefix);
    sf_circular_conv_declare(&l->conv, ps, buf, d, d, 1);
    snprintf(buf, sizeof buf, "%s.norm", prefix);
    sf_norm_spec bn = {SF_NORM_BATCHNORM, 1e-5f, 0.1f};
    sf_norm_declare(&l->norm, ps, buf, &bn, d);
    l->slot = sf_params_reserve_saved(ps, sizeof(distil_saved));
}

void sf_distil_init(sf_distil *l, sf_rng *rng) {
    sf_circular_conv_init(&l->conv, rng);
    sf_norm_init(&l->norm);
}

void sf_distil_forward(sf_distil *l, sf_ctx *ctx, const float *x, float *y) {
    distil_saved *sv = SF_SAVED(ctx, l->slot, distil_saved);
    int B = ctx->B, T = ctx->T, d = l->d, To = sf_distil_out_len(T);
    long N = (long)B * T;
    sf_arena *a = ctx->arena;
    sv->c = sf_arena_push(a, (size_t)N * d);
    sv->n = sf_arena_push(a, (size_t)N * d);
    sv->e = sf_arena_push(a, (size_t)N * d);
    sv->arg = (int *)(void *)sf_arena_push(a, (size_t)B * To * d);
    sf_circular_conv_forward(&l->conv, ctx, x, sv->c);
    sf_norm_forward(&l->norm, ctx, sv->c, sv->n, N);
    if (sf_arena_planning(a)) return;
    for (long i = 0; i < N * d; i++) sv->e[i] = sv->n[i] > 0 ? sv->n[i] : expm1f(sv->n[i]);
    /* window of output t: rows 2t-1, 2t, 2t+1 (padding rows never win) */
    for (int b = 0; b < B; b++)
        for (int t = 0; t < To; t++)
            for (int c = 0; c < d; c++) {
                int best = -1;
                float bv = -INFINITY;
                for (int r = 2 * t - 1; r <= 2 * t + 1; r++)
                    if (r >= 0 && r < T) {
                        float v = sv->e[((size_t)b * T + r) * d + c];
                        if (best < 0 || v > bv) best = r, bv = v;
                    }
                y[((size_t)b * To + t) * d + c] = bv;
                sv->arg[((size_t)b * To + t) * d + c] = best;
            }
}

void sf_distil_backward(sf_distil *l, sf_ctx *ctx, const float *dy, float *dx) {
    const distil_saved *sv = SF_SAVED(ctx, l->slot, distil_saved);
    int B = ctx->B, T = ctx->T, d = l->d, To = sf_distil_out_len(T);
    long N = (long)B * T;
    sf_arena *a = ctx->arena;
    size_t mark = sf_arena_mark(a);
    float *g = sf_arena_push(a, (size_t)N * d), *g2 = sf_arena_push(a, (size_t)N * d);
    if (!sf_arena_planning(a)) {
        memset(g, 0, (size_t)N * d * sizeof(float));
        for (int b = 0; b < B; b++)
            for (int t = 0; t < To; t++)
                for (int c = 0; c < d; c++) {
                    size_t o = ((size_t)b * To + t) * d + c;
                    g[((size_t)b * T + sv->arg[o]) * d + c] += dy[o];
                }
        /* ELU'(n) = 1 for n > 0, exp(n) = elu(n) + 1 otherwise */
        for (long i = 0; i < N * d; i++) g[i] *= sv->n[i] > 0 ? 1.0f : sv->e[i] + 1.0f;
    }
    sf_norm_backward(&l->norm, ctx, g, g2, N);
    sf_circular_conv_backward(&l->conv, ctx, g2, dx);
    sf_arena_reset_to(a, mark);
}
