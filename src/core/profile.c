#include <stdio.h>

#include "core/profile.h"

#include <omp.h>
#include <time.h>

int sf_profile_on;

#define SF_PROF_MAX_DEPTH 16

static double excl[SF_PROF_N];
/* child[d]: time spent in timed calls nested directly inside the open call at depth d */
static double child[SF_PROF_MAX_DEPTH + 1];
static int depth;

static const char *const names[SF_PROF_N] = {"GEMM",    "attention", "norms",
                                             "activations", "ffn fused", "dropout",
                                             "optimizer", "data"};

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void sf_profile_enable(int on) {
    sf_profile_on = on;
    sf_profile_reset();
}

void sf_profile_reset(void) {
    for (int c = 0; c < SF_PROF_N; c++) excl[c] = 0.0;
    depth = 0;
    child[0] = 0.0;
}

double sf_profile_seconds(sf_prof_cat cat) { return excl[cat]; }

const char *sf_profile_name(sf_prof_cat cat) { return names[cat]; }

double sf_profile_begin_(void) {
    /* inside a parallel region several threads would race on the table: not timed */
    if (omp_in_parallel() || depth >= SF_PROF_MAX_DEPTH) return -1.0;
    child[++depth] = 0.0;
    return now();
}

void sf_profile_end_(sf_prof_cat cat, double t0) {
    double el = now() - t0;
    excl[cat] += el - child[depth];
    depth--;
    child[depth] += el;
}

void sf_profile_print(FILE *f, const char *title, double total_s, int units) {
    double sum = 0.0;
    fprintf(f, "%-12s %10s %7s   (%s, %d units, exclusive wall time)\n", "operation", "ms/unit",
            "%", title, units);
    for (int c = 0; c < SF_PROF_N; c++) {
        sum += excl[c];
        fprintf(f, "%-12s %10.3f %6.1f%%\n", names[c], 1e3 * excl[c] / units,
                total_s > 0 ? 100.0 * excl[c] / total_s : 0.0);
    }
    double other = total_s - sum;
    fprintf(f, "%-12s %10.3f %6.1f%%\n", "other", 1e3 * other / units,
            total_s > 0 ? 100.0 * other / total_s : 0.0);
    fprintf(f, "%-12s %10.3f %6.1f%%\n", "total", 1e3 * total_s / units, 100.0);
}
