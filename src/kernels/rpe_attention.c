#include "kernels/rpe_attention.h"

#include <math.h>
#include <omp.h>
#include <string.h>

#include "core/error.h"
#include "kernels/fft.h"
#include "kernels/multiversion.h"

/* ---- scratch layout ------------------------------------------------------------------------- */

typedef struct {
    int N;          /* circulant size: a power of two >= 2T */
    double *plan;   /* sf_fft_plan_doubles(N) */
    double *spec;   /* [H][N + 2]: real-FFT spectrum of each head's convolution kernel */
    double *dbpart; /* [B*H][2T - 1]: each pair's dbias contribution (offset m at m + T - 1) */
    double *work;   /* n_workers slices of worker_doubles() */
    size_t per_worker;
} rpe_layout;

/* One worker's buffers (all column-major [column][token], T rows):
 *   fqc, fkc [M][T] (features), vt [Dv+1][T] (values and a column of ones), acc [Dv+1][T]
 *   (forward: numerators and denominator; backward: the output gradient g~ = [g/den, -g.out/den]),
 *   dq, dk [M][T], dv [Dv][T], and four FFT buffers of N + 2. */
static size_t worker_doubles(const sf_rpe_shape *s, int N) {
    size_t T = (size_t)s->T, M = (size_t)s->M, C = (size_t)s->Dv + 1;
    return 2 * M * T + 2 * C * T + 2 * M * T + (C - 1) * T + 4 * ((size_t)N + 2);
}

static rpe_layout layout(const sf_rpe_shape *s, double *scratch) {
    rpe_layout L;
    L.N = sf_fft_size_at_least(2 * s->T);
    L.per_worker = worker_doubles(s, L.N);
    L.plan = scratch;
    L.spec = L.plan + sf_fft_plan_doubles(L.N);
    L.dbpart = L.spec + (size_t)s->H * (L.N + 2);
    L.work = L.dbpart + (size_t)s->B * s->H * (2 * s->T - 1);
    return L;
}

size_t sf_rpe_attention_scratch_doubles(const sf_rpe_shape *s, int n_workers) {
    int N = sf_fft_size_at_least(2 * s->T);
    if (n_workers < 1) n_workers = 1;
    return sf_fft_plan_doubles(N) + (size_t)s->H * (N + 2) + (size_t)s->B * s->H * (2 * s->T - 1) +
           (size_t)n_workers * worker_doubles(s, N);
}

static void check_shape(const sf_rpe_shape *s) {
    SF_ASSERT(s->B >= 1 && s->T >= 1 && s->H >= 1 && s->M >= 1 && s->Dv >= 1);
    SF_ASSERT(s->T <= s->max_T);
}

/* c_m for offset m = j - i of head h. */
static inline double weight(const float *bias_h, int max_T, int m) {
    return exp((double)bias_h[m + max_T - 1]);
}

/* The kernel of y_i = sum_j c_{j-i} x_j as a circular convolution y = g (*) x: g[d mod N] =
 * c_{-d} for the lag d = i - j in -(T-1) .. T-1 (d >= 0 only when causal), zero elsewhere. N >= 2T
 * keeps the wrapped-around lags apart. Its spectrum is what forward multiplies by; the transposed
 * product (sum over i of c_{j-i} x_i) multiplies by the conjugate. */
static void kernel_spectra(const rpe_layout *L, const sf_fft_plan *p, const float *bias,
                           const sf_rpe_shape *s) {
    int N = L->N, T = s->T;
    for (int h = 0; h < s->H; h++) {
        const float *bh = bias + (size_t)h * (2 * s->max_T - 1);
        double *g = L->spec + (size_t)h * (N + 2);
        memset(g, 0, (size_t)(N + 2) * sizeof(double));
        for (int d = 0; d < T; d++) g[d] = weight(bh, s->max_T, -d);
        if (!s->causal)
            for (int d = 1; d < T; d++) g[N - d] = weight(bh, s->max_T, d);
        sf_rfft(p, g);
    }
}

/* buf (N+2, spectrum of a real signal) *= spec, or *= conj(spec). */
static void mul_spectrum(double *buf, const double *spec, int N, int conjugate) {
    double sg = conjugate ? -1.0 : 1.0;
    for (int k = 0; k <= N / 2; k++) {
        double ar = buf[2 * k], ai = buf[2 * k + 1], br = spec[2 * k], bi = sg * spec[2 * k + 1];
        buf[2 * k] = ar * br - ai * bi;
        buf[2 * k + 1] = ar * bi + ai * br;
    }
}

