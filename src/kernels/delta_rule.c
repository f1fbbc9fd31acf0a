/* The delta rule: chunked (WY) forward and backward, streaming step, sequential references.
 * See delta_rule.h for the definition, layouts and the chunk algebra. */
#include "kernels/delta_rule.h"

#include <omp.h>
#include <string.h>

#include "core/error.h"
#include "core/lens.h"
#include "kernels/gemm.h"

static int n_chunks(int T, int C) { return (T + C - 1) / C; }

size_t sf_delta_rule_states_floats(int B, int T, int H, int Dh, int chunk) {
    return (size_t)B * H * n_chunks(T, chunk) * Dh * Dh;
}

/* One worker's workspace, m <= C rows, D = Dh columns. */
typedef struct {
    float *R;   /* [C, 2D]: [beta V | beta K], solved in place into [U | W] */
    float *Kb;  /* [C, D]: beta K */
    float *Up;  /* [C, D]: U' = U - W S0 */
    float *A;   /* [C, C]: strict_lower(beta K K^T) */
    float *P;   /* [C, C]: lower(Q K^T); backward: then dP */
    float *dS;  /* [D, D]: gradient of the state leaving the chunk (backward) */
    float *dUp; /* [C, D] (backward) */
    float *X;   /* [C, 2D]: M^-T [dU | dW] (backward) */
} dr_ws;

#define DR_WS_FLOATS(C, D) (8 * (size_t)(C) * (D) + 2 * (size_t)(C) * (C) + (size_t)(D) * (D))

size_t sf_delta_rule_scratch_floats(int Dh, int chunk, int n_workers) {
    return (size_t)n_workers * DR_WS_FLOATS(chunk, Dh);
}

static dr_ws ws_at(float *scratch, int C, int D, int worker) {
    float *p = scratch + (size_t)worker * DR_WS_FLOATS(C, D);
    dr_ws w;
    w.R = p, p += 2 * (size_t)C * D;
    w.Kb = p, p += (size_t)C * D;
    w.Up = p, p += (size_t)C * D;
    w.A = p, p += (size_t)C * C;
    w.P = p, p += (size_t)C * C;
    w.dS = p, p += (size_t)D * D;
    w.dUp = p, p += (size_t)C * D;
    w.X = p;
    return w;
}


/* The chunk's WY factors from its m tokens (rows of stride ld, beta of stride ldb) and entry
 * state S0: w->Kb, w->A, w->R = [U | W], w->Up = U - W S0. */
static void chunk_factors(dr_ws *w, const float *q, const float *k, const float *v, int ld,
                          const float *beta, int ldb, const float *S0, int m, int D) {
    (void)q;
    const int D2 = 2 * D;
    for (int i = 0; i < m; i++) {
        const float bi = beta[(size_t)i * ldb];
        const float *ki = k + (size_t)i * ld, *vi = v + (size_t)i * ld;
        float *Ri = w->R + (size_t)i * D2, *Kbi = w->Kb + (size_t)i * D;
        for (int a = 0; a < D; a++) {
            Ri[a] = bi * vi[a];
            Ri[D + a] = Kbi[a] = bi * ki[a];
        }
    }
    /* A = Kb K^T, only its strict lower triangle is used */
    sf_gemm(0, 1, m, m, D, 1.0f, w->Kb, D, k, ld, 0.0f, w->A, m);
    /* forward substitution: R_i -= sum_{j<i} A_ij R_j, giving [U | W] = M^-1 [Vb | Kb] */
    for (int i = 1; i < m; i++) {
        float *restrict Ri = w->R + (size_t)i * D2;
        const float *Ai = w->A + (size_t)i * m;
        for (int j = 0; j < i; j++) {
            const float aij = Ai[j];
            const float *restrict Rj = w->R + (size_t)j * D2;
            for (int c = 0; c < D2; c++) Ri[c] -= aij * Rj[c];
        }
    }
    /* U' = U - W S0 */
    for (int i = 0; i < m; i++) memcpy(w->Up + (size_t)i * D, w->R + (size_t)i * D2, sizeof(float) * D);
    sf_gemm(0, 0, m, D, D, -1.0f, w->R + D, D2, S0, D, 1.0f, w->Up, D);
}

