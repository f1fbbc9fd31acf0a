/* seqformer's own cache-blocked sgemm (issue #11): the same semantics as sf_gemm (gemm.h), so
 * that speed depends neither on which libopenblas the system selects nor on OpenBLAS
 * recognising the CPU.
 *
 * Classic three-level blocking (Goto/BLIS): for each SF_PK_NC column block and SF_PK_KC slice
 * of K, op(B) is packed once into 16-column micro-panels, then each SF_PK_MC row block of op(A)
 * into 6-row micro-panels (zero-padded at the edges), and a 6x16 register-blocked micro-kernel
 * (12 accumulators of 8 lanes, one FMA per lane and k) walks them. Each element of C is summed
 * in the same order whatever the thread count (results are bit-identical across thread counts).
 * The pack buffers are per thread and static: no allocation per call.
 *
 * The micro-kernel is compiled twice (target_clones): x86-64-v3 (AVX2 + FMA) and the portable
 * default; the loader picks one from cpuid. On x86-64-v4 (AVX-512) CPUs a 6x32 kernel (two adjacent full
 * micro-panels of B at once, 12 accumulators of 16 lanes) takes every pair of full panels: the
 * same packing, and each element of C gets the same operations in the same order as in the
 * 6x16 kernel, so results are bit-identical with and without it (tests/test_gemm.c checks).
 * It runs where sf_avx512() (multiversion.h) says so: SF_AVX512=0 turns it off (for A/B runs). */
#include "kernels/gemm.h"
#include "kernels/multiversion.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/scratch.h"

#define SF_PK_MR 6
#define SF_PK_NR 16
#ifndef SF_PK_MC
#define SF_PK_MC 96 /* 16 micro-panels of A: 96 KiB at KC = 256, stays in L2 */
#endif
#ifndef SF_PK_NC
#define SF_PK_NC 512 /* 32 micro-panels of B, 512 KiB at KC = 256: shared, read from L3 */
#endif
#ifndef SF_PK_KC
#define SF_PK_KC 256
#endif

#pragma GCC diagnostic ignored "-Wpsabi"
typedef float pk8 __attribute__((vector_size(32)));

static _Thread_local float pack_a[SF_PK_MC * SF_PK_KC] __attribute__((aligned(64)));
static _Thread_local float pack_b[SF_PK_NC * SF_PK_KC] __attribute__((aligned(64)));

/* op(A) rows i0..i0+mc-1, k p0..p0+kc-1 -> micro-panels [mc/6][kc][6] (rows past mc are 0).
 * The source is always read along its rows (a walk down a column, 4 KiB apart for a 1024-wide
 * matrix, hits one cache set and cost a third of the time). */
static void pack_a_block(int transA, const float *A, int lda, int i0, int mc, int p0, int kc,
                         float *dst) {
    const int full = mc / SF_PK_MR * SF_PK_MR;
    if (!transA) { /* A [M,K]: row i is contiguous in k */
        for (int ir = 0; ir < mc; ir += SF_PK_MR) {
            const int mr = mc - ir < SF_PK_MR ? mc - ir : SF_PK_MR;
            float *d = dst + (long)ir * kc;
            for (int r = 0; r < mr; r++) {
                const float *a = A + (long)(i0 + ir + r) * lda + p0;
                for (int p = 0; p < kc; p++) d[p * SF_PK_MR + r] = a[p];
            }
            for (int r = mr; r < SF_PK_MR; r++)
                for (int p = 0; p < kc; p++) d[p * SF_PK_MR + r] = 0.0f;
        }
        return;
    }
    /* A [K,M]: for a given k the rows i are contiguous */
    for (int p = 0; p < kc; p++) {
        const float *a = A + (long)(p0 + p) * lda + i0;
        int ir = 0;
        for (; ir < full; ir += SF_PK_MR) {
            float *d = dst + (long)ir * kc + p * SF_PK_MR;
            for (int r = 0; r < SF_PK_MR; r++) d[r] = a[ir + r];
        }
        if (ir < mc) {
            float *d = dst + (long)ir * kc + p * SF_PK_MR;
            for (int r = 0; r < SF_PK_MR; r++) d[r] = ir + r < mc ? a[ir + r] : 0.0f;
        }
    }
}

/* op(B) k p0.., columns j0..j0+nc-1 -> micro-panels [nc/16][kc][16] (columns past nc are 0),
 * reading the source along its rows as pack_a_block does. */
