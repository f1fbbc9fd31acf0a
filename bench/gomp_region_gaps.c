/* LD_PRELOAD shim that times a program's top-level OpenMP parallel regions (GOMP_parallel calls
 * made outside any region): per outlined function, the wall time inside its regions and the
 * serial time since the previous region ended ("gap before"), when only the calling thread
 * works and the others wait. At exit it prints the totals and the functions with the largest
 * gaps, with their offsets in their object (`addr2line -f -e BINARY 0xOFFSET` names them):
 *   LD_PRELOAD=./build/libgomp_region_gaps.so ./build/bench_patchtst --threads 2 --infer-runs 1 \
 *       --steps 20 >/dev/null
 * The gap before a region is the serial code that ran just before it: how the copies before the
 * dropout backward of the residual blocks were found (1.35 ms of a 50 ms training step). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <omp.h>
#include <stdio.h>
#include <time.h>

typedef void (*gomp_parallel_fn)(void (*)(void *), void *, unsigned, unsigned);
#define MAX_FNS 512
static void *fns[MAX_FNS];
static long counts[MAX_FNS];
static double inside[MAX_FNS], gap[MAX_FNS];
static int n_fns;
static double last_end = -1, t_first = -1, t_last;

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

void GOMP_parallel(void (*fn)(void *), void *data, unsigned num_threads, unsigned flags) {
    static gomp_parallel_fn real;
    if (!real) real = (gomp_parallel_fn)dlsym(RTLD_NEXT, "GOMP_parallel");
    if (omp_in_parallel()) { /* nested: part of the enclosing region's time */
        real(fn, data, num_threads, flags);
        return;
    }
    int i = 0;
    while (i < n_fns && fns[i] != (void *)fn) i++;
    if (i == n_fns && n_fns < MAX_FNS) fns[n_fns++] = (void *)fn;
    const double t0 = now();
    if (t_first < 0) t_first = t0;
    if (i < MAX_FNS) {
        counts[i]++;
        if (last_end >= 0) gap[i] += t0 - last_end;
    }
    real(fn, data, num_threads, flags);
    const double t1 = now();
    if (i < MAX_FNS) inside[i] += t1 - t0;
    last_end = t_last = t1;
}

__attribute__((destructor)) static void report(void) {
    double ti = 0, tg = 0;
    for (int i = 0; i < n_fns; i++) ti += inside[i], tg += gap[i];
    fprintf(stderr, "first region to last: %.3f s; inside top-level regions %.3f s, serial gaps %.3f s\n",
            t_last - t_first, ti, tg);
    for (int i = 0; i < n_fns; i++) {
        Dl_info d;
        if (gap[i] < 0.02 * tg || !dladdr(fns[i], &d)) continue;
        fprintf(stderr, "  gap before %.4f s, inside %.4f s, %8ld regions  %s +0x%lx\n", gap[i],
                inside[i], counts[i], d.dli_fname,
                (unsigned long)((char *)fns[i] - (char *)d.dli_fbase));
    }
}
