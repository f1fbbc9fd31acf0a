/* A forecasting model: x [B, seq_len, C] (z-scored) -> y [B, pred_len, C].
 *
 * sf_model owns the configuration, the flat parameter buffers and the activation arena. The arena
 * is sized by a planning pass for the largest batch it will see (sf_model_reserve), so forward and
 * backward never allocate. Concrete models (patchtst.c, dlinear.c) provide sf_model_ops. */
#ifndef SF_MODELS_MODEL_H
#define SF_MODELS_MODEL_H

#include <stdint.h>

#include "core/arena.h"
#include "core/params.h"
#include "core/rng.h"
#include "layers/layer.h"
#include "models/config.h"

typedef struct sf_model sf_model;

typedef struct {
    int (*build)(sf_model *m); /* create layers and declare parameters; SF_ERR on bad config */
    void (*init)(sf_model *m, sf_rng *rng);
    void (*forward)(sf_model *m, sf_ctx *ctx, const float *x, float *y);
    void (*backward)(sf_model *m, sf_ctx *ctx, const float *dy); /* accumulates param grads */
    void (*destroy)(sf_model *m);
} sf_model_ops;

struct sf_model {
    sf_model_config cfg;
    const sf_model_ops *ops;
    void *self;
    sf_params params;
    sf_arena arena;
    int arena_batch, arena_training; /* what the arena was planned for */
};

/* Build from a validated config; parameters are allocated (zero) but not initialised. */
int sf_model_create(sf_model *m, const sf_model_config *cfg);
void sf_model_destroy(sf_model *m);
void sf_model_init_weights(sf_model *m, uint64_t seed);
/* Make the arena large enough for batches of up to max_batch (training adds backward). */
void sf_model_reserve(sf_model *m, int max_batch, int training);
/* y = model(x). When training, dropout draws from rng and activations are kept for backward. */
void sf_model_forward(sf_model *m, const float *x, float *y, int B, int training, sf_rng *rng);
/* After a training forward with the same B: parameter gradients += d loss / d params. */
void sf_model_backward(sf_model *m, const float *dy, int B);
long sf_model_n_params(const sf_model *m); /* trainable parameters (buffers excluded) */

/* Mean squared error over n elements and its gradient (dy may be NULL). */
double sf_mse_loss(const float *y, const float *target, float *dy, long n);

extern const sf_model_ops sf_patchtst_ops;
extern const sf_model_ops sf_dlinear_ops;

#endif
