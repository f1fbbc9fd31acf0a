#include "data/gp.h"

#include <float.h>
#include <math.h>
#include <omp.h>
#include <string.h>

#include "core/error.h"
#include "kernels/lapack.h"

void sf_gp_fit_opts_init(sf_gp_fit_opts *o) {
    memset(o, 0, sizeof *o);
    o->fit_amplitude = 1;
}

double sf_gp_matern32(double r2) {
    double s = sqrt(3.0 * r2);
    return (1.0 + s) * exp(-s);
}

sf_gp_hyper sf_gp_initial_guess(const sf_gp_data *d, const sf_gp_fit_opts *o) {
    double lt = o->guess_length > 0 ? o->guess_length : 20.0;
    double lw = o->wave_length > 0 ? o->wave_length : 6000.0;
    double fmax = -DBL_MAX;
    for (int i = 0; i < d->n; i++) fmax = d->y[i] > fmax ? d->y[i] : fmax;
    /* Highest S/N with a 1% error floor, so very bright points do not all tie; the first
     * maximum wins (pandas idxmax). */
    double floor2 = (1e-2 * fmax) * (1e-2 * fmax), best = -1;
    int ib = 0;
    for (int i = 0; i < d->n; i++) {
        double sn = fabs(d->y[i]) / sqrt(d->yerr[i] * d->yerr[i] + floor2);
        if (sn > best) best = sn, ib = i;
    }
    double scale = fabs(d->y[ib]);
    sf_gp_hyper h = {log(0.25 * scale * scale), log(lt * lt), log(lw * lw)};
    return h;
}

/* Column-major n x n covariance of the data (lower triangle filled, and the upper too). */
static void build_cov(const sf_gp_data *d, const sf_gp_hyper *h, double *K) {
    int n = d->n;
    double c = exp(h->log_const), it = exp(-h->log_metric_t), iw = exp(-h->log_metric_w);
    for (int j = 0; j < n; j++) {
        K[j + (size_t)n * j] = c + d->yerr[j] * d->yerr[j] + SF_GP_TINY;
        for (int i = j + 1; i < n; i++) {
            double dt = d->t[i] - d->t[j], dw = d->w[i] - d->w[j];
            double v = c * sf_gp_matern32(dt * dt * it + dw * dw * iw);
            K[i + (size_t)n * j] = v;
            K[j + (size_t)n * i] = v;
        }
    }
}

/* Factor K (in place, lower) and solve alpha = K^-1 y. Returns log det K, or NAN when K is
 * not positive definite. */
static double factor_solve(const sf_gp_data *d, double *K, double *alpha) {
    int n = d->n, info = 0, one = 1;
    dpotrf_("L", &n, K, &n, &info, 1);
    if (info != 0) return NAN;
    double logdet = 0;
    for (int i = 0; i < n; i++) logdet += 2.0 * log(K[i + (size_t)n * i]);
    memcpy(alpha, d->y, sizeof(double) * (size_t)n);
    dpotrs_("L", &n, &one, K, &n, alpha, &n, &info, 1);
    if (info != 0) return NAN;
    return logdet;
}

static int loglik_impl(const sf_gp_data *d, const sf_gp_hyper *h, double *ll, double *grad) {
    int n = d->n;
    double *K = sf_malloc(sizeof(double) * (size_t)n * (size_t)n);
    double *alpha = sf_malloc(sizeof(double) * (size_t)n);
    build_cov(d, h, K);
    double logdet = factor_solve(d, K, alpha);
    int rc = SF_ERR;
    if (isnan(logdet)) goto done;
    double quad = 0;
    for (int i = 0; i < n; i++) quad += d->y[i] * alpha[i];
    *ll = -0.5 * (quad + logdet + n * log(2.0 * M_PI));
    if (!isfinite(*ll)) goto done;
    if (grad) {
        /* d log L / dp = 1/2 tr((alpha alpha^T - K^-1) dK/dp), summed over the lower
         * triangle with off-diagonal terms twice. dK/dlog c = the kernel part of K;
         * dK/dlog M_t = c * 1.5 exp(-s) * dt^2 / M_t (from dk/dr2 = -1.5 exp(-s)). */
        int info = 0;
        dpotri_("L", &n, K, &n, &info, 1);
        if (info != 0) goto done;
        double c = exp(h->log_const), it = exp(-h->log_metric_t), iw = exp(-h->log_metric_w);
        double g0 = 0, g1 = 0;
        for (int j = 0; j < n; j++) {
            double a = alpha[j] * alpha[j] - K[j + (size_t)n * j];
            g0 += 0.5 * a * c;
            for (int i = j + 1; i < n; i++) {
                double dt = d->t[i] - d->t[j], dw = d->w[i] - d->w[j];
                double r2 = dt * dt * it + dw * dw * iw, s = sqrt(3.0 * r2), e = exp(-s);
                double A = alpha[i] * alpha[j] - K[i + (size_t)n * j];
                g0 += A * c * (1.0 + s) * e;
                g1 += A * c * 1.5 * e * dt * dt * it;
            }
        }
        grad[0] = g0;
        grad[1] = g1;
    }
    rc = SF_OK;
done:
    free(K);
    free(alpha);
    return rc;
}

