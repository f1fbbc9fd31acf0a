/* The light-curve GP (data/gp.c):
 *  1. LAPACK path vs a plain O(n^3) Cholesky log-likelihood and posterior written here, on
 *     fresh random inputs (seed printed);
 *  2. the analytic gradient vs central finite differences;
 *  3. vs the independent NumPy/SciPy reference (tools/reference/gp_reference.py ->
 *     tests/fixtures/gp_rrlyrae.json) on real RR Lyrae stars: the starting guess, the
 *     log-likelihood and gradient at two points, the optimum found by SciPy's L-BFGS-B, and
 *     the posterior mean/std on the 100 x 5 grid;
 *  4. optimiser behaviour at a bound and with the amplitude fixed. */
#include <cjson/cJSON.h>
#include <math.h>
#include <string.h>

#include "core/error.h"
#include "core/fileio.h"
#include "core/rng.h"
#include "data/gp.h"
#include "test_util.h"

/* ---------------------------------------------------------- plain reference */

/* Lower Cholesky in place (row-major n x n); 0 ok, -1 not positive definite. */
static int chol_ref(double *A, int n) {
    for (int j = 0; j < n; j++) {
        double s = A[j * n + j];
        for (int k = 0; k < j; k++) s -= A[j * n + k] * A[j * n + k];
        if (!(s > 0)) return -1;
        A[j * n + j] = sqrt(s);
        for (int i = j + 1; i < n; i++) {
            double v = A[i * n + j];
            for (int k = 0; k < j; k++) v -= A[i * n + k] * A[j * n + k];
            A[i * n + j] = v / A[j * n + j];
        }
    }
    return 0;
}

/* Solve L L^T x = b in place. */
static void chol_solve_ref(const double *L, int n, double *b) {
    for (int i = 0; i < n; i++) {
        for (int k = 0; k < i; k++) b[i] -= L[i * n + k] * b[k];
        b[i] /= L[i * n + i];
    }
    for (int i = n - 1; i >= 0; i--) {
        for (int k = i + 1; k < n; k++) b[i] -= L[k * n + i] * b[k];
        b[i] /= L[i * n + i];
    }
}

static double kern_ref(const sf_gp_hyper *h, double t1, double w1, double t2, double w2) {
    double r2 = (t1 - t2) * (t1 - t2) / exp(h->log_metric_t) + (w1 - w2) * (w1 - w2) / exp(h->log_metric_w);
    double s = sqrt(3 * r2);
    return exp(h->log_const) * (1 + s) * exp(-s);
}

static double *cov_ref(const sf_gp_data *d, const sf_gp_hyper *h) {
    int n = d->n;
    double *K = malloc(sizeof(double) * n * n);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++)
            K[i * n + j] = kern_ref(h, d->t[i], d->w[i], d->t[j], d->w[j]) +
                           (i == j ? d->yerr[i] * d->yerr[i] + SF_GP_TINY : 0);
    return K;
}

static int loglik_ref(const sf_gp_data *d, const sf_gp_hyper *h, double *ll) {
    int n = d->n;
    double *K = cov_ref(d, h), *a = malloc(sizeof(double) * n);
    int rc = chol_ref(K, n);
    if (rc == 0) {
        memcpy(a, d->y, sizeof(double) * n);
        chol_solve_ref(K, n, a);
        double q = 0, ld = 0;
        for (int i = 0; i < n; i++) q += d->y[i] * a[i], ld += 2 * log(K[i * n + i]);
        *ll = -0.5 * (q + ld + n * log(2 * M_PI));
    }
    free(K);
    free(a);
    return rc;
}

static void predict_ref(const sf_gp_data *d, const sf_gp_hyper *h, int m, const double *tq,
                        const double *wq, double *mean, double *std) {
    int n = d->n;
    double *L = cov_ref(d, h), *a = malloc(sizeof(double) * n), *v = malloc(sizeof(double) * n);
    CHECK(chol_ref(L, n) == 0);
    memcpy(a, d->y, sizeof(double) * n);
    chol_solve_ref(L, n, a);
    for (int j = 0; j < m; j++) {
        double mu = 0;
        for (int i = 0; i < n; i++) {
            v[i] = kern_ref(h, d->t[i], d->w[i], tq[j], wq[j]);
            mu += v[i] * a[i];
        }
        mean[j] = mu;
        double kk = kern_ref(h, tq[j], wq[j], tq[j], wq[j]), q = 0;
        double *s = malloc(sizeof(double) * n);
        memcpy(s, v, sizeof(double) * n);
        chol_solve_ref(L, n, s);
        for (int i = 0; i < n; i++) q += v[i] * s[i];
        std[j] = sqrt(fmax(kk - q, 0));
        free(s);
    }
    free(L);
    free(a);
    free(v);
}

