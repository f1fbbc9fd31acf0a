/* seqformer inspect: what a checkpoint holds and costs: its config, parameters per block, forward
 * and training FLOPs per sample, and memory (parameters, optimizer, activations at a batch). */
#include <stdio.h>
#include <string.h>

#include "cli/common.h"
#include "core/error.h"

/* The group a parameter belongs to: "blocks.3" for blocks.3.mixer.qkv.weight, else the first
 * name component. */
static void group_of(const char *name, char *g, size_t n) {
    const char *dot = strchr(name, '.');
    size_t len = dot ? (size_t)(dot - name) : strlen(name);
    if (dot && !strncmp(name, "blocks.", 7)) {
        const char *d2 = strchr(dot + 1, '.');
        len = d2 ? (size_t)(d2 - name) : strlen(name);
    }
    if (len >= n) len = n - 1;
    memcpy(g, name, len);
    g[len] = 0;
}

static void mib(double bytes, char *buf, size_t n) {
    if (bytes >= 1 << 20) snprintf(buf, n, "%.2f MiB", bytes / (1 << 20));
    else snprintf(buf, n, "%.1f KiB", bytes / 1024);
}

int cmd_inspect(int argc, char **argv) {
    const char *model = NULL, *data = NULL;
    int batch = 128, threads = 0;
    arg_spec specs[] = {
        {"model", ARG_STRING, &model, 0, 0, NULL, "checkpoint (model.safetensors)", 0},
        {"batch-size", ARG_INT, &batch, 1, 65536, NULL, "batch for the activation memory", 0},
    };
    /* `seqformer inspect FILE` reads best; --model FILE works too. */
    if (argc >= 1 && strncmp(argv[0], "--", 2) != 0) {
        model = argv[0];
        argc--, argv++;
    }
    sf_model m;
    int early = cli_parse_and_load("inspect", argc, argv, specs, 2,
                                   "model.safetensors [--batch-size N]", &model, &data, 0,
                                   &threads, &m, NULL);
    if (early >= 0) return early;
    char *cfg = sf_model_config_json(&m, 1);
    printf("config:\n%s\n\nparameters (trainable; buffers in brackets):\n", cfg);
    free(cfg);
    char cur[SF_PARAM_NAME_MAX] = "";
    long n_group = 0, n_buf = 0;
    for (int i = 0; i <= m.params.n; i++) {
        char g[SF_PARAM_NAME_MAX] = "";
        if (i < m.params.n) group_of(m.params.p[i].name, g, sizeof g);
        if (i == m.params.n || strcmp(g, cur) != 0) {
            if (cur[0]) {
                printf("  %-16s %10ld", cur, n_group);
                if (n_buf) printf("  [%ld]", n_buf);
                printf("\n");
            }
            snprintf(cur, sizeof cur, "%s", g);
            n_group = n_buf = 0;
        }
        if (i == m.params.n) break;
        if (m.params.p[i].buffer) n_buf += (long)m.params.p[i].numel;
        else n_group += (long)m.params.p[i].numel;
    }
    long np = sf_model_n_params(&m);
    printf("  %-16s %10ld\n\n", "total", np);
    double f = m.def->ops->flops ? m.def->ops->flops(&m) : 0;
    printf("FLOPs per sample: forward %.4g, training step ~%.4g (3x forward)\n", f, 3 * f);
    char a[32], b[32], c[32], d[32];
    mib(4.0 * (double)m.params.total, a, sizeof a);
    mib(16.0 * (double)m.params.total, b, sizeof b);
    mib(4.0 * (double)sf_model_arena_floats(&m, batch, 0), c, sizeof c);
    mib(4.0 * (double)sf_model_arena_floats(&m, batch, 1), d, sizeof d);
    printf("memory: weights %s, training state (weights, grads, AdamW moments) %s\n", a, b);
    printf("activations at batch %d: inference %s, training %s\n", batch, c, d);
    sf_model_destroy(&m);
    return 0;
}
