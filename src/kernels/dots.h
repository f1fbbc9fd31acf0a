/* Several dot products against one vector, with the other operands as the rows of a transposed
 * matrix: out[c] = sum_a f[a] At[c*M + a] for c < n_out. Four independent sums per pass over f
 * (one dependency chain each), vectorised along a. Inline, so each SF_MULTIVERSION caller gets
 * its own AVX2 copy. Used where the natural layout puts the long dimension (features) last. */
#ifndef SF_KERNELS_DOTS_H
#define SF_KERNELS_DOTS_H

#include <stddef.h>

static inline __attribute__((always_inline)) void sf_dots_t(float *restrict out,
                                                            const float *restrict f,
                                                            const float *restrict At, int M,
                                                            int n_out) {
    int c = 0;
    for (; c + 4 <= n_out; c += 4) {
        const float *restrict A0 = At + (size_t)c * M, *restrict A1 = A0 + M;
        const float *restrict A2 = A1 + M, *restrict A3 = A2 + M;
        float s0 = 0.0f, s1 = 0.0f, s2 = 0.0f, s3 = 0.0f;
#pragma omp simd reduction(+ : s0, s1, s2, s3)
        for (int a = 0; a < M; a++) {
            s0 += f[a] * A0[a];
            s1 += f[a] * A1[a];
            s2 += f[a] * A2[a];
            s3 += f[a] * A3[a];
        }
        out[c] = s0, out[c + 1] = s1, out[c + 2] = s2, out[c + 3] = s3;
    }
    for (; c < n_out; c++) {
        const float *restrict A0 = At + (size_t)c * M;
        float s0 = 0.0f;
#pragma omp simd reduction(+ : s0)
        for (int a = 0; a < M; a++) s0 += f[a] * A0[a];
        out[c] = s0;
    }
}

#endif
