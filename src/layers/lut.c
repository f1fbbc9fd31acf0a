/* Channel mixer "lut": MemoryFormer's Memory Layer (kernels/lut.h has the math), a hashed
 * lookup table in place of a fully-connected layer: x [d] is split into K = d/tau chunks, each
 * chunk's sign bits pick one of 2^tau rows of its table, and y = sum_k p_k T_k[h_k] + bias.
 *   ffn false: one Memory Layer d -> d.
 *     Names: <prefix>.tables [K * 2^tau, d] (table k's rows at k * 2^tau ..), <prefix>.bias [d].
 *   ffn true: MemoryFormer's feed-forward block, MemoryLayer(tau) -> LayerNorm -> MemoryLayer(tau
 *     + 2): the first layer widens d to d1 = K (tau + 2) so the second still has K tables, each of
 *     2^(tau+2) rows (the paper's FFN with tau = 8 -> 10).
 *     Names: <prefix>.lut1.{tables [K * 2^tau, d1], bias [d1]}, <prefix>.norm.{weight, bias} [d1],
 *     <prefix>.lut2.{tables [K * 2^(tau+2), d], bias [d]}.
 * Init as the reference: tables 0.02 N(0, 1), bias 0.001 N(0, 1). Tables are row-sparse
 * parameters (core/params.h): backward flags the rows it touched, for `--optimizer lazy_adamw`.
 * Token-wise, so step is forward on one row. */
#include <string.h>

#include "core/scratch.h"
#include "core/error.h"
#include "kernels/lut.h"
#include "layers/mixers.h"
#include "layers/norm.h"

typedef struct {
    int din, dout, tau, K;
    float *tables, *bias, *dtables, *dbias;
    unsigned char *touched;
} lut_table;

typedef struct {
    int d, tau, K, ffn;
    sf_lut_score score;
    lut_table l1, l2; /* l2 only with ffn */
    sf_norm norm;     /* ffn only */
} sf_lut;

typedef struct {
    const float *x;
    int32_t *code1, *code2;
    float *score1, *score2, *h1, *hn; /* h1, hn [N, d1]: first layer's output, normalised */
} lut_saved;

static void table_declare(lut_table *t, sf_params *ps, const char *prefix) {
    char buf[SF_PARAM_NAME_MAX];
    int64_t shape[2] = {(int64_t)t->K << t->tau, t->dout};
    snprintf(buf, sizeof buf, "%s.tables", prefix);
    sf_params_declare(ps, buf, 2, shape, &t->tables, &t->dtables, 0);
    sf_params_mark_sparse_rows(ps, (size_t)t->dout, &t->touched);
    snprintf(buf, sizeof buf, "%s.bias", prefix);
    sf_params_declare(ps, buf, 1, shape + 1, &t->bias, &t->dbias, 1);
}

static void table_init(lut_table *t, sf_rng *rng) {
    sf_rng_fill_normal(rng, t->tables, ((long)t->K << t->tau) * t->dout, 0.0f, 0.02f);
    sf_rng_fill_normal(rng, t->bias, t->dout, 0.0f, 0.001f);
}

static void lut_declare(sf_mixer *m, sf_params *ps, const char *prefix) {
    sf_lut *s = m->self;
    char buf[SF_PARAM_NAME_MAX];
    if (!s->ffn) {
        table_declare(&s->l1, ps, prefix);
    } else {
        snprintf(buf, sizeof buf, "%s.lut1", prefix);
        table_declare(&s->l1, ps, buf);
        sf_norm_spec spec = {SF_NORM_LAYERNORM, 1e-5f, 0.1f};
        snprintf(buf, sizeof buf, "%s.norm", prefix);
        sf_norm_declare(&s->norm, ps, buf, &spec, s->l1.dout);
        snprintf(buf, sizeof buf, "%s.lut2", prefix);
        table_declare(&s->l2, ps, buf);
    }
    m->slot = sf_params_reserve_saved(ps, sizeof(lut_saved));
}

