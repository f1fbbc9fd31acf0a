/* Token mixer "deltanet": delta-rule linear attention, as fla's DeltaNet layer
 * (fla-org/flash-linear-attention, fla/layers/delta_net.py) with use_short_conv=False:
 *
 *   q = l2norm(silu(x Wq^T)) * Dh^-1/2,  k = l2norm(silu(x Wk^T)),  v = silu(x Wv^T)   per head
 *   beta = sigmoid(x Wb^T)                                                             [H]
 *   S_t = (I - beta_t k_t k_t^T) S_{t-1} + beta_t k_t v_t^T,  o_t = S_t^T q_t          per head
 *   y = rmsnorm_per_head(o) Wo^T       (RMSNorm over each head's Dh values, weight [Dh], eps 1e-5)
 *
 * Kept from fla's defaults: expand_k = expand_v = 1, use_beta, qk_activation silu, qk_norm l2
 * (x / sqrt(sum x^2 + 1e-6)), the Dh^-1/2 query scale of its ops, o_norm without gate, no biases.
 * Not kept: the short causal convolutions (use_short_conv), the output gate (use_gate) and
 * allow_neg_eigval. Parameter names are fla's: q_proj, k_proj, v_proj, b_proj, o_norm, o_proj.
 *
 * Training runs the chunked WY form of kernels/delta_rule.h (chunk_size tokens per chunk);
 * step runs the recurrence with the caller's state S ([H][Dh][Dh]). Causal only. */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <string.h>

#include "core/scratch.h"
#include "core/error.h"
#include "kernels/delta_rule.h"
#include "kernels/norms.h"
#include "layers/layer.h"
#include "layers/linear.h"
#include "layers/mixers.h"

#define DN_NORM_EPS 1e-5f /* fla's norm_eps for o_norm */
#define DN_L2_EPS 1e-6f   /* fla's l2norm eps */

typedef struct {
    sf_linear q_proj, k_proj, v_proj, b_proj, o_proj;
    float *o_norm_w, *o_norm_dw;
    int d, H, Dh, chunk;
} sf_deltanet;

typedef struct {
    const float *x;
    float *pre_q, *pre_k, *pre_v, *pre_b; /* projections before their activations */
    float *q, *k, *v, *beta;              /* what the delta rule reads */
    float *rq, *rk;                       /* 1/||silu(.)|| per head row */
    float *o, *on, *ro;                   /* delta-rule output, normed, its RMS factors */
    float *states, *scratch;
    int workers;
} dn_saved;

static float sigmoidf(float x) { return 1.0f / (1.0f + expf(-x)); }
static float siluf(float x) { return x * sigmoidf(x); }
static float silu_grad(float x) {
    float s = sigmoidf(x);
    return s * (1.0f + x * (1.0f - s));
}

/* out = scale * l2norm(silu(pre)) over rows of Dh; r = the 1/norm of each row. */
static void qk_features(float *out, float *r, const float *pre, long rows, int Dh, float scale) {
#pragma omp parallel for schedule(static) if (rows * Dh > 32768)
    for (long i = 0; i < rows; i++) {
        const float *p = pre + i * Dh;
        float *o = out + i * Dh;
        float ss = 0.0f;
        for (int a = 0; a < Dh; a++) {
            o[a] = siluf(p[a]);
            ss += o[a] * o[a];
        }
        const float ri = 1.0f / sqrtf(ss + DN_L2_EPS);
        r[i] = ri;
        for (int a = 0; a < Dh; a++) o[a] *= ri * scale;
    }
}

/* d pre from d out (in place allowed: g may equal dout): with yhat = out/scale,
 * d silu = scale * r * (dout - yhat (yhat . dout)), then times silu'(pre). */
