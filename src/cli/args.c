#include "cli/args.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/options.h"
#include "core/error.h"

static int same_flag(const char *given, const char *name) {
    for (; *given && *name; given++, name++) {
        char g = *given == '_' ? '-' : *given;
        if (g != *name) return 0;
    }
    return *given == *name;
}

void args_print_help(const char *cmd, const arg_spec *specs, int n_specs, const char *usage) {
    printf("usage: seqformer %s %s\n\noptions:\n", cmd, usage);
    int n_ignored = 0;
    for (int i = 0; i < n_specs; i++) {
        const arg_spec *s = &specs[i];
        if (s->type == ARG_IGNORE) {
            n_ignored++;
            continue;
        }
        char left[64];
        const char *meta = s->type == ARG_INT ? " N" : s->type == ARG_FLOAT ? " X"
                           : s->type == ARG_BOOL ? "" : s->type == ARG_CHOICE ? " CHOICE" : " VALUE";
        snprintf(left, sizeof left, "--%s%s", s->name, meta);
        printf("  %-24s %s", left, s->help);
        if (s->type == ARG_CHOICE) printf(" (%s)", s->choices);
        if (s->type == ARG_INT) {
            if (*(int *)s->dst) printf(" [default %d]", *(int *)s->dst);
        } else if (s->type == ARG_FLOAT) {
            printf(" [default %g]", (double)*(float *)s->dst);
        } else if ((s->type == ARG_STRING || s->type == ARG_CHOICE) && *(const char **)s->dst) {
            printf(" [default %s]", *(const char **)s->dst);
        }
        printf("\n");
    }
    printf("  %-24s %s\n", "--help", "show this help");
    if (n_ignored) {
        printf("\naccepted for Time-Series-Library scripts, no effect here:\n ");
        for (int i = 0; i < n_specs; i++)
            if (specs[i].type == ARG_IGNORE) printf(" --%s", specs[i].name);
        printf("\n");
    }
}

int args_parse(const char *cmd, int argc, char **argv, arg_spec *specs, int n_specs,
               const char *usage) {
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            args_print_help(cmd, specs, n_specs, usage);
            return 1;
        }
        if (strncmp(a, "--", 2) != 0)
            return sf_errorf("%s: unexpected argument '%s' (flags start with --)", cmd, a);
        const char *name = a + 2, *eq = strchr(name, '=');
        char nbuf[64];
        size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
        if (nlen >= sizeof nbuf) return sf_errorf("%s: unknown flag '%s'", cmd, a);
        memcpy(nbuf, name, nlen);
        nbuf[nlen] = 0;
        arg_spec *s = NULL;
        for (int k = 0; k < n_specs; k++)
            if (same_flag(nbuf, specs[k].name)) s = &specs[k];
        if (!s) return sf_errorf("%s: unknown flag '--%s' (see seqformer %s --help)", cmd, nbuf, cmd);
        s->seen = 1;
        if (s->type == ARG_BOOL && !eq) {
            *(int *)s->dst = 1;
            continue;
        }
        const char *v = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
        if (!v) return sf_errorf("%s: flag '--%s' needs a value", cmd, s->name);
        char *end;
        errno = 0;
        switch (s->type) {
        case ARG_INT: {
            long x = strtol(v, &end, 10);
            if (*v == 0 || *end || errno)
                return sf_errorf("%s: flag '--%s': '%s' is not an integer", cmd, s->name, v);
            if (x < s->min || x > s->max)
                return sf_errorf("%s: flag '--%s': %ld is out of range [%g, %g]", cmd, s->name, x,
                                 s->min, s->max);
            *(int *)s->dst = (int)x;
            break;
        }
        case ARG_FLOAT: {
            double x = strtod(v, &end);
            if (*v == 0 || *end || errno || !isfinite(x))
                return sf_errorf("%s: flag '--%s': '%s' is not a finite number", cmd, s->name, v);
            if (x < s->min || x > s->max)
                return sf_errorf("%s: flag '--%s': %g is out of range [%g, %g]", cmd, s->name, x,
                                 s->min, s->max);
            *(float *)s->dst = (float)x;
            break;
        }
        case ARG_BOOL:
            if (strcmp(v, "1") == 0 || strcmp(v, "true") == 0) *(int *)s->dst = 1;
            else if (strcmp(v, "0") == 0 || strcmp(v, "false") == 0) *(int *)s->dst = 0;
            else return sf_errorf("%s: flag '--%s': '%s' is not 0/1/true/false", cmd, s->name, v);
            break;
        case ARG_CHOICE:
            if (!sf_in_choices(v, s->choices))
                return sf_errorf("%s: flag '--%s': '%s' is not one of %s", cmd, s->name, v,
                                 s->choices);
            *(const char **)s->dst = v;
            break;
        case ARG_IGNORE:
            *(const char **)s->dst = v;
            break;
        case ARG_STRING:
            if (!*v) return sf_errorf("%s: flag '--%s' needs a non-empty value", cmd, s->name);
            *(const char **)s->dst = v;
            break;
        }
    }
    return SF_OK;
}

int args_seen(const arg_spec *specs, int n_specs, const char *name) {
    for (int i = 0; i < n_specs; i++)
        if (strcmp(specs[i].name, name) == 0) return specs[i].seen;
    return 0;
}
