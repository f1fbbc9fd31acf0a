/* Finite-difference gradient checks for every layer behind the layer contract (linear, norms,
 * each mixer, MetaFormer blocks in both norm placements), fast-vs-reference for the linear layer,
 * and streaming `step` == causal forward for the mixers that can stream. Random inputs; the seed
 * is printed. Loss = sum(y * r) for a fixed random r, so dL/dy = r. */
#include <string.h>

#include "blocks/block.h"
#include "core/error.h"
#include "layers/circular_conv.h"
#include "layers/cross_attention.h"
#include "layers/distil.h"
#include "layers/linear.h"
#include "layers/pararnn_mixer.h"
#include "models/model.h"
#include "test_util.h"

static sf_rng g_rng;
/* The layers' per-call records (sf_ctx.saved); large enough for every subject here. */
static unsigned char g_saved[1 << 16];

static float *rnd(long n, float s) {
    float *x = sf_malloc((size_t)n * sizeof(float));
    sf_rng_fill_normal(&g_rng, x, n, 0.0f, s);
    return x;
}

static double dot(const float *a, const float *b, long n) {
    double s = 0;
    for (long i = 0; i < n; i++) s += (double)a[i] * b[i];
    return s;
}

/* A generic "thing with forward on an arena": function pointers over an opaque object. */
typedef struct {
    void (*fwd)(void *o, sf_ctx *c, const float *x, float *y);
    void (*bwd)(void *o, sf_ctx *c, const float *dy, float *dx);
    void *o;
    sf_params *ps;
    long nx, ny;
    int B, T;
    const char *name;
    int no_dx; /* whole models do not return input gradients */
    int training; /* forward in training mode (BatchNorm batch statistics; dropout, if any, draws
                   * the same masks on every forward: the rng is reseeded each time) */
} subject;

/* Training-mode forwards draw their dropout masks from this stream, reseeded before every forward
 * so the loss is a fixed function of the weights and finite differences apply. */
static sf_rng g_dropout_rng;
static sf_rng *dropout_rng(void) {
    sf_rng_seed(&g_dropout_rng, 20261130);
    return &g_dropout_rng;
}

/* The largest accepted relative error of a finite-difference check (a subject may widen it). */
static double g_tol = 2e-2;
/* Errors are judged relative to |fd| + |analytic| + this fraction of the RMS gradient. */
static double g_floor_frac = 5e-2;

static double loss_at(subject *s, sf_arena *a, const float *x, const float *r, float *y) {
    sf_ctx c = {.arena = a, .rng = dropout_rng(), .training = s->training, .keep = 1, .B = s->B,
                .T = s->T, .saved = g_saved};
    sf_arena_reset_to(a, 0);
    s->fwd(s->o, &c, x, y);
    return dot(y, r, s->ny);
}

/* Relative disagreement between an analytic derivative and central differences of the loss in
 * v[i] (an input or a parameter). float forward passes make the difference quotient noisy, and a
 * ReLU kink between the two samples makes it wrong, so three step sizes are tried and the best
 * agreement counts: a wrong gradient disagrees at all of them. */
/* Set while checking a piecewise-linear subject (ReLU features and activations). */
static int g_kinked;
/* Set while checking a deep piecewise-smooth subject (max-pool, top-u selection). */
static int g_one_sided;

/* Both flags add each step's one-sided quotients to the candidates: a kink or switch inside
 * [-h, h] lies on one side, and the other side's quotient stays right to O(h), where the central
 * one is spoilt at that step (and the smallest step may be all float noise). Nothing is screened
 * out, so a kink at every scale never passes vacuously: a wrong gradient still disagrees with
 * all nine quotients. */
static double fd_err(subject *s, sf_arena *a, float *x, float *v, long i, const float *r,
                     float *y, double an, double floor) {
    const float steps[3] = {1e-2f, 2e-3f, 4e-4f};
    int one_sided = g_kinked || g_one_sided;
    double best = INFINITY, l0 = one_sided ? loss_at(s, a, x, r, y) : 0;
    for (int k = 0; k < 3; k++) {
        float keep = v[i];
        v[i] = keep + steps[k];
        double lp = loss_at(s, a, x, r, y);
        v[i] = keep - steps[k];
        double lm = loss_at(s, a, x, r, y);
        v[i] = keep;
        double q[3] = {(lp - lm) / (2.0 * steps[k]), (lp - l0) / steps[k], (l0 - lm) / steps[k]};
        for (int j = 0; j < (one_sided ? 3 : 1); j++) {
            double err = fabs(q[j] - an) / (fabs(q[j]) + fabs(an) + floor);
            if (err < best) best = err;
        }
    }
    return best;
}

/* Compare analytic gradients with central differences on a sample of inputs and parameters. */
/* Set while a check is a first attempt that may be repeated at a fresh point: its misses are
 * counted (g_misses) and printed, not failed. */
static int g_first_attempt, g_misses;

#define FD_EXPECT(ok, ...)                                                                    \
    do {                                                                                      \
        if (!(ok) && g_first_attempt) {                                                       \
            g_misses++;                                                                       \
            printf("attempt 1 miss: ");                                                       \
            printf(__VA_ARGS__);                                                              \
            printf("\n");                                                                     \
        } else {                                                                              \
            CHECK_MSG(ok, __VA_ARGS__);                                                       \
        }                                                                                     \
    } while (0)

static void grad_check(subject *s, float *x) {
    sf_arena plan, a;
    sf_arena_init_plan(&plan);
    sf_ctx pc = {.arena = &plan, .rng = dropout_rng(), .training = s->training, .keep = 1, .B = s->B,
                 .T = s->T, .saved = g_saved};
    s->fwd(s->o, &pc, NULL, NULL);
    s->bwd(s->o, &pc, NULL, NULL);
    sf_arena_alloc(&a, plan.peak);
    float *y = sf_malloc((size_t)s->ny * sizeof(float)), *r = rnd(s->ny, 1.0f);
    float *dx = sf_malloc((size_t)s->nx * sizeof(float));
    sf_params_zero_grad(s->ps);
    loss_at(s, &a, x, r, y);
    sf_ctx c = {.arena = &a, .training = s->training, .keep = 1, .B = s->B, .T = s->T, .saved = g_saved};
    s->bwd(s->o, &c, r, dx);
    /* Entries whose true gradient is ~0 (e.g. a key bias, which softmax ignores) have only
     * rounding noise in their difference quotient: judge errors relative to the typical gradient
     * size (5% of the RMS gradient), not relative to zero. */
    double ss = 0;
    for (size_t i = 0; i < s->ps->total; i++) ss += (double)s->ps->grad[i] * s->ps->grad[i];
    double floor = g_floor_frac * sqrt(ss / (double)(s->ps->total ? s->ps->total : 1));
    if (floor < 1e-3) floor = 1e-3;
    double worst = 0, tol = g_tol;
    int checked = 0;
    /* inputs */
    for (int k = 0; k < (s->no_dx ? 0 : 24); k++) {
        long i = (long)sf_rng_below(&g_rng, (uint32_t)s->nx);
        double an = dx[i], err = fd_err(s, &a, x, x, i, r, y, an, floor);
        if (err > worst) worst = err;
        checked++;
        FD_EXPECT(err < tol, "%s: dx[%ld] analytic %.6g (rel err %.3g)", s->name, i, an, err);
    }
    /* parameters: a few entries of every tensor */
    for (int p = 0; p < s->ps->n; p++) {
        sf_param *pp = &s->ps->p[p];
        if (pp->buffer) continue; /* running statistics are state, not trained */
        for (int k = 0; k < 6; k++) {
            long i = (long)pp->offset + (long)sf_rng_below(&g_rng, (uint32_t)pp->numel);
            double an = s->ps->grad[i], err = fd_err(s, &a, x, s->ps->data, i, r, y, an, floor);
            if (err > worst) worst = err;
            checked++;
            FD_EXPECT(err < tol, "%s: d%s[%ld] analytic %.6g (rel err %.3g)", s->name, pp->name,
                      i - (long)pp->offset, an, err);
        }
    }
    printf("%-40s %4d gradient entries checked, worst rel err %.2e\n", s->name, checked, worst);
    free(y);
    free(r);
    free(dx);
    sf_arena_free(&a);
}

/* Set around subjects with near-singular normalisations (deltanet: l2norm of a head's SiLU
 * outputs, 2 values wide in these tests, eps 1e-6): at a point where a head's norm is ~1e-3 the
 * loss is so curved that no step size gives a usable quotient (seed 15468506119: residual
 * deltanet, a k_proj entry with analytic -150.4, every quotient 5% off; about 1 run in 40). Then
 * a miss in the first attempt repeats the whole check at a fresh input and fresh entries, which
 * must pass: a wrong gradient misses at every point. */
static int g_retry;

/* grad_check, repeated once at a fresh input *x (replaced, then passed to refill(x, nx) when not
 * NULL: inputs that carry lengths or must avoid a region) when g_retry and attempt 1 missed. */
static void grad_check_retry_refill(subject *s, float **x, void (*refill)(float *x, long n)) {
    if (!g_retry) {
        grad_check(s, *x);
        return;
    }
    g_first_attempt = 1;
    g_misses = 0;
    grad_check(s, *x);
    g_first_attempt = 0;
    if (g_misses) {
        printf("%s: %d misses in attempt 1; attempt 2 at a fresh input:\n", s->name, g_misses);
        free(*x);
        *x = rnd(s->nx, 1.0f);
        if (refill) refill(*x, s->nx);
        grad_check(s, *x);
    }
}
static void grad_check_maybe_retry(subject *s, float **x) { grad_check_retry_refill(s, x, NULL); }

/* ---- subjects ------------------------------------------------------------------------------ */

static void mixer_fwd(void *o, sf_ctx *c, const float *x, float *y) {
    sf_mixer *m = o;
    m->ops->forward(m, c, x, y);
}
static void mixer_bwd(void *o, sf_ctx *c, const float *dy, float *dx) {
    sf_mixer *m = o;
    m->ops->backward(m, c, dy, dx);
}
static void block_fwd(void *o, sf_ctx *c, const float *x, float *y) { sf_block_forward(o, c, x, y); }
static void block_bwd(void *o, sf_ctx *c, const float *dy, float *dx) {
    sf_block_backward(o, c, dy, dx);
}
static void norm_fwd(void *o, sf_ctx *c, const float *x, float *y) {
    sf_norm_forward(o, c, x, y, (long)c->B * c->T);
}
static void norm_bwd(void *o, sf_ctx *c, const float *dy, float *dx) {
    sf_norm_backward(o, c, dy, dx, (long)c->B * c->T);
}

static void perturb_params(sf_params *ps) {
    /* Norm weights of exactly 1 and biases of 0 would hide mistakes; randomise everything. The
     * BatchNorm buffers too, but a running variance must stay positive (a negative one made the
     * eval-mode norm NaN for ~2% of seeds). */
    for (int p = 0; p < ps->n; p++) {
        const sf_param *pp = &ps->p[p];
        float *v = ps->data + pp->offset;
        size_t len = strlen(pp->name);
        int is_var = len >= 11 && strcmp(pp->name + len - 11, "running_var") == 0;
        int is_count = strstr(pp->name, "num_batches_tracked") != NULL;
        for (size_t i = 0; i < pp->numel && !is_count; i++)
            v[i] = is_var ? 0.5f + fabsf(0.5f * sf_rng_normal(&g_rng))
                          : v[i] + 0.3f * sf_rng_normal(&g_rng);
    }
}

/* A block from its JSON entry (normalised as a config's blocks[0]). */
/* The model's positions object blocks are built with (rope, t5 reach softmax attention), or NULL. */
static cJSON *g_positions;

static int make_block(sf_block *b, const char *json, int d, int T) {
    cJSON *raw = cJSON_Parse(json), *nb = NULL;
    int rc = sf_config_normalize_block(raw, 0, &nb);
    if (rc == SF_OK) rc = sf_block_create_pos(b, nb, d, T, "blocks[0]", g_positions);
    cJSON_Delete(raw);
    cJSON_Delete(nb);
    return rc;
}

/* A mixer from its options JSON, e.g. {"kind":"softmax","n_heads":2}, via a residual block entry
 * (which normalises it). The caller destroys the block's mixer only. */
static sf_mixer *make_mixer(const char *mixer_json, int d, int T) {
    char buf[512];
    snprintf(buf, sizeof buf, "{\"kind\":\"residual\",\"mixer\":%s}", mixer_json);
    sf_block b;
    if (make_block(&b, buf, d, T)) return NULL;
    return b.mixer[0];
}

/* ReLU-feature attention (linear/rpe with feature_map relu, cosformer) divides by a sum of
 * products of non-negative features, which is 0 when a query's and its keys' few positive
 * features do not overlap: near such a pole the output is a 0/0 ratio and no difference quotient
 * is meaningful (seed 5544664781: a causal first query, dx 34.5, 15% off). Lifting the query and
 * key biases by 1 makes most pre-activations positive, so normalisers stay away from 0 while some
 * features still cross their kinks. */
static int relu_features(const char *json) {
    return strstr(json, "\"feature_map\":\"relu\"") != NULL || strstr(json, "\"cosformer\"") != NULL;
}
static void lift_qk_bias(sf_params *ps) {
    for (int p = 0; p < ps->n; p++) {
        const sf_param *pp = &ps->p[p];
        size_t len = strlen(pp->name);
        if (len < 8 || strcmp(pp->name + len - 8, "qkv.bias") != 0) continue;
        for (size_t i = 0; i < pp->numel / 3 * 2; i++) ps->data[pp->offset + i] += 1.0f;
    }
}

static void check_mixer_json(const char *name, const char *json);
static void check_mixer_mode(const char *name, const char *json, int training);

