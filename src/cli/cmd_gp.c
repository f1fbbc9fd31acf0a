/* seqformer gp: light curves (long format) -> regular grids by 2-D Gaussian-process
 * regression (data/lc_grid.h), written as a UEA .ts file (one dimension per band), optionally
 * as stratified k-fold train/test pairs, and/or a plot of one object's GP fit. */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/common.h"
#include "core/error.h"
#include "core/fileio.h"
#include "data/kfold.h"
#include "data/lc_grid.h"
#include "data/ts_write.h"
#include "util/svg_plot.h"

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static const char *USAGE =
    "--data OBS.csv[.gz] --labels LABELS.csv --out OUT.ts [--steps 100]\n"
    "       [--folds K --seed S --out-dir DIR] [--plot OBJECT_ID --svg FILE] [--raw]";

/* One object's GP fit over its raw points, per band: mean (solid), mean +- sigma (dashed),
 * observations (dots), on days since the object's first observation. */
static int plot_object(const sf_lc_set *s, const char *id, const sf_gp_fit_opts *fo,
                       const char *svg, double from, double to) {
    int k = sf_lc_find(s, id);
    if (k < 0) return sf_errorf("--plot: object '%s' is not in the data", id);
    const sf_lightcurve *lc = &s->obj[k];
    int nb = s->bands.n_bands, m = 800;
    double *t = sf_malloc(sizeof(double) * (size_t)lc->n), *w = sf_malloc(sizeof(double) * (size_t)lc->n);
    sf_gp_data d;
    sf_lc_gp_data(lc, &s->bands, t, w, &d);
    sf_gp_fit_result fr;
    sf_gp_fit(&d, fo, &fr);
    double span = t[lc->n - 1];
    double lo = isnan(from) ? 0 : from, hi = isnan(to) ? span : to;
    int rc = SF_ERR;
    double *tq = sf_malloc(sizeof(double) * m), *wq = sf_malloc(sizeof(double) * m);
    double *mu = sf_malloc(sizeof(double) * (size_t)nb * m), *sd = sf_malloc(sizeof(double) * (size_t)nb * m);
    double *up = sf_malloc(sizeof(double) * (size_t)nb * m), *dn = sf_malloc(sizeof(double) * (size_t)nb * m);
    double *ox = sf_malloc(sizeof(double) * (size_t)lc->n), *oy = sf_malloc(sizeof(double) * (size_t)lc->n);
    sf_series *ser = sf_calloc((size_t)nb * 4, sizeof(sf_series));
    sf_series_style *sty = sf_calloc((size_t)nb * 4, sizeof(sf_series_style));
    char(*names)[32] = sf_calloc((size_t)nb, 32);
    if (!(hi > lo)) {
        sf_errorf("--plot-from/--plot-to: empty time range [%g, %g] (the object spans %g days)", lo, hi, span);
        goto done;
    }
    int ns = 0, off = 0;
    for (int b = 0; b < nb; b++) {
        for (int j = 0; j < m; j++) {
            tq[j] = lo + (hi - lo) * j / (m - 1);
            wq[j] = s->bands.band_wavelength[b];
        }
        if (sf_gp_predict(&d, &fr.hyper, m, tq, wq, mu + (size_t)b * m, sd + (size_t)b * m) != SF_OK) {
            sf_errorf("--plot: object '%s': GP covariance not positive definite", id);
            goto done;
        }
        for (int j = 0; j < m; j++) {
            up[(size_t)b * m + j] = mu[(size_t)b * m + j] + sd[(size_t)b * m + j];
            dn[(size_t)b * m + j] = mu[(size_t)b * m + j] - sd[(size_t)b * m + j];
        }
        int no = 0;
        for (int i = 0; i < lc->n; i++)
            if (lc->band[i] == b && t[i] >= lo && t[i] <= hi) {
                ox[off + no] = t[i];
                oy[off + no++] = lc->flux[i];
            }
        snprintf(names[b], 32, "%s", s->bands.band_names[b]);
        sty[ns] = (sf_series_style){b + 1, SF_SERIES_LINE};
        ser[ns++] = (sf_series){names[b], NULL, mu + (size_t)b * m, m};
        sty[ns] = (sf_series_style){b + 1, SF_SERIES_DASHED};
        ser[ns++] = (sf_series){NULL, NULL, up + (size_t)b * m, m};
        sty[ns] = (sf_series_style){b + 1, SF_SERIES_DASHED};
        ser[ns++] = (sf_series){NULL, NULL, dn + (size_t)b * m, m};
        sty[ns] = (sf_series_style){b + 1, SF_SERIES_DOTS};
        ser[ns++] = (sf_series){NULL, ox + off, oy + off, no};
        off += no;
    }
    for (int q = 0; q < ns; q++) /* the curves share the grid times (the same for every band) */
        if (q % 4 != 3) ser[q].x = tq;
    char title[256];
    snprintf(title, sizeof title,
             "object %s (%s): GP mean +- 1 sigma, l_t = %.3g d, c = %.3g%s", id,
             lc->label ? lc->label : "unlabelled", exp(0.5 * fr.hyper.log_metric_t),
             exp(fr.hyper.log_const), fr.converged ? "" : " (not converged)");
    sf_plot_opts po;
    sf_plot_opts_init(&po);
    po.title = title;
    po.xlabel = "days since first observation";
    po.ylabel = s->is_mag ? "flux (10^(-0.4 (mag - ZP)))" : "flux";
    po.width = 1000;
    po.height = 520;
    po.styles = sty;
    rc = sf_svg_plot(svg, &po, ser, ns);
done:
    free(t), free(w), free(tq), free(wq), free(mu), free(sd), free(up), free(dn);
    free(ox), free(oy), free(ser), free(sty), free(names);
    return rc;
}

