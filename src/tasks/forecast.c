#include "tasks/forecast.h"

#include <math.h>
#include <string.h>

#include "core/error.h"
#include "core/fileio.h"
#include "data/time_features.h"
#include "util/svg_plot.h"

typedef struct {
    sf_forecast_data d;
    char target[128];
    char features;
    int n_marks;  /* time features per timestamp the model reads (0: none) */
    float *marks; /* [n_rows][n_marks] of every row of the file */
} forecast;

/* The model's time features for every row (models/model.h: they follow the values in x). */
static void fc_set_marks(forecast *f, int n_marks, char freq) {
    f->n_marks = n_marks;
    if (!n_marks) return;
    f->marks = sf_malloc((size_t)f->d.n_rows * n_marks * sizeof(float));
    sf_time_features(f->d.table.timestamps, f->d.n_rows, freq, f->marks);
}

double sf_mse_loss(const float *y, const float *target, float *dy, long n) {
    double s = 0;
    float scale = 2.0f / (float)n;
    for (long i = 0; i < n; i++) {
        float e = y[i] - target[i];
        s += (double)e * e;
        if (dy) dy[i] = scale * e;
    }
    return s / (double)n;
}

int sf_split_kind_parse(const char *s, sf_split_kind *kind) {
    if (!strcmp(s, "auto")) *kind = SF_SPLIT_AUTO;
    else if (!strcmp(s, "ett-hour") || !strcmp(s, "ETT-hour")) *kind = SF_SPLIT_ETT_HOUR;
    else if (!strcmp(s, "ett-minute") || !strcmp(s, "ETT-minute")) *kind = SF_SPLIT_ETT_MINUTE;
    else if (!strcmp(s, "custom")) *kind = SF_SPLIT_CUSTOM;
    else return sf_errorf("unknown split kind '%s' (expected auto, ett-hour, ett-minute, custom)", s);
    return SF_OK;
}

static int fc_n_examples(const sf_task *t, sf_split s) {
    return sf_forecast_n_windows(&((const forecast *)t->self)->d, s);
}

static void fc_gather(const sf_task *t, sf_split s, const int *idx, int n, float *x, float *y) {
    const forecast *f = t->self;
    if (!f->n_marks) {
        sf_forecast_gather(&f->d, s, idx, n, x, y);
        return;
    }
    /* each example: its values, then the marks of its seq_len + pred_len rows */
    size_t L = (size_t)f->d.seq_len, P = (size_t)f->d.pred_len, C = (size_t)f->d.n_channels;
    for (int k = 0; k < n; k++) {
        float *xk = x + (size_t)k * t->x_floats;
        sf_forecast_gather(&f->d, s, idx + k, 1, xk, y ? y + (size_t)k * t->y_floats : NULL);
        size_t start = (size_t)f->d.split_begin[s] + (size_t)idx[k];
        memcpy(xk + L * C, f->marks + start * f->n_marks, (L + P) * f->n_marks * sizeof(float));
    }
}

static double fc_loss(const sf_task *t, const float *out, const float *y, float *dy, int n) {
    return sf_mse_loss(out, y, dy, (long)n * t->y_floats);
}

static void fc_metrics_add(const sf_task *t, const float *out, const float *y, int n, double *acc) {
    for (long i = 0; i < (long)n * t->y_floats; i++) {
        double e = (double)out[i] - y[i];
        acc[0] += e * e;
        acc[1] += fabs(e);
    }
}

static void fc_metrics_finish(const sf_task *t, const double *acc, long n_total, sf_metrics *out) {
    double cnt = (double)n_total * t->y_floats;
    out->n = 2;
    out->name[0] = "mse";
    out->value[0] = acc[0] / cnt;
    out->name[1] = "mae";
    out->value[1] = acc[1] / cnt;
}

static char *json_numbers(const double *v, int n) {
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; i < n; i++) cJSON_AddItemToArray(a, cJSON_CreateNumber(v[i]));
    char *s = cJSON_PrintUnformatted(a);
    cJSON_Delete(a);
    return s;
}

