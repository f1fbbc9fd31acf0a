/* Token-mixer benchmark: forward+backward time and activation memory of every token mixer in the
 * registry at batch 1, 8 heads of width 64 (d_model 512), over sequence lengths 256 .. 64k, with
 * the length at which each one overtakes (tiled, FlashAttention-style) softmax attention.
 *
 * Memory is the mixer's arena (saved activations + kernel scratch) from the same planning pass the
 * trainer uses, plus its parameters: exact, so it is reported even where the run is skipped. A
 * length is not run when its memory exceeds --mem-gib (default 16 GiB; the machine's RAM is
 * printed) or when the time extrapolated from the two previous lengths exceeds --budget seconds;
 * the table says which. Options per mixer (window, k, ...) come from the table below; a mixer not
 * listed there runs with {"n_heads": 8} or, if it has no such option, its defaults.
 *
 * Usage: bench_mixers [--threads N] [--max-len L] [--budget S] [--mem-gib G] [--only a,b]
 *                     [--svg path] [--json path]
 * Prints a markdown table; the SVG is log10(time) against log10(L). */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "blocks/block.h"
#include "core/error.h"
#include "models/config.h"
#include "util/svg_plot.h"
#include "bench_args.h"
#include "bench_clock.h"

#define D_MODEL 512
#define N_HEADS 8
#define MAX_LENS 16

/* Options that make a mixer meaningful at these shapes (the rest are defaults). */
static const struct {
    const char *kind, *opts;
} k_opts[] = {
    {"local", "\"n_heads\":8,\"window\":128"},
    {"ls", "\"n_heads\":8,\"window\":128"},
    {"linformer", "\"n_heads\":8,\"k\":256"},
};

typedef struct {
    double ms;    /* forward+backward, NAN when not run */
    double mib;   /* arena + parameters */
    const char *why_not; /* NULL when run */
} cell;

/* The mixer of a residual block built from {"kind": kind, opts} (normalised like a config). */
static int make_block(sf_block *b, const char *kind, int L, int with_heads) {
    char json[512], opts[256] = "";
    for (size_t i = 0; i < sizeof k_opts / sizeof *k_opts; i++)
        if (!strcmp(k_opts[i].kind, kind)) snprintf(opts, sizeof opts, ",%s", k_opts[i].opts);
    if (!opts[0] && with_heads) snprintf(opts, sizeof opts, ",\"n_heads\":%d", N_HEADS);
    snprintf(json, sizeof json, "{\"kind\":\"residual\",\"mixer\":{\"kind\":\"%s\"%s}}", kind, opts);
    cJSON *raw = cJSON_Parse(json), *nb = NULL;
    int rc = sf_config_normalize_block(raw, 0, &nb);
    if (rc == SF_OK) rc = sf_block_create(b, nb, D_MODEL, L, "bench");
    cJSON_Delete(raw);
    cJSON_Delete(nb);
    return rc;
}

