#include "kernels/gemm.h"
#include "kernels/multiversion.h"

#include <cblas.h>

#include "core/error.h"
#include "core/profile.h"

#include <dlfcn.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Small problems (M*N*K <= SF_GEMM_SMALL_MNK) skip OpenBLAS and run on the calling thread: for the
 * batch-1 PatchTST shapes per-call overhead, packing and thread hand-off would cost more than the
 * arithmetic. Deterministic (the summation order depends only on the shapes):
 *  - op(B) = W^T with W [N,K] row-major (the Linear forward) and K >= 32: dot products of rows of
 *    A with rows of W, 8-lane partial sums, 2 rows x 4 columns at a time (small_gemm_nt_dot);
 *  - otherwise, K <= SF_GEMM_SMALL_PACKED_KMAX (one K slice of the packed kernel): the packed
 *    kernel without a parallel region (sf_gemm_packed_serial), which sums each element as the
 *    plain panel kernel below does (one FMA chain over k from 0), so the same bits;
 *  - otherwise (K <= SF_GEMM_SMALL_KMAX): op(B) packed into [K][16] column panels on the stack,
 *    4 rows x 16 columns of C in registers, A broadcast (small_gemm_panel). */
#define SF_GEMM_SMALL_MNK (1L << 20)
#define SF_GEMM_SMALL_KMAX 1024
#define SF_GEMM_SMALL_PACKED_KMAX 256
#if defined(__GNUC__)
#define SF_GEMM_HAVE_SMALL 1
#pragma GCC diagnostic ignored "-Wpsabi"
typedef float g8sf __attribute__((vector_size(32)));

static inline __attribute__((always_inline)) void store_c(float *c, float acc, float alpha,
                                                          float beta) {
    *c = beta == 0.0f ? alpha * acc : alpha * acc + beta * *c;
}

/* ((t0 + t4) + (t1 + t5)) + ((t2 + t6) + (t3 + t7)) in vector registers (a round trip through
 * memory stalled on store forwarding); the same additions, so the same bits */
typedef float g4sf __attribute__((vector_size(16)));
static inline __attribute__((always_inline)) float hsum8(g8sf v) {
    const g4sf u =
        __builtin_shufflevector(v, v, 0, 1, 2, 3) + __builtin_shufflevector(v, v, 4, 5, 6, 7);
    const g4sf w = u + __builtin_shufflevector(u, u, 1, 0, 3, 2);
    return w[0] + w[2];
}

/* One element's dot product of a row of A with a row of W: lane l of the 8-lane partial sum
 * takes k = l, l + 8, ..., then hsum8, then this tail k >= K8 (GCC compiles it differently per
 * target; see small_gemm_nt_dot_512). */
static inline __attribute__((always_inline)) float dot_tail(float r, const float *a,
                                                            const float *w, int K8, int K) {
    for (int p = K8; p < K; p++) r += a[p] * w[p];
    return r;
}

/* One element by the 8-lane kernel's order alone (the edges of the blocked loops). */
static inline __attribute__((always_inline)) float dot1(const float *a, const float *w, int K8,
                                                        int K) {
    g8sf s0 = {0}, av, wv;
    for (int p = 0; p < K8; p += 8) {
        memcpy(&av, a + p, sizeof av);
        memcpy(&wv, w + p, sizeof wv), s0 += av * wv;
    }
    return dot_tail(hsum8(s0), a, w, K8, K);
}

/* C = alpha * A W^T + beta * C, A [M,K] (lda), W [N,K] (ldb). Blocks of 2 rows x 4 columns (8
 * independent FMA chains: the FMA latency times two pipes; 16 spilled the AVX2 clone's
 * registers), then 2 x 1 and 1 x 1 at the edges; every element gets the same operations in the
 * same order in every block shape. */