/* What the .ts files hold: the GP grids (values) or the raw observations (cases, lens). */
typedef struct {
    const float *values;
    const float *const *cases;
    const int *lens;
} ts_payload;

static int write_cases(const char *path, const sf_ts_header *h, const ts_payload *p,
                       const char *const *labels, const int *rows, int n) {
    return p->values ? sf_ts_write(path, h, p->values, labels, rows, n)
                     : sf_ts_write_ragged(path, h, p->cases, p->lens, labels, rows, n);
}

/* Raw observations as 4 dimensions of one length per object: time since the first
 * observation (days), band wavelength (Angstrom), flux, flux error; in time order. */
static float *raw_case(const sf_lightcurve *lc, const sf_bandset *b) {
    int n = lc->n;
    float *v = sf_malloc(sizeof(float) * 4 * (size_t)n);
    for (int i = 0; i < n; i++) {
        v[i] = (float)(lc->time[i] - lc->time[0]);
        v[n + i] = (float)b->band_wavelength[lc->band[i]];
        v[2 * n + i] = (float)lc->flux[i];
        v[3 * n + i] = (float)lc->flux_err[i];
    }
    return v;
}

static int write_folds(const sf_lc_set *s, const ts_payload *pl, const sf_ts_header *h,
                       const char *const *labels, int k, uint64_t seed, const char *dir) {
    int n = s->n_objects, rc = SF_ERR;
    int *cls = sf_malloc(sizeof(int) * (size_t)n), *fold = sf_malloc(sizeof(int) * (size_t)n);
    int *rows = sf_malloc(sizeof(int) * (size_t)n);
    for (int i = 0; i < n; i++) cls[i] = sf_lc_class_index(s, s->obj[i].label);
    if (sf_kfold_stratified(n, cls, s->n_classes, k, seed, fold) != SF_OK) {
        sf_error_prefix("--folds");
        goto done;
    }
    if (sf_mkdir_p(dir) != SF_OK) goto done;
    char path[4096];
    for (int f = 0; f < k; f++) {
        for (int test = 0; test < 2; test++) {
            int m = 0;
            for (int i = 0; i < n; i++)
                if ((fold[i] == f) == test) rows[m++] = i;
            snprintf(path, sizeof path, "%s/fold%d_%s.ts", dir, f, test ? "TEST" : "TRAIN");
            if (write_cases(path, h, pl, labels, rows, m) != SF_OK) goto done;
        }
    }
    /* The assignment itself, so other tools (bench/rrlyrae_baseline.py) use the same folds. */
    snprintf(path, sizeof path, "%s/folds.csv", dir);
    sf_atomic_file af;
    if (sf_atomic_open(&af, path) != SF_OK) goto done;
    fprintf(af.fp, "object_id,label,fold\n");
    for (int i = 0; i < n; i++) fprintf(af.fp, "%s,%s,%d\n", s->obj[i].id, s->obj[i].label, fold[i]);
    if (ferror(af.fp)) af.failed = 1;
    rc = sf_atomic_commit(&af);
done:
    free(cls), free(fold), free(rows);
    return rc;
}

