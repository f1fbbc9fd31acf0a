/* seqformer generate: stream text from an lm checkpoint, token by token, through the streaming
 * API (models/stream.h): softmax attention keeps its KV cache, linear/recurrent mixers their
 * running state, so each token costs one step, not a forward pass over the whole context.
 *
 * The prompt's bytes are fed first (each must be in the checkpoint's vocabulary), then --tokens
 * tokens are sampled and written to stdout as they are produced (flushed per token; only the
 * continuation is printed, not the prompt). Sampling: logits / temperature, then top-k, then
 * top-p (nucleus) on what is left, renormalised, drawn from --seed (a fixed seed gives the same
 * text). --temperature 0 is greedy (argmax; top-k/top-p then have no effect).
 * When the stream reaches the model's max_len, it restarts from the last max_len/2 tokens (a
 * sliding window: positions and the KV cache cannot grow past max_len).
 * --state-in continues a saved stream (the prompt may then be empty); --state-out saves the
 * stream when generation ends, also after Ctrl-C.
 * Ctrl-C (SIGINT) stops after the current token: the text so far stays on stdout, the state is
 * saved if asked, and the exit code is 130. Other exit codes: 0 done, 1 bad input or a model that
 * cannot generate, 2 usage. */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/common.h"
#include "core/error.h"
#include "core/rng.h"
#include "models/stream.h"
#include "tasks/lm.h"

static volatile sig_atomic_t interrupted;

static void on_sigint(int sig) {
    (void)sig;
    interrupted = 1;
}

typedef struct {
    float temperature, top_p;
    int top_k, V;
    double *p; /* [V] */
    int *order; /* [V] */
} sampler;

static const double *sort_key;
static int by_prob_desc(const void *a, const void *b) {
    double x = sort_key[*(const int *)a], y = sort_key[*(const int *)b];
    if (x != y) return x < y ? 1 : -1;
    return *(const int *)a - *(const int *)b; /* ties by id: deterministic */
}

static int sample(sampler *s, const float *logits, sf_rng *rng) {
    int V = s->V, best = 0;
    for (int i = 1; i < V; i++)
        if (logits[i] > logits[best]) best = i;
    if (s->temperature == 0) return best;
    double sum = 0;
    for (int i = 0; i < V; i++) {
        s->p[i] = exp(((double)logits[i] - logits[best]) / s->temperature);
        sum += s->p[i];
    }
    for (int i = 0; i < V; i++) s->p[i] /= sum, s->order[i] = i;
    sort_key = s->p;
    qsort(s->order, (size_t)V, sizeof *s->order, by_prob_desc);
    int keep = s->top_k > 0 && s->top_k < V ? s->top_k : V;
    double cum = 0;
    for (int i = 0; i < keep; i++) {
        cum += s->p[s->order[i]];
        if (cum >= s->top_p) {
            keep = i + 1;
            break;
        }
    }
    double mass = 0;
    for (int i = 0; i < keep; i++) mass += s->p[s->order[i]];
    double u = (double)sf_rng_uniform(rng) * mass;
    for (int i = 0; i < keep; i++) {
        u -= s->p[s->order[i]];
        if (u < 0) return s->order[i];
    }
    return s->order[keep - 1];
}

/* Feed one token, restarting from the last half window when the stream is full. */
static const float *feed(sf_stream *st, int *hist, int *n_hist, int token) {
    int cap = sf_stream_max_steps(st);
    if (sf_stream_position(st) >= cap) {
        int keep = cap / 2 < *n_hist ? cap / 2 : *n_hist; /* a loaded stream's tokens are unknown */
        memmove(hist, hist + *n_hist - keep, (size_t)keep * sizeof *hist);
        *n_hist = keep;
        sf_stream_reset(st);
        for (int i = 0; i < keep; i++)
            if (!sf_stream_feed_token(st, hist[i])) return NULL;
    }
    if (*n_hist == cap) { /* the history only needs the last window */
        memmove(hist, hist + 1, (size_t)(cap - 1) * sizeof *hist);
        (*n_hist)--;
    }
    hist[(*n_hist)++] = token;
    return sf_stream_feed_token(st, token);
}

