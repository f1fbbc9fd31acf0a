#include "kernels/ffn.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/parallel.h"
#include "core/scratch.h"
#include "kernels/activations.h"
#include "kernels/gemm.h"
#include "kernels/gemm_rows.h"
#include "kernels/multiversion.h"

/* one block of the hidden layer: 128 KiB (three of them in the backward: within a 2 MiB L2).
 * bench/ffn_ab.c: at PatchTST's d_ff = 128, 256 rows ran faster than 64, 128 or 512. */
#define SF_FFN_BLOCK_FLOATS 32768L
#define SF_FFN_PAR_MIN 65536L      /* hidden elements below which one thread does it all */
#define SF_FFN_GROUP_ROWS 2048L    /* rows per weight-gradient partial sum (about) */
#define SF_FFN_GROUPS_MAX 64L

int sf_ffn_block_rows(int f) {
    long r = SF_FFN_BLOCK_FLOATS / (f > 0 ? f : 1);
    if (r > 512) r = 512;
    r = r / 8 * 8;
    return r < 8 ? 8 : (int)r;
}

static int block_rows(const sf_ffn *f) {
    return f->block_rows > 0 ? f->block_rows : sf_ffn_block_rows(f->f);
}

/* W1^T [d, f] in w1t and, when w2t is not NULL (the forward), W2^T [f, d] in w2t: the right-hand
 * sides of fc1 and fc2 as sf_gemm_rows reads them (row-major, in cache for the whole call) */
static void transpose_weights(const sf_ffn *f, float *w1t, float *w2t) {
    const int d = f->d, F = f->f;
    for (int j = 0; j < F; j++)
        for (int k = 0; k < d; k++) {
            w1t[(long)k * F + j] = f->w1[(long)j * d + k];
            if (w2t) w2t[(long)j * d + k] = f->w2[(long)k * F + j];
        }
}

/* rows r0 .. r0+rows-1: y = fc2(drop(act(fc1(x)))) with the hidden block in this thread's
 * scratch. The products run on the calling thread (sf_gemm_rows never opens a parallel region),
 * and each row's arithmetic does not depend on how many rows share the call. */
static void forward_block(const sf_ffn *f, const float *wt, float *y, const float *x, long r0,
                          int rows) {
    const int d = f->d, F = f->f;
    const size_t mark = sf_scratch_mark();
    float *h = sf_scratch_push((size_t)rows * F);
    sf_gemm_rows(0, rows, F, d, x, d, wt, F, f->b1, 0, h, F);
    sf_act_dropout_block(h, NULL, (long)rows * F, r0 * F, f->relu, f->p, f->seed);
    sf_gemm_rows(0, rows, d, F, h, F, wt + (long)d * F, d, f->b2, 0, y, d);
    sf_scratch_release(mark);
}

void sf_ffn_forward(const sf_ffn *f, float *y, const float *x, long N) {
    if (N <= 0) return;
    const int R = block_rows(f);
    const long nb = (N + R - 1) / R;
    const size_t mark = sf_scratch_mark();
    float *wt = sf_scratch_push((size_t)2 * f->d * f->f); /* W1^T, then W2^T */
    transpose_weights(f, wt, wt + (long)f->d * f->f);
    SF_PARALLEL_FOR_IF(N * f->f >= SF_FFN_PAR_MIN, for (long b = 0; b < nb; b++) {
        const long r0 = b * R;
        const int rows = N - r0 < R ? (int)(N - r0) : R;
        forward_block(f, wt, y + r0 * f->d, x + r0 * f->d, r0, rows);
    });
    sf_scratch_release(mark);
}

/* dh := dh * g elementwise, and acc[j] += the column sums of the product (db1) in the same pass */
SF_MULTIVERSION_512_EXACT static void mul_add_col_sums(float *restrict acc, float *restrict dh,
                                                       const float *restrict g, int rows,
                                                       int cols) {
    for (int i = 0; i < rows; i++)
        for (int j = 0; j < cols; j++) {
            const float v = dh[(long)i * cols + j] * g[(long)i * cols + j];
            dh[(long)i * cols + j] = v;
            acc[j] += v;
        }
}

