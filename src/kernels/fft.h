/* Radix-2 fast Fourier transforms in double precision (our own: Debian's FFTW is GPL).
 *
 * Complex data is interleaved (re, im) doubles. Sizes are powers of two. The plan holds the
 * twiddle factors w^k = exp(-2 pi i k / n), k < n/2, in storage the caller owns
 * (sf_fft_plan_doubles(n) doubles); the transforms never allocate, so a kernel can keep plans
 * and buffers in its arena scratch.
 *
 *   sf_fft:   X_k = sum_j x_j exp(-+2 pi i j k / n), forward (inverse = 0) or inverse (inverse = 1,
 *             scaled by 1/n so that inverse(forward(x)) = x), in place, n complex values.
 *   sf_rfft:  real input of length n (n >= 2) -> its n/2 + 1 non-redundant coefficients
 *             (X_0 .. X_{n/2}; X_0 and X_{n/2} have zero imaginary part), computed with the
 *             half-length trick: the n reals are read as n/2 complex values x_{2k} + i x_{2k+1},
 *             transformed with the size-n/2 complex FFT (twiddles at stride 2 of the same plan)
 *             and separated into the even/odd halves. In place: buf holds n reals on entry and
 *             n + 2 doubles (n/2 + 1 complex) on exit.
 *   sf_irfft: the inverse of sf_rfft (1/n scaling included): n/2 + 1 coefficients of a real
 *             signal in buf (n + 2 doubles) -> the n reals, in place (buf[0 .. n)).
 *
 * Why double: the relative-position attention (kernels/rpe_attention.h) sums up to 4096 terms per
 * output with weights of different sizes; the FFT's rounding error is relative to the norm of the
 * whole transformed vector, so in float the early rows of a causal product (one term against a
 * norm of thousands) lose digits. Measured (bench/rpe_fft_precision.py, float32 FFTs against
 * float64): causal attention output rel err 1.7e-5 at T = 512 and 1.6e-3 at T = 4096
 * (bidirectional 2-3e-7), past the 1e-5 the kernel must meet; in double, tests/test_fft.c measures
 * 5e-15 against the DFT and the attention matches its double reference to float rounding. */
#ifndef SF_KERNELS_FFT_H
#define SF_KERNELS_FFT_H

#include <stddef.h>

typedef struct {
    int n;            /* transform size the plan was made for (a power of two >= 1) */
    const double *tw; /* n/2 complex twiddles w^k = exp(-2 pi i k / n), interleaved */
} sf_fft_plan;

/* Doubles of storage a plan of size n needs (>= 1 so it can always be pushed). */
size_t sf_fft_plan_doubles(int n);
/* Fill storage with the twiddles of size n (a power of two >= 1) and point the plan at it. */
void sf_fft_plan_init(sf_fft_plan *p, int n, double *storage);
/* Smallest power of two >= n (n >= 1). */
int sf_fft_size_at_least(int n);

/* Complex FFT of p->n values in place. */
void sf_fft(const sf_fft_plan *p, double *z, int inverse);
/* Real FFT of size p->n (>= 2), in place in buf[p->n + 2]. */
void sf_rfft(const sf_fft_plan *p, double *buf);
void sf_irfft(const sf_fft_plan *p, double *buf);

/* Plain O(n^2) DFT (no scaling; sign -1 forward, +1 inverse), for tests: out must not overlap in. */
void sf_dft_ref(const double *in, double *out, int n, int inverse);

#endif
