#include "layers/norm.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/error.h"
#include "kernels/batchnorm.h"
#include "kernels/norms.h"
#include "core/profile.h"

static const sf_option eps_only[] = {
    {"eps", SF_OPT_FLOAT, 1e-5, NULL, 0, 1, NULL, "added to the variance inside the sqrt"},
};
static const sf_option batchnorm_options[] = {
    {"eps", SF_OPT_FLOAT, 1e-5, NULL, 0, 1, NULL, "added to the variance inside the sqrt"},
    {"momentum", SF_OPT_FLOAT, 0.1, NULL, 0, 1, NULL, "running-statistics update rate"},
};

const sf_part_info sf_norm_registry[3] = {
    [SF_NORM_LAYERNORM] = {"layernorm", "per-token mean/variance (nn.LayerNorm)", SF_OPTS(eps_only)},
    [SF_NORM_RMSNORM] = {"rmsnorm", "per-token root-mean-square, weight only", SF_OPTS(eps_only)},
    [SF_NORM_BATCHNORM] = {"batchnorm",
                           "per-feature statistics over every token of the batch (PatchTST)",
                           SF_OPTS(batchnorm_options)},
};

sf_norm_spec sf_norm_spec_from_json(const cJSON *o) {
    sf_norm_spec sp = {0};
    sf_norm_kind_parse(sf_opt_str(o, "kind"), &sp.kind);
    sp.eps = sf_opt_float(o, "eps");
    sp.momentum = sp.kind == SF_NORM_BATCHNORM ? sf_opt_float(o, "momentum") : 0.1f;
    return sp;
}

int sf_norm_kind_parse(const char *s, sf_norm_kind *out) {
    if (strcmp(s, "layernorm") == 0) *out = SF_NORM_LAYERNORM;
    else if (strcmp(s, "rmsnorm") == 0) *out = SF_NORM_RMSNORM;
    else if (strcmp(s, "batchnorm") == 0) *out = SF_NORM_BATCHNORM;
    else return sf_errorf("unknown norm '%s' (expected layernorm, rmsnorm or batchnorm)", s);
    return SF_OK;
}

const char *sf_norm_kind_name(sf_norm_kind k) {
    return k == SF_NORM_LAYERNORM ? "layernorm" : k == SF_NORM_RMSNORM ? "rmsnorm" : "batchnorm";
}

typedef struct {
    const float *x;
    float *mean, *rstd;  /* per row (LayerNorm, RMSNorm) or per feature (BatchNorm) */
    int batch_stats;     /* BatchNorm: this forward used batch statistics */
    uint8_t *row_valid;  /* BatchNorm with padding: 1 for real tokens (NULL: all rows) */
} norm_saved;

void sf_norm_declare(sf_norm *n, sf_params *ps, const char *name, const sf_norm_spec *spec, int d) {
    char buf[SF_PARAM_NAME_MAX];
    sf_norm_kind kind = spec->kind;
    memset(n, 0, sizeof *n);
    n->spec = *spec;
    n->d = d;
    n->slot = sf_params_reserve_saved(ps, sizeof(norm_saved));
    snprintf(buf, sizeof buf, "%s.weight", name);
    sf_params_declare(ps, buf, 1, (int64_t[]){d}, &n->w, &n->dw, 1);
    if (kind != SF_NORM_RMSNORM) {
        snprintf(buf, sizeof buf, "%s.bias", name);
        sf_params_declare(ps, buf, 1, (int64_t[]){d}, &n->b, &n->db, 1);
    }
    if (kind == SF_NORM_BATCHNORM) {
        snprintf(buf, sizeof buf, "%s.running_mean", name);
        sf_params_declare_buffer(ps, buf, 1, (int64_t[]){d}, &n->running_mean);
        snprintf(buf, sizeof buf, "%s.running_var", name);
        sf_params_declare_buffer(ps, buf, 1, (int64_t[]){d}, &n->running_var);
        snprintf(buf, sizeof buf, "%s.num_batches_tracked", name);
        sf_params_declare_buffer(ps, buf, 0, NULL, &n->num_batches);
    }
}

void sf_norm_init(sf_norm *n) {
    for (int i = 0; i < n->d; i++) n->w[i] = 1.0f;
    if (n->b) memset(n->b, 0, (size_t)n->d * sizeof(float));
    if (n->spec.kind == SF_NORM_BATCHNORM) {
        for (int i = 0; i < n->d; i++) {
            n->running_mean[i] = 0.0f;
            n->running_var[i] = 1.0f;
        }
        *n->num_batches = 0.0f;
    }
}

/* BatchNorm forward: batch statistics (and a running-estimate update) when training, the running
 * estimates otherwise. The statistics used are kept in the record for backward either way. */
