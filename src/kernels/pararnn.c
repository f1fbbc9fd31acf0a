/* ParaRNN kernels: see pararnn.h for the cells, the Newton solve and the linear recurrences. */
#include "kernels/pararnn.h"

#include <math.h>
#include <omp.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/lens.h"
#include "kernels/softmax.h" /* sf_expf_fast */

/* ---- elementwise nonlinearities (vectorisable; a few float ulps) ---------------------------- */

static inline float sigm(float x) { return 1.0f / (1.0f + sf_expf_fast(-x)); }
/* tanh from exp(-2|x|): no overflow, odd by construction; absolute error ~1e-7 near 0 */
static inline float tanh_fast(float x) {
    float e = sf_expf_fast(-2.0f * fabsf(x));
    return copysignf((1.0f - e) / (1.0f + e), x);
}

int sf_diag_cell_state(const sf_diag_cell *c) { return c->kind == SF_CELL_GRU_DIAG ? c->N : 2 * c->N; }
int sf_diag_cell_jac(const sf_diag_cell *c) { return c->kind == SF_CELL_GRU_DIAG ? c->N : 4 * c->N; }
int sf_diag_cell_h_offset(const sf_diag_cell *c) { return c->kind == SF_CELL_GRU_DIAG ? 0 : c->N; }

/* ---- one cell: value, Jacobian, and the per-token backward ---------------------------------- */

/* out = f(prev, u) (prev NULL: zero state); J (if not NULL) = df/dprev. Returns nothing; the
 * caller forms residuals. */
static void gru_eval(int N, const float *restrict a, const float *restrict prev,
                     const float *restrict u, float *restrict out, float *restrict J) {
    const float *az = a, *ar = a + N, *ah = a + 2 * N;
    const float *uz = u, *ur = u + N, *uh = u + 2 * N;
    if (!prev) {
        for (int j = 0; j < N; j++) out[j] = sigm(uz[j]) * tanh_fast(uh[j]);
        if (J)
            for (int j = 0; j < N; j++) {
                float z = sigm(uz[j]), r = sigm(ur[j]), cc = tanh_fast(uh[j]);
                float dz = z * (1 - z) * az[j], dc = (1 - cc * cc) * ah[j] * r;
                J[j] = (1 - z) + cc * dz + z * dc;
            }
        return;
    }
    if (!J) {
        for (int j = 0; j < N; j++) {
            float h = prev[j], z = sigm(az[j] * h + uz[j]), r = sigm(ar[j] * h + ur[j]);
            float cc = tanh_fast(ah[j] * h * r + uh[j]);
            out[j] = z * cc + (1 - z) * h;
        }
        return;
    }
    for (int j = 0; j < N; j++) {
        float h = prev[j], z = sigm(az[j] * h + uz[j]), r = sigm(ar[j] * h + ur[j]);
        float cc = tanh_fast(ah[j] * h * r + uh[j]);
        out[j] = z * cc + (1 - z) * h;
        float dz = z * (1 - z) * az[j], dr = r * (1 - r) * ar[j];
        float dc = (1 - cc * cc) * ah[j] * (r + h * dr);
        J[j] = (1 - z) + (cc - h) * dz + z * dc;
    }
}

/* LSTM state [c | h]; J = [Jcc | Jch | Jhc | Jhh] (each N). */
static inline __attribute__((always_inline)) void lstm_eval_body(int N, const float *restrict a, const float *restrict p,
                                  const float *restrict prev, const float *restrict u,
                                  float *restrict out, float *restrict J, const int use_prev,
                                  const int use_J) {
    const float *af = a, *ao = a + N, *ac = a + 2 * N, *pf = p, *po = p + N;
    const float *uf = u, *uo = u + N, *uc = u + 2 * N;
    for (int j = 0; j < N; j++) {
        float c0 = use_prev ? prev[j] : 0.0f, h0 = use_prev ? prev[N + j] : 0.0f;
        float f = sigm(af[j] * h0 + uf[j] + pf[j] * c0), g = tanh_fast(ac[j] * h0 + uc[j]);
        float c1 = f * c0 + (1 - f) * g;
        float o = sigm(ao[j] * h0 + uo[j] + po[j] * c1), tc = tanh_fast(c1);
        out[j] = c1;
        out[N + j] = o * tc;
        if (use_J) {
            float fd = f * (1 - f), od = o * (1 - o);
            float jcc = f + (c0 - g) * fd * pf[j];
            float jch = (c0 - g) * fd * af[j] + (1 - f) * (1 - g * g) * ac[j];
            float k = od * po[j] * tc + o * (1 - tc * tc);
            J[j] = jcc;
            J[N + j] = jch;
            J[2 * N + j] = k * jcc;
            J[3 * N + j] = od * ao[j] * tc + k * jch;
        }
    }
}

