/* S4D: kernel generation (and its gradient), FFT convolution (and its gradient), recurrence step,
 * plain references. See s4d.h for the definitions and layouts. */
#include "kernels/s4d.h"

#include <complex.h>
#include <math.h>
#include <omp.h>
#include <string.h>

#include "core/error.h"
#include "core/lens.h"
#include "kernels/fft.h"

/* Powers z^l are a running product inside blocks of this many l, each block starting from an
 * exact exp(l0 dt A): the product's rounding then never grows past 256 steps. */
#define S4D_BLOCK 256

typedef struct {
    double dt;
    double complex A, z, E, C; /* z = exp(dt A), E = (z - 1) / A */
} s4d_mode;

static s4d_mode mode_at(const sf_s4d_params *p, int h, int n) {
    s4d_mode m;
    const size_t i = (size_t)h * p->N2 + n;
    m.dt = exp((double)p->log_dt[h]);
    m.A = -exp((double)p->log_A_real[i]) + I * (double)p->A_imag[i];
    m.z = cexp(m.dt * m.A);
    m.E = (m.z - 1.0) / m.A;
    m.C = (double)p->C[2 * i] + I * (double)p->C[2 * i + 1];
    return m;
}

/* ---------------------------------------------------------------- kernel generation */

/* Modes are processed S4D_LANES at a time, each lane its own running power: independent chains
 * that the compiler vectorises (one chain alone is latency-bound). Complex products are spelled
 * out in reals: C's complex multiply calls __muldc3 for its inf/NaN rules. */
#define S4D_LANES 4

static void kernel_row(float *K, int L, const sf_s4d_params *p, int h) {
    SF_ASSERT(p->N2 <= SF_S4D_MAX_MODES);
    s4d_mode modes[SF_S4D_MAX_MODES]; /* the transcendental part, once per channel */
    for (int n = 0; n < p->N2; n++) modes[n] = mode_at(p, h, n);
    double acc[S4D_BLOCK];
    for (int l0 = 0; l0 < L; l0 += S4D_BLOCK) {
        const int nb = L - l0 < S4D_BLOCK ? L - l0 : S4D_BLOCK;
        memset(acc, 0, sizeof acc);
        for (int n0 = 0; n0 < p->N2; n0 += S4D_LANES) {
            double wr[S4D_LANES] = {0}, wi[S4D_LANES] = {0}, zr[S4D_LANES] = {0}, zi[S4D_LANES] = {0};
            for (int q = 0; q < S4D_LANES && n0 + q < p->N2; q++) {
                const s4d_mode *m = &modes[n0 + q];
                const double complex w = 2.0 * m->C * m->E * cexp((double)l0 * m->dt * m->A);
                wr[q] = creal(w), wi[q] = cimag(w), zr[q] = creal(m->z), zi[q] = cimag(m->z);
            }
            for (int j = 0; j < nb; j++) {
                double sum = 0;
                for (int q = 0; q < S4D_LANES; q++) {
                    sum += wr[q];
                    const double t = wr[q] * zr[q] - wi[q] * zi[q];
                    wi[q] = wr[q] * zi[q] + wi[q] * zr[q];
                    wr[q] = t;
                }
                acc[j] += sum;
            }
        }
        for (int j = 0; j < nb; j++) K[l0 + j] = (float)acc[j];
    }
}

void sf_s4d_kernel(float *K, int L, const sf_s4d_params *p, int n_workers) {
    if (n_workers < 1) n_workers = 1;
#pragma omp parallel for schedule(dynamic, 1) num_threads(n_workers)
    for (int h = 0; h < p->H; h++) kernel_row(K + (size_t)h * L, L, p, h);
}

/* With Z = sum_l dK_l z^l and Y = sum_l l dK_l z^l, the loss term is Phi = 2 Re(C E Z):
 *   dPhi/dC (re, im)        = 2 conj(E Z)
 *   dPhi/dA (re, im)        = 2 conj(G),  G = C (E'(A) Z + E dt Y),  E'(A) = dt z / A - E / A
 *   dPhi/d dt               = 2 Re(C (z Z + (z - 1) Y))
 * and A_re = -exp(log_A_real), dt = exp(log_dt) chain through. */
static void mode_grads(const sf_s4d_params *p, const sf_s4d_grads *g, int h, int n,
                       double complex Z, double complex Y, double *ddt) {
    const s4d_mode m = mode_at(p, h, n);
    const size_t i = (size_t)h * p->N2 + n;
    const double complex EZ = m.E * Z;
    g->C[2 * i] += (float)(2.0 * creal(EZ));
    g->C[2 * i + 1] += (float)(-2.0 * cimag(EZ));
    const double complex dE = m.dt * m.z / m.A - m.E / m.A;
    const double complex G = m.C * (dE * Z + m.E * m.dt * Y);
    g->log_A_real[i] += (float)(2.0 * creal(G) * creal(m.A)); /* dA_re/dlog = A_re */
    g->A_imag[i] += (float)(-2.0 * cimag(G));
    *ddt += 2.0 * creal(m.C * (m.z * Z + (m.z - 1.0) * Y));
}

