#include "layers/norm.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/error.h"
#include "kernels/batchnorm.h"
#include "kernels/norms.h"

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

void sf_norm_declare(sf_norm *n, sf_params *ps, const char *name, sf_norm_kind kind, int d) {
    char buf[SF_PARAM_NAME_MAX];
    memset(n, 0, sizeof *n);
    n->kind = kind;
    n->d = d;
    n->eps = 1e-5f;
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
    if (n->kind == SF_NORM_BATCHNORM) {
        for (int i = 0; i < n->d; i++) {
            n->running_mean[i] = 0.0f;
            n->running_var[i] = 1.0f;
        }
        *n->num_batches = 0.0f;
    }
}

/* BatchNorm forward: batch statistics (and a running-estimate update) when training, the running
 * estimates otherwise. The statistics used are kept in mean/rstd for backward either way. */
static void batchnorm_forward(sf_norm *n, sf_ctx *ctx, const float *x, float *y, long N) {
    int d = n->d;
    n->batch_stats = ctx->training;
    if (ctx->training) {
        float var[SF_BATCHNORM_MAX_D];
        sf_batchnorm_forward_train(y, n->mean, n->rstd, var, x, n->w, n->b, (int)N, d, n->eps);
        const float mom = 0.1f;
        for (int i = 0; i < d; i++) {
            n->running_mean[i] = (1 - mom) * n->running_mean[i] + mom * n->mean[i];
            n->running_var[i] = (1 - mom) * n->running_var[i] + mom * var[i];
        }
        *n->num_batches += 1.0f;
    } else {
        for (int i = 0; i < d; i++) {
            n->mean[i] = n->running_mean[i];
            n->rstd[i] = 1.0f / sqrtf(n->running_var[i] + n->eps);
        }
        sf_batchnorm_forward_fixed(y, x, n->mean, n->rstd, n->w, n->b, (int)N, d);
    }
}

void sf_norm_forward(sf_norm *n, sf_ctx *ctx, const float *x, float *y, long N) {
    n->x = x;
    if (n->kind == SF_NORM_BATCHNORM) {
        n->mean = sf_arena_push(ctx->arena, (size_t)n->d);
        n->rstd = sf_arena_push(ctx->arena, (size_t)n->d);
        if (!sf_arena_planning(ctx->arena)) batchnorm_forward(n, ctx, x, y, N);
        return;
    }
    n->rstd = sf_arena_push(ctx->arena, (size_t)N);
    n->mean = n->kind == SF_NORM_LAYERNORM ? sf_arena_push(ctx->arena, (size_t)N) : NULL;
    if (sf_arena_planning(ctx->arena)) return;
    if (n->kind == SF_NORM_LAYERNORM)
        sf_layernorm_forward(y, n->mean, n->rstd, x, n->w, n->b, (int)N, n->d, n->eps);
    else
        sf_rmsnorm_forward(y, n->rstd, x, n->w, (int)N, n->d, n->eps);
}

void sf_norm_backward(sf_norm *n, sf_ctx *ctx, const float *dy, float *dx, long N) {
    if (sf_arena_planning(ctx->arena)) return;
    if (n->kind == SF_NORM_BATCHNORM)
        sf_batchnorm_backward(dx, n->dw, n->db, dy, n->x, n->w, n->mean, n->rstd, (int)N, n->d,
                              n->batch_stats);
    else if (n->kind == SF_NORM_LAYERNORM)
        sf_layernorm_backward(dx, n->dw, n->db, dy, n->x, n->w, n->mean, n->rstd, (int)N, n->d);
    else
        sf_rmsnorm_backward(dx, n->dw, dy, n->x, n->w, n->rstd, (int)N, n->d);
}

void sf_norm_step(const sf_norm *n, const float *x, float *y) {
    float mean, rstd;
    if (n->kind == SF_NORM_BATCHNORM)
        for (int i = 0; i < n->d; i++)
            y[i] = (x[i] - n->running_mean[i]) / sqrtf(n->running_var[i] + n->eps) * n->w[i] +
                   n->b[i];
    else if (n->kind == SF_NORM_LAYERNORM)
        sf_layernorm_forward(y, &mean, &rstd, x, n->w, n->b, 1, n->d, n->eps);
    else
        sf_rmsnorm_forward(y, &rstd, x, n->w, 1, n->d, n->eps);
}
