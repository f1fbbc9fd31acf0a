/* PatchTST-style forecaster (Nie et al., ICLR 2023), channel-independent:
 *   x [B, L, C] -> RevIN per (b, c) -> pad the end with `stride` copies of the last value ->
 *   N patches of length pl per channel -> patch_embed + positions -> dropout ->
 *   E MetaFormer blocks on [B*C, N, d] -> (pre-norm: norm_f) -> flatten d*N (index di*N + p) ->
 *   head -> [B*C, P] -> RevIN inverse -> y [B, P, C].
 * Parameter names match tools/reference/seqformer_ref.py, which loads them with strict=True. */
#include <math.h>
#include <omp.h>
#include <string.h>

#include "blocks/block.h"
#include "core/error.h"
#include "kernels/gemm.h"
#include "layers/dropout.h"
#include "layers/linear.h"
#include "layers/norm.h"
#include "layers/positions.h"
#include "models/model.h"
#include "models/series_norm.h"
#include "core/parallel.h"

/* Elementwise loops over fewer than this many floats run on the calling thread: waking the team
costs more than the loop (batch-1 inference is 294 tokens x 16). */
#define SF_PT_PAR_MIN 65536L

typedef struct {
    int L, P, C, N, pl, s, d, E, revin;
    float dropout, head_dropout;
    sf_linear patch_embed, head;
    sf_positions pos;
    sf_block *blocks;
    sf_norm norm_f;
    int has_norm_f;
    size_t slot; /* the per-call record (pt_saved + E+1 block outputs) */
} patchtst;

typedef struct {
    float *mean, *stdev; /* [B*C] */
    float *patches;      /* [B*C*N, pl] */
    float *zf;           /* after norm_f (when there is one) */
    float *flat;         /* [B*C, d*N] */
    float *head_out;     /* [B*C, P] */
    uint8_t *mask_emb, *mask_head;
    float *z[];          /* E+1 buffers [B*C*N, d]: embedding, then each block's output */
} pt_saved;

static int pt_build(sf_model *m) {
    const cJSON *c = m->config;
    const cJSON *input = cJSON_GetObjectItemCaseSensitive(c, "input");
    const cJSON *head = cJSON_GetObjectItemCaseSensitive(c, "head");
    const cJSON *blocks = cJSON_GetObjectItemCaseSensitive(c, "blocks");
    /* the input and head registries are shared with other models: take only our kinds */
    if (strcmp(sf_opt_str(input, "kind"), "patches") != 0)
        return sf_errorf("input.kind: patchtst reads its input as patches, not '%s'",
                         sf_opt_str(input, "kind"));
    if (strcmp(sf_opt_str(head, "kind"), "flatten") != 0)
        return sf_errorf("head.kind: patchtst's head is flatten, not '%s'", sf_opt_str(head, "kind"));
    patchtst *s = sf_calloc(1, sizeof *s);
    m->self = s;
    s->L = m->seq_len;
    s->P = m->pred_len;
    s->C = m->n_channels;
    s->d = sf_opt_int(c, "d_model");
    s->revin = sf_opt_bool(c, "revin");
    s->dropout = sf_opt_float(c, "dropout");
    s->pl = sf_opt_int(input, "patch_len");
    s->s = sf_opt_int(input, "stride");
    s->head_dropout = sf_opt_float(head, "dropout");
    if (s->pl > s->L)
        return sf_errorf("input.patch_len: %d is longer than seq_len %d", s->pl, s->L);
    if (s->s > s->L) return sf_errorf("input.stride: %d is longer than seq_len %d", s->s, s->L);
    /* PatchTST pads the end with `stride` copies of the last value before unfolding. */
    s->N = (s->L + s->s - s->pl) / s->s + 1;
    const cJSON *positions = cJSON_GetObjectItemCaseSensitive(c, "positions");
    if (sf_positions_create(&s->pos, sf_opt_str(positions, "kind"), s->N, s->d))
        return sf_error_prefix("positions");
    if (sf_block_stack_create_pos(blocks, s->d, s->N, positions, &s->blocks, &s->E)) return SF_ERR;
    /* final_norm auto follows the last block entry's placement and norm */
    int last_pre = 0;
    sf_norm_spec last_norm = {SF_NORM_LAYERNORM, 1e-5f, 0.1f};
    for (const cJSON *b = blocks->child; b; b = b->next) {
        last_pre = strcmp(sf_opt_str(b, "placement"), "post") != 0; /* pre or peri */
        last_norm = sf_norm_spec_from_json(cJSON_GetObjectItemCaseSensitive(b, "norm"));
    }
    const char *fn = sf_opt_str(c, "final_norm");
    sf_norm_spec nf = last_norm;
    if (strcmp(fn, "auto") == 0) {
        s->has_norm_f = s->E > 0 && last_pre;
    } else if (strcmp(fn, "none") != 0) {
        s->has_norm_f = 1;
        sf_norm_kind_parse(fn, &nf.kind);
        nf.eps = 1e-5f;
        nf.momentum = 0.1f;
    }
    sf_params *ps = &m->params;
    sf_linear_declare(&s->patch_embed, ps, "patch_embed", s->pl, s->d, 1);
    sf_positions_declare(&s->pos, ps, "pos_embed");
    sf_block_stack_declare(s->blocks, s->E, ps);
    if (s->has_norm_f) sf_norm_declare(&s->norm_f, ps, "norm_f", &nf, s->d);
    sf_linear_declare(&s->head, ps, "head", s->d * s->N, s->P, 1);
    s->slot = sf_params_reserve_saved(ps, sizeof(pt_saved) + (size_t)(s->E + 1) * sizeof(float *));
    return SF_OK;
}

