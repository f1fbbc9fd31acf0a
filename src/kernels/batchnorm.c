#include "kernels/batchnorm.h"
#include "kernels/multiversion.h"

#include <math.h>
#include <string.h>

#include "core/error.h"
#include "core/parallel.h"

/* The per-feature sums over rows (mean, variance, the backward's two) are taken in P row chunks,
 * P from N and D only (not the thread count), each chunk's double partials on one thread, then
 * added in chunk order: the same result at any thread count, and in two threads' time (serial,
 * these loops were a fifth of PatchTST's norm time at one thread and did not scale). Their
 * partials live on the stack: P * D <= SF_BN_PART doubles. */
#define SF_BN_PART 4096
#define SF_BN_ROWS_MIN 1024 /* rows per chunk at least */

static int bn_chunks(long N, int D) {
    long p = N / SF_BN_ROWS_MIN;
    if (p > SF_BN_PART / D) p = SF_BN_PART / D;
    if (p > 64) p = 64;
    return p < 1 ? 1 : (int)p;
}

/* The row loops as range functions over rows [lo, hi), compiled for AVX-512, AVX2 and baseline
 * without fused multiply-adds (SF_MULTIVERSION_512_EXACT): vectorised across the D features,
 * each element gets the baseline's operations, so the same bits on any CPU. D = 16 (PatchTST's
 * width) gets its own copy with the width a constant. */
#define SF_BN_BY_D(body, ...)                                                                   \
    do {                                                                                       \
        if (D == 16) body(__VA_ARGS__, 16);                                                    \
        else body(__VA_ARGS__, D);                                                             \
    } while (0)

static inline __attribute__((always_inline)) void sum_rows_d(double *restrict acc,
                                                             const float *restrict x,
                                                             const double *restrict c, long lo,
                                                             long hi, const int D) {
    for (int j = 0; j < D; j++) acc[j] = 0.0;
    for (long i = lo; i < hi; i++)
        if (c)
            for (int j = 0; j < D; j++) {
                const double e = x[i * D + j] - c[j];
                acc[j] += e * e;
            }
        else
            for (int j = 0; j < D; j++) acc[j] += x[i * D + j];
}
/* acc[j] = sum over rows lo..hi-1 of x[i][j] (c == NULL) or of (x[i][j] - c[j])^2 */
SF_MULTIVERSION_512_EXACT static void sum_rows(double *acc, const float *x, const double *c,
                                               long lo, long hi, int D) {
    SF_BN_BY_D(sum_rows_d, acc, x, c, lo, hi);
}

static inline __attribute__((always_inline)) void normalize_rows_d(
    float *restrict y, const float *restrict x, const float *restrict mean,
    const float *restrict rstd, const float *restrict w, const float *restrict b, long lo,
    long hi, const int D) {
    for (long i = lo; i < hi; i++)
        for (int j = 0; j < D; j++)
            y[i * D + j] = (x[i * D + j] - mean[j]) * rstd[j] * w[j] + b[j];
}
SF_MULTIVERSION_512_EXACT static void normalize_rows(float *y, const float *x, const float *mean,
                                                     const float *rstd, const float *w,
                                                     const float *b, long lo, long hi, int D) {
    SF_BN_BY_D(normalize_rows_d, y, x, mean, rstd, w, b, lo, hi);
}

static inline __attribute__((always_inline)) void grad_sums_d(
    double *restrict a, double *restrict ax, const float *restrict dy, const float *restrict x,
    const float *restrict mean, const float *restrict rstd, long lo, long hi, const int D) {
    for (int j = 0; j < D; j++) a[j] = ax[j] = 0.0;
    for (long i = lo; i < hi; i++)
        for (int j = 0; j < D; j++) {
            double g = dy[i * D + j], xh = (x[i * D + j] - mean[j]) * rstd[j];
            a[j] += g;
            ax[j] += g * xh;
        }
}
/* a[j], ax[j] = sums over rows lo..hi-1 of dy[i][j] and dy[i][j] * xhat[i][j] */
SF_MULTIVERSION_512_EXACT static void grad_sums(double *a, double *ax, const float *dy,
                                                const float *x, const float *mean,
                                                const float *rstd, long lo, long hi, int D) {
    SF_BN_BY_D(grad_sums_d, a, ax, dy, x, mean, rstd, lo, hi);
}

static inline __attribute__((always_inline)) void input_grad_rows_d(
    float *restrict dx, const float *restrict dy, const float *restrict x,
    const float *restrict mean, const float *restrict rstd, const float *restrict k0,
    const float *restrict k1, const float *restrict k2, long lo, long hi, const int D) {
    for (long i = lo; i < hi; i++)
        for (int j = 0; j < D; j++) {
            float xh = (x[i * D + j] - mean[j]) * rstd[j];
            dx[i * D + j] = k0[j] * (dy[i * D + j] - k1[j] - xh * k2[j]);
        }
}
SF_MULTIVERSION_512_EXACT static void input_grad_rows(float *dx, const float *dy, const float *x,
                                                      const float *mean, const float *rstd,
                                                      const float *k0, const float *k1,
                                                      const float *k2, long lo, long hi, int D) {
    SF_BN_BY_D(input_grad_rows_d, dx, dy, x, mean, rstd, k0, k1, k2, lo, hi);
}

