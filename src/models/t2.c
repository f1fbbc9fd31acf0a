/* t2, the Time-series Transformer of Allam & McEwen ("Paying Attention to Astronomical
 * Transients", tallamjr/astronet astronet/t2/model.py): a classifier of (multi-band) series.
 *   x [B, L, C] with each example's valid length (model.h: reads_lengths)
 *   -> input "pointwise": Linear(C -> d) + ReLU on every step (the kernel-1 Conv1D embedding)
 *   -> positions (default sinusoidal, as t2's PositionalEncoding)
 *   -> blocks on [B, L, d] with ctx->lens = the valid lengths, so attention, norms and any other
 *      length-aware mixer ignore the padding (t2's TransformerBlock is metaformer post-norm,
 *      softmax attention + mlp relu, LayerNorm eps 1e-6, dropout on both residual branches)
 *   -> head "pool_classify": mean over the valid steps (GlobalAveragePooling1D), dropout,
 *      Linear(d -> n_classes) -> logits (t2's softmax lives in the task's loss).
 * Input "conv_patches" (an option for short univariate sets such as UCR's, not t2's): token t is
 * the window of patch_len steps starting at step t*stride (all channels, zero past the series'
 * valid end), Linear(patch_len*C -> d) + ReLU, i.e. a strided Conv1D of width patch_len; a series
 * of len valid steps gives ceil(len/stride) valid tokens. "pointwise" is its patch_len 1, stride 1.
 * Positions "time" (irregular observations, e.g. `seqformer gp --raw`): one input channel holds each
 * step's observation time; it is not embedded as a value (embed reads the other C-1 channels) but
 * drives a sinusoidal encoding of the continuous time (layers/time_encoding.h) added in place of
 * the step positions.
 * Parameter names: embed, pos_embed (learned positions only), blocks.<i>, classifier
 * (tools/reference/seqformer_ref.py T2 loads them with strict=True). */
#include <string.h>

#include "blocks/block.h"
#include "core/error.h"
#include "layers/dropout.h"
#include "layers/linear.h"
#include "layers/pool.h"
#include "layers/positions.h"
#include "layers/softmax_attention.h"
#include "layers/time_encoding.h"
#include "models/model.h"
#include "models/t2.h"

typedef struct {
    int L, C, d, K, E;
    int Lin, P, S; /* input steps, window (patch_len) and stride; L = tokens = ceil(Lin/S) */
    float head_dropout;
    sf_linear embed, classifier;
    sf_positions pos;
    sf_block *blocks;
    size_t slot;
    int time_ch;       /* positions "time": the channel of observation times, else -1 */
    double time_scale; /* its scale (angle = scale * t * 10000^(-2i/d)) */
} t2;

typedef struct {
    int *lens;        /* [B] valid steps (NULL while planning) */
    float *xin;       /* [B*L, P*Cv] each token's window of values (Cv = C, or C-1 with time positions) */
    float *tin;       /* [B*L] observation times (time positions only) */
    float *pre;       /* [B*L, d] embedding before the ReLU */
    float *pooled;    /* [B, d] after pooling (and dropout) */
    uint8_t *mask_pool;
    float *z[];       /* E+1 buffers [B*L, d]: embedding + positions, then each block's output */
} t2_saved;

/* Positions "time": the channel and scale, checked against the data's shape. */
static int t2_time_positions(t2 *s, const cJSON *pos) {
    if (strcmp(sf_opt_str(pos, "kind"), "time") != 0) return SF_OK;
    if (s->P != 1 || s->S != 1)
        return sf_errorf("positions.kind: time positions give each step its observation time; they "
                         "need input pointwise (a conv_patches window spans several times)");
    s->time_ch = sf_opt_int(pos, "channel");
    s->time_scale = sf_opt_float(pos, "scale");
    if (s->time_ch >= s->C)
        return sf_errorf("positions.channel: %d, but the series have %d channels (0..%d)", s->time_ch,
                         s->C, s->C - 1);
    if (s->C < 2)
        return sf_errorf("positions.kind: time positions read the time from one channel and embed "
                         "the others, so they need 2 or more channels (got %d)", s->C);
    if (s->d % 2)
        return sf_errorf("positions.kind: time positions need an even d_model (got %d)", s->d);
    return SF_OK;
}

/* Channels the embedding reads: all but the time channel. */
static int t2_value_channels(const t2 *s) { return s->time_ch >= 0 ? s->C - 1 : s->C; }

/* Example b's values (without the time channel) into xin, its times into tin. */
static void t2_split_time(const t2 *s, const float *xb, float *xin, float *tin) {
    int C = s->C;
    for (int t = 0; t < s->L; t++) {
        const float *row = xb + (size_t)t * C;
        float *out = xin + (size_t)t * (C - 1);
        for (int c = 0, j = 0; c < C; c++)
            if (c == s->time_ch)
                tin[t] = row[c];
            else
                out[j++] = row[c];
    }
}

