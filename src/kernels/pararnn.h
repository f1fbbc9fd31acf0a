/* Diagonal nonlinear RNN cells trained in parallel over the sequence by Newton iterations
 * (ParaRNN, Danieli et al. 2025; the Apple ml-pararnn code), with the plain sequential loop as
 * the reference.
 *
 * Cells (u = B x + b: the input projection, computed by the caller for every token at once;
 * gates are rows of 3N floats per token, gate-major: u[t][g*N + j]):
 *   gru_diag  (state h, N floats; gates z, r, h):
 *       z = s(a_z h + u_z), r = s(a_r h + u_r), c = tanh(a_h (h r) + u_h), h' = z c + (1 - z) h
 *   lstm_cifg (state [c, h], 2N floats; gates f, o, c; peepholes p_f, p_o):
 *       f = s(a_f h + u_f + p_f c), g = tanh(a_c h + u_c), c' = f c + (1 - f) g,
 *       o = s(a_o h + u_o + p_o c'), h' = o tanh(c')
 * s = sigmoid; every state weight is a vector (diagonal), so the Jacobian dh'/dh is diagonal
 * (GRU) or a 2x2 block of diagonals (LSTM: [[dc'/dc, dc'/dh], [dh'/dc, dh'/dh]]).
 *
 * Newton (sf_diag_rnn_newton): the whole sequence is the system F_t(h) = h_t - f(h_{t-1}, u_t)
 * = 0 (h_{-1} = 0). Initial guess h_t = f(0, u_t); each iteration evaluates every cell at once
 * (residual and Jacobian J_t = df/dh_{t-1}), then solves the linear recurrence
 * d_t = J_t d_{t-1} - F_t and updates h += d. The residual is max_t,i |F_t,i|; the loop stops
 * as soon as it is <= tol, or after max_iters solves. If the residual is still above tol, a
 * warning (once per process) names it and the sequential loop recomputes the states: the
 * result is never a silently unconverged one (stats->fallback says it happened).
 *
 * Linear recurrences (sf_linrec_*): y_t = A_t y_{t-1} + r_t, y_{-1} = 0, with A_t diagonal
 * (n floats) or 2x2 blocks of diagonals (4n floats: [a11 | a12 | a21 | a22]). The parallel
 * solver splits the sequence into chunks: each thread solves its chunk from a zero start while
 * multiplying up the chunk's transfer product, a short serial scan carries the true state
 * across chunk boundaries, then each thread fixes up its chunk (y_t += (A_t..A_s) y_{s-1}).
 * `reverse` runs the recurrence from t = T-1 down (y_T = 0): the backward pass.
 *
 * Backward (sf_diag_rnn_backward): the adjoint l_t = g_t + J_{t+1}^T l_{t+1} is one linear
 * recurrence over the reversed sequence with the transposed Jacobians (no Newton), solved by
 * the same parallel solver; then the gate gradients du and the state-weight gradients are
 * formed for every token at once.
 *
 * Batches: B sequences of T tokens; lens NULL (all T) or lens[b] in [1, T]. Tokens past a
 * sequence's length are ignored: their states are written 0, their du is 0, and nothing after
 * the length is read from u, g. Kernels never allocate; the `_ref` functions are plain loops. */
#ifndef SF_KERNELS_PARARNN_H
#define SF_KERNELS_PARARNN_H

#include <stddef.h>

typedef enum { SF_CELL_GRU_DIAG = 0, SF_CELL_LSTM_CIFG = 1 } sf_diag_cell_kind;

typedef struct {
    sf_diag_cell_kind kind;
    int N;             /* units */
    const float *a;    /* [3, N] diagonal state weights (GRU z, r, h; LSTM f, o, c) */
    const float *peep; /* LSTM [2, N] peepholes (p_f on c, p_o on c'); NULL for GRU */
} sf_diag_cell;

/* Floats of state per token (N or 2N) and of Jacobian per token (N or 4N). */
int sf_diag_cell_state(const sf_diag_cell *c);
int sf_diag_cell_jac(const sf_diag_cell *c);
/* Offset of h inside a token's state (0 for GRU, N for LSTM [c, h]). */
int sf_diag_cell_h_offset(const sf_diag_cell *c);

/* One step: s_out = f(s_in, u) (s_in may be NULL: zero state; s_out must not alias s_in). */
void sf_diag_cell_step(const sf_diag_cell *c, const float *s_in, const float *u, float *s_out);

typedef struct {
    int iters;        /* linear solves done */
    float residual;   /* max |F| reached (after the last update) */
    int fallback;     /* 1: not converged, the states were recomputed sequentially */
    float initial_residual; /* max |F| of the initial guess */
} sf_newton_stats;

/* Newton statistics summed over many solves (a training epoch, an evaluation): the caller points
 * sf_ctx.newton at one and every ParaRNN mixer adds each solve's statistics (sf_newton_tally_add). */
typedef struct sf_newton_tally {
    long solves, iters_sum, fallbacks;
    int iters_max;
    float residual_max; /* the largest final residual (before any fallback) */
} sf_newton_tally;

void sf_newton_tally_add(sf_newton_tally *t, const sf_newton_stats *s);
/* "iters 3.00 mean / 3 max, residual <= 2.4e-07, fallbacks 0 of 130 solves" */
void sf_newton_tally_format(const sf_newton_tally *t, char *buf, size_t n);

/* Threads the kernels use: at most SF_PARARNN_MAX_THREADS (the workspace is sized for it). */
#define SF_PARARNN_MAX_THREADS 64

/* Workspace floats for newton (forward) and backward (the same size serves both). */
size_t sf_diag_rnn_work_floats(const sf_diag_cell *c, int B, int T);

/* s [B, T, S] = the states (S = sf_diag_cell_state). */
void sf_diag_rnn_sequential(const sf_diag_cell *c, int B, int T, const float *u, float *s,
                            const int *lens);
void sf_diag_rnn_newton(const sf_diag_cell *c, int B, int T, const float *u, float *s,
                        const int *lens, int max_iters, float tol, float *work,
                        sf_newton_stats *stats);

/* g [B, T, N]: dL/dh of the output h of each token. Writes du [B, T, 3N] (dL/du) and
 * ACCUMULATES da [3, N] and (LSTM) dpeep [2, N]. parallel: 1 the chunked solver, 0 the
 * sequential adjoint loop (same formulas, one thread per sequence). */
void sf_diag_rnn_backward(const sf_diag_cell *c, int B, int T, const float *u, const float *s,
                          const float *g, float *du, float *da, float *dpeep, const int *lens,
                          int parallel, float *work);
/* Plain-loop reference: textbook BPTT in double accumulators (allocates). */
void sf_diag_rnn_backward_ref(const sf_diag_cell *c, int B, int T, const float *u, const float *s,
                              const float *g, float *du, float *da, float *dpeep, const int *lens);

/* Linear recurrence over T steps of width n (block: 0 diagonal, 1 2x2 blocks with y = [y1|y2],
 * 2n floats per step). A [T, n or 4n], r and y [T, n or 2n]; y may equal r. The parallel
 * solver needs work of sf_linrec_work_floats(n, block, chunks) floats and splits into `chunks`
 * pieces (1..SF_PARARNN_MAX_THREADS). */
size_t sf_linrec_work_floats(int n, int block, int chunks);
void sf_linrec_solve(int T, int n, int block, int reverse, const float *A, const float *r, float *y,
                     int chunks, float *work);
void sf_linrec_solve_ref(int T, int n, int block, int reverse, const float *A, const float *r,
                         float *y);

#endif
