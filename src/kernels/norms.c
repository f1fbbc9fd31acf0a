#include "kernels/norms.h"

/* clang reports "loop not vectorized" for some `omp simd` loops (float max reductions) as a
 * warning, which -Werror would turn into a build failure; the loops are still correct. */
#if defined(__clang__)
#pragma clang diagnostic ignored "-Wpass-failed"
#endif

#include <math.h>
#include <stddef.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "core/error.h"
#include "core/parallel.h"

/* Below this many elements the work runs on the calling thread only. */
#define SF_NORM_PAR_MIN 16384L
/* Column chunk of the dw/db reduction (double accumulators on the stack). */
#define SF_NORM_COLS 256

static int want_threads(long work) {
#ifdef _OPENMP
    return work >= SF_NORM_PAR_MIN ? omp_get_max_threads() : 1;
#else
    (void)work;
    return 1;
#endif
}

/* ---- LayerNorm ----------------------------------------------------------------------- */

/* The row bodies are functions of their own (not inlined), so the threaded and the plain loop
 * of SF_PARALLEL_FOR_IF run the very same code per row. */
static __attribute__((noinline)) void layernorm_row(float *y, float *mean, float *rstd,
                                                    const float *x, const float *w,
                                                    const float *b, int i, int D, float invD,
                                                    float eps) {
    const float *xr = x + (long)i * D;
    float *yr = y + (long)i * D;
    float s = 0.0f;
#pragma omp simd reduction(+ : s)
    for (int j = 0; j < D; j++) s += xr[j];
    const float m = s * invD;
    float v = 0.0f;
#pragma omp simd reduction(+ : v)
    for (int j = 0; j < D; j++) v += (xr[j] - m) * (xr[j] - m);
    const float r = 1.0f / sqrtf(v * invD + eps);
#pragma omp simd
    for (int j = 0; j < D; j++) yr[j] = (xr[j] - m) * r * w[j] + b[j];
    if (mean) mean[i] = m;
    if (rstd) rstd[i] = r;
}

void sf_layernorm_forward(float *y, float *mean, float *rstd, const float *x, const float *w,
                          const float *b, int N, int D, float eps) {
    SF_ASSERT(N >= 0 && D >= 1);
    const float invD = 1.0f / (float)D;
    SF_PARALLEL_FOR_IF((long)N * D >= SF_NORM_PAR_MIN,
        for (int i = 0; i < N; i++) layernorm_row(y, mean, rstd, x, w, b, i, D, invD, eps);
    );
}

/* dw[c] += sum_i dy[i,c] * xhat[i,c], db[c] += sum_i dy[i,c] (db may be NULL: RMSNorm, where
 * mean is NULL too). Each thread owns a contiguous column range and sweeps all rows once. */
static void param_grads_cols(float *dw, float *db, const float *dy, const float *x,
                             const float *mean, const float *rstd, int N, int D, int cb, int ce) {
    for (int c0 = cb; c0 < ce; c0 += SF_NORM_COLS) {
        const int cn = ce - c0 < SF_NORM_COLS ? ce - c0 : SF_NORM_COLS;
        double aw[SF_NORM_COLS], ab[SF_NORM_COLS];
        for (int j = 0; j < cn; j++) aw[j] = ab[j] = 0.0;
        for (int i = 0; i < N; i++) {
            const float *g = dy + (long)i * D + c0, *xr = x + (long)i * D + c0;
            const float m = mean ? mean[i] : 0.0f, r = rstd[i];
#pragma omp simd
            for (int j = 0; j < cn; j++) {
                aw[j] += (double)(g[j] * ((xr[j] - m) * r));
                ab[j] += (double)g[j];
            }
        }
        for (int j = 0; j < cn; j++) {
            dw[c0 + j] += (float)aw[j];
            if (db) db[c0 + j] += (float)ab[j];
        }
    }
}