SF_MULTIVERSION static void small_gemm_nt_dot(int M, int N, int K, float alpha,
                                              const float *restrict A, int lda,
                                              const float *restrict W, int ldb, float beta,
                                              float *restrict C, int ldc) {
    const int K8 = K / 8 * 8;
    int i = 0;
    for (; i + 2 <= M; i += 2) {
        const float *restrict a0 = A + (long)i * lda, *restrict a1 = a0 + lda;
        int j = 0;
        for (; j + 4 <= N; j += 4) {
            const float *w0 = W + (long)j * ldb, *w1 = w0 + ldb, *w2 = w1 + ldb, *w3 = w2 + ldb;
            g8sf s00 = {0}, s01 = {0}, s02 = {0}, s03 = {0}, s10 = {0}, s11 = {0}, s12 = {0},
                 s13 = {0}, av0, av1, wv;
            for (int p = 0; p < K8; p += 8) {
                memcpy(&av0, a0 + p, sizeof wv), memcpy(&av1, a1 + p, sizeof wv);
                memcpy(&wv, w0 + p, sizeof wv), s00 += av0 * wv, s10 += av1 * wv;
                memcpy(&wv, w1 + p, sizeof wv), s01 += av0 * wv, s11 += av1 * wv;
                memcpy(&wv, w2 + p, sizeof wv), s02 += av0 * wv, s12 += av1 * wv;
                memcpy(&wv, w3 + p, sizeof wv), s03 += av0 * wv, s13 += av1 * wv;
            }
            float *c = C + (long)i * ldc + j;
            store_c(c, dot_tail(hsum8(s00), a0, w0, K8, K), alpha, beta);
            store_c(c + 1, dot_tail(hsum8(s01), a0, w1, K8, K), alpha, beta);
            store_c(c + 2, dot_tail(hsum8(s02), a0, w2, K8, K), alpha, beta);
            store_c(c + 3, dot_tail(hsum8(s03), a0, w3, K8, K), alpha, beta);
            c += ldc;
            store_c(c, dot_tail(hsum8(s10), a1, w0, K8, K), alpha, beta);
            store_c(c + 1, dot_tail(hsum8(s11), a1, w1, K8, K), alpha, beta);
            store_c(c + 2, dot_tail(hsum8(s12), a1, w2, K8, K), alpha, beta);
            store_c(c + 3, dot_tail(hsum8(s13), a1, w3, K8, K), alpha, beta);
        }
        for (; j < N; j++) {
            const float *w0 = W + (long)j * ldb;
            g8sf s0 = {0}, s1 = {0}, av0, av1, wv;
            for (int p = 0; p < K8; p += 8) {
                memcpy(&av0, a0 + p, sizeof wv), memcpy(&av1, a1 + p, sizeof wv);
                memcpy(&wv, w0 + p, sizeof wv), s0 += av0 * wv, s1 += av1 * wv;
            }
            store_c(C + (long)i * ldc + j, dot_tail(hsum8(s0), a0, w0, K8, K), alpha, beta);
            store_c(C + (long)(i + 1) * ldc + j, dot_tail(hsum8(s1), a1, w0, K8, K), alpha, beta);
        }
    }
    for (; i < M; i++)
        for (int j = 0; j < N; j++)
            store_c(C + (long)i * ldc + j, dot1(A + (long)i * lda, W + (long)j * ldb, K8, K), alpha,
                    beta);
}

#if SF_HAVE_CLONES
/* The dot kernel on x86-64-v4: one 16-lane vector holds the 8-lane partial sums of two adjacent
 * columns (lanes 0-7 column j, 8-15 column j + 1), the row chunk of A broadcast to both halves,
 * so each FMA does two elements' work; each half gets exactly the operations of the 8-lane kernel
 * (the same lane partials, the same hsum tree), so the same bits (test_gemm compares). Blocks of
 * 4 rows x 8 columns (16 accumulators), then 2 x 8, 2 x 2, and an odd last column or row by the
 * 8-lane code. Called for K a multiple of 8 only: GCC compiles the tail loop of dot_tail
 * (k >= K/8*8) differently per target (in the x86-64-v3 clone partly as vector products added in
 * order, not FMAs), so a tail here would not give the bits of the AVX2 kernel. */
typedef float g16sf __attribute__((vector_size(64)));

static inline __attribute__((always_inline)) void hsum8x2(g16sf v, float *lo, float *hi) {
    /* per 8-lane half: (t0 + t4, t1 + t5, t2 + t6, t3 + t7), then pairs, then w0 + w2 */
    const g16sf u = v + __builtin_shufflevector(v, v, 4, 5, 6, 7, 0, 1, 2, 3, 12, 13, 14, 15, 8, 9,
                                                10, 11);
    const g16sf w = u + __builtin_shufflevector(u, u, 1, 0, 3, 2, 5, 4, 7, 6, 9, 8, 11, 10, 13, 12,
                                                15, 14);
    *lo = w[0] + w[2];
    *hi = w[8] + w[10];
}

