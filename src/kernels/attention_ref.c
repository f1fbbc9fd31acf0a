#include "kernels/attention_ref.h"

#include <math.h>
#include <stdlib.h>

#include "core/error.h"
#include "kernels/attention.h" /* SF_ATTENTION_MAX_DH */

static void check_args(const sf_attention_ref_args *a) {
    SF_ASSERT(a->B >= 0 && a->T >= 0 && a->H >= 1 && a->Dh >= 1 && a->Dh <= SF_ATTENTION_MAX_DH);
    SF_ASSERT(a->ld >= a->H * a->Dh && a->ldo >= a->H * a->Dh);
    SF_ASSERT(!a->mask || (a->p >= 0 && a->p < 1));
    if (a->lens)
        for (int b = 0; b < a->B; b++) SF_ASSERT(a->lens[b] >= 1 && a->lens[b] <= a->T);
}

/* Keys query i of a sequence of n valid tokens sees: [0, jend). */
static int keys_seen(int i, int n, int causal) { return causal && i + 1 < n ? i + 1 : n; }

/* P [T][T] and lse [T] of one (b, h); q, k point at the head's first column of row 0. */
static void probs(double *P, double *lse, const sf_attention_ref_args *a, const float *q,
                  const float *k, int n, const float *bias_h) {
    const int T = a->T;
    for (int i = 0; i < T; i++) {
        double *row = P + (long)i * T, mx = -INFINITY, sum = 0;
        for (int j = 0; j < T; j++) row[j] = 0;
        lse[i] = 0;
        if (i >= n) continue;
        const int jend = keys_seen(i, n, a->causal);
        for (int j = 0; j < jend; j++) {
            double s = 0;
            for (int d = 0; d < a->Dh; d++) s += (double)q[(long)i * a->ld + d] * k[(long)j * a->ld + d];
            row[j] = s * a->scale + (bias_h ? bias_h[a->bias_center + j - i] : 0.0);
            mx = fmax(mx, row[j]);
        }
        for (int j = 0; j < jend; j++) sum += row[j] = exp(row[j] - mx);
        for (int j = 0; j < jend; j++) row[j] /= sum;
        lse[i] = mx + log(sum);
    }
}

/* The dropout factor of P[i][j] of pair pr: M / (1 - p), or 1 without a mask. */
static double keep(const sf_attention_ref_args *a, long pr, int i, int j) {
    const long T = a->T;
    return a->mask ? a->mask[(pr * T + i) * T + j] / (1.0 - (double)a->p) : 1.0;
}

void sf_attention_ref_forward(const sf_attention_ref_args *a, float *o, float *lse, float *P,
                              const float *q, const float *k, const float *v) {
    check_args(a);
    const int T = a->T, Dh = a->Dh;
    double *Pd = malloc(sizeof(double) * ((size_t)T * T + T) + 1), *l = Pd + (size_t)T * T;
    SF_ASSERT(Pd);
    for (int b = 0; b < a->B; b++)
        for (int h = 0; h < a->H; h++) {
            const long pr = (long)b * a->H + h, base = (long)b * T * a->ld + (long)h * Dh;
            const int n = a->lens ? a->lens[b] : T;
            probs(Pd, l, a, q + base, k + base, n, a->bias ? a->bias + (long)h * a->bias_ld : NULL);
            for (int i = 0; i < T; i++) {
                if (lse) lse[pr * T + i] = (float)l[i];
                for (int j = 0; j < T; j++) {
                    if (P) P[(pr * T + i) * T + j] = (float)Pd[(long)i * T + j];
                    Pd[(long)i * T + j] *= keep(a, pr, i, j);
                }
                for (int d = 0; d < Dh; d++) {
                    double s = 0;
                    for (int j = 0; j < n; j++) s += Pd[(long)i * T + j] * v[base + (long)j * a->ld + d];
                    o[((long)b * T + i) * a->ldo + (long)h * Dh + d] = (float)s;
                }
            }
        }
    free(Pd);
}

void sf_attention_ref_backward(const sf_attention_ref_args *a, float *dq, float *dk, float *dv,
                               float *dbias, const float *dout, const float *q, const float *k,
                               const float *v) {
    check_args(a);
    const int T = a->T, Dh = a->Dh;
    const size_t TT = (size_t)T * T;
    double *P = malloc(sizeof(double) * (2 * TT + T) + 1), *dS = P + TT, *l = dS + TT;
    SF_ASSERT(P);
    for (int b = 0; b < a->B; b++)
        for (int h = 0; h < a->H; h++) {
            const long pr = (long)b * a->H + h, base = (long)b * T * a->ld + (long)h * Dh;
            const float *qb = q + base, *kb = k + base, *vb = v + base;
            const float *gb = dout + (long)b * T * a->ldo + (long)h * Dh;
            const int n = a->lens ? a->lens[b] : T;
            probs(P, l, a, qb, kb, n, a->bias ? a->bias + (long)h * a->bias_ld : NULL);
            /* dPd = dout V^T; dP = dPd * M / (1 - p); dS = P * (dP - rowsum(P * dP)) */
            for (int i = 0; i < T; i++) {
                double D = 0;
                for (int j = 0; j < T; j++) {
                    double s = 0;
                    if (i < n && j < n)
                        for (int d = 0; d < Dh; d++) s += (double)gb[(long)i * a->ldo + d] * vb[(long)j * a->ld + d];
                    dS[(long)i * T + j] = s * keep(a, pr, i, j);
                    D += P[(long)i * T + j] * dS[(long)i * T + j];
                }
                for (int j = 0; j < T; j++) {
                    dS[(long)i * T + j] = P[(long)i * T + j] * (dS[(long)i * T + j] - D);
                    if (dbias && i < n && j < keys_seen(i, n, a->causal))
                        dbias[(long)h * a->bias_ld + a->bias_center + j - i] += (float)dS[(long)i * T + j];
                }
            }
            /* dQ = scale dS K, dK = scale dS^T Q, dV = Pd^T dout */
            for (int t = 0; t < T; t++)
                for (int d = 0; d < Dh; d++) {
                    double gq = 0, gk = 0, gv = 0;
                    for (int u = 0; u < n; u++) {
                        gq += dS[(long)t * T + u] * kb[(long)u * a->ld + d];
                        gk += dS[(long)u * T + t] * qb[(long)u * a->ld + d];
                        gv += P[(long)u * T + t] * keep(a, pr, u, t) * gb[(long)u * a->ldo + d];
                    }
                    dq[base + (long)t * a->ld + d] = (float)(gq * a->scale);
                    dk[base + (long)t * a->ld + d] = (float)(gk * a->scale);
                    dv[base + (long)t * a->ld + d] = (float)gv;
                }
        }
    free(P);
}
