#include "kernels/attention_bias.h"
#include "kernels/attention_ref.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"

/* Forward/backward with fewer score entries than this (B*H*T*T) stay on the calling thread. */
#define SF_ATT_BIAS_PAR_MIN 65536L

int sf_t5_bucket(int rel, int bidirectional, int num_buckets, int max_distance) {
    int ret = 0, n;
    if (bidirectional) {
        num_buckets /= 2;
        if (rel > 0) ret += num_buckets;
        n = rel < 0 ? -rel : rel;
    } else {
        n = rel < 0 ? -rel : 0;
    }
    int max_exact = num_buckets / 2;
    if (n < max_exact) return ret + n;
    double r = log((double)n / max_exact) / log((double)max_distance / max_exact) *
               (num_buckets - max_exact);
    long large = max_exact + (long)r; /* truncation toward zero, as .to(long) */
    if (large > num_buckets - 1) large = num_buckets - 1;
    return ret + (int)large;
}

static inline int valid_len(const int *lens, int b, int T) { return lens ? lens[b] : T; }

static inline float dotf(const float *a, const float *b, int n) {
    float s = 0.0f;
#pragma omp simd reduction(+ : s)
    for (int i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

void sf_attention_bias_forward(float *o, int ldo, float *lse, const float *q, const float *k,
                               const float *v, int ld, int B, int T, int H, int Dh, float scale,
                               int causal, const int *lens, const float *bias, int bias_ld,
                               int bias_center) {
    long work = (long)B * H * T * T;
#pragma omp parallel for collapse(3) schedule(static) if (work >= SF_ATT_BIAS_PAR_MIN)
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++)
            for (int i = 0; i < T; i++) {
                const int n = valid_len(lens, b, T);
                float *oi = o + ((long)b * T + i) * ldo + (long)h * Dh;
                float *lse_i = lse + ((long)b * H + h) * T + i;
                if (i >= n) {
                    memset(oi, 0, (size_t)Dh * sizeof(float));
                    *lse_i = 0.0f;
                    continue;
                }
                const float *qi = q + ((long)b * T + i) * ld + (long)h * Dh;
                const float *bh = bias + (long)h * bias_ld + bias_center - i;
                int jend = causal ? i + 1 : n;
                float m = -INFINITY, l = 0.0f;
                memset(oi, 0, (size_t)Dh * sizeof(float));
                for (int j = 0; j < jend; j++) { /* online softmax */
                    const float *kj = k + ((long)b * T + j) * ld + (long)h * Dh;
                    const float *vj = v + ((long)b * T + j) * ld + (long)h * Dh;
                    float s = scale * dotf(qi, kj, Dh) + bh[j];
                    if (s > m) {
                        float f = expf(m - s);
                        l *= f;
                        for (int c = 0; c < Dh; c++) oi[c] *= f;
                        m = s;
                    }
                    float p = expf(s - m);
                    l += p;
#pragma omp simd
                    for (int c = 0; c < Dh; c++) oi[c] += p * vj[c];
                }
                float inv = 1.0f / l;
                for (int c = 0; c < Dh; c++) oi[c] *= inv;
                *lse_i = m + logf(l);
            }
}

void sf_attention_bias_backward(float *dq, float *dk, float *dv, float *dbias, const float *dout,
                                int ldo, const float *o, const float *lse, const float *q,
                                const float *k, const float *v, int ld, int B, int T, int H,
                                int Dh, float scale, int causal, const int *lens,
                                const float *bias, int bias_ld, int bias_center) {
    long work = (long)B * H * T * T;
#pragma omp parallel for schedule(static) if (work >= SF_ATT_BIAS_PAR_MIN && H > 1)
    for (int h = 0; h < H; h++) {
        float *dbh = dbias + (long)h * bias_ld + bias_center;
        for (int b = 0; b < B; b++) {
            const int n = valid_len(lens, b, T);
            for (int t = 0; t < T; t++) {
                long r = ((long)b * T + t) * ld + (long)h * Dh;
                memset(dq + r, 0, (size_t)Dh * sizeof(float));
                memset(dk + r, 0, (size_t)Dh * sizeof(float));
                memset(dv + r, 0, (size_t)Dh * sizeof(float));
            }
            for (int i = 0; i < n; i++) {
                const float *qi = q + ((long)b * T + i) * ld + (long)h * Dh;
                const float *doi = dout + ((long)b * T + i) * ldo + (long)h * Dh;
                const float *oi = o + ((long)b * T + i) * ldo + (long)h * Dh;
                float *dqi = dq + ((long)b * T + i) * ld + (long)h * Dh;
                const float *bh = bias + (long)h * bias_ld + bias_center - i;
                float Di = dotf(doi, oi, Dh), li = lse[((long)b * H + h) * T + i];
                int jend = causal ? i + 1 : n;
                for (int j = 0; j < jend; j++) {
                    long rj = ((long)b * T + j) * ld + (long)h * Dh;
                    const float *kj = k + rj, *vj = v + rj;
                    float p = expf(scale * dotf(qi, kj, Dh) + bh[j] - li);
                    float ds = p * (dotf(doi, vj, Dh) - Di);
                    float *dkj = dk + rj, *dvj = dv + rj;
#pragma omp simd
                    for (int c = 0; c < Dh; c++) {
                        dqi[c] += scale * ds * kj[c];
                        dkj[c] += scale * ds * qi[c];
                        dvj[c] += p * doi[c];
                    }
                    dbh[j - i] += ds;
                }
            }
        }
    }
}

void sf_attention_bias_step(float *o, const float *q, const float *kcache, const float *vcache,
                            int n_keys, int H, int Dh, float scale, const float *bias,
                            int bias_ld, int bias_center) {
    const int D = H * Dh, t = n_keys - 1;
    for (int h = 0; h < H; h++) {
        const float *qh = q + (long)h * Dh, *bh = bias + (long)h * bias_ld + bias_center - t;
        float *oh = o + (long)h * Dh, m = -INFINITY, l = 0.0f;
        memset(oh, 0, (size_t)Dh * sizeof(float));
        for (int j = 0; j < n_keys; j++) {
            const float *kj = kcache + (long)j * D + (long)h * Dh, *vj = vcache + (long)j * D + (long)h * Dh;
            float s = scale * dotf(qh, kj, Dh) + bh[j];
            if (s > m) {
                float f = expf(m - s);
                l *= f;
                for (int c = 0; c < Dh; c++) oh[c] *= f;
                m = s;
            }
            float p = expf(s - m);
            l += p;
            for (int c = 0; c < Dh; c++) oh[c] += p * vj[c];
        }
        for (int c = 0; c < Dh; c++) oh[c] /= l;
    }
}

/* ---- references (kernels/attention_ref.h) ------------------------------------------------ */

void sf_attention_bias_forward_ref(float *o, int ldo, float *lse, const float *q, const float *k,
                                   const float *v, int ld, int B, int T, int H, int Dh,
                                   float scale, int causal, const int *lens, const float *bias,
                                   int bias_ld, int bias_center) {
    sf_attention_ref_args a = {.B = B, .T = T, .H = H, .Dh = Dh, .ld = ld, .ldo = ldo,
                               .scale = scale, .causal = causal, .lens = lens, .bias = bias,
                               .bias_ld = bias_ld, .bias_center = bias_center};
    sf_attention_ref_forward(&a, o, lse, NULL, q, k, v);
}

void sf_attention_bias_backward_ref(float *dq, float *dk, float *dv, float *dbias,
                                    const float *dout, int ldo, const float *q, const float *k,
                                    const float *v, int ld, int B, int T, int H, int Dh,
                                    float scale, int causal, const int *lens, const float *bias,
                                    int bias_ld, int bias_center) {
    sf_attention_ref_args a = {.B = B, .T = T, .H = H, .Dh = Dh, .ld = ld, .ldo = ldo,
                               .scale = scale, .causal = causal, .lens = lens, .bias = bias,
                               .bias_ld = bias_ld, .bias_center = bias_center};
    sf_attention_ref_backward(&a, dq, dk, dv, dbias, dout, q, k, v);
}