static void kernel_backward_row(const float *dK, int L, const sf_s4d_params *p,
                                const sf_s4d_grads *g, int h) {
    double ddt = 0;
    for (int n0 = 0; n0 < p->N2; n0 += S4D_LANES) {
        /* per lane: Z = sum_l dK_l z^l and Y = sum_l l dK_l z^l (see kernel_row for the lanes) */
        double Zr[S4D_LANES] = {0}, Zi[S4D_LANES] = {0}, Yr[S4D_LANES] = {0}, Yi[S4D_LANES] = {0};
        double zr[S4D_LANES] = {0}, zi[S4D_LANES] = {0};
        double complex dtA[S4D_LANES] = {0};
        for (int q = 0; q < S4D_LANES && n0 + q < p->N2; q++) {
            const s4d_mode m = mode_at(p, h, n0 + q);
            zr[q] = creal(m.z), zi[q] = cimag(m.z), dtA[q] = m.dt * m.A;
        }
        for (int l0 = 0; l0 < L; l0 += S4D_BLOCK) {
            const int nb = L - l0 < S4D_BLOCK ? L - l0 : S4D_BLOCK;
            double wr[S4D_LANES] = {0}, wi[S4D_LANES] = {0};
            for (int q = 0; q < S4D_LANES && n0 + q < p->N2; q++) {
                const double complex w = cexp((double)l0 * dtA[q]);
                wr[q] = creal(w), wi[q] = cimag(w);
            }
            for (int j = 0; j < nb; j++) {
                const double gk = dK[l0 + j], lg = (double)(l0 + j) * gk;
                for (int q = 0; q < S4D_LANES; q++) {
                    Zr[q] += gk * wr[q], Zi[q] += gk * wi[q];
                    Yr[q] += lg * wr[q], Yi[q] += lg * wi[q];
                    const double t = wr[q] * zr[q] - wi[q] * zi[q];
                    wi[q] = wr[q] * zi[q] + wi[q] * zr[q];
                    wr[q] = t;
                }
            }
        }
        for (int q = 0; q < S4D_LANES && n0 + q < p->N2; q++)
            mode_grads(p, g, h, n0 + q, Zr[q] + I * Zi[q], Yr[q] + I * Yi[q], &ddt);
    }
    g->log_dt[h] += (float)(ddt * exp((double)p->log_dt[h]));
}

void sf_s4d_kernel_backward(const float *dK, int L, const sf_s4d_params *p, const sf_s4d_grads *g,
                            int n_workers) {
    if (n_workers < 1) n_workers = 1;
#pragma omp parallel for schedule(dynamic, 1) num_threads(n_workers)
    for (int h = 0; h < p->H; h++) kernel_backward_row(dK + (size_t)h * L, L, p, g, h);
}

/* ---------------------------------------------------------------- FFT convolution */

static int fft_size(int T) {
    int n = sf_fft_size_at_least(2 * T - 1);
    return n < 2 ? 2 : n;
}

size_t sf_s4d_conv_scratch_doubles(int T, int n_workers) {
    const int n = fft_size(T);
    return sf_fft_plan_doubles(n) + (size_t)n_workers * 4 * (n + 2);
}


/* buf[0..n) = column h of rows 0..len of x (stride ld), zero beyond. */
static void gather(double *buf, int n, const float *x, int ld, int len) {
    for (int t = 0; t < len; t++) buf[t] = x[(size_t)t * ld];
    memset(buf + len, 0, sizeof(double) * (size_t)(n - len));
}

/* out = (conj_a ? conj(a) : a) * b over nc interleaved complex values (out may alias b). */
static void cmul(double *out, const double *a, const double *b, int nc, int conj_a) {
    const double s = conj_a ? -1.0 : 1.0;
    for (int i = 0; i < nc; i++) {
        const double ar = a[2 * i], ai = s * a[2 * i + 1], br = b[2 * i], bi = b[2 * i + 1];
        out[2 * i] = ar * br - ai * bi;
        out[2 * i + 1] = ar * bi + ai * br;
    }
}

/* The plan (shared, filled once per call) and worker w's four (n + 2)-double buffers. */
static double *setup(double *scratch, int T, sf_fft_plan *plan) {
    const int n = fft_size(T);
    sf_fft_plan_init(plan, n, scratch);
    return scratch + sf_fft_plan_doubles(n);
}

/* buf[0..n) = the circulant kernel of channel h: K[0..T) at lags 0..T-1 and, when Kb is given,
 * Kb[j] at lag -(j+1), i.e. index n-1-j (n >= 2T - 1 keeps the two apart); zero elsewhere. */
