/* Informer (Zhou et al., AAAI 2021; zhouhaoyi/Informer2020 models/model.py), an encoder-decoder
 * forecaster reading calendar features:
 *
 *   embed(v, marks) = drop(TokenConv(v) + sinusoidal positions + Linear_noBias(marks))
 *   encoder  z = embed(x, marks[0, L)); E post-norm layers (self-attention + FFN), with a
 *            distilling ConvLayer (conv, BatchNorm, ELU, max-pool: T -> (T-1)/2+1) between
 *            consecutive layers when distil; final LayerNorm -> mem [B, Te, d]
 *   decoder  u = embed([last label_len rows of x; pred_len zeros], marks[L-label_len, L+P));
 *            D layers: u = norm(u + drop(causal self-attention(u)));   (mix: heads re-read)
 *                      u = norm(u + drop(cross-attention(u, mem)));
 *                      u = norm(u + drop(FFN(u)));
 *            final LayerNorm, Linear(d -> C); y = the last pred_len rows.
 * attn "prob" uses ProbSparse self-attention (the probsparse mixer), "full" softmax attention.
 * The layers are the repo's: encoder layers are metaformer blocks (post placement), decoder self
 * attention and FFN are residual blocks (post), cross-attention is layers/cross_attention.c, the
 * conv embedding and distilling layer are layers/circular_conv.c and layers/distil.c.
 *
 * Input: the model declares time features (embed timeF), so each example of x is seq_len*C values
 * followed by the (seq_len + pred_len) x F calendar features of the window's timestamps
 * (models/model.h). Parameter names match tools/reference/seqformer_ref.py (Informer). */
#include <math.h>
#include <string.h>

#include "blocks/block.h"
#include "core/error.h"
#include "data/time_features.h"
#include "layers/circular_conv.h"
#include "layers/cross_attention.h"
#include "layers/distil.h"
#include "layers/dropout.h"
#include "layers/linear.h"
#include "layers/norm.h"
#include "layers/positions.h"
#include "models/model.h"

#define INF_MAX_LAYERS 16

typedef struct {
    sf_circular_conv value;
    sf_linear temporal; /* F -> d, no bias (absent when F == 0) */
} inf_embedding;

typedef struct {
    sf_block self_attn, ffn;
    sf_cross_attention cross;
    sf_norm norm2;
} inf_dec_layer;

typedef struct {
    int L, P, C, label, Ld, d, H, E, D, F, distil;
    float dropout;
    int T_enc[INF_MAX_LAYERS]; /* sequence length at encoder layer i */
    inf_embedding enc_emb, dec_emb;
    sf_positions pos; /* sinusoidal, max(L, Ld) rows */
    sf_block enc[INF_MAX_LAYERS];
    sf_distil conv[INF_MAX_LAYERS];
    sf_norm enc_norm, dec_norm;
    inf_dec_layer dec[INF_MAX_LAYERS];
    sf_linear proj;
    int n_enc, n_conv, n_dec; /* created so far (for destroy after a failed build) */
    size_t slot;
} informer;

typedef struct {
    float *xe, *me, *xd, *md;  /* encoder / decoder values and marks, contiguous */
    float *ze, *zd;            /* embeddings [B, L, d], [B, Ld, d] */
    uint8_t *mask_e, *mask_d;  /* embedding dropout */
    float *eh[INF_MAX_LAYERS]; /* encoder layer outputs */
    float *ez[INF_MAX_LAYERS]; /* distilled outputs (inputs of layer i+1) */
    float *mem;                /* encoder output after its LayerNorm */
    float *ds[INF_MAX_LAYERS], *dc[INF_MAX_LAYERS], *dr[INF_MAX_LAYERS], *dn[INF_MAX_LAYERS],
        *df[INF_MAX_LAYERS]; /* decoder: self, cross, residual sum, norm2, ffn outputs */
    uint8_t *mask_c[INF_MAX_LAYERS];
    float *dec_out, *proj_out; /* [B, Ld, d] after the final norm, [B, Ld, C] */
} inf_saved;