/* buf[0..N) = a[0..n) * b[0..n), zero-padded to N; then its real FFT. */
static void product_spectrum(const sf_fft_plan *p, double *buf, const double *a, const double *b,
                             int n, int N) {
    for (int j = 0; j < n; j++) buf[j] = a[j] * b[j];
    memset(buf + n, 0, (size_t)(N + 2 - n) * sizeof(double));
    sf_rfft(p, buf);
}

/* Worker buffers of one (b, h) pair, and its features/values copied column-major as doubles. */
typedef struct {
    double *fqc, *fkc, *vt, *acc, *dq, *dk, *dv, *f0, *f1, *f2, *f3;
} rpe_work;

static rpe_work worker(const rpe_layout *L, const sf_rpe_shape *s, int w) {
    size_t T = (size_t)s->T, M = (size_t)s->M, C = (size_t)s->Dv + 1, F = (size_t)L->N + 2;
    rpe_work k;
    k.fqc = L->work + (size_t)w * L->per_worker;
    k.fkc = k.fqc + M * T;
    k.vt = k.fkc + M * T;
    k.acc = k.vt + C * T;
    k.dq = k.acc + C * T;
    k.dk = k.dq + M * T;
    k.dv = k.dk + M * T;
    k.f0 = k.dv + (C - 1) * T;
    k.f1 = k.f0 + F, k.f2 = k.f1 + F, k.f3 = k.f2 + F;
    return k;
}

static void load_pair(rpe_work *k, const sf_rpe_shape *s, int b, int h, int n, const float *fq,
                      const float *fk, const float *v, int ldv) {
    int T = s->T, M = s->M, Dv = s->Dv;
    for (int t = 0; t < n; t++) {
        size_t row = (size_t)b * T + t;
        const float *q = fq + (row * s->H + h) * M, *kk = fk + (row * s->H + h) * M;
        const float *vv = v + row * ldv + (size_t)h * Dv;
        for (int a = 0; a < M; a++) k->fqc[(size_t)a * T + t] = q[a], k->fkc[(size_t)a * T + t] = kk[a];
        for (int c = 0; c < Dv; c++) k->vt[(size_t)c * T + t] = vv[c];
        k->vt[(size_t)Dv * T + t] = 1.0;
    }
}

int sf_rpe_attention_uses_fft(const sf_rpe_shape *s) {
    if (s->algo != SF_RPE_AUTO) return s->algo == SF_RPE_FFT;
    /* forward operation counts: M*(Dv+1) products of two real FFTs (~2.5 N log2 N each), the
     * spectrum product and the contraction; against T^2 (or T^2/2) pairs of M + Dv + 1 terms,
     * weighted 2x: bench_rpe (B=1, H=8, M = Dv = 64, one thread) measured the two paths equal at
     * T ~ 1024, where these counts alone put the direct path at half the FFT path's */
    double T = s->T, N = sf_fft_size_at_least(2 * s->T), lg = log2(N);
    double fft = (double)s->M * (s->Dv + 1) * (5.0 * N * lg + 4.0 * N + 2.0 * T);
    double direct = 2.0 * (s->causal ? 0.5 : 1.0) * T * T * (2.0 * s->M + 2.0 * s->Dv + 2.0);
    return fft < direct;
}

/* c_m for every offset m = j - i in -(T-1) .. T-1 of each head, at [h][m + T - 1] (direct path;
 * it shares the spectra region, which is larger). */
static void offset_weights(const rpe_layout *L, const float *bias, const sf_rpe_shape *s) {
    for (int h = 0; h < s->H; h++)
        for (int m = -(s->T - 1); m <= s->T - 1; m++)
            L->spec[(size_t)h * (L->N + 2) + m + s->T - 1] =
                weight(bias + (size_t)h * (2 * s->max_T - 1), s->max_T, m);
}

/* FFT forward of one (b, h) (features and values loaded column-major): for every feature a and
 * column c of v~, y = Toeplitz(fk[a] v~[c]) by FFT, then acc[c] += fq[a] y. */
