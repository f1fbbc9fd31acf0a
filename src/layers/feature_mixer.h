/* Attention token mixers that are "a feature map + linear attention over the features"
 * (kernels/feature_maps.h + kernels/feature_attention.h): the `linear` mixer with feature_map
 * relu or favor, and the `cosformer` mixer. Same projections and parameter names as softmax
 * (<prefix>.qkv, <prefix>.out; attention_proj.h), so all are drop-in replacements.
 *
 *   relu:      phi = relu, normaliser phi(q).z + 1e-6 (as elu+1's).
 *   favor:     FAVOR+ (feature_maps.h), one projection W [n_features, Dh] per layer shared by the
 *              heads, stored as the non-trainable buffer <prefix>.projection (saved and loaded with
 *              the weights, like BatchNorm's running statistics). Keys stabilised over the valid
 *              positions (bidirectional) or by the W-only bound (causal and step). Normaliser
 *              phi(q).z with no eps, as the official favor_attention (every feature is >= 1e-6/
 *              sqrt(m) > 0, so it cannot vanish).
 *              W is drawn at init from an rng stream keyed by a 48-bit seed taken from the init
 *              rng. redraw N > 0: W is redrawn (stream `draws`) before every (N+1)-th training
 *              forward (never in eval mode or in the planning pass); the seed, the calls since
 *              the last draw and the number of draws are kept in the buffer
 *              <prefix>.redraw_state [4] (floats holding integers: seed low and high 24 bits,
 *              calls, draws; exact below 2^24 draws), so a run is deterministic under its seed
 *              and a resumed run (weights reloaded) redraws exactly as the uninterrupted one.
 *   cosformer: cosFormer features (2 Dh per head), normaliser max(phi(q).z, 1e-6). The
 *              re-weighting length len (the official code's M = max(source, target length)):
 *              bidirectional: the valid length of each sequence (T unpadded, as the official
 *              code; lens[b] when padded, so a padded sequence equals that sequence alone);
 *              causal: the mixer's max_T for every sequence (forward and step), so an output
 *              never depends on how many tokens follow it and step == forward; positions are
 *              ctx->pos_offset + t and must stay below max_T.
 * step (causal only): the state is S [H][M][Dh] then z [H][M] (feature_attention.h). */
#ifndef SF_LAYERS_FEATURE_MIXER_H
#define SF_LAYERS_FEATURE_MIXER_H

#include "layers/layer.h"

typedef enum { SF_FMAP_RELU = 0, SF_FMAP_FAVOR = 1, SF_FMAP_COSFORMER = 2 } sf_fmap_kind;

/* Reads n_heads and causal from a->opts; n_features and redraw are used by favor only.
 * NULL with an error naming the option when they do not fit. */
sf_mixer *sf_feature_mixer_create(const sf_mixer_args *a, sf_fmap_kind kind, int n_features,
                                  int redraw);

#endif
