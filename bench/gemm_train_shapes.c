/* The GEMMs of one PatchTST ETTh1 training step (batch 128, 7 channels: 37,632 tokens of width
 * 16, d_ff 128, 3 blocks, head 672 -> 96), each timed alone through sf_gemm: best of REPS calls,
 * warm caches. Where the step's GEMM time goes shape by shape (forward, data gradient dx, weight
 * gradient dw); "xN" is how many times a step calls it. Not a substitute for bench_patchtst (the
 * step itself), but it isolates one shape when a kernel changes. The inputs are fixed patterns
 * (timing only; test_gemm checks values).
 * usage: gemm_train_shapes [REPS (20)]   (threads: OMP_NUM_THREADS) */
#include <stdio.h>
#include <stdlib.h>

#include "bench_clock.h"
#include "kernels/gemm.h"

typedef struct {
    const char *name;
    int ta, tb, M, N, K, times;
    float beta;
} shape;

int main(int argc, char **argv) {
    const int T = 37632, BC = 896, reps = argc > 1 ? atoi(argv[1]) : 20;
    const shape s[] = {
        {"qkv fwd", 0, 1, T, 48, 16, 3, 0}, {"out fwd", 0, 1, T, 16, 16, 3, 0},
        {"fc1 fwd", 0, 1, T, 128, 16, 3, 0}, {"fc2 fwd", 0, 1, T, 16, 128, 3, 0},
        {"qkv dx", 0, 0, T, 16, 48, 3, 0}, {"out dx", 0, 0, T, 16, 16, 3, 0},
        {"fc1 dx", 0, 0, T, 16, 128, 3, 0}, {"fc2 dx", 0, 0, T, 128, 16, 3, 0},
        {"qkv dw", 1, 0, 48, 16, T, 3, 1}, {"out dw", 1, 0, 16, 16, T, 3, 1},
        {"fc1 dw", 1, 0, 128, 16, T, 3, 1}, {"fc2 dw", 1, 0, 16, 128, T, 3, 1},
        {"emb fwd", 0, 1, T, 16, 16, 1, 0}, {"emb dw", 1, 0, 16, 16, T, 1, 1},
        {"head fwd", 0, 1, BC, 96, 672, 1, 0}, {"head dx", 0, 0, BC, 672, 96, 1, 0},
        {"head dw", 1, 0, 96, 672, BC, 1, 1}};
    const int ns = (int)(sizeof s / sizeof s[0]);
    const long big = (long)T * 128;
    float *A = malloc(sizeof(float) * big), *B = malloc(sizeof(float) * big),
          *C = calloc((size_t)big, sizeof(float));
    if (!A || !B || !C || reps < 1) return 1;
    for (long i = 0; i < big; i++) A[i] = (float)(i % 17) * 0.01f, B[i] = (float)(i % 13) * 0.02f;
    double total = 0;
    printf("%-9s %6s %4s %6s %10s %9s\n", "gemm", "M", "N", "K", "ms (best)", "GFLOP/s");
    for (int i = 0; i < ns; i++) {
        const shape x = s[i];
        const int lda = x.ta ? x.M : x.K, ldb = x.tb ? x.K : x.N;
        double best = 1e30;
        for (int r = 0; r < reps; r++) {
            const double t = wall_seconds();
            sf_gemm(x.ta, x.tb, x.M, x.N, x.K, 1.0f, A, lda, B, ldb, x.beta, C, x.N);
            const double dt = wall_seconds() - t;
            if (dt < best) best = dt;
        }
        total += best * x.times;
        printf("%-9s %6d %4d %6d %10.3f %9.1f  x%d\n", x.name, x.M, x.N, x.K, best * 1e3,
               2.0 * x.M * x.N * x.K / best * 1e-9, x.times);
    }
    printf("step total %.2f ms\n", total * 1e3);
    free(A), free(B), free(C);
    return 0;
}
