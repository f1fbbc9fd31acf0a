/* Elementwise activations and dropout over n contiguous floats.
 *
 * GELU, exact form (PyTorch nn.GELU() default, approximate='none'):
 *   gelu(x) = x * Phi(x),  Phi(x) = 0.5 * erfc(-x / sqrt(2)),  gelu'(x) = Phi(x) + x * phi(x).
 * The fast version evaluates erf with a clamped rational fit (z P(z^2) / Q(z^2), degrees 5/5,
 * fitted for this project) and phi with an exp for non-positive arguments, so the loops
 * vectorise; its error is ~2e-7 relative to max(|x|, 1) (measured in tests/test_norm_kernels.c).
 * ELU+1 feature map (linear attention): phi(x) = x > 0 ? x + 1 : exp(x); phi'(x) = x > 0 ? 1 : exp(x).
 *
 * Forward may run in place (y == x); backward may run in place (dx == dy). Backward OVERWRITES dx
 * with dy * f'(x), where x is the forward input. The *_ref versions use libm in double. */
#ifndef SF_KERNELS_ACTIVATIONS_H
#define SF_KERNELS_ACTIVATIONS_H

#include <stdint.h>

#include "core/rng.h"

void sf_gelu_forward(float *y, const float *x, long n);
void sf_gelu_backward(float *dx, const float *dy, const float *x, long n);
/* y = a + b (y may be a or b), 16 lanes where the CPU has them: the residual add of the blocks. */
void sf_add(float *y, const float *a, const float *b, long n);
/* ReLU: y = max(x, 0) (0 for x <= 0, NaN passed as 0), dx = dy where x > 0 else 0. Exact. */
void sf_relu_forward(float *y, const float *x, long n);
void sf_relu_backward(float *dx, const float *dy, const float *x, long n);
void sf_elu1_forward(float *y, const float *x, long n);
void sf_elu1_backward(float *dx, const float *dy, const float *x, long n);
/* The same over `rows` rows of `cols` values at strides ldy / ldx (row r of x at x + r*ldx). */
void sf_elu1_forward_rows(float *y, int ldy, const float *x, int ldx, long rows, int cols);
void sf_elu1_backward_rows(float *dx, int lddx, const float *dy, int lddy, const float *x, int ldx,
                           long rows, int cols);

void sf_gelu_forward_ref(float *y, const float *x, long n);
void sf_gelu_backward_ref(float *dx, const float *dy, const float *x, long n);
void sf_elu1_forward_ref(float *y, const float *x, long n);
void sf_elu1_backward_ref(float *dx, const float *dy, const float *x, long n);

/* Inverted dropout with drop probability p in [0, 1): mask[i] = 0 with probability p, else 1;
 * y = x * mask / (1 - p). The mask is a counter-based hash of (one sf_rng_u64 draw per call,
 * element index), so it is reproducible from the rng state, independent of the thread count,
 * and the loop vectorises/parallelises. p == 0 copies x (mask all 1, no rng draw). y may equal x.
 * Backward: dx = dy * mask / (1 - p) (dx may equal dy). */
void sf_dropout_forward(float *y, uint8_t *mask, const float *x, long n, float p, sf_rng *rng);
void sf_dropout_backward(float *dx, const float *dy, const uint8_t *mask, long n, float p);
/* GELU followed by dropout (p in (0, 1)), in one pass: bit for bit sf_gelu_forward then
 * sf_dropout_forward (same rng draw, same masks), and dgelu = gelu'(x) for the backward (dgelu
 * may equal x: the mlp overwrites its pre-activation, which nothing else reads). Backward: bit
 * for bit sf_dropout_backward then sf_gelu_backward, from that dgelu. y may equal x, dx may
 * equal dy. */
void sf_gelu_dropout_forward(float *y, uint8_t *mask, float *dgelu, const float *x, long n, float p,
                             sf_rng *rng);
void sf_gelu_dropout_backward(float *dx, const float *dy, const uint8_t *mask, const float *dgelu,
                              long n, float p);
/* The same masks and values by a plain scalar loop over the documented hash (tests pin the
 * vectorised, threaded forward to it bit for bit). */
void sf_dropout_forward_ref(float *y, uint8_t *mask, const float *x, long n, float p, sf_rng *rng);

/* One block of a hidden layer (the fused feed-forward network, kernels/ffn.c), on the calling
 * thread: h := act(h) * keep(i) / (1 - p) in place and, when g is not NULL,
 * g := act'(h) * keep(i) / (1 - p), with act = GELU (relu == 0) or ReLU, i = idx0 + k the
 * element's index in the whole tensor and keep(i) the mask the dropouts above draw for a call
 * whose sf_rng_u64 draw was `seed` (p == 0: no dropout, seed unused). */
void sf_act_dropout_block(float *h, float *g, long n, long idx0, int relu, float p, uint64_t seed);
/* keep(i) of that mask, by the plain scalar hash (the references' definition). */
int sf_dropout_keep(uint64_t seed, long i, float p);

#endif
