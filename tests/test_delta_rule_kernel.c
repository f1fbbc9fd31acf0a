/* The delta rule: chunked WY forward and backward against the sequential recurrence (double),
 * on fresh random inputs (seed printed), for chunk sizes that do and do not divide T, with
 * padding (per-sequence lengths), strided fused q|k|v rows, and several thread counts; the
 * streaming step against the sequential forward; and the sequential backward against finite
 * differences of the sequential forward. q and k are L2-normalised as the layer feeds them
 * (q also scaled by Dh^-1/2), beta in (0, 1). */
#include <omp.h>
#include <string.h>

#include "core/error.h"
#include "core/rng.h"
#include "kernels/delta_rule.h"
#include "test_util.h"

static sf_rng g_rng;

typedef struct {
    int B, T, H, Dh;
    float *qkv, *beta, *dout; /* qkv: [B*T, 3*H*Dh] fused rows (q | k | v) */
    int ld, ldb, ldo;
} problem;

static void normalise_rows(float *x, int D, float scale) {
    double ss = 0;
    for (int a = 0; a < D; a++) ss += (double)x[a] * x[a];
    float r = (float)(scale / sqrt(ss + 1e-6));
    for (int a = 0; a < D; a++) x[a] *= r;
}

static problem make_problem(int B, int T, int H, int Dh) {
    problem p = {B, T, H, Dh, NULL, NULL, NULL, 3 * H * Dh, H + 1, H * Dh + 2};
    long N = (long)B * T;
    p.qkv = sf_malloc(sizeof(float) * N * p.ld);
    p.beta = sf_malloc(sizeof(float) * N * p.ldb);
    p.dout = sf_malloc(sizeof(float) * N * p.ldo);
    sf_rng_fill_normal(&g_rng, p.qkv, N * p.ld, 0.0f, 1.0f);
    sf_rng_fill_normal(&g_rng, p.dout, N * p.ldo, 0.0f, 1.0f);
    for (long i = 0; i < N; i++) {
        for (int h = 0; h < H; h++) {
            normalise_rows(p.qkv + i * p.ld + h * Dh, Dh, 1.0f / sqrtf((float)Dh));
            normalise_rows(p.qkv + i * p.ld + (H + h) * Dh, Dh, 1.0f);
        }
        for (int h = 0; h < p.ldb; h++) p.beta[i * p.ldb + h] = sf_rng_uniform(&g_rng);
    }
    return p;
}

static void free_problem(problem *p) { free(p->qkv), free(p->beta), free(p->dout); }

/* max |a-b| / max |b| over the head columns of rows of stride ld */
static double cols_err(const float *a, const float *b, long rows, int ld, int cols) {
    double md = 0, mb = 1e-6;
    for (long i = 0; i < rows; i++)
        for (int c = 0; c < cols; c++) {
            double x = a[i * ld + c], y = b[i * ld + c];
            if (fabs(x - y) > md || x != x) md = fabs(x - y);
            if (fabs(y) > mb) mb = fabs(y);
        }
    return md / mb;
}