/* ---- time features: what the task must deliver ---- */
static int inf_time_features(const cJSON *c, char *freq) {
    if (strcmp(sf_opt_str(c, "embed"), "timeF") != 0) return 0;
    return sf_config_freq_features(c, freq);
}

static int make_block(sf_block *b, const char *json, int d, int T, const char *path) {
    cJSON *raw = cJSON_Parse(json), *nb = NULL;
    SF_ASSERT(raw);
    int rc = sf_config_normalize_block(raw, 0, &nb);
    if (rc == SF_OK) rc = sf_block_create(b, nb, d, T, path);
    cJSON_Delete(raw);
    cJSON_Delete(nb);
    return rc;
}

static void embedding_declare(inf_embedding *e, sf_params *ps, const char *prefix, int C, int F,
                              int d) {
    char buf[SF_PARAM_NAME_MAX];
    snprintf(buf, sizeof buf, "%s.value", prefix);
    sf_circular_conv_declare(&e->value, ps, buf, C, d, 0);
    if (F) {
        snprintf(buf, sizeof buf, "%s.temporal", prefix);
        sf_linear_declare(&e->temporal, ps, buf, F, d, 0);
    }
}

static int inf_build(sf_model *m) {
    const cJSON *c = m->config;
    informer *s = sf_calloc(1, sizeof *s);
    m->self = s;
    s->L = m->seq_len;
    s->P = m->pred_len;
    s->C = m->n_channels;
    s->label = sf_opt_int(c, "label_len");
    s->Ld = s->label + s->P;
    s->d = sf_opt_int(c, "d_model");
    s->H = sf_opt_int(c, "n_heads");
    s->E = sf_opt_int(c, "e_layers");
    s->D = sf_opt_int(c, "d_layers");
    s->distil = sf_opt_bool(c, "distil");
    s->dropout = sf_opt_float(c, "dropout");
    char freq = 'h';
    s->F = inf_time_features(c, &freq);
    int factor = sf_opt_int(c, "factor"), d_ff = sf_opt_int(c, "d_ff"), mix = sf_opt_bool(c, "mix");
    int prob = strcmp(sf_opt_str(c, "attn"), "prob") == 0;
    const char *act = sf_opt_str(c, "activation");
    if (s->F == 0 && strcmp(sf_opt_str(c, "embed"), "timeF") == 0)
        return sf_error_freq_auto();
    if (s->label > s->L)
        return sf_errorf("label_len: %d is longer than seq_len %d", s->label, s->L);
    if (s->d % s->H != 0) return sf_errorf("n_heads: %d does not divide d_model %d", s->H, s->d);
    if (sf_positions_create(&s->pos, "sinusoidal", s->L > s->Ld ? s->L : s->Ld, s->d))
        return sf_error_prefix("d_model");
    char json[512], path[64];
    const float p = s->dropout;
    /* encoder layers: self-attention (a token mixer from the registry) + FFN, post LayerNorms */
    s->T_enc[0] = s->L;
    for (int i = 0; i < s->E; i++) {
        if (i > 0) s->T_enc[i] = s->distil ? sf_distil_out_len(s->T_enc[i - 1]) : s->T_enc[i - 1];
        char tok[160];
        if (prob)
            snprintf(tok, sizeof tok,
                     "{\"kind\":\"probsparse\",\"n_heads\":%d,\"factor\":%d,\"causal\":false}",
                     s->H, factor);
        else
            snprintf(tok, sizeof tok, "{\"kind\":\"softmax\",\"n_heads\":%d}", s->H);
        snprintf(json, sizeof json,
                 "{\"kind\":\"metaformer\",\"placement\":\"post\",\"dropout\":%.9g,"
                 "\"norm\":\"layernorm\",\"token_mixer\":%s,\"channel_mixer\":{\"kind\":\"mlp\","
                 "\"d_ff\":%d,\"activation\":\"%s\",\"dropout\":%.9g}}",
                 (double)p, tok, d_ff, act, (double)p);
        snprintf(path, sizeof path, "encoder.layers[%d]", i);
        if (make_block(&s->enc[i], json, s->d, s->T_enc[i], path)) return SF_ERR;
        s->n_enc++;
    }
    /* decoder layers: masked self-attention (mix: the reference AttentionLayer's mix=True; with
     * attn "full" and mix, a dense probsparse: factor 1000 makes every query active, which is
     * exactly causal softmax attention read out in mixed order), cross-attention, FFN */
    for (int i = 0; i < s->D; i++) {
        char tok[160];
        if (prob || mix)
            snprintf(tok, sizeof tok,
                     "{\"kind\":\"probsparse\",\"n_heads\":%d,\"factor\":%d,\"causal\":true,"
                     "\"mix\":%s}",
                     s->H, prob ? factor : 1000, mix ? "true" : "false");
        else
            snprintf(tok, sizeof tok, "{\"kind\":\"softmax\",\"n_heads\":%d,\"causal\":true}",
                     s->H);
        snprintf(json, sizeof json,
                 "{\"kind\":\"residual\",\"placement\":\"post\",\"dropout\":%.9g,"
                 "\"norm\":\"layernorm\",\"mixer\":%s}",
                 (double)p, tok);
        snprintf(path, sizeof path, "decoder.layers[%d].self_attn", i);
        if (make_block(&s->dec[i].self_attn, json, s->d, s->Ld, path)) return SF_ERR;
        snprintf(json, sizeof json,
                 "{\"kind\":\"residual\",\"placement\":\"post\",\"dropout\":%.9g,"
                 "\"norm\":\"layernorm\",\"mixer\":{\"kind\":\"mlp\",\"d_ff\":%d,"
                 "\"activation\":\"%s\",\"dropout\":%.9g}}",
                 (double)p, d_ff, act, (double)p);
        snprintf(path, sizeof path, "decoder.layers[%d].ffn", i);
        if (make_block(&s->dec[i].ffn, json, s->d, s->Ld, path)) {
            sf_block_destroy(&s->dec[i].self_attn);
            return SF_ERR;
        }
        s->n_dec++;
    }
    sf_params *ps = &m->params;
    char name[SF_PARAM_NAME_MAX];
    embedding_declare(&s->enc_emb, ps, "enc_embedding", s->C, s->F, s->d);
    embedding_declare(&s->dec_emb, ps, "dec_embedding", s->C, s->F, s->d);
    for (int i = 0; i < s->E; i++) {
        snprintf(name, sizeof name, "encoder.layers.%d", i);
        sf_block_declare(&s->enc[i], ps, name);
    }
    s->n_conv = s->distil ? s->E - 1 : 0;
    for (int i = 0; i < s->n_conv; i++) {
        snprintf(name, sizeof name, "encoder.conv_layers.%d", i);
        sf_distil_declare(&s->conv[i], ps, name, s->d);
    }
    sf_norm_spec ln = {SF_NORM_LAYERNORM, 1e-5f, 0.1f};
    sf_norm_declare(&s->enc_norm, ps, "encoder.norm", &ln, s->d);
    for (int i = 0; i < s->D; i++) {
        inf_dec_layer *l = &s->dec[i];
        snprintf(name, sizeof name, "decoder.layers.%d.self_attn", i);
        sf_block_declare(&l->self_attn, ps, name);
        snprintf(name, sizeof name, "decoder.layers.%d.cross_attn", i);
        sf_cross_attention_declare(&l->cross, ps, name, s->d, s->H, p);
        snprintf(name, sizeof name, "decoder.layers.%d.norm2", i);
        sf_norm_declare(&l->norm2, ps, name, &ln, s->d);
        snprintf(name, sizeof name, "decoder.layers.%d.ffn", i);
        sf_block_declare(&l->ffn, ps, name);
    }
    sf_norm_declare(&s->dec_norm, ps, "decoder.norm", &ln, s->d);
    sf_linear_declare(&s->proj, ps, "projection", s->d, s->C, 1);
    s->slot = sf_params_reserve_saved(ps, sizeof(inf_saved));
    return SF_OK;
}

