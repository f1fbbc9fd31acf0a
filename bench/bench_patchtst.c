/* seqformer side of the PyTorch comparison (bench/run.sh runs both and prints ratios):
 * training steps/s (forward + MSE + backward + AdamW, dropout on) and batch-1 inference latency
 * (p50 and p99 over --infer-runs calls) at the ETTh1 PatchTST config on random inputs, plus the
 * sf_gemm sgemm peak measured in the same run so achieved GFLOP/s can be read against it, which
 * BLAS library and core type were loaded and which of our GEMM paths ran. Prints one JSON line;
 * with --profile (or SF_PROFILE=1) also the per-operation time tables of the training steps and
 * of the batch-1 calls on stderr (a separate pass: the timed calls run with the profile off). */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/error.h"
#include "core/profile.h"
#include "kernels/gemm.h"
#include "models/model.h"
#include "tasks/forecast.h"
#include "train/adamw.h"
#include "bench_args.h"
#include "bench_clock.h"
#include "patchtst_setup.h"

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static double blas_peak_gflops(void) {
    int n = 1024;
    float *a = malloc((size_t)n * n * 4), *b = malloc((size_t)n * n * 4), *c = malloc((size_t)n * n * 4);
    for (long i = 0; i < (long)n * n; i++) a[i] = b[i] = 1.0f / (float)(1 + i % 7);
    double best = 0;
    for (int r = 0; r < 5; r++) {
        double t = wall_seconds();
        sf_gemm(0, 0, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
        double g = 2.0 * n * n * n / (wall_seconds() - t) / 1e9;
        if (g > best) best = g;
    }
    free(a);
    free(b);
    free(c);
    return best;
}

int main(int argc, char **argv) {
    int threads = 2, batch = 128, reps = 5, steps = 5, infer_runs = 1000;
    if (getenv("SF_BENCH_INFER_RUNS")) infer_runs = atoi(getenv("SF_BENCH_INFER_RUNS"));
    int profile = getenv("SF_PROFILE") && atoi(getenv("SF_PROFILE"));
    const char *mixer = "softmax", *norm = "batchnorm";
    for (int i = 1; i < argc; i += 2) {
        if (bench_flag_lacks_value(argc, argv, i, "bench_patchtst")) return 2;
        if (!strcmp(argv[i], "--threads")) threads = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--batch")) batch = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--reps")) reps = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--steps")) steps = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--mixer")) mixer = argv[i + 1];
        else if (!strcmp(argv[i], "--norm")) norm = argv[i + 1];
        else if (!strcmp(argv[i], "--infer-runs")) infer_runs = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--profile")) profile = atoi(argv[i + 1]);
        else {
            fprintf(stderr, "usage: bench_patchtst [--threads N] [--batch N] [--reps N] [--steps N] [--mixer softmax|linear] [--norm batchnorm|layernorm|rmsnorm] [--infer-runs N] [--profile 0|1]\n");
            return 2;
        }
    }
    omp_set_num_threads(threads);
    bench_patchtst_setup B;
    if (bench_patchtst_init(&B, "bench_patchtst", batch, mixer, norm)) return 1;
    double *rep_ms = malloc((size_t)reps * sizeof(double)), *rep_cpu_ms = malloc((size_t)reps * sizeof(double));
    for (int r = -1; r < reps; r++) { /* r = -1: warm-up */
        double t = wall_seconds(), tc = cpu_seconds();
        for (int s = 0; s < steps; s++) bench_patchtst_step(&B, batch);
        if (r >= 0) rep_ms[r] = (wall_seconds() - t) * 1e3 / steps, rep_cpu_ms[r] = (cpu_seconds() - tc) * 1e3 / steps;
    }
    double step_ms = median(rep_ms, reps), step_cpu_ms = median(rep_cpu_ms, reps);
    const unsigned train_paths = sf_gemm_paths_used();
    sf_gemm_paths_reset();
    const unsigned long split0 = sf_patchtst_split_calls();
    double *lat = malloc((size_t)infer_runs * sizeof(double));
    for (int r = -20; r < infer_runs; r++) {
        double t = wall_seconds();
        sf_model_forward(&B.m, B.x, B.out, 1, 0, NULL);
        if (r >= 0) lat[r] = (wall_seconds() - t) * 1e3;
    }
    const unsigned infer_paths = sf_gemm_paths_used();
    const unsigned long infer_split = sf_patchtst_split_calls() - split0;
    double lat_ms = median(lat, infer_runs); /* sorts lat */
    double lat_p99 = lat[(int)(0.99 * (infer_runs - 1) + 0.5)];
    if (profile) { /* separate passes, so the timed numbers above carry no profiling cost */
        sf_profile_enable(1);
        double t = wall_seconds();
        for (int s = 0; s < steps; s++) {
            SF_PROF(SF_PROF_OPTIMIZER, sf_params_zero_grad(&B.m.params));
            sf_model_forward(&B.m, B.x, B.out, batch, 1, &B.rng);
            SF_PROF(SF_PROF_DATA, sf_mse_loss(B.out, B.y, B.dy, B.ny));
            sf_model_backward(&B.m, B.dy, batch);
            SF_PROF(SF_PROF_OPTIMIZER, sf_adamw_step(&B.opt, &B.m.params, 1e-4f));
        }
        sf_profile_print(stderr, "training step, batch 128", wall_seconds() - t, steps);
        sf_profile_reset();
        /* at one thread: the profiler times only calls outside parallel regions, and at several
         * threads the batch-1 blocks run inside one (split by series, models/patchtst.c) */
        omp_set_num_threads(1);
        t = wall_seconds();
        for (int r = 0; r < 200; r++) sf_model_forward(&B.m, B.x, B.out, 1, 0, NULL);
        sf_profile_print(stderr, "batch-1 forward at one thread", wall_seconds() - t, 200);
        omp_set_num_threads(threads);
        sf_profile_enable(0);
    }
    /* Weights after the training steps, read through one eval forward: equal checksums at two
     * thread counts (same --reps, --steps) show the run does not depend on the thread count. */
    sf_model_forward(&B.m, B.x, B.out, batch, 0, NULL);
    double checksum = 0;
    for (long i = 0; i < B.ny; i++) checksum += (double)B.out[i] * (double)(1 + i % 13);
    double gflop_step = 3.0 * B.m.def->ops->flops(&B.m) * batch / 1e9; /* fwd + ~2x for bwd */
    double peak = blas_peak_gflops();
    printf("{\"impl\":\"seqformer\",\"threads\":%d,\"batch\":%d,\"mixer\":\"%s\",\"norm\":\"%s\",\"params\":%ld,"
           "\"train_step_ms\":%.2f,\"train_step_cpu_ms\":%.2f,\"train_steps_per_s\":%.3f,\"infer_b1_latency_ms\":%.4f,"
           "\"infer_b1_p50_ms\":%.4f,\"infer_b1_p99_ms\":%.4f,\"infer_runs\":%d,"
           "\"train_gflops\":%.2f,\"blas_peak_gflops\":%.1f,\"arena_mb\":%.1f,"
           "\"blas_library\":\"%s\",\"blas_core\":\"%s\",\"our_kernels\":\"%s\","
           "\"gemm_paths_train\":%u,\"gemm_paths_infer\":%u,\"infer_split_calls\":%lu,\"out_checksum\":%.17g}\n",
           threads, batch, mixer, B.cfg.norm, sf_model_n_params(&B.m), step_ms, step_cpu_ms, 1e3 / step_ms, lat_ms,
           lat_ms, lat_p99, infer_runs, gflop_step / (step_ms / 1e3), peak,
           (double)B.m.run.arena.cap * 4 / 1048576.0, sf_blas_library(), sf_blas_corename(),
           sf_gemm_packed_path(), train_paths, infer_paths, infer_split, checksum);
    bench_patchtst_free(&B);
    free(rep_ms), free(rep_cpu_ms), free(lat);
    return 0;
}
