/* Token mixer "mamba": the Mamba-1 block's mixer (Gu & Dao 2023), with the parameter names and
 * initialisation of state-spaces/mamba `modules/mamba_simple.py`:
 *
 *   [x | z] = in_proj(u)                     Linear(d -> 2 Di), no bias, Di = expand * d
 *   x  = silu(conv1d(x))                     causal depth-wise conv, width d_conv, with bias
 *   [dt | B | C] = x_proj(x)                 Linear(Di -> R + 2N), no bias, R = dt_rank
 *   delta = softplus(dt_proj(dt))            Linear(R -> Di) with bias
 *   h_t = exp(delta_t A) h_{t-1} + delta_t B_t x_t,  A = -exp(A_log) [Di, N]
 *   y  = (C_t h_t + D x_t) * silu(z)         (kernels/selective_scan.h)
 *   out = out_proj(y)                        Linear(Di -> d), no bias
 *
 * Parameters <p>.in_proj.weight, <p>.conv1d.{weight [Di, 1, d_conv], bias}, <p>.x_proj.weight,
 * <p>.dt_proj.{weight, bias}, <p>.A_log, <p>.D, <p>.out_proj.weight. `bidirectional` adds a
 * second, independent set under <p>.bwd.* run over each sequence reversed (its valid part:
 * position t of a length-n sequence reads n-1-t), its output reversed back and added, as
 * S-Mamba's encoder layer sums Mamba(x) and Mamba(x.flip).flip.
 *
 * Padding (ctx->lens): steps past a sequence's length are skipped by the scan (outputs there 0,
 * no gradient from or to them); the causal conv only looks back, so the valid part equals the
 * unpadded sequence, and the reversed pass starts at each sequence's last valid step.
 * step: causal only (not bidirectional); the state is the conv window (the last d_conv - 1
 * inputs of the conv, [d_conv - 1][Di]) then h [Di][N]. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/scratch.h"
#include "core/error.h"
#include "kernels/softmax.h" /* sf_expf_fast */
#include "kernels/selective_scan.h"
#include "layers/layer.h"
#include "layers/linear.h"
#include "layers/mixers.h"
#include "core/lens.h"
#include "kernels/causal_conv.h"

typedef struct {
    sf_linear in_proj, x_proj, dt_proj, out_proj;
    float *conv_w, *conv_b, *dconv_w, *dconv_b; /* [Di, K], [Di] */
    float *A_log, *dA_log, *D, *dD;             /* [Di, N], [Di] */
} mamba_dir;

typedef struct {
    int d, Di, N, K, R, bidir;
    float dt_min, dt_max, dt_floor;
    mamba_dir dir[2];
} sf_mamba;

/* What one direction's forward keeps for backward (in the caller's context). */
typedef struct {
    const float *x;                                 /* its input [B, T, d] */
    float *xz, *xc, *u, *xdbl, *dt, *delta, *A, *y; /* see mb_dir_forward */
    float *states;                                  /* the scan's chunk-boundary states */
    float *wT;                                      /* conv1d.weight by tap [K][Di] */
} dir_saved;

typedef struct {
    dir_saved s[2];
    float *xf; /* the reversed input of the second direction */
} mamba_saved;

/* sf_expf_fast: branch-free, so the loops over channels vectorise (libm's expf does not) */
static inline float silu(float v) { return v / (1.0f + sf_expf_fast(-v)); }

