#include "layers/cross_attention.h"

#include <math.h>
#include <string.h>

#include "core/error.h"
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
            for (int i = 0; i < Tq; i++) {
                const float *qi = sv->q + ((size_t)b * Tq + i) * d + h * Dh;
                float *pi = sv->p + ((size_t)bh * Tq + i) * Tk, mx = -INFINITY, z = 0;
                for (int j = 0; j < Tk; j++) {
                    const float *kj = sv->kv + ((size_t)b * Tk + j) * 2 * d + h * Dh;
                    float s = 0;
                    for (int e = 0; e < Dh; e++) s += qi[e] * kj[e];
                    pi[j] = c->scale * s;
                    mx = pi[j] > mx ? pi[j] : mx;
                }
                for (int j = 0; j < Tk; j++) z += pi[j] = expf(pi[j] - mx);
                for (int j = 0; j < Tk; j++) pi[j] /= z;
            }
        }
        if (drop) memcpy(sv->pd, sv->p, (size_t)np * sizeof(float));
    }
    sv->mask = drop ? sf_dropout_fwd(ctx, sv->pd, np, c->dropout) : NULL;
    if (sf_arena_planning(ar)) return;
#pragma omp parallel for schedule(static) if (np * Dh >= 65536)
    for (int bh = 0; bh < B * H; bh++) {
        int b = bh / H, h = bh % H;
        for (int i = 0; i < Tq; i++) {
            const float *pi = sv->pd + ((size_t)bh * Tq + i) * Tk;
            float *ai = sv->a + ((size_t)b * Tq + i) * d + h * Dh;
            memset(ai, 0, (size_t)Dh * sizeof(float));
            for (int j = 0; j < Tk; j++) {
                const float *vj = sv->kv + ((size_t)b * Tk + j) * 2 * d + d + h * Dh;
                for (int e = 0; e < Dh; e++) ai[e] += pi[j] * vj[e];
            }
        }
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
        memset(dkv, 0, (size_t)B * Tk * 2 * d * sizeof(float));
        /* dPd_ij = da_i . v_j and dv_j = sum_i Pd_ij da_i */
#pragma omp parallel for schedule(static) if (np * Dh >= 65536)
        for (int bh = 0; bh < B * H; bh++) {
            int b = bh / H, h = bh % H;
            for (int i = 0; i < Tq; i++) {
                const float *gi = da + ((size_t)b * Tq + i) * d + h * Dh;
                const float *pi = sv->pd + ((size_t)bh * Tq + i) * Tk;
                float *dpi = dp + ((size_t)bh * Tq + i) * Tk;
                for (int j = 0; j < Tk; j++) {
                    const float *vj = sv->kv + ((size_t)b * Tk + j) * 2 * d + d + h * Dh;
                    float *dvj = dkv + ((size_t)b * Tk + j) * 2 * d + d + h * Dh;
                    float s = 0;
                    for (int e = 0; e < Dh; e++) {
                        s += gi[e] * vj[e];
                        dvj[e] += pi[j] * gi[e];
                    }
                    dpi[j] = s;
                }
            }
        }
    }
    sf_dropout_back(ctx, dp, sv->mask, np, c->dropout);
    if (!sf_arena_planning(ar)) {
        /* softmax backward, then dq_i = scale sum_j dS_ij k_j, dk_j = scale sum_i dS_ij q_i */
        memset(dq, 0, (size_t)B * Tq * d * sizeof(float));
#pragma omp parallel for schedule(static) if (np * Dh >= 65536)
        for (int bh = 0; bh < B * H; bh++) {
            int b = bh / H, h = bh % H;
            for (int i = 0; i < Tq; i++) {
                const float *pi = sv->p + ((size_t)bh * Tq + i) * Tk;
                const float *dpi = dp + ((size_t)bh * Tq + i) * Tk;
                const float *qi = sv->q + ((size_t)b * Tq + i) * d + h * Dh;
                float *dqi = dq + ((size_t)b * Tq + i) * d + h * Dh, s = 0;
                for (int j = 0; j < Tk; j++) s += pi[j] * dpi[j];
                for (int j = 0; j < Tk; j++) {
                    float ds = c->scale * pi[j] * (dpi[j] - s);
                    const float *kj = sv->kv + ((size_t)b * Tk + j) * 2 * d + h * Dh;
                    float *dkj = dkv + ((size_t)b * Tk + j) * 2 * d + h * Dh;
                    for (int e = 0; e < Dh; e++) {
                        dqi[e] += ds * kj[e];
                        dkj[e] += ds * qi[e];
                    }
                }
            }
        }
        sf_linear_backward(&c->q, dx, dq, sv->x, (long)B * Tq);
        sf_linear_backward(&c->kv, dmem_l, dkv, sv->mem, (long)B * Tk);
        for (long i = 0; i < (long)B * Tk * d; i++) dmem[i] += dmem_l[i];
    }
    sf_arena_reset_to(ar, mark);
}