static void lstm_eval(int N, const float *a, const float *p, const float *prev, const float *u,
                      float *out, float *J) {
    if (prev && J)
        lstm_eval_body(N, a, p, prev, u, out, J, 1, 1);
    else if (prev)
        lstm_eval_body(N, a, p, prev, u, out, NULL, 1, 0);
    else if (J)
        lstm_eval_body(N, a, p, NULL, u, out, J, 0, 1);
    else
        lstm_eval_body(N, a, p, NULL, u, out, NULL, 0, 0);
}

static inline void cell_eval(const sf_diag_cell *c, const float *prev, const float *u, float *out,
                             float *J) {
    if (c->kind == SF_CELL_GRU_DIAG)
        gru_eval(c->N, c->a, prev, u, out, J);
    else
        lstm_eval(c->N, c->a, c->peep, prev, u, out, J);
}

void sf_diag_cell_step(const sf_diag_cell *c, const float *s_in, const float *u, float *s_out) {
    cell_eval(c, s_in, u, s_out, NULL);
}

/* Backward through one token: lam = dL/d(state_t) in total. Writes du (3N); adds dL/dstate_{t-1}
 * into dprev when not NULL; accumulates the state-weight gradients into da (3N) and dp (2N). */
/* The *_body functions take use_prev / use_dprev / use_J as constants from their dispatchers, so
 * each call site gets a loop without branches, which the compiler vectorises (a NULL test inside
 * the loop kept gru_back, lstm_eval and lstm_back scalar: the backward recurrence cost ~4.7x the
 * forward one). */
static inline __attribute__((always_inline)) void gru_back_body(int N, const float *restrict a, const float *restrict prev,
                                 const float *restrict u, const float *restrict lam,
                                 float *restrict du, float *restrict dprev, float *restrict da,
                                 const int use_prev, const int use_dprev) {
    const float *az = a, *ar = a + N, *ah = a + 2 * N;
    const float *uz = u, *ur = u + N, *uh = u + 2 * N;
    for (int j = 0; j < N; j++) {
        float h = use_prev ? prev[j] : 0.0f;
        float z = sigm(az[j] * h + uz[j]), r = sigm(ar[j] * h + ur[j]);
        float cc = tanh_fast(ah[j] * h * r + uh[j]);
        float l = lam[j];
        float dpz = l * (cc - h) * z * (1 - z), dph = l * z * (1 - cc * cc);
        float dpr = dph * ah[j] * h * r * (1 - r);
        du[j] = dpz;
        du[N + j] = dpr;
        du[2 * N + j] = dph;
        da[j] += dpz * h;
        da[N + j] += dpr * h;
        da[2 * N + j] += dph * h * r;
        if (use_dprev) dprev[j] += l * (1 - z) + dpz * az[j] + dpr * ar[j] + dph * ah[j] * r;
    }
}

static void gru_back(int N, const float *a, const float *prev, const float *u, const float *lam,
                     float *du, float *dprev, float *da) {
    if (prev && dprev)
        gru_back_body(N, a, prev, u, lam, du, dprev, da, 1, 1);
    else if (prev)
        gru_back_body(N, a, prev, u, lam, du, NULL, da, 1, 0);
    else if (dprev)
        gru_back_body(N, a, NULL, u, lam, du, dprev, da, 0, 1);
    else
        gru_back_body(N, a, NULL, u, lam, du, NULL, da, 0, 0);
}

