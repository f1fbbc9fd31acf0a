/* Token mixer "softmax": multi-head scaled dot-product attention.
 *   qkv = x Wqkv^T + b   [N, 3d]  (q | k | v, heads interleaved as view(B, T, H, d/H))
 *   a   = softmax(q k^T / sqrt(d/H) [+ causal mask]) v, per head, by the tiled online-softmax
 *         kernel: forward saves only the output and one log-sum-exp per row, so memory is O(T).
 *   y   = a Wout^T + b
 * Names: <prefix>.qkv.{weight,bias} [3d, d], <prefix>.out.{weight,bias} [d, d].
 * step: causal only; the state is a KV cache [max_T, d] of keys then [max_T, d] of values.
 *
 * Positions inside attention (the model's positions object, sf_mixer_args.positions):
 *   rope: q and k of token t rotated by its absolute position (pos_offset + t; in step, t) before
 *         the scores (kernels/rope.h); the cache holds rotated keys. Needs an even head width.
 *   t5:   logits += relative_attention_bias[bucket(j - i), h] (kernels/attention_bias.h, T5's
 *         buckets; bidirectional unless causal), by the plain biased kernel instead of the tiled
 *         one. Name: <prefix>.relative_attention_bias [num_buckets, H] (as T5's nn.Embedding),
 *         init N(0, d^-1/2), no weight decay. Each attention layer has its own table (T5 shares
 *         the first layer's across the stack).
 *
 * attn_dropout p > 0: while training, dropout on the attention weights, as the official
 * iTransformer / Informer / Transformer attention (`dropout(softmax(scores)) @ V`). The tiled
 * kernel never forms the weights, so training then takes the materialised path
 * (kernels/attention_probs.h: P [B, H, T, T] floats, its mask bytes and the dropped copy, O(T^2)
 * memory); evaluation and streaming keep the O(T) tiled kernels. */
#include <math.h>
#include <string.h>

#include "core/error.h"
#include "core/scratch.h"
#include "kernels/attention.h"
#include "kernels/attention_bias.h"
#include "kernels/attention_probs.h"
#include "kernels/activations.h"
#include "kernels/rope.h"
#include "layers/layer.h"
#include "layers/attention_proj.h"
#include "layers/mixers.h"
#include "core/profile.h"

typedef struct {
    sf_attention_proj proj;
    int d, H, Dh, causal, max_T;
    float scale;
    float attn_drop;        /* dropout on the attention weights while training */
    int rope;               /* rotary q, k */
    float rope_base;
    int t5, t5_buckets;     /* T5 relative bias */
    int *bucket_of;         /* [2 max_T - 1]: bucket of offset j - i at column j - i + max_T - 1 */
    float *rel_bias, *drel_bias; /* [t5_buckets, H] */
} sf_softmax_attention;

/* What forward saves for backward (in the caller's context). */
typedef struct {
    const float *x;
    float *qkv, *a, *lse;
    float *bias; /* t5: the per-offset logit bias [H, 2 max_T - 1] */
    float *P;    /* attn_dropout while training: the weights [B, H, T, T] (else NULL) */
    uint8_t *mask; /* and their keep mask */
} attn_saved;

/* t5: out[h, o] = relative_attention_bias[bucket_of[o], h] for every offset column o. */
static void t5_offset_table(const sf_softmax_attention *s, float *out) {
    int W = 2 * s->max_T - 1;
    for (int h = 0; h < s->H; h++)
        for (int o = 0; o < W; o++) out[(long)h * W + o] = s->rel_bias[(long)s->bucket_of[o] * s->H + h];
}

static void attn_declare(sf_mixer *m, sf_params *ps, const char *prefix) {
    sf_softmax_attention *s = m->self;
    sf_attention_proj_declare(&s->proj, ps, prefix, s->d);
    if (s->t5) {
        char buf[SF_PARAM_NAME_MAX];
        snprintf(buf, sizeof buf, "%s.relative_attention_bias", prefix);
        sf_params_declare(ps, buf, 2, (int64_t[]){s->t5_buckets, s->H}, &s->rel_bias, &s->drel_bias, 1);
    }
    m->slot = sf_params_reserve_saved(ps, sizeof(attn_saved));
}

