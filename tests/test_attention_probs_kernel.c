/* Softmax attention with materialised weights and dropout on them (kernels/attention_probs.h):
 * the fast kernels (P, Pd = dropout(P), o = Pd v, backward with the keep mask) against their
 * double references at 1e-5 relative (o, P, dq, dk, dv, dbias; causal and not; padded; with and
 * without a relative bias; p = 0 and p = 0.3); with p = 0 and no bias, against the tiled kernel
 * (kernels/attention.h), which must give the same o and gradients; the reference backward against
 * central differences of the reference forward under a fixed mask. The seed is printed. */
#include <math.h>
#include <string.h>

#include "core/rng.h"
#include "kernels/activations.h"
#include "kernels/attention.h"
#include "kernels/attention_probs.h"
#include "test_util.h"

static sf_rng rng;
static double worst_fwd, worst_bwd, worst_tiled, worst_fd;

static float *randn(long n, float s) { return test_randn(&rng, n, s); }

static float *alloc_f(long n) { return malloc(sizeof(float) * (size_t)(n > 0 ? n : 1)); }

static double loss_ref(float *o, const float *dout, const uint8_t *mask, float p, const float *qkv,
                       int B, int T, int H, int Dh, int causal, const int *lens, const float *bias,
                       int W, int center) {
    const int D = H * Dh;
    sf_attention_probs_forward_ref(o, D, NULL, mask, p, qkv, qkv + D, qkv + 2 * D, 3 * D, B, T, H, Dh,
                                   1.0f / sqrtf((float)Dh), causal, lens, bias, W, center);
    double l = 0;
    for (long j = 0; j < (long)B * T * D; j++) l += (double)o[j] * dout[j];
    return l;
}