/* rows of the elementwise passes handed to a thread at a time */
#define SF_BN_ROW_CHUNK 1024L
#define SF_BN_ROWS_FOR(N, D, call_lo_hi)                                                        \
    do {                                                                                       \
        const long nch_ = ((long)(N) + SF_BN_ROW_CHUNK - 1) / SF_BN_ROW_CHUNK;                 \
        SF_PARALLEL_FOR_IF((long)(N) * (D) >= 65536, for (long c_ = 0; c_ < nch_; c_++) {       \
            const long lo = c_ * SF_BN_ROW_CHUNK;                                              \
            const long hi = lo + SF_BN_ROW_CHUNK < (long)(N) ? lo + SF_BN_ROW_CHUNK : (long)(N); \
            call_lo_hi;                                                                        \
        });                                                                                    \
    } while (0)

/* sum over rows of x[i][j] (c == NULL) or of (x[i][j] - c[j])^2, per feature j */
static void bn_col_sums(double *out, const float *x, const double *c, long N, int D) {
    const int P = bn_chunks(N, D);
    double part[SF_BN_PART];
    SF_PARALLEL_FOR_IF(P > 1,
        for (int p = 0; p < P; p++)
            sum_rows(part + (long)p * D, x, c, N * p / P, N * (p + 1) / P, D);
    );
    for (int j = 0; j < D; j++) out[j] = 0.0;
    for (int p = 0; p < P; p++)
        for (int j = 0; j < D; j++) out[j] += part[(long)p * D + j];
}

void sf_batchnorm_forward_train(float *y, float *mean, float *rstd, float *var_unbiased,
                                const float *x, const float *w, const float *b, int N, int D,
                                float eps) {
    SF_ASSERT(D <= SF_BATCHNORM_MAX_D);
    double s[SF_BATCHNORM_MAX_D] = {0}, v[SF_BATCHNORM_MAX_D] = {0};
    bn_col_sums(s, x, NULL, N, D); /* D <= SF_BATCHNORM_MAX_D = SF_BN_PART */
    for (int j = 0; j < D; j++) s[j] /= N;
    bn_col_sums(v, x, s, N, D);
    for (int j = 0; j < D; j++) {
        mean[j] = (float)s[j];
        rstd[j] = (float)(1.0 / sqrt(v[j] / N + eps));
        if (var_unbiased) var_unbiased[j] = (float)(N > 1 ? v[j] / (N - 1) : v[j]);
    }
    sf_batchnorm_forward_fixed(y, x, mean, rstd, w, b, N, D);
}

void sf_batchnorm_forward_fixed(float *y, const float *x, const float *mean, const float *rstd,
                                const float *w, const float *b, int N, int D) {
    SF_BN_ROWS_FOR(N, D, normalize_rows(y, x, mean, rstd, w, b, lo, hi, D));
}

void sf_batchnorm_backward(float *dx, float *dw, float *db, const float *dy, const float *x,
                           const float *w, const float *mean, const float *rstd, int N, int D,
                           int batch_stats) {
    /* sums over rows of dy and dy * xhat, per feature */
    SF_ASSERT(D <= SF_BATCHNORM_MAX_D);
    double sdy[SF_BATCHNORM_MAX_D] = {0}, sdyx[SF_BATCHNORM_MAX_D] = {0};
    const int P = 2 * D <= SF_BN_PART ? bn_chunks(N, 2 * D) : 1;
    double part[SF_BN_PART];
    SF_PARALLEL_FOR_IF(P > 1,
        for (int p = 0; p < P; p++) {
            double *a = P > 1 ? part + 2L * p * D : sdy, *ax = P > 1 ? a + D : sdyx;
            grad_sums(a, ax, dy, x, mean, rstd, (long)N * p / P, (long)N * (p + 1) / P, D);
        }
    );
    if (P > 1)
        for (int p = 0; p < P; p++)
            for (int j = 0; j < D; j++) {
                sdy[j] += part[2L * p * D + j];
                sdyx[j] += part[(2L * p + 1) * D + j];
            }
    for (int j = 0; j < D; j++) {
        dw[j] += (float)sdyx[j];
        db[j] += (float)sdy[j];
    }
    /* training: dx = w*rstd * (dy - mean(dy) - xhat * mean(dy*xhat)); eval: dx = w*rstd*dy */
    float k0[SF_BATCHNORM_MAX_D], k1[SF_BATCHNORM_MAX_D], k2[SF_BATCHNORM_MAX_D];
    for (int j = 0; j < D; j++) {
        k0[j] = w[j] * rstd[j];
        k1[j] = batch_stats ? (float)(sdy[j] / N) : 0.0f;
        k2[j] = batch_stats ? (float)(sdyx[j] / N) : 0.0f;
    }
    SF_BN_ROWS_FOR(N, D, input_grad_rows(dx, dy, x, mean, rstd, k0, k1, k2, lo, hi, D));
}