static void mb_declare_dir(const sf_mamba *s, mamba_dir *m, sf_params *ps, const char *prefix) {
    char buf[SF_PARAM_NAME_MAX];
    snprintf(buf, sizeof buf, "%s.in_proj", prefix);
    sf_linear_declare(&m->in_proj, ps, buf, s->d, 2 * s->Di, 0);
    snprintf(buf, sizeof buf, "%s.conv1d.weight", prefix);
    sf_params_declare(ps, buf, 3, (int64_t[]){s->Di, 1, s->K}, &m->conv_w, &m->dconv_w, 0);
    snprintf(buf, sizeof buf, "%s.conv1d.bias", prefix);
    sf_params_declare(ps, buf, 1, (int64_t[]){s->Di}, &m->conv_b, &m->dconv_b, 1);
    snprintf(buf, sizeof buf, "%s.x_proj", prefix);
    sf_linear_declare(&m->x_proj, ps, buf, s->Di, s->R + 2 * s->N, 0);
    snprintf(buf, sizeof buf, "%s.dt_proj", prefix);
    sf_linear_declare(&m->dt_proj, ps, buf, s->R, s->Di, 1);
    /* A_log and D: no weight decay, as the reference marks them _no_weight_decay */
    snprintf(buf, sizeof buf, "%s.A_log", prefix);
    sf_params_declare(ps, buf, 2, (int64_t[]){s->Di, s->N}, &m->A_log, &m->dA_log, 1);
    snprintf(buf, sizeof buf, "%s.D", prefix);
    sf_params_declare(ps, buf, 1, (int64_t[]){s->Di}, &m->D, &m->dD, 1);
    snprintf(buf, sizeof buf, "%s.out_proj", prefix);
    sf_linear_declare(&m->out_proj, ps, buf, s->Di, s->d, 0);
}

static void mb_declare(sf_mixer *mx, sf_params *ps, const char *prefix) {
    sf_mamba *s = mx->self;
    mb_declare_dir(s, &s->dir[0], ps, prefix);
    if (s->bidir) {
        char buf[SF_PARAM_NAME_MAX];
        snprintf(buf, sizeof buf, "%s.bwd", prefix);
        mb_declare_dir(s, &s->dir[1], ps, buf);
    }
    mx->slot = sf_params_reserve_saved(ps, sizeof(mamba_saved));
}

/* As mamba_simple.py: nn.Linear / nn.Conv1d defaults (U(+-1/sqrt(fan_in)), fan_in = d_conv for
 * the depth-wise conv), dt_proj.weight ~ U(+-dt_rank^-1/2), dt log-uniform in [dt_min, dt_max]
 * floored at dt_init_floor and dt_proj.bias = softplus^-1(dt) = dt + log(-expm1(-dt)),
 * A_log[c, n] = log(n + 1), D = 1. */
static void mb_init_dir(const sf_mamba *s, mamba_dir *m, sf_rng *rng) {
    sf_linear_init(&m->in_proj, rng);
    float cb = 1.0f / sqrtf((float)s->K);
    sf_rng_fill_uniform(rng, m->conv_w, (long)s->Di * s->K, -cb, cb);
    sf_rng_fill_uniform(rng, m->conv_b, s->Di, -cb, cb);
    sf_linear_init(&m->x_proj, rng);
    float ws = 1.0f / sqrtf((float)s->R);
    sf_rng_fill_uniform(rng, m->dt_proj.w, (long)s->Di * s->R, -ws, ws);
    const double lo = log((double)s->dt_min), hi = log((double)s->dt_max);
    for (int c = 0; c < s->Di; c++) {
        double dt = exp(sf_rng_uniform(rng) * (hi - lo) + lo);
        if (dt < s->dt_floor) dt = s->dt_floor;
        m->dt_proj.b[c] = (float)(dt + log(-expm1(-dt)));
    }
    for (int c = 0; c < s->Di; c++) {
        for (int n = 0; n < s->N; n++) m->A_log[(size_t)c * s->N + n] = logf((float)(n + 1));
        m->D[c] = 1.0f;
    }
    sf_linear_init(&m->out_proj, rng);
}

static void mb_init(sf_mixer *mx, sf_rng *rng) {
    sf_mamba *s = mx->self;
    for (int k = 0; k < 1 + s->bidir; k++) mb_init_dir(s, &s->dir[k], rng);
}

/* wT [K][Di] = conv1d.weight [Di][1][K] transposed, so the conv's loops run along channels. */
static void conv_weights_by_tap(const mamba_dir *m, float *wT, int Di, int K) {
    for (int c = 0; c < Di; c++)
        for (int k = 0; k < K; k++) wT[(size_t)k * Di + c] = m->conv_w[(size_t)c * K + k];
}

