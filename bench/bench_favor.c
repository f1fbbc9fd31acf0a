/* FAVOR+ feature maps (kernels/feature_maps.h): the fast path (vectorised over the features,
 * sf_expf_fast, one projection per row) against the plain reference (scalar, libm expf), forward
 * + backward of a query call and a key call, one thread, in the same run. Shapes: PatchTST on
 * ETTh1 (42 patches, head width 4) at 8 and 64 features, and a d_model-512 head (width 64, 256
 * features, 512 rows). Not a test: prints a table of microseconds per (query + key) pair and the
 * ratio.   bench_favor [seconds per cell, default 0.5] */
#include <stdio.h>
#include <stdlib.h>

#include "core/error.h"
#include "core/rng.h"
#include "kernels/feature_maps.h"
#include "bench_clock.h"

typedef void (*fwd_fn)(float *, int, const float *, int, int, int, const float *, int,
                       sf_favor_role, int);
typedef void (*bwd_fn)(float *, int, const float *, int, const float *, int, int, int,
                       const float *, int, sf_favor_role, int);

/* Microseconds per query+key forward+backward, repeated for about `secs`. */
static double time_pair(fwd_fn f, bwd_fn b, float *phi, float *dx, const float *x, const float *g,
                        int n, int D, const float *W, int M, double secs) {
    long reps = 0;
    const double t0 = wall_seconds();
    double t = t0;
    do {
        for (int k = 0; k < 8; k++, reps++)
            for (int role = SF_FAVOR_QUERY; role <= SF_FAVOR_KEY; role++) {
                f(phi, M, x, D, n, D, W, M, (sf_favor_role)role, 0);
                b(dx, D, g, M, x, D, n, D, W, M, (sf_favor_role)role, 0);
            }
        t = wall_seconds();
    } while (t - t0 < secs);
    return 1e6 * (t - t0) / (double)reps;
}

int main(int argc, char **argv) {
    const double secs = argc > 1 ? atof(argv[1]) : 0.5;
    const struct {
        const char *what;
        int n, D, M;
    } shapes[] = {
        {"PatchTST ETTh1 head, 8 features", 42, 4, 8},
        {"PatchTST ETTh1 head, 64 features", 42, 4, 64},
        {"head width 16, 64 features", 96, 16, 64},
        {"d_model 512 head: width 64, 256 features", 512, 64, 256},
    };
    sf_rng rng;
    sf_rng_seed(&rng, 1);
    printf("FAVOR+ features, query + key call, forward + backward, 1 thread (%.1f s per cell)\n\n", secs);
    printf("| shape | rows | width | features | reference (us) | fast (us) | speed-up |\n|---|---|---|---|---|---|---|\n");
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        const int n = shapes[i].n, D = shapes[i].D, M = shapes[i].M;
        float *W = sf_malloc(sizeof(float) * (size_t)M * D), *x = sf_malloc(sizeof(float) * (size_t)n * D);
        float *g = sf_malloc(sizeof(float) * (size_t)n * M), *phi = sf_malloc(sizeof(float) * (size_t)n * M);
        float *dx = sf_malloc(sizeof(float) * (size_t)n * D);
        sf_favor_draw_projection(W, M, D, &rng);
        sf_rng_fill_normal(&rng, x, (long)n * D, 0.0f, 0.7f);
        sf_rng_fill_normal(&rng, g, (long)n * M, 0.0f, 1.0f);
        const double tr = time_pair(sf_favor_features_forward_ref, sf_favor_features_backward_ref, phi,
                                    dx, x, g, n, D, W, M, secs);
        const double tf = time_pair(sf_favor_features_forward, sf_favor_features_backward, phi, dx,
                                    x, g, n, D, W, M, secs);
        printf("| %s | %d | %d | %d | %.1f | %.1f | %.1fx |\n", shapes[i].what, n, D, M, tr, tf, tr / tf);
        free(W), free(x), free(g), free(phi), free(dx);
    }
    return 0;
}