static inline __attribute__((always_inline)) void lstm_back_body(int N, const float *restrict a, const float *restrict p,
                                  const float *restrict prev, const float *restrict u,
                                  const float *restrict lam, float *restrict du,
                                  float *restrict dprev, float *restrict da, float *restrict dp,
                                  const int use_prev, const int use_dprev) {
    const float *af = a, *ao = a + N, *ac = a + 2 * N, *pf = p, *po = p + N;
    const float *uf = u, *uo = u + N, *uc = u + 2 * N;
    for (int j = 0; j < N; j++) {
        float c0 = use_prev ? prev[j] : 0.0f, h0 = use_prev ? prev[N + j] : 0.0f;
        float f = sigm(af[j] * h0 + uf[j] + pf[j] * c0), g = tanh_fast(ac[j] * h0 + uc[j]);
        float c1 = f * c0 + (1 - f) * g;
        float o = sigm(ao[j] * h0 + uo[j] + po[j] * c1), tc = tanh_fast(c1);
        float lc = lam[j], lh = lam[N + j];
        float dpo = lh * tc * o * (1 - o);
        float dc1 = lc + lh * o * (1 - tc * tc) + dpo * po[j];
        float dpf = dc1 * (c0 - g) * f * (1 - f), dpc = dc1 * (1 - f) * (1 - g * g);
        du[j] = dpf;
        du[N + j] = dpo;
        du[2 * N + j] = dpc;
        da[j] += dpf * h0;
        da[N + j] += dpo * h0;
        da[2 * N + j] += dpc * h0;
        dp[j] += dpf * c0;
        dp[N + j] += dpo * c1;
        if (use_dprev) {
            dprev[j] += dc1 * f + dpf * pf[j];
            dprev[N + j] += dpf * af[j] + dpo * ao[j] + dpc * ac[j];
        }
    }
}

static void lstm_back(int N, const float *a, const float *p, const float *prev, const float *u,
                      const float *lam, float *du, float *dprev, float *da, float *dp) {
    if (prev && dprev)
        lstm_back_body(N, a, p, prev, u, lam, du, dprev, da, dp, 1, 1);
    else if (prev)
        lstm_back_body(N, a, p, prev, u, lam, du, NULL, da, dp, 1, 0);
    else if (dprev)
        lstm_back_body(N, a, p, NULL, u, lam, du, dprev, da, dp, 0, 1);
    else
        lstm_back_body(N, a, p, NULL, u, lam, du, NULL, da, dp, 0, 0);
}

static inline void cell_back(const sf_diag_cell *c, const float *prev, const float *u,
                             const float *lam, float *du, float *dprev, float *da, float *dp) {
    if (c->kind == SF_CELL_GRU_DIAG)
        gru_back(c->N, c->a, prev, u, lam, du, dprev, da);
    else
        lstm_back(c->N, c->a, c->peep, prev, u, lam, du, dprev, da, dp);
}

/* ---- linear recurrences --------------------------------------------------------------------- */

/* Time index of the i-th step in solving order. */
static inline long tix(int T, int reverse, int i) { return reverse ? T - 1 - i : i; }

/* y = A x (+ y when acc) for one step's coefficient: diagonal or 2x2 blocks. x and y are 1 or 2
 * vectors of n. */
static inline void apply_A(int n, int block, const float *restrict A, const float *restrict x,
                           float *restrict y) {
    if (!block) {
        for (int j = 0; j < n; j++) y[j] = A[j] * x[j];
    } else {
        for (int j = 0; j < n; j++) {
            float x1 = x[j], x2 = x[n + j];
            y[j] = A[j] * x1 + A[n + j] * x2;
            y[n + j] = A[2 * n + j] * x1 + A[3 * n + j] * x2;
        }
    }
}

/* Steps [s, e) of one sequence from a zero start: y_i = A_i y_{i-1} + r_i; P = A_{e-1}...A_s
 * (when P is not NULL). */
static void chunk_local(int T, int n, int block, int reverse, const float *A, const float *r,
                        float *y, int s, int e, float *P) {
    const int ws = block ? 2 * n : n, wa = block ? 4 * n : n;
    for (int i = s; i < e; i++) {
        long t = tix(T, reverse, i);
        float *yt = y + t * ws;
        const float *rt = r + t * ws, *At = A + t * wa;
        if (i == s) {
            if (yt != rt) memcpy(yt, rt, (size_t)ws * sizeof(float));
        } else {
            const float *yp = y + tix(T, reverse, i - 1) * ws;
            if (!block) {
                for (int j = 0; j < n; j++) yt[j] = At[j] * yp[j] + rt[j];
            } else {
                for (int j = 0; j < n; j++) {
                    float p1 = yp[j], p2 = yp[n + j];
                    yt[j] = At[j] * p1 + At[n + j] * p2 + rt[j];
                    yt[n + j] = At[2 * n + j] * p1 + At[3 * n + j] * p2 + rt[n + j];
                }
            }
        }
        if (P) {
            if (i == s) {
                memcpy(P, At, (size_t)wa * sizeof(float));
            } else if (!block) {
                for (int j = 0; j < n; j++) P[j] *= At[j];
            } else { /* P = A_t P */
                for (int j = 0; j < n; j++) {
                    float p11 = P[j], p12 = P[n + j], p21 = P[2 * n + j], p22 = P[3 * n + j];
                    P[j] = At[j] * p11 + At[n + j] * p21;
                    P[n + j] = At[j] * p12 + At[n + j] * p22;
                    P[2 * n + j] = At[2 * n + j] * p11 + At[3 * n + j] * p21;
                    P[3 * n + j] = At[2 * n + j] * p12 + At[3 * n + j] * p22;
                }
            }
        }
    }
}

