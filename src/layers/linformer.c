/* Token mixer "linformer": softmax attention over keys and values projected along the sequence
 * (Wang et al. 2020, "Linformer: Self-Attention with Linear Complexity"). With q | k | v from the
 * same qkv projection as "softmax", and learnable E, F [k, max_T]:
 *
 *   K' = E[:, :T] K,  V' = F[:, :T] V            (k x d: k rows instead of T)
 *   a_i = softmax(q_i K'^T / sqrt(Dh)) V', per head;  y = a Wout^T + b
 *
 * so time and memory are O(T k d). A sequence shorter than max_T uses the first T columns of E
 * and F (as the fairseq example and lucidrains/linformer slice them). share_kv: one matrix for
 * both (F = E, the paper's key-value sharing; the values still come from their own projection).
 * Names: <prefix>.qkv, <prefix>.out (as softmax), <prefix>.proj_k [k, max_T] and, unless
 * share_kv, <prefix>.proj_v [k, max_T]; initialised U(-1/sqrt(k), 1/sqrt(k)) as lucidrains does.
 *
 * Bidirectional only: every projected row mixes the whole sequence (causal: true is refused;
 * no step). Padding (ctx->lens): padded key and value rows are zeroed before the projection
 * (the sums over j stop at lens[b]), which is exactly the unpadded sequence's result since that
 * uses the first lens[b] columns; padded query rows give a = 0 and zero gradients. */
#include <math.h>
#include <string.h>

#include "core/error.h"
#include "layers/attention_proj.h"
#include "layers/layer.h"
#include "layers/mixers.h"

typedef struct {
    sf_attention_proj proj;
    float *E, *F, *dE, *dF; /* F == E when share_kv */
    int d, H, Dh, k, max_T, share_kv;
    float scale;
} sf_linformer;

typedef struct {
    const float *x;
    float *qkv, *kp, *vp, *prob, *a;
} lf_saved;

static void lf_declare(sf_mixer *m, sf_params *ps, const char *prefix) {
    sf_linformer *s = m->self;
    char buf[SF_PARAM_NAME_MAX];
    const int64_t shape[2] = {s->k, s->max_T};
    sf_attention_proj_declare(&s->proj, ps, prefix, s->d);
    snprintf(buf, sizeof buf, "%s.proj_k", prefix);
    sf_params_declare(ps, buf, 2, shape, &s->E, &s->dE, 0);
    if (!s->share_kv) {
        snprintf(buf, sizeof buf, "%s.proj_v", prefix);
        sf_params_declare(ps, buf, 2, shape, &s->F, &s->dF, 0);
    }
    m->slot = sf_params_reserve_saved(ps, sizeof(lf_saved));
}

static void lf_init(sf_mixer *m, sf_rng *rng) {
    sf_linformer *s = m->self;
    sf_attention_proj_init(&s->proj, rng);
    const float r = 1.0f / sqrtf((float)s->k);
    sf_rng_fill_uniform(rng, s->E, (long)s->k * s->max_T, -r, r);
    if (!s->share_kv) sf_rng_fill_uniform(rng, s->F, (long)s->k * s->max_T, -r, r);
}

/* The projection matrices of a call (F aliases E when shared). */
static const float *proj_v(const sf_linformer *s) { return s->share_kv ? s->E : s->F; }
static float *proj_v_grad(const sf_linformer *s) { return s->share_kv ? s->dE : s->dF; }

/* out[r, c] = sum_{j<n} P[r, j] z[j, c] for r < k (P row stride max_T, z row stride ldz) */
static void seq_project(float *out, const float *P, int ldp, const float *z, long ldz, int n,
                        int k, int d) {
    memset(out, 0, sizeof(float) * (size_t)k * d);
    for (int r = 0; r < k; r++)
        for (int j = 0; j < n; j++) {
            const float e = P[(long)r * ldp + j];
            const float *zj = z + (long)j * ldz;
            for (int c = 0; c < d; c++) out[(long)r * d + c] += e * zj[c];
        }
}

/* Backward of seq_project: dz[j] = sum_r P[r, j] dout[r] (j < n, overwritten), dP[r, j] +=
 * dout[r] . z[j]. */
static void seq_project_backward(float *dz, long lddz, float *dP, const float *P, int ldp,
                                 const float *dout, const float *z, long ldz, int n, int k, int d) {
    for (int j = 0; j < n; j++) {
        float *dzj = dz + (long)j * lddz;
        const float *zj = z + (long)j * ldz;
        memset(dzj, 0, sizeof(float) * (size_t)d);
        for (int r = 0; r < k; r++) {
            const float e = P[(long)r * ldp + j], *g = dout + (long)r * d;
            float acc = 0.0f;
            for (int c = 0; c < d; c++) {
                dzj[c] += e * g[c];
                acc += g[c] * zj[c];
            }
            dP[(long)r * ldp + j] += acc;
        }
    }
}

