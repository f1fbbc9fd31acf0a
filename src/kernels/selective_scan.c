/* Selective scan (Mamba-1): chunk-checkpointed fast forward/backward, streaming step, plain
 * references. The definition, layout, padding and memory contract are in selective_scan.h. */
#include "kernels/selective_scan.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/lens.h"
#include "kernels/multiversion.h"
#include "kernels/softmax.h" /* sf_expf_fast */

#define TW 16 /* channels side by side in one tile: a cache line of each row */
#define CH SF_SCAN_CHUNK
/* The tile loops are compiled three times, for AVX-512 (16-wide: one tile row), AVX2 + FMA
 * (8-wide) and the baseline (SSE2, 4-wide), and the loader picks one for the CPU it runs on (GCC
 * function multi-versioning, SF_MULTIVERSION_512); multiply-adds fuse in the first two. */
#define SS_TASK_TARGET 8 /* enough tasks for the cores we run on, independent of the thread count */


/* softplus with torch's threshold (x > 20: x), branch-free so the tile loops vectorise (libm's
 * log1pf and expf took a tenth of a PatchTST + Mamba training step): max(x, 0) + log1p(e) with
 * e = exp(-|x|) in (0, 1], log1p(e) = 2 atanh(s), s = e / (2 + e) <= 1/3, by its odd series to
 * s^15 (truncation < 2e-9 relative; no cancellation for tiny e, where log1p(e) ~ e). */
static inline float softplusf(float x) {
    const float e = sf_expf_fast(-fabsf(x));
    const float s = e / (2.0f + e), s2 = s * s;
    float p = 1.0f / 15.0f;
    p = p * s2 + 1.0f / 13.0f;
    p = p * s2 + 1.0f / 11.0f;
    p = p * s2 + 1.0f / 9.0f;
    p = p * s2 + 1.0f / 7.0f;
    p = p * s2 + 1.0f / 5.0f;
    p = p * s2 + 1.0f / 3.0f;
    p = p * s2 + 1.0f;
    const float sp = sf_selectf(x > 0.0f, x, 0.0f) + 2.0f * s * p;
    return sf_selectf(x > 20.0f, x, sp);
}
static inline double softplus_d(double x) { return x > 20.0 ? x : log1p(exp(x)); }
static inline double sigmoid_d(double x) { return 1.0 / (1.0 + exp(-x)); }

/* channel groups per batch item: depends on B and Di only (determinism across thread counts) */
static int ss_groups(int B, int Di) {
    int tiles = (Di + TW - 1) / TW, g = (SS_TASK_TARGET + B - 1) / B;
    if (g > tiles) g = tiles;
    return g < 1 ? 1 : g;
}

static inline int n_chunks(int T) { return (T + CH - 1) / CH; }

size_t sf_selective_scan_states_floats(int B, int T, int Di, int N) {
    return (size_t)B * (size_t)n_chunks(T) * (size_t)Di * (size_t)N;
}

/* per task: h and exp(delta A) of one chunk (2 * CH * N * TW), its softplus(r) (CH * TW: computed
 * once for both passes over the chunk, log1p/exp are not vectorised) and the task's dB/dC partial
 * sums (T * 2N); then the per-batch-item dA/dD partials (B * Di * (N + 1)) */
static size_t task_floats(int T, int N) {
    return (size_t)2 * CH * N * TW + (size_t)CH * TW + (size_t)2 * T * N;
}

size_t sf_selective_scan_scratch_floats(int B, int T, int Di, int N) {
    size_t tasks = (size_t)B * (size_t)ss_groups(B, Di);
    return tasks * task_floats(T, N) + (size_t)B * Di * (size_t)(N + 1);
}

/* tiles [t0, t1) of group g */
static void group_tiles(int Di, int groups, int g, int *t0, int *t1) {
    int tiles = (Di + TW - 1) / TW;
    *t0 = (int)((long)tiles * g / groups);
    *t1 = (int)((long)tiles * (g + 1) / groups);
}

/* ---- fast forward ------------------------------------------------------------------------ */

