#include "kernels/prob_attention.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/rng.h"
#include "kernels/gemm.h"
#include "kernels/softmax.h"

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

/* The u largest of m[L] (ties: the lower index) are active; they get ranks 0..u-1 in index order
 * (so consecutive active queries own consecutive rows of p), the rest -1. */
static void select_top(const float *m, int *rank, int L, int u) {
    for (int i = 0; i < L; i++) rank[i] = -1;
    for (int r = 0; r < u; r++) {
        int best = -1;
        for (int i = 0; i < L; i++)
            if (rank[i] < 0 && (best < 0 || m[i] > m[best])) best = i;
        rank[best] = r;
    }
    for (int i = 0, r = 0; i < L; i++)
        if (rank[i] >= 0) rank[i] = r++;
}

/* Active queries are handled in chunks of this many, gathered on the stack for two GEMMs. */
#define ACT_CHUNK 32

/* Next chunk of active queries from index *i on: their indices into idx, their rows of src
 * (stride ld, Dh wide) into buf; returns how many (0: none left). */
static int gather_active(const int *rank, int L, int *i, int *idx, float *buf, const float *src,
                         int ld, int Dh) {
    int nc = 0;
    for (; *i < L && nc < ACT_CHUNK; (*i)++)
        if (rank[*i] >= 0) {
            idx[nc] = *i;
            memcpy(buf + (size_t)nc * Dh, src + (size_t)*i * ld, (size_t)Dh * sizeof(float));
            nc++;
        }
    return nc;
}

/* Eight partial sums, so the compiler vectorises the (otherwise strictly ordered) reduction. */
static float dotf(const float *a, const float *b, int n) {
    float p[8] = {0, 0, 0, 0, 0, 0, 0, 0}, s = 0;
    int i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++) p[j] += a[i + j] * b[i + j];
    for (; i < n; i++) s += a[i] * b[i];
    return s + ((p[0] + p[4]) + (p[1] + p[5])) + ((p[2] + p[6]) + (p[3] + p[7]));
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
            for (int i = 1; i < L; i++)
                memcpy(ob + (size_t)i * ldo, o0, (size_t)Dh * sizeof(float));
        } else {
            for (int e = 0; e < Dh; e++) ob[e] = vb[e];
            for (int i = 1; i < L; i++)
                for (int e = 0; e < Dh; e++)
                    ob[(size_t)i * ldo + e] =
                        ob[(size_t)(i - 1) * ldo + e] + vb[(size_t)i * ld + e];
        }
        /* active rows: full softmax attention, a chunk of queries per pair of GEMMs */
        float qa[ACT_CHUNK * SF_PROB_MAX_DH];
        int idx[ACT_CHUNK];
        for (int i = 0, r0 = 0, nc; (nc = gather_active(rb, L, &i, idx, qa, qb, ld, Dh)) > 0;
             r0 += nc) {
            float *p0 = pb + (size_t)r0 * L;
            sf_gemm(0, 1, nc, L, Dh, scale, qa, Dh, kb, ld, 0.0f, p0, L);
            for (int c = 0; c < nc; c++) {
                float *pr = p0 + (size_t)c * L, mx = -INFINITY, z = 0;
                int n = causal ? idx[c] + 1 : L;
                for (int j = 0; j < n; j++) mx = pr[j] > mx ? pr[j] : mx;
                for (int j = 0; j < n; j++) z += pr[j] = sf_expf_fast(pr[j] - mx);
                for (int j = 0; j < n; j++) pr[j] /= z;
                for (int j = n; j < L; j++) pr[j] = 0;
            }
            sf_gemm(0, 0, nc, Dh, L, 1.0f, p0, L, vb, ld, 0.0f, qa,
                    Dh); /* qa now holds the rows of o */
            for (int c = 0; c < nc; c++)
                memcpy(ob + (size_t)idx[c] * ldo, qa + (size_t)c * Dh, (size_t)Dh * sizeof(float));
        }
    }
}

void sf_prob_attention_backward(float *dq, float *dk, float *dv, float *work, const float *dout,
                                int ldo, const int *rank, const float *p, const float *q,
                                const float *k, const float *v, int ld, int u, int B, int L, int H,
                                int Dh, float scale, int causal) {
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
            for (int j = 0; j < L; j++)
                memcpy(dvb + (size_t)j * ld, acc, (size_t)Dh * sizeof(float));
        } else {
            for (int j = L - 1; j >= 0; j--) {
                if (rb[j] < 0)
                    for (int e = 0; e < Dh; e++) acc[e] += gb[(size_t)j * ldo + e];
                memcpy(dvb + (size_t)j * ld, acc, (size_t)Dh * sizeof(float));
            }
        }
        /* active rows: softmax attention backward with the saved probabilities, by chunks:
         * dP = g V^T, dS = scale P (dP - rowsum(P dP)), dV += P^T g, dK += dS^T q, dq = dS K */
        float ga[ACT_CHUNK * SF_PROB_MAX_DH], qa[ACT_CHUNK * SF_PROB_MAX_DH];
        int idx[ACT_CHUNK];
        float *wb = work + (size_t)bh * u * L;
        for (int i = 0, r0 = 0, nc; r0 < u; r0 += nc) {
            int i2 = i;
            nc = gather_active(rb, L, &i, idx, ga, gb, ldo, Dh);
            gather_active(rb, L, &i2, idx, qa, qb, ld, Dh);
            if (!nc) break;
            const float *p0 = pb + (size_t)r0 * L;
            float *w0 = wb + (size_t)r0 * L;
            sf_gemm(0, 1, nc, L, Dh, 1.0f, ga, Dh, vb, ld, 0.0f, w0, L);
            for (int c = 0; c < nc; c++) {
                const float *pr = p0 + (size_t)c * L;
                float *wr = w0 + (size_t)c * L, s = 0;
                for (int j = 0; j < L; j++) s += pr[j] * wr[j];
                for (int j = 0; j < L; j++) wr[j] = scale * pr[j] * (wr[j] - s);
            }
            sf_gemm(1, 0, L, Dh, nc, 1.0f, p0, L, ga, Dh, 1.0f, dvb, ld);
            sf_gemm(1, 0, L, Dh, nc, 1.0f, w0, L, qa, Dh, 1.0f, dkb, ld);
            sf_gemm(0, 0, nc, Dh, L, 1.0f, w0, L, kb, ld, 0.0f, ga, Dh); /* ga now holds dq rows */
            for (int c = 0; c < nc; c++)
                memcpy(dqb + (size_t)idx[c] * ld, ga + (size_t)c * Dh, (size_t)Dh * sizeof(float));
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

void sf_prob_attention_forward_ref(float *o, int ldo, int *rank, const int *rank_in, const float *q,
                                   const float *k, const float *v, int ld, const int *sample, int U,
                                   int u, int B, int L, int H, int Dh, float scale, int causal) {
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
                        double d =
                            dotd(qb + (size_t)i * ld, kb + (size_t)sample[i * U + s] * ld, Dh);
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
                for (int i = 0, r = 0; i < L; i++) /* ranks in index order, as the fast kernel */
                    if (rk[i] >= 0) rk[i] = r++;
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
                                    const int *rank, const float *q, const float *k, const float *v,
                                    int ld, int B, int L, int H, int Dh, float scale, int causal) {
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
                        for (int e = 0; e < Dh; e++)
                            gv[(size_t)j * Dh + e] += causal ? gi[e] : (double)gi[e] / L;
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
