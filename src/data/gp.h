/* Two-dimensional Gaussian-process regression over (time, wavelength), as t2's preprocessing
 * (tallamjr/astronet, preprocess.py::fit_2d_gp, built on george):
 *
 *   k(x, x') = c * (1 + sqrt(3 r2)) exp(-sqrt(3 r2)),   r2 = dt^2 / M_t + dw^2 / M_w
 *
 * i.e. george's ConstantKernel(log_constant = log c) * Matern32Kernel(metric = [M_t, M_w],
 * ndim = 2). george's axis-aligned metric divides squared distances by the metric entries,
 * so M_t and M_w are squared length-scales: M_t = l_t^2, M_w = (6000 A)^2. The covariance of
 * the data adds yerr^2 + 1.25e-12 (george's default white noise, log(TINY)) on the diagonal;
 * the mean is 0.
 *
 * Hyper-parameters live in george's parameter space: p = (log c, log M_t) with log M_w frozen.
 * astronet starts at c = (0.5 * |flux at max S/N|)^2 (S/N = |f| / sqrt(err^2 + (0.01 max f)^2))
 * and l_t = 20 days, and maximises the marginal likelihood over BOTH p[0] and p[1] with
 * L-BFGS-B inside the bounds p[0] in [p0[0] - 10, p0[0] + 10], p[1] in [0, log(1000^2)].
 * sf_gp_fit does the same with its own projected BFGS on the analytic gradient; with
 * fit_amplitude = 0 it keeps c at the initial guess and fits only log M_t.
 *
 * All linear algebra is in double precision with LAPACK's Cholesky (dpotrf_/dpotrs_/dpotri_/
 * dtrtrs_), always on the calling thread (OpenBLAS's LAPACK is kept serial; parallelise across
 * objects instead). Functions allocate their own scratch memory (O(n^2)); they are
 * thread-safe. */
#ifndef SF_DATA_GP_H
#define SF_DATA_GP_H

#define SF_GP_TINY 1.25e-12 /* george's default white-noise variance */

typedef struct {
    double log_const;    /* log c (kernel variance) */
    double log_metric_t; /* log l_t^2, l_t in days */
    double log_metric_w; /* log l_w^2, l_w in Angstrom (fixed while fitting) */
} sf_gp_hyper;

typedef struct {
    int n;
    const double *t;    /* [n] time */
    const double *w;    /* [n] wavelength */
    const double *y;    /* [n] flux */
    const double *yerr; /* [n] flux error */
} sf_gp_data;

typedef struct {
    double guess_length;  /* initial time length-scale (days); 0 = 20 */
    double wave_length;   /* fixed wavelength length-scale (Angstrom); 0 = 6000 */
    int fit_amplitude;    /* 1 = fit log c too (astronet); 0 = keep the S/N guess */
    int max_iter;         /* 0 = 200 */
    double gtol;          /* stop when the projected gradient's max |.| is below; 0 = 1e-6 */
    double ftol;          /* stop when the relative decrease of -log L is below; 0 = 1e-12 */
} sf_gp_fit_opts;

typedef struct {
    sf_gp_hyper init; /* the starting point (astronet's guess) */
    sf_gp_hyper hyper;/* the result */
    double loglik;    /* log marginal likelihood at hyper */
    int iters, evals;
    int converged;    /* 1 when a stopping test was met */
    int fell_back;    /* 1 when not even the starting point could be evaluated (hyper = init) */
} sf_gp_fit_result;

void sf_gp_fit_opts_init(sf_gp_fit_opts *o); /* fit_amplitude = 1, the rest 0 (defaults) */

/* Matern-3/2 correlation of a scaled squared distance r2. */
double sf_gp_matern32(double r2);

/* astronet's starting point for this data: c from the max-S/N flux, l_t = guess_length. */
sf_gp_hyper sf_gp_initial_guess(const sf_gp_data *d, const sf_gp_fit_opts *o);

/* log marginal likelihood, and its gradient with respect to (log c, log M_t) when grad is not
 * NULL. SF_ERR (no message) when the covariance is not numerically positive definite. */
int sf_gp_loglik(const sf_gp_data *d, const sf_gp_hyper *h, double *ll, double *grad);

/* Maximise the likelihood (see above). Always fills *r; SF_OK. */
int sf_gp_fit(const sf_gp_data *d, const sf_gp_fit_opts *o, sf_gp_fit_result *r);

/* Posterior mean and standard deviation at m points (tq, wq); std may be NULL. SF_ERR (no
 * message) when the covariance is not positive definite. */
int sf_gp_predict(const sf_gp_data *d, const sf_gp_hyper *h, int m, const double *tq,
                  const double *wq, double *mean, double *std);

#endif
