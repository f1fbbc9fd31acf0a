/* In-process A/B of two versions of our packed sgemm (kernels/gemm_packed.c): this tree's, linked
 * from the library, against another commit's, compiled beside it with its exported names given
 * an old_ prefix (bench/gemm_src_ab.sh builds it). The two run alternately, call by call, on the
 * same buffers, so both see the same phases of a shared machine's speed (which drifts by tens of
 * percent within seconds: separate processes cannot resolve a 10% change). One thread, the
 * shapes of PatchTST's training step (37632 tokens, d_model 16, d_ff 128) and two of bench_mfu's
 * encoder; C is a chunk of rows small enough to stay in cache, so the kernels, not memory, are
 * compared. Prints per shape the best and mean GFLOP/s of each and the time ratio new/old. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/gemm.h"
#include "bench_clock.h"

void old_gemm_packed_serial(int transA, int transB, int M, int N, int K, float alpha,
                            const float *A, int lda, const float *B, int ldb, float beta,
                            const float *bias, float *C, int ldc);
typedef void (*gemm_fn)(int, int, int, int, int, float, const float *, int, const float *, int,
                        float, const float *, float *, int);

typedef struct {
    const char *name;
    int ta, tb, M, N, K, rows, bias;
    float beta;
} shape;

static float *X, *W, *C, *Bias;

/* the M rows in chunks of `rows` (a weight gradient, ta = 1: one call over all K) */
static double run(gemm_fn f, const shape *s) {
    const double t = wall_seconds();
    for (int r = 0; r < s->M; r += s->rows) {
        const int m = s->M - r < s->rows ? s->M - r : s->rows;
        const float *A = s->ta ? X + r : X + (long)r * s->K;
        f(s->ta, s->tb, m, s->N, s->K, 1.0f, A, s->ta ? s->M : s->K, W, s->tb ? s->K : s->N,
          s->beta, s->bias ? Bias : NULL, C, s->N);
    }
    return wall_seconds() - t;
}

int main(int argc, char **argv) {
    const int reps = argc > 1 ? atoi(argv[1]) : 100;
    if (reps < 1) {
        fprintf(stderr, "usage: gemm_src_ab [REPS >= 1]\n");
        return 2;
    }
    const shape shapes[] = {
        {"patch/out fwd", 0, 1, 37632, 16, 16, 588, 1, 0.0f},
        {"qkv fwd", 0, 1, 37632, 48, 16, 588, 1, 0.0f},
        {"fc1 fwd", 0, 1, 37632, 128, 16, 588, 1, 0.0f},
        {"fc2 fwd", 0, 1, 37632, 16, 128, 588, 1, 0.0f},
        {"qkv dx", 0, 0, 37632, 16, 48, 588, 0, 0.0f},
        {"fc1 dx", 0, 0, 37632, 16, 128, 588, 0, 0.0f},
        {"fc2 dx", 0, 0, 37632, 128, 16, 588, 0, 0.0f},
        {"qkv dW", 1, 0, 48, 16, 37632, 48, 0, 1.0f},
        {"fc1 dW", 1, 0, 128, 16, 37632, 128, 0, 1.0f},
        {"fc2 dW", 1, 0, 16, 128, 37632, 16, 0, 1.0f},
        {"enc out fwd", 0, 1, 8192, 256, 256, 768, 1, 0.0f},
        {"enc fc1 dx", 0, 0, 8192, 256, 1024, 768, 0, 0.0f},
        {"enc out dW", 1, 0, 256, 256, 8192, 256, 0, 1.0f},
        {"enc fc2 dW", 1, 0, 256, 1024, 8192, 256, 0, 1.0f},
        {"enc fc1 dW", 1, 0, 1024, 256, 8192, 1024, 0, 1.0f},
    };
    const size_t nx = 37632L * 1024, nw = 8192L * 1024, nc = 1L << 20;
    X = malloc(nx * sizeof(float)), W = malloc(nw * sizeof(float)), C = malloc(nc * sizeof(float));
    Bias = malloc(1024 * sizeof(float));
    for (size_t i = 0; i < nx; i++) X[i] = (float)((i * 37) % 101) * 0.02f - 1.0f;
    for (size_t i = 0; i < nw; i++) W[i] = (float)((i * 13) % 17) * 0.02f - 0.16f;
    for (int i = 0; i < 1024; i++) Bias[i] = 0.01f * (float)i;
    memset(C, 0, nc * sizeof(float));
    printf("gemm_src_ab: one thread, %d alternating calls each; GFLOP/s best / mean\n", reps);
    for (size_t k = 0; k < sizeof shapes / sizeof *shapes; k++) {
        const shape *s = &shapes[k];
        if ((long)s->rows * s->N > (long)nc || (long)s->M * s->K > (long)nx) return 1;
        double bo = 1e9, bn = 1e9, so = 0, sn = 0;
        for (int i = -2; i < reps; i++) {
            const double o = run(old_gemm_packed_serial, s), n = run(sf_gemm_packed_serial, s);
            if (i < 0) continue;
            bo = o < bo ? o : bo, bn = n < bn ? n : bn, so += o, sn += n;
        }
        const double gf = 2.0 * s->M * s->N * s->K * 1e-9;
        printf("%-13s %c%c M %5d N %4d K %5d: old %6.1f / %6.1f  new %6.1f / %6.1f  new/old time: best %.3f mean %.3f\n",
               s->name, s->ta ? 'T' : 'N', s->tb ? 'T' : 'N', s->M, s->N, s->K, gf / bo,
               gf * reps / so, gf / bn, gf * reps / sn, bn / bo, sn / so);
    }
    free(X), free(W), free(C), free(Bias);
    return 0;
}
