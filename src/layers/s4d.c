/* Token mixer "s4d": the S4D layer of state-spaces/s4 (models/s4/s4d.py), one diagonal SSM per
 * channel (H = d_model channels, d_state/2 complex modes each), on [B, T, d] activations:
 *
 *   z = K * x + D x            causal convolution with the S4D kernel (kernels/s4d.h), by FFT
 *   a = gelu(z)                (exact erf GELU, nn.GELU())
 *   [p | g] = a W^T + b        W [2H, H]: s4d.py's Conv1d(H, 2H, kernel_size=1) as a Linear
 *   y = p * sigmoid(g)         nn.GLU(dim=channels)
 *
 * Parameter names are s4d.py's (<prefix>.kernel.log_dt [H], kernel.C [H, N/2, 2] (view_as_real),
 * kernel.log_A_real, kernel.A_imag [H, N/2], D [H]) except the output transform, which is
 * <prefix>.output_linear.{weight [2H, H], bias} (a Linear, not Conv1d's [2H, H, 1]). The kernel
 * parameters are trained without weight decay, as s4d.py registers them (its optional per-tensor
 * lr is not kept). Dropout (s4d.py's DropoutNd, 0 by default) is not kept.
 * Initialisation as S4DKernel: log_dt ~ U[log dt_min, log dt_max], C complex standard normal
 * (real and imaginary parts N(0, 1/2)), log_A_real = log 0.5, A_imag = pi n (S4D-Lin), D ~ N(0, 1),
 * output_linear PyTorch's default.
 *
 * Causal: token t sees tokens <= t; step runs the recurrence with the caller's complex state
 * ([H][N/2] (re, im)), so streaming is O(H N) per token. Option bidirectional (as S4's
 * bidirectional kernels, for encoders): kernel.C is [2, H, N/2, 2], the second C giving an
 * anti-causal kernel over the tokens after t (same A and dt); no streaming then. */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <string.h>

#include "core/scratch.h"
#include "core/error.h"
#include "kernels/activations.h"
#include "kernels/s4d.h"
#include "layers/layer.h"
#include "layers/linear.h"
#include "layers/mixers.h"

typedef struct {
    float *log_dt, *C, *log_A_real, *A_imag, *D;
    float *dlog_dt, *dC, *dlog_A_real, *dA_imag, *dD;
    sf_linear out;
    int H, N2, bidir;
    float dt_min, dt_max;
} sf_s4d;

typedef struct {
    const float *x;
    float *K;    /* [H, T], then the anti-causal [H, T] when bidirectional */
    float *z, *a; /* [N, H] conv output and its GELU */
    float *g;    /* [N, 2H] output_linear's output */
    int workers;
} s4d_saved;

/* The kernel's parameters; dir 1: the anti-causal kernel's (the second C). */
static sf_s4d_params s4d_params(const sf_s4d *s, int dir) {
    return (sf_s4d_params){s->H, s->N2, s->log_dt, s->log_A_real, s->A_imag,
                           s->C + (size_t)dir * 2 * s->H * s->N2, s->D};
}

static void s4d_declare(sf_mixer *m, sf_params *ps, const char *prefix) {
    sf_s4d *s = m->self;
    char buf[SF_PARAM_NAME_MAX];
    const int64_t H = s->H, N2 = s->N2;
    snprintf(buf, sizeof buf, "%s.kernel.log_dt", prefix);
    sf_params_declare(ps, buf, 1, (int64_t[]){H}, &s->log_dt, &s->dlog_dt, 1);
    snprintf(buf, sizeof buf, "%s.kernel.C", prefix);
    if (s->bidir)
        sf_params_declare(ps, buf, 4, (int64_t[]){2, H, N2, 2}, &s->C, &s->dC, 1);
    else
        sf_params_declare(ps, buf, 3, (int64_t[]){H, N2, 2}, &s->C, &s->dC, 1);
    snprintf(buf, sizeof buf, "%s.kernel.log_A_real", prefix);
    sf_params_declare(ps, buf, 2, (int64_t[]){H, N2}, &s->log_A_real, &s->dlog_A_real, 1);
    snprintf(buf, sizeof buf, "%s.kernel.A_imag", prefix);
    sf_params_declare(ps, buf, 2, (int64_t[]){H, N2}, &s->A_imag, &s->dA_imag, 1);
    snprintf(buf, sizeof buf, "%s.D", prefix);
    sf_params_declare(ps, buf, 1, (int64_t[]){H}, &s->D, &s->dD, 0);
    snprintf(buf, sizeof buf, "%s.output_linear", prefix);
    sf_linear_declare(&s->out, ps, buf, s->H, 2 * s->H, 1);
    m->slot = sf_params_reserve_saved(ps, sizeof(s4d_saved));
}