static void inf_init(sf_model *m, sf_rng *rng) {
    informer *s = m->self;
    sf_circular_conv_init_kaiming(&s->enc_emb.value, rng);
    sf_circular_conv_init_kaiming(&s->dec_emb.value, rng);
    if (s->F) {
        sf_linear_init(&s->enc_emb.temporal, rng);
        sf_linear_init(&s->dec_emb.temporal, rng);
    }
    sf_positions_init(&s->pos, rng);
    for (int i = 0; i < s->E; i++) sf_block_init(&s->enc[i], rng);
    for (int i = 0; i < s->n_conv; i++) sf_distil_init(&s->conv[i], rng);
    sf_norm_init(&s->enc_norm);
    for (int i = 0; i < s->D; i++) {
        sf_block_init(&s->dec[i].self_attn, rng);
        sf_cross_attention_init(&s->dec[i].cross, rng);
        sf_norm_init(&s->dec[i].norm2);
        sf_block_init(&s->dec[i].ffn, rng);
    }
    sf_norm_init(&s->dec_norm);
    sf_linear_init(&s->proj, rng);
}

static sf_ctx with_T(const sf_ctx *ctx, int T) {
    sf_ctx c = *ctx;
    c.T = T;
    c.pos_offset = 0;
    return c;
}