static cell run_one(const char *kind, int L, double budget_s, double mem_gib, double predicted_s) {
    cell c = {NAN, NAN, NULL};
    sf_block b;
    if (make_block(&b, kind, L, 1) && make_block(&b, kind, L, 0)) {
        c.why_not = "rejected";
        fprintf(stderr, "bench_mixers: %s at L=%d: %s\n", kind, L, sf_error_message());
        return c;
    }
    sf_mixer *m = b.mixer[0];
    sf_params ps;
    sf_params_init(&ps);
    m->ops->declare(m, &ps, "m");
    sf_params_alloc(&ps);
    sf_rng rng;
    sf_rng_seed(&rng, 1);
    m->ops->init(m, &rng);
    unsigned char *saved = sf_calloc(ps.saved_bytes + 16, 1);
    sf_arena a;
    sf_arena_init_plan(&a);
    sf_ctx ctx = {.arena = &a, .rng = &rng, .training = 1, .keep = 1, .B = 1, .T = L, .saved = saved};
    m->ops->forward(m, &ctx, NULL, NULL);
    m->ops->backward(m, &ctx, NULL, NULL);
    size_t io = (size_t)3 * L * D_MODEL; /* x, dy, dx */
    c.mib = ((double)a.peak + (double)ps.total + (double)io) * 4.0 / (1 << 20);
    if (c.mib > mem_gib * 1024) c.why_not = "memory";
    else if (predicted_s > budget_s) c.why_not = "time";
    if (!c.why_not) {
        sf_arena_alloc(&a, a.peak);
        float *x = sf_malloc(io * sizeof(float)), *dy = x + (size_t)L * D_MODEL,
              *dx = dy + (size_t)L * D_MODEL, *y = sf_malloc((size_t)L * D_MODEL * sizeof(float));
        for (size_t i = 0; i < (size_t)2 * L * D_MODEL; i++) x[i] = sf_rng_normal(&rng);
        double best = INFINITY, spent = 0;
        for (int r = 0; r < 20 && (r < 2 || spent < 1.0); r++) {
            sf_arena_reset_to(&a, 0);
            ctx.arena = &a;
            double t = wall_seconds();
            m->ops->forward(m, &ctx, x, y);
            m->ops->backward(m, &ctx, dy, dx);
            t = wall_seconds() - t;
            spent += t;
            if (r > 0 || t > 1.0) best = t < best ? t : best; /* first call warms caches */
            if (t > budget_s) break;
        }
        c.ms = best * 1e3;
        free(x);
        free(y);
    }
    sf_arena_free(&a);
    free(saved);
    sf_params_free(&ps);
    sf_block_destroy(&b);
    return c;
}

