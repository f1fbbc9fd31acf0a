/* Dependency-free SVG line charts (loss curves, forecasts), written atomically (temp file +
 * fsync + rename, so a reader never sees half a file and a failed write leaves none).
 *
 * Each series has its own x/y arrays and length and gets the next colour of a fixed
 * palette (cycled). Non-finite points (NaN, +-inf in x or y) are skipped and break the line
 * (a gap); isolated points are drawn as dots, and so are all points of short series. Axes
 * get "nice" ticks (1, 2, 2.5, 5 x 10^k); when every x is an integer the x ticks are too.
 * Degenerate ranges (a constant series, a single point, no finite data) are padded, never
 * divided by. All text (title, labels, names, tick labels) is XML-escaped. */
#ifndef SF_UTIL_SVG_PLOT_H
#define SF_UTIL_SVG_PLOT_H

typedef struct {
    const char *name; /* legend entry; NULL or "" = not listed */
    const double *x;  /* NULL = 0, 1, ..., n-1 */
    const double *y;
    int n;
} sf_series;

/* Optional per-series look (sf_plot_opts.styles): which palette colour, and how to draw. */
enum { SF_SERIES_LINE = 0, SF_SERIES_DASHED = 1, SF_SERIES_DOTS = 2 };
typedef struct {
    int color; /* 0 = the series' own palette entry; k >= 1 = palette entry k-1 (to match series) */
    int style; /* SF_SERIES_LINE, SF_SERIES_DASHED (thin dashed line), SF_SERIES_DOTS (points only) */
} sf_series_style;

typedef struct {
    const char *title, *xlabel, *ylabel; /* any may be NULL */
    int width, height;                   /* pixels; 0 = 800 x 450 */
    double marker_x;                     /* vertical dashed line at this x; NaN = none */
    const char *marker_label;            /* text next to the marker line (may be NULL) */
    /* Optional string x tick labels: xtick_labels[i] labels x == i (e.g. timestamps).
     * When given, x ticks are placed on integer x only, thinned so labels do not overlap. */
    const char *const *xtick_labels;
    int n_xtick_labels;
    const sf_series_style *styles; /* NULL = every series a solid line in its own colour; else
                                      one entry per series */
} sf_plot_opts;

/* Defaults: everything zero/NULL, marker_x = NaN. */
void sf_plot_opts_init(sf_plot_opts *o);

/* Write a line chart to `path`. SF_OK, or SF_ERR with a message naming the path (nothing is
 * left behind at `path` or in its directory on failure). n_series may be 0. */
int sf_svg_plot(const char *path, const sf_plot_opts *o, const sf_series *s, int n_series);

/* Convenience: sf_svg_plot with title/labels/marker and default size. */
int sf_svg_line_plot(const char *path, const char *title, const char *xlabel, const char *ylabel,
                     const sf_series *s, int n_series, double marker_x, const char *marker_label);

/* Loss curve: "train" and "val" per epoch (x = 1..n_epochs; val may be NULL; NaN entries are
 * gaps); best_epoch >= 1 draws a "best epoch N" marker. */
int sf_svg_loss_plot(const char *path, const char *title, const double *train_loss,
                     const double *val_loss, int n_epochs, int best_epoch);

/* Forecast for one channel: "history" at x = 0..n_hist-1, "forecast" at
 * x = n_hist..n_hist+n_fc-1 (joined to the last history point), optional "actual" (the true
 * future, same x as the forecast; NULL = none), a "forecast start" marker, and optional
 * string x tick labels for x = 0..n_hist+n_fc-1 (NULL = step numbers). */
int sf_svg_forecast_plot(const char *path, const char *title, const char *ylabel,
                         const double *history, int n_hist, const double *forecast, int n_fc,
                         const double *actual, const char *const *xtick_labels);

/* A K x K count matrix as a grid of cells shaded by each row's share (white 0 to blue 1), the
 * count written in each cell; rows and columns labelled with names (e.g. a confusion matrix:
 * rows true class, columns predicted). */
int sf_svg_matrix_plot(const char *path, const char *title, const long *counts, int K,
                       const char *const *names);

/* Heat maps, one panel per map (e.g. the attention weights of each head): map k is [T, T] at
 * maps + k*T*T, of which the top-left n x n (query row i, key column j) is drawn, shaded white
 * (0) to dark blue (the panel's largest value) in 8 levels; runs of equal shade in a row are
 * merged into one rectangle and level-0 cells are left to the white background, so a 100 x 100
 * panel stays small. Panels in `cols` columns, each titled panel_titles[k] (NULL = "k"). */
int sf_svg_heatmaps(const char *path, const char *title, const float *maps, int n_maps, int T,
                    int n, const char *const *panel_titles, int cols);

#endif
