/* The lm model and the streaming API (models/stream.h):
 *  - for every registered token mixer that can stream (causal where it has the option), a small
 *    lm fed token by token gives the full forward's logits (1e-5 relative), allocating nothing
 *    per step; a state saved mid-stream and loaded into a new stream continues identically;
 *  - a hybrid stack (residual, parallel and metaformer blocks) does the same;
 *  - a non-causal mixer is refused when the config is read, naming the block;
 *  - state files from another width, mixer, config or weights are refused with a clear message;
 *  - the lm's loss gradient (embedding, tied head, blocks) matches finite differences;
 *  - the cross-entropy gradient matches finite differences. */
#include <string.h>

#include "core/error.h"
#include "layers/layer.h"
#include "models/model.h"
#include "models/stream.h"
#include "tasks/lm.h"
#include "test_tmpdir.h"
#include "test_util.h"

enum { T = 12, V = 11, D = 16 };

static int has_option(const sf_mixer_def *md, const char *name) {
    for (int i = 0; i < md->info.n_opts; i++)
        if (!strcmp(md->info.opts[i].name, name)) return 1;
    return 0;
}

/* An lm config with two metaformer blocks of token mixer `mixer` (+ mlp). */
static void lm_config(char *buf, size_t n, const sf_mixer_def *md, int d, int causal,
                      const char *pos, int max_len) {
    char opts[224] = "";
    size_t len = 0;
    if (has_option(md, "n_heads")) len += (size_t)snprintf(opts + len, sizeof opts - len, ", \"n_heads\": 2");
    if (has_option(md, "causal"))
        len += (size_t)snprintf(opts + len, sizeof opts - len, ", \"causal\": %s", causal ? "true" : "false");
    if (has_option(md, "window")) len += (size_t)snprintf(opts + len, sizeof opts - len, ", \"window\": 4");
    if (has_option(md, "local_heads")) len += (size_t)snprintf(opts + len, sizeof opts - len, ", \"local_heads\": 1");
    /* Newton stops once max|F| <= newton_tol (default 1e-5), and a state that far from the
     * recurrence moves the logits by about as much; the stream runs the exact recurrence, so the
     * comparison asks the solve for float-level convergence. */
    if (has_option(md, "newton_tol"))
        snprintf(opts + len, sizeof opts - len, ", \"newton_iters\": 10, \"newton_tol\": 1e-6");
    snprintf(buf, n,
             "{\"task\": \"lm\", \"model\": \"lm\", \"seq_len\": %d, \"max_len\": %d, \"d_model\": %d,"
             " \"input\": {\"kind\": \"tokens\", \"vocab\": %d}, \"positions\": \"%s\","
             " \"blocks\": [{\"repeat\": 2, \"token_mixer\": {\"kind\": \"%s\"%s},"
             " \"channel_mixer\": {\"kind\": \"mlp\", \"d_ff\": 24}}],"
             " \"head\": {\"kind\": \"lm\"}}",
             T, max_len, d, V, pos, md->info.name, opts);
}

static void random_tokens(float *x, int n, uint64_t seed) {
    sf_rng r;
    sf_rng_seed(&r, seed);
    for (int i = 0; i < n; i++) x[i] = (float)sf_rng_below(&r, V);
}

