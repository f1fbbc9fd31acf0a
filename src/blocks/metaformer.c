/* Block "metaformer": a token mixer and a channel mixer, each wrapped in a norm, dropout and a
 * residual connection (block.h has the formulas). PatchTST's encoder layer is the post form;
 * peri puts a norm on both the input and the output of each mixer. */
#include <string.h>

#include "blocks/block.h"
#include "core/error.h"
#include "core/scratch.h"
#include "layers/dropout.h"

typedef struct {
    float *t_out, *h1, *n1, *c_out, *n2;
    float *o1, *o2; /* peri: norm1_out(t_out), norm2_out(c_out) */
    uint8_t *mask1, *mask2;
} mf_saved;

/* peri: h1 = x + drop(norm1_out(tok(norm1(x)))); y = h1 + drop(norm2_out(ch(norm2(h1)))) */
static void peri_forward(sf_block *b, sf_ctx *ctx, mf_saved *sv, const float *x, float *y) {
    long N = (long)ctx->B * ctx->T, n = N * b->d;
    int plan = sf_arena_planning(ctx->arena);
    sf_mixer *tok = b->mixer[0], *ch = b->mixer[1];
    sv->o1 = sf_arena_push(ctx->arena, (size_t)n);
    sv->o2 = sf_arena_push(ctx->arena, (size_t)n);
    sf_norm_forward(&b->norm[0], ctx, x, sv->n1, N);
    tok->ops->forward(tok, ctx, sv->n1, sv->t_out);
    sf_norm_forward(&b->norm_out[0], ctx, sv->t_out, sv->o1, N);
    sv->mask1 = sf_dropout_fwd(ctx, sv->o1, n, b->dropout);
    if (!plan) sf_block_add(sv->h1, x, sv->o1, n);
    sf_norm_forward(&b->norm[1], ctx, sv->h1, sv->n2, N);
    ch->ops->forward(ch, ctx, sv->n2, sv->c_out);
    sf_norm_forward(&b->norm_out[1], ctx, sv->c_out, sv->o2, N);
    sv->mask2 = sf_dropout_fwd(ctx, sv->o2, n, b->dropout);
    if (!plan) sf_block_add(y, sv->h1, sv->o2, n);
}

/* dh1 = dy + norm2'(ch'(norm2_out'(drop'(dy)))); dx = dh1 + norm1'(tok'(norm1_out'(drop'(dh1)))) */
static void peri_backward(sf_block *b, sf_ctx *ctx, const mf_saved *sv, const float *dy, float *dx) {
    long N = (long)ctx->B * ctx->T, n = N * b->d;
    sf_arena *a = ctx->arena;
    int plan = sf_arena_planning(a);
    sf_mixer *tok = b->mixer[0], *ch = b->mixer[1];
    float *g1 = sf_arena_push(a, (size_t)n), *g2 = sf_arena_push(a, (size_t)n);
    float *g3 = sf_arena_push(a, (size_t)n);
    sf_dropout_back_into(ctx, g1, dy, sv->mask2, n, b->dropout);
    sf_norm_backward(&b->norm_out[1], ctx, g1, g2, N);
    ch->ops->backward(ch, ctx, g2, g3);
    sf_norm_backward(&b->norm[1], ctx, g3, g1, N);
    if (!plan) sf_block_add(g1, g1, dy, n); /* g1 = dh1 */
    sf_dropout_back_into(ctx, g2, g1, sv->mask1, n, b->dropout);
    sf_norm_backward(&b->norm_out[0], ctx, g2, g3, N);
    tok->ops->backward(tok, ctx, g3, g2);
    sf_norm_backward(&b->norm[0], ctx, g2, dx, N);
    if (!plan) sf_block_add(dx, dx, g1, n);
}

static void mf_forward(sf_block *b, sf_ctx *ctx, const float *x, float *y) {
    mf_saved *sv = SF_SAVED(ctx, b->slot, mf_saved);
    long N = (long)ctx->B * ctx->T, n = N * b->d;
    float p = b->dropout;
    sf_arena *a = ctx->arena;
    int plan = sf_arena_planning(a);
    sf_mixer *tok = b->mixer[0], *ch = b->mixer[1];
    sf_norm *norm1 = &b->norm[0], *norm2 = &b->norm[1];
    sv->t_out = sf_arena_push(a, (size_t)n);
    sv->h1 = sf_arena_push(a, (size_t)n);
    sv->c_out = sf_arena_push(a, (size_t)n);
    sv->n1 = sf_arena_push(a, (size_t)n);
    sv->n2 = sf_arena_push(a, (size_t)n);
    if (b->peri) {
        peri_forward(b, ctx, sv, x, y);
    } else if (b->pre) {
        /* n1 = norm1(x); h1 = x + drop(token(n1)); n2 = norm2(h1); y = h1 + drop(channel(n2)) */
        sf_norm_forward(norm1, ctx, x, sv->n1, N);
        tok->ops->forward(tok, ctx, sv->n1, sv->t_out);
        sv->mask1 = sf_dropout_fwd(ctx, sv->t_out, n, p);
        if (!plan) sf_block_add(sv->h1, x, sv->t_out, n);
        sf_norm_forward(norm2, ctx, sv->h1, sv->n2, N);
        ch->ops->forward(ch, ctx, sv->n2, sv->c_out);
        sv->mask2 = sf_dropout_fwd(ctx, sv->c_out, n, p);
        if (!plan) sf_block_add(y, sv->h1, sv->c_out, n);
    } else {
        /* h1 = x + drop(token(x)); n1 = norm1(h1); h2 = n1 + drop(channel(n1)); y = norm2(h2) */
        tok->ops->forward(tok, ctx, x, sv->t_out);
        sv->mask1 = sf_dropout_fwd(ctx, sv->t_out, n, p);
        if (!plan) sf_block_add(sv->h1, x, sv->t_out, n);
        sf_norm_forward(norm1, ctx, sv->h1, sv->n1, N);
        ch->ops->forward(ch, ctx, sv->n1, sv->c_out);
        sv->mask2 = sf_dropout_fwd(ctx, sv->c_out, n, p);
        if (!plan) sf_block_add(sv->n2, sv->n1, sv->c_out, n); /* n2 holds h2 */
        sf_norm_forward(norm2, ctx, sv->n2, y, N);
    }
}

