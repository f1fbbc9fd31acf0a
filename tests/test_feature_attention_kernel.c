/* Linear attention over given features (kernels/feature_attention.h) and the feature maps
 * (kernels/feature_maps.h), on fresh random inputs (seed printed):
 *   - kernel fast vs the plain quadratic reference, forward and backward, causal and not, both
 *     normalisers (add with eps 0 and 1e-6, clamp with rows below eps), padded strides, padding
 *     (lens, NaN in padded input rows that must not be read, padded output rows exactly 0);
 *   - the reference backward against central differences of the reference forward;
 *   - step from a zero state == causal forward; thread-count determinism (bitwise);
 *   - relu, FAVOR+ (query / key / causal key, with and without l2) and cosFormer backward
 *     against central differences;
 *   - FAVOR+ fast vs its plain reference on random shapes, every role, with and without l2;
 *   - the FAVOR+ projection: rows orthogonal within blocks, row norms chi(D) (mean |w|^2 = D),
 *     entries N(0, 1); the FAVOR+ estimate of exp(q.k/sqrt(D)) with 4096 features;
 *   - cosFormer features + kernel == the official left_product form (explicit cos-reweighted
 *     quadratic attention), causal and not. */
#include <omp.h>
#include <string.h>

#include "core/error.h"
#include "core/rng.h"
#include "kernels/feature_attention.h"
#include "kernels/feature_maps.h"
#include "test_util.h"

static sf_rng rng;

static float *rnd(size_t n, float s) {
    float *x = sf_malloc(n * sizeof(float) + 4);
    sf_rng_fill_normal(&rng, x, (long)n, 0.0f, s);
    return x;
}
/* Non-negative features, about a quarter exactly 0, the others in [0.05, 1.05]: a normaliser is
 * then either exactly 0 or >= 0.0025. (Nonzero but tiny normalisers make the gradient the
 * difference of O(1/s) terms: float rounding noise, not the implementation, then dominates the
 * comparison with the double reference.) */
static float *rnd_pos(size_t n) {
    float *x = sf_malloc(n * sizeof(float) + 4);
    for (size_t i = 0; i < n; i++) {
        const float u = sf_rng_uniform(&rng);
        x[i] = u < 0.25f ? 0.0f : 0.05f + (u - 0.25f) / 0.75f;
    }
    return x;
}

/* Fast vs reference on one configuration. zero_rows: make a few query rows all 0 (s = 0 < eps,
 * the clamp branch). */
