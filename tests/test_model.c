/* The modular core: model configs (canonical form, exact floats, v1 and flag shorthands, errors
 * with field paths), the token embedding (scatter backward), positions at an offset, the arena
 * re-planned as the batch grows, and two threads running inference on one model at once, each
 * with its own sf_run. Random inputs; the seed is printed. */
#include <math.h>
#include <omp.h>
#include <pthread.h>
#include <string.h>

#include "core/error.h"
#include "layers/embedding.h"
#include "layers/pool.h"
#include "layers/positions.h"
#include "models/model.h"
#include "tasks/losses.h"
#include "test_util.h"

static sf_rng g_rng;

static cJSON *norm_text(const char *json) {
    cJSON *raw = cJSON_Parse(json), *out = NULL;
    if (!raw) return NULL;
    if (sf_config_normalize(raw, &out)) out = NULL;
    cJSON_Delete(raw);
    return out;
}

static void check_config_roundtrip(void) {
    const char *user =
        "{\"model\":\"patchtst\",\"dropout\":0.3,\"blocks\":[{\"repeat\":2,\"dropout\":0.1,"
        "\"norm\":{\"kind\":\"layernorm\",\"eps\":1e-6},\"channel_mixer\":{\"dropout\":0.05}}],"
        "\"head\":{\"dropout\":0.15}}";
    cJSON *a = norm_text(user);
    CHECK_MSG(a != NULL, "%s", sf_error_message());
    if (!a) return;
    char *ta = sf_config_print(a, 0), *tp = sf_config_print(a, 1);
    /* exact floats: the decimal the user wrote, not float32's double expansion */
    CHECK(strstr(ta, "\"dropout\":0.3,") && strstr(ta, "\"eps\":1e-06") &&
          strstr(ta, "\"dropout\":0.05") && !strstr(ta, "0.30000001"));
    /* canonical form is a fixed point, in both print forms */
    cJSON *b = norm_text(ta), *c = norm_text(tp);
    char *tb = b ? sf_config_print(b, 0) : NULL, *tc = c ? sf_config_print(c, 0) : NULL;
    CHECK(tb && strcmp(ta, tb) == 0);
    CHECK(tc && strcmp(ta, tc) == 0);
    /* defaults filled: format_version, task, softmax/mlp mixers, learned positions */
    CHECK(strstr(ta, "\"format_version\":2") && strstr(ta, "\"task\":\"forecast\"") &&
          strstr(ta, "\"kind\":\"softmax\"") && strstr(ta, "\"kind\":\"mlp\"") &&
          strstr(ta, "\"positions\":{\"kind\":\"learned\"}"));
    /* the float read back is the float the user meant */
    sf_model m;
    CHECK(sf_model_create(&m, a) == SF_OK);
    const cJSON *blk = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(m.config, "blocks"), 0);
    CHECK(sf_opt_float(blk, "dropout") == 0.1f && sf_opt_float(m.config, "dropout") == 0.3f);
    sf_model_destroy(&m);
    free(ta), free(tp), free(tb), free(tc);
    cJSON_Delete(a), cJSON_Delete(b), cJSON_Delete(c);
}

/* The flag shorthand, a 0.1 (format_version 1) config and the v2 JSON written by hand describe the
 * same model: identical canonical configs. */
static void check_shorthands(void) {
    sf_flat_config f;
    sf_flat_config_defaults(&f, "patchtst");
    f.seq_len = 96;
    strcpy(f.mixer, "linear");
    strcpy(f.norm, "rmsnorm");
    strcpy(f.norm_place, "pre");
    cJSON *flags = sf_flat_config_to_json(&f), *from_flags;
    CHECK(sf_config_normalize(flags, &from_flags) == SF_OK);
    cJSON *v1 = norm_text(
        "{\"format_version\":1,\"model\":\"patchtst\",\"seq_len\":96,\"pred_len\":96,"
        "\"n_channels\":7,\"d_model\":16,\"n_heads\":4,\"e_layers\":3,\"d_ff\":128,\"patch_len\":16,"
        "\"stride\":8,\"revin\":true,\"dropout\":0.300000011920929,\"head_dropout\":0,"
        "\"mixer\":\"linear\",\"causal\":false,\"norm\":\"rmsnorm\",\"norm_place\":\"pre\","
        "\"pos\":\"learned\"}");
    cJSON *v2 = norm_text(
        "{\"format_version\":2,\"model\":\"patchtst\",\"seq_len\":96,\"dropout\":0.3,"
        "\"blocks\":[{\"repeat\":3,\"dropout\":0.3,\"norm\":{\"kind\":\"rmsnorm\"},"
        "\"token_mixer\":{\"kind\":\"linear\"},\"channel_mixer\":{\"dropout\":0.3}}]}");
    CHECK(v1 && v2 && from_flags);
    if (v1 && v2 && from_flags) {
        CHECK(cJSON_Compare(from_flags, v1, 1));
        CHECK(cJSON_Compare(from_flags, v2, 1));
    }
    cJSON_Delete(flags), cJSON_Delete(from_flags), cJSON_Delete(v1), cJSON_Delete(v2);
}