static void fc_save_meta(const sf_task *t, sf_meta *meta) {
    const forecast *f = t->self;
    const sf_scaler *sc = &f->d.scaler;
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; i < sc->n; i++) cJSON_AddItemToArray(a, cJSON_CreateString(sc->names[i]));
    char *cols = cJSON_PrintUnformatted(a);
    cJSON_Delete(a);
    char *mean = json_numbers(sc->mean, sc->n), *std = json_numbers(sc->std, sc->n);
    char features[2] = {f->features, 0};
    sf_meta_set(meta, "columns", cols);
    sf_meta_set(meta, "scaler_mean", mean);
    sf_meta_set(meta, "scaler_std", std);
    sf_meta_set(meta, "target", f->target);
    sf_meta_set(meta, "features", features);
    sf_meta_set(meta, "split", sf_split_kind_name(f->d.kind));
    free(cols);
    free(mean);
    free(std);
}

static void fc_close(sf_task *t) {
    forecast *f = t->self;
    if (!f) return;
    sf_forecast_data_free(&f->d);
    free(f->marks);
    free(f);
    t->self = NULL;
}

static const sf_task_ops fc_ops = {fc_n_examples, fc_gather,     fc_loss, fc_metrics_add,
                                   fc_metrics_finish, fc_save_meta, fc_close, NULL};

static forecast *fc_new(sf_task *t, const sf_task_args *a) {
    forecast *f = sf_calloc(1, sizeof *f);
    snprintf(f->target, sizeof f->target, "%s", a->target ? a->target : "OT");
    f->features = a->features ? a->features : 'M';
    t->def = &sf_task_forecast;
    t->ops = &fc_ops;
    t->self = f;
    return f;
}

static int fc_open_train(sf_task *t, const sf_task_args *a, cJSON **config, int has_channels) {
    memset(t, 0, sizeof *t);
    sf_split_kind kind = SF_SPLIT_AUTO;
    if (a->split && sf_split_kind_parse(a->split, &kind)) return SF_ERR;
    if (!cJSON_GetObjectItemCaseSensitive(*config, "pred_len")) /* a classifier (t2) */
        return sf_errorf("task: model '%s' has no pred_len, it is not a forecaster (task "
                         "classify?)", sf_opt_str(*config, "model"));
    int L = sf_opt_int(*config, "seq_len"), P = sf_opt_int(*config, "pred_len");
    forecast *f = fc_new(t, a);
    if (sf_forecast_data_load(a->data, f->target, f->features, kind, L, P, &f->d)) {
        free(f);
        memset(t, 0, sizeof *t);
        return SF_ERR;
    }
    int C = f->d.n_channels, want = sf_opt_int(*config, "n_channels");
    if (has_channels && want != C) {
        sf_errorf("n_channels: the config says %d, but %s has %d channels for features %c", want,
                  a->data, C, f->features);
        sf_task_close(t);
        return SF_ERR;
    }
    cJSON_ReplaceItemInObjectCaseSensitive(*config, "n_channels", cJSON_CreateNumber(C));
    /* a time-feature frequency left to the data ("freq": "auto") becomes the letter of its step */
    const cJSON *fq = cJSON_GetObjectItemCaseSensitive(*config, "freq");
    if (cJSON_IsString(fq) && strcmp(fq->valuestring, "auto") == 0) {
        int64_t step;
        if (sf_table_step(&f->d.table, &step)) {
            sf_task_close(t);
            return SF_ERR;
        }
        char letter[2] = {sf_time_freq_for_step(step), 0};
        cJSON_ReplaceItemInObjectCaseSensitive(*config, "freq", cJSON_CreateString(letter));
    }
    char freq;
    int n_marks = sf_config_time_features(*config, &freq);
    fc_set_marks(f, n_marks, freq);
    t->x_floats = (long)L * C + (long)(L + P) * n_marks;
    t->y_floats = (long)P * C;
    return SF_OK;
}

static int parse_array(const char *key, const char *json, int n, double *num, char **str) {
    cJSON *a = json ? cJSON_Parse(json) : NULL;
    int rc = SF_OK;
    if (!a || !cJSON_IsArray(a) || cJSON_GetArraySize(a) != n) {
        rc = sf_errorf("metadata '%s' is missing or not an array of %d entries", key, n);
        goto done;
    }
    for (int i = 0; i < n; i++) {
        cJSON *e = cJSON_GetArrayItem(a, i);
        if (num ? !cJSON_IsNumber(e) : !cJSON_IsString(e)) {
            rc = sf_errorf("metadata '%s'[%d] is not a %s", key, i, num ? "number" : "string");
            goto done;
        }
        if (num) num[i] = e->valuedouble;
        else str[i] = sf_strdup(e->valuestring);
    }
done:
    cJSON_Delete(a);
    return rc;
}

