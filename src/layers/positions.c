#include "layers/positions.h"

#include <math.h>
#include <string.h>

#include "core/error.h"
#include "core/parallel.h"

static const sf_option rope_options[] = {
    {"base", SF_OPT_FLOAT, 10000, NULL, 1, 1e9, NULL, "rotation frequencies base^(-2i/head_dim)"},
};
static const sf_option time_options[] = {
    {"channel", SF_OPT_INT, 0, NULL, 0, 100000, NULL, "input channel holding the observation time (not embedded as a value)"},
    {"scale", SF_OPT_FLOAT, 1, NULL, 1e-9, 1e9, NULL, "angle = scale * time * 10000^(-2i/d): the shortest period is 2 pi / scale time units"},
};
static const sf_option t5_options[] = {
    {"num_buckets", SF_OPT_INT, 32, NULL, 2, 4096, NULL, "relative-position buckets (half per direction when bidirectional)"},
    {"max_distance", SF_OPT_INT, 128, NULL, 1, 1 << 24, NULL, "distance from which all offsets share the last bucket"},
};

const sf_part_info sf_positions_registry[SF_POSITIONS_N] = {
    [SF_POS_LEARNED] = {"learned", "a trained [N, d] table (pos_embed), init U(-0.02, 0.02)", NULL, 0},
    [SF_POS_SINUSOIDAL] = {"sinusoidal", "fixed sin/cos table of Vaswani et al. (even d)", NULL, 0},
    [SF_POS_NONE] = {"none", "no positions", NULL, 0},
    [SF_POS_ROPE] = {"rope", "rotary positions on q and k inside softmax attention (even head width)",
                     SF_OPTS(rope_options)},
    [SF_POS_T5] = {"t5", "T5 relative bias: a learned bias per head and offset bucket added to softmax attention logits",
                   SF_OPTS(t5_options)},
    [SF_POS_TIME] = {"time", "sinusoidal encoding of each step's observation time (an input channel; irregular series, t2 only)",
                     SF_OPTS(time_options)},
};

int sf_positions_in_attention(const char *kind) {
    return strcmp(kind, "rope") == 0 || strcmp(kind, "t5") == 0;
}

/* Elementwise loops over fewer floats than this run on the calling thread. */
#define POS_PAR_MIN 65536L

int sf_positions_create(sf_positions *p, const char *kind, int n, int d) {
    memset(p, 0, sizeof *p);
    p->n = n;
    p->d = d;
    int k = 0;
    while (k < SF_POSITIONS_N && strcmp(sf_positions_registry[k].name, kind) != 0) k++;
    if (k == SF_POSITIONS_N)
        return sf_errorf("kind: unknown positions '%s' (known: learned, sinusoidal, none, rope, t5, time)", kind);
    p->kind = (sf_pos_kind)k;
    if (p->kind == SF_POS_TIME)
        return sf_errorf("kind: time positions encode observation times read from the input; only model t2 takes them");
    if (p->kind == SF_POS_SINUSOIDAL) {
        if (d % 2) return sf_errorf("kind: sinusoidal positions need an even d_model (got %d)", d);
        p->table = sf_malloc((size_t)n * d * sizeof(float));
        for (int t = 0; t < n; t++)
            for (int i = 0; i < d; i += 2) {
                double freq = pow(10000.0, -(double)i / d);
                p->table[(size_t)t * d + i] = (float)sin(t * freq);
                p->table[(size_t)t * d + i + 1] = (float)cos(t * freq);
            }
    }
    return SF_OK;
}

void sf_positions_declare(sf_positions *p, sf_params *ps, const char *name) {
    if (p->kind == SF_POS_LEARNED)
        sf_params_declare(ps, name, 2, (int64_t[]){p->n, p->d}, &p->w, &p->dw, 1);
}

void sf_positions_init(sf_positions *p, sf_rng *rng) {
    if (p->kind == SF_POS_LEARNED) sf_rng_fill_uniform(rng, p->w, (long)p->n * p->d, -0.02f, 0.02f);
}

void sf_positions_destroy(sf_positions *p) {
    free(p->table);
    p->table = NULL;
}

void sf_positions_forward(const sf_positions *p, const sf_ctx *ctx, float *x) {
    const float *pos = p->kind == SF_POS_LEARNED ? p->w : p->table;
    if (!pos || sf_arena_planning(ctx->arena)) return;
    int T = ctx->T, d = p->d;
    SF_ASSERT(ctx->pos_offset >= 0 && ctx->pos_offset + T <= p->n);
    pos += (size_t)ctx->pos_offset * d;
    long total = (long)ctx->B * T * d;
    SF_PARALLEL_FOR_IF(total >= POS_PAR_MIN,
        for (int b = 0; b < ctx->B; b++) {
            float *xb = x + (size_t)b * T * d;
            for (int i = 0; i < T * d; i++) xb[i] += pos[i];
        }
    );
}

void sf_positions_backward(sf_positions *p, const sf_ctx *ctx, const float *dx) {
    if (p->kind != SF_POS_LEARNED || sf_arena_planning(ctx->arena)) return;
    int T = ctx->T, d = p->d;
    float *dw = p->dw + (size_t)ctx->pos_offset * d;
    for (int b = 0; b < ctx->B; b++) {
        const float *gb = dx + (size_t)b * T * d;
        for (int i = 0; i < T * d; i++) dw[i] += gb[i];
    }
}
