/* Token mixer "fastformer": additive attention (Wu et al. 2021, "Fastformer: Additive Attention
 * Can Be All You Need"), O(T d) beyond the projections. With q | k | v = x Wqkv^T + b (as
 * "softmax"; head h owns columns [h*Dh, (h+1)*Dh)), per sequence:
 *
 *   alpha[i,h] = softmax_i((q_i Wqa^T + bqa)[h] / sqrt(Dh))     query_att: Linear(d, H)
 *   gq[c]      = sum_i alpha[i,h(c)] q_i[c]                     global query
 *   p_i        = gq (.) k_i
 *   beta[i,h]  = softmax_i((p_i Wka^T + bka)[h] / sqrt(Dh))     key_att: Linear(d, H)
 *   gk[c]      = sum_i beta[i,h(c)] p_i[c]                      global key
 *   u_i        = gk (.) v_i
 *   a_i        = transform(u_i) + q_i                           transform: Linear(d, d)
 *   y_i        = out(a_i)                                        out: Linear(d, d)
 *
 * As the official code (wuch15/Fastformer, FastSelfAttention + BertSelfOutput's dense): the head
 * scores read the whole d-wide query (Linear(d, H), not a per-head vector), both scores are
 * divided by sqrt(Dh), the transformed vector gets the query added back, and an output
 * projection follows. Unlike the official code, which reuses the query as the value (the paper's
 * optional parameter sharing), the values are their own projection v, as in the paper's equations
 * and as "softmax" has them. Names: <prefix>.qkv, <prefix>.query_att [H, d], <prefix>.key_att
 * [H, d], <prefix>.transform [d, d], <prefix>.out (all with biases).
 *
 * Bidirectional only: the global query and key pool the whole sequence (causal: true is refused;
 * no step). Padding (ctx->lens): both softmaxes run over the valid tokens only, and padded rows
 * of a are 0 (their output is out's bias), with zero gradient. */
#include <math.h>
#include <string.h>

#include "core/error.h"
#include "layers/attention_proj.h"
#include "layers/layer.h"
#include "layers/mixers.h"

typedef struct {
    sf_attention_proj proj;
    sf_linear query_att, key_att, transform;
    int d, H, Dh;
    float scale;
} sf_fastformer;

typedef struct {
    const float *x;
    float *qkv, *alpha, *gq, *p, *beta, *gk, *u, *a;
} ff_saved;

static void ff_declare(sf_mixer *m, sf_params *ps, const char *prefix) {
    sf_fastformer *s = m->self;
    char buf[SF_PARAM_NAME_MAX];
    sf_attention_proj_declare(&s->proj, ps, prefix, s->d);
    snprintf(buf, sizeof buf, "%s.query_att", prefix);
    sf_linear_declare(&s->query_att, ps, buf, s->d, s->H, 1);
    snprintf(buf, sizeof buf, "%s.key_att", prefix);
    sf_linear_declare(&s->key_att, ps, buf, s->d, s->H, 1);
    snprintf(buf, sizeof buf, "%s.transform", prefix);
    sf_linear_declare(&s->transform, ps, buf, s->d, s->d, 1);
    m->slot = sf_params_reserve_saved(ps, sizeof(ff_saved));
}

static void ff_init(sf_mixer *m, sf_rng *rng) {
    sf_fastformer *s = m->self;
    sf_attention_proj_init(&s->proj, rng);
    sf_linear_init(&s->query_att, rng);
    sf_linear_init(&s->key_att, rng);
    sf_linear_init(&s->transform, rng);
}

/* w[i,h] = softmax over i < n of (z_i . W_h + b_h) * scale, for the n rows z (row stride ldz);
 * rows i >= n get 0. */
