/* Informer's self-attention distilling layer (models/encoder.py ConvLayer), between encoder
 * layers: circular Conv1d(d, d, 3) -> BatchNorm1d(d) -> ELU -> MaxPool1d(3, stride 2, padding 1),
 * halving the sequence: [B, T, d] -> [B, (T-1)/2 + 1, d]. BatchNorm uses batch statistics when
 * training and the running ones otherwise (layers/norm.h). Max-pool ties go to the first window
 * position, as PyTorch's. Names: <prefix>.conv.{weight [d, 3d], bias}, <prefix>.norm.* */
#ifndef SF_LAYERS_DISTIL_H
#define SF_LAYERS_DISTIL_H

#include "layers/circular_conv.h"
#include "layers/norm.h"

typedef struct {
    sf_circular_conv conv;
    sf_norm norm;
    int d;
    size_t slot;
} sf_distil;

int sf_distil_out_len(int T);
void sf_distil_declare(sf_distil *l, sf_params *ps, const char *prefix, int d);
void sf_distil_init(sf_distil *l, sf_rng *rng);
/* x [ctx->B, ctx->T, d] -> y [ctx->B, sf_distil_out_len(ctx->T), d]; x stays alive until backward.
 */
void sf_distil_forward(sf_distil *l, sf_ctx *ctx, const float *x, float *y);
void sf_distil_backward(sf_distil *l, sf_ctx *ctx, const float *dy, float *dx);

#endif
