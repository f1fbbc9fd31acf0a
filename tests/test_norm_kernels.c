/* Elementwise and row kernels: softmax, LayerNorm, RMSNorm, GELU, ELU+1, dropout, and the fast
 * exp. Fast versions against the plain-loop references on fresh random inputs (seed printed),
 * and the reference backward passes against central finite differences of the reference
 * forward (loss = sum(dy * y), evaluated in double). BatchNorm with a row mask (padding):
 * equal bit for bit to the unmasked kernels on the valid rows gathered, statistics against
 * double sums, invalid rows 0 and never read (NaN there), and finite differences. */
#include <math.h>
#include <string.h>

#include "core/rng.h"
#include "kernels/activations.h"
#include "kernels/batchnorm.h"
#include "kernels/norms.h"
#include "kernels/softmax.h"
#include "test_util.h"

static sf_rng rng;

static float *rnd(long n, float lo, float hi) {
    float *p = malloc(sizeof(float) * (size_t)(n > 0 ? n : 1));
    sf_rng_fill_uniform(&rng, p, n, lo, hi);
    return p;
}
static float *dup(const float *a, long n) {
    float *p = malloc(sizeof(float) * (size_t)(n > 0 ? n : 1));
    memcpy(p, a, sizeof(float) * (size_t)n);
    return p;
}
static double dot(const float *a, const float *b, long n) {
    double s = 0;
    for (long i = 0; i < n; i++) s += (double)a[i] * b[i];
    return s;
}
/* ---- fast exp -------------------------------------------------------------------------- */
static void test_expf(void) {
    double worst = 0;
    for (float x = -86.9f; x < 88.2f; x += 0.0137f) {
        double e = exp((double)x), r = fabs(sf_expf_fast(x) - e) / e;
        worst = r > worst ? r : worst;
    }
    printf("expf_fast: max rel err %.3g on [-86.9, 88.2]\n", worst);
    CHECK(worst < 4e-7);
    CHECK(sf_expf_fast(0.0f) == 1.0f);
    CHECK(sf_expf_fast(-INFINITY) == 0.0f);
    CHECK(sf_expf_fast(-110.0f) == 0.0f);
    CHECK(fabs(sf_expf_fast(-100.0f) - exp(-100.0)) < 1e-45); /* gradual underflow */
    CHECK(isinf(sf_expf_fast(100.0f)) && isinf(sf_expf_fast(INFINITY)));
    CHECK(sf_expf_fast(88.7f) > 3.3e38f && !isinf(sf_expf_fast(88.7f)));
    CHECK(isnan(sf_expf_fast(NAN)));
}

/* ---- softmax --------------------------------------------------------------------------- */
static void test_softmax(int N, int D) {
    long n = (long)N * D;
    float *x = rnd(n, -8, 8), *dy = rnd(n, -1, 1);
    if (n > 3) x[1] = -INFINITY; /* masked entry */
    float *y1 = malloc(sizeof(float) * n), *y2 = malloc(sizeof(float) * n);
    float *dx1 = malloc(sizeof(float) * n), *dx2 = malloc(sizeof(float) * n);
    sf_softmax_forward(y1, x, N, D);
    sf_softmax_forward_ref(y2, x, N, D);
    double ef = max_rel_err(y1, y2, n, 1e-6);
    float *yin = dup(x, n);
    sf_softmax_forward(yin, yin, N, D); /* in place */
    double ei = max_rel_err(yin, y2, n, 1e-6);
    sf_softmax_backward(dx1, dy, y2, N, D);
    sf_softmax_backward_ref(dx2, dy, y2, N, D);
    double eb = max_rel_err(dx1, dx2, n, 1e-6);
    float *g = dup(dy, n);
    sf_softmax_backward(g, g, y2, N, D); /* in place */
    double ebi = max_rel_err(g, dx2, n, 1e-6);
    printf("softmax N=%d D=%d: fwd %.3g fwd-inplace %.3g bwd %.3g bwd-inplace %.3g\n", N, D, ef, ei, eb, ebi);
    CHECK(ef < 1e-5 && ei < 1e-5 && eb < 1e-5 && ebi < 1e-5);
    if (n > 3) CHECK(y1[1] == 0.0f);
    free(x), free(dy), free(y1), free(y2), free(dx1), free(dx2), free(yin), free(g);
}

