/* Linear attention (elu+1 feature map): fast kernels, streaming step, plain references.
 * See linear_attention.h for the definition, layout and scratch contract. */
#include "kernels/linear_attention.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"

/* Per-head state (S, G: Dh x Dh; z, gz and six Dh vectors) lives on the stack up to this
 * head size and in the caller's scratch beyond it. */
#define LA_STACK_DH 64
#define LA_WS_FLOATS(D) (2 * (size_t)(D) * (size_t)(D) + 8 * (size_t)(D))
#define LA_PAR_MIN_WORK SF_LINEAR_ATTENTION_PAR_MIN /* linear_attention.h */

#define LA_INLINE static inline __attribute__((always_inline))

/* phi(x) = x > 0 ? x + 1 : exp(x) without a library call, so that it vectorises. exp(x) for
 * x <= 0 (for x > 0 the exp lane is garbage and discarded): clamp to >= -87, write x = n*ln2 + r with |r| <= ln2/2 (n rounded to nearest by
 * the 1.5*2^23 trick; ln2 split into a high part with few bits, so n*hi is exact, and a low
 * part), exp(r) by its degree-7 Taylor polynomial (truncation < 1.2e-8 relative), times 2^n
 * built in the exponent bits. A few float ulps from the true value. Inputs below -87 give
 * exp(-87) ~ 1.6e-38 instead of something smaller, which is irrelevant next to eps. NaN
 * propagates. The scalar and the 4-wide version do the same operations in the same order,
 * so they give identical results. */
#define LA_EXP_MAGIC 12582912.0f /* 1.5 * 2^23 */
#define LA_LOG2E 1.44269504088896341f
#define LA_LN2_HI 0.693359375f
#define LA_LN2_LO (-2.12194440e-4f)
#define LA_EXP_POLY(p, r)                                                                 \
    do {                                                                                  \
        p = (r) * (1.0f / 5040.0f) + 1.0f / 720.0f;                                       \
        p = p * (r) + 1.0f / 120.0f;                                                      \
        p = p * (r) + 1.0f / 24.0f;                                                       \
        p = p * (r) + 1.0f / 6.0f;                                                        \
        p = p * (r) + 0.5f;                                                               \
        p = p * (r) + 1.0f;                                                               \
        p = p * (r) + 1.0f;                                                               \
    } while (0)

LA_INLINE float la_phi(float x) {
    const float xc = x < -87.0f ? -87.0f : x;
    const float magic = LA_EXP_MAGIC;
    const float t = xc * LA_LOG2E + magic;
    const float n = t - magic;
    float r = xc - n * LA_LN2_HI;
    r = r - n * LA_LN2_LO;
    float p;
    LA_EXP_POLY(p, r);
    uint32_t ti, mi;
    memcpy(&ti, &t, sizeof ti);
    memcpy(&mi, &magic, sizeof mi);
    const uint32_t bits = (ti - mi + 127u) << 23; /* 2^n; for n in [-126, 0] a normal float */
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    const float e = p * scale;
    return x > 0.0f ? x + 1.0f : e;
}

/* GNU C vector extensions (plain SSE2 on x86-64, generic code elsewhere). */
typedef float la_v4f __attribute__((vector_size(16)));
typedef int32_t la_v4i __attribute__((vector_size(16)));
typedef uint32_t la_v4u __attribute__((vector_size(16)));

LA_INLINE la_v4f la_sel(la_v4i m, la_v4f a, la_v4f b) { /* m ? a : b, lanewise */
    return (la_v4f)(((la_v4i)a & m) | ((la_v4i)b & ~m));
}

LA_INLINE la_v4f la_phi4(la_v4f x) {
    const la_v4f zero = {0.0f, 0.0f, 0.0f, 0.0f};
    const la_v4f lo = zero - 87.0f, magic = zero + LA_EXP_MAGIC;
    const la_v4f xc = la_sel(x < lo, lo, x);
    const la_v4f t = xc * LA_LOG2E + magic;
    const la_v4f n = t - magic;
    la_v4f r = xc - n * LA_LN2_HI;
    r = r - n * LA_LN2_LO;
    la_v4f p;
    LA_EXP_POLY(p, r);
    const la_v4u bits = ((la_v4u)t - (la_v4u)magic + 127u) << 23;
    const la_v4f e = p * (la_v4f)bits;
    return la_sel(x > zero, x + 1.0f, e);
}

/* out[0..D) = phi(x[0..D)). */
LA_INLINE void la_phi_row(float *restrict out, const float *restrict x, const int D) {
    int a = 0;
    for (; a + 4 <= D; a += 4) {
        la_v4f xv, yv;
        memcpy(&xv, x + a, sizeof xv);
        yv = la_phi4(xv);
        memcpy(out + a, &yv, sizeof yv);
    }
    for (; a < D; a++) out[a] = la_phi(x[a]);
}

