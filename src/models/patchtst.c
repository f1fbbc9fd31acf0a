/* PatchTST-style forecaster (Nie et al., ICLR 2023), channel-independent:
 *   x [B, L, C] -> RevIN per (b, c) -> pad the end with `stride` copies of the last value ->
 *   N patches of length pl per channel -> patch_embed + positions -> dropout ->
 *   E MetaFormer blocks on [B*C, N, d] -> (pre-norm: norm_f) -> flatten d*N (index di*N + p) ->
 *   head -> [B*C, P] -> RevIN inverse -> y [B, P, C].
 * Parameter names match tools/reference/seqformer_ref.py, which loads them with strict=True. */
#include <math.h>
#include <string.h>

#include "blocks/metaformer.h"
#include "core/error.h"
#include "layers/dropout.h"
#include "layers/linear.h"
#include "layers/norm.h"
#include "models/model.h"

/* Elementwise loops over fewer than this many floats run on the calling thread: waking the team
costs more than the loop (batch-1 inference is 294 tokens x 16). */
#define SF_PT_PAR_MIN 65536L

typedef struct {
    int L, P, C, N, pl, s, d, E;
    sf_linear patch_embed, head;
    float *pos, *dpos;  /* learned [N, d], or NULL */
    float *pos_table;   /* sinusoidal [N, d], fixed, or NULL */
    sf_block *blocks;
    sf_norm norm_f;
    int has_norm_f;
    /* saved by forward */
    float *mean, *stdev; /* [B*C] */
    float *patches;      /* [B*C*N, pl] */
    float **z;           /* E+1 buffers [B*C*N, d]: embedding, then each block's output */
    float *zf;           /* after norm_f (pre-norm only) */
    float *flat;         /* [B*C, d*N] */
    float *head_out;     /* [B*C, P] */
    uint8_t *mask_emb, *mask_head;
} patchtst;

static int pt_build(sf_model *m) {
    const sf_model_config *c = &m->cfg;
    patchtst *s = sf_calloc(1, sizeof *s);
    m->self = s;
    s->L = c->seq_len;
    s->P = c->pred_len;
    s->C = c->n_channels;
    s->pl = c->patch_len;
    s->s = c->stride;
    s->d = c->d_model;
    s->E = c->e_layers;
    s->N = sf_config_n_patches(c);
    sf_norm_kind nk;
    if (sf_norm_kind_parse(c->norm, &nk)) return SF_ERR;
    s->blocks = sf_calloc((size_t)(s->E ? s->E : 1), sizeof *s->blocks);
    s->z = sf_calloc((size_t)s->E + 1, sizeof *s->z);
    sf_block_config bc = {
        .token_mixer = c->mixer,
        .channel_mixer = "mlp",
        .norm = nk,
        .pre_norm = strcmp(c->norm_place, "pre") == 0,
        .opts = {.d_model = c->d_model, .n_heads = c->n_heads, .d_ff = c->d_ff,
                 .causal = c->causal, .dropout = c->dropout, .max_T = s->N},
    };
    for (int i = 0; i < s->E; i++)
        if (sf_block_create(&s->blocks[i], &bc)) {
            for (int j = 0; j < i; j++) sf_block_destroy(&s->blocks[j]);
            s->E = 0;
            return SF_ERR;
        }
    sf_params *ps = &m->params;
    sf_linear_declare(&s->patch_embed, ps, "patch_embed", s->pl, s->d, 1);
    if (strcmp(c->pos, "learned") == 0) {
        sf_params_declare(ps, "pos_embed", 2, (int64_t[]){s->N, s->d}, &s->pos, &s->dpos, 1);
    } else {
        s->pos_table = sf_malloc((size_t)s->N * s->d * sizeof(float));
        for (int p = 0; p < s->N; p++)
            for (int i = 0; i < s->d; i += 2) {
                double freq = pow(10000.0, -(double)i / s->d);
                s->pos_table[p * s->d + i] = (float)sin(p * freq);
                s->pos_table[p * s->d + i + 1] = (float)cos(p * freq);
            }
    }
    char name[SF_PARAM_NAME_MAX];
    for (int i = 0; i < s->E; i++) {
        snprintf(name, sizeof name, "blocks.%d", i);
        sf_block_declare(&s->blocks[i], ps, name);
    }
    s->has_norm_f = bc.pre_norm;
    if (s->has_norm_f) sf_norm_declare(&s->norm_f, ps, "norm_f", nk, s->d);
    sf_linear_declare(&s->head, ps, "head", s->d * s->N, s->P, 1);
    return SF_OK;
}

