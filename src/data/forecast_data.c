#include "data/forecast_data.h"

#include <math.h>
#include <string.h>

#include "core/error.h"

/* ---------------------------------------------------------------- scaler */

int sf_scaler_init(sf_scaler *s, int n, const char *const *names, const double *mean,
                   const double *std) {
    SF_ASSERT(s && n >= 1 && names && mean && std);
    memset(s, 0, sizeof *s);
    for (int j = 0; j < n; j++) {
        if (!isfinite(mean[j]))
            return sf_errorf("scaler: channel '%s': mean is not finite", names[j]);
        if (!isfinite(std[j]) || !(std[j] > 0))
            return sf_errorf("scaler: channel '%s': std must be finite and > 0, got %g",
                             names[j], std[j]);
    }
    s->n = n;
    s->names = sf_calloc((size_t)n, sizeof *s->names);
    s->mean = sf_malloc((size_t)n * sizeof *s->mean);
    s->std = sf_malloc((size_t)n * sizeof *s->std);
    for (int j = 0; j < n; j++) {
        s->names[j] = sf_strdup(names[j]);
        s->mean[j] = mean[j];
        s->std[j] = std[j];
    }
    return SF_OK;
}

void sf_scaler_copy(sf_scaler *dst, const sf_scaler *src) {
    int rc = sf_scaler_init(dst, src->n, (const char *const *)src->names, src->mean, src->std);
    SF_ASSERT(rc == SF_OK);
}

void sf_scaler_free(sf_scaler *s) {
    if (!s) return;
    if (s->names)
        for (int j = 0; j < s->n; j++) free(s->names[j]);
    free(s->names);
    free(s->mean);
    free(s->std);
    memset(s, 0, sizeof *s);
}

void sf_scaler_transform(const sf_scaler *s, float *x, long n_rows) {
    for (long i = 0; i < n_rows; i++)
        for (int j = 0; j < s->n; j++) {
            float *v = &x[i * s->n + j];
            *v = (float)(((double)*v - s->mean[j]) / s->std[j]);
        }
}

void sf_scaler_inverse(const sf_scaler *s, float *x, long n_rows) {
    for (long i = 0; i < n_rows; i++)
        for (int j = 0; j < s->n; j++) {
            float *v = &x[i * s->n + j];
            *v = (float)((double)*v * s->std[j] + s->mean[j]);
        }
}

/* ---------------------------------------------------------------- names */

sf_split_kind sf_split_kind_for_path(const char *path, sf_split_kind kind) {
    if (kind != SF_SPLIT_AUTO) return kind;
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    if (strncmp(base, "ETTh", 4) == 0) return SF_SPLIT_ETT_HOUR;
    if (strncmp(base, "ETTm", 4) == 0) return SF_SPLIT_ETT_MINUTE;
    return SF_SPLIT_CUSTOM;
}

const char *sf_split_kind_name(sf_split_kind kind) {
    switch (kind) {
    case SF_SPLIT_ETT_HOUR: return "ETT-hour";
    case SF_SPLIT_ETT_MINUTE: return "ETT-minute";
    case SF_SPLIT_CUSTOM: return "custom";
    default: return "auto";
    }
}

const char *sf_split_name(sf_split split) {
    switch (split) {
    case SF_TRAIN: return "train";
    case SF_VAL: return "val";
    default: return "test";
    }
}

/* ---------------------------------------------------------------- loading */

void sf_forecast_data_free(sf_forecast_data *d) {
    if (!d) return;
    sf_table_free(&d->table);
    free(d->channel_cols);
    sf_scaler_free(&d->scaler);
    free(d->data);
    memset(d, 0, sizeof *d);
}

static int check_common(const char *path, char features, int seq_len, int pred_len) {
    if (features != 'M' && features != 'S')
        return sf_errorf("%s: features must be 'M' or 'S', got '%c'", path, features);
    if (seq_len < 1) return sf_errorf("%s: seq_len must be >= 1, got %d", path, seq_len);
    if (pred_len < 1) return sf_errorf("%s: pred_len must be >= 1, got %d", path, pred_len);
    if (seq_len > 100000000 || pred_len > 100000000)
        return sf_errorf("%s: seq_len/pred_len too large (%d/%d)", path, seq_len, pred_len);
    return SF_OK;
}

/* Scale the chosen channels of every table row into d->data with d->scaler. */
static void scale_all(sf_forecast_data *d) {
    int C = d->n_channels, nc = d->table.n_cols;
    d->data = sf_malloc((size_t)d->n_rows * (size_t)C * sizeof *d->data);
    for (int i = 0; i < d->n_rows; i++) {
        const double *row = d->table.values + (size_t)i * (size_t)nc;
        float *o = d->data + (size_t)i * (size_t)C;
        for (int c = 0; c < C; c++)
            o[c] = (float)((row[d->channel_cols[c]] - d->scaler.mean[c]) / d->scaler.std[c]);
    }
}