/* Full forward vs stream, save/load mid-stream, and allocations per step. */
static void check_stream(sf_model *m, const char *what, uint64_t seed) {
    float x[2 * T], full[2 * T * V], step[T * V], y[V];
    random_tokens(x, 2 * T, seed + 7);
    sf_model_forward(m, x, full, 2, 0, NULL);
    sf_stream *s = sf_stream_create(m), *s2 = sf_stream_create(m);
    CHECK_MSG(s && s2, "%s: %s", what, sf_error_message());
    if (!s || !s2) {
        sf_stream_destroy(s);
        sf_stream_destroy(s2);
        return;
    }
    CHECK(sf_stream_out_floats(s) == V && sf_stream_in_floats(s) == 1);
    /* the second sequence of the batch, so batch rows stay independent too */
    const float *xs = x + T, *ref = full + T * V;
    long allocs = sf_alloc_count();
    for (int t = 0; t < T; t++) CHECK(sf_stream_feed(s, xs + t, step + t * V) == SF_OK);
    long per_step = sf_alloc_count() - allocs;
    CHECK_MSG(per_step == 0, "%s: %ld allocations in %d steps (steps must allocate nothing)", what,
              per_step, T);
    double err = max_rel_err(step, ref, (long)T * V, 1e-6);
    CHECK_MSG(err <= 1e-5, "%s: stream vs full forward max rel err %.3g", what, err);
    printf("  %-44s stream vs forward %.2e, %ld allocations per %d steps, state %zu floats\n",
           what, err, per_step, T, sf_stream_state_floats(m));
    /* save at T/2, load into another stream, continue both */
    sf_stream_reset(s);
    for (int t = 0; t < T / 2; t++) sf_stream_feed(s, xs + t, y);
    const char *path = tmp_path("mid.state");
    CHECK_MSG(sf_stream_save(s, path) == SF_OK, "%s", sf_error_message());
    CHECK_MSG(sf_stream_load(s2, path) == SF_OK, "%s: %s", what, sf_error_message());
    CHECK(sf_stream_position(s2) == T / 2);
    int same = 1;
    for (int t = T / 2; t < T; t++) {
        float y2[V];
        sf_stream_feed(s, xs + t, y);
        sf_stream_feed(s2, xs + t, y2);
        same &= memcmp(y, y2, sizeof y) == 0 && memcmp(y, step + t * V, sizeof y) == 0;
    }
    CHECK_MSG(same, "%s: a loaded state continues differently", what);
    /* bad inputs: not a token id; a full stream */
    sf_stream_reset(s2);
    float bad = (float)V;
    CHECK(sf_stream_feed(s2, &bad, y) == SF_ERR && strstr(sf_error_message(), "token"));
    bad = 0.5f;
    CHECK(sf_stream_feed(s2, &bad, y) == SF_ERR);
    CHECK(sf_stream_position(s2) == 0);
    for (int t = 0; t < sf_stream_max_steps(s2); t++) sf_stream_feed_token(s2, t % V);
    CHECK(sf_stream_feed_token(s2, 0) == NULL && strstr(sf_error_message(), "full"));
    sf_stream_destroy(s);
    sf_stream_destroy(s2);
}

static void test_every_mixer(uint64_t seed) {
    int streamed = 0;
    for (int i = 0; i < sf_mixer_registry_n; i++) {
        const sf_mixer_def *md = sf_mixer_registry[i];
        if (!(md->slots & SF_SLOT_TOKEN)) continue;
        char cfg[1024];
        lm_config(cfg, sizeof cfg, md, D, 1, "learned", T);
        sf_model m;
        if (sf_model_create_json(&m, cfg, "cfg")) {
            /* a mixer without a causal streaming form is refused, naming block and mixer */
            const char *e = sf_error_message();
            CHECK_MSG(strstr(e, "blocks[0].token_mixer") && (strstr(e, "cannot stream") || strstr(e, "causal")), "%s: %s",
                      md->info.name, e);
            printf("  %-44s refused: %s\n", md->info.name, e);
            continue;
        }
        sf_model_init_weights(&m, seed + (uint64_t)i);
        check_stream(&m, md->info.name, seed + (uint64_t)i);
        streamed++;
        sf_model_destroy(&m);
    }
    CHECK(streamed >= 5); /* softmax, linear, identity, local, ls, rpe, cosformer, ... */
}

/* Positions acting inside softmax attention stream too, allocation-free: rotary and T5 biases. */
static void test_positions(uint64_t seed) {
    static const char *const pos[] = {"rope", "t5"};
    for (int i = 0; i < 2; i++) {
        char cfg[1024], what[64];
        lm_config(cfg, sizeof cfg, sf_mixer_find("softmax"), D, 1, pos[i], T);
        sf_model m;
        CHECK_MSG(sf_model_create_json(&m, cfg, "cfg") == SF_OK, "%s: %s", pos[i], sf_error_message());
        sf_model_init_weights(&m, seed + 100 + (uint64_t)i);
        snprintf(what, sizeof what, "softmax, positions %s", pos[i]);
        check_stream(&m, what, seed + 100 + (uint64_t)i);
        sf_model_destroy(&m);
    }
}