/* One direction on x [B, T, d] -> out [B, T, d] (padded rows 0). */
static void mb_dir_forward(const sf_mamba *s, const mamba_dir *m, sf_ctx *ctx, dir_saved *sv,
                           const float *x, float *out) {
    const int B = ctx->B, T = ctx->T, Di = s->Di, N = s->N, K = s->K, R = s->R, W = R + 2 * N;
    const long rows = (long)B * T;
    sf_arena *a = ctx->arena;
    sv->x = x;
    sv->xz = sf_arena_push(a, (size_t)rows * 2 * Di);    /* [x | z] */
    sv->xc = sf_arena_push(a, (size_t)rows * Di);        /* conv output, before silu */
    sv->u = sf_arena_push(a, (size_t)rows * Di);         /* silu(xc): the scan's input */
    sv->xdbl = sf_arena_push(a, (size_t)rows * W);       /* [dt | B | C] */
    sv->dt = sf_arena_push(a, (size_t)rows * R);         /* dt, contiguous for dt_proj */
    sv->delta = sf_arena_push(a, (size_t)rows * Di);     /* dt_proj(dt), before softplus */
    sv->A = sf_arena_push(a, (size_t)Di * N);
    sv->y = sf_arena_push(a, (size_t)rows * Di);         /* gated scan output */
    sv->states = sf_arena_push(a, sf_selective_scan_states_floats(B, T, Di, N));
    sv->wT = sf_arena_push(a, (size_t)K * Di);
    if (sf_arena_planning(a)) return;
    sf_linear_forward(&m->in_proj, sv->xz, x, rows);
    conv_weights_by_tap(m, sv->wT, Di, K);
    const float *wT = sv->wT;
    /* the causal depth-wise conv, then silu: loops along the channels (they vectorise) */
#pragma omp parallel for schedule(static) if (rows * Di * K >= 65536)
    for (long r = 0; r < rows; r++) {
        const int t = (int)(r % T);
        float *xc = sv->xc + r * Di;
        for (int c = 0; c < Di; c++) xc[c] = m->conv_b[c];
        for (int k = t < K - 1 ? K - 1 - t : 0; k < K; k++) { /* input row t - (K-1) + k >= 0 */
            const float *xin = sv->xz + (r - (K - 1) + k) * 2 * Di, *wk = wT + (size_t)k * Di;
            for (int c = 0; c < Di; c++) xc[c] += wk[c] * xin[c];
        }
        for (int c = 0; c < Di; c++) sv->u[r * Di + c] = silu(xc[c]);
    }
    sf_linear_forward(&m->x_proj, sv->xdbl, sv->u, rows);
    for (long r = 0; r < rows; r++) memcpy(sv->dt + r * R, sv->xdbl + r * W, (size_t)R * sizeof(float));
    sf_linear_forward(&m->dt_proj, sv->delta, sv->dt, rows);
    for (size_t i = 0; i < (size_t)Di * N; i++) sv->A[i] = -expf(m->A_log[i]);
    sf_selective_scan_forward(sv->y, ctx->keep ? sv->states : NULL, sv->u, sv->delta, sv->A,
                              sv->xdbl + R, sv->xdbl + R + N, W, m->D, sv->xz + Di, 2 * Di, B, T,
                              Di, N, ctx->lens);
    sf_linear_forward(&m->out_proj, out, sv->y, rows);
}