/* z [B, T, d] = drop(conv(v) + positions + temporal(marks)); ctx.T = T. */
static uint8_t *embed_forward(informer *s, inf_embedding *e, sf_ctx *c, const float *v,
                              const float *marks, float *z) {
    long N = (long)c->B * c->T;
    int plan = sf_arena_planning(c->arena);
    sf_circular_conv_forward(&e->value, c, v, z);
    if (s->F) {
        size_t mark = sf_arena_mark(c->arena);
        float *t = sf_arena_push(c->arena, (size_t)N * s->d);
        if (!plan) {
            sf_linear_forward(&e->temporal, t, marks, N);
            for (long i = 0; i < N * s->d; i++) z[i] += t[i];
        }
        sf_arena_reset_to(c->arena, mark);
    }
    sf_positions_forward(&s->pos, c, z);
    return sf_dropout_fwd(c, z, N * s->d, s->dropout);
}

static void embed_backward(informer *s, inf_embedding *e, sf_ctx *c, const float *marks, float *g,
                           const uint8_t *mask) {
    long N = (long)c->B * c->T;
    sf_dropout_back(c, g, mask, N * s->d, s->dropout);
    sf_positions_backward(&s->pos, c, g);
    if (s->F && !sf_arena_planning(c->arena)) sf_linear_backward(&e->temporal, NULL, g, marks, N);
    sf_circular_conv_backward(&e->value, c, g, NULL);
}

