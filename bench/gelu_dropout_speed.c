/* ns per element of the fused GELU + dropout forward (sf_gelu_dropout_forward, p = 0.3) over
 * PatchTST's fc1 output (37,632 x 128 values): "cold" over the whole array (read from memory, as
 * in the training step), "hot" over one 12,288-value block again and again (in cache), best of
 * ROUNDS rounds of 5 passes each. Threads: OMP_NUM_THREADS (run it with 1 to see the kernel).
 * usage: gelu_dropout_speed [ROUNDS (3)] */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_clock.h"
#include "core/rng.h"
#include "kernels/activations.h"

int main(int argc, char **argv) {
    const long n = 37632L * 128, hot = 12288;
    const int rounds = argc > 1 ? atoi(argv[1]) : 3;
    float *x = malloc(sizeof(float) * n), *y = malloc(sizeof(float) * n),
          *d = malloc(sizeof(float) * n);
    uint8_t *m = malloc((size_t)n);
    if (!x || !y || !d || !m || rounds < 1) return 1;
    sf_rng r;
    sf_rng_seed(&r, 1);
    for (long i = 0; i < n; i++) x[i] = (float)(i % 1000) * 0.004f - 2.0f;
    double cold = 1e30, hotb = 1e30;
    for (int k = 0; k < rounds; k++) {
        double t = 0;
        for (int rep = 0; rep < 5; rep++) { /* dgelu overwrites the input: refill it each pass */
            memcpy(d, x, sizeof(float) * n);
            const double t0 = wall_seconds();
            sf_gelu_dropout_forward(y, m, d, d, n, 0.3f, &r);
            t += wall_seconds() - t0;
        }
        if (t / (5.0 * n) < cold) cold = t / (5.0 * n);
        const double t0 = wall_seconds();
        for (long rep = 0; rep < 5 * n / hot; rep++) sf_gelu_dropout_forward(y, m, d, d, hot, 0.3f, &r);
        const double th = (wall_seconds() - t0) / (double)(5 * n / hot * hot);
        if (th < hotb) hotb = th;
    }
    printf("gelu+dropout forward: cold %.3f ns/element, hot %.3f ns/element\n", cold * 1e9,
           hotb * 1e9);
    free(x), free(y), free(d), free(m);
    return 0;
}