static void pt_init(sf_model *m, sf_rng *rng) {
    patchtst *s = m->self;
    sf_linear_init(&s->patch_embed, rng);
    sf_positions_init(&s->pos, rng);
    for (int i = 0; i < s->E; i++) sf_block_init(&s->blocks[i], rng);
    if (s->has_norm_f) sf_norm_init(&s->norm_f);
    sf_linear_init(&s->head, rng);
}

/* RevIN statistics and patching of series [lo, hi) (one (b, c) series at a time). */
static void pt_patch_series(const patchtst *s, const float *x, pt_saved *sv, int lo, int hi) {
    const int N = s->N, L = s->L, C = s->C;
    for (int bc = lo; bc < hi; bc++) {
        int b = bc / C, ch = bc % C;
        const float *xs = x + (size_t)b * L * C + ch;
        float fmu, fsd;
        sf_series_stats(xs, (size_t)C, L, s->revin, &fmu, &fsd);
        sv->mean[bc] = fmu;
        sv->stdev[bc] = fsd;
        float *pt = sv->patches + (size_t)bc * N * s->pl;
        for (int p = 0; p < N; p++)
            for (int j = 0; j < s->pl; j++) {
                int t = p * s->s + j;
                if (t >= L) t = L - 1; /* end padding repeats the last value */
                pt[p * s->pl + j] = (xs[(size_t)t * C] - fmu) / fsd;
            }
    }
}

/* The flatten of series [lo, hi): token-major [N, d] to d-major [d * N] (index di * N + p). */
static void pt_flatten_series(const patchtst *s, const float *zl, float *flat, int lo, int hi) {
    const int N = s->N, d = s->d;
    for (int bc = lo; bc < hi; bc++) {
        const float *zb = zl + (size_t)bc * N * d;
        float *fb = flat + (size_t)bc * N * d;
        for (int p = 0; p < N; p++)
            for (int di = 0; di < d; di++) fb[di * N + p] = zb[p * d + di];
    }
}

