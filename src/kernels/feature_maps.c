/* Feature maps for linear attention: relu, FAVOR+, cosFormer. See feature_maps.h. */
#include "kernels/feature_maps.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "kernels/dots.h"
#include "kernels/multiversion.h"
#include "kernels/softmax.h" /* sf_expf_fast */

/* ---------------------------------------------------------------------------- relu */

void sf_relu_features_forward(float *phi, int ldphi, const float *x, int ldx, int n, int D) {
    for (int r = 0; r < n; r++) {
        const float *xr = x + (size_t)r * ldx;
        float *pr = phi + (size_t)r * ldphi;
        for (int a = 0; a < D; a++) pr[a] = xr[a] > 0.0f ? xr[a] : 0.0f;
    }
}

void sf_relu_features_backward(float *dx, int lddx, const float *dphi, int lddphi,
                               const float *x, int ldx, int n, int D) {
    for (int r = 0; r < n; r++) {
        const float *xr = x + (size_t)r * ldx, *gr = dphi + (size_t)r * lddphi;
        float *dr = dx + (size_t)r * lddx;
        for (int a = 0; a < D; a++) dr[a] = xr[a] > 0.0f ? gr[a] : 0.0f;
    }
}

/* -------------------------------------------------------------------------- FAVOR+ */

void sf_favor_draw_projection(float *W, int M, int D, sf_rng *rng) {
    SF_ASSERT(M > 0 && D > 0);
    double *G = sf_malloc(sizeof(double) * (size_t)D * D);
    for (int m0 = 0; m0 < M; m0 += D) {
        /* Columns of a Gaussian D x D matrix, orthonormalised by modified Gram-Schmidt: the Q of
         * its QR factorisation with R's diagonal positive (Haar-distributed). Column c of Q is
         * row c of the block (the official code transposes Q). */
        for (int i = 0; i < D * D; i++) G[i] = sf_rng_normal(rng); /* G[r*D + c] */
        for (int c = 0; c < D; c++) {
            for (int p = 0; p < c; p++) {
                double dot = 0;
                for (int r = 0; r < D; r++) dot += G[r * D + p] * G[r * D + c];
                for (int r = 0; r < D; r++) G[r * D + c] -= dot * G[r * D + p];
            }
            double nrm = 0;
            for (int r = 0; r < D; r++) nrm += G[r * D + c] * G[r * D + c];
            nrm = sqrt(nrm);
            SF_ASSERT(nrm > 0);
            for (int r = 0; r < D; r++) G[r * D + c] /= nrm;
        }
        for (int c = 0; c < D && m0 + c < M; c++)
            for (int r = 0; r < D; r++) W[(size_t)(m0 + c) * D + r] = (float)G[r * D + c];
    }
    /* row lengths: chi(D), the norms of Gaussian D-vectors */
    for (int m = 0; m < M; m++) {
        double s = 0;
        for (int r = 0; r < D; r++) {
            double g = sf_rng_normal(rng);
            s += g * g;
        }
        const double len = sqrt(s);
        for (int r = 0; r < D; r++) W[(size_t)m * D + r] = (float)(W[(size_t)m * D + r] * len);
    }
    free(G);
}

/* xt = D^-1/4 x (l2: of x / max(|x|, 1e-12)) into xt[0..D); returns the divisor |x| used (1
 * without l2). */
static float favor_input(float *xt, const float *x, int D, int l2) {
    const float scale = 1.0f / sqrtf(sqrtf((float)D));
    float div = 1.0f;
    if (l2) {
        float ss = 0.0f;
        for (int a = 0; a < D; a++) ss += x[a] * x[a];
        div = sqrtf(ss);
        if (div < 1e-12f) div = 1e-12f;
    }
    for (int a = 0; a < D; a++) xt[a] = x[a] / div * scale;
    return div;
}