/* dx = d(out)/dx^T dout (overwritten); parameter gradients accumulated. */
static void mb_dir_backward(const sf_mamba *s, mamba_dir *m, sf_ctx *ctx, const dir_saved *sv,
                            const float *dout, float *dx) {
    const int B = ctx->B, T = ctx->T, Di = s->Di, N = s->N, K = s->K, R = s->R, W = R + 2 * N;
    const long rows = (long)B * T;
    sf_arena *a = ctx->arena;
    size_t mark = sf_arena_mark(a);
    float *dy = sf_arena_push(a, (size_t)rows * Di), *dxz = sf_arena_push(a, (size_t)rows * 2 * Di);
    float *du = sf_arena_push(a, (size_t)rows * Di), *ddelta = sf_arena_push(a, (size_t)rows * Di);
    float *dxdbl = sf_arena_push(a, (size_t)rows * W), *ddt = sf_arena_push(a, (size_t)rows * R);
    float *dA = sf_arena_push(a, (size_t)Di * N), *dD = sf_arena_push(a, (size_t)Di);
    float *scratch = sf_arena_push(a, sf_selective_scan_scratch_floats(B, T, Di, N));
    if (!sf_arena_planning(a)) {
        sf_linear_backward(&m->out_proj, dy, dout, sv->y, rows);
        sf_selective_scan_backward(du, ddelta, dA, dxdbl + R, dxdbl + R + N, dD, dxz + Di, dy,
                                   sv->states, sv->u, sv->delta, sv->A, sv->xdbl + R,
                                   sv->xdbl + R + N, W, m->D, sv->xz + Di, 2 * Di, B, T, Di, N,
                                   ctx->lens, scratch);
        for (size_t i = 0; i < (size_t)Di * N; i++) m->dA_log[i] += dA[i] * sv->A[i]; /* dA/dA_log = A */
        for (int c = 0; c < Di; c++) m->dD[c] += dD[c];
        sf_linear_backward(&m->dt_proj, ddt, ddelta, sv->dt, rows);
        for (long r = 0; r < rows; r++) memcpy(dxdbl + r * W, ddt + r * R, (size_t)R * sizeof(float));
        float *du2 = ddelta; /* free again: x_proj's input gradient */
        sf_linear_backward(&m->x_proj, du2, dxdbl, sv->u, rows);
        /* silu', padded rows cut off (their du is 0 already; this also stops 0 * inf there) */
#pragma omp parallel for schedule(static) if (rows * Di >= 65536)
        for (long r = 0; r < rows; r++) {
            const int valid = (int)(r % T) < sf_seq_len(ctx->lens, (int)(r / T), ctx->T);
            for (int c = 0; c < Di; c++) {
                const float v = sv->xc[r * Di + c], sg = 1.0f / (1.0f + sf_expf_fast(-v));
                const float g = du[r * Di + c] + du2[r * Di + c];
                du[r * Di + c] = valid ? g * sg * (1.0f + v * (1.0f - sg)) : 0.0f;
            }
        }
        /* the depth-wise causal conv, in blocks of 16 channels (one cache line of each row: a
         * channel at a time walks T rows of stride Di per channel, which fell out of cache at
         * long T); its weight gradient sums over rows inside the block's own task */
        const int nblk = (Di + 15) / 16;
        const float *wT = sv->wT; /* the forward's, the weights unchanged since */
#pragma omp parallel for schedule(static) if (rows * Di * K >= 65536)
        for (int blk = 0; blk < nblk; blk++) {
            const int c0 = blk * 16, w = Di - c0 < 16 ? Di - c0 : 16;
            float gb[16] = {0}, gw[64 * 16] = {0}; /* gw [tap][channel] */
            for (int b = 0; b < B; b++)
                for (int t = 0; t < T; t++) {
                    const long r = (long)b * T + t;
                    float dxv[16] = {0};
                    for (int k = 0; k < K; k++) {
                        const int tt = t - (K - 1) + k; /* input row feeding output t via tap k */
                        const int to = t + (K - 1) - k; /* output row reading input t via tap k */
                        if (tt >= 0) {
                            const float *xin = sv->xz + ((long)b * T + tt) * 2 * Di + c0;
                            for (int j = 0; j < w; j++) gw[k * 16 + j] += du[r * Di + c0 + j] * xin[j];
                        }
                        if (to < T) {
                            const float *gout = du + ((long)b * T + to) * Di + c0;
                            const float *wk = wT + (size_t)k * Di + c0;
                            for (int j = 0; j < w; j++) dxv[j] += wk[j] * gout[j];
                        }
                    }
                    for (int j = 0; j < w; j++) {
                        gb[j] += du[r * Di + c0 + j];
                        dxz[r * 2 * Di + c0 + j] = dxv[j];
                    }
                }
            for (int j = 0; j < w; j++) {
                m->dconv_b[c0 + j] += gb[j];
                for (int k = 0; k < K; k++) m->dconv_w[(size_t)(c0 + j) * K + k] += gw[k * 16 + j];
            }
        }
        sf_linear_backward(&m->in_proj, dx, dxz, sv->x, rows);
    }
    sf_arena_reset_to(a, mark);
}

/* dst[b, t] = src[b, n_b - 1 - t] for t < n_b (the valid part reversed), 0 on padding. */
static void mb_flip(const sf_ctx *ctx, int d, float *dst, const float *src) {
    for (int b = 0; b < ctx->B; b++) {
        const int n = sf_seq_len(ctx->lens, b, ctx->T);
        for (int t = 0; t < ctx->T; t++) {
            float *o = dst + ((size_t)b * ctx->T + t) * d;
            if (t < n)
                memcpy(o, src + ((size_t)b * ctx->T + (n - 1 - t)) * d, (size_t)d * sizeof(float));
            else
                memset(o, 0, (size_t)d * sizeof(float));
        }
    }
}