static void lf_forward(sf_mixer *m, sf_ctx *ctx, const float *x, float *y) {
    const sf_linformer *s = m->self;
    lf_saved *sv = SF_SAVED(ctx, m->slot, lf_saved);
    const int B = ctx->B, T = ctx->T, d = s->d, H = s->H, Dh = s->Dh, k = s->k;
    const long N = (long)B * T;
    SF_ASSERT(T <= s->max_T);
    sv->x = x;
    sv->qkv = sf_arena_push(ctx->arena, (size_t)N * 3 * d);
    sv->kp = sf_arena_push(ctx->arena, (size_t)B * k * d);
    sv->vp = sf_arena_push(ctx->arena, (size_t)B * k * d);
    sv->prob = sf_arena_push(ctx->arena, (size_t)N * H * k);
    sv->a = sf_arena_push(ctx->arena, (size_t)N * d);
    if (sf_arena_planning(ctx->arena)) return;
    sf_linear_forward(&s->proj.qkv, sv->qkv, x, N);
    for (int b = 0; b < B; b++) {
        const int n = ctx->lens ? ctx->lens[b] : T;
        const float *q = sv->qkv + (long)b * T * 3 * d;
        float *kp = sv->kp + (long)b * k * d, *vp = sv->vp + (long)b * k * d;
        seq_project(kp, s->E, s->max_T, q + d, 3 * d, n, k, d);
        seq_project(vp, proj_v(s), s->max_T, q + 2 * d, 3 * d, n, k, d);
        for (int i = 0; i < T; i++) {
            float *ai = sv->a + ((long)b * T + i) * d;
            float *pi = sv->prob + ((long)b * T + i) * H * k;
            memset(ai, 0, sizeof(float) * (size_t)d);
            memset(pi, 0, sizeof(float) * (size_t)H * k);
            if (i >= n) continue; /* padding */
            for (int h = 0; h < H; h++) {
                const float *qh = q + (long)i * 3 * d + h * Dh;
                float *ph = pi + (long)h * k, mx = -INFINITY, sum = 0.0f;
                for (int r = 0; r < k; r++) {
                    float sc = 0.0f;
                    for (int c = 0; c < Dh; c++) sc += qh[c] * kp[(long)r * d + h * Dh + c];
                    ph[r] = sc * s->scale;
                    mx = ph[r] > mx ? ph[r] : mx;
                }
                for (int r = 0; r < k; r++) sum += ph[r] = expf(ph[r] - mx);
                for (int r = 0; r < k; r++) {
                    ph[r] /= sum;
                    for (int c = 0; c < Dh; c++) ai[h * Dh + c] += ph[r] * vp[(long)r * d + h * Dh + c];
                }
            }
        }
    }
    sf_linear_forward(&s->proj.out, y, sv->a, N);
}

static void lf_backward(sf_mixer *m, sf_ctx *ctx, const float *dy, float *dx) {
    sf_linformer *s = m->self;
    const lf_saved *sv = SF_SAVED(ctx, m->slot, lf_saved);
    const int B = ctx->B, T = ctx->T, d = s->d, H = s->H, Dh = s->Dh, k = s->k;
    const long N = (long)B * T;
    size_t mark = sf_arena_mark(ctx->arena);
    float *da = sf_arena_push(ctx->arena, (size_t)N * d);
    float *dqkv = sf_arena_push(ctx->arena, (size_t)N * 3 * d);
    float *dkp = sf_arena_push(ctx->arena, (size_t)k * d);
    float *dvp = sf_arena_push(ctx->arena, (size_t)k * d);
    if (!sf_arena_planning(ctx->arena)) {
        sf_linear_backward(&s->proj.out, da, dy, sv->a, N);
        memset(dqkv, 0, sizeof(float) * (size_t)N * 3 * d);
        for (int b = 0; b < B; b++) {
            const int n = ctx->lens ? ctx->lens[b] : T;
            const float *q = sv->qkv + (long)b * T * 3 * d;
            const float *kp = sv->kp + (long)b * k * d, *vp = sv->vp + (long)b * k * d;
            float *dq = dqkv + (long)b * T * 3 * d;
            memset(dkp, 0, sizeof(float) * (size_t)k * d);
            memset(dvp, 0, sizeof(float) * (size_t)k * d);
            for (int i = 0; i < n; i++)
                for (int h = 0; h < H; h++) {
                    const float *ph = sv->prob + (((long)b * T + i) * H + h) * k;
                    const float *g = da + ((long)b * T + i) * d + h * Dh;
                    const float *qh = q + (long)i * 3 * d + h * Dh;
                    float *dqh = dq + (long)i * 3 * d + h * Dh;
                    /* dP_r = g . V'_r; dS_r = P_r (dP_r - sum_r P_r dP_r) */
                    float rowdot = 0.0f;
                    for (int r = 0; r < k; r++) {
                        float dpr = 0.0f;
                        for (int c = 0; c < Dh; c++) dpr += g[c] * vp[(long)r * d + h * Dh + c];
                        rowdot += ph[r] * dpr;
                    }
                    for (int r = 0; r < k; r++) {
                        const float *vr = vp + (long)r * d + h * Dh, *kr = kp + (long)r * d + h * Dh;
                        float *dkr = dkp + (long)r * d + h * Dh, *dvr = dvp + (long)r * d + h * Dh;
                        float dpr = 0.0f;
                        for (int c = 0; c < Dh; c++) dpr += g[c] * vr[c];
                        const float ds = ph[r] * (dpr - rowdot) * s->scale;
                        for (int c = 0; c < Dh; c++) {
                            dqh[c] += ds * kr[c];
                            dkr[c] += ds * qh[c];
                            dvr[c] += ph[r] * g[c];
                        }
                    }
                }
            seq_project_backward(dq + d, 3 * d, s->dE, s->E, s->max_T, dkp, q + d, 3 * d, n, k, d);
            seq_project_backward(dq + 2 * d, 3 * d, proj_v_grad(s), proj_v(s), s->max_T, dvp,
                                 q + 2 * d, 3 * d, n, k, d);
        }
        sf_linear_backward(&s->proj.qkv, dx, dqkv, sv->x, N);
    }
    sf_arena_reset_to(ctx->arena, mark);
}

