/* Channel mixer "mlp": fc2(dropout(act(fc1(x)))), the Transformer feed-forward network, with
 * act = GELU (erf form, PyTorch's default) or ReLU.
 * Names: <prefix>.fc1.{weight,bias} [d_ff, d], <prefix>.fc2.{weight,bias} [d, d_ff].
 * Token-wise, so step is forward on one row and needs no state.
 *
 * Narrow layers (d * d_ff <= SF_MLP_FUSE_MAX, PatchTST's 16 x 128) run as one fused kernel over
 * blocks of rows (kernels/ffn.c): the hidden layer never leaves the cache, and the backward
 * recomputes it from x. Wider ones, whose weights no longer fit beside a block in the cache, run
 * layer by layer, saving the hidden layer. */
#include <string.h>

#include "core/error.h"
#include "core/scratch.h"
#include "kernels/activations.h"
#include "kernels/ffn.h"
#include "layers/dropout.h"
#include "layers/linear.h"
#include "layers/mixers.h"
#include "core/profile.h"

#define SF_MLP_FUSE_MAX 65536L

typedef struct {
    sf_linear fc1, fc2;
    int d, d_ff, relu, fused;
    float dropout;
} sf_mlp;

typedef struct {
    const float *x;
    float p;       /* fused: the dropout applied (0 when not training) and its rng draw */
    uint64_t seed;
    float *pre, *act; /* [N, d_ff]: fc1 output (gelu'(fc1 output) once the fused training
                       * GELU + dropout has run), act(pre) after dropout */
    uint8_t *mask;
} mlp_saved;

static void mlp_declare(sf_mixer *m, sf_params *ps, const char *prefix) {
    sf_mlp *s = m->self;
    char buf[SF_PARAM_NAME_MAX];
    snprintf(buf, sizeof buf, "%s.fc1", prefix);
    sf_linear_declare(&s->fc1, ps, buf, s->d, s->d_ff, 1);
    snprintf(buf, sizeof buf, "%s.fc2", prefix);
    sf_linear_declare(&s->fc2, ps, buf, s->d_ff, s->d, 1);
    m->slot = sf_params_reserve_saved(ps, sizeof(mlp_saved));
}

static void mlp_init(sf_mixer *m, sf_rng *rng) {
    sf_mlp *s = m->self;
    sf_linear_init(&s->fc1, rng);
    sf_linear_init(&s->fc2, rng);
}

static void act_forward(const sf_mlp *s, float *y, const float *x, long n) {
    if (!s->relu) {
        SF_PROF(SF_PROF_ACTIVATIONS, sf_gelu_forward(y, x, n));
        return;
    }
    SF_PROF(SF_PROF_ACTIVATIONS, sf_relu_forward(y, x, n));
}

/* dx = dy * act'(x), in place allowed. */
static void act_backward(const sf_mlp *s, float *dx, const float *dy, const float *x, long n) {
    if (!s->relu) {
        SF_PROF(SF_PROF_ACTIVATIONS, sf_gelu_backward(dx, dy, x, n));
        return;
    }
    SF_PROF(SF_PROF_ACTIVATIONS, sf_relu_backward(dx, dy, x, n));
}

static sf_ffn ffn_of(const sf_mlp *s, const mlp_saved *sv) {
    return (sf_ffn){s->d,       s->d_ff,  s->fc1.w, s->fc1.b, s->fc2.w,
                    s->fc2.b,   s->relu,  sv->p,    sv->seed, 0};
}

static void mlp_forward(sf_mixer *m, sf_ctx *ctx, const float *x, float *y) {
    const sf_mlp *s = m->self;
    mlp_saved *sv = SF_SAVED(ctx, m->slot, mlp_saved);
    long N = (long)ctx->B * ctx->T;
    sv->x = x;
    if (s->fused) {
        if (sf_arena_planning(ctx->arena)) return;
        sv->p = ctx->training ? s->dropout : 0.0f;
        sv->seed = sv->p > 0.0f ? sf_rng_u64(ctx->rng) : 0; /* the draw the dropout would make */
        const sf_ffn f = ffn_of(s, sv);
        SF_PROF(SF_PROF_FFN, sf_ffn_forward(&f, y, x, N));
        return;
    }
    sv->pre = sf_arena_push(ctx->arena, (size_t)N * s->d_ff);
    sv->act = sf_arena_push(ctx->arena, (size_t)N * s->d_ff);
    /* training GELU + dropout: one fused pass over the hidden layer (same bits as two) */
    const int fused = !s->relu && ctx->training && s->dropout > 0.0f;
    if (fused) sv->mask = sf_arena_push_bytes(ctx->arena, (size_t)N * s->d_ff);
    if (!sf_arena_planning(ctx->arena)) {
        sf_linear_forward(&s->fc1, sv->pre, x, N);
        if (fused)
            SF_PROF(SF_PROF_ACTIVATIONS,
                    sf_gelu_dropout_forward(sv->act, sv->mask, sv->pre, sv->pre, N * s->d_ff,
                                            s->dropout, ctx->rng)); /* pre := gelu'(pre) */
        else
            act_forward(s, sv->act, sv->pre, N * s->d_ff);
    }
    if (!fused) sv->mask = sf_dropout_fwd(ctx, sv->act, N * s->d_ff, s->dropout);
    if (!sf_arena_planning(ctx->arena)) sf_linear_forward(&s->fc2, y, sv->act, N);
}

