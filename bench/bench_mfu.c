/* Compute-bound training steps against the machine's fp32 FMA peak, measured in the same run
 * (issue #11 target 6, issue #15's MFU item).
 *
 *  1. Peak: every thread runs a loop of independent FMAs (12 accumulators, enough to cover the
 *     FMA latency on two pipes) of the widest vectors the CPU has: 16 lanes (AVX-512F) where
 *     present, else 8 (the AVX2+FMA clone); GFLOP/s for 1..--threads threads. On AVX-512 CPUs the
 *     8-lane figure is printed too; the % of peak is always against the widest.
 *  2. sgemm at 1024^3 through our packed kernel and through cblas_sgemm, for reference.
 *  3. One full training step (forward, MSE-style loss gradient, backward, AdamW) of
 *     (a) a softmax encoder: iTransformer blocks with 512 tokens, d_model 256, 8 heads, 4 layers,
 *         d_ff 1024, batch 16 (the tokens are variates; embedding Linear(96 -> 256));
 *     (b) the lm model: 6 causal softmax blocks, d_model 384, 6 heads, d_ff 1536, context 256,
 *         vocab 65, batch 16.
 *     Model FLOPs per step = 3 x the model's forward FLOPs (ops->flops: the GEMMs and the
 *     attention score and value products, a multiply-add = 2; causal attention counts only the
 *     unmasked half; norms, activations, softmax exponentials, dropout, the optimizer are not
 *     counted), as GFLOP/s and % of the FMA peak at the same thread count (the higher of the peak
 *     measured first and the peak measured again right after the model's steps), plus the per-operation
 *     time table (core/profile.h).
 *     (c) with --config FILE, any model config instead (e.g. the tiny-shakespeare lm of
 *         bench/lm_budget.sh: runs/lm_budget_1800/softmax_config.json), at --batch N (default 16).
 * Usage: bench_mfu [--threads N] [--steps N] [--only encoder|lm|gemm] [--config FILE [--batch N]] */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/error.h"
#include "core/fileio.h"
#include "core/profile.h"
#include "core/rng.h"
#include "kernels/gemm.h"
#include "models/model.h"
#include "train/adamw.h"
#include "bench_args.h"
#include "bench_clock.h"

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define FMA_CLONES __attribute__((target_clones("arch=x86-64-v3", "default"), optimize("fp-contract=fast")))
#else
#define FMA_CLONES
#endif
#pragma GCC diagnostic ignored "-Wpsabi"
typedef float v8 __attribute__((vector_size(32)));

/* iters x 12 independent 8-lane multiply-adds; returns a value that depends on all of them. */
FMA_CLONES static float fma_loop(long iters, float seed) {
    v8 a0 = {seed}, a1 = a0 + 1, a2 = a0 + 2, a3 = a0 + 3, a4 = a0 + 4, a5 = a0 + 5;
    v8 a6 = a0 + 6, a7 = a0 + 7, a8 = a0 + 8, a9 = a0 + 9, a10 = a0 + 10, a11 = a0 + 11;
    const v8 m = a0 * 0 + 0.999999f, c = a0 * 0 + 1e-6f;
    for (long i = 0; i < iters; i++) {
        a0 = a0 * m + c, a1 = a1 * m + c, a2 = a2 * m + c, a3 = a3 * m + c;
        a4 = a4 * m + c, a5 = a5 * m + c, a6 = a6 * m + c, a7 = a7 * m + c;
        a8 = a8 * m + c, a9 = a9 * m + c, a10 = a10 * m + c, a11 = a11 * m + c;
    }
    v8 s = ((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7)) + ((a8 + a9) + (a10 + a11));
    return s[0] + s[7];
}

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define HAVE_FMA16 1
typedef float v16 __attribute__((vector_size(64)));
/* fma_loop with 16-lane (AVX-512F) vectors: call only where the CPU has AVX-512F. */
__attribute__((target("avx512f"), optimize("fp-contract=fast"))) static float fma_loop16(long iters,
                                                                                      float seed) {
    v16 a0 = {seed}, a1 = a0 + 1, a2 = a0 + 2, a3 = a0 + 3, a4 = a0 + 4, a5 = a0 + 5;
    v16 a6 = a0 + 6, a7 = a0 + 7, a8 = a0 + 8, a9 = a0 + 9, a10 = a0 + 10, a11 = a0 + 11;
    const v16 m = a0 * 0 + 0.999999f, c = a0 * 0 + 1e-6f;
    for (long i = 0; i < iters; i++) {
        a0 = a0 * m + c, a1 = a1 * m + c, a2 = a2 * m + c, a3 = a3 * m + c;
        a4 = a4 * m + c, a5 = a5 * m + c, a6 = a6 * m + c, a7 = a7 * m + c;
        a8 = a8 * m + c, a9 = a9 * m + c, a10 = a10 * m + c, a11 = a11 * m + c;
    }
    v16 s = ((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7)) + ((a8 + a9) + (a10 + a11));
    return s[0] + s[15];
}
static int cpu_has_avx512f(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f");
}
#else
#define HAVE_FMA16 0
static float fma_loop16(long iters, float seed) { return (float)iters * seed; }
static int cpu_has_avx512f(void) { return 0; }
#endif

