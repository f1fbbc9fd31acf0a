/* Table-driven command-line flags: every flag has a type and a range, unknown flags and bad
 * values are rejected with a message naming the flag. `--seq_len` and `--seq-len` are the same
 * flag, so Time-Series-Library users can keep their spelling. */
#ifndef SF_CLI_ARGS_H
#define SF_CLI_ARGS_H

#include <stddef.h>

/* ARG_IGNORE: a flag of another tool's scripts that is accepted (its value taken) and has no
 * effect here; listed on one line of the help. */
typedef enum { ARG_INT, ARG_FLOAT, ARG_STRING, ARG_CHOICE, ARG_BOOL, ARG_IGNORE } arg_type;

typedef struct {
    const char *name; /* without the leading "--", words joined by '-' */
    arg_type type;
    void *dst;        /* int*, float*, const char**, const char** (choice), int* (bool) */
    double min, max;  /* numeric range (inclusive) */
    const char *choices; /* "a|b|c" for ARG_CHOICE */
    const char *help;
    int seen;
} arg_spec;

/* SF_OK, SF_ERR (message set), or 1 when --help was printed. */
int args_parse(const char *cmd, int argc, char **argv, arg_spec *specs, int n_specs,
               const char *usage);
void args_print_help(const char *cmd, const arg_spec *specs, int n_specs, const char *usage);
int args_seen(const arg_spec *specs, int n_specs, const char *name);

#endif
