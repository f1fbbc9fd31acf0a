/* Channel mixer "glu": the gated feed-forward network of Shazeer (2020), "GLU Variants Improve
 * Transformer": h = act(x Wg^T + bg) * (x Wv^T + bv); y = fc2(dropout(h)). act = SiLU gives
 * SwiGLU, GELU (erf form) gives GEGLU.
 * Names: <prefix>.fc1.{weight,bias} [2*d_ff, d] (rows 0..d_ff-1 the gate, d_ff..2*d_ff-1 the value,
 * one GEMM for both), <prefix>.fc2.{weight,bias} [d, d_ff]. Token-wise: step is forward on a row. */
#include <math.h>
#include <string.h>

#include "core/error.h"
#include "core/scratch.h"
#include "kernels/activations.h"
#include "layers/dropout.h"
#include "layers/linear.h"
#include "layers/mixers.h"

typedef struct {
    sf_linear fc1, fc2;
    int d, d_ff, gelu;
    float dropout;
} sf_glu;

typedef struct {
    const float *x;
    float *pre; /* [N, 2*d_ff]: gate | value before the activation */
    float *h;   /* [N, d_ff]: act(gate) * value, after dropout */
    uint8_t *mask;
} glu_saved;

static void glu_declare(sf_mixer *m, sf_params *ps, const char *prefix) {
    sf_glu *s = m->self;
    char buf[SF_PARAM_NAME_MAX];
    snprintf(buf, sizeof buf, "%s.fc1", prefix);
    sf_linear_declare(&s->fc1, ps, buf, s->d, 2 * s->d_ff, 1);
    snprintf(buf, sizeof buf, "%s.fc2", prefix);
    sf_linear_declare(&s->fc2, ps, buf, s->d_ff, s->d, 1);
    m->slot = sf_params_reserve_saved(ps, sizeof(glu_saved));
}

static void glu_init(sf_mixer *m, sf_rng *rng) {
    sf_glu *s = m->self;
    sf_linear_init(&s->fc1, rng);
    sf_linear_init(&s->fc2, rng);
}

static float silu(float x) { return x / (1.0f + expf(-x)); }
static float silu_grad(float x) {
    float sg = 1.0f / (1.0f + expf(-x));
    return sg * (1.0f + x * (1.0f - sg));
}

/* h[n] = act(gate[n]) * value[n] for N rows of [gate | value]. */
static void gate_forward(const sf_glu *s, float *h, const float *pre, long N) {
    int F = s->d_ff;
    for (long n = 0; n < N; n++) {
        const float *g = pre + (size_t)n * 2 * F, *v = g + F;
        float *hn = h + (size_t)n * F;
        if (s->gelu) sf_gelu_forward(hn, g, F);
        else
            for (int i = 0; i < F; i++) hn[i] = silu(g[i]);
        for (int i = 0; i < F; i++) hn[i] *= v[i];
    }
}

/* dpre = [dh * value * act'(gate) | dh * act(gate)]. */
static void gate_backward(const sf_glu *s, float *dpre, const float *dh, const float *pre, long N) {
    int F = s->d_ff;
    for (long n = 0; n < N; n++) {
        const float *g = pre + (size_t)n * 2 * F, *v = g + F, *d = dh + (size_t)n * F;
        float *dg = dpre + (size_t)n * 2 * F, *dv = dg + F;
        if (s->gelu) {
            sf_gelu_forward(dv, g, F); /* act(gate) */
            for (int i = 0; i < F; i++) dg[i] = d[i] * v[i];
            sf_gelu_backward(dg, dg, g, F);
            for (int i = 0; i < F; i++) dv[i] *= d[i];
        } else {
            for (int i = 0; i < F; i++) {
                dg[i] = d[i] * v[i] * silu_grad(g[i]);
                dv[i] = d[i] * silu(g[i]);
            }
        }
    }
}

