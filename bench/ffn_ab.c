/* The feed-forward network's training pass (forward + backward) at PatchTST's ETTh1 shapes
 * (37,632 rows = batch 128 x 7 channels x 42 patches, d 16, d_ff 128, GELU, dropout 0.3), in one
 * process: layer by layer (fc1, fused GELU + dropout saving the mask and gelu', fc2; the
 * unfused mlp) against the fused kernel (kernels/ffn.c) at several block sizes, the variants
 * alternated call by call in a rotating order so that the machine's drift hits all alike.
 * Prints the median ms of each and its ratio to the layer-by-layer median, and checks that the
 * outputs and gradients agree (relative 1e-5 of the largest value).
 * usage: ffn_ab [ROUNDS (20)] [N (37632)] [d (16)] [d_ff (128)]   threads: OMP_NUM_THREADS */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_clock.h"
#include "core/rng.h"
#include "kernels/activations.h"
#include "kernels/ffn.h"
#include "layers/linear.h"

#define NV 5

typedef struct {
    long N;
    int d, F;
    float p;
    sf_linear fc1, fc2;
    float *x, *dy, *y, *dx, *pre, *act, *dact;
    uint8_t *mask;
} problem;

/* the unfused mlp's training pass (layers/mlp.c before the fused kernel) */
static void layers_pass(problem *P, uint64_t seed) {
    const long n = P->N * P->F;
    sf_rng r;
    sf_rng_seed(&r, seed); /* sf_gelu_dropout_forward draws its seed from it */
    sf_linear_forward(&P->fc1, P->pre, P->x, P->N);
    sf_gelu_dropout_forward(P->act, P->mask, P->pre, P->pre, n, P->p, &r);
    sf_linear_forward(&P->fc2, P->y, P->act, P->N);
    sf_linear_backward(&P->fc2, P->dact, P->dy, P->act, P->N);
    sf_gelu_dropout_backward(P->dact, P->dact, P->mask, P->pre, n, P->p);
    sf_linear_backward(&P->fc1, P->dx, P->dact, P->x, P->N);
}

static void fused_pass(problem *P, uint64_t seed, int rows) {
    sf_rng r;
    sf_rng_seed(&r, seed);
    const sf_ffn f = {P->d,  P->F, P->fc1.w, P->fc1.b,          P->fc2.w,
                      P->fc2.b, 0,  P->p,     sf_rng_u64(&r), rows};
    sf_ffn_forward(&f, P->y, P->x, P->N);
    sf_ffn_backward(&f, P->dx, P->fc1.dw, P->fc1.db, P->fc2.dw, P->fc2.db, P->dy, P->x, P->N);
}

static void zero_grads(problem *P) {
    memset(P->fc1.dw, 0, sizeof(float) * (size_t)P->d * P->F);
    memset(P->fc2.dw, 0, sizeof(float) * (size_t)P->d * P->F);
    memset(P->fc1.db, 0, sizeof(float) * (size_t)P->F);
    memset(P->fc2.db, 0, sizeof(float) * (size_t)P->d);
}

/* everything a pass produces, for the agreement check */
static float *snapshot(const problem *P) {
    const long nd = P->N * P->d, nw = (long)P->d * P->F;
    float *s = malloc(sizeof(float) * (size_t)(2 * nd + 2 * nw + P->F + P->d));
    float *q = s;
    memcpy(q, P->y, sizeof(float) * nd), q += nd;
    memcpy(q, P->dx, sizeof(float) * nd), q += nd;
    memcpy(q, P->fc1.dw, sizeof(float) * nw), q += nw;
    memcpy(q, P->fc2.dw, sizeof(float) * nw), q += nw;
    memcpy(q, P->fc1.db, sizeof(float) * P->F), q += P->F;
    memcpy(q, P->fc2.db, sizeof(float) * P->d);
    return s;
}