static void norm_param_grads(float *dw, float *db, const float *dy, const float *x,
                             const float *mean, const float *rstd, int N, int D) {
    const int want = want_threads((long)N * D);
    if (!sf_parallel_worth(want > 1)) { /* each column's sum is the same either way */
        param_grads_cols(dw, db, dy, x, mean, rstd, N, D, 0, D);
        return;
    }
#pragma omp parallel num_threads(want)
    {
        int tid = 0, nth = 1;
#ifdef _OPENMP
        tid = omp_get_thread_num();
        nth = omp_get_num_threads();
#endif
        param_grads_cols(dw, db, dy, x, mean, rstd, N, D, (int)((long)D * tid / nth),
                         (int)((long)D * (tid + 1) / nth));
    }
}

static __attribute__((noinline)) void layernorm_back_row(float *dx, const float *dy,
                                                         const float *x, const float *w,
                                                         const float *mean, const float *rstd,
                                                         int i, int D, float invD) {
    const float *g = dy + (long)i * D, *xr = x + (long)i * D;
    float *o = dx + (long)i * D;
    const float m = mean[i], r = rstd[i];
    float sg = 0.0f, sgx = 0.0f;
#pragma omp simd reduction(+ : sg, sgx)
    for (int j = 0; j < D; j++) {
        const float gw = g[j] * w[j];
        sg += gw;
        sgx += gw * ((xr[j] - m) * r);
    }
    sg *= invD;
    sgx *= invD;
#pragma omp simd
    for (int j = 0; j < D; j++) o[j] = r * (g[j] * w[j] - sg - (xr[j] - m) * r * sgx);
}

void sf_layernorm_backward(float *dx, float *dw, float *db, const float *dy, const float *x,
                           const float *w, const float *mean, const float *rstd, int N, int D) {
    SF_ASSERT(N >= 0 && D >= 1);
    /* parameter gradients first: dx may overwrite dy */
    norm_param_grads(dw, db, dy, x, mean, rstd, N, D);
    const float invD = 1.0f / (float)D;
    SF_PARALLEL_FOR_IF((long)N * D >= SF_NORM_PAR_MIN,
        for (int i = 0; i < N; i++) layernorm_back_row(dx, dy, x, w, mean, rstd, i, D, invD);
    );
}

/* ---- RMSNorm ------------------------------------------------------------------------- */

static __attribute__((noinline)) void rmsnorm_row(float *y, float *rstd, const float *x,
                                                  const float *w, int i, int D, float invD,
                                                  float eps) {
    const float *xr = x + (long)i * D;
    float *yr = y + (long)i * D;
    float s = 0.0f;
#pragma omp simd reduction(+ : s)
    for (int j = 0; j < D; j++) s += xr[j] * xr[j];
    const float r = 1.0f / sqrtf(s * invD + eps);
#pragma omp simd
    for (int j = 0; j < D; j++) yr[j] = xr[j] * r * w[j];
    if (rstd) rstd[i] = r;
}

void sf_rmsnorm_forward(float *y, float *rstd, const float *x, const float *w, int N, int D,
                        float eps) {
    SF_ASSERT(N >= 0 && D >= 1);
    const float invD = 1.0f / (float)D;
    SF_PARALLEL_FOR_IF((long)N * D >= SF_NORM_PAR_MIN,
        for (int i = 0; i < N; i++) rmsnorm_row(y, rstd, x, w, i, D, invD, eps);
    );
}

static __attribute__((noinline)) void rmsnorm_back_row(float *dx, const float *dy, const float *x,
                                                       const float *w, const float *rstd, int i,
                                                       int D, float invD) {
    const float *g = dy + (long)i * D, *xr = x + (long)i * D;
    float *o = dx + (long)i * D;
    const float r = rstd[i];
    float sgx = 0.0f;
#pragma omp simd reduction(+ : sgx)
    for (int j = 0; j < D; j++) sgx += g[j] * w[j] * (xr[j] * r);
    sgx *= invD;
#pragma omp simd
    for (int j = 0; j < D; j++) o[j] = r * (g[j] * w[j] - xr[j] * r * sgx);
}

