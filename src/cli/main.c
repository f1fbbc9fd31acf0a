/* seqformer command-line entry point: dispatches to the commands (cmd_*.c). */
#include <stdio.h>
#include <string.h>

#include "cli/common.h"

static void usage(FILE *f) {
    fprintf(f,
            "seqformer 0.2.0 - Transformer-family sequence models in C\n\n"
            "usage: seqformer <command> [flags]\n\n"
            "commands:\n"
            "  train     train a model (flags or --config model.json) and write DIR/model.safetensors\n"
            "  eval      print a checkpoint's metrics on a data split as JSON\n"
            "  predict   run a checkpoint on new data (forecast: the steps after the last row)\n"
            "  generate  stream text from a language model (lm) checkpoint\n"
            "  inspect   a checkpoint's config, parameters per block, FLOPs and memory\n"
            "  list      every registered part (models, tasks, blocks, mixers, norms, ...) with\n"
            "            its options\n"
            "  gp        light curves -> 2-D Gaussian-process grids as UEA .ts files (t2's\n"
            "            preprocessing), k-fold pairs, GP-fit plots\n\n"
            "Run 'seqformer <command> --help' for the flags of a command.\n");
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
        printf("seqformer 0.2.0\n");
        return 0;
    }
    if (!strcmp(cmd, "train")) return cmd_train(argc - 2, argv + 2);
    if (!strcmp(cmd, "eval")) return cmd_eval(argc - 2, argv + 2);
    if (!strcmp(cmd, "predict")) return cmd_predict(argc - 2, argv + 2);
    if (!strcmp(cmd, "inspect")) return cmd_inspect(argc - 2, argv + 2);
    if (!strcmp(cmd, "generate")) return cmd_generate(argc - 2, argv + 2);
    if (!strcmp(cmd, "list")) return cmd_list(argc - 2, argv + 2);
    if (!strcmp(cmd, "gp")) return cmd_gp(argc - 2, argv + 2);
    fprintf(stderr,
            "seqformer: unknown command '%s' (expected train, eval, predict, generate, inspect or list)\n",
            cmd);
    return 2;
}
