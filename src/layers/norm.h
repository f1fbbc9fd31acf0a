/* Normalisation of the feature dimension:
 *   LayerNorm (PyTorch nn.LayerNorm: per token, eps inside the sqrt, biased variance),
 *   RMSNorm (weight only),
 *   BatchNorm (PyTorch nn.BatchNorm1d over all tokens of the batch, as PatchTST uses it: batch
 *   statistics when training, running statistics otherwise; momentum 0.1).
 * Names: <name>.weight, <name>.bias (not RMSNorm), and for BatchNorm the buffers
 * <name>.running_mean, <name>.running_var, <name>.num_batches_tracked. */
#ifndef SF_LAYERS_NORM_H
#define SF_LAYERS_NORM_H

#include "layers/layer.h"

typedef enum { SF_NORM_LAYERNORM, SF_NORM_RMSNORM, SF_NORM_BATCHNORM } sf_norm_kind;

/* A norm as a config names it: {"kind": ..., "eps": ..., "momentum": ...}. */
typedef struct {
    sf_norm_kind kind;
    float eps;
    float momentum; /* BatchNorm running-estimate update */
} sf_norm_spec;

typedef struct {
    sf_norm_spec spec;
    int d;
    float *w, *b, *dw, *db;
    float *running_mean, *running_var, *num_batches; /* BatchNorm buffers */
    size_t slot;                                     /* its record in sf_ctx.saved */
} sf_norm;

/* The norm registry: one sf_part_info per kind (name, doc, options), indexed by sf_norm_kind. */
extern const sf_part_info sf_norm_registry[3];
int sf_norm_kind_parse(const char *s, sf_norm_kind *out); /* SF_OK / SF_ERR listing the kinds */
const char *sf_norm_kind_name(sf_norm_kind k);
/* From a normalised norm object (kind + its options). */
sf_norm_spec sf_norm_spec_from_json(const cJSON *o);
void sf_norm_declare(sf_norm *n, sf_params *ps, const char *name, const sf_norm_spec *spec, int d);
void sf_norm_init(sf_norm *n); /* weight 1, bias 0, running mean 0 / var 1 */
/* x, y: [N, d]; x must stay alive until backward (it is saved by pointer). */
void sf_norm_forward(sf_norm *n, sf_ctx *ctx, const float *x, float *y, long N);
void sf_norm_backward(sf_norm *n, sf_ctx *ctx, const float *dy, float *dx, long N);
void sf_norm_step(const sf_norm *n, const float *x, float *y); /* one row, nothing saved */

#endif
