/* Feature-map linear attention mixers (linear with relu/favor, cosformer): see feature_mixer.h. */
#include "layers/feature_mixer.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/error.h"
#include "core/scratch.h"
#include "kernels/feature_attention.h"
#include "kernels/feature_maps.h"
#include "kernels/linear_attention.h"
#include "layers/attention_proj.h"

typedef struct {
    sf_attention_proj proj;
    sf_fmap_kind kind;
    int d, H, Dh, causal, max_T;
    int M;       /* features per head: Dh (relu), n_features (favor), 2 Dh (cosformer) */
    int redraw;  /* favor: redraw W every `redraw` training forwards (0: never) */
    float *W;    /* favor: projection buffer [M, Dh] */
    float *rs;   /* favor with redraw: buffer [4] = seed lo, seed hi, calls since draw, draws */
} sf_feature_mixer;

typedef struct {
    const float *x;
    float *qkv, *fq, *fk, *a, *scratch;
} fm_saved;

static sf_fa_shape fm_shape(const sf_feature_mixer *s, int B, int T) {
    sf_fa_shape sh = {B, T, s->H, s->M, s->Dh, s->causal, SF_FA_NORM_ADD, SF_LINEAR_ATTENTION_EPS};
    if (s->kind == SF_FMAP_FAVOR) sh.eps = 0.0f; /* official favor_attention: no eps */
    if (s->kind == SF_FMAP_COSFORMER) sh.norm = SF_FA_NORM_CLAMP; /* clamp_min(., 1e-6) */
    return sh;
}

static void fm_declare(sf_mixer *m, sf_params *ps, const char *prefix) {
    sf_feature_mixer *s = m->self;
    sf_attention_proj_declare(&s->proj, ps, prefix, s->d);
    char buf[SF_PARAM_NAME_MAX];
    if (s->kind == SF_FMAP_FAVOR) {
        snprintf(buf, sizeof buf, "%s.projection", prefix);
        sf_params_declare_buffer(ps, buf, 2, (int64_t[]){s->M, s->Dh}, &s->W);
        if (s->redraw > 0) {
            snprintf(buf, sizeof buf, "%s.redraw_state", prefix);
            sf_params_declare_buffer(ps, buf, 1, (int64_t[]){4}, &s->rs);
        }
    }
    m->slot = sf_params_reserve_saved(ps, sizeof(fm_saved));
}

static void fm_draw(sf_feature_mixer *s, uint64_t seed, uint64_t index) {
    sf_rng r;
    sf_rng_seed_stream(&r, seed, index);
    sf_favor_draw_projection(s->W, s->M, s->Dh, &r);
}

/* The 48-bit draw seed kept in the redraw_state buffer. */
static uint64_t fm_seed(const sf_feature_mixer *s) {
    return (uint64_t)s->rs[0] | (uint64_t)s->rs[1] << 24;
}

static void fm_init(sf_mixer *m, sf_rng *rng) {
    sf_feature_mixer *s = m->self;
    sf_attention_proj_init(&s->proj, rng);
    if (s->kind != SF_FMAP_FAVOR) return;
    uint64_t seed = sf_rng_u64(rng) & 0xFFFFFFFFFFFFull; /* 48 bits: two exact floats */
    if (s->rs) {
        s->rs[0] = (float)(seed & 0xFFFFFF);
        s->rs[1] = (float)(seed >> 24);
        s->rs[2] = 0.0f;
        s->rs[3] = 0.0f;
    }
    fm_draw(s, seed, 0);
}

/* Before a training forward: a new W once `redraw` forwards have used the current one. */
static void fm_maybe_redraw(sf_feature_mixer *s) {
    if (!s->rs) return;
    if (s->rs[2] >= (float)s->redraw) {
        s->rs[3] += 1.0f;
        s->rs[2] = 0.0f;
        fm_draw(s, fm_seed(s), (uint64_t)s->rs[3]);
    }
    s->rs[2] += 1.0f;
}