static void check_mixer(const char *kind, int causal) {
    char json[256];
    if (!strncmp(kind, "glu-", 4))
        snprintf(json, sizeof json, "{\"kind\":\"glu\",\"d_ff\":10,\"activation\":\"%s\"}", kind + 4);
    else if (!strncmp(kind, "mlp", 3)) /* mlp, mlp-relu: fused (auto); -never: layer by layer */
        snprintf(json, sizeof json,
                 "{\"kind\":\"mlp\",\"d_ff\":12,\"activation\":\"%s\",\"fuse\":\"%s\"}",
                 strstr(kind, "relu") ? "relu" : "gelu", strstr(kind, "never") ? "never" : "auto");
    else if (!strcmp(kind, "rpe-relu"))
        snprintf(json, sizeof json, "{\"kind\":\"rpe\",\"n_heads\":2,\"causal\":%s,\"feature_map\":\"relu\"}",
                 causal ? "true" : "false");
    else if (!strcmp(kind, "rpe-favor")) /* FAVOR+ on l2-normalised q, k (the paper's) */
        snprintf(json, sizeof json,
                 "{\"kind\":\"rpe\",\"n_heads\":2,\"causal\":%s,\"feature_map\":\"favor\","
                 "\"n_features\":6,\"algorithm\":\"fft\"}", causal ? "true" : "false");
    else if (!strcmp(kind, "rpe-fft"))
        snprintf(json, sizeof json, "{\"kind\":\"rpe\",\"n_heads\":2,\"causal\":%s,\"algorithm\":\"fft\"}",
                 causal ? "true" : "false");
    else if (!strncmp(kind, "probsparse", 10)) /* factor 1: 2 active queries of 7 */
        snprintf(json, sizeof json,
                 "{\"kind\":\"probsparse\",\"n_heads\":2,\"factor\":1,\"causal\":%s,\"mix\":%s}",
                 causal ? "true" : "false", strstr(kind, "-mix") ? "true" : "false");
    else if (!strcmp(kind, "identity"))
        snprintf(json, sizeof json, "{\"kind\":\"identity\"}");
    else if (!strncmp(kind, "linear-", 7)) /* linear-relu, linear-favor: the feature_map option */
        /* relu in one head of width 8: at width 4 a query whose few positive features barely
         * overlap the keys' made the normaliser ~0 and the output a near-0/0 ratio (seed
         * 5694609640: gradient -42, finite differences 15% off), as for cosformer */
        snprintf(json, sizeof json,
                 "{\"kind\":\"linear\",\"feature_map\":\"%s\",\"n_features\":%d,\"n_heads\":%d,"
                 "\"causal\":%s}", kind + 7, strcmp(kind + 7, "favor") ? 64 : 6,
                 strcmp(kind + 7, "relu") ? 2 : 1, causal ? "true" : "false");
    else
        snprintf(json, sizeof json, "{\"kind\":\"%s\",\"n_heads\":2,\"causal\":%s}", kind,
                 causal ? "true" : "false");
    char name[64];
    snprintf(name, sizeof name, "mixer %s%s", kind, causal ? " causal" : "");
    check_mixer_json(name, json);
}

/* A mixer given by its options JSON, on [2, 7, 8], in eval mode. */
static void check_mixer_json(const char *name, const char *json) { check_mixer_mode(name, json, 0); }

/* The same in training mode (dropout inside the mixer active, its masks fixed). */
static void check_mixer_mode(const char *name, const char *json, int training) {
    int B = 2, T = 7, d = 8;
    sf_mixer *m = make_mixer(json, d, T);
    CHECK_MSG(m != NULL, "%s: %s", json, sf_error_message());
    if (!m) return;
    sf_params ps;
    sf_params_init(&ps);
    m->ops->declare(m, &ps, "m");
    sf_params_alloc(&ps);
    m->ops->init(m, &g_rng);
    perturb_params(&ps);
    if (relu_features(json)) lift_qk_bias(&ps);
    g_one_sided = strstr(json, "\"probsparse\"") != NULL; /* top-u selection switches */
    /* ReLU activation or features: a kink can fall inside the step (seed 21340533566: an fc1
     * weight whose central quotients were 13% off while a one-sided one agrees) */
    g_kinked = strstr(json, "relu") != NULL || relu_features(json);
    subject s = {mixer_fwd, mixer_bwd, m, &ps, (long)B * T * d, (long)B * T * d, B, T, name, 0, training};
    float *x = rnd(s.nx, 1.0f);
    grad_check_maybe_retry(&s, &x);
    g_one_sided = 0;
    g_kinked = 0;
    free(x);
    sf_mixer_destroy(m);
    sf_params_free(&ps);
}

static void check_norm(sf_norm_kind k, int training) {
    int B = 3, T = 5, d = 6;
    sf_norm n;
    sf_params ps;
    sf_params_init(&ps);
    sf_norm_spec spec = {k, 1e-5f, 0.1f};
    sf_norm_declare(&n, &ps, "n", &spec, d);
    sf_params_alloc(&ps);
    sf_norm_init(&n);
    perturb_params(&ps);
    char name[64];
    snprintf(name, sizeof name, "%s%s", sf_norm_kind_name(k),
             k == SF_NORM_BATCHNORM ? (training ? " (batch stats)" : " (running stats)") : "");
    subject s = {norm_fwd, norm_bwd, &n, &ps, (long)B * T * d, (long)B * T * d, B, T, name, 0,
                 training};
    float *x = rnd(s.nx, 1.0f);
    grad_check(&s, x);
    free(x);
    sf_params_free(&ps);
}

static void check_block_json(const char *name, const char *json, int causal, int training) {
    int B = 2, T = 6, d = 8;
    sf_block b;
    int ok = make_block(&b, json, d, T) == SF_OK;
    CHECK_MSG(ok, "%s: %s", json, sf_error_message());
    if (!ok) return;
    sf_params ps;
    sf_params_init(&ps);
    sf_block_declare(&b, &ps, "blocks.0");
    sf_params_alloc(&ps);
    sf_block_init(&b, &g_rng);
    perturb_params(&ps);
    if (relu_features(json)) lift_qk_bias(&ps);
    /* BatchNorm blocks are checked in training mode (batch statistics), the others in eval mode. */
    subject s = {block_fwd, block_bwd, &b, &ps, (long)B * T * d, (long)B * T * d, B, T, name, 0,
                 training};
    float *x = rnd(s.nx, 1.0f);
    grad_check_maybe_retry(&s, &x);

    /* Streaming: feeding tokens one at a time through step() equals the causal forward. */
    if (causal) {
        CHECK(sf_block_can_step(&b));
        sf_arena plan, a;
        sf_arena_init_plan(&plan);
        sf_ctx pc = {.arena = &plan, .B = B, .T = T, .saved = g_saved};
        sf_block_forward(&b, &pc, NULL, NULL);
        sf_arena_alloc(&a, plan.peak);
        sf_ctx c = {.arena = &a, .B = B, .T = T, .saved = g_saved};
        float *y = sf_malloc((size_t)s.ny * sizeof(float)), *yt = sf_malloc((size_t)d * sizeof(float));
        sf_block_forward(&b, &c, x, y);
        size_t ns = sf_block_state_floats(&b);
        float *state = sf_calloc(ns ? ns : 1, sizeof(float));
        double worst = 0;
        for (int bb = 0; bb < B; bb++) {
            memset(state, 0, (ns ? ns : 1) * sizeof(float));
            for (int t = 0; t < T; t++) {
                sf_block_step(&b, x + ((size_t)bb * T + t) * d, state, yt, t);
                double e = max_rel_err(yt, y + ((size_t)bb * T + t) * d, d, 1e-3);
                if (e > worst) worst = e;
            }
        }
        printf("%-40s step vs forward: max rel err %.2e (state %zu floats)\n", name, worst, ns);
        CHECK_MSG(worst < 1e-4, "%s: streaming step differs from forward (%.3g)", name, worst);
        free(state);
        free(y);
        free(yt);
        sf_arena_free(&a);
    }
    free(x);
    sf_block_destroy(&b);
    sf_params_free(&ps);
}

static void check_block(const char *mixer, int pre, sf_norm_kind nk, int causal) {
    char json[512], name[96];
    snprintf(json, sizeof json,
             "{\"kind\":\"metaformer\",\"placement\":\"%s\",\"norm\":{\"kind\":\"%s\"},"
             "\"token_mixer\":{\"kind\":\"%s\",\"n_heads\":2,\"causal\":%s},"
             "\"channel_mixer\":{\"kind\":\"mlp\",\"d_ff\":16}}",
             pre ? "pre" : "post", sf_norm_kind_name(nk), mixer, causal ? "true" : "false");
    snprintf(name, sizeof name, "block %s %s-norm %s%s", mixer, pre ? "pre" : "post",
             sf_norm_kind_name(nk), causal ? " causal" : "");
    check_block_json(name, json, causal, nk == SF_NORM_BATCHNORM);
}

/* The single-mixer and parallel block kinds, with every mixer kind in their slots. */
static void check_other_blocks(void) {
    static const struct {
        const char *name, *json;
        int causal;
    } cases[] = {
        {"residual pre linear causal",
         "{\"kind\":\"residual\",\"norm\":{\"kind\":\"rmsnorm\"},\"mixer\":{\"kind\":\"linear\","
         "\"n_heads\":2,\"causal\":true}}", 1},
        {"residual post softmax",
         "{\"kind\":\"residual\",\"placement\":\"post\",\"mixer\":{\"kind\":\"softmax\",\"n_heads\":4}}",
         0},
        {"residual pre mlp relu",
         "{\"kind\":\"residual\",\"mixer\":{\"kind\":\"mlp\",\"d_ff\":10,\"activation\":\"relu\"}}", 1},
        {"residual post identity",
         "{\"kind\":\"residual\",\"placement\":\"post\",\"mixer\":{\"kind\":\"identity\"}}", 1},
        {"parallel pre softmax causal",
         "{\"kind\":\"parallel\",\"token_mixer\":{\"kind\":\"softmax\",\"n_heads\":2,\"causal\":true},"
         "\"channel_mixer\":{\"kind\":\"mlp\",\"d_ff\":12}}", 1},
        {"parallel post linear",
         "{\"kind\":\"parallel\",\"placement\":\"post\",\"norm\":{\"kind\":\"rmsnorm\"},"
         "\"token_mixer\":{\"kind\":\"linear\",\"n_heads\":2},\"channel_mixer\":{\"kind\":\"identity\"}}", 0},
        {"parallel post softmax causal",
         "{\"kind\":\"parallel\",\"placement\":\"post\",\"token_mixer\":{\"kind\":\"softmax\","
         "\"n_heads\":2,\"causal\":true},\"channel_mixer\":{\"kind\":\"mlp\",\"d_ff\":8}}", 1},
        {"metaformer pre softmax causal+swiglu",
         "{\"kind\":\"metaformer\",\"token_mixer\":{\"kind\":\"softmax\",\"n_heads\":2,\"causal\":true},"
         "\"channel_mixer\":{\"kind\":\"glu\",\"d_ff\":12}}", 1},
        {"metaformer pre identity+mlp",
         "{\"kind\":\"metaformer\",\"token_mixer\":{\"kind\":\"identity\"},\"channel_mixer\":{\"kind\":\"mlp\"}}", 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        g_kinked = strstr(cases[i].json, "relu") != NULL;
        check_block_json(cases[i].name, cases[i].json, cases[i].causal, 0);
        g_kinked = 0;
    }
}


/* The feature-map mixers (linear relu/favor, cosformer) in blocks: finite differences, and
 * step == causal forward for the causal ones. */
static void check_feature_mixer_blocks(void) {
    static const struct {
        const char *name, *json;
        int causal;
    } cases[] = {
        {"metaformer pre linear relu causal",
         "{\"kind\":\"metaformer\",\"token_mixer\":{\"kind\":\"linear\",\"feature_map\":\"relu\","
         "\"n_heads\":2,\"causal\":true},\"channel_mixer\":{\"kind\":\"glu\",\"d_ff\":8}}", 1},
        {"metaformer post linear favor",
         "{\"kind\":\"metaformer\",\"placement\":\"post\",\"token_mixer\":{\"kind\":\"linear\","
         "\"feature_map\":\"favor\",\"n_features\":10,\"n_heads\":2},\"channel_mixer\":{\"kind\":\"mlp\"}}", 0},
        {"residual pre linear favor causal",
         "{\"kind\":\"residual\",\"norm\":{\"kind\":\"rmsnorm\"},\"mixer\":{\"kind\":\"linear\","
         "\"feature_map\":\"favor\",\"n_features\":7,\"n_heads\":4,\"causal\":true}}", 1},
        {"metaformer pre cosformer causal",
         "{\"kind\":\"metaformer\",\"token_mixer\":{\"kind\":\"cosformer\",\"n_heads\":1,\"causal\":true},"
         "\"channel_mixer\":{\"kind\":\"mlp\",\"d_ff\":12}}", 1},
        {"parallel post cosformer",
         "{\"kind\":\"parallel\",\"placement\":\"post\",\"token_mixer\":{\"kind\":\"cosformer\","
         "\"n_heads\":1},\"channel_mixer\":{\"kind\":\"identity\"}}", 0},
    };
    /* cosformer in one head of width 8 (d 8): with heads of width 2-4, ReLU normalisers summing
     * few products were tiny for some seeds and the finite differences off by 2-3% */
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        g_kinked = strstr(cases[i].json, "favor") == NULL; /* relu inside relu and cosformer */
        /* ReLU features: a normaliser summing few products turns kinks just outside the detected
         * ones into 2-3% finite-difference noise (2 of 20 runs at 2e-2, seeds 5007789103 and
         * 2177682784); exactness is shown by the kernels' reference tests and parity (1e-6) */
        g_tol = g_kinked ? 4e-2 : 2e-2;
        check_block_json(cases[i].name, cases[i].json, cases[i].causal, 0);
        g_kinked = 0;
        g_tol = 2e-2;
    }
}

/* FAVOR+ redraw: a new projection before every (N+1)-th training forward, never in eval mode;
 * deterministic under the init seed; a model whose weights and buffers are copied (a resume)
 * redraws exactly as the original. */