SF_MULTIVERSION_512 static void fwd_tile(float *y, float *states, const float *u, const float *delta, const float *A,
                     const float *Bm, const float *Cm, int ldbc, const float *D, const float *z,
                     int ldz, int b, int T, int Di, int N, int len, int c0) {
    const int w = Di - c0 < TW ? Di - c0 : TW;
    float h[SF_SCAN_MAX_N * TW], At[SF_SCAN_MAX_N * TW];
    float Dt[TW];
    for (int n = 0; n < N; n++)
        for (int j = 0; j < TW; j++) {
            At[n * TW + j] = j < w ? A[(size_t)(c0 + j) * N + n] : 0.0f;
            h[n * TW + j] = 0.0f;
        }
    for (int j = 0; j < TW; j++) Dt[j] = j < w ? D[c0 + j] : 0.0f;
    const int nch = n_chunks(T);
    for (int t = 0; t < len; t++) {
        const size_t row = (size_t)b * T + t;
        if (states && t % CH == 0) {
            float *s = states + (((size_t)b * nch + t / CH) * Di + c0) * N;
            for (int j = 0; j < w; j++)
                for (int n = 0; n < N; n++) s[(size_t)j * N + n] = h[n * TW + j];
        }
        float dl[TW], du[TW], uu[TW], acc[TW], rr[TW];
        for (int j = 0; j < TW; j++) {
            uu[j] = j < w ? u[row * Di + c0 + j] : 0.0f;
            rr[j] = j < w ? delta[row * Di + c0 + j] : 0.0f;
        }
        for (int j = 0; j < TW; j++) {
            dl[j] = sf_selectf(j < w, softplusf(rr[j]), 0.0f);
            du[j] = dl[j] * uu[j];
            acc[j] = Dt[j] * uu[j];
        }
        const float *Bt = Bm + row * ldbc, *Ct = Cm + row * ldbc;
        for (int n = 0; n < N; n++) {
            const float bn = Bt[n], cn = Ct[n];
            float *hn = h + n * TW;
            const float *an = At + n * TW;
            for (int j = 0; j < TW; j++) {
                hn[j] = sf_expf_fast(dl[j] * an[j]) * hn[j] + du[j] * bn;
                acc[j] += cn * hn[j];
            }
        }
        for (int j = 0; j < w; j++) {
            const float zz = z[row * ldz + c0 + j];
            y[row * Di + c0 + j] = acc[j] * zz / (1.0f + sf_expf_fast(-zz));
        }
    }
    for (int t = len; t < T; t++)
        for (int j = 0; j < w; j++) y[((size_t)b * T + t) * Di + c0 + j] = 0.0f;
}

void sf_selective_scan_forward(float *y, float *states, const float *u, const float *delta,
                               const float *A, const float *Bm, const float *Cm, int ldbc,
                               const float *D, const float *z, int ldz, int B, int T, int Di,
                               int N, const int *lens) {
    SF_ASSERT(N >= 1 && N <= SF_SCAN_MAX_N);
    const int groups = ss_groups(B, Di);
    const long tasks = (long)B * groups;
#pragma omp parallel for schedule(dynamic, 1) if ((long)B * T * Di * N >= 32768L)
    for (long k = 0; k < tasks; k++) {
        const int b = (int)(k / groups), g = (int)(k % groups);
        int t0, t1;
        group_tiles(Di, groups, g, &t0, &t1);
        for (int tile = t0; tile < t1; tile++)
            fwd_tile(y, states, u, delta, A, Bm, Cm, ldbc, D, z, ldz, b, T, Di, N,
                     sf_seq_len(lens, b, T), tile * TW);
    }
}

/* ---- fast backward ----------------------------------------------------------------------- */

typedef struct {
    float *du, *ddelta, *dz;
    const float *dy, *states, *u, *delta, *A, *Bm, *Cm, *D, *z;
    int ldbc, ldz, B, T, Di, N;
} bwd_args;

/* One tile of channels of batch item b: accumulates its dB/dC into dbc ([T][2N], the task's
 * partial) and its dA/dD into dA_b [Di][N], dD_b [Di] (this batch item's partials). */
