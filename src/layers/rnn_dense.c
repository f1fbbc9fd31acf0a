/* Token mixers "gru" and "lstm": the classic dense-weight cells with PyTorch nn.GRU / nn.LSTM
 * semantics and parameter names (one layer, batch_first), trained sequentially: the input
 * projections of every token by one GEMM, then the recurrence one step at a time (a GEMM over the
 * batch per step). For comparison with the ParaRNN mixers (gru_diag, lstm_cifg). Causal only.
 *
 *   <prefix>.weight_ih_l0 [G*N, d], weight_hh_l0 [G*N, N], bias_ih_l0, bias_hh_l0 [G*N]
 *   GRU (G = 3, rows r | z | n): r = s(Wir x + bir + Whr h + bhr), z likewise,
 *       n = tanh(Win x + bin + r (Whn h + bhn)), h' = (1 - z) n + z h
 *   LSTM (G = 4, rows i | f | g | o): c' = f c + i g, h' = o tanh(c')
 * hidden 0 = d_model; another width adds <prefix>.out (nn.Linear(hidden, d_model)). Init as
 * PyTorch: every tensor U(-1/sqrt(N), 1/sqrt(N)). Streaming state: h (GRU) or [c, h] (LSTM).
 * Padding: tokens past a sequence's length are computed but never read: their outputs are 0 and
 * their gradients are cut (causal, so the valid part is exact). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/scratch.h"
#include "core/error.h"
#include "kernels/gemm.h"
#include "layers/layer.h"
#include "layers/linear.h"
#include "layers/mixers.h"

typedef struct {
    int lstm, d, N, G, has_out;
    float *w_ih, *w_hh, *b_ih, *b_hh, *dw_ih, *dw_hh, *db_ih, *db_hh;
    sf_linear out;
} sf_rnn_dense;

/* Saved per call: gi (input projections), act (per token: GRU r, z, n, Whn h + bhn; LSTM i, f, g,
 * o), h and (LSTM) c of every token. */
typedef struct {
    const float *x;
    float *gi, *act, *h, *c;
} rnn_saved;

static inline float sg(float x) { return 1.0f / (1.0f + expf(-x)); }

static void rd_declare(sf_mixer *m, sf_params *ps, const char *prefix) {
    sf_rnn_dense *p = m->self;
    char buf[SF_PARAM_NAME_MAX];
    const int64_t GN = (int64_t)p->G * p->N;
    snprintf(buf, sizeof buf, "%s.weight_ih_l0", prefix);
    sf_params_declare(ps, buf, 2, (int64_t[]){GN, p->d}, &p->w_ih, &p->dw_ih, 0);
    snprintf(buf, sizeof buf, "%s.weight_hh_l0", prefix);
    sf_params_declare(ps, buf, 2, (int64_t[]){GN, p->N}, &p->w_hh, &p->dw_hh, 0);
    snprintf(buf, sizeof buf, "%s.bias_ih_l0", prefix);
    sf_params_declare(ps, buf, 1, (int64_t[]){GN}, &p->b_ih, &p->db_ih, 1);
    snprintf(buf, sizeof buf, "%s.bias_hh_l0", prefix);
    sf_params_declare(ps, buf, 1, (int64_t[]){GN}, &p->b_hh, &p->db_hh, 1);
    if (p->has_out) {
        snprintf(buf, sizeof buf, "%s.out", prefix);
        sf_linear_declare(&p->out, ps, buf, p->N, p->d, 1);
    }
    m->slot = sf_params_reserve_saved(ps, sizeof(rnn_saved));
}

static void rd_init(sf_mixer *m, sf_rng *rng) {
    sf_rnn_dense *p = m->self;
    const float k = 1.0f / sqrtf((float)p->N);
    const long GN = (long)p->G * p->N;
    sf_rng_fill_uniform(rng, p->w_ih, GN * p->d, -k, k);
    sf_rng_fill_uniform(rng, p->w_hh, GN * p->N, -k, k);
    sf_rng_fill_uniform(rng, p->b_ih, GN, -k, k);
    sf_rng_fill_uniform(rng, p->b_hh, GN, -k, k);
    if (p->has_out) sf_linear_init(&p->out, rng);
}

/* One token of the cell for nb rows: gi, gh [nb rows of G*N] (gh already includes b_hh); c_prev
 * and c_out only for LSTM; act gets the saved activations. Rows are `ld*` floats apart. */
