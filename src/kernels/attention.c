#include "kernels/attention.h"
#include "kernels/multiversion.h"
#include "kernels/attention_ref.h"

/* clang reports "loop not vectorized" for some `omp simd` loops (float max reductions) as a
 * warning, which -Werror would turn into a build failure; the loops are still correct. */
#if defined(__clang__)
#pragma clang diagnostic ignored "-Wpass-failed"
#endif

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "core/error.h"
#include "core/parallel.h"
#include "core/scratch.h"
#include "kernels/softmax.h" /* sf_expf_fast */
#include "kernels/tile_gemm.h"

/* Tiles. A key tile holds bc keys transposed as [Dh][bc] in SF_ATT_TILE floats, so
 * bc = min(SF_ATT_BC, SF_ATT_TILE / Dh) (64 keys up to Dh = 64, 16 at Dh = 256); a query tile of
 * the forward holds br = min(SF_ATT_BR, SF_ATT_TILE / Dh) rows of output accumulators (64 rows
 * up to Dh = 64: each copied key tile serves more rows; the backward's dK and dV products get
 * longer reductions). Stack use per thread: about 90 KB in the forward, 145 KB in the
 * backward. */
#define SF_ATT_TILE 4096
#define SF_ATT_BC 64
#define SF_ATT_BR 64
#define SF_ATT_PAD 8
#define SF_ATT_PAR_MIN SF_ATTENTION_PAR_MIN /* attention.h */

/* The tile kernels are compiled for baseline x86-64 and AVX2+FMA (SF_MULTIVERSION), the wide-head
 * ones also for x86-64-v4 (16-lane tile products; see fwd_query_tile_512). */

static inline int imin(int a, int b) { return a < b ? a : b; }

/* Key-tile width: a multiple of SF_ATT_PAD (>= 16 for Dh <= 256). */
static inline int key_tile(int Dh) { return imin(SF_ATT_BC, (SF_ATT_TILE / Dh) / SF_ATT_PAD * SF_ATT_PAD); }
/* Row loops over the keys of a tile run to the next multiple of SF_ATT_PAD (masked), so the
 * vector loops never need a scalar remainder. */
static inline int pad_up(int n) { return (n + SF_ATT_PAD - 1) / SF_ATT_PAD * SF_ATT_PAD; }
static inline int query_tile(int Dh) { return imin(SF_ATT_BR, SF_ATT_TILE / Dh); }

static void check_args(int ld, int ldo, int B, int T, int H, int Dh) {
    SF_ASSERT(B >= 0 && T >= 0 && H >= 1);
    SF_ASSERT(Dh >= 1 && Dh <= SF_ATTENTION_MAX_DH);
    SF_ASSERT(ld >= H * Dh && ldo >= H * Dh);
}

/* lens (NULL or 1 <= lens[b] <= T): see attention.h. */
static void check_lens(const int *lens, int B, int T) {
    if (!lens) return;
    for (int b = 0; b < B; b++) SF_ASSERT(lens[b] >= 1 && lens[b] <= T);
}

/* Head columns [0, Dh) of rows [r0, r1) (stride ld) set to 0: padded rows of an output. */
static void zero_rows(float *p, long ld, int r0, int r1, int Dh) {
    for (int r = r0; r < r1; r++) memset(p + (long)r * ld, 0, sizeof(float) * (size_t)Dh);
}

static int n_threads_for(long work) {
#ifdef _OPENMP
    return work >= SF_ATT_PAR_MIN ? omp_get_max_threads() : 1;
#else
    (void)work;
    return 1;
#endif
}

/* dst[d*bc + j] = src[(j0 + j)*ld + d] for j < nj: a key (or value) tile transposed to [Dh][bc];
 * columns nj..pad_up(nj)-1 are zeroed (masked lanes must not meet inf/NaN garbage). */
static void load_transposed(float *restrict dst, const float *restrict src, long ld, int j0,
                            int nj, int bc, int Dh) {
    for (int j = 0; j < nj; j++) {
        const float *r = src + (long)(j0 + j) * ld;
        for (int d = 0; d < Dh; d++) dst[d * bc + j] = r[d];
    }
    for (int d = 0; d < Dh; d++)
        for (int j = nj; j < pad_up(nj); j++) dst[d * bc + j] = 0.0f;
}

/* ---- forward ------------------------------------------------------------------------- */

/* Small heads (Dh <= SF_ATT_SMALL_DH): query rows in the vector lanes instead of keys. For a
 * block of SF_ATT_RL query rows (two 8-lane vectors), pass 1 takes the row maxima over all
 * visible keys, pass 2 recomputes the scores (Dh FMAs per vector) and accumulates exp(s - m) and
 * exp(s - m) * v. No transposes, no horizontal reductions, no rescaling. Written with GCC vector
 * extensions (the baseline clone lowers them to SSE pairs). Lanes past the last row
 * (ni < SF_ATT_RL) repeat the last row and are not stored. */
#define SF_ATT_RL 16
#define SF_ATT_SMALL_DH 8
#if defined(__GNUC__)
#define SF_ATT_HAVE_VEC 1
/* The vector helpers are static and always inlined: no 32-byte vector crosses a real call. */
#pragma GCC diagnostic ignored "-Wpsabi"
typedef float v8sf __attribute__((vector_size(32)));
typedef int32_t v8si __attribute__((vector_size(32)));

static inline __attribute__((always_inline)) v8sf v8_splat(float x) {
    return (v8sf){x, x, x, x, x, x, x, x};
}
/* Lane-wise cond ? a : b for a comparison mask (all ones / zero per lane). */
static inline __attribute__((always_inline)) v8sf v8_sel(v8si m, v8sf a, v8sf b) {
    return (v8sf)(((v8si)a & m) | ((v8si)b & ~m));
}
/* The small-head kernels work in base 2: their scores are scaled by log2(e) (folded into the
 * query scale in the forward, into one FMA with the pre-scaled lse in the backward), so that each
 * exponential is 2^x = 2^k 2^r with k = round(x) and r = x - k in [-1/2, 1/2] exactly, and
 * 2^r a degree-6 polynomial fitted for this project (Lawson-weighted least squares on Chebyshev
 * nodes, constant term 1: 2.0e-9 relative in exact arithmetic, ~1e-7 in float). Against the
 * natural-base form (a two-constant Cody-Waite reduction and a degree-7 polynomial in Estrin
 * form) that is 5 fewer vector operations per exponential, which is most of what these kernels
 * do at Dh <= 4. x is clamped below at -126 (below it the result is < 1.2e-38, nothing against a
 * row sum >= 1) so that 2^k stays a normal float; NaN passes through. With `upper`, also clamped
 * above at 127 (the backward, where x = s - lse may exceed 0 by rounding, or by much on a
 * caller's inconsistent lse: then the result is large but finite, as in both vector widths). */
#define SF_EXP2_POLY(r)                                                                    \
    ((((((r) * 1.535336196e-04f + 1.339887502e-03f) * (r) + 9.618436918e-03f) * (r) +       \
       5.550332367e-02f) * (r) + 2.402264774e-01f) * (r) + 6.931471825e-01f) * (r) + 1.0f
#define SF_LOG2E 1.44269504088896341f
#define SF_LN2 0.693147180559945309f
static inline __attribute__((always_inline)) v8sf v8_exp2(v8sf x, const int upper) {
    v8sf xc = v8_sel(v8_splat(-126.0f) > x, v8_splat(-126.0f), x);
    if (upper) xc = v8_sel(xc > v8_splat(127.0f), v8_splat(127.0f), xc);
    const v8sf t = xc + 12582912.0f; /* 1.5 * 2^23: the low mantissa bits of t hold round(x) */
    const v8sf kf = t - 12582912.0f;
    const v8sf r = xc - kf;
    const v8sf p = SF_EXP2_POLY(r);
    const v8si k = (v8si)t - 0x4B400000;
    return p * (v8sf)((k + 127) << 23);
}

/* A block of rows' log-sum-exp in natural units from their base-2 maxima m and sums l >= 1 of
 * 2^(s - m): ln 2 (m + e) + ln(mant) for l = 2^e mant, mant in [sqrt(1/2), sqrt(2)), and
 * ln(1 + f) = f - f^2/2 + f^3 P(f) (f = mant - 1, P of degree 7 fitted for this project as for
 * 2^r: 5.8e-9 relative in exact arithmetic, 7.6e-8 in float). One vector for the block instead
 * of a scalar logf per row (bench/attention_ab.sh: the forward 0.85x at PatchTST's shapes,
 * bench/results/xeon_s35/attention_ab_vector_lse_vs_9e05f07.txt). NaN in l stays NaN;
 * l is never below 1 (the row's largest term is 2^0 = 1 exactly). */
#define SF_LOG1P_P(f)                                                                         \
    ((((((((f) * -7.634496689e-02f + 1.276157647e-01f) * (f) - 1.316018254e-01f) * (f) +       \
         1.420175731e-01f) * (f) - 1.662335694e-01f) * (f) + 2.000122666e-01f) * (f) -          \
      2.500081956e-01f) * (f) + 3.333333135e-01f)
