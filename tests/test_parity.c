/* Model-level parity with PyTorch: tools/reference/make_fixtures.py builds the same models in
 * PyTorch, and writes weights, inputs, outputs, the MSE loss and every parameter gradient into
 * tests/fixtures/ (*.safetensors). Here the C model is built from the fixture's stored config (a
 * format_version 2 JSON config), loads the same weights, and must reproduce outputs, loss and every
 * gradient to 1e-5 relative: float32 against float32, where make_fixtures.py measured PyTorch's own
 * float32 error against float64 at <= 3.2e-6. The training-size fixtures (PatchTST at its ETTh1
 * shape, batch 32 / 16) go through the OpenBLAS GEMM path and the threaded kernels. */
#include <string.h>

#include "core/error.h"
#include "core/safetensors.h"
#include "models/checkpoint.h"
#include "tasks/forecast.h"
#include "tasks/lm.h"
#include "test_util.h"

/* A bias added right before a post-placement BatchNorm: the batch mean removes it, so its exact
 * gradient is 0 and both implementations hold only rounding noise (make_fixtures.py lists the same
 * tensors as zero_grad_params). */
static int zero_gradient(const sf_model *m, const char *name) {
    const char *suffixes[] = {".mixer.out.bias", ".ffn.fc2.bias"};
    int idx;
    /* Informer: a distilling conv's bias feeds its BatchNorm directly, and so does (through the
     * circular conv, which keeps a constant shift constant per channel) the bias of the encoder
     * layer's last LayerNorm before it */
    if (sscanf(name, "encoder.conv_layers.%d.", &idx) == 1)
        return strlen(name) > 10 && strcmp(name + strlen(name) - 10, ".conv.bias") == 0;
    char tail[32];
    if (sscanf(name, "encoder.layers.%d.%31s", &idx, tail) == 2 && strcmp(tail, "norm2.bias") == 0) {
        const cJSON *c = m->config;
        return sf_opt_bool(c, "distil") && idx < sf_opt_int(c, "e_layers") - 1;
    }
    if (sscanf(name, "blocks.%d.", &idx) != 1) return 0;
    int hit = 0;
    for (int k = 0; k < 2; k++) {
        size_t n = strlen(name), sn = strlen(suffixes[k]);
        hit |= n > sn && strcmp(name + n - sn, suffixes[k]) == 0;
    }
    if (!hit) return 0;
    /* find the block entry idx belongs to (repeat expanded) */
    const cJSON *blocks = cJSON_GetObjectItemCaseSensitive(m->config, "blocks");
    int at = 0;
    for (const cJSON *b = blocks ? blocks->child : NULL; b; b = b->next) {
        at += sf_opt_int(b, "repeat");
        if (idx < at)
            return strcmp(sf_opt_str(b, "kind"), "metaformer") == 0 &&
                   strcmp(sf_opt_str(b, "placement"), "post") == 0 &&
                   strcmp(sf_opt_str(cJSON_GetObjectItemCaseSensitive(b, "norm"), "kind"),
                          "batchnorm") == 0;
    }
    return 0;
}

