#include "config/options.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"

int sf_in_choices(const char *v, const char *choices) {
    size_t n = strlen(v);
    for (const char *c = choices; *c;) {
        const char *end = strchr(c, '|');
        size_t len = end ? (size_t)(end - c) : strlen(c);
        if (len == n && strncmp(c, v, n) == 0) return 1;
        if (!end) break;
        c = end + 1;
    }
    return 0;
}

cJSON *sf_json_float(float f) {
    char buf[32];
    for (int p = 1; p <= 9; p++) { /* 9 significant digits always round-trip a float */
        snprintf(buf, sizeof buf, "%.*g", p, (double)f);
        if (strtof(buf, NULL) == f) break;
    }
    return cJSON_CreateNumber(strtod(buf, NULL));
}

void sf_json_location(const char *text, const char *at, int *line, int *col) {
    *line = 1;
    *col = 1;
    for (const char *p = text; *p && p < at; p++) {
        if (*p == '\n') {
            (*line)++;
            *col = 1;
        } else {
            (*col)++;
        }
    }
}

int sf_json_parse(const char *text, const char *name, cJSON **out) {
    const char *end = NULL;
    *out = cJSON_ParseWithOpts(text, &end, 1);
    if (*out) return SF_OK;
    int line, col;
    sf_json_location(text, end ? end : text, &line, &col);
    return sf_errorf("%s: malformed JSON at line %d, column %d", name, line, col);
}

static int is_extra(const char *key, const char *const *extra) {
    for (; extra && *extra; extra++)
        if (strcmp(*extra, key) == 0) return 1;
    return 0;
}

static int unknown_key(const char *path, const char *key, const sf_option *opts, int n,
                       const char *const *extra) {
    char known[512] = "";
    size_t len = 0;
    for (int i = 0; i < n && len < sizeof known - 64; i++)
        len += (size_t)snprintf(known + len, sizeof known - len, "%s%s", len ? ", " : "",
                                opts[i].name);
    for (; extra && *extra && len < sizeof known - 64; extra++)
        len += (size_t)snprintf(known + len, sizeof known - len, "%s%s", len ? ", " : "", *extra);
    return sf_errorf("%s: unknown option '%s' (options: %s)", path, key,
                     len ? known : "none");
}

static int range_error(const char *path, const sf_option *o, double v) {
    if (v < o->min) return sf_errorf("%s.%s: must be >= %.10g (got %.10g)", path, o->name, o->min, v);
    return sf_errorf("%s.%s: must be <= %.10g (got %.10g)", path, o->name, o->max, v);
}

int sf_options_normalize(const cJSON *in, const sf_option *opts, int n_opts, const char *path,
                         const char *const *extra_keys, cJSON *out) {
    if (in && !cJSON_IsObject(in)) return sf_errorf("%s: expected a JSON object", path);
    for (const cJSON *e = in ? in->child : NULL; e; e = e->next) {
        int known = is_extra(e->string, extra_keys);
        for (int i = 0; i < n_opts && !known; i++) known = strcmp(opts[i].name, e->string) == 0;
        if (!known) return unknown_key(path, e->string, opts, n_opts, extra_keys);
    }
    for (int i = 0; i < n_opts; i++) {
        const sf_option *o = &opts[i];
        const cJSON *v = in ? cJSON_GetObjectItemCaseSensitive(in, o->name) : NULL;
        switch (o->type) {
        case SF_OPT_INT: {
            double x = o->def;
            if (v) {
                if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) ||
                    v->valuedouble != floor(v->valuedouble))
                    return sf_errorf("%s.%s: expected an integer", path, o->name);
                x = v->valuedouble;
            }
            /* range-checked in double before any conversion to int */
            if (x < o->min || x > o->max) return range_error(path, o, x);
            cJSON_AddItemToObject(out, o->name, cJSON_CreateNumber(x));
            break;
        }
        case SF_OPT_FLOAT: {
            double x = o->def;
            if (v) {
                if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
                    return sf_errorf("%s.%s: expected a finite number", path, o->name);
                x = v->valuedouble;
            }
            if (x < o->min || x > o->max) return range_error(path, o, x);
            cJSON_AddItemToObject(out, o->name, sf_json_float((float)x));
            break;
        }
        case SF_OPT_BOOL: {
            int x = o->def != 0;
            if (v) {
                if (!cJSON_IsBool(v))
                    return sf_errorf("%s.%s: expected true or false", path, o->name);
                x = cJSON_IsTrue(v);
            }
            cJSON_AddItemToObject(out, o->name, cJSON_CreateBool(x));
            break;
        }
        case SF_OPT_CHOICE: {
            const char *x = o->def_str;
            if (v) {
                if (!cJSON_IsString(v))
                    return sf_errorf("%s.%s: expected a string (one of %s)", path, o->name,
                                     o->choices);
                x = v->valuestring;
            }
            if (!sf_in_choices(x, o->choices))
                return sf_errorf("%s.%s: '%s' is not one of %s", path, o->name, x, o->choices);
            cJSON_AddItemToObject(out, o->name, cJSON_CreateString(x));
            break;
        }
        }
    }
    return SF_OK;
}

static const cJSON *get(const cJSON *o, const char *name) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    if (!v) {
        fprintf(stderr, "internal error: option '%s' read before normalisation\n", name);
        abort();
    }
    return v;
}

int sf_opt_int(const cJSON *o, const char *name) { return (int)get(o, name)->valuedouble; }
float sf_opt_float(const cJSON *o, const char *name) { return (float)get(o, name)->valuedouble; }
int sf_opt_bool(const cJSON *o, const char *name) { return cJSON_IsTrue(get(o, name)); }
const char *sf_opt_str(const cJSON *o, const char *name) { return get(o, name)->valuestring; }

int sf_part_has_option(const sf_part_info *info, const char *name) {
    for (int i = 0; info && i < info->n_opts; i++)
        if (strcmp(info->opts[i].name, name) == 0) return 1;
    return 0;
}

void sf_options_print(FILE *f, const sf_option *opts, int n_opts, const char *indent) {
    for (int i = 0; i < n_opts; i++) {
        const sf_option *o = &opts[i];
        char type[160];
        switch (o->type) {
        case SF_OPT_INT:
            snprintf(type, sizeof type, "int in [%.10g, %.10g], default %.10g", o->min, o->max, o->def);
            break;
        case SF_OPT_FLOAT:
            snprintf(type, sizeof type, "float in [%.10g, %.10g], default %.10g", o->min, o->max, o->def);
            break;
        case SF_OPT_BOOL:
            snprintf(type, sizeof type, "bool, default %s", o->def ? "true" : "false");
            break;
        case SF_OPT_CHOICE:
            snprintf(type, sizeof type, "%s, default %s", o->choices, o->def_str);
            break;
        }
        fprintf(f, "%s%-14s %s (%s)\n", indent, o->name, o->doc, type);
    }
}