static inline __attribute__((always_inline)) v8sf v8_lse(v8sf m, v8sf l) {
    const v8si bits = (v8si)l;
    v8sf mant = (v8sf)((bits & 0x7FFFFF) | 0x3F800000);
    const v8si big = mant > v8_splat(1.41421356f);
    mant = v8_sel(big, mant * 0.5f, mant);
    const v8si e = ((bits >> 23) - 127) - big; /* big is -1 where mant was halved */
    const v8sf f = mant - 1.0f, z = f * f;
    const v8sf lnm = f + (SF_LOG1P_P(f) * f * z - 0.5f * z);
    const v8sf r = (m + __builtin_convertvector(e, v8sf)) * SF_LN2 + lnm;
    return v8_sel(l != l, l, r);
}

static inline __attribute__((always_inline)) void fwd_rows_small_dh(
    float *restrict o, long ldo, float *restrict lse, const float *restrict q,
    const float *restrict k, const float *restrict v, long ld, int T, const int Dh, float scale,
    int causal, int i0, int ni) {
    v8sf qa[SF_ATT_SMALL_DH], qb[SF_ATT_SMALL_DH], aa[SF_ATT_SMALL_DH], ab[SF_ATT_SMALL_DH];
    float tq[SF_ATT_RL];
    const float scale2 = scale * SF_LOG2E; /* scores in base-2 units (see v8_exp2) */
    for (int d = 0; d < Dh; d++) {
        for (int r = 0; r < SF_ATT_RL; r++) tq[r] = q[(long)(i0 + imin(r, ni - 1)) * ld + d] * scale2;
        memcpy(&qa[d], tq, sizeof(v8sf));
        memcpy(&qb[d], tq + 8, sizeof(v8sf));
        aa[d] = ab[d] = v8_splat(0.0f);
    }
    const v8si rowa = (v8si){0, 1, 2, 3, 4, 5, 6, 7} + i0, rowb = rowa + 8;
    const v8sf ninf = v8_splat(-INFINITY);
    v8sf ma = ninf, mb = ninf, la = v8_splat(0.0f), lb = la;
    const int jend = causal ? i0 + ni : T;
    for (int j = 0; j < jend; j++) {
        const float *restrict kr = k + (long)j * ld;
        v8sf sa = qa[0] * kr[0], sb = qb[0] * kr[0];
        for (int d = 1; d < Dh; d++) sa += qa[d] * kr[d], sb += qb[d] * kr[d];
        if (causal) {
            const v8si js = (v8si){j, j, j, j, j, j, j, j};
            sa = v8_sel(js <= rowa, sa, ninf);
            sb = v8_sel(js <= rowb, sb, ninf);
        }
        ma = v8_sel(sa > ma, sa, ma);
        mb = v8_sel(sb > mb, sb, mb);
    }
    for (int j = 0; j < jend; j++) {
        const float *restrict kr = k + (long)j * ld;
        const float *restrict vr = v + (long)j * ld;
        v8sf sa = qa[0] * kr[0], sb = qb[0] * kr[0];
        for (int d = 1; d < Dh; d++) sa += qa[d] * kr[d], sb += qb[d] * kr[d];
        v8sf pa = v8_exp2(sa - ma, 0), pb = v8_exp2(sb - mb, 0);
        if (causal) {
            const v8si js = (v8si){j, j, j, j, j, j, j, j};
            pa = v8_sel(js <= rowa, pa, v8_splat(0.0f));
            pb = v8_sel(js <= rowb, pb, v8_splat(0.0f));
        }
        la += pa;
        lb += pb;
        for (int d = 0; d < Dh; d++) aa[d] += pa * vr[d], ab[d] += pb * vr[d];
    }
    float acc[SF_ATT_SMALL_DH][SF_ATT_RL], l[SF_ATT_RL];
    for (int d = 0; d < Dh; d++) {
        memcpy(acc[d], &aa[d], sizeof(v8sf));
        memcpy(acc[d] + 8, &ab[d], sizeof(v8sf));
    }
    memcpy(l, &la, sizeof(v8sf));
    memcpy(l + 8, &lb, sizeof(v8sf));
    for (int r = 0; r < ni; r++) {
        const float inv = 1.0f / l[r];
        float *orow = o + (long)(i0 + r) * ldo;
        for (int d = 0; d < Dh; d++) orow[d] = acc[d][r] * inv;
    }
    if (lse) { /* NULL: not wanted (inference) */
        float ls[SF_ATT_RL];
        const v8sf lsa = v8_lse(ma, la), lsb = v8_lse(mb, lb);
        memcpy(ls, &lsa, sizeof(v8sf));
        memcpy(ls + 8, &lsb, sizeof(v8sf));
        for (int r = 0; r < ni; r++) lse[i0 + r] = ls[r];
    }
}

/* The x86-64-v4 forward (fwd_rows_small_512): the block of SF_ATT_RL = 16 query rows is one
 * 16-lane vector instead of two 8-lane ones, the same operations per lane (the same bits;
 * test_attention_kernel compares). A separate copy on purpose: written once with 16-lane vectors
 * for both, GCC's lowering of them to 8-lane pairs in the AVX2 clone ran t2 3.5x slower. */
typedef float v16sf __attribute__((vector_size(64)));
#define SF_ATT_S_CACHE 256
typedef int32_t v16si __attribute__((vector_size(64)));

static inline __attribute__((always_inline)) v16sf v16_splat(float x) {
    return (v16sf){x, x, x, x, x, x, x, x, x, x, x, x, x, x, x, x};
}
static inline __attribute__((always_inline)) v16sf v16_sel(v16si m, v16sf a, v16sf b) {
    return (v16sf)(((v16si)a & m) | ((v16si)b & ~m));
}
/* s > m ? s : m per lane, which is exactly what vmaxps computes (it returns its second operand
 * when either is NaN or both are zeros), in one instruction: the compare + blend GCC made of the
 * select was the first pass's critical path (a running max over the keys). */
static inline __attribute__((always_inline, target("arch=x86-64-v4"))) v16sf v16_max(v16sf s,
                                                                                   v16sf m) {
    return (v16sf)__builtin_ia32_maxps512_mask((v16sf)s, (v16sf)m, (v16sf)m,
                                               (unsigned short)0xFFFF, 4);
}
/* v8_exp2's operations on 16 lanes, with no AVX-512 builtins: for bwd_rows_small16_dh, which
 * has no target attribute of its own (with one, GCC built its vector constants lane by lane,
 * under the caller's no-tree-vectorize, and the backward ran much slower). */
static inline __attribute__((always_inline)) v16sf v16_exp2_generic(v16sf x, const int upper) {
    v16sf xc = v16_sel(v16_splat(-126.0f) > x, v16_splat(-126.0f), x);
    if (upper) xc = v16_sel(xc > v16_splat(127.0f), v16_splat(127.0f), xc);
    const v16sf t = xc + 12582912.0f;
    const v16sf kf = t - 12582912.0f;
    const v16sf r = xc - kf;
    const v16sf p = SF_EXP2_POLY(r);
    const v16si k = (v16si)t - 0x4B400000;
    return p * (v16sf)((k + 127) << 23);
}

/* v8_lse on 16 lanes, the same operations. */
static inline __attribute__((always_inline)) v16sf v16_lse(v16sf m, v16sf l) {
    const v16si bits = (v16si)l;
    v16sf mant = (v16sf)((bits & 0x7FFFFF) | 0x3F800000);
    const v16si big = mant > v16_splat(1.41421356f);
    mant = v16_sel(big, mant * 0.5f, mant);
    const v16si e = ((bits >> 23) - 127) - big;
    const v16sf f = mant - 1.0f, z = f * f;
    const v16sf lnm = f + (SF_LOG1P_P(f) * f * z - 0.5f * z);
    const v16sf r = (m + __builtin_convertvector(e, v16sf)) * SF_LN2 + lnm;
    return v16_sel(l != l, l, r);
}

/* The forward's v8_exp2(x, 0) on 16 lanes, the same bits in fewer operations: the clamp is one
 * vmaxps with the constant first (it returns its second operand, x, when x is NaN, as the select
 * does), and 2^k is applied by vscalefps instead of building the float 2^k and multiplying (both
 * exact while 2^k is normal). The constant is not a v16_splat: GCC built that lane by lane. */
static inline __attribute__((always_inline, target("arch=x86-64-v4"))) v16sf v16_exp2_nonpos(
    v16sf x) {
    const v16sf zero = {0};
    const v16sf xc = v16_max(zero - 126.0f, x);
    const v16sf t = xc + 12582912.0f;
    const v16sf kf = t - 12582912.0f;
    const v16sf r = xc - kf;
    const v16sf p = SF_EXP2_POLY(r);
    return (v16sf)__builtin_ia32_scalefps512_mask(p, kf, p, (unsigned short)0xFFFF, 4);
}

/* exp(x) clamped to [-87, 88] (one power-of-two scale stays a normal float), a two-constant
 * Cody-Waite reduction and sf_expf_fast's degree-7 polynomial in Estrin form: the wide-head
 * forward's exp on full tiles (softmax_tile16), per lane exp_softmax_arg's operations. */
