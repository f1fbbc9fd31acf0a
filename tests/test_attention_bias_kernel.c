/* Relative-bias softmax attention (kernels/attention_bias.h) and rotary positions
 * (kernels/rope.h): the biased kernels against their double references (o, lse, dq, dk, dv,
 * dbias; causal and not; padded; head sizes 1..9), the kernel with a zero bias against the
 * tiled kernel (kernels/attention.h), the reference backward against central
 * differences (including the bias), streaming step == causal forward, T5's bucket function at
 * hand-computed offsets, and RoPE: inverse o rotate = identity, and rotated q.k depends only on
 * the position difference. The seed is printed. */
#include <math.h>
#include <string.h>

#include "core/rng.h"
#include "kernels/attention.h"
#include "kernels/attention_bias.h"
#include "kernels/rope.h"
#include "test_util.h"

static sf_rng rng;
static double worst_fwd, worst_bwd, worst_fd, worst_step;

static float *randn(long n, float s) { return test_randn(&rng, n, s); }

static void check_case(int B, int T, int H, int Dh, int causal, int padded) {
    const int D = H * Dh, ld = 3 * D, W = 2 * T - 1, center = T - 1;
    const long N = (long)B * T;
    int *lens = NULL;
    if (padded) {
        lens = malloc(sizeof(int) * (size_t)B);
        for (int b = 0; b < B; b++) lens[b] = b == 0 ? T : 1 + (int)sf_rng_below(&rng, (uint32_t)T);
    }
    float *qkv = randn(N * ld, 1.0f), *dout = randn(N * D, 1.0f), *bias = randn((long)H * W, 1.0f);
    const float *q = qkv, *k = qkv + D, *v = qkv + 2 * D;
    const float scale = 1.0f / sqrtf((float)Dh);
    float *o = malloc(sizeof(float) * (size_t)(N * D)), *o_ref = malloc(sizeof(float) * (size_t)(N * D));
    float *lse = malloc(sizeof(float) * (size_t)(N * H)), *lse_ref = malloc(sizeof(float) * (size_t)(N * H));
    float *g = malloc(sizeof(float) * (size_t)(N * ld)), *g_ref = malloc(sizeof(float) * (size_t)(N * ld));
    float *db = calloc((size_t)H * W, sizeof(float)), *db_ref = calloc((size_t)H * W, sizeof(float));
    sf_attention_bias_forward(o, D, lse, q, k, v, ld, B, T, H, Dh, scale, causal, lens, bias, W, center);
    sf_attention_bias_forward_ref(o_ref, D, lse_ref, q, k, v, ld, B, T, H, Dh, scale, causal, lens,
                                  bias, W, center);
    sf_attention_bias_backward(g, g + D, g + 2 * D, db, dout, D, o, lse, q, k, v, ld, B, T, H, Dh,
                               scale, causal, lens, bias, W, center);
    sf_attention_bias_backward_ref(g_ref, g_ref + D, g_ref + 2 * D, db_ref, dout, D, q, k, v, ld, B,
                                   T, H, Dh, scale, causal, lens, bias, W, center);
    /* only head columns are defined in g: compare the whole fused rows (all are head columns) */
    double eo = max_rel_err(o, o_ref, N * D, 1e-6), el = max_rel_err(lse, lse_ref, N * H, 1e-6);
    double eg = max_rel_err(g, g_ref, N * ld, 1e-6), eb = max_rel_err(db, db_ref, (long)H * W, 1e-6);
    if (eo > worst_fwd) worst_fwd = eo;
    if (el > worst_fwd) worst_fwd = el;
    if (eg > worst_bwd) worst_bwd = eg;
    if (eb > worst_bwd) worst_bwd = eb;
    CHECK_MSG(eo < 1e-5 && el < 1e-5 && eg < 1e-5 && eb < 1e-5,
              "B=%d T=%d H=%d Dh=%d causal=%d padded=%d: o %.3g lse %.3g grads %.3g dbias %.3g", B, T,
              H, Dh, causal, padded, eo, el, eg, eb);
    /* zero bias: this kernel gives what the tiled kernel (another code path) gives */
    float *zero = calloc((size_t)H * W, sizeof(float)), *o_t = malloc(sizeof(float) * (size_t)(N * D));
    sf_attention_bias_forward(o_ref, D, lse_ref, q, k, v, ld, B, T, H, Dh, scale, causal, lens, zero,
                              W, center);
    sf_attention_forward(o_t, D, lse, q, k, v, ld, B, T, H, Dh, scale, causal, lens);
    double ez = max_rel_err(o_ref, o_t, N * D, 1e-6);
    CHECK_MSG(ez < 1e-5, "zero bias vs the tiled kernel: %.3g", ez);
    /* reference backward vs finite differences of the reference forward, loss = o . dout */
    for (int trial = 0; trial < 6 && !padded; trial++) {
        int on_bias = trial % 2;
        long i = on_bias ? (long)sf_rng_below(&rng, (uint32_t)(H * W)) : (long)sf_rng_below(&rng, (uint32_t)(N * ld));
        float *x = on_bias ? bias : qkv, keep = x[i];
        const float h = 1e-2f; /* smooth in x: O(h^2) error, less float rounding noise than 1e-3 */
        double l[2];
        for (int sgn = 0; sgn < 2; sgn++) {
            x[i] = keep + (sgn ? -h : h);
            sf_attention_bias_forward_ref(o_t, D, lse_ref, q, k, v, ld, B, T, H, Dh, scale, causal,
                                          lens, bias, W, center);
            l[sgn] = 0;
            for (long j = 0; j < N * D; j++) l[sgn] += (double)o_t[j] * dout[j];
        }
        x[i] = keep;
        double fd = (l[0] - l[1]) / (2 * h), an = on_bias ? db_ref[i] : g_ref[i];
        double err = fabs(fd - an) / (fabs(fd) + fabs(an) + 1e-2);
        if (err > worst_fd) worst_fd = err;
        CHECK_MSG(err < 1e-2, "FD %s[%ld]: analytic %.6g fd %.6g", on_bias ? "bias" : "qkv", i, an, fd);
    }
    /* step: token by token with a KV cache equals the causal forward */
    if (causal && !padded) {
        float *kc = malloc(sizeof(float) * (size_t)T * D), *vc = malloc(sizeof(float) * (size_t)T * D);
        float *os = malloc(sizeof(float) * (size_t)D);
        for (int b = 0; b < B; b++)
            for (int t = 0; t < T; t++) {
                memcpy(kc + (long)t * D, k + ((long)b * T + t) * ld, sizeof(float) * (size_t)D);
                memcpy(vc + (long)t * D, v + ((long)b * T + t) * ld, sizeof(float) * (size_t)D);
                sf_attention_bias_step(os, q + ((long)b * T + t) * ld, kc, vc, t + 1, H, Dh, scale,
                                       bias, W, center);
                double e = max_rel_err(os, o + ((long)b * T + t) * D, D, 1e-6);
                if (e > worst_step) worst_step = e;
            }
        CHECK_MSG(worst_step < 1e-5, "step vs forward %.3g", worst_step);
        free(kc), free(vc), free(os);
    }
    free(zero), free(o_t), free(qkv), free(dout), free(bias), free(o), free(o_ref), free(lse);
    free(lse_ref), free(g), free(g_ref), free(db), free(db_ref), free(lens);
}

