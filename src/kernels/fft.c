#include "kernels/fft.h"

#include <math.h>

#include "core/error.h"

size_t sf_fft_plan_doubles(int n) { return n >= 2 ? (size_t)n : 1; }

int sf_fft_size_at_least(int n) {
    int s = 1;
    while (s < n) s <<= 1;
    return s;
}

void sf_fft_plan_init(sf_fft_plan *p, int n, double *storage) {
    SF_ASSERT(n >= 1 && (n & (n - 1)) == 0);
    /* cos/sin of each angle directly (not by repeated multiplication), so every twiddle carries
     * one rounding, whatever n */
    for (int k = 0; k < n / 2; k++) {
        double a = -2.0 * M_PI * (double)k / (double)n;
        storage[2 * k] = cos(a);
        storage[2 * k + 1] = sin(a);
    }
    p->n = n;
    p->tw = storage;
}

/* Complex FFT of m values (m divides the plan size; twiddles of size m are every stride-th entry
 * of the table), decimation in time: bit-reversal permutation, then log2(m) butterfly passes. */
static void fft_core(double *z, int m, const double *tw, int stride, int inverse) {
    for (int i = 1, j = 0; i < m; i++) {
        int bit = m >> 1;
        for (; j & bit; bit >>= 1) j ^= bit;
        j |= bit;
        if (i < j) {
            double tr = z[2 * i], ti = z[2 * i + 1];
            z[2 * i] = z[2 * j], z[2 * i + 1] = z[2 * j + 1];
            z[2 * j] = tr, z[2 * j + 1] = ti;
        }
    }
    double sgn = inverse ? -1.0 : 1.0; /* the inverse uses conjugate twiddles */
    for (int len = 2; len <= m; len <<= 1) {
        int half = len >> 1, step = (m / len) * stride;
        for (int s = 0; s < m; s += len) {
            double *a = z + 2 * s, *b = a + 2 * half;
            for (int k = 0; k < half; k++) {
                double wr = tw[2 * k * step], wi = sgn * tw[2 * k * step + 1];
                double br = b[2 * k] * wr - b[2 * k + 1] * wi;
                double bi = b[2 * k] * wi + b[2 * k + 1] * wr;
                b[2 * k] = a[2 * k] - br, b[2 * k + 1] = a[2 * k + 1] - bi;
                a[2 * k] += br, a[2 * k + 1] += bi;
            }
        }
    }
    if (inverse) {
        double s = 1.0 / m;
        for (int i = 0; i < 2 * m; i++) z[i] *= s;
    }
}

void sf_fft(const sf_fft_plan *p, double *z, int inverse) { fft_core(z, p->n, p->tw, 1, inverse); }

/* With Z = FFT_{n/2}(x_even + i x_odd), E_k = (Z_k + conj Z_{h-k}) / 2 and
 * O_k = -i (Z_k - conj Z_{h-k}) / 2 are the transforms of the even and odd samples, and
 * X_k = E_k + w^k O_k, X_{h-k} = conj(E_k - w^k O_k) (w = exp(-2 pi i / n), h = n/2): each pair
 * (k, h-k) is computed from (Z_k, Z_{h-k}) and written back in place. */
void sf_rfft(const sf_fft_plan *p, double *buf) {
    int n = p->n, h = n / 2;
    SF_ASSERT(n >= 2);
    fft_core(buf, h, p->tw, 2, 0);
    double z0r = buf[0], z0i = buf[1];
    for (int k = 1; 2 * k <= h; k++) {
        int l = h - k;
        double zkr = buf[2 * k], zki = buf[2 * k + 1], zlr = buf[2 * l], zli = buf[2 * l + 1];
        double er = 0.5 * (zkr + zlr), ei = 0.5 * (zki - zli);  /* (Z_k + conj Z_l) / 2 */
        double orr = 0.5 * (zki + zli), oi = -0.5 * (zkr - zlr); /* -i (Z_k - conj Z_l) / 2 */
        double wr = p->tw[2 * k], wi = p->tw[2 * k + 1];
        double tr = wr * orr - wi * oi, ti = wr * oi + wi * orr; /* w^k O_k */
        buf[2 * k] = er + tr, buf[2 * k + 1] = ei + ti;
        buf[2 * l] = er - tr, buf[2 * l + 1] = -(ei - ti);
    }
    buf[0] = z0r + z0i, buf[1] = 0.0;
    buf[2 * h] = z0r - z0i, buf[2 * h + 1] = 0.0;
}

/* The inverse of the separation above: E_k = (X_k + conj X_{h-k}) / 2,
 * O_k = conj(w^k) (X_k - conj X_{h-k}) / 2, Z_k = E_k + i O_k, Z_{h-k} = conj E_k + i conj O_k;
 * then the inverse size-n/2 FFT gives x_even + i x_odd. */
void sf_irfft(const sf_fft_plan *p, double *buf) {
    int n = p->n, h = n / 2;
    SF_ASSERT(n >= 2);
    double x0 = buf[0], xh = buf[2 * h];
    for (int k = 1; 2 * k <= h; k++) {
        int l = h - k;
        double xkr = buf[2 * k], xki = buf[2 * k + 1], xlr = buf[2 * l], xli = buf[2 * l + 1];
        double er = 0.5 * (xkr + xlr), ei = 0.5 * (xki - xli);
        double dr = 0.5 * (xkr - xlr), di = 0.5 * (xki + xli); /* (X_k - conj X_l) / 2 */
        double wr = p->tw[2 * k], wi = -p->tw[2 * k + 1];       /* conj(w^k) */
        double orr = wr * dr - wi * di, oi = wr * di + wi * dr;
        buf[2 * k] = er - oi, buf[2 * k + 1] = ei + orr;         /* E + i O */
        buf[2 * l] = er + oi, buf[2 * l + 1] = -ei + orr;        /* conj E + i conj O */
    }
    buf[0] = 0.5 * (x0 + xh), buf[1] = 0.5 * (x0 - xh);
    fft_core(buf, h, p->tw, 2, 1);
}

void sf_dft_ref(const double *in, double *out, int n, int inverse) {
    double sgn = inverse ? 1.0 : -1.0;
    for (int k = 0; k < n; k++) {
        double sr = 0, si = 0;
        for (int j = 0; j < n; j++) {
            /* the angle of j*k reduced mod n first, so large n keeps full accuracy */
            double a = sgn * 2.0 * M_PI * (double)(((long)j * k) % n) / (double)n;
            double c = cos(a), s = sin(a);
            sr += in[2 * j] * c - in[2 * j + 1] * s;
            si += in[2 * j] * s + in[2 * j + 1] * c;
        }
        out[2 * k] = sr, out[2 * k + 1] = si;
    }
}
