/* t2's per-head attention maps (models/t2.h, layers/softmax_attention.h) and their SVG:
 *  - every valid query row sums to 1 over the valid keys, padding keys and padding rows are 0;
 *  - block 0's maps equal a softmax computed here in double from the parameters (embedding,
 *    sinusoidal positions, q and k projections), independent of the attention kernel;
 *  - the maps of a padded series equal those of the same weights built for its length;
 *  - a model without softmax attention is refused; the SVG is written and well-formed. */
#include <math.h>
#include <string.h>
#include <unistd.h>

#include "core/error.h"
#include "models/t2.h"
#include "util/svg_plot.h"
#include "test_util.h"

static const char *cfg_json(int L, const char *mixer) {
    static char json[1024];
    snprintf(json, sizeof json,
             "{\"task\":\"classify\",\"model\":\"t2\",\"seq_len\":%d,\"n_channels\":2,"
             "\"n_classes\":3,\"d_model\":8,\"positions\":\"sinusoidal\",\"blocks\":[{\"kind\":"
             "\"metaformer\",\"repeat\":2,\"placement\":\"post\",\"dropout\":0.3,\"norm\":"
             "{\"kind\":\"layernorm\",\"eps\":1e-6},\"token_mixer\":{\"kind\":\"%s\","
             "\"n_heads\":2},\"channel_mixer\":{\"kind\":\"mlp\",\"d_ff\":12}}],"
             "\"head\":{\"kind\":\"pool_classify\",\"dropout\":0.2}}",
             L, mixer);
    return json;
}

static const float *param(const sf_model *m, const char *name) {
    int i = sf_params_find(&m->params, name);
    CHECK_MSG(i >= 0, "no parameter %s", name);
    return i >= 0 ? m->params.data + m->params.p[i].offset : NULL;
}

/* Block 0 head h in double: z = relu(x We^T + be) + pe; q, k = z Wq^T + bq, z Wk^T + bk (head
 * columns h*Dh..), p = softmax over the n valid keys of q.k / sqrt(Dh). */
static double ref_max_err(const sf_model *m, const float *x, int n, const sf_attention_maps *am) {
    const int d = 8, C = 2, Dh = 4, T = am->T;
    const float *We = param(m, "embed.weight"), *be = param(m, "embed.bias");
    const float *Wqkv = param(m, "blocks.0.mixer.qkv.weight"), *bqkv = param(m, "blocks.0.mixer.qkv.bias");
    if (!We || !be || !Wqkv || !bqkv) return 1;
    double z[16][8], q[16][8], k[16][8], worst = 0;
    for (int t = 0; t < n; t++)
        for (int o = 0; o < d; o++) {
            double s = be[o];
            for (int c = 0; c < C; c++) s += (double)We[o * C + c] * x[t * C + c];
            s = s > 0 ? s : 0;
            int i = o & ~1;
            double a = t * pow(10000.0, -(double)i / d);
            z[t][o] = s + (float)(o % 2 ? cos(a) : sin(a));
        }
    for (int t = 0; t < n; t++)
        for (int o = 0; o < d; o++) {
            double sq = bqkv[o], sk = bqkv[d + o];
            for (int e = 0; e < d; e++) {
                sq += (double)Wqkv[o * d + e] * z[t][e];
                sk += (double)Wqkv[(d + o) * d + e] * z[t][e];
            }
            q[t][o] = sq;
            k[t][o] = sk;
        }
    for (int h = 0; h < 2; h++)
        for (int i = 0; i < n; i++) {
            double s[16], mx = -1e300, sum = 0;
            for (int j = 0; j < n; j++) {
                s[j] = 0;
                for (int e = 0; e < Dh; e++) s[j] += q[i][h * Dh + e] * k[j][h * Dh + e];
                s[j] /= sqrt((double)Dh);
                if (s[j] > mx) mx = s[j];
            }
            for (int j = 0; j < n; j++) sum += exp(s[j] - mx);
            for (int j = 0; j < n; j++) {
                double e = fabs(exp(s[j] - mx) / sum - am->p[((size_t)h * T + i) * T + j]);
                if (e > worst) worst = e;
            }
        }
    return worst;
}

