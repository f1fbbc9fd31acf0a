#include "kernels/lut.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <omp.h>

#include "core/error.h"

/* Below this many output floats (N * dout) the kernels stay on the calling thread. */
#define SF_LUT_PAR_MIN 32768L

/* Bucket of one chunk (MSB first), the paper's P = prod 1/(1 + exp(-2|z_i|)) and L = ||z||_1. */
static inline int32_t chunk_hash(const float *z, int tau, float *P, float *L) {
    int32_t h = 0;
    float den = 1.0f, l1 = 0.0f;
    for (int i = 0; i < tau; i++) {
        float a = fabsf(z[i]);
        h = (h << 1) | (z[i] >= 0.0f);
        den *= 1.0f + expf(-2.0f * a);
        l1 += a;
    }
    *P = 1.0f / den;
    *L = l1;
    return h;
}

void sf_lut_forward(float *y, int32_t *code, float *score, const float *z, const float *tables,
                    const float *bias, long N, int K, int tau, int dout, sf_lut_score sm) {
    SF_ASSERT(tau >= 1 && tau <= SF_LUT_MAX_TAU && K >= 1 && dout >= 1);
    const long S = 1L << tau;
#pragma omp parallel for schedule(static) if (N * dout >= SF_LUT_PAR_MIN)
    for (long n = 0; n < N; n++) {
        float *yn = y + n * dout;
        if (bias) memcpy(yn, bias, (size_t)dout * sizeof(float));
        else memset(yn, 0, (size_t)dout * sizeof(float));
        for (int k = 0; k < K; k++) {
            float P, L;
            int32_t h = chunk_hash(z + n * (long)K * tau + (long)k * tau, tau, &P, &L);
            float p = sm == SF_LUT_SCORE_CODE ? L * P : P;
            code[n * K + k] = h;
            score[n * K + k] = p;
            const float *row = tables + ((long)k * S + h) * dout;
#pragma omp simd
            for (int c = 0; c < dout; c++) yn[c] += p * row[c];
        }
    }
}

void sf_lut_backward(float *dz, float *dtables, float *dbias, unsigned char *touched,
                     const float *dy, const float *z, const int32_t *code, const float *score,
                     const float *tables, long N, int K, int tau, int dout, sf_lut_score sm) {
    const long S = 1L << tau;
    const int par = N * dout >= SF_LUT_PAR_MIN;
    /* dz through p: per token, independent */
#pragma omp parallel for schedule(static) if (par)
    for (long n = 0; n < N; n++) {
        const float *dyn = dy + n * dout;
        for (int k = 0; k < K; k++) {
            const float *row = tables + ((long)k * S + code[n * K + k]) * dout;
            float g = 0.0f;
#pragma omp simd reduction(+ : g)
            for (int c = 0; c < dout; c++) g += dyn[c] * row[c];
            const float *zk = z + n * (long)K * tau + (long)k * tau;
            float *dzk = dz + n * (long)K * tau + (long)k * tau;
            float P, L;
            chunk_hash(zk, tau, &P, &L);
            for (int i = 0; i < tau; i++) {
                float sg = zk[i] >= 0.0f ? 1.0f : -1.0f;
                float q = 2.0f / (1.0f + expf(2.0f * fabsf(zk[i]))); /* 2 (1 - sigma(2|z|)) */
                dzk[i] = sm == SF_LUT_SCORE_CODE ? g * sg * (P + L * P * q) : g * sg * P * q;
            }
        }
    }
    /* tables: each thread owns whole tables k, rows accumulate in token order */
#pragma omp parallel for schedule(static) if (par && K > 1)
    for (int k = 0; k < K; k++)
        for (long n = 0; n < N; n++) {
            long r = (long)k * S + code[n * K + k];
            float *drow = dtables + r * dout;
            const float *dyn = dy + n * dout;
            float p = score[n * K + k];
#pragma omp simd
            for (int c = 0; c < dout; c++) drow[c] += p * dyn[c];
            if (touched) touched[r] = 1;
        }
    if (dbias)
        for (long n = 0; n < N; n++)
            for (int c = 0; c < dout; c++) dbias[c] += dy[n * dout + c];
}

