/* Token mixers "gru_diag" and "lstm_cifg": the ParaRNN cells (kernels/pararnn.h) with diagonal
 * state weights and per-head block-diagonal input weights, as in apple/ml-pararnn
 * (gru_diag_mh.py, lstm_cifg_diag_mh.py). Causal only.
 *
 * Parameters (the reference's names and shapes, N = hidden units, H = heads):
 *   <prefix>.A [3, N]        diagonal state weights (GRU z, r, h; LSTM f, o, c)
 *   <prefix>.B [H, d/H, 3, N/H]  block-diagonal input weights: u[g, h*N/H + j] =
 *                                  sum_i x[h*d/H + i] B[h, i, g, j] + b[g, h*N/H + j]
 *   <prefix>.b [3, N]
 *   <prefix>.C [2, N]        LSTM peepholes (f on c_{t-1}, o on c_t)
 *   <prefix>.out.{weight,bias} [d, N], [d]  only when hidden != d_model
 * The reference cell maps input_dim -> state_dim and returns h (state_dim wide); it has no
 * output projection. With hidden 0 (= d_model) the mixer returns h itself, like the cell; with
 * another width an nn.Linear(hidden, d_model) maps h back to the model width (our addition).
 * Init as the reference (utils/init.py): A, C ~ N(0, 2/sqrt(5N)); B Xavier-uniform with
 * fan_in d/H and fan_out N (GRU) or N/H (LSTM), as each cell passes them; b = 0 except its first
 * row (update / forget gate) = -linspace(0, 1, N).
 *
 * solver newton: the forward pass is the Newton solve (newton_iters cap, newton_tol on max|F|,
 * sequential fallback with a warning), the backward the parallel transposed solve; sequential:
 * the plain loop and classic BPTT. Both give the same numbers to float rounding. The last call's
 * Newton statistics are in the caller's context (sf_pararnn_stats). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/scratch.h"
#include "core/error.h"
#include "kernels/gemm.h"
#include "kernels/pararnn.h"
#include "layers/layer.h"
#include "layers/linear.h"
#include "layers/mixers.h"
#include "layers/pararnn_mixer.h"

typedef struct {
    sf_diag_cell_kind kind;
    int d, N, H, hi, hs, newton, iters;
    float tol;
    float *A, *Bw, *b, *C, *dA, *dB, *db, *dC;
    int has_out;
    sf_linear out;
} sf_pararnn;

typedef struct {
    const float *x;
    float *u, *s, *work;
    sf_newton_stats stats;
    int ran_newton;
} pararnn_saved;

static sf_diag_cell cell_of(const sf_pararnn *p) {
    sf_diag_cell c = {p->kind, p->N, p->A, p->kind == SF_CELL_LSTM_CIFG ? p->C : NULL};
    return c;
}

static void pr_declare(sf_mixer *m, sf_params *ps, const char *prefix) {
    sf_pararnn *p = m->self;
    char buf[SF_PARAM_NAME_MAX];
    snprintf(buf, sizeof buf, "%s.A", prefix);
    sf_params_declare(ps, buf, 2, (int64_t[]){3, p->N}, &p->A, &p->dA, 0);
    snprintf(buf, sizeof buf, "%s.B", prefix);
    sf_params_declare(ps, buf, 4, (int64_t[]){p->H, p->hi, 3, p->hs}, &p->Bw, &p->dB, 0);
    if (p->kind == SF_CELL_LSTM_CIFG) {
        snprintf(buf, sizeof buf, "%s.C", prefix);
        sf_params_declare(ps, buf, 2, (int64_t[]){2, p->N}, &p->C, &p->dC, 0);
    }
    snprintf(buf, sizeof buf, "%s.b", prefix);
    sf_params_declare(ps, buf, 2, (int64_t[]){3, p->N}, &p->b, &p->db, 1);
    if (p->has_out) {
        snprintf(buf, sizeof buf, "%s.out", prefix);
        sf_linear_declare(&p->out, ps, buf, p->N, p->d, 1);
    }
    m->slot = sf_params_reserve_saved(ps, sizeof(pararnn_saved));
}

static void pr_init(sf_mixer *m, sf_rng *rng) {
    sf_pararnn *p = m->self;
    const float a_std = 2.0f / sqrtf(5.0f * (float)p->N);
    sf_rng_fill_normal(rng, p->A, 3L * p->N, 0.0f, a_std);
    int fan_out = p->kind == SF_CELL_GRU_DIAG ? p->N : p->hs;
    float bound = sqrtf(6.0f / (float)(p->hi + fan_out));
    sf_rng_fill_uniform(rng, p->Bw, (long)p->H * p->hi * 3 * p->hs, -bound, bound);
    if (p->kind == SF_CELL_LSTM_CIFG) sf_rng_fill_normal(rng, p->C, 2L * p->N, 0.0f, a_std);
    memset(p->b, 0, (size_t)3 * p->N * sizeof(float));
    for (int j = 0; j < p->N; j++) p->b[j] = p->N > 1 ? -(float)j / (float)(p->N - 1) : 0.0f;
    if (p->has_out) sf_linear_init(&p->out, rng);
}

/* u [n, 3N] = x B + b (one GEMM per head and gate) */
static void input_proj(const sf_pararnn *p, const float *x, float *u, long n) {
    const int N = p->N, hs = p->hs, hi = p->hi;
    for (int h = 0; h < p->H; h++)
        for (int g = 0; g < 3; g++)
            sf_gemm(0, 0, (int)n, hs, hi, 1.0f, x + (size_t)h * hi, p->d,
                    p->Bw + (size_t)h * hi * 3 * hs + (size_t)g * hs, 3 * hs, 0.0f,
                    u + (size_t)g * N + (size_t)h * hs, 3 * N);
    for (long t = 0; t < n; t++)
        for (int j = 0; j < 3 * N; j++) u[t * 3 * N + j] += p->b[j];
}

