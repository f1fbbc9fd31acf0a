#include "kernels/attention_probs.h"
#include "kernels/attention_ref.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "kernels/attention.h" /* SF_ATTENTION_MAX_DH, SF_ATTENTION_PAR_MIN */
#include "kernels/softmax.h"   /* sf_expf_fast */

static void check_args(int ld, int ldo, int B, int T, int H, int Dh, const int *lens) {
    SF_ASSERT(B >= 0 && T >= 0 && H >= 1 && Dh >= 1 && Dh <= SF_ATTENTION_MAX_DH);
    SF_ASSERT(ld >= H * Dh && ldo >= H * Dh);
    if (lens)
        for (int b = 0; b < B; b++) SF_ASSERT(lens[b] >= 1 && lens[b] <= T);
}

/* Keys query i of a sequence of n valid tokens sees: [0, jend). */
static inline int keys_seen(int i, int n, int causal) { return causal && i + 1 < n ? i + 1 : n; }

static inline float keep_factor(const uint8_t *mask, long idx, float c) {
    return mask ? (float)mask[idx] * c : 1.0f;
}

/* ---- forward ---------------------------------------------------------------------------- */

static void probs_head(float *P, const float *q, const float *k, long ld, int T, int n, int Dh,
                       float scale, int causal, const float *bias_h, int bias_center) {
    for (int i = 0; i < T; i++) {
        float *row = P + (long)i * T;
        memset(row, 0, (size_t)T * sizeof(float));
        if (i >= n) continue;
        const int jend = keys_seen(i, n, causal);
        const float *qi = q + (long)i * ld;
        float mx = -INFINITY;
        for (int j = 0; j < jend; j++) {
            const float *kj = k + (long)j * ld;
            float s = 0.0f;
            for (int d = 0; d < Dh; d++) s += qi[d] * kj[d];
            s *= scale;
            if (bias_h) s += bias_h[bias_center + j - i];
            row[j] = s;
            mx = s > mx ? s : mx;
        }
        float sum = 0.0f;
        for (int j = 0; j < jend; j++) {
            row[j] = sf_expf_fast(row[j] - mx);
            sum += row[j];
        }
        const float inv = 1.0f / sum;
        for (int j = 0; j < jend; j++) row[j] *= inv;
    }
}

void sf_attention_probs_forward(float *P, const float *q, const float *k, int ld, int B, int T,
                                int H, int Dh, float scale, int causal, const int *lens,
                                const float *bias, int bias_ld, int bias_center) {
    check_args(ld, H * Dh, B, T, H, Dh, lens);
    const long npairs = (long)B * H;
#pragma omp parallel for schedule(static) if (npairs * T * T >= SF_ATTENTION_PAR_MIN)
    for (long pr = 0; pr < npairs; pr++) {
        const int b = (int)(pr / H), h = (int)(pr % H);
        const long base = (long)b * T * ld + (long)h * Dh;
        probs_head(P + pr * T * T, q + base, k + base, ld, T, lens ? lens[b] : T, Dh, scale, causal,
                   bias ? bias + (long)h * bias_ld : NULL, bias_center);
    }
}

void sf_attention_probs_apply(float *o, int ldo, const float *Pd, const float *v, int ld, int B,
                              int T, int H, int Dh, const int *lens) {
    check_args(ld, ldo, B, T, H, Dh, lens);
    const long npairs = (long)B * H;
#pragma omp parallel for schedule(static) if (npairs * T * T >= SF_ATTENTION_PAR_MIN)
    for (long pr = 0; pr < npairs; pr++) {
        const int b = (int)(pr / H), h = (int)(pr % H), n = lens ? lens[b] : T;
        const float *vb = v + (long)b * T * ld + (long)h * Dh;
        for (int i = 0; i < T; i++) {
            float *oi = o + ((long)b * T + i) * ldo + (long)h * Dh;
            memset(oi, 0, (size_t)Dh * sizeof(float));
            if (i >= n) continue;
            const float *row = Pd + (pr * T + i) * T;
            for (int j = 0; j < n; j++) { /* P is 0 beyond the keys row i sees */
                const float w = row[j];
                const float *vj = vb + (long)j * ld;
                for (int d = 0; d < Dh; d++) oi[d] += w * vj[d];
            }
        }
    }
}

/* ---- backward --------------------------------------------------------------------------- */

/* One (b, h). With Pd = P * M c, dPd_ij = dout_i . v_j, dv_j = sum_i Pd_ij dout_i,
 * dP_ij = dPd_ij M_ij c, dS_ij = P_ij (dP_ij - D_i), D_i = sum_j P_ij dP_ij = dout_i . o_i
 * (o_i = sum_j Pd_ij v_j, recomputed here: no T-sized scratch), dq_i = scale sum_j dS_ij k_j,
 * dk_j = scale sum_i dS_ij q_i, dbias[j - i] += dS_ij. */
