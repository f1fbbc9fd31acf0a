/* seqformer's own cache-blocked sgemm (issue #11): the same semantics as sf_gemm (gemm.h), so
 * that speed depends neither on which libopenblas the system selects nor on OpenBLAS
 * recognising the CPU.
 *
 * Classic three-level blocking: C is cut into tiles of SF_PK_MC x SF_PK_NC; for each tile and
 * each SF_PK_KC slice of K the tile's op(A) rows are packed into 6-row micro-panels and its op(B)
 * columns into 16-column micro-panels (zero-padded at the edges), and a 6x16 register-blocked
 * micro-kernel (12 accumulators of 8 lanes, one FMA per lane and k) walks them. The tiles are
 * independent, so OpenMP threads take whole tiles and pack their own operands: no barrier inside
 * a call, and every element of C is summed in the same order whatever the thread count (results
 * are bit-identical across thread counts). The pack buffers are per thread and static: no
 * allocation per call.
 *
 * The micro-kernel is compiled twice (target_clones): x86-64-v3 (AVX2 + FMA) and the portable
 * default; the loader picks one from cpuid. No AVX-512 clone is built: none could be tested on
 * the development machine. */
#include "kernels/gemm.h"

#include <omp.h>
#include <string.h>

#include "core/error.h"

#define SF_PK_MR 6
#define SF_PK_NR 16
#define SF_PK_MC 96  /* 16 micro-panels of A: 96 KiB at KC = 256, stays in L2 */
#define SF_PK_NC 256 /* 16 micro-panels of B: 256 KiB at KC = 256 */
#define SF_PK_KC 256

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) && \
    !defined(SF_NO_MULTIVERSION)
#define SF_PK_MULTIVERSION                                                                      \
    __attribute__((target_clones("arch=x86-64-v3", "default"), optimize("fp-contract=fast")))
#define SF_PK_HAVE_CLONES 1
#else
#define SF_PK_MULTIVERSION
#define SF_PK_HAVE_CLONES 0
#endif

#pragma GCC diagnostic ignored "-Wpsabi"
typedef float pk8 __attribute__((vector_size(32)));

static _Thread_local float pack_a[SF_PK_MC * SF_PK_KC] __attribute__((aligned(64)));
static _Thread_local float pack_b[SF_PK_NC * SF_PK_KC] __attribute__((aligned(64)));

/* op(A) rows i0..i0+mc-1, k p0..p0+kc-1 -> micro-panels [mc/6][kc][6] (rows past mc are 0). */
static void pack_a_block(int transA, const float *A, int lda, int i0, int mc, int p0, int kc,
                         float *dst) {
    for (int ir = 0; ir < mc; ir += SF_PK_MR) {
        const int mr = mc - ir < SF_PK_MR ? mc - ir : SF_PK_MR;
        float *d = dst + (long)ir * kc;
        if (!transA) { /* A [M,K]: row i is contiguous in k */
            for (int r = 0; r < mr; r++) {
                const float *a = A + (long)(i0 + ir + r) * lda + p0;
                for (int p = 0; p < kc; p++) d[p * SF_PK_MR + r] = a[p];
            }
        } else { /* A [K,M]: for a given k the rows are contiguous */
            for (int p = 0; p < kc; p++) {
                const float *a = A + (long)(p0 + p) * lda + i0 + ir;
                for (int r = 0; r < mr; r++) d[p * SF_PK_MR + r] = a[r];
            }
        }
        for (int r = mr; r < SF_PK_MR; r++)
            for (int p = 0; p < kc; p++) d[p * SF_PK_MR + r] = 0.0f;
    }
}

