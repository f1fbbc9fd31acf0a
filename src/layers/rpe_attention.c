/* Token mixer "rpe": kernelized attention with relative positional encoding (Luo et al., NeurIPS
 * 2021, "Stable, Fast and Accurate: Kernelized Attention with Relative Positional Encoding"):
 *   qkv = x Wqkv^T + b  (as "softmax" and "linear": <prefix>.qkv, <prefix>.out)
 *   out_i = sum_j c_{j-i} phi(q_i).phi(k_j) v_j / (sum_j c_{j-i} phi(q_i).phi(k_j) + eps), per head
 *   y = out Wout^T + b
 * with c_m = exp(b_m) for the offsets m = j - i in -(max_T-1) .. max_T-1, one learned table per
 * head: <prefix>.rpe_bias [H, 2*max_T - 1], initialised to 0 (c = 1: the mixer starts as plain
 * kernelized attention; the paper does not state an initialisation that we could find). The
 * Toeplitz products are computed with FFTs in O(T log T), or directly in O(T^2) where that is
 * cheaper (short sequences; option algorithm, kernels/rpe_attention.h).
 *
 * phi is the feature map (option feature_map): elu (elu(x) + 1, as "linear"), relu (max(x, 0)),
 * or favor: the paper's choice, Performer's FAVOR+ positive random features (kernels/feature_maps.h)
 * with n_features features per head from the layer's projection buffer <prefix>.projection
 * [n_features, Dh] (drawn at init from the seed, stored in checkpoints, never redrawn), applied to
 * l2-normalised q and k: the paper's "stable" variant. Keys use the per-sequence max stabiliser
 * (bidirectional) or the causal-safe bound (causal), exactly as the "linear" mixer's favor map
 * does. Plain (unnormalised) FAVOR+ is the "linear" mixer's feature_map favor; it is not offered
 * here because its stabilisers, constants for the gradient, do not cancel against this mixer's
 * normaliser eps once |q|, |k| grow (finite differences disagreed by up to 40% at |x| ~ 3), while
 * with unit-norm q and k every exponent is bounded and they do (FD checks in test_layers).
 *
 * step (causal only): a general learned table c breaks the O(1) linear-attention recurrence (each
 * past key's weight c_{j-t} changes with t; only special tables, such as c_m = lambda^|m|, give a
 * recurrence), so the state is a history cache of phi(k_j) and v_j for max_T tokens (like
 * softmax's KV cache) and each step costs O(t * d). */
#include <math.h>
#include <omp.h>
#include <string.h>

#include "core/error.h"
#include "core/scratch.h"
#include "kernels/activations.h"
#include "kernels/feature_maps.h"
#include "kernels/rpe_attention.h"
#include "layers/attention_proj.h"
#include "layers/layer.h"
#include "layers/mixers.h"

typedef enum { RPE_FEATURES_ELU, RPE_FEATURES_RELU, RPE_FEATURES_FAVOR } rpe_feature_kind;

/* linear's favor default (layers/linear_attention.c) */
#define RPE_DEFAULT_FEATURES 64

/* step keeps one head's numerator on the stack */
#define SF_RPE_STEP_MAX_DH 1024

typedef struct {
    sf_attention_proj proj;
    float *bias, *dbias; /* [H, 2*max_T - 1] */
    float *W;            /* favor: projection buffer [M, Dh] */
    int d, H, Dh, M, causal, max_T, algo, l2;
    rpe_feature_kind features;
} sf_rpe_attention;

/* What forward saves for backward (in the caller's context). */
typedef struct {
    const float *x;
    float *qkv, *fq, *fk, *a, *den;
} rpe_saved;

/* ---- the feature map: one call maps q (or k) rows to feature rows, one call back ------------- */

/* Features per head: Dh for the elementwise maps, n_features for favor. */
static int feature_count(const sf_rpe_attention *s, int n_features) {
    return s->features == RPE_FEATURES_FAVOR ? n_features : s->Dh;
}

/* favor: one call per (sequence, head) over its n valid rows (the key stabiliser is a max over
 * them); padded rows of phi are set to 0, of dx too. */
