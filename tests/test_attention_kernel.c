/* Softmax attention: the tiled online-softmax kernels against the T x T double references
 * (forward o and lse, backward dq, dk, dv; causal and not; fused [B,T,3D] and padded layouts;
 * T not a multiple of the tiles, T = 1, Dh from 1 to 256), the reference backward against finite
 * differences, and the KV-cache step against the causal forward. The seed is printed. Every
 * head size 1..8 (the row-lane small-head kernels) runs at several T, causal and not.
 * Padding (lens): fast vs reference with random lengths (1 and T included) and NaN in every
 * padded input row (which must never be read), padded output rows exactly 0, each batch item
 * equal bit for bit to the unpadded call on the sequence truncated to its length, and both
 * backward passes against finite differences with lens. Thread count: 1 vs 2 threads bitwise,
 * at sizes above the kernels' parallel threshold. */
#include <math.h>
#include <omp.h>
#include <string.h>

#include "core/rng.h"
#include "kernels/attention.h"
#include "kernels/multiversion.h"
#include "test_util.h"

static sf_rng rng;
static double worst_fwd, worst_bwd;

#define SENTINEL 12345.0f

static float *alloc_fill(long n, float val) {
    float *p = malloc(sizeof(float) * (size_t)(n > 0 ? n : 1));
    for (long i = 0; i < n; i++) p[i] = val;
    return p;
}

/* Max relative error over columns [off, off+width) of rows with stride ld: max |a-b| over
 * max(max |b|, floor). */
static double cmp_rows(const float *a, const float *b, long rows, int ld, int off, int width,
                       double floor) {
    double md = 0, mb = floor;
    for (long r = 0; r < rows; r++)
        for (int c = 0; c < width; c++) {
            double x = a[r * ld + off + c], y = b[r * ld + off + c];
            double d = fabs(x - y);
            if (d > md || d != d) md = d;
            if (fabs(y) > mb) mb = fabs(y);
        }
    return md / mb;
}

static double maxabs_rows(const float *b, long rows, int ld, int off, int width) {
    double mb = 0;
    for (long r = 0; r < rows; r++)
        for (int c = 0; c < width; c++) mb = fmax(mb, fabs(b[r * ld + off + c]));
    return mb;
}

static int pad_untouched(const float *a, long rows, int ld, int used_lo, int used_hi) {
    for (long r = 0; r < rows; r++)
        for (int c = 0; c < ld; c++)
            if ((c < used_lo || c >= used_hi) && a[r * ld + c] != SENTINEL) return 0;
    return 1;
}

/* Whether every column outside [used_lo, used_hi) still holds SENTINEL. */
/* fused: q, k, v (and dq, dk, dv) inside one [B, T, ld] buffer with ld = 3*H*Dh + pad;
 * otherwise three separate buffers with ld = H*Dh + pad. */