static void check_buckets(void) {
    /* bidirectional, 32 buckets, max distance 128: 16 per direction, exact below 8 */
    CHECK(sf_t5_bucket(0, 1, 32, 128) == 0);
    CHECK(sf_t5_bucket(-1, 1, 32, 128) == 1);
    CHECK(sf_t5_bucket(1, 1, 32, 128) == 17);
    CHECK(sf_t5_bucket(-7, 1, 32, 128) == 7);
    CHECK(sf_t5_bucket(-8, 1, 32, 128) == 8);   /* 8 + floor(log(1)/log(16) * 8) */
    CHECK(sf_t5_bucket(-20, 1, 32, 128) == 10); /* 8 + floor(log(2.5)/log(16) * 8) = 8 + 2 */
    CHECK(sf_t5_bucket(-127, 1, 32, 128) == 15);
    CHECK(sf_t5_bucket(-1000, 1, 32, 128) == 15);
    CHECK(sf_t5_bucket(1000, 1, 32, 128) == 31);
    /* causal: the future in bucket 0, exact below 16 */
    CHECK(sf_t5_bucket(5, 0, 32, 128) == 0);
    CHECK(sf_t5_bucket(-15, 0, 32, 128) == 15);
    CHECK(sf_t5_bucket(-20, 0, 32, 128) == 17); /* 16 + floor(log(1.25)/log(8) * 16) = 16 + 1 */
    CHECK(sf_t5_bucket(-500, 0, 32, 128) == 31);
    /* monotone in distance, within range */
    int ok = 1;
    for (int r = 1; r < 300; r++) {
        ok &= sf_t5_bucket(-r, 1, 32, 128) >= sf_t5_bucket(-r + 1, 1, 32, 128);
        ok &= sf_t5_bucket(-r, 0, 32, 128) >= sf_t5_bucket(-r + 1, 0, 32, 128);
        ok &= sf_t5_bucket(r, 1, 32, 128) < 32 && sf_t5_bucket(r, 1, 32, 128) >= 16;
    }
    CHECK(ok);
}

