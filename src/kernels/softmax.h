/* Row softmax over the last dimension, plus the shared fast exp used by the kernels.
 *
 * x, y, dy, dx: [N, D] row-major (contiguous rows). Forward may run in place (y == x);
 * backward may run in place (dx == dy). Entries of -INFINITY in x are allowed (masking) as long
 * as each row has at least one finite entry; they give y == 0.
 * The fast versions use sf_expf_fast and OpenMP over rows; the *_ref versions use plain loops
 * with double exp/accumulation and exist for tests. */
#ifndef SF_KERNELS_SOFTMAX_H
#define SF_KERNELS_SOFTMAX_H

#include <math.h>
#include <stdint.h>

/* y[N,D] = softmax(x[N,D]) along D. */
void sf_softmax_forward(float *y, const float *x, int N, int D);
/* dx[N,D] = y * (dy - sum_j(dy_j * y_j)), given the forward output y. Overwrites dx. */
void sf_softmax_backward(float *dx, const float *dy, const float *y, int N, int D);

void sf_softmax_forward_ref(float *y, const float *x, int N, int D);
void sf_softmax_backward_ref(float *dx, const float *dy, const float *y, int N, int D);

/* exp(x) in float, branch-free so loops calling it vectorise (glibc's expf does not).
 * Cody-Waite range reduction x = k*ln2 + r, |r| <= ln2/2, then a degree-7 Taylor polynomial
 * (truncation error < 6e-9 relative); measured error is within 2-3 ulp of expf.
 * Underflows gradually to 0 (exp(-inf) == 0), overflows to +inf (exp(+inf) == inf), NaN stays
 * NaN. Results in the subnormal range (x < -87.3) carry only their reduced precision. */
/* Branch-free select, cond ? a : b. Plain ternaries whose arms are computed stop GCC from
 * vectorising under the default -ftrapping-math (it will not speculate the arm); selecting the
 * bits with an integer mask is always vectorisable. */
static inline float sf_selectf(int cond, float a, float b) {
    union {
        float f;
        uint32_t u;
    } ua, ub;
    ua.f = a;
    ub.f = b;
    const uint32_t m = (uint32_t)0 - (uint32_t)(cond != 0);
    ua.u = (ua.u & m) | (ub.u & ~m);
    return ua.f;
}

static inline float sf_expf_fast(float x) {
    union {
        float f;
        uint32_t u;
    } t, e1, e2;
    /* Clamp (NaN passes through): exp(-104) rounds to 0 and exp(89) overflows to inf, so the
     * clamped range still gives the right limits. Bit selects, not ternaries: with a ternary
     * GCC specialises the constant-clamped paths into branches and stops vectorising. */
    float xc = sf_selectf(-104.0f > x, -104.0f, x);
    xc = sf_selectf(xc > 89.0f, 89.0f, xc);
    /* k = round(x / ln2) via the 1.5*2^23 trick; the low mantissa bits of t then hold k. */
    t.f = xc * 1.44269504088896341f + 12582912.0f;
    const float kf = t.f - 12582912.0f;
    float r = xc - kf * 0.693359375f; /* ln2 high part: exact product for |k| < 2^15 */
    r = r - kf * -2.12194440e-4f;     /* ln2 low part */
    float p = 1.0f / 5040.0f;
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    /* 2^k as 2^k1 * 2^k2 with both halves normal (k in [-150, 129]): overflow to inf and
     * gradual underflow to 0 then happen in the final multiplications. */
    const int32_t k = (int32_t)(t.u - 0x4B400000u), k1 = k / 2, k2 = k - k1;
    e1.u = (uint32_t)(k1 + 127) << 23;
    e2.u = (uint32_t)(k2 + 127) << 23;
    return p * e1.f * e2.f;
}

/* exp(x) for x <= 0 only (a Gaussian's exp(-x^2/2), say): clamped below at -87 so one power of
 * two scales the result (below -87 it returns about 1.6e-38 instead of a subnormal or 0), no
 * upper clamp, and the same degree-7 polynomial in Estrin's form (a shorter dependency chain);
 * the scalar form of the attention kernels' v16_exp_nonpos (and, after an upper clamp at 88,
 * their exp_softmax_arg), about 40% fewer operations than sf_expf_fast. NaN passes through. */
static inline float sf_expf_nonpos(float x) {
    union {
        float f;
        uint32_t u;
    } t, s;
    const float xc = sf_selectf(-87.0f > x, -87.0f, x);
    t.f = xc * 1.44269504088896341f + 12582912.0f;
    const float kf = t.f - 12582912.0f;
    float r = xc - kf * 0.693359375f;
    r = r - kf * -2.12194440e-4f;
    const float r2 = r * r, r4 = r2 * r2;
    const float a = r + 1.0f, b = r * (1.0f / 6.0f) + 0.5f;
    const float c = r * (1.0f / 120.0f) + 1.0f / 24.0f, d = r * (1.0f / 5040.0f) + 1.0f / 720.0f;
    const float p = (a + r2 * b) + r4 * (c + r2 * d);
    s.u = (uint32_t)((int32_t)(t.u - 0x4B400000u) + 127) << 23;
    return p * s.f;
}

#endif