static void lut_init(sf_mixer *m, sf_rng *rng) {
    sf_lut *s = m->self;
    table_init(&s->l1, rng);
    if (s->ffn) {
        sf_norm_init(&s->norm);
        table_init(&s->l2, rng);
    }
}

static void table_forward(const sf_lut *s, const lut_table *t, float *y, int32_t *code,
                          float *score, const float *x, long N) {
    sf_lut_forward(y, code, score, x, t->tables, t->bias, N, t->K, t->tau, t->dout, s->score);
}

static void table_backward(const sf_lut *s, lut_table *t, float *dx, const float *dy,
                           const float *x, const int32_t *code, const float *score, long N) {
    sf_lut_backward(dx, t->dtables, t->dbias, t->touched, dy, x, code, score, t->tables, N, t->K,
                    t->tau, t->dout, s->score);
}

static void lut_forward(sf_mixer *m, sf_ctx *ctx, const float *x, float *y) {
    sf_lut *s = m->self;
    lut_saved *sv = SF_SAVED(ctx, m->slot, lut_saved);
    long N = (long)ctx->B * ctx->T;
    int plan = sf_arena_planning(ctx->arena);
    sv->x = x;
    /* int32 codes in float-sized arena slots */
    sv->code1 = (int32_t *)(void *)sf_arena_push(ctx->arena, (size_t)N * s->K);
    sv->score1 = sf_arena_push(ctx->arena, (size_t)N * s->K);
    if (!s->ffn) {
        if (!plan) table_forward(s, &s->l1, y, sv->code1, sv->score1, x, N);
        return;
    }
    int d1 = s->l1.dout;
    sv->h1 = sf_arena_push(ctx->arena, (size_t)N * d1);
    sv->hn = sf_arena_push(ctx->arena, (size_t)N * d1);
    sv->code2 = (int32_t *)(void *)sf_arena_push(ctx->arena, (size_t)N * s->K);
    sv->score2 = sf_arena_push(ctx->arena, (size_t)N * s->K);
    if (!plan) table_forward(s, &s->l1, sv->h1, sv->code1, sv->score1, x, N);
    sf_norm_forward(&s->norm, ctx, sv->h1, sv->hn, N);
    if (!plan) table_forward(s, &s->l2, y, sv->code2, sv->score2, sv->hn, N);
}

static void lut_backward(sf_mixer *m, sf_ctx *ctx, const float *dy, float *dx) {
    sf_lut *s = m->self;
    const lut_saved *sv = SF_SAVED(ctx, m->slot, lut_saved);
    long N = (long)ctx->B * ctx->T;
    int plan = sf_arena_planning(ctx->arena);
    if (!s->ffn) {
        if (!plan) table_backward(s, &s->l1, dx, dy, sv->x, sv->code1, sv->score1, N);
        return;
    }
    size_t mark = sf_arena_mark(ctx->arena);
    int d1 = s->l1.dout;
    float *dhn = sf_arena_push(ctx->arena, (size_t)N * d1);
    float *dh1 = sf_arena_push(ctx->arena, (size_t)N * d1);
    if (!plan) table_backward(s, &s->l2, dhn, dy, sv->hn, sv->code2, sv->score2, N);
    sf_norm_backward(&s->norm, ctx, dhn, dh1, N);
    if (!plan) table_backward(s, &s->l1, dx, dh1, sv->x, sv->code1, sv->score1, N);
    sf_arena_reset_to(ctx->arena, mark);
}

static size_t lut_state_floats(const sf_mixer *m) {
    (void)m;
    return 0;
}