static void fft_forward_pair(rpe_work *k, const sf_fft_plan *plan, const double *spec,
                             const sf_rpe_shape *s, int n) {
    int T = s->T, Dv = s->Dv, N = plan->n;
    memset(k->acc, 0, (size_t)(Dv + 1) * T * sizeof(double));
    for (int a = 0; a < s->M; a++) {
        const double *qa = k->fqc + (size_t)a * T, *ka = k->fkc + (size_t)a * T;
        for (int c = 0; c <= Dv; c++) {
            product_spectrum(plan, k->f0, ka, k->vt + (size_t)c * T, n, N);
            mul_spectrum(k->f0, spec, N, 0);
            sf_irfft(plan, k->f0);
            double *acc = k->acc + (size_t)c * T;
            for (int i = 0; i < n; i++) acc[i] += qa[i] * k->f0[i];
        }
    }
}

/* FFT backward of one (b, h), with g~ in acc (formulas above sf_rpe_attention_backward): dq, dk,
 * dv accumulated, and this pair's dbias contribution into part [2T-1]. */
static void fft_backward_pair(rpe_work *k, double *part, const sf_fft_plan *plan, const double *spec,
                              const float *bias_h, const sf_rpe_shape *s, int n) {
    int T = s->T, Dv = s->Dv, N = plan->n;
    double *dbs = k->f3;
    memset(dbs, 0, (size_t)(N + 2) * sizeof(double));
    for (int a = 0; a < s->M; a++) {
        const double *qa = k->fqc + (size_t)a * T, *ka = k->fkc + (size_t)a * T;
        double *dqa = k->dq + (size_t)a * T, *dka = k->dk + (size_t)a * T;
        for (int c = 0; c <= Dv; c++) {
            const double *vc = k->vt + (size_t)c * T, *gc = k->acc + (size_t)c * T;
            double *Y = k->f0, *X = k->f1, *tmp = k->f2;
            product_spectrum(plan, Y, ka, vc, n, N);
            product_spectrum(plan, X, qa, gc, n, N);
            for (int f = 0; f <= N / 2; f++) { /* += conj(X) Y */
                dbs[2 * f] += X[2 * f] * Y[2 * f] + X[2 * f + 1] * Y[2 * f + 1];
                dbs[2 * f + 1] += X[2 * f] * Y[2 * f + 1] - X[2 * f + 1] * Y[2 * f];
            }
            memcpy(tmp, Y, (size_t)(N + 2) * sizeof(double));
            mul_spectrum(tmp, spec, N, 0);
            sf_irfft(plan, tmp); /* U[.][a][c] */
            for (int i = 0; i < n; i++) dqa[i] += gc[i] * tmp[i];
            mul_spectrum(X, spec, N, 1);
            sf_irfft(plan, X); /* V[.][a][c] */
            for (int j = 0; j < n; j++) dka[j] += vc[j] * X[j];
            if (c < Dv) {
                double *dvc = k->dv + (size_t)c * T;
                for (int j = 0; j < n; j++) dvc[j] += ka[j] * X[j];
            }
        }
    }
    /* dbias: the cross-correlation at lag m = j - i sits at m mod N */
    sf_irfft(plan, dbs);
    for (int m = -(n - 1); m <= (s->causal ? 0 : n - 1); m++)
        part[m + T - 1] = weight(bias_h, s->max_T, m) * dbs[m >= 0 ? m : N + m];
}

/* The direct path works on the pair's column-major copies (load_pair) with every inner loop
 * along the keys j, so it vectorises whatever M and Dv are (4 in PatchTST), and is compiled
 * for AVX2+FMA too (SF_MULTIVERSION). Row i's weights use the offsets j - i, i.e. cw shifted by
 * T - 1 - i. Double arithmetic, as the FFT path. */

/* dot[j] = fq_i . fk_j for j < nj. */
static inline __attribute__((always_inline)) void query_key_dots(double *restrict dot,
                                                                 const rpe_work *k, int i, int nj,
                                                                 int M, int T) {
#pragma omp simd
    for (int j = 0; j < nj; j++) dot[j] = 0.0;
    for (int a = 0; a < M; a++) {
        const double qa = k->fqc[(size_t)a * T + i];
        const double *restrict ka = k->fkc + (size_t)a * T;
#pragma omp simd
        for (int j = 0; j < nj; j++) dot[j] += qa * ka[j];
    }
}