static void favor_rows(const sf_rpe_attention *s, float *out, const float *dphi, const float *x,
                       int ldx, int B, int T, const int *lens, int key) {
    const int H = s->H, Dh = s->Dh, M = s->M, HM = H * M;
    const sf_favor_role role = !key ? SF_FAVOR_QUERY : s->causal ? SF_FAVOR_KEY_CAUSAL : SF_FAVOR_KEY;
    const long BH = (long)B * H;
#pragma omp parallel for schedule(static) if (BH * (long)T * M * Dh >= 32768L)
    for (long bh = 0; bh < BH; bh++) {
        const int b = (int)(bh / H), h = (int)(bh % H), n = lens ? lens[b] : T;
        const float *xh = x + (size_t)b * T * ldx + (size_t)h * Dh;
        const size_t fi = (size_t)b * T * HM + (size_t)h * M;
        if (!dphi) { /* forward: out = phi [B*T, H, M] */
            sf_favor_features_forward(out + fi, HM, xh, ldx, n, Dh, s->W, M, role, s->l2);
            for (int r = n; r < T; r++) memset(out + fi + (size_t)r * HM, 0, (size_t)M * sizeof(float));
        } else { /* backward: out = dx, rows of stride ldx */
            float *dxh = out + (size_t)b * T * ldx + (size_t)h * Dh;
            sf_favor_features_backward(dxh, ldx, dphi + fi, HM, xh, ldx, n, Dh, s->W, M, role, s->l2);
            for (int r = n; r < T; r++) memset(dxh + (size_t)r * ldx, 0, (size_t)Dh * sizeof(float));
        }
    }
}

/* phi[r][h][0..M) = phi(x[r*ldx + h*Dh .. + Dh)) for the B*T rows (phi is [B*T, H, M]); key:
 * these are keys (favor's stabiliser differs for queries and keys). */
static void features_forward(const sf_rpe_attention *s, float *phi, const float *x, int ldx,
                             int B, int T, const int *lens, int key) {
    if (s->features == RPE_FEATURES_FAVOR) {
        favor_rows(s, phi, NULL, x, ldx, B, T, lens, key);
        return;
    }
    long rows = (long)B * T;
    int HD = s->H * s->Dh; /* M == Dh for the elementwise maps */
    if (s->features == RPE_FEATURES_ELU) sf_elu1_forward_rows(phi, HD, x, ldx, rows, HD);
    else sf_relu_features_forward(phi, HD, x, ldx, (int)rows, HD);
}

/* dx[r*ldx + h*Dh ..] = (d phi / d x)^T dphi[r][h] (overwrites). Padded rows (lens) hold garbage
 * q and k and get dphi = 0; favor, whose derivative could overflow there (exp of a large
 * projection), writes 0 for them rather than computing 0 * inf. */
static void features_backward(const sf_rpe_attention *s, float *dx, int ldx, const float *dphi,
                              const float *x, int B, int T, const int *lens, int key) {
    if (s->features == RPE_FEATURES_FAVOR) {
        favor_rows(s, dx, dphi, x, ldx, B, T, lens, key);
        return;
    }
    long rows = (long)B * T;
    int HD = s->H * s->Dh;
    if (s->features == RPE_FEATURES_ELU) sf_elu1_backward_rows(dx, ldx, dphi, HD, x, ldx, rows, HD);
    else sf_relu_features_backward(dx, ldx, dphi, HD, x, ldx, (int)rows, HD);
}

/* ---- the mixer ------------------------------------------------------------------------------ */

static int n_offsets(const sf_rpe_attention *s) { return 2 * s->max_T - 1; }