/* Rows [r0, r1) of the head columns [0, D) (stride ld) set to 0. */
static void fm_zero_rows(float *p, int ld, int r0, int r1, int D) {
    for (int r = r0; r < r1; r++) memset(p + (size_t)r * ld, 0, sizeof(float) * (size_t)D);
}

/* Features of the valid rows of q and k (rows of stride 3d) into fq, fk [B, T, H*M]. */
static void fm_features(const sf_feature_mixer *s, const sf_ctx *ctx, const float *q,
                        const float *k, float *fq, float *fk) {
    const int B = ctx->B, T = ctx->T, H = s->H, Dh = s->Dh, M = s->M, ld = 3 * s->d;
    const int HM = H * M;
    const long BH = (long)B * H, work = BH * (long)T * M * Dh;
#pragma omp parallel for schedule(static) if (work >= SF_FEATURE_ATTENTION_PAR_MIN)
    for (long bh = 0; bh < BH; bh++) {
        const int b = (int)(bh / H), h = (int)(bh % H);
        const int n = ctx->lens ? ctx->lens[b] : T;
        const size_t xi = (size_t)b * T * ld + (size_t)h * Dh, fi = (size_t)b * T * HM + (size_t)h * M;
        switch (s->kind) {
        case SF_FMAP_RELU:
            sf_relu_features_forward(fq + fi, HM, q + xi, ld, n, Dh);
            sf_relu_features_forward(fk + fi, HM, k + xi, ld, n, Dh);
            break;
        case SF_FMAP_FAVOR:
            sf_favor_features_forward(fq + fi, HM, q + xi, ld, n, Dh, s->W, M, SF_FAVOR_QUERY, 0);
            sf_favor_features_forward(fk + fi, HM, k + xi, ld, n, Dh, s->W, M,
                                      s->causal ? SF_FAVOR_KEY_CAUSAL : SF_FAVOR_KEY, 0);
            break;
        case SF_FMAP_COSFORMER: {
            const int pos0 = s->causal ? ctx->pos_offset : 0, len = s->causal ? s->max_T : n;
            sf_cosformer_features_forward(fq + fi, HM, q + xi, ld, n, 1, Dh, pos0, len);
            sf_cosformer_features_forward(fk + fi, HM, k + xi, ld, n, 1, Dh, pos0, len);
            break;
        }
        }
    }
}

/* dq, dk (rows of stride 3d, head columns overwritten; padded rows 0) from dfq, dfk. */
static void fm_features_backward(const sf_feature_mixer *s, const sf_ctx *ctx, const float *q,
                                 const float *k, const float *dfq, const float *dfk, float *dq,
                                 float *dk) {
    const int B = ctx->B, T = ctx->T, H = s->H, Dh = s->Dh, M = s->M, ld = 3 * s->d;
    const int HM = H * M;
    const long BH = (long)B * H, work = BH * (long)T * M * Dh;
#pragma omp parallel for schedule(static) if (work >= SF_FEATURE_ATTENTION_PAR_MIN)
    for (long bh = 0; bh < BH; bh++) {
        const int b = (int)(bh / H), h = (int)(bh % H);
        const int n = ctx->lens ? ctx->lens[b] : T;
        const size_t xi = (size_t)b * T * ld + (size_t)h * Dh, fi = (size_t)b * T * HM + (size_t)h * M;
        switch (s->kind) {
        case SF_FMAP_RELU:
            sf_relu_features_backward(dq + xi, ld, dfq + fi, HM, q + xi, ld, n, Dh);
            sf_relu_features_backward(dk + xi, ld, dfk + fi, HM, k + xi, ld, n, Dh);
            break;
        case SF_FMAP_FAVOR:
            sf_favor_features_backward(dq + xi, ld, dfq + fi, HM, q + xi, ld, n, Dh, s->W, M,
                                       SF_FAVOR_QUERY, 0);
            sf_favor_features_backward(dk + xi, ld, dfk + fi, HM, k + xi, ld, n, Dh, s->W, M,
                                       s->causal ? SF_FAVOR_KEY_CAUSAL : SF_FAVOR_KEY, 0);
            break;
        case SF_FMAP_COSFORMER: {
            const int pos0 = s->causal ? ctx->pos_offset : 0, len = s->causal ? s->max_T : n;
            sf_cosformer_features_backward(dq + xi, ld, dfq + fi, HM, q + xi, ld, n, 1, Dh, pos0, len);
            sf_cosformer_features_backward(dk + xi, ld, dfk + fi, HM, k + xi, ld, n, 1, Dh, pos0, len);
            break;
        }
        }
        fm_zero_rows(dq + xi, ld, n, T, Dh);
        fm_zero_rows(dk + xi, ld, n, T, Dh);
    }
}