/* phi'(x) given x and phi(x): 1 for x > 0, exp(x) = phi(x) otherwise. */
LA_INLINE float la_dphi(float x, float phix) { return x > 0.0f ? 1.0f : phix; }

/* ---------------------------------------------------------------- forward, one (b,h) */

LA_INLINE void la_fwd_head(float *restrict o, int ldo, const float *restrict q,
                           const float *restrict k, const float *restrict v, int ld, int T,
                           const int D, int causal, float *restrict ws) {
    float *restrict S = ws;
    float *restrict z = ws + 2 * (size_t)D * D;
    float *restrict pq = z + 2 * D;
    float *restrict pk = pq + D;
    float *restrict n = pk + D;
    memset(S, 0, sizeof(float) * (size_t)D * D);
    memset(z, 0, sizeof(float) * (size_t)D);
    const float eps = SF_LINEAR_ATTENTION_EPS;
    if (!causal) {
        for (int t = 0; t < T; t++) {
            const float *kt = k + (size_t)t * ld, *vt = v + (size_t)t * ld;
            la_phi_row(pk, kt, D);
            for (int a = 0; a < D; a++) z[a] += pk[a];
            for (int a = 0; a < D; a++) {
                const float pka = pk[a];
                float *Sa = S + (size_t)a * D;
                for (int c = 0; c < D; c++) Sa[c] += pka * vt[c];
            }
        }
        for (int t = 0; t < T; t++) {
            const float *qt = q + (size_t)t * ld;
            float *ot = o + (size_t)t * ldo;
            float den = eps;
            la_phi_row(pq, qt, D);
            for (int a = 0; a < D; a++) den += pq[a] * z[a];
            for (int c = 0; c < D; c++) n[c] = 0.0f;
            for (int a = 0; a < D; a++) {
                const float pqa = pq[a];
                const float *Sa = S + (size_t)a * D;
                for (int c = 0; c < D; c++) n[c] += pqa * Sa[c];
            }
            const float r = 1.0f / den;
            for (int c = 0; c < D; c++) ot[c] = n[c] * r;
        }
        return;
    }
    for (int t = 0; t < T; t++) {
        const float *qt = q + (size_t)t * ld, *kt = k + (size_t)t * ld, *vt = v + (size_t)t * ld;
        float *ot = o + (size_t)t * ldo;
        float den = eps;
        la_phi_row(pk, kt, D);
        la_phi_row(pq, qt, D);
        for (int a = 0; a < D; a++) z[a] += pk[a];
        for (int a = 0; a < D; a++) den += pq[a] * z[a];
        for (int c = 0; c < D; c++) n[c] = 0.0f;
        for (int a = 0; a < D; a++) {
            const float pka = pk[a], pqa = pq[a];
            float *Sa = S + (size_t)a * D;
            for (int c = 0; c < D; c++) {
                const float s = Sa[c] + pka * vt[c];
                Sa[c] = s;
                n[c] += pqa * s;
            }
        }
        const float r = 1.0f / den;
        for (int c = 0; c < D; c++) ot[c] = n[c] * r;
    }
}

/* --------------------------------------------------------------- backward, one (b,h) */

/* tok: 2*T floats (causal only): per token 1/den and dL/dden, written in the forward-order
 * pass and read in the reverse pass. */