/* ---- padding masks ----------------------------------------------------------------------
 * The same loops with invalid rows skipped. Kept apart from the unmasked functions above so
 * that those stay as they were (a per-row test in them cost 24% in forward and 9% in backward
 * at N=37632, D=16, one thread); with row_valid == NULL these call them, and with every row
 * valid they give the same bits. */

void sf_batchnorm_forward_train_masked(float *y, float *mean, float *rstd, float *var_unbiased,
                                       const float *x, const float *w, const float *b, int N,
                                       int D, float eps, const uint8_t *row_valid) {
    if (!row_valid) {
        sf_batchnorm_forward_train(y, mean, rstd, var_unbiased, x, w, b, N, D, eps);
        return;
    }
    SF_ASSERT(D <= SF_BATCHNORM_MAX_D);
    double s[SF_BATCHNORM_MAX_D] = {0}, v[SF_BATCHNORM_MAX_D] = {0};
    long n = 0; /* valid rows */
    for (long i = 0; i < N; i++) {
        if (!row_valid[i]) continue;
        n++;
        for (int j = 0; j < D; j++) s[j] += x[i * D + j];
    }
    SF_ASSERT(n >= 1); /* a mask must leave a row to take statistics over */
    for (int j = 0; j < D; j++) s[j] /= n;
    for (long i = 0; i < N; i++) {
        if (!row_valid[i]) continue;
        for (int j = 0; j < D; j++) {
            double e = x[i * D + j] - s[j];
            v[j] += e * e;
        }
    }
    for (int j = 0; j < D; j++) {
        mean[j] = (float)s[j];
        rstd[j] = (float)(1.0 / sqrt(v[j] / n + eps));
        if (var_unbiased) var_unbiased[j] = (float)(n > 1 ? v[j] / (n - 1) : v[j]);
    }
    sf_batchnorm_forward_fixed_masked(y, x, mean, rstd, w, b, N, D, row_valid);
}

void sf_batchnorm_forward_fixed_masked(float *y, const float *x, const float *mean,
                                       const float *rstd, const float *w, const float *b, int N,
                                       int D, const uint8_t *row_valid) {
    if (!row_valid) {
        sf_batchnorm_forward_fixed(y, x, mean, rstd, w, b, N, D);
        return;
    }
    SF_PARALLEL_FOR_IF((long)N * D >= 65536,
        for (long i = 0; i < N; i++) {
            if (!row_valid[i]) {
                memset(y + i * D, 0, sizeof(float) * (size_t)D);
                continue;
            }
            for (int j = 0; j < D; j++)
                y[i * D + j] = (x[i * D + j] - mean[j]) * rstd[j] * w[j] + b[j];
        }
    );
}

void sf_batchnorm_backward_masked(float *dx, float *dw, float *db, const float *dy,
                                  const float *x, const float *w, const float *mean,
                                  const float *rstd, int N, int D, int batch_stats,
                                  const uint8_t *row_valid) {
    if (!row_valid) {
        sf_batchnorm_backward(dx, dw, db, dy, x, w, mean, rstd, N, D, batch_stats);
        return;
    }
    SF_ASSERT(D <= SF_BATCHNORM_MAX_D);
    double sdy[SF_BATCHNORM_MAX_D] = {0}, sdyx[SF_BATCHNORM_MAX_D] = {0};
    long n = 0;
    for (long i = 0; i < N; i++) {
        if (!row_valid[i]) continue;
        n++;
        for (int j = 0; j < D; j++) {
            double g = dy[i * D + j], xh = (x[i * D + j] - mean[j]) * rstd[j];
            sdy[j] += g;
            sdyx[j] += g * xh;
        }
    }
    SF_ASSERT(n >= 1);
    for (int j = 0; j < D; j++) {
        dw[j] += (float)sdyx[j];
        db[j] += (float)sdy[j];
    }
    /* means over the valid rows (the statistics' count); invalid rows get dx = 0 */
    float k0[SF_BATCHNORM_MAX_D], k1[SF_BATCHNORM_MAX_D], k2[SF_BATCHNORM_MAX_D];
    for (int j = 0; j < D; j++) {
        k0[j] = w[j] * rstd[j];
        k1[j] = batch_stats ? (float)(sdy[j] / n) : 0.0f;
        k2[j] = batch_stats ? (float)(sdyx[j] / n) : 0.0f;
    }
    SF_PARALLEL_FOR_IF((long)N * D >= 65536,
        for (long i = 0; i < N; i++) {
            if (!row_valid[i]) {
                memset(dx + i * D, 0, sizeof(float) * (size_t)D);
                continue;
            }
            for (int j = 0; j < D; j++) {
                float xh = (x[i * D + j] - mean[j]) * rstd[j];
                dx[i * D + j] = k0[j] * (dy[i * D + j] - k1[j] - xh * k2[j]);
            }
        }
    );
}
