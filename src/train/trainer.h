/* Task-generic training loop: shuffled mini-batches, the task's loss, AdamW, warm-up then a
 * per-epoch schedule, gradient clipping, early stopping on the task's first validation metric
 * with restore of the best weights, and a training-state file for --resume that reproduces an
 * uninterrupted run exactly.
 *
 * Divergence is never silent: a non-finite loss or gradient stops the run at the step where it
 * happens (error naming epoch and step, nothing saved from that step), or with skip_nonfinite the
 * step is skipped and counted. */
#ifndef SF_TRAIN_TRAINER_H
#define SF_TRAIN_TRAINER_H

#include <stdint.h>

#include "models/model.h"
#include "tasks/task.h"

typedef struct {
    int epochs, patience, batch_size, eval_batch_size;
    int warmup_epochs;
    float lr, weight_decay, clip_grad;
    float min_delta; /* early stopping: val metric must improve by more than this (PatchTST's delta) */
    char lradj[16];  /* "type3" (PatchTST), "type1" (LTSF-Linear, iTransformer, Informer), "cosine", "constant" */
    uint64_t seed;
    const char *out_dir;
    const char *data_path; /* fingerprinted into the training state: --resume refuses another file */
    int resume;
    int stop_after;     /* stop (as if interrupted) after this many epochs in this run; 0 = never */
    int progress_mode;  /* SF_PROGRESS_* */
    int skip_nonfinite; /* 1: skip (and count) steps with a non-finite loss or gradient */
    int lazy_adamw;     /* 1: lookup tables update only the rows a step touched (train/adamw.h) */
    /* > 0: stop at the first epoch end where this run's process CPU time (all threads; the
     * budget comparisons run one thread) has reached this many seconds, keeping the best
     * weights; each epoch's CPU and wall time are logged to DIR/cpu_log.csv */
    float time_budget;
    int budget_wall; /* 1: time_budget counts wall-clock seconds instead (an idle machine, all its
                      * threads: the issue #15 comparison at equal wall time) */
    /* > 0: keep an exponential moving average of the trained weights with this decay per step
     * (warmed up as min(ema, (1 + t) / (10 + t)) at step t, as TensorFlow's
     * ExponentialMovingAverage with num_updates); validation, the best-weights selection and the
     * saved model use the average (buffers such as BatchNorm statistics are copied, not
     * averaged) */
    float ema;
} sf_train_opts;

typedef struct {
    sf_metrics val, test;
    double seconds;
    int best_epoch, epochs_run;
    int stopped_early, interrupted;
    long skipped_steps;
    double cpu_seconds; /* process CPU time of this run's training and validation */
    long steps;         /* optimizer steps taken (all runs, resumed ones included) */
    int budget_reached; /* stopped by time_budget */
} sf_train_result;

void sf_train_opts_defaults(sf_train_opts *o, const char *model);
/* Learning rate for optimizer step `step` (0-based) of epoch `epoch` (0-based). */
float sf_train_lr(const sf_train_opts *o, int epoch, int step, int steps_per_epoch);
/* The moving average after optimizer step t (1-based): ema = d ema + (1 - d) w with
 * d = min(decay, (1 + t) / (10 + t)) on trained tensors; buffers are copied. */
void sf_train_ema_update(float *ema, const sf_params *ps, float decay, long t);
/* Trains m on task t, writing DIR/{model.safetensors, metrics.json, train_log.csv, loss.svg,
 * train_state.safetensors}. */
int sf_train(sf_model *m, const sf_task *t, const sf_train_opts *o, sf_train_result *r);

#endif