static void qk_features_backward(float *g, const float *dout, const float *pre, const float *out,
                                 const float *r, long rows, int Dh, float scale) {
#pragma omp parallel for schedule(static) if (rows * Dh > 32768)
    for (long i = 0; i < rows; i++) {
        const float *d = dout + i * Dh, *o = out + i * Dh, *p = pre + i * Dh;
        float *gi = g + i * Dh;
        float dot = 0.0f;
        for (int a = 0; a < Dh; a++) dot += o[a] * d[a];
        dot /= scale * scale; /* yhat . dout with yhat = out / scale, times yhat below */
        for (int a = 0; a < Dh; a++)
            gi[a] = scale * r[i] * (d[a] - o[a] * dot) * silu_grad(p[a]);
    }
}

static void dn_declare(sf_mixer *m, sf_params *ps, const char *prefix) {
    sf_deltanet *s = m->self;
    char buf[SF_PARAM_NAME_MAX];
    const int d = s->d;
    snprintf(buf, sizeof buf, "%s.q_proj", prefix);
    sf_linear_declare(&s->q_proj, ps, buf, d, d, 0);
    snprintf(buf, sizeof buf, "%s.k_proj", prefix);
    sf_linear_declare(&s->k_proj, ps, buf, d, d, 0);
    snprintf(buf, sizeof buf, "%s.v_proj", prefix);
    sf_linear_declare(&s->v_proj, ps, buf, d, d, 0);
    snprintf(buf, sizeof buf, "%s.b_proj", prefix);
    sf_linear_declare(&s->b_proj, ps, buf, d, s->H, 0);
    snprintf(buf, sizeof buf, "%s.o_norm.weight", prefix);
    sf_params_declare(ps, buf, 1, (int64_t[]){s->Dh}, &s->o_norm_w, &s->o_norm_dw, 1);
    snprintf(buf, sizeof buf, "%s.o_proj", prefix);
    sf_linear_declare(&s->o_proj, ps, buf, d, d, 0);
    m->slot = sf_params_reserve_saved(ps, sizeof(dn_saved));
}

static void dn_init(sf_mixer *m, sf_rng *rng) {
    sf_deltanet *s = m->self;
    sf_linear_init(&s->q_proj, rng);
    sf_linear_init(&s->k_proj, rng);
    sf_linear_init(&s->v_proj, rng);
    sf_linear_init(&s->b_proj, rng);
    for (int a = 0; a < s->Dh; a++) s->o_norm_w[a] = 1.0f;
    sf_linear_init(&s->o_proj, rng);
}

static int dn_workers(int B, int H) {
    int w = omp_get_max_threads();
    return w < B * H ? w : B * H;
}

static void dn_forward(sf_mixer *m, sf_ctx *ctx, const float *x, float *y) {
    const sf_deltanet *s = m->self;
    dn_saved *sv = SF_SAVED(ctx, m->slot, dn_saved);
    const long N = (long)ctx->B * ctx->T;
    const int d = s->d, H = s->H, Dh = s->Dh;
    sf_arena *ar = ctx->arena;
    sv->x = x;
    sv->workers = dn_workers(ctx->B, H);
    sv->pre_q = sf_arena_push(ar, (size_t)N * d);
    sv->pre_k = sf_arena_push(ar, (size_t)N * d);
    sv->pre_v = sf_arena_push(ar, (size_t)N * d);
    sv->pre_b = sf_arena_push(ar, (size_t)N * H);
    sv->q = sf_arena_push(ar, (size_t)N * d);
    sv->k = sf_arena_push(ar, (size_t)N * d);
    sv->v = sf_arena_push(ar, (size_t)N * d);
    sv->beta = sf_arena_push(ar, (size_t)N * H);
    sv->rq = sf_arena_push(ar, (size_t)N * H);
    sv->rk = sf_arena_push(ar, (size_t)N * H);
    sv->o = sf_arena_push(ar, (size_t)N * d);
    sv->on = sf_arena_push(ar, (size_t)N * d);
    sv->ro = sf_arena_push(ar, (size_t)N * H);
    sv->states = sf_arena_push(ar, sf_delta_rule_states_floats(ctx->B, ctx->T, H, Dh, s->chunk));
    sv->scratch = sf_arena_push(ar, sf_delta_rule_scratch_floats(Dh, s->chunk, sv->workers));
    if (sf_arena_planning(ar)) return;
    sf_linear_forward(&s->q_proj, sv->pre_q, x, N);
    sf_linear_forward(&s->k_proj, sv->pre_k, x, N);
    sf_linear_forward(&s->v_proj, sv->pre_v, x, N);
    sf_linear_forward(&s->b_proj, sv->pre_b, x, N);
    qk_features(sv->q, sv->rq, sv->pre_q, N * H, Dh, 1.0f / sqrtf((float)Dh));
    qk_features(sv->k, sv->rk, sv->pre_k, N * H, Dh, 1.0f);
    for (long i = 0; i < N * d; i++) sv->v[i] = siluf(sv->pre_v[i]);
    for (long i = 0; i < N * H; i++) sv->beta[i] = sigmoidf(sv->pre_b[i]);
    sf_delta_rule_forward(sv->o, d, sv->q, sv->k, sv->v, d, sv->beta, H, ctx->B, ctx->T, H, Dh,
                          s->chunk, sv->states, sv->scratch, sv->workers, ctx->lens);
    sf_rmsnorm_forward(sv->on, sv->ro, sv->o, s->o_norm_w, (int)(N * H), Dh, DN_NORM_EPS);
    sf_linear_forward(&s->o_proj, y, sv->on, N);
}