/* u = W xt (M values); returns the max of u. */
static float favor_project(float *u, const float *W, const float *xt, int M, int D) {
    float mx = -INFINITY;
    for (int m = 0; m < M; m++) {
        const float *w = W + (size_t)m * D;
        float s = 0.0f;
        for (int a = 0; a < D; a++) s += w[a] * xt[a];
        u[m] = s;
        if (s > mx) mx = s;
    }
    return mx;
}

/* The stabiliser of a whole call for KEY (max over rows) and KEY_CAUSAL (from W); QUERY's is
 * per row (returned as NAN here). xt and u are D and M floats of workspace. */
static float favor_shared_stab(const float *x, int ldx, int n, int D, const float *W, int M,
                               sf_favor_role role, int l2, float *xt, float *u) {
    if (role == SF_FAVOR_QUERY) return NAN;
    float c = -INFINITY;
    if (role == SF_FAVOR_KEY) {
        for (int r = 0; r < n; r++) {
            favor_input(xt, x + (size_t)r * ldx, D, l2);
            const float mx = favor_project(u, W, xt, M, D);
            if (mx > c) c = mx;
        }
        return c;
    }
    for (int m = 0; m < M; m++) {
        float s = 0.0f;
        for (int a = 0; a < D; a++) s += W[(size_t)m * D + a] * W[(size_t)m * D + a];
        if (0.5f * s > c) c = 0.5f * s;
    }
    c -= SF_FAVOR_CAUSAL_HEADROOM;
    return c > 0.0f ? c : 0.0f;
}

/* Workspace on the stack up to this many floats (16 KiB), on the heap beyond. */
#define FAVOR_STACK 4096

void sf_favor_features_forward_ref(float *phi, int ldphi, const float *x, int ldx, int n, int D,
                                   const float *W, int M, sf_favor_role role, int l2) {
    SF_ASSERT(n >= 0 && D > 0 && M > 0);
    float stack[FAVOR_STACK];
    float *xt = D + M <= FAVOR_STACK ? stack : sf_malloc(sizeof(float) * (size_t)(D + M));
    float *u = xt + D;
    const float rho = 1.0f / sqrtf((float)M);
    const float shared = favor_shared_stab(x, ldx, n, D, W, M, role, l2, xt, u);
    for (int r = 0; r < n; r++) {
        favor_input(xt, x + (size_t)r * ldx, D, l2);
        float *pr = phi + (size_t)r * ldphi;
        const float mx = favor_project(pr, W, xt, M, D);
        float diag = 0.0f;
        for (int a = 0; a < D; a++) diag += xt[a] * xt[a];
        diag *= 0.5f;
        const float c = role == SF_FAVOR_QUERY ? mx : shared;
        for (int m = 0; m < M; m++) pr[m] = rho * (expf(pr[m] - diag - c) + SF_FAVOR_STABILIZER);
    }
    if (xt != stack) free(xt);
}

/* The argmax (m) of u = W xt for row x. */
static int favor_argmax(const float *u, int M) {
    int best = 0;
    for (int m = 1; m < M; m++)
        if (u[m] > u[best]) best = m;
    return best;
}

/* dx of one row from dxt (g, D floats): dx = D^-1/4 g, then (l2) through x / max(|x|, 1e-12):
 * dx = (dy - (dy . y) y) / |x| with y = x / |x| (above the floor). xt is the row's input. */
static void favor_input_backward(float *dr, const float *g, const float *xt, float div, int D,
                                 int l2) {
    const float scale = 1.0f / sqrtf(sqrtf((float)D));
    if (l2 && div > 1e-12f) {
        float dot = 0.0f; /* y = x/|x| = xt/scale */
        for (int a = 0; a < D; a++) dot += g[a] * scale * xt[a];
        dot /= scale;
        for (int a = 0; a < D; a++) dr[a] = (g[a] * scale - dot * xt[a] / scale) / div;
    } else {
        for (int a = 0; a < D; a++) dr[a] = g[a] * scale / div;
    }
}