LA_INLINE void la_bwd_head(float *restrict dq, float *restrict dk, float *restrict dv,
                           const float *restrict g, int ldo, const float *restrict q,
                           const float *restrict k, const float *restrict v, int ld, int T,
                           const int D, int causal, float *restrict ws, float *restrict tok) {
    float *restrict S = ws;
    float *restrict G = ws + (size_t)D * D;
    float *restrict z = ws + 2 * (size_t)D * D;
    float *restrict gz = z + D;
    float *restrict pq = gz + D;
    float *restrict pk = pq + D;
    float *restrict n = pk + D;
    float *restrict dn = n + D;
    float *restrict dp = dn + D;
    float *restrict acc = dp + D;
    const float eps = SF_LINEAR_ATTENTION_EPS;
    memset(ws, 0, sizeof(float) * (2 * (size_t)D * D + 2 * (size_t)D)); /* S, G, z, gz */

    if (!causal) {
        /* S, z over all tokens. */
        for (int t = 0; t < T; t++) {
            const float *kt = k + (size_t)t * ld, *vt = v + (size_t)t * ld;
            la_phi_row(pk, kt, D);
            for (int a = 0; a < D; a++) z[a] += pk[a];
            for (int a = 0; a < D; a++) {
                const float pka = pk[a];
                float *Sa = S + (size_t)a * D;
                for (int c = 0; c < D; c++) Sa[c] += pka * vt[c];
            }
        }
        /* dq per token; G = dL/dS and gz = dL/dz summed over all queries. */
        for (int t = 0; t < T; t++) {
            const float *qt = q + (size_t)t * ld, *gt = g + (size_t)t * ldo;
            float *dqt = dq + (size_t)t * ld;
            float den = eps;
            la_phi_row(pq, qt, D);
            for (int a = 0; a < D; a++) den += pq[a] * z[a];
            const float r = 1.0f / den;
            for (int c = 0; c < D; c++) {
                dn[c] = gt[c] * r;
                n[c] = 0.0f;
            }
            for (int a = 0; a < D; a++) {
                const float pqa = pq[a];
                const float *Sa = S + (size_t)a * D;
                float *Ga = G + (size_t)a * D;
                float s1 = 0.0f;
#pragma omp simd reduction(+ : s1)
                for (int c = 0; c < D; c++) {
                    n[c] += pqa * Sa[c];
                    s1 += Sa[c] * dn[c];
                    Ga[c] += pqa * dn[c];
                }
                dp[a] = s1;
            }
            float gn = 0.0f;
            for (int c = 0; c < D; c++) gn += gt[c] * n[c];
            const float dden = -gn * r * r;
            for (int a = 0; a < D; a++) {
                dqt[a] = (dp[a] + z[a] * dden) * la_dphi(qt[a], pq[a]);
                gz[a] += pq[a] * dden;
            }
        }
        /* dk, dv per token from G, gz. */
        for (int t = 0; t < T; t++) {
            const float *kt = k + (size_t)t * ld, *vt = v + (size_t)t * ld;
            float *dkt = dk + (size_t)t * ld, *dvt = dv + (size_t)t * ld;
            for (int c = 0; c < D; c++) acc[c] = 0.0f;
            la_phi_row(pk, kt, D);
            for (int a = 0; a < D; a++) {
                const float pka = pk[a];
                const float *Ga = G + (size_t)a * D;
                float s1 = 0.0f;
#pragma omp simd reduction(+ : s1)
                for (int c = 0; c < D; c++) {
                    s1 += Ga[c] * vt[c];
                    acc[c] += pka * Ga[c];
                }
                dkt[a] = (s1 + gz[a]) * la_dphi(kt[a], pka);
            }
            for (int c = 0; c < D; c++) dvt[c] = acc[c];
        }
        return;
    }

    /* Causal, forward order: rebuild S_t, z_t; dq_t = phi'(q_t) * (S_t dn_t + z_t dden_t). */
    for (int t = 0; t < T; t++) {
        const float *qt = q + (size_t)t * ld, *kt = k + (size_t)t * ld, *vt = v + (size_t)t * ld;
        const float *gt = g + (size_t)t * ldo;
        float *dqt = dq + (size_t)t * ld;
        float den = eps;
        la_phi_row(pk, kt, D);
        la_phi_row(pq, qt, D);
        for (int a = 0; a < D; a++) z[a] += pk[a];
        for (int a = 0; a < D; a++) den += pq[a] * z[a];
        const float r = 1.0f / den;
        for (int c = 0; c < D; c++) {
            dn[c] = gt[c] * r;
            n[c] = 0.0f;
        }
        for (int a = 0; a < D; a++) {
            const float pka = pk[a], pqa = pq[a];
            float *Sa = S + (size_t)a * D;
            float s1 = 0.0f;
#pragma omp simd reduction(+ : s1)
            for (int c = 0; c < D; c++) {
                const float s = Sa[c] + pka * vt[c];
                Sa[c] = s;
                n[c] += pqa * s;
                s1 += s * dn[c];
            }
            dp[a] = s1;
        }
        float gn = 0.0f;
        for (int c = 0; c < D; c++) gn += gt[c] * n[c];
        const float dden = -gn * r * r;
        for (int a = 0; a < D; a++) dqt[a] = (dp[a] + z[a] * dden) * la_dphi(qt[a], pq[a]);
        tok[2 * t] = r;
        tok[2 * t + 1] = dden;
    }
    /* Reverse order: G_t = sum_{i>=t} phi(q_i) dn_i^T, gz_t = sum_{i>=t} phi(q_i) dden_i;
     * dk_t = phi'(k_t) * (G_t v_t + gz_t), dv_t = G_t^T phi(k_t). */
    for (int t = T - 1; t >= 0; t--) {
        const float *qt = q + (size_t)t * ld, *kt = k + (size_t)t * ld, *vt = v + (size_t)t * ld;
        const float *gt = g + (size_t)t * ldo;
        float *dkt = dk + (size_t)t * ld, *dvt = dv + (size_t)t * ld;
        const float r = tok[2 * t], dden = tok[2 * t + 1];
        for (int c = 0; c < D; c++) {
            dn[c] = gt[c] * r;
            acc[c] = 0.0f;
        }
        la_phi_row(pk, kt, D);
        la_phi_row(pq, qt, D);
        for (int a = 0; a < D; a++) gz[a] += pq[a] * dden;
        for (int a = 0; a < D; a++) {
            const float pqa = pq[a], pka = pk[a];
            float *Ga = G + (size_t)a * D;
            float s1 = 0.0f;
#pragma omp simd reduction(+ : s1)
            for (int c = 0; c < D; c++) {
                const float gg = Ga[c] + pqa * dn[c];
                Ga[c] = gg;
                s1 += gg * vt[c];
                acc[c] += pka * gg;
            }
            dkt[a] = (s1 + gz[a]) * la_dphi(kt[a], pka);
        }
        for (int c = 0; c < D; c++) dvt[c] = acc[c];
    }
}

