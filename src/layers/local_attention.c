/* Token mixer "local": sliding-window multi-head softmax attention (as in Longformer's local
 * attention or Transformer-LS's short-term branch, without their chunking): query i attends to
 * keys j with |i - j| <= window, or i - window <= j <= i when causal. Same projections and
 * parameter names as "softmax" (<prefix>.qkv, <prefix>.out), so it is a drop-in replacement;
 * cost is O(T * window * d) time and O(T * window * H) memory (kernels/local_attention.h).
 * A window that reaches across the whole sequence (window >= max_T - 1) is refused: that is
 * "softmax" at a higher cost.
 * step: causal only; the state is a ring buffer of the last window+1 keys and values
 * ([window+1, d] keys then [window+1, d] values; token t in slot t mod (window+1)), so its size
 * does not depend on how many tokens have been fed. */
#include <math.h>
#include <string.h>

#include "core/error.h"
#include "core/scratch.h"
#include "kernels/attention.h"
#include "kernels/local_attention.h"
#include "layers/attention_proj.h"
#include "layers/layer.h"
#include "layers/mixers.h"

typedef struct {
    sf_attention_proj proj;
    int d, H, Dh, causal, window;
    float scale;
} sf_local_attention;

typedef struct {
    const float *x;
    float *qkv, *a, *p;
} local_saved;

static void local_declare(sf_mixer *m, sf_params *ps, const char *prefix) {
    sf_local_attention *s = m->self;
    sf_attention_proj_declare(&s->proj, ps, prefix, s->d);
    m->slot = sf_params_reserve_saved(ps, sizeof(local_saved));
}

static void local_init(sf_mixer *m, sf_rng *rng) {
    sf_local_attention *s = m->self;
    sf_attention_proj_init(&s->proj, rng);
}

static void local_forward(sf_mixer *m, sf_ctx *ctx, const float *x, float *y) {
    const sf_local_attention *s = m->self;
    local_saved *sv = SF_SAVED(ctx, m->slot, local_saved);
    long N = (long)ctx->B * ctx->T;
    int W = sf_local_attention_width(s->window, s->causal);
    sv->x = x;
    sv->qkv = sf_arena_push(ctx->arena, (size_t)N * 3 * s->d);
    sv->a = sf_arena_push(ctx->arena, (size_t)N * s->d);
    sv->p = sf_arena_push(ctx->arena, (size_t)N * s->H * W);
    if (sf_arena_planning(ctx->arena)) return;
    sf_linear_forward(&s->proj.qkv, sv->qkv, x, N);
    const float *q = sv->qkv, *k = q + s->d, *v = q + 2 * s->d;
    sf_local_attention_forward(sv->a, s->d, sv->p, q, k, v, 3 * s->d, ctx->B, ctx->T, s->H, s->Dh,
                               s->scale, s->window, s->causal, ctx->lens);
    sf_linear_forward(&s->proj.out, y, sv->a, N);
}

static void local_backward(sf_mixer *m, sf_ctx *ctx, const float *dy, float *dx) {
    sf_local_attention *s = m->self;
    const local_saved *sv = SF_SAVED(ctx, m->slot, local_saved);
    long N = (long)ctx->B * ctx->T;
    size_t mark = sf_arena_mark(ctx->arena);
    float *da = sf_arena_push(ctx->arena, (size_t)N * s->d);
    float *dqkv = sf_arena_push(ctx->arena, (size_t)N * 3 * s->d);
    if (!sf_arena_planning(ctx->arena)) {
        sf_linear_backward(&s->proj.out, da, dy, sv->a, N);
        const float *q = sv->qkv, *k = q + s->d, *v = q + 2 * s->d;
        sf_local_attention_backward(dqkv, dqkv + s->d, dqkv + 2 * s->d, da, s->d, sv->p, q, k, v,
                                    3 * s->d, ctx->B, ctx->T, s->H, s->Dh, s->scale, s->window,
                                    s->causal, ctx->lens);
        sf_linear_backward(&s->proj.qkv, dx, dqkv, sv->x, N);
    }
    sf_arena_reset_to(ctx->arena, mark);
}

