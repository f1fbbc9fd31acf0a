#include "layers/cross_attention.h"

#include <math.h>
#include <string.h>

#include "core/error.h"
#include "kernels/gemm.h"
#include "kernels/softmax.h"
#include "layers/dropout.h"

typedef struct {
    const float *x, *mem;
    float *q, *kv, *p, *pd, *a; /* pd: dropped-out probabilities (p itself when no dropout) */
    uint8_t *mask;
    int Tq, Tk;
} ca_saved;

int sf_cross_attention_declare(sf_cross_attention *c, sf_params *ps, const char *prefix, int d,
                               int H, float dropout) {
    if (H < 1 || d % H != 0) return sf_errorf("n_heads: %d does not divide d_model %d", H, d);
    c->d = d;
    c->H = H;
    c->Dh = d / H;
    c->scale = 1.0f / sqrtf((float)c->Dh);
    c->dropout = dropout;
    char buf[SF_PARAM_NAME_MAX];
    snprintf(buf, sizeof buf, "%s.q", prefix);
    sf_linear_declare(&c->q, ps, buf, d, d, 1);
    snprintf(buf, sizeof buf, "%s.kv", prefix);
    sf_linear_declare(&c->kv, ps, buf, d, 2 * d, 1);
    snprintf(buf, sizeof buf, "%s.out", prefix);
    sf_linear_declare(&c->out, ps, buf, d, d, 1);
    c->slot = sf_params_reserve_saved(ps, sizeof(ca_saved));
    return SF_OK;
}

void sf_cross_attention_init(sf_cross_attention *c, sf_rng *rng) {
    sf_linear_init(&c->q, rng);
    sf_linear_init(&c->kv, rng);
    sf_linear_init(&c->out, rng);
}

void sf_cross_attention_forward(sf_cross_attention *c, sf_ctx *ctx, const float *x, int Tq,
                                const float *mem, int Tk, float *y) {
    ca_saved *sv = SF_SAVED(ctx, c->slot, ca_saved);
    sf_arena *ar = ctx->arena;
    int B = ctx->B, H = c->H, Dh = c->Dh, d = c->d;
    long np = (long)B * H * Tq * Tk;
    sv->x = x;
    sv->mem = mem;
    sv->Tq = Tq;
    sv->Tk = Tk;
    sv->q = sf_arena_push(ar, (size_t)B * Tq * d);
    sv->kv = sf_arena_push(ar, (size_t)B * Tk * 2 * d);
    sv->p = sf_arena_push(ar, (size_t)np);
    sv->a = sf_arena_push(ar, (size_t)B * Tq * d);
    int drop = ctx->training && c->dropout > 0;
    sv->pd = drop ? sf_arena_push(ar, (size_t)np) : sv->p;
    if (!sf_arena_planning(ar)) {
        sf_linear_forward(&c->q, sv->q, x, (long)B * Tq);
        sf_linear_forward(&c->kv, sv->kv, mem, (long)B * Tk);
#pragma omp parallel for schedule(static) if (np * Dh >= 65536)
        for (int bh = 0; bh < B * H; bh++) {
            int b = bh / H, h = bh % H;
            /* S = scale q_h k_h^T [Tq, Tk], then a softmax per row */
            float *pb = sv->p + (size_t)bh * Tq * Tk;
            sf_gemm(0, 1, Tq, Tk, Dh, c->scale, sv->q + (size_t)b * Tq * d + h * Dh, d,
                    sv->kv + (size_t)b * Tk * 2 * d + h * Dh, 2 * d, 0.0f, pb, Tk);
            sf_softmax_forward(pb, pb, Tq, Tk);
        }
        if (drop) memcpy(sv->pd, sv->p, (size_t)np * sizeof(float));
    }
    sv->mask = drop ? sf_dropout_fwd(ctx, sv->pd, np, c->dropout) : NULL;
    if (sf_arena_planning(ar)) return;
#pragma omp parallel for schedule(static) if (np * Dh >= 65536)
    for (int bh = 0; bh < B * H; bh++) { /* a_h = drop(P) v_h */
        int b = bh / H, h = bh % H;
        sf_gemm(0, 0, Tq, Dh, Tk, 1.0f, sv->pd + (size_t)bh * Tq * Tk, Tk,
                sv->kv + (size_t)b * Tk * 2 * d + d + h * Dh, 2 * d, 0.0f,
                sv->a + (size_t)b * Tq * d + h * Dh, d);
    }
    sf_linear_forward(&c->out, y, sv->a, (long)B * Tq);
}