int main(void) {
    uint64_t seed = test_seed();
    const int L = 12, n = 7, C = 2;
    sf_model m, m7;
    CHECK(sf_model_create_json(&m, cfg_json(L, "softmax"), "t2") == SF_OK);
    CHECK(sf_model_create_json(&m7, cfg_json(n, "softmax"), "t2") == SF_OK);
    sf_model_init_weights(&m, seed);
    memcpy(m7.params.data, m.params.data, m.params.total * sizeof(float));
    sf_rng rng;
    sf_rng_seed(&rng, seed + 1);
    float x[12 * 2 + 1], x7[7 * 2 + 1];
    sf_rng_fill_normal(&rng, x, L * C, 0.0f, 1.0f);
    x[L * C] = (float)n; /* steps n.. are padding holding garbage */
    memcpy(x7, x, (size_t)n * C * sizeof(float));
    x7[n * C] = (float)n;

    sf_attention_maps am, am7;
    CHECK(sf_t2_attention_maps(&m, x, &am) == SF_OK);
    CHECK(sf_t2_attention_maps(&m7, x7, &am7) == SF_OK);
    CHECK(am.n_maps == 4 && am.T == L && am.len == n);
    CHECK(am.block[3] == 1 && am.head[3] == 1);
    double worst_sum = 0, pad = 0, diff7 = 0;
    for (int k = 0; k < am.n_maps; k++)
        for (int i = 0; i < L; i++) {
            double s = 0;
            for (int j = 0; j < L; j++) {
                float v = am.p[((size_t)k * L + i) * L + j];
                if (i < n && j < n) {
                    s += v;
                    double e = fabs(v - am7.p[((size_t)k * n + i) * n + j]);
                    if (e > diff7) diff7 = e;
                } else if (v != 0.0f) {
                    pad = fmax(pad, fabs(v));
                }
            }
            if (i < n && fabs(s - 1) > worst_sum) worst_sum = fabs(s - 1);
        }
    double ref = ref_max_err(&m, x, n, &am);
    printf("attention maps: rows sum to 1 within %.2e, padding max %.1e, padded vs built for %d "
           "steps %.2e, vs a double softmax from the parameters %.2e\n",
           worst_sum, pad, n, diff7, ref);
    CHECK(worst_sum < 1e-5);
    CHECK(pad == 0);
    CHECK(diff7 < 1e-6);
    CHECK(ref < 1e-5);
    /* the model's weights are untouched and dropout did not act (same maps twice) */
    sf_attention_maps again;
    CHECK(sf_t2_attention_maps(&m, x, &again) == SF_OK);
    CHECK(memcmp(again.p, am.p, (size_t)am.n_maps * L * L * sizeof(float)) == 0);
    sf_attention_maps_free(&again);

    /* the SVG */
    char path[] = "/tmp/sf_attention_mapsXXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    if (fd >= 0) close(fd);
    const char *titles[4] = {"block 0 head 0", "block 0 head 1", "block 1 head 0", "b<1> & h1"};
    CHECK(sf_svg_heatmaps(path, "series 0 <test>", am.p, am.n_maps, am.T, am.len, titles, 2) == SF_OK);
    FILE *f = fopen(path, "rb");
    char buf[1 << 16];
    size_t got = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    if (f) fclose(f);
    buf[got] = '\0';
    int open_t = 0, close_t = 0, open_g = 0, close_g = 0;
    for (const char *p = buf; (p = strstr(p, "<text")); p++) open_t++;
    for (const char *p = buf; (p = strstr(p, "</text>")); p++) close_t++;
    for (const char *p = buf; (p = strstr(p, "<g ")); p++) open_g++;
    for (const char *p = buf; (p = strstr(p, "</g>")); p++) close_g++;
    CHECK(got > 0 && got < sizeof buf - 1);
    CHECK(strncmp(buf, "<svg", 4) == 0 && strstr(buf, "</svg>\n") && !strstr(buf, "nan"));
    CHECK(open_t == close_t && open_g == 4 && close_g == 4);
    CHECK(strstr(buf, "b&lt;1&gt; &amp; h1") != NULL && strstr(buf, "&lt;test&gt;") != NULL);
    CHECK(strstr(buf, "<rect x=") != NULL);
    unlink(path);
    CHECK(sf_svg_heatmaps("/nonexistent-dir/x.svg", NULL, am.p, 1, L, n, NULL, 1) == SF_ERR);
    sf_attention_maps_free(&am);
    sf_attention_maps_free(&am7);
    sf_model_destroy(&m);
    sf_model_destroy(&m7);

    /* no softmax attention: refused, saying why */
    sf_model lin;
    CHECK(sf_model_create_json(&lin, cfg_json(L, "linear"), "t2") == SF_OK);
    sf_model_init_weights(&lin, 1);
    sf_attention_maps none;
    CHECK(sf_t2_attention_maps(&lin, x, &none) == SF_ERR);
    CHECK(strstr(sf_error_message(), "no block") != NULL);
    CHECK(none.p == NULL);
    sf_model_destroy(&lin);
    return test_finish();
}
