/* Tasks as plug-ins: a task knows its data (loading, splits, batching), its loss, its metrics,
 * what it stores in a checkpoint's metadata and what `predict` writes. The trainer, `eval` and
 * `predict` only talk to this interface. Forecasting (tasks/forecast.c) is the first task;
 * classification and language modelling add their own files and one registry line each.
 *
 * Splits are SF_TRAIN, SF_VAL, SF_TEST. Examples are fixed-size float tensors: x_floats in,
 * y_floats target (the model's output has y_floats too). */
#ifndef SF_TASKS_TASK_H
#define SF_TASKS_TASK_H

#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdio.h>

#include "config/options.h"
#include "data/split.h"
#include "models/checkpoint.h"
#include "models/model.h"


#define SF_MAX_METRICS 8
typedef struct {
    int n;
    const char *name[SF_MAX_METRICS]; /* [0] is the early-stopping metric (lower is better) */
    double value[SF_MAX_METRICS];
} sf_metrics;

/* Where the data comes from (CLI flags). Tasks read the fields they use. */
typedef struct {
    const char *data;     /* --data */
    const char *target;   /* forecast: target column (NULL: "OT") */
    char features;        /* forecast: 'M' or 'S' */
    const char *split;    /* forecast: split kind ("auto", "ett-hour", ...) or NULL: stored */
    const char *tokenizer; /* lm: "char" (NULL) or "byte" */
    const char *test;     /* classify, lm: --test file (NULL: test = the validation split) */
    const char *normalize;     /* classify: channel | series | none (NULL: channel) */
    const char *class_weights; /* classify: none | balanced (NULL: none) */
    double val_fraction;       /* classify: share of each class carved from train for validation */
    uint64_t seed;             /* classify: the split's seed */
    double augment;            /* classify: training-series augmentation strength (0: off) */
    double mixup;              /* classify: mixup's Beta(a, a) parameter (0: off) */
    int epoch_windows; /* lm: training windows per epoch (0: (train bytes - 1) / seq_len); a
                        * shorter epoch is a finer validation interval */
} sf_task_args;

typedef struct sf_task sf_task;

/* What `predict` writes (CLI flags). */
typedef struct sf_predict_args {
    const char *model; /* the checkpoint's path (for messages) */
    const char *data;  /* input file */
    const char *out;  /* output file (NULL: stdout) */
    const char *plot; /* SVG (NULL: none) */
    const char *item; /* which channel/class/object to plot (NULL: the task's default) */
    const char *attention_svg; /* classify: per-head attention maps of object `item` (NULL: none) */
    const char *ensemble; /* classify: more checkpoints (comma-separated) averaged with model's */
} sf_predict_args;

typedef struct {
    int (*n_examples)(const sf_task *t, sf_split s);
    void (*gather)(const sf_task *t, sf_split s, const int *idx, int n, float *x, float *y);
    /* Mean loss over n examples; dy (may be NULL) = d loss / d out. */
    double (*loss)(const sf_task *t, const float *out, const float *y, float *dy, int n);
    /* Metric sums over n examples into acc[SF_MAX_METRICS] (zeroed by the caller), then the
     * finished metrics for a split of n_total examples. */
    void (*metrics_add)(const sf_task *t, const float *out, const float *y, int n, double *acc);
    void (*metrics_finish)(const sf_task *t, const double *acc, long n_total, sf_metrics *out);
    /* Metadata a checkpoint needs to reuse this task's data protocol (scaler, columns, ...). */
    void (*save_meta)(const sf_task *t, sf_meta *meta);
    void (*close)(sf_task *t);
    /* Optional: after sf_task_evaluate, add what the metrics cannot hold to eval's JSON
     * (classify: class names, confusion matrix) and, with plot, write the task's SVGs. */
    int (*report)(const sf_task *t, cJSON *out, const char *plot);
} sf_task_ops;

struct sf_task {
    const struct sf_task_def *def;
    const sf_task_ops *ops;
    long x_floats, y_floats; /* per example */
    void *self;
};

typedef struct sf_task_def {
    sf_part_info info;
    /* Training: load a.data for the (normalised) config; may fill fields the config leaves to
     * the data (n_channels: *config is replaced by a renormalised copy). SF_ERR names the file
     * or field (a config that does not fit the data). */
    int (*open_train)(sf_task *t, const sf_task_args *a, cJSON **config, int config_has_channels);
    /* eval: load a.data with the protocol stored in a checkpoint's metadata. */
    int (*open_eval)(sf_task *t, const sf_task_args *a, const sf_model *m, const sf_meta *meta);
    /* predict: run the model on a.data and write what the task predicts. */
    int (*predict)(sf_model *m, const sf_meta *meta, const struct sf_predict_args *a);
    /* A short description of the opened data for the training banner. */
    void (*describe)(const sf_task *t, FILE *f);
    /* Optional: called by the trainer before each epoch, so a task can draw that epoch's
     * examples from (seed, epoch) alone (lm: random window starts) and resuming replays them. */
    void (*begin_epoch)(const sf_task *t, uint64_t seed, int epoch);
} sf_task_def;

extern const sf_task_def sf_task_forecast, sf_task_classify;
extern const sf_task_def sf_task_lm; /* tasks/lm.c */
const sf_task_def *sf_task_find(const char *name);
void sf_task_names(char *buf, size_t n);
extern const sf_task_def *const sf_task_registry[];
extern const int sf_task_registry_n;

/* Metrics of model m over a whole split, in batches of `batch` (inference mode). */
void sf_task_evaluate(const sf_task *t, sf_model *m, sf_split s, int batch, sf_metrics *out);
void sf_task_close(sf_task *t);

#endif
