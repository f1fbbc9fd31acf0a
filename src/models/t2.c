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
 * Parameter names: embed, pos_embed (learned positions only), blocks.<i>, classifier
 * (tools/reference/seqformer_ref.py T2 loads them with strict=True). */
#include <string.h>

#include "blocks/block.h"
#include "core/error.h"
#include "layers/dropout.h"
#include "layers/linear.h"
#include "layers/pool.h"
#include "layers/positions.h"
#include "models/model.h"

typedef struct {
    int L, C, d, K, E;
    int Lin, P, S; /* input steps, window (patch_len) and stride; L = tokens = ceil(Lin/S) */
    float head_dropout;
    sf_linear embed, classifier;
    sf_positions pos;
    sf_block *blocks;
    size_t slot;
} t2;

typedef struct {
    int *lens;        /* [B] valid steps (NULL while planning) */
    float *xin;       /* [B*L, P*C] each token's window of values */
    float *pre;       /* [B*L, d] embedding before the ReLU */
    float *pooled;    /* [B, d] after pooling (and dropout) */
    uint8_t *mask_pool;
    float *z[];       /* E+1 buffers [B*L, d]: embedding + positions, then each block's output */
} t2_saved;

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
    if (sf_positions_create(&s->pos, sf_opt_str(cJSON_GetObjectItemCaseSensitive(c, "positions"),
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
    sf_linear_declare(&s->embed, ps, "embed", s->P * s->C, s->d, 1);
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
    int P = s->P, S = s->S, Lin = s->Lin;
    sv->xin = sf_arena_push(a, (size_t)BL * P * C);
    sv->pre = sf_arena_push(a, (size_t)BL * d);
    for (int i = 0; i <= s->E; i++) sv->z[i] = sf_arena_push(a, (size_t)BL * d);
    if (!plan) {
        for (int b = 0; b < B; b++) {
            const float *xb = x + (size_t)b * xs;
            float lv = xb[(size_t)Lin * C];
            SF_ASSERT(lv >= 1.0f && lv <= (float)Lin && "t2: valid length out of range");
            int len = (int)lv;
            lens[b] = (len + S - 1) / S;
            if (P == 1 && S == 1) {
                memcpy(sv->xin + (size_t)b * L * C, xb, (size_t)L * C * sizeof(float));
                continue;
            }
            gather_windows(sv->xin + (size_t)b * L * P * C, xb, len, L, P, S, C);
        }
        sf_linear_forward(&s->embed, sv->pre, sv->xin, BL);
        for (long i = 0; i < BL * d; i++) sv->z[0][i] = sv->pre[i] > 0.0f ? sv->pre[i] : 0.0f;
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
    return 2.0 * s->P * s->C * s->d * s->L + sf_block_stack_flops(s->blocks, s->E, s->L) +
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