static void expect_error(const char *json, const char *msg) {
    sf_model m;
    int rc = sf_model_create_json(&m, json, "cfg.json");
    CHECK_MSG(rc == SF_ERR && strstr(sf_error_message(), msg), "%s -> '%s' (wanted '%s')", json,
              rc ? sf_error_message() : "accepted", msg);
    if (rc == SF_OK) sf_model_destroy(&m);
}

static void check_config_errors(void) {
    expect_error("{\"model\":\"patchtst\",\n\"blocks\":[}", "cfg.json: malformed JSON at line 2, column 11");
    expect_error("[1,2]", "cfg.json: config: expected a JSON object");
    expect_error("{\"blocks\":[]}", "model: missing or not a string (known: patchtst, dlinear");
    expect_error("{\"model\":\"gpt\"}", "model: unknown model 'gpt' (known: patchtst, dlinear");
    expect_error("{\"model\":\"patchtst\",\"task\":\"translate\",\"blocks\":[]}", "task: unknown task 'translate' (known: forecast, classify, lm)");
    expect_error("{\"model\":\"patchtst\",\"blocks\":{}}", "blocks: missing or not a list");
    expect_error("{\"model\":\"patchtst\",\"blocks\":[{\"kind\":\"mamba\"}]}",
                 "blocks[0].kind: unknown block kind 'mamba' (known: metaformer, residual, parallel)");
    expect_error("{\"model\":\"patchtst\",\"blocks\":[{},{\"token_mixer\":{\"kind\":\"mlp\"}}]}",
                 "blocks[1].token_mixer.kind: unknown mixer 'mlp' (known: softmax, linear, identity");
    expect_error("{\"model\":\"patchtst\",\"blocks\":[{\"channel_mixer\":{\"d_ff\":0}}]}",
                 "blocks[0].channel_mixer.d_ff: must be >= 1 (got 0)");
    expect_error("{\"model\":\"patchtst\",\"blocks\":[{\"channel_mixer\":{\"d_ff\":2.5}}]}",
                 "blocks[0].channel_mixer.d_ff: expected an integer");
    expect_error("{\"model\":\"patchtst\",\"blocks\":[{\"channel_mixer\":{\"d_ff\":1e300}}]}",
                 "blocks[0].channel_mixer.d_ff: must be <= 1048576 (got 1e+300)");
    expect_error("{\"model\":\"patchtst\",\"blocks\":[{\"placement\":\"middle\"}]}",
                 "blocks[0].placement: 'middle' is not one of pre|post");
    expect_error("{\"model\":\"patchtst\",\"blocks\":[{\"norm\":{\"kind\":\"rmsnorm\",\"momentum\":0.2}}]}",
                 "blocks[0].norm: unknown option 'momentum' (options: eps, kind)");
    expect_error("{\"model\":\"patchtst\",\"blocks\":[{\"kind\":\"residual\"}]}", "blocks[0].mixer: missing");
    expect_error("{\"model\":\"patchtst\",\"d_model\":12,\"blocks\":[{},{\"token_mixer\":{\"n_heads\":5}}]}",
                 "blocks[1].token_mixer: n_heads: 5 does not divide d_model 12");
    expect_error("{\"model\":\"patchtst\",\"seq_len\":8,\"pred_len\":4,\"blocks\":[]}",
                 "input.patch_len: 16 is longer than seq_len 8");
    expect_error("{\"model\":\"patchtst\",\"d_model\":7,\"positions\":\"sinusoidal\",\"blocks\":[{\"token_mixer\":{\"n_heads\":7}}]}",
                 "positions: kind: sinusoidal positions need an even d_model (got 7)");
    expect_error("{\"model\":\"dlinear\",\"kernel_size\":24}", "kernel_size: 24 must be odd");
    expect_error("{\"model\":\"dlinear\",\"blocks\":[]}", "config: unknown option 'blocks'");
    expect_error("{\"format_version\":3,\"model\":\"dlinear\"}", "format_version: 3 is newer than this build reads (2)");
    expect_error("{\"format_version\":\"2\",\"model\":\"dlinear\"}", "format_version: expected a positive integer");
    /* the input and head registries are shared: each model takes only the kinds it implements */
    expect_error("{\"model\":\"itransformer\",\"input\":{\"time_tokens\":true},\"freq\":\"auto\","
                 "\"blocks\":[]}",
                 "freq: 'auto' is resolved from the data when training");
    expect_error("{\"model\":\"itransformer\",\"freq\":\"q\",\"blocks\":[]}",
                 "freq: 'q' is not one of auto|h|t|s|d|b|w|m");
    expect_error("{\"model\":\"itransformer\",\"input\":\"patches\",\"blocks\":[]}",
                 "input.kind: itransformer embeds each variate as one token (inverted), not 'patches'");
    expect_error("{\"model\":\"itransformer\",\"head\":\"flatten\",\"blocks\":[]}",
                 "head.kind: itransformer projects each token (per_token), not 'flatten'");
    expect_error("{\"model\":\"patchtst\",\"input\":\"inverted\",\"blocks\":[]}",
                 "input.kind: patchtst reads its input as patches, not 'inverted'");
    expect_error("{\"model\":\"patchtst\",\"head\":\"per_token\",\"blocks\":[]}",
                 "head.kind: patchtst's head is flatten, not 'per_token'");
    expect_error("{\"model\":\"itransformer\",\"d_model\":12,\"blocks\":[{\"token_mixer\":{\"n_heads\":5}}]}",
                 "blocks[0].token_mixer: n_heads: 5 does not divide d_model 12");
    expect_error("{\"model\":\"itransformer\",\"final_norm\":\"auto\",\"blocks\":[]}",
                 "final_norm: 'auto' is not one of none|layernorm|rmsnorm|batchnorm");
}

