/* Causal language model (decoder-only Transformer family, GPT-style):
 *   x [B, T] token ids (as floats) -> embed (tokens input) + positions -> dropout ->
 *   E causal blocks -> final norm -> head (lm) -> y [B, T, vocab] logits.
 * Every token mixer must be causal and able to stream: the model is refused when the config is
 * read otherwise, so `generate` and the streaming API (models/stream.h) work for every lm.
 * seq_len is the training context; max_len (>= seq_len) is the longest stream, sizing the
 * positions and the mixers' streaming state (softmax attention's KV cache holds max_len keys).
 * Parameter names (tools/reference/seqformer_ref.py loads them strictly): embed.weight,
 * pos_embed (learned), blocks.{k}..., norm_f, head.weight (absent when tied), head.bias. */
#include <math.h>
#include <string.h>

#include "blocks/block.h"
#include "core/error.h"
#include "core/scratch.h"
#include "layers/dropout.h"
#include "layers/embedding.h"
#include "layers/linear.h"
#include "layers/norm.h"
#include "layers/positions.h"
#include "models/model.h"

typedef struct {
    int T, max_len, V, d, E, tie, has_norm_f;
    float dropout;
    sf_embedding embed;
    sf_positions pos;
    sf_block *blocks;
    sf_norm norm_f;
    sf_linear head; /* weight unused (NULL) when tied: see head_of */
    size_t *state_off; /* [E+1]: block k's streaming state starts at state_off[k] */
    size_t slot;
} lm;

typedef struct {
    int32_t *ids; /* [B*T] */
    float *zf;    /* after norm_f, the head's input */
    uint8_t *mask_emb;
    float *z[]; /* E+1 buffers [B*T, d] */
} lm_saved;

/* The head as used: a tied head reads (and accumulates into) the embedding table, whose [V, d]
 * layout is a Linear(d -> V) weight's. A copy, so const callers (step) need not write. */
static sf_linear head_of(const lm *s) {
    sf_linear h = s->head;
    if (s->tie) {
        h.w = s->embed.w;
        h.dw = s->embed.dw;
    }
    return h;
}

/* A token id in x: a float holding an integer in [0, V); -1 otherwise. */
static int token_id(float v, int V) {
    if (!(v >= 0) || v >= (float)V || v != floorf(v)) return -1;
    return (int)v;
}

static int lm_build(sf_model *m) {
    const cJSON *c = m->config;
    const cJSON *input = cJSON_GetObjectItemCaseSensitive(c, "input");
    const cJSON *head = cJSON_GetObjectItemCaseSensitive(c, "head");
    const cJSON *blocks = cJSON_GetObjectItemCaseSensitive(c, "blocks");
    if (strcmp(sf_opt_str(input, "kind"), "tokens") != 0)
        return sf_errorf("input.kind: lm reads token ids (tokens), not '%s'", sf_opt_str(input, "kind"));
    if (strcmp(sf_opt_str(head, "kind"), "lm") != 0)
        return sf_errorf("head.kind: lm's head is lm, not '%s'", sf_opt_str(head, "kind"));
    if (strcmp(sf_opt_str(c, "task"), "lm") != 0)
        return sf_errorf("task: the lm model is trained by task lm, not '%s' (set \"task\": \"lm\")",
                         sf_opt_str(c, "task"));
    lm *s = sf_calloc(1, sizeof *s);
    m->self = s;
    s->T = m->seq_len;
    s->max_len = sf_opt_int(c, "max_len");
    if (s->max_len == 0) s->max_len = s->T;
    if (s->max_len < s->T)
        return sf_errorf("max_len: %d is shorter than seq_len %d", s->max_len, s->T);
    s->d = sf_opt_int(c, "d_model");
    s->V = sf_opt_int(input, "vocab");
    s->dropout = sf_opt_float(c, "dropout");
    s->tie = sf_opt_bool(head, "tie_weights");
    const cJSON *positions = cJSON_GetObjectItemCaseSensitive(c, "positions");
    const char *pk = sf_opt_str(positions, "kind");
    if (!strcmp(pk, "learned") && s->max_len > s->T)
        return sf_errorf("max_len: learned positions are trained for seq_len %d positions only; "
                         "streams longer than that need positions sinusoidal or none", s->T);
    if (sf_positions_create(&s->pos, pk, s->max_len, s->d)) return sf_error_prefix("positions");
    if (sf_block_stack_create_pos(blocks, s->d, s->max_len, positions, &s->blocks, &s->E)) return SF_ERR;
    /* causal only: every block must stream (error naming the config entry, not the expansion) */
    int k = 0, bi = 0;
    for (const cJSON *b = blocks->child; b; b = b->next, bi++) {
        char path[32];
        snprintf(path, sizeof path, "blocks[%d]", bi);
        for (int r = 0; r < sf_opt_int(b, "repeat"); r++, k++)
            if (sf_block_check_step(&s->blocks[k], path))
                return sf_error_prefix("lm needs causal mixers (\"causal\": true where a mixer "
                                       "has the option)");
    }
    s->state_off = sf_malloc((size_t)(s->E + 1) * sizeof *s->state_off);
    s->state_off[0] = 0;
    for (int i = 0; i < s->E; i++)
        s->state_off[i + 1] = s->state_off[i] + sf_block_state_floats(&s->blocks[i]);
    /* final_norm auto: the last block's norm when it is pre-norm (as patchtst) */
    int last_pre = 0;
    sf_norm_spec nf = {SF_NORM_LAYERNORM, 1e-5f, 0.1f};
    for (const cJSON *b = blocks->child; b; b = b->next) {
        last_pre = strcmp(sf_opt_str(b, "placement"), "pre") == 0;
        nf = sf_norm_spec_from_json(cJSON_GetObjectItemCaseSensitive(b, "norm"));
    }
    const char *fn = sf_opt_str(c, "final_norm");
    if (!strcmp(fn, "auto")) {
        s->has_norm_f = s->E > 0 && last_pre;
    } else if (strcmp(fn, "none") != 0) {
        s->has_norm_f = 1;
        sf_norm_kind_parse(fn, &nf.kind);
        nf.eps = 1e-5f;
    }
    if (s->has_norm_f && nf.kind == SF_NORM_BATCHNORM)
        return sf_errorf("final_norm: batchnorm mixes tokens of the batch and cannot stream");
    sf_params *ps = &m->params;
    sf_embedding_declare(&s->embed, ps, "embed", s->V, s->d);
    sf_positions_declare(&s->pos, ps, "pos_embed");
    sf_block_stack_declare(s->blocks, s->E, ps);
    if (s->has_norm_f) sf_norm_declare(&s->norm_f, ps, "norm_f", &nf, s->d);
    int bias = sf_opt_bool(head, "bias");
    if (s->tie) {
        s->head.in = s->d;
        s->head.out = s->V;
        s->head.has_bias = bias;
        if (bias) sf_params_declare(ps, "head.bias", 1, (int64_t[]){s->V}, &s->head.b, &s->head.db, 1);
    } else {
        sf_linear_declare(&s->head, ps, "head", s->d, s->V, bias);
    }
    s->slot = sf_params_reserve_saved(ps, sizeof(lm_saved) + (size_t)(s->E + 1) * sizeof(float *));
    return SF_OK;
}