static void check_favor_redraw(void) {
    enum { B = 2, T = 5, d = 8, N = 2 };
    const char *json = "{\"kind\":\"linear\",\"feature_map\":\"favor\",\"n_features\":12,"
                       "\"n_heads\":2,\"redraw\":2}";
    sf_mixer *m[3];
    sf_params ps[3];
    for (int k = 0; k < 3; k++) {
        m[k] = make_mixer(json, d, T);
        CHECK_MSG(m[k] != NULL, "%s", sf_error_message());
        if (!m[k]) return;
        sf_params_init(&ps[k]);
        m[k]->ops->declare(m[k], &ps[k], "m");
        sf_params_alloc(&ps[k]);
        sf_rng r;
        sf_rng_seed(&r, 42);
        m[k]->ops->init(m[k], &r);
    }
    int ip = sf_params_find(&ps[0], "m.projection"), is = sf_params_find(&ps[0], "m.redraw_state");
    CHECK(ip >= 0 && is >= 0 && ps[0].p[ip].buffer && ps[0].p[is].buffer);
    if (ip < 0 || is < 0) return;
    const size_t nw = ps[0].p[ip].numel;
    float *W0 = sf_malloc(nw * sizeof(float));
    memcpy(W0, ps[0].data + ps[0].p[ip].offset, nw * sizeof(float));
    CHECK(memcmp(W0, ps[1].data + ps[1].p[ip].offset, nw * sizeof(float)) == 0);
    sf_arena plan, a;
    sf_arena_init_plan(&plan);
    sf_ctx pc = {.arena = &plan, .training = 1, .keep = 1, .B = B, .T = T, .saved = g_saved};
    m[0]->ops->forward(m[0], &pc, NULL, NULL);
    sf_arena_alloc(&a, plan.peak);
    float *x = rnd(B * T * d, 1.0f), *y = sf_malloc(B * T * d * sizeof(float));
    int changed_at[8] = {0}, ok_eval = 1, ok_resume = 1;
    for (int call = 1; call <= 7; call++) {
        float *W = ps[0].data + ps[0].p[ip].offset;
        float before = W[0];
        if (call == 4) { /* resume: model 2 takes model 0's weights and buffers, then both go on */
            memcpy(ps[2].data, ps[0].data, ps[0].total * sizeof(float));
        }
        for (int k = 0; k < 3; k++) {
            if (k == 2 && call < 4) continue;
            sf_arena_reset_to(&a, 0);
            sf_ctx c = {.arena = &a, .training = 1, .keep = 1, .B = B, .T = T, .saved = g_saved};
            m[k]->ops->forward(m[k], &c, x, y);
        }
        changed_at[call] = W[0] != before;
        /* an eval-mode forward between training calls changes nothing */
        sf_arena_reset_to(&a, 0);
        sf_ctx ce = {.arena = &a, .training = 0, .B = B, .T = T, .saved = g_saved};
        float keep = W[0], cnt = ps[0].data[ps[0].p[is].offset + 2];
        m[0]->ops->forward(m[0], &ce, x, y);
        ok_eval &= W[0] == keep && ps[0].data[ps[0].p[is].offset + 2] == cnt;
        if (call >= 4)
            ok_resume &= memcmp(ps[0].data, ps[2].data, ps[0].total * sizeof(float)) == 0;
    }
    const float *st = ps[0].data + ps[0].p[is].offset;
    printf("favor redraw every %d: projection changed at training calls %d%d%d%d%d%d%d (1..7), draws %g; "
           "eval-mode calls %s; resumed copy %s\n", N, changed_at[1], changed_at[2], changed_at[3],
           changed_at[4], changed_at[5], changed_at[6], changed_at[7], st[3],
           ok_eval ? "change nothing" : "CHANGED STATE", ok_resume ? "identical" : "DIFFERS");
    CHECK(!changed_at[1] && !changed_at[2] && changed_at[3] && !changed_at[4] && changed_at[5] &&
          !changed_at[6] && changed_at[7] && st[3] == 3.0f);
    CHECK(ok_eval && ok_resume);
    /* same seed, same calls: the same draws */
    CHECK(memcmp(ps[0].data, ps[1].data, ps[0].total * sizeof(float)) == 0);
    free(W0), free(x), free(y);
    sf_arena_free(&a);
    for (int k = 0; k < 3; k++) {
        sf_mixer_destroy(m[k]);
        sf_params_free(&ps[k]);
    }
}

/* ---- padding: a padded batch with per-sequence lengths equals each sequence run alone -------- */

/* Forward + backward of a block on [B, T, d] with lens; grads (zeroed first) copied to g. */
static void run_block(sf_block *b, sf_params *ps, int B, int T, const int *lens, int training,
                      const float *x, const float *r, float *y, float *dx, float *g) {
    sf_arena plan, a;
    sf_arena_init_plan(&plan);
    sf_ctx pc = {.arena = &plan, .training = training, .keep = 1, .B = B, .T = T, .lens = lens, .saved = g_saved};
    sf_block_forward(b, &pc, NULL, NULL);
    sf_block_backward(b, &pc, NULL, NULL);
    sf_arena_alloc(&a, plan.peak);
    sf_ctx c = {.arena = &a, .training = training, .keep = 1, .B = B, .T = T, .lens = lens, .saved = g_saved};
    sf_params_zero_grad(ps);
    sf_block_forward(b, &c, x, y);
    sf_block_backward(b, &c, r, dx);
    memcpy(g, ps->grad, ps->total * sizeof(float));
    sf_arena_free(&a);
}

/* packed: compare with all valid tokens in one sequence (only for token-wise mixers, where
 * BatchNorm's statistics over the valid tokens are the point); else each sequence alone. */
static void check_padding(const char *name, const char *json, int training, int packed) {
    enum { B = 3, T = 7, d = 8 };
    const int lens[B] = {7, 4, 2};
    sf_block b;
    int ok = make_block(&b, json, d, T) == SF_OK;
    CHECK_MSG(ok, "%s: %s", json, sf_error_message());
    if (!ok) return;
    sf_params ps;
    sf_params_init(&ps);
    sf_block_declare(&b, &ps, "blocks.0");
    sf_params_alloc(&ps);
    sf_block_init(&b, &g_rng);
    perturb_params(&ps);
    long n = (long)B * T * d;
    float *x = rnd(n, 1.0f), *r = rnd(n, 1.0f), *y = sf_calloc((size_t)n, 4), *dx = sf_calloc((size_t)n, 4);
    for (int bb = 0; bb < B; bb++) /* padding: garbage in x, no loss on it */
        for (int t = lens[bb]; t < T; t++)
            for (int i = 0; i < d; i++) {
                x[((size_t)bb * T + t) * d + i] = 1e3f * (float)(t + 1);
                r[((size_t)bb * T + t) * d + i] = 0.0f;
            }
    float *g = sf_malloc(ps.total * sizeof(float)), *g1 = sf_malloc(ps.total * sizeof(float));
    double *gsum = sf_calloc(ps.total, sizeof(double));
    run_block(&b, &ps, B, T, lens, training, x, r, y, dx, g);
    double ey = 0, edx = 0, pad_dx = 0;
    float *y1 = sf_malloc((size_t)n * 4), *dx1 = sf_malloc((size_t)n * 4);
    float *xs = sf_malloc((size_t)n * 4), *rs = sf_malloc((size_t)n * 4);
    int groups = packed ? 1 : B;
    for (int k = 0; k < groups; k++) {
        /* gather the valid tokens of sequence k (or of all sequences when packed) */
        int len = 0;
        for (int bb = packed ? 0 : k; bb <= (packed ? B - 1 : k); bb++)
            for (int t = 0; t < lens[bb]; t++, len++) {
                memcpy(xs + (size_t)len * d, x + ((size_t)bb * T + t) * d, d * sizeof(float));
                memcpy(rs + (size_t)len * d, r + ((size_t)bb * T + t) * d, d * sizeof(float));
            }
        run_block(&b, &ps, 1, len, NULL, training, xs, rs, y1, dx1, g1);
        for (size_t i = 0; i < ps.total; i++) gsum[i] += g1[i];
        len = 0;
        for (int bb = packed ? 0 : k; bb <= (packed ? B - 1 : k); bb++)
            for (int t = 0; t < lens[bb]; t++, len++) {
                double e1 = max_rel_err(y + ((size_t)bb * T + t) * d, y1 + (size_t)len * d, d, 1.0);
                double e2 = max_rel_err(dx + ((size_t)bb * T + t) * d, dx1 + (size_t)len * d, d, 1.0);
                if (e1 > ey) ey = e1;
                if (e2 > edx) edx = e2;
            }
    }
    for (int bb = 0; bb < B; bb++)
        for (int t = lens[bb]; t < T; t++)
            for (int i = 0; i < d; i++) {
                double v = fabs(dx[((size_t)bb * T + t) * d + i]);
                if (v > pad_dx) pad_dx = v;
            }
    double eg = 0, gmax = 1e-3;
    for (size_t i = 0; i < ps.total; i++) gmax = fabs(gsum[i]) > gmax ? fabs(gsum[i]) : gmax;
    for (size_t i = 0; i < ps.total; i++) {
        double e = fabs(g[i] - gsum[i]) / gmax;
        if (e > eg) eg = e;
    }
    printf("%-40s padded vs %s: y %.2e dx %.2e grads %.2e, |dx| on padding %.1e\n", name,
           packed ? "packed" : "alone", ey, edx, eg, pad_dx);
    CHECK_MSG(ey < 1e-5 && edx < 1e-5 && eg < 1e-5 && pad_dx == 0, "%s: padding leaks", name);
    free(x), free(r), free(y), free(dx), free(g), free(g1), free(gsum), free(y1), free(dx1);
    free(xs), free(rs);
    sf_block_destroy(&b);
    sf_params_free(&ps);
}

static void check_paddings(void) {
    check_padding("pad: metaformer softmax",
                  "{\"kind\":\"metaformer\",\"token_mixer\":{\"kind\":\"softmax\",\"n_heads\":2},"
                  "\"channel_mixer\":{\"kind\":\"mlp\",\"d_ff\":12}}", 0, 0);
    check_padding("pad: metaformer softmax causal post",
                  "{\"kind\":\"metaformer\",\"placement\":\"post\",\"token_mixer\":{\"kind\":\"softmax\","
                  "\"n_heads\":2,\"causal\":true},\"channel_mixer\":{\"kind\":\"mlp\",\"d_ff\":12}}", 0, 0);
    check_padding("pad: residual linear",
                  "{\"kind\":\"residual\",\"norm\":{\"kind\":\"rmsnorm\"},\"mixer\":{\"kind\":\"linear\",\"n_heads\":2}}",
                  0, 0);
    check_padding("pad: parallel linear causal",
                  "{\"kind\":\"parallel\",\"token_mixer\":{\"kind\":\"linear\",\"n_heads\":4,\"causal\":true},"
                  "\"channel_mixer\":{\"kind\":\"mlp\",\"d_ff\":12}}", 0, 0);
    check_padding("pad: metaformer rpe",
                  "{\"kind\":\"metaformer\",\"token_mixer\":{\"kind\":\"rpe\",\"n_heads\":2},"
                  "\"channel_mixer\":{\"kind\":\"mlp\",\"d_ff\":12}}", 0, 0);
    check_padding("pad: residual rpe causal relu",
                  "{\"kind\":\"residual\",\"norm\":{\"kind\":\"rmsnorm\"},\"mixer\":{\"kind\":\"rpe\","
                  "\"n_heads\":4,\"causal\":true,\"feature_map\":\"relu\",\"algorithm\":\"fft\"}}", 0, 0);
    check_padding("pad: metaformer rpe favor",
                  "{\"kind\":\"metaformer\",\"token_mixer\":{\"kind\":\"rpe\",\"n_heads\":2,"
                  "\"feature_map\":\"favor\",\"n_features\":5},\"channel_mixer\":{\"kind\":\"mlp\",\"d_ff\":12}}",
                  0, 0);
    check_padding("pad: residual rpe favor causal",
                  "{\"kind\":\"residual\",\"mixer\":{\"kind\":\"rpe\",\"n_heads\":2,\"causal\":true,"
                  "\"feature_map\":\"favor\",\"algorithm\":\"fft\"}}", 0, 0);
    check_padding("pad: residual linear relu",
                  "{\"kind\":\"residual\",\"mixer\":{\"kind\":\"linear\",\"feature_map\":\"relu\",\"n_heads\":2}}",
                  0, 0);
    check_padding("pad: metaformer linear favor",
                  "{\"kind\":\"metaformer\",\"token_mixer\":{\"kind\":\"linear\",\"feature_map\":\"favor\","
                  "\"n_features\":9,\"n_heads\":2},\"channel_mixer\":{\"kind\":\"mlp\",\"d_ff\":12}}", 0, 0);
    check_padding("pad: residual linear favor causal",
                  "{\"kind\":\"residual\",\"mixer\":{\"kind\":\"linear\",\"feature_map\":\"favor\","
                  "\"n_features\":9,\"n_heads\":2,\"causal\":true}}", 0, 0);
    check_padding("pad: metaformer cosformer",
                  "{\"kind\":\"metaformer\",\"token_mixer\":{\"kind\":\"cosformer\",\"n_heads\":2},"
                  "\"channel_mixer\":{\"kind\":\"mlp\",\"d_ff\":12}}", 0, 0);
    check_padding("pad: parallel cosformer causal",
                  "{\"kind\":\"parallel\",\"token_mixer\":{\"kind\":\"cosformer\",\"n_heads\":4,\"causal\":true},"
                  "\"channel_mixer\":{\"kind\":\"mlp\",\"d_ff\":12}}", 0, 0);
    check_padding("pad: residual batchnorm mlp (training)",
                  "{\"kind\":\"residual\",\"norm\":{\"kind\":\"batchnorm\"},\"mixer\":{\"kind\":\"mlp\",\"d_ff\":12}}",
                  1, 1);
    check_padding("pad: metaformer post batchnorm (eval)",
                  "{\"kind\":\"metaformer\",\"placement\":\"post\",\"norm\":{\"kind\":\"batchnorm\"},"
                  "\"token_mixer\":{\"kind\":\"softmax\",\"n_heads\":2},\"channel_mixer\":{\"kind\":\"mlp\"}}", 0, 0);
}

static void model_fwd(void *o, sf_ctx *c, const float *x, float *y) {
    sf_model *m = o;
    m->def->ops->forward(m, c, x, y);
}
static void model_bwd(void *o, sf_ctx *c, const float *dy, float *dx) {
    sf_model *m = o;
    (void)dx;
    m->def->ops->backward(m, c, dy);
}