/* lanes 8 or 16 (16: fma_loop16, only where cpu_has_avx512f()) */
static double fma_peak_gflops(int threads, int lanes) {
    const long iters = 20000000; /* 3.84 GFLOP per thread */
    double best = 0;
    volatile float sink = 0;
    /* best of 10 (~40 ms each): on a shared or virtualised machine one trial of the 2-thread loop
     * can lose a thread to another task and read half the peak (seen: 102 instead of 200
     * GFLOP/s, so "105% of peak") */
    for (int r = 0; r < 10; r++) {
        double t = wall_seconds();
        float acc = 0;
#pragma omp parallel num_threads(threads) reduction(+ : acc)
        acc += lanes == 16 ? fma_loop16(iters, (float)omp_get_thread_num())
                           : fma_loop(iters, (float)omp_get_thread_num());
        double g = (double)threads * iters * 12 * lanes * 2 / (wall_seconds() - t) / 1e9;
        sink += acc;
        if (g > best) best = g;
    }
    (void)sink;
    return best;
}

typedef void (*gemm_fn)(int, int, int, int, int, float, const float *, int, const float *, int,
                        float, float *, int);

static double sgemm_gflops(gemm_fn f, int n) {
    float *a = malloc((size_t)n * n * 4), *b = malloc((size_t)n * n * 4), *c = malloc((size_t)n * n * 4);
    for (long i = 0; i < (long)n * n; i++) a[i] = b[i] = 1.0f / (float)(1 + i % 7);
    double best = 0;
    for (int r = 0; r < 3; r++) {
        double t = wall_seconds();
        f(0, 0, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
        double g = 2.0 * n * n * n / (wall_seconds() - t) / 1e9;
        if (g > best) best = g;
    }
    free(a), free(b), free(c);
    return best;
}

static const char *encoder_json =
    "{\"format_version\": 2, \"task\": \"forecast\", \"model\": \"itransformer\","
    " \"seq_len\": 96, \"pred_len\": 96, \"n_channels\": 512, \"d_model\": 256, \"use_norm\": true,"
    " \"dropout\": 0.1, \"input\": {\"kind\": \"inverted\"}, \"positions\": {\"kind\": \"none\"},"
    " \"blocks\": [{\"kind\": \"metaformer\", \"repeat\": 4, \"placement\": \"pre\", \"dropout\": 0.1,"
    "  \"norm\": {\"kind\": \"layernorm\"},"
    "  \"token_mixer\": {\"kind\": \"softmax\", \"n_heads\": 8, \"causal\": false},"
    "  \"channel_mixer\": {\"kind\": \"mlp\", \"d_ff\": 1024, \"activation\": \"gelu\", \"dropout\": 0.1}}],"
    " \"head\": {\"kind\": \"per_token\"}}";

static const char *lm_json =
    "{\"format_version\": 2, \"task\": \"lm\", \"model\": \"lm\", \"seq_len\": 256, \"d_model\": 384,"
    " \"dropout\": 0.1, \"input\": {\"kind\": \"tokens\", \"vocab\": 65}, \"positions\": {\"kind\": \"learned\"},"
    " \"blocks\": [{\"kind\": \"metaformer\", \"repeat\": 6, \"placement\": \"pre\", \"dropout\": 0.1,"
    "  \"norm\": {\"kind\": \"layernorm\"},"
    "  \"token_mixer\": {\"kind\": \"softmax\", \"n_heads\": 6, \"causal\": true},"
    "  \"channel_mixer\": {\"kind\": \"mlp\", \"d_ff\": 1536, \"activation\": \"gelu\", \"dropout\": 0.1}}],"
    " \"head\": {\"kind\": \"lm\", \"tie_weights\": false, \"bias\": false}}";

/* One model: warm-up step, then `steps` timed steps with the profile on; prints one line and the
 * per-operation table. Returns 0 on success. */
static int bench_model(const char *name, const char *json, int batch, int steps, int is_lm,
                       double *peak, int threads, int lanes) {
    sf_model m;
    if (sf_model_create_json(&m, json, name)) {
        fprintf(stderr, "bench_mfu: %s\n", sf_error_message());
        return 1;
    }
    sf_model_init_weights(&m, 0);
    const long nx = (long)batch * sf_model_x_floats(&m);
    long in_floats = 0, vocab = 0; /* an lm's per-token output is one logit per vocabulary entry */
    int max_steps = 0;
    if (is_lm) m.def->stream->step_shape(&m, &in_floats, &vocab, &max_steps);
    const long ny = is_lm ? (long)batch * m.seq_len * vocab : (long)batch * m.pred_len * m.n_channels;
    float *x = malloc((size_t)nx * 4), *y = malloc((size_t)ny * 4), *out = malloc((size_t)ny * 4),
          *dy = malloc((size_t)ny * 4);
    sf_rng rng;
    sf_rng_seed(&rng, 1);
    if (is_lm)
        for (long i = 0; i < nx; i++) x[i] = (float)sf_rng_below(&rng, (uint32_t)vocab);
    else
        sf_rng_fill_normal(&rng, x, nx, 0, 1);
    sf_rng_fill_normal(&rng, y, ny, 0, 1);
    sf_adamw opt;
    sf_adamw_init(&opt, &m.params, 0.01f);
    sf_model_reserve(&m, &m.run, batch, 1);
    double t_total = 0;
    for (int s = -1; s < steps; s++) { /* s = -1: warm-up, not timed */
        if (s == 0) sf_profile_reset();
        double t = wall_seconds();
        SF_PROF(SF_PROF_OPTIMIZER, sf_params_zero_grad(&m.params));
        sf_model_forward(&m, x, out, batch, 1, &rng);
        /* the loss gradient (MSE against random targets; for the lm a stand-in of the same cost
         * order as cross-entropy's) */
        SF_PROF(SF_PROF_DATA, for (long i = 0; i < ny; i++) dy[i] = 2.0f * (out[i] - y[i]) / (float)ny);
        sf_model_backward(&m, dy, batch);
        SF_PROF(SF_PROF_OPTIMIZER, sf_adamw_step(&opt, &m.params, 1e-4f));
        if (s >= 0) t_total += wall_seconds() - t;
    }
    const double gflop = 3.0 * m.def->ops->flops(&m) * batch / 1e9;
    const double step_s = t_total / steps;
    /* the peak again, right after the steps: a shared machine can lend the run one core for the
     * whole first measurement (seen: 174.6 instead of ~335 GFLOP/s at 2 threads, so "100.6% of
     * peak"); the % is against the higher of the two, never the lower */
    const double again = fma_peak_gflops(threads, lanes);
    printf("fp32 FMA peak, %d thread%s, measured again after the %s steps: %.1f GFLOP/s\n", threads,
           threads > 1 ? "s" : "", name, again);
    if (again > *peak) *peak = again;
    printf("%-8s params %ld, batch %d, %.1f GFLOP/step (3 x forward), %.1f ms/step, %.1f GFLOP/s = %.1f%% of "
           "the %.1f GFLOP/s FMA peak\n",
           name, sf_model_n_params(&m), batch, gflop, 1e3 * step_s, gflop / step_s, 100.0 * gflop / step_s / *peak,
           *peak);
    sf_profile_print(stdout, name, t_total, steps);
    sf_adamw_free(&opt);
    sf_model_destroy(&m);
    free(x), free(y), free(out), free(dy);
    return 0;
}

/* The Linear layers' GEMMs of a training step at one (tokens, in, out) shape: forward
 * y = x W^T, backward dx = dy W and dW += dy^T x (src/layers/linear.c), GFLOP/s of each through
 * sf_gemm (best of reps) and % of the FMA peak; with fwd_only the forward alone (inference). */
static void gemm_shape_rows_n(const char *what, int tokens, int in, int out, double peak, int reps,
                              int fwd_only) {
    const long n = (long)tokens * (in > out ? in : out);
    float *x = malloc((size_t)n * 4), *dy = malloc((size_t)n * 4), *w = malloc((size_t)in * out * 4),
          *dw = calloc((size_t)in * out, 4), *y = malloc((size_t)n * 4);
    for (long i = 0; i < n; i++) x[i] = dy[i] = 1.0f / (float)(1 + i % 7);
    for (long i = 0; i < (long)in * out; i++) w[i] = 1.0f / (float)(1 + i % 5);
    const struct { const char *op; int ta, tb, M, N, K; const float *A, *B; float *C; float beta; } g[3] = {
        {"fwd  y = x W^T", 0, 1, tokens, out, in, x, w, y, 0.0f},
        {"bwd dx = dy W", 0, 0, tokens, in, out, dy, w, y, 0.0f},
        {"bwd dW += dy^T x", 1, 0, out, in, tokens, dy, x, dw, 1.0f},
    };
    for (int k = 0; k < (fwd_only ? 1 : 3); k++) {
        const int lda = g[k].ta ? g[k].M : g[k].K, ldb = g[k].tb ? g[k].K : g[k].N;
        double best = 0;
        for (int r = 0; r < reps; r++) { /* best of reps: this host's speed drifts */
            double t = wall_seconds();
            sf_gemm(g[k].ta, g[k].tb, g[k].M, g[k].N, g[k].K, 1.0f, g[k].A, lda, g[k].B, ldb, g[k].beta,
                    g[k].C, g[k].N);
            double gf = 2.0 * g[k].M * g[k].N * g[k].K / (wall_seconds() - t) / 1e9;
            if (gf > best) best = gf;
        }
        printf("  %-8s %-17s M %5d N %5d K %5d: %6.1f GFLOP/s = %5.1f%% of peak (%.2f us)\n", what,
               g[k].op, g[k].M, g[k].N, g[k].K, best, 100 * best / peak,
               2.0 * g[k].M * g[k].N * g[k].K / best / 1e3);
    }
    free(x), free(dy), free(w), free(dw), free(y);
}

static void gemm_shape_rows(const char *what, int tokens, int in, int out, double peak) {
    gemm_shape_rows_n(what, tokens, in, out, peak, 10, 0);
}

int main(int argc, char **argv) {
    int threads = 2, steps = 3, batch = 16;
    const char *only = NULL, *config = NULL;
    for (int i = 1; i < argc; i += 2) {
        if (bench_flag_lacks_value(argc, argv, i, "bench_mfu")) return 2;
        if (!strcmp(argv[i], "--threads")) threads = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--steps")) steps = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--only")) only = argv[i + 1];
        else if (!strcmp(argv[i], "--config")) config = argv[i + 1];
        else if (!strcmp(argv[i], "--batch")) batch = atoi(argv[i + 1]);
        else {
            fprintf(stderr, "usage: bench_mfu [--threads N] [--steps N] [--only encoder|lm|gemm] "
                            "[--config FILE [--batch N]]\n");
            return 2;
        }
    }
    if (threads < 1 || steps < 1 || batch < 1) return 2;
    char *config_json = NULL;
    if (config) {
        void *data;
        size_t n;
        if (sf_read_file(config, &data, &n)) {
            fprintf(stderr, "bench_mfu: %s\n", sf_error_message());
            return 1;
        }
        config_json = sf_malloc(n + 1);
        memcpy(config_json, data, n);
        config_json[n] = 0;
        free(data);
    }
    setvbuf(stdout, NULL, _IOLBF, 0); /* lines appear as measured, also when redirected */
    omp_set_num_threads(threads);
    sf_set_blas_threads(threads);
    printf("our kernels: %s; BLAS: %s (OpenBLAS core %s)\n", sf_gemm_packed_path(), sf_blas_library(),
           sf_blas_corename());
    double peak = 0;
    const int lanes = HAVE_FMA16 && cpu_has_avx512f() ? 16 : 8;
    for (int t = 1; t <= threads; t++) {
        double g = fma_peak_gflops(t, lanes);
        printf("fp32 FMA peak, %d thread%s: %.1f GFLOP/s (%d-lane FMAs%s)\n", t, t > 1 ? "s" : "", g,
               lanes, lanes == 16 ? ", AVX-512F" : "");
        if (lanes == 16)
            printf("  the same with 8-lane (AVX2) FMAs: %.1f GFLOP/s\n", fma_peak_gflops(t, 8));
        peak = g;
    }
    printf("sgemm 1024^3, %d threads: packed %.1f GFLOP/s, cblas_sgemm %.1f GFLOP/s\n", threads,
           sgemm_gflops(sf_gemm_packed, 1024), sgemm_gflops(sf_gemm_blas, 1024));
    if (!config_json && (!only || !strcmp(only, "encoder") || !strcmp(only, "gemm"))) {
        printf("encoder Linear GEMMs (8192 tokens), %d threads:\n", threads);
        gemm_shape_rows("qkv", 8192, 256, 768, peak);
        gemm_shape_rows("out", 8192, 256, 256, peak);
        gemm_shape_rows("fc1", 8192, 256, 1024, peak);
        gemm_shape_rows("fc2", 8192, 1024, 256, peak);
        /* PatchTST's (bench/run.sh: 896 series x 42 patches, d_model 16, d_ff 128): C 16 wide
         * for half of them, a single 16-column panel */
        printf("PatchTST Linear GEMMs (37632 tokens), %d threads:\n", threads);
        gemm_shape_rows("qkv", 37632, 16, 48, peak);
        gemm_shape_rows("out", 37632, 16, 16, peak);
        gemm_shape_rows("fc1", 37632, 16, 128, peak);
        gemm_shape_rows("fc2", 37632, 128, 16, peak);
        /* batch-1 inference: 7 series x 42 patches on one thread, 4 of them on the busier thread
         * of the 2-thread split; the head (7 x 672 -> 96). Small calls: best of 2000. */
        const int b1_tokens[2] = {294, 168};
        for (int r = 0; r < 2; r++) {
            printf("PatchTST batch-1 Linear forward GEMMs (%d tokens), on the calling thread:\n",
                   b1_tokens[r]);
            gemm_shape_rows_n("qkv", b1_tokens[r], 16, 48, peak, 2000, 1);
            gemm_shape_rows_n("out", b1_tokens[r], 16, 16, peak, 2000, 1);
            gemm_shape_rows_n("fc1", b1_tokens[r], 16, 128, peak, 2000, 1);
            gemm_shape_rows_n("fc2", b1_tokens[r], 128, 16, peak, 2000, 1);
        }
        gemm_shape_rows_n("head", 7, 672, 96, peak, 2000, 1);
    }
    sf_profile_enable(1);
    int bad = 0;
    if (config_json) {
        bad = bench_model(config, config_json, batch, steps, strstr(config_json, "\"lm\"") != NULL, &peak,
                          threads, lanes);
        free(config_json);
        return bad;
    }
    if (only && !strcmp(only, "gemm")) return 0; /* the GEMM tables only */
    if (!only || !strcmp(only, "encoder"))
        bad |= bench_model("encoder", encoder_json, 16, steps, 0, &peak, threads, lanes);
    if (!only || !strcmp(only, "lm")) bad |= bench_model("lm", lm_json, 16, steps, 1, &peak, threads, lanes);
    return bad;
}
