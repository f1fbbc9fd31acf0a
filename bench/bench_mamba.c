/* Mamba block benchmark: forward and backward time and memory of one `residual` block (pre-norm
 * RMSNorm + the `mamba` mixer with the reference defaults: d_state 16, d_conv 4, expand 2) at
 * batch 1 over sequence lengths 1k .. 64k, to show both grow as O(L).
 *
 * Memory: `plan` is the block's arena (saved activations + backward workspace, exact, from the
 * trainer's planning pass) plus parameters and x/y/dy/dx; `rss` is the process's peak resident
 * set after the run (getrusage; lengths run in increasing order, so it is this length's peak).
 * The scan column is the selective-scan kernel alone (forward + backward) on the same shapes.
 *
 * Usage: bench_mamba [--d 512] [--threads 2] [--max-len 65536] [--min-len 1024] */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "blocks/block.h"
#include "core/error.h"
#include "kernels/selective_scan.h"
#include "models/config.h"
#include "bench_args.h"
#include "bench_clock.h"

static double rss_mib(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_maxrss / 1024.0;
}

/* the scan kernel alone at [1, L, Di] with N states: best forward + backward seconds */
static double time_scan(int L, int Di, int N) {
    size_t n = (size_t)L * Di, nb = (size_t)L * N;
    float *buf = sf_malloc((7 * n + 4 * nb) * sizeof(float));
    float *u = buf, *r = u + n, *z = r + n, *y = z + n, *dy = y + n, *du = dy + n, *dr = du + n;
    float *Bm = dr + n, *Cm = Bm + nb, *dB = Cm + nb, *dC = dB + nb;
    float *A = sf_malloc((size_t)Di * N * sizeof(float)), *dA = sf_malloc((size_t)Di * N * sizeof(float));
    float *D = sf_malloc((size_t)Di * sizeof(float)), *dD = sf_malloc((size_t)Di * sizeof(float));
    float *dz = sf_malloc(n * sizeof(float));
    float *st = sf_malloc(sf_selective_scan_states_floats(1, L, Di, N) * sizeof(float));
    float *scr = sf_malloc(sf_selective_scan_scratch_floats(1, L, Di, N) * sizeof(float));
    sf_rng g;
    sf_rng_seed(&g, 3);
    for (size_t i = 0; i < 7 * n + 4 * nb; i++) buf[i] = sf_rng_normal(&g);
    for (size_t i = 0; i < n; i++) r[i] = -4.0f + r[i];
    for (int c = 0; c < Di; c++) {
        D[c] = 1.0f;
        for (int k = 0; k < N; k++) A[(size_t)c * N + k] = -(float)(k + 1);
    }
    double best = INFINITY, spent = 0;
    for (int rep = 0; rep < 5 && (rep < 2 || spent < 1.0); rep++) {
        double t = wall_seconds();
        sf_selective_scan_forward(y, st, u, r, A, Bm, Cm, N, D, z, Di, 1, L, Di, N, NULL);
        sf_selective_scan_backward(du, dr, dA, dB, dC, dD, dz, dy, st, u, r, A, Bm, Cm, N, D, z, Di,
                                   1, L, Di, N, NULL, scr);
        t = wall_seconds() - t;
        spent += t;
        if (rep > 0 || t > 1.0) best = t < best ? t : best;
    }
    free(buf), free(A), free(dA), free(D), free(dD), free(dz), free(st), free(scr);
    return best;
}

int main(int argc, char **argv) {
    int d = 512, threads = 2, max_len = 65536, min_len = 1024;
    for (int i = 1; i < argc; i += 2) {
        if (bench_flag_lacks_value(argc, argv, i, "bench_mamba")) return 2;
        if (!strcmp(argv[i], "--d")) d = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--threads")) threads = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--max-len")) max_len = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--min-len")) min_len = atoi(argv[i + 1]);
        else {
            fprintf(stderr, "bench_mamba: unknown flag %s\n", argv[i]);
            return 2;
        }
    }
    omp_set_num_threads(threads);
    printf("mamba residual block (rmsnorm + mamba, d_state 16, d_conv 4, expand 2), batch 1, d_model %d, "
           "%d threads\n\n", d, threads);
    printf("| L | forward ms | backward ms | fwd+bwd ms | us / token | scan fwd+bwd ms | plan MiB | "
           "bytes / token | peak RSS MiB |\n|---|---|---|---|---|---|---|---|---|\n");
    fflush(stdout);
    for (int L = min_len; L <= max_len; L *= 4) {
        char json[256];
        snprintf(json, sizeof json,
                 "{\"kind\":\"residual\",\"norm\":{\"kind\":\"rmsnorm\"},\"mixer\":{\"kind\":\"mamba\"}}");
        cJSON *raw = cJSON_Parse(json), *nb = NULL;
        sf_block b;
        int rc = sf_config_normalize_block(raw, 0, &nb);
        if (rc == SF_OK) rc = sf_block_create(&b, nb, d, L, "bench");
        cJSON_Delete(raw);
        cJSON_Delete(nb);
        if (rc != SF_OK) {
            fprintf(stderr, "bench_mamba: %s\n", sf_error_message());
            return 1;
        }
        sf_params ps;
        sf_params_init(&ps);
        sf_block_declare(&b, &ps, "blocks.0");
        sf_params_alloc(&ps);
        sf_rng rng;
        sf_rng_seed(&rng, 1);
        sf_block_init(&b, &rng);
        unsigned char *saved = sf_calloc(ps.saved_bytes + 16, 1);
        sf_arena a;
        sf_arena_init_plan(&a);
        sf_ctx ctx = {.arena = &a, .rng = &rng, .training = 1, .keep = 1, .B = 1, .T = L, .saved = saved};
        sf_block_forward(&b, &ctx, NULL, NULL);
        sf_block_backward(&b, &ctx, NULL, NULL);
        size_t io = (size_t)4 * L * d;
        double plan = ((double)a.peak + (double)ps.total * 2 + (double)io) * 4.0;
        sf_arena_alloc(&a, a.peak);
        float *x = sf_malloc(io * sizeof(float)), *y = x + (size_t)L * d, *dy = y + (size_t)L * d,
              *dx = dy + (size_t)L * d;
        for (size_t i = 0; i < io; i++) x[i] = sf_rng_normal(&rng);
        double bf = INFINITY, bb = INFINITY, spent = 0;
        for (int r = 0; r < 10 && (r < 2 || spent < 2.0); r++) {
            sf_arena_reset_to(&a, 0);
            sf_params_zero_grad(&ps);
            double t0 = wall_seconds();
            sf_block_forward(&b, &ctx, x, y);
            double t1 = wall_seconds();
            sf_block_backward(&b, &ctx, dy, dx);
            double t2 = wall_seconds();
            spent += t2 - t0;
            if (r > 0 || t2 - t0 > 2.0) { /* the first call warms caches and pages */
                bf = t1 - t0 < bf ? t1 - t0 : bf;
                bb = t2 - t1 < bb ? t2 - t1 : bb;
            }
        }
        double rss = rss_mib();
        double scan = time_scan(L, 2 * d, 16);
        printf("| %d | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f | %.0f | %.0f |\n", L, bf * 1e3, bb * 1e3,
               (bf + bb) * 1e3, (bf + bb) * 1e6 / L, scan * 1e3, plan / (1 << 20), plan / L, rss);
        fflush(stdout);
        free(x);
        sf_arena_free(&a);
        free(saved);
        sf_params_free(&ps);
        sf_block_destroy(&b);
    }
    return 0;
}
