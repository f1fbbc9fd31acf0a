/* S4D kernels on fresh random parameters and inputs (seed printed): the generated kernel against
 * its exp-per-power reference; the FFT convolution against the direct O(T^2) convolution forward
 * and backward (with padding, a row stride wider than H, several thread counts); the recurrence
 * (step) against both; the kernel-generation gradient against its reference and against finite
 * differences. Parameters: S4D-Lin initialisation (log_dt uniform in [log 1e-3, log 1e-1],
 * A = -0.5 + i pi n) perturbed so that no structure hides mistakes. */
#include <omp.h>
#include <string.h>

#include "core/error.h"
#include "core/rng.h"
#include "kernels/s4d.h"
#include "test_util.h"

static sf_rng g_rng;

typedef struct {
    sf_s4d_params p;
    float *buf;
} params;

static params make_params(int H, int N2, float dt_lo, float dt_hi) {
    params P;
    size_t hn = (size_t)H * N2;
    P.buf = sf_malloc(sizeof(float) * (2 * H + 4 * hn));
    float *log_dt = P.buf, *D = log_dt + H, *lar = D + H, *aim = lar + hn, *C = aim + hn;
    for (int h = 0; h < H; h++) {
        log_dt[h] = logf(dt_lo) + sf_rng_uniform(&g_rng) * (logf(dt_hi) - logf(dt_lo));
        D[h] = sf_rng_normal(&g_rng);
        for (int n = 0; n < N2; n++) {
            lar[(size_t)h * N2 + n] = logf(0.5f) + 0.3f * sf_rng_normal(&g_rng);
            aim[(size_t)h * N2 + n] = 3.14159265f * n + 0.3f * sf_rng_normal(&g_rng);
        }
    }
    sf_rng_fill_normal(&g_rng, C, 2 * (long)hn, 0.0f, 1.0f);
    P.p = (sf_s4d_params){H, N2, log_dt, lar, aim, C, D};
    return P;
}

static void check_kernel(int H, int N2, int L) {
    params P = make_params(H, N2, 1e-3f, 1e-1f);
    float *K = sf_malloc(sizeof(float) * H * L), *Kr = sf_malloc(sizeof(float) * H * L);
    sf_s4d_kernel(K, L, &P.p, 2);
    sf_s4d_kernel_ref(Kr, L, &P.p);
    double e = max_rel_err(K, Kr, (long)H * L, 1e-6);
    /* gradients: fast vs reference, with a random dK */
    size_t hn = (size_t)H * N2;
    float *dK = sf_malloc(sizeof(float) * H * L);
    sf_rng_fill_normal(&g_rng, dK, (long)H * L, 0.0f, 1.0f);
    float *g = sf_calloc(2 * (H + 4 * hn), sizeof(float)), *gr = g + H + 4 * hn;
    sf_s4d_grads G = {g, g + H, g + H + hn, g + H + 2 * hn, NULL};
    sf_s4d_grads Gr = {gr, gr + H, gr + H + hn, gr + H + 2 * hn, NULL};
    sf_s4d_kernel_backward(dK, L, &P.p, &G, 2);
    sf_s4d_kernel_backward_ref(dK, L, &P.p, &Gr);
    double eg = max_rel_err(g, gr, (long)(H + 4 * hn), 1e-6);
    printf("kernel H%d N2 %d L %d: K %.1e, dparams %.1e\n", H, N2, L, e, eg);
    CHECK(e < 1e-6 && eg < 1e-6);
    free(K), free(Kr), free(dK), free(g), free(P.buf);
}

/* Finite differences of sum(dK * K) in the kernel parameters (central, h = 1e-3 relative to
 * float rounding of K summed over L terms). */