/* RevIN inverse of series [lo, hi) into y [B, P, C]. */
static void pt_output_series(const patchtst *s, const pt_saved *sv, float *y, int lo, int hi) {
    for (int bc = lo; bc < hi; bc++) {
        int b = bc / s->C, ch = bc % s->C;
        const float *h = sv->head_out + (size_t)bc * s->P;
        float *yb = y + (size_t)b * s->P * s->C + ch;
        for (int t = 0; t < s->P; t++) yb[(size_t)t * s->C] = h[t] * sv->stdev[bc] + sv->mean[bc];
    }
}

/* Small inference calls (batch 1 is 7 series of 42 patches) on several threads: the series are
 * independent, so the whole forward (patching, embedding, blocks, head rows) runs in ONE parallel
 * region, each thread on its own contiguous slice of series with its own arena and layer
 * records, instead of each operation opening its own region (about 20 per call, each too short
 * to pay for waking the other thread). Up to SF_PT_SPLIT_MAX floats per block output; above
 * that the per-operation parallelism is efficient.
 * Each series is computed by the same code on the same values either way, so the output does not
 * depend on the split (test_model checks it bit for bit for every token mixer). The exception is
 * ParaRNN's Newton solve, which stops on the largest residual over all series of the call, so a
 * slice may take another iteration count (outputs agree to its newton_tol). Not while those
 * mixers tally their Newton statistics into ctx->newton (one shared record). */
#define SF_PT_SPLIT_MAX (1L << 16)
#define SF_PT_SPLIT_THREADS 64

static unsigned long split_calls;
static int split_on = 1;
unsigned long sf_patchtst_split_calls(void) { return __atomic_load_n(&split_calls, __ATOMIC_RELAXED); }
void sf_patchtst_split_enable(int on) { __atomic_store_n(&split_on, on != 0, __ATOMIC_RELAXED); }

/* Floats of arena the per-series work needs for nb series: the blocks one at a time, as
 * inference, then the final norm. */
static size_t pt_split_arena(patchtst *s, const sf_ctx *inner, int nb) {
    sf_arena pa;
    sf_arena_init_plan(&pa);
    sf_ctx sub = *inner;
    sub.arena = &pa;
    sub.B = nb;
    for (int i = 0; i < s->E; i++) {
        sf_block_forward(&s->blocks[i], &sub, NULL, NULL);
        sf_arena_reset_to(&pa, 0);
    }
    if (s->has_norm_f) sf_norm_forward(&s->norm_f, &sub, NULL, NULL, (long)nb * s->N);
    return pa.peak;
}

/* The whole forward of a small inference call, split by series (see above): each thread patches
 * its series, embeds them, runs the blocks and the final norm, flattens them and computes their
 * rows of the head and their outputs. The embedding and head GEMMs are cut by rows only where
 * every piece computes its rows with the operations of the whole call (sf_gemm_row_class);
 * otherwise the call runs the usual way. Returns 1 when it ran. */
