#include "kernels/local_attention.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "core/error.h"

int sf_local_attention_width(int w, int causal) { return causal ? w + 1 : 2 * w + 1; }

static void check_args(int ld, int ldo, int B, int T, int H, int Dh, int w, const int *lens) {
    SF_ASSERT(B >= 0 && T >= 0 && H >= 1 && Dh >= 1 && w >= 1);
    SF_ASSERT(ld >= H * Dh && ldo >= H * Dh);
    for (int b = 0; lens && b < B; b++) SF_ASSERT(lens[b] >= 1 && lens[b] <= T);
}

static int n_threads_for(long work) {
#ifdef _OPENMP
    return work >= SF_LOCAL_ATTENTION_PAR_MIN ? omp_get_max_threads() : 1;
#else
    (void)work;
    return 1;
#endif
}

/* Keys visible to query i of a sequence with n valid tokens: [*lo, *hi] (inclusive). */
static inline void band_keys(int i, int n, int w, int causal, int *lo, int *hi) {
    *lo = i - w > 0 ? i - w : 0;
    int h = causal ? i : i + w;
    *hi = h < n - 1 ? h : n - 1;
}

/* ---- fast kernels -------------------------------------------------------------------------- */

static inline float dot(const float *a, const float *b, int n) {
    float s = 0.0f;
    for (int d = 0; d < n; d++) s += a[d] * b[d];
    return s;
}

/* One (b, h): pointers are offset to the head's first row. */
static void fwd_head(float *o, long ldo, float *p, const float *q, const float *k, const float *v,
                     long ld, int T, int n, int Dh, float scale, int w, int causal) {
    const int W = sf_local_attention_width(w, causal);
    for (int i = 0; i < T; i++) {
        float *pr = p + (long)i * W, *orow = o + (long)i * ldo;
        memset(pr, 0, sizeof(float) * (size_t)W);
        memset(orow, 0, sizeof(float) * (size_t)Dh);
        if (i >= n) continue; /* padding */
        int lo, hi;
        band_keys(i, n, w, causal, &lo, &hi);
        const float *qr = q + (long)i * ld;
        float mx = -INFINITY;
        for (int j = lo; j <= hi; j++) {
            const float s = dot(qr, k + (long)j * ld, Dh) * scale;
            pr[j - i + w] = s;
            mx = s > mx ? s : mx;
        }
        float sum = 0.0f;
        for (int j = lo; j <= hi; j++) {
            float e = expf(pr[j - i + w] - mx);
            pr[j - i + w] = e;
            sum += e;
        }
        const float inv = 1.0f / sum;
        for (int j = lo; j <= hi; j++) {
            const float pj = pr[j - i + w] * inv;
            pr[j - i + w] = pj;
            const float *vr = v + (long)j * ld;
            for (int d = 0; d < Dh; d++) orow[d] += pj * vr[d];
        }
    }
}

void sf_local_attention_forward(float *o, int ldo, float *p, const float *q, const float *k,
                                const float *v, int ld, int B, int T, int H, int Dh, float scale,
                                int w, int causal, const int *lens) {
    check_args(ld, ldo, B, T, H, Dh, w, lens);
    const int W = sf_local_attention_width(w, causal);
    const long work = (long)B * H * T * W * Dh;
#pragma omp parallel for schedule(static) num_threads(n_threads_for(work))
    for (long bh = 0; bh < (long)B * H; bh++) {
        const int b = (int)(bh / H), h = (int)(bh % H);
        const long row0 = (long)b * T, col = (long)h * Dh;
        fwd_head(o + row0 * ldo + col, ldo, p + bh * T * W, q + row0 * ld + col,
                 k + row0 * ld + col, v + row0 * ld + col, ld, T, lens ? lens[b] : T, Dh, scale,
                 w, causal);
    }
}

static void bwd_head(float *dq, float *dk, float *dv, const float *dout, long ldo, const float *p,
                     const float *q, const float *k, const float *v, long ld, int T, int n, int Dh,
                     float scale, int w, int causal) {
    const int W = sf_local_attention_width(w, causal);
    for (int t = 0; t < T; t++) {
        memset(dq + (long)t * ld, 0, sizeof(float) * (size_t)Dh);
        memset(dk + (long)t * ld, 0, sizeof(float) * (size_t)Dh);
        memset(dv + (long)t * ld, 0, sizeof(float) * (size_t)Dh);
    }
    for (int i = 0; i < n; i++) {
        int lo, hi;
        band_keys(i, n, w, causal, &lo, &hi);
        const float *pr = p + (long)i * W, *g = dout + (long)i * ldo, *qr = q + (long)i * ld;
        float *dqr = dq + (long)i * ld;
        /* dP_ij = dout_i . v_j; dS_ij = P_ij (dP_ij - sum_j P_ij dP_ij). dP is recomputed in
         * the second loop rather than kept, so no buffer bounds the window. */
        float rowdot = 0.0f;
        for (int j = lo; j <= hi; j++) rowdot += pr[j - i + w] * dot(g, v + (long)j * ld, Dh);
        for (int j = lo; j <= hi; j++) {
            const float pj = pr[j - i + w];
            const float ds = pj * (dot(g, v + (long)j * ld, Dh) - rowdot) * scale;
            const float *kr = k + (long)j * ld;
            float *dkr = dk + (long)j * ld, *dvr = dv + (long)j * ld;
            for (int d = 0; d < Dh; d++) {
                dqr[d] += ds * kr[d];
                dkr[d] += ds * qr[d];
                dvr[d] += pj * g[d];
            }
        }
    }
}

