/* seqformer eval: checkpoint + data -> the task's metrics on a split as JSON, with the data
 * protocol stored in the checkpoint (forecast: split borders, target, features, scaler).
 * classify: --ensemble adds checkpoints whose class probabilities are averaged with --model's. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/common.h"
#include "core/error.h"
#include "layers/pararnn_mixer.h"
#include "tasks/classify.h"
#include "tasks/task.h"

/* --ensemble: the probabilities t holds (--model's, on every series of the file: a classify
 * task opened for eval scores the whole file in every split) averaged with those of the listed
 * checkpoints (tasks/classify.h); the metrics recomputed into mt. */
static int eval_ensemble(sf_task *t, const char *data, const char *list, sf_metrics *mt,
                         int *members) {
    long n;
    int K;
    char *const *names;
    const float *p0 = sf_classify_probabilities(t, &n, &K, &names);
    if (!p0) return sf_errorf("eval: --ensemble is for classify checkpoints");
    float *avg = sf_malloc((size_t)n * K * sizeof(float));
    memcpy(avg, p0, (size_t)n * K * sizeof(float));
    int rc = sf_classify_add_ensemble(list, data, names, K, (int)n, avg, members);
    if (rc == SF_OK) rc = sf_classify_set_probabilities(t, avg, n, mt);
    free(avg);
    return rc;
}

int cmd_eval(int argc, char **argv) {
    const char *model = NULL, *data = NULL, *split = NULL, *which = "test", *test_text = NULL;
    const char *plot = NULL, *ensemble = NULL;
    int batch = 256, threads = 0;
    arg_spec specs[] = {
        {"model", ARG_STRING, &model, 0, 0, NULL, "checkpoint (model.safetensors)", 0},
        {"data", ARG_STRING, &data, 0, 0, NULL, "data file", 0},
        {"split", ARG_CHOICE, &split, 0, 0, "auto|ett-hour|ett-minute|custom",
         "override the split borders stored in the checkpoint", 0},
        {"subset", ARG_CHOICE, &which, 0, 0, "test|val|train", "which split to score", 0},
        {"batch-size", ARG_INT, &batch, 1, 65536, NULL, "evaluation batch size (lm: default 32)", 0},
        {"test", ARG_STRING, &test_text, 0, 0, NULL, "lm: score this text as the test split", 0},
        {"threads", ARG_INT, &threads, 0, 1024, NULL, "threads (0: OpenMP default)", 0},
        {"plot", ARG_STRING, &plot, 0, 0, NULL,
         "classify: write PLOT_confusion.svg, PLOT_roc.svg and PLOT_pr.svg", 0},
        {"ensemble", ARG_STRING, &ensemble, 0, 0, NULL,
         "classify: more checkpoints (comma-separated) whose class probabilities are averaged "
         "with --model's (an ensemble, e.g. of seeds)", 0},
    };
    sf_model m;
    sf_meta meta;
    int early = cli_parse_and_load("eval", argc, argv, specs, (int)(sizeof specs / sizeof *specs),
                                   "--model DIR/model.safetensors --data F.csv", &model, &data, 1,
                                   &threads, &m, &meta);
    if (early >= 0) return early;
    const sf_task_def *td = sf_task_find(sf_opt_str(m.config, "task"));
    sf_task_args ta = {.data = data, .split = split, .test = test_text};
    if (!strcmp(td->info.name, "lm") && !args_seen(specs, (int)(sizeof specs / sizeof *specs), "batch-size"))
        batch = 32; /* logits are [B, T, vocab] */
    sf_task t;
    int rc = 1;
    if (td->open_eval(&t, &ta, &m, &meta)) {
        sf_error_prefix("%s", model);
        rc = cli_fail(1);
        goto out;
    }
    sf_split s = !strcmp(which, "val") ? SF_VAL : !strcmp(which, "train") ? SF_TRAIN : SF_TEST;
    sf_metrics mt;
    sf_newton_tally newton = {0};
    const int uses_newton = sf_config_uses_newton(m.config);
    if (uses_newton) m.run.newton = &newton;
    sf_task_evaluate(&t, &m, s, batch, &mt);
    m.run.newton = NULL;
    int members = 1;
    if (ensemble && eval_ensemble(&t, data, ensemble, &mt, &members)) {
        sf_task_close(&t);
        rc = cli_fail(1);
        goto out;
    }
    if (uses_newton) { /* the ParaRNN mixers' Newton solves: on stderr, the JSON stays as it was */
        char text[160];
        sf_newton_tally_format(&newton, text, sizeof text);
        fprintf(stderr, "%snewton: %s%s\n", newton.fallbacks ? "warning: " : "", text,
                newton.fallbacks ? " (residual above newton_tol after newton_iters: those solves "
                                   "fell back to the sequential loop)" : "");
    }
    if (t.ops->report) { /* JSON by cJSON (a NaN metric prints as null) plus the task's extras */
        cJSON *o = cJSON_CreateObject();
        for (int i = 0; i < mt.n; i++) cJSON_AddNumberToObject(o, mt.name[i], mt.value[i]);
        cJSON_AddNumberToObject(o, "examples", t.ops->n_examples(&t, s));
        if (ensemble) cJSON_AddNumberToObject(o, "models", members);
        int ok = t.ops->report(&t, o, plot) == SF_OK;
        char *text = cJSON_PrintUnformatted(o);
        printf("%s\n", text);
        free(text);
        cJSON_Delete(o);
        sf_task_close(&t);
        rc = ok ? 0 : cli_fail(1);
        goto out;
    }
    if (plot) {
        sf_task_close(&t);
        sf_errorf("eval: --plot is for the classify task (forecast: seqformer predict --plot)");
        rc = cli_fail(2);
        goto out;
    }
    printf("{");
    for (int i = 0; i < mt.n; i++) printf("\"%s\":%.6f,", mt.name[i], mt.value[i]);
    printf("\"windows\":%d,\"split\":\"%s\"}\n", t.ops->n_examples(&t, s), which);
    sf_task_close(&t);
    rc = 0;
out:
    sf_model_destroy(&m);
    sf_meta_free(&meta);
    return rc;
}