/* ------------------------------------------------- Dh = 4: one head in four SIMD lanes */

/* The same algorithm as la_fwd_head / la_bwd_head with the state held in registers: S as
 * four row vectors (S_a[c]) and, in backward, also as four column vectors (S_c[a]) so that
 * both S^T phi(q) and S dn are lane-parallel multiply-adds without horizontal sums; the same
 * for G = dL/dS. */
LA_INLINE la_v4f la_ld4(const float *p) {
    la_v4f x;
    memcpy(&x, p, sizeof x);
    return x;
}
LA_INLINE void la_st4(float *p, la_v4f x) { memcpy(p, &x, sizeof x); }
/* ((e + x0) + x1 + x2) + x3: the generic loops' summation order. */
LA_INLINE float la_hsum4(float e, la_v4f x) { return e + x[0] + x[1] + x[2] + x[3]; }
LA_INLINE la_v4f la_dphi4(la_v4f x, la_v4f phix) {
    const la_v4f zero = {0.0f, 0.0f, 0.0f, 0.0f};
    return la_sel(x > zero, zero + 1.0f, phix);
}

static void la_fwd_head4(float *restrict o, int ldo, const float *restrict q,
                         const float *restrict k, const float *restrict v, int ld, int T,
                         int causal) {
    const float eps = SF_LINEAR_ATTENTION_EPS;
    const la_v4f zero = {0.0f, 0.0f, 0.0f, 0.0f};
    la_v4f S0 = zero, S1 = zero, S2 = zero, S3 = zero, z = zero;
    if (!causal) {
        for (int t = 0; t < T; t++) {
            const la_v4f pk = la_phi4(la_ld4(k + (size_t)t * ld)), vv = la_ld4(v + (size_t)t * ld);
            z += pk;
            S0 += pk[0] * vv, S1 += pk[1] * vv, S2 += pk[2] * vv, S3 += pk[3] * vv;
        }
    }
    for (int t = 0; t < T; t++) {
        const la_v4f pq = la_phi4(la_ld4(q + (size_t)t * ld));
        if (causal) {
            const la_v4f pk = la_phi4(la_ld4(k + (size_t)t * ld)), vv = la_ld4(v + (size_t)t * ld);
            z += pk;
            S0 += pk[0] * vv, S1 += pk[1] * vv, S2 += pk[2] * vv, S3 += pk[3] * vv;
        }
        const float den = la_hsum4(eps, pq * z);
        const la_v4f n = pq[0] * S0 + pq[1] * S1 + pq[2] * S2 + pq[3] * S3;
        la_st4(o + (size_t)t * ldo, n * (1.0f / den));
    }
}

/* Backward keeps phi(q_t), phi(k_t) of the first LA_PHI_CACHE_T tokens in a stack buffer
 * for its second pass instead of recomputing them. */
#define LA_PHI_CACHE_T 256