static inline __attribute__((always_inline)) v16sf v16_exp_bwd(v16sf x) {
    v16sf xc = v16_sel(v16_splat(-87.0f) > x, v16_splat(-87.0f), x);
    xc = v16_sel(xc > v16_splat(88.0f), v16_splat(88.0f), xc);
    const v16sf t = xc * 1.44269504088896341f + 12582912.0f;
    const v16sf kf = t - 12582912.0f;
    v16sf r = xc - kf * 0.693359375f;
    r = r - kf * -2.12194440e-4f;
    const v16sf r2 = r * r, r4 = r2 * r2;
    const v16sf a = r + 1.0f, b = r * (1.0f / 6.0f) + 0.5f;
    const v16sf c = r * (1.0f / 120.0f) + 1.0f / 24.0f, d = r * (1.0f / 5040.0f) + 1.0f / 720.0f;
    const v16sf p = (a + r2 * b) + r4 * (c + r2 * d);
    const v16si k = (v16si)t - 0x4B400000;
    return p * (v16sf)((k + 127) << 23);
}

static inline __attribute__((always_inline, target("arch=x86-64-v4"))) void fwd_rows_small16_dh(
    float *restrict o, long ldo, float *restrict lse, const float *restrict q,
    const float *restrict k, const float *restrict v, long ld, int T, const int Dh, float scale,
    int causal, int i0, int ni) {
    v16sf qv[SF_ATT_SMALL_DH], acc[SF_ATT_SMALL_DH];
    float tq[SF_ATT_RL];
    const float scale2 = scale * SF_LOG2E; /* scores in base-2 units (see v8_exp2) */
    for (int d = 0; d < Dh; d++) {
        for (int r = 0; r < SF_ATT_RL; r++) tq[r] = q[(long)(i0 + imin(r, ni - 1)) * ld + d] * scale2;
        memcpy(&qv[d], tq, sizeof(v16sf));
        acc[d] = v16_splat(0.0f);
    }
    const v16si row = (v16si){0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15} + i0;
    const v16sf ninf = v16_splat(-INFINITY);
    v16sf m = ninf, l = v16_splat(0.0f);
    const int jend = causal ? i0 + ni : T;
    /* up to SF_ATT_S_CACHE keys the first pass keeps its scores for the second (the same values
     * as recomputing them; 16 KB of stack) */
    v16sf sc[SF_ATT_S_CACHE];
    const int cached = jend <= SF_ATT_S_CACHE;
    for (int j = 0; j < jend; j++) {
        const float *restrict kr = k + (long)j * ld;
        v16sf s = qv[0] * kr[0];
        for (int d = 1; d < Dh; d++) s += qv[d] * kr[d];
        if (causal) s = v16_sel((v16si){0} + j <= row, s, ninf);
        if (cached) sc[j] = s;
        m = v16_max(s, m);
    }
    for (int j = 0; j < jend; j++) {
        const float *restrict kr = k + (long)j * ld;
        const float *restrict vr = v + (long)j * ld;
        v16sf s;
        if (cached) {
            s = sc[j];
        } else {
            s = qv[0] * kr[0];
            for (int d = 1; d < Dh; d++) s += qv[d] * kr[d];
        }
        v16sf p = v16_exp2_nonpos(s - m);
        if (causal) p = v16_sel((v16si){0} + j <= row, p, v16_splat(0.0f));
        l += p;
        for (int d = 0; d < Dh; d++) acc[d] += p * vr[d];
    }
    /* o = acc * (1 / l) on all 16 lanes at once (the same two roundings per element as one row
     * at a time), then each row's Dh values stored */
    const v16sf inv = v16_splat(1.0f) / l;
    float accs[SF_ATT_SMALL_DH][SF_ATT_RL];
    for (int d = 0; d < Dh; d++) {
        const v16sf od = acc[d] * inv;
        memcpy(accs[d], &od, sizeof(v16sf));
    }
    for (int r = 0; r < ni; r++) {
        float *orow = o + (long)(i0 + r) * ldo;
        for (int d = 0; d < Dh; d++) orow[d] = accs[d][r];
    }
    if (lse) { /* NULL: not wanted (inference) */
        float ls[SF_ATT_RL];
        const v16sf lv = v16_lse(m, l);
        memcpy(ls, &lv, sizeof(v16sf));
        for (int r = 0; r < ni; r++) lse[i0 + r] = ls[r];
    }
}

SF_MULTIVERSION static void fwd_rows_small(float *restrict o, long ldo, float *restrict lse,
                                           const float *restrict q, const float *restrict k,
                                           const float *restrict v, long ld, int T, int Dh,
                                           float scale, int causal, int i0, int ni) {
#define SF_ATT_CASE(D)                                                                      \
    case D:                                                                                 \
        fwd_rows_small_dh(o, ldo, lse, q, k, v, ld, T, D, scale, causal, i0, ni);           \
        break;
    switch (Dh) {
        SF_ATT_CASE(1) SF_ATT_CASE(2) SF_ATT_CASE(3) SF_ATT_CASE(4)
        SF_ATT_CASE(5) SF_ATT_CASE(6) SF_ATT_CASE(7) SF_ATT_CASE(8)
        default: SF_ASSERT(0 && "fwd_rows_small: Dh > SF_ATT_SMALL_DH");
    }
#undef SF_ATT_CASE
}

#if SF_HAVE_CLONES
SF_TARGET_V4 static void fwd_rows_small_512(float *restrict o, long ldo, float *restrict lse,
                                            const float *restrict q, const float *restrict k,
                                            const float *restrict v, long ld, int T, int Dh,
                                            float scale, int causal, int i0, int ni) {
#define SF_ATT_CASE(D)                                                                      \
    case D:                                                                                 \
        fwd_rows_small16_dh(o, ldo, lse, q, k, v, ld, T, D, scale, causal, i0, ni);         \
        break;
    switch (Dh) {
        SF_ATT_CASE(1) SF_ATT_CASE(2) SF_ATT_CASE(3) SF_ATT_CASE(4)
        SF_ATT_CASE(5) SF_ATT_CASE(6) SF_ATT_CASE(7) SF_ATT_CASE(8)
        default: SF_ASSERT(0 && "fwd_rows_small_512: Dh > SF_ATT_SMALL_DH");
    }
#undef SF_ATT_CASE
}
#else
#define fwd_rows_small_512 fwd_rows_small
#endif

/* Small-head backward (Dh <= SF_ATT_SMALL_DH), query rows in the lanes; replaces bwd_head there
 * (PatchTST, T = 42, Dh = 4, B*H = 3584: 15.9 -> 7.5 ms per call single-thread). The rows are
 * taken in chunks of SF_ATT_BW_CH; their scaled q, dout, lse and D = rowsum(dout * o) are
 * transposed to [d][row] on the stack, their dq accumulates there in 8-lane vectors. For each key
 * j visible to the chunk a first sweep over the chunk's vectors recomputes
 *   s = scale q_i . k_j, p = exp(s - lse_i), dp = dout_i . v_j, ds = p (dp - D_i)
 * (stored per vector), and a second sweep accumulates dq_i += ds k_j in the lanes and the
 * dk_j (ds * scale q_i) and dv_j (p * dout_i) contributions in 2*Dh vectors, which a fixed
 * shuffle tree sums across lanes once per (key, chunk); two sweeps keep fewer registers live
 * than one. dk, dv rows are written by the first chunk that sees the key and added to by later
 * ones. Lanes past the last row have q = dout = lse = D = 0, so p = 1 and ds = p * dout = 0:
 * they contribute nothing. Stack use is fixed (about 7 KB); the summation order depends only on
 * T, so results do not depend on the thread count. */
#define SF_ATT_BW_CH 64
#define SF_ATT_BW_NV (SF_ATT_BW_CH / 8)
#if defined(__clang__)
#define SF_V8_SHUF(a, b, ...) __builtin_shufflevector(a, b, __VA_ARGS__)
#else
#define SF_V8_SHUF(a, b, ...) __builtin_shuffle(a, b, (v8si){__VA_ARGS__})
#endif
static inline __attribute__((always_inline)) v8sf v8_load(const float *p) {
    v8sf x;
    memcpy(&x, p, sizeof x);
    return x;
}
/* Lane k of the result is the sum of the lanes of a[k] (a[0..7]), always in the same order. */
static inline __attribute__((always_inline)) v8sf v8_pairsum(v8sf a, v8sf b) {
    return SF_V8_SHUF(a, b, 0, 8, 2, 10, 4, 12, 6, 14) + SF_V8_SHUF(a, b, 1, 9, 3, 11, 5, 13, 7, 15);
}
static inline __attribute__((always_inline)) v8sf v8_quadsum(v8sf a, v8sf b) {
    return SF_V8_SHUF(a, b, 0, 1, 8, 9, 4, 5, 12, 13) + SF_V8_SHUF(a, b, 2, 3, 10, 11, 6, 7, 14, 15);
}
static inline __attribute__((always_inline)) v8sf v8_halfsum(v8sf a, v8sf b) {
    return SF_V8_SHUF(a, b, 0, 1, 2, 3, 8, 9, 10, 11) + SF_V8_SHUF(a, b, 4, 5, 6, 7, 12, 13, 14, 15);
}
static inline __attribute__((always_inline)) v8sf v8_hsum8(const v8sf *a) {
    return v8_halfsum(v8_quadsum(v8_pairsum(a[0], a[1]), v8_pairsum(a[2], a[3])),
                      v8_quadsum(v8_pairsum(a[4], a[5]), v8_pairsum(a[6], a[7])));
}

