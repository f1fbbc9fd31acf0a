/* Constructors of the concrete mixers; use sf_mixer_create() (layer.h) to pick one by name. */
#ifndef SF_LAYERS_MIXERS_H
#define SF_LAYERS_MIXERS_H

#include "layers/layer.h"

sf_mixer *sf_softmax_attention_create(const sf_mixer_opts *o); /* "softmax" */
sf_mixer *sf_linear_attention_create(const sf_mixer_opts *o);  /* "linear" (elu+1) */
sf_mixer *sf_mlp_create(const sf_mixer_opts *o);               /* "mlp" */

#endif
