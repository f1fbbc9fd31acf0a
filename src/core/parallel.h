/* Loops that use the OpenMP team only when the work pays for it.
 *
 * `#pragma omp parallel for if (0)` is not free: libgomp still builds a one-thread team for the
 * region and ends it through its barrier, which wakes waiters with futex syscalls, whether or not
 * anyone waits. On this project's VMs that is 1.4-1.6 us per region, 2.7-2.9 us inside another
 * parallel region (where nested regions get one thread anyway; bench/omp_region_cost.c) — more
 * than most of the small loops of a batch-1 forecast cost, and such a call entered 18 of them per
 * thread (bench/gomp_region_count.c). SF_PARALLEL_FOR_IF
 * runs the loop as a plain loop on the calling thread unless `cond` holds and no parallel region
 * is active; each iteration does the same work either way, so results do not change. */
#ifndef SF_CORE_PARALLEL_H
#define SF_CORE_PARALLEL_H

#ifdef _OPENMP
#include <omp.h>
#endif

/* 1 when a parallel region entered here would get more than one thread: `cond` holds and the
 * caller is not already inside an active parallel region. */
static inline int sf_parallel_worth(int cond) {
#ifdef _OPENMP
    return cond && !omp_in_parallel();
#else
    (void)cond;
    return 0;
#endif
}

/* SF_PARALLEL_FOR_IF(cond, for (...) body): the loop under `omp parallel for schedule(static)`
 * when sf_parallel_worth(cond), else the same loop on the calling thread. */
#define SF_PARALLEL_FOR_IF(cond, ...)                                                          \
    do {                                                                                       \
        if (sf_parallel_worth(cond)) {                                                         \
            _Pragma("omp parallel for schedule(static)") __VA_ARGS__                           \
        } else {                                                                               \
            __VA_ARGS__                                                                        \
        }                                                                                      \
    } while (0)

#endif
