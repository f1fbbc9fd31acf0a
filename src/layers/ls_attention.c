/* Token mixer "ls": long-short attention with the heads split into a short-range and a long-range
 * group, after Transformer-LS (Zhu et al. 2021, "Long-Short Transformer"). The first local_heads
 * heads attend within a sliding window (as "local": |i - j| <= window, or i - window <= j <= i
 * when causal); the other heads attend to the whole sequence (as "softmax", tiled, O(T) memory).
 * Same qkv / out projections and parameter names as "softmax".
 *
 * What differs from the paper (NVIDIA/transformer-ls): there, every head attends to the union
 * of a segment-wise sliding window and r "landmarks" (a dynamic low-rank projection
 * K' = softmax(X W_p)^T K), in one softmax, with DualLN (separate LayerNorms on the local and the
 * projected keys and values). Here a head is either local or global and global heads use exact
 * softmax attention: no landmarks, no DualLN, no extra parameters, so the global part costs
 * O(T^2) time (O(T) memory) rather than O(T r). This is the split the issue asks for; the
 * dynamic projection would be a separate mixer.
 *
 * step (causal only): the local heads keep a ring buffer of window+1 keys/values, the global
 * heads a KV cache of max_T; state = [window+1, Hl*Dh] keys, values, then [max_T, Hg*Dh] keys,
 * values. Padding (ctx->lens) as both kernels: padded keys excluded, padded rows 0. */
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
    int d, H, Dh, causal, window, Hl, max_T;
    float scale;
} sf_ls_attention;

typedef struct {
    const float *x;
    float *qkv, *a, *p, *lse;
} ls_saved;

static void ls_declare(sf_mixer *m, sf_params *ps, const char *prefix) {
    sf_ls_attention *s = m->self;
    sf_attention_proj_declare(&s->proj, ps, prefix, s->d);
    m->slot = sf_params_reserve_saved(ps, sizeof(ls_saved));
}

static void ls_init(sf_mixer *m, sf_rng *rng) {
    sf_ls_attention *s = m->self;
    sf_attention_proj_init(&s->proj, rng);
}

static void ls_forward(sf_mixer *m, sf_ctx *ctx, const float *x, float *y) {
    const sf_ls_attention *s = m->self;
    ls_saved *sv = SF_SAVED(ctx, m->slot, ls_saved);
    const long N = (long)ctx->B * ctx->T;
    const int d = s->d, Hg = s->H - s->Hl, off = s->Hl * s->Dh;
    sv->x = x;
    sv->qkv = sf_arena_push(ctx->arena, (size_t)N * 3 * d);
    sv->a = sf_arena_push(ctx->arena, (size_t)N * d);
    sv->p = sf_arena_push(ctx->arena,
                          (size_t)N * s->Hl * sf_local_attention_width(s->window, s->causal));
    sv->lse = sf_arena_push(ctx->arena, (size_t)N * Hg);
    if (sf_arena_planning(ctx->arena)) return;
    sf_linear_forward(&s->proj.qkv, sv->qkv, x, N);
    const float *q = sv->qkv, *k = q + d, *v = q + 2 * d;
    sf_local_attention_forward(sv->a, d, sv->p, q, k, v, 3 * d, ctx->B, ctx->T, s->Hl, s->Dh,
                               s->scale, s->window, s->causal, ctx->lens);
    sf_attention_forward(sv->a + off, d, sv->lse, q + off, k + off, v + off, 3 * d, ctx->B, ctx->T,
                         Hg, s->Dh, s->scale, s->causal, ctx->lens);
    sf_linear_forward(&s->proj.out, y, sv->a, N);
}

static void ls_backward(sf_mixer *m, sf_ctx *ctx, const float *dy, float *dx) {
    sf_ls_attention *s = m->self;
    const ls_saved *sv = SF_SAVED(ctx, m->slot, ls_saved);
    const long N = (long)ctx->B * ctx->T;
    const int d = s->d, Hg = s->H - s->Hl, off = s->Hl * s->Dh;
    size_t mark = sf_arena_mark(ctx->arena);
    float *da = sf_arena_push(ctx->arena, (size_t)N * d);
    float *dqkv = sf_arena_push(ctx->arena, (size_t)N * 3 * d);
    if (!sf_arena_planning(ctx->arena)) {
        sf_linear_backward(&s->proj.out, da, dy, sv->a, N);
        const float *q = sv->qkv, *k = q + d, *v = q + 2 * d;
        float *dq = dqkv, *dk = dqkv + d, *dv = dqkv + 2 * d;
        sf_local_attention_backward(dq, dk, dv, da, d, sv->p, q, k, v, 3 * d, ctx->B, ctx->T, s->Hl,
                                    s->Dh, s->scale, s->window, s->causal, ctx->lens);
        sf_attention_backward(dq + off, dk + off, dv + off, da + off, d, sv->a + off, sv->lse,
                              q + off, k + off, v + off, 3 * d, ctx->B, ctx->T, Hg, s->Dh, s->scale,
                              s->causal, ctx->lens);
        sf_linear_backward(&s->proj.qkv, dx, dqkv, sv->x, N);
    }
    sf_arena_reset_to(ctx->arena, mark);
}

