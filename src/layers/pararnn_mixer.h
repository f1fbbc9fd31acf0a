/* The ParaRNN token mixers (gru_diag, lstm_cifg): read the Newton statistics of the last forward
 * call a context ran (iterations, residual, whether it fell back to the sequential solve). */
#ifndef SF_LAYERS_PARARNN_MIXER_H
#define SF_LAYERS_PARARNN_MIXER_H

#include <cjson/cJSON.h>

#include "kernels/pararnn.h"
#include "layers/layer.h"

/* 1 and *out filled when m is a gru_diag / lstm_cifg mixer whose last forward in ctx ran the
 * Newton solver; 0 otherwise. */
int sf_pararnn_stats(const sf_mixer *m, const sf_ctx *ctx, sf_newton_stats *out);

/* 1 when a model config (any nesting) has a gru_diag / lstm_cifg mixer that solves by Newton (the
 * trainer then reports the Newton statistics, sf_ctx.newton), else 0. */
int sf_config_uses_newton(const cJSON *config);

#endif