static void pack_b_block(int transB, const float *B, int ldb, int j0, int nc, int p0, int kc,
                         float *dst) {
    const int full = nc / SF_PK_NR * SF_PK_NR;
    if (!transB) { /* B [K,N]: for a given k the columns are contiguous */
        for (int p = 0; p < kc; p++) {
            const float *b = B + (long)(p0 + p) * ldb + j0;
            int jr = 0;
            for (; jr < full; jr += SF_PK_NR)
                memcpy(dst + (long)jr * kc + p * SF_PK_NR, b + jr, SF_PK_NR * sizeof(float));
            if (jr < nc) {
                float *d = dst + (long)jr * kc + p * SF_PK_NR;
                for (int j = 0; j < SF_PK_NR; j++) d[j] = jr + j < nc ? b[jr + j] : 0.0f;
            }
        }
        return;
    }
    /* B [N,K]: column j is contiguous in k */
    for (int jr = 0; jr < nc; jr += SF_PK_NR) {
        const int nr = nc - jr < SF_PK_NR ? nc - jr : SF_PK_NR;
        float *d = dst + (long)jr * kc;
        for (int j = 0; j < nr; j++) {
            const float *b = B + (long)(j0 + jr + j) * ldb + p0;
            for (int p = 0; p < kc; p++) d[p * SF_PK_NR + j] = b[p];
        }
        for (int j = nr; j < SF_PK_NR; j++)
            for (int p = 0; p < kc; p++) d[p * SF_PK_NR + j] = 0.0f;
    }
}

/* The 6x16 micro-kernel: acc = sum_p a(0..5, p) (x) b[p][0..15], a(r, p) = a[r*rs + p*ks] (a
 * packed micro-panel: rs 1, ks 6; rows of a row-major A read in place: rs lda, ks 1), then
 * C[0..mr)[0..nr) = alpha * acc + beta * C (beta == 0: C not read), or, when bias is not NULL,
 * alpha * acc + beta * bias[0..nr) in every row (the same expression with the bias in place of
 * C's old value, so the same bits as copying the bias into C first; C not read). */