/* ------------------------------------------------------------ random data */

typedef struct {
    double t[200], w[200], y[200], e[200];
    sf_gp_data d;
} rand_lc;

static const double WAVES[5] = {3551, 4686, 6166, 7480, 8932};

static void make_random(sf_rng *r, rand_lc *x, int n) {
    double tt = 0;
    double amp = 100 + 1000 * sf_rng_uniform(r);
    for (int i = 0; i < n; i++) {
        tt += 0.01 + 5 * sf_rng_uniform(r);
        x->t[i] = tt;
        x->w[i] = WAVES[sf_rng_below(r, 5)];
        x->e[i] = amp * (0.01 + 0.2 * sf_rng_uniform(r));
        x->y[i] = amp * (1 + 0.3 * sin(tt / 7.0) - 0.2 * (x->w[i] - 6000) / 3000) + x->e[i] * sf_rng_normal(r);
    }
    x->d = (sf_gp_data){n, x->t, x->w, x->y, x->e};
}

static void test_random(uint64_t seed) {
    sf_rng r;
    sf_rng_seed(&r, seed);
    double worst_ll = 0, worst_mu = 0, worst_sd = 0, worst_g = 0;
    for (int trial = 0; trial < 12; trial++) {
        rand_lc x;
        int n = 2 + (int)sf_rng_below(&r, 150);
        make_random(&r, &x, n);
        sf_gp_fit_opts o;
        sf_gp_fit_opts_init(&o);
        sf_gp_hyper h = sf_gp_initial_guess(&x.d, &o);
        h.log_const += 2 * sf_rng_uniform(&r) - 1;
        h.log_metric_t = log(pow(0.5 + 40 * sf_rng_uniform(&r), 2));
        double ll = 0, llr = 0, g[2] = {0, 0};
        CHECK(sf_gp_loglik(&x.d, &h, &ll, g) == SF_OK);
        CHECK(loglik_ref(&x.d, &h, &llr) == 0);
        worst_ll = fmax(worst_ll, fabs(ll - llr) / fmax(1, fabs(llr)));
        /* gradient vs central differences in (log c, log M_t) */
        for (int k = 0; k < 2; k++) {
            double eps = 1e-5, lp, lm;
            sf_gp_hyper hp = h, hm = h;
            if (k == 0) hp.log_const += eps, hm.log_const -= eps;
            else hp.log_metric_t += eps, hm.log_metric_t -= eps;
            CHECK(sf_gp_loglik(&x.d, &hp, &lp, NULL) == SF_OK);
            CHECK(sf_gp_loglik(&x.d, &hm, &lm, NULL) == SF_OK);
            double fd = (lp - lm) / (2 * eps);
            worst_g = fmax(worst_g, fabs(fd - g[k]) / fmax(1, fabs(g[k])));
        }
        int m = 37;
        double tq[37], wq[37], mu[37], sd[37], mur[37], sdr[37], scale = 0;
        for (int j = 0; j < m; j++) {
            tq[j] = x.t[n - 1] * j / (m - 1) + 0.5 * sf_rng_normal(&r);
            wq[j] = WAVES[j % 5];
        }
        CHECK(sf_gp_predict(&x.d, &h, m, tq, wq, mu, sd) == SF_OK);
        predict_ref(&x.d, &h, m, tq, wq, mur, sdr);
        for (int j = 0; j < m; j++) scale = fmax(scale, fabs(mur[j]));
        for (int j = 0; j < m; j++) {
            worst_mu = fmax(worst_mu, fabs(mu[j] - mur[j]) / scale);
            worst_sd = fmax(worst_sd, fabs(sd[j] - sdr[j]) / sqrt(exp(h.log_const)));
        }
    }
    printf("random (12 curves, n 2..151): LAPACK vs plain Cholesky: log L rel %.2e, mean rel %.2e, "
           "std rel %.2e; gradient vs central differences rel %.2e\n",
           worst_ll, worst_mu, worst_sd, worst_g);
    CHECK(worst_ll < 1e-11);
    CHECK(worst_mu < 1e-11);
    CHECK(worst_sd < 1e-9); /* sqrt of a difference near 0 amplifies rounding */
    CHECK(worst_g < 1e-5);
}