/* -log L and its gradient in p = (log c, log M_t); +inf when not computable. */
static double objective(const sf_gp_data *d, const double p[2], double log_mw, double g[2],
                        int *evals) {
    sf_gp_hyper h = {p[0], p[1], log_mw};
    double ll, gr[2];
    (*evals)++;
    if (loglik_impl(d, &h, &ll, gr) != SF_OK) return INFINITY;
    g[0] = -gr[0];
    g[1] = -gr[1];
    return -ll;
}

static void fit_impl(const sf_gp_data *d, const sf_gp_fit_opts *o, sf_gp_fit_result *r) {
    memset(r, 0, sizeof *r);
    int max_iter = o->max_iter > 0 ? o->max_iter : 200;
    double gtol = o->gtol > 0 ? o->gtol : 1e-6, ftol = o->ftol > 0 ? o->ftol : 1e-12;
    r->init = sf_gp_initial_guess(d, o);
    r->hyper = r->init;
    double lo[2] = {r->init.log_const - 10, 0}, hi[2] = {r->init.log_const + 10, log(1e6)};
    int free_var[2] = {o->fit_amplitude != 0, 1};
    double x[2] = {r->init.log_const, r->init.log_metric_t}, g[2];
    /* The guess may lie outside astronet's time bounds only if guess_length < 1 day. */
    for (int k = 0; k < 2; k++) x[k] = x[k] < lo[k] ? lo[k] : x[k] > hi[k] ? hi[k] : x[k];
    double f = objective(d, x, r->init.log_metric_w, g, &r->evals);
    if (!isfinite(f)) {
        r->fell_back = 1;
        r->loglik = -INFINITY;
        return;
    }
    /* Projected BFGS on the (at most 2) free variables: H approximates the inverse Hessian,
     * reset to a scaled identity when a step fails to descend. */
    double H[2][2] = {{1, 0}, {0, 1}};
    int fresh = 1; /* H is the identity (first step or after a reset) */
    for (r->iters = 0; r->iters < max_iter; r->iters++) {
        double pg[2];
        for (int k = 0; k < 2; k++) {
            int at_lo = x[k] <= lo[k] && g[k] > 0, at_hi = x[k] >= hi[k] && g[k] < 0;
            pg[k] = (!free_var[k] || at_lo || at_hi) ? 0 : g[k];
        }
        if (fmax(fabs(pg[0]), fabs(pg[1])) <= gtol) {
            r->converged = 1;
            break;
        }
        double dir[2];
        for (int k = 0; k < 2; k++) dir[k] = -(H[k][0] * pg[0] + H[k][1] * pg[1]);
        for (int k = 0; k < 2; k++)
            if (pg[k] == 0) dir[k] = 0;
        double slope = dir[0] * pg[0] + dir[1] * pg[1];
        if (fresh || !(slope < 0)) {
            /* Steepest descent, first move at most one unit in log space. */
            double gm = fmax(1.0, fmax(fabs(pg[0]), fabs(pg[1])));
            dir[0] = -pg[0] / gm;
            dir[1] = -pg[1] / gm;
            H[0][0] = H[1][1] = 1.0 / gm;
            H[0][1] = H[1][0] = 0;
            fresh = 1;
        }
        /* Armijo backtracking along the projected path. */
        double step = 1, xn[2], gn[2], fn = INFINITY;
        int ok = 0;
        for (int ls = 0; ls < 60; ls++, step *= 0.5) {
            for (int k = 0; k < 2; k++) {
                xn[k] = x[k] + step * dir[k];
                xn[k] = xn[k] < lo[k] ? lo[k] : xn[k] > hi[k] ? hi[k] : xn[k];
            }
            double dec = g[0] * (xn[0] - x[0]) + g[1] * (xn[1] - x[1]);
            fn = objective(d, xn, r->init.log_metric_w, gn, &r->evals);
            if (isfinite(fn) && fn <= f + 1e-4 * dec) {
                ok = 1;
                break;
            }
        }
        if (!ok) {
            if (fresh) { /* no descent even along the gradient: numerically optimal */
                r->converged = 1;
                break;
            }
            H[0][0] = H[1][1] = 1;
            H[0][1] = H[1][0] = 0;
            fresh = 1;
            continue;
        }
        double s[2] = {xn[0] - x[0], xn[1] - x[1]}, yv[2] = {gn[0] - g[0], gn[1] - g[1]};
        for (int k = 0; k < 2; k++)
            if (!free_var[k]) yv[k] = 0;
        double sy = s[0] * yv[0] + s[1] * yv[1], yy = yv[0] * yv[0] + yv[1] * yv[1];
        if (sy > 1e-12 * sqrt((s[0] * s[0] + s[1] * s[1]) * yy)) {
            if (fresh) { /* scale the identity by the observed curvature first */
                H[0][0] = H[1][1] = sy / yy;
                H[0][1] = H[1][0] = 0;
                fresh = 0;
            }
            /* H <- (I - rho s y^T) H (I - rho y s^T) + rho s s^T */
            double rho = 1.0 / sy, Hy[2], yHy;
            Hy[0] = H[0][0] * yv[0] + H[0][1] * yv[1];
            Hy[1] = H[1][0] * yv[0] + H[1][1] * yv[1];
            yHy = yv[0] * Hy[0] + yv[1] * Hy[1];
            for (int a = 0; a < 2; a++)
                for (int b = 0; b < 2; b++)
                    H[a][b] += -rho * (s[a] * Hy[b] + Hy[a] * s[b]) +
                               (rho * rho * yHy + rho) * s[a] * s[b];
        }
        double rel = (f - fn) / fmax(fmax(fabs(f), fabs(fn)), 1.0);
        x[0] = xn[0], x[1] = xn[1], g[0] = gn[0], g[1] = gn[1], f = fn;
        if (rel <= ftol) {
            r->converged = 1;
            r->iters++;
            break;
        }
    }
    r->hyper.log_const = x[0];
    r->hyper.log_metric_t = x[1];
    r->loglik = -f;
}