static void check_fixture(const char *path) {
    sf_safetensors *st = NULL;
    if (sf_safetensors_open(path, &st)) {
        CHECK_MSG(0, "%s", sf_error_message());
        return;
    }
    sf_model m;
    int ok = sf_model_create_json(&m, sf_safetensors_meta(st, "config"), path) == SF_OK;
    CHECK_MSG(ok, "%s: %s", path, sf_error_message());
    if (!ok) {
        sf_safetensors_close(st);
        return;
    }
    CHECK_MSG(sf_checkpoint_load_params(st, &m.params, 1) == SF_OK, "%s", sf_error_message());
    int nd;
    int64_t sx[8], sy[8];
    const float *x = sf_safetensors_get(st, "x", &nd, sx);
    const float *y = sf_safetensors_get(st, "y", &nd, sy);
    const float *out_ref = sf_safetensors_get(st, "out", &nd, sy);
    const float *loss_ref = sf_safetensors_get(st, "loss", &nd, sy);
    CHECK(x && y && out_ref && loss_ref);
    int B = (int)sx[0];
    /* Time features (models that read them): `marks` [B, L+P, F] travels after each example's
     * values in x, as the forecast task packs it (models/model.h). */
    float *packed = NULL;
    if (m.time_features) {
        int64_t sm[8];
        const float *marks = sf_safetensors_get(st, "marks", &nd, sm);
        long L = m.seq_len, C = m.n_channels, R = (long)(m.seq_len + m.pred_len) * m.time_features;
        CHECK_MSG(marks && nd == 3 && sm[0] == B && sm[1] * sm[2] == R, "%s: marks [B, L+P, F] missing", path);
        if (!marks) {
            sf_model_destroy(&m);
            sf_safetensors_close(st);
            return;
        }
        packed = sf_malloc((size_t)B * sf_model_x_floats(&m) * sizeof(float));
        for (int b = 0; b < B; b++) {
            float *xb = packed + (size_t)b * sf_model_x_floats(&m);
            memcpy(xb, x + (size_t)b * L * C, (size_t)L * C * sizeof(float));
            memcpy(xb + L * C, marks + (size_t)b * R, (size_t)R * sizeof(float));
        }
        x = packed;
    }
    /* an lm: logits [B, T, vocab] against next-token ids, mean cross-entropy (tasks/lm.c) */
    int is_lm = !strcmp(m.def->info.name, "lm");
    int vocab = is_lm ? sf_opt_int(cJSON_GetObjectItemCaseSensitive(m.config, "input"), "vocab") : 0;
    long n = is_lm ? (long)B * m.seq_len * vocab : (long)B * m.pred_len * m.n_channels;
    /* Valid lengths (t2): `lens` [B] travels as one more float after each example's values, as
     * the classify task packs it; the output is [B, n_classes]. */
    if (m.def->reads_lengths) {
        int64_t sl[8];
        const float *lens = sf_safetensors_get(st, "lens", &nd, sl);
        long LC = (long)m.seq_len * m.n_channels, xs = sf_model_x_floats(&m);
        CHECK_MSG(lens && nd == 1 && sl[0] == B, "%s: lens [B] missing", path);
        if (!lens) {
            sf_model_destroy(&m);
            sf_safetensors_close(st);
            return;
        }
        packed = sf_malloc((size_t)B * xs * sizeof(float));
        for (int b = 0; b < B; b++) {
            memcpy(packed + (size_t)b * xs, x + (size_t)b * LC, (size_t)LC * sizeof(float));
            packed[(size_t)b * xs + LC] = lens[b];
        }
        x = packed;
        n = (long)B * sf_opt_int(m.config, "n_classes");
    }
    float *out = sf_malloc((size_t)n * sizeof(float)), *dy = sf_malloc((size_t)n * sizeof(float));
    sf_rng rng;
    sf_rng_seed(&rng, 1);
    /* Training-mode forward (dropout is 0 in the fixtures), so backward can follow. */
    sf_params_zero_grad(&m.params);
    sf_model_forward(&m, x, out, B, 1, &rng);
    double loss = is_lm ? sf_lm_cross_entropy(out, y, dy, (long)B * m.seq_len, vocab)
                        : sf_mse_loss(out, y, dy, n);
    sf_model_backward(&m, dy, B);
    double e_out = max_rel_err(out, out_ref, n, 1e-6);
    double e_loss = fabs(loss - loss_ref[0]) / fabs(loss_ref[0]);
    double worst = 0, zero_worst = 0;
    const char *worst_name = "";
    /* Gradients that are zero in exact arithmetic (a bias feeding straight into a BatchNorm,
     * whose batch mean removes it; softmax's key bias) hold only rounding noise on both sides;
     * judge every tensor against a floor of 1e-3 of the largest gradient in the model instead of
     * against itself (at the 1e-5 tolerance: an absolute 1e-8 of the largest gradient). */
    double gmax = 0;
    for (int i = 0; i < m.params.n; i++) {
        char gname[SF_PARAM_NAME_MAX + 8];
        snprintf(gname, sizeof gname, "grad.%s", m.params.p[i].name);
        const float *g = sf_safetensors_get(st, gname, &nd, sy);
        for (size_t j = 0; g && j < m.params.p[i].numel; j++)
            if (fabs(g[j]) > gmax) gmax = fabs(g[j]);
    }
    for (int i = 0; i < m.params.n; i++) {
        if (m.params.p[i].buffer) continue; /* state, not trained: compared below */
        char gname[SF_PARAM_NAME_MAX + 8];
        snprintf(gname, sizeof gname, "grad.%s", m.params.p[i].name);
        const float *g = sf_safetensors_get(st, gname, &nd, sy);
        CHECK_MSG(g != NULL, "%s: fixture lacks %s", path, gname);
        if (!g) continue;
        const float *mine = m.params.grad + m.params.p[i].offset;
        long numel = (long)m.params.p[i].numel;
        if (zero_gradient(&m, m.params.p[i].name)) {
            /* exactly zero in exact arithmetic: both sides must be float noise */
            double amax = 0;
            for (long j = 0; j < numel; j++) {
                if (fabs(mine[j]) > amax) amax = fabs(mine[j]);
                if (fabs(g[j]) > amax) amax = fabs(g[j]);
            }
            zero_worst = amax / gmax > zero_worst ? amax / gmax : zero_worst;
            CHECK_MSG(amax <= 1e-6 * gmax, "%s: %s should be ~0, |g| %.3g", path,
                      m.params.p[i].name, amax);
            continue;
        }
        double e = max_rel_err(mine, g, numel, 1e-3 * gmax);
        if (e > worst) {
            worst = e;
            worst_name = m.params.p[i].name;
        }
    }
    printf("%-48s out %.2e  loss %.2e  grads (%d tensors) worst %.2e [%s]\n", path, e_out, e_loss,
           m.params.n, worst, worst_name);
    if (zero_worst > 0)
        printf("%-48s exactly-zero gradients: largest |g| %.2e of the largest gradient\n", "",
               zero_worst);
    CHECK_MSG(e_out <= 1e-5, "%s: output max rel err %.3g", path, e_out);
    CHECK_MSG(e_loss <= 1e-5, "%s: loss rel err %.3g", path, e_loss);
    CHECK_MSG(worst <= 1e-5, "%s: gradient of %s max rel err %.3g", path, worst_name, worst);

    /* BatchNorm fixtures also hold the running statistics after the training forward
     * (after.<name>) and the eval-mode output that uses them (out_eval). Other buffers (FAVOR+'s
     * projection, redraw 0) have no after.<name>: a forward must leave them as stored. */
    double worst_buf = 0;
    for (int i = 0; i < m.params.n; i++) {
        if (!m.params.p[i].buffer) continue;
        char aname[SF_PARAM_NAME_MAX + 8];
        snprintf(aname, sizeof aname, "after.%s", m.params.p[i].name);
        const float *ref = sf_safetensors_get(st, aname, &nd, sy);
        if (!ref && !sf_safetensors_get(st, "out_eval", &nd, sy))
            ref = sf_safetensors_get(st, m.params.p[i].name, &nd, sy);
        CHECK_MSG(ref != NULL, "%s: fixture lacks %s", path, aname);
        if (!ref) continue;
        double e = max_rel_err(m.params.data + m.params.p[i].offset, ref,
                               (long)m.params.p[i].numel, 1e-6);
        if (e > worst_buf) worst_buf = e;
    }
    float *out2 = sf_malloc((size_t)n * sizeof(float));
    sf_model_forward(&m, x, out2, B, 0, NULL);
    const float *out_eval = sf_safetensors_get(st, "out_eval", &nd, sy);
    if (out_eval) {
        double e = max_rel_err(out2, out_eval, n, 1e-6);
        printf("%-48s running stats %.2e  eval-mode out %.2e\n", "", worst_buf, e);
        CHECK_MSG(worst_buf <= 1e-5, "%s: running statistics max rel err %.3g", path, worst_buf);
        CHECK_MSG(e <= 1e-5, "%s: eval-mode output max rel err %.3g", path, e);
    } else {
        /* Without BatchNorm, eval mode equals training mode when dropout is 0. */
        CHECK(max_rel_err(out2, out, n, 1e-6) < 1e-6);
        CHECK_MSG(worst_buf == 0, "%s: a buffer changed in a forward (%.3g)", path, worst_buf);
    }
    free(out2);
    free(out);
    free(dy);
    free(packed);
    sf_model_destroy(&m);
    sf_safetensors_close(st);
}