/* y [n, d] from the states: h itself or out(h) (h sits at offset ho of rows of S floats) */
static void output_map(const sf_pararnn *p, const float *s, float *y, long n) {
    sf_diag_cell c = cell_of(p);
    const int S = sf_diag_cell_state(&c), ho = sf_diag_cell_h_offset(&c);
    if (!p->has_out) {
        for (long t = 0; t < n; t++) memcpy(y + t * p->d, s + t * S + ho, (size_t)p->N * sizeof(float));
        return;
    }
    for (long t = 0; t < n; t++) memcpy(y + t * p->d, p->out.b, (size_t)p->d * sizeof(float));
    sf_gemm(0, 1, (int)n, p->d, p->N, 1.0f, s + ho, S, p->out.w, p->N, 1.0f, y, p->d);
}

static void pr_forward(sf_mixer *m, sf_ctx *ctx, const float *x, float *y) {
    const sf_pararnn *p = m->self;
    pararnn_saved *sv = SF_SAVED(ctx, m->slot, pararnn_saved);
    sf_diag_cell c = cell_of(p);
    const long n = (long)ctx->B * ctx->T;
    sv->x = x;
    sv->u = sf_arena_push(ctx->arena, (size_t)n * 3 * p->N);
    sv->s = sf_arena_push(ctx->arena, (size_t)n * sf_diag_cell_state(&c));
    sv->work = sf_arena_push(ctx->arena, sf_diag_rnn_work_floats(&c, ctx->B, ctx->T));
    if (sf_arena_planning(ctx->arena)) return;
    input_proj(p, x, sv->u, n);
    sv->ran_newton = p->newton;
    memset(&sv->stats, 0, sizeof sv->stats);
    if (p->newton)
        sf_diag_rnn_newton(&c, ctx->B, ctx->T, sv->u, sv->s, ctx->lens, p->iters, p->tol, sv->work,
                           &sv->stats);
    else
        sf_diag_rnn_sequential(&c, ctx->B, ctx->T, sv->u, sv->s, ctx->lens);
    if (p->newton && ctx->newton) sf_newton_tally_add(ctx->newton, &sv->stats);
    output_map(p, sv->s, y, n);
}

