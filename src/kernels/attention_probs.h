/* Softmax attention with its weights materialised, for dropout on the attention weights (the
 * nn.Dropout after the softmax in the official iTransformer, Informer and vanilla Transformer
 * attention: `A = dropout(softmax(scale * scores)); O = A V`). Per batch b and head h:
 *
 *   S_ij = scale * q_i . k_j [+ bias[h, j - i]],  P = softmax_rows(S) (causal: j <= i),
 *   Pd = P * M / (1 - p)  (M the caller's keep mask, drawn by sf_dropout_forward on P),
 *   O = Pd V.
 *
 * Unlike the tiled kernels (kernels/attention.h, attention_bias.h), P is stored: [B, H, T, T]
 * floats (row i of head h of batch b at ((b*H + h)*T + i)*T), plus the mask bytes and Pd the
 * caller keeps for backward, so memory is O(B H T^2). The layers use this path only while
 * training with attn_dropout > 0; evaluation and streaming run the O(T) tiled kernels, which
 * give the same P.
 *
 * Layout, padding (lens) and the bias table as kernels/attention.h and attention_bias.h: q, k, v
 * rows of stride ld (head h at column h*Dh), o and dout of stride ldo; keys j >= lens[b] get
 * P = 0, query rows i >= lens[b] are all 0 in P, output 0, and give no gradient. bias may be NULL.
 * Work is split over (b, h) pairs (over h when a bias gradient is accumulated, so each thread
 * owns its bias row); results do not depend on the thread count. The *_ref functions use double
 * and plain loops, recompute P themselves, and allocate; they exist for tests. */
#ifndef SF_KERNELS_ATTENTION_PROBS_H
#define SF_KERNELS_ATTENTION_PROBS_H

#include <stdint.h>

/* P [B, H, T, T] from q and k. */
void sf_attention_probs_forward(float *P, const float *q, const float *k, int ld, int B, int T,
                                int H, int Dh, float scale, int causal, const int *lens,
                                const float *bias, int bias_ld, int bias_center);

/* o = Pd v per (b, h): the head columns of o rows (padded rows 0). */
void sf_attention_probs_apply(float *o, int ldo, const float *Pd, const float *v, int ld, int B,
                              int T, int H, int Dh, const int *lens);

/* Gradients of sum(dout * o) given the forward's P and keep mask (NULL: no dropout, Pd = P).
 * OVERWRITES the head columns of dq, dk, dv; ACCUMULATES into dbias (when not NULL; bias_ld and
 * bias_center as in the forward). */
void sf_attention_probs_backward(float *dq, float *dk, float *dv, float *dbias, const float *dout,
                                 int ldo, const float *P, const uint8_t *mask, float p,
                                 const float *q, const float *k, const float *v, int ld, int B,
                                 int T, int H, int Dh, float scale, int causal, const int *lens,
                                 int bias_ld, int bias_center);

/* References in double: o (and P when not NULL) from q, k, v and the mask (NULL: none). */
void sf_attention_probs_forward_ref(float *o, int ldo, float *P, const uint8_t *mask, float p,
                                    const float *q, const float *k, const float *v, int ld, int B,
                                    int T, int H, int Dh, float scale, int causal,
                                    const int *lens, const float *bias, int bias_ld,
                                    int bias_center);
void sf_attention_probs_backward_ref(float *dq, float *dk, float *dv, float *dbias,
                                     const float *dout, int ldo, const uint8_t *mask, float p,
                                     const float *q, const float *k, const float *v, int ld,
                                     int B, int T, int H, int Dh, float scale, int causal,
                                     const int *lens, const float *bias, int bias_ld,
                                     int bias_center);

#endif