static void pt_init(sf_model *m, sf_rng *rng) {
    patchtst *s = m->self;
    sf_linear_init(&s->patch_embed, rng);
    if (s->pos) sf_rng_fill_uniform(rng, s->pos, (long)s->N * s->d, -0.02f, 0.02f);
    for (int i = 0; i < s->E; i++) sf_block_init(&s->blocks[i], rng);
    if (s->has_norm_f) sf_norm_init(&s->norm_f);
    sf_linear_init(&s->head, rng);
}

static void pt_forward(sf_model *m, sf_ctx *ctx, const float *x, float *y) {
    patchtst *s = m->self;
    const sf_model_config *c = &m->cfg;
    sf_arena *a = ctx->arena;
    int plan = sf_arena_planning(a);
    int B = ctx->B, BC = B * s->C, N = s->N, d = s->d, L = s->L, C = s->C;
    long ntok = (long)BC * N;
    sf_ctx inner = *ctx;
    inner.B = BC;
    inner.T = N;

    s->mean = sf_arena_push(a, (size_t)BC);
    s->stdev = sf_arena_push(a, (size_t)BC);
    s->patches = sf_arena_push(a, (size_t)ntok * s->pl);
    for (int i = 0; i <= s->E; i++) s->z[i] = sf_arena_push(a, (size_t)ntok * d);
    if (!plan) {
        /* RevIN statistics and patching, one (b, c) series at a time. */
#pragma omp parallel for schedule(static) if (ntok * d >= SF_PT_PAR_MIN)
        for (int bc = 0; bc < BC; bc++) {
            int b = bc / C, ch = bc % C;
            const float *xs = x + (size_t)b * L * C + ch;
            double mu = 0, var = 0;
            if (c->revin) {
                for (int t = 0; t < L; t++) mu += xs[(size_t)t * C];
                mu /= L;
                for (int t = 0; t < L; t++) {
                    double e = xs[(size_t)t * C] - mu;
                    var += e * e;
                }
                var /= L;
            }
            float fmu = (float)mu, fsd = c->revin ? (float)sqrt(var + 1e-5) : 1.0f;
            s->mean[bc] = fmu;
            s->stdev[bc] = fsd;
            float *pt = s->patches + (size_t)bc * N * s->pl;
            for (int p = 0; p < N; p++)
                for (int j = 0; j < s->pl; j++) {
                    int t = p * s->s + j;
                    if (t >= L) t = L - 1; /* end padding repeats the last value */
                    pt[p * s->pl + j] = (xs[(size_t)t * C] - fmu) / fsd;
                }
        }
        sf_linear_forward(&s->patch_embed, s->z[0], s->patches, ntok);
        const float *pos = s->pos ? s->pos : s->pos_table;
#pragma omp parallel for schedule(static) if (ntok * d >= SF_PT_PAR_MIN)
        for (int bc = 0; bc < BC; bc++) {
            float *zb = s->z[0] + (size_t)bc * N * d;
            for (int i = 0; i < N * d; i++) zb[i] += pos[i];
        }
    }
    s->mask_emb = sf_dropout_fwd(ctx, s->z[0], ntok * d, c->dropout);
    for (int i = 0; i < s->E; i++) sf_block_forward(&s->blocks[i], &inner, s->z[i], s->z[i + 1]);
    const float *zl = s->z[s->E];
    s->zf = NULL;
    if (s->has_norm_f) {
        s->zf = sf_arena_push(a, (size_t)ntok * d);
        sf_norm_forward(&s->norm_f, &inner, zl, s->zf, ntok);
        zl = s->zf;
    }
    s->flat = sf_arena_push(a, (size_t)ntok * d);
    s->head_out = sf_arena_push(a, (size_t)BC * s->P);
    if (!plan) {
#pragma omp parallel for schedule(static) if (ntok * d >= SF_PT_PAR_MIN)
        for (int bc = 0; bc < BC; bc++) {
            const float *zb = zl + (size_t)bc * N * d;
            float *fb = s->flat + (size_t)bc * N * d;
            for (int p = 0; p < N; p++)
                for (int di = 0; di < d; di++) fb[di * N + p] = zb[p * d + di];
        }
        sf_linear_forward(&s->head, s->head_out, s->flat, BC);
    }
    s->mask_head = sf_dropout_fwd(ctx, s->head_out, (long)BC * s->P, c->head_dropout);
    if (!plan) {
        for (int bc = 0; bc < BC; bc++) {
            int b = bc / C, ch = bc % C;
            const float *h = s->head_out + (size_t)bc * s->P;
            float *yb = y + (size_t)b * s->P * C + ch;
            for (int t = 0; t < s->P; t++) yb[(size_t)t * C] = h[t] * s->stdev[bc] + s->mean[bc];
        }
    }
}