static inline __attribute__((always_inline)) g16sf pair16(const float *w0, const float *w1) {
    g8sf x, y;
    memcpy(&x, w0, sizeof x);
    memcpy(&y, w1, sizeof y);
    return __builtin_shufflevector(x, y, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
}

static inline __attribute__((always_inline)) g16sf bcast16(const float *a) {
    g8sf x;
    memcpy(&x, a, sizeof x);
    return __builtin_shufflevector(x, x, 0, 1, 2, 3, 4, 5, 6, 7, 0, 1, 2, 3, 4, 5, 6, 7);
}

/* rows a0 (and a1 when two), columns w, w + ldb (a pair): C entries c0[0..1] (and c1[0..1]) */
static inline __attribute__((always_inline)) void dot_store_pair(g16sf s, const float *a,
                                                                 const float *w, long ldb, int K8,
                                                                 int K, float alpha, float beta,
                                                                 float *c) {
    float lo, hi;
    hsum8x2(s, &lo, &hi);
    store_c(c, dot_tail(lo, a, w, K8, K), alpha, beta);
    store_c(c + 1, dot_tail(hi, a, w + ldb, K8, K), alpha, beta);
}

/* R (4 or 2) rows from i x 8 columns from j: R x 4 accumulators of column pairs (zeroed one by
 * one: an = {0} initializer of the array became a rep stos per block) */
static inline __attribute__((always_inline)) void dot_rows8_512(
    const int R, int i, int j, int K8, int K, float alpha, const float *restrict A, int lda,
    const float *restrict W, int ldb, float beta, float *restrict C, int ldc) {
    const float *a0 = A + (long)i * lda, *w = W + (long)j * ldb;
    g16sf s[4][4];
    for (int r = 0; r < R; r++)
        for (int q = 0; q < 4; q++) s[r][q] = (g16sf){0};
    for (int p = 0; p < K8; p += 8) {
        g16sf x[4], y[4];
        for (int r = 0; r < R; r++) x[r] = bcast16(a0 + (long)r * lda + p);
        for (int q = 0; q < 4; q++) y[q] = pair16(w + 2L * q * ldb + p, w + (2L * q + 1) * ldb + p);
        for (int r = 0; r < R; r++)
            for (int q = 0; q < 4; q++) s[r][q] += x[r] * y[q];
    }
    for (int r = 0; r < R; r++)
        for (int q = 0; q < 4; q++)
            dot_store_pair(s[r][q], a0 + (long)r * lda, w + 2L * q * ldb, ldb, K8, K, alpha, beta,
                           C + (long)(i + r) * ldc + j + 2 * q);
}

/* rows [i0, i1), columns from j0 on: 2 rows x 8 columns, 2 x 2, then an odd last column or row
 * by the 8-lane code */
SF_TARGET_V4 static void small_dot_512_rows(int i0, int i1, int j0, int N, int K, float alpha,
                                            const float *restrict A, int lda,
                                            const float *restrict W, int ldb, float beta,
                                            float *restrict C, int ldc) {
    const int K8 = K / 8 * 8, N2 = N / 2 * 2;
    int i = i0;
    for (; i + 2 <= i1; i += 2) {
        const float *restrict a0 = A + (long)i * lda, *restrict a1 = a0 + lda;
        float *c0 = C + (long)i * ldc, *c1 = c0 + ldc;
        int j = j0;
        for (; j + 8 <= N; j += 8) dot_rows8_512(2, i, j, K8, K, alpha, A, lda, W, ldb, beta, C, ldc);
        for (; j < N2; j += 2) {
            const float *w = W + (long)j * ldb;
            g16sf s0 = {0}, s1 = {0};
            for (int p = 0; p < K8; p += 8) {
                const g16sf y = pair16(w + p, w + ldb + p);
                s0 += bcast16(a0 + p) * y, s1 += bcast16(a1 + p) * y;
            }
            dot_store_pair(s0, a0, w, ldb, K8, K, alpha, beta, c0 + j);
            dot_store_pair(s1, a1, w, ldb, K8, K, alpha, beta, c1 + j);
        }
        if (j < N) {
            const float *w0 = W + (long)j * ldb;
            store_c(c0 + j, dot1(a0, w0, K8, K), alpha, beta);
            store_c(c1 + j, dot1(a1, w0, K8, K), alpha, beta);
        }
    }
    for (; i < i1; i++) {
        const float *restrict a = A + (long)i * lda;
        float *c = C + (long)i * ldc;
        int j = j0;
        for (; j < N2; j += 2) {
            const float *w = W + (long)j * ldb;
            g16sf s0 = {0};
            for (int p = 0; p < K8; p += 8) s0 += bcast16(a + p) * pair16(w + p, w + ldb + p);
            dot_store_pair(s0, a, w, ldb, K8, K, alpha, beta, c + j);
        }
        if (j < N) store_c(c + j, dot1(a, W + (long)j * ldb, K8, K), alpha, beta);
    }
}

/* The same bits with the columns in the lanes (alpha 1, beta 0 or 1, K a multiple of 8, 16
 * columns at a time): the dot kernels keep, per element of C, eight lane partials over k = l,
 * l + 8, ... and add them across the lanes, ((0+4)+(1+5))+((2+6)+(3+7)). Here partial l of 16
 * adjacent columns is one vector s[l] (W's 16 rows transposed into wt[k][16] once per call), so
 * a k step is one vector load of wt and one broadcast multiply-add per row of A, and the eight
 * partials are added by that tree across vectors: seven vector adds for 16 elements, where the
 * dot kernel spent a shuffle tree per pair of elements (fc2 of batch-1 PatchTST, K = 128, ran at
 * about a fifth of the FMA peak). Each partial gets the same multiply-adds in the same order,
 * and alpha * acc + beta * c is acc (+ c) exactly for these alpha and beta: the same bits as
 * small_gemm_nt_dot (test_gemm's small_path_order checks both against the written-out order). */
static inline __attribute__((always_inline)) void dot_cols_rows(const int R,
                                                                const float *restrict a, int lda,
                                                                const float *restrict wt, int K,
                                                                float beta, float *restrict c,
                                                                int ldc) {
    g16sf s[3][8];
    for (int r = 0; r < R; r++)
        for (int l = 0; l < 8; l++) s[r][l] = (g16sf){0};
    for (int p = 0; p < K; p += 8)
        for (int l = 0; l < 8; l++) {
            g16sf w;
            memcpy(&w, wt + (long)(p + l) * 16, sizeof w);
            /* w in a register: without this GCC loaded it again as the memory operand of each
             * row's FMA and broadcast a into a register, two loads per FMA */
            __asm__("" : "+v"(w));
            for (int r = 0; r < R; r++) s[r][l] += a[(long)r * lda + p + l] * w;
        }
    for (int r = 0; r < R; r++) {
        g16sf t = ((s[r][0] + s[r][4]) + (s[r][1] + s[r][5])) +
                  ((s[r][2] + s[r][6]) + (s[r][3] + s[r][7]));
        float *cr = c + (long)r * ldc;
        if (beta != 0.0f) {
            g16sf old;
            memcpy(&old, cr, sizeof old);
            t += old;
        }
        memcpy(cr, &t, sizeof t);
    }
}

/* Columns [0, N / 16 * 16) of C = A W^T (+ C): see dot_cols_rows. */
SF_TARGET_V4 static void small_dot_cols_512(int M, int N, int K, const float *restrict A, int lda,
                                            const float *restrict W, int ldb, float beta,
                                            float *restrict C, int ldc) {
    float wt[SF_GEMM_SMALL_KMAX * 16] __attribute__((aligned(64)));
    for (int j0 = 0; j0 + 16 <= N; j0 += 16) {
        for (int jj = 0; jj < 16; jj++) {
            const float *w = W + (long)(j0 + jj) * ldb;
            for (int p = 0; p < K; p++) wt[p * 16 + jj] = w[p];
        }
        int i = 0;
        for (; i + 3 <= M; i += 3)
            dot_cols_rows(3, A + (long)i * lda, lda, wt, K, beta, C + (long)i * ldc + j0, ldc);
        if (i + 2 <= M) {
            dot_cols_rows(2, A + (long)i * lda, lda, wt, K, beta, C + (long)i * ldc + j0, ldc);
            i += 2;
        }
        if (i < M) dot_cols_rows(1, A + (long)i * lda, lda, wt, K, beta, C + (long)i * ldc + j0, ldc);
    }
}

SF_TARGET_V4 static void small_gemm_nt_dot_512(int M, int N, int K, float alpha,
                                               const float *restrict A, int lda,
                                               const float *restrict W, int ldb, float beta,
                                               float *restrict C, int ldc) {
    const int K8 = K / 8 * 8;
    int i = 0;
    /* 4 rows x 8 columns: 16 accumulators of AVX-512's 32 registers, 4 + 4 operand loads per 16
     * FMAs */
    for (; i + 4 <= M && N >= 8; i += 4) {
        int j = 0;
        for (; j + 8 <= N; j += 8) dot_rows8_512(4, i, j, K8, K, alpha, A, lda, W, ldb, beta, C, ldc);
        if (j < N) /* the last < 8 columns of these rows by the 2-row code */
            small_dot_512_rows(i, i + 4, j, N, K, alpha, A, lda, W, ldb, beta, C, ldc);
    }
    small_dot_512_rows(i, M, 0, N, K, alpha, A, lda, W, ldb, beta, C, ldc);
}
#endif

/* General small case: op(B) packed per 16-column panel, 4x16 register block. */
SF_MULTIVERSION static void small_gemm_panel(int transA, int transB, int M, int N, int K,
                                             float alpha, const float *restrict A, int lda,
                                             const float *restrict B, int ldb, float beta,
                                             float *restrict C, int ldc) {
    float bp[SF_GEMM_SMALL_KMAX * 16];
    const long sai = transA ? 1 : lda, sak = transA ? lda : 1; /* op(A)[i][k] = A[i*sai + k*sak] */
    for (int j0 = 0; j0 < N; j0 += 16) {
        const int nj = N - j0 < 16 ? N - j0 : 16;
        for (int p = 0; p < K; p++) {
            float *dst = bp + (long)p * 16;
            for (int j = 0; j < nj; j++)
                dst[j] = transB ? B[(long)(j0 + j) * ldb + p] : B[(long)p * ldb + j0 + j];
            for (int j = nj; j < 16; j++) dst[j] = 0.0f;
        }
        int i0 = 0;
        for (; i0 + 4 <= M; i0 += 4) {
            /* named accumulators so they stay in registers */
            g8sf c00 = {0}, c01 = {0}, c10 = {0}, c11 = {0}, c20 = {0}, c21 = {0}, c30 = {0},
                 c31 = {0};
            const float *a = A + (long)i0 * sai;
            for (int p = 0; p < K; p++) {
                g8sf b0, b1;
                memcpy(&b0, bp + (long)p * 16, sizeof b0);
                memcpy(&b1, bp + (long)p * 16 + 8, sizeof b1);
                const float *ap = a + p * sak;
                const float x0 = ap[0], x1 = ap[sai], x2 = ap[2 * sai], x3 = ap[3 * sai];
                c00 += x0 * b0, c01 += x0 * b1;
                c10 += x1 * b0, c11 += x1 * b1;
                c20 += x2 * b0, c21 += x2 * b1;
                c30 += x3 * b0, c31 += x3 * b1;
            }
            const g8sf cs[8] = {c00, c01, c10, c11, c20, c21, c30, c31};
            for (int r = 0; r < 4; r++) {
                float t[16];
                memcpy(t, &cs[2 * r], sizeof(g8sf));
                memcpy(t + 8, &cs[2 * r + 1], sizeof(g8sf));
                float *c = C + (long)(i0 + r) * ldc + j0;
                for (int j = 0; j < nj; j++) store_c(c + j, t[j], alpha, beta);
            }
        }
        for (; i0 < M; i0++) {
            g8sf c00 = {0}, c01 = {0};
            const float *a = A + (long)i0 * sai;
            for (int p = 0; p < K; p++) {
                g8sf b0, b1;
                memcpy(&b0, bp + (long)p * 16, sizeof b0);
                memcpy(&b1, bp + (long)p * 16 + 8, sizeof b1);
                const float x0 = a[p * sak];
                c00 += x0 * b0, c01 += x0 * b1;
            }
            float t[16];
            memcpy(t, &c00, sizeof(g8sf));
            memcpy(t + 8, &c01, sizeof(g8sf));
            float *c = C + (long)i0 * ldc + j0;
            for (int j = 0; j < nj; j++) store_c(c + j, t[j], alpha, beta);
        }
    }
}
#else
#define SF_GEMM_HAVE_SMALL 0
#endif

static unsigned paths_used;

static void note_path(unsigned bit) {
    /* read first: no shared-cache-line writes once the bit is set */
    if (!(__atomic_load_n(&paths_used, __ATOMIC_RELAXED) & bit))
        __atomic_fetch_or(&paths_used, bit, __ATOMIC_RELAXED);
}

unsigned sf_gemm_paths_used(void) { return __atomic_load_n(&paths_used, __ATOMIC_RELAXED); }
void sf_gemm_paths_reset(void) { __atomic_store_n(&paths_used, 0u, __ATOMIC_RELAXED); }

/* The packed kernel where it has its SIMD clone set (GCC, x86-64 Linux), unless SF_GEMM=openblas
 * asks for the BLAS. Read once: 1 packed, 0 BLAS. */
static int use_packed(void) {
    static int choice = -1;
    int c = __atomic_load_n(&choice, __ATOMIC_RELAXED);
    if (c < 0) {
        const char *e = getenv("SF_GEMM");
#if SF_GEMM_HAVE_SMALL && defined(__x86_64__) && !defined(SF_NO_MULTIVERSION)
        c = !(e && !strcmp(e, "openblas"));
#else
        c = e && !strcmp(e, "packed");
#endif
        __atomic_store_n(&choice, c, __ATOMIC_RELAXED);
    }
    return c;
}

const char *sf_blas_library(void) {
    Dl_info info;
    if (dladdr((const void *)(void (*)(void))cblas_sgemm, &info) && info.dli_fname)
        return info.dli_fname;
    return "unknown";
}

const char *sf_blas_corename(void) {
#if defined(OPENBLAS_VERSION)
    return openblas_get_corename();
#else
    return "unknown";
#endif
}

static void check_args(int transA, int transB, int M, int N, int K, int lda, int ldb, int ldc) {
    SF_ASSERT(M >= 0 && N >= 0 && K >= 0);
    SF_ASSERT(lda >= (transA ? M : K) && lda >= 1);
    SF_ASSERT(ldb >= (transB ? K : N) && ldb >= 1);
    SF_ASSERT(ldc >= N && ldc >= 1);
}

/* The path a problem with K > 0 takes: small problems to the two kernels above, the rest to the
 * packed kernel (or to cblas_sgemm where it has no clones, or with SF_GEMM=openblas). */
static unsigned choose_path(int transA, int transB, int M, int N, int K) {
#if SF_GEMM_HAVE_SMALL
    if ((long)M * N * K <= SF_GEMM_SMALL_MNK) {
        if (!transA && transB && K >= 32) return SF_GEMM_PATH_SMALL_DOT;
        if (K <= SF_GEMM_SMALL_KMAX) return SF_GEMM_PATH_SMALL_PANEL;
    }
#else
    (void)transA, (void)transB, (void)M, (void)N, (void)K;
#endif
    return use_packed() ? SF_GEMM_PATH_PACKED : SF_GEMM_PATH_OPENBLAS;
}

int sf_gemm_row_class(int transB, int M, int N, int K) {
    if (M <= 0 || N <= 0 || K <= 0) return 0;
    const unsigned path = choose_path(0, transB, M, N, K);
#if SF_GEMM_HAVE_SMALL
    if (path == SF_GEMM_PATH_SMALL_DOT) return 1; /* every variant: the same order per element */
    if (path == SF_GEMM_PATH_SMALL_PANEL && K > SF_GEMM_SMALL_PACKED_KMAX) return 2;
    /* the rest of the small panel path is the packed kernel on the calling thread */
#endif
    if (path == SF_GEMM_PATH_OPENBLAS) return -1;
    return 16 + sf_gemm_packed_ksplit(M, N, K); /* per element, only a K split changes the order */
}

/* bias (not NULL): C = alpha * op(A) op(B) + bias in every row; the packed kernel adds it in its
 * store, the other paths get it copied into C and beta = 1 (the same bits either way). */
static void gemm_dispatch(int transA, int transB, int M, int N, int K, float alpha,
                          const float *A, int lda, const float *B, int ldb, float beta,
                          const float *bias, float *C, int ldc) {
    check_args(transA, transB, M, N, K, lda, ldb, ldc);
    if (M == 0 || N == 0) return;
    const unsigned path = K > 0 ? choose_path(transA, transB, M, N, K) : 0;
#if SF_GEMM_HAVE_SMALL
    if (path == SF_GEMM_PATH_SMALL_PANEL && K <= SF_GEMM_SMALL_PACKED_KMAX) {
        note_path(path);
        sf_gemm_packed_serial(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, bias, C, ldc);
        return;
    }
#endif
    if (bias) {
        if (path == SF_GEMM_PATH_PACKED) {
            note_path(path);
            sf_gemm_packed_bias(transA, transB, M, N, K, alpha, A, lda, B, ldb, bias, C, ldc);
            return;
        }
        for (int i = 0; i < M; i++) memcpy(C + (long)i * ldc, bias, (size_t)N * sizeof(float));
        beta = 1.0f;
    }
    if (K == 0) {
        /* Some BLAS builds skip the beta scaling when K == 0; do it here. */
        for (int i = 0; i < M; i++)
            for (int j = 0; j < N; j++)
                C[(long)i * ldc + j] = beta == 0.0f ? 0.0f : beta * C[(long)i * ldc + j];
        return;
    }
    note_path(path);
    switch (path) {
#if SF_GEMM_HAVE_SMALL
    case SF_GEMM_PATH_SMALL_DOT:
#if SF_HAVE_CLONES
        if (sf_avx512() && K % 8 == 0) { /* see small_gemm_nt_dot_512 on the tail */
            /* 16 columns at a time in the lanes where there are rows enough to pay for
             * transposing them (small_dot_cols_512), the rest by the dot kernel: the same bits */
            const int N16 = M >= 16 && alpha == 1.0f && (beta == 0.0f || beta == 1.0f) &&
                                    K <= SF_GEMM_SMALL_KMAX
                                ? N / 16 * 16
                                : 0;
            if (N16) small_dot_cols_512(M, N16, K, A, lda, B, ldb, beta, C, ldc);
            if (N16 < N)
                small_gemm_nt_dot_512(M, N - N16, K, alpha, A, lda, B + (long)N16 * ldb, ldb,
                                      beta, C + N16, ldc);
            return;
        }
#endif
        small_gemm_nt_dot(M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    case SF_GEMM_PATH_SMALL_PANEL:
        small_gemm_panel(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
#endif
    case SF_GEMM_PATH_PACKED:
        sf_gemm_packed(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    default:
        cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans,
                    transB ? CblasTrans : CblasNoTrans, M, N, K, alpha, A, lda, B, ldb, beta, C,
                    ldc);
    }
}

void sf_gemm_blas(int transA, int transB, int M, int N, int K, float alpha, const float *A,
                  int lda, const float *B, int ldb, float beta, float *C, int ldc) {
    check_args(transA, transB, M, N, K, lda, ldb, ldc);
    if (M == 0 || N == 0) return;
    if (K == 0) {
        for (int i = 0; i < M; i++)
            for (int j = 0; j < N; j++)
                C[(long)i * ldc + j] = beta == 0.0f ? 0.0f : beta * C[(long)i * ldc + j];
        return;
    }
    cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans,
                transB ? CblasTrans : CblasNoTrans, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

void sf_gemm(int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda,
             const float *B, int ldb, float beta, float *C, int ldc) {
    SF_PROF(SF_PROF_GEMM,
            gemm_dispatch(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, NULL, C, ldc));
}

void sf_gemm_bias(int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda,
                  const float *B, int ldb, const float *bias, float *C, int ldc) {
    SF_ASSERT(bias != NULL);
    SF_PROF(SF_PROF_GEMM,
            gemm_dispatch(transA, transB, M, N, K, alpha, A, lda, B, ldb, 1.0f, bias, C, ldc));
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

static inline __attribute__((always_inline)) void add_col_sums_d(float *restrict acc,
                                                                 const float *restrict m,
                                                                 long rows, const int cols) {
    for (long i = 0; i < rows; i++)
        for (int j = 0; j < cols; j++) acc[j] += m[i * cols + j];
}
/* cols == 16 (PatchTST's width) gets its own copy with the width a constant */
SF_MULTIVERSION_512_EXACT void sf_add_col_sums(float *acc, const float *m, long rows, int cols) {
    if (cols == 16)
        add_col_sums_d(acc, m, rows, 16);
    else
        add_col_sums_d(acc, m, rows, cols);
}