/* The efficient attention mixers' options that depend on the sequence (PatchTST's default shape
 * has 42 patches) or on each other are refused when the config is read, naming block and option. */
static void check_efficient_mixer_errors(void) {
#define TOK(m) "{\"model\":\"patchtst\",\"blocks\":[{},{\"token_mixer\":" m "}]}"
    expect_error(TOK("{\"kind\":\"local\",\"window\":41}"),
                 "blocks[1].token_mixer: window: 41 covers the whole sequence (42 tokens");
    expect_error(TOK("{\"kind\":\"local\",\"window\":500,\"causal\":true}"),
                 "blocks[1].token_mixer: window: 500 covers the whole sequence (42 tokens");
    expect_error(TOK("{\"kind\":\"local\",\"window\":0}"), "blocks[1].token_mixer.window: must be >= 1 (got 0)");
    expect_error(TOK("{\"kind\":\"linformer\",\"k\":43}"),
                 "blocks[1].token_mixer: k: 43 exceeds the sequence length 42");
    expect_error(TOK("{\"kind\":\"linformer\",\"k\":0}"), "blocks[1].token_mixer.k: must be >= 1 (got 0)");
    expect_error(TOK("{\"kind\":\"linformer\",\"causal\":true}"),
                 "blocks[1].token_mixer: causal: linformer has no causal form");
    expect_error(TOK("{\"kind\":\"fastformer\",\"causal\":true}"),
                 "blocks[1].token_mixer: causal: fastformer has no causal form");
    expect_error(TOK("{\"kind\":\"fastformer\",\"window\":3}"),
                 "blocks[1].token_mixer: unknown option 'window' (options: n_heads, causal, kind)");
    expect_error(TOK("{\"kind\":\"ls\",\"n_heads\":4,\"local_heads\":5}"),
                 "blocks[1].token_mixer: local_heads: 5 leaves no global head (n_heads 4)");
    expect_error(TOK("{\"kind\":\"ls\",\"n_heads\":2,\"local_heads\":2}"),
                 "blocks[1].token_mixer: local_heads: 2 leaves no global head (n_heads 2)");
    expect_error(TOK("{\"kind\":\"ls\",\"window\":41}"),
                 "blocks[1].token_mixer: window: 41 covers the whole sequence (42 tokens");
    expect_error("{\"model\":\"patchtst\",\"blocks\":[{\"kind\":\"residual\",\"mixer\":"
                 "{\"kind\":\"linformer\",\"k\":100}}]}",
                 "blocks[0].mixer: k: 100 exceeds the sequence length 42");
    expect_error("{\"model\":\"patchtst\",\"blocks\":[{\"channel_mixer\":{\"kind\":\"local\"}}]}",
                 "blocks[0].channel_mixer.kind: unknown mixer 'local'");
    expect_error("{\"model\":\"patchtst\",\"blocks\":[{\"channel_mixer\":{\"kind\":\"mlp\","
                 "\"fuse\":\"sometimes\"}}]}",
                 "blocks[0].channel_mixer.fuse: 'sometimes' is not one of auto|always|never");
#undef TOK
    /* the largest accepted values build */
    sf_model m;
    const char *ok = "{\"model\":\"patchtst\",\"blocks\":[{\"token_mixer\":{\"kind\":\"local\",\"window\":40}},"
                     "{\"token_mixer\":{\"kind\":\"linformer\",\"k\":42}},"
                     "{\"token_mixer\":{\"kind\":\"ls\",\"n_heads\":4,\"local_heads\":3,\"window\":40}}]}";
    int rc = sf_model_create_json(&m, ok, "cfg.json");
    CHECK_MSG(rc == SF_OK, "%s", sf_error_message());
    if (rc == SF_OK) sf_model_destroy(&m);
}

