/* Sliding-window attention: the banded kernels against the full T x T double references with a
 * band mask (forward o and the band p, backward dq, dk, dv; causal and not; windows from 1 to
 * beyond T; fused [B,T,3D] layout; head sizes 1..9), the reference backward against finite
 * differences, padding (random lengths, NaN in every padded input row, padded outputs exactly 0,
 * each batch item equal to the unpadded call on its valid part), and 1 vs 2 threads bitwise. The
 * seed is printed. */
#include <math.h>
#include <omp.h>
#include <string.h>

#include "core/rng.h"
#include "kernels/local_attention.h"
#include "test_util.h"

static sf_rng rng;
static double worst_fwd, worst_bwd;

static float *randn(long n) { return test_randn(&rng, n, 1.0f); }

/* q, k, v fused in one [B, T, 3*D] buffer; o, dout [B, T, D]. */
static void check_case(int B, int T, int H, int Dh, int w, int causal, int padded) {
    const int D = H * Dh, ld = 3 * D, W = sf_local_attention_width(w, causal);
    const long N = (long)B * T;
    int *lens = NULL;
    if (padded) {
        lens = malloc(sizeof(int) * (size_t)B);
        for (int b = 0; b < B; b++) lens[b] = b == 0 ? T : 1 + (int)sf_rng_below(&rng, (uint32_t)T);
    }
    float *qkv = randn(N * ld), *dout = randn(N * D);
    for (int b = 0; lens && b < B; b++) /* padding is never read: poison it */
        for (int t = lens[b]; t < T; t++) {
            for (int c = 0; c < ld; c++) qkv[((long)b * T + t) * ld + c] = NAN;
            for (int c = 0; c < D; c++) dout[((long)b * T + t) * D + c] = NAN;
        }
    const float *q = qkv, *k = qkv + D, *v = qkv + 2 * D;
    const float scale = 1.0f / sqrtf((float)Dh);
    float *o = malloc(sizeof(float) * (size_t)N * D), *o_ref = malloc(sizeof(float) * (size_t)N * D);
    float *p = malloc(sizeof(float) * (size_t)N * H * W), *p_ref = malloc(sizeof(float) * (size_t)N * H * W);
    float *g = malloc(sizeof(float) * (size_t)N * ld), *g_ref = malloc(sizeof(float) * (size_t)N * ld);
    sf_local_attention_forward(o, D, p, q, k, v, ld, B, T, H, Dh, scale, w, causal, lens);
    sf_local_attention_forward_ref(o_ref, D, p_ref, q, k, v, ld, B, T, H, Dh, scale, w, causal, lens);
    sf_local_attention_backward(g, g + D, g + 2 * D, dout, D, p, q, k, v, ld, B, T, H, Dh, scale, w,
                                causal, lens);
    sf_local_attention_backward_ref(g_ref, g_ref + D, g_ref + 2 * D, dout, D, NULL, q, k, v, ld, B,
                                    T, H, Dh, scale, w, causal, lens);
    double eo = max_rel_err(o, o_ref, N * D, 1e-6), ep = max_rel_err(p, p_ref, N * H * W, 1e-6);
    double eg = max_rel_err(g, g_ref, N * ld, 1e-6);
    if (eo > worst_fwd) worst_fwd = eo;
    if (ep > worst_fwd) worst_fwd = ep;
    if (eg > worst_bwd) worst_bwd = eg;
    CHECK_MSG(eo < 1e-5 && ep < 1e-5 && eg < 1e-5,
              "B=%d T=%d H=%d Dh=%d w=%d causal=%d padded=%d: o %.3g p %.3g grads %.3g", B, T, H,
              Dh, w, causal, padded, eo, ep, eg);
    if (lens) {
        /* padded rows exactly 0; each item equals the unpadded call on its valid part */
        int zero = 1, same = 1;
        for (int b = 0; b < B; b++) {
            const int n = lens[b];
            for (int t = n; t < T; t++)
                for (int c = 0; c < D; c++) zero &= o[((long)b * T + t) * D + c] == 0.0f;
            for (int t = n; t < T; t++)
                for (int c = 0; c < ld; c++) zero &= g[((long)b * T + t) * ld + c] == 0.0f;
            float *o1 = malloc(sizeof(float) * (size_t)n * D), *p1 = malloc(sizeof(float) * (size_t)n * H * W);
            float *g1 = malloc(sizeof(float) * (size_t)n * ld);
            const float *qb = qkv + (long)b * T * ld;
            sf_local_attention_forward(o1, D, p1, qb, qb + D, qb + 2 * D, ld, 1, n, H, Dh, scale, w,
                                       causal, NULL);
            sf_local_attention_backward(g1, g1 + D, g1 + 2 * D, dout + (long)b * T * D, D, p1, qb,
                                        qb + D, qb + 2 * D, ld, 1, n, H, Dh, scale, w, causal, NULL);
            same &= memcmp(o1, o + (long)b * T * D, sizeof(float) * (size_t)n * D) == 0;
            same &= memcmp(g1, g + (long)b * T * ld, sizeof(float) * (size_t)n * ld) == 0;
            free(o1), free(p1), free(g1);
        }
        CHECK_MSG(zero && same, "padded case B=%d T=%d w=%d causal=%d: zero %d same %d", B, T, w,
                  causal, zero, same);
    }
    free(qkv), free(dout), free(o), free(o_ref), free(p), free(p_ref), free(g), free(g_ref);
    free(lens);
}