static size_t ls_state_floats(const sf_mixer *m) {
    const sf_ls_attention *s = m->self;
    return (size_t)2 * s->Dh * ((size_t)(s->window + 1) * s->Hl + (size_t)s->max_T * (s->H - s->Hl));
}

static void ls_step(const sf_mixer *m, const float *x_t, const float *state_in, float *state_out,
                    float *y_t, int t) {
    const sf_ls_attention *s = m->self;
    SF_ASSERT(s->causal && "streaming needs a causal mixer");
    SF_ASSERT(t >= 0 && t < s->max_T);
    const int d = s->d, slots = s->window + 1, wl = s->Hl * s->Dh, wg = d - wl;
    if (state_out != state_in) memcpy(state_out, state_in, ls_state_floats(m) * sizeof(float));
    float *kl = state_out, *vl = kl + (size_t)slots * wl;
    float *kg = vl + (size_t)slots * wl, *vg = kg + (size_t)s->max_T * wg;
    size_t scratch = sf_scratch_mark(); /* no allocation per step */
    float *qkv = sf_scratch_push((size_t)4 * d), *a = qkv + 3 * d;
    sf_linear_forward(&s->proj.qkv, qkv, x_t, 1);
    const float *q = qkv, *k = qkv + d, *v = qkv + 2 * d;
    /* local heads: ring of the last window+1 tokens (softmax ignores the order of keys) */
    memcpy(kl + (size_t)(t % slots) * wl, k, (size_t)wl * sizeof(float));
    memcpy(vl + (size_t)(t % slots) * wl, v, (size_t)wl * sizeof(float));
    sf_attention_step(a, q, kl, vl, t + 1 < slots ? t + 1 : slots, s->Hl, s->Dh, s->scale);
    /* global heads: every token so far */
    memcpy(kg + (size_t)t * wg, k + wl, (size_t)wg * sizeof(float));
    memcpy(vg + (size_t)t * wg, v + wl, (size_t)wg * sizeof(float));
    sf_attention_step(a + wl, q + wl, kg, vg, t + 1, s->H - s->Hl, s->Dh, s->scale);
    sf_linear_forward(&s->proj.out, y_t, a, 1);
    sf_scratch_release(scratch);
}

static void ls_destroy(sf_mixer *m) { free(m->self); }

/* projections 8*T*d^2; local heads 4*T*keys*Dh each, global heads 4*T*T*Dh (half when causal) */
static double ls_flops(const sf_mixer *m, int T) {
    const sf_ls_attention *s = m->self;
    double d = s->d, t = T, keys = sf_local_attention_width(s->window, s->causal);
    if (keys > t) keys = t;
    return 8 * t * d * d + 4 * t * keys * s->Dh * s->Hl +
           (s->causal ? 2 : 4) * t * t * s->Dh * (s->H - s->Hl);
}

static const sf_mixer_ops ls_ops = {ls_declare,      ls_init, ls_forward, ls_backward,
                                    ls_state_floats, ls_step, ls_destroy, ls_flops};

static const sf_option ls_options[] = {
    {"n_heads", SF_OPT_INT, 4, NULL, 1, 4096, NULL, "attention heads (must divide d_model)"},
    {"causal", SF_OPT_BOOL, 0, NULL, 0, 1, NULL, "token t sees only tokens <= t"},
    {"window", SF_OPT_INT, 4, NULL, 1, 1 << 20, NULL,
     "the local heads' window (as local's); below max length - 1"},
    {"local_heads", SF_OPT_INT, 2, NULL, 1, 4096, NULL,
     "heads (the first ones) that attend locally; the others are global (< n_heads)"},
};

static sf_mixer *ls_create(const sf_mixer_args *a) {
    sf_ls_attention *s = sf_calloc(1, sizeof *s);
    if (sf_attention_heads(a, SF_ATTENTION_MAX_DH, &s->H, &s->Dh, &s->causal)) {
        free(s);
        return NULL;
    }
    s->window = sf_opt_int(a->opts, "window");
    s->Hl = sf_opt_int(a->opts, "local_heads");
    if (s->Hl >= s->H) {
        sf_errorf("local_heads: %d leaves no global head (n_heads %d); use at most %d, or the "
                  "local mixer",
                  s->Hl, s->H, s->H - 1);
        free(s);
        return NULL;
    }
    if (sf_local_window_check(s->window, a->max_T)) {
        free(s);
        return NULL;
    }
    s->d = a->d_model;
    s->max_T = a->max_T;
    s->scale = 1.0f / sqrtf((float)s->Dh);
    sf_mixer *m = sf_mixer_wrap(&ls_ops, a->d_model, s);
    m->can_step = s->causal;
    return m;
}

const sf_mixer_def sf_mixer_ls = {
    .info = {"ls", "long-short attention: local_heads sliding-window heads, the rest full softmax",
             SF_OPTS(ls_options)},
    .slots = SF_SLOT_TOKEN,
    .create = ls_create,
};