static void fd_softmax(void) {
    const int N = 3, D = 5;
    const long n = N * D;
    float *x = rnd(n, -2, 2), *dy = rnd(n, -1, 1), *y = malloc(sizeof(float) * n), *dx = malloc(sizeof(float) * n);
    sf_softmax_forward_ref(y, x, N, D);
    sf_softmax_backward_ref(dx, dy, y, N, D);
    const float h = 1e-2f;
    double worst = 0;
    for (long k = 0; k < n; k++) {
        float keep = x[k];
        x[k] = keep + h;
        sf_softmax_forward_ref(y, x, N, D);
        double lp = dot(dy, y, n);
        x[k] = keep - h;
        sf_softmax_forward_ref(y, x, N, D);
        double lm = dot(dy, y, n);
        x[k] = keep;
        double fd = (lp - lm) / (2 * (double)h), e = fabs(fd - dx[k]);
        worst = e > worst ? e : worst;
    }
    printf("softmax ref backward vs finite differences: max abs err %.3g\n", worst);
    CHECK(worst < 2e-4);
    free(x), free(dy), free(y), free(dx);
}

/* ---- LayerNorm / RMSNorm ---------------------------------------------------------------- */
static void test_norm(int rms, int N, int D) {
    const long n = (long)N * D;
    const float eps = 1e-5f;
    float *x = rnd(n, -3, 3), *dy = rnd(n, -1, 1), *w = rnd(D, 0.5f, 1.5f), *b = rnd(D, -0.5f, 0.5f);
    for (int i = 0; i < N; i++) x[(long)i * D] += 2.0f * i / (N ? N : 1); /* varied means */
    float *y1 = malloc(sizeof(float) * n), *y2 = malloc(sizeof(float) * n);
    float *m1 = malloc(sizeof(float) * N), *r1 = malloc(sizeof(float) * N);
    float *m2 = malloc(sizeof(float) * N), *r2 = malloc(sizeof(float) * N);
    float *dx1 = malloc(sizeof(float) * n), *dx2 = malloc(sizeof(float) * n);
    float *dw0 = rnd(D, -1, 1), *db0 = rnd(D, -1, 1);
    float *dw1 = dup(dw0, D), *db1 = dup(db0, D), *dw2 = dup(dw0, D), *db2 = dup(db0, D);
    if (rms) {
        sf_rmsnorm_forward(y1, r1, x, w, N, D, eps);
        sf_rmsnorm_forward_ref(y2, r2, x, w, N, D, eps);
        sf_rmsnorm_backward(dx1, dw1, dy, x, w, r2, N, D);
        sf_rmsnorm_backward_ref(dx2, dw2, dy, x, w, r2, N, D);
    } else {
        sf_layernorm_forward(y1, m1, r1, x, w, b, N, D, eps);
        sf_layernorm_forward_ref(y2, m2, r2, x, w, b, N, D, eps);
        sf_layernorm_backward(dx1, dw1, db1, dy, x, w, m2, r2, N, D);
        sf_layernorm_backward_ref(dx2, dw2, db2, dy, x, w, m2, r2, N, D);
    }
    double ey = max_rel_err(y1, y2, n, 1e-6), er = max_rel_err(r1, r2, N, 1e-6);
    double em = rms ? 0 : max_rel_err(m1, m2, N, 1e-3);
    /* dx has cancellation (exactly 0 for RMSNorm with D == 1): floor its scale at 1e-2 */
    double edx = max_rel_err(dx1, dx2, n, 1e-2), edw = max_rel_err(dw1, dw2, D, 1e-6);
    double edb = rms ? 0 : max_rel_err(db1, db2, D, 1e-6);
    /* in place: y == x forward, dx == dy backward */
    float *xi = dup(x, n), *gi = dup(dy, n), *dwi = dup(dw0, D), *dbi = dup(db0, D);
    if (rms) {
        sf_rmsnorm_forward(xi, NULL, xi, w, N, D, eps);
        sf_rmsnorm_backward(gi, dwi, gi, x, w, r2, N, D);
    } else {
        sf_layernorm_forward(xi, NULL, NULL, xi, w, b, N, D, eps);
        sf_layernorm_backward(gi, dwi, dbi, gi, x, w, m2, r2, N, D);
    }
    double eip = max_rel_err(xi, y2, n, 1e-6), eipb = max_rel_err(gi, dx2, n, 1e-2);
    eipb = fmax(eipb, max_rel_err(dwi, dw2, D, 1e-6));
    printf("%s N=%d D=%d: y %.3g mean %.3g rstd %.3g dx %.3g dw %.3g db %.3g in-place %.3g/%.3g\n",
           rms ? "rmsnorm" : "layernorm", N, D, ey, em, er, edx, edw, edb, eip, eipb);
    CHECK(ey < 1e-5 && em < 1e-5 && er < 1e-5 && edx < 1e-5 && edw < 1e-5 && edb < 1e-5);
    CHECK(eip < 1e-5 && eipb < 1e-5);
    free(x), free(dy), free(w), free(b), free(y1), free(y2), free(m1), free(r1), free(m2), free(r2);
    free(dx1), free(dx2), free(dw0), free(db0), free(dw1), free(db1), free(dw2), free(db2);
    free(xi), free(gi), free(dwi), free(dbi);
}

