/* The equivalence of "Pre-RMSNorm and Pre-CRMSNorm Transformers" (Jiang et al., NeurIPS 2023):
 * a Pre-LN Transformer and its converted Pre-RMSNorm twin compute the same function. Built here
 * as two PatchTST models from configs that differ only in the norm kind, the second's weights
 * computed from the first's:
 *   - the main branch is kept zero-mean: every linear that writes into the residual stream (the
 *     patch embedding, the attention output projection, the MLP's fc2) has its output recentred
 *     (W <- W - column means over the output rows, b <- b - mean(b)), and so has every position
 *     embedding row;
 *   - each LayerNorm's gain and bias are folded into the linear that reads it (norm1 -> qkv,
 *     norm2 -> fc1, the final norm -> the flatten head): W' = W diag(g), b' = b + W beta, and the
 *     RMSNorm that replaces it has weight 1.
 * Then LN(x) = RMSNorm(x) exactly for a zero-mean x (same eps), so the outputs agree to float32
 * rounding. A control conversion that folds but does not recentre must NOT agree (the test
 * would otherwise prove nothing). Random weights and inputs; the seed is printed. */
#include <string.h>

#include "core/error.h"
#include "models/model.h"
#include "test_util.h"

static const char *config(const char *norm, const char *mixer) {
    static char buf[1024];
    snprintf(buf, sizeof buf,
             "{\"format_version\":2,\"task\":\"forecast\",\"model\":\"patchtst\",\"seq_len\":48,"
             "\"pred_len\":12,\"n_channels\":3,\"d_model\":16,\"revin\":true,"
             "\"input\":{\"kind\":\"patches\",\"patch_len\":8,\"stride\":4},\"positions\":\"learned\","
             "\"final_norm\":\"auto\",\"blocks\":[{\"kind\":\"metaformer\",\"repeat\":3,"
             "\"placement\":\"pre\",\"norm\":{\"kind\":\"%s\"},"
             "\"token_mixer\":%s,\"channel_mixer\":{\"kind\":\"mlp\",\"d_ff\":32}}]}",
             norm, mixer);
    return buf;
}

static float *param(sf_model *m, const char *name, size_t *numel) {
    int i = sf_params_find(&m->params, name);
    CHECK_MSG(i >= 0, "no parameter %s", name);
    if (i < 0) exit(1);
    if (numel) *numel = m->params.p[i].numel;
    return m->params.data + m->params.p[i].offset;
}

/* W [rows, cols], b [rows]: make the output zero-mean over the rows for every input. */
static void recentre(float *W, float *b, int rows, int cols) {
    for (int j = 0; j < cols; j++) {
        double mu = 0;
        for (int i = 0; i < rows; i++) mu += W[(size_t)i * cols + j];
        mu /= rows;
        for (int i = 0; i < rows; i++) W[(size_t)i * cols + j] = (float)(W[(size_t)i * cols + j] - mu);
    }
    if (!b) return;
    double mu = 0;
    for (int i = 0; i < rows; i++) mu += b[i];
    mu /= rows;
    for (int i = 0; i < rows; i++) b[i] = (float)(b[i] - mu);
}

/* The linear W [rows, cols], b reads a norm's output y = g * xhat + beta, feature f of input
 * column j being f = feat(j): fold g and beta into W and b. */
static void fold(float *W, float *b, int rows, int cols, const float *g, const float *beta,
                 int (*feat)(int j, int arg), int arg) {
    for (int o = 0; o < rows; o++) {
        double acc = b[o];
        for (int j = 0; j < cols; j++) {
            int f = feat(j, arg);
            acc += (double)W[(size_t)o * cols + j] * beta[f];
            W[(size_t)o * cols + j] *= g[f];
        }
        b[o] = (float)acc;
    }
}
static int feat_same(int j, int arg) { return (void)arg, j; }
static int feat_flatten(int j, int N) { return j / N; } /* head column di * N + p */

