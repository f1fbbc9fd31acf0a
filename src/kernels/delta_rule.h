/* The delta rule (DeltaNet: Schlag et al. 2021; chunked training form: Yang et al. 2024,
 * "Parallelizing Linear Transformers with the Delta Rule over Sequence Length"). Per batch b and
 * head h, with q_t, k_t, v_t the Dh-dim head vectors of token t and beta_t a scalar:
 *
 *   S_0 = 0 (Dh x Dh, S[a][c]: key index a, value index c, as fla keeps it)
 *   S_t = S_{t-1} + k_t u_t^T,  u_t = beta_t (v_t - S_{t-1}^T k_t)
 *       = (I - beta_t k_t k_t^T) S_{t-1} + beta_t k_t v_t^T
 *   o_t = S_t^T q_t
 *
 * (the transpose of the paper's S_t = S_{t-1}(I - beta k k^T) + beta v k^T, o = S q). The kernel
 * does no normalisation or scaling of its own: the layer (layers/deltanet.c) passes q already
 * L2-normalised and scaled by Dh^-1/2, and k L2-normalised, as fla's delta_rule ops do.
 *
 * Layout (as linear attention's): q, k, v are rows of stride `ld` floats (they may sit in one
 * fused [B, T, 3*H*Dh] buffer); head h of token t of batch b is at base + (b*T + t)*ld + h*Dh.
 * beta and dbeta are [B*T] rows of stride ldb (>= H), head h at column h. out and dout are
 * [B, T, H*Dh] rows of stride ldo. dq, dk, dv use the layout of q, k, v; gradients are
 * OVERWRITTEN (no accumulation). Outputs must not overlap inputs.
 *
 * Padding: lens is NULL or lens[B] with 1 <= lens[b] <= T; tokens t >= lens[b] do not exist: their
 * output rows are 0, their gradient rows are 0 and their inputs are not read. The valid part is
 * computed exactly as the unpadded sequence of that length would be.
 *
 * Algorithm (training): the sequence is cut into chunks of `chunk` tokens. Inside a chunk with
 * entry state S0, the WY/UT form: A = strict_lower(diag(beta) K K^T), M = I + A,
 * [U | W] = M^{-1} [diag(beta) V | diag(beta) K] (forward substitution, never forming M^{-1}),
 * U' = U - W S0, O = Q S0 + lower(Q K^T) U', S_end = S0 + K^T U'. Chunk products go through
 * sf_gemm. Forward keeps every chunk's entry state in `states` (O(T Dh^2 / chunk) per head);
 * backward walks the chunks in reverse, recomputes each chunk's WY factors from q, k, v, beta and
 * its saved entry state, and passes dS back across chunks (solves with M^T by back
 * substitution). Work O(T (chunk Dh + Dh^2 + chunk^2)) per head. (b, h) pairs are spread over up
 * to n_workers OpenMP threads, each (b, h) computed by one thread in a fixed order, so results do
 * not depend on the thread count.
 *
 * Kernels never allocate. The *_ref functions are the sequential recurrence in double (backward:
 * reverse-mode through the recurrence, keeping every S_t), for tests; they allocate. */
#ifndef SF_KERNELS_DELTA_RULE_H
#define SF_KERNELS_DELTA_RULE_H

#include <stddef.h>

/* Floats of the chunk entry states forward writes and backward reads: B*H*ceil(T/chunk)*Dh*Dh. */
size_t sf_delta_rule_states_floats(int B, int T, int H, int Dh, int chunk);
/* Floats of workspace for n_workers threads (pure workspace; one buffer serves both passes). */
size_t sf_delta_rule_scratch_floats(int Dh, int chunk, int n_workers);

void sf_delta_rule_forward(float *o, int ldo, const float *q, const float *k, const float *v,
                           int ld, const float *beta, int ldb, int B, int T, int H, int Dh,
                           int chunk, float *states, float *scratch, int n_workers,
                           const int *lens);
/* Gradients of sum(dout * out); `states` as forward left them. */
void sf_delta_rule_backward(float *dq, float *dk, float *dv, float *dbeta, const float *dout,
                            int ldo, const float *q, const float *k, const float *v, int ld,
                            const float *beta, int ldb, int B, int T, int H, int Dh, int chunk,
                            const float *states, float *scratch, int n_workers, const int *lens);

/* One token of one sequence. State: S as [H][Dh][Dh] (zero: the start of a sequence); state_in
 * may equal state_out. q, k, v, o are [H*Dh], beta [H]; o must not overlap the others. */
size_t sf_delta_rule_state_floats(int H, int Dh);
void sf_delta_rule_step(float *o, const float *q, const float *k, const float *v,
                        const float *beta, const float *state_in, float *state_out, int H, int Dh);

/* Sequential references (same layouts; no chunk, states or scratch). */
void sf_delta_rule_forward_ref(float *o, int ldo, const float *q, const float *k, const float *v,
                               int ld, const float *beta, int ldb, int B, int T, int H, int Dh,
                               const int *lens);
void sf_delta_rule_backward_ref(float *dq, float *dk, float *dv, float *dbeta, const float *dout,
                                int ldo, const float *q, const float *k, const float *v, int ld,
                                const float *beta, int ldb, int B, int T, int H, int Dh,
                                const int *lens);

#endif
