/* seqformer predict: run a checkpoint on new data; the task decides what is written
 * (forecast: the pred_len steps after the last row, in original units, as CSV, optional SVG). */
#include <stdio.h>
#include <string.h>

#include "cli/common.h"
#include "core/error.h"
#include "tasks/task.h"

int cmd_predict(int argc, char **argv) {
    const char *model = NULL, *data = NULL, *out = NULL, *plot = NULL, *channel = NULL,
               *object = NULL, *attention_svg = NULL, *ensemble = NULL;
    int threads = 0;
    arg_spec specs[] = {
        {"model", ARG_STRING, &model, 0, 0, NULL, "checkpoint (model.safetensors)", 0},
        {"data", ARG_STRING, &data, 0, 0, NULL, "CSV file; the forecast follows its last row", 0},
        {"out", ARG_STRING, &out, 0, 0, NULL, "write the forecast CSV here (default: stdout)", 0},
        {"plot", ARG_STRING, &plot, 0, 0, NULL, "write an SVG of history + forecast here", 0},
        {"channel", ARG_STRING, &channel, 0, 0, NULL, "channel to plot (default: the target)", 0},
        {"object", ARG_STRING, &object, 0, 0, NULL,
         "classify: series (0-based row) whose gradient x input attribution --plot draws", 0},
        {"attention-svg", ARG_STRING, &attention_svg, 0, 0, NULL,
         "classify (t2): SVG of the softmax attention weights of every head of every block for "
         "--object", 0},
        {"ensemble", ARG_STRING, &ensemble, 0, 0, NULL,
         "classify: more checkpoints (comma-separated) whose class probabilities are averaged "
         "with --model's", 0},
        {"threads", ARG_INT, &threads, 0, 1024, NULL, "threads (0: OpenMP default)", 0},
    };
    sf_model m;
    sf_meta meta;
    int early = cli_parse_and_load("predict", argc, argv, specs,
                                   (int)(sizeof specs / sizeof *specs),
                                   "--model DIR/model.safetensors --data F.csv [--out pred.csv]",
                                   &model, &data, 1, &threads, &m, &meta);
    if (early >= 0) return early;
    const sf_task_def *td = sf_task_find(sf_opt_str(m.config, "task"));
    if (ensemble && strcmp(td->info.name, "classify") != 0) {
        sf_errorf("predict: --ensemble is for classify checkpoints (this one is %s)", td->info.name);
        sf_model_destroy(&m);
        sf_meta_free(&meta);
        return cli_fail(2);
    }
    if (channel && object) {
        sf_errorf("predict: --channel (forecast) and --object (classify) exclude each other");
        sf_model_destroy(&m);
        sf_meta_free(&meta);
        return cli_fail(2);
    }
    sf_predict_args pa = {.model = model, .data = data, .out = out, .plot = plot,
                          .item = channel ? channel : object, .attention_svg = attention_svg, .ensemble = ensemble};
    int rc = td->predict(&m, &meta, &pa) ? cli_fail(1) : 0;
    sf_model_destroy(&m);
    sf_meta_free(&meta);
    return rc;
}