static void circulant(double *buf, int n, const float *K, const float *Kb, int T) {
    gather(buf, n, K, 1, T);
    if (Kb)
        for (int j = 0; j + 1 < T; j++) buf[n - 1 - j] = Kb[j];
}

void sf_s4d_conv_forward(float *y, const float *u, int ld, const float *K, const float *Kb, int L,
                         const float *D, int B, int T, int H, double *scratch, int n_workers,
                         const int *lens) {
    sf_fft_plan plan;
    double *bufs = setup(scratch, T, &plan);
    const int n = plan.n, nc = n / 2 + 1;
    if (n_workers < 1) n_workers = 1;
#pragma omp parallel for schedule(dynamic, 1) num_threads(n_workers)
    for (int h = 0; h < H; h++) {
        double *Kf = bufs + (size_t)omp_get_thread_num() * 4 * (n + 2), *X = Kf + (n + 2);
        circulant(Kf, n, K + (size_t)h * L, Kb ? Kb + (size_t)h * L : NULL, T);
        sf_rfft(&plan, Kf);
        for (int b = 0; b < B; b++) {
            const int len = sf_seq_len(lens, b, T);
            const float *ub = u + (size_t)b * T * ld + h;
            float *yb = y + (size_t)b * T * ld + h;
            gather(X, n, ub, ld, len);
            sf_rfft(&plan, X);
            cmul(X, Kf, X, nc, 0);
            sf_irfft(&plan, X);
            for (int t = 0; t < len; t++) yb[(size_t)t * ld] = (float)(X[t] + (double)D[h] * ub[(size_t)t * ld]);
            for (int t = len; t < T; t++) yb[(size_t)t * ld] = 0.0f;
        }
    }
}

void sf_s4d_conv_backward(float *du, float *dK, float *dKb, float *dD, const float *dy,
                          const float *u, int ld, const float *K, const float *Kb, int L,
                          const float *D, int B, int T, int H, double *scratch, int n_workers,
                          const int *lens) {
    sf_fft_plan plan;
    double *bufs = setup(scratch, T, &plan);
    const int n = plan.n, nc = n / 2 + 1;
    if (n_workers < 1) n_workers = 1;
#pragma omp parallel for schedule(dynamic, 1) num_threads(n_workers)
    for (int h = 0; h < H; h++) {
        double *Kf = bufs + (size_t)omp_get_thread_num() * 4 * (n + 2), *X = Kf + (n + 2);
        double *G = X + (n + 2), *acc = G + (n + 2), dd = 0;
        circulant(Kf, n, K + (size_t)h * L, Kb ? Kb + (size_t)h * L : NULL, T);
        sf_rfft(&plan, Kf);
        memset(acc, 0, sizeof(double) * (n + 2));
        for (int b = 0; b < B; b++) {
            const int len = sf_seq_len(lens, b, T);
            const float *ub = u + (size_t)b * T * ld + h, *gb = dy + (size_t)b * T * ld + h;
            float *db = du + (size_t)b * T * ld + h;
            gather(X, n, ub, ld, len);
            gather(G, n, gb, ld, len);
            for (int t = 0; t < len; t++) dd += G[t] * X[t];
            sf_rfft(&plan, X);
            sf_rfft(&plan, G);
            /* dK_j = sum_t dy_t u_{t-j}: acc += G conj(U) */
            for (int i = 0; i < nc; i++) {
                const double ur = X[2 * i], ui = X[2 * i + 1], gr = G[2 * i], gi = G[2 * i + 1];
                acc[2 * i] += gr * ur + gi * ui;
                acc[2 * i + 1] += gi * ur - gr * ui;
            }
            /* du_s = sum_t K_{t-s} dy_t: conj(Kf) G */
            cmul(X, Kf, G, nc, 1);
            sf_irfft(&plan, X);
            for (int t = 0; t < len; t++) db[(size_t)t * ld] = (float)(X[t] + (double)D[h] * gb[(size_t)t * ld]);
            for (int t = len; t < T; t++) db[(size_t)t * ld] = 0.0f;
        }
        sf_irfft(&plan, acc);
        for (int j = 0; j < T; j++) dK[(size_t)h * L + j] = (float)acc[j];
        if (Kb)
            for (int j = 0; j < T; j++) dKb[(size_t)h * L + j] = j + 1 < T ? (float)acc[n - 1 - j] : 0.0f;
        dD[h] += (float)dd;
    }
}

/* ---------------------------------------------------------------- recurrence */

size_t sf_s4d_state_floats(int H, int N2) { return (size_t)H * N2 * 2; }