/* Fix-up of steps [s, e) given the true state before s (carry, ws floats, overwritten):
 * y_i += A_i...A_s carry. When `add` is not NULL the corrected y is also added into it (the
 * Newton update h += d, fused). */
static void chunk_fix(int T, int n, int block, int reverse, const float *A, float *y, int s, int e,
                      float *carry, float *add) {
    const int ws = block ? 2 * n : n, wa = block ? 4 * n : n;
    for (int i = s; i < e; i++) {
        long t = tix(T, reverse, i);
        float *yt = y + t * ws;
        const float *At = A + t * wa;
        if (carry) {
            if (!block) {
                for (int j = 0; j < n; j++) carry[j] *= At[j];
            } else {
                for (int j = 0; j < n; j++) {
                    float c1 = carry[j], c2 = carry[n + j];
                    carry[j] = At[j] * c1 + At[n + j] * c2;
                    carry[n + j] = At[2 * n + j] * c1 + At[3 * n + j] * c2;
                }
            }
            for (int j = 0; j < ws; j++) yt[j] += carry[j];
        }
        if (add)
            for (int j = 0; j < ws; j++) add[t * ws + j] += yt[j];
    }
}

/* Serial scan over the chunk ends of one sequence: on return carry[k] holds the true state at
 * the end of chunk k (k = 0..K-2 are what the fix-ups of chunks 1..K-1 start from). */
static void chunk_scan(int T, int n, int block, int reverse, const float *y, const int *bounds,
                       int K, const float *P, float *carry) {
    const int ws = block ? 2 * n : n, wa = block ? 4 * n : n;
    for (int k = 0; k < K - 1; k++) {
        const float *yend = y + tix(T, reverse, bounds[k + 1] - 1) * ws;
        float *ck = carry + (size_t)k * ws;
        if (k == 0) {
            memcpy(ck, yend, (size_t)ws * sizeof(float));
        } else {
            apply_A(n, block, P + (size_t)k * wa, ck - ws, ck);
            for (int j = 0; j < ws; j++) ck[j] += yend[j];
        }
    }
}

static int n_threads(void) {
    int t = omp_get_max_threads();
    return t < 1 ? 1 : (t > SF_PARARNN_MAX_THREADS ? SF_PARARNN_MAX_THREADS : t);
}

/* Chunk k of K over n steps: [bounds[k], bounds[k+1]). */
static void chunk_bounds(int n, int K, int *bounds) {
    for (int k = 0; k <= K; k++) bounds[k] = (int)((long)n * k / K);
}

size_t sf_linrec_work_floats(int n, int block, int chunks) {
    return (size_t)chunks * (size_t)(block ? 6 * n : 2 * n);
}

void sf_linrec_solve(int T, int n, int block, int reverse, const float *A, const float *r, float *y,
                     int chunks, float *work) {
    int K = chunks < 1 ? 1 : (chunks > SF_PARARNN_MAX_THREADS ? SF_PARARNN_MAX_THREADS : chunks);
    if (K > T) K = T;
    if (K < 1) return; /* T == 0 */
    const int ws = block ? 2 * n : n, wa = block ? 4 * n : n;
    int bounds[SF_PARARNN_MAX_THREADS + 1];
    chunk_bounds(T, K, bounds);
    float *P = work, *carry = work + (size_t)K * wa;
#pragma omp parallel for num_threads(K) schedule(static, 1) if (K > 1)
    for (int k = 0; k < K; k++)
        chunk_local(T, n, block, reverse, A, r, y, bounds[k], bounds[k + 1],
                    k ? P + (size_t)k * wa : NULL);
    chunk_scan(T, n, block, reverse, y, bounds, K, P, carry);
#pragma omp parallel for num_threads(K) schedule(static, 1) if (K > 1)
    for (int k = 1; k < K; k++)
        chunk_fix(T, n, block, reverse, A, y, bounds[k], bounds[k + 1], carry + (size_t)(k - 1) * ws,
                  NULL);
}