static int pt_forward_split(sf_model *m, const sf_ctx *inner, pt_saved *sv, const float *x,
                            float *y) {
    patchtst *s = m->self;
    const int BC = inner->B, N = s->N, d = s->d;
    if (!__atomic_load_n(&split_on, __ATOMIC_RELAXED) || inner->keep || inner->training ||
        inner->newton || omp_in_parallel() || BC < 2 || (long)BC * N * d > SF_PT_SPLIT_MAX)
        return 0;
    int nth = omp_get_max_threads();
    if (nth > BC) nth = BC;
    if (nth > SF_PT_SPLIT_THREADS) nth = SF_PT_SPLIT_THREADS;
    if (nth < 2) return 0;
    /* thread t takes series [lo[t], lo[t+1]); its arena and (but for thread 0) its own records */
    int lo[SF_PT_SPLIT_THREADS + 1];
    for (int t = 0; t <= nth; t++) lo[t] = (int)((long)BC * t / nth);
    const int embed_class = sf_gemm_row_class(1, BC * N, d, s->pl);
    const int head_class = sf_gemm_row_class(1, BC, s->P, d * N);
    if (embed_class < 0 || head_class < 0) return 0;
    for (int t = 0; t < nth; t++) {
        const int nb = lo[t + 1] - lo[t];
        if (sf_gemm_row_class(1, nb * N, d, s->pl) != embed_class ||
            sf_gemm_row_class(1, nb, s->P, d * N) != head_class)
            return 0;
    }
    sf_arena *a = inner->arena;
    const int plan = sf_arena_planning(a);
    const long ntok = (long)BC * N;
    const size_t mark = sf_arena_mark(a);
    sv->zf = s->has_norm_f ? sf_arena_push(a, (size_t)ntok * d) : NULL;
    sv->flat = sf_arena_push(a, (size_t)ntok * d);
    sv->head_out = sf_arena_push(a, (size_t)BC * s->P);
    const size_t outputs = sf_arena_mark(a);
    size_t need[SF_PT_SPLIT_THREADS], total = 0;
    /* a records buffer as the run's own (saved_bytes + 16), in whole 16-float arena units */
    const size_t rec_bytes = m->params.saved_bytes + 16;
    const size_t rec_floats = ((rec_bytes + 3) / 4 + 15) & ~(size_t)15;
    for (int t = 0; t < nth; t++) {
        need[t] = (pt_split_arena(s, inner, lo[t + 1] - lo[t]) + 15) & ~(size_t)15;
        total += need[t] + (t ? rec_floats : 0);
    }
    /* The planning pass covered the split at the run's thread count (sf_model_reserve re-plans
     * when it grows); should the pieces still not fit, the call runs the usual way. */
    if (!plan && a->used + total > a->cap) {
        sf_arena_reset_to(a, mark);
        return 0;
    }
    float *base = sf_arena_push(a, total);
    if (plan) {
        sf_arena_reset_to(a, mark); /* the planning pass then plans the usual way too */
        return 0;
    }
    sf_arena sub_arena[SF_PT_SPLIT_THREADS];
    unsigned char *sub_saved[SF_PT_SPLIT_THREADS];
    float *at = base;
    for (int t = 0; t < nth; t++) {
        sf_arena_init_view(&sub_arena[t], at, need[t]);
        at += need[t];
        sub_saved[t] = inner->saved;
        if (t) { /* fresh records, as the run's own were before its first call */
            sub_saved[t] = memset(at, 0, rec_bytes);
            at += rec_floats;
        }
    }
    const long per_series = (long)N * d;
    /* OpenMP may grant fewer threads than asked (OMP_DYNAMIC, thread limits): each thread then
     * takes every n-th slice, so every slice is computed whatever the team size */
#pragma omp parallel num_threads(nth)
    for (int t = omp_get_thread_num(); t < nth; t += omp_get_num_threads()) {
        const int l0 = lo[t], l1 = lo[t + 1], nb = l1 - l0;
        sf_ctx sub = *inner;
        sub.arena = &sub_arena[t];
        sub.saved = sub_saved[t];
        sub.B = nb;
        pt_patch_series(s, x, sv, l0, l1);
        sf_linear_forward(&s->patch_embed, sv->z[0] + l0 * per_series,
                          sv->patches + (size_t)l0 * N * s->pl, (long)nb * N);
        sf_positions_forward(&s->pos, &sub, sv->z[0] + l0 * per_series);
        for (int i = 0; i < s->E; i++) {
            sf_block_forward(&s->blocks[i], &sub, sv->z[i] + l0 * per_series,
                             sv->z[i + 1] + l0 * per_series);
            sf_arena_reset_to(&sub_arena[t], 0);
        }
        const float *zl = sv->z[s->E];
        if (s->has_norm_f) {
            sf_norm_forward(&s->norm_f, &sub, zl + l0 * per_series, sv->zf + l0 * per_series,
                            (long)nb * N);
            zl = sv->zf;
        }
        pt_flatten_series(s, zl, sv->flat, l0, l1);
        sf_linear_forward(&s->head, sv->head_out + (size_t)l0 * s->P,
                          sv->flat + (size_t)l0 * per_series, nb);
        pt_output_series(s, sv, y, l0, l1);
        sf_arena_reset_to(&sub_arena[t], 0);
    }
    sf_arena_reset_to(a, outputs);
    sv->mask_emb = sv->mask_head = NULL;
    __atomic_fetch_add(&split_calls, 1, __ATOMIC_RELAXED);
    return 1;
}