static void mlp_backward(sf_mixer *m, sf_ctx *ctx, const float *dy, float *dx) {
    sf_mlp *s = m->self;
    const mlp_saved *sv = SF_SAVED(ctx, m->slot, mlp_saved);
    long N = (long)ctx->B * ctx->T;
    if (s->fused) {
        if (sf_arena_planning(ctx->arena)) return;
        const sf_ffn f = ffn_of(s, sv);
        SF_PROF(SF_PROF_FFN, sf_ffn_backward(&f, dx, s->fc1.dw, s->fc1.db, s->fc2.dw, s->fc2.db,
                                             dy, sv->x, N));
        return;
    }
    size_t mark = sf_arena_mark(ctx->arena);
    float *dact = sf_arena_push(ctx->arena, (size_t)N * s->d_ff);
    if (!sf_arena_planning(ctx->arena)) {
        sf_linear_backward(&s->fc2, dact, dy, sv->act, N);
        if (sv->mask && !s->relu) {
            SF_PROF(SF_PROF_ACTIVATIONS, sf_gelu_dropout_backward(dact, dact, sv->mask, sv->pre,
                                                                  N * s->d_ff, s->dropout));
        } else {
            sf_dropout_back(ctx, dact, sv->mask, N * s->d_ff, s->dropout);
            act_backward(s, dact, dact, sv->pre, N * s->d_ff);
        }
        sf_linear_backward(&s->fc1, dx, dact, sv->x, N);
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
    (void)state_in, (void)state_out, (void)t;
    size_t scratch = sf_scratch_mark(); /* no allocation per step */
    float *h = sf_scratch_push((size_t)s->d_ff);
    sf_linear_forward(&s->fc1, h, x_t, 1);
    act_forward(s, h, h, s->d_ff);
    sf_linear_forward(&s->fc2, y_t, h, 1);
    sf_scratch_release(scratch);
}

static void mlp_destroy(sf_mixer *m) { free(m->self); }

static double mlp_flops(const sf_mixer *m, int T) {
    const sf_mlp *s = m->self;
    return 4.0 * T * s->d * s->d_ff;
}

static const sf_mixer_ops mlp_ops = {mlp_declare,      mlp_init, mlp_forward, mlp_backward,
                                     mlp_state_floats, mlp_step, mlp_destroy, mlp_flops};

static sf_mixer *mlp_create(const sf_mixer_args *a) {
    sf_mlp *s = sf_calloc(1, sizeof *s);
    s->d = a->d_model;
    s->d_ff = sf_opt_int(a->opts, "d_ff");
    s->relu = strcmp(sf_opt_str(a->opts, "activation"), "relu") == 0;
    s->dropout = sf_opt_float(a->opts, "dropout");
    const char *fuse = sf_opt_str(a->opts, "fuse");
    s->fused = strcmp(fuse, "auto") == 0 ? (long)s->d * s->d_ff <= SF_MLP_FUSE_MAX
                                         : strcmp(fuse, "always") == 0;
    return sf_mixer_wrap(&mlp_ops, a->d_model, s);
}

static const sf_option mlp_options[] = {
    {"d_ff", SF_OPT_INT, 128, NULL, 1, 1 << 20, NULL, "hidden width"},
    {"activation", SF_OPT_CHOICE, 0, "gelu", 0, 0, "gelu|relu", "activation (gelu: erf form)"},
    {"dropout", SF_OPT_FLOAT, 0, NULL, 0, 0.99, NULL, "dropout after the activation"},
    {"fuse", SF_OPT_CHOICE, 0, "auto", 0, 0, "auto|always|never",
     "one fused kernel over row blocks (auto: when d * d_ff <= 65536) or layer by layer"},
};

const sf_mixer_def sf_mixer_mlp = {
    .info = {"mlp", "feed-forward network fc2(drop(act(fc1(x))))", SF_OPTS(mlp_options)},
    .slots = SF_SLOT_CHANNEL,
    .create = mlp_create,
};