/* One block's gradients; pw1, pb1, pw2, pb2: its group's partial sums (+=). */
static void backward_block(const sf_ffn *f, const float *wt, float *dx, float *pw1, float *pb1,
                           float *pw2, float *pb2, const float *dy, const float *x, long r0,
                           int rows) {
    const int d = f->d, F = f->f;
    const size_t mark = sf_scratch_mark();
    float *a = sf_scratch_push((size_t)rows * F);  /* h, then drop(act(h)) */
    float *g = sf_scratch_push((size_t)rows * F);  /* act'(h) * drop scale */
    float *dh = sf_scratch_push((size_t)rows * F); /* dL/da, then dL/dh */
    sf_gemm_rows(0, rows, F, d, x, d, wt, F, f->b1, 0, a, F); /* recompute h */
    sf_act_dropout_block(a, g, (long)rows * F, r0 * F, f->relu, f->p, f->seed);
    sf_gemm_rows(0, rows, F, d, dy, d, f->w2, F, NULL, 0, dh, F); /* dL/da = dy W2 */
    sf_gemm_rows(1, d, F, rows, dy, d, a, F, NULL, 1, pw2, F);    /* dW2 += dy^T a */
    sf_add_col_sums(pb2, dy, rows, d);
    mul_add_col_sums(pb1, dh, g, rows, F);                        /* dL/dh, db1 */
    sf_gemm_rows(1, F, d, rows, dh, F, x, d, NULL, 1, pw1, d);    /* dW1 += dh^T x */
    if (dx) sf_gemm_rows(0, rows, d, F, dh, F, f->w1, d, NULL, 0, dx, d); /* dx = dh W1 */
    sf_scratch_release(mark);
}

void sf_ffn_backward(const sf_ffn *f, float *dx, float *dw1, float *db1, float *dw2, float *db2,
                     const float *dy, const float *x, long N) {
    if (N <= 0) return;
    const int d = f->d, F = f->f, R = block_rows(f);
    /* groups of whole blocks (the last one takes the remainder), from N and f only */
    const long nb = (N + R - 1) / R;
    long G = N / SF_FFN_GROUP_ROWS;
    if (G > SF_FFN_GROUPS_MAX) G = SF_FFN_GROUPS_MAX;
    if (G > nb) G = nb;
    if (G < 1) G = 1;
    const long stride = 2L * d * F + F + d;
    const size_t mark = sf_scratch_mark();
    float *wt = sf_scratch_push((size_t)d * F); /* W1^T: the backward reads W2 as it is */
    transpose_weights(f, wt, NULL);
    float *part = sf_scratch_push((size_t)(G * stride));
    memset(part, 0, (size_t)(G * stride) * sizeof(float));
    SF_PARALLEL_FOR_IF(N * F >= SF_FFN_PAR_MIN && G > 1, for (long gi = 0; gi < G; gi++) {
        float *pw1 = part + gi * stride, *pw2 = pw1 + (long)F * d, *pb1 = pw2 + (long)d * F;
        float *pb2 = pb1 + F;
        const long lo = nb * gi / G * R, hi = gi == G - 1 ? N : nb * (gi + 1) / G * R;
        for (long r0 = lo; r0 < hi; r0 += R) {
            const int rows = hi - r0 < R ? (int)(hi - r0) : R;
            backward_block(f, wt, dx ? dx + r0 * d : NULL, pw1, pb1, pw2, pb2, dy + r0 * d,
                           x + r0 * d, r0, rows);
        }
    });
    for (long gi = 0; gi < G; gi++) { /* the groups in order */
        const float *pw1 = part + gi * stride, *pw2 = pw1 + (long)F * d, *pb1 = pw2 + (long)d * F;
        const float *pb2 = pb1 + F;
        for (long k = 0; k < (long)F * d; k++) dw1[k] += pw1[k], dw2[k] += pw2[k];
        for (int j = 0; j < F; j++) db1[j] += pb1[j];
        for (int o = 0; o < d; o++) db2[o] += pb2[o];
    }
    sf_scratch_release(mark);
}