/* Numerators and denominator (before eps) into acc [Dv+1][T]. */
SF_MULTIVERSION static void direct_forward_pair(rpe_work *k, const double *cw,
                                                const sf_rpe_shape *s, int n) {
    const int T = s->T, M = s->M, C = s->Dv + 1;
    double *restrict w = k->f0; /* w_ij = c_{j-i} fq_i . fk_j for the row i */
    for (int i = 0; i < n; i++) {
        const int nj = s->causal ? i + 1 : n;
        const double *restrict ci = cw + (T - 1 - i);
        query_key_dots(w, k, i, nj, M, T);
#pragma omp simd
        for (int j = 0; j < nj; j++) w[j] *= ci[j];
        for (int c = 0; c < C; c++) { /* c = Dv: the row of ones, the denominator */
            const double *restrict vc = k->vt + (size_t)c * T;
            double acc = 0.0;
#pragma omp simd reduction(+ : acc)
            for (int j = 0; j < nj; j++) acc += w[j] * vc[j];
            k->acc[(size_t)c * T + i] = acc;
        }
    }
}

/* Backward with g~ in acc [Dv+1][T]: dq, dk [M][T], dv [Dv][T] accumulated (column-major, as
 * the FFT path's), and this pair's dbias contribution into part [2T-1]. */
SF_MULTIVERSION static void direct_backward_pair(rpe_work *k, double *part, const double *cw,
                                                 const sf_rpe_shape *s, int n) {
    const int T = s->T, M = s->M, Dv = s->Dv;
    double *restrict dot = k->f0, *restrict P = k->f1, *restrict cp = k->f2;
    for (int i = 0; i < n; i++) {
        const int nj = s->causal ? i + 1 : n;
        const double *restrict ci = cw + (T - 1 - i);
        double *restrict pi = part + (T - 1 - i);
        const double gden = k->acc[(size_t)Dv * T + i];
        query_key_dots(dot, k, i, nj, M, T);
#pragma omp simd
        for (int j = 0; j < nj; j++) P[j] = gden; /* P_ij = g~_i . v~_j = dL/dw_ij */
        for (int c = 0; c < Dv; c++) {
            const double gc = k->acc[(size_t)c * T + i];
            const double *restrict vc = k->vt + (size_t)c * T;
#pragma omp simd
            for (int j = 0; j < nj; j++) P[j] += gc * vc[j];
        }
#pragma omp simd
        for (int j = 0; j < nj; j++) {
            cp[j] = ci[j] * P[j];
            dot[j] *= ci[j]; /* now w_ij */
            pi[j] += dot[j] * P[j]; /* c dL/dc = w dL/dw */
        }
        for (int a = 0; a < M; a++) {
            const double qa = k->fqc[(size_t)a * T + i];
            const double *restrict ka = k->fkc + (size_t)a * T;
            double *restrict dka = k->dk + (size_t)a * T;
            double dq = 0.0;
#pragma omp simd reduction(+ : dq)
            for (int j = 0; j < nj; j++) {
                dq += cp[j] * ka[j];
                dka[j] += cp[j] * qa;
            }
            k->dq[(size_t)a * T + i] += dq;
        }
        for (int c = 0; c < Dv; c++) {
            const double gc = k->acc[(size_t)c * T + i];
            double *restrict dvc = k->dv + (size_t)c * T;
#pragma omp simd
            for (int j = 0; j < nj; j++) dvc[j] += dot[j] * gc;
        }
    }
}

static int clamp_workers(const sf_rpe_shape *s, int n_workers) {
    int pairs = s->B * s->H;
    if (n_workers < 1) n_workers = 1;
    return n_workers < pairs ? n_workers : pairs;
}

/* ---- forward -------------------------------------------------------------------------------- */