static inline __attribute__((always_inline)) void bwd_rows_small_dh(
    float *restrict dq, float *restrict dk, float *restrict dv, const float *restrict dout,
    long ldo, const float *restrict o, const float *restrict lse, const float *restrict q,
    const float *restrict k, const float *restrict v, long ld, int T, const int Dh, float scale,
    int causal) {
    /* [d][row] of the chunk, written as scalars and read as vectors only in the key loop (long
     * after the stores, so no store-forwarding stalls) */
    float qf[SF_ATT_SMALL_DH][SF_ATT_BW_CH] __attribute__((aligned(32)));
    float gf[SF_ATT_SMALL_DH][SF_ATT_BW_CH] __attribute__((aligned(32)));
    float lf[SF_ATT_BW_CH] __attribute__((aligned(32))), Df[SF_ATT_BW_CH] __attribute__((aligned(32)));
    v8sf dqv[SF_ATT_SMALL_DH][SF_ATT_BW_NV];
    v8sf pb[SF_ATT_BW_NV], sb[SF_ATT_BW_NV]; /* p and dS / scale of one key */
    const v8si lane = (v8si){0, 1, 2, 3, 4, 5, 6, 7};
    for (int r0 = 0; r0 < T; r0 += SF_ATT_BW_CH) {
        const int nr = imin(SF_ATT_BW_CH, T - r0), nv = (nr + 7) / 8;
        for (int i = 0; i < nr; i++) {
            const long t = r0 + i;
            const float *qr = q + t * ld, *gr = dout + t * ldo, *orow = o + t * ldo;
            float Dt = 0.0f;
            for (int d = 0; d < Dh; d++) {
                qf[d][i] = qr[d] * scale;
                gf[d][i] = gr[d];
                Dt += gr[d] * orow[d];
            }
            lf[i] = lse[t] * SF_LOG2E; /* base 2: p = 2^(s log2(e) - lf) */
            Df[i] = Dt;
        }
        for (int i = nr; i < nv * 8; i++) {
            for (int d = 0; d < Dh; d++) qf[d][i] = gf[d][i] = 0.0f;
            lf[i] = Df[i] = 0.0f;
        }
        for (int b = 0; b < nv; b++)
            for (int d = 0; d < Dh; d++) dqv[d][b] = v8_splat(0.0f);
        const int jend = causal ? r0 + nr : T;
        for (int j = 0; j < jend; j++) {
            const float *kr = k + (long)j * ld, *vr = v + (long)j * ld;
            v8sf kb[SF_ATT_SMALL_DH], vb[SF_ATT_SMALL_DH], acc[2 * SF_ATT_SMALL_DH];
            for (int d = 0; d < Dh; d++) {
                kb[d] = v8_splat(kr[d]);
                vb[d] = v8_splat(vr[d]);
                acc[d] = acc[Dh + d] = v8_splat(0.0f);
            }
            /* causal: vectors whose rows all precede j see nothing of key j */
            const int b0 = causal && j > r0 ? (j - r0) / 8 : 0;
            for (int b = b0; b < nv; b++) {
                const float *qb = qf[0] + 8 * b, *gb = gf[0] + 8 * b; /* row d at + d*CH */
                /* two partial sums (even / odd d) for a shorter dependency chain */
                v8sf s = v8_load(qb) * kb[0], dp = v8_load(gb) * vb[0];
                v8sf s1 = v8_splat(0.0f), dp1 = v8_splat(0.0f);
                for (int d = 1; d < Dh; d += 2) {
                    s1 += v8_load(qb + d * SF_ATT_BW_CH) * kb[d];
                    dp1 += v8_load(gb + d * SF_ATT_BW_CH) * vb[d];
                }
                for (int d = 2; d < Dh; d += 2) {
                    s += v8_load(qb + d * SF_ATT_BW_CH) * kb[d];
                    dp += v8_load(gb + d * SF_ATT_BW_CH) * vb[d];
                }
                s += s1;
                dp += dp1;
                v8sf p = v8_exp2(s * SF_LOG2E - v8_load(lf + 8 * b), 1);
                if (causal && b == b0) /* rows r0 + 8b + lane < j are masked */
                    p = v8_sel(lane + (r0 + 8 * b) >= j, p, v8_splat(0.0f));
                pb[b] = p;
                sb[b] = p * (dp - v8_load(Df + 8 * b)); /* dS / scale */
            }
            /* second sweep (fewer live registers than fusing it into the first): even vectors
             * into acc, odd ones into aco, then acc + aco, the order of the 16-lane kernel
             * (bwd_rows_small16_dh: its lanes 0-7 are an even vector here, 8-15 the odd one) */
            v8sf aco[2 * SF_ATT_SMALL_DH];
            for (int n = 0; n < 2 * Dh; n++) aco[n] = v8_splat(0.0f);
#define SF_ATT_SWEEP(b, A)                                                                  \
    do {                                                                                    \
        const float *qb = qf[0] + 8 * (b), *gb = gf[0] + 8 * (b);                           \
        for (int d = 0; d < Dh; d++) {                                                      \
            dqv[d][b] += sb[b] * kb[d];                                                     \
            A[d] += sb[b] * v8_load(qb + d * SF_ATT_BW_CH);                                 \
            A[Dh + d] += pb[b] * v8_load(gb + d * SF_ATT_BW_CH);                            \
        }                                                                                   \
    } while (0)
            int b = b0;
            if (b & 1) {
                SF_ATT_SWEEP(b, aco);
                b++;
            }
            for (; b + 1 < nv; b += 2) {
                SF_ATT_SWEEP(b, acc);
                SF_ATT_SWEEP(b + 1, aco);
            }
            if (b < nv) SF_ATT_SWEEP(b, acc);
#undef SF_ATT_SWEEP
            for (int n = 0; n < 2 * Dh; n++) acc[n] += aco[n];
            /* first chunk to see key j: the one holding row j (causal) or the first */
            const int first = causal ? j >= r0 : r0 == 0;
            float *dkr = dk + (long)j * ld, *dvr = dv + (long)j * ld;
            float red[2 * SF_ATT_SMALL_DH];
            if (2 * Dh <= 8) {
                v8sf a8[8];
                for (int n = 0; n < 8; n++) a8[n] = n < 2 * Dh ? acc[n] : v8_splat(0.0f);
                const v8sf r = v8_hsum8(a8);
                memcpy(red, &r, sizeof(float) * (size_t)(2 * Dh));
            } else {
                v8sf a8[8];
                for (int n = 0; n < 8; n++) a8[n] = n < Dh ? acc[n] : v8_splat(0.0f);
                const v8sf r1 = v8_hsum8(a8);
                for (int n = 0; n < 8; n++) a8[n] = n < Dh ? acc[Dh + n] : v8_splat(0.0f);
                const v8sf r2 = v8_hsum8(a8);
                memcpy(red, &r1, sizeof(float) * (size_t)Dh);
                memcpy(red + Dh, &r2, sizeof(float) * (size_t)Dh);
            }
            if (first)
                for (int d = 0; d < Dh; d++) dkr[d] = red[d], dvr[d] = red[Dh + d];
            else
                for (int d = 0; d < Dh; d++) dkr[d] += red[d], dvr[d] += red[Dh + d];
        }
        for (int b = 0; b < nv; b++) {
            float tq[SF_ATT_SMALL_DH][8];
            for (int d = 0; d < Dh; d++) memcpy(tq[d], &dqv[d][b], sizeof(v8sf));
            for (int r = 0; r < 8 && b * 8 + r < nr; r++) {
                float *dqr = dq + (long)(r0 + b * 8 + r) * ld;
                for (int d = 0; d < Dh; d++) dqr[d] = tq[d][r] * scale;
            }
        }
    }
}

SF_MULTIVERSION static void bwd_rows_small(float *restrict dq, float *restrict dk,
                                           float *restrict dv, const float *restrict dout,
                                           long ldo, const float *restrict o,
                                           const float *restrict lse, const float *restrict q,
                                           const float *restrict k, const float *restrict v,
                                           long ld, int T, int Dh, float scale, int causal) {
#define SF_ATT_CASE(D)                                                                      \
    case D:                                                                                 \
        bwd_rows_small_dh(dq, dk, dv, dout, ldo, o, lse, q, k, v, ld, T, D, scale, causal); \
        break;
    switch (Dh) {
        SF_ATT_CASE(1) SF_ATT_CASE(2) SF_ATT_CASE(3) SF_ATT_CASE(4)
        SF_ATT_CASE(5) SF_ATT_CASE(6) SF_ATT_CASE(7) SF_ATT_CASE(8)
        default: SF_ASSERT(0 && "bwd_rows_small: Dh > SF_ATT_SMALL_DH");
    }
#undef SF_ATT_CASE
}