static double norm_loss(int rms, const float *x, const float *w, const float *b, const float *dy,
                        int N, int D, float *y) {
    if (rms)
        sf_rmsnorm_forward_ref(y, NULL, x, w, N, D, 1e-5f);
    else
        sf_layernorm_forward_ref(y, NULL, NULL, x, w, b, N, D, 1e-5f);
    return dot(dy, y, (long)N * D);
}

static void fd_norm(int rms) {
    const int N = 3, D = 7;
    const long n = N * D;
    float *x = rnd(n, -2, 2), *dy = rnd(n, -1, 1), *w = rnd(D, 0.5f, 1.5f), *b = rnd(D, -0.5f, 0.5f);
    float *y = malloc(sizeof(float) * n), *dx = malloc(sizeof(float) * n), *m = malloc(sizeof(float) * N),
          *r = malloc(sizeof(float) * N), *dw = calloc(D, sizeof(float)), *db = calloc(D, sizeof(float));
    if (rms) {
        sf_rmsnorm_forward_ref(y, r, x, w, N, D, 1e-5f);
        sf_rmsnorm_backward_ref(dx, dw, dy, x, w, r, N, D);
    } else {
        sf_layernorm_forward_ref(y, m, r, x, w, b, N, D, 1e-5f);
        sf_layernorm_backward_ref(dx, dw, db, dy, x, w, m, r, N, D);
    }
    const float h = 1e-2f;
    double worst = 0;
    float *targets[3] = {x, w, b};
    float *grads[3] = {dx, dw, db};
    long sizes[3] = {n, D, D};
    for (int t = 0; t < (rms ? 2 : 3); t++)
        for (long k = 0; k < sizes[t]; k++) {
            float keep = targets[t][k];
            targets[t][k] = keep + h;
            double lp = norm_loss(rms, x, w, b, dy, N, D, y);
            targets[t][k] = keep - h;
            double lm = norm_loss(rms, x, w, b, dy, N, D, y);
            targets[t][k] = keep;
            double fd = (lp - lm) / (2 * (double)h), e = fabs(fd - grads[t][k]);
            worst = e > worst ? e : worst;
        }
    printf("%s ref backward (dx, dw%s) vs finite differences: max abs err %.3g\n",
           rms ? "rmsnorm" : "layernorm", rms ? "" : ", db", worst);
    CHECK(worst < 2e-3);
    free(x), free(dy), free(w), free(b), free(y), free(dx), free(m), free(r), free(dw), free(db);
}

/* ---- BatchNorm with a row mask ------------------------------------------------------------ */

/* Rows with row_valid[i] == 0 hold NaN in x and dy. Checks: (1) masked forward/backward equal
 * bit for bit to the unmasked ones on the valid rows gathered into a dense array (the same
 * rows in the same order; the unmasked kernel adds them in row chunks, but in double, so the
 * float statistics agree unless a sum falls within ~1e-16 of a float rounding boundary), in
 * training (batch statistics) and fixed mode;
 * (2) mean, biased and unbiased variance against double sums over the valid rows; (3) invalid
 * rows of y and dx exactly 0; (4) row_valid == NULL is the unmasked kernel. */
