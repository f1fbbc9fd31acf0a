/* Generation speed at batch 1 through the streaming API (models/stream.h): for every token mixer
 * that can stream, an lm of --layers metaformer blocks (mixer + MLP 4d), width --d, vocab 65, is
 * fed tokens one at a time; after 1k, 8k and 64k tokens of context the next --window tokens are
 * timed (ms per token, tokens/s). Softmax attention reads its whole KV cache each step (cost
 * grows with the context); recurrent mixers (linear, cosformer) keep a fixed-size state (cost
 * flat); local attention a window. A context is only filled when the estimated time to get
 * there fits the --budget (seconds per mixer); otherwise the row shows "-". The estimate
 * extrapolates the growth of the per-token cost measured between the last two contexts (flat for
 * a fixed-size state, so an O(1)-state mixer reaches 64k within a budget of a few minutes;
 * linear, the worst case here, until two contexts are measured).
 *   bench_generate [--d 128] [--layers 4] [--window 128] [--budget 120] [--only softmax,linear]
 *                  [--clock cpu|wall]   (cpu: process CPU time; run with OMP_NUM_THREADS=1)
 * Weights are random (speed does not depend on them). Output: a markdown table on stdout. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/error.h"
#include "layers/layer.h"
#include "models/model.h"
#include "models/stream.h"
#include "bench_args.h"

/* Process CPU time by default: with one thread it is the step's cost even on a machine shared
 * with other jobs, where wall time measures the share we got (--clock wall for wall time). */
static clockid_t which_clock = CLOCK_PROCESS_CPUTIME_ID;

static double now(void) {
    struct timespec ts;
    clock_gettime(which_clock, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int has_option(const sf_mixer_def *md, const char *name) {
    for (int i = 0; i < md->info.n_opts; i++)
        if (!strcmp(md->info.opts[i].name, name)) return 1;
    return 0;
}

static int listed(const char *only, const char *name) {
    if (!only) return 1;
    size_t n = strlen(name);
    for (const char *p = only; (p = strstr(p, name)); p += n)
        if ((p == only || p[-1] == ',') && (p[n] == 0 || p[n] == ',')) return 1;
    return 0;
}

int main(int argc, char **argv) {
    int d = 128, layers = 4, window = 128;
    double budget = 120;
    const char *only = NULL;
    for (int i = 1; i < argc; i += 2) {
        if (bench_flag_lacks_value(argc, argv, i, "bench_generate")) return 2;
        if (!strcmp(argv[i], "--d")) d = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--layers")) layers = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--window")) window = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--budget")) budget = atof(argv[i + 1]);
        else if (!strcmp(argv[i], "--only")) only = argv[i + 1];
        else if (!strcmp(argv[i], "--clock")) which_clock = strcmp(argv[i + 1], "wall") ? CLOCK_PROCESS_CPUTIME_ID : CLOCK_MONOTONIC;
        else {
            fprintf(stderr, "unknown flag %s\n", argv[i]);
            return 2;
        }
    }
    enum { NC = 3 };
    const int ctx[NC] = {1024, 8192, 65536};
    const int max_len = ctx[NC - 1] + window + 1;
    printf("lm d_model %d, %d blocks (mixer + mlp 4d), vocab 65, batch 1; %s ms per token (tokens/s) "
           "for the %d tokens after a context of\n\n",
           d, layers, which_clock == CLOCK_MONOTONIC ? "wall" : "CPU", window);
    printf("| mixer | state floats | 1k | 8k | 64k |\n|---|---|---|---|---|\n");
    fflush(stdout);
    for (int i = 0; i < sf_mixer_registry_n; i++) {
        const sf_mixer_def *md = sf_mixer_registry[i];
        if (!(md->slots & SF_SLOT_TOKEN) || !strcmp(md->info.name, "identity") ||
            !listed(only, md->info.name))
            continue;
        char opts[160] = "";
        size_t len = 0;
        if (has_option(md, "n_heads"))
            len += (size_t)snprintf(opts + len, sizeof opts - len, ", \"n_heads\": %d", d / 32 > 0 ? d / 32 : 1);
        if (has_option(md, "causal")) len += (size_t)snprintf(opts + len, sizeof opts - len, ", \"causal\": true");
        if (has_option(md, "window")) len += (size_t)snprintf(opts + len, sizeof opts - len, ", \"window\": 256");
        if (has_option(md, "local_heads")) snprintf(opts + len, sizeof opts - len, ", \"local_heads\": 1");
        char cfg[1024];
        snprintf(cfg, sizeof cfg,
                 "{\"task\": \"lm\", \"model\": \"lm\", \"seq_len\": 256, \"max_len\": %d, "
                 "\"d_model\": %d, \"input\": {\"kind\": \"tokens\", \"vocab\": 65}, "
                 "\"positions\": \"sinusoidal\", \"blocks\": [{\"repeat\": %d, \"token_mixer\": "
                 "{\"kind\": \"%s\"%s}, \"channel_mixer\": {\"kind\": \"mlp\", \"d_ff\": %d}}]}",
                 max_len, d, layers, md->info.name, opts, 4 * d);
        sf_model m;
        if (sf_model_create_json(&m, cfg, md->info.name)) {
            fprintf(stderr, "%s: skipped: %s\n", md->info.name, sf_error_message());
            continue;
        }
        sf_model_init_weights(&m, 5402);
        sf_stream *s = sf_stream_create(&m);
        printf("| %s | %zu |", md->info.name, sf_stream_state_floats(&m));
        fflush(stdout);
        double t0 = now(), last_ms = 0, prev_ms = 0;
        int fed = 0, ok = 1;
        unsigned tok = 1;
        for (int c = 0; c < NC; c++) {
            /* time to fill up to ctx[c]: the per-token cost grows at most linearly with the
             * context among these mixers (softmax); extrapolate with the growth measured between
             * the last two contexts (its ratio per context ratio; 1 for a fixed-size state), or
             * linearly before two are measured */
            if (c > 0) {
                double grow = (double)ctx[c] / ctx[c - 1];
                if (c > 1 && prev_ms > 0) {
                    double seen = last_ms / prev_ms, per = (double)ctx[c - 1] / ctx[c - 2];
                    /* a measured ratio within the timing noise of flat (< 1.5x over 8x more
                     * context) counts as flat; otherwise scale the growth to this step */
                    double g = seen < 1.5 ? 1.0 : 1.0 + (seen - 1.0) * (grow - 1.0) / (per - 1.0);
                    grow = g < grow ? g : grow;
                }
                double est = (ctx[c] - fed) * last_ms * 1e-3 * (1 + grow) / 2;
                if (now() - t0 + est > budget) ok = 0;
            }
            if (!ok) {
                printf(" - |");
                continue;
            }
            for (; fed < ctx[c]; fed++) {
                tok = tok * 1103515245u + 12345u;
                if (!sf_stream_feed_token(s, (int)(tok >> 16) % 65)) {
                    fprintf(stderr, "%s\n", sf_error_message());
                    return 1;
                }
            }
            double ts = now();
            for (int k = 0; k < window; k++, fed++) {
                tok = tok * 1103515245u + 12345u;
                sf_stream_feed_token(s, (int)(tok >> 16) % 65);
            }
            prev_ms = last_ms;
            last_ms = (now() - ts) * 1e3 / window;
            printf(" %.3f (%.0f) |", last_ms, 1e3 / last_ms);
            fflush(stdout);
        }
        printf("\n");
        fflush(stdout);
        sf_stream_destroy(s);
        sf_model_destroy(&m);
    }
    return 0;
}