static void pt_backward(sf_model *m, sf_ctx *ctx, const float *dy) {
    patchtst *s = m->self;
    const sf_model_config *c = &m->cfg;
    sf_arena *a = ctx->arena;
    int plan = sf_arena_planning(a);
    int B = ctx->B, BC = B * s->C, N = s->N, d = s->d, C = s->C;
    long ntok = (long)BC * N;
    sf_ctx inner = *ctx;
    inner.B = BC;
    inner.T = N;
    size_t mark = sf_arena_mark(a);
    float *dhead = sf_arena_push(a, (size_t)BC * s->P);
    float *dflat = sf_arena_push(a, (size_t)ntok * d);
    float *g0 = sf_arena_push(a, (size_t)ntok * d), *g1 = sf_arena_push(a, (size_t)ntok * d);
    if (!plan) {
        for (int bc = 0; bc < BC; bc++) {
            int b = bc / C, ch = bc % C;
            const float *dyb = dy + (size_t)b * s->P * C + ch;
            for (int t = 0; t < s->P; t++)
                dhead[(size_t)bc * s->P + t] = dyb[(size_t)t * C] * s->stdev[bc];
        }
    }
    sf_dropout_back(ctx, dhead, s->mask_head, (long)BC * s->P, c->head_dropout);
    if (!plan) {
        sf_linear_backward(&s->head, dflat, dhead, s->flat, BC);
        float *dz = s->has_norm_f ? g1 : g0;
#pragma omp parallel for schedule(static) if (ntok * d >= SF_PT_PAR_MIN)
        for (int bc = 0; bc < BC; bc++) {
            const float *fb = dflat + (size_t)bc * N * d;
            float *zb = dz + (size_t)bc * N * d;
            for (int p = 0; p < N; p++)
                for (int di = 0; di < d; di++) zb[p * d + di] = fb[di * N + p];
        }
    }
    if (s->has_norm_f) sf_norm_backward(&s->norm_f, &inner, g1, g0, ntok);
    for (int i = s->E - 1; i >= 0; i--) {
        sf_block_backward(&s->blocks[i], &inner, g0, g1);
        float *t = g0;
        g0 = g1;
        g1 = t;
    }
    sf_dropout_back(ctx, g0, s->mask_emb, ntok * d, c->dropout);
    if (!plan) {
        if (s->dpos)
            for (int bc = 0; bc < BC; bc++) {
                const float *gb = g0 + (size_t)bc * N * d;
                for (int i = 0; i < N * d; i++) s->dpos[i] += gb[i];
            }
        sf_linear_backward(&s->patch_embed, NULL, g0, s->patches, ntok);
    }
    sf_arena_reset_to(a, mark);
}

static void pt_destroy(sf_model *m) {
    patchtst *s = m->self;
    if (!s) return;
    for (int i = 0; i < s->E; i++) sf_block_destroy(&s->blocks[i]);
    free(s->blocks);
    free(s->z);
    free(s->pos_table);
    free(s);
    m->self = NULL;
}

const sf_model_ops sf_patchtst_ops = {pt_build, pt_init, pt_forward, pt_backward, pt_destroy};