static void check_embedding(void) {
    int vocab = 11, d = 5;
    long N = 40;
    sf_params ps;
    sf_params_init(&ps);
    sf_embedding e;
    sf_embedding_declare(&e, &ps, "tok", vocab, d);
    sf_params_alloc(&ps);
    sf_embedding_init(&e, &g_rng);
    int32_t *ids = sf_malloc((size_t)N * sizeof *ids);
    for (long n = 0; n < N; n++) ids[n] = (int32_t)sf_rng_below(&g_rng, (uint32_t)vocab);
    ids[3] = ids[7] = ids[11]; /* repeated ids must accumulate */
    float *y = sf_malloc((size_t)N * d * sizeof(float)), *dy = sf_malloc((size_t)N * d * sizeof(float));
    sf_rng_fill_normal(&g_rng, dy, N * d, 0, 1);
    sf_embedding_forward(&e, y, ids, N);
    int same = 1;
    for (long n = 0; n < N; n++)
        same &= memcmp(y + n * d, e.w + (size_t)ids[n] * d, (size_t)d * sizeof(float)) == 0;
    CHECK(same);
    sf_params_zero_grad(&ps);
    sf_embedding_backward(&e, dy, ids, N);
    /* reference: dW = onehot(ids)^T dy, in double */
    double worst = 0;
    for (int v = 0; v < vocab; v++)
        for (int i = 0; i < d; i++) {
            double s = 0;
            for (long n = 0; n < N; n++)
                if (ids[n] == v) s += dy[n * d + i];
            double err = fabs(s - e.dw[v * d + i]);
            if (err > worst) worst = err;
        }
    printf("embedding scatter backward vs one-hot reference: max abs err %.2e\n", worst);
    CHECK(worst < 1e-5);
    free(ids), free(y), free(dy);
    sf_params_free(&ps);
}

static void check_positions_offset(void) {
    int n = 12, d = 6, T = 4, off = 5;
    sf_positions p;
    CHECK(sf_positions_create(&p, "sinusoidal", n, d) == SF_OK);
    float x[4 * 6] = {0};
    sf_arena a = {0};
    sf_ctx ctx = {.arena = &a, .B = 1, .T = T, .pos_offset = off};
    sf_positions_forward(&p, &ctx, x);
    CHECK(memcmp(x, p.table + (size_t)off * d, sizeof x) == 0);
    sf_positions_destroy(&p);
}

/* Mean pooling sees only the valid tokens: padding (NaN here) never reaches the output, and the
 * gradient is dy/len on valid tokens and exactly 0 on padding. */
static void check_mean_pool(void) {
    enum { B = 3, T = 5, d = 4 };
    const int lens[B] = {5, 2, 1};
    float x[B * T * d], y[B * d], dy[B * d], dx[B * T * d];
    sf_rng_fill_normal(&g_rng, x, B * T * d, 0, 1);
    sf_rng_fill_normal(&g_rng, dy, B * d, 0, 1);
    for (int b = 0; b < B; b++)
        for (int t = lens[b]; t < T; t++)
            for (int i = 0; i < d; i++) x[(b * T + t) * d + i] = NAN;
    sf_ctx ctx = {.B = B, .T = T, .lens = lens};
    sf_mean_pool_forward(&ctx, d, x, y);
    sf_mean_pool_backward(&ctx, d, dy, dx);
    double ey = 0, edx = 0;
    for (int b = 0; b < B; b++)
        for (int i = 0; i < d; i++) {
            double m = 0;
            for (int t = 0; t < lens[b]; t++) m += x[(b * T + t) * d + i];
            double e = fabs(m / lens[b] - y[b * d + i]);
            if (!(e <= ey)) ey = e; /* a NaN from padding makes ey NaN and fails */
            for (int t = 0; t < T; t++) {
                double want = t < lens[b] ? dy[b * d + i] / lens[b] : 0.0;
                double g = fabs(want - dx[(b * T + t) * d + i]);
                if (!(g <= edx)) edx = g;
            }
        }
    CHECK_MSG(ey < 1e-6 && edx == 0, "mean pool: y err %g, dx err %g", ey, edx);
}

/* Losses over padded batches: equal to the loss on the valid part alone, exactly zero gradient on
 * padding, and cross-entropy's gradient against central differences (in double). */
