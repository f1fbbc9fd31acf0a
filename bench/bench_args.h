/* Flag parsing shared by the benchmarks (bench/ only): flags come in pairs "--name value". */
#ifndef SF_BENCH_ARGS_H
#define SF_BENCH_ARGS_H

#include <stdio.h>

/* Whether argv[i] is a flag without its value (the last argument, e.g. --help); says so on stderr
 * naming the benchmark, so the caller exits 2 instead of silently running with its defaults. */
static inline int bench_flag_lacks_value(int argc, char **argv, int i, const char *bench) {
    if (i + 1 < argc) return 0;
    fprintf(stderr, "%s: %s needs a value (flags: the comment at the top of bench/%s.c)\n", bench,
            argv[i], bench);
    return 1;
}

#endif