void sf_rpe_attention_forward(float *out, int ldo, float *den, const float *fq, const float *fk,
                              const float *v, int ldv, const float *bias, const sf_rpe_shape *s,
                              double *scratch, int n_workers) {
    check_shape(s);
    rpe_layout L = layout(s, scratch);
    sf_fft_plan plan;
    sf_fft_plan_init(&plan, L.N, L.plan);
    const int use_fft = sf_rpe_attention_uses_fft(s);
    if (use_fft) kernel_spectra(&L, &plan, bias, s);
    else offset_weights(&L, bias, s);
    const int T = s->T, Dv = s->Dv, N = L.N, pairs = s->B * s->H;
    int nw = clamp_workers(s, n_workers);
#pragma omp parallel for schedule(dynamic, 1) num_threads(nw)
    for (int pr = 0; pr < pairs; pr++) {
        int b = pr / s->H, h = pr % s->H, n = s->lens ? s->lens[b] : T;
        rpe_work k = worker(&L, s, omp_get_thread_num());
        const double *spec = L.spec + (size_t)h * (N + 2);
        load_pair(&k, s, b, h, n, fq, fk, v, ldv);
        if (use_fft) fft_forward_pair(&k, &plan, spec, s, n);
        else direct_forward_pair(&k, spec, s, n);
        float *dn = den + (size_t)pr * T;
        for (int i = 0; i < T; i++) {
            float *o = out + ((size_t)b * T + i) * ldo + (size_t)h * Dv;
            if (i >= n) {
                memset(o, 0, (size_t)Dv * sizeof(float));
                dn[i] = 0.0f;
                continue;
            }
            double D = k.acc[(size_t)Dv * T + i] + SF_RPE_ATTENTION_EPS;
            for (int c = 0; c < Dv; c++) o[c] = (float)(k.acc[(size_t)c * T + i] / D);
            dn[i] = (float)D;
        }
    }
}

/* ---- backward ------------------------------------------------------------------------------- */

/* With g~_i = [dout_i / den_i, -(dout_i . out_i) / den_i] (the gradient with respect to the
 * numerators and the denominator) and v~_j = [v_j, 1]:
 *   dfq_i[a] = sum_col g~_i[col] U_i[a][col],  U_i[a][col] = sum_j c_{j-i} fk_j[a] v~_j[col]
 *   dfk_j[a] = sum_col v~_j[col] V_j[a][col],  V_j[a][col] = sum_i c_{j-i} fq_i[a] g~_i[col]
 *   dv_j[col] = sum_a fk_j[a] V_j[a][col]
 *   dbias_m = c_m sum_{j-i=m} sum_{a,col} (fq_i[a] g~_i[col]) (fk_j[a] v~_j[col])
 * U is forward's product; V the transposed one; dbias a cross-correlation, whose spectrum is
 * sum over (a, col) of conj(FFT(fq g~)) FFT(fk v~). */
void sf_rpe_attention_backward(float *dfq, float *dfk, float *dv, float *dbias, const float *dout,
                               int ldo, const float *out, const float *den, const float *fq,
                               const float *fk, const float *v, int ldv, const float *bias,
                               const sf_rpe_shape *s, double *scratch, int n_workers) {
    check_shape(s);
    rpe_layout L = layout(s, scratch);
    sf_fft_plan plan;
    sf_fft_plan_init(&plan, L.N, L.plan);
    const int use_fft = sf_rpe_attention_uses_fft(s);
    if (use_fft) kernel_spectra(&L, &plan, bias, s);
    else offset_weights(&L, bias, s);
    const int T = s->T, M = s->M, Dv = s->Dv, N = L.N, H = s->H, pairs = s->B * H;
    const int nb = 2 * s->max_T - 1, noff = 2 * T - 1;
    int nw = clamp_workers(s, n_workers);
#pragma omp parallel for schedule(dynamic, 1) num_threads(nw)
    for (int pr = 0; pr < pairs; pr++) {
        int b = pr / H, h = pr % H, n = s->lens ? s->lens[b] : T;
        rpe_work k = worker(&L, s, omp_get_thread_num());
        const double *spec = L.spec + (size_t)h * (N + 2);
        load_pair(&k, s, b, h, n, fq, fk, v, ldv);
        /* g~ into acc (both paths read it there) */
        for (int i = 0; i < n; i++) {
            const float *g = dout + ((size_t)b * T + i) * ldo + (size_t)h * Dv;
            const float *o = out + ((size_t)b * T + i) * ldo + (size_t)h * Dv;
            double D = den[(size_t)pr * T + i], go = 0;
            for (int c = 0; c < Dv; c++) {
                k.acc[(size_t)c * T + i] = g[c] / D;
                go += (double)g[c] * o[c];
            }
            k.acc[(size_t)Dv * T + i] = -go / D;
        }
        memset(k.dq, 0, (size_t)(2 * M + Dv) * T * sizeof(double)); /* dq, dk, dv are adjacent */
        double *part = L.dbpart + (size_t)pr * noff;
        memset(part, 0, (size_t)noff * sizeof(double));
        if (use_fft) fft_backward_pair(&k, part, &plan, spec, bias + (size_t)h * nb, s, n);
        else direct_backward_pair(&k, part, spec, s, n);
        for (int t = 0; t < T; t++) {
            size_t row = (size_t)b * T + t;
            float *q = dfq + (row * H + h) * M, *kk = dfk + (row * H + h) * M;
            float *vv = dv + row * ldv + (size_t)h * Dv;
            int valid = t < n; /* both paths leave dq, dk, dv column-major [.][T] */
            for (int a = 0; a < M; a++) {
                q[a] = valid ? (float)k.dq[(size_t)a * T + t] : 0.0f;
                kk[a] = valid ? (float)k.dk[(size_t)a * T + t] : 0.0f;
            }
            for (int c = 0; c < Dv; c++) vv[c] = valid ? (float)k.dv[(size_t)c * T + t] : 0.0f;
        }
    }
    /* sum the pairs' contributions over b in a fixed order */
    for (int h = 0; h < H; h++)
        for (int m = 0; m < noff; m++) {
            double sum = 0;
            for (int b = 0; b < s->B; b++) sum += L.dbpart[((size_t)b * H + h) * noff + m];
            dbias[(size_t)h * nb + (m - (T - 1)) + s->max_T - 1] += (float)sum;
        }
}