static void add_into(float *dst, const float *src, long n) {
    for (long i = 0; i < n; i++) dst[i] += src[i];
}

static void dn_backward(sf_mixer *m, sf_ctx *ctx, const float *dy, float *dx) {
    sf_deltanet *s = m->self;
    const dn_saved *sv = SF_SAVED(ctx, m->slot, dn_saved);
    const long N = (long)ctx->B * ctx->T;
    const int d = s->d, H = s->H, Dh = s->Dh;
    size_t mark = sf_arena_mark(ctx->arena);
    float *don = sf_arena_push(ctx->arena, (size_t)N * d);
    float *dout = sf_arena_push(ctx->arena, (size_t)N * d);
    float *dq = sf_arena_push(ctx->arena, (size_t)N * d);
    float *dk = sf_arena_push(ctx->arena, (size_t)N * d);
    float *dv = sf_arena_push(ctx->arena, (size_t)N * d);
    float *db = sf_arena_push(ctx->arena, (size_t)N * H);
    if (!sf_arena_planning(ctx->arena)) {
        sf_linear_backward(&s->o_proj, don, dy, sv->on, N);
        sf_rmsnorm_backward(dout, s->o_norm_dw, don, sv->o, s->o_norm_w, sv->ro, (int)(N * H), Dh);
        sf_delta_rule_backward(dq, dk, dv, db, dout, d, sv->q, sv->k, sv->v, d, sv->beta, H,
                               ctx->B, ctx->T, H, Dh, s->chunk, sv->states, sv->scratch,
                               sv->workers, ctx->lens);
        qk_features_backward(dq, dq, sv->pre_q, sv->q, sv->rq, N * H, Dh, 1.0f / sqrtf((float)Dh));
        qk_features_backward(dk, dk, sv->pre_k, sv->k, sv->rk, N * H, Dh, 1.0f);
        for (long i = 0; i < N * d; i++) dv[i] *= silu_grad(sv->pre_v[i]);
        for (long i = 0; i < N * H; i++) db[i] *= sv->beta[i] * (1.0f - sv->beta[i]);
        float *tmp = don; /* free again: it only fed the norm's backward */
        sf_linear_backward(&s->q_proj, dx, dq, sv->x, N);
        sf_linear_backward(&s->k_proj, tmp, dk, sv->x, N);
        add_into(dx, tmp, N * d);
        sf_linear_backward(&s->v_proj, tmp, dv, sv->x, N);
        add_into(dx, tmp, N * d);
        sf_linear_backward(&s->b_proj, tmp, db, sv->x, N);
        add_into(dx, tmp, N * d);
    }
    sf_arena_reset_to(ctx->arena, mark);
}