static void pr_backward(sf_mixer *m, sf_ctx *ctx, const float *dy, float *dx) {
    sf_pararnn *p = m->self;
    const pararnn_saved *sv = SF_SAVED(ctx, m->slot, pararnn_saved);
    sf_diag_cell c = cell_of(p);
    const long n = (long)ctx->B * ctx->T;
    const int N = p->N, hs = p->hs, hi = p->hi, S = sf_diag_cell_state(&c);
    size_t mark = sf_arena_mark(ctx->arena);
    float *du = sf_arena_push(ctx->arena, (size_t)n * 3 * N);
    float *g = p->has_out ? sf_arena_push(ctx->arena, (size_t)n * N) : NULL;
    if (!sf_arena_planning(ctx->arena)) {
        const float *gh = dy;
        if (p->has_out) { /* dh = dy W; dW += dy^T h; db += colsum dy */
            const int ho = sf_diag_cell_h_offset(&c);
            sf_gemm(0, 0, (int)n, N, p->d, 1.0f, dy, p->d, p->out.w, N, 0.0f, g, N);
            sf_gemm(1, 0, p->d, N, (int)n, 1.0f, dy, p->d, sv->s + ho, S, 1.0f, p->out.dw, N);
            for (long t = 0; t < n; t++)
                for (int j = 0; j < p->d; j++) p->out.db[j] += dy[t * p->d + j];
            gh = g;
        }
        sf_diag_rnn_backward(&c, ctx->B, ctx->T, sv->u, sv->s, gh, du, p->dA,
                             p->kind == SF_CELL_LSTM_CIFG ? p->dC : NULL, ctx->lens, p->newton,
                             sv->work);
        for (long t = 0; t < n; t++)
            for (int j = 0; j < 3 * N; j++) p->db[j] += du[t * 3 * N + j];
        for (int h = 0; h < p->H; h++) {
            const float *xh = sv->x + (size_t)h * hi;
            float *Bh = p->Bw + (size_t)h * hi * 3 * hs, *dBh = p->dB + (size_t)h * hi * 3 * hs;
            for (int gg = 0; gg < 3; gg++) {
                const float *dug = du + (size_t)gg * N + (size_t)h * hs;
                sf_gemm(1, 0, hi, hs, (int)n, 1.0f, xh, p->d, dug, 3 * N, 1.0f, dBh + gg * hs, 3 * hs);
                sf_gemm(0, 1, (int)n, hi, hs, 1.0f, dug, 3 * N, Bh + gg * hs, 3 * hs, gg ? 1.0f : 0.0f,
                        dx + (size_t)h * hi, p->d);
            }
        }
    }
    sf_arena_reset_to(ctx->arena, mark);
}

static size_t pr_state_floats(const sf_mixer *m) {
    const sf_pararnn *p = m->self;
    sf_diag_cell c = cell_of(p);
    return (size_t)sf_diag_cell_state(&c);
}

static void pr_step(const sf_mixer *m, const float *x_t, const float *state_in, float *state_out,
                    float *y_t, int t) {
    const sf_pararnn *p = m->self;
    sf_diag_cell c = cell_of(p);
    const int S = sf_diag_cell_state(&c), need = 3 * p->N + S;
    size_t mark = sf_scratch_mark(); /* the streaming path allocates nothing (core/scratch.h) */
    float *u = sf_scratch_push((size_t)need);
    float *s_new = u + 3 * p->N;
    input_proj(p, x_t, u, 1);
    sf_diag_cell_step(&c, t ? state_in : NULL, u, s_new);
    memcpy(state_out, s_new, (size_t)S * sizeof(float));
    output_map(p, s_new, y_t, 1);
    sf_scratch_release(mark);
}

static void pr_destroy(sf_mixer *m) { free(m->self); }

/* input projection 2*d/H*3N, cell ~40 N per token (Newton: x (1 + 2 iters)), output 2*N*d */
static double pr_flops(const sf_mixer *m, int T) {
    const sf_pararnn *p = m->self;
    double t = T, N = p->N, work = p->newton ? 1 + 2.0 * p->iters : 1;
    return t * (2.0 * p->hi * 3 * N + 40 * N * work + (p->has_out ? 2 * N * p->d : 0));
}

static const sf_mixer_ops pr_ops = {pr_declare, pr_init,    pr_forward, pr_backward,
                                    pr_state_floats, pr_step, pr_destroy, pr_flops};

