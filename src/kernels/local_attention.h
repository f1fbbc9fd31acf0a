/* Sliding-window (local) softmax attention: each query attends only to the keys within `w`
 * positions of it. Per batch b and head h, with window w >= 1:
 *
 *   bidirectional: query i sees keys j with |i - j| <= w
 *   causal:        query i sees keys j with i - w <= j <= i
 *   S_ij = scale * q_i . k_j on those keys, P = softmax_rows(S), O = P V.
 *
 * Cost is O(T*w) time and memory: the probabilities are kept as a band, never as a T x T matrix.
 * The band of query i has W = sf_local_attention_width(w, causal) columns (2w+1, or w+1 when
 * causal); column c holds key j = i - w + c. Entries whose key lies outside [0, n) (or after i
 * when causal) are 0. Forward writes the band (p, [B, H, T, W]), and backward reads it instead of
 * recomputing the softmax.
 *
 * Layout (as for sf_attention_*): q, k, v are rows of stride ld floats, head h of token t of
 * batch b at base + (b*T + t)*ld + h*Dh, so they may live inside one fused [B, T, 3*H*Dh]
 * projection; o and dout are [B, T, H*Dh] with row stride ldo. dq, dk, dv have the layout of q,
 * k, v. Only the H*Dh head columns of each row are read or written. Outputs must not overlap
 * inputs.
 *
 * Padding: lens is NULL or lens[B] with 1 <= lens[b] <= T. Keys j >= lens[b] are excluded, and
 * query rows i >= lens[b] are padding: their output head columns and band rows are 0, they
 * contribute to no gradient, and dq, dk, dv rows there are 0. The valid part is computed exactly
 * as the unpadded sequence of length lens[b] would be.
 *
 * The fast kernels run (b, h) pairs on OpenMP threads, each pair by one thread in a fixed order
 * (results do not depend on the thread count), never allocate, and accumulate in float. The
 * *_ref functions build the full T x T score matrix in double with a band mask (they allocate)
 * and exist for tests; the backward reference recomputes the softmax and does not read p. */
#ifndef SF_KERNELS_LOCAL_ATTENTION_H
#define SF_KERNELS_LOCAL_ATTENTION_H

/* Calls with less work than this (B*H*T*W*Dh) run on the calling thread only. */
#define SF_LOCAL_ATTENTION_PAR_MIN 65536L

/* Columns of the probability band: 2w+1 (bidirectional) or w+1 (causal). */
int sf_local_attention_width(int w, int causal);

/* o[B,T,H*Dh] (row stride ldo) and the band p[B,H,T,W] from q, k, v (row stride ld). */
void sf_local_attention_forward(float *o, int ldo, float *p, const float *q, const float *k,
                                const float *v, int ld, int B, int T, int H, int Dh, float scale,
                                int w, int causal, const int *lens);

/* Gradients of sum(dout * o) with respect to q, k, v, given the forward's band p.
 * OVERWRITES the head columns of dq, dk, dv. */
void sf_local_attention_backward(float *dq, float *dk, float *dv, const float *dout, int ldo,
                                 const float *p, const float *q, const float *k, const float *v,
                                 int ld, int B, int T, int H, int Dh, float scale, int w,
                                 int causal, const int *lens);

/* References: full softmax over a T x T matrix with the band (and padding) as a mask, in double.
 * The forward reference also writes the band p (may be NULL); the backward ignores p. */
void sf_local_attention_forward_ref(float *o, int ldo, float *p, const float *q, const float *k,
                                    const float *v, int ld, int B, int T, int H, int Dh,
                                    float scale, int w, int causal, const int *lens);
void sf_local_attention_backward_ref(float *dq, float *dk, float *dv, const float *dout, int ldo,
                                     const float *p, const float *q, const float *k,
                                     const float *v, int ld, int B, int T, int H, int Dh,
                                     float scale, int w, int causal, const int *lens);

#endif