/* P = lower(Q K^T) (diagonal included), m x m. */
static void chunk_qk(float *P, const float *q, const float *k, int ld, int m, int D) {
    sf_gemm(0, 1, m, m, D, 1.0f, q, ld, k, ld, 0.0f, P, m);
    for (int i = 0; i < m; i++)
        for (int j = i + 1; j < m; j++) P[(size_t)i * m + j] = 0.0f;
}

static void zero_rows(float *x, int ld, int rows, int D) {
    for (int i = 0; i < rows; i++) memset(x + (size_t)i * ld, 0, sizeof(float) * D);
}

void sf_delta_rule_forward(float *o, int ldo, const float *q, const float *k, const float *v,
                           int ld, const float *beta, int ldb, int B, int T, int H, int Dh,
                           int chunk, float *states, float *scratch, int n_workers,
                           const int *lens) {
    const int D = Dh, C = chunk, NC = n_chunks(T, chunk);
    if (n_workers < 1) n_workers = 1;
#pragma omp parallel for schedule(dynamic, 1) num_threads(n_workers)
    for (int bh = 0; bh < B * H; bh++) {
        const int b = bh / H, h = bh % H, n = sf_seq_len(lens, b, T);
        dr_ws w = ws_at(scratch, C, D, omp_get_thread_num());
        float *S = states + (size_t)bh * NC * D * D; /* entry state of chunk c at S + c*D*D */
        memset(S, 0, sizeof(float) * D * D);
        const size_t row0 = (size_t)b * T;
        for (int c = 0, t0 = 0; t0 < n; c++, t0 += C) {
            const int m = n - t0 < C ? n - t0 : C;
            float *S0 = S + (size_t)c * D * D;
            const float *qc = q + (row0 + t0) * ld + h * D, *kc = k + (row0 + t0) * ld + h * D;
            const float *vc = v + (row0 + t0) * ld + h * D, *bc = beta + (row0 + t0) * ldb + h;
            float *oc = o + (row0 + t0) * ldo + h * D;
            chunk_factors(&w, qc, kc, vc, ld, bc, ldb, S0, m, D);
            chunk_qk(w.P, qc, kc, ld, m, D);
            sf_gemm(0, 0, m, D, D, 1.0f, qc, ld, S0, D, 0.0f, oc, ldo);
            sf_gemm(0, 0, m, D, m, 1.0f, w.P, m, w.Up, D, 1.0f, oc, ldo);
            if (c + 1 < NC) { /* the next chunk's entry state S0 + K^T U' */
                float *S1 = S0 + (size_t)D * D;
                memcpy(S1, S0, sizeof(float) * D * D);
                sf_gemm(1, 0, D, D, m, 1.0f, kc, ld, w.Up, D, 1.0f, S1, D);
            }
        }
        zero_rows(o + (row0 + n) * ldo + h * D, ldo, T - n, D);
    }
}