static size_t dn_state_floats(const sf_mixer *m) {
    const sf_deltanet *s = m->self;
    return sf_delta_rule_state_floats(s->H, s->Dh);
}

static void dn_step(const sf_mixer *m, const float *x_t, const float *state_in, float *state_out,
                    float *y_t, int t) {
    const sf_deltanet *s = m->self;
    const int d = s->d, H = s->H, Dh = s->Dh;
    (void)t;
    size_t mark = sf_scratch_mark(); /* the streaming path allocates nothing (core/scratch.h) */
    float *buf = sf_scratch_push((size_t)6 * d + 3 * H);
    float *pq = buf, *pk = pq + d, *pv = pk + d, *q = pv + d, *k = q + d, *o = k + d;
    float *pb = o + d, *beta = pb + H, *r = beta + H;
    sf_linear_forward(&s->q_proj, pq, x_t, 1);
    sf_linear_forward(&s->k_proj, pk, x_t, 1);
    sf_linear_forward(&s->v_proj, pv, x_t, 1);
    sf_linear_forward(&s->b_proj, pb, x_t, 1);
    qk_features(q, r, pq, H, Dh, 1.0f / sqrtf((float)Dh));
    qk_features(k, r, pk, H, Dh, 1.0f);
    for (int i = 0; i < d; i++) pv[i] = siluf(pv[i]);
    for (int h = 0; h < H; h++) beta[h] = sigmoidf(pb[h]);
    sf_delta_rule_step(o, q, k, pv, beta, state_in, state_out, H, Dh);
    sf_rmsnorm_forward(q, r, o, s->o_norm_w, H, Dh, DN_NORM_EPS);
    sf_linear_forward(&s->o_proj, y_t, q, 1);
    sf_scratch_release(mark);
}

static void dn_destroy(sf_mixer *m) { free(m->self); }

/* projections 2 T d (4d + H); per head and token the chunk form costs about
 * 6 chunk Dh (A, P, P U') + 2 chunk Dh (substitution) + 6 Dh^2 (W S0, Q S0, K^T U') */
static double dn_flops(const sf_mixer *m, int T) {
    const sf_deltanet *s = m->self;
    double t = T, d = s->d, C = s->chunk < T ? s->chunk : T;
    return 2 * t * d * (4 * d + s->H) + t * s->H * (8 * C * s->Dh + 6.0 * s->Dh * s->Dh);
}

static const sf_mixer_ops dn_ops = {dn_declare,      dn_init, dn_forward, dn_backward,
                                    dn_state_floats, dn_step, dn_destroy, dn_flops};

static const sf_option dn_options[] = {
    {"n_heads", SF_OPT_INT, 4, NULL, 1, 4096, NULL, "heads (must divide d_model)"},
    {"causal", SF_OPT_BOOL, 1, NULL, 0, 1, NULL, "must be true: the delta rule is causal only"},
    {"chunk_size", SF_OPT_INT, 64, NULL, 1, 4096, NULL,
     "tokens per chunk of the parallel (WY) training form"},
};

static sf_mixer *dn_create(const sf_mixer_args *a) {
    int H = sf_opt_int(a->opts, "n_heads");
    if (!sf_opt_bool(a->opts, "causal")) {
        sf_errorf("causal: deltanet is causal only (the delta rule has no bidirectional form)");
        return NULL;
    }
    if (a->d_model % H != 0) {
        sf_errorf("n_heads: %d does not divide d_model %d", H, a->d_model);
        return NULL;
    }
    sf_deltanet *s = sf_calloc(1, sizeof *s);
    s->d = a->d_model;
    s->H = H;
    s->Dh = a->d_model / H;
    s->chunk = sf_opt_int(a->opts, "chunk_size");
    return sf_mixer_wrap(&dn_ops, a->d_model, s);
}

const sf_mixer_def sf_mixer_deltanet = {
    .info = {"deltanet", "DeltaNet: delta-rule linear attention, chunked WY training (causal, O(T))",
             SF_OPTS(dn_options)},
    .slots = SF_SLOT_TOKEN,
    .create = dn_create,
};