static int t2_build(sf_model *m) {
    const cJSON *c = m->config;
    const cJSON *input = cJSON_GetObjectItemCaseSensitive(c, "input");
    const cJSON *head = cJSON_GetObjectItemCaseSensitive(c, "head");
    if (strcmp(sf_opt_str(c, "task"), "classify") != 0)
        return sf_errorf("task: t2 is a classifier; its task is classify, not '%s'",
                         sf_opt_str(c, "task"));
    const char *ik = sf_opt_str(input, "kind");
    int patches = strcmp(ik, "conv_patches") == 0;
    if (strcmp(ik, "pointwise") != 0 && !patches)
        return sf_errorf("input.kind: t2 embeds each step's channels (pointwise) or windows of "
                         "steps (conv_patches), not '%s'", ik);
    int P = patches ? sf_opt_int(input, "patch_len") : 1, S = patches ? sf_opt_int(input, "stride") : 1;
    if (P > m->seq_len)
        return sf_errorf("input.patch_len: %d is longer than seq_len %d", P, m->seq_len);
    if (S > P) return sf_errorf("input.stride: %d is longer than patch_len %d (steps would be skipped)", S, P);
    if (strcmp(sf_opt_str(head, "kind"), "pool_classify") != 0)
        return sf_errorf("head.kind: t2's head is pool_classify, not '%s'", sf_opt_str(head, "kind"));
    t2 *s = sf_calloc(1, sizeof *s);
    m->self = s;
    s->Lin = m->seq_len;
    s->P = P;
    s->S = S;
    s->L = (s->Lin + S - 1) / S;
    s->C = m->n_channels;
    s->d = sf_opt_int(c, "d_model");
    s->K = sf_opt_int(c, "n_classes");
    s->head_dropout = sf_opt_float(head, "dropout");
    s->time_ch = -1;
    if (t2_time_positions(s, cJSON_GetObjectItemCaseSensitive(c, "positions"))) return SF_ERR;
    if (sf_positions_create(&s->pos,
                            s->time_ch >= 0 ? "none"
                                            : sf_opt_str(cJSON_GetObjectItemCaseSensitive(c, "positions"),
                                                         "kind"),
                            s->L, s->d))
        return sf_error_prefix("positions");
    const cJSON *blocks = cJSON_GetObjectItemCaseSensitive(c, "blocks");
    if (sf_block_stack_create_pos(blocks, s->d, s->L, cJSON_GetObjectItemCaseSensitive(c, "positions"),
                                  &s->blocks, &s->E))
        return SF_ERR;
    /* series of unequal lengths are padded: every mixer must honour ctx->lens */
    int i = 0, j = 0;
    for (const cJSON *b = blocks ? blocks->child : NULL; b; b = b->next, j++)
        for (int r = 0; r < sf_opt_int(b, "repeat"); r++, i++) {
            char path[32];
            snprintf(path, sizeof path, "blocks[%d]", j);
            if (sf_block_check_pad(&s->blocks[i], path)) {
                sf_block_stack_destroy(s->blocks, s->E);
                s->blocks = NULL;
                s->E = 0;
                return SF_ERR;
            }
        }
    sf_params *ps = &m->params;
    sf_linear_declare(&s->embed, ps, "embed", s->P * t2_value_channels(s), s->d, 1);
    sf_positions_declare(&s->pos, ps, "pos_embed");
    sf_block_stack_declare(s->blocks, s->E, ps);
    sf_linear_declare(&s->classifier, ps, "classifier", s->d, s->K, 1);
    s->slot = sf_params_reserve_saved(ps, sizeof(t2_saved) + (size_t)(s->E + 1) * sizeof(float *));
    return SF_OK;
}

static void t2_init(sf_model *m, sf_rng *rng) {
    t2 *s = m->self;
    sf_linear_init(&s->embed, rng);
    sf_positions_init(&s->pos, rng);
    for (int i = 0; i < s->E; i++) sf_block_init(&s->blocks[i], rng);
    sf_linear_init(&s->classifier, rng);
}

/* win[t, j*C + c] = x[t*S + j, c] for steps before len, 0 after (the windows of one series) */
static void gather_windows(float *win, const float *x, int len, int T, int P, int S, int C) {
    for (int t = 0; t < T; t++)
        for (int j = 0; j < P; j++) {
            int step = t * S + j;
            float *w = win + ((size_t)t * P + j) * C;
            if (step < len) memcpy(w, x + (size_t)step * C, (size_t)C * sizeof(float));
            else memset(w, 0, (size_t)C * sizeof(float));
        }
}

