#include "layers/norm.h"

#include <stdio.h>
#include <string.h>

#include "core/error.h"
#include "kernels/norms.h"

int sf_norm_kind_parse(const char *s, sf_norm_kind *out) {
    if (strcmp(s, "layernorm") == 0) *out = SF_NORM_LAYERNORM;
    else if (strcmp(s, "rmsnorm") == 0) *out = SF_NORM_RMSNORM;
    else return sf_errorf("unknown norm '%s' (expected layernorm or rmsnorm)", s);
    return SF_OK;
}

const char *sf_norm_kind_name(sf_norm_kind k) {
    return k == SF_NORM_LAYERNORM ? "layernorm" : "rmsnorm";
}

void sf_norm_declare(sf_norm *n, sf_params *ps, const char *name, sf_norm_kind kind, int d) {
    char buf[SF_PARAM_NAME_MAX];
    memset(n, 0, sizeof *n);
    n->kind = kind;
    n->d = d;
    n->eps = 1e-5f;
    snprintf(buf, sizeof buf, "%s.weight", name);
    sf_params_declare(ps, buf, 1, (int64_t[]){d}, &n->w, &n->dw, 1);
    if (kind == SF_NORM_LAYERNORM) {
        snprintf(buf, sizeof buf, "%s.bias", name);
        sf_params_declare(ps, buf, 1, (int64_t[]){d}, &n->b, &n->db, 1);
    }
}

void sf_norm_init(sf_norm *n) {
    for (int i = 0; i < n->d; i++) n->w[i] = 1.0f;
    if (n->b) memset(n->b, 0, (size_t)n->d * sizeof(float));
}

void sf_norm_forward(sf_norm *n, sf_ctx *ctx, const float *x, float *y, long N) {
    n->x = x;
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
    if (n->kind == SF_NORM_LAYERNORM)
        sf_layernorm_backward(dx, n->dw, n->db, dy, n->x, n->w, n->mean, n->rstd, (int)N, n->d);
    else
        sf_rmsnorm_backward(dx, n->dw, dy, n->x, n->w, n->rstd, (int)N, n->d);
}

void sf_norm_step(const sf_norm *n, const float *x, float *y) {
    float mean, rstd;
    if (n->kind == SF_NORM_LAYERNORM)
        sf_layernorm_forward(y, &mean, &rstd, x, n->w, n->b, 1, n->d, n->eps);
    else
        sf_rmsnorm_forward(y, &rstd, x, n->w, 1, n->d, n->eps);
}
