/* Normalisation over the feature dimension: LayerNorm (PyTorch nn.LayerNorm, eps inside the sqrt,
 * biased variance) or RMSNorm (weight only). Names: <name>.weight and, for LayerNorm, <name>.bias. */
#ifndef SF_LAYERS_NORM_H
#define SF_LAYERS_NORM_H

#include "layers/layer.h"

typedef enum { SF_NORM_LAYERNORM, SF_NORM_RMSNORM } sf_norm_kind;

typedef struct {
    sf_norm_kind kind;
    int d;
    float eps;
    float *w, *b, *dw, *db;
    /* saved by forward */
    const float *x;
    float *mean, *rstd;
} sf_norm;

int sf_norm_kind_parse(const char *s, sf_norm_kind *out); /* SF_OK / SF_ERR */
const char *sf_norm_kind_name(sf_norm_kind k);
void sf_norm_declare(sf_norm *n, sf_params *ps, const char *name, sf_norm_kind kind, int d);
void sf_norm_init(sf_norm *n); /* weight 1, bias 0 */
/* x, y: [N, d]; x must stay alive until backward (it is saved by pointer). */
void sf_norm_forward(sf_norm *n, sf_ctx *ctx, const float *x, float *y, long N);
void sf_norm_backward(sf_norm *n, sf_ctx *ctx, const float *dy, float *dx, long N);
void sf_norm_step(const sf_norm *n, const float *x, float *y); /* one row, nothing saved */

#endif
