/* Linear attention over given features: kernels, streaming step, plain references.
 * See feature_attention.h for the definition, layout and padding contract. */
#include "kernels/feature_attention.h"

#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "kernels/dots.h"
#include "kernels/multiversion.h"

/* Per-(b,h) workspace: S, G [M*Dv]; z, gz [M]; num, dn [Dv]; causal: per token 1/N and dL/ds. */
static size_t fa_ws_floats(const sf_fa_shape *s) {
    return 2 * (size_t)s->M * s->Dv + 2 * (size_t)s->M + 2 * (size_t)s->Dv +
           (s->causal ? 2 * (size_t)s->T : 0);
}

size_t sf_feature_attention_scratch_floats(const sf_fa_shape *s) {
    return (size_t)s->B * s->H * fa_ws_floats(s);
}

static void fa_check(const sf_fa_shape *s, int ldo, int ldf, int ldv, const int *lens) {
    SF_ASSERT(s->B >= 0 && s->T >= 0 && s->H >= 0 && s->M > 0 && s->Dv > 0);
    SF_ASSERT(ldf >= s->H * s->M && ldv >= s->H * s->Dv && ldo >= s->H * s->Dv);
    SF_ASSERT(s->eps >= 0.0f && (s->norm == SF_FA_NORM_ADD || s->norm == SF_FA_NORM_CLAMP));
    if (lens)
        for (int b = 0; b < s->B; b++) SF_ASSERT(lens[b] >= 1 && lens[b] <= s->T);
}

/* The normaliser N(s) and its derivative. */
static inline float fa_norm(sf_fa_norm kind, float x, float eps) {
    return kind == SF_FA_NORM_ADD ? x + eps : (x >= eps ? x : eps);
}
static inline float fa_dnorm(sf_fa_norm kind, float x, float eps) {
    return kind == SF_FA_NORM_ADD ? 1.0f : (x >= eps ? 1.0f : 0.0f);
}

static void fa_zero_rows(float *p, int ld, int r0, int r1, int D) {
    for (int r = r0; r < r1; r++) memset(p + (size_t)r * ld, 0, sizeof(float) * (size_t)D);
}

/* The streaming step's state update and read, on the [M][Dv] layout. S += fk v^T, z += fk */
static inline void fa_accumulate(float *restrict S, float *restrict z, const float *restrict fk,
                                 const float *restrict v, int M, int Dv) {
    for (int a = 0; a < M; a++) {
        const float f = fk[a];
        float *Sa = S + (size_t)a * Dv;
        z[a] += f;
        for (int c = 0; c < Dv; c++) Sa[c] += f * v[c];
    }
}

/* num = fq^T S; returns fq . z */
static inline float fa_read(float *restrict num, const float *restrict fq,
                            const float *restrict S, const float *restrict z, int M, int Dv) {
    float s = 0.0f;
    for (int c = 0; c < Dv; c++) num[c] = 0.0f;
    for (int a = 0; a < M; a++) {
        const float f = fq[a];
        const float *Sa = S + (size_t)a * Dv;
        s += f * z[a];
        for (int c = 0; c < Dv; c++) num[c] += f * Sa[c];
    }
    return s;
}

/* The forward and backward of one (b,h) keep S and G transposed, [Dv][M], so that every inner
 * loop runs over the M features (vector-wide for any feature map; Dv is as small as 4 in
 * PatchTST), and are compiled for AVX2+FMA too (SF_MULTIVERSION). The streaming step keeps the
 * documented [M][Dv] state. */

/* z += w f, At[c][.] += u[c] f (w = 1: S and z from a key; w = ds: G and gz from a query) */
static inline __attribute__((always_inline)) void fa_rank1_t(float *restrict At, float *restrict z,
                                                             const float *restrict f,
                                                             const float *restrict u, float w,
                                                             int M, int Dv) {
#pragma omp simd
    for (int a = 0; a < M; a++) z[a] += f[a] * w;
    for (int c = 0; c < Dv; c++) {
        const float uc = u[c];
        float *restrict Ac = At + (size_t)c * M;
#pragma omp simd
        for (int a = 0; a < M; a++) Ac[a] += uc * f[a];
    }
}

/* returns f . z */
static inline __attribute__((always_inline)) float fa_dot(const float *restrict f,
                                                          const float *restrict z, int M) {
    float s = 0.0f;
#pragma omp simd reduction(+ : s)
    for (int a = 0; a < M; a++) s += f[a] * z[a];
    return s;
}

