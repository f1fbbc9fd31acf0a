/* Selective scan (Mamba-1) kernels: fast (chunk-checkpointed, threaded) vs the plain sequential
 * reference, forward and every backward output, on fresh random inputs (seed printed): odd channel
 * counts (partial tiles), T below, at and across chunk boundaries, strided z and B/C rows as the
 * layer passes them, padded batches with NaN in every padded input row (never read; padded
 * outputs and gradients exactly 0), results identical for 1 and 2 threads, and the streaming step
 * against the forward. Tolerance 1e-5 relative to each tensor's largest reference entry: the fast
 * path accumulates in float with a polynomial exp (a few ulps), the reference in double. */
#include <omp.h>
#include <string.h>

#include "core/error.h"
#include "core/rng.h"
#include "kernels/selective_scan.h"
#include "test_util.h"

static sf_rng rng;

typedef struct {
    int B, T, Di, N, R, ldz, ldbc;
    float *u, *r, *xz, *xdbl, *A, *D, *dy; /* z = xz + Di (stride 2 Di); B = xdbl + R, C = B + N */
} scan_case;

static float *normal(size_t n, float mean, float sd) {
    float *p = sf_malloc(n * sizeof(float) + 4);
    sf_rng_fill_normal(&rng, p, (long)n, mean, sd);
    return p;
}

static scan_case make_case(int B, int T, int Di, int N) {
    scan_case c = {B, T, Di, N, 3, 2 * Di, 3 + 2 * N, NULL, NULL, NULL, NULL, NULL, NULL, NULL};
    size_t rows = (size_t)B * T;
    c.u = normal(rows * Di, 0.0f, 1.0f);
    c.r = sf_malloc(rows * Di * sizeof(float));
    /* softplus(r) from ~7e-3 (r = -5) to ~2.1 (r = 2): Mamba's init range and well beyond */
    for (size_t i = 0; i < rows * Di; i++) c.r[i] = -5.0f + 7.0f * sf_rng_uniform(&rng);
    c.xz = normal(rows * 2 * Di, 0.0f, 1.0f);
    c.xdbl = normal(rows * c.ldbc, 0.0f, 1.0f);
    c.A = sf_malloc((size_t)Di * N * sizeof(float));
    for (int i = 0; i < Di; i++)
        for (int n = 0; n < N; n++) /* -(n + 1) as Mamba's init, jittered */
            c.A[(size_t)i * N + n] = -(float)(n + 1) * (0.7f + 0.6f * sf_rng_uniform(&rng));
    c.D = normal((size_t)Di, 1.0f, 0.3f);
    c.dy = normal(rows * Di, 0.0f, 1.0f);
    return c;
}

static void free_case(scan_case *c) {
    free(c->u), free(c->r), free(c->xz), free(c->xdbl), free(c->A), free(c->D), free(c->dy);
}

/* Every output of one forward + backward. */
typedef struct {
    float *y, *du, *dr, *dz, *dxdbl, *dA, *dD;
} scan_out;

static scan_out run(const scan_case *c, const int *lens, int ref) {
    size_t rows = (size_t)c->B * c->T;
    scan_out o;
    o.y = sf_malloc(rows * c->Di * sizeof(float));
    o.du = sf_malloc(rows * c->Di * sizeof(float));
    o.dr = sf_malloc(rows * c->Di * sizeof(float));
    o.dz = sf_calloc(rows * 2 * c->Di, sizeof(float));
    o.dxdbl = sf_calloc(rows * c->ldbc, sizeof(float));
    o.dA = sf_malloc((size_t)c->Di * c->N * sizeof(float));
    o.dD = sf_malloc((size_t)c->Di * sizeof(float));
    float *states = sf_malloc(sf_selective_scan_states_floats(c->B, c->T, c->Di, c->N) * sizeof(float) + 4);
    float *scratch = sf_malloc(sf_selective_scan_scratch_floats(c->B, c->T, c->Di, c->N) * sizeof(float));
    const float *z = c->xz + c->Di, *Bm = c->xdbl + c->R, *Cm = Bm + c->N;
    (ref ? sf_selective_scan_forward_ref : sf_selective_scan_forward)(
        o.y, states, c->u, c->r, c->A, Bm, Cm, c->ldbc, c->D, z, c->ldz, c->B, c->T, c->Di, c->N, lens);
    (ref ? sf_selective_scan_backward_ref : sf_selective_scan_backward)(
        o.du, o.dr, o.dA, o.dxdbl + c->R, o.dxdbl + c->R + c->N, o.dD, o.dz + c->Di, c->dy, states,
        c->u, c->r, c->A, Bm, Cm, c->ldbc, c->D, z, c->ldz, c->B, c->T, c->Di, c->N, lens, scratch);
    free(states), free(scratch);
    return o;
}

static void free_out(scan_out *o) {
    free(o->y), free(o->du), free(o->dr), free(o->dz), free(o->dxdbl), free(o->dA), free(o->dD);
}