static void check_kernel(int B, int T, int H, int M, int Dv, int causal, sf_fa_norm norm, float eps,
                         int padded, int zero_rows) {
    sf_fa_shape s = {B, T, H, M, Dv, causal, norm, eps};
    const int ldf = H * M + 3, ldv = 3 * H * Dv + 1, ldo = H * Dv + 2;
    const size_t nf = (size_t)B * T * ldf, nv = (size_t)B * T * ldv, no = (size_t)B * T * ldo;
    float *fq = rnd_pos(nf), *fk = rnd_pos(nf), *v = rnd(nv, 1.0f), *g = rnd(no, 1.0f);
    /* no eps: strictly positive features, as FAVOR+'s; also in the tiny case, where an all-zero
     * key row makes the exact query gradient 0 and the comparison one of rounding noise */
    if (eps == 0.0f || T <= 3)
        for (size_t i = 0; i < nf; i++) fq[i] = fq[i] > 0.0f ? fq[i] : 0.05f, fk[i] = fk[i] > 0.0f ? fk[i] : 0.05f;
    int lens[8];
    for (int b = 0; b < B; b++) lens[b] = padded ? 1 + (int)sf_rng_below(&rng, (uint32_t)T) : T;
    if (padded) lens[0] = T;
    if (zero_rows)
        for (int b = 0; b < B; b++)
            for (int h = 0; h < H; h++) memset(fq + ((size_t)b * T + T / 2) * ldf + h * M, 0, M * sizeof(float));
    /* padded rows: NaN (must not be read) */
    for (int b = 0; padded && b < B; b++)
        for (int t = lens[b]; t < T; t++) {
            for (int i = 0; i < ldf; i++) fq[((size_t)b * T + t) * ldf + i] = fk[((size_t)b * T + t) * ldf + i] = NAN;
            for (int i = 0; i < ldv; i++) v[((size_t)b * T + t) * ldv + i] = NAN;
            for (int i = 0; i < ldo; i++) g[((size_t)b * T + t) * ldo + i] = NAN;
        }
    const int *L = padded ? lens : NULL;
    float *o1 = sf_calloc(no, 4), *o2 = sf_calloc(no, 4);
    float *dq1 = sf_calloc(nf, 4), *dk1 = sf_calloc(nf, 4), *dv1 = sf_calloc(nv, 4);
    float *dq2 = sf_calloc(nf, 4), *dk2 = sf_calloc(nf, 4), *dv2 = sf_calloc(nv, 4);
    float *scratch = sf_malloc(sf_feature_attention_scratch_floats(&s) * sizeof(float) + 4);
    sf_feature_attention_forward(&s, o1, ldo, fq, fk, ldf, v, ldv, scratch, L);
    sf_feature_attention_forward_ref(&s, o2, ldo, fq, fk, ldf, v, ldv, NULL, L);
    sf_feature_attention_backward(&s, dq1, dk1, dv1, g, ldo, fq, fk, ldf, v, ldv, scratch, L);
    sf_feature_attention_backward_ref(&s, dq2, dk2, dv2, g, ldo, fq, fk, ldf, v, ldv, NULL, L);
    /* Gradients that are exactly 0 (a causal first query: out_0 = v_0 whatever fq_0) come out as
     * the rounding noise of cancelling O(1) terms: errors are relative to at least 1e-4 and to
     * 1e-2 of the largest gradient of the three. */
    double gfloor = 1e-4;
    for (size_t i = 0; i < nf; i++) gfloor = fmax(gfloor, 1e-2 * fmax(fabs(dq2[i]), fabs(dk2[i])));
    for (size_t i = 0; i < nv; i++) gfloor = fmax(gfloor, 1e-2 * fabs(dv2[i]));
    double eo = max_rel_err(o1, o2, (long)no, 1e-6), eq = max_rel_err(dq1, dq2, (long)nf, gfloor);
    double ek = max_rel_err(dk1, dk2, (long)nf, gfloor), ev = max_rel_err(dv1, dv2, (long)nv, gfloor);
    int pad_zero = 1;
    for (int b = 0; b < B; b++)
        for (int t = L ? L[b] : T; t < T; t++)
            for (int h = 0; h < H; h++) {
                for (int c = 0; c < Dv; c++) pad_zero &= o1[((size_t)b * T + t) * ldo + h * Dv + c] == 0.0f;
                for (int a = 0; a < M; a++) pad_zero &= dq1[((size_t)b * T + t) * ldf + h * M + a] == 0.0f;
            }
    printf("kernel B%d T%d H%d M%d Dv%d %-6s %-5s eps %.0e%s%s: out %.1e dfq %.1e dfk %.1e dv %.1e\n", B, T,
           H, M, Dv, causal ? "causal" : "bidir", norm == SF_FA_NORM_ADD ? "add" : "clamp", eps,
           padded ? " padded" : "", zero_rows ? " zero-rows" : "", eo, eq, ek, ev);
    /* Gradients: a causal first query's exact gradient is 0, and the float value is the noise of
     * cancelling terms of size |fk||v||g|/s (measured up to 2.4e-5 in ~1/300 seeds at T = 9, and up
     * to 8e-5 in ~3% at T = 3, where nothing larger sets the scale). A wrong term shows as >= 1e-2. */
    const double tol = T <= 3 ? 5e-4 : 1e-4;
    CHECK_MSG(eo < 2e-5 && eq < tol && ek < tol && ev < tol, "fast vs reference");
    CHECK(pad_zero);
    free(fq), free(fk), free(v), free(g), free(o1), free(o2), free(dq1), free(dk1), free(dv1);
    free(dq2), free(dk2), free(dv2), free(scratch);
}

/* loss = sum(out * r) via the reference forward, in double from float outputs. */
static double ref_loss(const sf_fa_shape *s, const float *fq, const float *fk, const float *v,
                       const float *r, float *o) {
    const int ld = s->H * s->M, lv = s->H * s->Dv;
    sf_feature_attention_forward_ref(s, o, lv, fq, fk, ld, v, lv, NULL, NULL);
    double l = 0;
    for (long i = 0; i < (long)s->B * s->T * lv; i++) l += (double)o[i] * r[i];
    return l;
}

