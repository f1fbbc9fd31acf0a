#include "kernels/gemm_rows.h"

#include "core/error.h"
#include "kernels/gemm.h"
#include "kernels/multiversion.h"

#if SF_HAVE_CLONES
#include <immintrin.h>

#include "kernels/vec16.h"

/* MB rows x NV 16-lane vectors of C in registers (MB * NV <= 24 accumulators), K steps of one
 * row of B (NV loads) and MB broadcasts of A's elements. MB, NV: constants after inlining. */
static inline __attribute__((always_inline, target("arch=x86-64-v4"))) void rows_block(const int MB, const int NV, int K,
                                                             const float *restrict A, long ars,
                                                             long aks, const float *restrict B,
                                                             long ldb, const float *bias,
                                                             int accumulate, float *restrict C,
                                                             long ldc) {
    v16sf acc[6][4];
#pragma GCC unroll 6
    for (int r = 0; r < MB; r++)
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++) acc[r][v] = v16_splat(0.0f);
    for (int k = 0; k < K; k++) {
        const float *bk = B + (long)k * ldb;
        v16sf b[4];
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++) b[v] = v16_load(bk + 16 * v);
#pragma GCC unroll 6
        for (int r = 0; r < MB; r++) {
            /* _mm512_set1_ps of a load: one broadcast load (v16_bcast: a masked load and a
             * shuffle, both on the FMA ports' side) */
            const v16sf a = (v16sf)_mm512_set1_ps(A[r * ars + k * aks]);
#pragma GCC unroll 4
            for (int v = 0; v < NV; v++) acc[r][v] += a * b[v];
        }
    }
#pragma GCC unroll 6
    for (int r = 0; r < MB; r++)
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++) {
            float *c = C + r * ldc + 16 * v;
            v16sf out = acc[r][v];
            if (bias) out = out + v16_load(bias + 16 * v);
            else if (accumulate) out = v16_load(c) + out;
            v16_store(c, out);
        }
}

/* all of C's rows for one panel of NV vectors: blocks of MB rows, then one block of the rest (the
 * same chain per element either way) */
#define SF_GR_REST(R)                                                                           \
    case R:                                                                                     \
        if ((R) < MB)                                                                           \
            rows_block((R) < MB ? (R) : 1, NV, K, A + i * ars, ars, aks, B, ldb, bias,         \
                       accumulate, C + i * ldc, ldc);                                           \
        break;
static inline __attribute__((always_inline, target("arch=x86-64-v4"))) void rows_all(
    const int MB, const int NV, int M, int K, const float *A, long ars, long aks, const float *B,
    long ldb, const float *bias, int accumulate, float *C, long ldc) {
    int i = 0;
    for (; i + MB <= M; i += MB)
        rows_block(MB, NV, K, A + i * ars, ars, aks, B, ldb, bias, accumulate, C + i * ldc, ldc);
    switch (M - i) {
        SF_GR_REST(1) SF_GR_REST(2) SF_GR_REST(3) SF_GR_REST(4) SF_GR_REST(5)
        default: break;
    }
}
#undef SF_GR_REST

/* Column panels of 64 (4 vectors, 6 rows: 24 accumulators, the 4 vectors of B's row and a
 * broadcast stay in the 32 registers, so B is read once per k and row block). Only N = 64, 128
 * (sf_gemm_rows_fast): narrower panels (16 columns, 12 rows) ran slower than the packed GEMM's
 * 12x16 kernel in a scratch comparison at N = 16 (PatchTST's fc2, dx, dW1), so those stay with
 * sf_gemm. */
/* optimize("no-tree-vectorize"): the explicit vectors only (see bwd_rows_small_512) */
__attribute__((target("arch=x86-64-v4"), optimize("fp-contract=fast", "no-tree-vectorize")))
static void rows_512(int M, int N, int K, const float *A, long ars, long aks, const float *B,
                     long ldb, const float *bias, int accumulate, float *C, long ldc) {
    SF_ASSERT(N % 64 == 0);
    for (int j = 0; j < N; j += 64)
        rows_all(6, 4, M, K, A, ars, aks, B + j, ldb, bias ? bias + j : NULL, accumulate, C + j,
                 ldc);
}
#endif

int sf_gemm_rows_fast(int N) {
#if SF_HAVE_CLONES
    return N > 0 && N % 64 == 0 && N <= 128 && sf_avx512();
#else
    (void)N;
    return 0;
#endif
}

void sf_gemm_rows(int transA, int M, int N, int K, const float *A, int lda, const float *B, int ldb,
                  const float *bias, int accumulate, float *C, int ldc) {
    SF_ASSERT(M >= 0 && N >= 0 && K >= 0 && !(bias && accumulate));
    if (M == 0 || N == 0) return;
#if SF_HAVE_CLONES
    if (sf_gemm_rows_fast(N)) {
        rows_512(M, N, K, A, transA ? 1 : lda, transA ? lda : 1, B, ldb, bias, accumulate, C, ldc);
        return;
    }
#endif
    if (bias) sf_gemm_bias(transA, 0, M, N, K, 1.0f, A, lda, B, ldb, bias, C, ldc);
    else sf_gemm(transA, 0, M, N, K, 1.0f, A, lda, B, ldb, accumulate ? 1.0f : 0.0f, C, ldc);
}