int main(int argc, char **argv) {
    int threads = 2, max_len = 65536;
    double budget = 20, mem_gib = 16;
    const char *svg = "bench_mixers.svg", *json_path = NULL, *only = NULL;
    for (int i = 1; i < argc; i += 2) {
        if (bench_flag_lacks_value(argc, argv, i, "bench_mixers")) return 2;
        if (!strcmp(argv[i], "--threads")) threads = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--max-len")) max_len = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--budget")) budget = atof(argv[i + 1]);
        else if (!strcmp(argv[i], "--mem-gib")) mem_gib = atof(argv[i + 1]);
        else if (!strcmp(argv[i], "--only")) only = argv[i + 1];
        else if (!strcmp(argv[i], "--svg")) svg = argv[i + 1];
        else if (!strcmp(argv[i], "--json")) json_path = argv[i + 1];
        else {
            fprintf(stderr, "bench_mixers: unknown flag %s\n", argv[i]);
            return 2;
        }
    }
    omp_set_num_threads(threads);
    int lens[MAX_LENS], n_lens = 0;
    for (int L = 256; L <= max_len && n_lens < MAX_LENS; L *= 4) lens[n_lens++] = L;

    const char *kinds[64];
    int n_kinds = 0;
    for (int i = 0; i < sf_mixer_registry_n && n_kinds < 64; i++) {
        const sf_mixer_def *d = sf_mixer_registry[i];
        if (!(d->slots & SF_SLOT_TOKEN) || !strcmp(d->info.name, "identity")) continue;
        if (only) {
            char pat[80], list[1024];
            snprintf(pat, sizeof pat, ",%s,", d->info.name);
            snprintf(list, sizeof list, ",%s,", only);
            if (!strstr(list, pat)) continue;
        }
        kinds[n_kinds++] = d->info.name;
    }
    double ram_gib = (double)sysconf(_SC_PHYS_PAGES) * (double)sysconf(_SC_PAGE_SIZE) / (1 << 30);
    printf("token mixers, forward+backward, batch 1, d_model %d, %d heads x %d, %d threads; "
           "memory limit %.0f GiB (RAM %.1f GiB), time budget %.0f s per call\n\n",
           D_MODEL, N_HEADS, D_MODEL / N_HEADS, threads, mem_gib, ram_gib, budget);
    static cell cells[64][MAX_LENS];
    for (int k = 0; k < n_kinds; k++) {
        for (int l = 0; l < n_lens; l++) {
            double pred = 0;
            if (l >= 1 && isfinite(cells[k][l - 1].ms)) {
                double p = 2.0; /* until two points give the exponent, assume quadratic */
                if (l >= 2 && isfinite(cells[k][l - 2].ms) && cells[k][l - 2].ms > 0)
                    p = log(cells[k][l - 1].ms / cells[k][l - 2].ms) / log(4.0);
                if (p < 1) p = 1;
                pred = cells[k][l - 1].ms * pow(4.0, p) / 1e3;
            } else if (l >= 1 && cells[k][l - 1].why_not) {
                pred = INFINITY; /* the shorter length was already too expensive */
            }
            cells[k][l] = run_one(kinds[k], lens[l], budget, mem_gib, pred);
            if (cells[k][l].why_not && !strcmp(cells[k][l].why_not, "memory"))
                cells[k][l].why_not = cells[k][l].mib > ram_gib * 1024 ? "OOM" : "memory";
            fprintf(stderr, "%-12s L=%-6d %10.2f ms %10.1f MiB %s\n", kinds[k], lens[l],
                    cells[k][l].ms, cells[k][l].mib, cells[k][l].why_not ? cells[k][l].why_not : "");
        }
    }
    /* Table: time (ms) and memory (MiB) per length. */
    printf("| mixer |");
    for (int l = 0; l < n_lens; l++) printf(" L=%d ms | MiB |", lens[l]);
    printf(" overtakes softmax at |\n|---|");
    for (int l = 0; l < n_lens; l++) printf("---|---|");
    printf("---|\n");
    int soft = -1;
    for (int k = 0; k < n_kinds; k++)
        if (!strcmp(kinds[k], "softmax")) soft = k;
    for (int k = 0; k < n_kinds; k++) {
        printf("| %s |", kinds[k]);
        for (int l = 0; l < n_lens; l++) {
            const cell *c = &cells[k][l];
            if (c->why_not) printf(" (%s) | %.0f |", c->why_not, c->mib);
            else printf(" %.1f | %.0f |", c->ms, c->mib);
        }
        const char *cross = "-";
        static char buf[64][64];
        if (soft >= 0 && k != soft) {
            cross = "not in range";
            for (int l = 0; l < n_lens; l++) {
                const cell *c = &cells[k][l], *s = &cells[soft][l];
                if (!isfinite(c->ms)) break;
                if (!isfinite(s->ms)) { /* softmax was not run here: say so, do not guess */
                    snprintf(buf[k], sizeof buf[k], "not by L=%d (softmax not run beyond)",
                             lens[l - 1 >= 0 ? l - 1 : 0]);
                    cross = buf[k];
                    break;
                }
                if (c->ms < s->ms) {
                    snprintf(buf[k], sizeof buf[k], "L=%d", lens[l]);
                    cross = l == 0 ? "already at 256" : buf[k];
                    break;
                }
            }
        }
        printf(" %s |\n", cross);
    }
    /* log-log plot */
    sf_series series[64];
    static double xs[64][MAX_LENS], ys[64][MAX_LENS];
    for (int k = 0; k < n_kinds; k++) {
        int n = 0;
        for (int l = 0; l < n_lens; l++)
            if (isfinite(cells[k][l].ms)) {
                xs[k][n] = log10((double)lens[l]);
                ys[k][n++] = log10(cells[k][l].ms);
            }
        series[k] = (sf_series){kinds[k], xs[k], ys[k], n};
    }
    if (svg && sf_svg_line_plot(svg, "token mixers: forward+backward time (batch 1, 8x64 heads)",
                                "log10 sequence length", "log10 ms", series, n_kinds, NAN, NULL))
        fprintf(stderr, "bench_mixers: %s\n", sf_error_message());
    else if (svg)
        printf("\nplot: %s\n", svg);
    if (json_path) {
        FILE *f = fopen(json_path, "w");
        if (f) {
            for (int k = 0; k < n_kinds; k++)
                for (int l = 0; l < n_lens; l++)
                    fprintf(f, "{\"mixer\":\"%s\",\"L\":%d,\"ms\":%.3f,\"mib\":%.1f,\"skipped\":\"%s\"}\n",
                            kinds[k], lens[l], isfinite(cells[k][l].ms) ? cells[k][l].ms : -1.0,
                            cells[k][l].mib, cells[k][l].why_not ? cells[k][l].why_not : "");
            fclose(f);
        }
    }
    return 0;
}
