#include "kernels/activations.h"
#include "kernels/multiversion.h"

/* clang reports "loop not vectorized" for some `omp simd` loops (float max reductions) as a
 * warning, which -Werror would turn into a build failure; the loops are still correct. */
#if defined(__clang__)
#pragma clang diagnostic ignored "-Wpass-failed"
#endif

#include <math.h>
#include <string.h>

#include "core/error.h"
#include "core/parallel.h"
#include "kernels/softmax.h" /* sf_expf_fast, sf_selectf */

#define SF_ACT_PAR_MIN 65536L

/* 0.5 erfc(z) for z >= 0, given e = exp(-z^2), as 0.5 t e Q(t), t = 1/(1 + z/2), Q a degree-8
 * polynomial in u = (2t - 7/6) / (5/6) (t mapped from [1/6, 1] to [-1, 1]), least-squares fitted for relative
 * error on Chebyshev nodes for z in [0, 10] (5e-8 in exact arithmetic; beyond z = 10 erfc
 * underflows in float, and exp(-z^2) is 0 there). The caller computes e: the GELU's
 * derivative needs it for the pdf too, so one exp serves both. Error of the float evaluation:
 * mostly the rounding of z^2 (relative 6e-8 * z^2 in exp(-z^2)). Q by Estrin's scheme (pairs,
 * then u^2, u^4, u^8): a short dependency chain. */
static inline float half_erfc_pos(float z, float e) {
    const float t = 1.0f / (1.0f + 0.5f * z);
    const float u = (2.0f * t - 1.16666667f) * 1.2f;
    const float u2 = u * u, u4 = u2 * u2, u8 = u4 * u4;
    const float a0 = 5.720119476e-01f + 3.262223005e-01f * u;
    const float a1 = 1.020296812e-01f + 5.965755787e-03f * u;
    const float a2 = -6.152112968e-03f + -6.305407733e-04f * u;
    const float a3 = 5.880228709e-04f + 1.948948739e-05f * u;
    const float q = (a0 + a1 * u2) + (a2 + a3 * u2) * u4 + -5.460689135e-05f * u8;
    return 0.5f * t * e * q;
}

/* Phi(x) = P(N(0,1) <= x) = 0.5 * erfc(-x/sqrt(2)) and phi(x) = exp(-x^2/2) / sqrt(2 pi), from
 * one exp (returned by value: with pointer outputs GCC vectorised the fused dropout loop 4 lanes
 * wide instead of 16) */
typedef struct {
    float cdf, pdf;
} normal_cdf_pdf;

static inline normal_cdf_pdf std_normal_cdf_pdf(float x) {
    const float z = fabsf(x) * 0.70710678118654752f;
    const float e = sf_expf_fast(-(z * z));
    const float h = half_erfc_pos(z, e);
    return (normal_cdf_pdf){sf_selectf(x < 0.0f, h, 1.0f - h), 0.39894228040143268f * e};
}

static inline float std_normal_cdf(float x) { return std_normal_cdf_pdf(x).cdf; }

/* The elementwise loops are plain range functions compiled for baseline x86-64 and AVX2+FMA
 * (SF_MULTIVERSION, kernels/multiversion.h); the OpenMP loops call them. The v3 clone fuses the
 * GELU/exp polynomial chains into FMAs: they are latency-bound, and fusing halves their length. */
#define SF_ACT_CHUNK 16384L

SF_MULTIVERSION_512 static void gelu_fwd_range(float *y, const float *x, long n) {
#pragma omp simd
    for (long i = 0; i < n; i++) y[i] = x[i] * std_normal_cdf(x[i]);
}

SF_MULTIVERSION_512 static void gelu_bwd_range(float *dx, const float *dy, const float *x, long n) {
#pragma omp simd
    for (long i = 0; i < n; i++) {
        const float xi = x[i];
        const normal_cdf_pdf c = std_normal_cdf_pdf(xi);
        dx[i] = dy[i] * (c.cdf + xi * c.pdf);
    }
}