static void attn_init(sf_mixer *m, sf_rng *rng) {
    sf_softmax_attention *s = m->self;
    sf_attention_proj_init(&s->proj, rng);
    if (s->t5) sf_rng_fill_normal(rng, s->rel_bias, (long)s->t5_buckets * s->H, 0.0f, 1.0f / sqrtf((float)s->d));
}

static void attn_forward(sf_mixer *m, sf_ctx *ctx, const float *x, float *y) {
    const sf_softmax_attention *s = m->self;
    attn_saved *sv = SF_SAVED(ctx, m->slot, attn_saved);
    long N = (long)ctx->B * ctx->T;
    sv->x = x;
    sv->qkv = sf_arena_push(ctx->arena, (size_t)N * 3 * s->d);
    sv->a = sf_arena_push(ctx->arena, (size_t)N * s->d);
    sv->lse = sf_arena_push(ctx->arena, (size_t)N * s->H);
    int W = 2 * s->max_T - 1;
    sv->bias = s->t5 ? sf_arena_push(ctx->arena, (size_t)s->H * W) : NULL;
    const int drop = ctx->training && s->attn_drop > 0.0f;
    const long NP = (long)ctx->B * s->H * ctx->T * ctx->T;
    sv->P = drop ? sf_arena_push(ctx->arena, (size_t)NP) : NULL;
    sv->mask = drop ? sf_arena_push_bytes(ctx->arena, (size_t)NP) : NULL;
    float *Pd = drop ? sf_arena_push(ctx->arena, (size_t)NP) : NULL;
    if (sf_arena_planning(ctx->arena)) return;
    SF_ASSERT(ctx->T <= s->max_T);
    sf_linear_forward(&s->proj.qkv, sv->qkv, x, N);
    if (s->rope) {
        sf_rope_rotate(sv->qkv, 3 * s->d, ctx->B, ctx->T, s->H, s->Dh, ctx->pos_offset, s->rope_base, 0);
        sf_rope_rotate(sv->qkv + s->d, 3 * s->d, ctx->B, ctx->T, s->H, s->Dh, ctx->pos_offset,
                       s->rope_base, 0);
    }
    const float *q = sv->qkv, *k = q + s->d, *v = q + 2 * s->d;
    if (s->t5) t5_offset_table(s, sv->bias);
    SF_PROF(SF_PROF_ATTENTION, if (drop) {
        sf_attention_probs_forward(sv->P, q, k, 3 * s->d, ctx->B, ctx->T, s->H, s->Dh, s->scale,
                                   s->causal, ctx->lens, sv->bias, W, s->max_T - 1);
        sf_dropout_forward(Pd, sv->mask, sv->P, NP, s->attn_drop, ctx->rng);
        sf_attention_probs_apply(sv->a, s->d, Pd, v, 3 * s->d, ctx->B, ctx->T, s->H, s->Dh, ctx->lens);
    } else if (s->t5) {
        sf_attention_bias_forward(sv->a, s->d, sv->lse, q, k, v, 3 * s->d, ctx->B, ctx->T, s->H,
                                  s->Dh, s->scale, s->causal, ctx->lens, sv->bias, W, s->max_T - 1);
    } else {
        /* lse serves only backward and the kept-forward probabilities */
        sf_attention_forward(sv->a, s->d, ctx->keep ? sv->lse : NULL, q, k, v, 3 * s->d, ctx->B,
                             ctx->T, s->H, s->Dh, s->scale, s->causal, ctx->lens);
    });
    sf_linear_forward(&s->proj.out, y, sv->a, N);
}