static void la_bwd_head4(float *restrict dq, float *restrict dk, float *restrict dv,
                         const float *restrict g, int ldo, const float *restrict q,
                         const float *restrict k, const float *restrict v, int ld, int T,
                         int causal, float *restrict tok) {
    const float eps = SF_LINEAR_ATTENTION_EPS;
    float cache[LA_PHI_CACHE_T * 8]; /* token t: phi(q_t) at 8t, phi(k_t) at 8t + 4 */
    const la_v4f zero = {0.0f, 0.0f, 0.0f, 0.0f};
    la_v4f S0 = zero, S1 = zero, S2 = zero, S3 = zero; /* rows S_a */
    la_v4f C0 = zero, C1 = zero, C2 = zero, C3 = zero; /* columns: C_c[a] = S[a][c] */
    la_v4f z = zero;
    if (!causal) {
        for (int t = 0; t < T; t++) {
            const la_v4f pk = la_phi4(la_ld4(k + (size_t)t * ld)), vv = la_ld4(v + (size_t)t * ld);
            if (t < LA_PHI_CACHE_T) la_st4(cache + 8 * t + 4, pk);
            z += pk;
            S0 += pk[0] * vv, S1 += pk[1] * vv, S2 += pk[2] * vv, S3 += pk[3] * vv;
            C0 += vv[0] * pk, C1 += vv[1] * pk, C2 += vv[2] * pk, C3 += vv[3] * pk;
        }
    }
    /* Query side (forward order): dq_t = phi'(q_t) * (S dn_t + z dden_t). Non-causal: also
     * accumulate G = sum_t phi(q_t) dn_t^T (rows and columns) and gz. */
    la_v4f G0 = zero, G1 = zero, G2 = zero, G3 = zero, H0 = zero, H1 = zero, H2 = zero,
           H3 = zero, gz = zero;
    for (int t = 0; t < T; t++) {
        const la_v4f qv = la_ld4(q + (size_t)t * ld), pq = la_phi4(qv);
        const la_v4f gv = la_ld4(g + (size_t)t * ldo);
        if (causal) {
            const la_v4f pk = la_phi4(la_ld4(k + (size_t)t * ld)), vv = la_ld4(v + (size_t)t * ld);
            if (t < LA_PHI_CACHE_T) la_st4(cache + 8 * t, pq), la_st4(cache + 8 * t + 4, pk);
            z += pk;
            S0 += pk[0] * vv, S1 += pk[1] * vv, S2 += pk[2] * vv, S3 += pk[3] * vv;
            C0 += vv[0] * pk, C1 += vv[1] * pk, C2 += vv[2] * pk, C3 += vv[3] * pk;
        }
        const float r = 1.0f / la_hsum4(eps, pq * z);
        const la_v4f dn = gv * r;
        const la_v4f n = pq[0] * S0 + pq[1] * S1 + pq[2] * S2 + pq[3] * S3;
        const la_v4f dp = dn[0] * C0 + dn[1] * C1 + dn[2] * C2 + dn[3] * C3;
        const float dden = -la_hsum4(0.0f, gv * n) * r * r;
        la_st4(dq + (size_t)t * ld, (dp + z * dden) * la_dphi4(qv, pq));
        if (causal) {
            tok[2 * t] = r;
            tok[2 * t + 1] = dden;
        } else {
            G0 += pq[0] * dn, G1 += pq[1] * dn, G2 += pq[2] * dn, G3 += pq[3] * dn;
            H0 += dn[0] * pq, H1 += dn[1] * pq, H2 += dn[2] * pq, H3 += dn[3] * pq;
            gz += pq * dden;
        }
    }
    /* Key/value side: dk_t = phi'(k_t) * (G v_t + gz), dv_t = G^T phi(k_t), with G, gz summed
     * over all queries (non-causal) or over queries i >= t (causal, reverse order). */
    for (int t = causal ? T - 1 : 0; causal ? t >= 0 : t < T; t += causal ? -1 : 1) {
        const int cached = t < LA_PHI_CACHE_T;
        const la_v4f kv = la_ld4(k + (size_t)t * ld);
        const la_v4f pk = cached ? la_ld4(cache + 8 * t + 4) : la_phi4(kv);
        const la_v4f vv = la_ld4(v + (size_t)t * ld);
        if (causal) {
            const la_v4f pq = cached ? la_ld4(cache + 8 * t) : la_phi4(la_ld4(q + (size_t)t * ld));
            const float r = tok[2 * t], dden = tok[2 * t + 1];
            const la_v4f dn = la_ld4(g + (size_t)t * ldo) * r;
            G0 += pq[0] * dn, G1 += pq[1] * dn, G2 += pq[2] * dn, G3 += pq[3] * dn;
            H0 += dn[0] * pq, H1 += dn[1] * pq, H2 += dn[2] * pq, H3 += dn[3] * pq;
            gz += pq * dden;
        }
        const la_v4f dpk = vv[0] * H0 + vv[1] * H1 + vv[2] * H2 + vv[3] * H3 + gz;
        la_st4(dk + (size_t)t * ld, dpk * la_dphi4(kv, pk));
        la_st4(dv + (size_t)t * ld, pk[0] * G0 + pk[1] * G1 + pk[2] * G2 + pk[3] * G3);
    }
}

/* Specialise the per-head loops for common head sizes (constant trip counts unroll and
 * vectorise); anything else takes the generic path. */