/* Whole models: RevIN, patching, positions, the blocks and the head (PatchTST), the
 * decomposition and both linears (DLinear), or use_norm, the inverted embedding, the blocks over
 * variates and the per-token projector (iTransformer), checked end to end against finite
 * differences. */
static void check_model(const char *model, const char *mixer, const char *place, const char *pos) {
    sf_flat_config c;
    sf_flat_config_defaults(&c, model);
    c.seq_len = 24;
    c.pred_len = 6;
    c.n_channels = 2;
    c.d_model = 8;
    c.n_heads = 2;
    c.e_layers = 2;
    c.d_ff = 12;
    c.patch_len = 6;
    c.stride = 3;
    c.dropout = 0;
    c.kernel_size = 5;
    snprintf(c.mixer, sizeof c.mixer, "%s", mixer);
    snprintf(c.norm_place, sizeof c.norm_place, "%s", place);
    snprintf(c.pos, sizeof c.pos, "%s", pos);
    sf_model m;
    cJSON *cfg = sf_flat_config_to_json(&c);
    int ok = sf_model_create(&m, cfg) == SF_OK;
    cJSON_Delete(cfg);
    CHECK_MSG(ok, "%s", sf_error_message());
    if (!ok) return;
    sf_model_init_weights(&m, 3);
    perturb_params(&m.params);
    char name[96];
    snprintf(name, sizeof name, "model %s %s %s-norm %s", model, mixer, place, pos);
    int B = 3;
    subject s = {model_fwd, model_bwd, &m, &m.params, (long)B * c.seq_len * c.n_channels,
                 (long)B * c.pred_len * c.n_channels, B, 0, name, 1, 0};
    float *x = rnd(s.nx, 2.0f);
    for (long i = 0; i < s.nx; i++) x[i] += (float)(i % c.n_channels) * 3.0f; /* channel offsets */
    grad_check(&s, x);
    free(x);
    sf_model_destroy(&m);
}

/* ---- Informer's layers and model ----------------------------------------------------------- */

static void conv_fwd(void *o, sf_ctx *c, const float *x, float *y) { sf_circular_conv_forward(o, c, x, y); }
static void conv_bwd(void *o, sf_ctx *c, const float *dy, float *dx) { sf_circular_conv_backward(o, c, dy, dx); }
static void distil_fwd(void *o, sf_ctx *c, const float *x, float *y) { sf_distil_forward(o, c, x, y); }
static void distil_bwd(void *o, sf_ctx *c, const float *dy, float *dx) { sf_distil_backward(o, c, dy, dx); }

/* The circular conv embedding (both init flavours exist; perturbed anyway) with and without bias. */
static void check_circular_conv(int bias) {
    int B = 2, T = 5, ci = 3, co = 4;
    sf_circular_conv cv;
    sf_params ps;
    sf_params_init(&ps);
    sf_circular_conv_declare(&cv, &ps, "conv", ci, co, bias);
    sf_params_alloc(&ps);
    sf_circular_conv_init_kaiming(&cv, &g_rng);
    perturb_params(&ps);
    subject s = {conv_fwd, conv_bwd, &cv, &ps, (long)B * T * ci, (long)B * T * co, B, T,
                 bias ? "circular conv (bias)" : "circular conv (no bias)", 0, 0};
    float *x = rnd(s.nx, 1.0f);
    grad_check(&s, x);
    free(x);
    sf_params_free(&ps);
}

/* The distilling layer: conv, BatchNorm (batch or running statistics), ELU, max-pool. */
static void check_distil(int T, int training) {
    int B = 2, d = 4;
    sf_distil l;
    sf_params ps;
    sf_params_init(&ps);
    sf_distil_declare(&l, &ps, "distil", d);
    sf_params_alloc(&ps);
    sf_distil_init(&l, &g_rng);
    perturb_params(&ps);
    char name[64];
    snprintf(name, sizeof name, "distil T %d -> %d%s", T, sf_distil_out_len(T),
             training ? " (batch stats)" : "");
    subject s = {distil_fwd, distil_bwd, &l, &ps, (long)B * T * d,
                 (long)B * sf_distil_out_len(T) * d, B, T, name, 0, training};
    g_kinked = 1; /* max-pool switches */
    float *x = rnd(s.nx, 1.0f);
    grad_check(&s, x);
    g_kinked = 0;
    free(x);
    sf_params_free(&ps);
}

/* Cross-attention as one subject: x = [queries (B*Tq*d) | memory (B*Tk*d)]. */
typedef struct {
    sf_cross_attention ca;
    int Tq, Tk, d;
} cross_subject;
static void cross_fwd(void *o, sf_ctx *c, const float *x, float *y) {
    cross_subject *s = o;
    sf_cross_attention_forward(&s->ca, c, x, s->Tq, x ? x + (size_t)c->B * s->Tq * s->d : NULL,
                               s->Tk, y);
}
static void cross_bwd(void *o, sf_ctx *c, const float *dy, float *dx) {
    cross_subject *s = o;
    float *dmem = dx ? dx + (size_t)c->B * s->Tq * s->d : NULL;
    if (dmem) memset(dmem, 0, (size_t)c->B * s->Tk * s->d * sizeof(float));
    sf_cross_attention_backward(&s->ca, c, dy, dx, dmem);
}

static void check_cross_attention(void) {
    int B = 2;
    cross_subject cs = {.Tq = 6, .Tk = 4, .d = 8};
    sf_params ps;
    sf_params_init(&ps);
    CHECK(sf_cross_attention_declare(&cs.ca, &ps, "cross", cs.d, 2, 0.0f) == SF_OK);
    sf_params_alloc(&ps);
    sf_cross_attention_init(&cs.ca, &g_rng);
    perturb_params(&ps);
    subject s = {cross_fwd, cross_bwd, &cs, &ps, (long)B * (cs.Tq + cs.Tk) * cs.d,
                 (long)B * cs.Tq * cs.d, B, cs.Tq, "cross attention", 0, 0};
    float *x = rnd(s.nx, 1.0f);
    grad_check(&s, x);
    free(x);
    sf_params_free(&ps);
}

/* Whole Informer models, end to end (embeddings with time features, encoder with distilling,
 * decoder with mixed ProbSparse self-attention and cross-attention, projection), in training
 * mode (BatchNorm batch statistics; dropout 0). */
static void check_informer(const char *attn, int factor, int distil, int mix, int e_layers,
                           const char *embed) {
    char json[512];
    snprintf(json, sizeof json,
             "{\"model\":\"informer\",\"seq_len\":16,\"label_len\":8,\"pred_len\":4,"
             "\"n_channels\":2,\"d_model\":8,\"n_heads\":2,\"e_layers\":%d,\"d_layers\":2,"
             "\"d_ff\":12,\"factor\":%d,\"dropout\":0,\"attn\":\"%s\",\"distil\":%s,"
             "\"mix\":%s,\"embed\":\"%s\"}",
             factor, e_layers, attn, distil ? "true" : "false", mix ? "true" : "false", embed);
    sf_model m;
    int ok = sf_model_create_json(&m, json, "informer") == SF_OK;
    CHECK_MSG(ok, "%s", sf_error_message());
    if (!ok) return;
    sf_model_init_weights(&m, 3);
    perturb_params(&m.params);
    char name[96];
    snprintf(name, sizeof name, "model informer %s factor %d distil %d mix %d e_layers %d embed %s", attn, factor,
             distil, mix, e_layers, embed);
    int B = 3;
    long xs = sf_model_x_floats(&m);
    CHECK(xs == 16 * 2 + (strcmp(embed, "timeF") ? 0 : (16 + 4) * 4));
    /* 4e-2: float evaluation noise of this ten-sublayer post-norm model reaches 2.1e-2 on
     * small gradients (20 seeds measured; a wrong gradient is off by O(1)) */
    subject s = {model_fwd, model_bwd, &m, &m.params, B * xs, (long)B * 4 * 2, B, 16, name, 1, 1};
    float *x = rnd(s.nx, 1.0f);
    g_one_sided = 1; /* max-pool switches */
    g_tol = 4e-2;
    /* A kink of a max-pool switch at the point itself, in this strongly curved deep float model,
     * can leave no usable quotient (seed 5250015458: slope +0.96 left of the point, -0.04 right,
     * curvature ~250 on both sides, so even the one-sided quotients at 4e-4 are 0.05 off an
     * analytic 0.016; about 1 run in 40). So a miss in the first attempt repeats the whole check
     * at a fresh random input and fresh entries, which must pass: a wrong gradient misses at
     * every point, a kink at the point is an accident of one point. Small gradients are judged
     * against 10% of the RMS gradient (5% elsewhere): the float noise of this loss (~5e-6) is
     * ~1e-2 in a quotient at h = 4e-4 (seed 5297200458: analytic -0.029, quotient -0.024). */
    g_floor_frac = 0.1;
    g_first_attempt = 1;
    g_misses = 0;
    grad_check(&s, x);
    g_first_attempt = 0;
    if (g_misses) {
        printf("%s: %d misses in attempt 1; attempt 2 at a fresh input:\n", name, g_misses);
        free(x);
        x = rnd(s.nx, 1.0f);
        grad_check(&s, x);
    }
    g_floor_frac = 5e-2;
    g_one_sided = 0;
    g_tol = 2e-2;
    free(x);
    sf_model_destroy(&m);
}

/* t2, end to end: pointwise embedding (ReLU), sinusoidal or learned positions, blocks over the
 * valid steps (ctx->lens from each example's trailing length), mean pooling over them, head.
 * Training mode with dropout 0; the lengths (10, 6, 1) stay fixed (no input gradients). */
/* (linear attention in one head of width 8: at width 4 its near-0/0 normaliser makes finite
 * differences noisy, see the linear-relu mixer check) */
static const char *t2_json(int L, const char *mixer, const char *pos) {
    static char json[768];
    snprintf(json, sizeof json,
             "{\"task\":\"classify\",\"model\":\"t2\",\"seq_len\":%d,\"n_channels\":3,"
             "\"n_classes\":4,\"d_model\":8,\"positions\":\"%s\",\"blocks\":[{\"kind\":"
             "\"metaformer\",\"repeat\":1,\"placement\":\"post\",\"dropout\":0,\"norm\":"
             "{\"kind\":\"layernorm\",\"eps\":1e-6},\"token_mixer\":{\"kind\":\"%s\","
             "\"n_heads\":%d},\"channel_mixer\":{\"kind\":\"mlp\",\"d_ff\":12,"
             "\"activation\":\"relu\"}}],\"head\":{\"kind\":\"pool_classify\",\"dropout\":0}}",
             L, pos, mixer, strcmp(mixer, "linear") ? 2 : 1);
    return json;
}

/* The t2 checks' batch: 3 series of 10 steps x 3 channels + 1 length float each, of lengths: */
static const float t2_lens[3] = {10, 6, 1};
static void t2_set_lens(float *x, long n) { /* n = 3 inputs; the length is each one's last float */
    for (int b = 0; b < 3; b++) x[(b + 1) * (n / 3) - 1] = t2_lens[b];
}

static void check_t2(const char *mixer, const char *pos) {
    sf_model m;
    int ok = sf_model_create_json(&m, t2_json(10, mixer, pos), "t2") == SF_OK;
    CHECK_MSG(ok, "%s", sf_error_message());
    if (!ok) return;
    sf_model_init_weights(&m, 5);
    perturb_params(&m.params);
    int B = 3;
    long xs = sf_model_x_floats(&m);
    CHECK(xs == 10 * 3 + 1);
    char name[96];
    snprintf(name, sizeof name, "model t2 %s %s (lengths 10, 6, 1)", mixer, pos);
    subject s = {model_fwd, model_bwd, &m, &m.params, B * xs, (long)B * 4, B, 10, name, 1, 1};
    float *x = rnd(s.nx, 1.0f);
    t2_set_lens(x, s.nx);
    /* ReLU in the embedding and the feed-forward. Seed 5989575020 put an embedding weight's
     * quotients 2.2% off (gradient 1.3e-3), at 33b0b8c as at 8a2bc23: a kink within the step.
     * As for conv_patches below, a miss repeats the check at a fresh point, which a wrong
     * gradient misses too. */
    g_kinked = g_retry = 1;
    grad_check_retry_refill(&s, &x, t2_set_lens);
    g_kinked = g_retry = 0;
    free(x);
    sf_model_destroy(&m);
}

/* t2 with the conv_patches input (windows of 4 steps every 3, 10 steps -> 4 tokens): the
 * embedding's gradient through the gathered windows, with lengths 10, 6, 1 (4, 2, 1 tokens; the
 * windows past each valid end read zeros, so padding values must not matter either). */
static const char *t2_patch_json(int L, int P, int S) {
    static char json[768];
    snprintf(json, sizeof json,
             "{\"task\":\"classify\",\"model\":\"t2\",\"seq_len\":%d,\"n_channels\":3,"
             "\"n_classes\":4,\"d_model\":8,\"input\":{\"kind\":\"conv_patches\","
             "\"patch_len\":%d,\"stride\":%d},\"blocks\":[{\"kind\":\"metaformer\",\"repeat\":2,"
             "\"placement\":\"post\",\"dropout\":0,\"norm\":{\"kind\":\"layernorm\",\"eps\":1e-6},"
             "\"token_mixer\":{\"kind\":\"softmax\",\"n_heads\":2},\"channel_mixer\":{\"kind\":"
             "\"mlp\",\"d_ff\":12,\"activation\":\"relu\"}}],\"head\":{\"kind\":\"pool_classify\","
             "\"dropout\":0}}",
             L, P, S);
    return json;
}