static void cell_rows(const sf_rnn_dense *p, int nb, const float *gi, long ldgi, const float *gh,
                      const float *h_prev, long ldh, const float *c_prev, float *h_out, float *c_out,
                      float *act, long ldact) {
    const int N = p->N;
    for (int b = 0; b < nb; b++) {
        const float *x = gi + b * ldgi, *g = gh + (size_t)b * p->G * N;
        const float *hp = h_prev ? h_prev + b * ldh : NULL, *cp = c_prev ? c_prev + b * ldh : NULL;
        float *ho = h_out + b * ldh, *a = act + b * ldact;
        if (!p->lstm) {
            for (int j = 0; j < N; j++) {
                float r = sg(x[j] + g[j]), z = sg(x[N + j] + g[N + j]);
                float n = tanhf(x[2 * N + j] + r * g[2 * N + j]);
                ho[j] = (1 - z) * n + z * (hp ? hp[j] : 0.0f);
                a[j] = r, a[N + j] = z, a[2 * N + j] = n, a[3 * N + j] = g[2 * N + j];
            }
        } else {
            float *co = c_out + b * ldh;
            for (int j = 0; j < N; j++) {
                float i = sg(x[j] + g[j]), f = sg(x[N + j] + g[N + j]);
                float gg = tanhf(x[2 * N + j] + g[2 * N + j]), o = sg(x[3 * N + j] + g[3 * N + j]);
                float c = f * (cp ? cp[j] : 0.0f) + i * gg;
                co[j] = c;
                ho[j] = o * tanhf(c);
                a[j] = i, a[N + j] = f, a[2 * N + j] = gg, a[3 * N + j] = o;
            }
        }
    }
}

/* gh [nb, G*N] = h_prev W_hh^T + b_hh (h_prev NULL: b_hh) */
static void hidden_proj(const sf_rnn_dense *p, int nb, const float *h_prev, long ldh, float *gh) {
    const int GN = p->G * p->N;
    for (int b = 0; b < nb; b++) memcpy(gh + (size_t)b * GN, p->b_hh, (size_t)GN * sizeof(float));
    if (h_prev) sf_gemm(0, 1, nb, GN, p->N, 1.0f, h_prev, (int)ldh, p->w_hh, p->N, 1.0f, gh, GN);
}

static void rd_forward(sf_mixer *m, sf_ctx *ctx, const float *x, float *y) {
    const sf_rnn_dense *p = m->self;
    rnn_saved *sv = SF_SAVED(ctx, m->slot, rnn_saved);
    const int B = ctx->B, T = ctx->T, N = p->N, GN = p->G * N;
    const long n = (long)B * T;
    sv->x = x;
    sv->gi = sf_arena_push(ctx->arena, (size_t)n * GN);
    sv->act = sf_arena_push(ctx->arena, (size_t)n * 4 * N);
    sv->h = sf_arena_push(ctx->arena, (size_t)n * N);
    sv->c = p->lstm ? sf_arena_push(ctx->arena, (size_t)n * N) : NULL;
    size_t mark = sf_arena_mark(ctx->arena);
    float *gh = sf_arena_push(ctx->arena, (size_t)B * GN);
    if (sf_arena_planning(ctx->arena)) {
        sf_arena_reset_to(ctx->arena, mark);
        return;
    }
    for (long t = 0; t < n; t++) memcpy(sv->gi + t * GN, p->b_ih, (size_t)GN * sizeof(float));
    sf_gemm(0, 1, (int)n, GN, p->d, 1.0f, x, p->d, p->w_ih, p->d, 1.0f, sv->gi, GN);
    const long ld = (long)T * N; /* row of sequence b at token t: b*T*N + t*N */
    for (int t = 0; t < T; t++) {
        const float *hp = t ? sv->h + (size_t)(t - 1) * N : NULL;
        hidden_proj(p, B, hp, ld, gh);
        cell_rows(p, B, sv->gi + (size_t)t * GN, (long)T * GN, gh, hp, ld,
                  p->lstm && t ? sv->c + (size_t)(t - 1) * N : NULL, sv->h + (size_t)t * N,
                  p->lstm ? sv->c + (size_t)t * N : NULL, sv->act + (size_t)t * 4 * N, (long)T * 4 * N);
    }
    float *hy = sv->h;
    if (p->has_out) {
        sf_linear_forward(&p->out, y, hy, n);
    } else {
        memcpy(y, hy, (size_t)n * N * sizeof(float));
    }
    if (ctx->lens) /* padding: outputs 0 (not out's bias: nothing past the length is meaningful) */
        for (int b = 0; b < B; b++)
            for (int t = ctx->lens[b]; t < T; t++) memset(y + ((size_t)b * T + t) * p->d, 0, (size_t)p->d * sizeof(float));
    sf_arena_reset_to(ctx->arena, mark);
}