static void pool_weights(float *w, const sf_linear *att, const float *z, long ldz, int T, int n,
                         int d, int H, float scale) {
    for (int h = 0; h < H; h++) {
        const float *wh = att->w + (long)h * d;
        float mx = -INFINITY;
        for (int i = 0; i < n; i++) {
            const float *zi = z + (long)i * ldz;
            float s = att->b[h];
            for (int c = 0; c < d; c++) s += zi[c] * wh[c];
            s *= scale;
            w[(long)i * H + h] = s;
            mx = s > mx ? s : mx;
        }
        float sum = 0.0f;
        for (int i = 0; i < n; i++) {
            float e = expf(w[(long)i * H + h] - mx);
            w[(long)i * H + h] = e;
            sum += e;
        }
        for (int i = 0; i < n; i++) w[(long)i * H + h] /= sum;
        for (int i = n; i < T; i++) w[(long)i * H + h] = 0.0f;
    }
}

/* g[c] = sum_{i<n} w[i, c/Dh] z_i[c] */
static void pool(float *g, const float *w, const float *z, long ldz, int n, int d, int H, int Dh) {
    for (int c = 0; c < d; c++) g[c] = 0.0f;
    for (int i = 0; i < n; i++)
        for (int c = 0; c < d; c++) g[c] += w[(long)i * H + c / Dh] * z[(long)i * ldz + c];
}

static void ff_forward(sf_mixer *m, sf_ctx *ctx, const float *x, float *y) {
    const sf_fastformer *s = m->self;
    ff_saved *sv = SF_SAVED(ctx, m->slot, ff_saved);
    const int B = ctx->B, T = ctx->T, d = s->d, H = s->H;
    const long N = (long)B * T;
    sv->x = x;
    sv->qkv = sf_arena_push(ctx->arena, (size_t)N * 3 * d);
    sv->alpha = sf_arena_push(ctx->arena, (size_t)N * H);
    sv->beta = sf_arena_push(ctx->arena, (size_t)N * H);
    sv->gq = sf_arena_push(ctx->arena, (size_t)B * d);
    sv->gk = sf_arena_push(ctx->arena, (size_t)B * d);
    sv->p = sf_arena_push(ctx->arena, (size_t)N * d);
    sv->u = sf_arena_push(ctx->arena, (size_t)N * d);
    sv->a = sf_arena_push(ctx->arena, (size_t)N * d);
    if (sf_arena_planning(ctx->arena)) return;
    sf_linear_forward(&s->proj.qkv, sv->qkv, x, N);
    for (int b = 0; b < B; b++) {
        const int n = ctx->lens ? ctx->lens[b] : T;
        const long r0 = (long)b * T;
        const float *q = sv->qkv + r0 * 3 * d, *k = q + d, *v = q + 2 * d;
        float *alpha = sv->alpha + r0 * H, *beta = sv->beta + r0 * H;
        float *gq = sv->gq + (long)b * d, *gk = sv->gk + (long)b * d;
        float *p = sv->p + r0 * d, *u = sv->u + r0 * d;
        pool_weights(alpha, &s->query_att, q, 3 * d, T, n, d, H, s->scale);
        pool(gq, alpha, q, 3 * d, n, d, H, s->Dh);
        memset(p, 0, sizeof(float) * (size_t)T * d);
        for (int i = 0; i < n; i++)
            for (int c = 0; c < d; c++) p[(long)i * d + c] = gq[c] * k[(long)i * 3 * d + c];
        pool_weights(beta, &s->key_att, p, d, T, n, d, H, s->scale);
        pool(gk, beta, p, d, n, d, H, s->Dh);
        memset(u, 0, sizeof(float) * (size_t)T * d);
        for (int i = 0; i < n; i++)
            for (int c = 0; c < d; c++) u[(long)i * d + c] = gk[c] * v[(long)i * 3 * d + c];
    }
    sf_linear_forward(&s->transform, sv->a, sv->u, N);
    for (int b = 0; b < B; b++) {
        const int n = ctx->lens ? ctx->lens[b] : T;
        for (int i = 0; i < T; i++) {
            float *ai = sv->a + ((long)b * T + i) * d;
            const float *qi = sv->qkv + ((long)b * T + i) * 3 * d;
            if (i < n)
                for (int c = 0; c < d; c++) ai[c] += qi[c];
            else
                memset(ai, 0, sizeof(float) * (size_t)d);
        }
    }
    sf_linear_forward(&s->proj.out, y, sv->a, N);
}