static double fd_err(double an, double lp, double lm, double h, double floor) {
    double fd = (lp - lm) / (2 * h);
    return fabs(fd - an) / (fabs(fd) + fabs(an) + floor);
}

static void check_kernel_fd(int causal, sf_fa_norm norm) {
    sf_fa_shape s = {2, 6, 2, 3, 2, causal, norm, norm == SF_FA_NORM_ADD ? 1e-6f : 1e-2f};
    const size_t nf = (size_t)s.B * s.T * s.H * s.M, nv = (size_t)s.B * s.T * s.H * s.Dv;
    float *fq = rnd_pos(nf), *fk = rnd_pos(nf), *v = rnd(nv, 1.0f), *r = rnd(nv, 1.0f);
    for (size_t i = 0; i < nf; i++) fq[i] += 0.05f, fk[i] += 0.05f; /* away from the clamp kink */
    float *o = sf_malloc(nv * 4), *dq = sf_malloc(nf * 4), *dk = sf_malloc(nf * 4), *dv = sf_malloc(nv * 4);
    sf_feature_attention_backward_ref(&s, dq, dk, dv, r, s.H * s.Dv, fq, fk, s.H * s.M, v, s.H * s.Dv, NULL, NULL);
    double worst = 0;
    const float h = 1e-3f;
    float *arrs[3] = {fq, fk, v};
    float *grads[3] = {dq, dk, dv};
    size_t lens[3] = {nf, nf, nv};
    /* float outputs make the difference quotient noisy: the best of three steps counts, and
     * errors are judged against 1% of the RMS gradient */
    double ss = 0;
    for (int w = 0; w < 3; w++)
        for (size_t i = 0; i < lens[w]; i++) ss += (double)grads[w][i] * grads[w][i];
    const double floor = 1e-2 * sqrt(ss / (double)(2 * nf + nv));
    for (int w = 0; w < 3; w++)
        for (int k = 0; k < 12; k++) {
            size_t i = sf_rng_below(&rng, (uint32_t)lens[w]);
            float keep = arrs[w][i];
            double best = INFINITY;
            for (int st = 0; st < 3; st++) {
                const float hh = h * (st == 0 ? 10.0f : st == 1 ? 3.0f : 1.0f);
                arrs[w][i] = keep + hh;
                double lp = ref_loss(&s, fq, fk, v, r, o);
                arrs[w][i] = keep - hh;
                double lm = ref_loss(&s, fq, fk, v, r, o);
                arrs[w][i] = keep;
                double e = fd_err(grads[w][i], lp, lm, hh, floor);
                if (e < best) best = e;
            }
            if (best > worst) worst = best;
        }
    printf("kernel reference backward vs finite differences (%s, %s): worst rel err %.2e\n",
           causal ? "causal" : "bidir", norm == SF_FA_NORM_ADD ? "add" : "clamp", worst);
    CHECK(worst < 1e-2);
    free(fq), free(fk), free(v), free(r), free(o), free(dq), free(dk), free(dv);
}

static void check_step(sf_fa_norm norm) {
    sf_fa_shape s = {1, 11, 3, 5, 4, 1, norm, 1e-6f};
    const int ldf = s.H * s.M, ldv = s.H * s.Dv;
    float *fq = rnd_pos((size_t)s.T * ldf), *fk = rnd_pos((size_t)s.T * ldf), *v = rnd((size_t)s.T * ldv, 1.0f);
    float *o = sf_malloc((size_t)s.T * ldv * 4), *ot = sf_malloc((size_t)ldv * 4);
    float *scratch = sf_malloc(sf_feature_attention_scratch_floats(&s) * 4);
    sf_feature_attention_forward(&s, o, ldv, fq, fk, ldf, v, ldv, scratch, NULL);
    size_t ns = sf_feature_attention_state_floats(s.H, s.M, s.Dv);
    float *st = sf_calloc(ns, 4), *st2 = sf_calloc(ns, 4);
    double worst = 0;
    for (int t = 0; t < s.T; t++) {
        /* alternate in-place and out-of-place updates */
        if (t % 2) {
            sf_feature_attention_step(&s, ot, fq + t * ldf, fk + t * ldf, v + t * ldv, st, st);
        } else {
            sf_feature_attention_step(&s, ot, fq + t * ldf, fk + t * ldf, v + t * ldv, st, st2);
            memcpy(st, st2, ns * 4);
        }
        double e = max_rel_err(ot, o + t * ldv, ldv, 1e-6);
        if (e > worst) worst = e;
    }
    printf("kernel step vs causal forward (%s): max rel err %.2e\n", norm == SF_FA_NORM_ADD ? "add" : "clamp", worst);
    CHECK(worst < 1e-6);
    free(fq), free(fk), free(v), free(o), free(ot), free(scratch), free(st), free(st2);
}