static void test_batchnorm_masked(int N, int D, int n_invalid) {
    const long n = (long)N * D;
    const float eps = 1e-5f;
    /* exactly n_invalid invalid rows, at random places */
    uint8_t *valid = malloc((size_t)N);
    int32_t *perm = malloc(sizeof(int32_t) * (size_t)N);
    for (int i = 0; i < N; i++) valid[i] = 1, perm[i] = i;
    sf_rng_shuffle_i32(&rng, perm, N);
    for (int c = 0; c < n_invalid; c++) valid[perm[c]] = 0;
    free(perm);
    const int nv = N - n_invalid;
    float *x = rnd(n, -3, 3), *dy = rnd(n, -1, 1), *w = rnd(D, 0.5f, 1.5f), *b = rnd(D, -0.5f, 0.5f);
    for (long i = 0; i < N; i++)
        for (int j = 0; j < D; j++) x[i * D + j] += 0.5f * j; /* per-feature means differ */
    float *xc = malloc(sizeof(float) * (size_t)nv * D), *dyc = malloc(sizeof(float) * (size_t)nv * D);
    for (long i = 0, r = 0; i < N; i++) {
        if (!valid[i]) {
            for (int j = 0; j < D; j++) x[i * D + j] = dy[i * D + j] = NAN;
            continue;
        }
        memcpy(xc + r * D, x + i * D, sizeof(float) * D);
        memcpy(dyc + r * D, dy + i * D, sizeof(float) * D);
        r++;
    }
    float *y = malloc(sizeof(float) * n), *yc = malloc(sizeof(float) * (size_t)nv * D);
    float *dx = malloc(sizeof(float) * n), *dxc = malloc(sizeof(float) * (size_t)nv * D);
    float *st = malloc(sizeof(float) * 6 * D); /* mean, rstd, var: masked, then gathered */
    float *dw = calloc((size_t)4 * D, sizeof(float)), *db = dw + D, *dwc = dw + 2 * D, *dbc = dw + 3 * D;
    int same = 1, zero = 1;
    for (int batch_stats = 1; batch_stats >= 0; batch_stats--) {
        if (batch_stats) {
            sf_batchnorm_forward_train_masked(y, st, st + D, st + 2 * D, x, w, b, N, D, eps, valid);
            sf_batchnorm_forward_train(yc, st + 3 * D, st + 4 * D, st + 5 * D, xc, w, b, nv, D, eps);
            same &= memcmp(st, st + 3 * D, sizeof(float) * 3 * D) == 0;
        } else { /* fixed statistics (those of the training pass) */
            sf_batchnorm_forward_fixed_masked(y, x, st, st + D, w, b, N, D, valid);
            sf_batchnorm_forward_fixed(yc, xc, st, st + D, w, b, nv, D);
        }
        sf_batchnorm_backward_masked(dx, dw, db, dy, x, w, st, st + D, N, D, batch_stats, valid);
        sf_batchnorm_backward(dxc, dwc, dbc, dyc, xc, w, st, st + D, nv, D, batch_stats);
        same &= memcmp(dw, dwc, sizeof(float) * 2 * D) == 0; /* dw, db (accumulated twice) */
        for (long i = 0, r = 0; i < N; i++) {
            if (!valid[i]) {
                for (int j = 0; j < D; j++) zero &= y[i * D + j] == 0.0f && dx[i * D + j] == 0.0f;
                continue;
            }
            same &= memcmp(y + i * D, yc + r * D, sizeof(float) * D) == 0;
            same &= memcmp(dx + i * D, dxc + r * D, sizeof(float) * D) == 0;
            r++;
        }
    }
    /* (2) statistics of the training pass (st was not overwritten by the fixed pass) */
    double es = 0;
    for (int j = 0; j < D; j++) {
        double m = 0, v = 0;
        for (long r = 0; r < nv; r++) m += xc[r * D + j];
        m /= nv;
        for (long r = 0; r < nv; r++) v += (xc[r * D + j] - m) * (xc[r * D + j] - m);
        const double vb = v / nv, vu = nv > 1 ? v / (nv - 1) : v;
        es = fmax(es, fabs(st[j] - m) / fmax(fabs(m), 1.0));
        es = fmax(es, fabs(st[D + j] - 1.0 / sqrt(vb + eps)) * sqrt(vb + eps));
        es = fmax(es, fabs(st[2 * D + j] - vu) / fmax(vu, 1e-6));
    }
    /* (4) NULL mask: the unmasked kernels, bit for bit */
    float *y0 = malloc(sizeof(float) * (size_t)nv * D), *dx0 = malloc(sizeof(float) * (size_t)nv * D);
    float *st0 = malloc(sizeof(float) * 3 * D), *dw0 = calloc((size_t)2 * D, sizeof(float));
    sf_batchnorm_forward_train_masked(y0, st0, st0 + D, st0 + 2 * D, xc, w, b, nv, D, eps, NULL);
    sf_batchnorm_backward_masked(dx0, dw0, dw0 + D, dyc, xc, w, st0, st0 + D, nv, D, 1, NULL);
    sf_batchnorm_forward_train(yc, st + 3 * D, st + 4 * D, st + 5 * D, xc, w, b, nv, D, eps);
    memset(dwc, 0, sizeof(float) * 2 * D);
    sf_batchnorm_backward(dxc, dwc, dbc, dyc, xc, w, st + 3 * D, st + 4 * D, nv, D, 1);
    const int null_same = !memcmp(y0, yc, sizeof(float) * (size_t)nv * D) &&
                          !memcmp(dx0, dxc, sizeof(float) * (size_t)nv * D) &&
                          !memcmp(st0, st + 3 * D, sizeof(float) * 3 * D) && !memcmp(dw0, dwc, sizeof(float) * 2 * D);
    printf("batchnorm masked N=%d D=%d valid=%d: vs gathered rows %s, invalid rows %s, statistics vs double "
           "%.2e, NULL mask %s\n",
           N, D, nv, same ? "bitwise equal" : "DIFFERS", zero ? "0" : "NOT 0", es,
           null_same ? "bitwise equal" : "DIFFERS");
    CHECK(same && zero && null_same);
    CHECK(es < 1e-5);
    free(valid), free(x), free(dy), free(w), free(b), free(xc), free(dyc), free(y), free(yc), free(dx);
    free(dxc), free(st), free(dw), free(y0), free(dx0), free(st0), free(dw0);
}