static void rpe_declare(sf_mixer *m, sf_params *ps, const char *prefix) {
    sf_rpe_attention *s = m->self;
    sf_attention_proj_declare(&s->proj, ps, prefix, s->d);
    char buf[SF_PARAM_NAME_MAX];
    snprintf(buf, sizeof buf, "%s.rpe_bias", prefix);
    int64_t shape[2] = {s->H, n_offsets(s)};
    sf_params_declare(ps, buf, 2, shape, &s->bias, &s->dbias, 1);
    if (s->features == RPE_FEATURES_FAVOR) {
        snprintf(buf, sizeof buf, "%s.projection", prefix);
        sf_params_declare_buffer(ps, buf, 2, (int64_t[]){s->M, s->Dh}, &s->W);
    }
    m->slot = sf_params_reserve_saved(ps, sizeof(rpe_saved));
}

static void rpe_init(sf_mixer *m, sf_rng *rng) {
    sf_rpe_attention *s = m->self;
    sf_attention_proj_init(&s->proj, rng);
    memset(s->bias, 0, (size_t)s->H * n_offsets(s) * sizeof(float));
    if (s->features == RPE_FEATURES_FAVOR) sf_favor_draw_projection(s->W, s->M, s->Dh, rng);
}

static sf_rpe_shape shape_of(const sf_rpe_attention *s, const sf_ctx *ctx) {
    return (sf_rpe_shape){ctx->B, ctx->T, s->H, s->M, s->Dh, s->max_T, s->causal, ctx->lens, s->algo};
}

/* The kernel's scratch (doubles) as floats from the arena (64-byte aligned). */
static double *push_scratch(sf_arena *a, const sf_rpe_shape *sh, int workers) {
    return (double *)(void *)sf_arena_push(a, 2 * sf_rpe_attention_scratch_doubles(sh, workers));
}

static void rpe_forward(sf_mixer *m, sf_ctx *ctx, const float *x, float *y) {
    const sf_rpe_attention *s = m->self;
    rpe_saved *sv = SF_SAVED(ctx, m->slot, rpe_saved);
    long N = (long)ctx->B * ctx->T;
    sf_rpe_shape sh = shape_of(s, ctx);
    int workers = omp_get_max_threads();
    sv->x = x;
    sv->qkv = sf_arena_push(ctx->arena, (size_t)N * 3 * s->d);
    sv->fq = sf_arena_push(ctx->arena, (size_t)N * s->H * s->M);
    sv->fk = sf_arena_push(ctx->arena, (size_t)N * s->H * s->M);
    sv->a = sf_arena_push(ctx->arena, (size_t)N * s->d);
    sv->den = sf_arena_push(ctx->arena, (size_t)ctx->B * s->H * ctx->T);
    size_t mark = sf_arena_mark(ctx->arena);
    double *scratch = push_scratch(ctx->arena, &sh, workers);
    if (!sf_arena_planning(ctx->arena)) {
        sf_linear_forward(&s->proj.qkv, sv->qkv, x, N);
        features_forward(s, sv->fq, sv->qkv, 3 * s->d, ctx->B, ctx->T, ctx->lens, 0);
        features_forward(s, sv->fk, sv->qkv + s->d, 3 * s->d, ctx->B, ctx->T, ctx->lens, 1);
        sf_rpe_attention_forward(sv->a, s->d, sv->den, sv->fq, sv->fk, sv->qkv + 2 * s->d, 3 * s->d,
                                 s->bias, &sh, scratch, workers);
        sf_linear_forward(&s->proj.out, y, sv->a, N);
    }
    sf_arena_reset_to(ctx->arena, mark);
}

