/* Token mixer "linear": kernelized attention with the elu+1 feature map (Katharopoulos et al.,
 * 2020). Same projections and parameter names as "softmax" (<prefix>.qkv, <prefix>.out), so the
 * two are drop-in replacements; cost is O(T d^2/H) instead of O(T^2 d).
 * step: causal only; the state is the running sum S = sum phi(k) v^T and z = sum phi(k), per head,
 * so streaming costs O(1) per token whatever the history length.
 * Option feature_map: elu (the default, this file's fused kernel), relu or favor (FAVOR+ random
 * features, with n_features and redraw) go through layers/feature_mixer.c. */
#include <string.h>

#include "core/error.h"
#include "core/scratch.h"
#include "kernels/linear_attention.h"
#include "layers/layer.h"
#include "layers/attention_proj.h"
#include "layers/feature_mixer.h"
#include "layers/mixers.h"

typedef struct {
    sf_attention_proj proj;
    int d, H, Dh, causal;
} sf_linear_attention;

/* What forward saves for backward (in the caller's context). */
typedef struct {
    const float *x;
    float *qkv, *a, *scratch;
} lin_saved;

static void lin_declare(sf_mixer *m, sf_params *ps, const char *prefix) {
    sf_linear_attention *s = m->self;
    sf_attention_proj_declare(&s->proj, ps, prefix, s->d);
    m->slot = sf_params_reserve_saved(ps, sizeof(lin_saved));
}

static void lin_init(sf_mixer *m, sf_rng *rng) {
    sf_linear_attention *s = m->self;
    sf_attention_proj_init(&s->proj, rng);
}

static void lin_forward(sf_mixer *m, sf_ctx *ctx, const float *x, float *y) {
    const sf_linear_attention *s = m->self;
    lin_saved *sv = SF_SAVED(ctx, m->slot, lin_saved);
    long N = (long)ctx->B * ctx->T;
    sv->x = x;
    sv->qkv = sf_arena_push(ctx->arena, (size_t)N * 3 * s->d);
    sv->a = sf_arena_push(ctx->arena, (size_t)N * s->d);
    sv->scratch = sf_arena_push(
        ctx->arena, sf_linear_attention_scratch_floats(ctx->B, ctx->T, s->H, s->Dh, s->causal));
    if (sf_arena_planning(ctx->arena)) return;
    sf_linear_forward(&s->proj.qkv, sv->qkv, x, N);
    const float *q = sv->qkv, *k = q + s->d, *v = q + 2 * s->d;
    sf_linear_attention_forward(sv->a, s->d, q, k, v, 3 * s->d, ctx->B, ctx->T, s->H, s->Dh,
                                s->causal, sv->scratch, ctx->lens);
    sf_linear_forward(&s->proj.out, y, sv->a, N);
}

static void lin_backward(sf_mixer *m, sf_ctx *ctx, const float *dy, float *dx) {
    sf_linear_attention *s = m->self;
    const lin_saved *sv = SF_SAVED(ctx, m->slot, lin_saved);
    long N = (long)ctx->B * ctx->T;
    size_t mark = sf_arena_mark(ctx->arena);
    float *da = sf_arena_push(ctx->arena, (size_t)N * s->d);
    float *dqkv = sf_arena_push(ctx->arena, (size_t)N * 3 * s->d);
    if (!sf_arena_planning(ctx->arena)) {
        sf_linear_backward(&s->proj.out, da, dy, sv->a, N);
        const float *q = sv->qkv, *k = q + s->d, *v = q + 2 * s->d;
        sf_linear_attention_backward(dqkv, dqkv + s->d, dqkv + 2 * s->d, da, s->d, q, k, v,
                                     3 * s->d, ctx->B, ctx->T, s->H, s->Dh, s->causal,
                                     sv->scratch, ctx->lens);
        sf_linear_backward(&s->proj.qkv, dx, dqkv, sv->x, N);
    }
    sf_arena_reset_to(ctx->arena, mark);
}

static size_t lin_state_floats(const sf_mixer *m) {
    const sf_linear_attention *s = m->self;
    return sf_linear_attention_state_floats(s->H, s->Dh);
}

