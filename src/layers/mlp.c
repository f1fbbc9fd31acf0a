/* Channel mixer "mlp": fc2(dropout(gelu(fc1(x)))), the Transformer feed-forward network.
 * Names: <prefix>.fc1.{weight,bias} [d_ff, d], <prefix>.fc2.{weight,bias} [d, d_ff].
 * Token-wise, so step is forward on one row and needs no state. */
#include <string.h>

#include "core/error.h"
#include "kernels/activations.h"
#include "layers/dropout.h"
#include "layers/layer.h"
#include "layers/linear.h"
#include "layers/mixers.h"

typedef struct {
    sf_linear fc1, fc2;
    int d, d_ff;
    float dropout;
    /* saved by forward */
    const float *x;
    float *pre, *act; /* [N, d_ff]: fc1 output, gelu(pre) after dropout */
    uint8_t *mask;
} sf_mlp;

static void mlp_declare(sf_mixer *m, sf_params *ps, const char *prefix) {
    sf_mlp *s = m->self;
    char buf[SF_PARAM_NAME_MAX];
    snprintf(buf, sizeof buf, "%s.fc1", prefix);
    sf_linear_declare(&s->fc1, ps, buf, s->d, s->d_ff, 1);
    snprintf(buf, sizeof buf, "%s.fc2", prefix);
    sf_linear_declare(&s->fc2, ps, buf, s->d_ff, s->d, 1);
}

static void mlp_init(sf_mixer *m, sf_rng *rng) {
    sf_mlp *s = m->self;
    sf_linear_init(&s->fc1, rng);
    sf_linear_init(&s->fc2, rng);
}

static void mlp_forward(sf_mixer *m, sf_ctx *ctx, const float *x, float *y) {
    sf_mlp *s = m->self;
    long N = (long)ctx->B * ctx->T;
    s->x = x;
    s->pre = sf_arena_push(ctx->arena, (size_t)N * s->d_ff);
    s->act = sf_arena_push(ctx->arena, (size_t)N * s->d_ff);
    if (!sf_arena_planning(ctx->arena)) {
        sf_linear_forward(&s->fc1, s->pre, x, N);
        sf_gelu_forward(s->act, s->pre, N * s->d_ff);
    }
    s->mask = sf_dropout_fwd(ctx, s->act, N * s->d_ff, s->dropout);
    if (!sf_arena_planning(ctx->arena)) sf_linear_forward(&s->fc2, y, s->act, N);
}

static void mlp_backward(sf_mixer *m, sf_ctx *ctx, const float *dy, float *dx) {
    sf_mlp *s = m->self;
    long N = (long)ctx->B * ctx->T;
    size_t mark = sf_arena_mark(ctx->arena);
    float *dact = sf_arena_push(ctx->arena, (size_t)N * s->d_ff);
    if (!sf_arena_planning(ctx->arena)) {
        sf_linear_backward(&s->fc2, dact, dy, s->act, N);
        sf_dropout_back(ctx, dact, s->mask, N * s->d_ff, s->dropout);
        sf_gelu_backward(dact, dact, s->pre, N * s->d_ff);
        sf_linear_backward(&s->fc1, dx, dact, s->x, N);
    }
    sf_arena_reset_to(ctx->arena, mark);
}

static size_t mlp_state_floats(const sf_mixer *m) {
    (void)m;
    return 0;
}

static void mlp_step(const sf_mixer *m, const float *x_t, const float *state_in, float *state_out,
                     float *y_t, int t) {
    const sf_mlp *s = m->self;
    (void)state_in;
    (void)state_out;
    (void)t;
    float *h = sf_malloc((size_t)s->d_ff * sizeof(float));
    sf_linear_forward(&s->fc1, h, x_t, 1);
    sf_gelu_forward(h, h, s->d_ff);
    sf_linear_forward(&s->fc2, y_t, h, 1);
    free(h);
}

static void mlp_destroy(sf_mixer *m) { free(m->self); }

static const sf_mixer_ops mlp_ops = {"mlp", mlp_declare, mlp_init, mlp_forward, mlp_backward,
                                     mlp_state_floats, mlp_step, mlp_destroy};

sf_mixer *sf_mlp_create(const sf_mixer_opts *o) {
    if (o->d_ff <= 0) {
        sf_errorf("mlp: d_ff must be positive (got %d)", o->d_ff);
        return NULL;
    }
    sf_mlp *s = sf_calloc(1, sizeof *s);
    s->d = o->d_model;
    s->d_ff = o->d_ff;
    s->dropout = o->dropout;
    sf_mixer *m = sf_calloc(1, sizeof *m);
    m->ops = &mlp_ops;
    m->d = o->d_model;
    m->self = s;
    return m;
}