static void check_kernel_fd(void) {
    const int H = 2, N2 = 3, L = 50;
    params P = make_params(H, N2, 1e-2f, 1e-1f);
    size_t hn = (size_t)H * N2, np = H + 4 * hn;
    float *K = sf_malloc(sizeof(float) * H * L), *dK = sf_malloc(sizeof(float) * H * L);
    sf_rng_fill_normal(&g_rng, dK, (long)H * L, 0.0f, 1.0f);
    float *g = sf_calloc(np, sizeof(float));
    sf_s4d_grads G = {g, g + H, g + H + hn, g + H + 2 * hn, NULL};
    sf_s4d_kernel_backward_ref(dK, L, &P.p, &G);
    float *params_of[4] = {(float *)P.p.log_dt, (float *)P.p.log_A_real, (float *)P.p.A_imag,
                           (float *)P.p.C};
    float *grads_of[4] = {G.log_dt, G.log_A_real, G.A_imag, G.C};
    size_t sizes[4] = {(size_t)H, hn, hn, 2 * hn};
    double worst = 0;
    for (int which = 0; which < 4; which++)
        for (size_t i = 0; i < sizes[which]; i++) {
            float *x = params_of[which] + i, keep = *x;
            const float step = 1e-3f;
            double l[2];
            for (int s = 0; s < 2; s++) {
                *x = keep + (s ? -step : step);
                sf_s4d_kernel_ref(K, L, &P.p);
                l[s] = 0;
                for (int j = 0; j < H * L; j++) l[s] += (double)K[j] * dK[j];
            }
            *x = keep;
            double fd = (l[0] - l[1]) / (2 * step), an = grads_of[which][i];
            double err = fabs(fd - an) / (fabs(fd) + fabs(an) + 1e-2);
            if (err > worst) worst = err;
        }
    printf("kernel gradient vs finite differences: worst rel err %.1e\n", worst);
    CHECK(worst < 1e-2);
    free(K), free(dK), free(g), free(P.buf);
}