/* Masked training-mode backward vs central differences of L = sum(dy * y) through the masked
 * forward (batch statistics over the valid rows), for x, w and b; invalid rows of x get 0. */
static double bn_masked_loss(const float *x, const float *w, const float *b, const float *dy,
                             const uint8_t *valid, int N, int D, float *y) {
    float mean[8], rstd[8];
    sf_batchnorm_forward_train_masked(y, mean, rstd, NULL, x, w, b, N, D, 1e-5f, valid);
    return dot(dy, y, (long)N * D);
}

static void fd_batchnorm_masked(void) {
    const int N = 7, D = 3;
    const long n = N * D;
    const uint8_t valid[7] = {1, 0, 1, 1, 0, 1, 0};
    float *x = rnd(n, -2, 2), *dy = rnd(n, -1, 1), *w = rnd(D, 0.5f, 1.5f), *b = rnd(D, -0.5f, 0.5f);
    float *y = malloc(sizeof(float) * n), *dx = malloc(sizeof(float) * n);
    float *dw = calloc(D, sizeof(float)), *db = calloc(D, sizeof(float)), mean[3], rstd[3];
    sf_batchnorm_forward_train_masked(y, mean, rstd, NULL, x, w, b, N, D, 1e-5f, valid);
    sf_batchnorm_backward_masked(dx, dw, db, dy, x, w, mean, rstd, N, D, 1, valid);
    /* Three step sizes, the best agreement counts (as in test_layers): with 4 valid rows a column's
     * variance can be small, the loss then strongly curved, and one float step of 1e-2 was off by
     * 3.8e-3 absolute at seed 980235444 while smaller steps agree; a wrong gradient disagrees at
     * all three. Errors relative to |fd| + |analytic| + 1e-3. */
    const float hs[3] = {1e-2f, 3e-3f, 1e-3f};
    double worst = 0, pad = 0;
    float *targets[3] = {x, w, b};
    float *grads[3] = {dx, dw, db};
    long sizes[3] = {n, D, D};
    for (int t = 0; t < 3; t++)
        for (long k = 0; k < sizes[t]; k++) {
            float keep = targets[t][k];
            double best = INFINITY, fd0 = 0;
            for (int si = 0; si < 3; si++) {
                const float h = hs[si];
                targets[t][k] = keep + h;
                double lp = bn_masked_loss(x, w, b, dy, valid, N, D, y);
                targets[t][k] = keep - h;
                double lm = bn_masked_loss(x, w, b, dy, valid, N, D, y);
                targets[t][k] = keep;
                double fd = (lp - lm) / (2 * (double)h);
                if (si == 0) fd0 = fd;
                best = fmin(best, fabs(fd - grads[t][k]) / (fabs(fd) + fabs(grads[t][k]) + 1e-3));
            }
            worst = best > worst ? best : worst;
            if (t == 0 && !valid[k / D]) pad = fmax(pad, fabs(fd0) + fabs(grads[t][k]));
        }
    printf("batchnorm masked backward (dx, dw, db; 4 of 7 rows valid) vs finite differences: worst rel err "
           "%.3g, invalid rows max |fd| + |dx| %.1e\n",
           worst, pad);
    CHECK(worst < 1e-2);
    CHECK(pad == 0.0);
    free(x), free(dy), free(w), free(b), free(y), free(dx), free(dw), free(db);
}

/* ---- GELU / ELU+1 ---------------------------------------------------------------------- */
typedef void (*act_fwd)(float *, const float *, long);
typedef void (*act_bwd)(float *, const float *, const float *, long);