/* phi_m = rho (e_m + eps), e_m = exp(u_m - |xt|^2/2 - c):
 * dxt = sum_m g_m (W_m - xt) with g_m = dphi_m rho e_m, plus the stabiliser's share: phi depends
 * on c only through eps (c cancels otherwise), dL/dc = -sum g_m, and c = u_{m*} of the row
 * (QUERY) or of the row r* holding the call's max (KEY) adds dL/dc W_{m*} to that row's dxt (the
 * official code differentiates through its reduce_max too; ties, of measure zero, go to the
 * first). KEY_CAUSAL's c depends on W alone, a buffer: nothing. */
void sf_favor_features_backward_ref(float *dx, int lddx, const float *dphi, int lddphi,
                                    const float *x, int ldx, int n, int D, const float *W, int M,
                                    sf_favor_role role, int l2) {
    SF_ASSERT(n >= 0 && D > 0 && M > 0);
    float stack[FAVOR_STACK];
    const int need = 2 * D + M;
    float *xt = need <= FAVOR_STACK ? stack : sf_malloc(sizeof(float) * (size_t)need);
    float *u = xt + D, *g = u + M;
    const float rho = 1.0f / sqrtf((float)M);
    const float shared = favor_shared_stab(x, ldx, n, D, W, M, role, l2, xt, u);
    int r_star = -1, m_star = 0; /* KEY: where the call's max is (first in row order) */
    if (role == SF_FAVOR_KEY)
        for (int r = 0; r < n && r_star < 0; r++) {
            favor_input(xt, x + (size_t)r * ldx, D, l2);
            favor_project(u, W, xt, M, D);
            const int m = favor_argmax(u, M);
            if (u[m] == shared) r_star = r, m_star = m;
        }
    float dc_total = 0.0f; /* KEY: dL/dc summed over rows */
    for (int r = 0; r < n; r++) {
        const float *xr = x + (size_t)r * ldx, *gr = dphi + (size_t)r * lddphi;
        float *dr = dx + (size_t)r * lddx;
        const float div = favor_input(xt, xr, D, l2);
        const float mx = favor_project(u, W, xt, M, D);
        float diag = 0.0f;
        for (int a = 0; a < D; a++) diag += xt[a] * xt[a];
        diag *= 0.5f;
        const float c = role == SF_FAVOR_QUERY ? mx : shared;
        float gsum = 0.0f;
        for (int a = 0; a < D; a++) g[a] = 0.0f; /* g holds dxt */
        for (int m = 0; m < M; m++) {
            const float gm = gr[m] * rho * expf(u[m] - diag - c);
            const float *w = W + (size_t)m * D;
            gsum += gm;
            for (int a = 0; a < D; a++) g[a] += gm * w[a];
        }
        for (int a = 0; a < D; a++) g[a] -= gsum * xt[a];
        if (role == SF_FAVOR_QUERY) { /* c = u_{m*}: dL/dc = -gsum */
            const float *w = W + (size_t)favor_argmax(u, M) * D;
            for (int a = 0; a < D; a++) g[a] -= gsum * w[a];
        } else if (role == SF_FAVOR_KEY) {
            dc_total -= gsum;
        }
        favor_input_backward(dr, g, xt, div, D, l2);
    }
    if (role == SF_FAVOR_KEY && r_star >= 0 && dc_total != 0.0f) {
        const float *xr = x + (size_t)r_star * ldx, *w = W + (size_t)m_star * D;
        float *dr = dx + (size_t)r_star * lddx;
        const float div = favor_input(xt, xr, D, l2);
        for (int a = 0; a < D; a++) g[a] = dc_total * w[a];
        float tmp[FAVOR_STACK];
        float *dd = D <= FAVOR_STACK ? tmp : sf_malloc(sizeof(float) * (size_t)D);
        favor_input_backward(dd, g, xt, div, D, l2);
        for (int a = 0; a < D; a++) dr[a] += dd[a];
        if (dd != tmp) free(dd);
    }
    if (xt != stack) free(xt);
}