static void check_conv(int B, int T, int H, int N2, const int *lens, int threads, int bidir) {
    params P = make_params(H, N2, 1e-3f, 1e-1f);
    const int ld = H + 3, L = T + 5;
    long n = (long)B * T * ld;
    float *u = sf_malloc(sizeof(float) * n), *dy = sf_malloc(sizeof(float) * n);
    sf_rng_fill_normal(&g_rng, u, n, 0.0f, 1.0f);
    sf_rng_fill_normal(&g_rng, dy, n, 0.0f, 1.0f);
    float *K = sf_malloc(sizeof(float) * H * L), *Kb = NULL;
    sf_s4d_kernel(K, L, &P.p, threads);
    if (bidir) { /* any second kernel: the convolution does not care where it came from */
        Kb = sf_malloc(sizeof(float) * H * L);
        sf_rng_fill_normal(&g_rng, Kb, (long)H * L, 0.0f, 0.3f);
    }
    float *y = sf_malloc(sizeof(float) * n), *yr = sf_malloc(sizeof(float) * n);
    float *du = sf_malloc(sizeof(float) * n), *dur = sf_malloc(sizeof(float) * n);
    memcpy(y, u, sizeof(float) * n), memcpy(yr, u, sizeof(float) * n); /* columns >= H stay */
    memcpy(du, u, sizeof(float) * n), memcpy(dur, u, sizeof(float) * n);
    float *dK = sf_calloc((size_t)H * L, sizeof(float)), *dKr = sf_calloc((size_t)H * L, sizeof(float));
    float *dKb = sf_calloc((size_t)H * L, sizeof(float)), *dKbr = sf_calloc((size_t)H * L, sizeof(float));
    float *dD = sf_calloc(2 * (size_t)H, sizeof(float)), *dDr = dD + H;
    double *scratch = sf_malloc(sizeof(double) * sf_s4d_conv_scratch_doubles(T, threads));
    omp_set_num_threads(threads);
    sf_s4d_conv_forward(y, u, ld, K, Kb, L, P.p.D, B, T, H, scratch, threads, lens);
    sf_s4d_conv_forward_ref(yr, u, ld, K, Kb, L, P.p.D, B, T, H, lens);
    sf_s4d_conv_backward(du, dK, dKb, dD, dy, u, ld, K, Kb, L, P.p.D, B, T, H, scratch, threads, lens);
    sf_s4d_conv_backward_ref(dur, dKr, dKbr, dDr, dy, u, ld, K, Kb, L, P.p.D, B, T, H, lens);
    double ey = max_rel_err(y, yr, n, 1e-6), edu = max_rel_err(du, dur, n, 1e-6);
    double edk = max_rel_err(dK, dKr, (long)H * L, 1e-6), edd = max_rel_err(dD, dDr, H, 1e-6);
    if (bidir) {
        double e = max_rel_err(dKb, dKbr, (long)H * L, 1e-6);
        edk = e > edk ? e : edk;
    }
    /* recurrence: token by token from a zero state, one sequence at a time */
    float *state = sf_malloc(sizeof(float) * sf_s4d_state_floats(H, N2));
    float *ut = sf_malloc(sizeof(float) * H), *yt = sf_malloc(sizeof(float) * H);
    double es = 0;
    for (int b = 0; b < B && !bidir; b++) {
        memset(state, 0, sizeof(float) * sf_s4d_state_floats(H, N2));
        const int len = lens ? lens[b] : T;
        for (int t = 0; t < len; t++) {
            const float *row = u + ((size_t)b * T + t) * ld;
            memcpy(ut, row, sizeof(float) * H);
            sf_s4d_step(yt, ut, &P.p, state, state);
            double e = max_rel_err(yt, yr + ((size_t)b * T + t) * ld, H, 1e-3);
            if (e > es) es = e;
        }
    }
    printf("conv%s B%d T%d H%d N2 %d%s, %d threads: FFT vs direct y %.1e du %.1e dK %.1e dD %.1e; "
           "recurrence vs direct %.1e\n", bidir ? " bidirectional" : "", B, T, H, N2, lens ? " padded" : "", threads, ey, edu, edk, edd, es);
    /* double FFT, float in and out: ~1e-7 relative; the float recurrence accumulates rounding
     * over T steps */
    CHECK(ey < 2e-6 && edu < 2e-6 && edk < 2e-6 && edd < 2e-6);
    CHECK_MSG(es < 1e-4, "recurrence %.3g", es);
    int untouched = 1;
    for (long i = 0; i < (long)B * T; i++)
        for (int c = H; c < ld; c++) untouched &= y[i * ld + c] == u[i * ld + c] && du[i * ld + c] == u[i * ld + c];
    CHECK(untouched);
    for (int h = 0; h < H; h++)
        for (int j = T; j < L; j++) CHECK(dK[(size_t)h * L + j] == 0.0f && dKb[(size_t)h * L + j] == 0.0f);
    free(Kb), free(dKb), free(dKbr);
    free(u), free(dy), free(K), free(y), free(yr), free(du), free(dur), free(dK), free(dKr), free(dD);
    free(scratch), free(state), free(ut), free(yt), free(P.buf);
}

int main(void) {
    sf_rng_seed(&g_rng, test_seed());
    check_kernel(3, 5, 300);
    check_kernel(2, 32, 1000);
    check_kernel_fd();
    static const int lens[3] = {40, 17, 1};
    check_conv(2, 1, 3, 2, NULL, 1, 0);
    check_conv(2, 7, 3, 4, NULL, 2, 0);
    check_conv(3, 40, 4, 8, lens, 2, 0);
    check_conv(1, 1000, 5, 16, NULL, 3, 0);
    check_conv(2, 513, 2, 32, NULL, 2, 0);
    check_conv(2, 1, 3, 2, NULL, 1, 1);
    check_conv(2, 7, 3, 4, NULL, 2, 1);
    check_conv(3, 40, 4, 8, lens, 2, 1);
    check_conv(2, 513, 2, 32, NULL, 2, 1);
    return test_finish();
}