/* ---- plain references ----------------------------------------------------------------------- */

/* den_i and the unnormalised numerators of one (b, h) in double: w_ij = c_{j-i} fq_i . fk_j. */
static double score(const float *fq, const float *fk, const sf_rpe_shape *s, int b, int h, int i,
                    int j, const float *bias) {
    size_t qi = (((size_t)b * s->T + i) * s->H + h) * s->M, kj = (((size_t)b * s->T + j) * s->H + h) * s->M;
    double dot = 0;
    for (int a = 0; a < s->M; a++) dot += (double)fq[qi + a] * fk[kj + a];
    return weight(bias + (size_t)h * (2 * s->max_T - 1), s->max_T, j - i) * dot;
}

static void ref_outputs(double *o, double *D, const float *fq, const float *fk, const float *v,
                        int ldv, const float *bias, const sf_rpe_shape *s, int b, int h, int n) {
    int Dv = s->Dv;
    for (int i = 0; i < n; i++) {
        double *oi = o + (size_t)i * Dv, d = 0;
        memset(oi, 0, (size_t)Dv * sizeof(double));
        for (int j = 0; j < (s->causal ? i + 1 : n); j++) {
            double w = score(fq, fk, s, b, h, i, j, bias);
            const float *vj = v + ((size_t)b * s->T + j) * ldv + (size_t)h * Dv;
            for (int c = 0; c < Dv; c++) oi[c] += w * vj[c];
            d += w;
        }
        D[i] = d + SF_RPE_ATTENTION_EPS;
        for (int c = 0; c < Dv; c++) oi[c] /= D[i];
    }
}

void sf_rpe_attention_forward_ref(float *out, int ldo, float *den, const float *fq,
                                  const float *fk, const float *v, int ldv, const float *bias,
                                  const sf_rpe_shape *s, double *scratch, int n_workers) {
    (void)scratch, (void)n_workers;
    check_shape(s);
    int T = s->T, Dv = s->Dv;
    double *o = sf_malloc((size_t)T * Dv * sizeof(double)), *D = sf_malloc((size_t)T * sizeof(double));
    for (int b = 0; b < s->B; b++)
        for (int h = 0; h < s->H; h++) {
            int n = s->lens ? s->lens[b] : T;
            ref_outputs(o, D, fq, fk, v, ldv, bias, s, b, h, n);
            for (int i = 0; i < T; i++) {
                float *oi = out + ((size_t)b * T + i) * ldo + (size_t)h * Dv;
                for (int c = 0; c < Dv; c++) oi[c] = i < n ? (float)o[(size_t)i * Dv + c] : 0.0f;
                den[((size_t)b * s->H + h) * T + i] = i < n ? (float)D[i] : 0.0f;
            }
        }
    free(o);
    free(D);
}

