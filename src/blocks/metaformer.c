#include "blocks/metaformer.h"

#include <string.h>

#include "core/error.h"
#include "layers/dropout.h"

int sf_block_create(sf_block *b, const sf_block_config *cfg) {
    memset(b, 0, sizeof *b);
    b->cfg = *cfg;
    b->token = sf_mixer_create(cfg->token_mixer, &cfg->opts);
    if (!b->token) return SF_ERR;
    b->channel = sf_mixer_create(cfg->channel_mixer, &cfg->opts);
    if (!b->channel) {
        sf_mixer_destroy(b->token);
        b->token = NULL;
        return SF_ERR;
    }
    return SF_OK;
}

void sf_block_declare(sf_block *b, sf_params *ps, const char *prefix) {
    char buf[SF_PARAM_NAME_MAX];
    int d = b->cfg.opts.d_model;
    snprintf(buf, sizeof buf, "%s.norm1", prefix);
    sf_norm_declare(&b->norm1, ps, buf, b->cfg.norm, d);
    snprintf(buf, sizeof buf, "%s.mixer", prefix);
    b->token->ops->declare(b->token, ps, buf);
    snprintf(buf, sizeof buf, "%s.norm2", prefix);
    sf_norm_declare(&b->norm2, ps, buf, b->cfg.norm, d);
    snprintf(buf, sizeof buf, "%s.ffn", prefix);
    b->channel->ops->declare(b->channel, ps, buf);
}

void sf_block_init(sf_block *b, sf_rng *rng) {
    sf_norm_init(&b->norm1);
    b->token->ops->init(b->token, rng);
    sf_norm_init(&b->norm2);
    b->channel->ops->init(b->channel, rng);
}

void sf_block_destroy(sf_block *b) {
    sf_mixer_destroy(b->token);
    sf_mixer_destroy(b->channel);
    b->token = b->channel = NULL;
}

static void add(float *y, const float *a, const float *b, long n) {
#pragma omp parallel for simd schedule(static) if (n >= 65536)
    for (long i = 0; i < n; i++) y[i] = a[i] + b[i];
}

void sf_block_forward(sf_block *b, sf_ctx *ctx, const float *x, float *y) {
    long N = (long)ctx->B * ctx->T, n = N * b->cfg.opts.d_model;
    float p = b->cfg.opts.dropout;
    sf_arena *a = ctx->arena;
    int plan = sf_arena_planning(a);
    b->x = x;
    b->t_out = sf_arena_push(a, (size_t)n);
    b->h1 = sf_arena_push(a, (size_t)n);
    b->c_out = sf_arena_push(a, (size_t)n);
    if (b->cfg.pre_norm) {
        /* n1 = norm1(x); h1 = x + drop(token(n1)); n2 = norm2(h1); y = h1 + drop(channel(n2)) */
        b->n1 = sf_arena_push(a, (size_t)n);
        b->n2 = sf_arena_push(a, (size_t)n);
        sf_norm_forward(&b->norm1, ctx, x, b->n1, N);
        b->token->ops->forward(b->token, ctx, b->n1, b->t_out);
        b->mask1 = sf_dropout_fwd(ctx, b->t_out, n, p);
        if (!plan) add(b->h1, x, b->t_out, n);
        sf_norm_forward(&b->norm2, ctx, b->h1, b->n2, N);
        b->channel->ops->forward(b->channel, ctx, b->n2, b->c_out);
        b->mask2 = sf_dropout_fwd(ctx, b->c_out, n, p);
        if (!plan) add(y, b->h1, b->c_out, n);
    } else {
        /* h1 = x + drop(token(x)); n1 = norm1(h1); h2 = n1 + drop(channel(n1)); y = norm2(h2) */
        b->n1 = sf_arena_push(a, (size_t)n);
        b->n2 = sf_arena_push(a, (size_t)n); /* h2 */
        b->token->ops->forward(b->token, ctx, x, b->t_out);
        b->mask1 = sf_dropout_fwd(ctx, b->t_out, n, p);
        if (!plan) add(b->h1, x, b->t_out, n);
        sf_norm_forward(&b->norm1, ctx, b->h1, b->n1, N);
        b->channel->ops->forward(b->channel, ctx, b->n1, b->c_out);
        b->mask2 = sf_dropout_fwd(ctx, b->c_out, n, p);
        if (!plan) add(b->n2, b->n1, b->c_out, n);
        sf_norm_forward(&b->norm2, ctx, b->n2, y, N);
    }
}