int cmd_gp(int argc, char **argv) {
    const char *data = NULL, *labels = NULL, *out = NULL, *out_dir = NULL, *plot = NULL,
               *svg = NULL, *bands = SF_LC_SDSS_BANDS, *problem = "LightCurvesGP";
    int steps = 100, folds = 0, seed = 1, threads = 0, drop_short = 0, fixed_amp = 0, raw = 0;
    float zp = 27.5f, plot_from = NAN, plot_to = NAN;
    arg_spec specs[] = {
        {"data", ARG_STRING, &data, 0, 0, NULL, "observations, long format (object_id,time,band,mag|flux,err); .gz ok", 0},
        {"labels", ARG_STRING, &labels, 0, 0, NULL, "labels table (id column + label/class/type column)", 0},
        {"out", ARG_STRING, &out, 0, 0, NULL, "write all objects' GP grids as a UEA .ts file", 0},
        {"steps", ARG_INT, &steps, 2, 100000, NULL, "grid points per band (t2: 100)", 0},
        {"folds", ARG_INT, &folds, 2, 1000, NULL, "also write stratified k-fold pairs DIR/fold<i>_{TRAIN,TEST}.ts + DIR/folds.csv", 0},
        {"seed", ARG_INT, &seed, 0, 2147483647, NULL, "seed of the fold assignment", 0},
        {"out-dir", ARG_STRING, &out_dir, 0, 0, NULL, "directory for the fold files", 0},
        {"plot", ARG_STRING, &plot, 0, 0, NULL, "object id whose GP fit to draw (with --svg)", 0},
        {"svg", ARG_STRING, &svg, 0, 0, NULL, "SVG file for --plot", 0},
        {"plot-from", ARG_FLOAT, &plot_from, -1e9, 1e9, NULL, "plot from this day (since the first observation)", 0},
        {"plot-to", ARG_FLOAT, &plot_to, -1e9, 1e9, NULL, "plot up to this day", 0},
        {"bands", ARG_STRING, &bands, 0, 0, NULL, "band:wavelength list in Angstrom (default SDSS ugriz effective wavelengths)", 0},
        {"zero-point", ARG_FLOAT, &zp, -100, 100, NULL, "flux = 10^(-0.4 (mag - ZP)) (27.5: PLAsTiCC FLUXCAL)", 0},
        {"drop-short", ARG_BOOL, &drop_short, 0, 1, NULL, "drop objects with < 2 observations instead of failing", 0},
        {"fixed-amplitude", ARG_BOOL, &fixed_amp, 0, 1, NULL, "keep the S/N amplitude guess; fit only the time length-scale (astronet fits both)", 0},
        {"raw", ARG_BOOL, &raw, 0, 1, NULL, "no GP: write the raw observations (unequal lengths; dimensions time, wavelength, flux, flux error) for models with time encodings", 0},
        {"problem", ARG_STRING, &problem, 0, 0, NULL, "@problemName of the .ts files", 0},
        {"threads", ARG_INT, &threads, 0, 1024, NULL, "OpenMP threads over objects (0 = default)", 0},
    };
    int n_specs = (int)(sizeof specs / sizeof specs[0]);
    int pr = args_parse("gp", argc, argv, specs, n_specs, USAGE);
    if (pr == 1) return 0;
    if (pr != SF_OK) return cli_fail(2);
    if (!data) {
        sf_errorf("gp: --data is required");
        return cli_fail(2);
    }
    if (!out && !folds && !plot) {
        sf_errorf("gp: nothing to do: give --out, --folds with --out-dir, or --plot with --svg");
        return cli_fail(2);
    }
    if ((out || folds) && !labels) {
        sf_errorf("gp: --labels is required to write .ts files (their cases carry class labels)");
        return cli_fail(2);
    }
    if (folds && !out_dir) {
        sf_errorf("gp: --folds needs --out-dir");
        return cli_fail(2);
    }
    if (out_dir && !folds) {
        sf_errorf("gp: --out-dir is only used with --folds K");
        return cli_fail(2);
    }
    if (!plot != !svg) {
        sf_errorf("gp: --plot OBJECT_ID and --svg FILE go together");
        return cli_fail(2);
    }
    cli_set_threads(threads);

    sf_lc_opts lo;
    sf_lc_opts_init(&lo);
    lo.bands = bands;
    lo.zero_point = zp;
    lo.drop_short = drop_short;
    lo.min_obs = raw && !plot ? 1 : 2; /* raw sequences need no time span */
    sf_lc_set s;
    if (sf_lc_load(data, labels, &lo, &s) != SF_OK) return cli_fail(1);
    if (s.n_dropped_sentinel || s.n_dropped_short)
        fprintf(stderr,
                "seqformer gp: dropped %ld row%s with mag or error >= 99 (no measurement) and %d "
                "object%s with < 2 observations\n",
                s.n_dropped_sentinel, s.n_dropped_sentinel == 1 ? "" : "s", s.n_dropped_short,
                s.n_dropped_short == 1 ? "" : "s");

    sf_lc_grid_opts go;
    sf_lc_grid_opts_init(&go);
    go.steps = steps;
    go.fit.fit_amplitude = !fixed_amp;
    int rc = 1;
    if (plot && plot_object(&s, plot, &go.fit, svg, plot_from, plot_to) != SF_OK) {
        sf_lc_free(&s);
        return cli_fail(1);
    }
    if (raw && (out || folds)) {
        float **cases = sf_malloc(sizeof(float *) * (size_t)s.n_objects);
        int *lens = sf_malloc(sizeof(int) * (size_t)s.n_objects), max_len = 0;
        const char **lab = sf_malloc(sizeof(char *) * (size_t)s.n_objects);
        int *rows = sf_malloc(sizeof(int) * (size_t)s.n_objects);
        for (int i = 0; i < s.n_objects; i++) {
            cases[i] = raw_case(&s.obj[i], &s.bands);
            lens[i] = s.obj[i].n;
            max_len = lens[i] > max_len ? lens[i] : max_len;
            lab[i] = s.obj[i].label, rows[i] = i;
        }
        char comment[1024];
        snprintf(comment, sizeof comment,
                 "seqformer gp --raw: observations in time order; dimensions: days since the "
                 "first observation, band wavelength (Angstrom), flux, flux error\n"
                 "source %s; bands %s; flux = 10^(-0.4 (mag - %g)) for magnitudes",
                 data, bands, (double)zp);
        sf_ts_header h = {problem, comment, 4, 0, s.n_classes, (const char *const *)s.classes};
        ts_payload pl = {NULL, (const float *const *)cases, lens};
        int ok = !out || write_cases(out, &h, &pl, lab, rows, s.n_objects) == SF_OK;
        if (ok && folds) ok = write_folds(&s, &pl, &h, lab, folds, (uint64_t)seed, out_dir) == SF_OK;
        if (ok)
            printf("{\"objects\": %d, \"dimensions\": 4, \"max_length\": %d, \"classes\": %d, "
                   "\"rows_dropped_no_measurement\": %ld}\n",
                   s.n_objects, max_len, s.n_classes, s.n_dropped_sentinel);
        for (int i = 0; i < s.n_objects; i++) free(cases[i]);
        free(cases), free(lens), free(lab), free(rows);
        sf_lc_free(&s);
        return ok ? 0 : cli_fail(1);
    }
    if (out || folds) {
        sf_lc_grid g;
        double t0 = omp_get_wtime();
        if (sf_lc_grid_build(&s, &go, &g) != SF_OK) {
            sf_lc_free(&s);
            return cli_fail(1);
        }
        double secs = omp_get_wtime() - t0;
        const char **lab = sf_malloc(sizeof(char *) * (size_t)s.n_objects);
        int *rows = sf_malloc(sizeof(int) * (size_t)s.n_objects);
        for (int i = 0; i < s.n_objects; i++) lab[i] = s.obj[i].label, rows[i] = i;
        char comment[1024];
        snprintf(comment, sizeof comment,
                 "seqformer gp: posterior mean flux of a 2-D Matern-3/2 GP over (time, "
                 "wavelength), %d steps from the first to the last observation\n"
                 "source %s; bands %s (Angstrom); flux = 10^(-0.4 (mag - %g)) for magnitudes\n"
                 "dimensions in band order; cases in the order objects first appear in the source",
                 g.steps, data, bands, (double)zp);
        sf_ts_header h = {problem, comment, s.bands.n_bands, g.steps, s.n_classes,
                          (const char *const *)s.classes};
        ts_payload pl = {g.values, NULL, NULL};
        int ok = 1;
        if (out && write_cases(out, &h, &pl, lab, rows, s.n_objects) != SF_OK) ok = 0;
        if (ok && folds && write_folds(&s, &pl, &h, lab, folds, (uint64_t)seed, out_dir) != SF_OK)
            ok = 0;
        if (ok) {
            int conv = 0, fb = 0, at_lo = 0;
            double *lt = sf_malloc(sizeof(double) * (size_t)g.n_objects);
            for (int i = 0; i < g.n_objects; i++) {
                conv += g.fits[i].converged;
                fb += g.fits[i].fell_back;
                at_lo += g.fits[i].hyper.log_metric_t <= 1e-9;
                lt[i] = exp(0.5 * g.fits[i].hyper.log_metric_t);
            }
            qsort(lt, (size_t)g.n_objects, sizeof(double), cmp_double);
            double med_lt = g.n_objects % 2 ? lt[g.n_objects / 2]
                                            : 0.5 * (lt[g.n_objects / 2 - 1] + lt[g.n_objects / 2]);
            free(lt);
            printf("{\"objects\": %d, \"bands\": %d, \"steps\": %d, \"classes\": %d, "
                   "\"threads\": %d, \"gp_seconds\": %.3f, \"objects_per_second\": %.2f, "
                   "\"converged\": %d, \"fell_back\": %d, \"median_time_scale_days\": %.4g, "
                   "\"time_scale_at_1_day_bound\": %d, \"rows_dropped_no_measurement\": %ld}\n",
                   g.n_objects, g.n_bands, g.steps, s.n_classes, omp_get_max_threads(), secs,
                   g.n_objects / secs, conv, fb, med_lt, at_lo, s.n_dropped_sentinel);
            rc = 0;
        }
        free(lab);
        free(rows);
        sf_lc_grid_free(&g);
        if (!ok) {
            sf_lc_free(&s);
            return cli_fail(1);
        }
    } else {
        rc = 0;
    }
    sf_lc_free(&s);
    return rc;
}