void sf_linrec_solve_ref(int T, int n, int block, int reverse, const float *A, const float *r,
                         float *y) {
    const int ws = block ? 2 * n : n, wa = block ? 4 * n : n;
    double *prev = calloc((size_t)ws, sizeof(double)), *cur = calloc((size_t)ws, sizeof(double));
    SF_ASSERT(prev && cur);
    for (int i = 0; i < T; i++) {
        long t = reverse ? T - 1 - i : i;
        const float *At = A + t * wa, *rt = r + t * ws;
        for (int j = 0; j < n; j++) {
            if (!block) {
                cur[j] = (double)At[j] * prev[j] + rt[j];
            } else {
                cur[j] = (double)At[j] * prev[j] + (double)At[n + j] * prev[n + j] + rt[j];
                cur[n + j] =
                    (double)At[2 * n + j] * prev[j] + (double)At[3 * n + j] * prev[n + j] + rt[n + j];
            }
        }
        for (int j = 0; j < ws; j++) y[t * ws + j] = (float)(prev[j] = cur[j]);
    }
    free(prev);
    free(cur);
}

/* ---- batched drivers ------------------------------------------------------------------------ */


/* Chunks per sequence: enough (b, chunk) items to occupy the threads, each at least 8 tokens. */
static int chunks_per_seq(int B, int T) {
    int nt = n_threads(), K = (nt + B - 1) / B;
    if (K > T / 8) K = T / 8;
    return K < 1 ? 1 : K;
}

typedef struct {
    float *J, *r, *P, *carry, *part;
} rnn_work;

static rnn_work split_work(const sf_diag_cell *c, int B, int T, float *work) {
    const int S = sf_diag_cell_state(c), W = sf_diag_cell_jac(c), K = chunks_per_seq(B, T);
    rnn_work w;
    w.J = work;
    w.r = w.J + (size_t)B * T * W;
    w.P = w.r + (size_t)B * T * S;
    w.carry = w.P + (size_t)B * K * W;
    w.part = w.carry + (size_t)B * K * S;
    return w;
}

size_t sf_diag_rnn_work_floats(const sf_diag_cell *c, int B, int T) {
    const size_t S = (size_t)sf_diag_cell_state(c), W = (size_t)sf_diag_cell_jac(c);
    const size_t K = (size_t)chunks_per_seq(B, T);
    return (size_t)B * T * (W + S) + (size_t)B * K * (W + S) +
           (size_t)SF_PARARNN_MAX_THREADS * 5 * (size_t)c->N;
}

static void zero_padding(int B, int T, int width, float *x, const int *lens) {
    if (!lens) return;
    for (int b = 0; b < B; b++) {
        int n = lens[b];
        if (n < T) memset(x + ((size_t)b * T + n) * width, 0, (size_t)(T - n) * width * sizeof(float));
    }
}

void sf_diag_rnn_sequential(const sf_diag_cell *c, int B, int T, const float *u, float *s,
                            const int *lens) {
    const int S = sf_diag_cell_state(c), N = c->N;
#pragma omp parallel for schedule(dynamic, 1) if (B > 1)
    for (int b = 0; b < B; b++) {
        const int n = sf_seq_len(lens, b, T);
        for (int t = 0; t < n; t++) {
            const size_t o = (size_t)b * T + t;
            cell_eval(c, t ? s + (o - 1) * S : NULL, u + o * 3 * N, s + o * S, NULL);
        }
    }
    zero_padding(B, T, S, s, lens);
}

/* The Newton linear solve over every (sequence, chunk) item: r holds -F on entry and the step d
 * on return; the fix-up adds d into s. */
static void newton_linsolve(const sf_diag_cell *c, int B, int T, const int *lens, int K, int reverse,
                            const float *J, float *r, float *s, float *P, float *carry) {
    const int S = sf_diag_cell_state(c), W = sf_diag_cell_jac(c), block = c->kind == SF_CELL_LSTM_CIFG;
    const int N = c->N, items = B * K;
#pragma omp parallel for schedule(static, 1) num_threads(n_threads())
    for (int it = 0; it < items; it++) {
        int b = it / K, k = it % K, n = sf_seq_len(lens, b, T), bounds[SF_PARARNN_MAX_THREADS + 1];
        int Kb = K < n ? K : n;
        if (k >= Kb) continue;
        chunk_bounds(n, Kb, bounds);
        const size_t o = (size_t)b * T;
        chunk_local(n, N, block, reverse, J + o * W, r + o * S, r + o * S, bounds[k], bounds[k + 1],
                    k ? P + (size_t)it * W : NULL);
    }
    for (int b = 0; b < B; b++) {
        int n = sf_seq_len(lens, b, T), bounds[SF_PARARNN_MAX_THREADS + 1], Kb = K < n ? K : n;
        chunk_bounds(n, Kb, bounds);
        const size_t o = (size_t)b * T;
        chunk_scan(n, N, block, reverse, r + o * S, bounds, Kb, P + (size_t)b * K * W,
                   carry + (size_t)b * K * S);
    }
#pragma omp parallel for schedule(static, 1) num_threads(n_threads())
    for (int it = 0; it < items; it++) {
        int b = it / K, k = it % K, n = sf_seq_len(lens, b, T), bounds[SF_PARARNN_MAX_THREADS + 1];
        int Kb = K < n ? K : n;
        if (k >= Kb) continue;
        chunk_bounds(n, Kb, bounds);
        const size_t o = (size_t)b * T;
        chunk_fix(n, N, block, reverse, J + o * W, r + o * S, bounds[k], bounds[k + 1],
                  k ? carry + ((size_t)b * K + k - 1) * S : NULL, s ? s + o * S : NULL);
    }
}

