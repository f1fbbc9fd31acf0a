/* seqformer side of the t2 throughput comparison (bench/t2_throughput.sh runs it and the PyTorch
 * twin, bench/torch_t2.py, in one go and prints ratios):
 *   - GP preprocessing (t2's 2-D GP fit + 100 x 5 grid, data/lc_grid.h) on the first --gp-objects
 *     stars of the RR Lyrae file: curves per second;
 *   - the model at t2's default size (d 32, 16 heads, d_ff 128, 1 post-LN block) on regularly
 *     sampled curves of 100 steps x 5 bands (all valid): batch-1 latency p50/p99 over --runs
 *     calls, and batched inference throughput (batch --batch, curves per second over >= --secs):
 *     the whole batch through one forward of the thread team, and the same batch through
 *     sf_model_infer_chunked (chunks of --chunk curves, one thread each, default 8).
 * Random inputs and weights (seeded); eval mode. Prints one JSON line.
 * usage: bench_t2 --config JSON [--threads 2] [--batch 512] [--runs 2000] [--secs 2] [--chunk 8]
 *                 [--gp-objects 40] [--data OBS.csv.gz --labels LABELS.csv] */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/error.h"
#include "core/rng.h"
#include "data/lc_grid.h"
#include "models/model.h"
#include "bench_args.h"
#include "bench_clock.h"

/* The q-quantile of sorted v (nearest rank). */
static double quantile(const double *v, int n, double q) {
    int i = (int)(q * n + 0.5) - 1;
    return v[i < 0 ? 0 : i >= n ? n - 1 : i];
}

/* GP preprocessing of the first n objects: curves per second (or -1 when the data is missing). */
static double gp_curves_per_s(const char *data, const char *labels, int n, int *used,
                              double *per_cpu) {
    sf_lc_opts lo;
    sf_lc_opts_init(&lo);
    sf_lc_set s;
    *used = 0;
    *per_cpu = -1;
    if (sf_lc_load(data, labels, &lo, &s)) {
        fprintf(stderr, "bench_t2: GP part skipped: %s\n", sf_error_message());
        return -1;
    }
    int all = s.n_objects;
    if (n < all) s.n_objects = n; /* the first n stars (the grid reads n_objects of them) */
    sf_lc_grid_opts go;
    sf_lc_grid_opts_init(&go);
    sf_lc_grid g;
    double t = wall_seconds(), c = cpu_seconds();
    int rc = sf_lc_grid_build(&s, &go, &g);
    double dt = wall_seconds() - t;
    *per_cpu = rc ? -1 : s.n_objects / (cpu_seconds() - c);
    *used = s.n_objects;
    s.n_objects = all;
    if (!rc) sf_lc_grid_free(&g);
    sf_lc_free(&s);
    return rc ? -1 : *used / dt;
}

