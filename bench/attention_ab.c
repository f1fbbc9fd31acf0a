/* In-process A/B of the softmax attention kernels (kernels/attention.c and the headers it
 * includes): this tree's, linked from the library, against another commit's, compiled beside it
 * with its exported names given an old_ prefix (bench/attention_ab.sh builds it). The two run
 * alternately, call by call (forward, then backward), on the same inputs, so both see the same
 * phases of a shared machine's speed, which drifts by tens of percent within seconds. Per shape:
 * the median time of each side's forward and backward, the median and quartiles of the per-call
 * ratios new/old, GFLOP/s (4 B H T^2 Dh for the forward, halved when causal; twice that for the
 * backward, as bench_mfu counts), and the largest difference between the two sides' outputs and
 * gradients (0: the same bits).
 *   attention_ab REPS B T H Dh CAUSAL [B T H Dh CAUSAL ...] */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>

#include "bench_clock.h"
#include "kernels/attention.h"

typedef void (*fwd_fn)(float *, int, float *, const float *, const float *, const float *, int,
                       int, int, int, int, float, int, const int *);
typedef void (*bwd_fn)(float *, float *, float *, const float *, int, const float *,
                       const float *, const float *, const float *, const float *, int, int, int,
                       int, int, float, int, const int *);
void old_attention_forward(float *, int, float *, const float *, const float *, const float *,
                           int, int, int, int, int, float, int, const int *);
void old_attention_backward(float *, float *, float *, const float *, int, const float *,
                            const float *, const float *, const float *, const float *, int, int,
                            int, int, int, float, int, const int *);

static double max_diff(const float *a, const float *b, long n) {
    double m = 0;
    for (long i = 0; i < n; i++) {
        const double d = fabs((double)a[i] - b[i]);
        if (d > m || d != d) m = d;
    }
    return m;
}

#define MAX_REPS 201

static void run_shape(int reps, int B, int T, int H, int Dh, int causal) {
    const int D = H * Dh, ld = 3 * D;
    const long n = (long)B * T;
    float *qkv = malloc(sizeof(float) * (size_t)(n * ld)), *dout = malloc(sizeof(float) * (size_t)(n * D));
    float *o[2], *lse[2], *g[2];
    unsigned s = 12345u;
    for (long i = 0; i < n * ld; i++) qkv[i] = (float)((s = s * 1664525u + 1013904223u) >> 8) / 16777216.0f - 0.5f;
    for (long i = 0; i < n * D; i++) dout[i] = (float)((s = s * 1664525u + 1013904223u) >> 8) / 16777216.0f - 0.5f;
    for (int k = 0; k < 2; k++) {
        o[k] = malloc(sizeof(float) * (size_t)(n * D));
        lse[k] = malloc(sizeof(float) * (size_t)B * H * T);
        g[k] = malloc(sizeof(float) * (size_t)(n * ld));
    }
    const fwd_fn F[2] = {old_attention_forward, sf_attention_forward};
    const bwd_fn Bw[2] = {old_attention_backward, sf_attention_backward};
    const float scale = 1.0f / sqrtf((float)Dh);
    static double tf[2][MAX_REPS], tb[2][MAX_REPS], rf[MAX_REPS], rb[MAX_REPS];
    for (int r = 0; r < reps; r++)
        for (int turn = 0; turn < 2; turn++) {
            const int k = (r + turn) & 1; /* who goes first alternates */
            double t = wall_seconds();
            F[k](o[k], D, lse[k], qkv, qkv + D, qkv + 2 * D, ld, B, T, H, Dh, scale, causal, NULL);
            tf[k][r] = wall_seconds() - t;
            t = wall_seconds();
            Bw[k](g[k], g[k] + D, g[k] + 2 * D, dout, D, o[k], lse[k], qkv, qkv + D, qkv + 2 * D,
                  ld, B, T, H, Dh, scale, causal, NULL);
            tb[k][r] = wall_seconds() - t;
        }
    for (int r = 0; r < reps; r++) rf[r] = tf[1][r] / tf[0][r], rb[r] = tb[1][r] / tb[0][r];
    qsort(rf, (size_t)reps, sizeof(double), cmp_double);
    qsort(rb, (size_t)reps, sizeof(double), cmp_double);
    for (int k = 0; k < 2; k++) {
        qsort(tf[k], (size_t)reps, sizeof(double), cmp_double);
        qsort(tb[k], (size_t)reps, sizeof(double), cmp_double);
    }
    const double fl = 4.0 * B * H * (double)T * T * Dh * (causal ? 0.5 : 1.0);
    const int m = reps / 2, q1 = reps / 4, q3 = 3 * reps / 4;
    printf("B %d T %d H %d Dh %d causal %d (%d calls each)\n", B, T, H, Dh, causal, reps);
    printf("  forward  old %8.3f ms (%5.1f GFLOP/s)  new %8.3f ms (%5.1f GFLOP/s)  new/old median %.3f [quartiles %.3f %.3f]\n",
           tf[0][m] * 1e3, fl / tf[0][m] / 1e9, tf[1][m] * 1e3, fl / tf[1][m] / 1e9, rf[m], rf[q1], rf[q3]);
    printf("  backward old %8.3f ms (%5.1f GFLOP/s)  new %8.3f ms (%5.1f GFLOP/s)  new/old median %.3f [quartiles %.3f %.3f]\n",
           tb[0][m] * 1e3, 2 * fl / tb[0][m] / 1e9, tb[1][m] * 1e3, 2 * fl / tb[1][m] / 1e9, rb[m], rb[q1], rb[q3]);
    printf("  largest |new - old|: output %.3g, log-sum-exp %.3g, gradients %.3g\n",
           max_diff(o[0], o[1], n * D), max_diff(lse[0], lse[1], (long)B * H * T), max_diff(g[0], g[1], n * ld));
    for (int k = 0; k < 2; k++) free(o[k]), free(lse[k]), free(g[k]);
    free(qkv), free(dout);
}

int main(int argc, char **argv) {
    if (argc < 7 || (argc - 2) % 5) {
        fprintf(stderr, "usage: attention_ab REPS B T H Dh CAUSAL [B T H Dh CAUSAL ...]\n");
        return 2;
    }
    const int reps = atoi(argv[1]);
    if (reps < 1 || reps > MAX_REPS) {
        fprintf(stderr, "attention_ab: REPS must be 1..%d\n", MAX_REPS);
        return 2;
    }
    printf("threads %d\n", omp_get_max_threads());
    for (int i = 2; i + 5 <= argc; i += 5) {
        const int B = atoi(argv[i]), T = atoi(argv[i + 1]), H = atoi(argv[i + 2]);
        const int Dh = atoi(argv[i + 3]), causal = atoi(argv[i + 4]);
        if (B < 1 || T < 1 || H < 1 || Dh < 1 || Dh > SF_ATTENTION_MAX_DH || (causal != 0 && causal != 1)) {
            fprintf(stderr, "attention_ab: bad shape B %d T %d H %d Dh %d causal %d\n", B, T, H, Dh, causal);
            return 2;
        }
        run_shape(reps, B, T, H, Dh, causal);
    }
    return 0;
}