/* Residual r = f(s_{t-1}, u_t) - s_t (= -F) and Jacobians for every token; returns max |F|. */
static float newton_eval(const sf_diag_cell *c, int B, int T, const int *lens, const float *u,
                         const float *s, float *r, float *J) {
    const int S = sf_diag_cell_state(c), W = sf_diag_cell_jac(c), N = c->N;
    const long total = (long)B * T;
    float res = 0.0f;
#pragma omp parallel for schedule(static) reduction(max : res) num_threads(n_threads())
    for (long o = 0; o < total; o++) {
        int b = (int)(o / T), t = (int)(o % T);
        if (t >= sf_seq_len(lens, b, T)) continue;
        float *rt = r + o * S;
        cell_eval(c, t ? s + (o - 1) * S : NULL, u + o * 3 * N, rt, J ? J + o * W : NULL);
        const float *st = s + o * S;
        float m = 0.0f;
        int nan = 0;
        for (int j = 0; j < S; j++) {
            rt[j] -= st[j];
            float a = fabsf(rt[j]);
            m = a > m ? a : m;
            nan |= rt[j] != rt[j];
        }
        if (nan) m = INFINITY; /* a NaN state never passes the tolerance */
        res = m > res ? m : res;
    }
    return res;
}

static atomic_int g_newton_warned;

void sf_diag_rnn_newton(const sf_diag_cell *c, int B, int T, const float *u, float *s,
                        const int *lens, int max_iters, float tol, float *work,
                        sf_newton_stats *stats) {
    const int S = sf_diag_cell_state(c), N = c->N, K = chunks_per_seq(B, T);
    const long total = (long)B * T;
    rnn_work w = split_work(c, B, T, work);
    /* initial guess: every cell from the zero state */
#pragma omp parallel for schedule(static) num_threads(n_threads())
    for (long o = 0; o < total; o++) {
        int b = (int)(o / T), t = (int)(o % T);
        if (t < sf_seq_len(lens, b, T)) cell_eval(c, NULL, u + o * 3 * N, s + o * S, NULL);
    }
    zero_padding(B, T, S, s, lens);
    sf_newton_stats st = {0, 0.0f, 0, 0.0f};
    for (;;) {
        int last = st.iters >= max_iters;
        float res = newton_eval(c, B, T, lens, u, s, w.r, last ? NULL : w.J);
        if (st.iters == 0) st.initial_residual = res;
        st.residual = res;
        if (res <= tol || last) break;
        newton_linsolve(c, B, T, lens, K, 0, w.J, w.r, s, w.P, w.carry);
        st.iters++;
    }
    if (!(st.residual <= tol)) {
        if (!atomic_exchange(&g_newton_warned, 1))
            fprintf(stderr,
                    "warning: pararnn: Newton residual %.3g after %d iterations is above newton_tol "
                    "%.3g; falling back to the sequential solve (reported once)\n",
                    (double)st.residual, st.iters, (double)tol);
        sf_diag_rnn_sequential(c, B, T, u, s, lens);
        st.fallback = 1;
    }
    if (stats) *stats = st;
}

void sf_newton_tally_add(sf_newton_tally *t, const sf_newton_stats *s) {
    t->solves++;
    t->iters_sum += s->iters;
    t->fallbacks += s->fallback;
    if (s->iters > t->iters_max) t->iters_max = s->iters;
    /* a NaN residual must show, not vanish in the comparison */
    if (!(s->residual <= t->residual_max)) t->residual_max = s->residual;
}