static void check_threads(void) {
    sf_fa_shape s = {4, 64, 4, 16, 8, 1, SF_FA_NORM_ADD, 1e-6f};
    SF_ASSERT((long)s.B * s.H * s.T * s.M * s.Dv >= SF_FEATURE_ATTENTION_PAR_MIN);
    const int ldf = s.H * s.M, ldv = s.H * s.Dv;
    const size_t nf = (size_t)s.B * s.T * ldf, nv = (size_t)s.B * s.T * ldv;
    float *fq = rnd_pos(nf), *fk = rnd_pos(nf), *v = rnd(nv, 1.0f), *g = rnd(nv, 1.0f);
    float *scratch = sf_malloc(sf_feature_attention_scratch_floats(&s) * 4);
    float *o[2], *d[2];
    for (int k = 0; k < 2; k++) {
        omp_set_num_threads(k ? 2 : 1);
        o[k] = sf_malloc(nv * 4);
        d[k] = sf_malloc((2 * nf + nv) * 4);
        sf_feature_attention_forward(&s, o[k], ldv, fq, fk, ldf, v, ldv, scratch, NULL);
        sf_feature_attention_backward(&s, d[k], d[k] + nf, d[k] + 2 * nf, g, ldv, fq, fk, ldf, v, ldv, scratch, NULL);
    }
    omp_set_num_threads(2);
    int same = !memcmp(o[0], o[1], nv * 4) && !memcmp(d[0], d[1], (2 * nf + nv) * 4);
    printf("kernel 1 thread vs 2 threads: %s\n", same ? "bitwise identical" : "DIFFERENT");
    CHECK(same);
    free(fq), free(fk), free(v), free(g), free(scratch), free(o[0]), free(o[1]), free(d[0]), free(d[1]);
}

/* ---- feature maps -------------------------------------------------------------------------- */

typedef enum { FM_RELU, FM_FAVOR, FM_COS } fm_kind;
typedef struct {
    fm_kind kind;
    int n, D, M, ldx, ldphi;
    const float *W;
    sf_favor_role role;
    int l2, pos0, len;
} fm_case;

static void fm_fwd(const fm_case *c, float *phi, const float *x) {
    if (c->kind == FM_RELU) sf_relu_features_forward(phi, c->ldphi, x, c->ldx, c->n, c->D);
    if (c->kind == FM_FAVOR) sf_favor_features_forward(phi, c->ldphi, x, c->ldx, c->n, c->D, c->W, c->M, c->role, c->l2);
    if (c->kind == FM_COS) sf_cosformer_features_forward(phi, c->ldphi, x, c->ldx, c->n, 2, c->D / 2, c->pos0, c->len);
}
static void fm_bwd(const fm_case *c, float *dx, const float *g, const float *x) {
    if (c->kind == FM_RELU) sf_relu_features_backward(dx, c->ldx, g, c->ldphi, x, c->ldx, c->n, c->D);
    if (c->kind == FM_FAVOR)
        sf_favor_features_backward(dx, c->ldx, g, c->ldphi, x, c->ldx, c->n, c->D, c->W, c->M, c->role, c->l2);
    if (c->kind == FM_COS) sf_cosformer_features_backward(dx, c->ldx, g, c->ldphi, x, c->ldx, c->n, 2, c->D / 2, c->pos0, c->len);
}

/* relu, cosformer: loss = sum(phi * r). FAVOR+: its stabiliser is a constant for the gradient
 * (no gradient through the max), which is right only where the scale cancels, as it does in
 * attention: there the loss is the ratio sum(phi r) / sum(phi s) (s > 0), per row for queries
 * (a per-row max) and over all rows for keys (one shared max). */
static int fm_per_row(const fm_case *c) { return c->kind == FM_FAVOR && c->role == SF_FAVOR_QUERY; }