SF_MULTIVERSION static void micro_6x16(int kc, const float *restrict a, long rs, long ks,
                                       const float *restrict b, long bk, float alpha, float beta,
                                       const float *restrict bias, float *restrict C, int ldc,
                                       int mr, int nr) {
    /* the C tile is stored after kc FMAs: fetch its lines now so the stores do not miss */
    for (int r = 0; r < mr; r++) {
        __builtin_prefetch(C + (long)r * ldc, 1, 3);
        __builtin_prefetch(C + (long)r * ldc + SF_PK_NR - 1, 1, 3);
    }
    pk8 c00 = {0}, c01 = {0}, c10 = {0}, c11 = {0}, c20 = {0}, c21 = {0};
    pk8 c30 = {0}, c31 = {0}, c40 = {0}, c41 = {0}, c50 = {0}, c51 = {0};
    const float *r0 = a, *r1 = a + rs, *r2 = a + 2 * rs, *r3 = a + 3 * rs, *r4 = a + 4 * rs,
                *r5 = a + 5 * rs;
    for (int p = 0; p < kc; p++) {
        pk8 b0, b1;
        memcpy(&b0, b, sizeof b0);
        memcpy(&b1, b + 8, sizeof b1);
        const float a0 = *r0, a1 = *r1, a2 = *r2, a3 = *r3, a4 = *r4, a5 = *r5;
        c00 += a0 * b0, c01 += a0 * b1;
        c10 += a1 * b0, c11 += a1 * b1;
        c20 += a2 * b0, c21 += a2 * b1;
        c30 += a3 * b0, c31 += a3 * b1;
        c40 += a4 * b0, c41 += a4 * b1;
        c50 += a5 * b0, c51 += a5 * b1;
        r0 += ks, r1 += ks, r2 += ks, r3 += ks, r4 += ks, r5 += ks;
        b += bk;
    }
    const pk8 acc[SF_PK_MR][2] = {{c00, c01}, {c10, c11}, {c20, c21},
                                  {c30, c31}, {c40, c41}, {c50, c51}};
    if (nr == SF_PK_NR) {
        for (int r = 0; r < mr; r++) {
            float *c = C + (long)r * ldc;
            for (int h = 0; h < 2; h++) {
                pk8 v = acc[r][h] * alpha, old;
                if (beta != 0.0f) {
                    memcpy(&old, (bias ? bias : c) + 8 * h, sizeof old);
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
        const float *o = bias ? bias : c;
        for (int j = 0; j < nr; j++)
            c[j] = beta == 0.0f ? alpha * t[j] : alpha * t[j] + beta * o[j];
    }
}

#if SF_HAVE_CLONES
#define SF_PK_HAVE_512 1
typedef float pk16 __attribute__((vector_size(64)));

/* The 6x32 micro-kernel (AVX-512): b0, b1 two full 16-column micro-panels ([kc][16] each),
 * C[0..mr)[0..32) = alpha * acc + beta * C. Per element of C the operations of micro_6x16's
 * x86-64-v3 clone (one FMA per k, in k order; the same alpha/beta expression). */
static inline __attribute__((always_inline, target("arch=x86-64-v4"))) void micro_6x32_body(
    int kc, const float *restrict a, long rs, long ks, const float *restrict b0p,
    const float *restrict b1p, long bk, float alpha, float beta, const float *restrict bias,
    float *restrict C, int ldc, int mr) {
    for (int r = 0; r < mr; r++) {
        __builtin_prefetch(C + (long)r * ldc, 1, 3);
        __builtin_prefetch(C + (long)r * ldc + 2 * SF_PK_NR - 1, 1, 3);
    }
    pk16 c00 = {0}, c01 = {0}, c10 = {0}, c11 = {0}, c20 = {0}, c21 = {0};
    pk16 c30 = {0}, c31 = {0}, c40 = {0}, c41 = {0}, c50 = {0}, c51 = {0};
    const float *r0 = a, *r1 = a + rs, *r2 = a + 2 * rs, *r3 = a + 3 * rs, *r4 = a + 4 * rs,
                *r5 = a + 5 * rs;
#pragma GCC unroll 4 /* see micro_12x16_body */
    for (int p = 0; p < kc; p++) {
        pk16 b0, b1;
        memcpy(&b0, b0p, sizeof b0);
        memcpy(&b1, b1p, sizeof b1);
        const float a0 = *r0, a1 = *r1, a2 = *r2, a3 = *r3, a4 = *r4, a5 = *r5;
        c00 += a0 * b0, c01 += a0 * b1;
        c10 += a1 * b0, c11 += a1 * b1;
        c20 += a2 * b0, c21 += a2 * b1;
        c30 += a3 * b0, c31 += a3 * b1;
        c40 += a4 * b0, c41 += a4 * b1;
        c50 += a5 * b0, c51 += a5 * b1;
        r0 += ks, r1 += ks, r2 += ks, r3 += ks, r4 += ks, r5 += ks;
        b0p += bk, b1p += bk;
    }
    const pk16 acc[SF_PK_MR][2] = {{c00, c01}, {c10, c11}, {c20, c21},
                                   {c30, c31}, {c40, c41}, {c50, c51}};
    for (int r = 0; r < mr; r++) {
        float *c = C + (long)r * ldc;
        for (int h = 0; h < 2; h++) {
            pk16 v = acc[r][h] * alpha, old;
            if (beta != 0.0f) {
                memcpy(&old, (bias ? bias : c) + 16 * h, sizeof old);
                v += beta * old;
            }
            memcpy(c + 16 * h, &v, sizeof v);
        }
    }
}

/* The 12x16 micro-kernel (AVX-512) for a single 16-column panel (C only 16 wide, or the odd panel
 * left after the 6x32 pairs): two 6-row blocks of A (a and a2, the same strides) against one B
 * panel, 12 accumulators of 16 lanes (the 6x16 kernel's 6 would not cover the FMA latency). Per
 * element of C the operations of micro_6x16 in k order, so the same bits; C[0..12)[0..16). */
static inline __attribute__((always_inline, target("arch=x86-64-v4"))) void micro_12x16_body(
    int kc, const float *restrict a, const float *restrict a2, long rs, long ks,
    const float *restrict bp, long bk, float alpha, float beta, const float *restrict bias,
    float *restrict C, int ldc) {
    for (int r = 0; r < 2 * SF_PK_MR; r++) __builtin_prefetch(C + (long)r * ldc, 1, 3);
    pk16 c0 = {0}, c1 = {0}, c2 = {0}, c3 = {0}, c4 = {0}, c5 = {0};
    pk16 c6 = {0}, c7 = {0}, c8 = {0}, c9 = {0}, c10 = {0}, c11 = {0};
    const float *r0 = a, *r1 = a + rs, *r2 = a + 2 * rs, *r3 = a + 3 * rs, *r4 = a + 4 * rs,
                *r5 = a + 5 * rs;
    const float *r6 = a2, *r7 = a2 + rs, *r8 = a2 + 2 * rs, *r9 = a2 + 3 * rs, *r10 = a2 + 4 * rs,
                *r11 = a2 + 5 * rs;
    /* Unrolled: one k step is 13 loads, 12 FMAs and 13 pointer increments, more than the 2-core
     * Xeon's 6-wide front end issues in the 6 cycles the FMAs take; unrolled, 4 steps share the
     * increments (the N = 16 GEMMs of PatchTST's training step in 0.85-0.92x the time there:
     * bench/gemm_src_ab.sh, bench/results/gemm_unroll_ab_xeon.txt). Per accumulator the same
     * FMAs in the same order: the same bits. */
#pragma GCC unroll 4
    for (int p = 0; p < kc; p++) {
        pk16 b;
        memcpy(&b, bp, sizeof b);
        c0 += *r0 * b, c1 += *r1 * b, c2 += *r2 * b, c3 += *r3 * b, c4 += *r4 * b, c5 += *r5 * b;
        c6 += *r6 * b, c7 += *r7 * b, c8 += *r8 * b, c9 += *r9 * b, c10 += *r10 * b, c11 += *r11 * b;
        r0 += ks, r1 += ks, r2 += ks, r3 += ks, r4 += ks, r5 += ks;
        r6 += ks, r7 += ks, r8 += ks, r9 += ks, r10 += ks, r11 += ks;
        bp += bk;
    }
    const pk16 acc[2 * SF_PK_MR] = {c0, c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11};
    for (int r = 0; r < 2 * SF_PK_MR; r++) {
        float *c = C + (long)r * ldc;
        pk16 v = acc[r] * alpha, old;
        if (beta != 0.0f) {
            memcpy(&old, bias ? bias : c, sizeof old);
            v += beta * old;
        }
        memcpy(c, &v, sizeof v);
    }
}

/* The kernels proper. The strides come in a few fixed patterns, and each gets its own copy of
 * the loop with its constants folded into the addressing (with variable strides the small-K
 * shapes ran slower, measured while writing this with a scratch build): A packed (rs 1, ks 6), row-major A in place (ks 1), transposed A in
 * place (rs 1); B packed (bk = 16) or read in place (bk = ldb, b_in_place). */
#define SF_PK_STRIDES(CALL, rs, ks, bk)                                                        \
    do {                                                                                       \
        if ((bk) == SF_PK_NR) {                                                                \
            if ((rs) == 1 && (ks) == SF_PK_MR) CALL(1, SF_PK_MR, SF_PK_NR);                     \
            else if ((ks) == 1) CALL(rs, 1, SF_PK_NR);                                         \
            else if ((rs) == 1) CALL(1, ks, SF_PK_NR);                                         \
            else CALL(rs, ks, SF_PK_NR);                                                       \
        } else {                                                                               \
            if ((rs) == 1 && (ks) == SF_PK_MR) CALL(1, SF_PK_MR, bk);                           \
            else if ((ks) == 1) CALL(rs, 1, bk);                                               \
            else if ((rs) == 1) CALL(1, ks, bk);                                               \
            else CALL(rs, ks, bk);                                                             \
        }                                                                                      \
    } while (0)
SF_TARGET_V4 static void micro_6x32_512(int kc, const float *restrict a, long rs, long ks,
                                        const float *restrict b0p, const float *restrict b1p,
                                        long bk, float alpha, float beta,
                                        const float *restrict bias, float *restrict C, int ldc,
                                        int mr) {
#define SF_PK_CALL(R, S, BK) micro_6x32_body(kc, a, R, S, b0p, b1p, BK, alpha, beta, bias, C, ldc, mr)
    SF_PK_STRIDES(SF_PK_CALL, rs, ks, bk);
#undef SF_PK_CALL
}
SF_TARGET_V4 static void micro_12x16_512(int kc, const float *restrict a, const float *restrict a2,
                                         long rs, long ks, const float *restrict bp, long bk,
                                         float alpha, float beta, const float *restrict bias,
                                         float *restrict C, int ldc) {
#define SF_PK_CALL(R, S, BK) micro_12x16_body(kc, a, a2, R, S, bp, BK, alpha, beta, bias, C, ldc)
    SF_PK_STRIDES(SF_PK_CALL, rs, ks, bk);
#undef SF_PK_CALL
}
#else
#define SF_PK_HAVE_512 0
#endif

/* Below this many multiply-adds a call runs on the calling thread (the fork costs more). */
#define SF_PK_PAR_MIN (1L << 18)

/* One work unit of one K slice: rows [i0, i0 + mcu) of C against the packed micro-panels
 * [q0, q1) of the op(B) block at bbuf (columns j0 + 16 q ..), K slice p0..p0+kc-1. op(A) is read
 * in place: six row streams of kc <= 256 floats cost less than transposing it into micro-panels
 * (first for the models' K = 16..128; on Zen 5 also for K = 256..1024, +25-35% on the encoder's
 * shapes of bench_mfu). A transposed A ([K, M], a weight gradient's dY) is read in place too
 * (six adjacent floats per k, rows lda apart) while lda <= SF_PK_TA_LDA_MAX: packing it was most
 * of a weight gradient's time; a wider lda walks k in steps of a multiple of 4 KiB, which
 * fall into one L1 set. Only a partial last micro-panel, or a transposed A wider than that, is
 * packed (missing rows must read as 0), into this thread's pack_a. Each element of C gets the
 * same multiply-adds in the same k order either way: the same bits. */
#define SF_PK_TA_LDA_MAX 512
static inline __attribute__((always_inline)) void packed_unit(
    int transA, const float *A, int lda, int bin, const float *B, int ldb, float alpha,
    float bt, const float *bs, float *C, int ldc, int i0, int mcu, int q0, int q1, int j0, int nc,
    int p0, int kc, const float *bbuf, int wide) {
    (void)wide;
    const int direct = !transA || lda <= SF_PK_TA_LDA_MAX;
    const int full = direct ? mcu / SF_PK_MR * SF_PK_MR : 0;
    const long ars = transA ? 1 : lda, aks = transA ? lda : 1; /* a(r, p) = a[r ars + p aks] */
#define SF_PK_AIN(ir) (transA ? A + (long)p0 * lda + i0 + (ir) : A + (long)(i0 + (ir)) * lda + p0)
    /* bin: the full 16-column panels of an untransposed B are read in place (b_in_place) */
#define SF_PK_BIN(jr) (bin && (jr) + SF_PK_NR <= nc)
#define SF_PK_BP(jr) (SF_PK_BIN(jr) ? B + (long)p0 * ldb + j0 + (jr) : bbuf + (long)(jr) * kc)
#define SF_PK_BK(jr) (SF_PK_BIN(jr) ? (long)ldb : (long)SF_PK_NR)
    if (full < mcu) pack_a_block(transA, A, lda, i0 + full, mcu - full, p0, kc, pack_a);
    for (int q = q0; q < q1; q++) {
        const int jr = q * SF_PK_NR, nr = nc - jr < SF_PK_NR ? nc - jr : SF_PK_NR;
#if SF_PK_HAVE_512
        if (wide && q + 1 < q1 && jr + 2 * SF_PK_NR <= nc) { /* two full panels */
            for (int ir = 0; ir < mcu; ir += SF_PK_MR) {
                const int mr = mcu - ir < SF_PK_MR ? mcu - ir : SF_PK_MR;
                float *c = C + (long)(i0 + ir) * ldc + j0 + jr;
                const float *b0 = SF_PK_BP(jr), *b1 = SF_PK_BP(jr + SF_PK_NR);
                const long bk = SF_PK_BK(jr); /* both panels full: both in place or packed */
                const float *bj = bs ? bs + jr : NULL;
                if (ir < full)
                    micro_6x32_512(kc, SF_PK_AIN(ir), ars, aks, b0, b1, bk, alpha, bt, bj, c,
                                   ldc, mr);
                else
                    micro_6x32_512(kc, pack_a + (long)(ir - full) * kc, 1, SF_PK_MR, b0, b1, bk,
                                   alpha, bt, bj, c, ldc, mr);
            }
            q++;
            continue;
        }
#endif
        for (int ir = 0; ir < mcu; ir += SF_PK_MR) {
            const int mr = mcu - ir < SF_PK_MR ? mcu - ir : SF_PK_MR;
            float *c = C + (long)(i0 + ir) * ldc + j0 + jr;
            const float *bj = bs ? bs + jr : NULL;
#if SF_PK_HAVE_512
            /* a full panel alone: twelve rows at once, both blocks read in place or both
             * packed */
            if (wide && nr == SF_PK_NR &&
                (ir + 2 * SF_PK_MR <= full || (ir >= full && ir + 2 * SF_PK_MR <= mcu))) {
                const float *b = SF_PK_BP(jr);
                const long bk = SF_PK_BK(jr);
                if (ir < full) {
                    const float *ar = SF_PK_AIN(ir);
                    micro_12x16_512(kc, ar, ar + SF_PK_MR * ars, ars, aks, b, bk, alpha, bt, bj,
                                    c, ldc);
                } else {
                    const float *ap = pack_a + (long)(ir - full) * kc;
                    micro_12x16_512(kc, ap, ap + (long)SF_PK_MR * kc, 1, SF_PK_MR, b, bk, alpha,
                                    bt, bj, c, ldc);
                }
                ir += SF_PK_MR; /* and the loop's own step: 12 rows */
                continue;
            }
#endif
            if (ir < full)
                micro_6x16(kc, SF_PK_AIN(ir), ars, aks, SF_PK_BP(jr), SF_PK_BK(jr), alpha, bt, bj,
                           c, ldc, mr, nr);
            else
                micro_6x16(kc, pack_a + (long)(ir - full) * kc, 1, SF_PK_MR, SF_PK_BP(jr),
                           SF_PK_BK(jr), alpha, bt, bj, c, ldc, mr, nr);
        }
    }
}

#undef SF_PK_AIN
#undef SF_PK_BIN
#undef SF_PK_BP
#undef SF_PK_BK

/* An untransposed B ([K, N], rows contiguous) is read in place instead of packed when few row
 * blocks of A reuse it (a weight gradient: M = a layer's width, K = tokens): packing was a whole
 * extra pass over a large B for two or three reads of it. With many row blocks (the data
 * gradients' B = a small weight matrix, read M / mc times) the packed panels measured faster
 * (gemm_train_shapes' dx rows, with a scratch build that read every such B in place). Same bits
 * either way. */
#define SF_PK_B_IN_PLACE_MMAX 256
static inline int b_in_place(int transB, int M, int ldb) {
    return !transB && M <= SF_PK_B_IN_PLACE_MMAX && ldb <= SF_PK_TA_LDA_MAX;
}

/* One call, inside its parallel region (or on the calling thread alone). For each NC-wide
 * column block and KC slice of K: the op(B) block is packed once into the caller's buffer
 * (shared, split across threads), then the work units, (mc rows) x (a group of 16-column
 * micro-panels), are shared out; each thread packs its unit's op(A) rows into its own buffer.
 * The implicit barriers after each `omp for` keep the K slices in order, so every element of C
 * is summed in the same order whatever the thread count. serial: the same loops without any
 * OpenMP construct, for a call on one thread, also from inside another parallel region (an
 * orphaned `omp for` would bind to that region's team; a nested `parallel if (0)` costs a team
 * allocation per call, more than a batch-1 GEMM's arithmetic). */
static void packed_body(int transA, int transB, int M, int N, int K, float alpha, const float *A,
                        int lda, const float *B, int ldb, float beta, const float *bias, float *C,
                        int ldc, int mc, int jchunks, float *bbuf, int wide, int serial) {
    const int tm = (M + mc - 1) / mc, bin = b_in_place(transB, M, ldb);
    for (int j0 = 0; j0 < N; j0 += SF_PK_NC) {
        const int nc = N - j0 < SF_PK_NC ? N - j0 : SF_PK_NC;
        const int panels = (nc + SF_PK_NR - 1) / SF_PK_NR;
        const int per_chunk = (panels + jchunks - 1) / jchunks;
        for (int p0 = 0; p0 < K; p0 += SF_PK_KC) {
            const int kc = K - p0 < SF_PK_KC ? K - p0 : SF_PK_KC;
            const float bt = p0 == 0 ? beta : 1.0f; /* later K slices accumulate */
            const float *bs = p0 == 0 && bias ? bias + j0 : NULL; /* the first adds the bias */
#define SF_PK_PACK_B(q)                                                                        \
    if (!bin || nc - (q) * SF_PK_NR < SF_PK_NR)                                                \
    pack_b_block(transB, B, ldb, j0 + (q) * SF_PK_NR,                                          \
                 nc - (q) * SF_PK_NR < SF_PK_NR ? nc - (q) * SF_PK_NR : SF_PK_NR, p0, kc,       \
                 bbuf + (long)(q) * SF_PK_NR * kc)
#define SF_PK_UNIT(u)                                                                          \
    do {                                                                                       \
        const int i0 = ((u) / jchunks) * mc, mcu = M - i0 < mc ? M - i0 : mc;                  \
        const int q0 = ((u) % jchunks) * per_chunk;                                            \
        const int q1 = q0 + per_chunk < panels ? q0 + per_chunk : panels;                      \
        if (q0 < q1)                                                                           \
            packed_unit(transA, A, lda, bin, B, ldb, alpha, bt, bs, C, ldc, i0, mcu, q0, q1, \
                        j0, nc, p0, kc, bbuf, wide);                                           \
    } while (0)
            if (serial) {
                for (int q = 0; q < panels; q++) SF_PK_PACK_B(q);
                for (int u = 0; u < tm * jchunks; u++) SF_PK_UNIT(u);
                continue;
            }
            if (!bin || nc % SF_PK_NR) { /* the same for every thread */
#pragma omp for schedule(static)
                for (int q = 0; q < panels; q++) SF_PK_PACK_B(q);
            }
#pragma omp for schedule(static)
            for (int u = 0; u < tm * jchunks; u++) SF_PK_UNIT(u);
#undef SF_PK_PACK_B
#undef SF_PK_UNIT
        }
    }
}

/* A few-element C over a long K (a weight gradient: M, N = widths, K = tokens) would need two
 * barriers per K slice for almost no work each. Instead K is cut into S chunks (S from the shape
 * only), each chunk's product goes to its own partial [M,N] on one thread with no barrier, and
 * the partials are summed in chunk order: the same result whatever the thread count. */
#define SF_PK_KSPLIT_MAX 16
static int ksplit_chunks(int M, int N, int K) {
    if ((long)M * N > 256L * 256 || K < 4 * SF_PK_KC) return 1;
    int s = K / (4 * SF_PK_KC);
    return s < SF_PK_KSPLIT_MAX ? s : SF_PK_KSPLIT_MAX;
}

/* C = alpha * (the S partials [M, N] summed in order from 0.0f) + beta * C, vectorised along
 * each row (the loop over s per element walked the partials mn floats apart, on one thread while
 * the other waited); no clone fuses a multiply-add, so the same bits as that loop. */
SF_MULTIVERSION_512_EXACT static void sum_partials(float *C, int ldc, const float *part, int S,
                                                   int M, int N, float alpha, float beta) {
    const long mn = (long)M * N;
    float acc[SF_PK_NC] __attribute__((aligned(64)));
    for (int i = 0; i < M; i++)
        for (int j0 = 0; j0 < N; j0 += SF_PK_NC) {
            const int w = N - j0 < SF_PK_NC ? N - j0 : SF_PK_NC;
            for (int j = 0; j < w; j++) acc[j] = 0.0f;
            for (int s = 0; s < S; s++) {
                const float *ps = part + s * mn + (long)i * N + j0;
                for (int j = 0; j < w; j++) acc[j] += ps[j];
            }
            float *c = C + (long)i * ldc + j0;
            if (beta == 0.0f)
                for (int j = 0; j < w; j++) c[j] = alpha * acc[j];
            else
                for (int j = 0; j < w; j++) c[j] = alpha * acc[j] + beta * c[j];
        }
}

static void gemm_ksplit(int transA, int transB, int M, int N, int K, float alpha, const float *A,
                        int lda, const float *B, int ldb, float beta, float *C, int ldc) {
    const int S = ksplit_chunks(M, N, K), wide = sf_avx512();
    const long mn = (long)M * N;
    const size_t mark = sf_scratch_mark();
    float *part = sf_scratch_push((size_t)(S * mn));
    const int par = !omp_in_parallel();
#pragma omp parallel for schedule(static) if (par)
    for (int s = 0; s < S; s++) {
        const int k0 = (int)((long)K * s / S), k1 = (int)((long)K * (s + 1) / S);
        const float *As = transA ? A + (long)k0 * lda : A + k0;
        const float *Bs = transB ? B + k0 : B + (long)k0 * ldb;
        packed_body(transA, transB, M, N, k1 - k0, 1.0f, As, lda, Bs, ldb, 0.0f, NULL,
                    part + s * mn, N, SF_PK_MC, 1, pack_b /* this thread's own */, wide, 1);
    }
    sum_partials(C, ldc, part, S, M, N, alpha, beta);
    sf_scratch_release(mark);
}

/* beta * C, or beta * bias in every row (bias not NULL), is added to alpha * op(A) op(B). */
static void packed_gemm(int transA, int transB, int M, int N, int K, float alpha, const float *A,
                        int lda, const float *B, int ldb, float beta, const float *bias, float *C,
                        int ldc, int serial) {
    SF_ASSERT(M >= 0 && N >= 0 && K >= 0);
    SF_ASSERT(lda >= (transA ? M : K) && lda >= 1);
    SF_ASSERT(ldb >= (transB ? K : N) && ldb >= 1);
    SF_ASSERT(ldc >= N && ldc >= 1);
    if (M == 0 || N == 0) return;
    if (bias && (K == 0 || ksplit_chunks(M, N, K) > 1)) { /* these paths read C: copy it there */
        for (int i = 0; i < M; i++) memcpy(C + (long)i * ldc, bias, (size_t)N * sizeof(float));
        bias = NULL;
    }
    if (K == 0) {
        for (int i = 0; i < M; i++)
            for (int j = 0; j < N; j++)
                C[(long)i * ldc + j] = beta == 0.0f ? 0.0f : beta * C[(long)i * ldc + j];
        return;
    }
    if (ksplit_chunks(M, N, K) > 1) {
        gemm_ksplit(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    /* At least 4 work units per K slice so both cores of a few-row problem (a weight gradient:
     * M, N = widths, K = tokens) have work: fewer rows per unit first (down to 24), then the
     * columns split into groups. Decided from the shape only, never from the thread count. */
    int mc = SF_PK_MC, jchunks = 1;
    while ((M + mc - 1) / mc < 4 && mc > 24) mc /= 2;
    const int tm = (M + mc - 1) / mc;
    if (tm < 4) jchunks = (4 + tm - 1) / tm;
    float *bbuf = pack_b; /* the calling thread's: the workers read it through this pointer */
    const int wide = sf_avx512(); /* decided here, outside the parallel region */
    if (serial || (long)M * N * K < SF_PK_PAR_MIN || omp_in_parallel()) {
        packed_body(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, bias, C, ldc, mc,
                    jchunks, bbuf, wide, 1);
        return;
    }
#pragma omp parallel
    packed_body(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, bias, C, ldc, mc, jchunks,
                bbuf, wide, 0);
}

void sf_gemm_packed(int transA, int transB, int M, int N, int K, float alpha, const float *A,
                    int lda, const float *B, int ldb, float beta, float *C, int ldc) {
    packed_gemm(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, NULL, C, ldc, 0);
}

void sf_gemm_packed_bias(int transA, int transB, int M, int N, int K, float alpha, const float *A,
                         int lda, const float *B, int ldb, const float *bias, float *C, int ldc) {
    SF_ASSERT(bias != NULL);
    packed_gemm(transA, transB, M, N, K, alpha, A, lda, B, ldb, 1.0f, bias, C, ldc, 0);
}

void sf_gemm_packed_serial(int transA, int transB, int M, int N, int K, float alpha,
                           const float *A, int lda, const float *B, int ldb, float beta,
                           const float *bias, float *C, int ldc) {
    packed_gemm(transA, transB, M, N, K, alpha, A, lda, B, ldb, bias ? 1.0f : beta, bias, C, ldc,
                1);
}

int sf_gemm_packed_ksplit(int M, int N, int K) { return ksplit_chunks(M, N, K); }

const char *sf_gemm_packed_path(void) {
#if SF_HAVE_CLONES
    __builtin_cpu_init();
    if (__builtin_cpu_supports("x86-64-v3")) /* what the target_clones resolver tests */
        return sf_avx512() ? "x86-64-v3 (AVX2+FMA) + AVX-512 (GEMM 6x32, attention tiles)"
                                       : "x86-64-v3 (AVX2+FMA)";
    return "portable (default clone)";
#else
    return "portable";
#endif
}