static void pt_forward(sf_model *m, sf_ctx *ctx, const float *x, float *y) {
    patchtst *s = m->self;
    pt_saved *sv = SF_SAVED(ctx, s->slot, pt_saved);
    sf_arena *a = ctx->arena;
    int plan = sf_arena_planning(a);
    int B = ctx->B, BC = B * s->C, N = s->N, d = s->d;
    long ntok = (long)BC * N;
    sf_ctx inner = *ctx;
    inner.B = BC;
    inner.T = N;
    inner.lens = NULL; /* every series has all its patches */

    sv->mean = sf_arena_push(a, (size_t)BC);
    sv->stdev = sf_arena_push(a, (size_t)BC);
    sv->patches = sf_arena_push(a, (size_t)ntok * s->pl);
    for (int i = 0; i <= s->E; i++) sv->z[i] = sf_arena_push(a, (size_t)ntok * d);
    if (pt_forward_split(m, &inner, sv, x, y)) return;
    if (!plan) {
        /* RevIN statistics and patching, one (b, c) series at a time. */
        SF_PARALLEL_FOR_IF(ntok * d >= SF_PT_PAR_MIN,
            for (int bc = 0; bc < BC; bc++) pt_patch_series(s, x, sv, bc, bc + 1);
        );
        sf_linear_forward(&s->patch_embed, sv->z[0], sv->patches, ntok);
    }
    sf_positions_forward(&s->pos, &inner, sv->z[0]);
    sv->mask_emb = sf_dropout_fwd(ctx, sv->z[0], ntok * d, s->dropout);
    for (int i = 0; i < s->E; i++) {
        /* Inference keeps nothing for backward: what a block pushed besides its output (which
         * was pushed above) is free once the block is done, so the arena holds one block at a
         * time. */
        size_t mark = sf_arena_mark(a);
        sf_block_forward(&s->blocks[i], &inner, sv->z[i], sv->z[i + 1]);
        if (!ctx->keep) sf_arena_reset_to(a, mark);
    }
    const float *zl = sv->z[s->E];
    sv->zf = NULL;
    if (s->has_norm_f) {
        sv->zf = sf_arena_push(a, (size_t)ntok * d);
        sf_norm_forward(&s->norm_f, &inner, zl, sv->zf, ntok);
        zl = sv->zf;
    }
    sv->flat = sf_arena_push(a, (size_t)ntok * d);
    sv->head_out = sf_arena_push(a, (size_t)BC * s->P);
    if (!plan) {
        SF_PARALLEL_FOR_IF(ntok * d >= SF_PT_PAR_MIN,
            for (int bc = 0; bc < BC; bc++) pt_flatten_series(s, zl, sv->flat, bc, bc + 1);
        );
        sf_linear_forward(&s->head, sv->head_out, sv->flat, BC);
    }
    sv->mask_head = sf_dropout_fwd(ctx, sv->head_out, (long)BC * s->P, s->head_dropout);
    if (!plan) pt_output_series(s, sv, y, 0, BC);
}

