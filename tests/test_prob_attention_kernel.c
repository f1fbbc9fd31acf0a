/* ProbSparse attention: the fast kernels against the plain per-query double references (same
 * selection of active queries, outputs, gradients), causal and not, fused q|k|v layout, several
 * (L, factor) with real sparsity (u < L) and without (u = L); the reference backward against
 * central finite differences of the reference forward with the selection held fixed (the
 * selection and the key sample are constants for the gradient). The seed is printed. */
#include <math.h>
#include <string.h>

#include "core/rng.h"
#include "kernels/prob_attention.h"
#include "test_util.h"

static sf_rng rng;

/* sum(g * o) over the head columns of rows of stride ldo */
static double weighted(const float *o, const float *g, long rows, int ldo, int D) {
    double s = 0;
    for (long r = 0; r < rows; r++)
        for (int c = 0; c < D; c++) s += (double)o[r * ldo + c] * g[r * ldo + c];
    return s;
}

static double cmp_cols(const float *a, const float *b, long rows, int ld, int off, int D) {
    double md = 0, mb = 1e-6;
    for (long r = 0; r < rows; r++)
        for (int c = 0; c < D; c++) {
            double d = fabs((double)a[r * ld + off + c] - b[r * ld + off + c]);
            if (d > md || d != d) md = d;
            if (fabs(b[r * ld + off + c]) > mb) mb = fabs(b[r * ld + off + c]);
        }
    return md / mb;
}

static void run_case(int B, int L, int H, int Dh, int factor, int causal) {
    int D = H * Dh, ld = 3 * D, U = sf_prob_attention_top(L, factor), u = U;
    long rows = (long)B * L;
    float *x = malloc(sizeof(float) * rows * ld), *g = malloc(sizeof(float) * rows * D);
    sf_rng_fill_normal(&rng, x, rows * ld, 0, 1);
    sf_rng_fill_normal(&rng, g, rows * D, 0, 1);
    const float *q = x, *k = x + D, *v = x + 2 * D;
    int *sample = malloc(sizeof(int) * L * U), *rank = malloc(sizeof(int) * B * H * L);
    int *rank2 = malloc(sizeof(int) * B * H * L);
    sf_prob_attention_sample(sample, L, U, sf_rng_u64(&rng));
    float *o = malloc(sizeof(float) * rows * D), *o2 = malloc(sizeof(float) * rows * D);
    float *m = malloc(sizeof(float) * B * H * L), *p = malloc(sizeof(float) * B * H * u * L);
    float scale = 1.0f / sqrtf((float)Dh);
    sf_prob_attention_forward(o, D, m, rank, p, q, k, v, ld, sample, U, u, B, L, H, Dh, scale,
                              causal);
    sf_prob_attention_forward_ref(o2, D, rank2, NULL, q, k, v, ld, sample, U, u, B, L, H, Dh, scale,
                                  causal);
    CHECK_MSG(memcmp(rank, rank2, sizeof(int) * B * H * L) == 0,
              "L %d causal %d: selection differs", L, causal);
    int active = 0;
    for (long i = 0; i < (long)B * H * L; i++) active += rank[i] >= 0;
    CHECK(active == B * H * u);
    double e_fwd = cmp_cols(o, o2, rows, D, 0, D);
    float *d1 = malloc(sizeof(float) * rows * ld), *d2 = malloc(sizeof(float) * rows * ld);
    float *work = malloc(sizeof(float) * B * H * u * L);
    sf_prob_attention_backward(d1, d1 + D, d1 + 2 * D, work, g, D, rank, p, q, k, v, ld, u, B, L, H,
                               Dh, scale, causal);
    free(work);
    sf_prob_attention_backward_ref(d2, d2 + D, d2 + 2 * D, g, D, rank, q, k, v, ld, B, L, H, Dh,
                                   scale, causal);
    double e_bwd = 0;
    for (int part = 0; part < 3; part++)
        e_bwd = fmax(e_bwd, cmp_cols(d1, d2, rows, ld, part * D, D));
    /* finite differences of the reference with the selection fixed */
    double e_fd = 0, gmax = 1e-6;
    for (long i = 0; i < rows * ld; i++) gmax = fmax(gmax, fabs(d2[i]));
    for (int t = 0; t < 40; t++) {
        long i = (long)sf_rng_below(&rng, (uint32_t)(rows * ld));
        float keep = x[i], h = 1e-2f;
        x[i] = keep + h;
        sf_prob_attention_forward_ref(o2, D, NULL, rank, q, k, v, ld, sample, U, u, B, L, H, Dh,
                                      scale, causal);
        double fp = weighted(o2, g, rows, D, D);
        x[i] = keep - h;
        sf_prob_attention_forward_ref(o2, D, NULL, rank, q, k, v, ld, sample, U, u, B, L, H, Dh,
                                      scale, causal);
        double fm = weighted(o2, g, rows, D, D);
        x[i] = keep;
        e_fd = fmax(e_fd, fabs((fp - fm) / (2 * h) - d2[i]) / gmax);
    }
    printf("B %d L %3d H %d Dh %2d factor %d causal %d: u %3d  fwd %.2e  bwd %.2e  fd %.2e\n", B, L,
           H, Dh, factor, causal, u, e_fwd, e_bwd, e_fd);
    CHECK_MSG(e_fwd <= 1e-5, "forward rel err %.3g", e_fwd);
    CHECK_MSG(e_bwd <= 2e-5, "backward rel err %.3g", e_bwd);
    CHECK_MSG(e_fd <= 2e-3, "finite differences rel err %.3g", e_fd);
    free(x), free(g), free(sample), free(rank), free(rank2), free(o), free(o2), free(m), free(p);
    free(d1), free(d2);
}

int main(void) {
    sf_rng_seed(&rng, test_seed());
    CHECK(sf_prob_attention_top(96, 5) == 25 && sf_prob_attention_top(48, 5) == 20);
    CHECK(sf_prob_attention_top(24, 1) == 4 && sf_prob_attention_top(8, 5) == 8);
    for (int causal = 0; causal <= 1; causal++) {
        run_case(2, 24, 2, 4, 1, causal);    /* u = 4 of 24 */
        run_case(2, 20, 3, 5, 2, causal);    /* u = 6 of 20 */
        run_case(1, 8, 2, 3, 5, causal);     /* u = L: dense */
        run_case(3, 96, 2, 8, 5, causal);    /* Informer's encoder at seq_len 96 */
        run_case(1, 1, 1, 4, 5, causal);     /* one token */
        run_case(2, 100, 2, 13, 10, causal); /* u = 50: two chunks of active queries; Dh 13 */
    }
    return test_finish();
}
