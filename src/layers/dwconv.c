/* Token mixer "dwconv": a depth-wise convolution along the tokens, one filter of kernel_size taps
 * per channel, as PyTorch's nn.Conv1d(d, d, kernel_size, groups=d) with zero padding:
 *
 *   y[t, c] = bias[c] + sum_k weight[c, 0, k] * x[t + k - left, c]
 *
 * centred ("same" padding: left = (kernel_size - 1) / 2, the odd tap on the right when the kernel
 * is even, as padding="same") or causal (left = kernel_size - 1: token t sees t-K+1..t). It is
 * MetaFormer's convolutional token mixer (ConvFormer, ConvNeXt's depth-wise conv) with the
 * point-wise parts left to the block's channel mixer: with the "mlp" channel mixer a block is a
 * separable convolution with a residual, the local inductive bias of the convolutional time-series
 * classifiers (FCN, ResNet) inside the block kit.
 * Padded batches (ctx->lens): tokens at and past a sequence's valid length are read as zeros and
 * their outputs are 0 and get no gradient, so each sequence is mixed as if alone.
 * Parameters <prefix>.conv.weight [d, 1, K] and <prefix>.conv.bias [d] (nn.Conv1d's names and
 * default initialisation, U(+-1/sqrt(K))).
 * step: causal only; the state is the last K-1 inputs ([K-1][d], oldest first). */
#include <math.h>
#include <string.h>

#include "core/error.h"
#include "core/scratch.h"
#include "layers/layer.h"
#include "layers/mixers.h"
#include "core/lens.h"
#include "kernels/causal_conv.h"

typedef struct {
    float *w, *b, *dw, *db; /* weight [d][K], bias [d] */
    int d, K, causal, left;
} sf_dwconv;

typedef struct {
    const float *x;
} dwconv_saved;


static void dwconv_declare(sf_mixer *m, sf_params *ps, const char *prefix) {
    sf_dwconv *s = m->self;
    char buf[SF_PARAM_NAME_MAX];
    snprintf(buf, sizeof buf, "%s.conv.weight", prefix);
    sf_params_declare(ps, buf, 3, (int64_t[]){s->d, 1, s->K}, &s->w, &s->dw, 0);
    snprintf(buf, sizeof buf, "%s.conv.bias", prefix);
    sf_params_declare(ps, buf, 1, (int64_t[]){s->d}, &s->b, &s->db, 1);
    m->slot = sf_params_reserve_saved(ps, sizeof(dwconv_saved));
}

static void dwconv_init(sf_mixer *m, sf_rng *rng) {
    sf_dwconv *s = m->self;
    float bound = 1.0f / sqrtf((float)s->K);
    sf_rng_fill_uniform(rng, s->w, (long)s->d * s->K, -bound, bound);
    sf_rng_fill_uniform(rng, s->b, s->d, -bound, bound);
}

/* wT [K][d]: the weight by tap, so the inner loops run along the channels (they vectorise). */
static float *weights_by_tap(const sf_dwconv *s) {
    float *wT = sf_scratch_push((size_t)s->K * s->d);
    for (int c = 0; c < s->d; c++)
        for (int k = 0; k < s->K; k++) wT[(size_t)k * s->d + c] = s->w[(size_t)c * s->K + k];
    return wT;
}

static void dwconv_forward(sf_mixer *m, sf_ctx *ctx, const float *x, float *y) {
    const sf_dwconv *s = m->self;
    SF_SAVED(ctx, m->slot, dwconv_saved)->x = x;
    if (sf_arena_planning(ctx->arena)) return;
    const int d = s->d, K = s->K, T = ctx->T;
    size_t mark = sf_scratch_mark();
    const float *wT = weights_by_tap(s);
    for (int b = 0; b < ctx->B; b++) {
        const int len = sf_seq_len(ctx->lens, b, ctx->T);
        const float *xb = x + (size_t)b * T * d;
        float *yb = y + (size_t)b * T * d;
        for (int t = 0; t < T; t++) {
            float *yt = yb + (size_t)t * d;
            if (t >= len) {
                memset(yt, 0, (size_t)d * sizeof(float));
                continue;
            }
            memcpy(yt, s->b, (size_t)d * sizeof(float));
            for (int k = 0; k < K; k++) {
                int src = t + k - s->left;
                if (src < 0 || src >= len) continue;
                const float *xs = xb + (size_t)src * d, *wk = wT + (size_t)k * d;
                for (int c = 0; c < d; c++) yt[c] += wk[c] * xs[c];
            }
        }
    }
    sf_scratch_release(mark);
}