static void run_case(int B, int T, int H, int Dh, int causal, int fused, int pad, int padO) {
    const int D = H * Dh;
    const int ld = fused ? 3 * D + pad : D + pad, ldo = D + padO;
    const long rows = (long)B * T, n = rows * ld, no = rows * ldo;
    const float scale = 1.0f / sqrtf((float)Dh);
    float *buf[3], *gbuf[3], *gref[3];
    const int nbuf = fused ? 1 : 3;
    for (int i = 0; i < nbuf; i++) {
        buf[i] = alloc_fill(n, 0.0f);
        sf_rng_fill_normal(&rng, buf[i], n, 0.0f, 1.5f);
        gbuf[i] = alloc_fill(n, SENTINEL);
        gref[i] = alloc_fill(n, SENTINEL);
    }
    const float *q = buf[0], *k = fused ? buf[0] + D : buf[1], *v = fused ? buf[0] + 2 * D : buf[2];
    float *dq = gbuf[0], *dk = fused ? gbuf[0] + D : gbuf[1], *dv = fused ? gbuf[0] + 2 * D : gbuf[2];
    float *dq2 = gref[0], *dk2 = fused ? gref[0] + D : gref[1], *dv2 = fused ? gref[0] + 2 * D : gref[2];
    float *o = alloc_fill(no, SENTINEL), *o2 = alloc_fill(no, SENTINEL), *dout = alloc_fill(no, 0.0f);
    sf_rng_fill_normal(&rng, dout, no, 0.0f, 1.0f);
    float *lse = alloc_fill((long)B * H * T, 0.0f), *lse2 = alloc_fill((long)B * H * T, 0.0f);

    sf_attention_forward(o, ldo, lse, q, k, v, ld, B, T, H, Dh, scale, causal, NULL);
    sf_attention_forward_ref(o2, ldo, lse2, q, k, v, ld, B, T, H, Dh, scale, causal, NULL);
    sf_attention_backward(dq, dk, dv, dout, ldo, o, lse, q, k, v, ld, B, T, H, Dh, scale, causal, NULL);
    sf_attention_backward_ref(dq2, dk2, dv2, dout, ldo, NULL, NULL, q, k, v, ld, B, T, H, Dh, scale, causal, NULL);

    double eo = cmp_rows(o, o2, rows, ldo, 0, D, 1e-6);
    double el = max_rel_err(lse, lse2, (long)B * H * T, 1e-6);
    double eq, ek, ev;
    /* Gradients are compared relative to the largest of the three reference gradients: where an
     * exact gradient vanishes (T == 1: dq = dk = 0 up to the rounding of dout.v - dout.o) its
     * own scale is meaningless. */
    const double gs = fmax(maxabs_rows(dq2, rows, ld, 0, D),
                           fmax(maxabs_rows(dk2, rows, ld, 0, D), maxabs_rows(dv2, rows, ld, 0, D)));
    int pad_ok = pad_untouched(o, rows, ldo, 0, D);
    if (fused) {
        eq = cmp_rows(gbuf[0], gref[0], rows, ld, 0, D, gs);
        ek = cmp_rows(gbuf[0], gref[0], rows, ld, D, D, gs);
        ev = cmp_rows(gbuf[0], gref[0], rows, ld, 2 * D, D, gs);
        pad_ok &= pad_untouched(gbuf[0], rows, ld, 0, 3 * D);
    } else {
        eq = cmp_rows(dq, dq2, rows, ld, 0, D, gs);
        ek = cmp_rows(dk, dk2, rows, ld, 0, D, gs);
        ev = cmp_rows(dv, dv2, rows, ld, 0, D, gs);
        pad_ok &= pad_untouched(dq, rows, ld, 0, D) && pad_untouched(dk, rows, ld, 0, D) &&
                  pad_untouched(dv, rows, ld, 0, D);
    }
    double ef = fmax(eo, el), eb = fmax(eq, fmax(ek, ev));
    worst_fwd = fmax(worst_fwd, ef);
    worst_bwd = fmax(worst_bwd, eb);
    printf("B=%d T=%d H=%d Dh=%d causal=%d %s ld=%d ldo=%d: o %.2e lse %.2e dq %.2e dk %.2e dv %.2e pad %s\n",
           B, T, H, Dh, causal, fused ? "fused" : "separate", ld, ldo, eo, el, eq, ek, ev,
           pad_ok ? "ok" : "CLOBBERED");
    CHECK_MSG(ef <= 1e-5 && eb <= 1e-5 && pad_ok, "B=%d T=%d H=%d Dh=%d causal=%d fused=%d", B, T, H, Dh,
              causal, fused);
    for (int i = 0; i < nbuf; i++) free(buf[i]), free(gbuf[i]), free(gref[i]);
    free(o), free(o2), free(dout), free(lse), free(lse2);
}

/* ---- padding (lens) ------------------------------------------------------------------- */

/* Random lengths in [1, T], with n = 1 first and n = T last (when B > 1). */
static int *random_lens(int B, int T) {
    int *lens = malloc(sizeof(int) * (size_t)B);
    for (int b = 0; b < B; b++) lens[b] = 1 + (int)sf_rng_below(&rng, (uint32_t)T);
    lens[0] = 1;
    if (B > 1) lens[B - 1] = T;
    return lens;
}

/* Columns [off, off + width) of rows [r0, r1) of item b (T rows per item, stride ld) := val. */
static void fill_rows(float *p, int b, int T, int ld, int r0, int r1, int off, int width, float val) {
    for (int r = r0; r < r1; r++)
        for (int c = 0; c < width; c++) p[((long)b * T + r) * ld + off + c] = val;
}

/* Whether columns [off, off + width) of rows [r0, r1) of item b are all exactly 0. */
static int rows_zero(const float *p, int b, int T, int ld, int r0, int r1, int off, int width) {
    for (int r = r0; r < r1; r++)
        for (int c = 0; c < width; c++)
            if (p[((long)b * T + r) * ld + off + c] != 0.0f) return 0;
    return 1;
}

/* Whether rows [0, n) of item b of a (stride ld, T rows per item) equal rows [0, n) of t
 * (stride ld, one item of n rows) bit for bit in columns [off, off + width). */
