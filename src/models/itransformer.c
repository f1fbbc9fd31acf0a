/* iTransformer (Liu et al., ICLR 2024, "iTransformer: Inverted Transformers Are Effective for Time
 * Series Forecasting"): the variates are the tokens.
 *   x [B, L, C] -> use_norm: per (b, c) mean and std over the look-back (biased variance + 1e-5)
 *   -> each variate's normalised series [L] is one token: embed = Linear(L -> d) -> positions
 *   (default none: the variates are a set) -> dropout -> E blocks on [B, C, d] (any block kinds
 *   and mixers; the paper's encoder layer is metaformer post + softmax + mlp gelu) -> final norm
 *   -> projector Linear(d -> P) on every token -> [B, C, P] -> use_norm undone -> y [B, P, C].
 * input.time_tokens (the official x_mark_enc): the look-back rows' F time features (timeF, freq)
 * become F more tokens, each feature's series [L] embedded, unnormalised, by the same Linear;
 * the blocks mix C + F tokens and only the C variate tokens are projected to forecasts.
 * Parameter names: embed, pos_embed (learned positions only), blocks.<i>, norm_f, projector
 * (tools/reference/seqformer_ref.py ITransformer loads them with strict=True). */
#include <math.h>
#include <string.h>

#include "blocks/block.h"
#include "core/error.h"
#include "data/time_features.h"
#include "layers/dropout.h"
#include "layers/linear.h"
#include "layers/norm.h"
#include "layers/positions.h"
#include "models/model.h"
#include "models/series_norm.h"

typedef struct {
    int L, P, C, d, E, use_norm, has_norm_f;
    int F, T; /* time-feature tokens (0 without input.time_tokens); tokens per sample C + F */
    float dropout;
    sf_linear embed, projector;
    sf_positions pos;
    sf_block *blocks;
    sf_norm norm_f;
    size_t slot; /* the per-call record (it_saved + E+1 block inputs/outputs) */
} itransformer;

typedef struct {
    float *mean, *stdev; /* [B*C] */
    float *series;       /* [B*T, L] one row per token: normalised variates, then time features */
    float *zf;           /* after norm_f (when there is one) */
    float *proj;         /* [B*C, P] projector output of the variate tokens */
    uint8_t *mask_emb;
    float *z[];          /* E+1 buffers [B*T, d]: embedding, then each block's output */
} it_saved;

static int it_build(sf_model *m) {
    const cJSON *c = m->config;
    const cJSON *input = cJSON_GetObjectItemCaseSensitive(c, "input");
    const cJSON *head = cJSON_GetObjectItemCaseSensitive(c, "head");
    const cJSON *blocks = cJSON_GetObjectItemCaseSensitive(c, "blocks");
    const cJSON *positions = cJSON_GetObjectItemCaseSensitive(c, "positions");
    if (strcmp(sf_opt_str(input, "kind"), "inverted") != 0)
        return sf_errorf("input.kind: itransformer embeds each variate as one token (inverted), "
                         "not '%s'", sf_opt_str(input, "kind"));
    if (strcmp(sf_opt_str(head, "kind"), "per_token") != 0)
        return sf_errorf("head.kind: itransformer projects each token (per_token), not '%s'",
                         sf_opt_str(head, "kind"));
    itransformer *s = sf_calloc(1, sizeof *s);
    m->self = s;
    s->L = m->seq_len;
    s->P = m->pred_len;
    s->C = m->n_channels;
    s->d = sf_opt_int(c, "d_model");
    s->use_norm = sf_opt_bool(c, "use_norm");
    s->dropout = sf_opt_float(c, "dropout");
    s->F = m->time_features;
    if (sf_opt_bool(input, "time_tokens") && s->F == 0) return sf_error_freq_auto();
    int T = s->T = s->C + s->F; /* tokens per sample: the variates, then the time features */
    if (sf_positions_in_attention(sf_opt_str(positions, "kind")))
        return sf_errorf("positions.kind: '%s' is not offered for itransformer (its tokens are "
                         "variates, which have no order)", sf_opt_str(positions, "kind"));
    if (sf_positions_create(&s->pos, sf_opt_str(positions, "kind"), T, s->d))
        return sf_error_prefix("positions");
    if (sf_block_stack_create(blocks, s->d, T, &s->blocks, &s->E)) return SF_ERR;
    const char *fn = sf_opt_str(c, "final_norm");
    sf_norm_spec nf = {SF_NORM_LAYERNORM, 1e-5f, 0.1f};
    s->has_norm_f = strcmp(fn, "none") != 0;
    if (s->has_norm_f) sf_norm_kind_parse(fn, &nf.kind);
    sf_params *ps = &m->params;
    sf_linear_declare(&s->embed, ps, "embed", s->L, s->d, 1);
    sf_positions_declare(&s->pos, ps, "pos_embed");
    sf_block_stack_declare(s->blocks, s->E, ps);
    if (s->has_norm_f) sf_norm_declare(&s->norm_f, ps, "norm_f", &nf, s->d);
    sf_linear_declare(&s->projector, ps, "projector", s->d, s->P, 1);
    s->slot = sf_params_reserve_saved(ps, sizeof(it_saved) + (size_t)(s->E + 1) * sizeof(float *));
    return SF_OK;
}

