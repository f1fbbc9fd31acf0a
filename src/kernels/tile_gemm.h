/* Register-blocked products of small tiles, for the attention kernels' inner loops:
 *
 *   C[m x n] = A[m x k] B[k x n]      (accumulate 0)
 *   C[m x n] += A[m x k] B[k x n]     (accumulate 1)
 *
 * A is read through two strides, element (r, p) at A[r * a_rs + p * a_ks], so a tile or its
 * transpose is used in place; B's row p is contiguous at B + p * b_ks; C's row r at C + r * c_rs.
 * Blocks of 6 rows x 16 columns (12 accumulators of 8 lanes: per k, 2 loads of B, 6 broadcasts of
 * A, 12 FMAs; with 2 B vectors and a broadcast that is 15 of the 16 AVX2 registers, and 12
 * independent FMA chains cover two FMA pipes of latency 4-5 with room to spare -- 4 x 16, 8 chains,
 * left none), then 6 x 8; the last m % 6 rows in blocks of 4, 2 and 1 row; columns past the last
 * multiple of 8 by a scalar loop.
 * Every element is summed over p = 0..k-1 in order in all paths, so results do not depend on the
 * blocking. The functions are static and always inlined, so they are compiled into the caller's
 * target clones (AVX2 + FMA there). GCC vector extensions; plain loops for other compilers.
 * sf_tile_gemm_w(16, ...) first takes rows in blocks of 8 (16 accumulators of 16 lanes: AVX-512
 * has 32 registers; the attention tiles' m = 32 or 64 then leave no row tail, whose 2- and 4-row
 * blocks have too few FMA chains to cover the latency), then 6, 4, 2, 1, and columns in 32- and
 * 16-wide blocks of 16-lane vectors: for callers compiled for x86-64-v4 (AVX-512) only; the same
 * sums in the same order, so the same bits as sf_tile_gemm. */
#ifndef SF_KERNELS_TILE_GEMM_H
#define SF_KERNELS_TILE_GEMM_H

#include <string.h>

#if defined(__GNUC__)
#pragma GCC diagnostic ignored "-Wpsabi"
typedef float sf_tg8 __attribute__((vector_size(32)));

#define SF_TG_INLINE static inline __attribute__((always_inline))
/* B's vectors of one k step in registers (16-lane blocks, x86-64-v4 callers only): without this
 * GCC folded the load of B into each row's FMA and broadcast A into a register instead, two
 * loads per FMA (the same sums either way) */
#define SF_TG_IN_REGISTER(x) __asm__("" : "+v"(x))

SF_TG_INLINE sf_tg8 sf_tg_load(const float *p) {
    sf_tg8 x;
    memcpy(&x, p, sizeof x);
    return x;
}

/* One block of MR rows (1, 2, 4, 6, or 8 in 16-lane callers) x 8*NV columns (NV 1 or 2). */
SF_TG_INLINE void sf_tg_block(const int MR, const int NV, int k, const float *A, long a_rs,
                              long a_ks, const float *B, long b_ks, float *C, long c_rs,
                              int accumulate) {
    sf_tg8 c[8][2]; /* MR 8: sf_tile_gemm_w(16, ...) callers only */
#pragma GCC unroll 8
    for (int r = 0; r < MR; r++)
#pragma GCC unroll 2
        for (int v = 0; v < NV; v++) c[r][v] = (sf_tg8){0};
    for (int p = 0; p < k; p++) {
        const float *b = B + p * b_ks;
        sf_tg8 bv[2];
#pragma GCC unroll 2
        for (int v = 0; v < NV; v++) bv[v] = sf_tg_load(b + 8 * v);
#pragma GCC unroll 8
        for (int r = 0; r < MR; r++) {
            const float a = A[r * a_rs + p * a_ks]; /* scalar * vector: one broadcast */
#pragma GCC unroll 2
            for (int v = 0; v < NV; v++) c[r][v] += a * bv[v];
        }
    }
#pragma GCC unroll 8
    for (int r = 0; r < MR; r++)
#pragma GCC unroll 2
        for (int v = 0; v < NV; v++) {
            float *dst = C + r * c_rs + 8 * v;
            sf_tg8 x = c[r][v];
            if (accumulate) x += sf_tg_load(dst);
            memcpy(dst, &x, sizeof x);
        }
}

typedef float sf_tg16 __attribute__((vector_size(64)));

SF_TG_INLINE sf_tg16 sf_tg_load16(const float *p) {
    sf_tg16 x;
    memcpy(&x, p, sizeof x);
    return x;
}

/* sf_tg_block with 16-lane vectors: MR (up to 8) rows x 16*NV columns (NV up to 4, MR * NV up to
 * 24 accumulators; kernels/gemm_rows.c takes 6 x 4). */