/* ---------------------------------------------------------- SciPy fixture */

static double *num_array(const cJSON *o, const char *key, int *n) {
    const cJSON *a = cJSON_GetObjectItem(o, key);
    int m = cJSON_GetArraySize(a);
    double *v = malloc(sizeof(double) * (m ? m : 1));
    for (int i = 0; i < m; i++) v[i] = cJSON_GetArrayItem(a, i)->valuedouble;
    if (n) *n = m;
    return v;
}

static double num(const cJSON *o, const char *key) {
    return cJSON_GetObjectItem(o, key)->valuedouble;
}

static void test_fixture(void) {
    void *text;
    size_t len;
    if (sf_read_file("tests/fixtures/gp_rrlyrae.json", &text, &len) != SF_OK) {
        CHECK_MSG(0, "%s", sf_error_message());
        return;
    }
    cJSON *root = cJSON_Parse(text);
    free(text);
    CHECK(root != NULL);
    if (!root) return;
    const cJSON *objs = cJSON_GetObjectItem(root, "objects");
    int steps = cJSON_GetObjectItem(root, "steps")->valueint;
    const cJSON *o;
    cJSON_ArrayForEach(o, objs) {
        const char *id = cJSON_GetObjectItem(o, "id")->valuestring;
        int n;
        double *t = num_array(o, "t", &n), *w = num_array(o, "w", NULL), *y = num_array(o, "y", NULL),
               *e = num_array(o, "yerr", NULL);
        double *p0 = num_array(o, "p0", NULL), *p1 = num_array(o, "p1", NULL),
               *g0 = num_array(o, "grad0", NULL), *g1 = num_array(o, "grad1", NULL),
               *popt = num_array(o, "p_opt", NULL);
        int m;
        double *gm = num_array(o, "grid_mean", &m), *gs = num_array(o, "grid_std", NULL);
        double lmw = num(o, "log_metric_w");
        sf_gp_data d = {n, t, w, y, e};
        sf_gp_fit_opts fo;
        sf_gp_fit_opts_init(&fo);
        sf_gp_hyper h0 = sf_gp_initial_guess(&d, &fo);
        CHECK_NEAR(h0.log_const, p0[0], 1e-12);
        CHECK_NEAR(h0.log_metric_t, p0[1], 1e-12);
        CHECK_NEAR(h0.log_metric_w, lmw, 1e-12);
        double ll, g[2], worst = 0;
        const double *pp[2] = {p0, p1}, *gg[2] = {g0, g1};
        const char *llk[2] = {"ll0", "ll1"};
        for (int q = 0; q < 2; q++) {
            sf_gp_hyper h = {pp[q][0], pp[q][1], lmw};
            CHECK(sf_gp_loglik(&d, &h, &ll, g) == SF_OK);
            double ref = num(o, llk[q]);
            worst = fmax(worst, fabs(ll - ref) / fabs(ref));
            for (int k = 0; k < 2; k++) worst = fmax(worst, fabs(g[k] - gg[q][k]) / fmax(1, fabs(gg[q][k])));
        }
        sf_gp_fit_result fr;
        sf_gp_fit(&d, &fo, &fr);
        double ll_opt = num(o, "ll_opt");
        sf_gp_hyper hopt = {popt[0], popt[1], lmw};
        double *mu = malloc(sizeof(double) * m), *sd = malloc(sizeof(double) * m);
        double *tq = malloc(sizeof(double) * m), *wq = malloc(sizeof(double) * m);
        for (int j = 0; j < m; j++) {
            tq[j] = t[n - 1] * (j % steps) / (steps - 1);
            wq[j] = WAVES[j / steps];
        }
        CHECK(sf_gp_predict(&d, &hopt, m, tq, wq, mu, sd) == SF_OK);
        double scale = 0, wm = 0, ws = 0;
        for (int j = 0; j < m; j++) scale = fmax(scale, fabs(gm[j]));
        for (int j = 0; j < m; j++) {
            wm = fmax(wm, fabs(mu[j] - gm[j]) / scale);
            ws = fmax(ws, fabs(sd[j] - gs[j]) / sqrt(exp(popt[0])));
        }
        printf("object %s (n=%d): log L / gradient vs NumPy rel %.2e; fit: %d iters, %d evals, "
               "p = (%.6f, %.6f), |p - SciPy p| = (%.1e, %.1e), log L - SciPy's %.1e; grid mean "
               "rel %.2e, std rel %.2e\n",
               id, n, worst, fr.iters, fr.evals, fr.hyper.log_const, fr.hyper.log_metric_t,
               fabs(fr.hyper.log_const - popt[0]), fabs(fr.hyper.log_metric_t - popt[1]),
               fr.loglik - ll_opt, wm, ws);
        CHECK(worst < 1e-10);
        CHECK(fr.converged && !fr.fell_back);
        /* Same optimum: log L not below SciPy's by more than 1e-9 relative, parameters 1e-5. */
        CHECK(fr.loglik >= ll_opt - 1e-9 * fabs(ll_opt));
        CHECK_NEAR(fr.hyper.log_const, popt[0], 1e-5);
        CHECK_NEAR(fr.hyper.log_metric_t, popt[1], 1e-5);
        CHECK(wm < 1e-11);
        CHECK(ws < 1e-9);
        free(t), free(w), free(y), free(e), free(p0), free(p1), free(g0), free(g1), free(popt);
        free(gm), free(gs), free(mu), free(sd), free(tq), free(wq);
    }
    cJSON_Delete(root);
}

