/* Registries of the input kinds and heads that block-stacked models (patchtst) are built from.
 * A model reads the options of the kind its config names. */
#include "models/model.h"

static const sf_option patches_options[] = {
    {"patch_len", SF_OPT_INT, 16, NULL, 1, 100000, NULL, "steps per patch"},
    {"stride", SF_OPT_INT, 8, NULL, 1, 100000, NULL, "steps between patch starts"},
};

const sf_part_info sf_input_registry[] = {
    {"patches", "each channel's series cut into overlapping patches, Linear(patch_len -> d)",
     SF_OPTS(patches_options)},
};
const int sf_input_registry_n = (int)(sizeof sf_input_registry / sizeof *sf_input_registry);

static const sf_option flatten_options[] = {
    {"dropout", SF_OPT_FLOAT, 0, NULL, 0, 0.99, NULL, "dropout on the head output"},
};

const sf_part_info sf_head_registry[] = {
    {"flatten", "flatten every token of a series, Linear(d*N -> pred_len)", SF_OPTS(flatten_options)},
};
const int sf_head_registry_n = (int)(sizeof sf_head_registry / sizeof *sf_head_registry);