/* ---- reference: the plain composition, double accumulators, libm GELU ---- */

static double act_ref(const sf_ffn *f, double h, double *dact) {
    if (f->relu) {
        *dact = h > 0 ? 1.0 : 0.0;
        return h > 0 ? h : 0.0;
    }
    const double cdf = 0.5 * erfc(-h / sqrt(2.0));
    *dact = cdf + h * exp(-0.5 * h * h) / sqrt(2.0 * M_PI);
    return h * cdf;
}

static double drop_scale_ref(const sf_ffn *f, long i) {
    if (f->p == 0.0f) return 1.0;
    return sf_dropout_keep(f->seed, i, f->p) ? 1.0 / (1.0 - (double)f->p) : 0.0;
}

/* row r's hidden layer: a[j] = drop(act(h_j)), g[j] = act'(h_j) * drop scale */
static void hidden_ref(const sf_ffn *f, const float *xr, long r, double *a, double *g) {
    for (int j = 0; j < f->f; j++) {
        double h = f->b1[j], dact;
        for (int k = 0; k < f->d; k++) h += (double)xr[k] * f->w1[(long)j * f->d + k];
        const double s = drop_scale_ref(f, r * f->f + j);
        a[j] = act_ref(f, h, &dact) * s;
        g[j] = dact * s;
    }
}

void sf_ffn_forward_ref(const sf_ffn *f, float *y, const float *x, long N) {
    double *a = sf_calloc((size_t)2 * f->f, sizeof *a), *g = a + f->f;
    for (long r = 0; r < N; r++) {
        hidden_ref(f, x + r * f->d, r, a, g);
        for (int o = 0; o < f->d; o++) {
            double s = f->b2[o];
            for (int j = 0; j < f->f; j++) s += a[j] * f->w2[(long)o * f->f + j];
            y[r * f->d + o] = (float)s;
        }
    }
    free(a);
}

void sf_ffn_backward_ref(const sf_ffn *f, float *dx, float *dw1, float *db1, float *dw2,
                         float *db2, const float *dy, const float *x, long N) {
    const int d = f->d, F = f->f;
    double *a = sf_calloc((size_t)3 * F, sizeof *a), *g = a + F, *dh = g + F;
    double *acc = sf_calloc((size_t)2 * d * F + F + d, sizeof *acc);
    double *aw1 = acc, *aw2 = aw1 + (long)F * d, *ab1 = aw2 + (long)d * F, *ab2 = ab1 + F;
    for (long r = 0; r < N; r++) {
        const float *xr = x + r * d, *dyr = dy + r * d;
        hidden_ref(f, xr, r, a, g);
        for (int j = 0; j < F; j++) {
            double s = 0;
            for (int o = 0; o < d; o++) s += (double)dyr[o] * f->w2[(long)o * F + j];
            dh[j] = s * g[j];
        }
        for (int o = 0; o < d; o++) {
            ab2[o] += dyr[o];
            for (int j = 0; j < F; j++) aw2[(long)o * F + j] += dyr[o] * a[j];
        }
        for (int j = 0; j < F; j++) {
            ab1[j] += dh[j];
            for (int k = 0; k < d; k++) aw1[(long)j * d + k] += dh[j] * xr[k];
        }
        if (dx)
            for (int k = 0; k < d; k++) {
                double s = 0;
                for (int j = 0; j < F; j++) s += dh[j] * f->w1[(long)j * d + k];
                dx[r * d + k] = (float)s;
            }
    }
    for (long k = 0; k < (long)F * d; k++) dw1[k] += (float)aw1[k], dw2[k] += (float)aw2[k];
    for (int j = 0; j < F; j++) db1[j] += (float)ab1[j];
    for (int o = 0; o < d; o++) db2[o] += (float)ab2[o];
    free(a);
    free(acc);
}