static int rows_same(const float *a, const float *t, int b, int T, int n, int ld, int off, int width) {
    for (int r = 0; r < n; r++)
        if (memcmp(a + ((long)b * T + r) * ld + off, t + (long)r * ld + off, sizeof(float) * (size_t)width))
            return 0;
    return 1;
}

/* One padded batch: q, k, v in one fused buffer [B, T, 3D + pad], rows i >= lens[b] of q, k, v
 * and dout are NaN. Checks (1) fast vs reference with lens (o, lse, dq, dk, dv), (2) padded
 * rows of every output exactly 0 in both, (3) each item b equal bit for bit, in both, to the
 * call with B = 1, T = lens[b] on its first lens[b] rows: the kernels run the unpadded code on
 * the first n tokens, so the summation order is the same. */
static void lens_case(int B, int T, int H, int Dh, int causal, int pad) {
    const int D = H * Dh, ld = 3 * D + pad, ldo = D;
    const long rows = (long)B * T, n = rows * ld, no = rows * ldo, nl = (long)B * H * T;
    const float scale = 1.0f / sqrtf((float)Dh);
    int *lens = random_lens(B, T);
    float *qkv = alloc_fill(n, 0.0f), *dout = alloc_fill(no, 0.0f);
    sf_rng_fill_normal(&rng, qkv, n, 0.0f, 1.5f);
    sf_rng_fill_normal(&rng, dout, no, 0.0f, 1.0f);
    for (int b = 0; b < B; b++) {
        fill_rows(qkv, b, T, ld, lens[b], T, 0, 3 * D, NAN);
        fill_rows(dout, b, T, ldo, lens[b], T, 0, D, NAN);
    }
    const float *q = qkv, *k = qkv + D, *v = qkv + 2 * D;
    float *o = alloc_fill(no, SENTINEL), *o2 = alloc_fill(no, SENTINEL);
    float *lse = alloc_fill(nl, SENTINEL), *lse2 = alloc_fill(nl, SENTINEL);
    float *g = alloc_fill(n, SENTINEL), *g2 = alloc_fill(n, SENTINEL);
    sf_attention_forward(o, ldo, lse, q, k, v, ld, B, T, H, Dh, scale, causal, lens);
    sf_attention_forward_ref(o2, ldo, lse2, q, k, v, ld, B, T, H, Dh, scale, causal, lens);
    sf_attention_backward(g, g + D, g + 2 * D, dout, ldo, o, lse, q, k, v, ld, B, T, H, Dh, scale, causal, lens);
    sf_attention_backward_ref(g2, g2 + D, g2 + 2 * D, dout, ldo, NULL, NULL, q, k, v, ld, B, T, H, Dh, scale,
                              causal, lens);

    /* (1) fast vs reference; padded rows hold 0 in both (checked below), so whole-tensor
     * errors are meaningful (and NaN anywhere shows up as an error) */
    const double eo = cmp_rows(o, o2, rows, ldo, 0, D, 1e-6), el = max_rel_err(lse, lse2, nl, 1e-6);
    const double gs = fmax(maxabs_rows(g2, rows, ld, 0, D),
                           fmax(maxabs_rows(g2, rows, ld, D, D), maxabs_rows(g2, rows, ld, 2 * D, D)));
    const double eq = cmp_rows(g, g2, rows, ld, 0, D, gs), ek = cmp_rows(g, g2, rows, ld, D, D, gs),
                 ev = cmp_rows(g, g2, rows, ld, 2 * D, D, gs);
    int pad_ok = pad_untouched(o, rows, ldo, 0, D) && pad_untouched(g, rows, ld, 0, 3 * D);
    /* (2) padded rows exactly 0 */
    int zero_ok = 1;
    for (int b = 0; b < B; b++) {
        const int nb = lens[b];
        zero_ok &= rows_zero(o, b, T, ldo, nb, T, 0, D) && rows_zero(o2, b, T, ldo, nb, T, 0, D);
        zero_ok &= rows_zero(g, b, T, ld, nb, T, 0, 3 * D) && rows_zero(g2, b, T, ld, nb, T, 0, 3 * D);
        for (int h = 0; h < H; h++)
            for (int i = nb; i < T; i++)
                zero_ok &= lse[((long)b * H + h) * T + i] == 0.0f && lse2[((long)b * H + h) * T + i] == 0.0f;
    }
    /* (3) each item vs its truncated sequence: the same buffers, viewed as B = 1, T = n */
    int trunc_ok = 1;
    float *to = alloc_fill((long)T * ldo, 0), *tl = alloc_fill((long)H * T, 0), *tg = alloc_fill((long)T * ld, 0);
    float *tl2 = alloc_fill((long)H * T, 0);
    for (int b = 0; b < B; b++) {
        const int nb = lens[b];
        const long base = (long)b * T * ld, obase = (long)b * T * ldo;
        sf_attention_forward(to, ldo, tl, q + base, k + base, v + base, ld, 1, nb, H, Dh, scale, causal, NULL);
        trunc_ok &= rows_same(o, to, b, T, nb, ldo, 0, D);
        for (int h = 0; h < H; h++)
            trunc_ok &= !memcmp(lse + ((long)b * H + h) * T, tl + (long)h * nb, sizeof(float) * (size_t)nb);
        sf_attention_backward(tg, tg + D, tg + 2 * D, dout + obase, ldo, to, tl, q + base, k + base, v + base,
                              ld, 1, nb, H, Dh, scale, causal, NULL);
        trunc_ok &= rows_same(g, tg, b, T, nb, ld, 0, 3 * D);
        sf_attention_forward_ref(to, ldo, tl2, q + base, k + base, v + base, ld, 1, nb, H, Dh, scale, causal,
                                 NULL);
        trunc_ok &= rows_same(o2, to, b, T, nb, ldo, 0, D);
        for (int h = 0; h < H; h++)
            trunc_ok &= !memcmp(lse2 + ((long)b * H + h) * T, tl2 + (long)h * nb, sizeof(float) * (size_t)nb);
        sf_attention_backward_ref(tg, tg + D, tg + 2 * D, dout + obase, ldo, NULL, NULL, q + base, k + base,
                                  v + base, ld, 1, nb, H, Dh, scale, causal, NULL);
        trunc_ok &= rows_same(g2, tg, b, T, nb, ld, 0, 3 * D);
    }
    const double ef = fmax(eo, el), eb = fmax(eq, fmax(ek, ev));
    worst_fwd = fmax(worst_fwd, ef);
    worst_bwd = fmax(worst_bwd, eb);
    printf("lens B=%d T=%d H=%d Dh=%d causal=%d lens[0..]=%d,%d%s: o %.2e lse %.2e dq %.2e dk %.2e dv %.2e "
           "pad %s, padded rows %s, vs truncated %s\n",
           B, T, H, Dh, causal, lens[0], B > 1 ? lens[1] : lens[0], B > 2 ? ",..." : "", eo, el, eq, ek, ev,
           pad_ok ? "ok" : "CLOBBERED", zero_ok ? "0" : "NOT 0", trunc_ok ? "bitwise equal" : "DIFFERS");
    CHECK_MSG(ef <= 1e-5 && eb <= 1e-5 && pad_ok && zero_ok && trunc_ok,
              "lens B=%d T=%d H=%d Dh=%d causal=%d", B, T, H, Dh, causal);
    free(lens), free(qkv), free(dout), free(o), free(o2), free(lse), free(lse2), free(g), free(g2);
    free(to), free(tl), free(tl2), free(tg);
}

