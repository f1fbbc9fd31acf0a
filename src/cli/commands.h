#ifndef SF_CLI_COMMANDS_H
#define SF_CLI_COMMANDS_H

/* Each returns the process exit code: 0 success, 1 runtime/input error, 2 usage error. */
int cmd_train(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_predict(int argc, char **argv);

/* Shared helpers */
int cli_split_kind(const char *s, int *kind);   /* "auto|ett-hour|ett-minute|custom" or stored names */
void cli_set_threads(int n);

#include "cli/args.h"
#include "models/checkpoint.h"
/* The front half shared by eval and predict: parse flags, require --model and --data, apply
 * --threads, load the checkpoint. Returns -1 to go on, or the exit code to return (after printing
 * the error or the help). */
int cli_parse_and_load(const char *cmd, int argc, char **argv, arg_spec *specs, int n_specs,
                       const char *usage, const char *const *model, const char *const *data,
                       const int *threads, sf_model *m, sf_scaler *sc, sf_data_info *info);

#endif
