/* Dense single-precision matrix multiply, row-major, BLAS semantics:
 *
 *   C[M,N] = alpha * op(A)[M,K] * op(B)[K,N] + beta * C[M,N]
 *
 * op(A) = A ([M,K], row stride lda >= K) when transA == 0, else A^T with A stored [K,M]
 * (lda >= M); likewise op(B) = B ([K,N], ldb >= N) or B^T with B stored [N,K] (ldb >= K).
 * C is [M,N] with row stride ldc >= N. When beta == 0, C is not read (it may hold garbage or
 * NaN); K == 0 gives C = beta*C. sf_gemm_ref is the plain-loop reference (double accumulator)
 * used by tests. C must not overlap A or B.
 *
 * sf_gemm dispatches by shape (issue #11): small problems run on the calling thread (a dot-product
 * kernel for the Linear forward, the packed kernel without a parallel region, a plain panel kernel
 * for K > 256; gemm.c), the rest go to sf_gemm_packed, our own cache-blocked, OpenMP-threaded sgemm
 * (gemm_packed.c), so the speed does not depend on the libopenblas the system selects nor on its
 * CPU detection. cblas_sgemm is the fallback where the packed kernel has no SIMD clones (non-GCC
 * or non-x86-64 builds), or when SF_GEMM=openblas is set (for comparisons). Every path sums each
 * element of C in an order fixed by the shape, so results do not depend on the thread count. */
#ifndef SF_KERNELS_GEMM_H
#define SF_KERNELS_GEMM_H

void sf_gemm(int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda,
             const float *B, int ldb, float beta, float *C, int ldc);
void sf_gemm_ref(int transA, int transB, int M, int N, int K, float alpha, const float *A,
                 int lda, const float *B, int ldb, float beta, float *C, int ldc);
/* C = alpha * op(A) op(B) + bias, bias[N] added to every row (C is not read): the same bits as
 * copying bias into every row of C and calling sf_gemm with beta = 1 (a Linear layer's forward),
 * but the packed kernel adds the bias as it stores each tile instead of a separate pass over C. */
void sf_gemm_bias(int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda,
                  const float *B, int ldb, const float *bias, float *C, int ldc);

void sf_gemm_packed(int transA, int transB, int M, int N, int K, float alpha, const float *A,
                    int lda, const float *B, int ldb, float beta, float *C, int ldc);
/* sf_gemm_packed on the calling thread only, with no OpenMP construct (callable from inside a
 * parallel region); bias not NULL: bias added to every row instead of beta * C (C not read). */
void sf_gemm_packed_serial(int transA, int transB, int M, int N, int K, float alpha,
                           const float *A, int lda, const float *B, int ldb, float beta,
                           const float *bias, float *C, int ldc);
void sf_gemm_packed_bias(int transA, int transB, int M, int N, int K, float alpha, const float *A,
                         int lda, const float *B, int ldb, const float *bias, float *C, int ldc);
/* Row subsets: two products that differ only in M (op(A) not transposed) compute each row of C
 * with the same operations when sf_gemm_row_class gives the same value for both, so a model may
 * split a call's rows across threads without changing any bit (models/patchtst.c). Negative:
 * a path whose bits may depend on M (OpenBLAS). */
int sf_gemm_row_class(int transB, int M, int N, int K);
/* acc[j] += the column sums of m[rows, cols] (row-major), added row by row: vectorised across j
 * with no reordering of any sum and no fused multiply-add, so the same bits as the plain loop on
 * every CPU (a Linear layer's bias gradient, layers/linear.c; the fused feed-forward's,
 * kernels/ffn.c). */
void sf_add_col_sums(float *acc, const float *m, long rows, int cols);
/* The packed kernel's K-split count for a shape (1: none; gemm_packed.c). */
int sf_gemm_packed_ksplit(int M, int N, int K);
/* cblas_sgemm with the same argument checks (the fallback; tests compare it too). */
void sf_gemm_blas(int transA, int transB, int M, int N, int K, float alpha, const float *A,
                  int lda, const float *B, int ldb, float beta, float *C, int ldc);

/* What ran, for the benches: a bitmask of SF_GEMM_PATH_* taken by sf_gemm since the last reset,
 * the instruction-set clone the loader selected for our kernels, and the BLAS library. */
enum {
    SF_GEMM_PATH_SMALL_DOT = 1,
    SF_GEMM_PATH_SMALL_PANEL = 2,
    SF_GEMM_PATH_PACKED = 4,
    SF_GEMM_PATH_OPENBLAS = 8
};
unsigned sf_gemm_paths_used(void);
void sf_gemm_paths_reset(void);
/* "x86-64-v3 (AVX2+FMA)[ + AVX-512 (...)]", "portable ...": the clone the loader chose, and
 * whether the explicit AVX-512 kernels run (sf_avx512, kernels/multiversion.h) */
const char *sf_gemm_packed_path(void);
/* File the cblas_sgemm symbol was loaded from (dladdr) and OpenBLAS's core type ("Haswell",
 * "Prescott", ...; "unknown" when the BLAS is not OpenBLAS). */
const char *sf_blas_library(void);
const char *sf_blas_corename(void);

/* Number of threads OpenBLAS uses for one call (no-op when the BLAS is not OpenBLAS).
 * Calls made from inside an OpenMP parallel region run single-threaded regardless. */
void sf_set_blas_threads(int n);

#endif
