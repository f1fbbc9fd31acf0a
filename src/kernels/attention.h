/* Multi-head scaled-dot-product (softmax) attention, FlashAttention-2 style: scores are computed
 * tile by tile with an online softmax in the forward pass and recomputed tile by tile from the
 * saved log-sum-exp in the backward pass, so no T x T matrix is ever stored: extra memory is
 * O(T) per head (the lse vector) plus fixed-size stack tiles. Per batch b and head h:
 *
 *   S = scale * Q K^T (T x T), S_ij = -inf for j > i when causal,
 *   P = softmax_rows(S), O = P V, lse_i = log(sum_j exp(S_ij)).
 *
 * Layout: q, k, v are rows of stride `ld` floats: head h of token t of batch b is the Dh floats at
 * base + (b*T + t)*ld + h*Dh. So q, k, v may live inside one fused [B, T, 3*H*Dh] projection
 * (ld = 3*H*Dh, k = q + H*Dh, v = q + 2*H*Dh); with separate [B, T, H*Dh] tensors ld = H*Dh.
 * o and dout are [B, T, H*Dh] with row stride ldo (>= H*Dh). lse is [B, H, T] (contiguous).
 * dq, dk, dv have the layout and stride of q, k, v (they may point into one fused gradient
 * buffer). Only the H*Dh head columns of each row are read or written. Outputs must not overlap
 * inputs. Requirements: 1 <= Dh <= SF_ATTENTION_MAX_DH, ld >= H*Dh, ldo >= H*Dh.
 *
 * Padding (per-sequence lengths): lens is NULL (every sequence has all T tokens) or lens[B] with
 * 1 <= lens[b] <= T. For batch item b with n = lens[b], keys/values at positions j >= n are
 * excluded from every query's softmax (as if S_ij = -inf), and query rows i >= n are padding:
 * their output head columns are 0, their lse is 0, and they contribute to no gradient. In
 * backward dq rows i >= n and dk, dv rows j >= n are 0; dout, o and lse of padded rows are not
 * read. Causal: query i sees keys j <= i and j < n. The valid part of a padded batch item is
 * computed exactly as the unpadded sequence of length n would be (same kernels, same summation
 * order), so results do not depend on the padding.
 *
 * Fast kernels: OpenMP over (b, h) pairs (forward: over (b, h, query tile)), each work item
 * writing disjoint outputs; never allocate; float accumulation. Heads of Dh <= 8 put query rows in
 * the vector lanes; wider heads compute each (query tile, key tile) pair as register-blocked tile
 * products (kernels/tile_gemm.h): the forward with the queries in the lanes (the online softmax
 * then runs down the keys, lane by lane), the backward as five products per tile pair.
 * The *_ref functions materialise the full T x T matrices in double with plain loops (they
 * allocate) and exist for tests. */
#ifndef SF_KERNELS_ATTENTION_H
#define SF_KERNELS_ATTENTION_H

#define SF_ATTENTION_MAX_DH 256
/* Forward and backward calls with fewer score entries than this (B*H*T*T) run on the calling
 * thread only; at or above it they use omp_get_max_threads() threads. (Public so that the
 * thread-count tests can size their work above it.) */
#define SF_ATTENTION_PAR_MIN 262144L

/* o[B,T,H*Dh] (row stride ldo) and lse[B,H,T] from q, k, v (row stride ld). lse may be NULL
 * when no backward follows (inference): the log-sum-exp is then not computed. */
void sf_attention_forward(float *o, int ldo, float *lse, const float *q, const float *k,
                          const float *v, int ld, int B, int T, int H, int Dh, float scale,
                          int causal, const int *lens);

/* Gradients of sum(dout * o) with respect to q, k, v, given the forward's o and lse.
 * OVERWRITES the head columns of dq, dk, dv (no accumulation). */
void sf_attention_backward(float *dq, float *dk, float *dv, const float *dout, int ldo,
                           const float *o, const float *lse, const float *q, const float *k,
                           const float *v, int ld, int B, int T, int H, int Dh, float scale,
                           int causal, const int *lens);

/* References (double, full T x T per (b, h), malloc). The backward reference recomputes the
 * softmax itself and does not read o or lse (they may be NULL), so it checks the fast backward
 * independently of the fast forward. lens is applied as an explicit mask on the T x T matrices
 * (P_ij = 0 for j >= n, rows i >= n all 0). */
void sf_attention_forward_ref(float *o, int ldo, float *lse, const float *q, const float *k,
                              const float *v, int ld, int B, int T, int H, int Dh, float scale,
                              int causal, const int *lens);
void sf_attention_backward_ref(float *dq, float *dk, float *dv, const float *dout, int ldo,
                               const float *o, const float *lse, const float *q, const float *k,
                               const float *v, int ld, int B, int T, int H, int Dh, float scale,
                               int causal, const int *lens);

/* One decoding step of causal attention for a single sequence with a KV cache: the query of the
 * newest token attends to n_keys cached keys/values (the newest token's own k, v included as the
 * last row). q, o: [H*Dh]; kcache, vcache: [n_keys, H*Dh] (row stride H*Dh). Feeding tokens
 * 0..T-1 one at a time (n_keys = t+1) reproduces the causal forward. Online softmax over key
 * chunks: no allocation, O(1) extra memory. o must not overlap the inputs. */
void sf_attention_step(float *o, const float *q, const float *kcache, const float *vcache,
                       int n_keys, int H, int Dh, float scale);

#endif
