#include "layers/linear.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "kernels/gemm.h"

#include <omp.h>

void sf_linear_declare(sf_linear *l, sf_params *ps, const char *name, int in, int out, int bias) {
    char buf[SF_PARAM_NAME_MAX];
    l->in = in;
    l->out = out;
    l->has_bias = bias;
    snprintf(buf, sizeof buf, "%s.weight", name);
    sf_params_declare(ps, buf, 2, (int64_t[]){out, in}, &l->w, &l->dw, 0);
    if (bias) {
        snprintf(buf, sizeof buf, "%s.bias", name);
        sf_params_declare(ps, buf, 1, (int64_t[]){out}, &l->b, &l->db, 1);
    }
}

void sf_linear_init(sf_linear *l, sf_rng *rng) {
    float bound = 1.0f / sqrtf((float)l->in);
    sf_rng_fill_uniform(rng, l->w, (long)l->in * l->out, -bound, bound);
    if (l->has_bias) sf_rng_fill_uniform(rng, l->b, l->out, -bound, bound);
}

void sf_linear_forward(const sf_linear *l, float *y, const float *x, long N) {
    if (l->has_bias) /* the bias added as each tile of y is stored (no separate pass over y) */
        sf_gemm_bias(0, 1, (int)N, l->out, l->in, 1.0f, x, l->in, l->w, l->in, l->b, y, l->out);
    else
        sf_gemm(0, 1, (int)N, l->out, l->in, 1.0f, x, l->in, l->w, l->in, 0.0f, y, l->out);
}

/* db[out] += column sums of dy[N, out]: partial sums over P row ranges, combined in range order.
 * P depends on N only (not on the thread count), so the result is the same at any thread count
 * (issue #11). */
static void bias_grad(float *db, const float *dy, long N, int out) {
    if (out > 1024 || N < 4096) {
        sf_add_col_sums(db, dy, N, out);
        return;
    }
    float part[64][1024];
    const int P = N / 2048 < 64 ? (int)(N / 2048) : 64; /* >= 2 here */
#pragma omp parallel for schedule(static)
    for (int t = 0; t < P; t++) {
        float *acc = part[t];
        for (int o = 0; o < out; o++) acc[o] = 0;
        sf_add_col_sums(acc, dy + N * t / P * out, N * (t + 1) / P - N * t / P, out);
    }
    for (int k = 0; k < P; k++)
        for (int o = 0; o < out; o++) db[o] += part[k][o];
}

void sf_linear_backward(sf_linear *l, float *dx, const float *dy, const float *x, long N) {
    /* dW[out,in] += dy^T[out,N] x[N,in] */
    sf_gemm(1, 0, l->out, l->in, (int)N, 1.0f, dy, l->out, x, l->in, 1.0f, l->dw, l->in);
    if (l->has_bias) bias_grad(l->db, dy, N, l->out);
    if (dx) sf_gemm(0, 0, (int)N, l->in, l->out, 1.0f, dy, l->out, l->w, l->in, 0.0f, dx, l->in);
}

void sf_linear_forward_ref(const sf_linear *l, float *y, const float *x, long N) {
    for (long i = 0; i < N; i++)
        for (int o = 0; o < l->out; o++) {
            double s = l->has_bias ? l->b[o] : 0.0;
            for (int k = 0; k < l->in; k++) s += (double)x[i * l->in + k] * l->w[o * l->in + k];
            y[i * l->out + o] = (float)s;
        }
}

void sf_linear_backward_ref(sf_linear *l, float *dx, const float *dy, const float *x, long N) {
    for (int o = 0; o < l->out; o++) {
        for (int k = 0; k < l->in; k++) {
            double s = 0;
            for (long i = 0; i < N; i++) s += (double)dy[i * l->out + o] * x[i * l->in + k];
            l->dw[o * l->in + k] += (float)s;
        }
        if (l->has_bias) {
            double s = 0;
            for (long i = 0; i < N; i++) s += dy[i * l->out + o];
            l->db[o] += (float)s;
        }
    }
    if (dx)
        for (long i = 0; i < N; i++)
            for (int k = 0; k < l->in; k++) {
                double s = 0;
                for (int o = 0; o < l->out; o++) s += (double)dy[i * l->out + o] * l->w[o * l->in + k];
                dx[i * l->in + k] = (float)s;
            }
}