static void check_losses(void) {
    enum { B = 3, T = 4, V = 5 };
    const int lens[B] = {4, 1, 3};
    float z[B * T * V], tgt[B * T * V], g[B * T * V];
    int32_t lab[B * T];
    sf_rng_fill_normal(&g_rng, z, B * T * V, 0, 2);
    sf_rng_fill_normal(&g_rng, tgt, B * T * V, 0, 1);
    for (int i = 0; i < B * T; i++) lab[i] = (int32_t)sf_rng_below(&g_rng, V);
    double n_valid = 0, want = 0;
    for (int b = 0; b < B; b++)
        for (int t = 0; t < lens[b]; t++, n_valid++)
            for (int v = 0; v < V; v++) {
                double e = (double)z[(b * T + t) * V + v] - tgt[(b * T + t) * V + v];
                want += e * e;
            }
    double mse = sf_masked_mse(z, tgt, g, B, T, V, lens);
    CHECK_NEAR(mse, want / (n_valid * V), 1e-5); /* float differences, double sums */
    int pad_zero = 1;
    for (int b = 0; b < B; b++)
        for (int t = lens[b]; t < T; t++)
            for (int v = 0; v < V; v++) pad_zero &= g[(b * T + t) * V + v] == 0.0f;
    double ce = sf_masked_cross_entropy(z, lab, g, B, T, V, lens), worst = 0;
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            for (int v = 0; v < V; v++) {
                int i = (b * T + t) * V + v;
                if (t >= lens[b]) {
                    pad_zero &= g[i] == 0.0f;
                    continue;
                }
                float keep = z[i];
                z[i] = keep + 1e-2f;
                double lp = sf_masked_cross_entropy(z, lab, NULL, B, T, V, lens);
                z[i] = keep - 1e-2f;
                double lm = sf_masked_cross_entropy(z, lab, NULL, B, T, V, lens);
                z[i] = keep;
                double e = fabs((lp - lm) / 2e-2 - g[i]);
                if (e > worst) worst = e;
            }
    printf("masked losses: ce %.4f, gradient vs central differences %.2e\n", ce, worst);
    CHECK(pad_zero && worst < 1e-4 && ce > 0);
}

static const char *k_model =
    "{\"model\":\"patchtst\",\"seq_len\":64,\"pred_len\":12,\"n_channels\":3,\"d_model\":16,"
    "\"input\":{\"patch_len\":8,\"stride\":4},\"blocks\":[{\"token_mixer\":{\"n_heads\":2}},"
    "{\"kind\":\"residual\",\"mixer\":{\"kind\":\"linear\",\"n_heads\":4}},"
    "{\"kind\":\"parallel\",\"norm\":{\"kind\":\"batchnorm\"},\"token_mixer\":{\"n_heads\":4}}]}";

typedef struct {
    sf_model *m;
    const float *x;
    const float *want;
    int B, iters, mismatches;
} worker;

static void *infer_loop(void *arg) {
    worker *w = arg;
    sf_run run;
    sf_run_init(&run);
    long ny = (long)w->B * w->m->pred_len * w->m->n_channels;
    float *y = sf_malloc((size_t)ny * sizeof(float));
    for (int i = 0; i < w->iters; i++) {
        sf_model_forward_run(w->m, &run, w->x, y, w->B, 0, NULL);
        if (memcmp(y, w->want, (size_t)ny * sizeof(float)) != 0) w->mismatches++;
    }
    free(y);
    sf_run_free(&run);
    return NULL;
}

/* Two threads, one model, two runs: every output bit-identical to the serial result. */
static void check_concurrent_inference(void) {
    sf_model m;
    CHECK_MSG(sf_model_create_json(&m, k_model, "model") == SF_OK, "%s", sf_error_message());
    sf_model_init_weights(&m, 5);
    for (size_t i = 0; i < m.params.total; i++) m.params.data[i] += 0.1f * sf_rng_normal(&g_rng);
    int B[2] = {3, 7};
    long nx[2], ny[2];
    float *x[2], *want[2];
    for (int k = 0; k < 2; k++) {
        nx[k] = (long)B[k] * m.seq_len * m.n_channels;
        ny[k] = (long)B[k] * m.pred_len * m.n_channels;
        x[k] = sf_malloc((size_t)nx[k] * sizeof(float));
        want[k] = sf_malloc((size_t)ny[k] * sizeof(float));
        sf_rng_fill_normal(&g_rng, x[k], nx[k], 0, 1);
        sf_model_forward(&m, x[k], want[k], B[k], 0, NULL);
    }
    float *before = sf_malloc(m.params.total * sizeof(float));
    memcpy(before, m.params.data, m.params.total * sizeof(float));
    worker w[2];
    pthread_t th[2];
    for (int k = 0; k < 2; k++) {
        w[k] = (worker){&m, x[k], want[k], B[k], 40, 0};
        pthread_create(&th[k], NULL, infer_loop, &w[k]);
    }
    for (int k = 0; k < 2; k++) pthread_join(th[k], NULL);
    printf("concurrent inference: 2 threads x 40 calls, mismatches %d and %d\n", w[0].mismatches,
           w[1].mismatches);
    CHECK(w[0].mismatches == 0 && w[1].mismatches == 0);
    CHECK(memcmp(before, m.params.data, m.params.total * sizeof(float)) == 0); /* read-only */

    /* the arena is re-planned when the batch grows, and results do not depend on the plan */
    sf_run r;
    sf_run_init(&r);
    float *y = sf_malloc((size_t)ny[1] * sizeof(float));
    sf_model_forward_run(&m, &r, x[0], y, B[0], 0, NULL);
    size_t cap0 = r.arena.cap;
    CHECK(memcmp(y, want[0], (size_t)ny[0] * sizeof(float)) == 0 && r.B == B[0]);
    sf_model_forward_run(&m, &r, x[1], y, B[1], 0, NULL);
    CHECK(r.B == B[1] && r.arena.cap > cap0);
    CHECK(memcmp(y, want[1], (size_t)ny[1] * sizeof(float)) == 0);
    sf_model_forward_run(&m, &r, x[0], y, B[0], 1, &g_rng); /* training adds backward's needs */
    CHECK(r.training == 1 && r.B == B[1]);
    sf_run_free(&r);
    free(y), free(before);
    for (int k = 0; k < 2; k++) free(x[k]), free(want[k]);
    sf_model_destroy(&m);
}

