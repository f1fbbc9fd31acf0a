/* Helpers the cmd_*.c files share (kept out of main.c, which only dispatches). */
#ifndef SF_CLI_COMMON_H
#define SF_CLI_COMMON_H

#include "cli/args.h"
#include "models/checkpoint.h"

/* Each returns the process exit code: 0 success, 1 runtime/input error, 2 usage error. */
int cmd_train(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_predict(int argc, char **argv);
int cmd_list(int argc, char **argv);
int cmd_inspect(int argc, char **argv);
int cmd_gp(int argc, char **argv);
int cmd_generate(int argc, char **argv); /* cmd_generate.c */
/* An lm config from the train flags (cmd_lm_config.c). */
struct cJSON;
struct cJSON *cli_lm_config(int seq_len, int d_model, int n_heads, int e_layers, int d_ff,
                            float dropout, const char *mixer, const char *norm,
                            const char *norm_place, const char *pos);

void cli_set_threads(int n);
/* Print "seqformer: <message>" to stderr and return code. */
int cli_fail(int code);
/* The front half shared by eval, predict and inspect: parse flags, require --model (and --data
 * when need_data), apply --threads, load the checkpoint (and its metadata). Returns -1 to go on,
 * or the exit code to return (after printing the error or the help). */
int cli_parse_and_load(const char *cmd, int argc, char **argv, arg_spec *specs, int n_specs,
                       const char *usage, const char *const *model, const char *const *data,
                       int need_data, const int *threads, sf_model *m, sf_meta *meta);

#endif