void sf_local_attention_backward(float *dq, float *dk, float *dv, const float *dout, int ldo,
                                 const float *p, const float *q, const float *k, const float *v,
                                 int ld, int B, int T, int H, int Dh, float scale, int w,
                                 int causal, const int *lens) {
    check_args(ld, ldo, B, T, H, Dh, w, lens);
    const int W = sf_local_attention_width(w, causal);
    const long work = (long)B * H * T * W * Dh;
#pragma omp parallel for schedule(static) num_threads(n_threads_for(work))
    for (long bh = 0; bh < (long)B * H; bh++) {
        const int b = (int)(bh / H), h = (int)(bh % H);
        const long row0 = (long)b * T, col = (long)h * Dh;
        bwd_head(dq + row0 * ld + col, dk + row0 * ld + col, dv + row0 * ld + col,
                 dout + row0 * ldo + col, ldo, p + bh * T * W, q + row0 * ld + col,
                 k + row0 * ld + col, v + row0 * ld + col, ld, T, lens ? lens[b] : T, Dh, scale,
                 w, causal);
    }
}

/* ---- references ---------------------------------------------------------------------------- */

/* 1 if query i may see key j in a sequence of n valid tokens. */
static int visible(int i, int j, int n, int w, int causal) {
    if (i >= n || j >= n) return 0;
    if (causal && j > i) return 0;
    return abs(i - j) <= w;
}

/* Full T x T probabilities of one (b, h) in double (rows of padded queries are 0). */
static void ref_probs(double *P, const float *q, const float *k, long ld, int T, int n, int Dh,
                      float scale, int w, int causal) {
    for (int i = 0; i < T; i++) {
        double mx = -INFINITY, sum = 0;
        for (int j = 0; j < T; j++) {
            double s = -INFINITY;
            if (visible(i, j, n, w, causal)) {
                s = 0;
                for (int d = 0; d < Dh; d++) s += (double)q[(long)i * ld + d] * k[(long)j * ld + d];
                s *= scale;
            }
            P[(long)i * T + j] = s;
            if (s > mx) mx = s;
        }
        for (int j = 0; j < T; j++) {
            double e = mx == -INFINITY ? 0 : exp(P[(long)i * T + j] - mx);
            P[(long)i * T + j] = e;
            sum += e;
        }
        for (int j = 0; j < T; j++) P[(long)i * T + j] = sum > 0 ? P[(long)i * T + j] / sum : 0;
    }
}

void sf_local_attention_forward_ref(float *o, int ldo, float *p, const float *q, const float *k,
                                    const float *v, int ld, int B, int T, int H, int Dh,
                                    float scale, int w, int causal, const int *lens) {
    check_args(ld, ldo, B, T, H, Dh, w, lens);
    const int W = sf_local_attention_width(w, causal);
    double *P = sf_malloc(sizeof(double) * (size_t)T * T + 1);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++) {
            const long row0 = (long)b * T, col = (long)h * Dh;
            const int n = lens ? lens[b] : T;
            ref_probs(P, q + row0 * ld + col, k + row0 * ld + col, ld, T, n, Dh, scale, w, causal);
            for (int i = 0; i < T; i++) {
                for (int d = 0; d < Dh; d++) {
                    double s = 0;
                    for (int j = 0; j < n; j++) /* padded rows are never read */
                        s += P[(long)i * T + j] * v[(row0 + j) * ld + col + d];
                    o[(row0 + i) * ldo + col + d] = (float)s;
                }
                if (!p) continue;
                float *pr = p + (((long)b * H + h) * T + i) * W;
                for (int c = 0; c < W; c++) {
                    int j = i - w + c;
                    pr[c] = j >= 0 && j < T ? (float)P[(long)i * T + j] : 0.0f;
                }
            }
        }
    free(P);
}

void sf_local_attention_backward_ref(float *dq, float *dk, float *dv, const float *dout, int ldo,
                                     const float *p, const float *q, const float *k,
                                     const float *v, int ld, int B, int T, int H, int Dh,
                                     float scale, int w, int causal, const int *lens) {
    (void)p;
    check_args(ld, ldo, B, T, H, Dh, w, lens);
    double *P = sf_malloc(sizeof(double) * (2 * (size_t)T * T + 1)), *dS = P + (size_t)T * T;
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++) {
            const long row0 = (long)b * T, col = (long)h * Dh;
            const int n = lens ? lens[b] : T;
            ref_probs(P, q + row0 * ld + col, k + row0 * ld + col, ld, T, n, Dh, scale, w, causal);
            /* dP = dout V^T, dS = P o (dP - rowsum(P o dP)) */
            for (int i = 0; i < T; i++) {
                double rowdot = 0;
                for (int j = 0; j < T; j++) {
                    double s = 0;
                    if (i < n && j < n)
                        for (int d = 0; d < Dh; d++)
                            s += (double)dout[(row0 + i) * ldo + col + d] * v[(row0 + j) * ld + col + d];
                    dS[(long)i * T + j] = s;
                    rowdot += P[(long)i * T + j] * s;
                }
                for (int j = 0; j < T; j++)
                    dS[(long)i * T + j] = P[(long)i * T + j] * (dS[(long)i * T + j] - rowdot);
            }
            for (int t = 0; t < T; t++)
                for (int d = 0; d < Dh; d++) {
                    double gq = 0, gk = 0, gv = 0;
                    for (int u = 0; u < n && t < n; u++) {
                        gq += dS[(long)t * T + u] * k[(row0 + u) * ld + col + d];
                        gk += dS[(long)u * T + t] * q[(row0 + u) * ld + col + d];
                        gv += P[(long)u * T + t] * dout[(row0 + u) * ldo + col + d];
                    }
                    dq[(row0 + t) * ld + col + d] = (float)(gq * scale);
                    dk[(row0 + t) * ld + col + d] = (float)(gk * scale);
                    dv[(row0 + t) * ld + col + d] = (float)gv;
                }
        }
    free(P);
}