/* sf_model_infer_chunked: each chunk's outputs are those of one forward of that chunk at one
 * thread, bit for bit, at 2 and 3 threads and with a short last chunk; one chunk runs as a plain
 * forward of the whole team. */
static void check_chunked_inference(void) {
    sf_model m;
    CHECK_MSG(sf_model_create_json(&m, k_model, "model") == SF_OK, "%s", sf_error_message());
    sf_model_init_weights(&m, 11);
    for (size_t i = 0; i < m.params.total; i++) m.params.data[i] += 0.1f * sf_rng_normal(&g_rng);
    const int B = 11, chunk = 4;
    const long xs = sf_model_x_floats(&m), ys = (long)m.pred_len * m.n_channels;
    float *x = sf_malloc((size_t)(B * xs) * sizeof(float));
    float *want = sf_malloc((size_t)(B * ys) * sizeof(float)), *y = sf_malloc((size_t)(B * ys) * sizeof(float));
    sf_rng_fill_normal(&g_rng, x, B * xs, 0, 1);
    const int saved = omp_get_max_threads();
    omp_set_num_threads(1);
    sf_run r;
    sf_run_init(&r);
    for (int b0 = 0; b0 < B; b0 += chunk)
        sf_model_forward_run(&m, &r, x + b0 * xs, want + b0 * ys, B - b0 < chunk ? B - b0 : chunk, 0, NULL);
    sf_run_free(&r);
    int ok = 1;
    for (int t = 2; t <= 3; t++) {
        omp_set_num_threads(t);
        sf_run runs[3];
        for (int k = 0; k < 3; k++) sf_run_init(&runs[k]);
        for (int rep = 0; rep < 2; rep++) { /* the second call reuses the planned runs */
            memset(y, 0, (size_t)(B * ys) * sizeof(float));
            sf_model_infer_chunked(&m, runs, x, y, ys, B, chunk);
            ok &= !memcmp(y, want, (size_t)(B * ys) * sizeof(float));
        }
        CHECK_MSG(omp_get_max_threads() == t, "the caller's thread count changed to %d", omp_get_max_threads());
        for (int k = 0; k < 3; k++) sf_run_free(&runs[k]);
    }
    CHECK_MSG(ok, "chunked inference differs from one forward per chunk");
    /* one chunk: the plain forward of the team */
    omp_set_num_threads(2);
    sf_run one;
    sf_run_init(&one);
    sf_model_forward_run(&m, &one, x, want, B, 0, NULL);
    sf_model_infer_chunked(&m, &one, x, y, ys, B, B);
    CHECK(!memcmp(y, want, (size_t)(B * ys) * sizeof(float)));
    sf_run_free(&one);
    printf("chunked inference: 11 examples in chunks of 4 at 2 and 3 threads = one forward per chunk, bit for bit\n");
    omp_set_num_threads(saved);
    free(x), free(want), free(y);
    sf_model_destroy(&m);
}

/* PatchTST's small inference calls run the block stack split over the threads by series: the
 * same bits at 1, 2 and 3 threads, the split path taken at 2 and 3, and a run planned at fewer
 * threads re-planned when the thread count grows. */