/* Both backward passes with lens vs central differences of L = sum(dout * o) (reference
 * forward with lens). The inputs of padded rows get exactly 0 from the kernels and 0 from the
 * differences (o does not depend on them). */
static void fd_check_lens(int causal) {
    const int B = 3, T = 6, H = 2, Dh = 3, D = H * Dh, ld = 3 * D, ldo = D;
    const int lens[3] = {4, 1, 6};
    const long n = (long)B * T * ld, no = (long)B * T * ldo, nl = (long)B * H * T;
    const float scale = 0.7f;
    float *qkv = alloc_fill(n, 0), *g = alloc_fill(n, 0), *gf = alloc_fill(n, 0), *dout = alloc_fill(no, 0);
    float *o = alloc_fill(no, 0), *lse = alloc_fill(nl, 0);
    sf_rng_fill_normal(&rng, qkv, n, 0, 1);
    sf_rng_fill_normal(&rng, dout, no, 0, 1);
    sf_attention_backward_ref(g, g + D, g + 2 * D, dout, ldo, NULL, NULL, qkv, qkv + D, qkv + 2 * D, ld, B,
                              T, H, Dh, scale, causal, lens);
    sf_attention_forward(o, ldo, lse, qkv, qkv + D, qkv + 2 * D, ld, B, T, H, Dh, scale, causal, lens);
    sf_attention_backward(gf, gf + D, gf + 2 * D, dout, ldo, o, lse, qkv, qkv + D, qkv + 2 * D, ld, B, T, H,
                          Dh, scale, causal, lens);
    const float h = 4e-3f;
    double worst = 0, worstf = 0, gmax = 0, fd_pad = 0;
    for (long i = 0; i < n; i++) {
        float keep = qkv[i];
        double L[2];
        for (int sgn = 0; sgn < 2; sgn++) {
            qkv[i] = keep + (sgn ? -h : h);
            sf_attention_forward_ref(o, ldo, lse, qkv, qkv + D, qkv + 2 * D, ld, B, T, H, Dh, scale, causal,
                                     lens);
            L[sgn] = 0;
            for (long j = 0; j < no; j++) L[sgn] += (double)dout[j] * o[j];
        }
        qkv[i] = keep;
        double fd = (L[0] - L[1]) / (2.0 * h);
        worst = fmax(worst, fabs(fd - g[i]));
        worstf = fmax(worstf, fabs(fd - gf[i]));
        gmax = fmax(gmax, fabs(g[i]));
        const long row = i / ld;
        if (row % T >= lens[row / T]) fd_pad = fmax(fd_pad, fabs(fd) + fabs(g[i]) + fabs(gf[i]));
    }
    printf("backward with lens {4,1,6} vs finite differences (causal=%d): max abs err reference %.2e, "
           "fast %.2e (max |grad| %.2f); padded rows: max |fd| + |grads| %.1e\n",
           causal, worst, worstf, gmax, fd_pad);
    CHECK(worst < 1e-3 * fmax(gmax, 1.0) && worstf < 1e-3 * fmax(gmax, 1.0));
    CHECK(fd_pad == 0.0);
    free(qkv), free(g), free(gf), free(dout), free(o), free(lse);
}