void sf_delta_rule_backward(float *dq, float *dk, float *dv, float *dbeta, const float *dout,
                            int ldo, const float *q, const float *k, const float *v, int ld,
                            const float *beta, int ldb, int B, int T, int H, int Dh, int chunk,
                            const float *states, float *scratch, int n_workers, const int *lens) {
    const int D = Dh, D2 = 2 * Dh, C = chunk, NC = n_chunks(T, chunk);
    if (n_workers < 1) n_workers = 1;
#pragma omp parallel for schedule(dynamic, 1) num_threads(n_workers)
    for (int bh = 0; bh < B * H; bh++) {
        const int b = bh / H, h = bh % H, n = sf_seq_len(lens, b, T);
        dr_ws w = ws_at(scratch, C, D, omp_get_thread_num());
        const float *S = states + (size_t)bh * NC * D * D;
        const size_t row0 = (size_t)b * T;
        memset(w.dS, 0, sizeof(float) * D * D);
        for (int c = (n - 1) / C; c >= 0; c--) {
            const int t0 = c * C, m = n - t0 < C ? n - t0 : C;
            const float *S0 = S + (size_t)c * D * D;
            const size_t r = row0 + t0;
            const float *qc = q + r * ld + h * D, *kc = k + r * ld + h * D, *vc = v + r * ld + h * D;
            const float *bc = beta + r * ldb + h, *doc = dout + r * ldo + h * D;
            float *dqc = dq + r * ld + h * D, *dkc = dk + r * ld + h * D, *dvc = dv + r * ld + h * D;
            float *dbc = dbeta + r * ldb + h;
            chunk_factors(&w, qc, kc, vc, ld, bc, ldb, S0, m, D);
            chunk_qk(w.P, qc, kc, ld, m, D);
            /* dU' = P^T dO + K dS */
            sf_gemm(1, 0, m, D, m, 1.0f, w.P, m, doc, ldo, 0.0f, w.dUp, D);
            sf_gemm(0, 0, m, D, D, 1.0f, kc, ld, w.dS, D, 1.0f, w.dUp, D);
            /* dP = lower(dO U'^T) */
            sf_gemm(0, 1, m, m, D, 1.0f, doc, ldo, w.Up, D, 0.0f, w.P, m);
            for (int i = 0; i < m; i++)
                for (int j = i + 1; j < m; j++) w.P[(size_t)i * m + j] = 0.0f;
            /* dQ = dO S0^T + dP K;  dK = dP^T Q + U' dS^T (more terms below) */
            sf_gemm(0, 1, m, D, D, 1.0f, doc, ldo, S0, D, 0.0f, dqc, ld);
            sf_gemm(0, 0, m, D, m, 1.0f, w.P, m, kc, ld, 1.0f, dqc, ld);
            sf_gemm(1, 0, m, D, m, 1.0f, w.P, m, qc, ld, 0.0f, dkc, ld);
            sf_gemm(0, 1, m, D, D, 1.0f, w.Up, D, w.dS, D, 1.0f, dkc, ld);
            /* dS0 = dS + Q^T dO - W^T dU' (S0 enters O, S_end and U') */
            sf_gemm(1, 0, D, D, m, 1.0f, qc, ld, doc, ldo, 1.0f, w.dS, D);
            sf_gemm(1, 0, D, D, m, -1.0f, w.R + D, D2, w.dUp, D, 1.0f, w.dS, D);
            /* X = [dU | dW] with dU = dU', dW = -dU' S0^T; then X <- M^-T X (back substitution) */
            for (int i = 0; i < m; i++) memcpy(w.X + (size_t)i * D2, w.dUp + (size_t)i * D, sizeof(float) * D);
            sf_gemm(0, 1, m, D, D, -1.0f, w.dUp, D, S0, D, 0.0f, w.X + D, D2);
            for (int i = m - 2; i >= 0; i--) {
                float *restrict Xi = w.X + (size_t)i * D2;
                for (int j = i + 1; j < m; j++) {
                    const float aji = w.A[(size_t)j * m + i];
                    const float *restrict Xj = w.X + (size_t)j * D2;
                    for (int cc = 0; cc < D2; cc++) Xi[cc] -= aji * Xj[cc];
                }
            }
            /* X = [dVb | dKb]; dA = -strict_lower(X [U | W]^T) (reuses P) */
            sf_gemm(0, 1, m, m, D2, -1.0f, w.X, D2, w.R, D2, 0.0f, w.P, m);
            for (int i = 0; i < m; i++)
                for (int j = i; j < m; j++) w.P[(size_t)i * m + j] = 0.0f;
            /* A = Kb K^T: dKb += dA K, dK += dA^T Kb */
            sf_gemm(0, 0, m, D, m, 1.0f, w.P, m, kc, ld, 1.0f, w.X + D, D2);
            sf_gemm(1, 0, m, D, m, 1.0f, w.P, m, w.Kb, D, 1.0f, dkc, ld);
            /* Kb = beta K, Vb = beta V */
            for (int i = 0; i < m; i++) {
                const float bi = bc[(size_t)i * ldb];
                const float *Xi = w.X + (size_t)i * D2, *ki = kc + (size_t)i * ld, *vi = vc + (size_t)i * ld;
                float *dki = dkc + (size_t)i * ld, *dvi = dvc + (size_t)i * ld;
                float db = 0.0f;
                for (int a = 0; a < D; a++) {
                    db += vi[a] * Xi[a] + ki[a] * Xi[D + a];
                    dvi[a] = bi * Xi[a];
                    dki[a] += bi * Xi[D + a];
                }
                dbc[(size_t)i * ldb] = db;
            }
        }
        const size_t rp = row0 + n;
        zero_rows(dq + rp * ld + h * D, ld, T - n, D);
        zero_rows(dk + rp * ld + h * D, ld, T - n, D);
        zero_rows(dv + rp * ld + h * D, ld, T - n, D);
        for (int t = n; t < T; t++) dbeta[(row0 + t) * ldb + h] = 0.0f;
    }
}