static void check_case(int B, int T, int H, int Dh, int causal, int padded, int with_bias, float p) {
    const int D = H * Dh, ld = 3 * D, W = 2 * T - 1, center = T - 1;
    const long N = (long)B * T, NP = (long)B * H * T * T;
    int *lens = NULL;
    if (padded) {
        lens = malloc(sizeof(int) * (size_t)B);
        for (int b = 0; b < B; b++) lens[b] = b == 0 ? T : 1 + (int)sf_rng_below(&rng, (uint32_t)T);
    }
    float *qkv = randn(N * ld, 1.0f), *dout = randn(N * D, 1.0f);
    float *bias = with_bias ? randn((long)H * W, 1.0f) : NULL;
    const float *q = qkv, *k = qkv + D, *v = qkv + 2 * D;
    const float scale = 1.0f / sqrtf((float)Dh);
    float *P = alloc_f(NP), *Pd = alloc_f(NP), *P_ref = alloc_f(NP);
    uint8_t *mask = malloc((size_t)NP + 1);
    float *o = alloc_f(N * D), *o_ref = alloc_f(N * D);
    float *g = alloc_f(N * ld), *g_ref = alloc_f(N * ld);
    float *db = calloc((size_t)H * W, sizeof(float)), *db_ref = calloc((size_t)H * W, sizeof(float));
    /* fast: P, the dropout on it (the layer's order), o */
    sf_attention_probs_forward(P, q, k, ld, B, T, H, Dh, scale, causal, lens, bias, W, center);
    sf_dropout_forward(Pd, mask, P, NP, p, &rng);
    sf_attention_probs_apply(o, D, Pd, v, ld, B, T, H, Dh, lens);
    const uint8_t *m = p > 0 ? mask : NULL;
    sf_attention_probs_backward(g, g + D, g + 2 * D, with_bias ? db : NULL, dout, D, P, m, p, q, k, v,
                                ld, B, T, H, Dh, scale, causal, lens, W, center);
    sf_attention_probs_forward_ref(o_ref, D, P_ref, m, p, q, k, v, ld, B, T, H, Dh, scale, causal,
                                   lens, bias, W, center);
    sf_attention_probs_backward_ref(g_ref, g_ref + D, g_ref + 2 * D, with_bias ? db_ref : NULL, dout,
                                    D, m, p, q, k, v, ld, B, T, H, Dh, scale, causal, lens, bias, W,
                                    center);
    double eo = max_rel_err(o, o_ref, N * D, 1e-6), ep = max_rel_err(P, P_ref, NP, 1e-6);
    double eg = max_rel_err(g, g_ref, N * ld, 1e-6);
    /* dbias sums dS = P (dP - D), which cancels to ~0 where a query sees one key (T = 1):
     * judge it against the size of the gradients it is made of, not against 0 */
    double gscale = 1e-6;
    for (long e = 0; e < N * ld; e++) gscale = fmax(gscale, fabs(g_ref[e]));
    double eb = with_bias ? max_rel_err(db, db_ref, (long)H * W, gscale) : 0;
    worst_fwd = fmax(worst_fwd, fmax(eo, ep));
    worst_bwd = fmax(worst_bwd, fmax(eg, eb));
    CHECK_MSG(eo < 1e-5 && ep < 1e-5 && eg < 1e-5 && eb < 1e-5,
              "B=%d T=%d H=%d Dh=%d causal=%d padded=%d bias=%d p=%g: o %.3g P %.3g grads %.3g dbias %.3g",
              B, T, H, Dh, causal, padded, with_bias, p, eo, ep, eg, eb);
    if (p > 0) { /* the mask really dropped something, and only inside the kept rows' keys */
        long dropped = 0;
        for (long e = 0; e < NP; e++) dropped += P[e] != 0 && !mask[e];
        CHECK_MSG(NP < 50 || dropped > 0, "p=%g dropped no attention weight of %ld", p, NP);
    }
    /* no dropout, no bias: the tiled kernel computes the same attention */
    if (p == 0 && !with_bias) {
        float *o_t = alloc_f(N * D), *lse = alloc_f(N * H), *g_t = alloc_f(N * ld);
        sf_attention_forward(o_t, D, lse, q, k, v, ld, B, T, H, Dh, scale, causal, lens);
        sf_attention_backward(g_t, g_t + D, g_t + 2 * D, dout, D, o_t, lse, q, k, v, ld, B, T, H, Dh,
                              scale, causal, lens);
        double e1 = max_rel_err(o, o_t, N * D, 1e-6), e2 = max_rel_err(g, g_t, N * ld, 1e-6);
        worst_tiled = fmax(worst_tiled, fmax(e1, e2));
        CHECK_MSG(e1 < 1e-5 && e2 < 1e-5, "vs tiled kernel: o %.3g grads %.3g", e1, e2);
        free(o_t), free(lse), free(g_t);
    }
    /* reference backward vs central differences of the reference forward (mask fixed) */
    for (int trial = 0; trial < 6 && !padded && T <= 16; trial++) {
        int on_bias = with_bias && trial % 2;
        long i = on_bias ? (long)sf_rng_below(&rng, (uint32_t)(H * W))
                         : (long)sf_rng_below(&rng, (uint32_t)(N * ld));
        float *x = on_bias ? bias : qkv, keep = x[i];
        const float h = 1e-2f;
        float *o_t = alloc_f(N * D);
        x[i] = keep + h;
        double lp = loss_ref(o_t, dout, m, p, qkv, B, T, H, Dh, causal, lens, bias, W, center);
        x[i] = keep - h;
        double lm = loss_ref(o_t, dout, m, p, qkv, B, T, H, Dh, causal, lens, bias, W, center);
        x[i] = keep;
        free(o_t);
        double fd = (lp - lm) / (2 * h), an = on_bias ? db_ref[i] : g_ref[i];
        double err = fabs(fd - an) / (fabs(fd) + fabs(an) + 1e-2);
        worst_fd = fmax(worst_fd, err);
        CHECK_MSG(err < 1e-2, "FD %s[%ld] p=%g: analytic %.6g fd %.6g", on_bias ? "bias" : "qkv", i, p,
                  an, fd);
    }
    free(qkv), free(dout), free(bias), free(P), free(Pd), free(P_ref), free(mask), free(o);
    free(o_ref), free(g), free(g_ref), free(db), free(db_ref), free(lens);
}

int main(void) {
    sf_rng_seed(&rng, test_seed());
    const float ps[2] = {0.0f, 0.3f};
    for (int pi = 0; pi < 2; pi++)
        for (int causal = 0; causal < 2; causal++)
            for (int padded = 0; padded < 2; padded++)
                for (int with_bias = 0; with_bias < 2; with_bias++) {
                    check_case(1, 1, 1, 1, causal, padded, with_bias, ps[pi]);
                    check_case(2, 7, 2, 4, causal, padded, with_bias, ps[pi]);
                    check_case(3, 11, 8, 16, causal, padded, with_bias, ps[pi]); /* iTransformer-like */
                    check_case(2, 130, 4, 8, causal, padded, with_bias, ps[pi]); /* parallel */
                }
    printf("fast vs reference: forward %.2e, backward %.2e; p=0 vs tiled kernel %.2e; reference vs FD %.2e\n",
           worst_fwd, worst_bwd, worst_tiled, worst_fd);
    printf("%d passed, %d failed\n", t_passed, t_failed);
    return t_failed != 0;
}
