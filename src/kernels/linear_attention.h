/* Linear attention with the elu+1 feature map (Katharopoulos et al. 2020, "Transformers are
 * RNNs"). Per batch b and head h, with phi(x) = elu(x) + 1 = (x > 0 ? x + 1 : exp(x)) applied
 * elementwise to the Dh-dim query and key of that head, and eps = SF_LINEAR_ATTENTION_EPS:
 *
 *   non-causal: S = sum_j phi(k_j) v_j^T (Dh x Dh), z = sum_j phi(k_j)
 *               out_i = (phi(q_i)^T S) / (phi(q_i) . z + eps)
 *   causal:     the same with both sums over j <= i only.
 *
 * Layout (as for softmax attention): q, k, v are rows of stride `ld` floats, so they can sit in
 * one fused [B, T, 3*H*Dh] projection buffer (ld = 3*H*Dh, k = q + H*Dh, v = q + 2*H*Dh).
 * Head h of token t of batch b is at base + (b*T + t)*ld + h*Dh. out and dout are
 * [B, T, H*Dh] with row stride ldo (>= H*Dh). The gradients dq, dk, dv use the same layout as
 * q, k, v (row stride ld), so they can also point into one fused [B, T, 3*H*Dh] buffer.
 * Only the H*Dh head columns of each row are read or written; other columns are untouched.
 * Outputs must not overlap inputs.
 *
 * Padding (per-sequence lengths): lens is NULL (every sequence has all T tokens) or lens[B] with
 * 1 <= lens[b] <= T. For batch item b with n = lens[b], keys/values at j >= n are excluded from
 * the sums S and z (causal: query i sums over j <= i and j < n), and query rows i >= n are
 * padding: their output head columns are 0 and they contribute to no gradient; dq rows i >= n
 * and dk, dv rows j >= n are 0, and padded rows of q, k, v, dout are not read. The valid part
 * is computed exactly as the unpadded sequence of length n would be.
 *
 * Algorithm: the causal case is computed with the O(Dh^2)-state recurrence (S_t = S_{t-1} +
 * phi(k_t) v_t^T) in forward order; backward recomputes it forwards (for dq and the
 * per-token normaliser terms) and then runs the reverse recurrence for dS, dz (for dk, dv).
 * Work is O(B*H*T*Dh^2); memory beyond the tensors is O(B*H*T) (two floats per token in the
 * causal backward), never O(T^2) nor O(T*Dh^2). (b,h) pairs are spread over OpenMP threads;
 * each (b,h) is computed by one thread in a fixed order, so results do not depend on the
 * thread count. Dh = 4 has a register-resident SIMD kernel; Dh = 8, 16, 32 get unrolled
 * specialisations; any other Dh the generic loops. exp in phi is an inline polynomial
 * (a few float ulps), not libm.
 *
 * Kernels never allocate and never read files; all precision is float with float
 * accumulators. The *_ref functions are plain-loop references (double accumulators, the
 * explicit masked T x T quadratic form) that may allocate; they exist for tests. */
#ifndef SF_KERNELS_LINEAR_ATTENTION_H
#define SF_KERNELS_LINEAR_ATTENTION_H

#include <stddef.h>

#define SF_LINEAR_ATTENTION_EPS 1e-6f
/* Forward and backward calls with less work than this (B*H*T*Dh*Dh) run on the calling thread
 * only (the `if` of their parallel loop over (b, h)). Public so that the thread-count tests can
 * size their work above it. */
#define SF_LINEAR_ATTENTION_PAR_MIN 32768L

/* Scratch contract: floats needed by forward and by backward (the same size serves both).
 * The scratch is pure workspace: its contents on entry are ignored, and nothing has to be
 * kept between forward and backward (backward recomputes what it needs from q, k, v), so
 * forward's scratch need NOT be passed unchanged to backward; one buffer may be reused.
 * Size: causal: 2*B*H*T (per-token 1/denominator and d(denominator) in backward), non-causal:
 * 0; plus B*H*(2*Dh*Dh + 8*Dh) when Dh > 64 (per-head state that otherwise lives on the
 * stack). When it returns 0, scratch may be NULL. */
size_t sf_linear_attention_scratch_floats(int B, int T, int H, int Dh, int causal);

void sf_linear_attention_forward(float *o, int ldo, const float *q, const float *k,
                                 const float *v, int ld, int B, int T, int H, int Dh,
                                 int causal, float *scratch, const int *lens);

/* Gradients of sum(dout * out) with respect to q, k, v; overwrites the head columns of
 * dq/dk/dv (no accumulation). */
void sf_linear_attention_backward(float *dq, float *dk, float *dv, const float *dout, int ldo,
                                  const float *q, const float *k, const float *v, int ld,
                                  int B, int T, int H, int Dh, int causal, float *scratch,
                                  const int *lens);

/* Recurrent step for streaming (causal) inference of one sequence. The caller owns the state:
 * S as [H][Dh][Dh] (S[h][a][c] = sum_j phi(k_j)[a] v_j[c]) followed by z as [H][Dh]; a zero
 * state is the start of a sequence. One step adds token (q, k, v) and writes its output, so
 * T steps from a zero state reproduce the causal forward, and the state after T steps holds
 * S and z over all T tokens. state_in may equal state_out (update in place); otherwise they
 * must not overlap. q, k, v, o are [H*Dh] each; o must not overlap the others. */
size_t sf_linear_attention_state_floats(int H, int Dh);
void sf_linear_attention_step(float *o, const float *q, const float *k, const float *v,
                              const float *state_in, float *state_out, int H, int Dh);

/* Plain-loop references with the same signatures (scratch is ignored and may be NULL). */
void sf_linear_attention_forward_ref(float *o, int ldo, const float *q, const float *k,
                                     const float *v, int ld, int B, int T, int H, int Dh,
                                     int causal, float *scratch, const int *lens);
void sf_linear_attention_backward_ref(float *dq, float *dk, float *dv, const float *dout,
                                      int ldo, const float *q, const float *k, const float *v,
                                      int ld, int B, int T, int H, int Dh, int causal,
                                      float *scratch, const int *lens);

#endif