static int predict_impl(const sf_gp_data *d, const sf_gp_hyper *h, int m, const double *tq,
                        const double *wq, double *mean, double *std) {
    int n = d->n, info = 0;
    double *K = sf_malloc(sizeof(double) * (size_t)n * (size_t)n);
    double *alpha = sf_malloc(sizeof(double) * (size_t)n);
    double *Ks = sf_malloc(sizeof(double) * (size_t)n * (size_t)m);
    int rc = SF_ERR;
    build_cov(d, h, K);
    if (isnan(factor_solve(d, K, alpha))) goto done;
    double c = exp(h->log_const), it = exp(-h->log_metric_t), iw = exp(-h->log_metric_w);
    for (int j = 0; j < m; j++) {
        double mu = 0;
        for (int i = 0; i < n; i++) {
            double dt = d->t[i] - tq[j], dw = d->w[i] - wq[j];
            double k = c * sf_gp_matern32(dt * dt * it + dw * dw * iw);
            Ks[i + (size_t)n * j] = k;
            mu += k * alpha[i];
        }
        mean[j] = mu;
    }
    if (std) {
        /* var = c - |L^-1 k*|^2, clamped at 0 against rounding. */
        dtrtrs_("L", "N", "N", &n, &m, K, &n, Ks, &n, &info, 1, 1, 1);
        if (info != 0) goto done;
        for (int j = 0; j < m; j++) {
            double q = 0;
            for (int i = 0; i < n; i++) q += Ks[i + (size_t)n * j] * Ks[i + (size_t)n * j];
            double v = c - q;
            std[j] = sqrt(v > 0 ? v : 0);
        }
    }
    rc = SF_OK;
done:
    free(K);
    free(alpha);
    free(Ks);
    return rc;
}

/* The public entry points run their LAPACK calls on the calling thread only. OpenBLAS's
 * OpenMP build threads dpotrf & co. whenever omp_get_max_threads() > 1 outside a parallel
 * region, which for these small matrices only costs (measured: 50x the CPU time of the whole
 * GP test with OMP_NUM_THREADS=2 on a loaded machine). A one-thread region whose task sets its
 * own nthreads ICV to 1 makes OpenBLAS stay serial without touching the caller's setting;
 * parallelism belongs to the caller, across objects (lc_grid.c). */
int sf_gp_loglik(const sf_gp_data *d, const sf_gp_hyper *h, double *ll, double *grad) {
    int rc = SF_ERR;
#pragma omp parallel num_threads(1)
    {
        omp_set_num_threads(1);
        rc = loglik_impl(d, h, ll, grad);
    }
    return rc;
}

int sf_gp_fit(const sf_gp_data *d, const sf_gp_fit_opts *o, sf_gp_fit_result *r) {
#pragma omp parallel num_threads(1)
    {
        omp_set_num_threads(1);
        fit_impl(d, o, r);
    }
    return SF_OK;
}

int sf_gp_predict(const sf_gp_data *d, const sf_gp_hyper *h, int m, const double *tq,
                  const double *wq, double *mean, double *std) {
    int rc = SF_ERR;
#pragma omp parallel num_threads(1)
    {
        omp_set_num_threads(1);
        rc = predict_impl(d, h, m, tq, wq, mean, std);
    }
    return rc;
}