static const sf_option pr_options[] = {
    {"heads", SF_OPT_INT, 2, NULL, 1, 4096, NULL,
     "blocks of the block-diagonal input weights (must divide d_model and hidden)"},
    {"hidden", SF_OPT_INT, 0, NULL, 0, 1 << 16, NULL,
     "recurrent units (0: d_model; otherwise an output projection maps them to d_model)"},
    {"solver", SF_OPT_CHOICE, 0, "newton", 0, 0, "newton|sequential",
     "newton: parallel Newton solve over the sequence; sequential: the plain loop"},
    {"newton_iters", SF_OPT_INT, 3, NULL, 1, 1000, NULL, "Newton iterations at most (the reference runs 3)"},
    {"newton_tol", SF_OPT_FLOAT, 1e-5, NULL, 0, 1, NULL,
     "stop when max |h_t - f(h_t-1, x_t)| <= tol; above it after the cap: warning and sequential fallback"},
};

static sf_mixer *pr_create(const sf_mixer_args *a, sf_diag_cell_kind kind) {
    int H = sf_opt_int(a->opts, "heads"), hidden = sf_opt_int(a->opts, "hidden");
    int N = hidden ? hidden : a->d_model;
    if (a->d_model % H) {
        sf_errorf("heads: %d does not divide d_model %d", H, a->d_model);
        return NULL;
    }
    if (N % H) {
        sf_errorf("heads: %d does not divide hidden %d", H, N);
        return NULL;
    }
    sf_pararnn *p = sf_calloc(1, sizeof *p);
    p->kind = kind;
    p->d = a->d_model;
    p->N = N;
    p->H = H;
    p->hi = a->d_model / H;
    p->hs = N / H;
    p->newton = strcmp(sf_opt_str(a->opts, "solver"), "newton") == 0;
    p->iters = sf_opt_int(a->opts, "newton_iters");
    p->tol = sf_opt_float(a->opts, "newton_tol");
    p->has_out = N != a->d_model;
    return sf_mixer_wrap(&pr_ops, a->d_model, p);
}

static sf_mixer *gru_diag_create(const sf_mixer_args *a) { return pr_create(a, SF_CELL_GRU_DIAG); }
static sf_mixer *lstm_cifg_create(const sf_mixer_args *a) { return pr_create(a, SF_CELL_LSTM_CIFG); }

const sf_mixer_def sf_mixer_gru_diag = {
    .info = {"gru_diag", "GRU with diagonal state weights (ParaRNN), trained by parallel Newton "
                         "iterations; causal, streams", SF_OPTS(pr_options)},
    .slots = SF_SLOT_TOKEN,
    .create = gru_diag_create,
};

const sf_mixer_def sf_mixer_lstm_cifg = {
    .info = {"lstm_cifg", "LSTM with coupled input/forget gate, diagonal state weights and "
                          "peepholes (ParaRNN), trained by parallel Newton iterations; causal, streams",
             SF_OPTS(pr_options)},
    .slots = SF_SLOT_TOKEN,
    .create = lstm_cifg_create,
};

int sf_pararnn_stats(const sf_mixer *m, const sf_ctx *ctx, sf_newton_stats *out) {
    if (!m || (m->def != &sf_mixer_gru_diag && m->def != &sf_mixer_lstm_cifg)) return 0;
    const pararnn_saved *sv = SF_SAVED(ctx, m->slot, const pararnn_saved);
    if (!sv->ran_newton) return 0;
    *out = sv->stats;
    return 1;
}

int sf_config_uses_newton(const cJSON *config) {
    if (!config) return 0;
    if (cJSON_IsObject(config)) {
        const cJSON *kind = cJSON_GetObjectItemCaseSensitive(config, "kind");
        const cJSON *solver = cJSON_GetObjectItemCaseSensitive(config, "solver");
        if (cJSON_IsString(kind) &&
            (!strcmp(kind->valuestring, "gru_diag") || !strcmp(kind->valuestring, "lstm_cifg")) &&
            (!cJSON_IsString(solver) || !strcmp(solver->valuestring, "newton")))
            return 1;
    }
    for (const cJSON *e = config->child; e; e = e->next)
        if (sf_config_uses_newton(e)) return 1;
    return 0;
}