static sf_ctx step_ctx(const sf_ctx *ctx, const t2_saved *sv, int L) {
    sf_ctx inner = *ctx;
    inner.T = L;
    inner.lens = sv->lens;
    return inner;
}

static void t2_forward(sf_model *m, sf_ctx *ctx, const float *x, float *y) {
    t2 *s = m->self;
    t2_saved *sv = SF_SAVED(ctx, s->slot, t2_saved);
    sf_arena *a = ctx->arena;
    int plan = sf_arena_planning(a);
    int B = ctx->B, L = s->L, C = s->C, d = s->d;
    long BL = (long)B * L, xs = sf_model_x_floats(m);
    /* the lengths as ints in arena memory (one float slot each) */
    int *lens = (int *)(void *)sf_arena_push(a, (size_t)B);
    sv->lens = plan ? NULL : lens;
    int P = s->P, S = s->S, Lin = s->Lin, Cv = t2_value_channels(s);
    sv->xin = sf_arena_push(a, (size_t)BL * P * Cv);
    sv->tin = s->time_ch >= 0 ? sf_arena_push(a, (size_t)BL) : NULL;
    sv->pre = sf_arena_push(a, (size_t)BL * d);
    for (int i = 0; i <= s->E; i++) sv->z[i] = sf_arena_push(a, (size_t)BL * d);
    if (!plan) {
        for (int b = 0; b < B; b++) {
            const float *xb = x + (size_t)b * xs;
            float lv = xb[(size_t)Lin * C];
            SF_ASSERT(lv >= 1.0f && lv <= (float)Lin && "t2: valid length out of range");
            int len = (int)lv;
            lens[b] = (len + S - 1) / S;
            if (s->time_ch >= 0) /* pointwise only (t2_time_positions): L == Lin */
                t2_split_time(s, xb, sv->xin + (size_t)b * L * Cv, sv->tin + (size_t)b * L);
            else if (P == 1 && S == 1)
                memcpy(sv->xin + (size_t)b * L * C, xb, (size_t)L * C * sizeof(float));
            else
                gather_windows(sv->xin + (size_t)b * L * P * C, xb, len, L, P, S, C);
        }
        sf_linear_forward(&s->embed, sv->pre, sv->xin, BL);
        for (long i = 0; i < BL * d; i++) sv->z[0][i] = sv->pre[i] > 0.0f ? sv->pre[i] : 0.0f;
        if (s->time_ch >= 0) sf_time_encoding_add(sv->z[0], BL, d, sv->tin, 1, s->time_scale);
    }
    sf_ctx inner = step_ctx(ctx, sv, L);
    sf_positions_forward(&s->pos, &inner, sv->z[0]);
    for (int i = 0; i < s->E; i++) {
        size_t mark = sf_arena_mark(a);
        sf_block_forward(&s->blocks[i], &inner, sv->z[i], sv->z[i + 1]);
        if (!ctx->keep) sf_arena_reset_to(a, mark);
    }
    sv->pooled = sf_arena_push(a, (size_t)B * d);
    if (!plan) sf_mean_pool_forward(&inner, d, sv->z[s->E], sv->pooled);
    sv->mask_pool = sf_dropout_fwd(ctx, sv->pooled, (long)B * d, s->head_dropout);
    if (!plan) sf_linear_forward(&s->classifier, y, sv->pooled, B);
}

static void t2_backward(sf_model *m, sf_ctx *ctx, const float *dy) {
    t2 *s = m->self;
    const t2_saved *sv = SF_SAVED(ctx, s->slot, t2_saved);
    sf_arena *a = ctx->arena;
    int plan = sf_arena_planning(a);
    int B = ctx->B, L = s->L, d = s->d;
    long BL = (long)B * L;
    sf_ctx inner = step_ctx(ctx, sv, L);
    size_t mark = sf_arena_mark(a);
    float *dpool = sf_arena_push(a, (size_t)B * d);
    float *g0 = sf_arena_push(a, (size_t)BL * d), *g1 = sf_arena_push(a, (size_t)BL * d);
    if (!plan) sf_linear_backward(&s->classifier, dpool, dy, sv->pooled, B);
    sf_dropout_back(ctx, dpool, sv->mask_pool, (long)B * d, s->head_dropout);
    if (!plan) sf_mean_pool_backward(&inner, d, dpool, g0);
    for (int i = s->E - 1; i >= 0; i--) {
        sf_block_backward(&s->blocks[i], &inner, g0, g1);
        float *t = g0;
        g0 = g1;
        g1 = t;
    }
    sf_positions_backward(&s->pos, &inner, g0);
    if (!plan) {
        for (long i = 0; i < BL * d; i++)
            if (sv->pre[i] <= 0.0f) g0[i] = 0.0f;
        sf_linear_backward(&s->embed, NULL, g0, sv->xin, BL);
    }
    sf_arena_reset_to(a, mark);
}