static void check_t2_conv_patches(void) {
    sf_model m;
    int ok = sf_model_create_json(&m, t2_patch_json(10, 4, 3), "t2") == SF_OK;
    CHECK_MSG(ok, "%s", sf_error_message());
    if (!ok) return;
    sf_model_init_weights(&m, 7);
    perturb_params(&m.params);
    int B = 3;
    long xs = sf_model_x_floats(&m);
    CHECK(xs == 10 * 3 + 1);
    subject s = {model_fwd, model_bwd, &m, &m.params, B * xs, (long)B * 4, B, 10,
                 "model t2 conv_patches 4/3 (lengths 10, 6, 1)", 1, 1};
    float *x = rnd(s.nx, 1.0f);
    t2_set_lens(x, s.nx);
    /* deep and kinked (ReLU, max over padding-masked rows): seed 14239618721 put a LayerNorm
     * weight's quotients 2.2% off (gradient 5.5e-3, 1/10 of the RMS); a wrong gradient misses
     * at a fresh point too */
    g_kinked = g_retry = 1;
    grad_check_retry_refill(&s, &x, t2_set_lens);
    g_kinked = g_retry = 0;
    /* the values past a valid end never reach the logits */
    float y0[12], y1[12];
    sf_model_forward(&m, x, y0, B, 0, NULL);
    for (int b = 1; b < B; b++)
        for (int i = (int)t2_lens[b] * 3; i < 30; i++) x[b * xs + i] = 100.0f + (float)i;
    sf_model_forward(&m, x, y1, B, 0, NULL);
    double worst = 0;
    for (int i = 0; i < 12; i++) {
        double e = fabs(y0[i] - y1[i]) / (fabs(y0[i]) + 1e-3);
        if (e > worst) worst = e;
    }
    printf("t2 conv_patches padding: max rel diff %.2e (padding values replaced)\n", worst);
    CHECK(worst == 0);
    free(x);
    sf_model_destroy(&m);
    /* a stride past the window would skip steps; a window past seq_len has nothing to read */
    CHECK(sf_model_create_json(&m, t2_patch_json(10, 4, 5), "t2") == SF_ERR);
    CHECK(strstr(sf_error_message(), "input.stride") != NULL);
    CHECK(sf_model_create_json(&m, t2_patch_json(10, 11, 5), "t2") == SF_ERR);
    CHECK(strstr(sf_error_message(), "input.patch_len") != NULL);
}

/* Padding never reaches the logits: a series of 6 steps padded to 10 (padding filled with
 * garbage) gives the logits of the same weights built for exactly 6 steps (sinusoidal positions
 * have no parameters, so both models have the same tensors). */
static void check_t2_padding_pos(const char *mixer, const char *pos) {
    sf_model a, b;
    CHECK(sf_model_create_json(&a, t2_json(10, mixer, pos), "t2") == SF_OK);
    CHECK(sf_model_create_json(&b, t2_json(6, mixer, pos), "t2") == SF_OK);
    CHECK(a.params.total == b.params.total);
    sf_model_init_weights(&a, 9);
    memcpy(b.params.data, a.params.data, a.params.total * sizeof(float));
    float *xa = rnd(2 * 31, 3.0f), xb[2 * 19], ya[8], yb[8];
    for (int e = 0; e < 2; e++) {
        xa[e * 31 + 30] = 6;
        memcpy(xb + e * 19, xa + e * 31, 18 * sizeof(float));
        xb[e * 19 + 18] = 6;
    }
    sf_model_forward(&a, xa, ya, 2, 0, NULL);
    sf_model_forward(&b, xb, yb, 2, 0, NULL);
    double worst = 0;
    for (int i = 0; i < 8; i++) {
        double e = fabs(ya[i] - yb[i]) / (fabs(yb[i]) + 1e-3);
        if (e > worst) worst = e;
    }
    printf("t2 %s %s padding: max rel diff %.2e (padded to 10 vs built for 6)\n", mixer, pos,
           worst);
    CHECK(worst < 1e-5);
    free(xa);
    sf_model_destroy(&a);
    sf_model_destroy(&b);
}

static void check_t2_padding(const char *mixer) { check_t2_padding_pos(mixer, "sinusoidal"); }

/* Time positions (irregular observations): channel 0 is each step's observation time, encoded
 * sinusoidally and not embedded (embed reads channels 1..2). A time shift of one step changes
 * the logits (the times reach the model); moving channel 0's values into an ignored padding step
 * does not. */
static void check_t2_time(void) {
    check_t2("softmax", "time");
    check_t2_padding_pos("softmax", "time");
    sf_model m;
    CHECK(sf_model_create_json(&m, t2_json(10, "softmax", "time"), "t2") == SF_OK);
    CHECK(m.params.total > 0);
    const sf_param *e = NULL;
    for (int i = 0; i < m.params.n; i++)
        if (!strcmp(m.params.p[i].name, "embed.weight")) e = &m.params.p[i];
    CHECK_MSG(e && e->numel == 16, "embed.weight reads C - 1 = 2 channels into d = 8");
    sf_model_init_weights(&m, 3);
    float *x = rnd(31, 1.0f), y0[4], y1[4];
    x[30] = 10;
    sf_model_forward(&m, x, y0, 1, 0, NULL);
    x[3 * 4] += 0.25f; /* step 4's time */
    sf_model_forward(&m, x, y1, 1, 0, NULL);
    double moved = 0;
    for (int k = 0; k < 4; k++) moved += fabs(y0[k] - y1[k]);
    printf("t2 time positions: logits move by %.3e when one observation time moves by 0.25\n", moved);
    CHECK(moved > 1e-6);
    free(x);
    sf_model_destroy(&m);
}

/* iTransformer with input.time_tokens: x carries each window's (L + P) x F time features after
 * its values; the F look-back feature series are tokens beside the C variates (4 with freq h). */
static void check_itransformer_time_tokens(const char *place) {
    char json[640];
    snprintf(json, sizeof json,
             "{\"model\":\"itransformer\",\"seq_len\":24,\"pred_len\":6,\"n_channels\":2,"
             "\"d_model\":8,\"dropout\":0,\"freq\":\"h\","
             "\"input\":{\"kind\":\"inverted\",\"time_tokens\":true},"
             "\"blocks\":[{\"kind\":\"metaformer\",\"repeat\":2,\"placement\":\"%s\","
             "\"dropout\":0,\"token_mixer\":{\"kind\":\"softmax\",\"n_heads\":2},"
             "\"channel_mixer\":{\"kind\":\"mlp\",\"d_ff\":12,\"dropout\":0}}]}",
             place);
    sf_model m;
    int ok = sf_model_create_json(&m, json, "itransformer") == SF_OK;
    CHECK_MSG(ok, "%s", sf_error_message());
    if (!ok) return;
    sf_model_init_weights(&m, 3);
    perturb_params(&m.params);
    char name[96];
    snprintf(name, sizeof name, "model itransformer time_tokens %s-norm", place);
    int B = 3;
    long xs = sf_model_x_floats(&m);
    CHECK(xs == 24 * 2 + (24 + 6) * 4);
    subject s = {model_fwd, model_bwd, &m, &m.params, B * xs, (long)B * 6 * 2, B, 0, name, 1, 0};
    float *x = rnd(s.nx, 1.0f);
    for (int b = 0; b < B; b++) /* channel offsets on the values; features stay in [-1, 1] */
        for (long i = 0; i < 24 * 2; i++) x[b * xs + i] += (float)(i % 2) * 3.0f;
    grad_check(&s, x);
    free(x);
    sf_model_destroy(&m);
}

static void check_linear_ref(void) {
    int in = 13, out = 7;
    long N = 29;
    sf_linear l, r;
    sf_params ps;
    sf_params_init(&ps);
    sf_linear_declare(&l, &ps, "l", in, out, 1);
    sf_params_alloc(&ps);
    sf_linear_init(&l, &g_rng);
    r = l;
    float *rdw = sf_calloc((size_t)in * out, sizeof(float)), *rdb = sf_calloc((size_t)out, sizeof(float));
    r.dw = rdw;
    r.db = rdb;
    float *x = rnd(N * in, 1.0f), *dy = rnd(N * out, 1.0f);
    float *y1 = sf_malloc((size_t)N * out * 4), *y2 = sf_malloc((size_t)N * out * 4);
    float *dx1 = sf_malloc((size_t)N * in * 4), *dx2 = sf_malloc((size_t)N * in * 4);
    sf_linear_forward(&l, y1, x, N);
    sf_linear_forward_ref(&l, y2, x, N);
    sf_linear_backward(&l, dx1, dy, x, N);
    sf_linear_backward_ref(&r, dx2, dy, x, N);
    double e1 = max_rel_err(y1, y2, N * out, 1e-6), e2 = max_rel_err(dx1, dx2, N * in, 1e-6);
    double e3 = max_rel_err(l.dw, rdw, (long)in * out, 1e-6), e4 = max_rel_err(l.db, rdb, out, 1e-6);
    printf("linear fast vs reference: y %.2e dx %.2e dW %.2e db %.2e\n", e1, e2, e3, e4);
    CHECK(e1 < 1e-5 && e2 < 1e-5 && e3 < 1e-5 && e4 < 1e-5);
    free(rdw); free(rdb); free(x); free(dy); free(y1); free(y2); free(dx1); free(dx2);
    sf_params_free(&ps);
}

/* The sparse / efficient attention mixers (local, fastformer, linformer, ls): gradients of the
 * mixer alone and inside blocks, streaming where causal, padding where supported. */
static void check_efficient_mixers(void) {
    check_mixer_json("mixer local w=2", "{\"kind\":\"local\",\"n_heads\":2,\"window\":2}");
    check_mixer_json("mixer local w=1 causal",
                     "{\"kind\":\"local\",\"n_heads\":4,\"window\":1,\"causal\":true}");
    check_mixer_json("mixer local w=5 causal",
                     "{\"kind\":\"local\",\"n_heads\":2,\"window\":5,\"causal\":true}");
    check_block_json("block local pre causal (ring wraps)",
                     "{\"kind\":\"metaformer\",\"token_mixer\":{\"kind\":\"local\",\"n_heads\":2,"
                     "\"window\":2,\"causal\":true},\"channel_mixer\":{\"kind\":\"mlp\",\"d_ff\":12}}",
                     1, 0);
    check_block_json("block local post",
                     "{\"kind\":\"metaformer\",\"placement\":\"post\",\"token_mixer\":{\"kind\":"
                     "\"local\",\"n_heads\":2,\"window\":1},\"channel_mixer\":{\"kind\":\"mlp\"}}",
                     0, 0);
    check_padding("pad: metaformer local",
                  "{\"kind\":\"metaformer\",\"token_mixer\":{\"kind\":\"local\",\"n_heads\":2,"
                  "\"window\":2},\"channel_mixer\":{\"kind\":\"mlp\",\"d_ff\":12}}", 0, 0);
    check_padding("pad: residual local causal",
                  "{\"kind\":\"residual\",\"mixer\":{\"kind\":\"local\",\"n_heads\":4,"
                  "\"window\":3,\"causal\":true}}", 0, 0);

    check_mixer_json("mixer fastformer H=2", "{\"kind\":\"fastformer\",\"n_heads\":2}");
    check_mixer_json("mixer fastformer H=1", "{\"kind\":\"fastformer\",\"n_heads\":1}");
    check_block_json("block fastformer post",
                     "{\"kind\":\"metaformer\",\"placement\":\"post\",\"token_mixer\":{\"kind\":"
                     "\"fastformer\",\"n_heads\":4},\"channel_mixer\":{\"kind\":\"mlp\"}}", 0, 0);
    check_padding("pad: metaformer fastformer",
                  "{\"kind\":\"metaformer\",\"token_mixer\":{\"kind\":\"fastformer\",\"n_heads\":2},"
                  "\"channel_mixer\":{\"kind\":\"mlp\",\"d_ff\":12}}", 0, 0);

    check_mixer_json("mixer linformer k=3", "{\"kind\":\"linformer\",\"n_heads\":2,\"k\":3}");
    check_mixer_json("mixer linformer k=7 share_kv",
                     "{\"kind\":\"linformer\",\"n_heads\":4,\"k\":7,\"share_kv\":true}");
    check_block_json("block linformer post",
                     "{\"kind\":\"metaformer\",\"placement\":\"post\",\"token_mixer\":{\"kind\":"
                     "\"linformer\",\"n_heads\":2,\"k\":4},\"channel_mixer\":{\"kind\":\"mlp\"}}",
                     0, 0);
    check_padding("pad: metaformer linformer",
                  "{\"kind\":\"metaformer\",\"token_mixer\":{\"kind\":\"linformer\",\"n_heads\":2,"
                  "\"k\":3},\"channel_mixer\":{\"kind\":\"mlp\",\"d_ff\":12}}", 0, 0);
    check_padding("pad: residual linformer share_kv",
                  "{\"kind\":\"residual\",\"mixer\":{\"kind\":\"linformer\",\"n_heads\":2,"
                  "\"k\":5,\"share_kv\":true}}", 0, 0);

    check_mixer_json("mixer ls 2 local of 4",
                     "{\"kind\":\"ls\",\"n_heads\":4,\"local_heads\":2,\"window\":2}");
    check_mixer_json("mixer ls 1 local of 2 causal",
                     "{\"kind\":\"ls\",\"n_heads\":2,\"local_heads\":1,\"window\":1,\"causal\":true}");
    check_block_json("block ls pre causal (3 local of 4)",
                     "{\"kind\":\"metaformer\",\"token_mixer\":{\"kind\":\"ls\",\"n_heads\":4,"
                     "\"local_heads\":3,\"window\":2,\"causal\":true},\"channel_mixer\":{\"kind\":\"mlp\"}}",
                     1, 0);
    check_padding("pad: metaformer ls",
                  "{\"kind\":\"metaformer\",\"token_mixer\":{\"kind\":\"ls\",\"n_heads\":2,"
                  "\"local_heads\":1,\"window\":2},\"channel_mixer\":{\"kind\":\"mlp\",\"d_ff\":12}}", 0, 0);
    check_padding("pad: residual ls causal",
                  "{\"kind\":\"residual\",\"mixer\":{\"kind\":\"ls\",\"n_heads\":4,"
                  "\"local_heads\":2,\"window\":1,\"causal\":true}}", 0, 0);

    /* asked to stream, a block with a mixer that cannot is refused naming block, slot and kind */
    static const char *const no_step[][2] = {
        {"{\"kind\":\"metaformer\",\"token_mixer\":{\"kind\":\"fastformer\",\"n_heads\":2}}",
         "blocks[0].token_mixer: mixer 'fastformer' cannot stream"},
        {"{\"kind\":\"residual\",\"mixer\":{\"kind\":\"linformer\",\"n_heads\":2,\"k\":3}}",
         "blocks[0].mixer: mixer 'linformer' cannot stream"},
        {"{\"kind\":\"parallel\",\"token_mixer\":{\"kind\":\"local\",\"n_heads\":2,\"window\":2}}",
         "blocks[0].token_mixer: mixer 'local' cannot stream"},
    };
    for (int i = 0; i < 3; i++) {
        sf_block b;
        int ok = make_block(&b, no_step[i][0], 8, 7) == SF_OK;
        CHECK_MSG(ok, "%s", sf_error_message());
        if (!ok) continue;
        CHECK(!sf_block_can_step(&b));
        CHECK_MSG(sf_block_check_step(&b, "blocks[0]") == SF_ERR &&
                      strstr(sf_error_message(), no_step[i][1]),
                  "got '%s'", sf_error_message());
        sf_block_destroy(&b);
    }
    sf_block b;
    CHECK(make_block(&b, "{\"kind\":\"residual\",\"mixer\":{\"kind\":\"ls\",\"n_heads\":2,"
                         "\"local_heads\":1,\"window\":2,\"causal\":true}}", 8, 7) == SF_OK);
    CHECK(sf_block_check_step(&b, "blocks[0]") == SF_OK);
    CHECK(sf_block_check_pad(&b, "blocks[0]") == SF_OK);
    sf_block_destroy(&b);
    /* padded batches: ProbSparse (no padding) is refused the same way */
    CHECK(make_block(&b, "{\"kind\":\"metaformer\",\"token_mixer\":{\"kind\":\"probsparse\","
                         "\"n_heads\":2}}", 8, 7) == SF_OK);
    CHECK_MSG(sf_block_check_pad(&b, "blocks[1]") == SF_ERR &&
                  strstr(sf_error_message(), "blocks[1].token_mixer: mixer 'probsparse' cannot "
                                             "handle padded sequences"),
              "got '%s'", sf_error_message());
    sf_block_destroy(&b);
}