static void fm_forward(sf_mixer *m, sf_ctx *ctx, const float *x, float *y) {
    sf_feature_mixer *s = m->self;
    fm_saved *sv = SF_SAVED(ctx, m->slot, fm_saved);
    const long N = (long)ctx->B * ctx->T;
    const size_t nf = (size_t)N * s->H * s->M;
    const sf_fa_shape sh = fm_shape(s, ctx->B, ctx->T);
    sv->x = x;
    sv->qkv = sf_arena_push(ctx->arena, (size_t)N * 3 * s->d);
    sv->fq = sf_arena_push(ctx->arena, nf);
    sv->fk = sf_arena_push(ctx->arena, nf);
    sv->a = sf_arena_push(ctx->arena, (size_t)N * s->d);
    sv->scratch = sf_arena_push(ctx->arena, sf_feature_attention_scratch_floats(&sh));
    if (sf_arena_planning(ctx->arena)) return;
    if (s->kind == SF_FMAP_COSFORMER && s->causal)
        SF_ASSERT(ctx->pos_offset >= 0 && ctx->pos_offset + ctx->T <= s->max_T);
    if (ctx->training && s->kind == SF_FMAP_FAVOR) fm_maybe_redraw(s);
    sf_linear_forward(&s->proj.qkv, sv->qkv, x, N);
    const float *q = sv->qkv, *k = q + s->d, *v = q + 2 * s->d;
    fm_features(s, ctx, q, k, sv->fq, sv->fk);
    sf_feature_attention_forward(&sh, sv->a, s->d, sv->fq, sv->fk, s->H * s->M, v, 3 * s->d,
                                 sv->scratch, ctx->lens);
    sf_linear_forward(&s->proj.out, y, sv->a, N);
}

static void fm_backward(sf_mixer *m, sf_ctx *ctx, const float *dy, float *dx) {
    sf_feature_mixer *s = m->self;
    const fm_saved *sv = SF_SAVED(ctx, m->slot, fm_saved);
    const long N = (long)ctx->B * ctx->T;
    const size_t nf = (size_t)N * s->H * s->M;
    const sf_fa_shape sh = fm_shape(s, ctx->B, ctx->T);
    size_t mark = sf_arena_mark(ctx->arena);
    float *da = sf_arena_push(ctx->arena, (size_t)N * s->d);
    float *dqkv = sf_arena_push(ctx->arena, (size_t)N * 3 * s->d);
    float *dfq = sf_arena_push(ctx->arena, nf), *dfk = sf_arena_push(ctx->arena, nf);
    if (!sf_arena_planning(ctx->arena)) {
        sf_linear_backward(&s->proj.out, da, dy, sv->a, N);
        const float *q = sv->qkv, *k = q + s->d, *v = q + 2 * s->d;
        sf_feature_attention_backward(&sh, dfq, dfk, dqkv + 2 * s->d, da, s->d, sv->fq, sv->fk,
                                      s->H * s->M, v, 3 * s->d, sv->scratch, ctx->lens);
        fm_features_backward(s, ctx, q, k, dfq, dfk, dqkv, dqkv + s->d);
        sf_linear_backward(&s->proj.qkv, dx, dqkv, sv->x, N);
    }
    sf_arena_reset_to(ctx->arena, mark);
}

static size_t fm_state_floats(const sf_mixer *m) {
    const sf_feature_mixer *s = m->self;
    return sf_feature_attention_state_floats(s->H, s->M, s->Dh);
}