#define LA_SWITCH_D(D, CALL, GENERIC)                                                     \
    switch (D) {                                                                          \
    case 8: CALL(8); break;                                                               \
    case 16: CALL(16); break;                                                             \
    case 32: CALL(32); break;                                                             \
    default: GENERIC; break;                                                              \
    }

static void la_fwd_one(float *o, int ldo, const float *q, const float *k, const float *v,
                       int ld, int T, int D, int causal, float *ws) {
#define LA_FWD_CALL(DD)                                                                   \
    do {                                                                                  \
        float wsl_[LA_WS_FLOATS(DD)];                                                     \
        la_fwd_head(o, ldo, q, k, v, ld, T, DD, causal, wsl_);                            \
    } while (0)
    if (D == 4) {
        la_fwd_head4(o, ldo, q, k, v, ld, T, causal);
        return;
    }
    LA_SWITCH_D(D, LA_FWD_CALL, la_fwd_head(o, ldo, q, k, v, ld, T, D, causal, ws))
#undef LA_FWD_CALL
}

static void la_bwd_one(float *dq, float *dk, float *dv, const float *g, int ldo, const float *q,
                       const float *k, const float *v, int ld, int T, int D, int causal,
                       float *ws, float *tok) {
#define LA_BWD_CALL(DD)                                                                   \
    do {                                                                                  \
        float wsl_[LA_WS_FLOATS(DD)];                                                     \
        la_bwd_head(dq, dk, dv, g, ldo, q, k, v, ld, T, DD, causal, wsl_, tok);           \
    } while (0)
    if (D == 4) {
        la_bwd_head4(dq, dk, dv, g, ldo, q, k, v, ld, T, causal, tok);
        return;
    }
    LA_SWITCH_D(D, LA_BWD_CALL,
                la_bwd_head(dq, dk, dv, g, ldo, q, k, v, ld, T, D, causal, ws, tok))
#undef LA_BWD_CALL
}

static void la_check_args(int ldo, int ld, int B, int T, int H, int Dh, const int *lens) {
    SF_ASSERT(B >= 0 && T >= 0 && H >= 0 && Dh > 0);
    SF_ASSERT(ld >= H * Dh && ldo >= H * Dh);
    if (lens)
        for (int b = 0; b < B; b++) SF_ASSERT(lens[b] >= 1 && lens[b] <= T);
}

/* Head columns [0, D) of rows [r0, r1) (stride ld) set to 0: padded rows of an output. */
static void la_zero_rows(float *p, int ld, int r0, int r1, int D) {
    for (int r = r0; r < r1; r++) memset(p + (size_t)r * ld, 0, sizeof(float) * (size_t)D);
}

size_t sf_linear_attention_scratch_floats(int B, int T, int H, int Dh, int causal) {
    size_t bh = (size_t)B * (size_t)H, n = 0;
    if (causal) n += 2 * bh * (size_t)T;
    if (Dh > LA_STACK_DH) n += bh * LA_WS_FLOATS(Dh);
    return n;
}

void sf_linear_attention_forward(float *o, int ldo, const float *q, const float *k,
                                 const float *v, int ld, int B, int T, int H, int Dh,
                                 int causal, float *scratch, const int *lens) {
    la_check_args(ldo, ld, B, T, H, Dh, lens);
    const long BH = (long)B * H;
    const int big = Dh > LA_STACK_DH;
    SF_ASSERT(!big || scratch);
    float *wsbase = big ? scratch + (causal ? 2 * (size_t)BH * (size_t)T : 0) : NULL;
    const long work = BH * (long)T * Dh * Dh;
#pragma omp parallel for schedule(static) if (work >= LA_PAR_MIN_WORK)
    for (long bh = 0; bh < BH; bh++) {
        float stackws[LA_WS_FLOATS(LA_STACK_DH)];
        const long b = bh / H, h = bh % H;
        const size_t in0 = (size_t)b * T * ld + (size_t)h * Dh;
        const size_t out0 = (size_t)b * T * ldo + (size_t)h * Dh;
        float *ws = big ? wsbase + (size_t)bh * LA_WS_FLOATS(Dh) : stackws;
        /* Padding: the head kernels see the first n tokens only; output rows >= n are 0. */
        const int n = lens ? lens[b] : T;
        la_fwd_one(o + out0, ldo, q + in0, k + in0, v + in0, ld, n, Dh, causal, ws);
        if (n < T) la_zero_rows(o + out0, ldo, n, T, Dh);
    }
}