void sf_block_backward(sf_block *b, sf_ctx *ctx, const float *dy, float *dx) {
    long N = (long)ctx->B * ctx->T, n = N * b->cfg.opts.d_model;
    float p = b->cfg.opts.dropout;
    sf_arena *a = ctx->arena;
    size_t mark = sf_arena_mark(a);
    int plan = sf_arena_planning(a);
    float *g1 = sf_arena_push(a, (size_t)n), *g2 = sf_arena_push(a, (size_t)n);
    if (b->cfg.pre_norm) {
        /* dh1 = dy + norm2'(channel'(drop'(dy)));  dx = dh1 + norm1'(token'(drop'(dh1))) */
        if (!plan) memcpy(g1, dy, (size_t)n * sizeof(float));
        sf_dropout_back(ctx, g1, b->mask2, n, p);
        b->channel->ops->backward(b->channel, ctx, g1, g2);
        sf_norm_backward(&b->norm2, ctx, g2, g1, N);
        if (!plan) add(g1, g1, dy, n); /* g1 = dh1 */
        if (!plan) memcpy(g2, g1, (size_t)n * sizeof(float));
        sf_dropout_back(ctx, g2, b->mask1, n, p);
        b->token->ops->backward(b->token, ctx, g2, dx);
        sf_norm_backward(&b->norm1, ctx, dx, g2, N);
        if (!plan) add(dx, g1, g2, n);
    } else {
        /* dh2 = norm2'(dy); dn1 = dh2 + channel'(drop'(dh2)); dh1 = norm1'(dn1);
         * dx = dh1 + token'(drop'(dh1)) */
        sf_norm_backward(&b->norm2, ctx, dy, g1, N); /* g1 = dh2 */
        if (!plan) memcpy(g2, g1, (size_t)n * sizeof(float));
        sf_dropout_back(ctx, g2, b->mask2, n, p);
        b->channel->ops->backward(b->channel, ctx, g2, dx);
        if (!plan) add(g1, g1, dx, n); /* g1 = dn1 */
        sf_norm_backward(&b->norm1, ctx, g1, g2, N); /* g2 = dh1 */
        if (!plan) memcpy(g1, g2, (size_t)n * sizeof(float));
        sf_dropout_back(ctx, g1, b->mask1, n, p);
        b->token->ops->backward(b->token, ctx, g1, dx);
        if (!plan) add(dx, dx, g2, n);
    }
    sf_arena_reset_to(a, mark);
}

size_t sf_block_state_floats(const sf_block *b) {
    return b->token->ops->state_floats(b->token) + b->channel->ops->state_floats(b->channel);
}

void sf_block_step(const sf_block *b, const float *x_t, float *state, float *y_t, int t) {
    int d = b->cfg.opts.d_model;
    float *tmp = sf_malloc((size_t)3 * d * sizeof(float)), *u = tmp + d, *h = tmp + 2 * d;
    float *s_tok = state, *s_ch = state + b->token->ops->state_floats(b->token);
    if (b->cfg.pre_norm) {
        sf_norm_step(&b->norm1, x_t, tmp);
        b->token->ops->step(b->token, tmp, s_tok, s_tok, u, t);
        add(h, x_t, u, d);
        sf_norm_step(&b->norm2, h, tmp);
        b->channel->ops->step(b->channel, tmp, s_ch, s_ch, u, t);
        add(y_t, h, u, d);
    } else {
        b->token->ops->step(b->token, x_t, s_tok, s_tok, u, t);
        add(h, x_t, u, d);
        sf_norm_step(&b->norm1, h, tmp);
        b->channel->ops->step(b->channel, tmp, s_ch, s_ch, u, t);
        add(h, tmp, u, d);
        sf_norm_step(&b->norm2, h, y_t);
    }
    free(tmp);
}