/* ---- FAVOR+, fast: the same computation with the M-long loops vectorised (W transposed to
 * [D][M] per call, so a projection is D axpys over m; sf_expf_fast instead of libm's expf) and
 * each row projected once per call (the reference projects KEY rows twice in the forward and
 * three times in the backward). Sums over a run in the reference's order; the v3 clone fuses
 * them into FMAs, and its exp is within a few ulp of expf: ~1e-6 relative to the reference. */

/* WT[a*M + m] = W[m*D + a]. */
static void favor_transpose(float *WT, const float *W, int M, int D) {
    for (int m = 0; m < M; m++)
        for (int a = 0; a < D; a++) WT[(size_t)a * M + m] = W[(size_t)m * D + a];
}

/* max_m u[m] by a vector reduction. */
static inline __attribute__((always_inline)) float favor_max_v(const float *u, int M) {
    float mx = -INFINITY;
#pragma omp simd reduction(max : mx)
    for (int m = 0; m < M; m++) mx = u[m] > mx ? u[m] : mx;
    return mx;
}

/* u[m] = sum_a WT[a][m] xt[a]; returns max_m u[m]. */
static inline __attribute__((always_inline)) float
favor_project_t(float *restrict u, const float *restrict WT, const float *restrict xt, int M,
                int D) {
#pragma omp simd
    for (int m = 0; m < M; m++) u[m] = 0.0f;
    int a = 0;
    for (; a + 4 <= D; a += 4) { /* four terms per pass over u, still added in order of a */
        const float x0 = xt[a], x1 = xt[a + 1], x2 = xt[a + 2], x3 = xt[a + 3];
        const float *restrict w0 = WT + (size_t)a * M, *restrict w1 = w0 + M;
        const float *restrict w2 = w1 + M, *restrict w3 = w2 + M;
#pragma omp simd
        for (int m = 0; m < M; m++) u[m] = u[m] + x0 * w0[m] + x1 * w1[m] + x2 * w2[m] + x3 * w3[m];
    }
    for (; a < D; a++) {
        const float xa = xt[a];
        const float *restrict w = WT + (size_t)a * M;
#pragma omp simd
        for (int m = 0; m < M; m++) u[m] += xa * w[m];
    }
    return favor_max_v(u, M);
}

/* favor_argmax with the max found by a vector reduction, then its first position. */
static inline __attribute__((always_inline)) int favor_argmax_v(const float *u, int M) {
    const float mx = favor_max_v(u, M);
    int m = 0;
    while (m < M - 1 && u[m] != mx) m++;
    return m;
}

static inline float favor_half_norm2(const float *xt, int D) {
    float s = 0.0f;
    for (int a = 0; a < D; a++) s += xt[a] * xt[a];
    return 0.5f * s;
}

/* pr[m] = rho (exp(pr[m] - c) + eps) */
static inline __attribute__((always_inline)) void favor_exp_row(float *restrict pr, int M,
                                                                float c, float rho) {
#pragma omp simd
    for (int m = 0; m < M; m++) pr[m] = rho * (sf_expf_fast(pr[m] - c) + SF_FAVOR_STABILIZER);
}

/* WT from W; returns KEY_CAUSAL's stabiliser (which depends on W alone), 0 for the others. */
static float favor_fast_setup(float *WT, const float *W, int M, int D, sf_favor_role role) {
    favor_transpose(WT, W, M, D);
    if (role != SF_FAVOR_KEY_CAUSAL) return 0.0f;
    return favor_shared_stab(NULL, 0, 0, D, W, M, role, 0, NULL, NULL);
}