static void dwconv_backward(sf_mixer *m, sf_ctx *ctx, const float *dy, float *dx) {
    sf_dwconv *s = m->self;
    if (sf_arena_planning(ctx->arena)) return;
    const float *x = SF_SAVED(ctx, m->slot, dwconv_saved)->x;
    const int d = s->d, K = s->K, T = ctx->T;
    size_t mark = sf_scratch_mark();
    const float *wT = weights_by_tap(s);
    float *dwT = sf_scratch_push((size_t)K * d);
    memset(dwT, 0, (size_t)K * d * sizeof(float));
    memset(dx, 0, (size_t)ctx->B * T * d * sizeof(float));
    for (int b = 0; b < ctx->B; b++) {
        const int len = sf_seq_len(ctx->lens, b, ctx->T);
        const float *xb = x + (size_t)b * T * d, *dyb = dy + (size_t)b * T * d;
        float *dxb = dx + (size_t)b * T * d;
        for (int t = 0; t < len; t++) {
            const float *g = dyb + (size_t)t * d;
            for (int c = 0; c < d; c++) s->db[c] += g[c];
            for (int k = 0; k < K; k++) {
                int src = t + k - s->left;
                if (src < 0 || src >= len) continue;
                const float *xs = xb + (size_t)src * d, *wk = wT + (size_t)k * d;
                float *dxs = dxb + (size_t)src * d, *dwk = dwT + (size_t)k * d;
                for (int c = 0; c < d; c++) {
                    dxs[c] += wk[c] * g[c];
                    dwk[c] += xs[c] * g[c];
                }
            }
        }
    }
    for (int c = 0; c < d; c++)
        for (int k = 0; k < K; k++) s->dw[(size_t)c * K + k] += dwT[(size_t)k * d + c];
    sf_scratch_release(mark);
}

static size_t dwconv_state_floats(const sf_mixer *m) {
    const sf_dwconv *s = m->self;
    return (size_t)(s->K - 1) * s->d;
}

static void dwconv_step(const sf_mixer *m, const float *x_t, const float *state_in,
                        float *state_out, float *y_t, int t) {
    const sf_dwconv *s = m->self;
    const int d = s->d, K = s->K;
    (void)t;
    SF_ASSERT(s->causal && "streaming needs a causal mixer");
    sf_causal_conv_step(s->w, s->b, d, K, x_t, state_in, state_out, y_t);
}

static void dwconv_destroy(sf_mixer *m) { free(m->self); }

static double dwconv_flops(const sf_mixer *m, int T) {
    const sf_dwconv *s = m->self;
    return 2.0 * s->K * s->d * T;
}

static const sf_mixer_ops dwconv_ops = {dwconv_declare,      dwconv_init, dwconv_forward,
                                        dwconv_backward,     dwconv_state_floats, dwconv_step,
                                        dwconv_destroy,      dwconv_flops};

static const sf_option dwconv_options[] = {
    {"kernel_size", SF_OPT_INT, 7, NULL, 1, 4096, NULL, "taps of each channel's filter"},
    {"causal", SF_OPT_BOOL, 0, NULL, 0, 1, NULL,
     "token t sees only tokens <= t (else centred, padding \"same\")"},
};

static sf_mixer *dwconv_create(const sf_mixer_args *a) {
    sf_dwconv *s = sf_calloc(1, sizeof *s);
    s->d = a->d_model;
    s->K = sf_opt_int(a->opts, "kernel_size");
    s->causal = sf_opt_bool(a->opts, "causal");
    s->left = s->causal ? s->K - 1 : (s->K - 1) / 2;
    sf_mixer *m = sf_mixer_wrap(&dwconv_ops, a->d_model, s);
    m->can_step = s->causal;
    return m;
}

const sf_mixer_def sf_mixer_dwconv = {
    .info = {"dwconv", "depth-wise convolution along the tokens (ConvFormer's token mixer)",
             SF_OPTS(dwconv_options)},
    .slots = SF_SLOT_TOKEN,
    .create = dwconv_create,
};