/* The stored protocol: scaler, target, features, split kind. */
static int read_protocol(const sf_model *m, const sf_meta *meta, sf_scaler *sc, char *target,
                         size_t tcap, char *features, sf_split_kind *kind) {
    int n = m->n_channels, rc = SF_ERR;
    double *mean = sf_calloc((size_t)n, sizeof *mean), *std = sf_calloc((size_t)n, sizeof *std);
    char **names = sf_calloc((size_t)n, sizeof *names);
    memset(sc, 0, sizeof *sc);
    if (parse_array("scaler_mean", sf_meta_get(meta, "scaler_mean"), n, mean, NULL) ||
        parse_array("scaler_std", sf_meta_get(meta, "scaler_std"), n, std, NULL) ||
        parse_array("columns", sf_meta_get(meta, "columns"), n, NULL, names) ||
        sf_scaler_init(sc, n, (const char *const *)names, mean, std))
        goto done;
    const char *t = sf_meta_get(meta, "target"), *f = sf_meta_get(meta, "features");
    const char *split = sf_meta_get(meta, "split");
    if (!t || strlen(t) >= tcap || !f || (strcmp(f, "M") != 0 && strcmp(f, "S") != 0)) {
        sf_errorf("metadata 'target' or 'features' missing or invalid");
        goto done;
    }
    if (!split || sf_split_kind_parse(split, kind)) {
        sf_errorf("metadata 'split': '%s' is not a split kind (ETT-hour, ETT-minute, custom)",
                  split ? split : "(missing)");
        goto done;
    }
    strcpy(target, t);
    *features = f[0];
    rc = SF_OK;
done:
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
    free(mean);
    free(std);
    if (rc) sf_scaler_free(sc);
    return rc;
}

/* The data's channels must be the checkpoint's, in the same order. */
static int check_columns(const char *data, const sf_scaler *ck, const sf_forecast_data *d) {
    if (d->n_channels != ck->n)
        return sf_errorf("%s: has %d channels for features %c, but the checkpoint was trained on %d",
                         data, d->n_channels, d->features, ck->n);
    for (int i = 0; i < ck->n; i++)
        if (strcmp(d->scaler.names[i], ck->names[i]) != 0)
            return sf_errorf("%s: channel %d is '%s', but the checkpoint expects '%s'", data, i,
                             d->scaler.names[i], ck->names[i]);
    return SF_OK;
}

static int fc_open_eval(sf_task *t, const sf_task_args *a, const sf_model *m, const sf_meta *meta) {
    memset(t, 0, sizeof *t);
    sf_scaler sc;
    char target[128], features;
    sf_split_kind kind;
    if (read_protocol(m, meta, &sc, target, sizeof target, &features, &kind)) return SF_ERR;
    if (a->split && sf_split_kind_parse(a->split, &kind)) {
        sf_scaler_free(&sc);
        return SF_ERR;
    }
    sf_task_args args = {.data = a->data, .target = target, .features = features};
    forecast *f = fc_new(t, &args);
    int rc = sf_forecast_data_load(a->data, target, features, kind, m->seq_len, m->pred_len, &f->d);
    if (rc == SF_OK) rc = check_columns(a->data, &sc, &f->d);
    sf_scaler_free(&sc);
    if (rc) {
        sf_forecast_data_free(&f->d);
        free(f);
        memset(t, 0, sizeof *t);
        return SF_ERR;
    }
    fc_set_marks(f, m->time_features, m->freq);
    t->x_floats = sf_model_x_floats(m);
    t->y_floats = (long)m->pred_len * m->n_channels;
    return SF_OK;
}

static void fc_describe(const sf_task *t, FILE *out) {
    const forecast *f = t->self;
    fprintf(out, "%s split, features %c, %d channels, %d/%d/%d train/val/test windows",
            sf_split_kind_name(f->d.kind), f->features, f->d.n_channels,
            sf_forecast_n_windows(&f->d, SF_TRAIN), sf_forecast_n_windows(&f->d, SF_VAL),
            sf_forecast_n_windows(&f->d, SF_TEST));
}

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