static void lin_step(const sf_mixer *m, const float *x_t, const float *state_in, float *state_out,
                     float *y_t, int t) {
    const sf_linear_attention *s = m->self;
    (void)t;
    SF_ASSERT(s->causal && "streaming needs a causal mixer");
    size_t scratch = sf_scratch_mark(); /* no allocation per step */
    float *qkv = sf_scratch_push((size_t)4 * s->d), *a = qkv + 3 * s->d;
    sf_linear_forward(&s->proj.qkv, qkv, x_t, 1);
    sf_linear_attention_step(a, qkv, qkv + s->d, qkv + 2 * s->d, state_in, state_out, s->H, s->Dh);
    sf_linear_forward(&s->proj.out, y_t, a, 1);
    sf_scratch_release(scratch);
}

static void lin_destroy(sf_mixer *m) { free(m->self); }

/* projections 8*T*d^2, state and readout 4*T*d*Dh (plus the normaliser, 4*T*d) */
static double lin_flops(const sf_mixer *m, int T) {
    const sf_linear_attention *s = m->self;
    double d = s->d, t = T;
    return 8 * t * d * d + 4 * t * d * s->Dh + 4 * t * d;
}

static const sf_mixer_ops lin_ops = {lin_declare,      lin_init, lin_forward, lin_backward,
                                     lin_state_floats, lin_step, lin_destroy, lin_flops};

/* n_features 64 by default, not the Performer paper's Dh ln Dh: heads here are small (Dh 4-16
 * gives 6-44 features), the estimator's variance falls as 1/n_features, and 64 features cost
 * little next to the projections; a fixed default also keeps the canonical config independent
 * of d_model. */
#define LIN_DEFAULT_FEATURES 64
static const sf_option lin_options[] = {
    SF_ATTENTION_OPTION_ROWS,
    {"feature_map", SF_OPT_CHOICE, 0, "elu", 0, 0, "elu|relu|favor",
     "phi: elu(x)+1, relu(x), or favor (Performer FAVOR+ positive random features)"},
    {"n_features", SF_OPT_INT, LIN_DEFAULT_FEATURES, NULL, 1, 65536, NULL,
     "favor: random features per head (rows of the layer's projection buffer)"},
    {"redraw", SF_OPT_INT, 0, NULL, 0, 1 << 24, NULL,
     "favor: redraw the projection every N training forward calls (0: never)"},
};

static sf_mixer *lin_create(const sf_mixer_args *a) {
    const char *fmap = sf_opt_str(a->opts, "feature_map");
    int n_features = sf_opt_int(a->opts, "n_features"), redraw = sf_opt_int(a->opts, "redraw");
    if (strcmp(fmap, "favor") != 0) {
        if (n_features != LIN_DEFAULT_FEATURES) {
            sf_errorf("n_features: only used with feature_map favor (feature_map is %s)", fmap);
            return NULL;
        }
        if (redraw != 0) {
            sf_errorf("redraw: only used with feature_map favor (feature_map is %s)", fmap);
            return NULL;
        }
    }
    if (strcmp(fmap, "relu") == 0) return sf_feature_mixer_create(a, SF_FMAP_RELU, 0, 0);
    if (strcmp(fmap, "favor") == 0)
        return sf_feature_mixer_create(a, SF_FMAP_FAVOR, n_features, redraw);
    sf_linear_attention *s = sf_calloc(1, sizeof *s);
    if (sf_attention_heads(a, 1 << 12, &s->H, &s->Dh, &s->causal)) {
        free(s);
        return NULL;
    }
    s->d = a->d_model;
    sf_mixer *m = sf_mixer_wrap(&lin_ops, a->d_model, s);
    m->can_step = s->causal;
    return m;
}

const sf_mixer_def sf_mixer_linear = {
    .info = {"linear", "linear attention, feature map elu(x)+1, relu or FAVOR+ (O(T) time and memory)",
             SF_OPTS(lin_options)},
    .slots = SF_SLOT_TOKEN,
    .create = lin_create,
};
