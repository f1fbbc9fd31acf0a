/* Declared options: every registry part (model, block kind, mixer, norm, positions, input, head,
 * task) lists its options in a table of sf_option. The same table drives the config reader
 * (validation, defaults, errors naming the field), `seqformer list`, and the flag help.
 *
 * A part's options live in a JSON object (cJSON). sf_options_normalize() checks a user object
 * against a table and builds the canonical object: every declared option present, in table
 * order, defaults filled, floats written as the shortest decimal that reads back to the same
 * float32. After normalisation the typed getters below cannot fail (a missing key is a bug). */
#ifndef SF_CONFIG_OPTIONS_H
#define SF_CONFIG_OPTIONS_H

#include <cjson/cJSON.h>
#include <stdio.h>

typedef enum { SF_OPT_INT, SF_OPT_FLOAT, SF_OPT_BOOL, SF_OPT_CHOICE } sf_opt_type;

typedef struct {
    const char *name;
    sf_opt_type type;
    double def;          /* default of an int, float or bool option */
    const char *def_str; /* default of a choice option */
    double min, max;     /* inclusive range of an int or float option */
    const char *choices; /* "a|b|c" for a choice option */
    const char *doc;     /* one line */
} sf_option;

/* A registry entry's common head: its name, a one-line doc and its options. */
typedef struct {
    const char *name;
    const char *doc;
    const sf_option *opts;
    int n_opts;
} sf_part_info;

#define SF_OPTS(table) (table), (int)(sizeof(table) / sizeof *(table))

/* Checks `in` (may be NULL: all defaults) against opts and appends the canonical values to `out`
 * (an object). Keys of `in` that are neither options nor listed in `extra_keys` (NULL-terminated;
 * the caller validates those) are errors. `path` names the object in messages ("blocks[2].norm").
 * SF_ERR with a message like "blocks[2].norm.eps: must be >= 0" or
 * "blocks[0].token_mixer: unknown option 'widow' (options: n_heads, causal)". */
int sf_options_normalize(const cJSON *in, const sf_option *opts, int n_opts, const char *path,
                         const char *const *extra_keys, cJSON *out);

/* 1 if v is one of the '|'-separated words of choices ("a|b|c"). */
int sf_in_choices(const char *v, const char *choices);

/* Typed reads of a normalised object. */
int sf_opt_int(const cJSON *o, const char *name);
float sf_opt_float(const cJSON *o, const char *name);
int sf_opt_bool(const cJSON *o, const char *name);
const char *sf_opt_str(const cJSON *o, const char *name);

/* A JSON number node holding the shortest decimal that reads back to f (cJSON then prints it
 * exactly: 0.3f -> 0.3). */
cJSON *sf_json_float(float f);
/* "%s (line L, column C)" location of an offset in a text, for parse errors. */
void sf_json_location(const char *text, const char *at, int *line, int *col);
/* Parse JSON text: SF_ERR with "NAME: malformed JSON at line L, column C" on failure. */
int sf_json_parse(const char *text, const char *name, cJSON **out);

/* Print an option table, one line per option, for `seqformer list` and --help. */
void sf_options_print(FILE *f, const sf_option *opts, int n_opts, const char *indent);
/* 1 if the registry entry `info` (NULL: none) declares an option called `name`. */
int sf_part_has_option(const sf_part_info *info, const char *name);

#endif