static void glu_forward(sf_mixer *m, sf_ctx *ctx, const float *x, float *y) {
    const sf_glu *s = m->self;
    glu_saved *sv = SF_SAVED(ctx, m->slot, glu_saved);
    long N = (long)ctx->B * ctx->T;
    sv->x = x;
    sv->pre = sf_arena_push(ctx->arena, (size_t)N * 2 * s->d_ff);
    sv->h = sf_arena_push(ctx->arena, (size_t)N * s->d_ff);
    if (!sf_arena_planning(ctx->arena)) {
        sf_linear_forward(&s->fc1, sv->pre, x, N);
        gate_forward(s, sv->h, sv->pre, N);
    }
    sv->mask = sf_dropout_fwd(ctx, sv->h, N * s->d_ff, s->dropout);
    if (!sf_arena_planning(ctx->arena)) sf_linear_forward(&s->fc2, y, sv->h, N);
}

static void glu_backward(sf_mixer *m, sf_ctx *ctx, const float *dy, float *dx) {
    sf_glu *s = m->self;
    const glu_saved *sv = SF_SAVED(ctx, m->slot, glu_saved);
    long N = (long)ctx->B * ctx->T;
    size_t mark = sf_arena_mark(ctx->arena);
    float *dh = sf_arena_push(ctx->arena, (size_t)N * s->d_ff);
    float *dpre = sf_arena_push(ctx->arena, (size_t)N * 2 * s->d_ff);
    if (!sf_arena_planning(ctx->arena)) {
        sf_linear_backward(&s->fc2, dh, dy, sv->h, N);
        sf_dropout_back(ctx, dh, sv->mask, N * s->d_ff, s->dropout);
        gate_backward(s, dpre, dh, sv->pre, N);
        sf_linear_backward(&s->fc1, dx, dpre, sv->x, N);
    }
    sf_arena_reset_to(ctx->arena, mark);
}

static size_t glu_state_floats(const sf_mixer *m) {
    (void)m;
    return 0;
}

static void glu_step(const sf_mixer *m, const float *x_t, const float *state_in, float *state_out,
                     float *y_t, int t) {
    const sf_glu *s = m->self;
    (void)state_in, (void)state_out, (void)t;
    size_t scratch = sf_scratch_mark(); /* no allocation per step */
    float *pre = sf_scratch_push((size_t)3 * s->d_ff), *h = pre + 2 * s->d_ff;
    sf_linear_forward(&s->fc1, pre, x_t, 1);
    gate_forward(s, h, pre, 1);
    sf_linear_forward(&s->fc2, y_t, h, 1);
    sf_scratch_release(scratch);
}

static void glu_destroy(sf_mixer *m) { free(m->self); }

/* fc1 2*2*d*d_ff, fc2 2*d*d_ff per token */
static double glu_flops(const sf_mixer *m, int T) {
    const sf_glu *s = m->self;
    return 6.0 * T * s->d * s->d_ff;
}

static const sf_mixer_ops glu_ops = {glu_declare,      glu_init, glu_forward, glu_backward,
                                     glu_state_floats, glu_step, glu_destroy, glu_flops};

static sf_mixer *glu_create(const sf_mixer_args *a) {
    sf_glu *s = sf_calloc(1, sizeof *s);
    s->d = a->d_model;
    s->d_ff = sf_opt_int(a->opts, "d_ff");
    s->gelu = strcmp(sf_opt_str(a->opts, "activation"), "gelu") == 0;
    s->dropout = sf_opt_float(a->opts, "dropout");
    return sf_mixer_wrap(&glu_ops, a->d_model, s);
}

static const sf_option glu_options[] = {
    {"d_ff", SF_OPT_INT, 128, NULL, 1, 1 << 20, NULL, "hidden width (fc1 has 2*d_ff outputs)"},
    {"activation", SF_OPT_CHOICE, 0, "silu", 0, 0, "silu|gelu", "gate activation (silu: SwiGLU, gelu: GEGLU)"},
    {"dropout", SF_OPT_FLOAT, 0, NULL, 0, 0.99, NULL, "dropout on the gated hidden layer"},
};

const sf_mixer_def sf_mixer_glu = {
    .info = {"glu", "gated feed-forward fc2(drop(act(gate) * value)): SwiGLU, GEGLU", SF_OPTS(glu_options)},
    .slots = SF_SLOT_CHANNEL,
    .create = glu_create,
};
