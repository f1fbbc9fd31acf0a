/* seqformer predict: forecast the pred_len steps after the last row of a CSV, in original units,
 * with timestamps continuing the date column's frequency; optional SVG of history + forecast. */
#include <stdio.h>
#include <string.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "core/error.h"
#include "core/fileio.h"
#include "models/checkpoint.h"
#include "util/svg_plot.h"

static int write_csv(const char *path, char **dates, const sf_scaler *sc, const float *y, int P,
                     int C, const char *date_name) {
    sf_atomic_file f;
    FILE *out = stdout;
    if (path) {
        if (sf_atomic_open(&f, path)) return SF_ERR;
        out = f.fp;
    }
    fprintf(out, "%s", date_name);
    for (int c = 0; c < C; c++) fprintf(out, ",%s", sc->names[c]);
    fprintf(out, "\n");
    for (int t = 0; t < P; t++) {
        fprintf(out, "%s", dates[t]);
        for (int c = 0; c < C; c++) fprintf(out, ",%.6g", (double)y[t * C + c]);
        fprintf(out, "\n");
    }
    return path ? sf_atomic_commit(&f) : SF_OK;
}

int cmd_predict(int argc, char **argv) {
    const char *model = NULL, *data = NULL, *out = NULL, *plot = NULL, *channel = NULL;
    int threads = 0;
    arg_spec specs[] = {
        {"model", ARG_STRING, &model, 0, 0, NULL, "checkpoint (model.safetensors)", 0},
        {"data", ARG_STRING, &data, 0, 0, NULL, "CSV file; the forecast follows its last row", 0},
        {"out", ARG_STRING, &out, 0, 0, NULL, "write the forecast CSV here (default: stdout)", 0},
        {"plot", ARG_STRING, &plot, 0, 0, NULL, "write an SVG of history + forecast here", 0},
        {"channel", ARG_STRING, &channel, 0, 0, NULL, "channel to plot (default: the target)", 0},
        {"threads", ARG_INT, &threads, 0, 1024, NULL, "threads (0: OpenMP default)", 0},
    };
    sf_model m;
    sf_scaler sc;
    sf_data_info info;
    int early = cli_parse_and_load("predict", argc, argv, specs,
                                   (int)(sizeof specs / sizeof *specs),
                                   "--model DIR/model.safetensors --data F.csv [--out pred.csv]",
                                   &model, &data, &threads, &m, &sc, &info);
    if (early >= 0) return early;
    int rc = 1, L = m.cfg.seq_len, P = m.cfg.pred_len, C = m.cfg.n_channels;
    float *x = NULL, *y = NULL;
    char **dates = NULL;
    sf_forecast_data d;
    if (sf_forecast_data_load_with_scaler(data, info.target, info.features, L, P, &sc, &d))
        goto out_model;
    x = sf_malloc((size_t)L * C * sizeof(float));
    y = sf_malloc((size_t)P * C * sizeof(float));
    sf_forecast_last_input(&d, x);
    sf_model_forward(&m, x, y, 1, 0, NULL);
    sf_scaler_inverse(&sc, y, P);
    sf_scaler_inverse(&sc, x, L);
    if (sf_table_next_dates(&d.table, P, &dates)) goto out_data;
    if (write_csv(out, dates, &sc, y, P, C, d.table.date_name)) goto out_data;
    if (plot) {
        int ch = C - 1;
        const char *want = channel ? channel : info.target;
        for (int c = 0; c < C; c++)
            if (!strcmp(sc.names[c], want)) ch = c;
        if (channel && strcmp(sc.names[ch], channel) != 0) {
            sf_errorf("predict: --channel '%s' is not one of the checkpoint's channels", channel);
            goto out_data;
        }
        double *hist = sf_malloc((size_t)(L + P) * sizeof(double)), *fc = hist + L;
        const char **labels = sf_malloc((size_t)(L + P) * sizeof(char *));
        for (int t = 0; t < L; t++) {
            hist[t] = x[t * C + ch];
            labels[t] = d.table.dates[d.table.n_rows - L + t];
        }
        for (int t = 0; t < P; t++) {
            fc[t] = y[t * C + ch];
            labels[L + t] = dates[t];
        }
        char title[256];
        snprintf(title, sizeof title, "%s forecast, %d steps after %s", sc.names[ch], P,
                 d.table.dates[d.table.n_rows - 1]);
        int prc = sf_svg_forecast_plot(plot, title, sc.names[ch], hist, L, fc, P, NULL,
                                       (const char *const *)labels);
        free(hist);
        free(labels);
        if (prc) goto out_data;
    }
    if (out) fprintf(stderr, "seqformer: wrote %d forecast steps x %d channels to %s\n", P, C, out);
    rc = 0;
out_data:
    if (dates)
        for (int t = 0; t < P; t++) free(dates[t]);
    free(dates);
    sf_forecast_data_free(&d);
out_model:
    if (rc) fprintf(stderr, "seqformer: %s\n", sf_error_message());
    free(x);
    free(y);
    sf_model_destroy(&m);
    sf_scaler_free(&sc);
    return rc;
}
