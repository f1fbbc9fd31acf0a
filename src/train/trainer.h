/* Training loop for forecasters: shuffled mini-batches, MSE loss, AdamW, warm-up then a per-epoch
 * schedule, gradient clipping, early stopping on validation MSE with restore of the best weights,
 * and a training-state file for --resume that reproduces an uninterrupted run exactly. */
#ifndef SF_TRAIN_TRAINER_H
#define SF_TRAIN_TRAINER_H

#include <stdint.h>

#include "data/forecast_data.h"
#include "models/checkpoint.h"
#include "models/model.h"

typedef struct {
    int epochs, patience, batch_size, eval_batch_size;
    int warmup_epochs;
    float lr, weight_decay, clip_grad;
    float min_delta; /* early stopping: val MSE must improve by more than this (as PatchTST's delta) */
    char lradj[16]; /* "type3" (PatchTST), "cosine", "constant" */
    uint64_t seed;
    const char *out_dir;
    int resume;
    int stop_after;    /* stop (as if interrupted) after this many epochs in this run; 0 = never */
    int progress_mode; /* SF_PROGRESS_* */
} sf_train_opts;

typedef struct {
    double val_mse, val_mae, test_mse, test_mae, seconds;
    int best_epoch, epochs_run;
    int stopped_early, interrupted;
} sf_train_result;

void sf_train_opts_defaults(sf_train_opts *o, const char *model);
/* Learning rate for optimizer step `step` (0-based) of epoch `epoch` (0-based). */
float sf_train_lr(const sf_train_opts *o, int epoch, int step, int steps_per_epoch);
/* MSE and MAE over every window of a split (scaled units), in batches. */
void sf_evaluate(sf_model *m, const sf_forecast_data *d, sf_split split, int batch, double *mse,
                 double *mae);
int sf_train(sf_model *m, const sf_forecast_data *d, const sf_train_opts *o,
             const sf_data_info *info, sf_train_result *r);

#endif