/* ws: D*M + D floats. */
SF_MULTIVERSION static void favor_forward_fast(float *phi, int ldphi, const float *x, int ldx,
                                               int n, int D, const float *W, int M,
                                               sf_favor_role role, int l2, float *ws) {
    float *WT = ws, *xt = ws + (size_t)D * M;
    const float rho = 1.0f / sqrtf((float)M), causal_c = favor_fast_setup(WT, W, M, D, role);
    float key_c = -INFINITY;
    for (int r = 0; r < n; r++) {
        float *pr = phi + (size_t)r * ldphi;
        favor_input(xt, x + (size_t)r * ldx, D, l2);
        const float mx = favor_project_t(pr, WT, xt, M, D);
        if (role == SF_FAVOR_KEY) { /* the call's max is known after the last row: exp below */
            key_c = mx > key_c ? mx : key_c;
            continue;
        }
        const float c = role == SF_FAVOR_QUERY ? mx : causal_c;
        favor_exp_row(pr, M, favor_half_norm2(xt, D) + c, rho);
    }
    if (role == SF_FAVOR_KEY)
        for (int r = 0; r < n; r++) {
            favor_input(xt, x + (size_t)r * ldx, D, l2);
            favor_exp_row(phi + (size_t)r * ldphi, M, favor_half_norm2(xt, D) + key_c, rho);
        }
}

/* ws: D*M + n*M + 3*D floats. */
SF_MULTIVERSION static void favor_backward_fast(float *dx, int lddx, const float *dphi,
                                                int lddphi, const float *x, int ldx, int n, int D,
                                                const float *W, int M, sf_favor_role role, int l2,
                                                float *ws) {
    float *WT = ws, *U = WT + (size_t)D * M, *xt = U + (size_t)n * M, *g = xt + D, *dd = g + D;
    const float rho = 1.0f / sqrtf((float)M), causal_c = favor_fast_setup(WT, W, M, D, role);
    /* every row's projection once; KEY: the call's max and where it first occurs */
    float key_c = -INFINITY;
    int r_star = -1, m_star = 0;
    for (int r = 0; r < n; r++) {
        float *u = U + (size_t)r * M;
        favor_input(xt, x + (size_t)r * ldx, D, l2);
        const float mx = favor_project_t(u, WT, xt, M, D);
        if (role == SF_FAVOR_KEY && mx > key_c) key_c = mx, r_star = r, m_star = favor_argmax_v(u, M);
    }
    float dc_total = 0.0f; /* KEY: dL/dc summed over rows */
    for (int r = 0; r < n; r++) {
        const float *gr = dphi + (size_t)r * lddphi;
        float *u = U + (size_t)r * M;
        const float div = favor_input(xt, x + (size_t)r * ldx, D, l2);
        const int m_arg = role == SF_FAVOR_QUERY ? favor_argmax_v(u, M) : 0;
        const float c = role == SF_FAVOR_QUERY ? u[m_arg] : role == SF_FAVOR_KEY ? key_c : causal_c;
        const float cd = favor_half_norm2(xt, D) + c;
        float gsum = 0.0f; /* u becomes g_m = dphi_m rho e_m */
#pragma omp simd reduction(+ : gsum)
        for (int m = 0; m < M; m++) {
            u[m] = gr[m] * rho * sf_expf_fast(u[m] - cd);
            gsum += u[m];
        }
        sf_dots_t(g, u, WT, M, D); /* dxt = sum_m g_m (W_m - xt) */
        for (int a = 0; a < D; a++) g[a] -= gsum * xt[a];
        if (role == SF_FAVOR_QUERY) { /* c = u_{m*}: dL/dc = -gsum */
            const float *w = W + (size_t)m_arg * D;
            for (int a = 0; a < D; a++) g[a] -= gsum * w[a];
        } else if (role == SF_FAVOR_KEY) {
            dc_total -= gsum;
        }
        favor_input_backward(dx + (size_t)r * lddx, g, xt, div, D, l2);
    }
    if (role == SF_FAVOR_KEY && r_star >= 0 && dc_total != 0.0f) {
        const float div = favor_input(xt, x + (size_t)r_star * ldx, D, l2);
        const float *w = W + (size_t)m_star * D;
        for (int a = 0; a < D; a++) g[a] = dc_total * w[a];
        favor_input_backward(dd, g, xt, div, D, l2);
        float *dr = dx + (size_t)r_star * lddx;
        for (int a = 0; a < D; a++) dr[a] += dd[a];
    }
}