/* op(B) k p0.., columns j0..j0+nc-1 -> micro-panels [nc/16][kc][16] (columns past nc are 0). */
static void pack_b_block(int transB, const float *B, int ldb, int j0, int nc, int p0, int kc,
                         float *dst) {
    for (int jr = 0; jr < nc; jr += SF_PK_NR) {
        const int nr = nc - jr < SF_PK_NR ? nc - jr : SF_PK_NR;
        float *d = dst + (long)jr * kc;
        if (!transB) { /* B [K,N]: for a given k the columns are contiguous */
            for (int p = 0; p < kc; p++) {
                const float *b = B + (long)(p0 + p) * ldb + j0 + jr;
                float *dp = d + p * SF_PK_NR;
                if (nr == SF_PK_NR) {
                    memcpy(dp, b, SF_PK_NR * sizeof(float));
                } else {
                    for (int j = 0; j < nr; j++) dp[j] = b[j];
                    for (int j = nr; j < SF_PK_NR; j++) dp[j] = 0.0f;
                }
            }
        } else { /* B [N,K]: column j is contiguous in k */
            for (int j = 0; j < nr; j++) {
                const float *b = B + (long)(j0 + jr + j) * ldb + p0;
                for (int p = 0; p < kc; p++) d[p * SF_PK_NR + j] = b[p];
            }
            for (int j = nr; j < SF_PK_NR; j++)
                for (int p = 0; p < kc; p++) d[p * SF_PK_NR + j] = 0.0f;
        }
    }
}

/* The 6x16 micro-kernel: acc = sum_p a[p][0..5] (x) b[p][0..15], then
 * C[0..mr)[0..nr) = alpha * acc + beta * C (beta == 0: C not read). */
SF_PK_MULTIVERSION static void micro_6x16(int kc, const float *restrict a, const float *restrict b,
                                          float alpha, float beta, float *restrict C, int ldc,
                                          int mr, int nr) {
    pk8 c00 = {0}, c01 = {0}, c10 = {0}, c11 = {0}, c20 = {0}, c21 = {0};
    pk8 c30 = {0}, c31 = {0}, c40 = {0}, c41 = {0}, c50 = {0}, c51 = {0};
    for (int p = 0; p < kc; p++) {
        pk8 b0, b1;
        memcpy(&b0, b, sizeof b0);
        memcpy(&b1, b + 8, sizeof b1);
        const float a0 = a[0], a1 = a[1], a2 = a[2], a3 = a[3], a4 = a[4], a5 = a[5];
        c00 += a0 * b0, c01 += a0 * b1;
        c10 += a1 * b0, c11 += a1 * b1;
        c20 += a2 * b0, c21 += a2 * b1;
        c30 += a3 * b0, c31 += a3 * b1;
        c40 += a4 * b0, c41 += a4 * b1;
        c50 += a5 * b0, c51 += a5 * b1;
        a += SF_PK_MR;
        b += SF_PK_NR;
    }
    const pk8 acc[SF_PK_MR][2] = {{c00, c01}, {c10, c11}, {c20, c21},
                                  {c30, c31}, {c40, c41}, {c50, c51}};
    if (nr == SF_PK_NR) {
        for (int r = 0; r < mr; r++) {
            float *c = C + (long)r * ldc;
            for (int h = 0; h < 2; h++) {
                pk8 v = acc[r][h] * alpha, old;
                if (beta != 0.0f) {
                    memcpy(&old, c + 8 * h, sizeof old);
                    v += beta * old;
                }
                memcpy(c + 8 * h, &v, sizeof v);
            }
        }
        return;
    }
    for (int r = 0; r < mr; r++) {
        float t[SF_PK_NR];
        memcpy(t, &acc[r][0], sizeof(pk8));
        memcpy(t + 8, &acc[r][1], sizeof(pk8));
        float *c = C + (long)r * ldc;
        for (int j = 0; j < nr; j++)
            c[j] = beta == 0.0f ? alpha * t[j] : alpha * t[j] + beta * c[j];
    }
}

