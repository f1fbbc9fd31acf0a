/* Minimal test harness shared by all C tests: CHECK-style assertions that count instead of
 * aborting, a seed that is printed so any failure on random inputs can be replayed
 * (SF_TEST_SEED=<n> overrides it), and a closing "N passed, N failed" line. */
#ifndef SF_TEST_UTIL_H
#define SF_TEST_UTIL_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "core/rng.h"

static int t_passed, t_failed;

#define CHECK(cond)                                                                       \
    do {                                                                                  \
        if (cond) {                                                                       \
            t_passed++;                                                                   \
        } else {                                                                          \
            t_failed++;                                                                   \
            fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond);               \
        }                                                                                 \
    } while (0)

#define CHECK_MSG(cond, ...)                                                              \
    do {                                                                                  \
        if (cond) {                                                                       \
            t_passed++;                                                                   \
        } else {                                                                          \
            t_failed++;                                                                   \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);               \
            fprintf(stderr, __VA_ARGS__);                                                 \
            fprintf(stderr, "\n");                                                        \
        }                                                                                 \
    } while (0)

#define CHECK_NEAR(a, b, tol)                                                             \
    CHECK_MSG(fabs((double)(a) - (double)(b)) <= (tol), "%s=%.8g %s=%.8g tol=%g", #a,      \
              (double)(a), #b, (double)(b), (double)(tol))

/* A fresh seed per run (time-based) unless SF_TEST_SEED is set; always printed. */
static inline uint64_t test_seed(void) {
    const char *e = getenv("SF_TEST_SEED");
    uint64_t s = e ? strtoull(e, NULL, 10) : (uint64_t)time(NULL) ^ ((uint64_t)clock() << 20);
    printf("seed %llu (replay with SF_TEST_SEED=%llu)\n", (unsigned long long)s,
           (unsigned long long)s);
    return s;
}

/* n floats drawn from N(0, s^2) (at least one allocated); the caller frees them. */
static inline float *test_randn(sf_rng *rng, long n, float s) {
    float *p = malloc(sizeof(float) * (size_t)(n > 0 ? n : 1));
    sf_rng_fill_normal(rng, p, n, 0.0f, s);
    return p;
}

/* max_i |a-b| / max(max_i |b|, floor): one relative error for a whole tensor. */
static inline double max_rel_err(const float *a, const float *b, long n, double floor) {
    double md = 0, mb = floor;
    for (long i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (d > md || d != d) md = d;
        if (fabs((double)b[i]) > mb) mb = fabs((double)b[i]);
    }
    return md / mb;
}

static inline int test_finish(void) {
    printf("%d passed, %d failed\n", t_passed, t_failed);
    return t_failed ? 1 : 0;
}

#endif