void sf_rmsnorm_backward(float *dx, float *dw, const float *dy, const float *x, const float *w,
                         const float *rstd, int N, int D) {
    SF_ASSERT(N >= 0 && D >= 1);
    norm_param_grads(dw, NULL, dy, x, NULL, rstd, N, D);
    const float invD = 1.0f / (float)D;
    SF_PARALLEL_FOR_IF((long)N * D >= SF_NORM_PAR_MIN,
        for (int i = 0; i < N; i++) rmsnorm_back_row(dx, dy, x, w, rstd, i, D, invD);
    );
}

/* ---- references ---------------------------------------------------------------------- */

void sf_layernorm_forward_ref(float *y, float *mean, float *rstd, const float *x, const float *w,
                              const float *b, int N, int D, float eps) {
    for (int i = 0; i < N; i++) {
        const float *xr = x + (long)i * D;
        double m = 0.0, v = 0.0;
        for (int j = 0; j < D; j++) m += xr[j];
        m /= D;
        for (int j = 0; j < D; j++) v += ((double)xr[j] - m) * ((double)xr[j] - m);
        v /= D;
        double r = 1.0 / sqrt(v + (double)eps);
        for (int j = 0; j < D; j++)
            y[(long)i * D + j] = (float)(((double)xr[j] - m) * r * w[j] + b[j]);
        if (mean) mean[i] = (float)m;
        if (rstd) rstd[i] = (float)r;
    }
}

void sf_layernorm_backward_ref(float *dx, float *dw, float *db, const float *dy, const float *x,
                               const float *w, const float *mean, const float *rstd, int N,
                               int D) {
    for (int j = 0; j < D; j++) {
        double aw = 0.0, ab = 0.0;
        for (int i = 0; i < N; i++) {
            long k = (long)i * D + j;
            aw += (double)dy[k] * ((double)x[k] - mean[i]) * rstd[i];
            ab += dy[k];
        }
        dw[j] += (float)aw;
        db[j] += (float)ab;
    }
    for (int i = 0; i < N; i++) {
        long o = (long)i * D;
        double sg = 0.0, sgx = 0.0;
        for (int j = 0; j < D; j++) {
            double gw = (double)dy[o + j] * w[j];
            sg += gw;
            sgx += gw * ((double)x[o + j] - mean[i]) * rstd[i];
        }
        sg /= D;
        sgx /= D;
        for (int j = 0; j < D; j++) {
            double xh = ((double)x[o + j] - mean[i]) * rstd[i];
            dx[o + j] = (float)((double)rstd[i] * ((double)dy[o + j] * w[j] - sg - xh * sgx));
        }
    }
}

void sf_rmsnorm_forward_ref(float *y, float *rstd, const float *x, const float *w, int N, int D,
                            float eps) {
    for (int i = 0; i < N; i++) {
        const float *xr = x + (long)i * D;
        double s = 0.0;
        for (int j = 0; j < D; j++) s += (double)xr[j] * xr[j];
        double r = 1.0 / sqrt(s / D + (double)eps);
        for (int j = 0; j < D; j++) y[(long)i * D + j] = (float)((double)xr[j] * r * w[j]);
        if (rstd) rstd[i] = (float)r;
    }
}

void sf_rmsnorm_backward_ref(float *dx, float *dw, const float *dy, const float *x,
                             const float *w, const float *rstd, int N, int D) {
    for (int j = 0; j < D; j++) {
        double aw = 0.0;
        for (int i = 0; i < N; i++) {
            long k = (long)i * D + j;
            aw += (double)dy[k] * x[k] * rstd[i];
        }
        dw[j] += (float)aw;
    }
    for (int i = 0; i < N; i++) {
        long o = (long)i * D;
        double sgx = 0.0;
        for (int j = 0; j < D; j++) sgx += (double)dy[o + j] * w[j] * x[o + j] * rstd[i];
        sgx /= D;
        for (int j = 0; j < D; j++) {
            double xh = (double)x[o + j] * rstd[i];
            dx[o + j] = (float)((double)rstd[i] * ((double)dy[o + j] * w[j] - xh * sgx));
        }
    }
}
