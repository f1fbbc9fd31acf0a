/* The selective scan of Mamba-1 (Gu & Dao 2023; state-spaces/mamba
 * `selective_scan_interface.py::selective_scan_ref` with delta_softplus and a gate z).
 * For batch item b, channel c (of Di), state n (of N), step t:
 *
 *   delta_t = softplus(r_t)                       r = the raw input `delta` (bias already added)
 *   h_t[n]  = exp(delta_t A[c,n]) h_{t-1}[n] + delta_t B_t[n] u_t        h_{-1} = 0
 *   y_t     = (sum_n C_t[n] h_t[n] + D[c] u_t) * silu(z_t)
 *
 * softplus(r) = log(1 + e^r) (r for r > 20, as torch's threshold); B_t, C_t are shared by the
 * channels of a batch item (input-dependent, [B, T, N]).
 *
 * Layout: u, delta, y and their gradients are [B, T, Di] row-major (row stride Di); z, dz rows
 * have stride ldz (>= Di: they may sit in the in_proj output); Bm, Cm, dBm, dCm rows have stride
 * ldbc (>= N: they sit in the x_proj output). A is [Di, N], D is [Di].
 *
 * Padding: lens is NULL or lens[B] with 0 <= lens[b] <= T; steps t >= lens[b] are skipped: their
 * y is 0 and every gradient row there (du, ddelta, dz, dBm, dCm) is 0; dy there is not read.
 * A causal scan never lets them influence the valid steps, so this equals the unpadded sequence.
 *
 * Fast path, memory and threads. The scan is sequential in t, independent across (b, c): tasks
 * are (batch item, group of channels), spread over OpenMP threads; the group count depends only
 * on B and Di (not on the thread count), and every reduction across tasks (dB, dC over channels,
 * dA, dD over the batch) is done afterwards in a fixed order, so results do not depend on the
 * number of threads. Inside a task, 16 channels (a cache line of each row) go side by side (the
 * loops over them vectorise) and the N states of each are kept in L1.
 * Forward stores h only at chunk boundaries (every SF_SCAN_CHUNK steps: `states`, B*ceil(T/64)*
 * Di*N floats) instead of h for every (t, n): the full trajectory would be N (16) times the size
 * of u, while the boundaries cost N/64 of it. Backward recomputes h inside one chunk at a time
 * from its boundary state (into the task's scratch), then runs the adjoint recurrence
 * dh_{t-1} = exp(delta_t A) dh_t backwards through it: one extra exp per (t, c, n) buys O(L)
 * memory with a small constant. exp is an inline polynomial (sf_expf_fast, a few ulps).
 *
 * Kernels never allocate; the *_ref versions (plain sequential loops in double, storing the whole
 * trajectory) may, and exist for tests. */
#ifndef SF_KERNELS_SELECTIVE_SCAN_H
#define SF_KERNELS_SELECTIVE_SCAN_H

#include <stddef.h>

#define SF_SCAN_CHUNK 64
#define SF_SCAN_MAX_N 256 /* d_state limit (the per-task state lives on the stack) */

/* Floats of the chunk-boundary states forward writes and backward reads. */
size_t sf_selective_scan_states_floats(int B, int T, int Di, int N);
/* Floats of backward's workspace (contents on entry ignored). */
size_t sf_selective_scan_scratch_floats(int B, int T, int Di, int N);

/* states may be NULL (inference: nothing kept for backward). */
void sf_selective_scan_forward(float *y, float *states, const float *u, const float *delta,
                               const float *A, const float *Bm, const float *Cm, int ldbc,
                               const float *D, const float *z, int ldz, int B, int T, int Di,
                               int N, const int *lens);

/* Gradients of sum(dy * y): overwrites du, ddelta (d/d r, through the softplus), dz, dBm, dCm
 * (their N columns of each row), dA [Di, N] and dD [Di]. */
void sf_selective_scan_backward(float *du, float *ddelta, float *dA, float *dBm, float *dCm,
                                float *dD, float *dz, const float *dy, const float *states,
                                const float *u, const float *delta, const float *A,
                                const float *Bm, const float *Cm, int ldbc, const float *D,
                                const float *z, int ldz, int B, int T, int Di, int N,
                                const int *lens, float *scratch);

/* One streaming step of one sequence: h [Di, N] updated in place, y [Di] written; u, r, z [Di],
 * Bt, Ct [N]. T steps from h = 0 reproduce the forward. */
void sf_selective_scan_step(float *y, float *h, const float *u, const float *r, const float *A,
                            const float *Bt, const float *Ct, const float *D, const float *z,
                            int Di, int N);

/* Plain references with the same signatures (states, scratch ignored; may be NULL). */
void sf_selective_scan_forward_ref(float *y, float *states, const float *u, const float *delta,
                                   const float *A, const float *Bm, const float *Cm, int ldbc,
                                   const float *D, const float *z, int ldz, int B, int T, int Di,
                                   int N, const int *lens);
void sf_selective_scan_backward_ref(float *du, float *ddelta, float *dA, float *dBm, float *dCm,
                                    float *dD, float *dz, const float *dy, const float *states,
                                    const float *u, const float *delta, const float *A,
                                    const float *Bm, const float *Cm, int ldbc, const float *D,
                                    const float *z, int ldz, int B, int T, int Di, int N,
                                    const int *lens, float *scratch);

#endif
