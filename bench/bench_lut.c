/* MemoryFormer's lookup-table channel mixer (`lut`) against the MLP it replaces: forward FLOPs
 * (the mixers' own count, a multiply-add = 2), parameters, and measured time per token forward
 * and forward + backward, for
 *   lut            one Memory Layer d -> d (tau 8)
 *   lut ffn        MemoryFormer's FFN: MemoryLayer(tau 8) -> LayerNorm -> MemoryLayer(tau 10)
 *   mlp 4d         the Transformer FFN it replaces (d_ff = 4 d, GELU)
 *   mlp =params    an MLP with as many parameters as lut ffn (d_ff = params / (2 d))
 *   mlp =flops     an MLP with as many forward FLOPs as lut ffn (d_ff = flops / (4 d))
 * Not a test: prints a table. Backward time excludes zeroing the gradients (dense memset of the
 * tables, which a lazy optimizer would avoid by clearing only the touched rows).
 *   bench_lut [d_model [tokens [reps]]]   (defaults 512, 512, 3; threads from OMP_NUM_THREADS)
 * Measured 2026-11-30 (OMP_NUM_THREADS=1, d 512, 512 tokens, best of 5) on the shared 2-core machine
 * at load average ~36: lut ffn 345 us/token forward vs the 4d MLP's 219 (1.57x) with 27x fewer
 * FLOPs; fwd+bwd 890 vs 632 (1.41x); three runs: 1.35-1.57x and 1.28-1.41x. The tables' random
 * rows make it memory-bound (README). */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/error.h"
#include "core/rng.h"
#include "layers/layer.h"
#include "bench_clock.h"

typedef struct {
    double params, flops, fwd_s, step_s;
} result;

static result run(const char *kind, const char *json, int d, int N, int reps, sf_rng *rng) {
    result r = {0};
    const sf_mixer_def *def = sf_mixer_find(kind);
    cJSON *in = cJSON_Parse(json), *opts = cJSON_CreateObject();
    if (!def || !in || sf_options_normalize(in, def->info.opts, def->info.n_opts, kind, NULL, opts)) {
        fprintf(stderr, "bench_lut: %s: %s\n", json, sf_error_message());
        exit(1);
    }
    sf_mixer_args args = {.d_model = d, .max_T = N, .opts = opts};
    sf_mixer *m = sf_mixer_create(def, &args);
    if (!m) {
        fprintf(stderr, "bench_lut: %s: %s\n", json, sf_error_message());
        exit(1);
    }
    sf_params ps;
    sf_params_init(&ps);
    m->ops->declare(m, &ps, "m");
    sf_params_alloc(&ps);
    m->ops->init(m, rng);
    for (int i = 0; i < ps.n; i++) r.params += (double)ps.p[i].numel;
    r.flops = m->ops->flops(m, N) / N;
    sf_arena plan, a;
    sf_arena_init_plan(&plan);
    unsigned char *saved = sf_calloc(ps.saved_bytes + 16, 1);
    sf_ctx pc = {.arena = &plan, .training = 1, .keep = 1, .B = 1, .T = N, .saved = saved};
    m->ops->forward(m, &pc, NULL, NULL);
    m->ops->backward(m, &pc, NULL, NULL);
    sf_arena_alloc(&a, plan.peak);
    float *x = sf_malloc((size_t)N * d * sizeof(float)), *y = sf_malloc((size_t)N * d * sizeof(float));
    float *dy = sf_malloc((size_t)N * d * sizeof(float)), *dx = sf_malloc((size_t)N * d * sizeof(float));
    sf_rng_fill_normal(rng, x, (long)N * d, 0.0f, 1.0f);
    sf_rng_fill_normal(rng, dy, (long)N * d, 0.0f, 1.0f);
    sf_ctx c = {.arena = &a, .training = 1, .keep = 1, .B = 1, .T = N, .saved = saved};
    double best_f = INFINITY, best_s = INFINITY;
    for (int rep = 0; rep < reps + 1; rep++) { /* the first is a warm-up */
        sf_params_zero_grad(&ps);
        sf_arena_reset_to(&a, 0);
        double t0 = wall_seconds();
        m->ops->forward(m, &c, x, y);
        double t1 = wall_seconds();
        m->ops->backward(m, &c, dy, dx);
        double t2 = wall_seconds();
        if (rep > 0) {
            if (t1 - t0 < best_f) best_f = t1 - t0;
            if (t2 - t0 < best_s) best_s = t2 - t0;
        }
    }
    r.fwd_s = best_f / N;
    r.step_s = best_s / N;
    free(x), free(y), free(dy), free(dx), free(saved);
    sf_arena_free(&a);
    sf_mixer_destroy(m);
    sf_params_free(&ps);
    cJSON_Delete(in), cJSON_Delete(opts);
    return r;
}

