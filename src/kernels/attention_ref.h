/* The plain softmax attention every softmax-attention kernel is tested against (the tiled
 * kernels of attention.h, the biased ones of attention_bias.h, the materialised-P ones of
 * attention_probs.h): per batch b and head h, in double, with the full T x T matrices,
 *
 *   S_ij = scale * q_i . k_j [+ bias[h * bias_ld + bias_center + j - i]],
 *   P = softmax_rows(S) over the keys query i sees (causal: j <= i; padded: j < lens[b]),
 *   Pd = P * M / (1 - p) with the keep mask M [B, H, T, T] (NULL: Pd = P),   O = Pd V.
 *
 * Query rows i >= lens[b] are all 0 in P, output 0 (lse 0) and give no gradient; padded rows of
 * the inputs are never read. Layout as attention.h: q, k, v rows of stride ld (head h at column
 * h * Dh), o and dout of stride ldo, lse [B, H, T]. The backward recomputes P itself and reads
 * no forward output, so it checks a fast backward independently of the fast forward. Plain loops;
 * allocates; for tests only. */
#ifndef SF_KERNELS_ATTENTION_REF_H
#define SF_KERNELS_ATTENTION_REF_H

#include <stdint.h>

typedef struct {
    int B, T, H, Dh;
    int ld, ldo;        /* row strides of q, k, v and of o, dout */
    float scale;
    int causal;
    const int *lens;    /* [B] valid lengths, or NULL: all T */
    const float *bias;  /* relative bias table, or NULL */
    int bias_ld, bias_center;
    const uint8_t *mask; /* dropout keep mask on P, or NULL */
    float p;             /* the dropout probability the mask was drawn with */
} sf_attention_ref_args;

/* o; lse and P [B, H, T, T] (before dropout) when not NULL. */
void sf_attention_ref_forward(const sf_attention_ref_args *a, float *o, float *lse, float *P,
                              const float *q, const float *k, const float *v);
/* Gradients of sum(dout * o): OVERWRITES the head columns of dq, dk, dv, ACCUMULATES into dbias
 * (when not NULL). */
void sf_attention_ref_backward(const sf_attention_ref_args *a, float *dq, float *dk, float *dv,
                               float *dbias, const float *dout, const float *q, const float *k,
                               const float *v);

#endif
