#include "kernels/activations.h"

#include <math.h>
#include <string.h>

#include "core/error.h"
#include "kernels/softmax.h" /* sf_expf_fast, sf_selectf */

#define SF_ACT_PAR_MIN 65536L

/* erfc(z) for z >= 0 as t * exp(-z^2 + P(t)), t = 1/(1 + z/2), P a degree-10 polynomial in
 * u = (2t - 7/6) / (5/6) (t mapped from [1/6, 1] to [-1, 1]), least-squares fitted on Chebyshev
 * nodes for z in [0, 10] (beyond that erfc underflows in float). Relative error of erfc in float
 * arithmetic: < 6e-7 for z <= 2, < 2e-6 for z <= 4 (mostly the rounding of z^2). */
static inline float erfc_pos(float z) {
    const float t = 1.0f / (1.0f + 0.5f * z);
    const float u = (2.0f * t - 1.16666667f) * 1.2f;
    float p = -2.285576921e-05f;
    p = p * u + 5.486024681e-05f;
    p = p * u + 1.298682132e-04f;
    p = p * u + -5.343206104e-04f;
    p = p * u + -2.759611569e-04f;
    p = p * u + 3.707476740e-03f;
    p = p * u + -1.045551835e-03f;
    p = p * u + -2.947033686e-02f;
    p = p * u + 1.574507407e-02f;
    p = p * u + 5.703071030e-01f;
    p = p * u + -5.585953537e-01f;
    return t * sf_expf_fast(p - z * z);
}

/* Phi(x) = P(N(0,1) <= x) = 0.5 * erfc(-x/sqrt(2)). */
static inline float std_normal_cdf(float x) {
    const float z = fabsf(x) * 0.70710678118654752f;
    const float h = 0.5f * erfc_pos(z);
    return sf_selectf(x < 0.0f, h, 1.0f - h);
}

void sf_gelu_forward(float *y, const float *x, long n) {
#pragma omp parallel for simd schedule(static) if (n >= SF_ACT_PAR_MIN)
    for (long i = 0; i < n; i++) y[i] = x[i] * std_normal_cdf(x[i]);
}

void sf_gelu_backward(float *dx, const float *dy, const float *x, long n) {
#pragma omp parallel for simd schedule(static) if (n >= SF_ACT_PAR_MIN)
    for (long i = 0; i < n; i++) {
        const float xi = x[i];
        const float pdf = 0.39894228040143268f * sf_expf_fast(-0.5f * xi * xi);
        dx[i] = dy[i] * (std_normal_cdf(xi) + xi * pdf);
    }
}

void sf_elu1_forward(float *y, const float *x, long n) {
#pragma omp parallel for simd schedule(static) if (n >= SF_ACT_PAR_MIN)
    for (long i = 0; i < n; i++) {
        const float xi = x[i];
        const float e = sf_expf_fast(sf_selectf(xi > 0.0f, 0.0f, xi));
        y[i] = sf_selectf(xi > 0.0f, xi + 1.0f, e);
    }
}

void sf_elu1_backward(float *dx, const float *dy, const float *x, long n) {
#pragma omp parallel for simd schedule(static) if (n >= SF_ACT_PAR_MIN)
    for (long i = 0; i < n; i++) {
        const float xi = x[i];
        const float e = sf_expf_fast(sf_selectf(xi > 0.0f, 0.0f, xi));
        dx[i] = dy[i] * sf_selectf(xi > 0.0f, 1.0f, e);
    }
}

void sf_gelu_forward_ref(float *y, const float *x, long n) {
    for (long i = 0; i < n; i++) {
        double xi = x[i];
        y[i] = (float)(xi * 0.5 * erfc(-xi / sqrt(2.0)));
    }
}

void sf_gelu_backward_ref(float *dx, const float *dy, const float *x, long n) {
    for (long i = 0; i < n; i++) {
        double xi = x[i];
        double cdf = 0.5 * erfc(-xi / sqrt(2.0));
        double pdf = exp(-0.5 * xi * xi) / sqrt(2.0 * M_PI);
        dx[i] = (float)((double)dy[i] * (cdf + xi * pdf));
    }
}

void sf_elu1_forward_ref(float *y, const float *x, long n) {
    for (long i = 0; i < n; i++) y[i] = x[i] > 0.0f ? (float)((double)x[i] + 1.0) : (float)exp(x[i]);
}

void sf_elu1_backward_ref(float *dx, const float *dy, const float *x, long n) {
    for (long i = 0; i < n; i++) dx[i] = x[i] > 0.0f ? dy[i] : (float)((double)dy[i] * exp(x[i]));
}

void sf_dropout_forward(float *y, uint8_t *mask, const float *x, long n, float p, sf_rng *rng) {
    SF_ASSERT(n >= 0 && p >= 0.0f && p < 1.0f);
    if (p == 0.0f) {
        if (y != x) memmove(y, x, (size_t)n * sizeof(float));
        memset(mask, 1, (size_t)n);
        return;
    }
    const float keep_scale = 1.0f / (1.0f - p);
    for (long i = 0; i < n; i++) {
        const uint8_t m = sf_rng_uniform(rng) >= p;
        mask[i] = m;
        y[i] = m ? x[i] * keep_scale : 0.0f;
    }
}

void sf_dropout_backward(float *dx, const float *dy, const uint8_t *mask, long n, float p) {
    SF_ASSERT(n >= 0 && p >= 0.0f && p < 1.0f);
    const float keep_scale = 1.0f / (1.0f - p);
#pragma omp simd
    for (long i = 0; i < n; i++) dx[i] = dy[i] * (keep_scale * (float)mask[i]);
}