static void batchnorm_forward(sf_norm *n, sf_ctx *ctx, norm_saved *sv, const float *x, float *y,
                              long N) {
    int d = n->d;
    float eps = n->spec.eps;
    sv->batch_stats = ctx->training;
    if (ctx->training) {
        float var[SF_BATCHNORM_MAX_D];
        sf_batchnorm_forward_train_masked(y, sv->mean, sv->rstd, var, x, n->w, n->b, (int)N, d, eps,
                                          sv->row_valid);
        const float mom = n->spec.momentum;
        for (int i = 0; i < d; i++) {
            n->running_mean[i] = (1 - mom) * n->running_mean[i] + mom * sv->mean[i];
            n->running_var[i] = (1 - mom) * n->running_var[i] + mom * var[i];
        }
        *n->num_batches += 1.0f;
    } else {
        for (int i = 0; i < d; i++) {
            sv->mean[i] = n->running_mean[i];
            sv->rstd[i] = 1.0f / sqrtf(n->running_var[i] + eps);
        }
        sf_batchnorm_forward_fixed_masked(y, x, sv->mean, sv->rstd, n->w, n->b, (int)N, d,
                                          sv->row_valid);
    }
}

void sf_norm_forward(sf_norm *n, sf_ctx *ctx, const float *x, float *y, long N) {
    norm_saved *sv = SF_SAVED(ctx, n->slot, norm_saved);
    sf_norm_kind kind = n->spec.kind;
    sv->x = x;
    if (kind == SF_NORM_BATCHNORM) {
        sv->mean = sf_arena_push(ctx->arena, (size_t)n->d);
        sv->rstd = sf_arena_push(ctx->arena, (size_t)n->d);
        /* padded tokens take no part in the statistics */
        sv->row_valid = NULL;
        if (ctx->lens) {
            SF_ASSERT(N == (long)ctx->B * ctx->T);
            sv->row_valid = sf_arena_push_bytes(ctx->arena, (size_t)N);
            for (long r = 0; sv->row_valid && r < N; r++)
                sv->row_valid[r] = (uint8_t)(r % ctx->T < ctx->lens[r / ctx->T]);
        }
        if (!sf_arena_planning(ctx->arena))
            SF_PROF(SF_PROF_NORMS, batchnorm_forward(n, ctx, sv, x, y, N));
        return;
    }
    sv->rstd = sf_arena_push(ctx->arena, (size_t)N);
    sv->mean = kind == SF_NORM_LAYERNORM ? sf_arena_push(ctx->arena, (size_t)N) : NULL;
    if (sf_arena_planning(ctx->arena)) return;
    SF_PROF(SF_PROF_NORMS, if (kind == SF_NORM_LAYERNORM)
        sf_layernorm_forward(y, sv->mean, sv->rstd, x, n->w, n->b, (int)N, n->d, n->spec.eps);
    else
        sf_rmsnorm_forward(y, sv->rstd, x, n->w, (int)N, n->d, n->spec.eps));
}

void sf_norm_backward(sf_norm *n, sf_ctx *ctx, const float *dy, float *dx, long N) {
    if (sf_arena_planning(ctx->arena)) return;
    const norm_saved *sv = SF_SAVED(ctx, n->slot, norm_saved);
    SF_PROF(SF_PROF_NORMS, if (n->spec.kind == SF_NORM_BATCHNORM)
        sf_batchnorm_backward_masked(dx, n->dw, n->db, dy, sv->x, n->w, sv->mean, sv->rstd,
                                     (int)N, n->d, sv->batch_stats, sv->row_valid);
    else if (n->spec.kind == SF_NORM_LAYERNORM)
        sf_layernorm_backward(dx, n->dw, n->db, dy, sv->x, n->w, sv->mean, sv->rstd, (int)N, n->d);
    else
        sf_rmsnorm_backward(dx, n->dw, dy, sv->x, n->w, sv->rstd, (int)N, n->d));
}

void sf_norm_step(const sf_norm *n, const float *x, float *y) {
    float mean, rstd;
    if (n->spec.kind == SF_NORM_BATCHNORM)
        for (int i = 0; i < n->d; i++)
            y[i] = (x[i] - n->running_mean[i]) / sqrtf(n->running_var[i] + n->spec.eps) * n->w[i] +
                   n->b[i];
    else if (n->spec.kind == SF_NORM_LAYERNORM)
        sf_layernorm_forward(y, &mean, &rstd, x, n->w, n->b, 1, n->d, n->spec.eps);
    else
        sf_rmsnorm_forward(y, &rstd, x, n->w, 1, n->d, n->spec.eps);
}