void sf_linear_attention_backward(float *dq, float *dk, float *dv, const float *dout, int ldo,
                                  const float *q, const float *k, const float *v, int ld,
                                  int B, int T, int H, int Dh, int causal, float *scratch,
                                  const int *lens) {
    la_check_args(ldo, ld, B, T, H, Dh, lens);
    const long BH = (long)B * H;
    const int big = Dh > LA_STACK_DH;
    SF_ASSERT(sf_linear_attention_scratch_floats(B, T, H, Dh, causal) == 0 || scratch);
    float *wsbase = big ? scratch + (causal ? 2 * (size_t)BH * (size_t)T : 0) : NULL;
    const long work = BH * (long)T * Dh * Dh;
#pragma omp parallel for schedule(static) if (work >= LA_PAR_MIN_WORK)
    for (long bh = 0; bh < BH; bh++) {
        float stackws[LA_WS_FLOATS(LA_STACK_DH)];
        const long b = bh / H, h = bh % H;
        const size_t in0 = (size_t)b * T * ld + (size_t)h * Dh;
        const size_t out0 = (size_t)b * T * ldo + (size_t)h * Dh;
        float *ws = big ? wsbase + (size_t)bh * LA_WS_FLOATS(Dh) : stackws;
        float *tok = causal ? scratch + 2 * (size_t)bh * (size_t)T : NULL;
        /* Padding: the head kernels see the first n tokens only; gradient rows >= n are 0. */
        const int n = lens ? lens[b] : T;
        la_bwd_one(dq + in0, dk + in0, dv + in0, dout + out0, ldo, q + in0, k + in0, v + in0,
                   ld, n, Dh, causal, ws, tok);
        if (n < T) {
            la_zero_rows(dq + in0, ld, n, T, Dh);
            la_zero_rows(dk + in0, ld, n, T, Dh);
            la_zero_rows(dv + in0, ld, n, T, Dh);
        }
    }
}

/* ------------------------------------------------------------------ streaming step */

size_t sf_linear_attention_state_floats(int H, int Dh) {
    return (size_t)H * (size_t)Dh * (size_t)Dh + (size_t)H * (size_t)Dh;
}

void sf_linear_attention_step(float *o, const float *q, const float *k, const float *v,
                              const float *state_in, float *state_out, int H, int Dh) {
    SF_ASSERT(H >= 0 && Dh > 0);
    const int D = Dh;
    const size_t zoff = (size_t)H * D * D;
    for (int h = 0; h < H; h++) {
        const float *qh = q + (size_t)h * D, *kh = k + (size_t)h * D, *vh = v + (size_t)h * D;
        const float *Si = state_in + (size_t)h * D * D, *zi = state_in + zoff + (size_t)h * D;
        float *So = state_out + (size_t)h * D * D, *zo = state_out + zoff + (size_t)h * D;
        float *oh = o + (size_t)h * D;
        float den = SF_LINEAR_ATTENTION_EPS;
        for (int c = 0; c < D; c++) oh[c] = 0.0f;
        /* Each state element is read before it is written at the same index, so in-place
         * updates (state_in == state_out) are safe. */
        for (int a = 0; a < D; a++) {
            const float pka = la_phi(kh[a]), pqa = la_phi(qh[a]);
            const float za = zi[a] + pka;
            zo[a] = za;
            den += pqa * za;
            const float *Sia = Si + (size_t)a * D;
            float *Soa = So + (size_t)a * D;
            for (int c = 0; c < D; c++) {
                const float s = Sia[c] + pka * vh[c];
                Soa[c] = s;
                oh[c] += pqa * s;
            }
        }
        const float r = 1.0f / den;
        for (int c = 0; c < D; c++) oh[c] *= r;
    }
}

/* ---------------------------------------------------------------------- references */

static double ref_phi(double x) { return x > 0 ? x + 1.0 : exp(x); }
static double ref_dphi(double x) { return x > 0 ? 1.0 : exp(x); }

void sf_linear_attention_forward_ref(float *o, int ldo, const float *q, const float *k,
                                     const float *v, int ld, int B, int T, int H, int Dh,
                                     int causal, float *scratch, const int *lens) {
    (void)scratch;
    la_check_args(ldo, ld, B, T, H, Dh, lens);
    double *num = sf_calloc((size_t)Dh, sizeof(double));
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++)
            for (int i = 0; i < T; i++) {
                /* keys j < jend: j <= i when causal, and j < n (padding) */
                const int n = lens ? lens[b] : T, jend = causal && i + 1 < n ? i + 1 : n;
                float *oi = o + ((size_t)b * T + i) * ldo + (size_t)h * Dh;
                if (i >= n) { /* padded query row */
                    for (int c = 0; c < Dh; c++) oi[c] = 0.0f;
                    continue;
                }
                const float *qi = q + ((size_t)b * T + i) * ld + (size_t)h * Dh;
                double den = SF_LINEAR_ATTENTION_EPS;
                for (int c = 0; c < Dh; c++) num[c] = 0;
                for (int j = 0; j < jend; j++) {
                    const float *kj = k + ((size_t)b * T + j) * ld + (size_t)h * Dh;
                    const float *vj = v + ((size_t)b * T + j) * ld + (size_t)h * Dh;
                    double a = 0;
                    for (int d = 0; d < Dh; d++) a += ref_phi(qi[d]) * ref_phi(kj[d]);
                    den += a;
                    for (int c = 0; c < Dh; c++) num[c] += a * vj[c];
                }
                for (int c = 0; c < Dh; c++) oi[c] = (float)(num[c] / den);
            }
    free(num);
}

