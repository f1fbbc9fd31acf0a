#include "cli/common.h"

#include <omp.h>
#include <stdio.h>

#include "core/error.h"

void cli_set_threads(int n) {
    if (n > 0) omp_set_num_threads(n);
}

int cli_fail(int code) {
    fprintf(stderr, "seqformer: %s\n", sf_error_message());
    return code;
}

int cli_parse_and_load(const char *cmd, int argc, char **argv, arg_spec *specs, int n_specs,
                       const char *usage, const char *const *model, const char *const *data,
                       int need_data, const int *threads, sf_model *m, sf_meta *meta) {
    int pr = args_parse(cmd, argc, argv, specs, n_specs, usage);
    if (pr == 1) return 0;
    if (pr == SF_OK && (!*model || (need_data && !*data)))
        pr = sf_errorf("%s: --model%s required (see seqformer %s --help)", cmd,
                       need_data ? " and --data are" : " is", cmd);
    if (pr != SF_OK) return cli_fail(2);
    cli_set_threads(*threads);
    if (sf_checkpoint_load(*model, m, meta)) return cli_fail(1);
    return -1;
}