static void pt_backward(sf_model *m, sf_ctx *ctx, const float *dy) {
    patchtst *s = m->self;
    const pt_saved *sv = SF_SAVED(ctx, s->slot, pt_saved);
    sf_arena *a = ctx->arena;
    int plan = sf_arena_planning(a);
    int B = ctx->B, BC = B * s->C, N = s->N, d = s->d, C = s->C;
    long ntok = (long)BC * N;
    sf_ctx inner = *ctx;
    inner.B = BC;
    inner.T = N;
    inner.lens = NULL; /* every series has all its patches */
    size_t mark = sf_arena_mark(a);
    float *dhead = sf_arena_push(a, (size_t)BC * s->P);
    float *dflat = sf_arena_push(a, (size_t)ntok * d);
    float *g0 = sf_arena_push(a, (size_t)ntok * d), *g1 = sf_arena_push(a, (size_t)ntok * d);
    if (!plan) {
        for (int bc = 0; bc < BC; bc++) {
            int b = bc / C, ch = bc % C;
            const float *dyb = dy + (size_t)b * s->P * C + ch;
            for (int t = 0; t < s->P; t++)
                dhead[(size_t)bc * s->P + t] = dyb[(size_t)t * C] * sv->stdev[bc];
        }
    }
    sf_dropout_back(ctx, dhead, sv->mask_head, (long)BC * s->P, s->head_dropout);
    if (!plan) {
        sf_linear_backward(&s->head, dflat, dhead, sv->flat, BC);
        float *dz = s->has_norm_f ? g1 : g0;
        SF_PARALLEL_FOR_IF(ntok * d >= SF_PT_PAR_MIN,
            for (int bc = 0; bc < BC; bc++) {
                const float *fb = dflat + (size_t)bc * N * d;
                float *zb = dz + (size_t)bc * N * d;
                for (int p = 0; p < N; p++)
                    for (int di = 0; di < d; di++) zb[p * d + di] = fb[di * N + p];
            }
        );
    }
    if (s->has_norm_f) sf_norm_backward(&s->norm_f, &inner, g1, g0, ntok);
    for (int i = s->E - 1; i >= 0; i--) {
        sf_block_backward(&s->blocks[i], &inner, g0, g1);
        float *t = g0;
        g0 = g1;
        g1 = t;
    }
    sf_dropout_back(ctx, g0, sv->mask_emb, ntok * d, s->dropout);
    sf_positions_backward(&s->pos, &inner, g0);
    if (!plan) {
        sf_linear_backward(&s->patch_embed, NULL, g0, sv->patches, ntok);
    }
    sf_arena_reset_to(a, mark);
}

static void pt_destroy(sf_model *m) {
    patchtst *s = m->self;
    if (!s) return;
    sf_block_stack_destroy(s->blocks, s->E);
    sf_positions_destroy(&s->pos);
    free(s);
    m->self = NULL;
}

/* Forward FLOPs per sample: every GEMM counts 2 per multiply-add; attention's scores and
 * weighted sum 4*N*N*d per block (softmax) or 4*N*d*d/H (linear). */
static double pt_flops(const sf_model *m) {
    const patchtst *s = m->self;
    double N = s->N, d = s->d, f = 2 * N * s->pl * d + 2 * d * N * s->P;
    f += sf_block_stack_flops(s->blocks, s->E, s->N);
    return f * s->C;
}

static const sf_model_ops pt_ops = {pt_build, pt_init, pt_forward, pt_backward, pt_destroy,
                                    pt_flops};

static const sf_option pt_options[] = {
    SF_FORECAST_SHAPE_OPTIONS,
    {"d_model", SF_OPT_INT, 16, NULL, 1, 4096, NULL, "model width"},
    {"revin", SF_OPT_BOOL, 1, NULL, 0, 1, NULL, "reversible instance normalisation per series"},
    {"dropout", SF_OPT_FLOAT, 0, NULL, 0, 0.99, NULL, "dropout after patch embedding + positions"},
    {"final_norm", SF_OPT_CHOICE, 0, "auto", 0, 0, "auto|none|layernorm|rmsnorm|batchnorm",
     "norm after the last block (auto: the last block's norm when it is pre-norm)"},
};

const sf_model_def sf_model_patchtst = {
    .info = {"patchtst", "PatchTST (Nie et al. 2023): channel-independent patches, blocks, flatten head",
             SF_OPTS(pt_options)},
    .has_blocks = 1,
    .default_input = "patches",
    .default_head = "flatten",
    .ops = &pt_ops,
};