/* ---- thread-count determinism -------------------------------------------------------- */

/* Team size OpenMP gives a parallel region after omp_set_num_threads(n) (OMP_THREAD_LIMIT or
 * dynamic adjustment could make it smaller). */
static int team_size(int n) {
    int team = 0;
    omp_set_num_threads(n);
#pragma omp parallel
    {
#pragma omp single
        team = omp_get_num_threads();
    }
    return team;
}

/* Each work item ((b, h, query tile) forward, (b, h) backward) is computed by one thread in a
 * fixed order, so 1 and 2 threads give the same bits. The kernels use one thread below
 * B*H*T*T = SF_ATTENTION_PAR_MIN (262144) and omp_get_max_threads() from it, so the work is
 * checked to be at least that (else both runs would be serial and prove nothing), and the team
 * size OpenMP grants for 2 threads is checked to be 2. */
static void thread_check(int B, int T, int H, int Dh, int causal, int with_lens) {
    const int D = H * Dh, ld = 3 * D, ldo = D;
    const long rows = (long)B * T, n = rows * ld, no = rows * ldo, nl = (long)B * H * T;
    const long work = (long)B * H * T * T;
    const float scale = 1.0f / sqrtf((float)Dh);
    int *lens = with_lens ? random_lens(B, T) : NULL;
    float *qkv = alloc_fill(n, 0.0f), *dout = alloc_fill(no, 0.0f);
    sf_rng_fill_normal(&rng, qkv, n, 0.0f, 1.5f);
    sf_rng_fill_normal(&rng, dout, no, 0.0f, 1.0f);
    float *o[2], *lse[2], *g[2];
    const int saved = omp_get_max_threads();
    int team = 0;
    for (int r = 0; r < 2; r++) {
        if (r == 1) team = team_size(2);
        omp_set_num_threads(r + 1);
        o[r] = alloc_fill(no, 0.0f), lse[r] = alloc_fill(nl, 0.0f), g[r] = alloc_fill(n, 0.0f);
        sf_attention_forward(o[r], ldo, lse[r], qkv, qkv + D, qkv + 2 * D, ld, B, T, H, Dh, scale, causal, lens);
        sf_attention_backward(g[r], g[r] + D, g[r] + 2 * D, dout, ldo, o[r], lse[r], qkv, qkv + D, qkv + 2 * D,
                              ld, B, T, H, Dh, scale, causal, lens);
    }
    omp_set_num_threads(saved);
    const int same_f = !memcmp(o[0], o[1], sizeof(float) * (size_t)no) &&
                       !memcmp(lse[0], lse[1], sizeof(float) * (size_t)nl);
    const int same_b = !memcmp(g[0], g[1], sizeof(float) * (size_t)n);
    printf("threads B=%d T=%d H=%d Dh=%d causal=%d lens %s: work %ld (parallel from %ld), team of %d: "
           "1 vs 2 threads forward %s, backward %s\n",
           B, T, H, Dh, causal, with_lens ? "random" : "NULL", work, (long)SF_ATTENTION_PAR_MIN, team,
           same_f ? "bitwise equal" : "DIFFERS", same_b ? "bitwise equal" : "DIFFERS");
    CHECK(work >= SF_ATTENTION_PAR_MIN && team == 2);
    CHECK(same_f && same_b);
    for (int r = 0; r < 2; r++) free(o[r]), free(lse[r]), free(g[r]);
    free(lens), free(qkv), free(dout);
}