static void attn_backward(sf_mixer *m, sf_ctx *ctx, const float *dy, float *dx) {
    sf_softmax_attention *s = m->self;
    const attn_saved *sv = SF_SAVED(ctx, m->slot, attn_saved);
    long N = (long)ctx->B * ctx->T;
    size_t mark = sf_arena_mark(ctx->arena);
    float *da = sf_arena_push(ctx->arena, (size_t)N * s->d);
    float *dqkv = sf_arena_push(ctx->arena, (size_t)N * 3 * s->d);
    int W = 2 * s->max_T - 1;
    float *dbias = s->t5 ? sf_arena_push(ctx->arena, (size_t)s->H * W) : NULL;
    if (!sf_arena_planning(ctx->arena)) {
        sf_linear_backward(&s->proj.out, da, dy, sv->a, N);
        const float *q = sv->qkv, *k = q + s->d, *v = q + 2 * s->d;
        if (dbias) memset(dbias, 0, (size_t)s->H * W * sizeof(float));
        SF_PROF(SF_PROF_ATTENTION, if (sv->P) {
            sf_attention_probs_backward(dqkv, dqkv + s->d, dqkv + 2 * s->d, dbias, da, s->d, sv->P,
                                        sv->mask, s->attn_drop, q, k, v, 3 * s->d, ctx->B, ctx->T,
                                        s->H, s->Dh, s->scale, s->causal, ctx->lens, W, s->max_T - 1);
        } else if (s->t5) {
            sf_attention_bias_backward(dqkv, dqkv + s->d, dqkv + 2 * s->d, dbias, da, s->d, sv->a,
                                       sv->lse, q, k, v, 3 * s->d, ctx->B, ctx->T, s->H, s->Dh,
                                       s->scale, s->causal, ctx->lens, sv->bias, W, s->max_T - 1);
        } else {
            sf_attention_backward(dqkv, dqkv + s->d, dqkv + 2 * s->d, da, s->d, sv->a, sv->lse, q,
                                  k, v, 3 * s->d, ctx->B, ctx->T, s->H, s->Dh, s->scale, s->causal,
                                  ctx->lens);
        });
        if (s->t5)
            for (int h = 0; h < s->H; h++) /* offsets -> their buckets */
                for (int o = 0; o < W; o++)
                    s->drel_bias[(long)s->bucket_of[o] * s->H + h] += dbias[(long)h * W + o];
        if (s->rope) { /* the rotation's transpose takes the gradients back to q, k */
            sf_rope_rotate(dqkv, 3 * s->d, ctx->B, ctx->T, s->H, s->Dh, ctx->pos_offset, s->rope_base, 1);
            sf_rope_rotate(dqkv + s->d, 3 * s->d, ctx->B, ctx->T, s->H, s->Dh, ctx->pos_offset,
                           s->rope_base, 1);
        }
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
    if (s->rope) { /* the absolute position t */
        sf_rope_rotate(qkv, 3 * s->d, 1, 1, s->H, s->Dh, t, s->rope_base, 0);
        sf_rope_rotate(qkv + s->d, 3 * s->d, 1, 1, s->H, s->Dh, t, s->rope_base, 0);
    }
    memcpy(kc + (size_t)t * s->d, qkv + s->d, (size_t)s->d * sizeof(float));
    memcpy(vc + (size_t)t * s->d, qkv + 2 * s->d, (size_t)s->d * sizeof(float));
    if (s->t5) { /* the biases of offsets -t..0 only, in scratch sized for max_T (no growth) */
        float *bias = sf_scratch_push((size_t)s->H * s->max_T);
        for (int h = 0; h < s->H; h++)
            for (int j = 0; j <= t; j++)
                bias[(long)h * s->max_T + j] =
                    s->rel_bias[(long)s->bucket_of[j - t + s->max_T - 1] * s->H + h];
        sf_attention_bias_step(a, qkv, kc, vc, t + 1, s->H, s->Dh, s->scale, bias, s->max_T, t);
    } else {
        sf_attention_step(a, qkv, kc, vc, t + 1, s->H, s->Dh, s->scale);
    }
    sf_linear_forward(&s->proj.out, y_t, a, 1);
    sf_scratch_release(scratch);
}

static void attn_destroy(sf_mixer *m) {
    sf_softmax_attention *s = m->self;
    free(s->bucket_of);
    free(s);
}

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
    s->attn_drop = sf_opt_float(a->opts, "attn_dropout");
    const char *pk = a->positions ? sf_opt_str(a->positions, "kind") : "none";
    if (strcmp(pk, "rope") == 0) {
        if (s->Dh % 2) {
            sf_errorf("positions: rope needs an even head width (d_model/n_heads = %d)", s->Dh);
            free(s);
            return NULL;
        }
        s->rope = 1;
        s->rope_base = sf_opt_float(a->positions, "base");
    } else if (strcmp(pk, "t5") == 0) {
        s->t5 = 1;
        s->t5_buckets = sf_opt_int(a->positions, "num_buckets");
        int maxd = sf_opt_int(a->positions, "max_distance"), W = 2 * s->max_T - 1;
        int max_exact = (s->causal ? s->t5_buckets : s->t5_buckets / 2) / 2;
        if (max_exact < 1 || maxd <= max_exact) {
            sf_errorf("positions: t5 needs num_buckets >= %d and max_distance > %d (num_buckets %d, "
                      "max_distance %d)", s->causal ? 2 : 4, max_exact, s->t5_buckets, maxd);
            free(s);
            return NULL;
        }
        s->bucket_of = sf_malloc((size_t)W * sizeof(int));
        for (int o = 0; o < W; o++)
            s->bucket_of[o] = sf_t5_bucket(o - (s->max_T - 1), !s->causal, s->t5_buckets, maxd);
    }
    sf_mixer *m = sf_mixer_wrap(&attn_ops, a->d_model, s);
    m->can_step = s->causal;
    return m;
}