SF_TG_INLINE void sf_tg_block16(const int MR, const int NV, int k, const float *A, long a_rs,
                                long a_ks, const float *B, long b_ks, float *C, long c_rs,
                                int accumulate) {
    sf_tg16 c[8][4];
#pragma GCC unroll 8
    for (int r = 0; r < MR; r++)
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++) c[r][v] = (sf_tg16){0};
    for (int p = 0; p < k; p++) {
        const float *b = B + p * b_ks;
        sf_tg16 bv[4];
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++) {
            bv[v] = sf_tg_load16(b + 16 * v);
            SF_TG_IN_REGISTER(bv[v]);
        }
#pragma GCC unroll 8
        for (int r = 0; r < MR; r++) {
            const float a = A[r * a_rs + p * a_ks];
#pragma GCC unroll 4
            for (int v = 0; v < NV; v++) c[r][v] += a * bv[v];
        }
    }
#pragma GCC unroll 8
    for (int r = 0; r < MR; r++)
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++) {
            float *dst = C + r * c_rs + 16 * v;
            sf_tg16 x = c[r][v];
            if (accumulate) x += sf_tg_load16(dst);
            memcpy(dst, &x, sizeof x);
        }
}

/* W (a constant after inlining): 8, or 16 in x86-64-v4 callers. */
SF_TG_INLINE void sf_tg_rows_w(const int W, const int MR, int n, int k, const float *A, long a_rs,
                               long a_ks, const float *B, long b_ks, float *C, long c_rs,
                               int accumulate) {
    int j = 0;
    if (W == 16) {
        for (; j + 32 <= n; j += 32)
            sf_tg_block16(MR, 2, k, A, a_rs, a_ks, B + j, b_ks, C + j, c_rs, accumulate);
        for (; j + 16 <= n; j += 16)
            sf_tg_block16(MR, 1, k, A, a_rs, a_ks, B + j, b_ks, C + j, c_rs, accumulate);
    }
    for (; j + 16 <= n; j += 16) sf_tg_block(MR, 2, k, A, a_rs, a_ks, B + j, b_ks, C + j, c_rs, accumulate);
    for (; j + 8 <= n; j += 8) sf_tg_block(MR, 1, k, A, a_rs, a_ks, B + j, b_ks, C + j, c_rs, accumulate);
    for (; j < n; j++)
        for (int r = 0; r < MR; r++) {
            float s = 0.0f;
            for (int p = 0; p < k; p++) s += A[r * a_rs + p * a_ks] * B[p * b_ks + j];
            C[r * c_rs + j] = accumulate ? C[r * c_rs + j] + s : s;
        }
}

SF_TG_INLINE void sf_tile_gemm_w(const int W, int m, int n, int k, const float *A, long a_rs,
                                 long a_ks, const float *B, long b_ks, float *C, long c_rs,
                                 int accumulate) {
    int i = 0;
    if (W == 16) /* 8 rows x 32 columns: 16 accumulators of 16 lanes, no row tail for m % 8 == 0 */
        for (; i + 8 <= m; i += 8)
            sf_tg_rows_w(W, 8, n, k, A + i * a_rs, a_rs, a_ks, B, b_ks, C + i * c_rs, c_rs, accumulate);
    for (; i + 6 <= m; i += 6)
        sf_tg_rows_w(W, 6, n, k, A + i * a_rs, a_rs, a_ks, B, b_ks, C + i * c_rs, c_rs, accumulate);
    if (i + 4 <= m) {
        sf_tg_rows_w(W, 4, n, k, A + i * a_rs, a_rs, a_ks, B, b_ks, C + i * c_rs, c_rs, accumulate);
        i += 4;
    }
    if (i + 2 <= m) {
        sf_tg_rows_w(W, 2, n, k, A + i * a_rs, a_rs, a_ks, B, b_ks, C + i * c_rs, c_rs, accumulate);
        i += 2;
    }
    for (; i < m; i++)
        sf_tg_rows_w(W, 1, n, k, A + i * a_rs, a_rs, a_ks, B, b_ks, C + i * c_rs, c_rs, accumulate);
}

SF_TG_INLINE void sf_tile_gemm(int m, int n, int k, const float *A, long a_rs, long a_ks,
                               const float *B, long b_ks, float *C, long c_rs, int accumulate) {
    sf_tile_gemm_w(8, m, n, k, A, a_rs, a_ks, B, b_ks, C, c_rs, accumulate);
}
#else
#define sf_tile_gemm_w(W, ...) sf_tile_gemm(__VA_ARGS__)
static inline void sf_tile_gemm(int m, int n, int k, const float *A, long a_rs, long a_ks,
                                const float *B, long b_ks, float *C, long c_rs, int accumulate) {
    for (int r = 0; r < m; r++)
        for (int j = 0; j < n; j++) {
            float s = 0.0f;
            for (int p = 0; p < k; p++) s += A[r * a_rs + p * a_ks] * B[p * b_ks + j];
            C[r * c_rs + j] = accumulate ? C[r * c_rs + j] + s : s;
        }
}
#endif

#endif