int main(int argc, char **argv) {
    const int rounds = argc > 1 ? atoi(argv[1]) : 20;
    problem P = {.N = argc > 2 ? atol(argv[2]) : 37632,
                 .d = argc > 3 ? atoi(argv[3]) : 16,
                 .F = argc > 4 ? atoi(argv[4]) : 128,
                 .p = 0.3f};
    if (rounds < 1 || P.N < 1 || P.d < 1 || P.F < 1) return 2;
    const long nd = P.N * P.d, nh = P.N * P.F;
    sf_rng r;
    sf_rng_seed(&r, 7);
    float *w = malloc(sizeof(float) * (size_t)(4 * P.d * P.F + 2 * P.F + 2 * P.d));
    P.fc1 = (sf_linear){P.d, P.F, 1, w, w + P.d * P.F, w + P.d * P.F + P.F, NULL};
    P.fc1.db = P.fc1.dw + P.d * P.F;
    P.fc2 = (sf_linear){P.F, P.d, 1, P.fc1.db + P.F, NULL, NULL, NULL};
    P.fc2.b = P.fc2.w + P.d * P.F, P.fc2.dw = P.fc2.b + P.d, P.fc2.db = P.fc2.dw + P.d * P.F;
    sf_linear_init(&P.fc1, &r);
    sf_linear_init(&P.fc2, &r);
    P.x = malloc(sizeof(float) * nd), P.dy = malloc(sizeof(float) * nd);
    P.y = malloc(sizeof(float) * nd), P.dx = malloc(sizeof(float) * nd);
    P.pre = malloc(sizeof(float) * nh), P.act = malloc(sizeof(float) * nh);
    P.dact = malloc(sizeof(float) * nh);
    P.mask = malloc((size_t)nh);
    sf_rng_fill_uniform(&r, P.x, nd, -2.0f, 2.0f);
    sf_rng_fill_uniform(&r, P.dy, nd, -1.0f, 1.0f);

    const char *names[NV] = {"layer by layer", "fused rows 64", "fused rows 128", "fused rows 256",
                             "fused rows 512"};
    const int rows[NV] = {0, 64, 128, 256, 512};
    /* agreement: every variant against the layer-by-layer pass */
    float *ref = NULL;
    double worst = 0;
    for (int v = 0; v < NV; v++) {
        zero_grads(&P);
        if (v == 0) layers_pass(&P, 11);
        else fused_pass(&P, 11, rows[v]);
        float *s = snapshot(&P);
        if (!ref) {
            ref = s;
            continue;
        }
        /* per part: |a - b| / max |ref| of that part */
        const long part[6] = {nd, nd, (long)P.d * P.F, (long)P.d * P.F, P.F, P.d};
        long o = 0;
        for (int k = 0; k < 6; k++) {
            double mx = 0, md = 0;
            for (long i = 0; i < part[k]; i++) {
                mx = fmax(mx, fabs(ref[o + i]));
                md = fmax(md, fabs((double)ref[o + i] - s[o + i]));
            }
            if (mx > 0 && md / mx > worst) worst = md / mx;
            o += part[k];
        }
        free(s);
    }
    printf("ffn_ab: N %ld, d %d, d_ff %d, GELU, dropout %.1f; %d rounds\n", P.N, P.d, P.F, P.p,
           rounds);
    printf("agreement with layer by layer: max |difference| / max |value| over y, dx, dW, db = "
           "%.2e -> %s\n",
           worst, worst <= 1e-5 ? "ok" : "DIFFERENT");
    double *t = malloc(sizeof(double) * (size_t)rounds * NV);
    for (int k = 0; k < rounds; k++)
        for (int j = 0; j < NV; j++) {
            const int v = (j + k) % NV; /* rotating order */
            zero_grads(&P);
            const double t0 = wall_seconds();
            if (v == 0) layers_pass(&P, 100 + k);
            else fused_pass(&P, 100 + k, rows[v]);
            t[v * rounds + k] = wall_seconds() - t0;
        }
    double med[NV];
    for (int v = 0; v < NV; v++) {
        qsort(t + v * rounds, (size_t)rounds, sizeof(double), cmp_double);
        med[v] = t[v * rounds + rounds / 2];
    }
    for (int v = 0; v < NV; v++)
        printf("%-16s median %8.3f ms  min %8.3f ms  ratio to layer by layer %.3f\n", names[v],
               1e3 * med[v], 1e3 * t[v * rounds], med[v] / med[0]);
    free(t), free(ref), free(w), free(P.x), free(P.dy), free(P.y), free(P.dx), free(P.pre);
    free(P.act), free(P.dact), free(P.mask);
    return worst <= 1e-5 ? 0 : 1;
}
