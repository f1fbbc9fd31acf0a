/* Token mixer "probsparse": Informer's ProbSparse self-attention (kernels/prob_attention.h has the
 * math) between the shared attention projections:
 *   qkv = x Wqkv^T + b; a = probsparse(q, k, v) per head; (mix: a re-read in [H, T, Dh] order,
 *   the reference AttentionLayer's mix=True); y = a Wout^T + b.
 * Names: <prefix>.qkv.{weight,bias} [3d, d], <prefix>.out.{weight,bias} [d, d].
 *
 * The key sample is redrawn on every call, as the reference draws it with torch.randint: when
 * training, its seed is one draw from ctx->rng (the trainer's stream, seeded from --seed and saved
 * for --resume, so runs are reproducible); at inference it is a fixed seed, so the same input
 * always gives the same forecast. The PyTorch twin replays both (tools/reference).
 * Padding (ctx->lens) is not supported (the sparsity measure and the mean/cumsum of V have no
 * padded form in the reference): a padded call is a programming error. No streaming: which
 * queries are active depends on the whole sequence. */
#include <math.h>
#include <string.h>

#include "core/error.h"
#include "kernels/prob_attention.h"
#include "layers/attention_proj.h"
#include "layers/layer.h"
#include "layers/mixers.h"

/* The sample seed at inference (any constant: the twin uses the same). */
#define PROB_EVAL_SEED 0

typedef struct {
    sf_attention_proj proj;
    int d, H, Dh, causal, factor, mix;
    float scale;
} sf_probsparse;

typedef struct {
    const float *x;
    float *qkv, *a, *am, *m, *p;
    int *sample, *rank;
    int U, u;
} prob_saved;

static void prob_declare(sf_mixer *m, sf_params *ps, const char *prefix) {
    sf_probsparse *s = m->self;
    sf_attention_proj_declare(&s->proj, ps, prefix, s->d);
    m->slot = sf_params_reserve_saved(ps, sizeof(prob_saved));
}

static void prob_init(sf_mixer *m, sf_rng *rng) {
    sf_probsparse *s = m->self;
    sf_attention_proj_init(&s->proj, rng);
}

/* mix: row t of `out` holds floats [t*d, (t+1)*d) of the [H, T, Dh] reading of `a` [T, H, Dh]
 * (the reference's out.transpose(2,1).contiguous().view(B, T, -1)); inverse when `back`. */
static void mix_rows(float *out, const float *a, int B, int T, int H, int Dh, int back) {
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++)
            for (int t = 0; t < T; t++) {
                size_t src = (((size_t)b * T + t) * H + h) * Dh,
                       dst = (((size_t)b * H + h) * T + t) * Dh;
                if (back)
                    memcpy(out + src, a + dst, (size_t)Dh * sizeof(float));
                else
                    memcpy(out + dst, a + src, (size_t)Dh * sizeof(float));
            }
}

static void prob_forward(sf_mixer *m, sf_ctx *ctx, const float *x, float *y) {
    const sf_probsparse *s = m->self;
    prob_saved *sv = SF_SAVED(ctx, m->slot, prob_saved);
    SF_ASSERT(!ctx->lens && "probsparse: padded batches (lens) are not supported");
    int B = ctx->B, T = ctx->T, H = s->H, d = s->d;
    long N = (long)B * T;
    sf_arena *ar = ctx->arena;
    sv->x = x;
    sv->U = sv->u = sf_prob_attention_top(T, s->factor);
    sv->qkv = sf_arena_push(ar, (size_t)N * 3 * d);
    sv->a = sf_arena_push(ar, (size_t)N * d);
    sv->am = s->mix ? sf_arena_push(ar, (size_t)N * d) : NULL;
    sv->m = sf_arena_push(ar, (size_t)B * H * T);
    sv->p = sf_arena_push(ar, (size_t)B * H * sv->u * T);
    /* int arrays in float-sized arena slots */
    sv->sample = (int *)(void *)sf_arena_push(ar, (size_t)T * sv->U);
    sv->rank = (int *)(void *)sf_arena_push(ar, (size_t)B * H * T);
    if (sf_arena_planning(ar)) return;
    uint64_t seed = ctx->training && ctx->rng ? sf_rng_u64(ctx->rng) : PROB_EVAL_SEED;
    sf_prob_attention_sample(sv->sample, T, sv->U, seed);
    sf_linear_forward(&s->proj.qkv, sv->qkv, x, N);
    const float *q = sv->qkv, *k = q + d, *v = q + 2 * d;
    sf_prob_attention_forward(sv->a, d, sv->m, sv->rank, sv->p, q, k, v, 3 * d, sv->sample, sv->U,
                              sv->u, B, T, H, s->Dh, s->scale, s->causal);
    if (s->mix) mix_rows(sv->am, sv->a, B, T, H, s->Dh, 0);
    sf_linear_forward(&s->proj.out, y, s->mix ? sv->am : sv->a, N);
}