static void test_hybrid(uint64_t seed) {
    const char *cfg =
        "{\"model\": \"lm\", \"task\": \"lm\", \"seq_len\": 12, \"max_len\": 40, \"d_model\": 16,"
        " \"input\": {\"kind\": \"tokens\", \"vocab\": 11}, \"positions\": \"sinusoidal\","
        " \"blocks\": ["
        "  {\"kind\": \"residual\", \"mixer\": {\"kind\": \"softmax\", \"n_heads\": 4, \"causal\": true}},"
        "  {\"kind\": \"parallel\", \"token_mixer\": {\"kind\": \"linear\", \"causal\": true},"
        "   \"channel_mixer\": {\"kind\": \"glu\", \"d_ff\": 8}},"
        "  {\"placement\": \"post\", \"norm\": \"rmsnorm\","
        "   \"token_mixer\": {\"kind\": \"local\", \"causal\": true, \"window\": 3}}],"
        " \"final_norm\": \"rmsnorm\", \"head\": {\"kind\": \"lm\", \"tie_weights\": true, \"bias\": true}}";
    sf_model m;
    CHECK_MSG(sf_model_create_json(&m, cfg, "hybrid") == SF_OK, "%s", sf_error_message());
    if (!m.def) return;
    CHECK(sf_params_find(&m.params, "head.weight") < 0 && sf_params_find(&m.params, "head.bias") >= 0);
    sf_model_init_weights(&m, seed);
    check_stream(&m, "hybrid residual/parallel/post, tied head", seed);
    sf_model_destroy(&m);
}

static void test_refusals(void) {
    const sf_mixer_def *sm = sf_mixer_find("softmax"), *lin = sf_mixer_find("linear");
    char cfg[1024];
    sf_model m;
    lm_config(cfg, sizeof cfg, sm, D, 0, "learned", T);
    CHECK(sf_model_create_json(&m, cfg, "cfg") == SF_ERR);
    CHECK_MSG(strstr(sf_error_message(), "blocks[0].token_mixer") &&
                  strstr(sf_error_message(), "causal"),
              "%s", sf_error_message());
    lm_config(cfg, sizeof cfg, sm, D, 1, "learned", 2 * T);
    CHECK(sf_model_create_json(&m, cfg, "cfg") == SF_ERR && strstr(sf_error_message(), "max_len"));
    /* a forecaster cannot stream */
    const char *fc = "{\"model\": \"dlinear\", \"seq_len\": 8, \"pred_len\": 4, \"n_channels\": 1}";
    CHECK(sf_model_create_json(&m, fc, "fc") == SF_OK);
    CHECK(sf_stream_create(&m) == NULL && strstr(sf_error_message(), "cannot stream"));
    sf_model_destroy(&m);

    /* state files: another width, mixer, config, weights */
    sf_model a, b;
    lm_config(cfg, sizeof cfg, sm, D, 1, "learned", T);
    CHECK(sf_model_create_json(&a, cfg, "a") == SF_OK);
    sf_model_init_weights(&a, 1);
    sf_stream *sa = sf_stream_create(&a);
    sf_stream_feed_token(sa, 3);
    const char *path = tmp_path("a.state");
    CHECK(sf_stream_save(sa, path) == SF_OK);
    struct {
        const sf_mixer_def *md;
        int d;
        const char *pos;
        uint64_t seed;
        const char *expect;
    } cases[] = {{sm, 2 * D, "learned", 1, "width"},
                 {lin, D, "learned", 1, "mixers"},
                 {sm, D, "sinusoidal", 1, "config"},
                 {sm, D, "learned", 2, "weights"}};
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        lm_config(cfg, sizeof cfg, cases[k].md, cases[k].d, 1, cases[k].pos, T);
        CHECK(sf_model_create_json(&b, cfg, "b") == SF_OK);
        sf_model_init_weights(&b, cases[k].seed);
        sf_stream *sb = sf_stream_create(&b);
        CHECK_MSG(sf_stream_load(sb, path) == SF_ERR && strstr(sf_error_message(), cases[k].expect),
                  "case %zu: %s", k, sf_error_message());
        printf("  refused (%s): %s\n", cases[k].expect, sf_error_message());
        sf_stream_destroy(sb);
        sf_model_destroy(&b);
    }
    FILE *f = fopen(tmp_path("junk.state"), "w");
    fputs("hello\n", f);
    fclose(f);
    CHECK(sf_stream_load(sa, tmp_path("junk.state")) == SF_ERR &&
          strstr(sf_error_message(), "not a seqformer stream state"));
    sf_stream_destroy(sa);
    sf_model_destroy(&a);
}

/* Loss = mean cross-entropy of model(x) against y: parameter gradients vs central differences
 * on a sample of entries of every tensor (double accumulation of the loss). */