static void fm_step(const sf_mixer *m, const float *x_t, const float *state_in, float *state_out,
                    float *y_t, int t) {
    const sf_feature_mixer *s = m->self;
    SF_ASSERT(s->causal && "streaming needs a causal mixer");
    const int d = s->d, HM = s->H * s->M, Dh = s->Dh;
    size_t scratch = sf_scratch_mark(); /* no allocation per step */
    float *qkv = sf_scratch_push((size_t)(4 * d + 2 * HM));
    float *a = qkv + 3 * d, *fq = a + d, *fk = fq + HM;
    sf_linear_forward(&s->proj.qkv, qkv, x_t, 1);
    const float *q = qkv, *k = qkv + d;
    for (int h = 0; h < s->H; h++) {
        const float *qh = q + (size_t)h * Dh, *kh = k + (size_t)h * Dh;
        float *fqh = fq + (size_t)h * s->M, *fkh = fk + (size_t)h * s->M;
        switch (s->kind) {
        case SF_FMAP_RELU:
            sf_relu_features_forward(fqh, HM, qh, d, 1, Dh);
            sf_relu_features_forward(fkh, HM, kh, d, 1, Dh);
            break;
        case SF_FMAP_FAVOR:
            sf_favor_features_forward(fqh, HM, qh, d, 1, Dh, s->W, s->M, SF_FAVOR_QUERY, 0);
            sf_favor_features_forward(fkh, HM, kh, d, 1, Dh, s->W, s->M, SF_FAVOR_KEY_CAUSAL, 0);
            break;
        case SF_FMAP_COSFORMER:
            SF_ASSERT(t >= 0 && t < s->max_T);
            sf_cosformer_features_forward(fqh, HM, qh, d, 1, 1, Dh, t, s->max_T);
            sf_cosformer_features_forward(fkh, HM, kh, d, 1, 1, Dh, t, s->max_T);
            break;
        }
    }
    const sf_fa_shape sh = fm_shape(s, 1, 1);
    sf_feature_attention_step(&sh, a, fq, fk, qkv + 2 * d, state_in, state_out);
    sf_linear_forward(&s->proj.out, y_t, a, 1);
    sf_scratch_release(scratch);
}

static void fm_destroy(sf_mixer *m) { free(m->self); }

/* projections 8*T*d^2; the kernel's state update and readout 4*T*H*M*Dh plus the normaliser
 * 4*T*H*M; FAVOR+'s projections of q and k 4*T*H*M*Dh (the exps not counted). */
static double fm_flops(const sf_mixer *m, int T) {
    const sf_feature_mixer *s = m->self;
    double d = s->d, t = T, hm = (double)s->H * s->M;
    double f = 8 * t * d * d + 4 * t * hm * s->Dh + 4 * t * hm;
    if (s->kind == SF_FMAP_FAVOR) f += 4 * t * hm * s->Dh;
    return f;
}

static const sf_mixer_ops fm_ops = {fm_declare,      fm_init, fm_forward, fm_backward,
                                    fm_state_floats, fm_step, fm_destroy, fm_flops};

sf_mixer *sf_feature_mixer_create(const sf_mixer_args *a, sf_fmap_kind kind, int n_features,
                                  int redraw) {
    sf_feature_mixer *s = sf_calloc(1, sizeof *s);
    if (sf_attention_heads(a, 1 << 12, &s->H, &s->Dh, &s->causal)) {
        free(s);
        return NULL;
    }
    s->kind = kind;
    s->d = a->d_model;
    s->max_T = a->max_T;
    s->M = kind == SF_FMAP_FAVOR ? n_features : kind == SF_FMAP_COSFORMER ? 2 * s->Dh : s->Dh;
    s->redraw = kind == SF_FMAP_FAVOR ? redraw : 0;
    if (kind == SF_FMAP_COSFORMER && s->causal && s->max_T < 1) {
        free(s);
        sf_errorf("causal: cosformer needs the model's longest sequence (max_T) to stream");
        return NULL;
    }
    sf_mixer *m = sf_mixer_wrap(&fm_ops, a->d_model, s);
    m->can_step = s->causal;
    return m;
}