static void inf_forward(sf_model *m, sf_ctx *ctx, const float *x, float *y) {
    informer *s = m->self;
    inf_saved *sv = SF_SAVED(ctx, s->slot, inf_saved);
    sf_arena *a = ctx->arena;
    int plan = sf_arena_planning(a);
    SF_ASSERT(!ctx->lens && "informer: padded batches are not supported");
    int B = ctx->B, L = s->L, Ld = s->Ld, C = s->C, d = s->d, F = s->F, P = s->P;
    long xs = sf_model_x_floats(m);
    sv->xe = sf_arena_push(a, (size_t)B * L * C);
    sv->xd = sf_arena_push(a, (size_t)B * Ld * C);
    sv->me = sf_arena_push(a, (size_t)B * L * (F ? F : 1));
    sv->md = sf_arena_push(a, (size_t)B * Ld * (F ? F : 1));
    if (!plan) {
        memset(sv->xd, 0, (size_t)B * Ld * C * sizeof(float));
        for (int b = 0; b < B; b++) {
            const float *xb = x + (size_t)b * xs, *mb = xb + (size_t)L * C;
            memcpy(sv->xe + (size_t)b * L * C, xb, (size_t)L * C * sizeof(float));
            memcpy(sv->xd + (size_t)b * Ld * C, xb + (size_t)(L - s->label) * C,
                   (size_t)s->label * C * sizeof(float));
            if (F) {
                memcpy(sv->me + (size_t)b * L * F, mb, (size_t)L * F * sizeof(float));
                memcpy(sv->md + (size_t)b * Ld * F, mb + (size_t)(L - s->label) * F,
                       (size_t)Ld * F * sizeof(float));
            }
        }
    }
    /* encoder */
    sf_ctx ce = with_T(ctx, L);
    sv->ze = sf_arena_push(a, (size_t)B * L * d);
    sv->mask_e = embed_forward(s, &s->enc_emb, &ce, sv->xe, sv->me, sv->ze);
    const float *h = sv->ze;
    for (int i = 0; i < s->E; i++) {
        sf_ctx ci = with_T(ctx, s->T_enc[i]);
        sv->eh[i] = sf_arena_push(a, (size_t)B * s->T_enc[i] * d);
        sf_block_forward(&s->enc[i], &ci, h, sv->eh[i]);
        h = sv->eh[i];
        if (i < s->n_conv) {
            sv->ez[i] = sf_arena_push(a, (size_t)B * s->T_enc[i + 1] * d);
            sf_distil_forward(&s->conv[i], &ci, h, sv->ez[i]);
            h = sv->ez[i];
        }
    }
    int Te = s->T_enc[s->E - 1];
    sv->mem = sf_arena_push(a, (size_t)B * Te * d);
    sf_norm_forward(&s->enc_norm, ctx, h, sv->mem, (long)B * Te);
    /* decoder */
    sf_ctx cd = with_T(ctx, Ld);
    long nd = (long)B * Ld * d;
    sv->zd = sf_arena_push(a, (size_t)nd);
    sv->mask_d = embed_forward(s, &s->dec_emb, &cd, sv->xd, sv->md, sv->zd);
    const float *u = sv->zd;
    for (int i = 0; i < s->D; i++) {
        inf_dec_layer *l = &s->dec[i];
        sv->ds[i] = sf_arena_push(a, (size_t)nd);
        sv->dc[i] = sf_arena_push(a, (size_t)nd);
        sv->dr[i] = sf_arena_push(a, (size_t)nd);
        sv->dn[i] = sf_arena_push(a, (size_t)nd);
        sv->df[i] = sf_arena_push(a, (size_t)nd);
        sf_block_forward(&l->self_attn, &cd, u, sv->ds[i]);
        sf_cross_attention_forward(&l->cross, &cd, sv->ds[i], Ld, sv->mem, Te, sv->dc[i]);
        sv->mask_c[i] = sf_dropout_fwd(&cd, sv->dc[i], nd, s->dropout);
        if (!plan) sf_block_add(sv->dr[i], sv->ds[i], sv->dc[i], nd);
        sf_norm_forward(&l->norm2, &cd, sv->dr[i], sv->dn[i], (long)B * Ld);
        sf_block_forward(&l->ffn, &cd, sv->dn[i], sv->df[i]);
        u = sv->df[i];
    }
    sv->dec_out = sf_arena_push(a, (size_t)nd);
    sv->proj_out = sf_arena_push(a, (size_t)B * Ld * C);
    sf_norm_forward(&s->dec_norm, &cd, u, sv->dec_out, (long)B * Ld);
    if (plan) return;
    sf_linear_forward(&s->proj, sv->proj_out, sv->dec_out, (long)B * Ld);
    for (int b = 0; b < B; b++)
        memcpy(y + (size_t)b * P * C, sv->proj_out + ((size_t)b * Ld + s->label) * C,
               (size_t)P * C * sizeof(float));
}