/* Writes the Pre-RMSNorm weights of `ln` into `rms`; recentre = 0 for the control. */
static void convert(sf_model *ln, sf_model *rms, int recentre_on, int E, int d, int N) {
    size_t n;
    /* rms has no norm biases: its flat layout differs, so copy tensor by tensor */
    for (int i = 0; i < rms->params.n; i++) {
        const sf_param *p = &rms->params.p[i];
        memcpy(rms->params.data + p->offset, param(ln, p->name, &n), p->numel * sizeof(float));
    }
    if (recentre_on) {
        recentre(param(rms, "patch_embed.weight", NULL), param(rms, "patch_embed.bias", NULL), d, 8);
        float *pos = param(rms, "pos_embed", &n);
        for (int p = 0; p < N; p++) { /* each row zero-mean */
            double mu = 0;
            for (int c = 0; c < d; c++) mu += pos[(size_t)p * d + c];
            for (int c = 0; c < d; c++) pos[(size_t)p * d + c] = (float)(pos[(size_t)p * d + c] - mu / d);
        }
    }
    for (int e = 0; e < E; e++) {
        char w[128], b[128];
        if (recentre_on) {
            snprintf(w, sizeof w, "blocks.%d.mixer.out.weight", e);
            snprintf(b, sizeof b, "blocks.%d.mixer.out.bias", e);
            recentre(param(rms, w, NULL), param(rms, b, NULL), d, d);
            snprintf(w, sizeof w, "blocks.%d.ffn.fc2.weight", e);
            snprintf(b, sizeof b, "blocks.%d.ffn.fc2.bias", e);
            recentre(param(rms, w, NULL), param(rms, b, NULL), d, 32);
        }
        for (int k = 1; k <= 2; k++) {
            char g[128], beta[128];
            snprintf(g, sizeof g, "blocks.%d.norm%d.weight", e, k);
            snprintf(beta, sizeof beta, "blocks.%d.norm%d.bias", e, k);
            snprintf(w, sizeof w, k == 1 ? "blocks.%d.mixer.qkv.weight" : "blocks.%d.ffn.fc1.weight", e);
            snprintf(b, sizeof b, k == 1 ? "blocks.%d.mixer.qkv.bias" : "blocks.%d.ffn.fc1.bias", e);
            int rows = k == 1 ? 3 * d : 32;
            fold(param(rms, w, NULL), param(rms, b, NULL), rows, d, param(ln, g, NULL),
                 param(ln, beta, NULL), feat_same, 0);
            float *gr = param(rms, g, &n);
            for (size_t i = 0; i < n; i++) gr[i] = 1.0f;
        }
    }
    fold(param(rms, "head.weight", NULL), param(rms, "head.bias", NULL), 12, d * N,
         param(ln, "norm_f.weight", NULL), param(ln, "norm_f.bias", NULL), feat_flatten, N);
    float *gf = param(rms, "norm_f.weight", &n);
    for (size_t i = 0; i < n; i++) gf[i] = 1.0f;
}

static void check(const char *mixer, uint64_t seed) {
    sf_model ln, rms, ctl;
    CHECK(sf_model_create_json(&ln, config("layernorm", mixer), "pre-ln") == SF_OK);
    CHECK(sf_model_create_json(&rms, config("rmsnorm", mixer), "pre-rmsnorm") == SF_OK);
    CHECK(sf_model_create_json(&ctl, config("rmsnorm", mixer), "control") == SF_OK);
    sf_model_init_weights(&ln, seed);
    sf_rng rng;
    sf_rng_seed(&rng, seed + 1);
    /* LayerNorm gains and biases far from 1 and 0, every other parameter perturbed too */
    for (int i = 0; i < ln.params.n; i++) {
        const sf_param *p = &ln.params.p[i];
        float *v = ln.params.data + p->offset;
        for (size_t j = 0; j < p->numel; j++) v[j] += 0.3f * sf_rng_normal(&rng);
    }
    const int E = 3, d = 16, N = 12, B = 4;
    convert(&ln, &rms, 1, E, d, N);
    convert(&ln, &ctl, 0, E, d, N);
    long nx = (long)B * 48 * 3, ny = (long)B * 12 * 3;
    float *x = malloc(sizeof(float) * (size_t)nx), *y_ln = malloc(sizeof(float) * (size_t)ny);
    float *y_rms = malloc(sizeof(float) * (size_t)ny), *y_ctl = malloc(sizeof(float) * (size_t)ny);
    sf_rng_fill_normal(&rng, x, nx, 0.5f, 2.0f);
    sf_model_forward(&ln, x, y_ln, B, 0, NULL);
    sf_model_forward(&rms, x, y_rms, B, 0, NULL);
    sf_model_forward(&ctl, x, y_ctl, B, 0, NULL);
    double e = max_rel_err(y_rms, y_ln, ny, 1e-6), e_ctl = max_rel_err(y_ctl, y_ln, ny, 1e-6);
    printf("%s: Pre-LN vs converted Pre-RMSNorm: max rel err %.2e (control without recentring: %.2e)\n",
           mixer, e, e_ctl);
    CHECK_MSG(e < 1e-5, "Pre-RMSNorm conversion differs by %.3g", e);
    CHECK_MSG(e_ctl > 1e-2, "the control (no recentring) should differ, got %.3g", e_ctl);
    free(x), free(y_ln), free(y_rms), free(y_ctl);
    sf_model_destroy(&ln), sf_model_destroy(&rms), sf_model_destroy(&ctl);
}

int main(void) {
    uint64_t seed = test_seed();
    check("{\"kind\":\"softmax\",\"n_heads\":2}", seed);
    check("{\"kind\":\"softmax\",\"n_heads\":4,\"causal\":true}", seed + 7);
    check("{\"kind\":\"linear\",\"n_heads\":2}", seed + 13);
    printf("%d passed, %d failed\n", t_passed, t_failed);
    return t_failed != 0;
}