static void check_rope(void) {
    const int B = 2, T = 9, H = 3, Dh = 8, ld = H * Dh + 5; /* extra columns stay untouched */
    long n = (long)B * T * ld;
    float *x = randn(n, 1.0f), *y = malloc(sizeof(float) * (size_t)n);
    memcpy(y, x, sizeof(float) * (size_t)n);
    sf_rope_rotate(y, ld, B, T, H, Dh, 3, 10000.0f, 0);
    int extra_same = 1;
    for (long r = 0; r < (long)B * T; r++)
        for (int c = H * Dh; c < ld; c++) extra_same &= y[r * ld + c] == x[r * ld + c];
    CHECK(extra_same);
    sf_rope_rotate(y, ld, B, T, H, Dh, 3, 10000.0f, 1);
    CHECK_MSG(max_rel_err(y, x, n, 1e-6) < 1e-6, "rope inverse: %.3g", max_rel_err(y, x, n, 1e-6));
    /* q at position m, k at n: the score depends on m - n only */
    float q[8], k[8], qa[8], ka[8], qb[8], kb[8];
    sf_rng_fill_normal(&rng, q, 8, 0, 1);
    sf_rng_fill_normal(&rng, k, 8, 0, 1);
    memcpy(qa, q, sizeof q), memcpy(ka, k, sizeof k), memcpy(qb, q, sizeof q), memcpy(kb, k, sizeof k);
    sf_rope_rotate(qa, 8, 1, 1, 1, 8, 7, 100.0f, 0);
    sf_rope_rotate(ka, 8, 1, 1, 1, 8, 4, 100.0f, 0);
    sf_rope_rotate(qb, 8, 1, 1, 1, 8, 1003, 100.0f, 0);
    sf_rope_rotate(kb, 8, 1, 1, 1, 8, 1000, 100.0f, 0);
    double sa = 0, sb = 0, s0 = 0;
    for (int i = 0; i < 8; i++) sa += qa[i] * ka[i], sb += qb[i] * kb[i], s0 += q[i] * k[i];
    CHECK_MSG(fabs(sa - sb) < 1e-4 * (1 + fabs(sa)), "rope scores at offsets 7-4 and 1003-1000: %.7g vs %.7g", sa, sb);
    CHECK_MSG(fabs(sa - s0) > 1e-3, "rotation by a 3-token offset should change the score");
    free(x), free(y);
}

int main(void) {
    sf_rng_seed(&rng, test_seed());
    check_buckets();
    check_rope();
    for (int causal = 0; causal < 2; causal++)
        for (int padded = 0; padded < 2; padded++) {
            check_case(1, 1, 1, 1, causal, padded);
            check_case(2, 7, 2, 4, causal, padded);
            check_case(3, 13, 3, 9, causal, padded);
            check_case(2, 40, 4, 8, causal, padded); /* above the parallel threshold */
        }
    printf("fast vs reference: forward %.2e, backward %.2e; reference vs FD %.2e; step vs forward %.2e\n",
           worst_fwd, worst_bwd, worst_fd, worst_step);
    printf("%d passed, %d failed\n", t_passed, t_failed);
    return t_failed != 0;
}