static void s4d_init(sf_mixer *m, sf_rng *rng) {
    sf_s4d *s = m->self;
    const double lo = log((double)s->dt_min), hi = log((double)s->dt_max);
    for (int h = 0; h < s->H; h++) s->log_dt[h] = (float)(lo + sf_rng_uniform(rng) * (hi - lo));
    sf_rng_fill_normal(rng, s->C, 2L * (1 + s->bidir) * s->H * s->N2, 0.0f, (float)sqrt(0.5));
    for (int h = 0; h < s->H; h++)
        for (int n = 0; n < s->N2; n++) {
            s->log_A_real[(size_t)h * s->N2 + n] = logf(0.5f);
            s->A_imag[(size_t)h * s->N2 + n] = (float)(M_PI * n);
        }
    sf_rng_fill_normal(rng, s->D, s->H, 0.0f, 1.0f);
    sf_linear_init(&s->out, rng);
}

static int s4d_workers(int H) {
    int w = omp_get_max_threads();
    return w < H ? w : H;
}

/* y = p * sigmoid(g) over rows [p | g] of 2H. */
static void glu_forward(float *y, const float *pg, long N, int H) {
    for (long i = 0; i < N; i++)
        for (int c = 0; c < H; c++) {
            const float p = pg[i * 2 * H + c], g = pg[i * 2 * H + H + c];
            y[i * H + c] = p / (1.0f + expf(-g));
        }
}

static void glu_backward(float *dpg, const float *dy, const float *pg, long N, int H) {
    for (long i = 0; i < N; i++)
        for (int c = 0; c < H; c++) {
            const float p = pg[i * 2 * H + c], g = pg[i * 2 * H + H + c];
            const float sg = 1.0f / (1.0f + expf(-g)), d = dy[i * H + c];
            dpg[i * 2 * H + c] = d * sg;
            dpg[i * 2 * H + H + c] = d * p * sg * (1.0f - sg);
        }
}

static void s4d_forward(sf_mixer *m, sf_ctx *ctx, const float *x, float *y) {
    const sf_s4d *s = m->self;
    s4d_saved *sv = SF_SAVED(ctx, m->slot, s4d_saved);
    const long N = (long)ctx->B * ctx->T;
    const int H = s->H, T = ctx->T;
    sv->x = x;
    sv->workers = s4d_workers(H);
    sv->K = sf_arena_push(ctx->arena, (size_t)(1 + s->bidir) * H * T);
    sv->z = sf_arena_push(ctx->arena, (size_t)N * H);
    sv->a = sf_arena_push(ctx->arena, (size_t)N * H);
    sv->g = sf_arena_push(ctx->arena, (size_t)N * 2 * H);
    size_t mark = sf_arena_mark(ctx->arena);
    double *scratch = (double *)(void *)sf_arena_push(
        ctx->arena, 2 * sf_s4d_conv_scratch_doubles(T, sv->workers));
    if (!sf_arena_planning(ctx->arena)) {
        const sf_s4d_params p = s4d_params(s, 0), pb = s4d_params(s, 1);
        float *Kb = s->bidir ? sv->K + (size_t)H * T : NULL;
        sf_s4d_kernel(sv->K, T, &p, sv->workers);
        if (Kb) sf_s4d_kernel(Kb, T, &pb, sv->workers);
        sf_s4d_conv_forward(sv->z, x, H, sv->K, Kb, T, s->D, ctx->B, T, H, scratch, sv->workers,
                            ctx->lens);
        sf_gelu_forward(sv->a, sv->z, N * H);
        sf_linear_forward(&s->out, sv->g, sv->a, N);
        glu_forward(y, sv->g, N, H);
    }
    sf_arena_reset_to(ctx->arena, mark);
}

static void s4d_backward(sf_mixer *m, sf_ctx *ctx, const float *dy, float *dx) {
    sf_s4d *s = m->self;
    const s4d_saved *sv = SF_SAVED(ctx, m->slot, s4d_saved);
    const long N = (long)ctx->B * ctx->T;
    const int H = s->H, T = ctx->T;
    size_t mark = sf_arena_mark(ctx->arena);
    float *dg = sf_arena_push(ctx->arena, (size_t)N * 2 * H);
    float *dz = sf_arena_push(ctx->arena, (size_t)N * H);
    float *dK = sf_arena_push(ctx->arena, (size_t)(1 + s->bidir) * H * T);
    double *scratch = (double *)(void *)sf_arena_push(
        ctx->arena, 2 * sf_s4d_conv_scratch_doubles(T, sv->workers));
    if (!sf_arena_planning(ctx->arena)) {
        const sf_s4d_params p = s4d_params(s, 0), pb = s4d_params(s, 1);
        const sf_s4d_grads g = {s->dlog_dt, s->dlog_A_real, s->dA_imag, s->dC, s->dD};
        const sf_s4d_grads gb = {s->dlog_dt, s->dlog_A_real, s->dA_imag,
                                 s->dC + (size_t)2 * H * s->N2, s->dD};
        const float *Kb = s->bidir ? sv->K + (size_t)H * T : NULL;
        float *dKb = s->bidir ? dK + (size_t)H * T : NULL;
        glu_backward(dg, dy, sv->g, N, H);
        sf_linear_backward(&s->out, dz, dg, sv->a, N);
        sf_gelu_backward(dz, dz, sv->z, N * H);
        sf_s4d_conv_backward(dx, dK, dKb, s->dD, dz, sv->x, H, sv->K, Kb, T, s->D, ctx->B, T, H,
                             scratch, sv->workers, ctx->lens);
        sf_s4d_kernel_backward(dK, T, &p, &g, sv->workers);
        if (dKb) sf_s4d_kernel_backward(dKb, T, &pb, &gb, sv->workers);
    }
    sf_arena_reset_to(ctx->arena, mark);
}