static void inf_backward(sf_model *m, sf_ctx *ctx, const float *dy) {
    informer *s = m->self;
    const inf_saved *sv = SF_SAVED(ctx, s->slot, inf_saved);
    sf_arena *a = ctx->arena;
    int plan = sf_arena_planning(a);
    int B = ctx->B, Ld = s->Ld, C = s->C, d = s->d, P = s->P;
    int Te = s->T_enc[s->E - 1];
    long nd = (long)B * Ld * d, ne_max = (long)B * s->L * d;
    size_t mark = sf_arena_mark(a);
    float *dproj = sf_arena_push(a, (size_t)B * Ld * C);
    float *g0 = sf_arena_push(a, (size_t)nd), *g1 = sf_arena_push(a, (size_t)nd);
    float *g2 = sf_arena_push(a, (size_t)nd);
    float *dmem = sf_arena_push(a, (size_t)B * Te * d);
    float *e0 = sf_arena_push(a, (size_t)ne_max), *e1 = sf_arena_push(a, (size_t)ne_max);
    sf_ctx cd = with_T(ctx, Ld);
    if (!plan) {
        memset(dproj, 0, (size_t)B * Ld * C * sizeof(float));
        for (int b = 0; b < B; b++)
            memcpy(dproj + ((size_t)b * Ld + s->label) * C, dy + (size_t)b * P * C,
                   (size_t)P * C * sizeof(float));
        sf_linear_backward(&s->proj, g1, dproj, sv->dec_out, (long)B * Ld);
        memset(dmem, 0, (size_t)B * Te * d * sizeof(float));
    }
    sf_norm_backward(&s->dec_norm, &cd, g1, g0, (long)B * Ld); /* g0 = d(last decoder output) */
    for (int i = s->D - 1; i >= 0; i--) {
        inf_dec_layer *l = &s->dec[i];
        sf_block_backward(&l->ffn, &cd, g0, g1);                /* g1 = d dn */
        sf_norm_backward(&l->norm2, &cd, g1, g2, (long)B * Ld); /* g2 = d dr */
        if (!plan) memcpy(g1, g2, (size_t)nd * sizeof(float));
        sf_dropout_back(&cd, g1, sv->mask_c[i], nd, s->dropout); /* g1 = d (cross out) */
        sf_cross_attention_backward(&l->cross, &cd, g1, g0, dmem);
        if (!plan) sf_block_add(g2, g2, g0, nd);       /* g2 = d ds */
        sf_block_backward(&l->self_attn, &cd, g2, g0); /* g0 = d (layer input) */
    }
    embed_backward(s, &s->dec_emb, &cd, sv->md, g0, sv->mask_d);
    /* encoder */
    sf_norm_backward(&s->enc_norm, ctx, dmem, e0, (long)B * Te);
    for (int i = s->E - 1; i >= 0; i--) {
        sf_ctx ci = with_T(ctx, s->T_enc[i]);
        if (i < s->n_conv) {
            sf_distil_backward(&s->conv[i], &ci, e0, e1);
            float *t = e0;
            e0 = e1;
            e1 = t;
        }
        sf_block_backward(&s->enc[i], &ci, e0, e1);
        float *t = e0;
        e0 = e1;
        e1 = t;
    }
    sf_ctx ce = with_T(ctx, s->L);
    embed_backward(s, &s->enc_emb, &ce, sv->me, e0, sv->mask_e);
    sf_arena_reset_to(a, mark);
}

static void inf_destroy(sf_model *m) {
    informer *s = m->self;
    if (!s) return;
    for (int i = 0; i < s->n_enc; i++) sf_block_destroy(&s->enc[i]);
    for (int i = 0; i < s->n_dec; i++) {
        sf_block_destroy(&s->dec[i].self_attn);
        sf_block_destroy(&s->dec[i].ffn);
    }
    sf_positions_destroy(&s->pos);
    free(s);
    m->self = NULL;
}

/* Forward FLOPs per sample: embeddings, blocks (their mixers' counts), distilling convs,
 * cross-attention (projections + scores and sums), projection. */
