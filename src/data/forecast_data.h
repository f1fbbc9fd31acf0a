/* The long-horizon forecasting data protocol of Time-Series-Library (thuml), exactly as
 * described in the data README, section 1:
 *
 * Splits (0-based data rows, L = seq_len):
 *   ETT hour   : train [0, 8640), val [8640-L, 11520), test [11520-L, 14400)
 *   ETT minute : the same borders times 4
 *   custom     : n_train = (int)(N*0.7), n_test = (int)(N*0.2), n_val = N - n_train - n_test;
 *                train [0, n_train), val [n_train-L, n_train+n_val), test [N-n_test-L, N)
 *   SF_SPLIT_AUTO picks from the file's basename: "ETTh*" -> hour, "ETTm*" -> minute,
 *   anything else -> custom (like Time-Series-Library's --data ETTh1/ETTm1/custom).
 * Channels ("features"):
 *   'M' : all numeric columns. ETT splits keep the file order; the custom split puts the
 *         target last (other columns in file order, then the target), like Dataset_Custom.
 *   'S' : the target column only.
 *   The target column (default "OT") must exist in every case.
 * Scaling: per-channel z-score, mean and population std (ddof=0) in double, fitted on the
 *   train rows only and applied to every row of the file. A channel whose train values are
 *   all identical gets std 1 (so it is only centred), never inf/NaN.
 * Windows: window i of a split has input rows [b+i, b+i+L) and target rows
 *   [b+i+L, b+i+L+pred_len), b = the split's first row; a split has
 *   rows - L - pred_len + 1 windows. Loading fails if any split has fewer than one. */
#ifndef SF_DATA_FORECAST_DATA_H
#define SF_DATA_FORECAST_DATA_H

#include "data/split.h"
#include "data/table.h"

typedef enum { SF_SPLIT_AUTO, SF_SPLIT_ETT_HOUR, SF_SPLIT_ETT_MINUTE, SF_SPLIT_CUSTOM } sf_split_kind;

/* Per-channel z-score: scaled = (x - mean) / std. */
typedef struct {
    int n;        /* channels */
    char **names; /* [n] channel (column) names */
    double *mean; /* [n] */
    double *std;  /* [n] always finite and > 0 */
} sf_scaler;

/* Build a scaler from saved numbers (e.g. a checkpoint); everything is copied. SF_ERR if a
 * mean is not finite or a std is not finite and > 0. */
int sf_scaler_init(sf_scaler *s, int n, const char *const *names, const double *mean,
                   const double *std);
/* Deep copy of src into dst. */
void sf_scaler_copy(sf_scaler *dst, const sf_scaler *src);
void sf_scaler_free(sf_scaler *s);
/* In place on x[n_rows][s->n]: x = (x - mean) / std, and its inverse x = x * std + mean. */
void sf_scaler_transform(const sf_scaler *s, float *x, long n_rows);
void sf_scaler_inverse(const sf_scaler *s, float *x, long n_rows);

typedef struct {
    sf_table table;     /* the file as read (raw values, dates, timestamps) */
    sf_split_kind kind; /* resolved (never SF_SPLIT_AUTO); SF_SPLIT_AUTO for predict loads */
    char features;      /* 'M' or 'S' */
    int seq_len, pred_len;
    int n_rows;         /* = table.n_rows */
    int n_channels;     /* C */
    int *channel_cols;  /* [C] column index in table for each channel */
    int target_channel; /* channel index of the target (C-1 for custom M; 0 for S) */
    sf_scaler scaler;   /* [C] channels, names = channel names */
    float *data;        /* [n_rows][C] scaled, all rows of the file */
    int split_begin[3], split_end[3]; /* row ranges [begin, end), indexed by sf_split */
} sf_forecast_data;

/* Resolve SF_SPLIT_AUTO from a path's basename; other kinds are returned unchanged. */
sf_split_kind sf_split_kind_for_path(const char *path, sf_split_kind kind);
const char *sf_split_kind_name(sf_split_kind kind); /* "ETT-hour", "ETT-minute", "custom" */

/* Read path, choose channels, compute the splits, fit the scaler on the train rows and
 * scale every row. target NULL means "OT"; features is 'M' or 'S'. */
int sf_forecast_data_load(const char *path, const char *target, char features,
                          sf_split_kind kind, int seq_len, int pred_len, sf_forecast_data *out);

/* For prediction on a new file: the channels are the columns named by scaler->names, in
 * that order (a missing one is an error naming it and the file); the target must be one of
 * them; the file is scaled with scaler (copied). There are no splits: all three ranges are
 * [0, n_rows) and kind is SF_SPLIT_AUTO. Needs n_rows >= seq_len; pred_len is only stored. */
int sf_forecast_data_load_with_scaler(const char *path, const char *target, char features,
                                      int seq_len, int pred_len, const sf_scaler *scaler,
                                      sf_forecast_data *out);

void sf_forecast_data_free(sf_forecast_data *d);

/* Windows in a split: rows - seq_len - pred_len + 1 (>= 1 after a successful load). */
int sf_forecast_n_windows(const sf_forecast_data *d, sf_split split);

/* For k in [0, n): window idx[k] of split goes to x[k][seq_len][C] and y[k][pred_len][C]
 * (scaled). y may be NULL. An index out of range is a programmer error (assert). */
void sf_forecast_gather(const sf_forecast_data *d, sf_split split, const int *idx, int n,
                        float *x, float *y);

/* The last seq_len scaled rows of the whole file into x[seq_len][C] (input for predict). */
void sf_forecast_last_input(const sf_forecast_data *d, float *x);

#endif
