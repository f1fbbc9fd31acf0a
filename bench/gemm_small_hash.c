/* A hash of sf_gemm / sf_gemm_bias results over random small problems (M*N*K <= 2^20: the
 * small-problem paths of src/kernels/gemm.c), all transposes, beta 0 and 1, with and without
 * bias, at OMP_NUM_THREADS. Link it against two builds of the library and compare the hashes to
 * show that a change kept the bits: built with the project (./build/gemm_small_hash) and by hand
 * against another build's library,
 *   cc -O2 -fopenmp -Isrc bench/gemm_small_hash.c OLD/libseqformer.a -lopenblas -lm -o /tmp/h_old
 *   OMP_NUM_THREADS=2 /tmp/h_old; OMP_NUM_THREADS=2 ./build/gemm_small_hash
 * (rand() with a fixed seed: the same problems for both, on one machine). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/gemm.h"

static float *random_floats(long n, float lo, float hi) {
    float *v = malloc(sizeof(float) * (size_t)(n > 0 ? n : 1));
    for (long i = 0; i < n; i++) v[i] = lo + (hi - lo) * (float)rand() / (float)RAND_MAX;
    return v;
}

int main(void) {
    srand(7);
    uint64_t h = 1469598103934665603ULL; /* FNV-1a over the result bits */
    int cases = 0;
    for (int it = 0; it < 3000; it++) {
        const int M = 1 + rand() % 300, N = 1 + rand() % 140, K = 1 + rand() % 700;
        if ((long)M * N * K > (1L << 20)) continue;
        const int ta = rand() % 2, tb = rand() % 2, with_bias = rand() % 2;
        const float beta = rand() % 2 ? 1.0f : 0.0f;
        float *A = random_floats((long)M * K, -0.5f, 0.5f), *B = random_floats((long)K * N, -0.5f, 0.5f);
        float *C = random_floats((long)M * N, 0.0f, 1.0f), *bias = random_floats(N, 0.0f, 1.0f);
        if (with_bias)
            sf_gemm_bias(ta, tb, M, N, K, 1.0f, A, ta ? M : K, B, tb ? K : N, bias, C, N);
        else
            sf_gemm(ta, tb, M, N, K, 1.0f, A, ta ? M : K, B, tb ? K : N, beta, C, N);
        for (long i = 0; i < (long)M * N; i++) {
            uint32_t u;
            memcpy(&u, C + i, sizeof u);
            h = (h ^ u) * 1099511628211ULL;
        }
        cases++;
        free(A), free(B), free(C), free(bias);
    }
    printf("%d cases hash %llx\n", cases, (unsigned long long)h);
    return 0;
}