static void test_act(const char *name, act_fwd f, act_fwd fr, act_bwd g, act_bwd gr, long n, float range) {
    float *x = rnd(n, -range, range), *dy = rnd(n, -1, 1);
    const float special[] = {0.0f, -0.0f, 1e-30f, -1e-30f, 1e-4f, -1e-4f, 3.0f, -3.0f, 6.0f, -6.0f, 12.0f, -12.0f, 40.0f, -40.0f, -100.0f, 100.0f};
    for (int i = 0; i < 16 && i < n; i++) x[i] = special[i];
    float *y1 = malloc(sizeof(float) * n), *y2 = malloc(sizeof(float) * n);
    float *d1 = malloc(sizeof(float) * n), *d2 = malloc(sizeof(float) * n);
    f(y1, x, n), fr(y2, x, n), g(d1, dy, x, n), gr(d2, dy, x, n);
    /* per-element error relative to max(|x|, 1) (forward) and max(|dy|, 1e-3) (backward) */
    double ef = 0, eb = 0;
    for (long i = 0; i < n; i++) {
        double a = fabs((double)y1[i] - y2[i]) / fmax(fabs(x[i]), 1.0);
        double c = fabs((double)d1[i] - d2[i]) / fmax(fabs(dy[i]), 1e-3);
        if (a > ef || a != a) ef = a;
        if (c > eb || c != c) eb = c;
    }
    float *yi = dup(x, n), *gi = dup(dy, n);
    g(gi, gi, x, n); /* in place backward */
    f(yi, yi, n);    /* in place forward */
    int same = memcmp(yi, y1, sizeof(float) * n) == 0 && memcmp(gi, d1, sizeof(float) * n) == 0;
    printf("%s n=%ld range=%g: fwd err %.3g, bwd err %.3g, in-place identical %d\n", name, n, range, ef, eb, same);
    CHECK(ef < 1e-6 && eb < 1e-6 && same);
    free(x), free(dy), free(y1), free(y2), free(d1), free(d2), free(yi), free(gi);
}

/* The strided-rows entry points equal the contiguous ones row by row (bitwise), and leave the
 * gaps between rows untouched; both the serial and the parallel (rows * cols >= 65536) paths. */
static void test_elu1_rows(long rows, int cols) {
    const int ldx = cols + 5, ldy = cols + 3;
    float *x = rnd(rows * ldx, -6, 6), *dy = rnd(rows * ldy, -1, 1);
    float *y = rnd(rows * ldy, 7, 8), *dx = rnd(rows * ldx, 7, 8);
    float *yr = malloc(sizeof(float) * cols), *dr = malloc(sizeof(float) * cols);
    float *y0 = dup(y, rows * ldy), *dx0 = dup(dx, rows * ldx);
    sf_elu1_forward_rows(y, ldy, x, ldx, rows, cols);
    sf_elu1_backward_rows(dx, ldx, dy, ldy, x, ldx, rows, cols);
    int same = 1;
    for (long r = 0; r < rows; r++) {
        sf_elu1_forward(yr, x + r * ldx, cols);
        sf_elu1_backward(dr, dy + r * ldy, x + r * ldx, cols);
        same &= memcmp(yr, y + r * ldy, sizeof(float) * cols) == 0;
        same &= memcmp(dr, dx + r * ldx, sizeof(float) * cols) == 0;
        same &= memcmp(y0 + r * ldy + cols, y + r * ldy + cols, sizeof(float) * (ldy - cols)) == 0;
        same &= memcmp(dx0 + r * ldx + cols, dx + r * ldx + cols, sizeof(float) * (ldx - cols)) == 0;
    }
    printf("elu1 rows %ld x %d (strides %d, %d) vs row-by-row: %s\n", rows, cols, ldx, ldy, same ? "identical" : "DIFFERENT");
    CHECK(same);
    free(x), free(dy), free(y), free(dx), free(yr), free(dr), free(y0), free(dx0);
}

static void fd_act(const char *name, act_fwd fr, act_bwd gr) {
    const long n = 41;
    float *x = rnd(n, -4, 4), *dy = malloc(sizeof(float) * n), *d = malloc(sizeof(float) * n);
    for (long i = 0; i < n; i++) dy[i] = 1.0f;
    gr(d, dy, x, n);
    const double h = 1e-3;
    double worst = 0;
    for (long i = 0; i < n; i++) {
        if (fabs(x[i]) < 2 * h) continue; /* ELU+1 has a kink at 0 */
        float xp = (float)(x[i] + h), xm = (float)(x[i] - h), yp, ym;
        fr(&yp, &xp, 1), fr(&ym, &xm, 1);
        double fd = ((double)yp - ym) / ((double)xp - xm), e = fabs(fd - d[i]);
        worst = e > worst ? e : worst;
    }
    printf("%s ref backward vs finite differences: max abs err %.3g\n", name, worst);
    CHECK(worst < 1e-3);
    free(x), free(dy), free(d);
}

/* ---- dropout --------------------------------------------------------------------------- */
/* ReLU and the add (vectorised, chunked, threaded) against the plain loops they replaced: the same
 * bits for every element, including -0, NaN (ReLU -> 0) and in place, across the chunk edges. */
