#ifndef SF_CLI_COMMANDS_H
#define SF_CLI_COMMANDS_H

/* Each returns the process exit code: 0 success, 1 runtime/input error, 2 usage error. */
int cmd_train(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_predict(int argc, char **argv);

/* Shared helpers */
int cli_split_kind(const char *s, int *kind);   /* "auto|ett-hour|ett-minute|custom" or stored names */
void cli_set_threads(int n);

#endif
