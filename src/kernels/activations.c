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

/* erf(z) = z P(z^2) / Q(z^2), P and Q of degree 5, a rational fit made for this project
 * (Lawson-weighted least squares on Chebyshev nodes of [0, 3.92]; 1.6e-8 in exact arithmetic,
 * 4e-7 absolute in float, mostly the rounding of the two Horner chains). z is clamped to
 * [-3.92, 3.92]: beyond it erf is +-1 to float precision (1 - erf(3.92) = 2.8e-8). No exp: the
 * GELU forward costs about 2.5x less than with the erfc-and-exp form used before (one exp per
 * element served erfc and the pdf). NaN passes through. */
static inline float erf_clamped(float z) {
    float zc = sf_selectf(z > 3.92f, 3.92f, z);
    zc = sf_selectf(zc < -3.92f, -3.92f, zc);
    const float s = zc * zc;
    float p = 2.0346799899650936e-06f;
    p = p * s + 2.8745626556132137e-04f;
    p = p * s + 3.8677930986759880e-03f;
    p = p * s + 5.3058831638381161e-02f;
    p = p * s + 1.9275314787981965e-01f;
    p = p * s + 1.1283790229770196e+00f;
    float q = 3.8068846932803879e-05f;
    q = q * s + 1.1879640211640875e-03f;
    q = q * s + 1.5171248497060599e-02f;
    q = q * s + 1.1507991729586105e-01f;
    q = q * s + 5.0415470221808878e-01f;
    q = q * s + 1.0f;
    return zc * p / q;
}

/* Phi(x) = P(N(0,1) <= x) = 0.5 + 0.5 erf(x / sqrt(2)) and phi(x) = exp(-x^2/2) / sqrt(2 pi)
 * (returned by value: with pointer outputs GCC vectorised the fused dropout loop 4 lanes wide
 * instead of 16). Callers that use only the cdf lose the exp to dead-code elimination. */
typedef struct {
    float cdf, pdf;
} normal_cdf_pdf;

static inline normal_cdf_pdf std_normal_cdf_pdf(float x) {
    const float cdf = 0.5f + 0.5f * erf_clamped(x * 0.70710678118654752f);
    return (normal_cdf_pdf){cdf, 0.39894228040143268f * sf_expf_nonpos(-0.5f * x * x)};
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

/* The mask's 24-bit uniform for the element whose index plus the seed's low word is `counter`;
 * the element is kept iff it is >= p * 2^24. Every dropout path draws its masks from this. */
static inline uint32_t drop_u24(uint32_t counter, uint32_t s1) { return mix32(counter ^ s1) >> 8; }

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
        const uint32_t u = drop_u24((uint32_t)i + base, s1);
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
    const float keep_scale = 1.0f / (1.0f - p);
    for (long i = 0; i < n; i++) {
        mask[i] = (uint8_t)sf_dropout_keep(seed, i, p);
        y[i] = x[i] * (keep_scale * (float)mask[i]);
    }
}

void sf_dropout_backward(float *dx, const float *dy, const uint8_t *mask, long n, float p) {
    SF_ASSERT(n >= 0 && p >= 0.0f && p < 1.0f);
    const float keep_scale = 1.0f / (1.0f - p);
    CHUNKED(dropout_bwd_range(dx + lo, dy + lo, mask + lo, len, keep_scale));
}

/* The fused feed-forward network's elementwise pass over one block of its hidden layer
 * (kernels/ffn.c): h := act(h) * keep(i) / (1 - p), and g := act'(h) * keep(i) / (1 - p) when g
 * is not NULL, where i = idx0 + k is the element's index in the whole [N, d_ff] tensor, so the
 * masks are those sf_dropout_forward and sf_gelu_dropout_forward draw for the same seed. The GELU
 * and its derivative share one cdf (gelu_dropout_fwd_range's expressions). */
static inline __attribute__((always_inline)) void act_dropout_loop(float *restrict h,
                                                                   float *restrict g, int n,
                                                                   uint32_t base, uint32_t s1,
                                                                   uint32_t thresh, float keep_scale,
                                                                   const int relu, const int drop,
                                                                   const int grad) {
#pragma omp simd
    for (int i = 0; i < n; i++) {
        float scale = 1.0f;
        if (drop) {
            const uint32_t u = drop_u24((uint32_t)i + base, s1);
            scale = sf_selectf(u >= thresh, keep_scale, 0.0f);
        }
        const float xi = h[i];
        float v, dv;
        if (relu) {
            v = xi > 0.0f ? xi : 0.0f;
            dv = xi > 0.0f ? 1.0f : 0.0f;
        } else {
            const normal_cdf_pdf c = std_normal_cdf_pdf(xi);
            v = xi * c.cdf;
            dv = c.cdf + xi * c.pdf;
        }
        h[i] = v * scale;
        if (grad) g[i] = dv * scale;
    }
}

SF_MULTIVERSION_512 static void act_dropout_range(float *h, float *g, int n, uint32_t base,
                                                  uint32_t s1, uint32_t thresh, float keep_scale,
                                                  int relu, int drop) {
    /* each combination its own loop, so no lane tests a flag */
    if (relu) {
        if (drop) {
            if (g) act_dropout_loop(h, g, n, base, s1, thresh, keep_scale, 1, 1, 1);
            else act_dropout_loop(h, g, n, base, s1, thresh, keep_scale, 1, 1, 0);
        } else {
            if (g) act_dropout_loop(h, g, n, base, s1, thresh, keep_scale, 1, 0, 1);
            else act_dropout_loop(h, g, n, base, s1, thresh, keep_scale, 1, 0, 0);
        }
    } else {
        if (drop) {
            if (g) act_dropout_loop(h, g, n, base, s1, thresh, keep_scale, 0, 1, 1);
            else act_dropout_loop(h, g, n, base, s1, thresh, keep_scale, 0, 1, 0);
        } else {
            if (g) act_dropout_loop(h, g, n, base, s1, thresh, keep_scale, 0, 0, 1);
            else act_dropout_loop(h, g, n, base, s1, thresh, keep_scale, 0, 0, 0);
        }
    }
}

void sf_act_dropout_block(float *h, float *g, long n, long idx0, int relu, float p,
                          uint64_t seed) {
    SF_ASSERT(n >= 0 && p >= 0.0f && p < 1.0f);
    const uint32_t s0 = (uint32_t)seed, s1 = (uint32_t)(seed >> 32);
    const uint32_t thresh = (uint32_t)((double)p * 16777216.0);
    const float keep_scale = p > 0.0f ? 1.0f / (1.0f - p) : 1.0f;
    for (long lo = 0; lo < n; lo += SF_ACT_CHUNK) { /* int counters inside (see dropout_fwd_loop) */
        const long len = n - lo < SF_ACT_CHUNK ? n - lo : SF_ACT_CHUNK;
        act_dropout_range(h + lo, g ? g + lo : NULL, (int)len, (uint32_t)(idx0 + lo) + s0, s1,
                          thresh, keep_scale, relu, p > 0.0f);
    }
}

int sf_dropout_keep(uint64_t seed, long i, float p) {
    if (p == 0.0f) return 1;
    const uint32_t s0 = (uint32_t)seed, s1 = (uint32_t)(seed >> 32);
    const uint32_t thresh = (uint32_t)((double)p * 16777216.0);
    return drop_u24((uint32_t)i + s0, s1) >= thresh;
}