/* On x86-64-v4 CPUs (sf_avx512) the wide-head kernels run with 16-lane tile products and the
 * small-head forward and backward with one 16-lane vector per 16 rows: the same operations in the
 * same order per element as the 8-lane versions, so both must give the same bits. */
static void avx512_check(int B, int T, int H, int Dh, int causal, int with_lens) {
    if (!sf_avx512()) {
        printf("avx512 B=%d T=%d H=%d Dh=%d: AVX-512 kernels off (no x86-64-v4, or SF_AVX512=0): not compared\n",
               B, T, H, Dh);
        return;
    }
    const int D = H * Dh, ld = 3 * D, ldo = D;
    const long rows = (long)B * T, n = rows * ld, no = rows * ldo, nl = (long)B * H * T;
    const float scale = 1.0f / sqrtf((float)Dh);
    int *lens = with_lens ? random_lens(B, T) : NULL;
    float *qkv = alloc_fill(n, 0.0f), *dout = alloc_fill(no, 0.0f);
    sf_rng_fill_normal(&rng, qkv, n, 0.0f, 1.5f);
    sf_rng_fill_normal(&rng, dout, no, 0.0f, 1.0f);
    float *o[2], *lse[2], *g[2];
    for (int r = 0; r < 2; r++) {
        sf_set_avx512(r == 0);
        o[r] = alloc_fill(no, 0.0f), lse[r] = alloc_fill(nl, 0.0f), g[r] = alloc_fill(n, 0.0f);
        sf_attention_forward(o[r], ldo, lse[r], qkv, qkv + D, qkv + 2 * D, ld, B, T, H, Dh, scale, causal, lens);
        sf_attention_backward(g[r], g[r] + D, g[r] + 2 * D, dout, ldo, o[r], lse[r], qkv, qkv + D, qkv + 2 * D,
                              ld, B, T, H, Dh, scale, causal, lens);
    }
    sf_set_avx512(1);
    const int same_f = !memcmp(o[0], o[1], sizeof(float) * (size_t)no) &&
                       !memcmp(lse[0], lse[1], sizeof(float) * (size_t)nl);
    const int same_b = !memcmp(g[0], g[1], sizeof(float) * (size_t)n);
    printf("avx512 B=%d T=%d H=%d Dh=%d causal=%d lens %s: 16-lane vs 8-lane kernels forward %s, backward %s\n", B,
           T, H, Dh, causal, with_lens ? "random" : "NULL", same_f ? "bitwise equal" : "DIFFERS",
           same_b ? "bitwise equal" : "DIFFERS");
    CHECK(same_f && same_b);
    for (int r = 0; r < 2; r++) free(o[r]), free(lse[r]), free(g[r]);
    free(lens), free(qkv), free(dout);
}

/* lse = NULL (inference: no log-sum-exp wanted) gives the bits of o with it, on every path the
 * CPU has (8-lane and, where present, 16-lane). */
static void no_lse_check(int B, int T, int H, int Dh, int causal, int with_lens) {
    const int D = H * Dh, ld = 3 * D, ldo = D;
    const long rows = (long)B * T, n = rows * ld, no = rows * ldo, nl = (long)B * H * T;
    int *lens = with_lens ? random_lens(B, T) : NULL;
    float *qkv = alloc_fill(n, 0.0f), *o1 = alloc_fill(no, 0.0f), *o2 = alloc_fill(no, 1.0f);
    float *lse = alloc_fill(nl, 0.0f);
    sf_rng_fill_normal(&rng, qkv, n, 0.0f, 1.5f);
    const int was = sf_avx512();
    for (int w = was; w >= 0; w--) {
        sf_set_avx512(w);
        sf_attention_forward(o1, ldo, lse, qkv, qkv + D, qkv + 2 * D, ld, B, T, H, Dh, 0.5f, causal, lens);
        sf_attention_forward(o2, ldo, NULL, qkv, qkv + D, qkv + 2 * D, ld, B, T, H, Dh, 0.5f, causal, lens);
        CHECK_MSG(!memcmp(o1, o2, sizeof(float) * (size_t)no),
                  "lse NULL B=%d T=%d H=%d Dh=%d causal=%d lens=%d avx512=%d: o differs", B, T, H, Dh, causal,
                  with_lens, w);
    }
    sf_set_avx512(was);
    free(lens), free(qkv), free(o1), free(o2), free(lse);
}