static void check_chunked(const char *name, int B, int T, int H, int Dh, int chunk, const int *lens,
                          int threads) {
    problem p = make_problem(B, T, H, Dh);
    const int HD = H * Dh;
    long N = (long)B * T;
    const float *q = p.qkv, *k = q + HD, *v = q + 2 * HD;
    float *o = sf_malloc(sizeof(float) * N * p.ldo), *o_ref = sf_malloc(sizeof(float) * N * p.ldo);
    float *g = sf_malloc(sizeof(float) * N * p.ld), *g_ref = sf_malloc(sizeof(float) * N * p.ld);
    float *db = sf_malloc(sizeof(float) * N * p.ldb), *db_ref = sf_malloc(sizeof(float) * N * p.ldb);
    for (long i = 0; i < N * p.ldb; i++) db[i] = db_ref[i] = 7.0f; /* the extra column stays */
    float *states = sf_malloc(sizeof(float) * sf_delta_rule_states_floats(B, T, H, Dh, chunk));
    float *scratch = sf_malloc(sizeof(float) * sf_delta_rule_scratch_floats(Dh, chunk, threads));
    omp_set_num_threads(threads);
    sf_delta_rule_forward(o, p.ldo, q, k, v, p.ld, p.beta, p.ldb, B, T, H, Dh, chunk, states,
                          scratch, threads, lens);
    sf_delta_rule_forward_ref(o_ref, p.ldo, q, k, v, p.ld, p.beta, p.ldb, B, T, H, Dh, lens);
    sf_delta_rule_backward(g, g + HD, g + 2 * HD, db, p.dout, p.ldo, q, k, v, p.ld, p.beta, p.ldb,
                           B, T, H, Dh, chunk, states, scratch, threads, lens);
    sf_delta_rule_backward_ref(g_ref, g_ref + HD, g_ref + 2 * HD, db_ref, p.dout, p.ldo, q, k, v,
                               p.ld, p.beta, p.ldb, B, T, H, Dh, lens);
    double eo = cols_err(o, o_ref, N, p.ldo, HD), eq = cols_err(g, g_ref, N, p.ld, HD);
    double ek = cols_err(g + HD, g_ref + HD, N, p.ld, HD), ev = cols_err(g + 2 * HD, g_ref + 2 * HD, N, p.ld, HD);
    double eb = cols_err(db, db_ref, N, p.ldb, p.ldb);
    printf("%-44s out %.1e dq %.1e dk %.1e dv %.1e dbeta %.1e\n", name, eo, eq, ek, ev, eb);
    /* float32 chunk products against the double recurrence: errors are rounding of O(chunk)
     * length sums and the substitution; measured ~1e-6 relative to each tensor's max */
    const double tol = 2e-5;
    CHECK_MSG(eo < tol && eq < tol && ek < tol && ev < tol && eb < tol, "%s: chunked != sequential", name);
    if (lens) { /* padding rows are exactly 0 */
        int zero = 1;
        for (int b = 0; b < B; b++)
            for (int t = lens[b]; t < T; t++) {
                const size_t r = (size_t)b * T + t;
                for (int c = 0; c < HD; c++)
                    zero &= o[r * p.ldo + c] == 0.0f && g[r * p.ld + c] == 0.0f &&
                            g[r * p.ld + HD + c] == 0.0f && g[r * p.ld + 2 * HD + c] == 0.0f;
                for (int h = 0; h < H; h++) zero &= db[r * p.ldb + h] == 0.0f;
            }
        CHECK_MSG(zero, "%s: padded rows not zero", name);
    }
    for (long i = 0; i < N; i++) CHECK(db[i * p.ldb + H] == 7.0f); /* columns past H untouched */
    free(o), free(o_ref), free(g), free(g_ref), free(db), free(db_ref), free(states), free(scratch);
    free_problem(&p);
}

static void check_step(int T, int H, int Dh) {
    problem p = make_problem(1, T, H, Dh);
    const int HD = H * Dh;
    float *o_ref = sf_malloc(sizeof(float) * T * p.ldo), *o = sf_malloc(sizeof(float) * HD);
    float *state = sf_calloc(sf_delta_rule_state_floats(H, Dh), sizeof(float));
    float *beta = sf_malloc(sizeof(float) * H);
    sf_delta_rule_forward_ref(o_ref, p.ldo, p.qkv, p.qkv + HD, p.qkv + 2 * HD, p.ld, p.beta, p.ldb,
                              1, T, H, Dh, NULL);
    double worst = 0;
    for (int t = 0; t < T; t++) {
        const float *row = p.qkv + (size_t)t * p.ld;
        for (int h = 0; h < H; h++) beta[h] = p.beta[(size_t)t * p.ldb + h];
        sf_delta_rule_step(o, row, row + HD, row + 2 * HD, beta, state, state, H, Dh);
        double e = max_rel_err(o, o_ref + (size_t)t * p.ldo, HD, 1e-3);
        if (e > worst) worst = e;
    }
    printf("step vs sequential (T=%d H=%d Dh=%d): max rel err %.1e\n", T, H, Dh, worst);
    CHECK(worst < 1e-5);
    free(o_ref), free(o), free(state), free(beta);
    free_problem(&p);
}

