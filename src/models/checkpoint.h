/* model.safetensors: the weights under their PyTorch-style names plus, in __metadata__,
 * everything `eval` and `predict` need: "config" (JSON), "columns", "scaler_mean", "scaler_std"
 * (JSON arrays, one entry per channel), "target", "features", "split", "format_version". */
#ifndef SF_MODELS_CHECKPOINT_H
#define SF_MODELS_CHECKPOINT_H

#include "data/forecast_data.h"
#include "models/model.h"

typedef struct {
    char target[128];
    char features; /* 'M' or 'S' */
    char split[32]; /* sf_split_kind_name() of the training data */
} sf_data_info;

int sf_checkpoint_save(const char *path, const sf_model *m, const sf_scaler *scaler,
                       const sf_data_info *info);
/* Builds *m from the stored config and loads every tensor, checking names and shapes. A tensor
 * the config does not expect, or one it expects but the file lacks, is an error naming it. */
int sf_checkpoint_load(const char *path, sf_model *m, sf_scaler *scaler, sf_data_info *info);
/* Copy every parameter of m from an open safetensors file (same name check as above). */
struct sf_safetensors;
int sf_checkpoint_load_params(const struct sf_safetensors *st, sf_params *ps, int allow_extra);

#endif