/* Time-feature tokens when input.time_tokens is on (the task then appends the features to x). */
static int it_time_features(const cJSON *c, char *freq) {
    const cJSON *input = cJSON_GetObjectItemCaseSensitive(c, "input");
    /* (an input of another kind has no such option; build refuses that kind) */
    if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(input, "time_tokens"))) return 0;
    return sf_config_freq_features(c, freq);
}

static void it_init(sf_model *m, sf_rng *rng) {
    itransformer *s = m->self;
    sf_linear_init(&s->embed, rng);
    sf_positions_init(&s->pos, rng);
    for (int i = 0; i < s->E; i++) sf_block_init(&s->blocks[i], rng);
    if (s->has_norm_f) sf_norm_init(&s->norm_f);
    sf_linear_init(&s->projector, rng);
}

/* The blocks see B samples of T tokens; every sample has all its variates and features. (Model-level calls
 * never carry ctx->lens: a look-back is embedded whole, so padding in time has no meaning here.) */
static sf_ctx token_ctx(const sf_ctx *ctx, int T) {
    sf_ctx inner = *ctx;
    inner.T = T;
    inner.lens = NULL;
    return inner;
}

static void it_forward(sf_model *m, sf_ctx *ctx, const float *x, float *y) {
    itransformer *s = m->self;
    it_saved *sv = SF_SAVED(ctx, s->slot, it_saved);
    sf_arena *a = ctx->arena;
    int plan = sf_arena_planning(a);
    int B = ctx->B, C = s->C, F = s->F, T = s->T, L = s->L, P = s->P, d = s->d, BC = B * C,
        BT = B * T;
    long xs = sf_model_x_floats(m);
    sf_ctx inner = token_ctx(ctx, T);

    sv->mean = sf_arena_push(a, (size_t)BC);
    sv->stdev = sf_arena_push(a, (size_t)BC);
    sv->series = sf_arena_push(a, (size_t)BT * L);
    for (int i = 0; i <= s->E; i++) sv->z[i] = sf_arena_push(a, (size_t)BT * d);
    if (!plan) {
        /* use_norm (Non-stationary Transformer's normalisation): statistics over time, per
         * variate of each window, in double; the token is the variate's series [L]. */
        for (int bc = 0; bc < BC; bc++) {
            int b = bc / C, ch = bc % C;
            const float *xv = x + (size_t)b * xs + ch;
            float fmu, fsd;
            sf_series_stats(xv, (size_t)C, L, s->use_norm, &fmu, &fsd);
            sv->mean[bc] = fmu;
            sv->stdev[bc] = fsd;
            float *row = sv->series + ((size_t)b * T + ch) * L;
            for (int t = 0; t < L; t++) row[t] = (xv[(size_t)t * C] - fmu) / fsd;
        }
        /* the look-back rows' time features (after the values in x), as they are */
        for (int b = 0; b < B && F; b++) {
            const float *mb = x + (size_t)b * xs + (size_t)L * C;
            for (int f = 0; f < F; f++) {
                float *row = sv->series + ((size_t)b * T + C + f) * L;
                for (int t = 0; t < L; t++) row[t] = mb[(size_t)t * F + f];
            }
        }
        sf_linear_forward(&s->embed, sv->z[0], sv->series, BT);
    }
    sf_positions_forward(&s->pos, &inner, sv->z[0]);
    sv->mask_emb = sf_dropout_fwd(ctx, sv->z[0], (long)BT * d, s->dropout);
    for (int i = 0; i < s->E; i++) {
        /* without backward to follow, a block's temporaries are free once it is done */
        size_t mark = sf_arena_mark(a);
        sf_block_forward(&s->blocks[i], &inner, sv->z[i], sv->z[i + 1]);
        if (!ctx->keep) sf_arena_reset_to(a, mark);
    }
    const float *zl = sv->z[s->E];
    sv->zf = NULL;
    if (s->has_norm_f) {
        sv->zf = sf_arena_push(a, (size_t)BT * d);
        sf_norm_forward(&s->norm_f, &inner, zl, sv->zf, BT);
        zl = sv->zf;
    }
    sv->proj = sf_arena_push(a, (size_t)BC * P);
    if (plan) return;
    /* only the variate tokens are forecasts (each sample's first C rows) */
    if (F == 0) sf_linear_forward(&s->projector, sv->proj, zl, BC);
    for (int b = 0; b < B && F; b++)
        sf_linear_forward(&s->projector, sv->proj + (size_t)b * C * P, zl + (size_t)b * T * d, C);
    for (int bc = 0; bc < BC; bc++) {
        int b = bc / C, ch = bc % C;
        const float *h = sv->proj + (size_t)bc * P;
        float *yb = y + (size_t)b * P * C + ch;
        for (int t = 0; t < P; t++) yb[(size_t)t * C] = h[t] * sv->stdev[bc] + sv->mean[bc];
    }
}