/* Reference backward vs central differences of L = sum(dout * o), o from the reference forward. */
static void fd_check(int causal) {
    const int B = 1, T = 5, H = 2, Dh = 3, D = H * Dh, ld = 3 * D, ldo = D;
    const long n = (long)B * T * ld, no = (long)B * T * ldo;
    const float scale = 0.7f;
    float *qkv = alloc_fill(n, 0), *g = alloc_fill(n, 0), *dout = alloc_fill(no, 0), *o = alloc_fill(no, 0);
    float *lse = alloc_fill((long)B * H * T, 0);
    sf_rng_fill_normal(&rng, qkv, n, 0, 1);
    sf_rng_fill_normal(&rng, dout, no, 0, 1);
    sf_attention_backward_ref(g, g + D, g + 2 * D, dout, ldo, NULL, NULL, qkv, qkv + D, qkv + 2 * D, ld, B,
                              T, H, Dh, scale, causal, NULL);
    const float h = 4e-3f;
    double worst = 0, gmax = 0;
    for (long i = 0; i < n; i++) {
        float keep = qkv[i];
        double L[2];
        for (int sgn = 0; sgn < 2; sgn++) {
            qkv[i] = keep + (sgn ? -h : h);
            sf_attention_forward_ref(o, ldo, lse, qkv, qkv + D, qkv + 2 * D, ld, B, T, H, Dh, scale, causal, NULL);
            L[sgn] = 0;
            for (long j = 0; j < no; j++) L[sgn] += (double)dout[j] * o[j];
        }
        qkv[i] = keep;
        double fd = (L[0] - L[1]) / (2.0 * h);
        worst = fmax(worst, fabs(fd - g[i]));
        gmax = fmax(gmax, fabs(g[i]));
    }
    printf("reference backward vs finite differences (causal=%d): max abs err %.2e (max |grad| %.2f)\n",
           causal, worst, gmax);
    CHECK(worst < 1e-3 * fmax(gmax, 1.0));
    free(qkv), free(g), free(dout), free(o), free(lse);
}

/* Token-by-token KV-cache steps reproduce the causal forward. */
static void step_check(int T, int H, int Dh) {
    const int D = H * Dh;
    const long n = (long)T * D;
    float *q = alloc_fill(n, 0), *k = alloc_fill(n, 0), *v = alloc_fill(n, 0);
    float *o = alloc_fill(n, 0), *os = alloc_fill(n, 0), *lse = alloc_fill((long)H * T, 0);
    sf_rng_fill_normal(&rng, q, n, 0, 1.5f);
    sf_rng_fill_normal(&rng, k, n, 0, 1.5f);
    sf_rng_fill_normal(&rng, v, n, 0, 1);
    const float scale = 1.0f / sqrtf((float)Dh);
    sf_attention_forward(o, D, lse, q, k, v, D, 1, T, H, Dh, scale, 1, NULL);
    for (int t = 0; t < T; t++) sf_attention_step(os + (long)t * D, q + (long)t * D, k, v, t + 1, H, Dh, scale);
    double e = max_rel_err(os, o, n, 1e-6);
    printf("step vs causal forward T=%d H=%d Dh=%d: max rel err %.2e\n", T, H, Dh, e);
    CHECK(e <= 1e-5);
    free(q), free(k), free(v), free(o), free(os), free(lse);
}