SF_MULTIVERSION_512 static void bwd_tile(const bwd_args *p, int b, int len, int c0, float *hbuf, float *abuf,
                     float *dlbuf, float *dbc, float *dA_b, float *dD_b) {
    const int T = p->T, Di = p->Di, N = p->N, w = Di - c0 < TW ? Di - c0 : TW;
    float dh[SF_SCAN_MAX_N * TW], dAacc[SF_SCAN_MAX_N * TW], At[SF_SCAN_MAX_N * TW];
    float h0[SF_SCAN_MAX_N * TW];
    float Dt[TW], dDacc[TW] = {0};
    for (int n = 0; n < N; n++)
        for (int j = 0; j < TW; j++) {
            At[n * TW + j] = j < w ? p->A[(size_t)(c0 + j) * N + n] : 0.0f;
            dh[n * TW + j] = 0.0f;
            dAacc[n * TW + j] = 0.0f;
        }
    for (int j = 0; j < TW; j++) Dt[j] = j < w ? p->D[c0 + j] : 0.0f;
    const int nch = n_chunks(T);
    for (int ch = len ? (len - 1) / CH : -1; ch >= 0; ch--) {
        const int ts = ch * CH, te = ts + CH < len ? ts + CH : len;
        /* the chunk's starting state, then h and exp(delta A) of each of its steps */
        const float *s = p->states + (((size_t)b * nch + ch) * Di + c0) * N;
        for (int n = 0; n < N; n++)
            for (int j = 0; j < TW; j++) h0[n * TW + j] = j < w ? s[(size_t)j * N + n] : 0.0f;
        for (int t = ts; t < te; t++) {
            const size_t row = (size_t)b * T + t;
            float dl[TW], du[TW], uu[TW], rr[TW];
            for (int j = 0; j < TW; j++) {
                uu[j] = j < w ? p->u[row * Di + c0 + j] : 0.0f;
                rr[j] = j < w ? p->delta[row * Di + c0 + j] : 0.0f;
            }
            for (int j = 0; j < TW; j++) {
                dl[j] = sf_selectf(j < w, softplusf(rr[j]), 0.0f);
                dlbuf[(t - ts) * TW + j] = dl[j];
                du[j] = dl[j] * uu[j];
            }
            const float *Bt = p->Bm + row * p->ldbc;
            const float *hp = t == ts ? h0 : hbuf + (size_t)(t - ts - 1) * N * TW;
            float *hc = hbuf + (size_t)(t - ts) * N * TW, *ac = abuf + (size_t)(t - ts) * N * TW;
            for (int n = 0; n < N; n++) {
                const float bn = Bt[n];
                for (int j = 0; j < TW; j++) {
                    const float a = sf_expf_fast(dl[j] * At[n * TW + j]);
                    ac[n * TW + j] = a;
                    hc[n * TW + j] = a * hp[n * TW + j] + du[j] * bn;
                }
            }
        }
        /* adjoint, backwards through the chunk */
        for (int t = te - 1; t >= ts; t--) {
            const size_t row = (size_t)b * T + t;
            float dl[TW], uu[TW], sg[TW], dyv[TW], dd[TW], dU[TW], yv[TW], dout[TW], zz[TW];
            float rr[TW], dzv[TW];
            for (int j = 0; j < TW; j++) { /* the loads (guarded), then the vector loops */
                rr[j] = j < w ? p->delta[row * Di + c0 + j] : 0.0f;
                uu[j] = j < w ? p->u[row * Di + c0 + j] : 0.0f;
                zz[j] = j < w ? p->z[row * p->ldz + c0 + j] : 0.0f;
                dout[j] = j < w ? p->dy[row * Di + c0 + j] : 0.0f;
            }
            for (int j = 0; j < TW; j++) {
                dl[j] = dlbuf[(t - ts) * TW + j];
                sg[j] = sf_selectf(rr[j] > 20.0f, 1.0f, 1.0f / (1.0f + sf_expf_fast(-rr[j])));
                yv[j] = Dt[j] * uu[j];
                dd[j] = 0.0f;
            }
            const float *Bt = p->Bm + row * p->ldbc, *Ct = p->Cm + row * p->ldbc;
            const float *hc = hbuf + (size_t)(t - ts) * N * TW, *ac = abuf + (size_t)(t - ts) * N * TW;
            const float *hp = t == ts ? h0 : hbuf + (size_t)(t - ts - 1) * N * TW;
            for (int n = 0; n < N; n++)
                for (int j = 0; j < TW; j++) yv[j] += Ct[n] * hc[n * TW + j];
            for (int j = 0; j < TW; j++) {
                const float sz = 1.0f / (1.0f + sf_expf_fast(-zz[j]));
                dzv[j] = dout[j] * yv[j] * sz * (1.0f + zz[j] * (1.0f - sz));
                dyv[j] = dout[j] * zz[j] * sz;
                dDacc[j] += dyv[j] * uu[j];
                dU[j] = dyv[j] * Dt[j];
            }
            for (int j = 0; j < w; j++) p->dz[row * p->ldz + c0 + j] = dzv[j];
            float *dBt = dbc + (size_t)t * 2 * N, *dCt = dBt + N;
            for (int n = 0; n < N; n++) {
                const float bn = Bt[n], cn = Ct[n];
                float sc[TW], sb[TW]; /* per channel, summed after the (vectorised) loop */
                for (int j = 0; j < TW; j++) {
                    const int i = n * TW + j;
                    sc[j] = dyv[j] * hc[i];
                    const float g = dh[i] + dyv[j] * cn; /* dL/dh_t */
                    const float gd = g * dl[j];
                    dd[j] += g * (At[i] * ac[i] * hp[i] + bn * uu[j]);
                    dAacc[i] += gd * ac[i] * hp[i];
                    sb[j] = gd * uu[j];
                    dU[j] += gd * bn;
                    dh[i] = g * ac[i]; /* to h_{t-1} */
                }
                float c = 0.0f, bsum = 0.0f; /* simd: a tree of vector adds, not 16 in a row */
#pragma omp simd reduction(+ : c, bsum)
                for (int j = 0; j < TW; j++) c += sc[j], bsum += sb[j];
                dCt[n] += c;
                dBt[n] += bsum;
            }
            for (int j = 0; j < w; j++) {
                p->du[row * Di + c0 + j] = dU[j];
                p->ddelta[row * Di + c0 + j] = dd[j] * sg[j];
            }
        }
    }
    for (int j = 0; j < w; j++) {
        for (int n = 0; n < N; n++) dA_b[(size_t)(c0 + j) * N + n] = dAacc[n * TW + j];
        dD_b[c0 + j] = dDacc[j];
    }
    for (int t = len; t < T; t++) /* padding: zero gradients */
        for (int j = 0; j < w; j++) {
            const size_t row = (size_t)b * T + t;
            p->du[row * Di + c0 + j] = 0.0f;
            p->ddelta[row * Di + c0 + j] = 0.0f;
            p->dz[row * p->ldz + c0 + j] = 0.0f;
        }
}