static void check_split_inference(void) {
    sf_model m;
    CHECK_MSG(sf_model_create_json(&m, k_model, "model") == SF_OK, "%s", sf_error_message());
    sf_model_init_weights(&m, 9);
    for (size_t i = 0; i < m.params.total; i++) m.params.data[i] += 0.1f * sf_rng_normal(&g_rng);
    const int B = 1;
    long nx = (long)B * m.seq_len * m.n_channels, ny = (long)B * m.pred_len * m.n_channels;
    float *x = sf_malloc((size_t)nx * sizeof(float)), *want = sf_malloc((size_t)ny * sizeof(float)),
          *y = sf_malloc((size_t)ny * sizeof(float));
    sf_rng_fill_normal(&g_rng, x, nx, 0, 1);
    const int saved = omp_get_max_threads();
    omp_set_num_threads(1);
    unsigned long c0 = sf_patchtst_split_calls();
    sf_run r;
    sf_run_init(&r);
    sf_model_forward_run(&m, &r, x, want, B, 0, NULL);
    CHECK(sf_patchtst_split_calls() == c0 && r.threads == 1); /* one thread: the usual path */
    omp_set_num_threads(3); /* more threads than planned for: re-planned, then split */
    sf_model_forward_run(&m, &r, x, y, B, 0, NULL);
    CHECK(r.threads == 3 && sf_patchtst_split_calls() == c0 + 1);
    CHECK(!memcmp(y, want, (size_t)ny * sizeof(float)));
    sf_run_free(&r);
    for (int t = 2; t <= 3; t++) {
        omp_set_num_threads(t);
        sf_run_init(&r);
        for (int k = 0; k < 3; k++) {
            memset(y, 0, (size_t)ny * sizeof(float));
            c0 = sf_patchtst_split_calls();
            sf_model_forward_run(&m, &r, x, y, B, 0, NULL);
            CHECK_MSG(sf_patchtst_split_calls() == c0 + 1, "%d threads: split path not taken", t);
            CHECK_MSG(!memcmp(y, want, (size_t)ny * sizeof(float)), "%d threads: output differs", t);
        }
        sf_run_free(&r);
    }
    printf("split inference: 1, 2, 3 threads bit-identical\n");
    omp_set_num_threads(saved);
    free(x), free(want), free(y);
    sf_model_destroy(&m);
}

/* The split cuts the patch embedding and head GEMMs by series too, but only where each piece
 * takes a path with the whole call's per-row order (sf_gemm_row_class). With 20 series the head
 * (K = 672, 96 outputs) is a packed-kernel call for all 20 and a small dot-product call for 10:
 * the split must not run, and the output is the usual path's. */
static void check_split_row_classes(void) {
    const char *json =
        "{\"model\":\"patchtst\",\"seq_len\":336,\"pred_len\":96,\"n_channels\":20,\"d_model\":16,"
        "\"input\":{\"kind\":\"patches\",\"patch_len\":16,\"stride\":8},"
        "\"blocks\":[{\"kind\":\"metaformer\",\"token_mixer\":{\"kind\":\"softmax\",\"n_heads\":4}}]}";
    sf_model m;
    CHECK_MSG(sf_model_create_json(&m, json, "model") == SF_OK, "%s", sf_error_message());
    sf_model_init_weights(&m, 5);
    const long nx = (long)m.seq_len * m.n_channels, ny = (long)m.pred_len * m.n_channels;
    float *x = sf_malloc((size_t)nx * sizeof(float)), *yu = sf_malloc((size_t)ny * sizeof(float)),
          *ys = sf_malloc((size_t)ny * sizeof(float));
    sf_rng_fill_normal(&g_rng, x, nx, 0, 1);
    const int saved = omp_get_max_threads();
    omp_set_num_threads(2);
    sf_patchtst_split_enable(0);
    sf_model_forward(&m, x, yu, 1, 0, NULL);
    sf_patchtst_split_enable(1);
    const unsigned long c0 = sf_patchtst_split_calls();
    sf_model_forward(&m, x, ys, 1, 0, NULL);
    CHECK_MSG(sf_patchtst_split_calls() == c0, "20 series: the split ran across a GEMM path change");
    CHECK(!memcmp(ys, yu, (size_t)ny * sizeof(float)));
    omp_set_num_threads(saved);
    free(x), free(yu), free(ys);
    sf_model_destroy(&m);
}

/* Every token mixer inside the split: each series' blocks on its own thread, nested kernels on
 * that thread, each thread with its own arena and records. At 2 threads the split output equals
 * the usual path's (split turned off) bit for bit, and 1 thread's. Except the ParaRNN mixers: their
 * Newton loop stops when the largest residual over every series of the call is below newton_tol,
 * so series solved apart can take another iteration count; there the outputs agree to 1e-5 of
 * their scale. */