static void rd_backward(sf_mixer *m, sf_ctx *ctx, const float *dy, float *dx) {
    sf_rnn_dense *p = m->self;
    const rnn_saved *sv = SF_SAVED(ctx, m->slot, rnn_saved);
    const int B = ctx->B, T = ctx->T, N = p->N, GN = p->G * N;
    const long n = (long)B * T;
    size_t mark = sf_arena_mark(ctx->arena);
    float *dgi = sf_arena_push(ctx->arena, (size_t)n * GN);
    float *dgh = p->lstm ? dgi : sf_arena_push(ctx->arena, (size_t)n * GN);
    float *g = sf_arena_push(ctx->arena, (size_t)n * N); /* dL/dh_t from the output */
    float *dh = sf_arena_push(ctx->arena, (size_t)B * N), *dc = sf_arena_push(ctx->arena, (size_t)B * N);
    if (!sf_arena_planning(ctx->arena)) {
        if (p->has_out)
            sf_linear_backward(&p->out, g, dy, sv->h, n);
        else
            memcpy(g, dy, (size_t)n * N * sizeof(float));
        memset(dh, 0, (size_t)B * N * sizeof(float));
        memset(dc, 0, (size_t)B * N * sizeof(float));
        for (int t = T - 1; t >= 0; t--) {
            for (int b = 0; b < B; b++) {
                const size_t o = (size_t)b * T + t;
                float *dhb = dh + (size_t)b * N, *dcb = dc + (size_t)b * N;
                float *dgib = dgi + o * GN, *dghb = dgh + o * GN;
                if (ctx->lens && t >= ctx->lens[b]) { /* padding: no gradient in or out */
                    memset(dhb, 0, (size_t)N * sizeof(float));
                    memset(dcb, 0, (size_t)N * sizeof(float));
                    memset(dgib, 0, (size_t)GN * sizeof(float));
                    if (dghb != dgib) memset(dghb, 0, (size_t)GN * sizeof(float));
                    continue;
                }
                const float *a = sv->act + o * 4 * N, *gt = g + o * N;
                const float *hp = t ? sv->h + (o - 1) * N : NULL;
                for (int j = 0; j < N; j++) dhb[j] += gt[j];
                if (!p->lstm) {
                    for (int j = 0; j < N; j++) {
                        float r = a[j], z = a[N + j], nn = a[2 * N + j], ghn = a[3 * N + j];
                        float hpj = hp ? hp[j] : 0.0f, d = dhb[j];
                        float dn = d * (1 - z) * (1 - nn * nn), dz = d * (hpj - nn) * z * (1 - z);
                        float dr = dn * ghn * r * (1 - r);
                        dgib[j] = dr, dgib[N + j] = dz, dgib[2 * N + j] = dn;
                        dghb[j] = dr, dghb[N + j] = dz, dghb[2 * N + j] = dn * r;
                        dhb[j] = d * z; /* direct path; W_hh part added below */
                    }
                } else {
                    const float *cc = sv->c + o * N, *cp = t ? sv->c + (o - 1) * N : NULL;
                    for (int j = 0; j < N; j++) {
                        float i = a[j], f = a[N + j], gg = a[2 * N + j], oo = a[3 * N + j];
                        float tc = tanhf(cc[j]), d = dhb[j];
                        float dcj = dcb[j] + d * oo * (1 - tc * tc);
                        dgib[j] = dcj * gg * i * (1 - i);
                        dgib[N + j] = dcj * (cp ? cp[j] : 0.0f) * f * (1 - f);
                        dgib[2 * N + j] = dcj * i * (1 - gg * gg);
                        dgib[3 * N + j] = d * tc * oo * (1 - oo);
                        dcb[j] = dcj * f;
                        dhb[j] = 0.0f;
                    }
                }
            }
            /* dh_{t-1} += dgh_t W_hh, for every sequence at once */
            if (t > 0) sf_gemm(0, 0, B, N, GN, 1.0f, dgh + (size_t)t * GN, T * GN, p->w_hh, N, 1.0f, dh, N);
        }
        /* weights in bulk: W_ih, b_ih from every token; W_hh from tokens 1.. and their h_{t-1} */
        sf_gemm(1, 0, GN, p->d, (int)n, 1.0f, dgi, GN, sv->x, p->d, 1.0f, p->dw_ih, p->d);
        for (int b = 0; b < B && T > 1; b++)
            sf_gemm(1, 0, GN, N, T - 1, 1.0f, dgh + ((size_t)b * T + 1) * GN, GN, sv->h + (size_t)b * T * N,
                    N, 1.0f, p->dw_hh, N);
        for (long o = 0; o < n; o++)
            for (int j = 0; j < GN; j++) p->db_ih[j] += dgi[o * GN + j], p->db_hh[j] += dgh[o * GN + j];
        sf_gemm(0, 0, (int)n, p->d, GN, 1.0f, dgi, GN, p->w_ih, p->d, 0.0f, dx, p->d);
    }
    sf_arena_reset_to(ctx->arena, mark);
}

