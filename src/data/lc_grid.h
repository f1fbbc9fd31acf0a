/* Light curves -> regular grids, as t2's preprocessing (astronet generate_gp_all_objects):
 * per object, a 2-D GP (data/gp.h) is fitted to all its observations and its posterior mean
 * is sampled at `steps` evenly spaced times from the first to the last observation, at the
 * effective wavelength of every band of the band set.
 *
 * Trimming: astronet keeps the observations within 50 days of the first and last *detected*
 * point (PLAsTiCC's detected flag) and shifts times to start at 0. Long-format files without
 * a detection flag (SDSS Stripe 82: every row is a measured magnitude) count every kept row
 * as detected, so the trim keeps all rows; only the shift to t = 0 applies (the GP is
 * stationary, so the shift does not change the fit). */
#ifndef SF_DATA_LC_GRID_H
#define SF_DATA_LC_GRID_H

#include "data/gp.h"
#include "data/lightcurves.h"

typedef struct {
    int steps;           /* grid points per band; 0 = 100 */
    sf_gp_fit_opts fit;
} sf_lc_grid_opts;

typedef struct {
    int n_objects, n_bands, steps;
    float *values;           /* [n_objects][n_bands][steps] GP mean flux */
    double *span;            /* [n_objects] last - first observation time (days) */
    sf_gp_fit_result *fits;  /* [n_objects] */
} sf_lc_grid;

void sf_lc_grid_opts_init(sf_lc_grid_opts *o);

/* Fit and sample every object; OpenMP over objects (threads as set by the caller).
 * SF_ERR (message names the object) only if a posterior cannot be computed. */
int sf_lc_grid_build(const sf_lc_set *s, const sf_lc_grid_opts *o, sf_lc_grid *out);
void sf_lc_grid_free(sf_lc_grid *g);

/* The GP data of one object (times shifted to start at 0; wavelengths from the band set);
 * t and w are caller-provided arrays of lc->n doubles. */
void sf_lc_gp_data(const sf_lightcurve *lc, const sf_bandset *b, double *t, double *w,
                   sf_gp_data *d);

#endif