/* ------------------------------------------------------- optimiser corners */

static void test_optimiser(uint64_t seed) {
    sf_rng r;
    sf_rng_seed(&r, seed ^ 0x5eed);
    /* Pure white noise around a constant: the best time length-scale is short, so the fit
     * should end at (or near) the 1-day lower bound with a non-positive projected gradient. */
    rand_lc x;
    int n = 80;
    make_random(&r, &x, n);
    for (int i = 0; i < n; i++) x.y[i] = 1000 + 300 * sf_rng_normal(&r), x.e[i] = 10;
    sf_gp_fit_opts o;
    sf_gp_fit_opts_init(&o);
    sf_gp_fit_result fr;
    sf_gp_fit(&x.d, &o, &fr);
    double ll, g[2];
    CHECK(sf_gp_loglik(&x.d, &fr.hyper, &ll, g) == SF_OK);
    CHECK(fr.converged);
    CHECK_NEAR(ll, fr.loglik, 1e-9 * fabs(ll));
    /* KKT: interior -> gradient ~0; at the lower bound -> d logL / d p <= 0. */
    if (fr.hyper.log_metric_t > 1e-9) CHECK_MSG(fabs(g[1]) < 1e-3, "g1=%g", g[1]);
    else CHECK_MSG(g[1] <= 1e-6, "g1=%g", g[1]);
    CHECK_MSG(fabs(g[0]) < 1e-3, "g0=%g", g[0]);
    printf("white noise: l_t = %.3g d, log L %.4f, gradient (%.2e, %.2e), %d iters\n",
           exp(0.5 * fr.hyper.log_metric_t), fr.loglik, g[0], g[1], fr.iters);
    /* Fixed amplitude: only the time scale moves, and the result is at least as good as the
     * start. */
    o.fit_amplitude = 0;
    sf_gp_fit_result f2;
    sf_gp_fit(&x.d, &o, &f2);
    CHECK(f2.hyper.log_const == f2.init.log_const);
    double ll0;
    CHECK(sf_gp_loglik(&x.d, &f2.init, &ll0, NULL) == SF_OK);
    CHECK(f2.loglik >= ll0);
    CHECK(f2.converged);
    /* Two observations (the minimum the loader lets through) still fit. */
    rand_lc x2;
    make_random(&r, &x2, 2);
    sf_gp_fit_opts_init(&o);
    sf_gp_fit(&x2.d, &o, &f2);
    CHECK(!f2.fell_back && isfinite(f2.loglik));
}

int main(void) {
    uint64_t seed = test_seed();
    test_random(seed);
    test_fixture();
    test_optimiser(seed);
    return test_finish();
}