static void lut_step(const sf_mixer *m, const float *x_t, const float *state_in, float *state_out,
                     float *y_t, int t) {
    const sf_lut *s = m->self;
    (void)state_in, (void)state_out, (void)t;
    int d1 = s->l1.dout;
    size_t mark = sf_scratch_mark(); /* the streaming path allocates nothing (core/scratch.h) */
    float *buf = sf_scratch_push((size_t)2 * d1 + 2 * s->K);
    float *h1 = buf, *hn = buf + d1, *score = buf + 2 * d1;
    int32_t *code = (int32_t *)(void *)(score + s->K);
    if (!s->ffn) {
        table_forward(s, &s->l1, y_t, code, score, x_t, 1);
    } else {
        table_forward(s, &s->l1, h1, code, score, x_t, 1);
        sf_norm_step(&s->norm, h1, hn);
        table_forward(s, &s->l2, y_t, code, score, hn, 1);
    }
    sf_scratch_release(mark);
}

static void lut_destroy(sf_mixer *m) { free(m->self); }

/* Per token and Memory Layer: hashing 3 K tau (|z|, 1 + exp(-2|z|) and its product; the exp
 * counted as one), the weighted row sum 2 K dout; the ffn's LayerNorm 8 d1. */
static double table_flops(const lut_table *t) { return 3.0 * t->K * t->tau + 2.0 * t->K * t->dout; }
static double lut_flops(const sf_mixer *m, int T) {
    const sf_lut *s = m->self;
    double f = table_flops(&s->l1);
    if (s->ffn) f += 8.0 * s->l1.dout + table_flops(&s->l2);
    return f * T;
}

static const sf_mixer_ops lut_ops = {lut_declare,      lut_init, lut_forward, lut_backward,
                                     lut_state_floats, lut_step, lut_destroy, lut_flops};

static sf_mixer *lut_create(const sf_mixer_args *a) {
    int d = a->d_model, tau = sf_opt_int(a->opts, "tau"), ffn = sf_opt_bool(a->opts, "ffn");
    if (d % tau) {
        sf_errorf("tau: d_model %d is not a multiple of tau %d (x is split into d/tau chunks)", d, tau);
        return NULL;
    }
    int K = d / tau, tau2 = tau + 2;
    if (ffn && tau2 > SF_LUT_MAX_TAU) {
        sf_errorf("tau: with ffn the second layer hashes tau + 2 = %d bits (at most %d)", tau2,
                  SF_LUT_MAX_TAU);
        return NULL;
    }
    double floats = (double)K * ((double)(1L << tau) * (ffn ? K * tau2 : d) +
                                 (ffn ? (double)(1L << tau2) * d : 0.0));
    if (floats > (double)(1L << 30)) {
        sf_errorf("tau: the tables would hold %.3g floats (over 2^30); use a smaller tau", floats);
        return NULL;
    }
    sf_lut *s = sf_calloc(1, sizeof *s);
    s->d = d;
    s->tau = tau;
    s->K = K;
    s->ffn = ffn;
    s->score = strcmp(sf_opt_str(a->opts, "score"), "code") == 0 ? SF_LUT_SCORE_CODE : SF_LUT_SCORE_PAPER;
    s->l1 = (lut_table){.din = d, .dout = ffn ? K * tau2 : d, .tau = tau, .K = K};
    if (ffn) s->l2 = (lut_table){.din = K * tau2, .dout = d, .tau = tau2, .K = K};
    return sf_mixer_wrap(&lut_ops, d, s);
}

static const sf_option lut_options[] = {
    {"tau", SF_OPT_INT, 8, NULL, 1, SF_LUT_MAX_TAU, NULL,
     "bits per hash: d/tau tables of 2^tau rows (d_model must be a multiple)"},
    {"score", SF_OPT_CHOICE, 0, "paper", 0, 0, "paper|code",
     "bucket weight: paper prod sigma(2|z|), code times ||z||_1 (the released code)"},
    {"ffn", SF_OPT_BOOL, 0, NULL, 0, 1, NULL,
     "MemoryFormer's FFN: MemoryLayer(tau) -> LayerNorm -> MemoryLayer(tau + 2)"},
};

const sf_mixer_def sf_mixer_lut = {
    .info = {"lut", "MemoryFormer hashed lookup tables: y = sum_k p_k T_k[sign bits of chunk k] + b",
             SF_OPTS(lut_options)},
    .slots = SF_SLOT_CHANNEL,
    .create = lut_create,
};