SF_MULTIVERSION_512 static void add_range(float *y, const float *a, const float *b, long n) {
#pragma omp simd
    for (long i = 0; i < n; i++) y[i] = a[i] + b[i];
}
SF_MULTIVERSION_512 static void relu_fwd_range(float *y, const float *x, long n) {
#pragma omp simd
    for (long i = 0; i < n; i++) y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}
SF_MULTIVERSION_512 static void relu_bwd_range(float *dx, const float *dy, const float *x, long n) {
#pragma omp simd
    for (long i = 0; i < n; i++) dx[i] = x[i] > 0.0f ? dy[i] : 0.0f;
}
SF_MULTIVERSION static void elu1_fwd_range(float *y, const float *x, long n) {
#pragma omp simd
    for (long i = 0; i < n; i++) {
        const float xi = x[i];
        const float e = sf_expf_fast(sf_selectf(xi > 0.0f, 0.0f, xi));
        y[i] = sf_selectf(xi > 0.0f, xi + 1.0f, e);
    }
}

SF_MULTIVERSION static void elu1_bwd_range(float *dx, const float *dy, const float *x, long n) {
#pragma omp simd
    for (long i = 0; i < n; i++) {
        const float xi = x[i];
        const float e = sf_expf_fast(sf_selectf(xi > 0.0f, 0.0f, xi));
        dx[i] = dy[i] * sf_selectf(xi > 0.0f, 1.0f, e);
    }
}

#define CHUNKED(call_lo_len)                                                                   \
    do {                                                                                       \
        const long nchunks = (n + SF_ACT_CHUNK - 1) / SF_ACT_CHUNK;                            \
        SF_PARALLEL_FOR_IF(n >= SF_ACT_PAR_MIN, for (long c = 0; c < nchunks; c++) {           \
            const long lo = c * SF_ACT_CHUNK;                                                  \
            const long len = n - lo < SF_ACT_CHUNK ? n - lo : SF_ACT_CHUNK;                    \
            call_lo_len;                                                                       \
        });                                                                                    \
    } while (0)

void sf_gelu_forward(float *y, const float *x, long n) {
    CHUNKED(gelu_fwd_range(y + lo, x + lo, len));
}

void sf_gelu_backward(float *dx, const float *dy, const float *x, long n) {
    CHUNKED(gelu_bwd_range(dx + lo, dy + lo, x + lo, len));
}

void sf_add(float *y, const float *a, const float *b, long n) {
    CHUNKED(add_range(y + lo, a + lo, b + lo, len));
}
void sf_relu_forward(float *y, const float *x, long n) {
    CHUNKED(relu_fwd_range(y + lo, x + lo, len));
}
void sf_relu_backward(float *dx, const float *dy, const float *x, long n) {
    CHUNKED(relu_bwd_range(dx + lo, dy + lo, x + lo, len));
}
void sf_elu1_forward(float *y, const float *x, long n) {
    CHUNKED(elu1_fwd_range(y + lo, x + lo, len));
}

void sf_elu1_backward(float *dx, const float *dy, const float *x, long n) {
    CHUNKED(elu1_bwd_range(dx + lo, dy + lo, x + lo, len));
}

void sf_elu1_forward_rows(float *y, int ldy, const float *x, int ldx, long rows, int cols) {
    SF_PARALLEL_FOR_IF(rows * cols >= SF_ACT_PAR_MIN,
        for (long r = 0; r < rows; r++) elu1_fwd_range(y + r * ldy, x + r * ldx, cols);
    );
}