static int plot_forecast(const sf_predict_args *a, const sf_forecast_data *d, const sf_scaler *sc,
                         const char *target, const float *x, const float *y, char **dates, int L,
                         int P, int C) {
    int ch = C - 1;
    const char *want = a->item ? a->item : target;
    for (int c = 0; c < C; c++)
        if (!strcmp(sc->names[c], want)) ch = c;
    if (a->item && strcmp(sc->names[ch], a->item) != 0)
        return sf_errorf("predict: --channel '%s' is not one of the checkpoint's channels", a->item);
    double *hist = sf_malloc((size_t)(L + P) * sizeof(double)), *fc = hist + L;
    const char **labels = sf_malloc((size_t)(L + P) * sizeof(char *));
    for (int t = 0; t < L; t++) {
        hist[t] = x[t * C + ch];
        labels[t] = d->table.dates[d->table.n_rows - L + t];
    }
    for (int t = 0; t < P; t++) {
        fc[t] = y[t * C + ch];
        labels[L + t] = dates[t];
    }
    char title[256];
    snprintf(title, sizeof title, "%s forecast, %d steps after %s", sc->names[ch], P,
             d->table.dates[d->table.n_rows - 1]);
    int rc = sf_svg_forecast_plot(a->plot, title, sc->names[ch], hist, L, fc, P, NULL,
                                  (const char *const *)labels);
    free(hist);
    free(labels);
    return rc;
}

/* Forecast the pred_len steps after the last row of a CSV, in original units, with timestamps
 * continuing the date column's frequency; optional SVG of history + forecast. */
static int fc_predict(sf_model *m, const sf_meta *meta, const sf_predict_args *a) {
    int rc = SF_ERR, L = m->seq_len, P = m->pred_len, C = m->n_channels;
    sf_scaler sc;
    char target[128], features;
    sf_split_kind kind;
    if (read_protocol(m, meta, &sc, target, sizeof target, &features, &kind))
        return sf_error_prefix("%s", a->model ? a->model : "checkpoint");
    float *x = NULL, *y = NULL;
    char **dates = NULL;
    sf_forecast_data d;
    if (sf_forecast_data_load_with_scaler(a->data, target, features, L, P, &sc, &d)) goto out;
    x = sf_malloc((size_t)sf_model_x_floats(m) * sizeof(float));
    y = sf_malloc((size_t)P * C * sizeof(float));
    sf_forecast_last_input(&d, x);
    if (m->time_features) { /* the window's dates: the last L rows, then P continuing the step */
        int64_t step, *ts = sf_malloc((size_t)(L + P) * sizeof(int64_t));
        if (sf_table_step(&d.table, &step)) {
            free(ts);
            goto out_data;
        }
        for (int i = 0; i < L; i++) ts[i] = d.table.timestamps[d.table.n_rows - L + i];
        for (int i = 0; i < P; i++) ts[L + i] = ts[L - 1] + step * (int64_t)(i + 1);
        sf_time_features(ts, L + P, m->freq, x + (size_t)L * C);
        free(ts);
    }
    sf_model_forward(m, x, y, 1, 0, NULL);
    sf_scaler_inverse(&sc, y, P);
    sf_scaler_inverse(&sc, x, L);
    if (sf_table_next_dates(&d.table, P, &dates)) goto out_data;
    if (write_csv(a->out, dates, &sc, y, P, C, d.table.date_name)) goto out_data;
    if (a->plot && plot_forecast(a, &d, &sc, target, x, y, dates, L, P, C)) goto out_data;
    if (a->out) fprintf(stderr, "seqformer: wrote %d forecast steps x %d channels to %s\n", P, C, a->out);
    rc = SF_OK;
out_data:
    if (dates)
        for (int t = 0; t < P; t++) free(dates[t]);
    free(dates);
    sf_forecast_data_free(&d);
out:
    free(x);
    free(y);
    sf_scaler_free(&sc);
    return rc;
}

const sf_task_def sf_task_forecast = {
    .info = {"forecast", "long-horizon forecasting (Time-Series-Library protocol): MSE, MAE", NULL, 0},
    .open_train = fc_open_train,
    .open_eval = fc_open_eval,
    .predict = fc_predict,
    .describe = fc_describe,
};