void sf_selective_scan_backward(float *du, float *ddelta, float *dA, float *dBm, float *dCm,
                                float *dD, float *dz, const float *dy, const float *states,
                                const float *u, const float *delta, const float *A,
                                const float *Bm, const float *Cm, int ldbc, const float *D,
                                const float *z, int ldz, int B, int T, int Di, int N,
                                const int *lens, float *scratch) {
    SF_ASSERT(N >= 1 && N <= SF_SCAN_MAX_N);
    const bwd_args p = {du, ddelta, dz, dy, states, u, delta, A, Bm, Cm, D, z, ldbc, ldz, B, T, Di, N};
    const int groups = ss_groups(B, Di);
    const long tasks = (long)B * groups;
    const size_t tf = task_floats(T, N);
    float *dA_part = scratch + (size_t)tasks * tf, *dD_part = dA_part + (size_t)B * Di * N;
    const int par = (long)B * T * Di * N >= 32768L;
#pragma omp parallel for schedule(dynamic, 1) if (par)
    for (long k = 0; k < tasks; k++) {
        const int b = (int)(k / groups), g = (int)(k % groups);
        float *ws = scratch + (size_t)k * tf, *hbuf = ws, *abuf = ws + (size_t)CH * N * TW;
        float *dlbuf = abuf + (size_t)CH * N * TW, *dbc = dlbuf + (size_t)CH * TW;
        memset(dbc, 0, (size_t)2 * T * N * sizeof(float));
        int t0, t1;
        group_tiles(Di, groups, g, &t0, &t1);
        for (int tile = t0; tile < t1; tile++)
            bwd_tile(&p, b, sf_seq_len(lens, b, T), tile * TW, hbuf, abuf, dlbuf, dbc,
                     dA_part + (size_t)b * Di * N, dD_part + (size_t)b * Di);
    }
    /* fixed-order reductions: dB/dC over the channel groups, dA/dD over the batch */
#pragma omp parallel for schedule(static) if (par)
    for (long row = 0; row < (long)B * T; row++) {
        const int b = (int)(row / T), t = (int)(row % T);
        float *db = dBm + (size_t)row * ldbc, *dc = dCm + (size_t)row * ldbc;
        for (int n = 0; n < N; n++) db[n] = dc[n] = 0.0f;
        for (int g = 0; g < groups; g++) {
            const float *src = scratch + ((size_t)b * groups + g) * tf + (size_t)2 * CH * N * TW +
                               (size_t)CH * TW + (size_t)t * 2 * N;
            for (int n = 0; n < N; n++) {
                db[n] += src[n];
                dc[n] += src[N + n];
            }
        }
    }
    for (size_t i = 0; i < (size_t)Di * N; i++) {
        float s = 0.0f;
        for (int b = 0; b < B; b++) s += dA_part[(size_t)b * Di * N + i];
        dA[i] = s;
    }
    for (int c = 0; c < Di; c++) {
        float s = 0.0f;
        for (int b = 0; b < B; b++) s += dD_part[(size_t)b * Di + c];
        dD[c] = s;
    }
}