static double fm_loss_grad(const fm_case *c, const float *x, const float *r, const float *sw,
                           float *phi, float *dphi) {
    fm_fwd(c, phi, x);
    double l = 0, A = 0, Bs = 0;
    for (int i = 0; i < c->n; i++) {
        if (fm_per_row(c)) A = Bs = 0;
        for (int m = 0; m < c->M; m++) {
            const size_t k = (size_t)i * c->ldphi + m;
            A += (double)phi[k] * r[k];
            Bs += (double)phi[k] * sw[k];
        }
        if (c->kind != FM_FAVOR) l = A;
        else if (fm_per_row(c)) l += A / Bs;
        else if (i == c->n - 1) l = A / Bs;
        if (dphi && fm_per_row(c))
            for (int m = 0; m < c->M; m++) {
                const size_t k = (size_t)i * c->ldphi + m;
                dphi[k] = (float)(r[k] / Bs - A * sw[k] / (Bs * Bs));
            }
    }
    if (dphi && !fm_per_row(c))
        for (int i = 0; i < c->n; i++)
            for (int m = 0; m < c->M; m++) {
                const size_t k = (size_t)i * c->ldphi + m;
                dphi[k] = c->kind == FM_FAVOR ? (float)(r[k] / Bs - A * sw[k] / (Bs * Bs)) : r[k];
            }
    return l;
}
static double fm_loss(const fm_case *c, const float *x, const float *r, const float *sw, float *phi) {
    return fm_loss_grad(c, x, r, sw, phi, NULL);
}

static void check_feature_fd(const char *name, fm_case c, float xscale) {
    const size_t nx = (size_t)c.n * c.ldx, np = (size_t)c.n * c.ldphi;
    float *x = rnd(nx, xscale), *r = rnd(np, 1.0f), *phi = sf_malloc(np * 4), *dx = sf_calloc(nx, 4);
    float *sw = sf_malloc(np * 4), *dphi = sf_malloc(np * 4);
    /* l2: x / |x| is singular at 0, where central differences cannot follow it; keep |x| >= 0.5 */
    for (int i = 0; c.l2 && i < c.n; i++) {
        float *xr = x + (size_t)i * c.ldx, ss = 0.0f;
        for (int a = 0; a < c.D; a++) ss += xr[a] * xr[a];
        if (ss < 0.25f)
            for (int a = 0; a < c.D; a++) xr[a] *= 0.5f / sqrtf(ss + 1e-12f);
    }
    for (size_t i = 0; i < np; i++) sw[i] = 0.5f + sf_rng_uniform(&rng);
    fm_loss_grad(&c, x, r, sw, phi, dphi);
    fm_bwd(&c, dx, dphi, x);
    double worst = 0, ss = 0;
    int checked = 0;
    for (size_t i = 0; i < nx; i++) ss += (double)dx[i] * dx[i];
    const double floor = 1e-2 * sqrt(ss / (double)nx); /* 1% of the RMS gradient */
    for (int i = 0; i < c.n; i++)
        for (int a = 0; a < c.D; a++) {
            size_t k = (size_t)i * c.ldx + a;
            float keep = x[k];
            if (c.kind != FM_FAVOR && fabsf(keep) < 2e-3f) continue; /* relu kink */
            double best = INFINITY;
            const float hs[3] = {1e-2f, 2e-3f, 5e-4f};
            for (int s = 0; s < 3; s++) {
                float h = c.kind != FM_FAVOR && hs[s] > 0.5f * fabsf(keep) ? 0.5f * fabsf(keep) : hs[s];
                x[k] = keep + h;
                double lp = fm_loss(&c, x, r, sw, phi);
                x[k] = keep - h;
                double lm = fm_loss(&c, x, r, sw, phi);
                x[k] = keep;
                double e = fd_err(dx[k], lp, lm, h, floor);
                if (e < best) best = e;
            }
            if (best > worst) worst = best;
            checked++;
        }
    printf("%-44s %3d entries vs finite differences: worst rel err %.2e\n", name, checked, worst);
    /* 2e-2 as test_layers' gradient checks: float forwards make the quotients noisy, and FAVOR+'s
     * stabiliser is held constant (the 1e-6 term makes the exact derivative differ slightly) */
    CHECK_MSG(worst < 2e-2, "%s", name);
    free(x), free(r), free(phi), free(dx), free(sw), free(dphi);
}