static void row(const char *name, result r) {
    printf("%-26s %12.0f %14.0f %13.3f %13.3f %11.2f\n", name, r.params, r.flops, 1e6 * r.fwd_s,
           1e6 * r.step_s, r.flops / r.fwd_s * 1e-9);
}

int main(int argc, char **argv) {
    int d = argc > 1 ? atoi(argv[1]) : 512, N = argc > 2 ? atoi(argv[2]) : 512;
    int reps = argc > 3 ? atoi(argv[3]) : 3;
    if (d < 80 || d % 8 || N < 1 || reps < 1) {
        fprintf(stderr, "usage: bench_lut [d_model (multiple of 8, >= 80) [tokens [reps]]]\n");
        return 2;
    }
    sf_rng rng;
    sf_rng_seed(&rng, 1);
    printf("lut vs mlp channel mixers, d_model %d, %d tokens, best of %d, %d threads\n", d, N, reps,
           omp_get_max_threads());
    printf("%-26s %12s %14s %13s %13s %11s\n", "mixer", "params", "fwd FLOP/tok", "fwd us/tok",
           "fwd+bwd us/tok", "fwd GFLOP/s");
    char json[128];
    result lut = run("lut", "{\"tau\":8}", d, N, reps, &rng);
    row("lut (tau 8)", lut);
    result ffn = run("lut", "{\"tau\":8,\"ffn\":true}", d, N, reps, &rng);
    row("lut ffn (tau 8 -> 10)", ffn);
    snprintf(json, sizeof json, "{\"d_ff\":%d}", 4 * d);
    result mlp = run("mlp", json, d, N, reps, &rng);
    char name[64];
    snprintf(name, sizeof name, "mlp d_ff %d (4d)", 4 * d);
    row(name, mlp);
    int ff_p = (int)lround((ffn.params - d) / (2.0 * d + 1)); /* fc1 d_ff (d + 1) + fc2 d (d_ff + 1) */
    snprintf(json, sizeof json, "{\"d_ff\":%d}", ff_p);
    result mp = run("mlp", json, d, N, reps, &rng);
    snprintf(name, sizeof name, "mlp d_ff %d (=params)", ff_p);
    row(name, mp);
    int ff_f = (int)lround(ffn.flops / (4.0 * d));
    if (ff_f < 1) ff_f = 1;
    snprintf(json, sizeof json, "{\"d_ff\":%d}", ff_f);
    result mf = run("mlp", json, d, N, reps, &rng);
    snprintf(name, sizeof name, "mlp d_ff %d (=FLOPs)", ff_f);
    row(name, mf);
    printf("lut ffn vs mlp 4d: %.1fx fewer FLOPs, %.2fx the forward time, %.2fx the fwd+bwd time\n",
           mlp.flops / ffn.flops, ffn.fwd_s / mlp.fwd_s, ffn.step_s / mlp.step_s);
    printf("lut ffn vs mlp =params: %.2fx the forward time; vs mlp =FLOPs: %.2fx the forward time\n",
           ffn.fwd_s / mp.fwd_s, ffn.fwd_s / mf.fwd_s);
    return 0;
}