static size_t rd_state_floats(const sf_mixer *m) {
    const sf_rnn_dense *p = m->self;
    return (size_t)(p->lstm ? 2 : 1) * p->N;
}

static void rd_step(const sf_mixer *m, const float *x_t, const float *state_in, float *state_out,
                    float *y_t, int t) {
    const sf_rnn_dense *p = m->self;
    const int N = p->N, GN = p->G * N, need = 2 * GN + 4 * N + 2 * N;
    size_t mark = sf_scratch_mark(); /* the streaming path allocates nothing (core/scratch.h) */
    float *gi = sf_scratch_push((size_t)need);
    float *gh = gi + GN, *act = gh + GN, *hc = act + 4 * N; /* new [c | h] */
    memcpy(gi, p->b_ih, (size_t)GN * sizeof(float));
    sf_gemm(0, 1, 1, GN, p->d, 1.0f, x_t, p->d, p->w_ih, p->d, 1.0f, gi, GN);
    const float *hp = t ? state_in + (p->lstm ? N : 0) : NULL, *cp = t && p->lstm ? state_in : NULL;
    hidden_proj(p, 1, hp, N, gh);
    cell_rows(p, 1, gi, GN, gh, hp, N, cp, hc + N, hc, act, 4 * N);
    if (p->lstm)
        memcpy(state_out, hc, (size_t)2 * N * sizeof(float));
    else
        memcpy(state_out, hc + N, (size_t)N * sizeof(float));
    if (p->has_out)
        sf_linear_forward(&p->out, y_t, hc + N, 1);
    else
        memcpy(y_t, hc + N, (size_t)N * sizeof(float));
    sf_scratch_release(mark);
}

static void rd_destroy(sf_mixer *m) { free(m->self); }

static double rd_flops(const sf_mixer *m, int T) {
    const sf_rnn_dense *p = m->self;
    double GN = (double)p->G * p->N;
    return (double)T * (2 * GN * p->d + 2 * GN * p->N + 20.0 * p->N + (p->has_out ? 2.0 * p->N * p->d : 0));
}

static const sf_mixer_ops rd_ops = {rd_declare, rd_init,    rd_forward, rd_backward,
                                    rd_state_floats, rd_step, rd_destroy, rd_flops};

static const sf_option rd_options[] = {
    {"hidden", SF_OPT_INT, 0, NULL, 0, 1 << 16, NULL,
     "recurrent units (0: d_model; otherwise an output projection maps them to d_model)"},
};

static sf_mixer *rd_create(const sf_mixer_args *a, int lstm) {
    int hidden = sf_opt_int(a->opts, "hidden");
    sf_rnn_dense *p = sf_calloc(1, sizeof *p);
    p->lstm = lstm;
    p->d = a->d_model;
    p->N = hidden ? hidden : a->d_model;
    p->G = lstm ? 4 : 3;
    p->has_out = p->N != a->d_model;
    return sf_mixer_wrap(&rd_ops, a->d_model, p);
}

static sf_mixer *gru_create(const sf_mixer_args *a) { return rd_create(a, 0); }
static sf_mixer *lstm_create(const sf_mixer_args *a) { return rd_create(a, 1); }

const sf_mixer_def sf_mixer_gru = {
    .info = {"gru", "GRU, dense weights (PyTorch nn.GRU), trained sequentially; causal, streams",
             SF_OPTS(rd_options)},
    .slots = SF_SLOT_TOKEN,
    .create = gru_create,
};

const sf_mixer_def sf_mixer_lstm = {
    .info = {"lstm", "LSTM, dense weights (PyTorch nn.LSTM), trained sequentially; causal, streams",
             SF_OPTS(rd_options)},
    .slots = SF_SLOT_TOKEN,
    .create = lstm_create,
};