static void lm_init(sf_model *m, sf_rng *rng) {
    lm *s = m->self;
    /* GPT-2's N(0, 0.02) rather than nn.Embedding's N(0, 1): a tied head's logits start small */
    sf_rng_fill_normal(rng, s->embed.w, (long)s->V * s->d, 0.0f, 0.02f);
    sf_positions_init(&s->pos, rng);
    for (int i = 0; i < s->E; i++) sf_block_init(&s->blocks[i], rng);
    if (s->has_norm_f) sf_norm_init(&s->norm_f);
    if (!s->tie) {
        sf_linear_init(&s->head, rng);
    } else if (s->head.has_bias) {
        memset(s->head.b, 0, (size_t)s->V * sizeof(float));
    }
}

static void lm_forward(sf_model *m, sf_ctx *ctx, const float *x, float *y) {
    lm *s = m->self;
    lm_saved *sv = SF_SAVED(ctx, s->slot, lm_saved);
    sf_arena *a = ctx->arena;
    int plan = sf_arena_planning(a);
    long ntok = (long)ctx->B * ctx->T;
    int d = s->d;
    sv->ids = (int32_t *)(void *)sf_arena_push(a, (size_t)ntok);
    for (int i = 0; i <= s->E; i++) sv->z[i] = sf_arena_push(a, (size_t)ntok * d);
    if (!plan) {
        for (long n = 0; n < ntok; n++) {
            int id = token_id(x[n], s->V);
            SF_ASSERT(id >= 0 && "token ids are checked by the task and the stream");
            sv->ids[n] = id;
        }
        sf_embedding_forward(&s->embed, sv->z[0], sv->ids, ntok);
    }
    sf_positions_forward(&s->pos, ctx, sv->z[0]);
    sv->mask_emb = sf_dropout_fwd(ctx, sv->z[0], ntok * d, s->dropout);
    for (int i = 0; i < s->E; i++) {
        size_t mark = sf_arena_mark(a);
        sf_block_forward(&s->blocks[i], ctx, sv->z[i], sv->z[i + 1]);
        if (!ctx->keep) sf_arena_reset_to(a, mark);
    }
    const float *zl = sv->z[s->E];
    sv->zf = NULL;
    if (s->has_norm_f) {
        sv->zf = sf_arena_push(a, (size_t)ntok * d);
        sf_norm_forward(&s->norm_f, ctx, zl, sv->zf, ntok);
        zl = sv->zf;
    }
    if (!plan) {
        sf_linear h = head_of(s);
        sf_linear_forward(&h, y, zl, ntok);
    }
}

