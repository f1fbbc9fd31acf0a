#include "data/lc_grid.h"

#include <string.h>

#include "core/error.h"

void sf_lc_grid_opts_init(sf_lc_grid_opts *o) {
    memset(o, 0, sizeof *o);
    sf_gp_fit_opts_init(&o->fit);
}

void sf_lc_gp_data(const sf_lightcurve *lc, const sf_bandset *b, double *t, double *w,
                   sf_gp_data *d) {
    double t0 = lc->time[0]; /* rows are sorted by time */
    for (int i = 0; i < lc->n; i++) {
        t[i] = lc->time[i] - t0;
        w[i] = b->band_wavelength[lc->band[i]];
    }
    d->n = lc->n;
    d->t = t;
    d->w = w;
    d->y = lc->flux;
    d->yerr = lc->flux_err;
}

void sf_lc_grid_free(sf_lc_grid *g) {
    free(g->values);
    free(g->span);
    free(g->fits);
    memset(g, 0, sizeof *g);
}

int sf_lc_grid_build(const sf_lc_set *s, const sf_lc_grid_opts *o, sf_lc_grid *out) {
    memset(out, 0, sizeof *out);
    int steps = o->steps > 0 ? o->steps : 100, nb = s->bands.n_bands, no = s->n_objects;
    out->n_objects = no;
    out->n_bands = nb;
    out->steps = steps;
    out->values = sf_malloc(sizeof(float) * (size_t)no * (size_t)nb * (size_t)steps);
    out->span = sf_malloc(sizeof(double) * (size_t)no);
    out->fits = sf_malloc(sizeof(sf_gp_fit_result) * (size_t)no);
    int failed = -1;
#pragma omp parallel for schedule(dynamic, 1)
    for (int k = 0; k < no; k++) {
        const sf_lightcurve *lc = &s->obj[k];
        double *t = sf_malloc(sizeof(double) * (size_t)lc->n);
        double *w = sf_malloc(sizeof(double) * (size_t)lc->n);
        double *tq = sf_malloc(sizeof(double) * (size_t)nb * (size_t)steps);
        double *wq = sf_malloc(sizeof(double) * (size_t)nb * (size_t)steps);
        double *mu = sf_malloc(sizeof(double) * (size_t)nb * (size_t)steps);
        sf_gp_data d;
        sf_lc_gp_data(lc, &s->bands, t, w, &d);
        sf_gp_fit(&d, &o->fit, &out->fits[k]);
        double span = t[lc->n - 1];
        out->span[k] = span;
        for (int b = 0; b < nb; b++)
            for (int j = 0; j < steps; j++) {
                tq[b * steps + j] = steps > 1 ? span * j / (steps - 1) : 0;
                wq[b * steps + j] = s->bands.band_wavelength[b];
            }
        if (sf_gp_predict(&d, &out->fits[k].hyper, nb * steps, tq, wq, mu, NULL) != SF_OK) {
#pragma omp critical(sf_lc_grid_fail)
            if (failed < 0 || k < failed) failed = k;
        } else {
            float *v = out->values + (size_t)k * nb * steps;
            for (int j = 0; j < nb * steps; j++) v[j] = (float)mu[j];
        }
        free(t);
        free(w);
        free(tq);
        free(wq);
        free(mu);
    }
    if (failed >= 0) {
        sf_errorf("object '%s': the GP covariance is not positive definite at the fitted "
                  "hyper-parameters",
                  s->obj[failed].id);
        sf_lc_grid_free(out);
        return SF_ERR;
    }
    return SF_OK;
}