static const sf_option softmax_options[] = {
    SF_ATTENTION_OPTION_ROWS,
    {"attn_dropout", SF_OPT_FLOAT, 0, NULL, 0, 0.99, NULL,
     "dropout on the attention weights while training (materialises them: O(T^2) memory)"},
};

const sf_mixer_def sf_mixer_softmax = {
    .info = {"softmax", "multi-head scaled dot-product attention (tiled online softmax, O(T) memory)",
             SF_OPTS(softmax_options)},
    .slots = SF_SLOT_TOKEN,
    .takes_positions = 1,
    .create = attn_create,
};

/* ---- attention weights for pictures (layers/softmax_attention.h) ------------------------------ */

int sf_mixer_is_softmax_attention(const sf_mixer *m) { return m && m->def == &sf_mixer_softmax; }

int sf_softmax_attention_heads(const sf_mixer *m) {
    return ((const sf_softmax_attention *)m->self)->H;
}

void sf_softmax_attention_probs(const sf_mixer *m, const sf_ctx *ctx, int b, float *p) {
    const sf_softmax_attention *s = m->self;
    const attn_saved *sv = SF_SAVED(ctx, m->slot, attn_saved);
    SF_ASSERT(ctx->keep && sv->qkv && "probs read a kept forward");
    int T = ctx->T, H = s->H, Dh = s->Dh, n = ctx->lens ? ctx->lens[b] : T, W = 2 * s->max_T - 1;
    long ld = 3L * s->d;
    const float *q = sv->qkv + (long)b * T * ld, *k = q + s->d;
    const float *lse = sv->lse + (long)b * H * T; /* [B, H, T] */
    memset(p, 0, (size_t)H * T * T * sizeof(float));
    for (int h = 0; h < H; h++)
        for (int i = 0; i < n; i++) {
            float *row = p + ((long)h * T + i) * T;
            const float *qi = q + (long)i * ld + h * Dh;
            int jend = s->causal ? i + 1 : n;
            for (int j = 0; j < jend; j++) {
                const float *kj = k + (long)j * ld + h * Dh;
                double dot = 0;
                for (int e = 0; e < Dh; e++) dot += (double)qi[e] * kj[e];
                double logit = s->scale * dot;
                if (s->t5) logit += sv->bias[(long)h * W + (j - i) + s->max_T - 1];
                row[j] = (float)exp(logit - lse[(long)h * T + i]);
            }
        }
}