int sf_forecast_data_load(const char *path, const char *target, char features,
                          sf_split_kind kind, int seq_len, int pred_len, sf_forecast_data *out) {
    SF_ASSERT(path && out);
    memset(out, 0, sizeof *out);
    if (!target) target = "OT";
    if (check_common(path, features, seq_len, pred_len) != SF_OK) return SF_ERR;
    sf_forecast_data d;
    memset(&d, 0, sizeof d);
    if (sf_table_read_csv(path, &d.table) != SF_OK) return SF_ERR;
    d.kind = sf_split_kind_for_path(path, kind);
    d.features = features;
    d.seq_len = seq_len;
    d.pred_len = pred_len;
    d.n_rows = d.table.n_rows;
    const sf_table *t = &d.table;
    int N = d.n_rows;

    int tcol = sf_table_find_column(t, target);
    if (tcol < 0) {
        char cols[256];
        size_t pos = 0;
        cols[0] = '\0';
        for (int j = 0; j < t->n_cols && pos < sizeof cols - 8; j++) {
            int w = snprintf(cols + pos, sizeof cols - pos, "%s'%s'", j ? ", " : "",
                             t->col_names[j]);
            if (w < 0 || (size_t)w >= sizeof cols - pos) {
                snprintf(cols + (pos < sizeof cols - 5 ? pos : sizeof cols - 5), 5, ", ..");
                break;
            }
            pos += (size_t)w;
        }
        sf_errorf("%s: target column '%s' not found (columns: %s)", path, target, cols);
        goto fail;
    }

    /* Channels. */
    if (features == 'S') {
        d.n_channels = 1;
        d.channel_cols = sf_malloc(sizeof *d.channel_cols);
        d.channel_cols[0] = tcol;
        d.target_channel = 0;
    } else {
        d.n_channels = t->n_cols;
        d.channel_cols = sf_malloc((size_t)t->n_cols * sizeof *d.channel_cols);
        if (d.kind == SF_SPLIT_CUSTOM) {
            int c = 0;
            for (int j = 0; j < t->n_cols; j++)
                if (j != tcol) d.channel_cols[c++] = j;
            d.channel_cols[c] = tcol;
            d.target_channel = t->n_cols - 1;
        } else {
            for (int j = 0; j < t->n_cols; j++) d.channel_cols[j] = j;
            d.target_channel = tcol;
        }
    }

    /* Splits. */
    int *b = d.split_begin, *e = d.split_end;
    if (d.kind == SF_SPLIT_CUSTOM) {
        int n_train = (int)(N * 0.7), n_test = (int)(N * 0.2);
        int n_val = N - n_train - n_test;
        b[SF_TRAIN] = 0;
        e[SF_TRAIN] = n_train;
        b[SF_VAL] = n_train - seq_len;
        e[SF_VAL] = n_train + n_val;
        b[SF_TEST] = N - n_test - seq_len;
        e[SF_TEST] = N;
    } else {
        int m = d.kind == SF_SPLIT_ETT_MINUTE ? 4 : 1;
        int month = 30 * 24 * m;
        b[SF_TRAIN] = 0;
        e[SF_TRAIN] = 12 * month;
        b[SF_VAL] = 12 * month - seq_len;
        e[SF_VAL] = 16 * month;
        b[SF_TEST] = 16 * month - seq_len;
        e[SF_TEST] = 20 * month;
        if (N < e[SF_TEST]) {
            sf_errorf("series too short: %s has %d rows, the %s split uses the first %d", path,
                      N, sf_split_kind_name(d.kind), e[SF_TEST]);
            goto fail;
        }
    }
    for (int s = 0; s < 3; s++) {
        if (b[s] < 0) {
            sf_errorf("series too short: %s split of %s starts seq_len=%d rows before row %d, "
                      "before the first row",
                      sf_split_name((sf_split)s), path, seq_len, b[s] + seq_len);
            goto fail;
        }
        int rows = e[s] - b[s];
        if ((long)rows < (long)seq_len + pred_len) {
            sf_errorf("series too short: %s split of %s has %d rows, needs seq_len+pred_len=%ld",
                      sf_split_name((sf_split)s), path, rows, (long)seq_len + pred_len);
            goto fail;
        }
    }

    /* Scaler on the train rows: mean, then population std (two passes, double). */
    {
        int C = d.n_channels, nc = t->n_cols, n_train = e[SF_TRAIN];
        const char **names = sf_malloc((size_t)C * sizeof *names);
        double *mean = sf_calloc((size_t)C, sizeof *mean);
        double *std = sf_calloc((size_t)C, sizeof *std);
        for (int c = 0; c < C; c++) {
            int col = d.channel_cols[c];
            names[c] = t->col_names[col];
            double s = 0;
            int constant = 1;
            double v0 = t->values[col];
            for (int i = 0; i < n_train; i++) {
                double v = t->values[(size_t)i * (size_t)nc + (size_t)col];
                s += v;
                if (v != v0) constant = 0;
            }
            if (constant) {
                mean[c] = v0;
                std[c] = 1.0;
                continue;
            }
            mean[c] = s / n_train;
            double ss = 0;
            for (int i = 0; i < n_train; i++) {
                double dv = t->values[(size_t)i * (size_t)nc + (size_t)col] - mean[c];
                ss += dv * dv;
            }
            std[c] = sqrt(ss / n_train);
            if (!(std[c] > 0)) std[c] = 1.0;
        }
        int rc = sf_scaler_init(&d.scaler, C, names, mean, std);
        free(names);
        free(mean);
        free(std);
        if (rc != SF_OK) {
            sf_error_prefix("%s", path);
            goto fail;
        }
    }
    scale_all(&d);
    *out = d;
    return SF_OK;

fail:
    sf_forecast_data_free(&d);
    return SF_ERR;
}