static void check_feature_maps(void) {
    check_feature_fd("relu features", (fm_case){FM_RELU, 5, 6, 6, 9, 7, NULL, 0, 0, 0, 0}, 1.0f);
    check_feature_fd("cosformer features", (fm_case){FM_COS, 6, 6, 12, 8, 14, NULL, 0, 0, 2, 11}, 1.0f);
    const int D = 4, M = 10;
    float *W = sf_malloc(sizeof(float) * M * D);
    sf_favor_draw_projection(W, M, D, &rng);
    const char *roles[3] = {"query", "key", "causal key"};
    for (int role = 0; role < 3; role++)
        for (int l2 = 0; l2 < 2; l2++) {
            char name[64];
            snprintf(name, sizeof name, "favor features (%s%s)", roles[role], l2 ? ", l2" : "");
            check_feature_fd(name, (fm_case){FM_FAVOR, 5, D, M, 7, 13, W, (sf_favor_role)role, l2, 0, 0}, 0.5f);
        }
    /* l2: features depend only on the direction of x */
    float x[4] = {0.3f, -1.2f, 0.7f, 2.0f}, x2[4], p1[10], p2[10];
    for (int a = 0; a < 4; a++) x2[a] = 3.5f * x[a];
    sf_favor_features_forward(p1, M, x, D, 1, D, W, M, SF_FAVOR_QUERY, 1);
    sf_favor_features_forward(p2, M, x2, D, 1, D, W, M, SF_FAVOR_QUERY, 1);
    CHECK_MSG(max_rel_err(p1, p2, M, 1e-9) < 1e-6, "l2: phi(3.5 x) == phi(x)");
    free(W);
}

/* FAVOR+ fast (vectorised over the features, sf_expf_fast, one projection per row) vs the plain
 * reference (scalar, libm expf), forward and backward, every role with and without l2, on random
 * shapes (widths not multiples of the vector length, padded strides, n = 0 and 1). */
static void check_favor_fast_vs_ref(void) {
    const int Ds[] = {1, 3, 4, 8, 16, 64}, Ms[] = {1, 5, 8, 64, 100, 256}, ns[] = {0, 1, 7, 42, 130};
    double wf = 0, wb = 0;
    for (int trial = 0; trial < 60; trial++) {
        const int D = Ds[sf_rng_below(&rng, 6)], n = ns[sf_rng_below(&rng, 5)];
        int M = Ms[sf_rng_below(&rng, 6)];
        const sf_favor_role role = (sf_favor_role)(trial % 3);
        /* one feature, for a query (or the key of one row): phi = rho (e^(-|xt|^2/2) + eps); with
         * l2 |xt| is fixed, the exact gradient 0 and both sides rounding noise: use 5 there */
        if (role != SF_FAVOR_KEY_CAUSAL && M == 1) M = 5;
        const int l2 = (trial / 3) % 2, ldx = D + (int)sf_rng_below(&rng, 3), ldp = M + (int)sf_rng_below(&rng, 3);
        float *W = sf_malloc(sizeof(float) * (size_t)M * D);
        sf_favor_draw_projection(W, M, D, &rng);
        float *x = rnd((size_t)(n + 1) * ldx, 0.7f), *g = rnd((size_t)(n + 1) * ldp, 1.0f);
        float *p1 = sf_calloc((size_t)(n + 1) * ldp, 4), *p2 = sf_calloc((size_t)(n + 1) * ldp, 4);
        float *d1 = sf_calloc((size_t)(n + 1) * ldx, 4), *d2 = sf_calloc((size_t)(n + 1) * ldx, 4);
        sf_favor_features_forward(p1, ldp, x, ldx, n, D, W, M, role, l2);
        sf_favor_features_forward_ref(p2, ldp, x, ldx, n, D, W, M, role, l2);
        sf_favor_features_backward(d1, ldx, g, ldp, x, ldx, n, D, W, M, role, l2);
        sf_favor_features_backward_ref(d2, ldx, g, ldp, x, ldx, n, D, W, M, role, l2);
        /* phi >= rho * 1e-6 > 0: relative to each tensor's largest entry. dx is a sum over the M
         * features of terms g_m phi_m (W_m - xt) that can cancel (D = 1, M = 100: 1.5e-5 of the
         * result), so its errors are relative to at least a tenth of the largest row's sum of
         * |terms| (a float sum of M terms is good to ~sqrt(M) ulp of that). */
        double terms = 1e-30;
        for (int r = 0; r < n; r++) {
            double xmax = 0, t = 0;
            for (int a = 0; a < D; a++) xmax = fmax(xmax, fabs(x[(size_t)r * ldx + a]));
            for (int m = 0; m < M; m++) {
                double wmax = 0;
                for (int a = 0; a < D; a++) wmax = fmax(wmax, fabs(W[(size_t)m * D + a]));
                t += fabs(g[(size_t)r * ldp + m]) * p2[(size_t)r * ldp + m] * (wmax + xmax);
            }
            terms = fmax(terms, t);
        }
        const double ef = max_rel_err(p1, p2, (long)(n + 1) * ldp, 1e-30);
        const double eb = max_rel_err(d1, d2, (long)(n + 1) * ldx, 0.1 * terms);
        if (ef > 1e-5 || eb > 1e-5)
            printf("  favor fast vs ref: D%d M%d n%d role %d l2 %d: phi %.1e dx %.1e\n", D, M, n, role, l2, ef, eb);
        wf = ef > wf ? ef : wf;
        wb = eb > wb ? eb : wb;
        free(W), free(x), free(g), free(p1), free(p2), free(d1), free(d2);
    }
    printf("favor features fast vs reference, 60 random shapes: phi %.2e, dx %.2e max rel err\n", wf, wb);
    CHECK(wf < 1e-5 && wb < 1e-5);
}