void sf_linear_attention_backward_ref(float *dq, float *dk, float *dv, const float *dout,
                                      int ldo, const float *q, const float *k, const float *v,
                                      int ld, int B, int T, int H, int Dh, int causal,
                                      float *scratch, const int *lens) {
    (void)scratch;
    la_check_args(ldo, ld, B, T, H, Dh, lens);
    const size_t TD = (size_t)T * Dh;
    double *pq = sf_calloc(TD, sizeof(double)), *pk = sf_calloc(TD, sizeof(double));
    double *o = sf_calloc(TD, sizeof(double)), *dnum = sf_calloc(TD, sizeof(double));
    double *dpq = sf_calloc(TD, sizeof(double)), *dpk = sf_calloc(TD, sizeof(double));
    double *dvv = sf_calloc(TD, sizeof(double)), *dden = sf_calloc((size_t)T, sizeof(double));
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++) {
#define AT(p, t, ldx) ((p) + ((size_t)b * T + (t)) * (ldx) + (size_t)h * Dh)
            /* Padding: only tokens t < n exist; every loop below stops at n, and gradient rows
             * t >= n are written as 0. */
            const int n = lens ? lens[b] : T;
            for (int t = 0; t < n; t++)
                for (int d = 0; d < Dh; d++) {
                    pq[t * Dh + d] = ref_phi(AT(q, t, ld)[d]);
                    pk[t * Dh + d] = ref_phi(AT(k, t, ld)[d]);
                }
            /* Forward in the quadratic form: a_ij = phi(q_i).phi(k_j), o_i = num_i / den_i. */
            for (int i = 0; i < n; i++) {
                double den = SF_LINEAR_ATTENTION_EPS;
                for (int c = 0; c < Dh; c++) o[i * Dh + c] = 0;
                for (int j = 0; j < (causal ? i + 1 : n); j++) {
                    double a = 0;
                    for (int d = 0; d < Dh; d++) a += pq[i * Dh + d] * pk[j * Dh + d];
                    den += a;
                    for (int c = 0; c < Dh; c++) o[i * Dh + c] += a * AT(v, j, ld)[c];
                }
                double go = 0;
                for (int c = 0; c < Dh; c++) {
                    o[i * Dh + c] /= den;
                    dnum[i * Dh + c] = AT(dout, i, ldo)[c] / den;
                    go += AT(dout, i, ldo)[c] * o[i * Dh + c];
                }
                dden[i] = -go / den;
            }
            for (size_t x = 0; x < TD; x++) dpq[x] = dpk[x] = dvv[x] = 0;
            /* da_ij = dnum_i . v_j + dden_i. */
            for (int i = 0; i < n; i++)
                for (int j = 0; j < (causal ? i + 1 : n); j++) {
                    double a = 0, da = dden[i];
                    for (int d = 0; d < Dh; d++) a += pq[i * Dh + d] * pk[j * Dh + d];
                    for (int c = 0; c < Dh; c++) {
                        da += dnum[i * Dh + c] * AT(v, j, ld)[c];
                        dvv[j * Dh + c] += a * dnum[i * Dh + c];
                    }
                    for (int d = 0; d < Dh; d++) {
                        dpq[i * Dh + d] += da * pk[j * Dh + d];
                        dpk[j * Dh + d] += da * pq[i * Dh + d];
                    }
                }
            for (int t = n; t < T; t++)
                for (int d = 0; d < Dh; d++) AT(dq, t, ld)[d] = AT(dk, t, ld)[d] = AT(dv, t, ld)[d] = 0.0f;
            for (int t = 0; t < n; t++)
                for (int d = 0; d < Dh; d++) {
                    AT(dq, t, ld)[d] = (float)(dpq[t * Dh + d] * ref_dphi(AT(q, t, ld)[d]));
                    AT(dk, t, ld)[d] = (float)(dpk[t * Dh + d] * ref_dphi(AT(k, t, ld)[d]));
                    AT(dv, t, ld)[d] = (float)dvv[t * Dh + d];
                }
#undef AT
        }
    free(pq), free(pk), free(o), free(dnum), free(dpq), free(dpk), free(dvv), free(dden);
}
