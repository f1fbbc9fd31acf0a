/* Fused feed-forward kernel (kernels/ffn.c) against its double-precision reference (the plain
 * composition fc1 -> GELU/ReLU -> dropout -> fc2 and its gradients): outputs and all gradients
 * within float32 accuracy, over shapes that exercise one block, many blocks, a ragged last block,
 * one and several weight-gradient groups, GELU and ReLU, with and without dropout; the gradients
 * accumulate (+=) onto what the buffers held; the same bits at 1 and 2 threads; the dropout mask
 * is the one sf_dropout_forward_ref draws. The seed is printed. */
#include <omp.h>
#include <string.h>

#include "kernels/activations.h"
#include "kernels/ffn.h"
#include "test_util.h"

static sf_rng rng;
static double worst_y, worst_g;

static float *randn(long n, float s) { return test_randn(&rng, n, s); }
static float *copy(const float *a, long n) {
    float *b = malloc(sizeof(float) * (size_t)(n > 0 ? n : 1));
    memcpy(b, a, sizeof(float) * (size_t)n);
    return b;
}

static void check_case(long N, int d, int F, int relu, float p, int rows) {
    const long nd = N * d, nw = (long)d * F;
    float *x = randn(nd, 1.0f), *dy = randn(nd, 1.0f);
    float *w1 = randn(nw, 0.5f), *b1 = randn(F, 0.3f), *w2 = randn(nw, 0.3f), *b2 = randn(d, 0.1f);
    const sf_ffn f = {d, F, w1, b1, w2, b2, relu, p, sf_rng_u64(&rng), rows};
    float *y = malloc(sizeof(float) * nd), *y_ref = malloc(sizeof(float) * nd);
    float *dx = malloc(sizeof(float) * nd), *dx_ref = malloc(sizeof(float) * nd);
    /* gradient buffers start non-zero: the kernel adds to them */
    float *g0 = randn(2 * nw + F + d, 0.1f);
    float *g = copy(g0, 2 * nw + F + d), *g_ref = copy(g0, 2 * nw + F + d);
    sf_ffn_forward(&f, y, x, N);
    sf_ffn_forward_ref(&f, y_ref, x, N);
    sf_ffn_backward(&f, dx, g, g + nw, g + nw + F, g + 2 * nw + F, dy, x, N);
    sf_ffn_backward_ref(&f, dx_ref, g_ref, g_ref + nw, g_ref + nw + F, g_ref + 2 * nw + F, dy, x,
                        N);
    const double ey = max_rel_err(y, y_ref, nd, 1e-6);
    const double ex = max_rel_err(dx, dx_ref, nd, 1e-6);
    const double ew1 = max_rel_err(g, g_ref, nw, 1e-6);
    const double eb1 = max_rel_err(g + nw, g_ref + nw, F, 1e-6);
    const double ew2 = max_rel_err(g + nw + F, g_ref + nw + F, nw, 1e-6);
    const double eb2 = max_rel_err(g + 2 * nw + F, g_ref + 2 * nw + F, d, 1e-6);
    double eg = ex;
    if (ew1 > eg) eg = ew1;
    if (eb1 > eg) eg = eb1;
    if (ew2 > eg) eg = ew2;
    if (eb2 > eg) eg = eb2;
    if (ey > worst_y) worst_y = ey;
    if (eg > worst_g) worst_g = eg;
    CHECK_MSG(ey <= 1e-5 && eg <= 1e-5,
              "N %ld d %d F %d %s p %.2f rows %d: y %.2e dx %.2e dW1 %.2e db1 %.2e dW2 %.2e db2 %.2e",
              N, d, F, relu ? "relu" : "gelu", p, rows, ey, ex, ew1, eb1, ew2, eb2);

    /* the same bits at one and two threads (rows per block and the gradient groups depend on
     * N and F only) */
    float *y1 = malloc(sizeof(float) * nd), *dx1 = malloc(sizeof(float) * nd);
    float *g1 = copy(g0, 2 * nw + F + d);
    omp_set_num_threads(1);
    sf_ffn_forward(&f, y1, x, N);
    sf_ffn_backward(&f, dx1, g1, g1 + nw, g1 + nw + F, g1 + 2 * nw + F, dy, x, N);
    omp_set_num_threads(2);
    CHECK_MSG(memcmp(y1, y, sizeof(float) * nd) == 0 && memcmp(dx1, dx, sizeof(float) * nd) == 0 &&
                  memcmp(g1, g, sizeof(float) * (size_t)(2 * nw + F + d)) == 0,
              "N %ld d %d F %d: 1 vs 2 threads differ", N, d, F);
    free(x), free(dy), free(w1), free(b1), free(w2), free(b2), free(y), free(y_ref), free(dx);
    free(dx_ref), free(g0), free(g), free(g_ref), free(y1), free(dx1), free(g1);
}

int main(void) {
    sf_rng_seed(&rng, test_seed());
    omp_set_num_threads(2);
    /* N, d, F, relu, p, rows per block (0: the default) */
    check_case(1, 3, 5, 0, 0.0f, 0);
    check_case(37, 4, 12, 0, 0.3f, 8);       /* several blocks, a ragged last one */
    check_case(300, 16, 128, 0, 0.3f, 0);    /* PatchTST's widths, one block */
    check_case(1000, 8, 24, 1, 0.5f, 16);    /* ReLU */
    check_case(5000, 16, 128, 0, 0.1f, 0);   /* parallel, two gradient groups */
    check_case(9001, 5, 40, 0, 0.0f, 64);    /* four groups, a ragged last block */
    check_case(4100, 16, 128, 1, 0.3f, 256);
    check_case(20, 1, 20000, 0, 0.3f, 0);    /* blocks longer than one elementwise chunk */
    printf("fused ffn vs reference: worst relative error y %.2e, gradients %.2e\n", worst_y,
           worst_g);

    /* the mask is sf_dropout_forward_ref's for the same rng state */
    const long n = 5000;
    float *x = randn(n, 1.0f), *yd = malloc(sizeof(float) * n);
    uint8_t *mask = malloc((size_t)n);
    sf_rng r1 = rng, r2 = rng;
    sf_dropout_forward_ref(yd, mask, x, n, 0.3f, &r1);
    const uint64_t seed = sf_rng_u64(&r2);
    long same = 0;
    for (long i = 0; i < n; i++) same += mask[i] == sf_dropout_keep(seed, i, 0.3f);
    CHECK_MSG(same == n, "%ld of %ld mask entries agree", same, n);
    free(x), free(yd), free(mask);

    printf("%d passed, %d failed\n", t_passed, t_failed);
    return t_failed ? 1 : 0;
}