static void check_split_mixers(void) {
    static const struct {
        const char *json;
        int batch_coupled;
        const char *block; /* further block options: the split runs the final norm too */
    } mixers[] = {
        {"{\"kind\":\"softmax\",\"n_heads\":4}", 0, NULL},
        {"{\"kind\":\"softmax\",\"n_heads\":4}", 0, "\"placement\":\"post\",\"norm\":{\"kind\":\"batchnorm\"}"},
        {"{\"kind\":\"softmax\",\"n_heads\":4}", 0, "\"placement\":\"pre\",\"norm\":{\"kind\":\"batchnorm\"}"},
        {"{\"kind\":\"linear\",\"n_heads\":4}", 0, NULL},
        {"{\"kind\":\"linear\",\"feature_map\":\"favor\",\"n_features\":8}", 0, NULL},
        {"{\"kind\":\"local\",\"window\":4}", 0, NULL},
        {"{\"kind\":\"fastformer\"}", 0, NULL},
        {"{\"kind\":\"linformer\",\"k\":4}", 0, NULL},
        {"{\"kind\":\"ls\",\"n_heads\":4,\"local_heads\":2,\"window\":4}", 0, NULL},
        {"{\"kind\":\"rpe\"}", 0, NULL},
        {"{\"kind\":\"cosformer\"}", 0, NULL},
        {"{\"kind\":\"probsparse\",\"factor\":1}", 0, NULL},
        {"{\"kind\":\"mamba\",\"bidirectional\":true}", 0, NULL},
        {"{\"kind\":\"deltanet\"}", 0, NULL},
        {"{\"kind\":\"s4d\"}", 0, NULL},
        {"{\"kind\":\"gru_diag\"}", 1, NULL},
        {"{\"kind\":\"lstm_cifg\"}", 1, NULL},
        {"{\"kind\":\"gru\"}", 0, NULL},
        {"{\"kind\":\"lstm\"}", 0, NULL},
        {"{\"kind\":\"dwconv\",\"kernel_size\":5}", 0, NULL},
    };
    const int n_mixers = (int)(sizeof mixers / sizeof mixers[0]);
    const int saved = omp_get_max_threads();
    int good = 0;
    for (int k = 0; k < n_mixers; k++) {
        char json[1024];
        snprintf(json, sizeof json,
                 "{\"model\":\"patchtst\",\"seq_len\":64,\"pred_len\":12,\"n_channels\":3,\"d_model\":16,"
                 "\"input\":{\"kind\":\"patches\",\"patch_len\":8,\"stride\":4},"
                 "\"blocks\":[{\"kind\":\"metaformer\",\"repeat\":2,\"token_mixer\":%s%s%s}]}",
                 mixers[k].json, mixers[k].block ? "," : "", mixers[k].block ? mixers[k].block : "");
        sf_model m;
        if (sf_model_create_json(&m, json, "split mixer") != SF_OK) {
            CHECK_MSG(0, "%s: %s", mixers[k].json, sf_error_message());
            continue;
        }
        sf_model_init_weights(&m, 11);
        for (size_t i = 0; i < m.params.total; i++) m.params.data[i] += 0.05f * sf_rng_normal(&g_rng);
        const long nx = (long)m.seq_len * m.n_channels, ny = (long)m.pred_len * m.n_channels;
        const size_t yb = (size_t)ny * sizeof(float);
        float *x = sf_malloc((size_t)nx * sizeof(float)), *y1 = sf_malloc(yb), *yu = sf_malloc(yb),
              *ys = sf_malloc(yb);
        sf_rng_fill_normal(&g_rng, x, nx, 0, 1);
        sf_run r1, r2;
        sf_run_init(&r1), sf_run_init(&r2);
        omp_set_num_threads(1);
        sf_model_forward_run(&m, &r1, x, y1, 1, 0, NULL);
        omp_set_num_threads(2);
        sf_patchtst_split_enable(0);
        unsigned long c0 = sf_patchtst_split_calls();
        sf_model_forward_run(&m, &r1, x, yu, 1, 0, NULL); /* re-planned at 2 threads, usual path */
        const int usual = sf_patchtst_split_calls() == c0 && r1.threads == 2;
        sf_patchtst_split_enable(1);
        c0 = sf_patchtst_split_calls();
        sf_model_forward_run(&m, &r2, x, ys, 1, 0, NULL);
        const int split = sf_patchtst_split_calls() == c0 + 1;
        double diff = 0, scale = 0;
        for (long i = 0; i < ny; i++) {
            diff = fmax(diff, fabs((double)ys[i] - yu[i]));
            scale = fmax(scale, fabs((double)yu[i]));
        }
        const int split_same = !memcmp(ys, yu, yb), threads_same = !memcmp(yu, y1, yb);
        /* ParaRNN: bit-identical is not expected, the stopping rule couples the series */
        const int ok = usual && split &&
                       (mixers[k].batch_coupled ? diff <= 1e-5 * scale : split_same && threads_same);
        CHECK_MSG(ok, "%s: usual path %d, split %d, split = usual %d (max diff %.3g of %.3g), "
                  "2 threads = 1 thread %d", mixers[k].json, usual, split, split_same, diff, scale,
                  threads_same);
        if (mixers[k].batch_coupled)
            printf("  %s: split vs usual path max diff %.3g (outputs up to %.3g)\n", mixers[k].json,
                   diff, scale);
        good += ok;
        sf_run_free(&r1), sf_run_free(&r2);
        free(x), free(y1), free(yu), free(ys);
        sf_model_destroy(&m);
    }
    omp_set_num_threads(saved);
    printf("split inference over %d token mixers: %d as expected (bit-identical but for ParaRNN)\n", n_mixers, good);
}

int main(void) {
    sf_rng_seed(&g_rng, test_seed());
    check_config_roundtrip();
    check_shorthands();
    check_config_errors();
    check_efficient_mixer_errors();
    check_embedding();
    check_positions_offset();
    check_mean_pool();
    check_losses();
    check_concurrent_inference();
    check_split_inference();
    check_chunked_inference();
    check_split_mixers();
    check_split_row_classes();
    return test_finish();
}