static void test_relu(long n) {
    float *x = malloc(sizeof(float) * (size_t)n), *dy = malloc(sizeof(float) * (size_t)n);
    float *y = malloc(sizeof(float) * (size_t)n), *dx = malloc(sizeof(float) * (size_t)n);
    sf_rng_fill_uniform(&rng, x, n, -3.0f, 3.0f);
    sf_rng_fill_uniform(&rng, dy, n, -1.0f, 1.0f);
    if (n > 3) x[0] = -0.0f, x[1] = 0.0f, x[2] = NAN, x[3] = -INFINITY;
    sf_relu_forward(y, x, n);
    sf_relu_backward(dx, dy, x, n);
    int same = 1;
    for (long i = 0; i < n; i++) {
        const float yr = x[i] > 0.0f ? x[i] : 0.0f, dr = x[i] > 0.0f ? dy[i] : 0.0f;
        if (memcmp(&y[i], &yr, sizeof yr) || memcmp(&dx[i], &dr, sizeof dr)) same = 0;
    }
    memcpy(y, x, sizeof(float) * (size_t)n); /* in place */
    sf_relu_forward(y, y, n);
    memcpy(dx, dy, sizeof(float) * (size_t)n);
    sf_relu_backward(dx, dx, x, n);
    for (long i = 0; i < n; i++) {
        const float yr = x[i] > 0.0f ? x[i] : 0.0f, dr = x[i] > 0.0f ? dy[i] : 0.0f;
        if (memcmp(&y[i], &yr, sizeof yr) || memcmp(&dx[i], &dr, sizeof dr)) same = 0;
    }
    sf_add(y, x, dy, n); /* the residual add, and in place */
    for (long i = 0; i < n; i++) {
        const float r = x[i] + dy[i];
        if (memcmp(&y[i], &r, sizeof r) && !(isnan(y[i]) && isnan(r))) same = 0;
    }
    memcpy(dx, dy, sizeof(float) * (size_t)n);
    sf_add(dx, x, dx, n);
    if (memcmp(dx, y, sizeof(float) * (size_t)n)) same = 0;
    printf("relu, add n=%ld vs plain loops (and in place): %s\n", n, same ? "identical" : "DIFFERENT");
    CHECK(same);
    free(x), free(dy), free(y), free(dx);
}

static void test_dropout(void) {
    const long n = 200003;
    float *x = rnd(n, -1, 1), *y = malloc(sizeof(float) * n), *y2 = malloc(sizeof(float) * n);
    float *dy = rnd(n, -1, 1), *dx = malloc(sizeof(float) * n);
    uint8_t *mask = malloc(n), *mask2 = malloc(n);
    sf_rng r1, r2;
    sf_rng_seed_stream(&r1, 7, 3);
    r2 = r1;
    sf_dropout_forward(y, mask, x, n, 0.0f, &r1);
    CHECK(memcmp(y, x, sizeof(float) * n) == 0);
    int all1 = 1;
    for (long i = 0; i < n; i++) all1 &= mask[i] == 1;
    CHECK(all1);
    CHECK(memcmp(&r1, &r2, sizeof r1) == 0); /* p == 0 draws nothing */
    const float p = 0.3f;
    sf_dropout_forward(y, mask, x, n, p, &r1);
    sf_dropout_forward(y2, mask2, x, n, p, &r2);
    CHECK(memcmp(mask, mask2, n) == 0 && memcmp(y, y2, sizeof(float) * n) == 0); /* reproducible */
    long dropped = 0;
    int vals_ok = 1;
    for (long i = 0; i < n; i++) {
        dropped += mask[i] == 0;
        float want = mask[i] ? x[i] / (1 - p) : 0.0f;
        if (fabsf(y[i] - want) > 1e-6f) vals_ok = 0;
    }
    double frac = (double)dropped / n;
    printf("dropout p=%.2f: dropped fraction %.4f\n", p, frac);
    CHECK(fabs(frac - p) < 0.01 && vals_ok);
    sf_dropout_backward(dx, dy, mask, n, p);
    int grad_ok = 1;
    for (long i = 0; i < n; i++)
        if (fabsf(dx[i] - (mask[i] ? dy[i] / (1 - p) : 0.0f)) > 1e-6f) grad_ok = 0;
    CHECK(grad_ok);
    /* the vectorised, threaded forward gives the plain loop's masks and values bit for bit */
    {
        float *yr = malloc(sizeof(float) * n);
        uint8_t *mr = malloc(n);
        sf_rng_seed_stream(&r1, 7, 3);
        sf_rng_seed_stream(&r2, 7, 3);
        sf_dropout_forward(y2, mask2, x, n, p, &r1);
        sf_dropout_forward_ref(yr, mr, x, n, p, &r2);
        CHECK(memcmp(mask2, mr, n) == 0 && memcmp(y2, yr, sizeof(float) * n) == 0);
        CHECK(memcmp(mask2, mask, n) == 0);
        free(yr), free(mr);
    }
    /* fused GELU + dropout = GELU then dropout, bit for bit, both directions */
    {
        float *g = malloc(sizeof(float) * n), *yf = malloc(sizeof(float) * n);
        float *d1 = malloc(sizeof(float) * n), *d2 = malloc(sizeof(float) * n);
        uint8_t *mf = malloc(n);
        sf_rng_seed_stream(&r1, 9, 1);
        sf_rng_seed_stream(&r2, 9, 1);
        sf_gelu_forward(g, x, n);
        sf_dropout_forward(g, mask2, g, n, p, &r1);
        float *gd = malloc(sizeof(float) * n), *ones = malloc(sizeof(float) * n);
        sf_gelu_dropout_forward(yf, mf, gd, x, n, p, &r2);
        CHECK(memcmp(mask2, mf, n) == 0 && memcmp(g, yf, sizeof(float) * n) == 0);
        /* the saved derivative is sf_gelu_backward's gelu'(x), bit for bit */
        for (long i = 0; i < n; i++) ones[i] = 1.0f;
        sf_gelu_backward(d1, ones, x, n);
        CHECK(memcmp(d1, gd, sizeof(float) * n) == 0);
        sf_dropout_backward(d1, dy, mf, n, p);
        sf_gelu_backward(d1, d1, x, n);
        sf_gelu_dropout_backward(d2, dy, mf, gd, n, p);
        CHECK(memcmp(d1, d2, sizeof(float) * n) == 0);
        /* in place over x, as the mlp calls it */
        float *xi2 = dup(x, n);
        sf_rng_seed_stream(&r2, 9, 1);
        sf_gelu_dropout_forward(yf, mf, xi2, xi2, n, p, &r2);
        CHECK(memcmp(g, yf, sizeof(float) * n) == 0 && memcmp(xi2, gd, sizeof(float) * n) == 0);
        free(gd), free(ones), free(xi2);
        free(g), free(yf), free(d1), free(d2), free(mf);
    }
    float *xi = dup(x, n);
    sf_rng_seed_stream(&r1, 7, 3);
    sf_dropout_forward(xi, mask2, xi, n, p, &r1); /* in place, same stream as the first p>0 call */
    CHECK(memcmp(mask, mask2, n) == 0 && memcmp(y, xi, sizeof(float) * n) == 0);
    free(x), free(y), free(y2), free(dy), free(dx), free(mask), free(mask2), free(xi);
}