static size_t local_state_floats(const sf_mixer *m) {
    const sf_local_attention *s = m->self;
    return (size_t)2 * (s->window + 1) * s->d;
}

static void local_step(const sf_mixer *m, const float *x_t, const float *state_in,
                       float *state_out, float *y_t, int t) {
    const sf_local_attention *s = m->self;
    SF_ASSERT(s->causal && "streaming needs a causal mixer");
    SF_ASSERT(t >= 0);
    const int slots = s->window + 1;
    size_t n = local_state_floats(m);
    if (state_out != state_in) memcpy(state_out, state_in, n * sizeof(float));
    float *kc = state_out, *vc = state_out + (size_t)slots * s->d;
    size_t scratch = sf_scratch_mark(); /* no allocation per step */
    float *qkv = sf_scratch_push((size_t)4 * s->d), *a = qkv + 3 * s->d;
    sf_linear_forward(&s->proj.qkv, qkv, x_t, 1);
    memcpy(kc + (size_t)(t % slots) * s->d, qkv + s->d, (size_t)s->d * sizeof(float));
    memcpy(vc + (size_t)(t % slots) * s->d, qkv + 2 * s->d, (size_t)s->d * sizeof(float));
    /* The visible keys t-window..t fill min(t+1, slots) ring slots; softmax does not care about
     * their order, so the ring is attended as it lies. */
    sf_attention_step(a, qkv, kc, vc, t + 1 < slots ? t + 1 : slots, s->H, s->Dh, s->scale);
    sf_linear_forward(&s->proj.out, y_t, a, 1);
    sf_scratch_release(scratch);
}

static void local_destroy(sf_mixer *m) { free(m->self); }

/* projections 8*T*d^2; scores and weighted sum 4*d per visible key (edges not subtracted) */
static double local_flops(const sf_mixer *m, int T) {
    const sf_local_attention *s = m->self;
    double d = s->d, t = T, keys = sf_local_attention_width(s->window, s->causal);
    if (keys > t) keys = t;
    return 8 * t * d * d + 4 * t * keys * d;
}

static const sf_mixer_ops local_ops = {local_declare,      local_init, local_forward,
                                       local_backward,     local_state_floats, local_step,
                                       local_destroy,      local_flops};

int sf_local_window_check(int window, int max_T) {
    if (window >= max_T - 1)
        return sf_errorf("window: %d covers the whole sequence (%d tokens: every key is within %d "
                         "positions); use a window below %d, or the softmax mixer",
                         window, max_T, max_T - 1, max_T - 1);
    return SF_OK;
}

static const sf_option local_options[] = {
    {"n_heads", SF_OPT_INT, 4, NULL, 1, 4096, NULL, "attention heads (must divide d_model)"},
    {"causal", SF_OPT_BOOL, 0, NULL, 0, 1, NULL, "token t sees only tokens <= t"},
    {"window", SF_OPT_INT, 4, NULL, 1, 1 << 20, NULL,
     "keys within this many positions of the query (causal: before it); below max length - 1"},
};

static sf_mixer *local_create(const sf_mixer_args *a) {
    sf_local_attention *s = sf_calloc(1, sizeof *s);
    if (sf_attention_heads(a, SF_ATTENTION_MAX_DH, &s->H, &s->Dh, &s->causal)) {
        free(s);
        return NULL;
    }
    s->window = sf_opt_int(a->opts, "window");
    if (sf_local_window_check(s->window, a->max_T)) {
        free(s);
        return NULL;
    }
    s->d = a->d_model;
    s->scale = 1.0f / sqrtf((float)s->Dh);
    sf_mixer *m = sf_mixer_wrap(&local_ops, a->d_model, s);
    m->can_step = s->causal;
    return m;
}

const sf_mixer_def sf_mixer_local = {
    .info = {"local", "sliding-window softmax attention (O(T*window) time and memory)",
             SF_OPTS(local_options)},
    .slots = SF_SLOT_TOKEN,
    .create = local_create,
};
