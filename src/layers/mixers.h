/* The concrete mixers' definitions, listed in the registry (layers/mixer.c). */
#ifndef SF_LAYERS_MIXERS_H
#define SF_LAYERS_MIXERS_H

#include "layers/layer.h"

extern const sf_mixer_def sf_mixer_softmax;  /* softmax_attention.c */
extern const sf_mixer_def sf_mixer_linear;   /* linear_attention.c (elu+1) */
extern const sf_mixer_def sf_mixer_mlp;      /* mlp.c */
extern const sf_mixer_def sf_mixer_glu;      /* glu.c (SwiGLU, GEGLU) */
extern const sf_mixer_def sf_mixer_identity; /* identity.c */
extern const sf_mixer_def sf_mixer_probsparse; /* probsparse_attention.c (Informer) */

#endif