/* ---- streaming step ---------------------------------------------------------------------- */

void sf_selective_scan_step(float *y, float *h, const float *u, const float *r, const float *A,
                            const float *Bt, const float *Ct, const float *D, const float *z,
                            int Di, int N) {
    for (int c = 0; c < Di; c++) {
        const float dl = softplusf(r[c]), du = dl * u[c];
        float acc = D[c] * u[c], *hc = h + (size_t)c * N;
        const float *Ac = A + (size_t)c * N;
        for (int n = 0; n < N; n++) {
            hc[n] = sf_expf_fast(dl * Ac[n]) * hc[n] + du * Bt[n];
            acc += Ct[n] * hc[n];
        }
        y[c] = acc * z[c] / (1.0f + sf_expf_fast(-z[c]));
    }
}

/* ---- references -------------------------------------------------------------------------- */

void sf_selective_scan_forward_ref(float *y, float *states, const float *u, const float *delta,
                                   const float *A, const float *Bm, const float *Cm, int ldbc,
                                   const float *D, const float *z, int ldz, int B, int T, int Di,
                                   int N, const int *lens) {
    (void)states;
    double *h = sf_malloc((size_t)N * sizeof(double));
    for (int b = 0; b < B; b++)
        for (int c = 0; c < Di; c++) {
            for (int n = 0; n < N; n++) h[n] = 0.0;
            for (int t = 0; t < T; t++) {
                const size_t row = (size_t)b * T + t;
                if (t >= sf_seq_len(lens, b, T)) {
                    y[row * Di + c] = 0.0f;
                    continue;
                }
                const double dl = softplus_d(delta[row * Di + c]), uu = u[row * Di + c];
                double acc = (double)D[c] * uu;
                for (int n = 0; n < N; n++) {
                    h[n] = exp(dl * A[(size_t)c * N + n]) * h[n] + dl * Bm[row * ldbc + n] * uu;
                    acc += (double)Cm[row * ldbc + n] * h[n];
                }
                const double zz = z[row * ldz + c];
                y[row * Di + c] = (float)(acc * zz * sigmoid_d(zz));
            }
        }
    free(h);
}

