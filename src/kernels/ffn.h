/* The Transformer feed-forward network as one fused kernel, over blocks of rows:
 *
 *   y = fc2(drop(act(fc1(x)))),  fc1: h = x W1^T + b1 ([N, f]),  fc2: y = a W2^T + b2 ([N, d])
 *
 * act = GELU (erf form) or ReLU; drop = inverted dropout with the counter-hash masks of
 * kernels/activations.h (element index = row * f + column of the whole hidden tensor, so the mask
 * is the one sf_gelu_dropout_forward draws from the same seed).
 *
 * Why: at PatchTST's widths (d = 16, f = 128) the hidden layer is 8x the size of the layer's input
 * and output, and the unfused layer streamed it through memory about a dozen times per training
 * step (fc1's output, the activation, the mask, the saved gelu', their gradients). Here each
 * block of rows goes fc1 -> act -> fc2 inside the cache and nothing of width f is stored: the
 * backward recomputes h from x (an fc1 product with K = d, cheap next to the traffic it saves).
 *
 * Rows go in blocks of sf_ffn_block_rows(f) on all threads. The weight and bias gradients are
 * summed per group of rows whose boundaries depend on N only, then the groups in order, so the
 * results do not depend on the thread count. The *_ref versions are the plain composition in
 * double precision (libm GELU, the same masks), for tests. */
#ifndef SF_KERNELS_FFN_H
#define SF_KERNELS_FFN_H

#include <stdint.h>

typedef struct {
    int d, f;               /* input/output width, hidden width */
    const float *w1, *b1;   /* fc1: [f, d], [f] */
    const float *w2, *b2;   /* fc2: [d, f], [d] */
    int relu;               /* 0: GELU, 1: ReLU */
    float p;                /* dropout probability on the hidden layer (0: none) */
    uint64_t seed;          /* the dropout's per-call draw (sf_rng_u64), unused when p == 0 */
    int block_rows;         /* rows per block; 0: sf_ffn_block_rows(f) (tests and benches vary it) */
} sf_ffn;

/* y[N, d] from x[N, d]. */
void sf_ffn_forward(const sf_ffn *f, float *y, const float *x, long N);
/* dx[N, d] = dL/dx (dx may be NULL; it must not alias dy or x); dw1, db1, dw2, db2 are
 * ACCUMULATED (+=), shapes as w1, b1, w2, b2. */
void sf_ffn_backward(const sf_ffn *f, float *dx, float *dw1, float *db1, float *dw2, float *db2,
                     const float *dy, const float *x, long N);
/* Rows per block (so that a block of the hidden layer stays in the L2 cache). */
int sf_ffn_block_rows(int f);

void sf_ffn_forward_ref(const sf_ffn *f, float *y, const float *x, long N);
void sf_ffn_backward_ref(const sf_ffn *f, float *dx, float *dw1, float *db1, float *dw2,
                         float *db2, const float *dy, const float *x, long N);

#endif