static size_t s4d_state_floats(const sf_mixer *m) {
    const sf_s4d *s = m->self;
    return sf_s4d_state_floats(s->H, s->N2);
}

static void s4d_step(const sf_mixer *m, const float *x_t, const float *state_in, float *state_out,
                     float *y_t, int t) {
    const sf_s4d *s = m->self;
    const int H = s->H;
    (void)t;
    SF_ASSERT(!s->bidir && "a bidirectional s4d cannot stream");
    size_t mark = sf_scratch_mark(); /* the streaming path allocates nothing (core/scratch.h) */
    float *z = sf_scratch_push(4 * (size_t)H), *g = z + 2 * H;
    const sf_s4d_params p = s4d_params(s, 0);
    sf_s4d_step(z, x_t, &p, state_in, state_out);
    sf_gelu_forward(z + H, z, H);
    sf_linear_forward(&s->out, g, z + H, 1);
    glu_forward(y_t, g, 1, H);
    sf_scratch_release(mark);
}

static void s4d_destroy(sf_mixer *m) { free(m->self); }

/* kernel 8 H N2 T; per sequence two real FFTs of size n ~ 2T per channel (~5 n log2 n) and the
 * spectrum product; output_linear 4 T H^2 */
static double s4d_flops(const sf_mixer *m, int T) {
    const sf_s4d *s = m->self;
    double t = T, H = s->H, n = 2.0 * T;
    return (1 + s->bidir) * 8 * H * s->N2 * t + H * (10 * n * log2(n) + 6 * n) + 4 * t * H * H;
}

static const sf_mixer_ops s4d_ops = {s4d_declare,      s4d_init, s4d_forward, s4d_backward,
                                     s4d_state_floats, s4d_step, s4d_destroy, s4d_flops};

static const sf_option s4d_options[] = {
    {"d_state", SF_OPT_INT, 64, NULL, 2, 2 * SF_S4D_MAX_MODES, NULL,
     "state size N per channel (N/2 complex modes; must be even)"},
    {"dt_min", SF_OPT_FLOAT, 0.001, NULL, 1e-8, 10, NULL, "smallest initial step dt"},
    {"dt_max", SF_OPT_FLOAT, 0.1, NULL, 1e-8, 10, NULL, "largest initial step dt"},
    {"bidirectional", SF_OPT_BOOL, 0, NULL, 0, 1, NULL,
     "add an anti-causal kernel (a second C) over later tokens; no streaming"},
};

static sf_mixer *s4d_create(const sf_mixer_args *a) {
    int N = sf_opt_int(a->opts, "d_state");
    float dt_min = sf_opt_float(a->opts, "dt_min"), dt_max = sf_opt_float(a->opts, "dt_max");
    if (N % 2 != 0) {
        sf_errorf("d_state: must be even (N/2 complex modes; got %d)", N);
        return NULL;
    }
    if (!(dt_min <= dt_max)) {
        sf_errorf("dt_min: %g exceeds dt_max %g", (double)dt_min, (double)dt_max);
        return NULL;
    }
    sf_s4d *s = sf_calloc(1, sizeof *s);
    s->H = a->d_model;
    s->N2 = N / 2;
    s->dt_min = dt_min;
    s->dt_max = dt_max;
    s->bidir = sf_opt_bool(a->opts, "bidirectional");
    sf_mixer *m = sf_mixer_wrap(&s4d_ops, a->d_model, s);
    m->can_step = !s->bidir;
    return m;
}

const sf_mixer_def sf_mixer_s4d = {
    .info = {"s4d", "S4D diagonal state-space model (causal FFT convolution; recurrent step)",
             SF_OPTS(s4d_options)},
    .slots = SF_SLOT_TOKEN,
    .create = s4d_create,
};