static void lm_backward(sf_model *m, sf_ctx *ctx, const float *dy) {
    lm *s = m->self;
    const lm_saved *sv = SF_SAVED(ctx, s->slot, lm_saved);
    sf_arena *a = ctx->arena;
    int plan = sf_arena_planning(a);
    long ntok = (long)ctx->B * ctx->T;
    int d = s->d;
    size_t mark = sf_arena_mark(a);
    float *g0 = sf_arena_push(a, (size_t)ntok * d), *g1 = sf_arena_push(a, (size_t)ntok * d);
    if (!plan) {
        sf_linear h = head_of(s);
        sf_linear_backward(&h, s->has_norm_f ? g1 : g0, dy, s->has_norm_f ? sv->zf : sv->z[s->E],
                           ntok);
    }
    if (s->has_norm_f) sf_norm_backward(&s->norm_f, ctx, g1, g0, ntok);
    for (int i = s->E - 1; i >= 0; i--) {
        sf_block_backward(&s->blocks[i], ctx, g0, g1);
        float *t = g0;
        g0 = g1;
        g1 = t;
    }
    sf_dropout_back(ctx, g0, sv->mask_emb, ntok * d, s->dropout);
    sf_positions_backward(&s->pos, ctx, g0);
    if (!plan) sf_embedding_backward(&s->embed, g0, sv->ids, ntok);
    sf_arena_reset_to(a, mark);
}

static void lm_destroy(sf_model *m) {
    lm *s = m->self;
    if (!s) return;
    sf_block_stack_destroy(s->blocks, s->E);
    sf_positions_destroy(&s->pos);
    free(s->state_off);
    free(s);
    m->self = NULL;
}

/* Per sequence of seq_len tokens: the blocks plus the head's 2*T*d*V. */
static double lm_flops(const sf_model *m) {
    const lm *s = m->self;
    return sf_block_stack_flops(s->blocks, s->E, s->T) + 2.0 * s->T * s->d * s->V;
}

static size_t lm_state_floats(const sf_model *m) {
    const lm *s = m->self;
    return s->state_off[s->E];
}

static void lm_step_shape(const sf_model *m, long *in_floats, long *out_floats, int *max_steps) {
    const lm *s = m->self;
    *in_floats = 1;
    *out_floats = s->V;
    *max_steps = s->max_len;
}

static int lm_step(const sf_model *m, const float *x_t, float *state, float *y_t, int t) {
    const lm *s = m->self;
    int id = token_id(x_t[0], s->V);
    if (id < 0)
        return sf_errorf("token %g is not a token id of this model (integers 0..%d)", (double)x_t[0],
                         s->V - 1);
    if (t < 0 || t >= s->max_len)
        return sf_errorf("position %d is past the model's longest stream (max_len %d)", t,
                         s->max_len);
    int d = s->d;
    size_t mark = sf_scratch_mark();
    float *h = sf_scratch_push((size_t)d), *h2 = sf_scratch_push((size_t)d);
    memcpy(h, s->embed.w + (size_t)id * d, (size_t)d * sizeof(float));
    const float *pos = s->pos.kind == SF_POS_LEARNED ? s->pos.w : s->pos.table;
    if (pos)
        for (int i = 0; i < d; i++) h[i] += pos[(size_t)t * d + i];
    for (int k = 0; k < s->E; k++) {
        sf_block_step(&s->blocks[k], h, state + s->state_off[k], h2, t);
        float *tmp = h;
        h = h2;
        h2 = tmp;
    }
    if (s->has_norm_f) {
        sf_norm_step(&s->norm_f, h, h2);
        h = h2;
    }
    sf_linear head = head_of(s);
    sf_linear_forward(&head, y_t, h, 1);
    sf_scratch_release(mark);
    return SF_OK;
}

static const sf_model_ops lm_ops = {
    .build = lm_build,
    .init = lm_init,
    .forward = lm_forward,
    .backward = lm_backward,
    .destroy = lm_destroy,
    .flops = lm_flops,
};

static const sf_model_stream_ops lm_stream_ops = {lm_state_floats, lm_step_shape, lm_step};

static const sf_option lm_options[] = {
    {"seq_len", SF_OPT_INT, 256, NULL, 1, 1 << 20, NULL, "training context (tokens per window)"},
    {"max_len", SF_OPT_INT, 0, NULL, 0, 1 << 24, NULL,
     "longest stream (positions, KV cache); 0: seq_len"},
    {"d_model", SF_OPT_INT, 128, NULL, 1, 8192, NULL, "model width"},
    {"dropout", SF_OPT_FLOAT, 0, NULL, 0, 0.99, NULL, "dropout after embedding + positions"},
    {"final_norm", SF_OPT_CHOICE, 0, "auto", 0, 0, "auto|none|layernorm|rmsnorm",
     "norm after the last block (auto: the last block's norm when it is pre-norm)"},
};

const sf_model_def sf_model_lm = {
    .info = {"lm", "causal language model: tokens, causal blocks, final norm, per-token logits",
             SF_OPTS(lm_options)},
    .has_blocks = 1,
    .default_input = "tokens",
    .default_head = "lm",
    .ops = &lm_ops,
    .stream = &lm_stream_ops,
};