int sf_forecast_data_load_with_scaler(const char *path, const char *target, char features,
                                      int seq_len, int pred_len, const sf_scaler *scaler,
                                      sf_forecast_data *out) {
    SF_ASSERT(path && out && scaler && scaler->n >= 1);
    memset(out, 0, sizeof *out);
    if (!target) target = "OT";
    if (check_common(path, features, seq_len, pred_len) != SF_OK) return SF_ERR;
    sf_forecast_data d;
    memset(&d, 0, sizeof d);
    if (sf_table_read_csv(path, &d.table) != SF_OK) return SF_ERR;
    d.kind = SF_SPLIT_AUTO;
    d.features = features;
    d.seq_len = seq_len;
    d.pred_len = pred_len;
    d.n_rows = d.table.n_rows;
    d.n_channels = scaler->n;
    d.channel_cols = sf_malloc((size_t)scaler->n * sizeof *d.channel_cols);
    d.target_channel = -1;
    for (int c = 0; c < scaler->n; c++) {
        int col = sf_table_find_column(&d.table, scaler->names[c]);
        if (col < 0) {
            sf_errorf("%s: column '%s' (channel %d of the model) not found", path,
                      scaler->names[c], c + 1);
            goto fail;
        }
        d.channel_cols[c] = col;
        if (strcmp(scaler->names[c], target) == 0) d.target_channel = c;
    }
    if (d.target_channel < 0) {
        sf_errorf("%s: target column '%s' is not one of the model's channels", path, target);
        goto fail;
    }
    if (d.n_rows < seq_len) {
        sf_errorf("series too short: %s has %d rows, needs seq_len=%d", path, d.n_rows, seq_len);
        goto fail;
    }
    for (int s = 0; s < 3; s++) {
        d.split_begin[s] = 0;
        d.split_end[s] = d.n_rows;
    }
    sf_scaler_copy(&d.scaler, scaler);
    scale_all(&d);
    *out = d;
    return SF_OK;

fail:
    sf_forecast_data_free(&d);
    return SF_ERR;
}

/* ---------------------------------------------------------------- windows */

int sf_forecast_n_windows(const sf_forecast_data *d, sf_split split) {
    SF_ASSERT(split >= SF_TRAIN && split <= SF_TEST);
    int n = d->split_end[split] - d->split_begin[split] - d->seq_len - d->pred_len + 1;
    return n > 0 ? n : 0;
}

void sf_forecast_gather(const sf_forecast_data *d, sf_split split, const int *idx, int n,
                        float *x, float *y) {
    SF_ASSERT(split >= SF_TRAIN && split <= SF_TEST);
    int nw = sf_forecast_n_windows(d, split);
    size_t C = (size_t)d->n_channels, L = (size_t)d->seq_len, P = (size_t)d->pred_len;
    for (int k = 0; k < n; k++) {
        SF_ASSERT(idx[k] >= 0 && idx[k] < nw);
        size_t start = (size_t)d->split_begin[split] + (size_t)idx[k];
        const float *src = d->data + start * C;
        memcpy(x + (size_t)k * L * C, src, L * C * sizeof(float));
        if (y) memcpy(y + (size_t)k * P * C, src + L * C, P * C * sizeof(float));
    }
}

void sf_forecast_last_input(const sf_forecast_data *d, float *x) {
    SF_ASSERT(d->n_rows >= d->seq_len);
    size_t C = (size_t)d->n_channels;
    memcpy(x, d->data + (size_t)(d->n_rows - d->seq_len) * C,
           (size_t)d->seq_len * C * sizeof(float));
}