static size_t lf_state_floats(const sf_mixer *m) {
    (void)m;
    return 0;
}

static void lf_step(const sf_mixer *m, const float *x_t, const float *state_in, float *state_out,
                    float *y_t, int t) {
    (void)m, (void)x_t, (void)state_in, (void)state_out, (void)y_t, (void)t;
    SF_ASSERT(0 && "linformer cannot stream (its projections mix the whole sequence)");
}

static void lf_destroy(sf_mixer *m) { free(m->self); }

/* projections 8*T*d^2; K', V' 4*k*T*d; scores and weighted sum 4*T*k*d */
static double lf_flops(const sf_mixer *m, int T) {
    const sf_linformer *s = m->self;
    double d = s->d, t = T;
    return 8 * t * d * d + 8 * t * s->k * d;
}

static const sf_mixer_ops lf_ops = {lf_declare,      lf_init, lf_forward, lf_backward,
                                    lf_state_floats, lf_step, lf_destroy, lf_flops};

static const sf_option lf_options[] = {
    {"n_heads", SF_OPT_INT, 4, NULL, 1, 4096, NULL, "attention heads (must divide d_model)"},
    {"causal", SF_OPT_BOOL, 0, NULL, 0, 1, NULL, "not supported (linformer is bidirectional)"},
    {"k", SF_OPT_INT, 8, NULL, 1, 1 << 20, NULL,
     "rows keys and values are projected to (at most the sequence length)"},
    {"share_kv", SF_OPT_BOOL, 0, NULL, 0, 1, NULL, "one projection for keys and values (F = E)"},
};

static sf_mixer *lf_create(const sf_mixer_args *a) {
    sf_linformer *s = sf_calloc(1, sizeof *s);
    int causal;
    if (sf_attention_heads(a, 1 << 12, &s->H, &s->Dh, &causal)) {
        free(s);
        return NULL;
    }
    s->k = sf_opt_int(a->opts, "k");
    s->share_kv = sf_opt_bool(a->opts, "share_kv");
    s->max_T = a->max_T;
    if (causal) {
        sf_errorf("causal: linformer has no causal form (each projected key mixes the whole "
                  "sequence); use softmax, linear or local for causal models");
        free(s);
        return NULL;
    }
    if (s->k > a->max_T) {
        sf_errorf("k: %d exceeds the sequence length %d (projecting to more rows than there are "
                  "tokens compresses nothing)",
                  s->k, a->max_T);
        free(s);
        return NULL;
    }
    s->d = a->d_model;
    s->scale = 1.0f / sqrtf((float)s->Dh);
    sf_mixer *m = sf_mixer_wrap(&lf_ops, a->d_model, s);
    m->can_step = 0;
    return m;
}

const sf_mixer_def sf_mixer_linformer = {
    .info = {"linformer",
             "softmax attention over keys/values projected to k rows along the sequence "
             "(bidirectional, O(T k))",
             SF_OPTS(lf_options)},
    .slots = SF_SLOT_TOKEN,
    .create = lf_create,
};