static double compare(const scan_case *c, const scan_out *f, const scan_out *r, int print,
                      const char *name) {
    long rows = (long)c->B * c->T;
    double e[7] = {max_rel_err(f->y, r->y, rows * c->Di, 1e-6),
                   max_rel_err(f->du, r->du, rows * c->Di, 1e-6),
                   max_rel_err(f->dr, r->dr, rows * c->Di, 1e-6),
                   max_rel_err(f->dz, r->dz, rows * 2 * c->Di, 1e-6),
                   max_rel_err(f->dxdbl, r->dxdbl, rows * c->ldbc, 1e-6),
                   max_rel_err(f->dA, r->dA, (long)c->Di * c->N, 1e-6),
                   max_rel_err(f->dD, r->dD, c->Di, 1e-6)};
    double worst = 0;
    for (int i = 0; i < 7; i++) worst = e[i] > worst ? e[i] : worst;
    if (print)
        printf("%-34s y %.1e du %.1e ddelta %.1e dz %.1e dB|dC %.1e dA %.1e dD %.1e\n", name, e[0],
               e[1], e[2], e[3], e[4], e[5], e[6]);
    return worst;
}

static void check_case(int B, int T, int Di, int N, const int *lens) {
    scan_case c = make_case(B, T, Di, N);
    if (lens) /* NaN in every padded input row: the kernels must not read them */
        for (int b = 0; b < B; b++)
            for (int t = lens[b]; t < T; t++) {
                size_t row = (size_t)b * T + t;
                for (int i = 0; i < Di; i++) c.u[row * Di + i] = c.r[row * Di + i] = c.dy[row * Di + i] = NAN;
                for (int i = 0; i < 2 * Di; i++) c.xz[row * 2 * Di + i] = NAN;
                for (int i = 0; i < c.ldbc; i++) c.xdbl[row * c.ldbc + i] = NAN;
            }
    scan_out r = run(&c, lens, 1), f = run(&c, lens, 0);
    char name[96];
    snprintf(name, sizeof name, "B=%d T=%d Di=%d N=%d%s", B, T, Di, N, lens ? " padded" : "");
    double worst = compare(&c, &f, &r, 1, name);
    CHECK_MSG(worst < 1e-5, "%s: fast vs reference %.3g", name, worst);
    if (lens) { /* padded rows: outputs and gradients exactly 0 */
        int zero = 1;
        for (int b = 0; b < B; b++)
            for (int t = lens[b]; t < T; t++) {
                size_t row = (size_t)b * T + t;
                for (int i = 0; i < Di; i++)
                    zero &= f.y[row * Di + i] == 0 && f.du[row * Di + i] == 0 && f.dr[row * Di + i] == 0 &&
                            f.dz[row * 2 * Di + Di + i] == 0;
                for (int n = 0; n < 2 * N; n++) zero &= f.dxdbl[row * c.ldbc + c.R + n] == 0;
            }
        CHECK_MSG(zero, "%s: padded rows not zero", name);
    }
    /* the thread count changes nothing, bit for bit */
    int nt = omp_get_max_threads();
    omp_set_num_threads(1);
    scan_out f1 = run(&c, lens, 0);
    omp_set_num_threads(nt > 1 ? nt : 2);
    scan_out f2 = run(&c, lens, 0);
    omp_set_num_threads(nt);
    CHECK_MSG(compare(&c, &f1, &f2, 0, name) == 0.0, "%s: results depend on the thread count", name);
    free_out(&f1), free_out(&f2), free_out(&r), free_out(&f), free_case(&c);
}

/* T steps of the streaming step from h = 0 reproduce the forward of one sequence. */
static void check_step(int T, int Di, int N) {
    scan_case c = make_case(1, T, Di, N);
    scan_out f = run(&c, NULL, 0);
    float *h = sf_calloc((size_t)Di * N, sizeof(float)), *y = sf_malloc((size_t)Di * sizeof(float));
    double worst = 0;
    for (int t = 0; t < T; t++) {
        const float *row = c.xdbl + (size_t)t * c.ldbc + c.R;
        sf_selective_scan_step(y, h, c.u + (size_t)t * Di, c.r + (size_t)t * Di, c.A, row, row + N, c.D,
                               c.xz + (size_t)t * 2 * Di + Di, Di, N);
        double e = max_rel_err(y, f.y + (size_t)t * Di, Di, 1e-3);
        worst = e > worst ? e : worst;
    }
    printf("step x %d vs forward (Di=%d N=%d): %.1e\n", T, Di, N, worst);
    CHECK(worst < 1e-5);
    free(h), free(y), free_out(&f), free_case(&c);
}

int main(void) {
    sf_rng_seed(&rng, test_seed());
    check_case(1, 1, 1, 1, NULL);
    check_case(2, 7, 5, 3, NULL);              /* partial tile, T below a chunk */
    check_case(2, 64, 16, 16, NULL);           /* exactly one chunk */
    check_case(3, 200, 20, 16, NULL);          /* chunks + partial tile */
    check_case(1, 300, 64, 4, NULL);           /* one sequence: channel groups in parallel */
    check_case(4, 130, 24, 2, NULL);           /* S-Mamba's d_state 2 */
    const int lens3[3] = {200, 64, 1};
    check_case(3, 200, 20, 16, lens3);
    const int lens2[2] = {65, 129};
    check_case(2, 130, 9, 5, lens2);
    check_step(150, 12, 16);
    return test_finish();
}