void sf_cross_attention_backward(sf_cross_attention *c, sf_ctx *ctx, const float *dy, float *dx,
                                 float *dmem) {
    const ca_saved *sv = SF_SAVED(ctx, c->slot, ca_saved);
    sf_arena *ar = ctx->arena;
    int B = ctx->B, H = c->H, Dh = c->Dh, d = c->d, Tq = sv->Tq, Tk = sv->Tk;
    long np = (long)B * H * Tq * Tk;
    size_t mark = sf_arena_mark(ar);
    float *da = sf_arena_push(ar, (size_t)B * Tq * d);
    float *dq = sf_arena_push(ar, (size_t)B * Tq * d);
    float *dkv = sf_arena_push(ar, (size_t)B * Tk * 2 * d);
    float *dmem_l = sf_arena_push(ar, (size_t)B * Tk * d);
    float *dp = sf_arena_push(ar, (size_t)np);
    if (!sf_arena_planning(ar)) {
        sf_linear_backward(&c->out, da, dy, sv->a, (long)B * Tq);
        /* dPd = da_h v_h^T and dv_h = Pd^T da_h */
#pragma omp parallel for schedule(static) if (np * Dh >= 65536)
        for (int bh = 0; bh < B * H; bh++) {
            int b = bh / H, h = bh % H;
            const float *dab = da + (size_t)b * Tq * d + h * Dh;
            const float *vb = sv->kv + (size_t)b * Tk * 2 * d + d + h * Dh;
            sf_gemm(0, 1, Tq, Tk, Dh, 1.0f, dab, d, vb, 2 * d, 0.0f, dp + (size_t)bh * Tq * Tk, Tk);
            sf_gemm(1, 0, Tk, Dh, Tq, 1.0f, sv->pd + (size_t)bh * Tq * Tk, Tk, dab, d, 0.0f,
                    dkv + (size_t)b * Tk * 2 * d + d + h * Dh, 2 * d);
        }
    }
    sf_dropout_back(ctx, dp, sv->mask, np, c->dropout);
    if (!sf_arena_planning(ar)) {
        /* dS = scale P (dP - rowsum(P dP)), then dq_h = dS k_h, dk_h = dS^T q_h */
#pragma omp parallel for schedule(static) if (np * Dh >= 65536)
        for (int bh = 0; bh < B * H; bh++) {
            int b = bh / H, h = bh % H;
            float *ds = dp + (size_t)bh * Tq * Tk;
            for (int i = 0; i < Tq; i++) {
                const float *pi = sv->p + ((size_t)bh * Tq + i) * Tk;
                float *dsi = ds + (size_t)i * Tk, s = 0;
                for (int j = 0; j < Tk; j++) s += pi[j] * dsi[j];
                for (int j = 0; j < Tk; j++) dsi[j] = c->scale * pi[j] * (dsi[j] - s);
            }
            sf_gemm(0, 0, Tq, Dh, Tk, 1.0f, ds, Tk, sv->kv + (size_t)b * Tk * 2 * d + h * Dh, 2 * d,
                    0.0f, dq + (size_t)b * Tq * d + h * Dh, d);
            sf_gemm(1, 0, Tk, Dh, Tq, 1.0f, ds, Tk, sv->q + (size_t)b * Tq * d + h * Dh, d, 0.0f,
                    dkv + (size_t)b * Tk * 2 * d + h * Dh, 2 * d);
        }
        sf_linear_backward(&c->q, dx, dq, sv->x, (long)B * Tq);
        sf_linear_backward(&c->kv, dmem_l, dkv, sv->mem, (long)B * Tk);
        for (long i = 0; i < (long)B * Tk * d; i++) dmem[i] += dmem_l[i];
    }
    sf_arena_reset_to(ar, mark);
}