void sf_elu1_backward_rows(float *dx, int lddx, const float *dy, int lddy, const float *x, int ldx,
                           long rows, int cols) {
    SF_PARALLEL_FOR_IF(rows * cols >= SF_ACT_PAR_MIN,
        for (long r = 0; r < rows; r++) elu1_bwd_range(dx + r * lddx, dy + r * lddy, x + r * ldx, cols);
    );
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

/* Dropout masks come from a counter-based hash of (per-call seed, element index) rather than a
 * sequential generator, so the loop vectorises, runs on all threads, and the mask does not depend
 * on the thread count. One round of the "lowbias32" integer mix (C. Wellons) per element: a
 * full-avalanche hash of (index + per-call seed), plenty for Bernoulli masks. */
static inline uint32_t mix32(uint32_t x) {
    x ^= x >> 16;
    x *= 0x7feb352dU;
    x ^= x >> 15;
    x *= 0x846ca68bU;
    x ^= x >> 16;
    return x;
}

/* Elements lo..lo+len-1 (the hash takes the global index). Multi-versioned like the activations:
 * the baseline x86-64 build has no 32-bit vector multiply (SSE4.1), so the hash ran scalar. Integer
 * hash and one float product per element: every clone gives the same bits. */
/* The loop of both dropout forwards, inlined into each (so each clone vectorises it); gelu: the
 * GELU of x is dropped instead of x. omp simd: mask (uint8_t) may alias anything as far as the
 * compiler knows, and y may be x (in place), so without it the loop ran scalar; every element is
 * independent. */
static inline __attribute__((always_inline)) void dropout_fwd_loop(float *y, uint8_t *mask,
                                                                   float *dgelu, const float *x,
                                                                   long lo, long len, uint32_t s0,
                                                                   uint32_t s1, uint32_t thresh,
                                                                   float keep_scale, const int gelu) {
    float *restrict yo = y + lo;
    const float *xo = x + lo;
    float *go = gelu ? dgelu + lo : NULL; /* may be x */
    uint8_t *restrict mo = mask + lo;
    const uint32_t base = (uint32_t)lo + s0;
    /* a 32-bit counter (len <= SF_ACT_CHUNK): with a long one GCC built the hash input in
     * 64-bit lanes and narrowed it, a fifth of the loop's instructions */
    const int n = (int)len;
#pragma omp simd
    for (int i = 0; i < n; i++) {
        const uint32_t u = mix32(((uint32_t)i + base) ^ s1) >> 8;
        const int keep = u >= thresh;
        mo[i] = (uint8_t)keep;
        const float xi = xo[i];
        float v = xi;
        if (gelu) {
            /* GELU and its derivative from one cdf: gelu_bwd_range's expression for gelu'(x) */
            const normal_cdf_pdf c = std_normal_cdf_pdf(xi);
            v = xi * c.cdf;
            go[i] = c.cdf + xi * c.pdf;
        }
        yo[i] = v * sf_selectf(keep, keep_scale, 0.0f);
    }
}

SF_MULTIVERSION_512 static void dropout_fwd_range(float *y, uint8_t *mask, const float *x, long lo,
                                              long len, uint32_t s0, uint32_t s1,
                                              uint32_t thresh, float keep_scale) {
    dropout_fwd_loop(y, mask, NULL, x, lo, len, s0, s1, thresh, keep_scale, 0);
}

SF_MULTIVERSION_512 static void dropout_bwd_range(float *dx, const float *dy, const uint8_t *mask,
                                              long len, float keep_scale) {
    for (long i = 0; i < len; i++) dx[i] = dy[i] * (keep_scale * (float)mask[i]);
}

void sf_dropout_forward(float *y, uint8_t *mask, const float *x, long n, float p, sf_rng *rng) {
    SF_ASSERT(n >= 0 && p >= 0.0f && p < 1.0f);
    if (p == 0.0f) {
        if (y != x) memmove(y, x, (size_t)n * sizeof(float));
        memset(mask, 1, (size_t)n);
        return;
    }
    const float keep_scale = 1.0f / (1.0f - p);
    const uint64_t seed = sf_rng_u64(rng);
    const uint32_t s0 = (uint32_t)seed, s1 = (uint32_t)(seed >> 32);
    const uint32_t thresh = (uint32_t)((double)p * 16777216.0); /* keep iff 24-bit u >= p */
    CHUNKED(dropout_fwd_range(y, mask, x, lo, len, s0, s1, thresh, keep_scale));
}

/* GELU then dropout in one pass over memory (the mlp's hidden layer while training): the same
 * operations in the same order as sf_gelu_forward followed by sf_dropout_forward, so the same
 * bits, with one read and one write of the [N, d_ff] tensor fewer. It also writes gelu'(x), which
 * the backward would otherwise recompute from x (a second cdf per element, the larger half of the
 * backward's arithmetic). */
SF_MULTIVERSION_512 static void gelu_dropout_fwd_range(float *y, uint8_t *mask, float *dgelu,
                                                   const float *x, long lo, long len, uint32_t s0,
                                                   uint32_t s1, uint32_t thresh, float keep_scale) {
    dropout_fwd_loop(y, mask, dgelu, x, lo, len, s0, s1, thresh, keep_scale, 1);
}

/* dx = dy * mask / (1 - p) * gelu'(x): sf_dropout_backward then sf_gelu_backward in one pass,
 * gelu'(x) as the forward saved it. */
SF_MULTIVERSION_512 static void gelu_dropout_bwd_range(float *dx, const float *dy,
                                                   const uint8_t *mask, const float *dgelu,
                                                   long len, float keep_scale) {
#pragma omp simd
    for (long i = 0; i < len; i++) {
        const float g = dy[i] * (keep_scale * (float)mask[i]);
        dx[i] = g * dgelu[i];
    }
}

void sf_gelu_dropout_forward(float *y, uint8_t *mask, float *dgelu, const float *x, long n, float p,
                             sf_rng *rng) {
    SF_ASSERT(n >= 0 && p > 0.0f && p < 1.0f);
    const float keep_scale = 1.0f / (1.0f - p);
    const uint64_t seed = sf_rng_u64(rng);
    const uint32_t s0 = (uint32_t)seed, s1 = (uint32_t)(seed >> 32);
    const uint32_t thresh = (uint32_t)((double)p * 16777216.0);
    CHUNKED(gelu_dropout_fwd_range(y, mask, dgelu, x, lo, len, s0, s1, thresh, keep_scale));
}

void sf_gelu_dropout_backward(float *dx, const float *dy, const uint8_t *mask, const float *dgelu,
                              long n, float p) {
    SF_ASSERT(n >= 0 && p > 0.0f && p < 1.0f);
    const float keep_scale = 1.0f / (1.0f - p);
    CHUNKED(gelu_dropout_bwd_range(dx + lo, dy + lo, mask + lo, dgelu + lo, len, keep_scale));
}

void sf_dropout_forward_ref(float *y, uint8_t *mask, const float *x, long n, float p, sf_rng *rng) {
    SF_ASSERT(n >= 0 && p >= 0.0f && p < 1.0f);
    if (p == 0.0f) {
        for (long i = 0; i < n; i++) y[i] = x[i], mask[i] = 1;
        return;
    }
    const uint64_t seed = sf_rng_u64(rng);
    const uint32_t s0 = (uint32_t)seed, s1 = (uint32_t)(seed >> 32);
    const uint32_t thresh = (uint32_t)((double)p * 16777216.0);
    const float keep_scale = 1.0f / (1.0f - p);
    for (long i = 0; i < n; i++) {
        const uint32_t u = mix32(((uint32_t)i + s0) ^ s1) >> 8;
        mask[i] = (uint8_t)(u >= thresh);
        y[i] = x[i] * (keep_scale * (float)mask[i]);
    }
}

void sf_dropout_backward(float *dx, const float *dy, const uint8_t *mask, long n, float p) {
    SF_ASSERT(n >= 0 && p >= 0.0f && p < 1.0f);
    const float keep_scale = 1.0f / (1.0f - p);
    CHUNKED(dropout_bwd_range(dx + lo, dy + lo, mask + lo, len, keep_scale));
}