int main(void) {
    check_fixture("tests/fixtures/patchtst_softmax_post.safetensors");
    check_fixture("tests/fixtures/patchtst_linear_pre.safetensors");
    check_fixture("tests/fixtures/patchtst_softmax_causal.safetensors");
    check_fixture("tests/fixtures/dlinear.safetensors");
    check_fixture("tests/fixtures/patchtst_batchnorm_post.safetensors");
    check_fixture("tests/fixtures/hybrid.safetensors");
    check_fixture("tests/fixtures/patchtst_train_softmax.safetensors");
    check_fixture("tests/fixtures/patchtst_train_linear_pre.safetensors");
    check_fixture("tests/fixtures/glu.safetensors");
    check_fixture("tests/fixtures/local.safetensors");
    check_fixture("tests/fixtures/fastformer.safetensors");
    check_fixture("tests/fixtures/linformer.safetensors");
    check_fixture("tests/fixtures/ls.safetensors");
    check_fixture("tests/fixtures/patchtst_rpe.safetensors");
    check_fixture("tests/fixtures/rpe_favor.safetensors");
    check_fixture("tests/fixtures/linear_relu.safetensors");
    check_fixture("tests/fixtures/linear_favor.safetensors");
    check_fixture("tests/fixtures/linear_favor_causal.safetensors");
    check_fixture("tests/fixtures/cosformer.safetensors");
    check_fixture("tests/fixtures/cosformer_causal.safetensors");
    check_fixture("tests/fixtures/itransformer.safetensors");
    check_fixture("tests/fixtures/informer.safetensors");
    check_fixture("tests/fixtures/itransformer_marks.safetensors");
    check_fixture("tests/fixtures/lut.safetensors");
    check_fixture("tests/fixtures/peri.safetensors");
    check_fixture("tests/fixtures/rope.safetensors");
    check_fixture("tests/fixtures/t5.safetensors");
    check_fixture("tests/fixtures/mamba.safetensors");
    check_fixture("tests/fixtures/mamba_bidirectional.safetensors");
    check_fixture("tests/fixtures/smamba.safetensors");
    check_fixture("tests/fixtures/pararnn.safetensors");
    check_fixture("tests/fixtures/rnn_dense.safetensors");
    check_fixture("tests/fixtures/lm_tied.safetensors");
    check_fixture("tests/fixtures/lm_untied.safetensors");
    check_fixture("tests/fixtures/lm_rope.safetensors");
    check_fixture("tests/fixtures/t2_t5.safetensors");
    check_fixture("tests/fixtures/t2.safetensors");
    check_fixture("tests/fixtures/s4d.safetensors");
    check_fixture("tests/fixtures/deltanet.safetensors");
    check_fixture("tests/fixtures/s4d_bidirectional.safetensors");
    check_fixture("tests/fixtures/t2_conv_patches.safetensors");
    check_fixture("tests/fixtures/t2_time.safetensors");
    check_fixture("tests/fixtures/dwconv.safetensors");
    check_fixture("tests/fixtures/t2_dwconv.safetensors");
    return test_finish();
}
