/* S4D: the diagonal state-space model of Gu et al. 2022 ("On the Parameterization and
 * Initialization of Diagonal State Space Models"; state-spaces/s4 models/s4/s4d.py), as a
 * convolution kernel, its causal application, and the recurrence.
 *
 * Per channel h (H channels) and mode n (N2 = d_state/2 complex modes, the conjugate halves
 * implied by taking 2 Re):
 *   dt = exp(log_dt[h]),  A_n = -exp(log_A_real[h,n]) + i A_imag[h,n],  C_n = C[h,n,0] + i C[h,n,1]
 *   z_n = exp(dt A_n),  E_n = (z_n - 1) / A_n          (zero-order hold, B absorbed in C)
 *   K[h, l] = 2 Re sum_n C_n E_n z_n^l,  l = 0 .. L-1
 *   y[b, t, h] = sum_{s <= t} K[h, t-s] u[b, s, h] + D[h] u[b, t, h]             (causal)
 * and the same y from the recurrence x_n <- z_n x_n + E_n u_t, y_t = 2 Re sum_n C_n x_n + D u_t.
 * Bidirectional (as S4's bidirectional kernels: a second kernel Kb from a second C, same A and dt)
 * adds the anti-causal part sum_{s > t} Kb[h, s-t-1] u[b, s, h].
 *
 * Layouts: u, y, du, dy are [B, T] rows of stride ld (>= H), channel h at column h (so [B, T, d]
 * activations with H = d columns are read in place). K and dK are [H, L] (L >= T), row h
 * contiguous. Parameters and their gradients are PyTorch's layouts: log_dt [H], log_A_real and
 * A_imag [H, N2], C [H, N2, 2] (view_as_real), D [H]. Parameter gradients ACCUMULATE (+=);
 * du and dK are overwritten.
 *
 * Padding: lens NULL or lens[B] with 1 <= lens[b] <= T: tokens t >= lens[b] do not exist; their
 * inputs are not read, their outputs and input gradients are 0, and dy there is not read.
 *
 * Precision: the kernel is generated in double (powers z^l by a running product, re-anchored with
 * an exact exp every 256 steps) and rounded to float; the convolution multiplies in double with
 * the project's radix-2 FFT (kernels/fft.h: a float FFT loses digits on long causal products).
 * Work: generation O(H N2 L), convolution O(B H L log L) with FFTs of size >= 2T - 1. Channels
 * are spread over n_workers OpenMP threads; each channel is computed by one thread in a fixed
 * order, so results do not depend on the thread count. Kernels never allocate; the *_ref
 * functions (direct O(T^2) convolution, exp per power) are plain loops for tests. */
#ifndef SF_KERNELS_S4D_H
#define SF_KERNELS_S4D_H

#include <stddef.h>

/* Most complex modes per channel (d_state / 2) the kernels accept (a per-channel table on the
 * stack). */
#define SF_S4D_MAX_MODES 512

typedef struct {
    int H, N2;
    const float *log_dt, *log_A_real, *A_imag, *C, *D;
} sf_s4d_params;

typedef struct {
    float *log_dt, *log_A_real, *A_imag, *C, *D;
} sf_s4d_grads;

/* K [H, L]. */
void sf_s4d_kernel(float *K, int L, const sf_s4d_params *p, int n_workers);
/* Accumulates the gradients of sum(dK * K) into g (log_dt, log_A_real, A_imag, C). */
void sf_s4d_kernel_backward(const float *dK, int L, const sf_s4d_params *p, const sf_s4d_grads *g,
                            int n_workers);

/* Doubles of workspace the convolution needs for sequences of T tokens and n_workers threads
 * (pure workspace; one buffer serves forward and backward). */
size_t sf_s4d_conv_scratch_doubles(int T, int n_workers);
/* y = causal K * u (+ anti-causal Kb part unless Kb is NULL) + D u (K's and Kb's first T
 * columns are used, row stride L). */
void sf_s4d_conv_forward(float *y, const float *u, int ld, const float *K, const float *Kb, int L,
                         const float *D, int B, int T, int H, double *scratch, int n_workers,
                         const int *lens);
/* du = the adjoint convolution of dy + D dy; dK[h, 0..T) = sum_b correlation of dy with u at lags
 * 0..T-1 (and dKb[h, 0..T-1) at lags -1..-(T-1), dKb[h, T-1] = 0, when Kb is not NULL); columns
 * past T untouched; dD += sum dy u. */
void sf_s4d_conv_backward(float *du, float *dK, float *dKb, float *dD, const float *dy,
                          const float *u, int ld, const float *K, const float *Kb, int L,
                          const float *D, int B, int T, int H, double *scratch, int n_workers,
                          const int *lens);

/* Streaming: the state is x as [H][N2] complex (re, im floats), zero at the start. One token
 * u [H] -> y [H]; state_in may equal state_out. */
size_t sf_s4d_state_floats(int H, int N2);
void sf_s4d_step(float *y, const float *u, const sf_s4d_params *p, const float *state_in,
                 float *state_out);

/* References. */
void sf_s4d_kernel_ref(float *K, int L, const sf_s4d_params *p);
void sf_s4d_kernel_backward_ref(const float *dK, int L, const sf_s4d_params *p,
                                const sf_s4d_grads *g);
void sf_s4d_conv_forward_ref(float *y, const float *u, int ld, const float *K, const float *Kb,
                             int L, const float *D, int B, int T, int H, const int *lens);
void sf_s4d_conv_backward_ref(float *du, float *dK, float *dKb, float *dD, const float *dy,
                              const float *u, int ld, const float *K, const float *Kb, int L,
                              const float *D, int B, int T, int H, const int *lens);

#endif
