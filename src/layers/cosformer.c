/* Token mixer "cosformer" (Qin et al. 2022, "cosFormer: Rethinking Softmax in Attention"):
 * linear attention over ReLU features re-weighted by cos(pi/2 (i - j) / len), decomposed into
 * sin and cos halves (2 Dh features per head), normaliser max(phi(q).z, 1e-6), no 1/sqrt(d).
 * The math, the choice of len for padding and streaming, and step live in layers/feature_mixer.c
 * (feature_mixer.h); this file is its registry entry. Same projections and parameter names as
 * softmax and linear. */
#include "layers/attention_proj.h"
#include "layers/feature_mixer.h"
#include "layers/mixers.h"

static sf_mixer *cosformer_create(const sf_mixer_args *a) {
    return sf_feature_mixer_create(a, SF_FMAP_COSFORMER, 0, 0);
}

const sf_mixer_def sf_mixer_cosformer = {
    .info = {"cosformer", "cosFormer: ReLU linear attention with cos re-weighting (O(T) time and memory)",
             SF_OPTS(sf_attention_options)},
    .slots = SF_SLOT_TOKEN,
    .create = cosformer_create,
};
