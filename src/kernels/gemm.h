/* Dense single-precision matrix multiply, row-major, BLAS semantics:
 *
 *   C[M,N] = alpha * op(A)[M,K] * op(B)[K,N] + beta * C[M,N]
 *
 * op(A) = A ([M,K], row stride lda >= K) when transA == 0, else A^T with A stored [K,M]
 * (lda >= M); likewise op(B) = B ([K,N], ldb >= N) or B^T with B stored [N,K] (ldb >= K).
 * C is [M,N] with row stride ldc >= N. When beta == 0, C is not read (it may hold garbage or
 * NaN); K == 0 gives C = beta*C. sf_gemm calls cblas_sgemm (OpenBLAS); sf_gemm_ref is the
 * plain-loop reference (double accumulator) used by tests. C must not overlap A or B. */
#ifndef SF_KERNELS_GEMM_H
#define SF_KERNELS_GEMM_H

void sf_gemm(int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda,
             const float *B, int ldb, float beta, float *C, int ldc);
void sf_gemm_ref(int transA, int transB, int M, int N, int K, float alpha, const float *A,
                 int lda, const float *B, int ldb, float beta, float *C, int ldc);

/* Number of threads OpenBLAS uses for one call (no-op when the BLAS is not OpenBLAS).
 * Calls made from inside an OpenMP parallel region run single-threaded regardless. */
void sf_set_blas_threads(int n);

#endif