/* Backward of w = softmax(z W^T + b) * scale pooling weights (rows i < n): given dw[i,h],
 * accumulates dz_i += sum_h ds[i,h] W_h and the att parameters' gradients, where
 * ds = w (dw - sum_i w dw) * scale. dw is overwritten with ds. */
static void pool_weights_backward(float *dz, long lddz, sf_linear *att, float *dw, const float *w,
                                  const float *z, long ldz, int n, int d, int H, float scale) {
    for (int h = 0; h < H; h++) {
        float dot = 0.0f;
        for (int i = 0; i < n; i++) dot += w[(long)i * H + h] * dw[(long)i * H + h];
        for (int i = 0; i < n; i++) {
            const float ds = w[(long)i * H + h] * (dw[(long)i * H + h] - dot) * scale;
            const float *zi = z + (long)i * ldz, *wh = att->w + (long)h * d;
            float *dzi = dz + (long)i * lddz, *dwh = att->dw + (long)h * d;
            for (int c = 0; c < d; c++) {
                dzi[c] += ds * wh[c];
                dwh[c] += ds * zi[c];
            }
            att->db[h] += ds;
        }
    }
}

static void ff_backward(sf_mixer *m, sf_ctx *ctx, const float *dy, float *dx) {
    sf_fastformer *s = m->self;
    const ff_saved *sv = SF_SAVED(ctx, m->slot, ff_saved);
    const int B = ctx->B, T = ctx->T, d = s->d, H = s->H, Dh = s->Dh;
    const long N = (long)B * T;
    size_t mark = sf_arena_mark(ctx->arena);
    float *da = sf_arena_push(ctx->arena, (size_t)N * d);
    float *du = sf_arena_push(ctx->arena, (size_t)N * d);
    float *dp = sf_arena_push(ctx->arena, (size_t)N * d);
    float *dqkv = sf_arena_push(ctx->arena, (size_t)N * 3 * d);
    float *dw = sf_arena_push(ctx->arena, (size_t)T * H);
    float *dg = sf_arena_push(ctx->arena, (size_t)d);
    if (!sf_arena_planning(ctx->arena)) {
        sf_linear_backward(&s->proj.out, da, dy, sv->a, N);
        for (int b = 0; b < B; b++) /* padded rows of a are constant 0 */
            for (int i = ctx->lens ? ctx->lens[b] : T; i < T; i++)
                memset(da + ((long)b * T + i) * d, 0, sizeof(float) * (size_t)d);
        sf_linear_backward(&s->transform, du, da, sv->u, N);
        memset(dqkv, 0, sizeof(float) * (size_t)N * 3 * d);
        memset(dp, 0, sizeof(float) * (size_t)N * d);
        for (int b = 0; b < B; b++) {
            const int n = ctx->lens ? ctx->lens[b] : T;
            const long r0 = (long)b * T;
            const float *q = sv->qkv + r0 * 3 * d, *k = q + d, *v = q + 2 * d;
            float *dq = dqkv + r0 * 3 * d, *dk = dq + d, *dv = dq + 2 * d;
            const float *alpha = sv->alpha + r0 * H, *beta = sv->beta + r0 * H;
            const float *gq = sv->gq + (long)b * d, *gk = sv->gk + (long)b * d;
            const float *p = sv->p + r0 * d, *dub = du + r0 * d, *dab = da + r0 * d;
            float *dpb = dp + r0 * d;
            /* u = gk (.) v; a = transform(u) + q */
            for (int c = 0; c < d; c++) dg[c] = 0.0f;
            for (int i = 0; i < n; i++)
                for (int c = 0; c < d; c++) {
                    dq[(long)i * 3 * d + c] = dab[(long)i * d + c];
                    dv[(long)i * 3 * d + c] = dub[(long)i * d + c] * gk[c];
                    dg[c] += dub[(long)i * d + c] * v[(long)i * 3 * d + c]; /* d gk */
                }
            /* gk = sum_i beta_i p_i */
            for (int i = 0; i < n; i++)
                for (int h = 0; h < H; h++) {
                    float sdot = 0.0f;
                    for (int c = h * Dh; c < (h + 1) * Dh; c++) {
                        sdot += dg[c] * p[(long)i * d + c];
                        dpb[(long)i * d + c] = beta[(long)i * H + h] * dg[c];
                    }
                    dw[(long)i * H + h] = sdot;
                }
            pool_weights_backward(dpb, d, &s->key_att, dw, beta, p, d, n, d, H, s->scale);
            /* p = gq (.) k */
            for (int c = 0; c < d; c++) dg[c] = 0.0f;
            for (int i = 0; i < n; i++)
                for (int c = 0; c < d; c++) {
                    dk[(long)i * 3 * d + c] = dpb[(long)i * d + c] * gq[c];
                    dg[c] += dpb[(long)i * d + c] * k[(long)i * 3 * d + c]; /* d gq */
                }
            /* gq = sum_i alpha_i q_i */
            for (int i = 0; i < n; i++)
                for (int h = 0; h < H; h++) {
                    float sdot = 0.0f;
                    for (int c = h * Dh; c < (h + 1) * Dh; c++) {
                        sdot += dg[c] * q[(long)i * 3 * d + c];
                        dq[(long)i * 3 * d + c] += alpha[(long)i * H + h] * dg[c];
                    }
                    dw[(long)i * H + h] = sdot;
                }
            pool_weights_backward(dq, 3 * d, &s->query_att, dw, alpha, q, 3 * d, n, d, H, s->scale);
        }
        sf_linear_backward(&s->proj.qkv, dx, dqkv, sv->x, N);
    }
    sf_arena_reset_to(ctx->arena, mark);
}