int cmd_generate(int argc, char **argv) {
    const char *model = NULL, *prompt = "", *state_in = NULL, *state_out = NULL, *nodata = NULL;
    int n_tokens = 256, top_k = 0, seed = 0, threads = 0;
    float temperature = 1.0f, top_p = 1.0f;
    arg_spec specs[] = {
        {"model", ARG_STRING, &model, 0, 0, NULL, "lm checkpoint (model.safetensors)", 0},
        {"prompt", ARG_STRING, &prompt, 0, 0, NULL, "text fed before sampling (its bytes must be in the vocabulary)", 0},
        {"tokens", ARG_INT, &n_tokens, 0, 100000000, NULL, "tokens to generate", 0},
        {"temperature", ARG_FLOAT, &temperature, -1e30, 1e30, NULL,
         "sampling temperature (> 0; 0: greedy argmax)", 0},
        {"top-k", ARG_INT, &top_k, -2147483647, 2147483647, NULL,
         "sample among the k most likely tokens (>= 1; default: all)", 0},
        {"top-p", ARG_FLOAT, &top_p, -1e30, 1e30, NULL,
         "nucleus: the most likely tokens whose probabilities sum to p, in (0, 1] (default 1)", 0},
        {"seed", ARG_INT, &seed, 0, 2147483647, NULL, "sampling seed (same seed, same text)", 0},
        {"state-in", ARG_STRING, &state_in, 0, 0, NULL, "continue a stream saved with --state-out", 0},
        {"state-out", ARG_STRING, &state_out, 0, 0, NULL, "save the stream at the end (also after Ctrl-C)", 0},
        {"threads", ARG_INT, &threads, 0, 1024, NULL, "threads (0: OpenMP default)", 0},
    };
    int ns = (int)(sizeof specs / sizeof *specs);
    sf_model m;
    sf_meta meta;
    /* check the sampling flags before loading anything */
    int pr = args_parse("generate", argc, argv, specs, ns,
                        "--model DIR/model.safetensors --prompt TEXT [--tokens N] [flags]");
    if (pr == 1) return 0;
    if (pr != SF_OK) return cli_fail(2);
    if (!(temperature >= 0))
        return sf_errorf("generate: --temperature %g: must be > 0 (or 0 for greedy decoding)",
                         (double)temperature), cli_fail(2);
    if (args_seen(specs, ns, "top-k") && top_k < 1)
        return sf_errorf("generate: --top-k %d keeps no token: give k >= 1 (omit it to sample "
                         "from the whole vocabulary)",
                         top_k), cli_fail(2);
    if (!(top_p > 0 && top_p <= 1))
        return sf_errorf("generate: --top-p %g: must be in (0, 1]", (double)top_p), cli_fail(2);
    int early = cli_parse_and_load("generate", argc, argv, specs, ns, "", &model,
                                   (const char *const *)&nodata, 0, &threads, &m, &meta);
    if (early >= 0) return early;
    int rc = 1;
    sf_stream *st = NULL;
    int *hist = NULL;
    sampler smp = {temperature, top_p, top_k, 0, NULL, NULL};
    sf_lm_vocab v;
    if (sf_stream_check(&m)) {
        sf_error_prefix("generate: %s", model);
        goto out;
    }
    if (sf_lm_vocab_from_meta(&meta, &v)) {
        sf_error_prefix("generate: %s", model);
        goto out;
    }
    size_t plen = strlen(prompt);
    for (size_t i = 0; i < plen; i++)
        if (v.id_of[(unsigned char)prompt[i]] < 0) {
            unsigned char c = (unsigned char)prompt[i];
            char shown[8] = "";
            if (c >= 0x20 && c < 0x7f) snprintf(shown, sizeof shown, " '%c'", c);
            sf_errorf("generate: --prompt byte %zu (0x%02x%s) is not in the model's vocabulary "
                      "(the %d characters of its training text)",
                      i, c, shown, v.vocab);
            goto out;
        }
    if (!plen && !state_in) {
        sf_errorf("generate: --prompt is empty: give at least one character (or --state-in)");
        rc = 2;
        goto out;
    }
    st = sf_stream_create(&m);
    if (!st) goto out;
    if (sf_stream_out_floats(st) != v.vocab) {
        sf_errorf("generate: %s: the model has %ld outputs but its tokenizer %d tokens", model,
                  sf_stream_out_floats(st), v.vocab);
        goto out;
    }
    if (state_in && sf_stream_load(st, state_in)) goto out;
    smp.V = v.vocab;
    smp.p = sf_malloc((size_t)v.vocab * sizeof *smp.p);
    smp.order = sf_malloc((size_t)v.vocab * sizeof *smp.order);
    int cap = sf_stream_max_steps(st), n_hist = 0;
    hist = sf_malloc((size_t)cap * sizeof *hist);
    if (state_in && sf_stream_position(st) > 0 && plen == 0) {
        sf_errorf("generate: --state-in without --prompt has no logits to sample from: give the "
                  "next character(s) as --prompt");
        rc = 2;
        goto out;
    }
    /* a loaded stream that is full restarts with the prompt alone (its tokens are unknown) */
    if (sf_stream_position(st) + (int)plen > cap) sf_stream_reset(st);
    const float *logits = NULL;
    for (size_t i = 0; i < plen; i++)
        if (!(logits = feed(st, hist, &n_hist, v.id_of[(unsigned char)prompt[i]]))) goto out;
    sf_rng rng;
    sf_rng_seed_stream(&rng, (uint64_t)seed, 7);
    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old);
    int produced = 0;
    for (; produced < n_tokens && !interrupted; produced++) {
        int tok = sample(&smp, logits, &rng);
        fputc(v.byte_of[tok], stdout);
        fflush(stdout);
        if (produced + 1 < n_tokens || state_out)
            if (!(logits = feed(st, hist, &n_hist, tok))) break;
    }
    sigaction(SIGINT, &old, NULL);
    if (produced < n_tokens && !interrupted) goto out; /* a failed step */
    if (state_out && sf_stream_save(st, state_out)) goto out;
    if (interrupted) {
        fprintf(stderr, "\nseqformer: generate: interrupted after %d of %d tokens\n", produced,
                n_tokens);
        rc = 130;
    } else {
        rc = 0;
    }
out:
    if (rc == 1 || rc == 2) cli_fail(rc);
    free(hist);
    free(smp.p);
    free(smp.order);
    sf_stream_destroy(st);
    sf_model_destroy(&m);
    sf_meta_free(&meta);
    return rc;
}
