#include "kernels/batchnorm.h"

#include <math.h>
#include <string.h>

#include "core/error.h"

void sf_batchnorm_forward_train(float *y, float *mean, float *rstd, float *var_unbiased,
                                const float *x, const float *w, const float *b, int N, int D,
                                float eps) {
    SF_ASSERT(D <= SF_BATCHNORM_MAX_D);
    double s[SF_BATCHNORM_MAX_D] = {0}, v[SF_BATCHNORM_MAX_D] = {0};
    for (long i = 0; i < N; i++)
        for (int j = 0; j < D; j++) s[j] += x[i * D + j];
    for (int j = 0; j < D; j++) s[j] /= N;
    for (long i = 0; i < N; i++)
        for (int j = 0; j < D; j++) {
            double e = x[i * D + j] - s[j];
            v[j] += e * e;
        }
    for (int j = 0; j < D; j++) {
        mean[j] = (float)s[j];
        rstd[j] = (float)(1.0 / sqrt(v[j] / N + eps));
        if (var_unbiased) var_unbiased[j] = (float)(N > 1 ? v[j] / (N - 1) : v[j]);
    }
    sf_batchnorm_forward_fixed(y, x, mean, rstd, w, b, N, D);
}

void sf_batchnorm_forward_fixed(float *y, const float *x, const float *mean, const float *rstd,
                                const float *w, const float *b, int N, int D) {
#pragma omp parallel for schedule(static) if ((long)N * D >= 65536)
    for (long i = 0; i < N; i++)
        for (int j = 0; j < D; j++)
            y[i * D + j] = (x[i * D + j] - mean[j]) * rstd[j] * w[j] + b[j];
}

void sf_batchnorm_backward(float *dx, float *dw, float *db, const float *dy, const float *x,
                           const float *w, const float *mean, const float *rstd, int N, int D,
                           int batch_stats) {
    /* sums over rows of dy and dy * xhat, per feature */
    SF_ASSERT(D <= SF_BATCHNORM_MAX_D);
    double sdy[SF_BATCHNORM_MAX_D] = {0}, sdyx[SF_BATCHNORM_MAX_D] = {0};
    for (long i = 0; i < N; i++)
        for (int j = 0; j < D; j++) {
            double g = dy[i * D + j], xh = (x[i * D + j] - mean[j]) * rstd[j];
            sdy[j] += g;
            sdyx[j] += g * xh;
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
#pragma omp parallel for schedule(static) if ((long)N * D >= 65536)
    for (long i = 0; i < N; i++)
        for (int j = 0; j < D; j++) {
            float xh = (x[i * D + j] - mean[j]) * rstd[j];
            dx[i * D + j] = k0[j] * (dy[i * D + j] - k1[j] - xh * k2[j]);
        }
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
#pragma omp parallel for schedule(static) if ((long)N * D >= 65536)
    for (long i = 0; i < N; i++) {
        if (!row_valid[i]) {
            memset(y + i * D, 0, sizeof(float) * (size_t)D);
            continue;
        }
        for (int j = 0; j < D; j++)
            y[i * D + j] = (x[i * D + j] - mean[j]) * rstd[j] * w[j] + b[j];
    }
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
#pragma omp parallel for schedule(static) if ((long)N * D >= 65536)
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
}
