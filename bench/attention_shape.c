/* Time of one sf_attention_forward call at one shape, best and mean of REPS calls on one thread,
 * with the log-sum-exp written (training) and without (inference, lse = NULL), on uniform random
 * q, k, v in [-0.5, 0.5) laid out as a fused qkv buffer (row stride 3 H Dh), as the softmax mixer
 * calls it. Default shape: PatchTST's batch-1 call (7 series, 42 patches, 4 heads of 4).
 *   ./build/attention_shape [B T H Dh [REPS [WITH_LSE_ONLY]]]
 * Built by hand against another build's library to compare: cc -O2 -fopenmp -Isrc -Ibench
 * bench/attention_shape.c OLD/libseqformer.a -lopenblas -lm; for a library from before lse could
 * be NULL (before f542470) pass WITH_LSE_ONLY = 1. */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>

#include "bench_clock.h"
#include "kernels/attention.h"

static void run(const char *what, float *o, float *lse, const float *qkv, int B, int T, int H,
                int Dh, int reps) {
    const int D = H * Dh, ld = 3 * D;
    double best = 1e30, total = 0;
    for (int r = 0; r < reps; r++) {
        const double t = wall_seconds();
        sf_attention_forward(o, D, lse, qkv, qkv + D, qkv + 2 * D, ld, B, T, H, Dh,
                             1.0f / sqrtf((float)Dh), 0, NULL);
        const double dt = wall_seconds() - t;
        total += dt;
        if (dt < best) best = dt;
    }
    printf("%-22s B %d T %d H %d Dh %d: best %.2f us, mean %.2f us over %d calls\n", what, B, T, H,
           Dh, best * 1e6, total / reps * 1e6, reps);
}

int main(int argc, char **argv) {
    const int B = argc > 4 ? atoi(argv[1]) : 7, T = argc > 4 ? atoi(argv[2]) : 42;
    const int H = argc > 4 ? atoi(argv[3]) : 4, Dh = argc > 4 ? atoi(argv[4]) : 4;
    const int reps = argc > 5 ? atoi(argv[5]) : 20000, lse_only = argc > 6 && atoi(argv[6]);
    if (B < 1 || T < 1 || H < 1 || Dh < 1 || Dh > SF_ATTENTION_MAX_DH || reps < 1) {
        fprintf(stderr, "usage: attention_shape [B T H Dh [REPS]]\n");
        return 2;
    }
    omp_set_num_threads(1);
    const long n = (long)B * T * 3 * H * Dh;
    float *qkv = malloc(sizeof(float) * (size_t)n), *o = malloc(sizeof(float) * (size_t)B * T * H * Dh);
    float *lse = malloc(sizeof(float) * (size_t)B * H * T);
    srand(1);
    for (long i = 0; i < n; i++) qkv[i] = (float)rand() / (float)RAND_MAX - 0.5f;
    run("forward with lse", o, lse, qkv, B, T, H, Dh, reps);
    if (!lse_only) run("forward, lse = NULL", o, NULL, qkv, B, T, H, Dh, reps);
    free(qkv), free(o), free(lse);
    return 0;
}
