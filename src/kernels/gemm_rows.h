/* Products with a narrow right-hand side that stays in the L1 cache, for the fused feed-forward
 * blocks (kernels/ffn.c), where every operand is small and the packed GEMM spent much of its time
 * packing and on its short K loops:
 *
 *   C[M,N] = op(A)[M,K] B[K,N] (+ bias[N])   or   C[M,N] += op(A)[M,K] B[K,N]
 *
 * op(A) = A ([M,K], row stride lda) or, transA, A^T with A stored [K,M] (row stride lda); B is
 * row-major [K,N] (row stride ldb). Nothing is packed: the attention tiles' AVX-512 register block
 * (sf_tg_block16, kernels/tile_gemm.h) holds 6 rows x 64 columns of C and broadcasts the elements
 * of A from where they are. Each element of C is one
 * FMA chain over k from 0, then + bias or + C: the order of the packed kernel on one K slice
 * (K <= 256), so for those shapes the same bits as sf_gemm. The kernel runs where sf_avx512() and
 * N is 64 or 128 (sf_gemm_rows_fast: PatchTST's fc1, its input gradient dL/da and dW2);
 * elsewhere sf_gemm does the product. */
#ifndef SF_KERNELS_GEMM_ROWS_H
#define SF_KERNELS_GEMM_ROWS_H

/* bias not NULL: C = op(A) B + bias (accumulate must be 0); accumulate: C += op(A) B. */
void sf_gemm_rows(int transA, int M, int N, int K, const float *A, int lda, const float *B, int ldb,
                  const float *bias, int accumulate, float *C, int ldc);
/* Whether sf_gemm_rows runs its own kernel for an N (else it calls sf_gemm). */
int sf_gemm_rows_fast(int N);

#endif