size_t sf_delta_rule_state_floats(int H, int Dh) { return (size_t)H * Dh * Dh; }

void sf_delta_rule_step(float *o, const float *q, const float *k, const float *v,
                        const float *beta, const float *state_in, float *state_out, int H, int Dh) {
    const int D = Dh;
    for (int h = 0; h < H; h++) {
        const float *Si = state_in + (size_t)h * D * D;
        float *So = state_out + (size_t)h * D * D;
        const float *qh = q + h * D, *kh = k + h * D, *vh = v + h * D;
        float *oh = o + h * D;
        /* u = beta (v - S^T k), into oh as scratch (o does not overlap the inputs) */
        for (int c = 0; c < D; c++) oh[c] = 0.0f;
        for (int a = 0; a < D; a++)
            for (int c = 0; c < D; c++) oh[c] += kh[a] * Si[(size_t)a * D + c];
        for (int c = 0; c < D; c++) oh[c] = beta[h] * (vh[c] - oh[c]);
        for (int a = 0; a < D; a++)
            for (int c = 0; c < D; c++) So[(size_t)a * D + c] = Si[(size_t)a * D + c] + kh[a] * oh[c];
        for (int c = 0; c < D; c++) oh[c] = 0.0f;
        for (int a = 0; a < D; a++)
            for (int c = 0; c < D; c++) oh[c] += qh[a] * So[(size_t)a * D + c];
    }
}

/* ------------------------------------------------------------------ sequential references */

void sf_delta_rule_forward_ref(float *o, int ldo, const float *q, const float *k, const float *v,
                               int ld, const float *beta, int ldb, int B, int T, int H, int Dh,
                               const int *lens) {
    const int D = Dh;
    double *S = sf_malloc(sizeof(double) * D * D), *u = sf_malloc(sizeof(double) * D);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++) {
            const int n = sf_seq_len(lens, b, T);
            memset(S, 0, sizeof(double) * D * D);
            for (int t = 0; t < T; t++) {
                const size_t r = (size_t)b * T + t;
                float *ot = o + r * ldo + h * D;
                if (t >= n) {
                    for (int c = 0; c < D; c++) ot[c] = 0.0f;
                    continue;
                }
                const float *qt = q + r * ld + h * D, *kt = k + r * ld + h * D, *vt = v + r * ld + h * D;
                const double bt = beta[r * ldb + h];
                for (int c = 0; c < D; c++) {
                    double p = 0;
                    for (int a = 0; a < D; a++) p += kt[a] * S[(size_t)a * D + c];
                    u[c] = bt * (vt[c] - p);
                }
                for (int a = 0; a < D; a++)
                    for (int c = 0; c < D; c++) S[(size_t)a * D + c] += kt[a] * u[c];
                for (int c = 0; c < D; c++) {
                    double s = 0;
                    for (int a = 0; a < D; a++) s += qt[a] * S[(size_t)a * D + c];
                    ot[c] = (float)s;
                }
            }
        }
    free(S);
    free(u);
}