static void mf_backward(sf_block *b, sf_ctx *ctx, const float *dy, float *dx) {
    const mf_saved *sv = SF_SAVED(ctx, b->slot, mf_saved);
    long N = (long)ctx->B * ctx->T, n = N * b->d;
    float p = b->dropout;
    sf_arena *a = ctx->arena;
    size_t mark = sf_arena_mark(a);
    int plan = sf_arena_planning(a);
    sf_mixer *tok = b->mixer[0], *ch = b->mixer[1];
    sf_norm *norm1 = &b->norm[0], *norm2 = &b->norm[1];
    if (b->peri) {
        peri_backward(b, ctx, sv, dy, dx);
        sf_arena_reset_to(a, mark);
        return;
    }
    float *g1 = sf_arena_push(a, (size_t)n), *g2 = sf_arena_push(a, (size_t)n);
    if (b->pre) {
        /* dh1 = dy + norm2'(channel'(drop'(dy)));  dx = dh1 + norm1'(token'(drop'(dh1))) */
        sf_dropout_back_into(ctx, g1, dy, sv->mask2, n, p);
        ch->ops->backward(ch, ctx, g1, g2);
        sf_norm_backward(norm2, ctx, g2, g1, N);
        if (!plan) sf_block_add(g1, g1, dy, n); /* g1 = dh1 */
        sf_dropout_back_into(ctx, g2, g1, sv->mask1, n, p);
        tok->ops->backward(tok, ctx, g2, dx);
        sf_norm_backward(norm1, ctx, dx, g2, N);
        if (!plan) sf_block_add(dx, g1, g2, n);
    } else {
        /* dh2 = norm2'(dy); dn1 = dh2 + channel'(drop'(dh2)); dh1 = norm1'(dn1);
         * dx = dh1 + token'(drop'(dh1)) */
        sf_norm_backward(norm2, ctx, dy, g1, N); /* g1 = dh2 */
        sf_dropout_back_into(ctx, g2, g1, sv->mask2, n, p);
        ch->ops->backward(ch, ctx, g2, dx);
        if (!plan) sf_block_add(g1, g1, dx, n); /* g1 = dn1 */
        sf_norm_backward(norm1, ctx, g1, g2, N); /* g2 = dh1 */
        sf_dropout_back_into(ctx, g1, g2, sv->mask1, n, p);
        tok->ops->backward(tok, ctx, g1, dx);
        if (!plan) sf_block_add(dx, dx, g2, n);
    }
    sf_arena_reset_to(a, mark);
}

static void mf_step(const sf_block *b, const float *x_t, float *state, float *y_t, int t) {
    int d = b->d;
    const sf_mixer *tok = b->mixer[0], *ch = b->mixer[1];
    size_t scratch = sf_scratch_mark(); /* no allocation per step */
    float *tmp = sf_scratch_push((size_t)3 * d), *u = tmp + d, *h = tmp + 2 * d;
    float *s_tok = state, *s_ch = state + tok->ops->state_floats(tok);
    if (b->peri) {
        sf_norm_step(&b->norm[0], x_t, tmp);
        tok->ops->step(tok, tmp, s_tok, s_tok, u, t);
        sf_norm_step(&b->norm_out[0], u, tmp);
        sf_block_add(h, x_t, tmp, d);
        sf_norm_step(&b->norm[1], h, tmp);
        ch->ops->step(ch, tmp, s_ch, s_ch, u, t);
        sf_norm_step(&b->norm_out[1], u, tmp);
        sf_block_add(y_t, h, tmp, d);
    } else if (b->pre) {
        sf_norm_step(&b->norm[0], x_t, tmp);
        tok->ops->step(tok, tmp, s_tok, s_tok, u, t);
        sf_block_add(h, x_t, u, d);
        sf_norm_step(&b->norm[1], h, tmp);
        ch->ops->step(ch, tmp, s_ch, s_ch, u, t);
        sf_block_add(y_t, h, u, d);
    } else {
        tok->ops->step(tok, x_t, s_tok, s_tok, u, t);
        sf_block_add(h, x_t, u, d);
        sf_norm_step(&b->norm[0], h, tmp);
        ch->ops->step(ch, tmp, s_ch, s_ch, u, t);
        sf_block_add(h, tmp, u, d);
        sf_norm_step(&b->norm[1], h, y_t);
    }
    sf_scratch_release(scratch);
}

const sf_block_def sf_block_metaformer = {
    .info = {"metaformer", "norm, token mixer, residual; norm, channel mixer, residual", NULL, 0},
    .n_mixers = 2,
    .mixer_keys = {"token_mixer", "channel_mixer"},
    .mixer_slots = {SF_SLOT_TOKEN, SF_SLOT_CHANNEL},
    .n_norms = 2,
    .norm_names = {"norm1", "norm2"},
    .saved_bytes = sizeof(mf_saved),
    .forward = mf_forward,
    .backward = mf_backward,
    .step = mf_step,
};