#if SF_HAVE_CLONES
/* The x86-64-v4 backward: bwd_rows_small_dh with a block of 16 query rows per vector (half as
 * many vectors per key). Per lane the same operations; the dk/dv sums over a key's row vectors
 * run in the two halves of the lanes (rows 16c..16c+7 and 16c+8..16c+15, the even and odd
 * 8-lane vectors there), which are added before the same shuffle tree, as the 8-lane kernel does
 * with its even/odd accumulators: the same bits (test_attention_kernel compares). Blocks the
 * 8-lane kernel skips (causal: rows before the key; rows past the end) add exact zeros here. */
static inline __attribute__((always_inline)) v16sf v16_load(const float *p) {
    v16sf x;
    memcpy(&x, p, sizeof x);
    return x;
}
static inline __attribute__((always_inline)) v8sf v16_lo(v16sf x) {
    return __builtin_shufflevector(x, x, 0, 1, 2, 3, 4, 5, 6, 7);
}
static inline __attribute__((always_inline)) v8sf v16_hi(v16sf x) {
    return __builtin_shufflevector(x, x, 8, 9, 10, 11, 12, 13, 14, 15);
}
/* x in every lane by one broadcast (GCC builds v16_splat of a loaded value lane by lane, 16
 * masked broadcasts) */