/* dst[b, t] += src[b, n_b - 1 - t] for t < n_b. */
static void mb_flip_add(const sf_ctx *ctx, int d, float *dst, const float *src) {
    for (int b = 0; b < ctx->B; b++) {
        const int n = sf_seq_len(ctx->lens, b, ctx->T);
        for (int t = 0; t < n; t++) {
            float *o = dst + ((size_t)b * ctx->T + t) * d;
            const float *i = src + ((size_t)b * ctx->T + (n - 1 - t)) * d;
            for (int j = 0; j < d; j++) o[j] += i[j];
        }
    }
}

static void mb_forward(sf_mixer *mx, sf_ctx *ctx, const float *x, float *y) {
    const sf_mamba *s = mx->self;
    mamba_saved *sv = SF_SAVED(ctx, mx->slot, mamba_saved);
    mb_dir_forward(s, &s->dir[0], ctx, &sv->s[0], x, y);
    if (!s->bidir) return;
    const size_t n = (size_t)ctx->B * ctx->T * s->d;
    sv->xf = sf_arena_push(ctx->arena, n);
    float *yf = sf_arena_push(ctx->arena, n);
    if (!sf_arena_planning(ctx->arena)) mb_flip(ctx, s->d, sv->xf, x);
    mb_dir_forward(s, &s->dir[1], ctx, &sv->s[1], sv->xf, yf);
    if (!sf_arena_planning(ctx->arena)) mb_flip_add(ctx, s->d, y, yf);
}

static void mb_backward(sf_mixer *mx, sf_ctx *ctx, const float *dy, float *dx) {
    sf_mamba *s = mx->self;
    const mamba_saved *sv = SF_SAVED(ctx, mx->slot, mamba_saved);
    if (!s->bidir) {
        mb_dir_backward(s, &s->dir[0], ctx, &sv->s[0], dy, dx);
        return;
    }
    const size_t n = (size_t)ctx->B * ctx->T * s->d;
    size_t mark = sf_arena_mark(ctx->arena);
    float *dyf = sf_arena_push(ctx->arena, n), *dxf = sf_arena_push(ctx->arena, n);
    if (!sf_arena_planning(ctx->arena)) mb_flip(ctx, s->d, dyf, dy);
    mb_dir_backward(s, &s->dir[1], ctx, &sv->s[1], dyf, dxf);
    mb_dir_backward(s, &s->dir[0], ctx, &sv->s[0], dy, dx);
    if (!sf_arena_planning(ctx->arena)) mb_flip_add(ctx, s->d, dx, dxf);
    sf_arena_reset_to(ctx->arena, mark);
}

static size_t mb_state_floats(const sf_mixer *mx) {
    const sf_mamba *s = mx->self;
    return (size_t)s->Di * (s->K - 1) + (size_t)s->Di * s->N;
}

static void mb_step(const sf_mixer *mx, const float *x_t, const float *state_in, float *state_out,
                    float *y_t, int t) {
    const sf_mamba *s = mx->self;
    const mamba_dir *m = &s->dir[0];
    const int Di = s->Di, N = s->N, K = s->K, R = s->R;
    (void)t;
    SF_ASSERT(!s->bidir && "a bidirectional mamba cannot stream");
    if (state_out != state_in) memcpy(state_out, state_in, mb_state_floats(mx) * sizeof(float));
    float *win = state_out, *h = state_out + (size_t)Di * (K - 1);
    size_t mark = sf_scratch_mark(); /* the streaming path allocates nothing (core/scratch.h) */
    float *buf = sf_scratch_push((size_t)2 * Di + Di + (R + 2 * N) + Di + Di + (size_t)Di * N);
    float *xz = buf, *u = xz + 2 * Di, *xdbl = u + Di, *delta = xdbl + R + 2 * N, *y = delta + Di;
    float *A = y + Di;
    sf_linear_forward(&m->in_proj, xz, x_t, 1);
    sf_causal_conv_step(m->conv_w, m->conv_b, Di, K, xz, win, win, u);
    for (int c = 0; c < Di; c++) u[c] = silu(u[c]);
    sf_linear_forward(&m->x_proj, xdbl, u, 1);
    sf_linear_forward(&m->dt_proj, delta, xdbl, 1); /* reads the first R entries: dt */
    for (size_t i = 0; i < (size_t)Di * N; i++) A[i] = -expf(m->A_log[i]);
    sf_selective_scan_step(y, h, u, delta, A, xdbl + R, xdbl + R + N, m->D, xz + Di, Di, N);
    sf_linear_forward(&m->out_proj, y_t, y, 1);
    sf_scratch_release(mark);
}

