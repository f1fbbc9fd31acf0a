#include "kernels/softmax.h"

/* clang reports "loop not vectorized" for some `omp simd` loops (float max reductions) as a
 * warning, which -Werror would turn into a build failure; the loops are still correct. */
#if defined(__clang__)
#pragma clang diagnostic ignored "-Wpass-failed"
#endif

#include <math.h>

#include "core/error.h"
#include "core/parallel.h"

/* Rows are spread over threads only when there is enough work to pay for the fork. */
#define SF_SOFTMAX_PAR_MIN 32768L

/* y may equal x: every loop reads x[j] before writing y[j] (omp simd: no cross-lane hazard). */
static void softmax_row(float *y, const float *x, int D) {
    float m = -INFINITY;
#pragma omp simd reduction(max : m)
    for (int j = 0; j < D; j++) m = x[j] > m ? x[j] : m;
    float s = 0.0f;
#pragma omp simd reduction(+ : s)
    for (int j = 0; j < D; j++) {
        float e = sf_expf_fast(x[j] - m);
        y[j] = e;
        s += e;
    }
    float inv = 1.0f / s;
#pragma omp simd
    for (int j = 0; j < D; j++) y[j] *= inv;
}

void sf_softmax_forward(float *y, const float *x, int N, int D) {
    SF_ASSERT(N >= 0 && D >= 1);
    SF_PARALLEL_FOR_IF((long)N * D >= SF_SOFTMAX_PAR_MIN,
        for (int i = 0; i < N; i++) softmax_row(y + (long)i * D, x + (long)i * D, D);
    );
}

void sf_softmax_backward(float *dx, const float *dy, const float *y, int N, int D) {
    SF_ASSERT(N >= 0 && D >= 1);
#pragma omp parallel for schedule(static) if ((long)N * D >= SF_SOFTMAX_PAR_MIN)
    for (int i = 0; i < N; i++) {
        const float *g = dy + (long)i * D, *yr = y + (long)i * D;
        float *o = dx + (long)i * D;
        float s = 0.0f;
#pragma omp simd reduction(+ : s)
        for (int j = 0; j < D; j++) s += g[j] * yr[j];
        for (int j = 0; j < D; j++) o[j] = yr[j] * (g[j] - s);
    }
}

void sf_softmax_forward_ref(float *y, const float *x, int N, int D) {
    for (int i = 0; i < N; i++) {
        const float *r = x + (long)i * D;
        double m = -INFINITY, s = 0.0;
        for (int j = 0; j < D; j++)
            if (r[j] > m) m = r[j];
        for (int j = 0; j < D; j++) s += exp((double)r[j] - m);
        /* a second pass so that y == x works here too */
        for (int j = 0; j < D; j++) y[(long)i * D + j] = (float)(exp((double)r[j] - m) / s);
    }
}

void sf_softmax_backward_ref(float *dx, const float *dy, const float *y, int N, int D) {
    for (int i = 0; i < N; i++) {
        double s = 0.0;
        for (int j = 0; j < D; j++) s += (double)dy[(long)i * D + j] * y[(long)i * D + j];
        for (int j = 0; j < D; j++) {
            long k = (long)i * D + j;
            dx[k] = (float)((double)y[k] * ((double)dy[k] - s));
        }
    }
}