void sf_selective_scan_backward_ref(float *du, float *ddelta, float *dA, float *dBm, float *dCm,
                                    float *dD, float *dz, const float *dy, const float *states,
                                    const float *u, const float *delta, const float *A,
                                    const float *Bm, const float *Cm, int ldbc, const float *D,
                                    const float *z, int ldz, int B, int T, int Di, int N,
                                    const int *lens, float *scratch) {
    (void)states, (void)scratch;
    /* the whole trajectory h[t][n] (t = -1 .. T-1) of one channel, and double accumulators */
    double *h = sf_malloc((size_t)(T + 1) * N * sizeof(double)), *dh = sf_malloc((size_t)N * sizeof(double));
    double *gA = sf_calloc((size_t)Di * N, sizeof(double)), *gD = sf_calloc((size_t)Di, sizeof(double));
    double *gB = sf_calloc((size_t)B * T * N, sizeof(double)), *gC = sf_calloc((size_t)B * T * N, sizeof(double));
    for (int b = 0; b < B; b++) {
        const int len = sf_seq_len(lens, b, T);
        for (int c = 0; c < Di; c++) {
            for (int n = 0; n < N; n++) h[n] = 0.0, dh[n] = 0.0;
            for (int t = 0; t < len; t++) {
                const size_t row = (size_t)b * T + t;
                const double dl = softplus_d(delta[row * Di + c]), uu = u[row * Di + c];
                for (int n = 0; n < N; n++)
                    h[(size_t)(t + 1) * N + n] = exp(dl * A[(size_t)c * N + n]) * h[(size_t)t * N + n] +
                                                 dl * Bm[row * ldbc + n] * uu;
            }
            for (int t = T - 1; t >= 0; t--) {
                const size_t row = (size_t)b * T + t;
                if (t >= len) {
                    du[row * Di + c] = ddelta[row * Di + c] = dz[row * ldz + c] = 0.0f;
                    continue;
                }
                const double r = delta[row * Di + c], dl = softplus_d(r), uu = u[row * Di + c];
                const double zz = z[row * ldz + c], sz = sigmoid_d(zz), g = dy[row * Di + c];
                const double *ht = h + (size_t)(t + 1) * N, *hp = h + (size_t)t * N;
                double yv = (double)D[c] * uu;
                for (int n = 0; n < N; n++) yv += (double)Cm[row * ldbc + n] * ht[n];
                dz[row * ldz + c] = (float)(g * yv * sz * (1.0 + zz * (1.0 - sz)));
                const double dyv = g * zz * sz;
                gD[c] += dyv * uu;
                double dU = dyv * D[c], dd = 0.0;
                for (int n = 0; n < N; n++) {
                    const double an = A[(size_t)c * N + n], a = exp(dl * an), bn = Bm[row * ldbc + n];
                    gC[row * N + n] += dyv * ht[n];
                    const double dht = dh[n] + dyv * Cm[row * ldbc + n];
                    dd += dht * (an * a * hp[n] + bn * uu);
                    gA[(size_t)c * N + n] += dht * dl * a * hp[n];
                    gB[row * N + n] += dht * dl * uu;
                    dU += dht * dl * bn;
                    dh[n] = dht * a;
                }
                du[row * Di + c] = (float)dU;
                ddelta[row * Di + c] = (float)(dd * (r > 20.0 ? 1.0 : sigmoid_d(r)));
            }
        }
    }
    for (size_t i = 0; i < (size_t)Di * N; i++) dA[i] = (float)gA[i];
    for (int c = 0; c < Di; c++) dD[c] = (float)gD[c];
    for (size_t row = 0; row < (size_t)B * T; row++)
        for (int n = 0; n < N; n++) {
            dBm[row * ldbc + n] = (float)gB[row * N + n];
            dCm[row * ldbc + n] = (float)gC[row * N + n];
        }
    free(h), free(dh), free(gA), free(gD), free(gB), free(gC);
}