/* ---- issue 15: lookup-table channel mixer, peri-norm, rotary and T5 positions ------------- */

/* MemoryFormer's lut mixer on [2, 7, 8]. The hash is piecewise constant: inputs are drawn with
 * |x| >= 0.25, so no finite-difference step (<= 1e-2) flips a sign bit of the first layer; with
 * ffn the second layer hashes a LayerNorm output that every input and first-layer entry moves,
 * so a step may flip one of its bits: such jumps are caught by the second difference (g_kinked)
 * and that step is not used, and the one-sided quotient on the side without the flip counts too
 * (g_one_sided: when the two larger steps both straddle a flip, the smallest step's central
 * difference alone is too noisy, 3% on a 0.005 gradient once). Flips at every step size still
 * happen (seed 12109960993: a lut1 bias 4% off), so a miss repeats the check once at a fresh
 * input (g_retry), which a wrong gradient misses too. */
static void lut_inputs(float *x, long n) { /* |x| >= 0.25 in place, keeping the signs */
    for (long i = 0; i < n; i++) x[i] = (x[i] >= 0 ? 1.0f : -1.0f) * (0.25f + fabsf(x[i]));
}
static void check_lut(const char *name, const char *json) {
    int B = 2, T = 7, d = 8;
    sf_mixer *m = make_mixer(json, d, T);
    CHECK_MSG(m != NULL, "%s: %s", json, sf_error_message());
    if (!m) return;
    sf_params ps;
    sf_params_init(&ps);
    m->ops->declare(m, &ps, "m");
    sf_params_alloc(&ps);
    m->ops->init(m, &g_rng);
    perturb_params(&ps);
    g_kinked = g_one_sided = strstr(json, "\"ffn\":true") != NULL;
    subject s = {mixer_fwd, mixer_bwd, m, &ps, (long)B * T * d, (long)B * T * d, B, T, name, 0, 0};
    float *x = rnd(s.nx, 1.0f);
    lut_inputs(x, s.nx);
    g_retry = g_kinked;
    grad_check_retry_refill(&s, &x, lut_inputs);
    g_kinked = g_one_sided = g_retry = 0;
    free(x);
    sf_mixer_destroy(m);
    sf_params_free(&ps);
}

static void check_issue15(void) {
    check_lut("mixer lut tau 4 score paper", "{\"kind\":\"lut\",\"tau\":4}");
    check_lut("mixer lut tau 2 score code", "{\"kind\":\"lut\",\"tau\":2,\"score\":\"code\"}");
    check_lut("mixer lut ffn tau 2 (-> 4)", "{\"kind\":\"lut\",\"tau\":2,\"ffn\":true}");
    check_lut("mixer lut ffn tau 4 code", "{\"kind\":\"lut\",\"tau\":4,\"ffn\":true,\"score\":\"code\"}");
    CHECK(make_mixer("{\"kind\":\"lut\",\"tau\":3}", 8, 4) == NULL &&
          strstr(sf_error_message(), "blocks[0].mixer: tau: d_model 8 is not a multiple of tau 3"));
    CHECK(make_mixer("{\"kind\":\"lut\",\"tau\":15,\"ffn\":true}", 30, 4) == NULL &&
          strstr(sf_error_message(), "blocks[0].mixer: tau: with ffn"));
    CHECK(make_mixer("{\"kind\":\"lut\",\"score\":\"both\"}", 8, 4) == NULL &&
          strstr(sf_error_message(), "blocks[0].mixer.score"));
    g_kinked = g_one_sided = 1; /* the lut hashes a LayerNorm output: a step may flip a bit (check_lut) */
    check_block_json("block lut pre (tau 4) causal",
                     "{\"kind\":\"metaformer\",\"token_mixer\":{\"kind\":\"softmax\",\"n_heads\":2,"
                     "\"causal\":true},\"channel_mixer\":{\"kind\":\"lut\",\"tau\":4}}", 1, 0);
    g_kinked = g_one_sided = 0;
    /* peri-norm: norms on each mixer's input and output */
    check_block_json("block peri layernorm softmax causal",
                     "{\"kind\":\"metaformer\",\"placement\":\"peri\",\"token_mixer\":{\"kind\":"
                     "\"softmax\",\"n_heads\":2,\"causal\":true},\"channel_mixer\":{\"kind\":\"mlp\","
                     "\"d_ff\":16}}", 1, 0);
    check_block_json("block peri rmsnorm linear + swiglu",
                     "{\"kind\":\"metaformer\",\"placement\":\"peri\",\"norm\":{\"kind\":\"rmsnorm\"},"
                     "\"token_mixer\":{\"kind\":\"linear\",\"n_heads\":2},\"channel_mixer\":{\"kind\":"
                     "\"glu\",\"d_ff\":8}}", 0, 0);
    check_block_json("block peri batchnorm (batch stats)",
                     "{\"kind\":\"metaformer\",\"placement\":\"peri\",\"norm\":{\"kind\":\"batchnorm\"},"
                     "\"token_mixer\":{\"kind\":\"softmax\",\"n_heads\":2}}", 0, 1);
    {
        sf_block bb;
        int rc = make_block(&bb, "{\"kind\":\"residual\",\"placement\":\"peri\",\"mixer\":{\"kind\":\"identity\"}}", 8, 4);
        CHECK_MSG(rc == SF_ERR && strstr(sf_error_message(), "blocks[0].placement: peri is only for metaformer"),
                  "got rc %d: %s", rc, sf_error_message());
    }
    /* positions inside softmax attention: rotary, and T5's relative bias (8 buckets, max distance
     * 5: at T = 6 the larger offsets share log-spaced buckets); FD checks and step == forward */
    static const char *const pos[] = {"{\"kind\":\"rope\",\"base\":10000}",
                                      "{\"kind\":\"rope\",\"base\":7}",
                                      "{\"kind\":\"t5\",\"num_buckets\":8,\"max_distance\":5}",
                                      "{\"kind\":\"t5\",\"num_buckets\":32,\"max_distance\":128}"};
    for (int i = 0; i < 4; i++)
        for (int causal = 0; causal < 2; causal++) {
            g_positions = cJSON_Parse(pos[i]);
            char json[256], name[96];
            snprintf(json, sizeof json,
                     "{\"kind\":\"metaformer\",\"token_mixer\":{\"kind\":\"softmax\",\"n_heads\":2,"
                     "\"causal\":%s},\"channel_mixer\":{\"kind\":\"mlp\",\"d_ff\":8}}",
                     causal ? "true" : "false");
            snprintf(name, sizeof name, "block softmax %s %s%s", i < 2 ? "rope" : "t5",
                     i == 1 ? "base 7" : i == 2 ? "8 buckets" : i == 3 ? "32 buckets" : "base 1e4",
                     causal ? " causal" : "");
            check_block_json(name, json, causal, 0);
            cJSON_Delete(g_positions);
            g_positions = NULL;
        }
    /* T5 biases with dropout on the attention weights, in training mode: the materialised path's
     * bias gradient (and rope through it) */
    for (int i = 0; i < 4; i += 2) {
        g_positions = cJSON_Parse(pos[i == 0 ? 0 : 2]);
        char name[96];
        snprintf(name, sizeof name, "block softmax %s attn_dropout (training)", i ? "t5" : "rope");
        check_block_json(name,
                         "{\"kind\":\"metaformer\",\"token_mixer\":{\"kind\":\"softmax\",\"n_heads\":2,"
                         "\"attn_dropout\":0.2},\"channel_mixer\":{\"kind\":\"mlp\",\"d_ff\":8}}",
                         0, 1);
        cJSON_Delete(g_positions);
        g_positions = NULL;
    }
    /* refused: rope with an odd head width, rope/t5 with another token mixer */
    g_positions = cJSON_Parse(pos[0]);
    sf_block bb;
    CHECK(make_block(&bb, "{\"kind\":\"metaformer\",\"token_mixer\":{\"kind\":\"softmax\","
                          "\"n_heads\":8}}", 8, 4) == SF_ERR &&
          strstr(sf_error_message(), "blocks[0].token_mixer: positions: rope needs an even head width"));
    CHECK(make_block(&bb, "{\"kind\":\"metaformer\",\"token_mixer\":{\"kind\":\"linear\"}}", 8, 4) ==
              SF_ERR &&
          strstr(sf_error_message(), "blocks[0].token_mixer: positions 'rope' act inside softmax attention; "
                                     "mixer 'linear' cannot take them"));
    cJSON_Delete(g_positions);
    g_positions = NULL;
}

/* Mamba (selective SSM): the mixer alone (causal and bidirectional, a few option values), in
 * residual blocks (pre and post), step == forward for the causal block, padded batches (the
 * reversed pass of the bidirectional one starts at each sequence's last valid step), and bad
 * options refused at config read naming block and option. */