void sf_favor_features_forward(float *phi, int ldphi, const float *x, int ldx, int n, int D,
                               const float *W, int M, sf_favor_role role, int l2) {
    SF_ASSERT(n >= 0 && D > 0 && M > 0);
    float stack[FAVOR_STACK];
    const size_t need = (size_t)D * M + (size_t)D;
    float *ws = need <= FAVOR_STACK ? stack : sf_malloc(sizeof(float) * need);
    favor_forward_fast(phi, ldphi, x, ldx, n, D, W, M, role, l2, ws);
    if (ws != stack) free(ws);
}

void sf_favor_features_backward(float *dx, int lddx, const float *dphi, int lddphi,
                                const float *x, int ldx, int n, int D, const float *W, int M,
                                sf_favor_role role, int l2) {
    SF_ASSERT(n >= 0 && D > 0 && M > 0);
    float stack[FAVOR_STACK];
    const size_t need = (size_t)D * M + (size_t)n * M + 3 * (size_t)D;
    float *ws = need <= FAVOR_STACK ? stack : sf_malloc(sizeof(float) * need);
    favor_backward_fast(dx, lddx, dphi, lddphi, x, ldx, n, D, W, M, role, l2, ws);
    if (ws != stack) free(ws);
}

/* ------------------------------------------------------------------------ cosFormer */

static void cosformer_weights(double pos1, int len, float *s, float *c) {
    const double th = M_PI / 2.0 * pos1 / (double)len;
    *s = (float)sin(th);
    *c = (float)cos(th);
}

void sf_cosformer_features_forward(float *phi, int ldphi, const float *x, int ldx, int n, int H,
                                   int D, int pos0, int len) {
    SF_ASSERT(n >= 0 && H > 0 && D > 0 && pos0 >= 0 && pos0 + n <= len);
    for (int r = 0; r < n; r++) {
        float sn, cs;
        cosformer_weights((double)(pos0 + r + 1), len, &sn, &cs);
        for (int h = 0; h < H; h++) {
            const float *xr = x + (size_t)r * ldx + (size_t)h * D;
            float *pr = phi + (size_t)r * ldphi + (size_t)h * 2 * D;
            for (int a = 0; a < D; a++) {
                const float rl = xr[a] > 0.0f ? xr[a] : 0.0f;
                pr[a] = rl * sn;
                pr[D + a] = rl * cs;
            }
        }
    }
}

void sf_cosformer_features_backward(float *dx, int lddx, const float *dphi, int lddphi,
                                    const float *x, int ldx, int n, int H, int D, int pos0,
                                    int len) {
    SF_ASSERT(n >= 0 && H > 0 && D > 0 && pos0 >= 0 && pos0 + n <= len);
    for (int r = 0; r < n; r++) {
        float sn, cs;
        cosformer_weights((double)(pos0 + r + 1), len, &sn, &cs);
        for (int h = 0; h < H; h++) {
            const float *xr = x + (size_t)r * ldx + (size_t)h * D;
            const float *gr = dphi + (size_t)r * lddphi + (size_t)h * 2 * D;
            float *dr = dx + (size_t)r * lddx + (size_t)h * D;
            for (int a = 0; a < D; a++) dr[a] = xr[a] > 0.0f ? gr[a] * sn + gr[D + a] * cs : 0.0f;
        }
    }
}