int main(void) {
    sf_rng_seed(&rng, test_seed());
    for (int causal = 0; causal < 2; causal++) {
        run_case(2, 42, 4, 4, causal, 1, 0, 0);    /* PatchTST-like, fused qkv */
        run_case(1, 1, 1, 4, causal, 0, 0, 0);     /* T = 1 */
        run_case(3, 1, 2, 8, causal, 1, 2, 1);     /* T = 1, several heads, padded */
        run_case(2, 70, 2, 64, causal, 1, 3, 2);   /* T not a multiple of the 64-key / 32-row tiles */
        run_case(1, 130, 3, 16, causal, 0, 5, 3);  /* separate, padded rows */
        run_case(2, 33, 1, 256, causal, 0, 0, 0);  /* max Dh (16-key tiles) */
        run_case(2, 45, 2, 100, causal, 1, 1, 0);  /* Dh not a power of two (40-key tiles) */
        run_case(1, 9, 3, 1, causal, 0, 0, 0);     /* Dh = 1 */
        run_case(4, 200, 2, 8, causal, 1, 0, 0);   /* parallel path, several tiles */
        /* tiled kernels' tile products (kernels/tile_gemm.h): head widths with a scalar column
         * remainder (9), an 8-wide block (24 = 16 + 8), fewer query rows than one 8-lane vector
         * (T = 5), 32-key tiles (Dh = 128) */
        run_case(1, 37, 3, 9, causal, 1, 0, 1);
        run_case(2, 29, 2, 24, causal, 0, 1, 0);
        run_case(2, 5, 2, 32, causal, 1, 0, 0);
        run_case(2, 66, 1, 128, causal, 0, 2, 2);
        /* small-head (Dh <= 8) row-lane forward: every Dh, T not a multiple of the 16-row block */
        run_case(2, 17, 3, 3, causal, 1, 1, 0);
        run_case(1, 23, 2, 5, causal, 0, 2, 1);
        run_case(3, 50, 2, 6, causal, 1, 0, 2);
        run_case(2, 31, 1, 7, causal, 0, 0, 0);
        run_case(2, 16, 4, 2, causal, 1, 0, 0);
        /* small-head (Dh <= 8) row-lane backward: every Dh at T = 1, 7 (under one 8-row vector),
         * 42 (PatchTST), 45, 130 (more than one 64-row chunk); padded rows, fused and separate */
        static const int Ts[] = {1, 7, 42, 45, 130};
        for (int Dh = 1; Dh <= 8; Dh++)
            for (int it = 0; it < 5; it++)
                run_case(2, Ts[it], 1 + (Dh + it) % 3, Dh, causal, (Dh + it) % 2 == 0, 1 + Dh % 3,
                         it % 3);
    }
    /* Padding: Dh in {4, 8} (row-lane kernels), 16, 64 (tiled), odd sizes; T = 1, T under one
     * 8-row vector, T not a multiple of the 16/32-row or 64-key tiles, T over one 64-row chunk. */
    for (int causal = 0; causal < 2; causal++) {
        lens_case(3, 42, 4, 4, causal, 0);
        lens_case(2, 1, 2, 4, causal, 1);
        lens_case(4, 7, 3, 8, causal, 2);
        lens_case(5, 45, 2, 8, causal, 0);
        lens_case(3, 130, 1, 4, causal, 3);
        lens_case(4, 37, 2, 16, causal, 1);
        lens_case(3, 70, 2, 64, causal, 0);
        lens_case(2, 200, 1, 64, causal, 2);
        lens_case(3, 23, 3, 5, causal, 1); /* odd Dh, row-lane */
        lens_case(3, 33, 1, 100, causal, 0); /* odd Dh, tiled (40-key tiles) */
        lens_case(6, 150, 4, 8, causal, 0); /* parallel path */
    }
    printf("worst forward rel err %.2e, worst backward rel err %.2e\n", worst_fwd, worst_bwd);
    fd_check(0);
    fd_check(1);
    fd_check_lens(0);
    fd_check_lens(1);
    for (int causal = 0; causal < 2; causal++)
        for (int with_lens = 0; with_lens < 2; with_lens++) {
            thread_check(4, 150, 4, 4, causal, with_lens);  /* row-lane kernels */
            thread_check(3, 220, 2, 16, causal, with_lens); /* tiled kernels */
            thread_check(2, 300, 2, 64, causal, with_lens);
            avx512_check(3, 61, 4, 2, causal, with_lens); /* row-lane kernels (16-lane forward) */
            avx512_check(2, 42, 4, 4, causal, with_lens);
            avx512_check(2, 150, 3, 6, causal, with_lens); /* 2*Dh > 8; chunks of 64, 64, 22 rows */
            avx512_check(3, 20, 2, 8, causal, with_lens);  /* an odd number of 8-row vectors */
            avx512_check(2, 77, 3, 16, causal, with_lens);
            avx512_check(2, 130, 2, 32, causal, with_lens);
            avx512_check(1, 100, 2, 72, causal, with_lens); /* columns past the last 32 and 16 */
            no_lse_check(3, 42, 4, 4, causal, with_lens);   /* row-lane kernels */
            no_lse_check(2, 77, 2, 32, causal, with_lens);  /* tiled kernels */
        }
    step_check(37, 3, 8);
    step_check(300, 2, 4); /* more keys than one step chunk */
    return test_finish();
}