static void backward_head(float *dq, float *dk, float *dv, float *dbias_h, const float *dout,
                          long ldo, const float *P, const uint8_t *mask, float c, const float *q,
                          const float *k, const float *v, long ld, int T, int n, int Dh,
                          float scale, int causal, int bias_center) {
    for (int t = 0; t < T; t++) {
        memset(dq + (long)t * ld, 0, (size_t)Dh * sizeof(float));
        memset(dk + (long)t * ld, 0, (size_t)Dh * sizeof(float));
        memset(dv + (long)t * ld, 0, (size_t)Dh * sizeof(float));
    }
    float oi[SF_ATTENTION_MAX_DH];
    for (int i = 0; i < n; i++) {
        const int jend = keys_seen(i, n, causal);
        const float *row = P + (long)i * T, *gi = dout + (long)i * ldo, *qi = q + (long)i * ld;
        const uint8_t *mrow = mask ? mask + (long)i * T : NULL;
        float *dqi = dq + (long)i * ld;
        memset(oi, 0, (size_t)Dh * sizeof(float));
        for (int j = 0; j < jend; j++) {
            const float w = row[j] * keep_factor(mrow, j, c);
            const float *vj = v + (long)j * ld;
            for (int d = 0; d < Dh; d++) oi[d] += w * vj[d];
        }
        float D = 0.0f;
        for (int d = 0; d < Dh; d++) D += gi[d] * oi[d];
        for (int j = 0; j < jend; j++) {
            const float *vj = v + (long)j * ld, *kj = k + (long)j * ld;
            const float kf = keep_factor(mrow, j, c), pd = row[j] * kf;
            float dpd = 0.0f;
            for (int d = 0; d < Dh; d++) dpd += gi[d] * vj[d];
            float *dvj = dv + (long)j * ld, *dkj = dk + (long)j * ld;
            for (int d = 0; d < Dh; d++) dvj[d] += pd * gi[d];
            const float ds = row[j] * (dpd * kf - D);
            if (dbias_h) dbias_h[bias_center + j - i] += ds;
            const float dss = ds * scale;
            for (int d = 0; d < Dh; d++) {
                dqi[d] += dss * kj[d];
                dkj[d] += dss * qi[d];
            }
        }
    }
}

void sf_attention_probs_backward(float *dq, float *dk, float *dv, float *dbias, const float *dout,
                                 int ldo, const float *P, const uint8_t *mask, float p,
                                 const float *q, const float *k, const float *v, int ld, int B,
                                 int T, int H, int Dh, float scale, int causal, const int *lens,
                                 int bias_ld, int bias_center) {
    check_args(ld, ldo, B, T, H, Dh, lens);
    SF_ASSERT(p >= 0.0f && p < 1.0f);
    const float c = 1.0f / (1.0f - p);
    const long TT = (long)T * T;
    const int par = (long)B * H * TT >= SF_ATTENTION_PAR_MIN;
#define SF_PROBS_BWD_HEAD(b, h)                                                                 \
    do {                                                                                        \
        const long pair = (long)(b) * H + (h), base = (long)(b) * T * ld + (long)(h) * Dh;        \
        backward_head(dq + base, dk + base, dv + base, dbias ? dbias + (long)(h) * bias_ld : NULL, \
                      dout + (long)(b) * T * ldo + (long)(h) * Dh, ldo, P + pair * TT,            \
                      mask ? mask + pair * TT : NULL, c, q + base, k + base, v + base, ld, T,     \
                      lens ? lens[b] : T, Dh, scale, causal, bias_center);                      \
    } while (0)
    if (dbias) { /* each thread owns head h's bias row: batches in order inside */
#pragma omp parallel for schedule(static) if (par)
        for (int h = 0; h < H; h++)
            for (int b = 0; b < B; b++) SF_PROBS_BWD_HEAD(b, h);
    } else {
#pragma omp parallel for schedule(static) if (par)
        for (long pr = 0; pr < (long)B * H; pr++) SF_PROBS_BWD_HEAD((int)(pr / H), (int)(pr % H));
    }
#undef SF_PROBS_BWD_HEAD
}

/* ---- references (kernels/attention_ref.h) ----------------------------------------------- */

void sf_attention_probs_forward_ref(float *o, int ldo, float *P, const uint8_t *mask, float p,
                                    const float *q, const float *k, const float *v, int ld, int B,
                                    int T, int H, int Dh, float scale, int causal,
                                    const int *lens, const float *bias, int bias_ld,
                                    int bias_center) {
    sf_attention_ref_args a = {.B = B, .T = T, .H = H, .Dh = Dh, .ld = ld, .ldo = ldo,
                               .scale = scale, .causal = causal, .lens = lens, .bias = bias,
                               .bias_ld = bias_ld, .bias_center = bias_center, .mask = mask,
                               .p = p};
    sf_attention_ref_forward(&a, o, NULL, P, q, k, v);
}

void sf_attention_probs_backward_ref(float *dq, float *dk, float *dv, float *dbias,
                                     const float *dout, int ldo, const uint8_t *mask, float p,
                                     const float *q, const float *k, const float *v, int ld,
                                     int B, int T, int H, int Dh, float scale, int causal,
                                     const int *lens, const float *bias, int bias_ld,
                                     int bias_center) {
    sf_attention_ref_args a = {.B = B, .T = T, .H = H, .Dh = Dh, .ld = ld, .ldo = ldo,
                               .scale = scale, .causal = causal, .lens = lens, .bias = bias,
                               .bias_ld = bias_ld, .bias_center = bias_center, .mask = mask,
                               .p = p};
    sf_attention_ref_backward(&a, dq, dk, dv, dbias, dout, q, k, v);
}