static void check_projection(void) {
    /* orthogonality within blocks (M = 10, D = 4: blocks of 4, 4, 2 rows) */
    {
        const int M = 10, D = 4;
        float W[40];
        sf_favor_draw_projection(W, M, D, &rng);
        double worst = 0;
        for (int i = 0; i < M; i++)
            for (int j = i + 1; j < M && j / D == i / D; j++) {
                double dij = 0, ni = 0, nj = 0;
                for (int a = 0; a < D; a++) {
                    dij += (double)W[i * D + a] * W[j * D + a];
                    ni += (double)W[i * D + a] * W[i * D + a];
                    nj += (double)W[j * D + a] * W[j * D + a];
                }
                double c = fabs(dij) / sqrt(ni * nj);
                if (c > worst) worst = c;
            }
        printf("favor projection M10 D4: worst |cos| between rows of a block %.1e\n", worst);
        CHECK(worst < 1e-6);
    }
    /* statistics: M = 8192, D = 8: mean |w|^2 = D (chi^2(D), sd of the mean sqrt(2D/M)), entries
     * N(0, 1): mean 0 (sd 1/sqrt(MD)), mean square 1 */
    const int M = 8192, D = 8;
    float *W = sf_malloc(sizeof(float) * M * D);
    sf_favor_draw_projection(W, M, D, &rng);
    double n2 = 0, mean = 0, sq = 0;
    for (int i = 0; i < M * D; i++) mean += W[i], sq += (double)W[i] * W[i];
    n2 = sq / M;
    mean /= (double)M * D;
    sq /= (double)M * D;
    printf("favor projection M%d D%d: mean |w|^2 %.3f (expect %d +- %.3f), entry mean %.4f (+- %.4f), "
           "entry mean square %.4f\n", M, D, n2, D, 4 * sqrt(2.0 * D / M), mean, 4 / sqrt((double)M * D), sq);
    CHECK(fabs(n2 - D) < 4 * sqrt(2.0 * D / M));
    CHECK(fabs(mean) < 4 / sqrt((double)M * D));
    /* FAVOR+ estimates the softmax kernel: phi(q) . phi(k) ~ exp(q.k / sqrt(D)) with the causal
     * key stabiliser (0 here: max |w|^2/2 is far below the headroom) on both sides. */
    float q[8], k[8], pq[8192], pk[8192];
    double worst = 0;
    for (int trial = 0; trial < 5; trial++) {
        sf_rng_fill_normal(&rng, q, D, 0.0f, 0.3f);
        sf_rng_fill_normal(&rng, k, D, 0.0f, 0.3f);
        sf_favor_features_forward(pq, M, q, D, 1, D, W, M, SF_FAVOR_KEY_CAUSAL, 0);
        sf_favor_features_forward(pk, M, k, D, 1, D, W, M, SF_FAVOR_KEY_CAUSAL, 0);
        double est = 0, qk = 0, z2 = 0;
        for (int m = 0; m < M; m++) est += (double)pq[m] * pk[m];
        for (int a = 0; a < D; a++) qk += (double)q[a] * k[a], z2 += ((double)q[a] + k[a]) * (q[a] + k[a]);
        /* Performer Lemma 2 (iid features; orthogonal ones do better): relative variance
         * (exp(|q~ + k~|^2) - 1) / M with x~ = D^-1/4 x. Errors in units of that sd. */
        const double sd = sqrt((exp(z2 / sqrt((double)D)) - 1) / M);
        double e = fabs(est / exp(qk / sqrt((double)D)) - 1) / sd;
        if (e > worst) worst = e;
    }
    printf("favor estimate of exp(q.k/sqrt(D)) with %d features: worst error %.2f sd of the estimator\n", M, worst);
    CHECK(worst < 8); /* the estimator is skewed (a sum of lognormals): 5-sd events are not rare */
    free(W);
}