/* The reference backward against central differences of sum(dout * o) (double references). */
static void check_fd(int causal) {
    const int B = 2, T = 6, H = 2, Dh = 3, w = 2, D = H * Dh, ld = 3 * D;
    const long N = (long)B * T;
    const int lens[2] = {6, 4};
    float *qkv = randn(N * ld), *dout = randn(N * D), *o = malloc(sizeof(float) * (size_t)N * D);
    float *g = malloc(sizeof(float) * (size_t)N * ld);
    const float scale = 0.7f;
    sf_local_attention_backward_ref(g, g + D, g + 2 * D, dout, D, NULL, qkv, qkv + D, qkv + 2 * D,
                                    ld, B, T, H, Dh, scale, w, causal, lens);
    double worst = 0;
    for (long i = 0; i < N * ld; i++) {
        const int b = (int)(i / ((long)T * ld)), t = (int)(i / ld % T);
        if (t >= lens[b]) continue;
        float keep = qkv[i];
        double l[2];
        for (int s = 0; s < 2; s++) {
            qkv[i] = keep + (s ? -1e-2f : 1e-2f);
            sf_local_attention_forward_ref(o, D, NULL, qkv, qkv + D, qkv + 2 * D, ld, B, T, H, Dh,
                                           scale, w, causal, lens);
            l[s] = 0;
            for (long r = 0; r < N; r++)
                if (r % T < lens[r / T])
                    for (int c = 0; c < D; c++) l[s] += (double)dout[r * D + c] * o[r * D + c];
        }
        qkv[i] = keep;
        double fd = (l[0] - l[1]) / 2e-2, e = fabs(fd - g[i]) / (fabs(fd) + fabs(g[i]) + 1e-2);
        if (e > worst) worst = e;
    }
    printf("reference backward vs finite differences (causal %d): worst rel err %.2e\n", causal,
           worst);
    CHECK_MSG(worst < 2e-3, "finite differences: %.3g", worst);
    free(qkv), free(dout), free(o), free(g);
}

/* 1 vs 2 threads, bitwise, above the parallel threshold. */
static void check_threads(void) {
    const int B = 4, T = 96, H = 4, Dh = 16, w = 8, D = H * Dh, ld = 3 * D;
    const long N = (long)B * T;
    const int W = sf_local_attention_width(w, 0);
    CHECK((long)B * H * T * W * Dh >= SF_LOCAL_ATTENTION_PAR_MIN);
    float *qkv = randn(N * ld), *dout = randn(N * D);
    float *o[2], *p[2], *g[2];
    for (int r = 0; r < 2; r++) {
        o[r] = malloc(sizeof(float) * (size_t)N * D);
        p[r] = malloc(sizeof(float) * (size_t)N * H * W);
        g[r] = malloc(sizeof(float) * (size_t)N * ld);
        omp_set_num_threads(r + 1);
        sf_local_attention_forward(o[r], D, p[r], qkv, qkv + D, qkv + 2 * D, ld, B, T, H, Dh, 0.25f,
                                   w, 0, NULL);
        sf_local_attention_backward(g[r], g[r] + D, g[r] + 2 * D, dout, D, p[r], qkv, qkv + D,
                                    qkv + 2 * D, ld, B, T, H, Dh, 0.25f, w, 0, NULL);
    }
    int same = !memcmp(o[0], o[1], sizeof(float) * (size_t)N * D) &&
               !memcmp(g[0], g[1], sizeof(float) * (size_t)N * ld);
    printf("1 vs 2 threads: %s\n", same ? "identical" : "DIFFERENT");
    CHECK(same);
    for (int r = 0; r < 2; r++) free(o[r]), free(p[r]), free(g[r]);
    free(qkv), free(dout);
}

int main(void) {
    sf_rng_seed(&rng, test_seed());
    const int dhs[] = {1, 2, 4, 8, 9};
    const int windows[] = {1, 2, 3, 5, 40};
    for (int causal = 0; causal < 2; causal++)
        for (int a = 0; a < 5; a++)
            for (int c = 0; c < 5; c++) {
                check_case(2, 11, 2, dhs[a], windows[c], causal, 0);
                check_case(3, 17, 3, dhs[a], windows[c], causal, 1);
            }
    check_case(1, 1, 1, 4, 1, 0, 0);
    check_case(2, 64, 4, 16, 7, 1, 1);
    printf("fast vs reference: forward (o, p) worst %.2e, backward worst %.2e\n", worst_fwd,
           worst_bwd);
    check_fd(0);
    check_fd(1);
    check_threads();
    return test_finish();
}