/* The sequential backward against central differences of the sequential forward (loss
 * sum(out * dout)), in double-accumulated forward passes: an independent check of the reference
 * the chunked backward is compared with. */
static double ref_loss(problem *p) {
    const int HD = p->H * p->Dh;
    long N = (long)p->B * p->T;
    float *o = sf_malloc(sizeof(float) * N * p->ldo);
    sf_delta_rule_forward_ref(o, p->ldo, p->qkv, p->qkv + HD, p->qkv + 2 * HD, p->ld, p->beta,
                              p->ldb, p->B, p->T, p->H, p->Dh, NULL);
    double s = 0;
    for (long i = 0; i < N; i++)
        for (int c = 0; c < HD; c++) s += (double)o[i * p->ldo + c] * p->dout[i * p->ldo + c];
    free(o);
    return s;
}

static void check_ref_fd(void) {
    problem p = make_problem(2, 9, 2, 3);
    const int HD = p.H * p.Dh;
    long N = (long)p.B * p.T;
    float *g = sf_malloc(sizeof(float) * N * p.ld), *db = sf_malloc(sizeof(float) * N * p.ldb);
    sf_delta_rule_backward_ref(g, g + HD, g + 2 * HD, db, p.dout, p.ldo, p.qkv, p.qkv + HD,
                               p.qkv + 2 * HD, p.ld, p.beta, p.ldb, p.B, p.T, p.H, p.Dh, NULL);
    double worst = 0;
    for (int trial = 0; trial < 40; trial++) {
        int is_beta = trial % 4 == 3;
        long i = is_beta ? (long)sf_rng_below(&g_rng, (uint32_t)N) * p.ldb + sf_rng_below(&g_rng, (uint32_t)p.H)
                         : (long)sf_rng_below(&g_rng, (uint32_t)N) * p.ld + sf_rng_below(&g_rng, (uint32_t)(3 * HD));
        float *x = is_beta ? p.beta + i : p.qkv + i;
        double an = is_beta ? db[i] : g[i];
        const float h = 1e-2f;
        float keep = *x;
        *x = keep + h;
        double lp = ref_loss(&p);
        *x = keep - h;
        double lm = ref_loss(&p);
        *x = keep;
        double fd = (lp - lm) / (2 * h), err = fabs(fd - an) / (fabs(fd) + fabs(an) + 1e-2);
        if (err > worst) worst = err;
    }
    printf("sequential backward vs finite differences: worst rel err %.1e\n", worst);
    CHECK(worst < 2e-3); /* O(h^2) curvature of a cubic-ish function at h = 1e-2, float inputs */
    free(g), free(db);
    free_problem(&p);
}

int main(void) {
    sf_rng_seed(&g_rng, test_seed());
    check_ref_fd();
    static const int lens[3] = {37, 64, 5};
    check_chunked("B2 T37 H2 Dh4 chunk 8 (tail 5)", 2, 37, 2, 4, 8, NULL, 1);
    check_chunked("B2 T37 H2 Dh4 chunk 64 (one chunk)", 2, 37, 2, 4, 64, NULL, 2);
    check_chunked("B1 T50 H1 Dh8 chunk 1", 1, 50, 1, 8, 1, NULL, 1);
    check_chunked("B3 T64 H3 Dh5 chunk 16, padded", 3, 64, 3, 5, 16, lens, 2);
    check_chunked("B2 T200 H2 Dh16 chunk 64", 2, 200, 2, 16, 64, NULL, 2);
    check_chunked("B1 T300 H1 Dh64 chunk 64", 1, 300, 1, 64, 64, NULL, 1);
    check_chunked("B2 T130 H4 Dh32 chunk 32, 3 threads", 2, 130, 4, 32, 32, NULL, 3);
    check_step(40, 3, 6);
    return test_finish();
}
