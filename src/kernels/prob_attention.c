#include "kernels/prob_attention.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/rng.h"

/* (b, h) pairs below this many score entries run on the calling thread. */
#define PROB_PAR_MIN 65536L

int sf_prob_attention_top(int L, int factor) {
    long n = (long)factor * (long)ceil(log((double)L));
    if (n < 1) n = 1; /* L = 1: ln 1 = 0 (the reference then fails on an empty sample) */
    return n < L ? (int)n : L;
}

void sf_prob_attention_sample(int *sample, int L, int U, uint64_t seed) {
    sf_rng r;
    sf_rng_seed_stream(&r, seed, 0);
    for (long i = 0; i < (long)L * U; i++) sample[i] = (int)sf_rng_below(&r, (uint32_t)L);
}

/* The u largest of m[L] (ties: the lower index) get ranks 0..u-1 in order; the rest -1. */
static void select_top(const float *m, int *rank, int L, int u) {
    for (int i = 0; i < L; i++) rank[i] = -1;
    for (int r = 0; r < u; r++) {
        int best = -1;
        for (int i = 0; i < L; i++)
            if (rank[i] < 0 && (best < 0 || m[i] > m[best])) best = i;
        rank[best] = r;
    }
}

static float dotf(const float *a, const float *b, int n) {
    float s = 0;
    for (int i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

void sf_prob_attention_forward(float *o, int ldo, float *m, int *rank, float *p, const float *q,
                               const float *k, const float *v, int ld, const int *sample, int U,
                               int u, int B, int L, int H, int Dh, float scale, int causal) {
    SF_ASSERT(u >= 1 && u <= L && U >= 1 && U <= L);
    int par = (long)B * H * L * (U + u) >= PROB_PAR_MIN;
#pragma omp parallel for schedule(static) if (par)
    for (int bh = 0; bh < B * H; bh++) {
        int b = bh / H, h = bh % H;
        const float *qb = q + (size_t)b * L * ld + h * Dh, *kb = k + (size_t)b * L * ld + h * Dh;
        const float *vb = v + (size_t)b * L * ld + h * Dh;
        float *ob = o + (size_t)b * L * ldo + h * Dh, *mb = m + (size_t)bh * L;
        int *rb = rank + (size_t)bh * L;
        float *pb = p + (size_t)bh * u * L;
        for (int i = 0; i < L; i++) {
            const int *si = sample + (size_t)i * U;
            float mx = -INFINITY, sum = 0;
            for (int s = 0; s < U; s++) {
                float d = dotf(qb + (size_t)i * ld, kb + (size_t)si[s] * ld, Dh);
                mx = d > mx ? d : mx;
                sum += d;
            }
            mb[i] = mx - sum / (float)L;
        }
        select_top(mb, rb, L, u);
        /* passive rows: mean (or running sum) of V */
        if (!causal) {
            float *o0 = ob;
            memset(o0, 0, (size_t)Dh * sizeof(float));
            for (int j = 0; j < L; j++)
                for (int e = 0; e < Dh; e++) o0[e] += vb[(size_t)j * ld + e];
            for (int e = 0; e < Dh; e++) o0[e] /= (float)L;
            for (int i = 1; i < L; i++) memcpy(ob + (size_t)i * ldo, o0, (size_t)Dh * sizeof(float));
        } else {
            for (int e = 0; e < Dh; e++) ob[e] = vb[e];
            for (int i = 1; i < L; i++)
                for (int e = 0; e < Dh; e++)
                    ob[(size_t)i * ldo + e] = ob[(size_t)(i - 1) * ldo + e] + vb[(size_t)i * ld + e];
        }
        /* active rows: full softmax attention */
        for (int i = 0; i < L; i++) {
            int r = rb[i];
            if (r < 0) continue;
            float *pr = pb + (size_t)r * L, mx = -INFINITY, z = 0;
            int n = causal ? i + 1 : L;
            for (int j = 0; j < n; j++) {
                pr[j] = scale * dotf(qb + (size_t)i * ld, kb + (size_t)j * ld, Dh);
                mx = pr[j] > mx ? pr[j] : mx;
            }
            for (int j = 0; j < n; j++) z += pr[j] = expf(pr[j] - mx);
            for (int j = 0; j < n; j++) pr[j] /= z;
            for (int j = n; j < L; j++) pr[j] = 0;
            float *oi = ob + (size_t)i * ldo;
            memset(oi, 0, (size_t)Dh * sizeof(float));
            for (int j = 0; j < n; j++)
                for (int e = 0; e < Dh; e++) oi[e] += pr[j] * vb[(size_t)j * ld + e];
        }
    }
}

void sf_prob_attention_backward(float *dq, float *dk, float *dv, const float *dout, int ldo,
                                const int *rank, const float *p, const float *q, const float *k,
                                const float *v, int ld, int u, int B, int L, int H, int Dh,
                                float scale, int causal) {
    int par = (long)B * H * L * (u + 1) >= PROB_PAR_MIN;
#pragma omp parallel for schedule(static) if (par)
    for (int bh = 0; bh < B * H; bh++) {
        int b = bh / H, h = bh % H;
        size_t base = (size_t)b * L * ld + h * Dh;
        const float *qb = q + base, *kb = k + base, *vb = v + base;
        float *dqb = dq + base, *dkb = dk + base, *dvb = dv + base;
        const float *gb = dout + (size_t)b * L * ldo + h * Dh;
        const int *rb = rank + (size_t)bh * L;
        const float *pb = p + (size_t)bh * u * L;
        for (int i = 0; i < L; i++) {
            memset(dqb + (size_t)i * ld, 0, (size_t)Dh * sizeof(float));
            memset(dkb + (size_t)i * ld, 0, (size_t)Dh * sizeof(float));
        }
        /* passive rows: dv_j gets the mean's 1/L share of every passive dout (or, causal, the
         * sum of the passive dout rows i >= j) */
        float acc[SF_PROB_MAX_DH];
        for (int e = 0; e < Dh; e++) acc[e] = 0;
        if (!causal) {
            for (int i = 0; i < L; i++)
                if (rb[i] < 0)
                    for (int e = 0; e < Dh; e++) acc[e] += gb[(size_t)i * ldo + e];
            for (int e = 0; e < Dh; e++) acc[e] /= (float)L;
            for (int j = 0; j < L; j++) memcpy(dvb + (size_t)j * ld, acc, (size_t)Dh * sizeof(float));
        } else {
            for (int j = L - 1; j >= 0; j--) {
                if (rb[j] < 0)
                    for (int e = 0; e < Dh; e++) acc[e] += gb[(size_t)j * ldo + e];
                memcpy(dvb + (size_t)j * ld, acc, (size_t)Dh * sizeof(float));
            }
        }
        /* active rows: softmax attention backward with the saved probabilities */
        for (int i = 0; i < L; i++) {
            int r = rb[i];
            if (r < 0) continue;
            const float *pr = pb + (size_t)r * L, *gi = gb + (size_t)i * ldo;
            const float *qi = qb + (size_t)i * ld;
            float *dqi = dqb + (size_t)i * ld;
            int n = causal ? i + 1 : L;
            float ds[SF_PROB_MAX_L_STACK], s = 0;
            float *dsp = n <= SF_PROB_MAX_L_STACK ? ds : NULL;
            /* two passes over the keys: dp_j = g_i . v_j, then ds_j = p_j (dp_j - sum p dp) */
            for (int j = 0; j < n; j++) {
                float dp = dotf(gi, vb + (size_t)j * ld, Dh);
                if (dsp) dsp[j] = dp;
                s += pr[j] * dp;
            }
            for (int j = 0; j < n; j++) {
                float dp = dsp ? dsp[j] : dotf(gi, vb + (size_t)j * ld, Dh);
                float dsj = scale * pr[j] * (dp - s);
                const float *kj = kb + (size_t)j * ld;
                float *dkj = dkb + (size_t)j * ld, *dvj = dvb + (size_t)j * ld;
                for (int e = 0; e < Dh; e++) {
                    dqi[e] += dsj * kj[e];
                    dkj[e] += dsj * qi[e];
                    dvj[e] += pr[j] * gi[e];
                }
            }
        }
    }
}

/* ---- references ----------------------------------------------------------------------------- */

static double dotd(const float *a, const float *b, int n) {
    double s = 0;
    for (int i = 0; i < n; i++) s += (double)a[i] * b[i];
    return s;
}

/* Row i's softmax probabilities over its keys (double), into pr[L] (masked entries 0). */
static void probs_ref(double *pr, const float *qi, const float *kb, int ld, int L, int Dh,
                      float scale, int n) {
    double mx = -INFINITY, z = 0;
    for (int j = 0; j < n; j++) {
        pr[j] = scale * dotd(qi, kb + (size_t)j * ld, Dh);
        if (pr[j] > mx) mx = pr[j];
    }
    for (int j = 0; j < n; j++) z += pr[j] = exp(pr[j] - mx);
    for (int j = 0; j < L; j++) pr[j] = j < n ? pr[j] / z : 0;
}

void sf_prob_attention_forward_ref(float *o, int ldo, int *rank, const int *rank_in,
                                   const float *q, const float *k, const float *v, int ld,
                                   const int *sample, int U, int u, int B, int L, int H, int Dh,
                                   float scale, int causal) {
    double *mm = sf_malloc((size_t)L * sizeof(double)), *pr = sf_malloc((size_t)L * sizeof(double));
    int *rk = sf_malloc((size_t)L * sizeof(int));
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++) {
            size_t base = (size_t)b * L * ld + h * Dh;
            const float *qb = q + base, *kb = k + base, *vb = v + base;
            if (rank_in) {
                memcpy(rk, rank_in + ((size_t)b * H + h) * L, (size_t)L * sizeof(int));
            } else {
                for (int i = 0; i < L; i++) { /* the sparsity measure of query i */
                    double mx = -INFINITY, sum = 0;
                    for (int s = 0; s < U; s++) {
                        double d = dotd(qb + (size_t)i * ld, kb + (size_t)sample[i * U + s] * ld, Dh);
                        if (d > mx) mx = d;
                        sum += d;
                    }
                    mm[i] = mx - sum / L;
                }
                for (int i = 0; i < L; i++) rk[i] = -1;
                for (int r = 0; r < u; r++) { /* the next largest (ties: lower index) */
                    int best = -1;
                    for (int i = 0; i < L; i++)
                        if (rk[i] < 0 && (best < 0 || mm[i] > mm[best])) best = i;
                    rk[best] = r;
                }
            }
            if (rank) memcpy(rank + ((size_t)b * H + h) * L, rk, (size_t)L * sizeof(int));
            for (int i = 0; i < L; i++) {
                float *oi = o + ((size_t)b * L + i) * ldo + h * Dh;
                if (rk[i] >= 0)
                    probs_ref(pr, qb + (size_t)i * ld, kb, ld, L, Dh, scale, causal ? i + 1 : L);
                for (int e = 0; e < Dh; e++) {
                    double s = 0;
                    if (rk[i] >= 0) {
                        for (int j = 0; j < L; j++) s += pr[j] * vb[(size_t)j * ld + e];
                    } else {
                        for (int j = 0; j < (causal ? i + 1 : L); j++) s += vb[(size_t)j * ld + e];
                        if (!causal) s /= L;
                    }
                    oi[e] = (float)s;
                }
            }
        }
    free(mm);
    free(pr);
    free(rk);
}

void sf_prob_attention_backward_ref(float *dq, float *dk, float *dv, const float *dout, int ldo,
                                    const int *rank, const float *q, const float *k,
                                    const float *v, int ld, int B, int L, int H, int Dh,
                                    float scale, int causal) {
    size_t nd = (size_t)L * Dh;
    double *pr = sf_malloc((size_t)L * sizeof(double)), *dp = sf_malloc((size_t)L * sizeof(double));
    double *gq = sf_malloc(nd * sizeof(double)), *gk = sf_malloc(nd * sizeof(double));
    double *gv = sf_malloc(nd * sizeof(double));
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++) {
            size_t base = (size_t)b * L * ld + h * Dh;
            const float *qb = q + base, *kb = k + base, *vb = v + base;
            const int *rk = rank + ((size_t)b * H + h) * L;
            memset(gq, 0, nd * sizeof(double));
            memset(gk, 0, nd * sizeof(double));
            memset(gv, 0, nd * sizeof(double));
            for (int i = 0; i < L; i++) {
                const float *gi = dout + ((size_t)b * L + i) * ldo + h * Dh;
                int n = causal ? i + 1 : L;
                if (rk[i] < 0) { /* o_i = mean_j v_j or sum_{j<=i} v_j */
                    for (int j = 0; j < n; j++)
                        for (int e = 0; e < Dh; e++) gv[(size_t)j * Dh + e] += causal ? gi[e] : (double)gi[e] / L;
                    continue;
                }
                probs_ref(pr, qb + (size_t)i * ld, kb, ld, L, Dh, scale, n);
                double s = 0;
                for (int j = 0; j < n; j++) {
                    dp[j] = dotd(gi, vb + (size_t)j * ld, Dh);
                    s += pr[j] * dp[j];
                }
                for (int j = 0; j < n; j++) {
                    double ds = scale * pr[j] * (dp[j] - s);
                    for (int e = 0; e < Dh; e++) {
                        gq[(size_t)i * Dh + e] += ds * kb[(size_t)j * ld + e];
                        gk[(size_t)j * Dh + e] += ds * qb[(size_t)i * ld + e];
                        gv[(size_t)j * Dh + e] += pr[j] * gi[e];
                    }
                }
            }
            for (int i = 0; i < L; i++)
                for (int e = 0; e < Dh; e++) {
                    dq[base + (size_t)i * ld + e] = (float)gq[(size_t)i * Dh + e];
                    dk[base + (size_t)i * ld + e] = (float)gk[(size_t)i * Dh + e];
                    dv[base + (size_t)i * ld + e] = (float)gv[(size_t)i * Dh + e];
                }
        }
    free(pr);
    free(dp);
    free(gq);
    free(gk);
    free(gv);
}