static void t2_destroy(sf_model *m) {
    t2 *s = m->self;
    if (!s) return;
    sf_block_stack_destroy(s->blocks, s->E);
    sf_positions_destroy(&s->pos);
    free(s);
    m->self = NULL;
}

static double t2_flops(const sf_model *m) {
    const t2 *s = m->self;
    return 2.0 * s->P * t2_value_channels(s) * s->d * s->L + sf_block_stack_flops(s->blocks, s->E, s->L) +
           2.0 * s->d * s->K;
}

static const sf_model_ops t2_ops = {t2_build, t2_init, t2_forward, t2_backward, t2_destroy,
                                    t2_flops};

/* Defaults: t2's (astronet t2 train: embed_dim 32). seq_len, n_channels and n_classes are
 * filled from the data by the classify task when training. */
static const sf_option t2_options[] = {
    {"seq_len", SF_OPT_INT, 100, NULL, 1, 1000000, NULL, "longest series (steps; shorter ones are padded)"},
    {"n_channels", SF_OPT_INT, 1, NULL, 1, 100000, NULL, "channels (bands, dimensions) per step"},
    {"n_classes", SF_OPT_INT, 2, NULL, 2, 100000, NULL, "classes (logits)"},
    {"d_model", SF_OPT_INT, 32, NULL, 1, 4096, NULL, "model width (t2's embed_dim = num_filters)"},
};

const sf_model_def sf_model_t2 = {
    .info = {"t2",
             "t2 (Allam & McEwen 2023): pointwise embedding, positions, blocks over the valid "
             "steps, mean pooling, classification head",
             SF_OPTS(t2_options)},
    .has_blocks = 1,
    .default_input = "pointwise",
    .default_head = "pool_classify",
    .default_positions = "sinusoidal",
    .ops = &t2_ops,
    .reads_lengths = 1,
};

/* ---- attention maps (models/t2.h) ----------------------------------------------------------- */

int sf_t2_attention_maps(sf_model *m, const float *x, sf_attention_maps *out) {
    memset(out, 0, sizeof *out);
    if (m->def != &sf_model_t2) return sf_errorf("attention maps: the model is not t2");
    t2 *s = m->self;
    int H = 0;
    for (int i = 0; i < s->E; i++)
        for (int k = 0; k < s->blocks[i].def->n_mixers; k++)
            if (sf_mixer_is_softmax_attention(s->blocks[i].mixer[k]))
                H += sf_softmax_attention_heads(s->blocks[i].mixer[k]);
    if (!H)
        return sf_errorf("attention maps: no block of this model has a softmax token mixer "
                         "(use the gradient x input attribution, --object)");
    /* an inference forward (no dropout) that keeps what the mixers saved */
    sf_run r;
    sf_run_init(&r);
    sf_model_reserve(m, &r, 1, 1);
    sf_arena_reset_to(&r.arena, 0);
    sf_ctx ctx = {.arena = &r.arena, .training = 0, .keep = 1, .B = 1, .T = s->L, .saved = r.saved};
    float *y = sf_malloc((size_t)s->K * sizeof(float));
    t2_forward(m, &ctx, x, y);
    const t2_saved *sv = SF_SAVED(&ctx, s->slot, t2_saved);
    sf_ctx inner = step_ctx(&ctx, sv, s->L);
    size_t TT = (size_t)s->L * s->L;
    out->T = s->L;
    out->len = sv->lens[0];
    out->n_maps = H;
    out->block = sf_malloc((size_t)H * sizeof(int));
    out->head = sf_malloc((size_t)H * sizeof(int));
    out->p = sf_malloc((size_t)H * TT * sizeof(float));
    int at = 0;
    for (int i = 0; i < s->E; i++)
        for (int k = 0; k < s->blocks[i].def->n_mixers; k++) {
            const sf_mixer *mx = s->blocks[i].mixer[k];
            if (!sf_mixer_is_softmax_attention(mx)) continue;
            int h = sf_softmax_attention_heads(mx);
            sf_softmax_attention_probs(mx, &inner, 0, out->p + (size_t)at * TT);
            for (int j = 0; j < h; j++) out->block[at + j] = i, out->head[at + j] = j;
            at += h;
        }
    free(y);
    sf_run_free(&r);
    return SF_OK;
}

void sf_attention_maps_free(sf_attention_maps *a) {
    free(a->block);
    free(a->head);
    free(a->p);
    memset(a, 0, sizeof *a);
}
