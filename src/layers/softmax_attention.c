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
#include "kernels/attention.h"
#include "layers/layer.h"
#include "layers/attention_proj.h"
#include "layers/mixers.h"

typedef struct {
    sf_attention_proj proj;
    int d, H, Dh, causal, max_T;
    float scale;
    /* saved by forward */
    const float *x;
    float *qkv_buf, *a, *lse;
} sf_softmax_attention;

static void attn_declare(sf_mixer *m, sf_params *ps, const char *prefix) {
    sf_softmax_attention *s = m->self;
    sf_attention_proj_declare(&s->proj, ps, prefix, s->d);
}

static void attn_init(sf_mixer *m, sf_rng *rng) {
    sf_softmax_attention *s = m->self;
    sf_attention_proj_init(&s->proj, rng);
}

static void attn_forward(sf_mixer *m, sf_ctx *ctx, const float *x, float *y) {
    sf_softmax_attention *s = m->self;
    long N = (long)ctx->B * ctx->T;
    s->x = x;
    s->qkv_buf = sf_arena_push(ctx->arena, (size_t)N * 3 * s->d);
    s->a = sf_arena_push(ctx->arena, (size_t)N * s->d);
    s->lse = sf_arena_push(ctx->arena, (size_t)N * s->H);
    if (sf_arena_planning(ctx->arena)) return;
    sf_linear_forward(&s->proj.qkv, s->qkv_buf, x, N);
    const float *q = s->qkv_buf, *k = q + s->d, *v = q + 2 * s->d;
    sf_attention_forward(s->a, s->d, s->lse, q, k, v, 3 * s->d, ctx->B, ctx->T, s->H, s->Dh,
                         s->scale, s->causal, NULL);
    sf_linear_forward(&s->proj.out, y, s->a, N);
}

static void attn_backward(sf_mixer *m, sf_ctx *ctx, const float *dy, float *dx) {
    sf_softmax_attention *s = m->self;
    long N = (long)ctx->B * ctx->T;
    size_t mark = sf_arena_mark(ctx->arena);
    float *da = sf_arena_push(ctx->arena, (size_t)N * s->d);
    float *dqkv = sf_arena_push(ctx->arena, (size_t)N * 3 * s->d);
    if (!sf_arena_planning(ctx->arena)) {
        sf_linear_backward(&s->proj.out, da, dy, s->a, N);
        const float *q = s->qkv_buf, *k = q + s->d, *v = q + 2 * s->d;
        sf_attention_backward(dqkv, dqkv + s->d, dqkv + 2 * s->d, da, s->d, s->a, s->lse, q, k,
                              v, 3 * s->d, ctx->B, ctx->T, s->H, s->Dh, s->scale, s->causal, NULL);
        sf_linear_backward(&s->proj.qkv, dx, dqkv, s->x, N);
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
    float *qkv = sf_malloc((size_t)4 * s->d * sizeof(float)), *a = qkv + 3 * s->d;
    sf_linear_forward(&s->proj.qkv, qkv, x_t, 1);
    memcpy(kc + (size_t)t * s->d, qkv + s->d, (size_t)s->d * sizeof(float));
    memcpy(vc + (size_t)t * s->d, qkv + 2 * s->d, (size_t)s->d * sizeof(float));
    sf_attention_step(a, qkv, kc, vc, t + 1, s->H, s->Dh, s->scale);
    sf_linear_forward(&s->proj.out, y_t, a, 1);
    free(qkv);
}

static void attn_destroy(sf_mixer *m) { free(m->self); }

static const sf_mixer_ops attn_ops = {"softmax", attn_declare, attn_init, attn_forward,
                                      attn_backward, attn_state_floats, attn_step, attn_destroy};

sf_mixer *sf_softmax_attention_create(const sf_mixer_opts *o) {
    if (o->n_heads <= 0 || o->d_model % o->n_heads != 0) {
        sf_errorf("softmax attention: n_heads (%d) must be positive and divide d_model (%d)",
                  o->n_heads, o->d_model);
        return NULL;
    }
    sf_softmax_attention *s = sf_calloc(1, sizeof *s);
    s->d = o->d_model;
    s->H = o->n_heads;
    s->Dh = o->d_model / o->n_heads;
    s->causal = o->causal;
    s->max_T = o->max_T;
    s->scale = 1.0f / sqrtf((float)s->Dh);
    sf_mixer *m = sf_calloc(1, sizeof *m);
    m->ops = &attn_ops;
    m->d = o->d_model;
    m->self = s;
    return m;
}
