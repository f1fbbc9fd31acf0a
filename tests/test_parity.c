/* Model-level parity with PyTorch: tools/reference/make_fixtures.py builds the same models in
 * PyTorch, and writes weights, inputs, outputs, the MSE loss and every parameter gradient into
 * tests/fixtures/ (*.safetensors). Here the C model is built from the fixture's stored config, loads
 * the same weights, and must reproduce outputs (max rel err <= 1e-4) and gradients (<= 1e-3). */
#include <string.h>

#include "core/error.h"
#include "core/safetensors.h"
#include "models/checkpoint.h"
#include "test_util.h"

static void check_fixture(const char *path) {
    sf_safetensors *st = NULL;
    if (sf_safetensors_open(path, &st)) {
        CHECK_MSG(0, "%s", sf_error_message());
        return;
    }
    sf_model_config cfg;
    sf_model m;
    int ok = sf_config_from_json(sf_safetensors_meta(st, "config"), &cfg) == SF_OK &&
             sf_model_create(&m, &cfg) == SF_OK;
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
    long n = (long)B * cfg.pred_len * cfg.n_channels;
    float *out = sf_malloc((size_t)n * sizeof(float)), *dy = sf_malloc((size_t)n * sizeof(float));
    sf_rng rng;
    sf_rng_seed(&rng, 1);
    /* Training-mode forward (dropout is 0 in the fixtures), so backward can follow. */
    sf_params_zero_grad(&m.params);
    sf_model_forward(&m, x, out, B, 1, &rng);
    double loss = sf_mse_loss(out, y, dy, n);
    sf_model_backward(&m, dy, B);
    double e_out = max_rel_err(out, out_ref, n, 1e-6);
    double e_loss = fabs(loss - loss_ref[0]) / fabs(loss_ref[0]);
    double worst = 0;
    const char *worst_name = "";
    /* Gradients that are zero in exact arithmetic (a bias feeding straight into a BatchNorm,
     * whose batch mean removes it) hold only rounding noise on both sides; judge every tensor
     * against a floor of 1e-3 of the largest gradient in the model (so at least 1e-6 of it in
     * absolute terms at the 1e-3 tolerance) instead of against itself. */
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
        double e = max_rel_err(m.params.grad + m.params.p[i].offset, g, (long)m.params.p[i].numel,
                               1e-3 * gmax);
        if (e > worst) {
            worst = e;
            worst_name = m.params.p[i].name;
        }
    }
    printf("%-48s out %.2e  loss %.2e  grads (%d tensors) worst %.2e [%s]\n", path, e_out, e_loss,
           m.params.n, worst, worst_name);
    CHECK_MSG(e_out <= 1e-4, "%s: output max rel err %.3g", path, e_out);
    CHECK_MSG(e_loss <= 1e-4, "%s: loss rel err %.3g", path, e_loss);
    CHECK_MSG(worst <= 1e-3, "%s: gradient of %s max rel err %.3g", path, worst_name, worst);

    /* BatchNorm fixtures also hold the running statistics after the training forward
     * (after.<name>) and the eval-mode output that uses them (out_eval). */
    double worst_buf = 0;
    for (int i = 0; i < m.params.n; i++) {
        if (!m.params.p[i].buffer) continue;
        char aname[SF_PARAM_NAME_MAX + 8];
        snprintf(aname, sizeof aname, "after.%s", m.params.p[i].name);
        const float *ref = sf_safetensors_get(st, aname, &nd, sy);
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
        CHECK_MSG(worst_buf <= 1e-4, "%s: running statistics max rel err %.3g", path, worst_buf);
        CHECK_MSG(e <= 1e-4, "%s: eval-mode output max rel err %.3g", path, e);
    } else {
        /* Without BatchNorm, eval mode equals training mode when dropout is 0. */
        CHECK(max_rel_err(out2, out, n, 1e-6) < 1e-6);
    }
    free(out2);
    free(out);
    free(dy);
    sf_model_destroy(&m);
    sf_safetensors_close(st);
}

int main(void) {
    check_fixture("tests/fixtures/patchtst_softmax_post.safetensors");
    check_fixture("tests/fixtures/patchtst_linear_pre.safetensors");
    check_fixture("tests/fixtures/patchtst_softmax_causal.safetensors");
    check_fixture("tests/fixtures/dlinear.safetensors");
    check_fixture("tests/fixtures/patchtst_batchnorm_post.safetensors");
    return test_finish();
}