static void mb_destroy(sf_mixer *mx) { free(mx->self); }

/* per token: in_proj 4 d Di, conv 2 K Di, x_proj 2 Di (R + 2N), dt_proj 2 R Di, scan ~6 Di N,
 * out_proj 2 Di d; twice when bidirectional */
static double mb_flops(const sf_mixer *mx, int T) {
    const sf_mamba *s = mx->self;
    double d = s->d, Di = s->Di, N = s->N, R = s->R;
    double per = 4 * d * Di + 2 * s->K * Di + 2 * Di * (R + 2 * N) + 2 * R * Di + 6 * Di * N + 2 * Di * d;
    return (1 + s->bidir) * per * T;
}

static const sf_mixer_ops mb_ops = {mb_declare,      mb_init, mb_forward, mb_backward,
                                    mb_state_floats, mb_step, mb_destroy, mb_flops};

static const sf_option mb_options[] = {
    {"d_state", SF_OPT_INT, 16, NULL, 1, SF_SCAN_MAX_N, NULL, "N: states per channel"},
    {"d_conv", SF_OPT_INT, 4, NULL, 1, 64, NULL, "width of the causal depth-wise conv"},
    {"expand", SF_OPT_INT, 2, NULL, 1, 64, NULL, "d_inner = expand * d_model"},
    {"dt_rank", SF_OPT_INT, 0, NULL, 0, 1 << 16, NULL, "rank of the delta projection (0: ceil(d_model/16))"},
    {"dt_min", SF_OPT_FLOAT, 1e-3, NULL, 1e-9, 100, NULL, "init: smallest delta"},
    {"dt_max", SF_OPT_FLOAT, 0.1, NULL, 1e-9, 100, NULL, "init: largest delta"},
    {"dt_init_floor", SF_OPT_FLOAT, 1e-4, NULL, 0, 100, NULL, "init: delta floored here"},
    {"bidirectional", SF_OPT_BOOL, 0, NULL, 0, 1, NULL,
     "add a second Mamba (<prefix>.bwd.*) over the reversed sequence (S-Mamba's encoder)"},
};

static sf_mixer *mb_create(const sf_mixer_args *a) {
    sf_mamba *s = sf_calloc(1, sizeof *s);
    s->d = a->d_model;
    s->N = sf_opt_int(a->opts, "d_state");
    s->K = sf_opt_int(a->opts, "d_conv");
    s->Di = sf_opt_int(a->opts, "expand") * a->d_model;
    s->R = sf_opt_int(a->opts, "dt_rank");
    if (s->R == 0) s->R = (a->d_model + 15) / 16;
    s->dt_min = sf_opt_float(a->opts, "dt_min");
    s->dt_max = sf_opt_float(a->opts, "dt_max");
    s->dt_floor = sf_opt_float(a->opts, "dt_init_floor");
    s->bidir = sf_opt_bool(a->opts, "bidirectional");
    if (s->dt_min > s->dt_max) {
        sf_errorf("dt_min: %g is above dt_max %g", (double)s->dt_min, (double)s->dt_max);
        free(s);
        return NULL;
    }
    sf_mixer *m = sf_mixer_wrap(&mb_ops, a->d_model, s);
    m->can_step = !s->bidir;
    return m;
}

const sf_mixer_def sf_mixer_mamba = {
    .info = {"mamba", "Mamba-1 selective state-space mixer (causal; bidirectional adds a reversed pass)",
             SF_OPTS(mb_options)},
    .slots = SF_SLOT_TOKEN,
    .create = mb_create,
};