void sf_s4d_step(float *y, const float *u, const sf_s4d_params *p, const float *state_in,
                 float *state_out) {
    for (int h = 0; h < p->H; h++) {
        double acc = 0;
        for (int n = 0; n < p->N2; n++) {
            const s4d_mode m = mode_at(p, h, n);
            const size_t i = 2 * ((size_t)h * p->N2 + n);
            double complex x = state_in[i] + I * (double)state_in[i + 1];
            x = m.z * x + m.E * (double)u[h];
            state_out[i] = (float)creal(x);
            state_out[i + 1] = (float)cimag(x);
            acc += 2.0 * creal(m.C * x);
        }
        y[h] = (float)(acc + (double)p->D[h] * u[h]);
    }
}

/* ---------------------------------------------------------------- references */

void sf_s4d_kernel_ref(float *K, int L, const sf_s4d_params *p) {
    for (int h = 0; h < p->H; h++)
        for (int l = 0; l < L; l++) {
            double s = 0;
            for (int n = 0; n < p->N2; n++) {
                const s4d_mode m = mode_at(p, h, n);
                s += 2.0 * creal(m.C * m.E * cexp((double)l * m.dt * m.A));
            }
            K[(size_t)h * L + l] = (float)s;
        }
}

void sf_s4d_kernel_backward_ref(const float *dK, int L, const sf_s4d_params *p,
                                const sf_s4d_grads *g) {
    for (int h = 0; h < p->H; h++) {
        double ddt = 0;
        for (int n = 0; n < p->N2; n++) {
            const s4d_mode m = mode_at(p, h, n);
            double complex Z = 0, Y = 0;
            for (int l = 0; l < L; l++) {
                const double complex t = (double)dK[(size_t)h * L + l] * cexp((double)l * m.dt * m.A);
                Z += t;
                Y += (double)l * t;
            }
            mode_grads(p, g, h, n, Z, Y, &ddt);
        }
        g->log_dt[h] += (float)(ddt * exp((double)p->log_dt[h]));
    }
}

void sf_s4d_conv_forward_ref(float *y, const float *u, int ld, const float *K, const float *Kb,
                             int L, const float *D, int B, int T, int H, const int *lens) {
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++) {
            const int len = sf_seq_len(lens, b, T);
            const float *ub = u + (size_t)b * T * ld + h;
            for (int t = 0; t < T; t++) {
                double s = 0;
                if (t < len) {
                    for (int j = 0; j <= t; j++) s += (double)K[(size_t)h * L + t - j] * ub[(size_t)j * ld];
                    for (int j = t + 1; Kb && j < len; j++)
                        s += (double)Kb[(size_t)h * L + j - t - 1] * ub[(size_t)j * ld];
                    s += (double)D[h] * ub[(size_t)t * ld];
                }
                y[((size_t)b * T + t) * ld + h] = (float)s;
            }
        }
}

void sf_s4d_conv_backward_ref(float *du, float *dK, float *dKb, float *dD, const float *dy,
                              const float *u, int ld, const float *K, const float *Kb, int L,
                              const float *D, int B, int T, int H, const int *lens) {
    for (int h = 0; h < H; h++) {
        double dd = 0;
        for (int j = 0; j < T; j++) {
            double s = 0;
            for (int b = 0; b < B; b++) {
                const int len = sf_seq_len(lens, b, T);
                for (int t = j; t < len; t++)
                    s += (double)dy[((size_t)b * T + t) * ld + h] * u[((size_t)b * T + t - j) * ld + h];
            }
            dK[(size_t)h * L + j] = (float)s;
            if (!Kb) continue;
            s = 0; /* lag -(j+1): dy_t u_{t+j+1} */
            for (int b = 0; b < B; b++) {
                const int len = sf_seq_len(lens, b, T);
                for (int t = 0; t + j + 1 < len; t++)
                    s += (double)dy[((size_t)b * T + t) * ld + h] * u[((size_t)b * T + t + j + 1) * ld + h];
            }
            dKb[(size_t)h * L + j] = (float)s;
        }
        for (int b = 0; b < B; b++) {
            const int len = sf_seq_len(lens, b, T);
            for (int s0 = 0; s0 < T; s0++) {
                double s = 0;
                if (s0 < len) {
                    for (int t = s0; t < len; t++)
                        s += (double)K[(size_t)h * L + t - s0] * dy[((size_t)b * T + t) * ld + h];
                    for (int t = 0; Kb && t < s0; t++)
                        s += (double)Kb[(size_t)h * L + s0 - t - 1] * dy[((size_t)b * T + t) * ld + h];
                    const double g = dy[((size_t)b * T + s0) * ld + h];
                    s += (double)D[h] * g;
                    dd += g * u[((size_t)b * T + s0) * ld + h];
                }
                du[((size_t)b * T + s0) * ld + h] = (float)s;
            }
        }
        dD[h] += (float)dd;
    }
}