static double inf_flops(const sf_model *m) {
    const informer *s = m->self;
    double d = s->d, f = 2.0 * (s->L + s->Ld) * (3.0 * s->C + s->F) * d;
    for (int i = 0; i < s->E; i++)
        for (int k = 0; k < 2; k++) {
            const sf_mixer *mx = s->enc[i].mixer[k];
            if (mx->ops->flops) f += mx->ops->flops(mx, s->T_enc[i]);
        }
    for (int i = 0; i < s->n_conv; i++) f += 2.0 * s->T_enc[i] * 3 * d * d;
    double Te = s->T_enc[s->E - 1];
    for (int i = 0; i < s->D; i++) {
        const sf_mixer *sa = s->dec[i].self_attn.mixer[0], *ff = s->dec[i].ffn.mixer[0];
        if (sa->ops->flops) f += sa->ops->flops(sa, s->Ld);
        if (ff->ops->flops) f += ff->ops->flops(ff, s->Ld);
        f += 4.0 * s->Ld * d * d + 4.0 * Te * d * d + 4.0 * s->Ld * Te * d;
    }
    return f + 2.0 * s->Ld * d * s->C;
}

static const sf_model_ops inf_ops = {inf_build,    inf_init,    inf_forward,
                                     inf_backward, inf_destroy, inf_flops};

/* main_informer.py's defaults */
static const sf_option inf_options[] = {
    {"seq_len", SF_OPT_INT, 96, NULL, 1, 100000, NULL, "look-back window (encoder input steps)"},
    {"pred_len", SF_OPT_INT, 24, NULL, 1, 100000, NULL, "forecast horizon (output steps)"},
    {"n_channels", SF_OPT_INT, 7, NULL, 1, 100000, NULL, "input/output channels (variates)"},
    {"label_len", SF_OPT_INT, 48, NULL, 0, 100000, NULL,
     "known steps that start the decoder input (the last label_len of the window)"},
    {"d_model", SF_OPT_INT, 512, NULL, 2, 4096, NULL, "model width (even: sinusoidal positions)"},
    {"n_heads", SF_OPT_INT, 8, NULL, 1, 4096, NULL, "attention heads (must divide d_model)"},
    {"e_layers", SF_OPT_INT, 2, NULL, 1, INF_MAX_LAYERS, NULL, "encoder layers"},
    {"d_layers", SF_OPT_INT, 1, NULL, 1, INF_MAX_LAYERS, NULL, "decoder layers"},
    {"d_ff", SF_OPT_INT, 2048, NULL, 1, 1 << 20, NULL, "feed-forward width"},
    {"factor", SF_OPT_INT, 5, NULL, 1, 1000, NULL,
     "ProbSparse c: c*ceil(ln T) sampled keys and active queries"},
    {"dropout", SF_OPT_FLOAT, 0.05, NULL, 0, 0.99, NULL,
     "dropout (embeddings, residuals, FFN, cross-attention weights)"},
    {"attn", SF_OPT_CHOICE, 0, "prob", 0, 0, "prob|full", "self-attention: ProbSparse or softmax"},
    {"activation", SF_OPT_CHOICE, 0, "gelu", 0, 0, "gelu|relu", "FFN activation"},
    {"distil", SF_OPT_BOOL, 1, NULL, 0, 1, NULL, "distilling conv layers between encoder layers"},
    {"mix", SF_OPT_BOOL, 1, NULL, 0, 1, NULL, "decoder self-attention heads read out mixed"},
    {"embed", SF_OPT_CHOICE, 0, "timeF", 0, 0, "timeF|none",
     "time features: timeF (calendar features, linear) or none"},
    SF_OPTION_FREQ,
};

const sf_model_def sf_model_informer = {
    .info = {"informer", "Informer (Zhou et al. 2021): ProbSparse encoder-decoder with distilling",
             SF_OPTS(inf_options)},
    .has_blocks = 0,
    .ops = &inf_ops,
    .time_features = inf_time_features,
};
