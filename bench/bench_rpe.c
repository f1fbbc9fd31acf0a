/* Relative-position kernelized attention (kernels/rpe_attention.h): the FFT path against the
 * direct O(T^2) path (same threading and double accumulators), forward + backward wall time, batch 1, 8 heads, head width 64 and 64
 * features (the paper's regime), at T = 256 .. 16384. Not a test: prints a table.
 *   bench_rpe [max_T [max_direct_T]]  (defaults 16384 and 4096: above max_direct_T the direct
 *                                      time is extrapolated as T^2 from the largest measured row)
 * Measured 2026-11-30, OMP_NUM_THREADS=1, on a shared 2-core machine at load ~20 (so absolute times
 * are ~4x slow and noisy; the ratios are the point): T 256: fft 6.3 s, direct 1.9 s (0.30x);
 * 512: 11.6 / 7.0 (0.60x); 1024: 28.3 / 30.8 (1.09x); 2048: 93 / 188 (2.0x); 4096: 129 / ~754
 * extrapolated (5.8x). 8192 and 16384 were not run (each FFT row is minutes there). */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "core/error.h"
#include "core/rng.h"
#include "kernels/rpe_attention.h"
#include "bench_clock.h"

int main(int argc, char **argv) {
    int max_T = argc > 1 ? atoi(argv[1]) : 16384, max_naive = argc > 2 ? atoi(argv[2]) : 4096;
    const int H = 8, Dv = 64, M = 64, workers = omp_get_max_threads();
    sf_rng rng;
    sf_rng_seed(&rng, 1);
    printf("rpe attention forward+backward, B=1 H=%d Dv=%d M=%d, %d threads\n", H, Dv, M, workers);
    printf("%7s %12s %12s %9s\n", "T", "fft (s)", "direct (s)", "speedup");
    double naive_c = 0; /* seconds / T^2 of the largest measured direct row */
    for (int T = 256; T <= max_T; T *= 2) {
        sf_rpe_shape s = {1, T, H, M, Dv, T, 0, NULL, SF_RPE_FFT};
        size_t F = (size_t)T * H * M, V = (size_t)T * H * Dv;
        float *fq = sf_malloc(F * 4), *fk = sf_malloc(F * 4), *v = sf_malloc(V * 4), *dout = sf_malloc(V * 4);
        float *out = sf_malloc(V * 4), *den = sf_malloc((size_t)H * T * 4), *dfq = sf_malloc(F * 4);
        float *dfk = sf_malloc(F * 4), *dv = sf_malloc(V * 4), *bias = sf_calloc((size_t)H * (2 * T - 1), 4);
        float *dbias = sf_calloc((size_t)H * (2 * T - 1), 4);
        for (size_t i = 0; i < F; i++) fq[i] = fabsf(sf_rng_normal(&rng)), fk[i] = fabsf(sf_rng_normal(&rng));
        sf_rng_fill_normal(&rng, v, (long)V, 0, 1);
        sf_rng_fill_normal(&rng, dout, (long)V, 0, 1);
        double *scratch = sf_malloc(sf_rpe_attention_scratch_doubles(&s, workers) * sizeof(double));
        double t[2] = {0, 0};
        for (int which = 0; which < 2; which++) {
            if (which == 1 && T > max_naive) {
                t[1] = naive_c * (double)T * T;
                continue;
            }
            s.algo = which ? SF_RPE_DIRECT : SF_RPE_FFT;
            double t0 = wall_seconds();
            sf_rpe_attention_forward(out, H * Dv, den, fq, fk, v, H * Dv, bias, &s, scratch, workers);
            sf_rpe_attention_backward(dfq, dfk, dv, dbias, dout, H * Dv, out, den, fq, fk, v, H * Dv, bias, &s,
                                      scratch, workers);
            t[which] = wall_seconds() - t0;
            if (which == 1) naive_c = t[1] / ((double)T * T);
        }
        printf("%7d %12.3f %11.3f%s %8.2fx\n", T, t[0], t[1], T > max_naive ? "*" : " ", t[1] / t[0]);
        fflush(stdout);
        free(fq), free(fk), free(v), free(dout), free(out), free(den), free(dfq), free(dfk), free(dv);
        free(bias), free(dbias), free(scratch);
    }
    printf("(* extrapolated as T^2 from the largest measured direct row)\n");
    return 0;
}