/* out[a] = base[a] * w + sum_c At[c][a] u[c] */
static inline __attribute__((always_inline)) void fa_combine_t(float *restrict out,
                                                               const float *restrict base, float w,
                                                               const float *restrict At,
                                                               const float *restrict u, int M,
                                                               int Dv) {
#pragma omp simd
    for (int a = 0; a < M; a++) out[a] = base[a] * w;
    for (int c = 0; c < Dv; c++) {
        const float uc = u[c];
        const float *restrict Ac = At + (size_t)c * M;
#pragma omp simd
        for (int a = 0; a < M; a++) out[a] += Ac[a] * uc;
    }
}

/* One (b,h) with n valid tokens. */
SF_MULTIVERSION static void fa_fwd_head(const sf_fa_shape *s, float *o, int ldo, const float *fq,
                                        const float *fk, int ldf, const float *v, int ldv, int n,
                                        float *ws) {
    const int M = s->M, Dv = s->Dv;
    float *St = ws, *z = ws + 2 * (size_t)M * Dv, *num = z + 2 * M;
    memset(St, 0, sizeof(float) * (size_t)M * Dv);
    memset(z, 0, sizeof(float) * (size_t)M);
    if (!s->causal)
        for (int j = 0; j < n; j++)
            fa_rank1_t(St, z, fk + (size_t)j * ldf, v + (size_t)j * ldv, 1.0f, M, Dv);
    for (int i = 0; i < n; i++) {
        const float *fqi = fq + (size_t)i * ldf;
        if (s->causal) fa_rank1_t(St, z, fk + (size_t)i * ldf, v + (size_t)i * ldv, 1.0f, M, Dv);
        sf_dots_t(num, fqi, St, M, Dv);
        const float r = 1.0f / fa_norm(s->norm, fa_dot(fqi, z, M), s->eps);
        float *oi = o + (size_t)i * ldo;
        for (int c = 0; c < Dv; c++) oi[c] = num[c] * r;
    }
}

/* dfq_i = S_i dnum_i + z_i ds_i; G = sum fq_i dnum_i^T, gz = sum fq_i ds_i over the queries that
 * see key j; dfk_j = G v_j + gz, dv_j = G^T fk_j. */
SF_MULTIVERSION static void fa_bwd_head(const sf_fa_shape *s, float *dfq, float *dfk, float *dv,
                                        const float *g, int ldo, const float *fq, const float *fk,
                                        int ldf, const float *v, int ldv, int n, float *ws) {
    const int M = s->M, Dv = s->Dv;
    float *St = ws, *Gt = ws + (size_t)M * Dv, *z = ws + 2 * (size_t)M * Dv, *gz = z + M;
    float *num = gz + M, *dn = num + Dv, *tok = dn + Dv;
    memset(ws, 0, sizeof(float) * (2 * (size_t)M * Dv + 2 * (size_t)M));
    if (!s->causal)
        for (int j = 0; j < n; j++)
            fa_rank1_t(St, z, fk + (size_t)j * ldf, v + (size_t)j * ldv, 1.0f, M, Dv);
    /* query side, forward order */
    for (int i = 0; i < n; i++) {
        const float *fqi = fq + (size_t)i * ldf, *gi = g + (size_t)i * ldo;
        if (s->causal) fa_rank1_t(St, z, fk + (size_t)i * ldf, v + (size_t)i * ldv, 1.0f, M, Dv);
        sf_dots_t(num, fqi, St, M, Dv);
        const float sum = fa_dot(fqi, z, M);
        const float r = 1.0f / fa_norm(s->norm, sum, s->eps);
        float go = 0.0f;
        for (int c = 0; c < Dv; c++) {
            dn[c] = gi[c] * r;
            go += gi[c] * num[c];
        }
        const float ds = -go * r * r * fa_dnorm(s->norm, sum, s->eps);
        fa_combine_t(dfq + (size_t)i * ldf, z, ds, St, dn, M, Dv);
        if (s->causal) {
            tok[2 * i] = r;
            tok[2 * i + 1] = ds;
        } else {
            fa_rank1_t(Gt, gz, fqi, dn, ds, M, Dv);
        }
    }
    /* key/value side: reverse order when causal (G over queries i >= j) */
    for (int jj = 0; jj < n; jj++) {
        const int j = s->causal ? n - 1 - jj : jj;
        const float *fkj = fk + (size_t)j * ldf, *vj = v + (size_t)j * ldv;
        if (s->causal) {
            const float *gj = g + (size_t)j * ldo;
            const float r = tok[2 * j], ds = tok[2 * j + 1];
            for (int c = 0; c < Dv; c++) dn[c] = gj[c] * r;
            fa_rank1_t(Gt, gz, fq + (size_t)j * ldf, dn, ds, M, Dv);
        }
        fa_combine_t(dfk + (size_t)j * ldf, gz, 1.0f, Gt, vj, M, Dv);
        sf_dots_t(dv + (size_t)j * ldv, fkj, Gt, M, Dv);
    }
}