static inline __attribute__((always_inline)) v16sf v16_bcast(float x) {
    v16sf t = v16_splat(0.0f);
    t[0] = x;
    return __builtin_shufflevector(t, t, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
}

#define SF_ATT_BW_NV16 (SF_ATT_BW_CH / 16)
static inline __attribute__((always_inline)) void bwd_rows_small16_dh(
    float *restrict dq, float *restrict dk, float *restrict dv, const float *restrict dout,
    long ldo, const float *restrict o, const float *restrict lse, const float *restrict q,
    const float *restrict k, const float *restrict v, long ld, int T, const int Dh, float scale,
    int causal) {
    float qf[SF_ATT_SMALL_DH][SF_ATT_BW_CH] __attribute__((aligned(64)));
    float gf[SF_ATT_SMALL_DH][SF_ATT_BW_CH] __attribute__((aligned(64)));
    float lf[SF_ATT_BW_CH] __attribute__((aligned(64))), Df[SF_ATT_BW_CH] __attribute__((aligned(64)));
    v16sf dqv[SF_ATT_SMALL_DH][SF_ATT_BW_NV16];
    v16sf pb[SF_ATT_BW_NV16], sb[SF_ATT_BW_NV16];
    const v16si lane = (v16si){0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
    for (int r0 = 0; r0 < T; r0 += SF_ATT_BW_CH) {
        const int nr = imin(SF_ATT_BW_CH, T - r0), nv = (nr + 15) / 16;
        for (int i = 0; i < nr; i++) {
            const long t = r0 + i;
            const float *qr = q + t * ld, *gr = dout + t * ldo, *orow = o + t * ldo;
            float Dt = 0.0f;
            for (int d = 0; d < Dh; d++) {
                qf[d][i] = qr[d] * scale;
                gf[d][i] = gr[d];
                Dt += gr[d] * orow[d];
            }
            lf[i] = lse[t] * SF_LOG2E; /* base 2: p = 2^(s log2(e) - lf) */
            Df[i] = Dt;
        }
        for (int i = nr; i < nv * 16; i++) {
            for (int d = 0; d < Dh; d++) qf[d][i] = gf[d][i] = 0.0f;
            lf[i] = Df[i] = 0.0f;
        }
        for (int b = 0; b < nv; b++)
            for (int d = 0; d < Dh; d++) dqv[d][b] = v16_splat(0.0f);
        const int jend = causal ? r0 + nr : T;
        for (int j = 0; j < jend; j++) {
            const float *kr = k + (long)j * ld, *vr = v + (long)j * ld;
            v16sf kb[SF_ATT_SMALL_DH], vb[SF_ATT_SMALL_DH], acc[2 * SF_ATT_SMALL_DH];
            for (int d = 0; d < Dh; d++) {
                kb[d] = v16_bcast(kr[d]);
                vb[d] = v16_bcast(vr[d]);
                acc[d] = acc[Dh + d] = v16_splat(0.0f);
            }
            const int b0 = causal && j > r0 ? (j - r0) / 16 : 0;
            for (int b = b0; b < nv; b++) {
                const float *qb = qf[0] + 16 * b, *gb = gf[0] + 16 * b;
                v16sf s = v16_load(qb) * kb[0], dp = v16_load(gb) * vb[0];
                v16sf s1 = v16_splat(0.0f), dp1 = v16_splat(0.0f);
                for (int d = 1; d < Dh; d += 2) {
                    s1 += v16_load(qb + d * SF_ATT_BW_CH) * kb[d];
                    dp1 += v16_load(gb + d * SF_ATT_BW_CH) * vb[d];
                }
                for (int d = 2; d < Dh; d += 2) {
                    s += v16_load(qb + d * SF_ATT_BW_CH) * kb[d];
                    dp += v16_load(gb + d * SF_ATT_BW_CH) * vb[d];
                }
                s += s1;
                dp += dp1;
                v16sf p = v16_exp2_generic(s * SF_LOG2E - v16_load(lf + 16 * b), 1);
                if (causal && b == b0)
                    p = v16_sel(lane + (r0 + 16 * b) >= j, p, v16_splat(0.0f));
                pb[b] = p;
                sb[b] = p * (dp - v16_load(Df + 16 * b));
            }
            for (int b = b0; b < nv; b++) {
                const float *qb = qf[0] + 16 * b, *gb = gf[0] + 16 * b;
                for (int d = 0; d < Dh; d++) {
                    dqv[d][b] += sb[b] * kb[d];
                    acc[d] += sb[b] * v16_load(qb + d * SF_ATT_BW_CH);
                    acc[Dh + d] += pb[b] * v16_load(gb + d * SF_ATT_BW_CH);
                }
            }
            const int first = causal ? j >= r0 : r0 == 0;
            float *dkr = dk + (long)j * ld, *dvr = dv + (long)j * ld;
            float red[2 * SF_ATT_SMALL_DH];
            v8sf h[2 * SF_ATT_SMALL_DH];
            for (int n = 0; n < 2 * Dh; n++) h[n] = v16_lo(acc[n]) + v16_hi(acc[n]);
            if (2 * Dh <= 8) {
                v8sf a8[8];
                for (int n = 0; n < 8; n++) a8[n] = n < 2 * Dh ? h[n] : v8_splat(0.0f);
                const v8sf r = v8_hsum8(a8);
                memcpy(red, &r, sizeof(float) * (size_t)(2 * Dh));
            } else {
                v8sf a8[8];
                for (int n = 0; n < 8; n++) a8[n] = n < Dh ? h[n] : v8_splat(0.0f);
                const v8sf r1 = v8_hsum8(a8);
                for (int n = 0; n < 8; n++) a8[n] = n < Dh ? h[Dh + n] : v8_splat(0.0f);
                const v8sf r2 = v8_hsum8(a8);
                memcpy(red, &r1, sizeof(float) * (size_t)Dh);
                memcpy(red + Dh, &r2, sizeof(float) * (size_t)Dh);
            }
            if (first)
                for (int d = 0; d < Dh; d++) dkr[d] = red[d], dvr[d] = red[Dh + d];
            else
                for (int d = 0; d < Dh; d++) dkr[d] += red[d], dvr[d] += red[Dh + d];
        }
        for (int b = 0; b < nv; b++) {
            float tq[SF_ATT_SMALL_DH][16];
            for (int d = 0; d < Dh; d++) memcpy(tq[d], &dqv[d][b], sizeof(v16sf));
            for (int r = 0; r < 16 && b * 16 + r < nr; r++) {
                float *dqr = dq + (long)(r0 + b * 16 + r) * ld;
                for (int d = 0; d < Dh; d++) dqr[d] = tq[d][r] * scale;
            }
        }
    }
}

/* no-tree-vectorize: GCC's AVX-512 auto-vectorisation of the scalar loops (the per-chunk
 * transposes into qf/gf) built vectors from masked broadcasts and made this kernel 1.6x slower
 * than the 8-lane one; the explicit vector code is unaffected */
__attribute__((target("arch=x86-64-v4"), optimize("fp-contract=fast", "no-tree-vectorize")))
static void bwd_rows_small_512(float *restrict dq, float *restrict dk,
                                            float *restrict dv, const float *restrict dout,
                                            long ldo, const float *restrict o,
                                            const float *restrict lse, const float *restrict q,
                                            const float *restrict k, const float *restrict v,
                                            long ld, int T, int Dh, float scale, int causal) {
#define SF_ATT_CASE(D)                                                                        \
    case D:                                                                                   \
        bwd_rows_small16_dh(dq, dk, dv, dout, ldo, o, lse, q, k, v, ld, T, D, scale, causal); \
        break;
    switch (Dh) {
        SF_ATT_CASE(1) SF_ATT_CASE(2) SF_ATT_CASE(3) SF_ATT_CASE(4)
        SF_ATT_CASE(5) SF_ATT_CASE(6) SF_ATT_CASE(7) SF_ATT_CASE(8)
        default: SF_ASSERT(0 && "bwd_rows_small_512: Dh > SF_ATT_SMALL_DH");
    }
#undef SF_ATT_CASE
}
#else
#define bwd_rows_small_512 bwd_rows_small
#endif
#else
#define SF_ATT_HAVE_VEC 0
#endif

/* ---- heads wider than SF_ATT_SMALL_DH: tiles as small matrix products ------------------- */

/* exp(x) for the wide-head kernels' softmax arguments (s - max <= 0 in the forward, scale s - lse
 * <= ~0 in the backward): clamped to [-87, 88] so that one power-of-two scale stays a normal float
 * (below -87 the result is 1.6e-38 instead of 0 or a subnormal: against a row sum >= 1 that is
 * below float resolution), and sf_expf_fast's degree-7 polynomial in Estrin form (a shorter
 * dependency chain): sf_expf_nonpos after the upper clamp, per lane the operations of
 * v16_exp_bwd. NaN passes through. Fewer operations
 * than sf_expf_fast's full-range form (one scale instead of a split one, Estrin's shorter
 * chains). */
static inline float exp_softmax_arg(float x) {
    return sf_expf_nonpos(sf_selectf(x > 88.0f, 88.0f, x)); /* the lower clamp is its own */
}

#if SF_ATT_HAVE_VEC
/* The forward's two passes over a full tile of scores st [nj][16 G] (G 16-lane groups of query
 * rows) with the running maxima and sums in registers: the omp simd loops kept mx[] and sum[] in
 * memory, a store-to-load chain per key (the same operations per lane in the same order: the same
 * bits). mx: in the maxima so far, out the new ones; sum: out the sums of exp(s - mx). */
static inline __attribute__((always_inline)) void softmax_tile16(const int G, float *st, int nj,
                                                               float *mx, float *sum) {
    v16sf m[4], l[4];
    for (int g = 0; g < G; g++) memcpy(&m[g], mx + 16 * g, sizeof m[g]), l[g] = v16_splat(0.0f);
    for (int j = 0; j < nj; j++)
        for (int g = 0; g < G; g++) {
            v16sf s;
            memcpy(&s, st + (j * G + g) * 16, sizeof s);
            m[g] = v16_sel(s > m[g], s, m[g]);
        }
    for (int j = 0; j < nj; j++)
        for (int g = 0; g < G; g++) {
            float *sr = st + (j * G + g) * 16;
            v16sf s;
            memcpy(&s, sr, sizeof s);
            const v16sf p = v16_exp_bwd(s - m[g]); /* exp_softmax_arg's operations */
            memcpy(sr, &p, sizeof p);
            l[g] += p;
        }
    for (int g = 0; g < G; g++) {
        memcpy(mx + 16 * g, &m[g], sizeof m[g]);
        memcpy(sum + 16 * g, &l[g], sizeof l[g]);
    }
}
#endif

/* One query tile [i0, i0+ni) of one (b, h). Pointers are already offset to the head. The
 * scaled queries are transposed once, to [Dh][brp] (brp = ni padded to 8 lanes); per key tile of
 * bc keys (its k and v rows first copied contiguous, as in bwd_head_w), S^T [nj][brp] = k q^T is
 * a register-blocked tile product (kernels/tile_gemm.h) with
 * the QUERIES in the lanes and k read from its copy, so the online softmax runs down the keys with
 * one vector lane per query row (no transposes of k, no horizontal reductions), and
 * acc [ni][Dh] += P v reads P^T in place and v from its copy, head columns in the lanes. */
static inline __attribute__((always_inline)) void fwd_query_tile_w(
    const int W, float *restrict o, long ldo, float *restrict lse, const float *restrict q,
    const float *restrict k, const float *restrict v, long ld, int T, int Dh, float scale,
    int causal, int i0, int ni) {
    float qt[SF_ATT_TILE];             /* [Dh][brp] scaled queries, transposed */
    float acc[SF_ATT_TILE];            /* [ni][Dh] unnormalised output */
    float st[SF_ATT_BC * SF_ATT_BR];   /* [nj][brp] scores, then probabilities */
    float kb[SF_ATT_TILE], vb[SF_ATT_TILE]; /* [nj][Dh] key and value tiles, contiguous */
    float m[SF_ATT_BR], l[SF_ATT_BR], mx[SF_ATT_BR], alpha[SF_ATT_BR];
    const int bc = key_tile(Dh), brp = pad_up(ni);
    for (int d = 0; d < Dh; d++) {
        for (int i = 0; i < ni; i++) qt[d * brp + i] = q[(long)(i0 + i) * ld + d] * scale;
        for (int i = ni; i < brp; i++) qt[d * brp + i] = 0.0f;
    }
    for (int i = 0; i < brp; i++) m[i] = -INFINITY, l[i] = 0.0f;
    memset(acc, 0, sizeof(float) * (size_t)ni * Dh);
    const int jend = causal ? i0 + ni : T; /* keys beyond the last row are masked */
    for (int j0 = 0; j0 < jend; j0 += bc) {
        const int nj = imin(bc, jend - j0);
        for (int j = 0; j < nj; j++) {
            memcpy(kb + j * Dh, k + (long)(j0 + j) * ld, sizeof(float) * (size_t)Dh);
            memcpy(vb + j * Dh, v + (long)(j0 + j) * ld, sizeof(float) * (size_t)Dh);
        }
        sf_tile_gemm_w(W, nj, brp, Dh, kb, Dh, 1, qt, brp, st, brp, 0);
        /* lane i (query i0 + i) sees key j0 + j when i < ni and, causal, j0 + j <= i0 + i */
        const int lim = causal ? i0 - j0 : T; /* causal: visible iff j <= i + lim */
        /* every lane sees every key of the tile: no masks (most tiles) */
        const int full = ni == brp && (!causal || j0 + nj - 1 <= i0);
        float sum[SF_ATT_BR];
        for (int i = 0; i < brp; i++) mx[i] = m[i], sum[i] = 0.0f;
#if SF_ATT_HAVE_VEC
        if (W == 16 && full && (brp == 32 || brp == 64)) {
            if (brp == 64) softmax_tile16(4, st, nj, mx, sum);
            else softmax_tile16(2, st, nj, mx, sum);
        } else
#endif
        if (full) {
            for (int j = 0; j < nj; j++) {
                const float *restrict sr = st + j * brp;
#pragma omp simd
                for (int i = 0; i < brp; i++) mx[i] = sr[i] > mx[i] ? sr[i] : mx[i];
            }
            for (int j = 0; j < nj; j++) {
                float *restrict sr = st + j * brp;
#pragma omp simd
                for (int i = 0; i < brp; i++) {
                    const float p = exp_softmax_arg(sr[i] - mx[i]);
                    sr[i] = p;
                    sum[i] += p;
                }
            }
        } else {
            for (int j = 0; j < nj; j++) {
                const float *restrict sr = st + j * brp;
#pragma omp simd
                for (int i = 0; i < brp; i++) {
                    const int vis = i < ni && j <= i + lim;
                    mx[i] = vis && sr[i] > mx[i] ? sr[i] : mx[i];
                }
            }
            for (int j = 0; j < nj; j++) {
                float *restrict sr = st + j * brp;
#pragma omp simd
                for (int i = 0; i < brp; i++) {
                    const int vis = i < ni && j <= i + lim;
                    const float p = sf_selectf(vis, exp_softmax_arg(sr[i] - mx[i]), 0.0f);
                    sr[i] = p;
                    sum[i] += p;
                }
            }
        }
        /* rows whose maximum grew rescale what they have; a lane that saw nothing yet (m and mx
         * both -inf: padding) keeps alpha 1 */
        int rescale = 0;
        for (int i = 0; i < ni; i++) {
            alpha[i] = m[i] == mx[i] ? 1.0f : sf_expf_fast(m[i] - mx[i]);
            l[i] = l[i] * alpha[i] + sum[i];
            m[i] = mx[i];
            rescale |= alpha[i] != 1.0f;
        }
        if (rescale && j0 > 0)
            for (int i = 0; i < ni; i++) {
                float *restrict a = acc + i * Dh;
                const float al = alpha[i];
#pragma omp simd
                for (int d = 0; d < Dh; d++) a[d] *= al;
            }
        sf_tile_gemm_w(W, ni, Dh, nj, st, 1, brp, vb, Dh, acc, Dh, 1);
    }
    for (int i = 0; i < ni; i++) {
        const int t = i0 + i;
        const float inv = 1.0f / l[i];
        float *orow = o + (long)t * ldo;
        for (int d = 0; d < Dh; d++) orow[d] = acc[i * Dh + d] * inv;
        if (lse) lse[t] = m[i] + logf(l[i]);
    }
}

/* All gradients of one (b, h). D_t = dout_t . o_t for every row first (this thread's scratch),
 * then an outer loop over key tiles (their dK, dV accumulate on the stack, [bc][Dh]) and an inner
 * loop over the query tiles that see them (dQ accumulates in dq, which this thread owns for this
 * head). The tiles' rows of k, q and dout are copied contiguous first: read in place, rows
 * 3 H Dh floats apart fall into few L1 sets (a multiple of 1 KiB apart at H Dh = 256) and evict
 * each other between the tile products. Per (key tile, query tile), five tile products:
 *   S = q k^T, dP = dout v^T       (keys in the lanes, against k, v transposed to [Dh][bc])
 *   P = exp(scale S - lse), dS' = scale P (dP - D),  D_t = dout_t . o_t
 *   dV += P^T dout, dK += dS'^T q  (A read transposed in place)
 *   dQ += dS' k                    (k from its row copy) */
static inline __attribute__((always_inline)) void bwd_head_w(
    const int W, float *restrict dq, float *restrict dk, float *restrict dv,
    const float *restrict dout, long ldo, const float *restrict o, const float *restrict lse,
    const float *restrict q, const float *restrict k, const float *restrict v, long ld, int T,
    int Dh, float scale, int causal) {
    float kt[SF_ATT_TILE], vt[SF_ATT_TILE];   /* [Dh][bc] */
    float dkt[SF_ATT_TILE], dvt[SF_ATT_TILE]; /* [bc][Dh] */
    float p[SF_ATT_BR * SF_ATT_BC], ds[SF_ATT_BR * SF_ATT_BC]; /* [br][bc] */
    float kc[SF_ATT_TILE], qc[SF_ATT_TILE], gc[SF_ATT_TILE]; /* [rows][Dh] contiguous copies */
    const int bc = key_tile(Dh), br = query_tile(Dh);
    for (int t = 0; t < T; t++) memset(dq + (long)t * ld, 0, sizeof(float) * (size_t)Dh);
    const size_t mark = sf_scratch_mark();
    float *Dall = sf_scratch_push((size_t)T);
    for (int t = 0; t < T; t++) { /* D_t = sum_j P_tj dP_tj = dout_t . o_t */
        const float *gr = dout + (long)t * ldo, *orow = o + (long)t * ldo;
        /* eight partial sums in a fixed order (not an omp simd reduction, whose order
         * follows the vector width): the 8- and 16-lane versions give the same bits */
        float part[8] = {0, 0, 0, 0, 0, 0, 0, 0}, Dt = 0.0f;
        int d = 0;
        for (; d + 8 <= Dh; d += 8)
            for (int e = 0; e < 8; e++) part[e] += gr[d + e] * orow[d + e];
        for (; d < Dh; d++) Dt += gr[d] * orow[d];
        Dall[t] = Dt + (((part[0] + part[4]) + (part[1] + part[5])) +
                        ((part[2] + part[6]) + (part[3] + part[7])));
    }
    for (int j0 = 0; j0 < T; j0 += bc) {
        const int nj = imin(bc, T - j0), jp = pad_up(nj);
        load_transposed(kt, k, ld, j0, nj, bc, Dh);
        load_transposed(vt, v, ld, j0, nj, bc, Dh);
        for (int j = 0; j < nj; j++)
            memcpy(kc + j * Dh, k + (long)(j0 + j) * ld, sizeof(float) * (size_t)Dh);
        memset(dkt, 0, sizeof(float) * (size_t)nj * Dh);
        memset(dvt, 0, sizeof(float) * (size_t)nj * Dh);
        for (int i0 = causal ? j0 / br * br : 0; i0 < T; i0 += br) {
            const int ni = imin(br, T - i0);
            const float *qb = qc, *gb = gc; /* the tile's rows, copied contiguous */
            for (int i = 0; i < ni; i++) {
                memcpy(qc + i * Dh, q + (long)(i0 + i) * ld, sizeof(float) * (size_t)Dh);
                memcpy(gc + i * Dh, dout + (long)(i0 + i) * ldo, sizeof(float) * (size_t)Dh);
            }
            const float *Dr = Dall + i0;
            sf_tile_gemm_w(W, ni, jp, Dh, qb, Dh, 1, kt, bc, p, bc, 0);
            sf_tile_gemm_w(W, ni, jp, Dh, gb, Dh, 1, vt, bc, ds, bc, 0);
            for (int i = 0; i < ni; i++) {
                const int jn = causal ? imin(nj, i0 + i - j0 + 1) : nj;
                const float lt = lse[i0 + i], Dt = Dr[i];
                float *restrict pr = p + i * bc, *restrict dr = ds + i * bc;
#pragma omp simd
                for (int j = 0; j < jp; j++) {
                    const float pj = sf_selectf(j < jn, exp_softmax_arg(scale * pr[j] - lt), 0.0f);
                    pr[j] = pj;
                    dr[j] = scale * pj * (dr[j] - Dt);
                }
            }
            sf_tile_gemm_w(W, nj, Dh, ni, p, 1, bc, gb, Dh, dvt, Dh, 1);
            sf_tile_gemm_w(W, nj, Dh, ni, ds, 1, bc, qb, Dh, dkt, Dh, 1);
            sf_tile_gemm_w(W, ni, Dh, nj, ds, bc, 1, kc, Dh, dq + (long)i0 * ld, ld, 1);
        }
        for (int j = 0; j < nj; j++) {
            memcpy(dk + (long)(j0 + j) * ld, dkt + j * Dh, sizeof(float) * (size_t)Dh);
            memcpy(dv + (long)(j0 + j) * ld, dvt + j * Dh, sizeof(float) * (size_t)Dh);
        }
    }
    sf_scratch_release(mark);
}

/* The wide-head kernels: the AVX2 (and portable) clones with 8-lane tile products, and an
 * x86-64-v4 version with 16-lane ones (the same sums in the same order: the same bits), which runs
 * where sf_avx512() says so. */
SF_MULTIVERSION static void fwd_query_tile(float *restrict o, long ldo, float *restrict lse,
                                           const float *restrict q, const float *restrict k,
                                           const float *restrict v, long ld, int T, int Dh,
                                           float scale, int causal, int i0, int ni) {
    fwd_query_tile_w(8, o, ldo, lse, q, k, v, ld, T, Dh, scale, causal, i0, ni);
}
SF_MULTIVERSION static void bwd_head(float *restrict dq, float *restrict dk, float *restrict dv,
                                     const float *restrict dout, long ldo,
                                     const float *restrict o, const float *restrict lse,
                                     const float *restrict q, const float *restrict k,
                                     const float *restrict v, long ld, int T, int Dh,
                                     float scale, int causal) {
    bwd_head_w(8, dq, dk, dv, dout, ldo, o, lse, q, k, v, ld, T, Dh, scale, causal);
}
#if SF_HAVE_CLONES
SF_TARGET_V4 static void fwd_query_tile_512(float *restrict o, long ldo, float *restrict lse,
                                            const float *restrict q, const float *restrict k,
                                            const float *restrict v, long ld, int T, int Dh,
                                            float scale, int causal, int i0, int ni) {
    fwd_query_tile_w(16, o, ldo, lse, q, k, v, ld, T, Dh, scale, causal, i0, ni);
}
SF_TARGET_V4 static void bwd_head_512(float *restrict dq, float *restrict dk, float *restrict dv,
                                      const float *restrict dout, long ldo,
                                      const float *restrict o, const float *restrict lse,
                                      const float *restrict q, const float *restrict k,
                                      const float *restrict v, long ld, int T, int Dh,
                                      float scale, int causal) {
    bwd_head_w(16, dq, dk, dv, dout, ldo, o, lse, q, k, v, ld, T, Dh, scale, causal);
}
#else
#define fwd_query_tile_512 fwd_query_tile
#define bwd_head_512 bwd_head
#endif

/* One call's arguments and tiling, shared by its work items. */
typedef struct {
    float *o, *lse;
    const float *q, *k, *v;
    const int *lens;
    int ldo, ld, T, H, Dh, causal, small, br, nqt, wide;
    float scale;
} fwd_job;

/* Work item it = (pair, query tile), pair-major. */
static inline void fwd_item(const fwd_job *J, long it) {
    const long pair = it / J->nqt;
    const int qt = (int)(it % J->nqt), T = J->T, Dh = J->Dh, br = J->br;
    const int b = (int)(pair / J->H), h = (int)(pair % J->H);
    const long base = (long)b * T * J->ld + (long)h * Dh;
    const int i0 = qt * br;
    /* Padding: the tile kernels see a sequence of n tokens (keys j >= n and rows i >= n never
     * enter), and rows [max(i0, n), i0 + br) of this tile are zeroed. */
    const int n = J->lens ? J->lens[b] : T;
    float *ob = J->o + (long)b * T * J->ldo + (long)h * Dh, *lb = J->lse ? J->lse + pair * T : NULL;
    if (i0 < n) {
#if SF_ATT_HAVE_VEC
        if (J->small)
            (J->wide ? fwd_rows_small_512 : fwd_rows_small)(
                ob, J->ldo, lb, J->q + base, J->k + base, J->v + base, J->ld, n, Dh, J->scale,
                J->causal, i0, imin(br, n - i0));
        else
#endif
            (J->wide ? fwd_query_tile_512 : fwd_query_tile)(
                ob, J->ldo, lb, J->q + base, J->k + base, J->v + base, J->ld, n, Dh, J->scale,
                J->causal, i0, imin(br, n - i0));
    }
    if (n < T) {
        const int r0 = i0 > n ? i0 : n, r1 = imin(i0 + br, T);
        zero_rows(ob, J->ldo, r0, r1, Dh);
        if (lb)
            for (int r = r0; r < r1; r++) lb[r] = 0.0f;
    }
}

void sf_attention_forward(float *o, int ldo, float *lse, const float *q, const float *k,
                          const float *v, int ld, int B, int T, int H, int Dh, float scale,
                          int causal, const int *lens) {
    check_args(ld, ldo, B, T, H, Dh);
    check_lens(lens, B, T);
    if (B == 0 || T == 0) return;
    const int small = SF_ATT_HAVE_VEC && Dh <= SF_ATT_SMALL_DH;
    const int br = small ? SF_ATT_RL : query_tile(Dh);
    const int nqt = (T + br - 1) / br;
    const long npairs = (long)B * H, nitems = npairs * nqt;
    const int nth = n_threads_for(npairs * T * T);
    /* Items are (pair, query tile), pair-major, handed out in contiguous chunks so neighbouring
     * heads of the same token (which share cache lines of o) mostly stay on one thread. */
    const long chunk = nitems / ((long)nth * 16) > 1 ? nitems / ((long)nth * 16) : 1;
    const fwd_job J = {.o = o, .lse = lse, .q = q, .k = k, .v = v, .lens = lens, .ldo = ldo,
                       .ld = ld, .T = T, .H = H, .Dh = Dh, .causal = causal, .small = small,
                       .br = br, .nqt = nqt, .wide = sf_avx512() /* outside the region */,
                       .scale = scale};
    if (sf_parallel_worth(nth > 1)) { /* no region at all when one thread would run it */
#pragma omp parallel for schedule(dynamic, chunk) num_threads(nth)
        for (long it = 0; it < nitems; it++) fwd_item(&J, it);
    } else {
        for (long it = 0; it < nitems; it++) fwd_item(&J, it);
    }
}

/* ---- backward ------------------------------------------------------------------------ */

typedef struct {
    float *dq, *dk, *dv;
    const float *dout, *o, *lse, *q, *k, *v;
    const int *lens;
    int ldo, ld, T, H, Dh, causal, wide;
    float scale;
} bwd_job;

/* Work item: one (batch, head) pair. */
static inline void bwd_item(const bwd_job *J, long pair) {
    const int T = J->T, Dh = J->Dh, ld = J->ld, ldo = J->ldo;
    const int b = (int)(pair / J->H), h = (int)(pair % J->H);
    const long base = (long)b * T * ld + (long)h * Dh;
    const long obase = (long)b * T * ldo + (long)h * Dh;
    /* Padding: the head kernels see the first n tokens only; gradient rows >= n are 0. */
    const int n = J->lens ? J->lens[b] : T;
#if SF_ATT_HAVE_VEC
    if (Dh <= SF_ATT_SMALL_DH)
        (J->wide ? bwd_rows_small_512 : bwd_rows_small)(
            J->dq + base, J->dk + base, J->dv + base, J->dout + obase, ldo, J->o + obase,
            J->lse + pair * T, J->q + base, J->k + base, J->v + base, ld, n, Dh, J->scale,
            J->causal);
    else
#endif
        (J->wide ? bwd_head_512 : bwd_head)(J->dq + base, J->dk + base, J->dv + base,
                                            J->dout + obase, ldo, J->o + obase, J->lse + pair * T,
                                            J->q + base, J->k + base, J->v + base, ld, n, Dh,
                                            J->scale, J->causal);
    if (n < T) {
        zero_rows(J->dq + base, ld, n, T, Dh);
        zero_rows(J->dk + base, ld, n, T, Dh);
        zero_rows(J->dv + base, ld, n, T, Dh);
    }
}

void sf_attention_backward(float *dq, float *dk, float *dv, const float *dout, int ldo,
                           const float *o, const float *lse, const float *q, const float *k,
                           const float *v, int ld, int B, int T, int H, int Dh, float scale,
                           int causal, const int *lens) {
    check_args(ld, ldo, B, T, H, Dh);
    check_lens(lens, B, T);
    if (B == 0 || T == 0) return;
    const long npairs = (long)B * H;
    const int nth = n_threads_for(npairs * T * T);
    const long chunk = npairs / ((long)nth * 16) > 1 ? npairs / ((long)nth * 16) : 1;
    const bwd_job J = {.dq = dq, .dk = dk, .dv = dv, .dout = dout, .o = o, .lse = lse, .q = q,
                       .k = k, .v = v, .lens = lens, .ldo = ldo, .ld = ld, .T = T, .H = H,
                       .Dh = Dh, .causal = causal, .wide = sf_avx512() /* outside the region */,
                       .scale = scale};
    if (sf_parallel_worth(nth > 1)) {
#pragma omp parallel for schedule(dynamic, chunk) num_threads(nth)
        for (long pair = 0; pair < npairs; pair++) bwd_item(&J, pair);
    } else {
        for (long pair = 0; pair < npairs; pair++) bwd_item(&J, pair);
    }
}

/* ---- streaming step ------------------------------------------------------------------ */

#define SF_ATT_STEP_CHUNK 256

static void step_head(float *restrict o, const float *restrict q, const float *restrict kc,
                      const float *restrict vc, long stride, int n_keys, int Dh, float scale) {
    float s[SF_ATT_STEP_CHUNK];
    float acc[SF_ATTENTION_MAX_DH], qs[SF_ATTENTION_MAX_DH];
    for (int d = 0; d < Dh; d++) acc[d] = 0.0f, qs[d] = q[d] * scale;
    float m = -INFINITY, l = 0.0f;
    for (int j0 = 0; j0 < n_keys; j0 += SF_ATT_STEP_CHUNK) {
        const int nj = imin(SF_ATT_STEP_CHUNK, n_keys - j0);
        float mx = m;
        for (int j = 0; j < nj; j++) {
            const float *kr = kc + (long)(j0 + j) * stride;
            float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
            for (int d = 0; d < Dh; d++) dot += qs[d] * kr[d];
            s[j] = dot;
            mx = dot > mx ? dot : mx;
        }
        float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
        for (int j = 0; j < nj; j++) {
            s[j] = sf_expf_fast(s[j] - mx);
            sum += s[j];
        }
        const float alpha = sf_expf_fast(m - mx);
        m = mx;
        l = l * alpha + sum;
        for (int d = 0; d < Dh; d++) acc[d] *= alpha;
        for (int j = 0; j < nj; j++) {
            const float *vr = vc + (long)(j0 + j) * stride;
            const float pj = s[j];
#pragma omp simd
            for (int d = 0; d < Dh; d++) acc[d] += pj * vr[d];
        }
    }
    const float inv = 1.0f / l;
    for (int d = 0; d < Dh; d++) o[d] = acc[d] * inv;
}

void sf_attention_step(float *o, const float *q, const float *kcache, const float *vcache,
                       int n_keys, int H, int Dh, float scale) {
    SF_ASSERT(n_keys >= 1 && H >= 1 && Dh >= 1 && Dh <= SF_ATTENTION_MAX_DH);
    const long stride = (long)H * Dh;
    const int nth = n_threads_for(n_keys * stride >= 65536 ? SF_ATT_PAR_MIN : 0);
    SF_PARALLEL_FOR_IF(nth > 1,
        for (int h = 0; h < H; h++)
            step_head(o + (long)h * Dh, q + (long)h * Dh, kcache + (long)h * Dh,
                      vcache + (long)h * Dh, stride, n_keys, Dh, scale);
    );
}

/* ---- references (kernels/attention_ref.h) ------------------------------------------------ */

void sf_attention_forward_ref(float *o, int ldo, float *lse, const float *q, const float *k,
                              const float *v, int ld, int B, int T, int H, int Dh, float scale,
                              int causal, const int *lens) {
    sf_attention_ref_args a = {.B = B, .T = T, .H = H, .Dh = Dh, .ld = ld, .ldo = ldo,
                               .scale = scale, .causal = causal, .lens = lens};
    sf_attention_ref_forward(&a, o, lse, NULL, q, k, v);
}

void sf_attention_backward_ref(float *dq, float *dk, float *dv, const float *dout, int ldo,
                               const float *o, const float *lse, const float *q, const float *k,
                               const float *v, int ld, int B, int T, int H, int Dh, float scale,
                               int causal, const int *lens) {
    (void)o, (void)lse;
    sf_attention_ref_args a = {.B = B, .T = T, .H = H, .Dh = Dh, .ld = ld, .ldo = ldo,
                               .scale = scale, .causal = causal, .lens = lens};
    sf_attention_ref_backward(&a, dq, dk, dv, NULL, dout, q, k, v);
}