int main(int argc, char **argv) {
    int threads = 2, batch = 512, runs = 2000, gp_objects = 40;
    double secs = 2;
    int chunk = 8;
    const char *config = NULL, *data = "../shared/data/lightcurves/rrlyrae_sdss_stripe82.csv.gz",
               *labels = "../shared/data/lightcurves/rrlyrae_periods.csv";
    for (int i = 1; i < argc; i += 2) {
        if (bench_flag_lacks_value(argc, argv, i, "bench_t2")) return 2;
        if (!strcmp(argv[i], "--threads")) threads = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--batch")) batch = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--runs")) runs = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--secs")) secs = atof(argv[i + 1]);
        else if (!strcmp(argv[i], "--chunk")) chunk = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--gp-objects")) gp_objects = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--config")) config = argv[i + 1];
        else if (!strcmp(argv[i], "--data")) data = argv[i + 1];
        else if (!strcmp(argv[i], "--labels")) labels = argv[i + 1];
        else {
            fprintf(stderr, "bench_t2: unknown flag %s\n", argv[i]);
            return 2;
        }
    }
    if (!config || batch < 1 || runs < 1 || chunk < 1) {
        fprintf(stderr, "usage: bench_t2 --config JSON [--threads N] [--batch B] [--runs R] "
                        "[--secs S] [--chunk C] [--gp-objects N] [--data F --labels F]\n");
        return 2;
    }
    omp_set_num_threads(threads);
    sf_model m;
    if (sf_model_create_json(&m, config, "--config")) {
        fprintf(stderr, "bench_t2: %s\n", sf_error_message());
        return 1;
    }
    sf_model_init_weights(&m, 1);
    long xs = sf_model_x_floats(&m);
    int L = m.seq_len, C = m.n_channels, K = sf_opt_int(m.config, "n_classes");
    float *x = malloc((size_t)batch * xs * sizeof(float)), *y = malloc((size_t)batch * K * sizeof(float));
    sf_rng rng;
    sf_rng_seed(&rng, 7);
    sf_rng_fill_normal(&rng, x, (long)batch * xs, 0.0f, 1.0f);
    for (int b = 0; b < batch; b++) x[(size_t)b * xs + (size_t)L * C] = (float)L; /* all valid */

    /* batch-1 latency */
    double *lat = malloc((size_t)runs * sizeof(double));
    for (int r = -50; r < runs; r++) {
        double t = wall_seconds();
        sf_model_forward(&m, x, y, 1, 0, NULL);
        if (r >= 0) lat[r] = wall_seconds() - t;
    }
    qsort(lat, (size_t)runs, sizeof *lat, cmp_double);
    double p50 = quantile(lat, runs, 0.5) * 1e3, p99 = quantile(lat, runs, 0.99) * 1e3;
    /* batched throughput */
    sf_model_forward(&m, x, y, batch, 0, NULL); /* plans the arena */
    long curves = 0;
    double t0 = wall_seconds(), c0 = cpu_seconds(), t;
    do {
        sf_model_forward(&m, x, y, batch, 0, NULL);
        curves += batch;
        t = wall_seconds();
    } while (t - t0 < secs);
    double tput = curves / (t - t0), per_cpu = curves / (cpu_seconds() - c0);
    /* the same batch through sf_model_infer_chunked: chunks of --chunk curves, one thread each */
    sf_run *thread_runs = calloc((size_t)omp_get_max_threads(), sizeof *thread_runs);
    float *yc = malloc((size_t)batch * K * sizeof(float));
    for (int i = 0; i < omp_get_max_threads(); i++) sf_run_init(&thread_runs[i]);
    sf_model_infer_chunked(&m, thread_runs, x, yc, K, batch, chunk); /* plans the runs */
    double cdiff = 0; /* against the batched forward: the same to float rounding */
    for (long i = 0; i < (long)batch * K; i++) {
        const double dd = fabs((double)yc[i] - y[i]) / (fabs((double)y[i]) > 1 ? fabs((double)y[i]) : 1);
        if (dd > cdiff) cdiff = dd;
    }
    curves = 0;
    t0 = wall_seconds(), c0 = cpu_seconds();
    do {
        sf_model_infer_chunked(&m, thread_runs, x, yc, K, batch, chunk);
        curves += batch;
        t = wall_seconds();
    } while (t - t0 < secs);
    double ctput = curves / (t - t0), cper_cpu = curves / (cpu_seconds() - c0);
    for (int i = 0; i < omp_get_max_threads(); i++) sf_run_free(&thread_runs[i]);
    free(thread_runs);
    free(yc);
    int used = 0;
    double gp_cpu = -1;
    double gp = gp_objects > 0 ? gp_curves_per_s(data, labels, gp_objects, &used, &gp_cpu) : -1;
    printf("{\"impl\":\"seqformer\",\"threads\":%d,\"seq_len\":%d,\"channels\":%d,\"params\":%ld,"
           "\"b1_latency_ms_p50\":%.4f,\"b1_latency_ms_p99\":%.4f,\"b1_curves_per_s\":%.1f,"
           "\"batch\":%d,\"batched_curves_per_s\":%.1f,\"batched_curves_per_cpu_s\":%.1f,"
           "\"chunk\":%d,\"chunked_curves_per_s\":%.1f,\"chunked_curves_per_cpu_s\":%.1f,"
           "\"chunked_max_rel_diff\":%.2e,"
           "\"gp_objects\":%d,\"gp_curves_per_s\":%.2f,\"gp_curves_per_cpu_s\":%.2f}\n",
           threads, L, C, sf_model_n_params(&m), p50, p99, 1e3 / p50, batch, tput, per_cpu, chunk,
           ctput, cper_cpu, cdiff, used, gp, gp_cpu);
    free(lat);
    free(x);
    free(y);
    sf_model_destroy(&m);
    return 0;
}