int main(void) {
    sf_rng_seed(&rng, test_seed());
    test_expf();
    test_softmax(1, 1);
    test_softmax(7, 13);
    test_softmax(3000, 42); /* parallel path */
    fd_softmax();
    for (int rms = 0; rms < 2; rms++) {
        test_norm(rms, 1, rms ? 2 : 1); /* RMSNorm at D == 1 is sign(x)*w: dx is pure cancellation */
        test_norm(rms, 5, 16);
        test_norm(rms, 37, 13);
        test_norm(rms, 2000, 16);  /* PatchTST-like, parallel path */
        test_norm(rms, 300, 515);  /* odd D, several column chunks */
        fd_norm(rms);
    }
    test_batchnorm_masked(1, 4, 0);       /* one row, all valid */
    test_batchnorm_masked(5, 3, 4);       /* a single valid row (unbiased variance: the n = 1 case) */
    test_batchnorm_masked(37, 13, 9);     /* odd sizes */
    test_batchnorm_masked(4200, 16, 600); /* PatchTST-like, parallel path (N*D >= 65536) */
    test_batchnorm_masked(300, 515, 40);
    fd_batchnorm_masked();
    test_act("gelu", sf_gelu_forward, sf_gelu_forward_ref, sf_gelu_backward, sf_gelu_backward_ref, 100003, 6.0f);
    test_act("gelu", sf_gelu_forward, sf_gelu_forward_ref, sf_gelu_backward, sf_gelu_backward_ref, 1001, 30.0f);
    test_act("elu1", sf_elu1_forward, sf_elu1_forward_ref, sf_elu1_backward, sf_elu1_backward_ref, 100003, 6.0f);
    test_act("elu1", sf_elu1_forward, sf_elu1_forward_ref, sf_elu1_backward, sf_elu1_backward_ref, 1001, 90.0f);
    fd_act("gelu", sf_gelu_forward_ref, sf_gelu_backward_ref);
    fd_act("elu1", sf_elu1_forward_ref, sf_elu1_backward_ref);
    test_relu(37);
    test_relu(100003);
    test_elu1_rows(37, 16);
    test_elu1_rows(5000, 16);
    test_dropout();
    return test_finish();
}
