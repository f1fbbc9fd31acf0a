/* 1-D convolution over time with kernel 3 and circular padding 1 (PyTorch
 * nn.Conv1d(c_in, c_out, 3, padding=1, padding_mode='circular') on [B, c_in, T], applied here to
 * rows [B, T, c_in]): y_t = sum_{c,k} W[o, c, k] x_{(t+k-1) mod T, c} (+ b_o). Computed as one GEMM
 * on the gathered windows [B*T, 3*c_in] (column c*3 + k), so the weight is stored [c_out, 3*c_in]:
 * PyTorch's [c_out, c_in, 3] flattened. Informer's TokenEmbedding (no bias) and its distilling
 * ConvLayer (bias) are this layer. Names: <name>.weight, <name>.bias. */
#ifndef SF_LAYERS_CIRCULAR_CONV_H
#define SF_LAYERS_CIRCULAR_CONV_H

#include "layers/layer.h"
#include "layers/linear.h"

typedef struct {
    sf_linear lin; /* [c_out, 3*c_in] */
    int c_in, c_out;
    size_t slot;
} sf_circular_conv;

void sf_circular_conv_declare(sf_circular_conv *cv, sf_params *ps, const char *name, int c_in,
                              int c_out, int bias);
/* PyTorch's Conv1d default: U(-1/sqrt(3 c_in), 1/sqrt(3 c_in)) for weight and bias. */
void sf_circular_conv_init(sf_circular_conv *cv, sf_rng *rng);
/* kaiming_normal_(mode='fan_in', nonlinearity='leaky_relu'): N(0, 2 / (3 c_in)) (Informer's
 * TokenEmbedding). */
void sf_circular_conv_init_kaiming(sf_circular_conv *cv, sf_rng *rng);
/* x [ctx->B, ctx->T, c_in] -> y [ctx->B, ctx->T, c_out]. */
void sf_circular_conv_forward(sf_circular_conv *cv, sf_ctx *ctx, const float *x, float *y);
/* dx (NULL: not wanted) overwritten; parameter gradients accumulated. */
void sf_circular_conv_backward(sf_circular_conv *cv, sf_ctx *ctx, const float *dy, float *dx);

#endif
