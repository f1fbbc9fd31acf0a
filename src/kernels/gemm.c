#include "kernels/gemm.h"

#include <cblas.h>

#include "core/error.h"

static void check_args(int transA, int transB, int M, int N, int K, int lda, int ldb, int ldc) {
    SF_ASSERT(M >= 0 && N >= 0 && K >= 0);
    SF_ASSERT(lda >= (transA ? M : K) && lda >= 1);
    SF_ASSERT(ldb >= (transB ? K : N) && ldb >= 1);
    SF_ASSERT(ldc >= N && ldc >= 1);
}

void sf_gemm(int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda,
             const float *B, int ldb, float beta, float *C, int ldc) {
    check_args(transA, transB, M, N, K, lda, ldb, ldc);
    if (M == 0 || N == 0) return;
    if (K == 0) {
        /* Some BLAS builds skip the beta scaling when K == 0; do it here. */
        for (int i = 0; i < M; i++)
            for (int j = 0; j < N; j++)
                C[(long)i * ldc + j] = beta == 0.0f ? 0.0f : beta * C[(long)i * ldc + j];
        return;
    }
    cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans,
                transB ? CblasTrans : CblasNoTrans, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

void sf_gemm_ref(int transA, int transB, int M, int N, int K, float alpha, const float *A,
                 int lda, const float *B, int ldb, float beta, float *C, int ldc) {
    check_args(transA, transB, M, N, K, lda, ldb, ldc);
    for (int i = 0; i < M; i++) {
        for (int j = 0; j < N; j++) {
            double s = 0.0;
            for (int p = 0; p < K; p++) {
                double a = transA ? A[(long)p * lda + i] : A[(long)i * lda + p];
                double b = transB ? B[(long)j * ldb + p] : B[(long)p * ldb + j];
                s += a * b;
            }
            float *c = &C[(long)i * ldc + j];
            *c = (float)(alpha * s + (beta == 0.0f ? 0.0 : (double)beta * *c));
        }
    }
}

void sf_set_blas_threads(int n) {
    SF_ASSERT(n >= 1);
#if defined(OPENBLAS_VERSION)
    openblas_set_num_threads(n);
#else
    (void)n;
#endif
}
