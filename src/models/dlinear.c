/* DLinear (Zeng et al., AAAI 2023, "Are Transformers Effective for Time Series Forecasting?"),
 * shared across channels (individual=False):
 *   trend    = moving average of x (kernel k, stride 1, ends padded by repeating the first/last
 *              value (k-1)/2 times),  seasonal = x - trend
 *   y[:, c]  = Linear_Seasonal(seasonal[:, c]) + Linear_Trend(trend[:, c])      (L -> P)
 * Names match LTSF-Linear: Linear_Seasonal.{weight,bias} [P, L], Linear_Trend.{weight,bias}. */
#include <string.h>

#include "core/error.h"
#include "layers/linear.h"
#include "models/model.h"

typedef struct {
    int L, P, C, k;
    sf_linear seasonal, trend;
    size_t slot;
} dlinear;

typedef struct {
    float *xs, *xt; /* [B*C, L] seasonal and trend inputs */
} dl_saved;

static int dl_build(sf_model *m) {
    dlinear *s = sf_calloc(1, sizeof *s);
    m->self = s;
    s->L = m->seq_len;
    s->P = m->pred_len;
    s->C = m->n_channels;
    s->k = sf_opt_int(m->config, "kernel_size");
    if (s->k % 2 == 0) return sf_errorf("kernel_size: %d must be odd", s->k);
    sf_linear_declare(&s->seasonal, &m->params, "Linear_Seasonal", s->L, s->P, 1);
    sf_linear_declare(&s->trend, &m->params, "Linear_Trend", s->L, s->P, 1);
    s->slot = sf_params_reserve_saved(&m->params, sizeof(dl_saved));
    return SF_OK;
}

static void dl_init(sf_model *m, sf_rng *rng) {
    dlinear *s = m->self;
    sf_linear_init(&s->seasonal, rng);
    sf_linear_init(&s->trend, rng);
}

static void dl_forward(sf_model *m, sf_ctx *ctx, const float *x, float *y) {
    dlinear *s = m->self;
    dl_saved *sv = SF_SAVED(ctx, s->slot, dl_saved);
    int BC = ctx->B * s->C, L = s->L, C = s->C, P = s->P, h = (s->k - 1) / 2;
    sf_arena *a = ctx->arena;
    sv->xs = sf_arena_push(a, (size_t)BC * L);
    sv->xt = sf_arena_push(a, (size_t)BC * L);
    float *ys = sf_arena_push(a, (size_t)BC * P), *yt = sf_arena_push(a, (size_t)BC * P);
    if (sf_arena_planning(a)) return;
#pragma omp parallel for schedule(static)
    for (int bc = 0; bc < BC; bc++) {
        int b = bc / C, ch = bc % C;
        const float *xb = x + (size_t)b * L * C + ch;
        float *st = sv->xt + (size_t)bc * L, *ss = sv->xs + (size_t)bc * L;
        for (int t = 0; t < L; t++) {
            double acc = 0;
            for (int j = t - h; j <= t + h; j++) {
                int jj = j < 0 ? 0 : (j >= L ? L - 1 : j);
                acc += xb[(size_t)jj * C];
            }
            st[t] = (float)(acc / s->k);
            ss[t] = xb[(size_t)t * C] - st[t];
        }
    }
    sf_linear_forward(&s->seasonal, ys, sv->xs, BC);
    sf_linear_forward(&s->trend, yt, sv->xt, BC);
    for (int bc = 0; bc < BC; bc++) {
        int b = bc / C, ch = bc % C;
        for (int t = 0; t < P; t++)
            y[((size_t)b * P + t) * C + ch] = ys[(size_t)bc * P + t] + yt[(size_t)bc * P + t];
    }
}

static void dl_backward(sf_model *m, sf_ctx *ctx, const float *dy) {
    dlinear *s = m->self;
    const dl_saved *sv = SF_SAVED(ctx, s->slot, dl_saved);
    int BC = ctx->B * s->C, C = s->C, P = s->P;
    sf_arena *a = ctx->arena;
    size_t mark = sf_arena_mark(a);
    float *g = sf_arena_push(a, (size_t)BC * P);
    if (!sf_arena_planning(a)) {
        for (int bc = 0; bc < BC; bc++) {
            int b = bc / C, ch = bc % C;
            for (int t = 0; t < P; t++) g[(size_t)bc * P + t] = dy[((size_t)b * P + t) * C + ch];
        }
        sf_linear_backward(&s->seasonal, NULL, g, sv->xs, BC);
        sf_linear_backward(&s->trend, NULL, g, sv->xt, BC);
    }
    sf_arena_reset_to(a, mark);
}

static void dl_destroy(sf_model *m) {
    free(m->self);
    m->self = NULL;
}

static double dl_flops(const sf_model *m) {
    const dlinear *s = m->self;
    return 4.0 * s->L * s->P * s->C + 2.0 * s->L * s->k * s->C;
}

static const sf_model_ops dl_ops = {dl_build, dl_init, dl_forward, dl_backward, dl_destroy,
                                    dl_flops};

static const sf_option dl_options[] = {
    SF_FORECAST_SHAPE_OPTIONS,
    {"kernel_size", SF_OPT_INT, 25, NULL, 1, 1001, NULL, "moving-average kernel (odd)"},
};

const sf_model_def sf_model_dlinear = {
    .info = {"dlinear", "DLinear (Zeng et al. 2023): trend/seasonal decomposition, two linear maps",
             SF_OPTS(dl_options)},
    .has_blocks = 0,
    .ops = &dl_ops,
};