static void prob_backward(sf_mixer *m, sf_ctx *ctx, const float *dy, float *dx) {
    sf_probsparse *s = m->self;
    const prob_saved *sv = SF_SAVED(ctx, m->slot, prob_saved);
    int B = ctx->B, T = ctx->T, d = s->d;
    long N = (long)B * T;
    size_t mark = sf_arena_mark(ctx->arena);
    float *da = sf_arena_push(ctx->arena, (size_t)N * d);
    float *dam = s->mix ? sf_arena_push(ctx->arena, (size_t)N * d) : NULL;
    float *dqkv = sf_arena_push(ctx->arena, (size_t)N * 3 * d);
    float *work = sf_arena_push(ctx->arena, (size_t)B * s->H * sv->u * T);
    if (!sf_arena_planning(ctx->arena)) {
        if (s->mix) {
            sf_linear_backward(&s->proj.out, dam, dy, sv->am, N);
            mix_rows(da, dam, B, T, s->H, s->Dh, 1);
        } else {
            sf_linear_backward(&s->proj.out, da, dy, sv->a, N);
        }
        const float *q = sv->qkv, *k = q + d, *v = q + 2 * d;
        sf_prob_attention_backward(dqkv, dqkv + d, dqkv + 2 * d, work, da, d, sv->rank, sv->p, q, k,
                                   v, 3 * d, sv->u, B, T, s->H, s->Dh, s->scale, s->causal);
        sf_linear_backward(&s->proj.qkv, dx, dqkv, sv->x, N);
    }
    sf_arena_reset_to(ctx->arena, mark);
}

static size_t prob_state_floats(const sf_mixer *m) {
    (void)m;
    return 0;
}

static void prob_step(const sf_mixer *m, const float *x_t, const float *state_in, float *state_out,
                      float *y_t, int t) {
    (void)m, (void)x_t, (void)state_in, (void)state_out, (void)y_t, (void)t;
    SF_ASSERT(0 && "probsparse attention cannot stream");
}

static void prob_destroy(sf_mixer *m) { free(m->self); }

/* projections 8*T*d^2, sampled scores 2*T*U*d, active rows' scores and sums 4*u*T*d */
static double prob_flops(const sf_mixer *m, int T) {
    const sf_probsparse *s = m->self;
    double d = s->d, t = T, u = sf_prob_attention_top(T, s->factor);
    return 8 * t * d * d + 2 * t * u * d + 4 * u * t * d;
}

static const sf_mixer_ops prob_ops = {prob_declare,      prob_init, prob_forward, prob_backward,
                                      prob_state_floats, prob_step, prob_destroy, prob_flops};

static sf_mixer *prob_create(const sf_mixer_args *a) {
    sf_probsparse *s = sf_calloc(1, sizeof *s);
    if (sf_attention_heads(a, SF_PROB_MAX_DH, &s->H, &s->Dh, &s->causal)) {
        free(s);
        return NULL;
    }
    s->d = a->d_model;
    s->factor = sf_opt_int(a->opts, "factor");
    s->mix = sf_opt_bool(a->opts, "mix");
    s->scale = 1.0f / sqrtf((float)s->Dh);
    sf_mixer *m = sf_mixer_wrap(&prob_ops, a->d_model, s);
    m->can_step = 0;
    m->can_pad = 0;
    return m;
}

static const sf_option prob_options[] = {
    {"n_heads", SF_OPT_INT, 4, NULL, 1, 4096, NULL, "attention heads (must divide d_model)"},
    {"causal", SF_OPT_BOOL, 0, NULL, 0, 1, NULL,
     "active queries see keys <= t; passive ones get cumsum(V) instead of mean(V)"},
    {"factor", SF_OPT_INT, 5, NULL, 1, 1000, NULL,
     "c: c*ceil(ln T) sampled keys per query and active queries"},
    {"mix", SF_OPT_BOOL, 0, NULL, 0, 1, NULL,
     "read heads out in [H, T, Dh] order (Informer's decoder self-attention)"},
};

const sf_mixer_def sf_mixer_probsparse = {
    .info =
        {"probsparse",
         "Informer ProbSparse attention: top c*ln(T) queries attend, the rest take mean/cumsum(V)",
         SF_OPTS(prob_options)},
    .slots = SF_SLOT_TOKEN,
    .create = prob_create,
};