static void it_backward(sf_model *m, sf_ctx *ctx, const float *dy) {
    itransformer *s = m->self;
    const it_saved *sv = SF_SAVED(ctx, s->slot, it_saved);
    sf_arena *a = ctx->arena;
    int plan = sf_arena_planning(a);
    int B = ctx->B, C = s->C, F = s->F, T = s->T, P = s->P, d = s->d, BC = B * C, BT = B * T;
    sf_ctx inner = token_ctx(ctx, T);
    size_t mark = sf_arena_mark(a);
    float *dproj = sf_arena_push(a, (size_t)BC * P);
    float *g0 = sf_arena_push(a, (size_t)BT * d), *g1 = sf_arena_push(a, (size_t)BT * d);
    if (!plan) {
        /* the statistics are constants of the input (no parameter reaches them) */
        for (int bc = 0; bc < BC; bc++) {
            int b = bc / C, ch = bc % C;
            const float *dyb = dy + (size_t)b * P * C + ch;
            for (int t = 0; t < P; t++)
                dproj[(size_t)bc * P + t] = dyb[(size_t)t * C] * sv->stdev[bc];
        }
        const float *zl = s->has_norm_f ? sv->zf : sv->z[s->E];
        float *gl = s->has_norm_f ? g1 : g0;
        if (F == 0) sf_linear_backward(&s->projector, gl, dproj, zl, BC);
        for (int b = 0; b < B && F; b++) { /* the time-feature tokens get no gradient here */
            float *gb = gl + (size_t)b * T * d;
            sf_linear_backward(&s->projector, gb, dproj + (size_t)b * C * P,
                               zl + (size_t)b * T * d, C);
            memset(gb + (size_t)C * d, 0, (size_t)F * d * sizeof(float));
        }
    }
    if (s->has_norm_f) sf_norm_backward(&s->norm_f, &inner, g1, g0, BT);
    for (int i = s->E - 1; i >= 0; i--) {
        sf_block_backward(&s->blocks[i], &inner, g0, g1);
        float *t = g0;
        g0 = g1;
        g1 = t;
    }
    sf_dropout_back(ctx, g0, sv->mask_emb, (long)BT * d, s->dropout);
    sf_positions_backward(&s->pos, &inner, g0);
    if (!plan) sf_linear_backward(&s->embed, NULL, g0, sv->series, BT);
    sf_arena_reset_to(a, mark);
}

static void it_destroy(sf_model *m) {
    itransformer *s = m->self;
    if (!s) return;
    sf_block_stack_destroy(s->blocks, s->E);
    sf_positions_destroy(&s->pos);
    free(s);
    m->self = NULL;
}

/* Forward FLOPs per sample: the embedding GEMM per token (C + F), the projector GEMM per variate
 * token, plus the mixers' own count over C + F tokens. */
static double it_flops(const sf_model *m) {
    const itransformer *s = m->self;
    double f = 2.0 * s->L * s->d * s->T + 2.0 * s->d * s->P * s->C;
    f += sf_block_stack_flops(s->blocks, s->E, s->T);
    return f;
}

static const sf_model_ops it_ops = {it_build, it_init, it_forward, it_backward, it_destroy,
                                    it_flops};

/* Defaults: the official run.py's (seq_len 96, d_model 512, dropout 0.1, use_norm 1, the
 * encoder's closing LayerNorm). */
static const sf_option it_options[] = {
    {"seq_len", SF_OPT_INT, 96, NULL, 1, 100000, NULL, "look-back window (input steps)"},
    {"pred_len", SF_OPT_INT, 96, NULL, 1, 100000, NULL, "forecast horizon (output steps)"},
    {"n_channels", SF_OPT_INT, 7, NULL, 1, 100000, NULL, "input/output channels (variates)"},
    {"d_model", SF_OPT_INT, 512, NULL, 1, 4096, NULL, "model width (token size)"},
    {"use_norm", SF_OPT_BOOL, 1, NULL, 0, 1, NULL,
     "normalise each variate of a window by its mean and std over time, undone at the output"},
    {"dropout", SF_OPT_FLOAT, 0.1, NULL, 0, 0.99, NULL, "dropout after the inverted embedding"},
    {"final_norm", SF_OPT_CHOICE, 0, "layernorm", 0, 0, "none|layernorm|rmsnorm|batchnorm",
     "norm after the last block"},
    SF_OPTION_FREQ,
};

const sf_model_def sf_model_itransformer = {
    .info = {"itransformer",
             "iTransformer (Liu et al. 2024): each variate's look-back is a token, blocks mix "
             "variates, per-token projector",
             SF_OPTS(it_options)},
    .has_blocks = 1,
    .default_input = "inverted",
    .default_head = "per_token",
    .default_positions = "none",
    .ops = &it_ops,
    .time_features = it_time_features,
};
