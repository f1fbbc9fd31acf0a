/* seqformer command-line entry point: dispatches to train / eval / predict. */
#include <omp.h>
#include <stdio.h>
#include <string.h>

#include "cli/commands.h"
#include "core/error.h"
#include "data/forecast_data.h"

static void usage(FILE *f) {
    fprintf(f,
            "seqformer 0.1.0 - Transformer-family sequence models in C\n\n"
            "usage: seqformer <command> [flags]\n\n"
            "commands:\n"
            "  train     train a forecaster on a CSV file and write DIR/model.safetensors\n"
            "  eval      print test-split MSE/MAE of a checkpoint as JSON\n"
            "  predict   forecast the steps after the last row, in original units\n\n"
            "Run 'seqformer <command> --help' for the flags of a command.\n");
}

int cli_split_kind(const char *s, int *kind) {
    if (!strcmp(s, "auto")) *kind = SF_SPLIT_AUTO;
    else if (!strcmp(s, "ett-hour") || !strcmp(s, "ETT-hour")) *kind = SF_SPLIT_ETT_HOUR;
    else if (!strcmp(s, "ett-minute") || !strcmp(s, "ETT-minute")) *kind = SF_SPLIT_ETT_MINUTE;
    else if (!strcmp(s, "custom")) *kind = SF_SPLIT_CUSTOM;
    else return sf_errorf("unknown split kind '%s'", s);
    return SF_OK;
}

void cli_set_threads(int n) {
    if (n > 0) omp_set_num_threads(n);
}

int cli_parse_and_load(const char *cmd, int argc, char **argv, arg_spec *specs, int n_specs,
                       const char *usage, const char *const *model, const char *const *data,
                       const int *threads, sf_model *m, sf_scaler *sc, sf_data_info *info) {
    int pr = args_parse(cmd, argc, argv, specs, n_specs, usage);
    if (pr == 1) return 0;
    if (pr == SF_OK && (!*model || !*data))
        pr = sf_errorf("%s: --model and --data are required (see seqformer %s --help)", cmd, cmd);
    if (pr != SF_OK) {
        fprintf(stderr, "seqformer: %s\n", sf_error_message());
        return 2;
    }
    cli_set_threads(*threads);
    if (sf_checkpoint_load(*model, m, sc, info)) {
        fprintf(stderr, "seqformer: %s\n", sf_error_message());
        return 1;
    }
    return -1;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(cmd, "--version")) {
        printf("seqformer 0.1.0\n");
        return 0;
    }
    if (!strcmp(cmd, "train")) return cmd_train(argc - 2, argv + 2);
    if (!strcmp(cmd, "eval")) return cmd_eval(argc - 2, argv + 2);
    if (!strcmp(cmd, "predict")) return cmd_predict(argc - 2, argv + 2);
    fprintf(stderr, "seqformer: unknown command '%s' (expected train, eval or predict)\n", cmd);
    return 2;
}
