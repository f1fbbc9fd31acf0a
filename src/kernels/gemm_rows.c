#include "kernels/gemm_rows.h"

#include <string.h>

#include "core/error.h"
#include "kernels/gemm.h"
#include "kernels/multiversion.h"
#include "kernels/tile_gemm.h"

#if SF_HAVE_CLONES
/* Panels of 64 columns, rows in blocks of 6 inside each: the attention tiles' 16-lane register
 * block (sf_tg_block16, kernels/tile_gemm.h) at 6 x 4 vectors, 24 accumulators with B's four
 * vectors and a broadcast in the 32 registers, so B is read once per k and block (with
 * sf_tile_gemm_w(16, ...)'s own 8 x 32 blocking the PatchTST step ran slower in two runs of
 * bench/step_ab.sh). A bias is copied into C's rows first and added as an accumulation: the same
 * sum (acc + bias) as the packed kernel's store. */
#define SF_GR_REST(R)                                                                           \
    case R:                                                                                     \
        sf_tg_block16(R, 4, K, A + i * ars, ars, aks, B + j, ldb, C + i * ldc + j, ldc,         \
                      accumulate);                                                              \
        break;
SF_TARGET_V4 static void rows_512(int M, int N, int K, const float *A, long ars, long aks,
                                  const float *B, long ldb, const float *bias, int accumulate,
                                  float *C, long ldc) {
    SF_ASSERT(N % 64 == 0);
    if (bias) {
        for (int i = 0; i < M; i++) memcpy(C + i * ldc, bias, sizeof(float) * (size_t)N);
        accumulate = 1;
    }
    for (int j = 0; j < N; j += 64) {
        int i = 0;
        for (; i + 6 <= M; i += 6)
            sf_tg_block16(6, 4, K, A + i * ars, ars, aks, B + j, ldb, C + i * ldc + j, ldc,
                          accumulate);
        switch (M - i) {
            SF_GR_REST(1) SF_GR_REST(2) SF_GR_REST(3) SF_GR_REST(4) SF_GR_REST(5)
            default: break;
        }
    }
}
#undef SF_GR_REST
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
