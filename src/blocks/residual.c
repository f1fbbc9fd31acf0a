/* Block "residual": one mixer wrapped in a norm, dropout and a residual connection, as Mamba and
 * other single-mixer stacks use (block.h has the formulas). */
#include <string.h>

#include "blocks/block.h"
#include "core/error.h"
#include "core/scratch.h"
#include "layers/dropout.h"

typedef struct {
    float *n, *m, *h; /* norm output (pre) / mixer output / pre-norm sum (post) */
    uint8_t *mask;
} res_saved;

static void res_forward(sf_block *b, sf_ctx *ctx, const float *x, float *y) {
    res_saved *sv = SF_SAVED(ctx, b->slot, res_saved);
    long N = (long)ctx->B * ctx->T, n = N * b->d;
    sf_arena *a = ctx->arena;
    int plan = sf_arena_planning(a);
    sf_mixer *mix = b->mixer[0];
    sv->m = sf_arena_push(a, (size_t)n);
    if (b->pre) {
        sv->n = sf_arena_push(a, (size_t)n);
        sf_norm_forward(&b->norm[0], ctx, x, sv->n, N);
        mix->ops->forward(mix, ctx, sv->n, sv->m);
        sv->mask = sf_dropout_fwd(ctx, sv->m, n, b->dropout);
        if (!plan) sf_block_add(y, x, sv->m, n);
    } else {
        sv->h = sf_arena_push(a, (size_t)n);
        mix->ops->forward(mix, ctx, x, sv->m);
        sv->mask = sf_dropout_fwd(ctx, sv->m, n, b->dropout);
        if (!plan) sf_block_add(sv->h, x, sv->m, n);
        sf_norm_forward(&b->norm[0], ctx, sv->h, y, N);
    }
}

static void res_backward(sf_block *b, sf_ctx *ctx, const float *dy, float *dx) {
    const res_saved *sv = SF_SAVED(ctx, b->slot, res_saved);
    long N = (long)ctx->B * ctx->T, n = N * b->d;
    sf_arena *a = ctx->arena;
    size_t mark = sf_arena_mark(a);
    int plan = sf_arena_planning(a);
    sf_mixer *mix = b->mixer[0];
    float *g1 = sf_arena_push(a, (size_t)n), *g2 = sf_arena_push(a, (size_t)n);
    if (b->pre) {
        /* dx = dy + norm'(mix'(drop'(dy))) */
        sf_dropout_back_into(ctx, g1, dy, sv->mask, n, b->dropout);
        mix->ops->backward(mix, ctx, g1, g2);
        sf_norm_backward(&b->norm[0], ctx, g2, dx, N);
        if (!plan) sf_block_add(dx, dx, dy, n);
    } else {
        /* dh = norm'(dy); dx = dh + mix'(drop'(dh)) */
        sf_norm_backward(&b->norm[0], ctx, dy, g1, N);
        sf_dropout_back_into(ctx, g2, g1, sv->mask, n, b->dropout);
        mix->ops->backward(mix, ctx, g2, dx);
        if (!plan) sf_block_add(dx, dx, g1, n);
    }
    sf_arena_reset_to(a, mark);
}

static void res_step(const sf_block *b, const float *x_t, float *state, float *y_t, int t) {
    int d = b->d;
    const sf_mixer *mix = b->mixer[0];
    size_t scratch = sf_scratch_mark(); /* no allocation per step */
    float *tmp = sf_scratch_push((size_t)2 * d), *u = tmp + d;
    if (b->pre) {
        sf_norm_step(&b->norm[0], x_t, tmp);
        mix->ops->step(mix, tmp, state, state, u, t);
        sf_block_add(y_t, x_t, u, d);
    } else {
        mix->ops->step(mix, x_t, state, state, u, t);
        sf_block_add(tmp, x_t, u, d);
        sf_norm_step(&b->norm[0], tmp, y_t);
    }
    sf_scratch_release(scratch);
}

const sf_block_def sf_block_residual = {
    .info = {"residual", "one mixer: norm, mixer, residual (single-mixer stacks such as Mamba)",
             NULL, 0},
    .n_mixers = 1,
    .mixer_keys = {"mixer"},
    .mixer_slots = {SF_SLOT_TOKEN | SF_SLOT_CHANNEL},
    .n_norms = 1,
    .norm_names = {"norm"},
    .saved_bytes = sizeof(res_saved),
    .forward = res_forward,
    .backward = res_backward,
    .step = res_step,
};