static void rpe_backward(sf_mixer *m, sf_ctx *ctx, const float *dy, float *dx) {
    sf_rpe_attention *s = m->self;
    const rpe_saved *sv = SF_SAVED(ctx, m->slot, rpe_saved);
    long N = (long)ctx->B * ctx->T;
    sf_rpe_shape sh = shape_of(s, ctx);
    int workers = omp_get_max_threads();
    size_t mark = sf_arena_mark(ctx->arena);
    float *da = sf_arena_push(ctx->arena, (size_t)N * s->d);
    float *dqkv = sf_arena_push(ctx->arena, (size_t)N * 3 * s->d);
    float *dfq = sf_arena_push(ctx->arena, (size_t)N * s->H * s->M);
    float *dfk = sf_arena_push(ctx->arena, (size_t)N * s->H * s->M);
    double *scratch = push_scratch(ctx->arena, &sh, workers);
    if (!sf_arena_planning(ctx->arena)) {
        sf_linear_backward(&s->proj.out, da, dy, sv->a, N);
        sf_rpe_attention_backward(dfq, dfk, dqkv + 2 * s->d, s->dbias, da, s->d, sv->a, sv->den,
                                  sv->fq, sv->fk, sv->qkv + 2 * s->d, 3 * s->d, s->bias, &sh,
                                  scratch, workers);
        /* padded rows have dphi = 0, and the maps' derivatives are finite: dq, dk rows are 0 */
        features_backward(s, dqkv, 3 * s->d, dfq, sv->qkv, ctx->B, ctx->T, ctx->lens, 0);
        features_backward(s, dqkv + s->d, 3 * s->d, dfk, sv->qkv + s->d, ctx->B, ctx->T, ctx->lens, 1);
        sf_linear_backward(&s->proj.qkv, dx, dqkv, sv->x, N);
    }
    sf_arena_reset_to(ctx->arena, mark);
}

/* Streaming state: phi(k_j) [max_T][H*M] then v_j [max_T][d] for the tokens seen so far. */
static size_t rpe_state_floats(const sf_mixer *m) {
    const sf_rpe_attention *s = m->self;
    return (size_t)s->max_T * ((size_t)s->H * s->M + s->d);
}

static void rpe_step(const sf_mixer *m, const float *x_t, const float *state_in, float *state_out,
                     float *y_t, int t) {
    const sf_rpe_attention *s = m->self;
    SF_ASSERT(s->causal && "streaming needs a causal mixer");
    SF_ASSERT(t >= 0 && t < s->max_T);
    if (state_out != state_in) memcpy(state_out, state_in, rpe_state_floats(m) * sizeof(float));
    int HM = s->H * s->M, d = s->d, Dh = s->Dh;
    float *kc = state_out, *vc = state_out + (size_t)s->max_T * HM;
    size_t scratch = sf_scratch_mark(); /* no allocation per step */
    float *qkv = sf_scratch_push((size_t)4 * d + HM), *a = qkv + 3 * d, *fq = a + d;
    sf_linear_forward(&s->proj.qkv, qkv, x_t, 1);
    features_forward(s, fq, qkv, 3 * d, 1, 1, NULL, 0);
    features_forward(s, kc + (size_t)t * HM, qkv + d, 3 * d, 1, 1, NULL, 1); /* causal: the bound */
    memcpy(vc + (size_t)t * d, qkv + 2 * d, (size_t)d * sizeof(float));
    for (int h = 0; h < s->H; h++) {
        const float *bh = s->bias + (size_t)h * n_offsets(s);
        double num[SF_RPE_STEP_MAX_DH], den = 0;
        for (int c = 0; c < Dh; c++) num[c] = 0;
        for (int j = 0; j <= t; j++) {
            const float *fk = kc + (size_t)j * HM + (size_t)h * s->M, *v = vc + (size_t)j * d + h * Dh;
            double dot = 0;
            for (int f = 0; f < s->M; f++) dot += (double)fq[h * s->M + f] * fk[f];
            double w = exp((double)bh[j - t + s->max_T - 1]) * dot;
            for (int c = 0; c < Dh; c++) num[c] += w * v[c];
            den += w;
        }
        for (int c = 0; c < Dh; c++) a[h * Dh + c] = (float)(num[c] / (den + SF_RPE_ATTENTION_EPS));
    }
    sf_linear_forward(&s->proj.out, y_t, a, 1);
    sf_scratch_release(scratch);
}

static void rpe_destroy(sf_mixer *m) { free(m->self); }

/* projections 8*T*d^2, plus per head either (FFT path) M*(Dh+1) Toeplitz products of two real
 * FFTs of size N (~2.5 N log2 N each, plus the spectrum product 6*(N/2)) and the contraction with
 * phi(q) (2*T each), or (direct path) T^2 pairs (half when causal) of 2*(M + Dh + 1). */