void sf_feature_attention_forward(const sf_fa_shape *s, float *out, int ldo, const float *fq,
                                  const float *fk, int ldf, const float *v, int ldv,
                                  float *scratch, const int *lens) {
    fa_check(s, ldo, ldf, ldv, lens);
    const long BH = (long)s->B * s->H;
    SF_ASSERT(BH == 0 || scratch);
    const size_t wsn = fa_ws_floats(s);
    const long work = BH * (long)s->T * s->M * s->Dv;
#pragma omp parallel for schedule(static) if (work >= SF_FEATURE_ATTENTION_PAR_MIN)
    for (long bh = 0; bh < BH; bh++) {
        const long b = bh / s->H, h = bh % s->H;
        const int n = lens ? lens[b] : s->T;
        const size_t rf = (size_t)b * s->T * ldf + (size_t)h * s->M;
        const size_t rv = (size_t)b * s->T * ldv + (size_t)h * s->Dv;
        float *o = out + (size_t)b * s->T * ldo + (size_t)h * s->Dv;
        fa_fwd_head(s, o, ldo, fq + rf, fk + rf, ldf, v + rv, ldv, n, scratch + (size_t)bh * wsn);
        fa_zero_rows(o, ldo, n, s->T, s->Dv);
    }
}

void sf_feature_attention_backward(const sf_fa_shape *s, float *dfq, float *dfk, float *dv,
                                   const float *dout, int ldo, const float *fq, const float *fk,
                                   int ldf, const float *v, int ldv, float *scratch,
                                   const int *lens) {
    fa_check(s, ldo, ldf, ldv, lens);
    const long BH = (long)s->B * s->H;
    SF_ASSERT(BH == 0 || scratch);
    const size_t wsn = fa_ws_floats(s);
    const long work = BH * (long)s->T * s->M * s->Dv;
#pragma omp parallel for schedule(static) if (work >= SF_FEATURE_ATTENTION_PAR_MIN)
    for (long bh = 0; bh < BH; bh++) {
        const long b = bh / s->H, h = bh % s->H;
        const int n = lens ? lens[b] : s->T;
        const size_t rf = (size_t)b * s->T * ldf + (size_t)h * s->M;
        const size_t rv = (size_t)b * s->T * ldv + (size_t)h * s->Dv;
        const float *g = dout + (size_t)b * s->T * ldo + (size_t)h * s->Dv;
        fa_bwd_head(s, dfq + rf, dfk + rf, dv + rv, g, ldo, fq + rf, fk + rf, ldf, v + rv, ldv, n,
                    scratch + (size_t)bh * wsn);
        fa_zero_rows(dfq + rf, ldf, n, s->T, s->M);
        fa_zero_rows(dfk + rf, ldf, n, s->T, s->M);
        fa_zero_rows(dv + rv, ldv, n, s->T, s->Dv);
    }
}

/* ------------------------------------------------------------------ streaming step */

size_t sf_feature_attention_state_floats(int H, int M, int Dv) {
    return (size_t)H * M * Dv + (size_t)H * M;
}

void sf_feature_attention_step(const sf_fa_shape *s, float *out, const float *fq,
                               const float *fk, const float *v, const float *state_in,
                               float *state_out) {
    const int H = s->H, M = s->M, Dv = s->Dv;
    SF_ASSERT(H >= 0 && M > 0 && Dv > 0);
    const size_t zoff = (size_t)H * M * Dv;
    if (state_out != state_in)
        memcpy(state_out, state_in, sf_feature_attention_state_floats(H, M, Dv) * sizeof(float));
    for (int h = 0; h < H; h++) {
        float *S = state_out + (size_t)h * M * Dv, *z = state_out + zoff + (size_t)h * M;
        float *o = out + (size_t)h * Dv;
        /* the causal forward's operations on the [M][Dv] layout (sums in another order) */
        fa_accumulate(S, z, fk + (size_t)h * M, v + (size_t)h * Dv, M, Dv);
        const float sum = fa_read(o, fq + (size_t)h * M, S, z, M, Dv);
        const float r = 1.0f / fa_norm(s->norm, sum, s->eps);
        for (int c = 0; c < Dv; c++) o[c] *= r;
    }
}

/* ---------------------------------------------------------------------- references */

static double ref_norm(const sf_fa_shape *s, double x) {
    return s->norm == SF_FA_NORM_ADD ? x + s->eps : (x >= s->eps ? x : s->eps);
}

