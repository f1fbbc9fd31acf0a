/* ProbSparse self-attention (Informer, Zhou et al. AAAI 2021; models/attn.py ProbAttention).
 * Per batch b and head h, with L queries and L keys:
 *
 *   sparsity  M_i = max_s (q_i . k_{sample[i,s]}) - sum_s (q_i . k_{sample[i,s]}) / L
 *             over U = min(c*ceil(ln L), L) sampled keys per query (unscaled dot products; the
 *             sample, drawn with replacement, is shared by every batch item and head as the
 *             reference draws it);
 *   active    the u = min(c*ceil(ln L), L) queries of largest M (ties: the lower index) get
 *             o_i = sum_j P_ij v_j, P_i = softmax_j(scale * q_i . k_j) over every key j
 *             (causal: j <= i);
 *   the rest  o_i = mean_j v_j (bidirectional) or o_i = sum_{j<=i} v_j (causal: the reference's
 *             cumsum, not a mean).
 * The sample and the selection are constants for the gradient: backward differentiates the
 * active rows' softmax attention and the passive rows' mean/cumsum of V; passive queries get
 * dq = 0.
 *
 * Layout as kernels/attention.h: q, k, v rows of stride ld (head h of token t of item b at
 * base + (b*L + t)*ld + h*Dh); o, dout [B, L, *] with row stride ldo. Work arrays the caller
 * owns (kernels never allocate): m [B, H, L] (the sparsity measure, written), rank [B, H, L]
 * (written: r in [0, u) for the r-th active query in index order, whose probabilities are row r
 * of p; -1 for passive queries), p [B, H, u, L] (written; masked entries 0), and for backward a
 * scratch work [B, H, u, L]. No padding: every sequence has L tokens.
 * Fast kernels: OpenMP over (b, h); the active queries go through GEMMs in chunks gathered on the
 * stack; float accumulation. The *_ref functions are plain per-query loops in double, for tests. */
#ifndef SF_KERNELS_PROB_ATTENTION_H
#define SF_KERNELS_PROB_ATTENTION_H

#include <stdint.h>

#define SF_PROB_MAX_DH 256       /* head width (on-stack accumulators) */
#define SF_PROB_MAX_L_STACK 4096 /* longer rows recompute a dot product instead of caching it */

/* min(factor * ceil(ln L), L), at least 1: both the sampled keys per query and the active queries
 * (the reference computes both with this formula, from L_K and L_Q). */
int sf_prob_attention_top(int L, int factor);
/* sample[L][U] key indices in [0, L), uniform with replacement, from sf_rng stream (seed, 0). */
void sf_prob_attention_sample(int *sample, int L, int U, uint64_t seed);

void sf_prob_attention_forward(float *o, int ldo, float *m, int *rank, float *p, const float *q,
                               const float *k, const float *v, int ld, const int *sample, int U,
                               int u, int B, int L, int H, int Dh, float scale, int causal);
/* OVERWRITES the head columns of dq, dk, dv. rank and p come from the forward. */
void sf_prob_attention_backward(float *dq, float *dk, float *dv, float *work, const float *dout,
                                int ldo, const int *rank, const float *p, const float *q,
                                const float *k, const float *v, int ld, int u, int B, int L, int H,
                                int Dh, float scale, int causal);

/* References. forward_ref selects the active queries itself when rank_in is NULL (writing rank
 * when it is not NULL), or uses rank_in (so finite differences can hold the selection fixed).
 * backward_ref recomputes the probabilities itself from rank (it reads no p). */
void sf_prob_attention_forward_ref(float *o, int ldo, int *rank, const int *rank_in, const float *q,
                                   const float *k, const float *v, int ld, const int *sample, int U,
                                   int u, int B, int L, int H, int Dh, float scale, int causal);
void sf_prob_attention_backward_ref(float *dq, float *dk, float *dv, const float *dout, int ldo,
                                    const int *rank, const float *q, const float *k, const float *v,
                                    int ld, int B, int L, int H, int Dh, float scale, int causal);

#endif