static double rpe_flops(const sf_mixer *m, int T) {
    const sf_rpe_attention *s = m->self;
    sf_rpe_shape sh = {1, T, s->H, s->M, s->Dh, s->max_T, s->causal, NULL, s->algo};
    double d = s->d, t = T, N = 1;
    while (N < 2 * t) N *= 2;
    double per_product = 2 * 2.5 * N * log2(N) + 3 * N + 2 * t;
    double mix = sf_rpe_attention_uses_fft(&sh)
                     ? (double)s->H * s->M * (s->Dh + 1) * per_product
                     : (s->causal ? 0.5 : 1.0) * t * t * s->H * 2.0 * (s->M + s->Dh + 1);
    double favor = s->features == RPE_FEATURES_FAVOR ? 4.0 * t * s->H * s->M * s->Dh : 0; /* W q, W k */
    return 8 * t * d * d + mix + favor;
}

static const sf_mixer_ops rpe_ops = {rpe_declare,      rpe_init, rpe_forward, rpe_backward,
                                     rpe_state_floats, rpe_step, rpe_destroy, rpe_flops};

static const sf_option rpe_options[] = {
    {"n_heads", SF_OPT_INT, 4, NULL, 1, 4096, NULL, "attention heads (must divide d_model)"},
    {"causal", SF_OPT_BOOL, 0, NULL, 0, 1, NULL, "token t sees only tokens <= t"},
    {"feature_map", SF_OPT_CHOICE, 0, "elu", 0, 0, "elu|relu|favor",
     "phi applied to each head's q and k (elu: elu(x)+1, relu: max(x,0), favor: FAVOR+ random "
     "features, the paper's)"},
    {"n_features", SF_OPT_INT, RPE_DEFAULT_FEATURES, NULL, 1, 65536, NULL,
     "favor: random features per head (rows of the layer's projection buffer)"},
    {"algorithm", SF_OPT_CHOICE, 0, "auto", 0, 0, "auto|fft|direct",
     "how the sums are computed (same result): fft O(T log T), direct O(T^2), auto the cheaper"},
};

static sf_mixer *rpe_create(const sf_mixer_args *a) {
    sf_rpe_attention *s = sf_calloc(1, sizeof *s);
    if (sf_attention_heads(a, SF_RPE_STEP_MAX_DH, &s->H, &s->Dh, &s->causal)) {
        free(s);
        return NULL;
    }
    if (a->max_T < 1) {
        free(s);
        sf_errorf("rpe: the relative-position table needs max_T >= 1 (got %d)", a->max_T);
        return NULL;
    }
    const char *fm = sf_opt_str(a->opts, "feature_map");
    s->features = !strcmp(fm, "relu") ? RPE_FEATURES_RELU
                  : !strcmp(fm, "favor") ? RPE_FEATURES_FAVOR : RPE_FEATURES_ELU;
    int n_features = sf_opt_int(a->opts, "n_features");
    s->l2 = 1;
    if (s->features != RPE_FEATURES_FAVOR && n_features != RPE_DEFAULT_FEATURES) {
        free(s);
        sf_errorf("n_features: only used with feature_map favor (feature_map is %s)", fm);
        return NULL;
    }
    const char *al = sf_opt_str(a->opts, "algorithm");
    s->algo = !strcmp(al, "fft") ? SF_RPE_FFT : !strcmp(al, "direct") ? SF_RPE_DIRECT : SF_RPE_AUTO;
    s->d = a->d_model;
    s->max_T = a->max_T;
    s->M = feature_count(s, n_features);
    sf_mixer *m = sf_mixer_wrap(&rpe_ops, a->d_model, s);
    m->can_step = s->causal;
    return m;
}

const sf_mixer_def sf_mixer_rpe = {
    .info = {"rpe",
             "kernelized attention with a learned relative-position bias per head, by FFT "
             "(Luo et al. 2021; O(T log T))",
             SF_OPTS(rpe_options)},
    .slots = SF_SLOT_TOKEN,
    .create = rpe_create,
};
