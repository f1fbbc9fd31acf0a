/* Multi-head cross-attention (the Informer/Transformer decoder's attention to the encoder output):
 *   q = x Wq^T + bq [B, Tq, d];  k | v = mem Wkv^T + bkv [B, Tk, 2d];
 *   P = softmax(scale * q k^T) per head (no mask), a = drop(P) v, y = a Wout^T + bout
 * with dropout on the attention probabilities (the reference FullAttention's attention_dropout).
 * Names: <prefix>.q.{weight,bias} [d, d], <prefix>.kv.{weight,bias} [2d, d],
 * <prefix>.out.{weight,bias} [d, d]. The probabilities are materialised ([B, H, Tq, Tk] on the
 * arena): the sequences it serves are short (Informer: 144 decoder rows x 48 encoder rows).
 * Per (batch, head) GEMMs, OpenMP over batch x heads; checked against finite differences
 * (tests/test_layers.c) and the PyTorch twin (tests/test_parity.c). No padding. */
#ifndef SF_LAYERS_CROSS_ATTENTION_H
#define SF_LAYERS_CROSS_ATTENTION_H

#include "layers/layer.h"
#include "layers/linear.h"

typedef struct {
    sf_linear q, kv, out;
    int d, H, Dh;
    float scale, dropout;
    size_t slot; /* its record in sf_ctx.saved */
} sf_cross_attention;

/* SF_ERR (message naming n_heads) when H does not divide d. */
int sf_cross_attention_declare(sf_cross_attention *c, sf_params *ps, const char *prefix, int d,
                               int H, float dropout);
void sf_cross_attention_init(sf_cross_attention *c, sf_rng *rng);
/* x [ctx->B, Tq, d], mem [ctx->B, Tk, d] -> y [ctx->B, Tq, d]; x and mem stay alive until backward.
 */
void sf_cross_attention_forward(sf_cross_attention *c, sf_ctx *ctx, const float *x, int Tq,
                                const float *mem, int Tk, float *y);
/* dx = d/dx (overwritten); dmem += d/dmem (accumulated: several decoder layers read one memory). */
void sf_cross_attention_backward(sf_cross_attention *c, sf_ctx *ctx, const float *dy, float *dx,
                                 float *dmem);

#endif