static void check_mamba(void) {
    check_mixer_json("mixer mamba N=4 conv 3",
                     "{\"kind\":\"mamba\",\"d_state\":4,\"d_conv\":3}");
    check_mixer_json("mixer mamba bidirectional",
                     "{\"kind\":\"mamba\",\"d_state\":3,\"dt_rank\":2,\"bidirectional\":true}");
    check_mixer_json("mixer mamba expand 1 conv 1",
                     "{\"kind\":\"mamba\",\"d_state\":2,\"d_conv\":1,\"expand\":1}");
    check_block_json("residual pre mamba (step == forward)",
                     "{\"kind\":\"residual\",\"norm\":{\"kind\":\"rmsnorm\"},\"mixer\":{\"kind\":"
                     "\"mamba\",\"d_state\":5}}", 1, 0);
    check_block_json("residual post mamba bidirectional",
                     "{\"kind\":\"residual\",\"placement\":\"post\",\"mixer\":{\"kind\":"
                     "\"mamba\",\"d_state\":2,\"d_conv\":2,\"expand\":1,\"bidirectional\":true}}",
                     0, 0);
    check_padding("pad: residual mamba",
                  "{\"kind\":\"residual\",\"mixer\":{\"kind\":\"mamba\",\"d_state\":4}}", 0, 0);
    check_padding("pad: residual mamba bidirectional",
                  "{\"kind\":\"residual\",\"norm\":{\"kind\":\"rmsnorm\"},\"mixer\":{\"kind\":"
                  "\"mamba\",\"d_state\":3,\"bidirectional\":true}}", 0, 0);
    check_padding("pad: metaformer mamba bidirectional + mlp",
                  "{\"kind\":\"metaformer\",\"placement\":\"post\",\"token_mixer\":{\"kind\":"
                  "\"mamba\",\"d_state\":2,\"d_conv\":2,\"expand\":1,\"bidirectional\":true},"
                  "\"channel_mixer\":{\"kind\":\"mlp\",\"d_ff\":12}}", 0, 0);
    static const struct {
        const char *json, *msg;
    } bad[] = {
        {"{\"kind\":\"mamba\",\"d_state\":0}", "blocks[0].mixer.d_state: must be >= 1 (got 0)"},
        {"{\"kind\":\"mamba\",\"d_conv\":0}", "blocks[0].mixer.d_conv: must be >= 1 (got 0)"},
        {"{\"kind\":\"mamba\",\"expand\":0}", "blocks[0].mixer.expand: must be >= 1 (got 0)"},
        {"{\"kind\":\"mamba\",\"dt_rank\":-1}", "blocks[0].mixer.dt_rank: must be >= 0 (got -1)"},
        {"{\"kind\":\"mamba\",\"dt_min\":0}", "blocks[0].mixer.dt_min: must be >="},
        {"{\"kind\":\"mamba\",\"dt_min\":0.5,\"dt_max\":0.1}",
         "blocks[0].mixer: dt_min: 0.5 is above dt_max 0.1"},
        {"{\"kind\":\"mamba\",\"causal\":true}", "blocks[0].mixer: unknown option 'causal'"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        sf_mixer *bm = make_mixer(bad[i].json, 8, 4);
        CHECK_MSG(bm == NULL && strstr(sf_error_message(), bad[i].msg), "%s: got '%s'", bad[i].json,
                  bm ? "(accepted)" : sf_error_message());
        if (bm) sf_mixer_destroy(bm);
    }
    /* parameter names, shapes and the reference's initialisation (d 40: dt_rank ceil(40/16) = 3) */
    {
        sf_mixer *m = make_mixer("{\"kind\":\"mamba\",\"bidirectional\":true}", 40, 7);
        CHECK(m != NULL);
        sf_params ps;
        sf_params_init(&ps);
        m->ops->declare(m, &ps, "m");
        sf_params_alloc(&ps);
        m->ops->init(m, &g_rng);
        static const struct {
            const char *name;
            int ndim;
            int64_t s0, s1, s2;
        } want[] = {{"m.in_proj.weight", 2, 160, 40, 0}, {"m.conv1d.weight", 3, 80, 1, 4},
                    {"m.conv1d.bias", 1, 80, 0, 0},      {"m.x_proj.weight", 2, 35, 80, 0},
                    {"m.dt_proj.weight", 2, 80, 3, 0},   {"m.dt_proj.bias", 1, 80, 0, 0},
                    {"m.A_log", 2, 80, 16, 0},           {"m.D", 1, 80, 0, 0},
                    {"m.out_proj.weight", 2, 40, 80, 0}, {"m.bwd.in_proj.weight", 2, 160, 40, 0},
                    {"m.bwd.A_log", 2, 80, 16, 0},       {"m.bwd.out_proj.weight", 2, 40, 80, 0}};
        for (size_t i = 0; i < sizeof want / sizeof *want; i++) {
            int k = sf_params_find(&ps, want[i].name);
            CHECK_MSG(k >= 0 && ps.p[k].ndim == want[i].ndim && ps.p[k].shape[0] == want[i].s0 &&
                          (want[i].ndim < 2 || ps.p[k].shape[1] == want[i].s1) &&
                          (want[i].ndim < 3 || ps.p[k].shape[2] == want[i].s2),
                      "%s", want[i].name);
        }
        CHECK(ps.n == 18);
        const float *A_log = ps.data + ps.p[sf_params_find(&ps, "m.A_log")].offset;
        const float *D = ps.data + ps.p[sf_params_find(&ps, "m.D")].offset;
        const float *bias = ps.data + ps.p[sf_params_find(&ps, "m.dt_proj.bias")].offset;
        const float *w = ps.data + ps.p[sf_params_find(&ps, "m.dt_proj.weight")].offset;
        int ok = 1;
        double dmin = 1e9, dmax = 0;
        for (int c = 0; c < 80; c++) {
            for (int n = 0; n < 16; n++) ok &= fabsf(A_log[c * 16 + n] - logf((float)(n + 1))) < 1e-7f;
            ok &= D[c] == 1.0f;
            double dt = log1p(exp((double)bias[c]));
            dmin = dt < dmin ? dt : dmin, dmax = dt > dmax ? dt : dmax;
            for (int r = 0; r < 3; r++) ok &= fabsf(w[c * 3 + r]) <= 1.0f / sqrtf(3.0f);
        }
        printf("mamba init: A_log = log(1..N), D = 1 %s; softplus(dt_proj.bias) in [%.2e, %.2e]\n",
               ok ? "ok" : "WRONG", dmin, dmax);
        CHECK(ok && dmin >= 1e-3 * (1 - 1e-5) && dmax <= 0.1 * (1 + 1e-5));
        sf_mixer_destroy(m);
        sf_params_free(&ps);
    }
    /* a bidirectional mamba asked to stream is refused naming block, slot and kind */
    sf_block b;
    CHECK(make_block(&b, "{\"kind\":\"residual\",\"mixer\":{\"kind\":\"mamba\",\"bidirectional\":true}}",
                     8, 7) == SF_OK);
    CHECK(!sf_block_can_step(&b));
    CHECK_MSG(sf_block_check_step(&b, "blocks[0]") == SF_ERR &&
                  strstr(sf_error_message(), "blocks[0].mixer: mixer 'mamba' cannot stream"),
              "got '%s'", sf_error_message());
    printf("mamba bidirectional asked to stream: %s\n", sf_error_message());
    sf_block_destroy(&b);
}

/* ParaRNN (gru_diag, lstm_cifg: Newton-parallel) and the dense GRU/LSTM: finite differences of
 * the mixers (with and without an output projection) and inside blocks, step == forward,
 * padding, the Newton statistics record, bad options. The Newton checks use a tolerance near
 * the float floor (1e-6): a looser stop would move the loss by the stop's error between the
 * two sides of a finite difference. */
static void check_rnn_mixers(void) {
    static const struct {
        const char *name, *json;
    } mixers[] = {
        {"mixer gru_diag newton", "{\"kind\":\"gru_diag\",\"newton_iters\":10,\"newton_tol\":1e-6}"},
        {"mixer gru_diag sequential", "{\"kind\":\"gru_diag\",\"solver\":\"sequential\",\"heads\":4}"},
        {"mixer gru_diag hidden 12", "{\"kind\":\"gru_diag\",\"hidden\":12,\"newton_iters\":10,\"newton_tol\":1e-6}"},
        {"mixer lstm_cifg newton", "{\"kind\":\"lstm_cifg\",\"newton_iters\":10,\"newton_tol\":1e-6}"},
        {"mixer lstm_cifg sequential hidden 4",
         "{\"kind\":\"lstm_cifg\",\"solver\":\"sequential\",\"hidden\":4,\"heads\":1}"},
        {"mixer gru", "{\"kind\":\"gru\"}"},
        {"mixer gru hidden 6", "{\"kind\":\"gru\",\"hidden\":6}"},
        {"mixer lstm", "{\"kind\":\"lstm\"}"},
        {"mixer lstm hidden 5", "{\"kind\":\"lstm\",\"hidden\":5}"},
    };
    for (size_t i = 0; i < sizeof mixers / sizeof *mixers; i++) check_mixer_json(mixers[i].name, mixers[i].json);
    static const char *const kinds[] = {
        "\"kind\":\"gru_diag\",\"newton_iters\":10,\"newton_tol\":1e-6",
        "\"kind\":\"lstm_cifg\",\"newton_iters\":10,\"newton_tol\":1e-6,\"hidden\":4", "\"kind\":\"gru\"",
        "\"kind\":\"lstm\",\"hidden\":12"};
    for (int k = 0; k < 4; k++) {
        char json[512], name[96];
        snprintf(json, sizeof json,
                 "{\"kind\":\"metaformer\",\"token_mixer\":{%s},\"channel_mixer\":{\"kind\":\"mlp\",\"d_ff\":12}}",
                 kinds[k]);
        snprintf(name, sizeof name, "block metaformer %.*s", (int)(strchr(kinds[k] + 8, '"') - kinds[k] - 8),
                 kinds[k] + 8);
        check_block_json(name, json, 1, 0);
        snprintf(json, sizeof json, "{\"kind\":\"residual\",\"norm\":{\"kind\":\"rmsnorm\"},\"mixer\":{%s}}", kinds[k]);
        snprintf(name, sizeof name, "pad: residual %.*s", (int)(strchr(kinds[k] + 8, '"') - kinds[k] - 8),
                 kinds[k] + 8);
        check_padding(name, json, 0, 0);
    }
    /* the statistics record: a forward in newton mode reports iterations and the residual. With
     * the defaults (the reference's 3 iterations, tol 1e-5) the residual after 3 is usually
     * ~1e-7 but not always below 1e-5 (3.4e-5 in ~1 of 50 seeds at init weights): the record
     * must then say fallback. With a cap of 8 the quadratic convergence always gets there. */
    for (int cap = 0; cap < 2; cap++) {
        enum { B = 2, T = 40, d = 8 };
        sf_mixer *m = make_mixer(cap ? "{\"kind\":\"gru_diag\",\"newton_iters\":8}" : "{\"kind\":\"gru_diag\"}", d, T);
        CHECK(m != NULL);
        if (m) {
            sf_params ps;
            sf_params_init(&ps);
            m->ops->declare(m, &ps, "m");
            sf_params_alloc(&ps);
            m->ops->init(m, &g_rng);
            sf_arena plan, a;
            sf_arena_init_plan(&plan);
            sf_ctx pc = {.arena = &plan, .B = B, .T = T, .saved = g_saved};
            m->ops->forward(m, &pc, NULL, NULL);
            sf_arena_alloc(&a, plan.peak);
            sf_ctx c = {.arena = &a, .B = B, .T = T, .saved = g_saved};
            float *x = rnd(B * T * d, 1.0f), *y = sf_malloc(B * T * d * sizeof(float));
            m->ops->forward(m, &c, x, y);
            sf_newton_stats st;
            int have = sf_pararnn_stats(m, &c, &st);
            const int max_iters = cap ? 8 : 3;
            printf("gru_diag stats (newton_iters %d, init weights, B=%d T=%d): %d iterations, residual %.2e -> %.2e, fallback %d\n",
                   max_iters, B, T, st.iters, (double)st.initial_residual, (double)st.residual, st.fallback);
            CHECK(have && st.iters >= 1 && st.iters <= max_iters && st.residual < st.initial_residual);
            CHECK(st.fallback == (st.residual > 1e-5f));
            if (cap) CHECK(st.residual <= 1e-5f && !st.fallback);
            free(x), free(y);
            sf_arena_free(&a);
            sf_mixer_destroy(m);
            sf_params_free(&ps);
        }
    }
    static const struct {
        const char *json, *msg;
    } bad[] = {
        {"{\"kind\":\"gru_diag\",\"heads\":3}", "blocks[0].mixer: heads: 3 does not divide d_model 8"},
        {"{\"kind\":\"lstm_cifg\",\"hidden\":6,\"heads\":4}", "blocks[0].mixer: heads: 4 does not divide hidden 6"},
        {"{\"kind\":\"gru_diag\",\"solver\":\"scan\"}",
         "blocks[0].mixer.solver: 'scan' is not one of newton|sequential"},
        {"{\"kind\":\"lstm_cifg\",\"newton_iters\":0}", "blocks[0].mixer.newton_iters: must be >= 1 (got 0)"},
        {"{\"kind\":\"gru_diag\",\"newton_tol\":-1}", "blocks[0].mixer.newton_tol: must be >= 0"},
        {"{\"kind\":\"gru_diag\",\"causal\":false}", "blocks[0].mixer: unknown option 'causal'"},
        {"{\"kind\":\"gru\",\"heads\":2}", "blocks[0].mixer: unknown option 'heads'"},
        {"{\"kind\":\"lstm\",\"hidden\":-2}", "blocks[0].mixer.hidden: must be >= 0 (got -2)"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        sf_mixer *bm = make_mixer(bad[i].json, 8, 4);
        CHECK_MSG(bm == NULL && strstr(sf_error_message(), bad[i].msg), "%s: got '%s'", bad[i].json,
                  bm ? "(accepted)" : sf_error_message());
        if (bm) sf_mixer_destroy(bm);
    }
}

/* The depth-wise convolution mixer: finite differences for centred odd and even kernels and
 * causal ones (kernel 1 too), streaming step == forward, padding equivalence, bad options. */
static void check_dwconv(void) {
    check_mixer_json("mixer dwconv k3", "{\"kind\":\"dwconv\",\"kernel_size\":3}");
    check_mixer_json("mixer dwconv k4 (even: same padding)", "{\"kind\":\"dwconv\",\"kernel_size\":4}");
    check_mixer_json("mixer dwconv k9 (longer than T)", "{\"kind\":\"dwconv\",\"kernel_size\":9}");
    check_mixer_json("mixer dwconv k5 causal", "{\"kind\":\"dwconv\",\"kernel_size\":5,\"causal\":true}");
    check_mixer_json("mixer dwconv k1", "{\"kind\":\"dwconv\",\"kernel_size\":1}");
    check_block_json("block dwconv causal pre (step == forward)",
                     "{\"kind\":\"metaformer\",\"placement\":\"pre\",\"token_mixer\":{\"kind\":\"dwconv\","
                     "\"kernel_size\":4,\"causal\":true},\"channel_mixer\":{\"kind\":\"mlp\",\"d_ff\":16}}", 1, 0);
    check_block_json("block residual dwconv k1 causal (step == forward)",
                     "{\"kind\":\"residual\",\"mixer\":{\"kind\":\"dwconv\",\"kernel_size\":1,"
                     "\"causal\":true}}", 1, 0);
    check_block_json("block dwconv post", "{\"kind\":\"metaformer\",\"placement\":\"post\",\"token_mixer\":"
                     "{\"kind\":\"dwconv\",\"kernel_size\":6},\"channel_mixer\":{\"kind\":\"mlp\",\"d_ff\":16}}", 0, 0);
    check_padding("pad: metaformer dwconv k5",
                  "{\"kind\":\"metaformer\",\"token_mixer\":{\"kind\":\"dwconv\",\"kernel_size\":5},"
                  "\"channel_mixer\":{\"kind\":\"mlp\",\"d_ff\":12}}", 0, 0);
    check_padding("pad: residual dwconv k4 causal",
                  "{\"kind\":\"residual\",\"mixer\":{\"kind\":\"dwconv\",\"kernel_size\":4,\"causal\":true}}",
                  0, 0);
    {   /* a centred conv looks ahead: it does not stream */
        sf_mixer *bm = make_mixer("{\"kind\":\"dwconv\"}", 8, 4);
        CHECK(bm != NULL && !bm->can_step);
        if (bm) sf_mixer_destroy(bm);
    }
    sf_mixer *bm = make_mixer("{\"kind\":\"dwconv\",\"kernel_size\":0}", 8, 4);
    CHECK_MSG(bm == NULL && strstr(sf_error_message(), "blocks[0].mixer.kernel_size: must be >= 1"),
              "kernel_size 0: got '%s'", bm ? "(accepted)" : sf_error_message());
    if (bm) sf_mixer_destroy(bm);
}

/* The recurrent token mixers s4d and deltanet: finite differences of the mixer and of blocks
 * around it, streaming step == forward, padding equivalence, bad options. */
static void check_s4d_deltanet(void) {
    check_mixer_json("mixer s4d", "{\"kind\":\"s4d\",\"d_state\":6}");
    check_mixer_json("mixer s4d dt 0.01..0.5", "{\"kind\":\"s4d\",\"d_state\":4,\"dt_min\":0.01,\"dt_max\":0.5}");
    check_mixer_json("mixer s4d bidirectional", "{\"kind\":\"s4d\",\"d_state\":6,\"bidirectional\":true}");
    g_retry = 1; /* deltanet's l2norm: see g_retry */
    check_mixer_json("mixer deltanet chunk 3", "{\"kind\":\"deltanet\",\"n_heads\":2,\"chunk_size\":3}");
    check_mixer_json("mixer deltanet 1 head", "{\"kind\":\"deltanet\",\"n_heads\":1}");
    check_block_json("block s4d pre (step == forward)",
                     "{\"kind\":\"metaformer\",\"placement\":\"pre\",\"token_mixer\":{\"kind\":\"s4d\","
                     "\"d_state\":8},\"channel_mixer\":{\"kind\":\"mlp\",\"d_ff\":16}}", 1, 0);
    check_block_json("block residual s4d rmsnorm (step == forward)",
                     "{\"kind\":\"residual\",\"norm\":{\"kind\":\"rmsnorm\"},\"mixer\":{\"kind\":\"s4d\","
                     "\"d_state\":4}}", 1, 0);
    check_block_json("block deltanet post (step == forward)",
                     "{\"kind\":\"metaformer\",\"placement\":\"post\",\"token_mixer\":{\"kind\":\"deltanet\","
                     "\"n_heads\":2,\"chunk_size\":4},\"channel_mixer\":{\"kind\":\"mlp\",\"d_ff\":16}}", 1, 0);
    check_block_json("block residual deltanet (step == forward)",
                     "{\"kind\":\"residual\",\"norm\":{\"kind\":\"layernorm\"},\"mixer\":{\"kind\":\"deltanet\","
                     "\"n_heads\":4,\"chunk_size\":2}}", 1, 0);
    g_retry = 0;
    check_padding("pad: metaformer s4d",
                  "{\"kind\":\"metaformer\",\"token_mixer\":{\"kind\":\"s4d\",\"d_state\":6},"
                  "\"channel_mixer\":{\"kind\":\"mlp\",\"d_ff\":12}}", 0, 0);
    check_block_json("block s4d bidirectional post",
                     "{\"kind\":\"metaformer\",\"placement\":\"post\",\"token_mixer\":{\"kind\":\"s4d\","
                     "\"d_state\":4,\"bidirectional\":true},\"channel_mixer\":{\"kind\":\"mlp\",\"d_ff\":16}}", 0, 0);
    check_padding("pad: parallel s4d bidirectional",
                  "{\"kind\":\"parallel\",\"token_mixer\":{\"kind\":\"s4d\",\"d_state\":4,\"bidirectional\":true},"
                  "\"channel_mixer\":{\"kind\":\"mlp\",\"d_ff\":12}}", 0, 0);
    {   /* a bidirectional s4d does not stream */
        sf_mixer *bm = make_mixer("{\"kind\":\"s4d\",\"bidirectional\":true}", 8, 4);
        CHECK(bm != NULL && !bm->can_step);
        if (bm) sf_mixer_destroy(bm);
    }
    check_padding("pad: residual deltanet",
                  "{\"kind\":\"residual\",\"norm\":{\"kind\":\"rmsnorm\"},\"mixer\":{\"kind\":\"deltanet\","
                  "\"n_heads\":2,\"chunk_size\":3}}", 0, 0);
    static const struct {
        const char *json, *msg;
    } bad[] = {
        {"{\"kind\":\"s4d\",\"d_state\":5}", "blocks[0].mixer: d_state: must be even"},
        {"{\"kind\":\"s4d\",\"d_state\":0}", "blocks[0].mixer.d_state: must be >= 2"},
        {"{\"kind\":\"s4d\",\"dt_min\":0.5,\"dt_max\":0.1}", "blocks[0].mixer: dt_min: 0.5 exceeds dt_max 0.1"},
        {"{\"kind\":\"s4d\",\"n_heads\":2}", "blocks[0].mixer: unknown option 'n_heads'"},
        {"{\"kind\":\"deltanet\",\"causal\":false}", "blocks[0].mixer: causal: deltanet is causal only"},
        {"{\"kind\":\"deltanet\",\"n_heads\":3}", "blocks[0].mixer: n_heads: 3 does not divide d_model 8"},
        {"{\"kind\":\"deltanet\",\"chunk_size\":0}", "blocks[0].mixer.chunk_size: must be >= 1"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        sf_mixer *bm = make_mixer(bad[i].json, 8, 4);
        CHECK_MSG(bm == NULL && strstr(sf_error_message(), bad[i].msg), "%s: got '%s'", bad[i].json,
                  bm ? "(accepted)" : sf_error_message());
        if (bm) sf_mixer_destroy(bm);
    }
}

int main(void) {
    sf_rng_seed(&g_rng, test_seed());
    check_linear_ref();
    check_norm(SF_NORM_LAYERNORM, 0);
    check_norm(SF_NORM_RMSNORM, 0);
    check_norm(SF_NORM_BATCHNORM, 1);
    check_norm(SF_NORM_BATCHNORM, 0);
    check_mamba();
    check_mixer("softmax", 0);
    check_mixer("softmax", 1);
    /* dropout on the attention weights (materialised path), bidirectional and causal, with T5 biases */
    check_mixer_mode("mixer softmax attn_dropout 0.3 (training)",
                     "{\"kind\":\"softmax\",\"n_heads\":2,\"attn_dropout\":0.3}", 1);
    check_mixer_mode("mixer softmax attn_dropout causal (training)",
                     "{\"kind\":\"softmax\",\"n_heads\":2,\"causal\":true,\"attn_dropout\":0.3}", 1);
    {   /* a factor below 1 is refused when the config is read, naming the block and option */
        sf_mixer *bad = make_mixer("{\"kind\":\"probsparse\",\"factor\":0}", 8, 7);
        CHECK(bad == NULL && strstr(sf_error_message(), "blocks[0].mixer.factor") != NULL);
        printf("probsparse factor 0: %s\n", sf_error_message());
    }
    check_circular_conv(0);
    check_circular_conv(1);
    check_distil(7, 1);
    check_distil(6, 0);
    check_cross_attention();
    /* ProbSparse at factor 6 makes every query active (u = min(6 ceil(ln L), L) = L at L <= 16):
     * at factor 1 the top-u selection flips as a parameter moves between near-tied sparsity
     * scores, and the loss becomes a staircase whose difference quotients include the jumps
     * (seed 4924954929: the slope over [-2e-3, 0] measured -0.129 by regression against an
     * analytic -0.143, the loss jumping by ~5e-6 every few 1e-5). Passive rows (mean/cumsum of V)
     * are checked by the probsparse mixer checks below (one layer: a switch near the point spoils
     * one side only, and the one-sided quotients of the other count). */
    check_informer("prob", 6, 1, 1, 2, "timeF");
    check_informer("prob", 6, 0, 0, 1, "none");
    check_informer("full", 1, 1, 1, 2, "timeF");
    check_informer("full", 1, 0, 0, 2, "timeF");
    check_t2("softmax", "sinusoidal");
    check_t2("softmax", "learned");
    check_t2_conv_patches();
    /* (t2 with linear attention: only the padding check below; its whole-model finite
     * differences missed by up to 3.9% on gradients of ~7e-4 in 1 of 6 runs — the mixer's own
     * checks cover its gradient) */
    check_t2_padding("softmax");
    check_t2_padding("linear");
    check_t2_time();
    check_mixer("probsparse", 0);
    check_mixer("probsparse", 1);
    check_mixer("probsparse-mix", 1);
    check_mixer("linear", 0);
    check_mixer("linear", 1);
    check_mixer("mlp", 0);
    /* training mode with dropout: the fused GELU + dropout pass (and ReLU's separate passes) */
    check_mixer_mode("mixer mlp gelu dropout 0.2 (training)", "{\"kind\":\"mlp\",\"d_ff\":12,\"dropout\":0.2}", 1);
    check_mixer_mode("mixer mlp relu dropout 0.2 (training)",
                     "{\"kind\":\"mlp\",\"d_ff\":12,\"activation\":\"relu\",\"dropout\":0.2}", 1);
    check_block("softmax", 0, SF_NORM_LAYERNORM, 0);
    check_block("softmax", 1, SF_NORM_RMSNORM, 0);
    check_block("softmax", 1, SF_NORM_LAYERNORM, 1);
    check_block("linear", 0, SF_NORM_RMSNORM, 1);
    check_block("linear", 1, SF_NORM_LAYERNORM, 0);
    check_block("softmax", 0, SF_NORM_BATCHNORM, 0);
    check_block("softmax", 1, SF_NORM_BATCHNORM, 1);
    check_model("patchtst", "softmax", "post", "learned");
    check_model("patchtst", "linear", "pre", "sinusoidal");
    check_model("dlinear", "softmax", "post", "learned");
    check_mixer("rpe", 0);
    check_mixer("rpe", 1);
    check_mixer("rpe-fft", 0);
    check_mixer("rpe-fft", 1);
    check_block("rpe", 1, SF_NORM_LAYERNORM, 1);
    check_block("rpe", 0, SF_NORM_RMSNORM, 0);
    check_model("patchtst", "rpe", "pre", "learned");
    check_mixer("rpe-favor", 0);
    check_mixer("rpe-favor", 1);
    check_block_json("block rpe favor causal (step == forward)",
                     "{\"kind\":\"metaformer\",\"token_mixer\":{\"kind\":\"rpe\",\"n_heads\":2,"
                     "\"causal\":true,\"feature_map\":\"favor\",\"n_features\":7},"
                     "\"channel_mixer\":{\"kind\":\"mlp\",\"d_ff\":16}}", 1, 0);
    g_kinked = 1;
    check_mixer("rpe-relu", 0);
    check_mixer("rpe-relu", 1);
    g_kinked = 0;
    /* iTransformer: use_norm, the inverted embedding, blocks over variate tokens, final norm and
     * the per-token projector */
    check_model("itransformer", "softmax", "post", "none");
    check_model("itransformer", "linear", "pre", "learned");
    check_itransformer_time_tokens("post");
    check_itransformer_time_tokens("pre");
    g_kinked = 1;
    check_mixer("mlp-relu", 0);
    check_mixer("mlp-never", 0);
    check_mixer("mlp-relu-never", 0);
    g_kinked = 0;
    check_mixer("identity", 0);
    check_mixer("glu-silu", 0);
    check_mixer("glu-gelu", 0);
    check_issue15();
    check_other_blocks();
    check_paddings();
    check_efficient_mixers();
    /* feature-map mixers: linear relu / favor, cosformer */
    check_mixer("linear-favor", 0);
    check_mixer("linear-favor", 1);
    g_kinked = 1;
    check_mixer("linear-relu", 0);
    check_mixer("linear-relu", 1);
    check_mixer("cosformer", 0);
    check_mixer("cosformer", 1);
    g_kinked = 0;
    check_feature_mixer_blocks();
    check_favor_redraw();
    check_rnn_mixers();
    check_s4d_deltanet();
    check_dwconv();
    /* No whole-model finite-difference check for cosformer: through two layers of ReLU features
     * over ratios with small normalisers, kinks near the step put 2 of 16 runs 3-4% off
     * (seeds 5343332993, 7790709613) although the gradient is exact: the mixer and block checks
     * above and the PyTorch parity fixtures (cosformer, cosformer_causal: 1e-6) cover it. */
    static const struct {
        const char *json, *msg;
    } bad[] = {
        {"{\"kind\":\"linear\",\"feature_map\":\"favor\",\"n_features\":0}",
         "blocks[0].mixer.n_features: must be >= 1 (got 0)"},
        {"{\"kind\":\"linear\",\"feature_map\":\"favor\",\"redraw\":-1}",
         "blocks[0].mixer.redraw: must be >= 0 (got -1)"},
        {"{\"kind\":\"linear\",\"feature_map\":\"softmax\"}",
         "blocks[0].mixer.feature_map: 'softmax' is not one of elu|relu|favor"},
        {"{\"kind\":\"linear\",\"feature_map\":\"relu\",\"n_features\":32}",
         "blocks[0].mixer: n_features: only used with feature_map favor (feature_map is relu)"},
        {"{\"kind\":\"linear\",\"redraw\":5}",
         "blocks[0].mixer: redraw: only used with feature_map favor (feature_map is elu)"},
        {"{\"kind\":\"cosformer\",\"n_features\":8}", "blocks[0].mixer: unknown option 'n_features'"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        sf_mixer *bm = make_mixer(bad[i].json, 8, 4);
        CHECK_MSG(bm == NULL && strstr(sf_error_message(), bad[i].msg), "%s: got '%s'", bad[i].json,
                  bm ? "(accepted)" : sf_error_message());
        if (bm) sf_mixer_destroy(bm);
    }
    /* bad options are reported with their path, not crashed on */
    CHECK(make_mixer("{\"kind\":\"softmax\",\"n_heads\":3}", 8, 4) == NULL &&
          strstr(sf_error_message(), "blocks[0].mixer: n_heads: 3 does not divide d_model 8"));
    CHECK(make_mixer("{\"kind\":\"rpe\",\"feature_map\":\"softmax\"}", 8, 4) == NULL &&
          strstr(sf_error_message(), "blocks[0].mixer.feature_map"));
    CHECK(make_mixer("{\"kind\":\"rpe\",\"n_features\":8}", 8, 4) == NULL &&
          strstr(sf_error_message(), "blocks[0].mixer: n_features: only used with feature_map favor"));
    CHECK(make_mixer("{\"kind\":\"rpe\",\"feature_map\":\"favor\",\"n_features\":0}", 8, 4) == NULL &&
          strstr(sf_error_message(), "blocks[0].mixer.n_features: must be >= 1"));
    CHECK(make_mixer("{\"kind\":\"nope\"}", 8, 4) == NULL &&
          strstr(sf_error_message(), "blocks[0].mixer.kind: unknown mixer 'nope' (known: softmax"));
    return test_finish();
}