void sf_rpe_attention_backward_ref(float *dfq, float *dfk, float *dv, float *dbias,
                                   const float *dout, int ldo, const float *out, const float *den,
                                   const float *fq, const float *fk, const float *v, int ldv,
                                   const float *bias, const sf_rpe_shape *s, double *scratch,
                                   int n_workers) {
    (void)out, (void)den, (void)scratch, (void)n_workers;
    check_shape(s);
    int T = s->T, H = s->H, M = s->M, Dv = s->Dv, nb = 2 * s->max_T - 1;
    double *o = sf_malloc((size_t)T * Dv * sizeof(double)), *D = sf_malloc((size_t)T * sizeof(double));
    double *gt = sf_malloc((size_t)T * (Dv + 1) * sizeof(double));
    double *dq = sf_malloc((size_t)T * M * sizeof(double)), *dk = sf_malloc((size_t)T * M * sizeof(double));
    double *dvv = sf_malloc((size_t)T * Dv * sizeof(double)), *db = sf_malloc((size_t)nb * sizeof(double));
    for (int h = 0; h < H; h++) {
        memset(db, 0, (size_t)nb * sizeof(double));
        for (int b = 0; b < s->B; b++) {
            int n = s->lens ? s->lens[b] : T;
            ref_outputs(o, D, fq, fk, v, ldv, bias, s, b, h, n);
            for (int i = 0; i < n; i++) { /* g~_i = [g / D, -(g . o) / D] */
                const float *g = dout + ((size_t)b * T + i) * ldo + (size_t)h * Dv;
                double go = 0;
                for (int c = 0; c < Dv; c++) {
                    gt[(size_t)i * (Dv + 1) + c] = g[c] / D[i];
                    go += g[c] * o[(size_t)i * Dv + c];
                }
                gt[(size_t)i * (Dv + 1) + Dv] = -go / D[i];
            }
            memset(dq, 0, (size_t)T * M * sizeof(double));
            memset(dk, 0, (size_t)T * M * sizeof(double));
            memset(dvv, 0, (size_t)T * Dv * sizeof(double));
            for (int i = 0; i < n; i++)
                for (int j = 0; j < (s->causal ? i + 1 : n); j++) {
                    const float *vj = v + ((size_t)b * T + j) * ldv + (size_t)h * Dv;
                    const float *qi = fq + (((size_t)b * T + i) * H + h) * M;
                    const float *kj = fk + (((size_t)b * T + j) * H + h) * M;
                    const double *gi = gt + (size_t)i * (Dv + 1);
                    double c = weight(bias + (size_t)h * nb, s->max_T, j - i), w = score(fq, fk, s, b, h, i, j, bias);
                    double P = gi[Dv]; /* dL/dw_ij = g~_i . v~_j */
                    for (int cc = 0; cc < Dv; cc++) P += gi[cc] * vj[cc];
                    for (int a = 0; a < M; a++) {
                        dq[(size_t)i * M + a] += c * P * kj[a];
                        dk[(size_t)j * M + a] += c * P * qi[a];
                    }
                    for (int cc = 0; cc < Dv; cc++) dvv[(size_t)j * Dv + cc] += w * gi[cc];
                    db[j - i + s->max_T - 1] += w * P; /* c dL/dc = w dL/dw */
                }
            for (int t = 0; t < T; t++) {
                float *q = dfq + (((size_t)b * T + t) * H + h) * M, *kk = dfk + (((size_t)b * T + t) * H + h) * M;
                float *vv = dv + ((size_t)b * T + t) * ldv + (size_t)h * Dv;
                for (int a = 0; a < M; a++) {
                    q[a] = t < n ? (float)dq[(size_t)t * M + a] : 0.0f;
                    kk[a] = t < n ? (float)dk[(size_t)t * M + a] : 0.0f;
                }
                for (int cc = 0; cc < Dv; cc++) vv[cc] = t < n ? (float)dvv[(size_t)t * Dv + cc] : 0.0f;
            }
        }
        for (int m = 0; m < nb; m++) dbias[(size_t)h * nb + m] += (float)db[m];
    }
    free(o), free(D), free(gt), free(dq), free(dk), free(dvv), free(db);
}