void sf_feature_attention_forward_ref(const sf_fa_shape *s, float *out, int ldo, const float *fq,
                                      const float *fk, int ldf, const float *v, int ldv,
                                      float *scratch, const int *lens) {
    (void)scratch;
    fa_check(s, ldo, ldf, ldv, lens);
    const int T = s->T, M = s->M, Dv = s->Dv;
    double *num = sf_calloc((size_t)Dv, sizeof(double));
    for (int b = 0; b < s->B; b++)
        for (int h = 0; h < s->H; h++)
            for (int i = 0; i < T; i++) {
                const int n = lens ? lens[b] : T;
                float *oi = out + ((size_t)b * T + i) * ldo + (size_t)h * Dv;
                if (i >= n) {
                    for (int c = 0; c < Dv; c++) oi[c] = 0.0f;
                    continue;
                }
                const int jend = s->causal ? i + 1 : n;
                const float *fqi = fq + ((size_t)b * T + i) * ldf + (size_t)h * M;
                double sum = 0;
                for (int c = 0; c < Dv; c++) num[c] = 0;
                for (int j = 0; j < jend; j++) {
                    const float *fkj = fk + ((size_t)b * T + j) * ldf + (size_t)h * M;
                    const float *vj = v + ((size_t)b * T + j) * ldv + (size_t)h * Dv;
                    double a = 0;
                    for (int m = 0; m < M; m++) a += (double)fqi[m] * fkj[m];
                    sum += a;
                    for (int c = 0; c < Dv; c++) num[c] += a * vj[c];
                }
                const double den = ref_norm(s, sum);
                for (int c = 0; c < Dv; c++) oi[c] = (float)(num[c] / den);
            }
    free(num);
}

void sf_feature_attention_backward_ref(const sf_fa_shape *s, float *dfq, float *dfk, float *dv,
                                       const float *dout, int ldo, const float *fq,
                                       const float *fk, int ldf, const float *v, int ldv,
                                       float *scratch, const int *lens) {
    (void)scratch;
    fa_check(s, ldo, ldf, ldv, lens);
    const int T = s->T, M = s->M, Dv = s->Dv;
    double *gq = sf_calloc((size_t)T * M, sizeof(double)), *gk = sf_calloc((size_t)T * M, sizeof(double));
    double *gv = sf_calloc((size_t)T * Dv, sizeof(double)), *o = sf_calloc((size_t)Dv, sizeof(double));
    for (int b = 0; b < s->B; b++)
        for (int h = 0; h < s->H; h++) {
#define ROW(p, t, ld, w) ((p) + ((size_t)b * T + (t)) * (ld) + (size_t)h * (w))
            const int n = lens ? lens[b] : T;
            memset(gq, 0, sizeof(double) * (size_t)T * M);
            memset(gk, 0, sizeof(double) * (size_t)T * M);
            memset(gv, 0, sizeof(double) * (size_t)T * Dv);
            for (int i = 0; i < n; i++) {
                const int jend = s->causal ? i + 1 : n;
                const float *fqi = ROW(fq, i, ldf, M), *gi = ROW(dout, i, ldo, Dv);
                /* forward of row i: a_ij, sum, out */
                double sum = 0;
                for (int c = 0; c < Dv; c++) o[c] = 0;
                for (int j = 0; j < jend; j++) {
                    double a = 0;
                    for (int m = 0; m < M; m++) a += (double)fqi[m] * ROW(fk, j, ldf, M)[m];
                    sum += a;
                    for (int c = 0; c < Dv; c++) o[c] += a * ROW(v, j, ldv, Dv)[c];
                }
                const double den = ref_norm(s, sum);
                const double dnorm = s->norm == SF_FA_NORM_ADD || sum >= s->eps ? 1.0 : 0.0;
                double go = 0;
                for (int c = 0; c < Dv; c++) go += gi[c] * o[c];
                const double dsum = -go / (den * den) * dnorm; /* d loss / d sum_i */
                /* da_ij = g_i . v_j / den + dsum */
                for (int j = 0; j < jend; j++) {
                    const float *fkj = ROW(fk, j, ldf, M), *vj = ROW(v, j, ldv, Dv);
                    double a = 0, da = dsum;
                    for (int m = 0; m < M; m++) a += (double)fqi[m] * fkj[m];
                    for (int c = 0; c < Dv; c++) {
                        da += gi[c] * vj[c] / den;
                        gv[(size_t)j * Dv + c] += a * gi[c] / den;
                    }
                    for (int m = 0; m < M; m++) {
                        gq[(size_t)i * M + m] += da * fkj[m];
                        gk[(size_t)j * M + m] += da * fqi[m];
                    }
                }
            }
            for (int t = 0; t < T; t++) {
                for (int m = 0; m < M; m++) {
                    ROW(dfq, t, ldf, M)[m] = (float)gq[(size_t)t * M + m];
                    ROW(dfk, t, ldf, M)[m] = (float)gk[(size_t)t * M + m];
                }
                for (int c = 0; c < Dv; c++) ROW(dv, t, ldv, Dv)[c] = (float)gv[(size_t)t * Dv + c];
            }
#undef ROW
        }
    free(gq), free(gk), free(gv), free(o);
}