void sf_newton_tally_format(const sf_newton_tally *t, char *buf, size_t n) {
    snprintf(buf, n, "iters %.2f mean / %d max, residual <= %.3g, fallbacks %ld of %ld solves",
             t->solves ? (double)t->iters_sum / (double)t->solves : 0.0, t->iters_max,
             (double)t->residual_max, t->fallbacks, t->solves);
}

/* ---- backward ------------------------------------------------------------------------------- */

/* A^T of a token's Jacobian (2x2 blocks swap their off-diagonal parts). */
static void transpose_jac(const sf_diag_cell *c, float *J) {
    if (c->kind != SF_CELL_LSTM_CIFG) return;
    const int N = c->N;
    for (int j = 0; j < N; j++) {
        float t = J[N + j];
        J[N + j] = J[2 * N + j];
        J[2 * N + j] = t;
    }
}

void sf_diag_rnn_backward(const sf_diag_cell *c, int B, int T, const float *u, const float *s,
                          const float *g, float *du, float *da, float *dpeep, const int *lens,
                          int parallel, float *work) {
    const int S = sf_diag_cell_state(c), W = sf_diag_cell_jac(c), N = c->N, ho = sf_diag_cell_h_offset(c);
    const int K = chunks_per_seq(B, T), nt = n_threads(), lstm = c->kind == SF_CELL_LSTM_CIFG;
    const long total = (long)B * T;
    rnn_work w = split_work(c, B, T, work);
    float *lam = w.r;
    memset(w.part, 0, (size_t)SF_PARARNN_MAX_THREADS * 5 * N * sizeof(float));
    if (parallel) {
        /* A_t = J_{t+1}^T (0 at the last token), rhs = g on the h part */
#pragma omp parallel for schedule(static) num_threads(nt)
        for (long o = 0; o < total; o++) {
            int b = (int)(o / T), t = (int)(o % T), n = sf_seq_len(lens, b, T);
            if (t >= n) continue;
            float *At = w.J + o * W, *lt = lam + o * S;
            if (t + 1 < n) { /* the value goes to lt and is overwritten below */
                cell_eval(c, s + o * S, u + (o + 1) * 3 * N, lt, At);
                transpose_jac(c, At);
            } else {
                memset(At, 0, (size_t)W * sizeof(float));
            }
            if (lstm) memset(lt, 0, (size_t)N * sizeof(float));
            memcpy(lt + ho, g + o * N, (size_t)N * sizeof(float));
        }
        newton_linsolve(c, B, T, lens, K, 1, w.J, lam, NULL, w.P, w.carry);
#pragma omp parallel num_threads(nt)
        {
            float *da_t = w.part + (size_t)omp_get_thread_num() * 5 * N, *dp_t = da_t + 3 * N;
#pragma omp for schedule(static)
            for (long o = 0; o < total; o++) {
                int b = (int)(o / T), t = (int)(o % T);
                if (t >= sf_seq_len(lens, b, T)) {
                    memset(du + o * 3 * N, 0, (size_t)3 * N * sizeof(float));
                    continue;
                }
                cell_back(c, t ? s + (o - 1) * S : NULL, u + o * 3 * N, lam + o * S, du + o * 3 * N,
                          NULL, da_t, dp_t);
            }
        }
    } else {
        /* classic BPTT, one sequence per thread: lam_{t-1} = g_{t-1} + J_t^T lam_t */
#pragma omp parallel num_threads(nt) if (B > 1)
        {
            float *da_t = w.part + (size_t)omp_get_thread_num() * 5 * N, *dp_t = da_t + 3 * N;
#pragma omp for schedule(dynamic, 1)
            for (int b = 0; b < B; b++) {
                const int n = sf_seq_len(lens, b, T);
                const size_t o0 = (size_t)b * T;
                float *l = lam + o0 * S; /* two rolling rows are enough; use the sequence's rows */
                memset(du + (o0 + n) * 3 * N, 0, (size_t)(T - n) * 3 * N * sizeof(float));
                for (int t = n - 1; t >= 0; t--) {
                    float *lt = l + (size_t)t * S;
                    if (t == n - 1) memset(lt, 0, (size_t)S * sizeof(float));
                    for (int j = 0; j < N; j++) lt[ho + j] += g[(o0 + t) * N + j];
                    float *lp = t ? l + (size_t)(t - 1) * S : NULL;
                    if (lp) memset(lp, 0, (size_t)S * sizeof(float));
                    cell_back(c, t ? s + (o0 + t - 1) * S : NULL, u + (o0 + t) * 3 * N, lt,
                              du + (o0 + t) * 3 * N, lp, da_t, dp_t);
                }
            }
        }
    }
    for (int k = 0; k < SF_PARARNN_MAX_THREADS; k++) {
        const float *pa = w.part + (size_t)k * 5 * N;
        for (int j = 0; j < 3 * N; j++) da[j] += pa[j];
        if (lstm && dpeep)
            for (int j = 0; j < 2 * N; j++) dpeep[j] += pa[3 * N + j];
    }
}