static size_t ff_state_floats(const sf_mixer *m) {
    (void)m;
    return 0;
}

static void ff_step(const sf_mixer *m, const float *x_t, const float *state_in, float *state_out,
                    float *y_t, int t) {
    (void)m, (void)x_t, (void)state_in, (void)state_out, (void)y_t, (void)t;
    SF_ASSERT(0 && "fastformer cannot stream (it pools the whole sequence)");
}

static void ff_destroy(sf_mixer *m) { free(m->self); }

/* qkv, transform and out 10*T*d^2; the two score projections 4*T*d*H; pooling and the two
 * elementwise products about 6*T*d */
static double ff_flops(const sf_mixer *m, int T) {
    const sf_fastformer *s = m->self;
    double d = s->d, t = T;
    return 10 * t * d * d + 4 * t * d * s->H + 6 * t * d;
}

static const sf_mixer_ops ff_ops = {ff_declare,      ff_init, ff_forward, ff_backward,
                                    ff_state_floats, ff_step, ff_destroy, ff_flops};

static const sf_option ff_options[] = {
    {"n_heads", SF_OPT_INT, 4, NULL, 1, 4096, NULL, "attention heads (must divide d_model)"},
    {"causal", SF_OPT_BOOL, 0, NULL, 0, 1, NULL, "not supported (fastformer is bidirectional)"},
};

static sf_mixer *ff_create(const sf_mixer_args *a) {
    sf_fastformer *s = sf_calloc(1, sizeof *s);
    int causal;
    if (sf_attention_heads(a, 1 << 12, &s->H, &s->Dh, &causal)) {
        free(s);
        return NULL;
    }
    if (causal) {
        sf_errorf("causal: fastformer has no causal form (its global query and key pool the whole "
                  "sequence); use softmax, linear or local for causal models");
        free(s);
        return NULL;
    }
    s->d = a->d_model;
    s->scale = 1.0f / sqrtf((float)s->Dh);
    sf_mixer *m = sf_mixer_wrap(&ff_ops, a->d_model, s);
    m->can_step = 0;
    return m;
}

const sf_mixer_def sf_mixer_fastformer = {
    .info = {"fastformer", "additive attention with global query/key pooling (bidirectional, O(T d))",
             SF_OPTS(ff_options)},
    .slots = SF_SLOT_TOKEN,
    .create = ff_create,
};