/* cosFormer: features + kernel vs the official left_product (explicit weights
 * relu(q_i).relu(k_j) cos(pi/2 (i - j)/len), masked, normalised by max(row sum, 1e-6)). */
static void check_cosformer_left_product(int causal) {
    const int T = 9, H = 2, D = 3, len = causal ? 12 : T, d = H * D, M = 2 * D;
    float *q = rnd((size_t)T * d, 1.0f), *k = rnd((size_t)T * d, 1.0f), *v = rnd((size_t)T * d, 1.0f);
    float *fq = sf_malloc((size_t)T * H * M * 4), *fk = sf_malloc((size_t)T * H * M * 4);
    float *o = sf_malloc((size_t)T * d * 4), *o2 = sf_malloc((size_t)T * d * 4);
    sf_cosformer_features_forward(fq, H * M, q, d, T, H, D, 0, len);
    sf_cosformer_features_forward(fk, H * M, k, d, T, H, D, 0, len);
    sf_fa_shape s = {1, T, H, M, D, causal, SF_FA_NORM_CLAMP, 1e-6f};
    float *scratch = sf_malloc(sf_feature_attention_scratch_floats(&s) * 4);
    sf_feature_attention_forward(&s, o, d, fq, fk, H * M, v, d, scratch, NULL);
    for (int h = 0; h < H; h++)
        for (int i = 0; i < T; i++) {
            double w[16], sum = 0;
            for (int j = 0; j < T; j++) {
                double a = 0;
                for (int c = 0; c < D; c++) {
                    double qa = q[i * d + h * D + c], ka = k[j * d + h * D + c];
                    a += (qa > 0 ? qa : 0) * (ka > 0 ? ka : 0);
                }
                w[j] = (causal && j > i) ? 0 : a * cos(M_PI / 2 * (i - j) / len);
                sum += w[j];
            }
            if (sum < 1e-6) sum = 1e-6;
            for (int c = 0; c < D; c++) {
                double acc = 0;
                for (int j = 0; j < T; j++) acc += w[j] / sum * v[j * d + h * D + c];
                o2[i * d + h * D + c] = (float)acc;
            }
        }
    double e = max_rel_err(o, o2, (long)T * d, 1e-6);
    printf("cosformer features + kernel vs left_product (%s, len %d): max rel err %.2e\n",
           causal ? "causal" : "bidir", len, e);
    CHECK(e < 1e-5);
    free(q), free(k), free(v), free(fq), free(fk), free(o), free(o2), free(scratch);
}

int main(void) {
    sf_rng_seed(&rng, test_seed());
    for (int causal = 0; causal < 2; causal++) {
        check_kernel(2, 9, 3, 5, 4, causal, SF_FA_NORM_ADD, 1e-6f, 0, 0);
        check_kernel(3, 10, 2, 7, 3, causal, SF_FA_NORM_ADD, 0.0f, 1, 0);
        check_kernel(3, 8, 2, 6, 5, causal, SF_FA_NORM_CLAMP, 1e-6f, 1, 1);
        check_kernel(1, 3, 1, 2, 2, causal, SF_FA_NORM_CLAMP, 1e-6f, 0, 0);
        check_kernel(2, 12, 1, 16, 4, causal, SF_FA_NORM_ADD, 1e-6f, 1, 1);
        check_kernel_fd(causal, SF_FA_NORM_ADD);
        check_kernel_fd(causal, SF_FA_NORM_CLAMP);
        check_cosformer_left_product(causal);
    }
    check_step(SF_FA_NORM_ADD);
    check_step(SF_FA_NORM_CLAMP);
    check_threads();
    check_feature_maps();
    check_favor_fast_vs_ref();
    check_projection();
    return test_finish();
}