/* One mc x nc tile of C, all of K. */
static void tile(int transA, int transB, int K, float alpha, const float *A, int lda,
                 const float *B, int ldb, float beta, float *C, int ldc, int i0, int mc, int j0,
                 int nc) {
    for (int p0 = 0; p0 < K; p0 += SF_PK_KC) {
        const int kc = K - p0 < SF_PK_KC ? K - p0 : SF_PK_KC;
        const float bt = p0 == 0 ? beta : 1.0f; /* later K slices accumulate */
        pack_a_block(transA, A, lda, i0, mc, p0, kc, pack_a);
        pack_b_block(transB, B, ldb, j0, nc, p0, kc, pack_b);
        for (int jr = 0; jr < nc; jr += SF_PK_NR) {
            const int nr = nc - jr < SF_PK_NR ? nc - jr : SF_PK_NR;
            for (int ir = 0; ir < mc; ir += SF_PK_MR) {
                const int mr = mc - ir < SF_PK_MR ? mc - ir : SF_PK_MR;
                micro_6x16(kc, pack_a + (long)ir * kc, pack_b + (long)jr * kc, alpha, bt,
                           C + (long)(i0 + ir) * ldc + j0 + jr, ldc, mr, nr);
            }
        }
    }
}

/* Below this many multiply-adds a call runs on the calling thread (the fork costs more). */
#define SF_PK_PAR_MIN (1L << 18)

void sf_gemm_packed(int transA, int transB, int M, int N, int K, float alpha, const float *A,
                    int lda, const float *B, int ldb, float beta, float *C, int ldc) {
    SF_ASSERT(M >= 0 && N >= 0 && K >= 0);
    SF_ASSERT(lda >= (transA ? M : K) && lda >= 1);
    SF_ASSERT(ldb >= (transB ? K : N) && ldb >= 1);
    SF_ASSERT(ldc >= N && ldc >= 1);
    if (M == 0 || N == 0) return;
    if (K == 0) {
        for (int i = 0; i < M; i++)
            for (int j = 0; j < N; j++)
                C[(long)i * ldc + j] = beta == 0.0f ? 0.0f : beta * C[(long)i * ldc + j];
        return;
    }
    /* Tiles: SF_PK_MC x SF_PK_NC, but cut finer when there are fewer tiles than threads so a
     * few-tile problem (a weight gradient: M, N = widths, K = tokens) still uses every core.
     * The split depends only on the shape, never on the thread count. */
    int mc = SF_PK_MC, nc = SF_PK_NC;
    while ((long)((M + mc - 1) / mc) * ((N + nc - 1) / nc) < 4 && (mc > SF_PK_MR || nc > SF_PK_NR)) {
        if (nc > SF_PK_NR && (N + nc - 1) / nc <= (M + mc - 1) / mc) nc /= 2;
        else if (mc > SF_PK_MR) mc = (mc / 2 + SF_PK_MR - 1) / SF_PK_MR * SF_PK_MR;
        else nc /= 2;
    }
    const int tm = (M + mc - 1) / mc, tn = (N + nc - 1) / nc;
    const long n_tiles = (long)tm * tn;
    const int par = (long)M * N * K >= SF_PK_PAR_MIN && n_tiles > 1 && !omp_in_parallel();
#pragma omp parallel for schedule(static) if (par)
    for (long t = 0; t < n_tiles; t++) {
        const int i0 = (int)(t / tn) * mc, j0 = (int)(t % tn) * nc;
        tile(transA, transB, K, alpha, A, lda, B, ldb, beta, C, ldc, i0,
             M - i0 < mc ? M - i0 : mc, j0, N - j0 < nc ? N - j0 : nc);
    }
}

const char *sf_gemm_packed_path(void) {
#if SF_PK_HAVE_CLONES
    __builtin_cpu_init();
    if (__builtin_cpu_supports("x86-64-v3")) /* what the target_clones resolver tests */
        return "x86-64-v3 (AVX2+FMA)";
    return "portable (default clone)";
#else
    return "portable";
#endif
}
