/* Our radix-2 FFT (kernels/fft.h) against a plain O(n^2) DFT in double, for every power of two
 * n = 1 .. 4096: complex forward and inverse, the real-input transform (n >= 2) and its inverse,
 * and inverse(forward(x)) = x. Random inputs; the seed is printed. Errors are
 * max|fft - dft| / max|dft| over the whole vector (an FFT's rounding error is relative to the
 * vector's norm, not to each coefficient); the measured worst case is printed. */
#include <string.h>

#include "core/error.h"
#include "core/rng.h"
#include "kernels/fft.h"
#include "test_util.h"

static sf_rng rng;

static double rel_err_d(const double *a, const double *b, long n) {
    double md = 0, mb = 1e-300;
    for (long i = 0; i < n; i++) {
        double d = fabs(a[i] - b[i]);
        if (d > md || d != d) md = d;
        if (fabs(b[i]) > mb) mb = fabs(b[i]);
    }
    return md / mb;
}

static void fill(double *x, long n) {
    for (long i = 0; i < n; i++) x[i] = sf_rng_normal(&rng);
}

int main(void) {
    sf_rng_seed(&rng, test_seed());
    /* Tolerances: a radix-2 FFT's error grows like eps * log2(n) (eps = 1.1e-16), the naive DFT's
     * like eps * sqrt(n); measured worst over all sizes ~5e-15. 1e-12 leaves a margin of ~200,
     * while a wrong twiddle or permutation gives errors of order 1. */
    const double tol = 1e-12;
    double w_fwd = 0, w_inv = 0, w_round = 0, w_rfft = 0, w_irfft = 0, w_rround = 0;
    for (int n = 1; n <= 4096; n *= 2) {
        double *tw = sf_malloc(sf_fft_plan_doubles(n) * sizeof(double));
        sf_fft_plan p;
        sf_fft_plan_init(&p, n, tw);
        double *x = sf_malloc((size_t)(2 * n + 2) * sizeof(double));
        double *z = sf_malloc((size_t)(2 * n + 2) * sizeof(double));
        double *ref = sf_malloc((size_t)(2 * n + 2) * sizeof(double));
        /* complex forward, inverse, round trip */
        fill(x, 2 * n);
        memcpy(z, x, (size_t)2 * n * sizeof(double));
        sf_fft(&p, z, 0);
        sf_dft_ref(x, ref, n, 0);
        double e_fwd = rel_err_d(z, ref, 2 * n);
        sf_fft(&p, z, 1);
        double e_round = rel_err_d(z, x, 2 * n);
        memcpy(z, x, (size_t)2 * n * sizeof(double));
        sf_fft(&p, z, 1);
        sf_dft_ref(x, ref, n, 1);
        for (int i = 0; i < 2 * n; i++) ref[i] /= n;
        double e_inv = rel_err_d(z, ref, 2 * n);
        CHECK_MSG(e_fwd < tol && e_inv < tol && e_round < tol,
                  "complex n=%d: forward %.2e inverse %.2e round trip %.2e", n, e_fwd, e_inv, e_round);
        w_fwd = fmax(w_fwd, e_fwd), w_inv = fmax(w_inv, e_inv), w_round = fmax(w_round, e_round);
        if (n >= 2) {
            /* real input: the first n/2 + 1 DFT coefficients of the same signal as complex */
            double *r = sf_malloc((size_t)n * sizeof(double));
            fill(r, n);
            for (int i = 0; i < n; i++) x[2 * i] = r[i], x[2 * i + 1] = 0.0;
            sf_dft_ref(x, ref, n, 0);
            memcpy(z, r, (size_t)n * sizeof(double));
            sf_rfft(&p, z);
            double e_r = rel_err_d(z, ref, n + 2);
            CHECK_MSG(z[1] == 0.0 && z[n + 1] == 0.0, "rfft n=%d: X_0, X_n/2 not real", n);
            sf_irfft(&p, z);
            double e_rr = rel_err_d(z, r, n);
            /* the inverse on its own: coefficients of a real signal from the DFT */
            memcpy(z, ref, (size_t)(n + 2) * sizeof(double));
            sf_irfft(&p, z);
            double e_ir = rel_err_d(z, r, n);
            CHECK_MSG(e_r < tol && e_rr < tol && e_ir < tol,
                      "real n=%d: rfft %.2e irfft %.2e round trip %.2e", n, e_r, e_ir, e_rr);
            w_rfft = fmax(w_rfft, e_r), w_irfft = fmax(w_irfft, e_ir), w_rround = fmax(w_rround, e_rr);
            free(r);
        }
        free(tw), free(x), free(z), free(ref);
    }
    printf("fft vs dft, n = 1..4096: complex forward %.2e inverse %.2e round trip %.2e\n", w_fwd,
           w_inv, w_round);
    printf("real fft (n = 2..4096): rfft %.2e irfft %.2e round trip %.2e (tolerance %.0e)\n", w_rfft,
           w_irfft, w_rround, tol);
    CHECK(sf_fft_size_at_least(1) == 1 && sf_fft_size_at_least(5) == 8 && sf_fft_size_at_least(64) == 64);
    return test_finish();
}