static double model_loss(sf_model *m, const float *x, const float *y, float *out, float *dout) {
    sf_model_forward(m, x, out, 2, dout != NULL, NULL);
    return sf_lm_cross_entropy(out, y, dout, 2L * T, V);
}

static void test_gradients(uint64_t seed) {
    const char *cfg =
        "{\"model\": \"lm\", \"task\": \"lm\", \"seq_len\": 12, \"d_model\": 16,"
        " \"input\": {\"kind\": \"tokens\", \"vocab\": 11},"
        " \"blocks\": [{\"token_mixer\": {\"kind\": \"softmax\", \"n_heads\": 2, \"causal\": true},"
        "   \"channel_mixer\": {\"kind\": \"mlp\", \"d_ff\": 24}}],"
        " \"head\": {\"kind\": \"lm\", \"tie_weights\": true, \"bias\": true}}";
    sf_model m;
    CHECK_MSG(sf_model_create_json(&m, cfg, "grad") == SF_OK, "%s", sf_error_message());
    sf_model_init_weights(&m, seed);
    sf_rng r;
    sf_rng_seed(&r, seed + 1);
    /* larger weights than the 0.02 init so the gradients are well above float noise */
    for (size_t i = 0; i < m.params.total; i++) m.params.data[i] += 0.3f * sf_rng_normal(&r);
    float x[2 * T], y[2 * T], out[2 * T * V], dout[2 * T * V];
    random_tokens(x, 2 * T, seed + 2);
    random_tokens(y, 2 * T, seed + 3);
    sf_params_zero_grad(&m.params);
    model_loss(&m, x, y, out, dout);
    sf_model_backward(&m, dout, 2);
    double worst = 0;
    for (int p = 0; p < m.params.n; p++) {
        const sf_param *pp = &m.params.p[p];
        for (int k = 0; k < 3; k++) {
            size_t j = pp->offset + sf_rng_below(&r, (uint32_t)pp->numel);
            float keep = m.params.data[j], h = 1e-2f;
            m.params.data[j] = keep + h;
            double lp = model_loss(&m, x, y, out, NULL);
            m.params.data[j] = keep - h;
            double lm = model_loss(&m, x, y, out, NULL);
            m.params.data[j] = keep;
            double fd = (lp - lm) / (2 * h), an = m.params.grad[j];
            double err = fabs(fd - an) / (fabs(fd) + fabs(an) + 1e-3);
            if (err > worst) worst = err;
            CHECK_MSG(err < 2e-2, "%s[%zu]: analytic %.6g fd %.6g", pp->name, j - pp->offset, an, fd);
        }
    }
    printf("  lm gradients (tied head + bias, softmax + mlp): worst rel err %.2e\n", worst);
    sf_model_destroy(&m);
}

static void test_cross_entropy(uint64_t seed) {
    enum { N = 5, K = 7 };
    float z[N * K], y[N], g[N * K];
    sf_rng r;
    sf_rng_seed(&r, seed + 9);
    for (int i = 0; i < N * K; i++) z[i] = 3 * sf_rng_normal(&r);
    for (int i = 0; i < N; i++) y[i] = (float)sf_rng_below(&r, K);
    double l0 = sf_lm_cross_entropy(z, y, g, N, K);
    CHECK(l0 > 0);
    double worst = 0;
    for (int i = 0; i < N * K; i++) {
        float keep = z[i];
        z[i] = keep + 1e-2f;
        double lp = sf_lm_cross_entropy(z, y, NULL, N, K);
        z[i] = keep - 1e-2f;
        double lm = sf_lm_cross_entropy(z, y, NULL, N, K);
        z[i] = keep;
        double err = fabs((lp - lm) / 2e-2 - g[i]);
        if (err > worst) worst = err;
    }
    CHECK_MSG(worst < 1e-4, "cross-entropy gradient off by %.3g", worst);
    /* uniform logits: loss ln K */
    for (int i = 0; i < N * K; i++) z[i] = 0.25f;
    CHECK_NEAR(sf_lm_cross_entropy(z, y, NULL, N, K), log((double)K), 1e-6);
}

int main(void) {
    uint64_t seed = test_seed();
    if (test_tmpdir_create("sf_stream")) return 1;
    test_every_mixer(seed);
    test_positions(seed);
    test_hybrid(seed);
    test_refusals();
    test_gradients(seed);
    test_cross_entropy(seed);
    test_tmpdir_remove();
    printf("%d passed, %d failed\n", t_passed, t_failed);
    return t_failed ? 1 : 0;
}