/* ---- references: the explicit softmax over all 2^tau buckets, in double ------------------- */

/* sign of element i of bucket b (MSB first): +1 or -1 */
static double bucket_sign(long b, int i, int tau) { return (b >> (tau - 1 - i)) & 1 ? 1.0 : -1.0; }

/* probabilities over every bucket of one chunk (prob [2^tau]); returns the chosen bucket */
static long ref_softmax(const float *zk, int tau, double *prob) {
    const long S = 1L << tau;
    long h = 0;
    for (int i = 0; i < tau; i++) h = (h << 1) | (zk[i] >= 0.0f);
    double mx = -INFINITY;
    for (long b = 0; b < S; b++) {
        double l = 0;
        for (int i = 0; i < tau; i++) l += bucket_sign(b, i, tau) * zk[i];
        prob[b] = l;
        if (l > mx) mx = l;
    }
    double s = 0;
    for (long b = 0; b < S; b++) s += (prob[b] = exp(prob[b] - mx));
    for (long b = 0; b < S; b++) prob[b] /= s;
    return h;
}

static double l1(const float *zk, int tau) {
    double s = 0;
    for (int i = 0; i < tau; i++) s += fabs((double)zk[i]);
    return s;
}

void sf_lut_forward_ref(float *y, int32_t *code, float *score, const float *z, const float *tables,
                        const float *bias, long N, int K, int tau, int dout, sf_lut_score sm) {
    const long S = 1L << tau;
    double *prob = malloc(sizeof(double) * (size_t)S), *acc = malloc(sizeof(double) * (size_t)dout);
    for (long n = 0; n < N; n++) {
        for (int c = 0; c < dout; c++) acc[c] = bias ? bias[c] : 0.0;
        for (int k = 0; k < K; k++) {
            const float *zk = z + (n * K + k) * tau;
            long h = ref_softmax(zk, tau, prob);
            double p = prob[h] * (sm == SF_LUT_SCORE_CODE ? l1(zk, tau) : 1.0);
            if (code) code[n * K + k] = (int32_t)h;
            if (score) score[n * K + k] = (float)p;
            for (int c = 0; c < dout; c++) acc[c] += p * tables[((long)k * S + h) * dout + c];
        }
        for (int c = 0; c < dout; c++) y[n * dout + c] = (float)acc[c];
    }
    free(prob);
    free(acc);
}

void sf_lut_backward_ref(float *dz, float *dtables, float *dbias, const float *dy, const float *z,
                         const float *tables, long N, int K, int tau, int dout, sf_lut_score sm) {
    const long S = 1L << tau;
    double *prob = malloc(sizeof(double) * (size_t)S);
    for (long n = 0; n < N; n++) {
        const float *dyn = dy + n * dout;
        for (int k = 0; k < K; k++) {
            const float *zk = z + (n * K + k) * tau;
            float *dzk = dz + (n * K + k) * tau;
            long h = ref_softmax(zk, tau, prob);
            double L = sm == SF_LUT_SCORE_CODE ? l1(zk, tau) : 1.0, p = prob[h] * L, g = 0;
            const float *row = tables + ((long)k * S + h) * dout;
            for (int c = 0; c < dout; c++) {
                g += (double)dyn[c] * row[c];
                dtables[((long)k * S + h) * dout + c] += (float)(p * dyn[c]);
            }
            /* d prob_h / d z_i = prob_h (s_hi - sum_b prob_b s_bi) */
            for (int i = 0; i < tau; i++) {
                double mean_s = 0;
                for (long b = 0; b < S; b++) mean_s += prob[b] * bucket_sign(b, i, tau);
                double dp = prob[h] * (bucket_sign(h, i, tau) - mean_s) * L;
                if (sm == SF_LUT_SCORE_CODE) dp += prob[h] * (zk[i] >= 0.0f ? 1.0 : -1.0);
                dzk[i] = (float)(g * dp);
            }
        }
        if (dbias)
            for (int c = 0; c < dout; c++) dbias[c] += dyn[c];
    }
    free(prob);
}
