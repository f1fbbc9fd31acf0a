/* model.safetensors: the weights under their PyTorch-style names plus, in __metadata__,
 * "format_version", "producer", "config" (the canonical JSON config) and whatever the task needs
 * to reuse its data protocol (forecast: "columns", "scaler_mean", "scaler_std", "target",
 * "features", "split"). */
#ifndef SF_MODELS_CHECKPOINT_H
#define SF_MODELS_CHECKPOINT_H

#include "models/model.h"

/* String key/value pairs (owned copies). */
typedef struct {
    int n, cap;
    char **key, **value;
} sf_meta;

void sf_meta_set(sf_meta *m, const char *key, const char *value); /* replaces an existing key */
const char *sf_meta_get(const sf_meta *m, const char *key);       /* NULL if absent */
void sf_meta_free(sf_meta *m);

/* Weights + config + extra metadata, written atomically. */
int sf_checkpoint_save(const char *path, const sf_model *m, const sf_meta *extra);
/* Builds *m from the stored config and loads every tensor, checking names and shapes; a tensor
 * the config does not expect, or one it expects but the file lacks, is an error naming it. All
 * metadata is copied to *meta (may be NULL). A config from a newer format_version is refused. */
int sf_checkpoint_load(const char *path, sf_model *m, sf_meta *meta);
/* Copy every parameter of m from an open safetensors file (same name check as above). */
struct sf_safetensors;
int sf_checkpoint_load_params(const struct sf_safetensors *st, sf_params *ps, int allow_extra);

#endif
