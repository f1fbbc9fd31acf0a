/* Fully connected layer, PyTorch nn.Linear semantics: y[N,out] = x[N,in] W^T + b, W is [out,in].
 * A building block inside mixers and heads rather than an sf_mixer itself. */
#ifndef SF_LAYERS_LINEAR_H
#define SF_LAYERS_LINEAR_H

#include "core/params.h"
#include "core/rng.h"

typedef struct {
    int in, out, has_bias;
    float *w, *b, *dw, *db;
} sf_linear;

void sf_linear_declare(sf_linear *l, sf_params *ps, const char *name, int in, int out, int bias);
/* PyTorch's default: W, b ~ U(-1/sqrt(in), 1/sqrt(in)). */
void sf_linear_init(sf_linear *l, sf_rng *rng);
void sf_linear_forward(const sf_linear *l, float *y, const float *x, long N);
/* dW += dy^T x, db += column sums of dy, dx = dy W (skipped when dx is NULL). */
void sf_linear_backward(sf_linear *l, float *dx, const float *dy, const float *x, long N);
/* Plain-loop references for tests. */
void sf_linear_forward_ref(const sf_linear *l, float *y, const float *x, long N);
void sf_linear_backward_ref(sf_linear *l, float *dx, const float *dy, const float *x, long N);

#endif
