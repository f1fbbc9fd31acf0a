/* Token mixer "softmax": multi-head scaled dot-product attention.
 *   qkv = x Wqkv^T + b   [N, 3d]  (q | k | v, heads interleaved as view(B, T, H, d/H))
 *   a   = softmax(q k^T / sqrt(d/H) [+ causal mask]) v, per head, by the tiled online-softmax
 *         kernel: forward saves only the output and one log-sum-exp per row, so memory is O(T).
 *   y   = a Wout^T + b
 * Names: <prefix>.qkv.{weight,bias} [3d, d], <prefix>.out.{weight,bias} [d, d].
 * step: causal only; the state is a KV cache [max_T, d] of keys then [max_T, d] of values. */
#include <math.h>
#include <string.h>

#include "core/error.h"
#include "core/scratch.h"
#include "kernels/attention.h"
#include "layers/layer.h"
#include "layers/attention_proj.h"
#include "layers/mixers.h"

typedef struct {
    sf_attention_proj proj;
    int d, H, Dh, causal, max_T;
    float scale;
} sf_softmax_attention;

/* What forward saves for backward (in the caller's context). */
typedef struct {
    const float *x;
    float *qkv, *a, *lse;
} attn_saved;

static void attn_declare(sf_mixer *m, sf_params *ps, const char *prefix) {
    sf_softmax_attention *s = m->self;
    sf_attention_proj_declare(&s->proj, ps, prefix, s->d);
    m->slot = sf_params_reserve_saved(ps, sizeof(attn_saved));
}

static void attn_init(sf_mixer *m, sf_rng *rng) {
    sf_softmax_attention *s = m->self;
    sf_attention_proj_init(&s->proj, rng);
}

static void attn_forward(sf_mixer *m, sf_ctx *ctx, const float *x, float *y) {
    const sf_softmax_attention *s = m->self;
    attn_saved *sv = SF_SAVED(ctx, m->slot, attn_saved);
    long N = (long)ctx->B * ctx->T;
    sv->x = x;
    sv->qkv = sf_arena_push(ctx->arena, (size_t)N * 3 * s->d);
    sv->a = sf_arena_push(ctx->arena, (size_t)N * s->d);
    sv->lse = sf_arena_push(ctx->arena, (size_t)N * s->H);
    if (sf_arena_planning(ctx->arena)) return;
    sf_linear_forward(&s->proj.qkv, sv->qkv, x, N);
    const float *q = sv->qkv, *k = q + s->d, *v = q + 2 * s->d;
    sf_attention_forward(sv->a, s->d, sv->lse, q, k, v, 3 * s->d, ctx->B, ctx->T, s->H, s->Dh,
                         s->scale, s->causal, ctx->lens);
    sf_linear_forward(&s->proj.out, y, sv->a, N);
}

static void attn_backward(sf_mixer *m, sf_ctx *ctx, const float *dy, float *dx) {
    sf_softmax_attention *s = m->self;
    const attn_saved *sv = SF_SAVED(ctx, m->slot, attn_saved);
    long N = (long)ctx->B * ctx->T;
    size_t mark = sf_arena_mark(ctx->arena);
    float *da = sf_arena_push(ctx->arena, (size_t)N * s->d);
    float *dqkv = sf_arena_push(ctx->arena, (size_t)N * 3 * s->d);
    if (!sf_arena_planning(ctx->arena)) {
        sf_linear_backward(&s->proj.out, da, dy, sv->a, N);
        const float *q = sv->qkv, *k = q + s->d, *v = q + 2 * s->d;
        sf_attention_backward(dqkv, dqkv + s->d, dqkv + 2 * s->d, da, s->d, sv->a, sv->lse, q, k,
                              v, 3 * s->d, ctx->B, ctx->T, s->H, s->Dh, s->scale, s->causal,
                              ctx->lens);
        sf_linear_backward(&s->proj.qkv, dx, dqkv, sv->x, N);
    }
    sf_arena_reset_to(ctx->arena, mark);
}

static size_t attn_state_floats(const sf_mixer *m) {
    const sf_softmax_attention *s = m->self;
    return (size_t)2 * s->max_T * s->d;
}

static void attn_step(const sf_mixer *m, const float *x_t, const float *state_in, float *state_out,
                      float *y_t, int t) {
    const sf_softmax_attention *s = m->self;
    SF_ASSERT(s->causal && "streaming needs a causal mixer");
    SF_ASSERT(t >= 0 && t < s->max_T);
    size_t n = attn_state_floats(m);
    if (state_out != state_in) memcpy(state_out, state_in, n * sizeof(float));
    float *kc = state_out, *vc = state_out + (size_t)s->max_T * s->d;
    size_t scratch = sf_scratch_mark(); /* no allocation per step */
    float *qkv = sf_scratch_push((size_t)4 * s->d), *a = qkv + 3 * s->d;
    sf_linear_forward(&s->proj.qkv, qkv, x_t, 1);
    memcpy(kc + (size_t)t * s->d, qkv + s->d, (size_t)s->d * sizeof(float));
    memcpy(vc + (size_t)t * s->d, qkv + 2 * s->d, (size_t)s->d * sizeof(float));
    sf_attention_step(a, qkv, kc, vc, t + 1, s->H, s->Dh, s->scale);
    sf_linear_forward(&s->proj.out, y_t, a, 1);
    sf_scratch_release(scratch);
}

static void attn_destroy(sf_mixer *m) { free(m->self); }

/* projections 8*T*d^2 (qkv and out), scores and weighted sum 4*T*T*d (half when causal) */
static double attn_flops(const sf_mixer *m, int T) {
    const sf_softmax_attention *s = m->self;
    double d = s->d, t = T;
    return 8 * t * d * d + (s->causal ? 2 : 4) * t * t * d;
}

static const sf_mixer_ops attn_ops = {attn_declare,      attn_init, attn_forward, attn_backward,
                                      attn_state_floats, attn_step, attn_destroy, attn_flops};

static sf_mixer *attn_create(const sf_mixer_args *a) {
    sf_softmax_attention *s = sf_calloc(1, sizeof *s);
    if (sf_attention_heads(a, SF_ATTENTION_MAX_DH, &s->H, &s->Dh, &s->causal)) {
        free(s);
        return NULL;
    }
    s->d = a->d_model;
    s->max_T = a->max_T;
    s->scale = 1.0f / sqrtf((float)s->Dh);
    sf_mixer *m = sf_mixer_wrap(&attn_ops, a->d_model, s);
    m->can_step = s->causal;
    return m;
}

const sf_mixer_def sf_mixer_softmax = {
    .info = {"softmax", "multi-head scaled dot-product attention (tiled online softmax, O(T) memory)",
             SF_OPTS(sf_attention_options)},
    .slots = SF_SLOT_TOKEN,
    .create = attn_create,
};