/* ---- plain reference: textbook BPTT in double ----------------------------------------------- */

static double sd(double x) { return 1.0 / (1.0 + exp(-x)); }

void sf_diag_rnn_backward_ref(const sf_diag_cell *c, int B, int T, const float *u, const float *s,
                              const float *g, float *du, float *da, float *dpeep, const int *lens) {
    const int S = sf_diag_cell_state(c), N = c->N, lstm = c->kind == SF_CELL_LSTM_CIFG;
    const float *a = c->a, *p = c->peep;
    double *lam = calloc((size_t)S, sizeof(double)), *nl = calloc((size_t)S, sizeof(double));
    double *acc = calloc((size_t)5 * N, sizeof(double));
    SF_ASSERT(lam && nl && acc);
    for (int b = 0; b < B; b++) {
        const int n = lens ? lens[b] : T;
        for (int t = n; t < T; t++)
            for (int j = 0; j < 3 * N; j++) du[((size_t)b * T + t) * 3 * N + j] = 0.0f;
        for (int j = 0; j < S; j++) lam[j] = 0;
        for (int t = n - 1; t >= 0; t--) {
            const size_t o = (size_t)b * T + t;
            const float *ut = u + o * 3 * N, *sp = t ? s + (o - 1) * S : NULL;
            for (int j = 0; j < S; j++) nl[j] = 0;
            for (int j = 0; j < N; j++) {
                double ghj = g[o * N + j];
                if (!lstm) {
                    double h = sp ? sp[j] : 0, l = lam[j] + ghj;
                    double z = sd(a[j] * h + ut[j]), r = sd(a[N + j] * h + ut[N + j]);
                    double cc = tanh(a[2 * N + j] * h * r + ut[2 * N + j]);
                    double dpz = l * (cc - h) * z * (1 - z), dph = l * z * (1 - cc * cc);
                    double dpr = dph * a[2 * N + j] * h * r * (1 - r);
                    du[o * 3 * N + j] = (float)dpz;
                    du[o * 3 * N + N + j] = (float)dpr;
                    du[o * 3 * N + 2 * N + j] = (float)dph;
                    acc[j] += dpz * h, acc[N + j] += dpr * h, acc[2 * N + j] += dph * h * r;
                    nl[j] = l * (1 - z) + dpz * a[j] + dpr * a[N + j] + dph * a[2 * N + j] * r;
                } else {
                    double c0 = sp ? sp[j] : 0, h0 = sp ? sp[N + j] : 0;
                    double f = sd(a[j] * h0 + ut[j] + p[j] * c0), gg = tanh(a[2 * N + j] * h0 + ut[2 * N + j]);
                    double c1 = f * c0 + (1 - f) * gg;
                    double o_ = sd(a[N + j] * h0 + ut[N + j] + p[N + j] * c1), tc = tanh(c1);
                    double lc = lam[j], lh = lam[N + j] + ghj;
                    double dpo = lh * tc * o_ * (1 - o_);
                    double dc1 = lc + lh * o_ * (1 - tc * tc) + dpo * p[N + j];
                    double dpf = dc1 * (c0 - gg) * f * (1 - f), dpc = dc1 * (1 - f) * (1 - gg * gg);
                    du[o * 3 * N + j] = (float)dpf;
                    du[o * 3 * N + N + j] = (float)dpo;
                    du[o * 3 * N + 2 * N + j] = (float)dpc;
                    acc[j] += dpf * h0, acc[N + j] += dpo * h0, acc[2 * N + j] += dpc * h0;
                    acc[3 * N + j] += dpf * c0, acc[4 * N + j] += dpo * c1;
                    nl[j] = dc1 * f + dpf * p[j];
                    nl[N + j] = dpf * a[j] + dpo * a[N + j] + dpc * a[2 * N + j];
                }
            }
            for (int j = 0; j < S; j++) lam[j] = nl[j];
        }
    }
    for (int j = 0; j < 3 * N; j++) da[j] += (float)acc[j];
    if (lstm && dpeep)
        for (int j = 0; j < 2 * N; j++) dpeep[j] += (float)acc[3 * N + j];
    free(lam), free(nl), free(acc);
}