void sf_delta_rule_backward_ref(float *dq, float *dk, float *dv, float *dbeta, const float *dout,
                                int ldo, const float *q, const float *k, const float *v, int ld,
                                const float *beta, int ldb, int B, int T, int H, int Dh,
                                const int *lens) {
    const int D = Dh;
    const size_t DD = (size_t)D * D;
    double *S = sf_malloc(sizeof(double) * DD * (T + 1)); /* S_t at S + t*DD, S_0 = 0 */
    double *dS = sf_malloc(sizeof(double) * DD), *u = sf_malloc(sizeof(double) * D);
    double *du = sf_malloc(sizeof(double) * D), *dp = sf_malloc(sizeof(double) * D);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++) {
            const int n = sf_seq_len(lens, b, T);
            memset(S, 0, sizeof(double) * DD);
            for (int t = 0; t < n; t++) { /* forward, keeping every state */
                const size_t r = (size_t)b * T + t;
                const float *kt = k + r * ld + h * D, *vt = v + r * ld + h * D;
                const double *Sp = S + t * DD;
                double *St = S + (t + 1) * DD;
                for (int c = 0; c < D; c++) {
                    double p = 0;
                    for (int a = 0; a < D; a++) p += kt[a] * Sp[(size_t)a * D + c];
                    u[c] = beta[r * ldb + h] * (vt[c] - p);
                }
                for (int a = 0; a < D; a++)
                    for (int c = 0; c < D; c++) St[(size_t)a * D + c] = Sp[(size_t)a * D + c] + kt[a] * u[c];
            }
            memset(dS, 0, sizeof(double) * DD);
            for (int t = T - 1; t >= 0; t--) {
                const size_t r = (size_t)b * T + t;
                float *dqt = dq + r * ld + h * D, *dkt = dk + r * ld + h * D, *dvt = dv + r * ld + h * D;
                if (t >= n) {
                    for (int a = 0; a < D; a++) dqt[a] = dkt[a] = dvt[a] = 0.0f;
                    dbeta[r * ldb + h] = 0.0f;
                    continue;
                }
                const float *qt = q + r * ld + h * D, *kt = k + r * ld + h * D, *vt = v + r * ld + h * D;
                const float *dot = dout + r * ldo + h * D;
                const double bt = beta[r * ldb + h];
                const double *Sp = S + t * DD, *St = S + (t + 1) * DD;
                /* o_t = S_t^T q_t */
                for (int a = 0; a < D; a++) {
                    double s = 0;
                    for (int c = 0; c < D; c++) {
                        s += St[(size_t)a * D + c] * dot[c];
                        dS[(size_t)a * D + c] += qt[a] * (double)dot[c];
                    }
                    dqt[a] = (float)s;
                }
                /* S_t = S_{t-1} + k u^T, u = beta (v - p), p = S_{t-1}^T k */
                double db = 0;
                for (int c = 0; c < D; c++) {
                    double p = 0, g = 0;
                    for (int a = 0; a < D; a++) {
                        p += kt[a] * Sp[(size_t)a * D + c];
                        g += dS[(size_t)a * D + c] * kt[a];
                    }
                    u[c] = bt * (vt[c] - p);
                    du[c] = g;
                    db += g * (vt[c] - p);
                    dvt[c] = (float)(bt * g);
                    dp[c] = -bt * g;
                }
                for (int a = 0; a < D; a++) {
                    double s = 0;
                    for (int c = 0; c < D; c++)
                        s += dS[(size_t)a * D + c] * u[c] + Sp[(size_t)a * D + c] * dp[c];
                    dkt[a] = (float)s;
                }
                for (int a = 0; a < D; a++)
                    for (int c = 0; c < D; c++) dS[(size_t)a * D + c] += kt[a] * dp[c];
                dbeta[r * ldb + h] = (float)db;
            }
        }
    free(S), free(dS), free(u), free(du), free(dp);
}
