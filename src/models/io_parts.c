/* Registries of the input kinds and heads that block-stacked models (patchtst, itransformer) are
 * built from. A model reads the options of the kind its config names and refuses kinds it does
 * not implement (patchtst: patches + flatten; itransformer: inverted + per_token). */
#include "models/model.h"

static const sf_option patches_options[] = {
    {"patch_len", SF_OPT_INT, 16, NULL, 1, 100000, NULL, "steps per patch"},
    {"stride", SF_OPT_INT, 8, NULL, 1, 100000, NULL, "steps between patch starts"},
};

static const sf_option conv_patches_options[] = {
    {"patch_len", SF_OPT_INT, 8, NULL, 1, 100000, NULL, "steps per window"},
    {"stride", SF_OPT_INT, 4, NULL, 1, 100000, NULL, "steps between window starts"},
};

static const sf_option inverted_options[] = {
    {"time_tokens", SF_OPT_BOOL, 0, NULL, 0, 1, NULL,
     "also embed the look-back's time features (model option freq) as tokens, as the "
     "official x_mark_enc"},
};

static const sf_option tokens_options[] = {
    {"vocab", SF_OPT_INT, 256, NULL, 2, 1 << 24, NULL,
     "token ids 0..vocab-1 (ids travel as floats in x and are checked to be integers in range); "
     "the lm task sets it from its tokenizer"},
};

const sf_part_info sf_input_registry[] = {
    {"patches", "each channel's series cut into overlapping patches, Linear(patch_len -> d)",
     SF_OPTS(patches_options)},
    {"inverted", "each variate's whole look-back is one token, Linear(seq_len -> d)",
     SF_OPTS(inverted_options)},
    {"tokens", "token ids, Embedding(vocab -> d) (embed.weight [vocab, d])", SF_OPTS(tokens_options)},
    {"pointwise", "each step's channels embedded on their own, Linear(C -> d) then ReLU (t2's "
     "kernel-1 Conv1D)", NULL, 0},
    {"conv_patches", "windows of patch_len steps (all channels) every stride steps, zero past the "
     "valid end, Linear(patch_len*C -> d) then ReLU (a strided Conv1D; t2 on UCR)",
     SF_OPTS(conv_patches_options)},
};
const int sf_input_registry_n = (int)(sizeof sf_input_registry / sizeof *sf_input_registry);

static const sf_option flatten_options[] = {
    {"dropout", SF_OPT_FLOAT, 0, NULL, 0, 0.99, NULL, "dropout on the head output"},
};

static const sf_option lm_head_options[] = {
    {"tie_weights", SF_OPT_BOOL, 0, NULL, 0, 1, NULL,
     "logits use the token embedding as their weight (no head.weight)"},
    {"bias", SF_OPT_BOOL, 0, NULL, 0, 1, NULL, "a bias per vocabulary entry (head.bias)"},
};

static const sf_option pool_options[] = {
    {"dropout", SF_OPT_FLOAT, 0.1, NULL, 0, 0.99, NULL, "dropout on the pooled vector"},
};

const sf_part_info sf_head_registry[] = {
    {"flatten", "flatten every token of a series, Linear(d*N -> pred_len)", SF_OPTS(flatten_options)},
    {"per_token", "each token on its own, Linear(d -> pred_len) (a variate's forecast)", NULL, 0},
    {"lm", "per-token logits over the vocabulary, Linear(d -> vocab)", SF_OPTS(lm_head_options)},
    {"pool_classify", "mean over the valid tokens, dropout, Linear(d -> n_classes) (logits)",
     SF_OPTS(pool_options)},
};
const int sf_head_registry_n = (int)(sizeof sf_head_registry / sizeof *sf_head_registry);
