/* Block "parallel": token and channel mixer side by side on the same normalised input, both added
 * to the residual (GPT-J, PaLM); block.h has the formulas. One norm, one residual add. */
#include <string.h>

#include "blocks/block.h"
#include "core/error.h"
#include "core/scratch.h"
#include "layers/dropout.h"

typedef struct {
    float *n, *t, *c, *h; /* norm output (pre), mixer outputs, pre-norm sum (post) */
    uint8_t *mask_t, *mask_c;
} par_saved;

static void par_forward(sf_block *b, sf_ctx *ctx, const float *x, float *y) {
    par_saved *sv = SF_SAVED(ctx, b->slot, par_saved);
    long N = (long)ctx->B * ctx->T, n = N * b->d;
    sf_arena *a = ctx->arena;
    int plan = sf_arena_planning(a);
    sf_mixer *tok = b->mixer[0], *ch = b->mixer[1];
    sv->t = sf_arena_push(a, (size_t)n);
    sv->c = sf_arena_push(a, (size_t)n);
    const float *in = x;
    if (b->pre) {
        sv->n = sf_arena_push(a, (size_t)n);
        sf_norm_forward(&b->norm[0], ctx, x, sv->n, N);
        in = sv->n;
    }
    tok->ops->forward(tok, ctx, in, sv->t);
    sv->mask_t = sf_dropout_fwd(ctx, sv->t, n, b->dropout);
    ch->ops->forward(ch, ctx, in, sv->c);
    sv->mask_c = sf_dropout_fwd(ctx, sv->c, n, b->dropout);
    float *sum = y;
    if (!b->pre) sum = sv->h = sf_arena_push(a, (size_t)n);
    if (!plan) {
        sf_block_add(sum, x, sv->t, n);
        sf_block_add(sum, sum, sv->c, n);
    }
    if (!b->pre) sf_norm_forward(&b->norm[0], ctx, sv->h, y, N);
}

static void par_backward(sf_block *b, sf_ctx *ctx, const float *dy, float *dx) {
    const par_saved *sv = SF_SAVED(ctx, b->slot, par_saved);
    long N = (long)ctx->B * ctx->T, n = N * b->d;
    sf_arena *a = ctx->arena;
    size_t mark = sf_arena_mark(a);
    int plan = sf_arena_planning(a);
    sf_mixer *tok = b->mixer[0], *ch = b->mixer[1];
    float *dh = sf_arena_push(a, (size_t)n), *g = sf_arena_push(a, (size_t)n);
    float *din = sf_arena_push(a, (size_t)n), *dc = sf_arena_push(a, (size_t)n);
    /* dh: gradient at the residual sum (dy for pre, through the norm for post) */
    if (b->pre) {
        if (!plan) memcpy(dh, dy, (size_t)n * sizeof(float));
    } else {
        sf_norm_backward(&b->norm[0], ctx, dy, dh, N);
    }
    /* din = tok'(drop'(dh)) + ch'(drop'(dh)), the gradient at the mixers' shared input */
    sf_dropout_back_into(ctx, g, dh, sv->mask_t, n, b->dropout);
    tok->ops->backward(tok, ctx, g, din);
    sf_dropout_back_into(ctx, g, dh, sv->mask_c, n, b->dropout);
    ch->ops->backward(ch, ctx, g, dc);
    if (!plan) sf_block_add(din, din, dc, n);
    if (b->pre) {
        sf_norm_backward(&b->norm[0], ctx, din, dx, N);
        if (!plan) sf_block_add(dx, dx, dh, n);
    } else if (!plan) {
        sf_block_add(dx, din, dh, n);
    }
    sf_arena_reset_to(a, mark);
}

static void par_step(const sf_block *b, const float *x_t, float *state, float *y_t, int t) {
    int d = b->d;
    const sf_mixer *tok = b->mixer[0], *ch = b->mixer[1];
    size_t scratch = sf_scratch_mark(); /* no allocation per step */
    float *tmp = sf_scratch_push((size_t)4 * d), *u = tmp + d, *v = tmp + 2 * d;
    float *h = tmp + 3 * d;
    float *s_tok = state, *s_ch = state + tok->ops->state_floats(tok);
    const float *in = x_t;
    if (b->pre) {
        sf_norm_step(&b->norm[0], x_t, tmp);
        in = tmp;
    }
    tok->ops->step(tok, in, s_tok, s_tok, u, t);
    ch->ops->step(ch, in, s_ch, s_ch, v, t);
    sf_block_add(h, x_t, u, d);
    sf_block_add(h, h, v, d);
    if (b->pre) memcpy(y_t, h, (size_t)d * sizeof(float));
    else sf_norm_step(&b->norm[0], h, y_t);
    sf_scratch_release(scratch);
}

const sf_block_def sf_block_parallel = {
    .info = {"parallel", "token and channel mixer side by side on one norm (GPT-J, PaLM)", NULL, 0},
    .n_mixers = 2,
    .mixer_keys = {"token_mixer", "channel_mixer"},
    .mixer_slots = {SF_SLOT_TOKEN, SF_SLOT_CHANNEL},
    .n_norms = 1,
    .norm_names = {"norm"},
    .saved_bytes = sizeof(par_saved),
    .forward = par_forward,
    .backward = par_backward,
    .step = par_step,
};
