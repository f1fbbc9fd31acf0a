/* LD_PRELOAD shim that counts the OpenMP parallel regions a program enters (GOMP_parallel calls),
 * per outlined function, and prints each count with the function's offset in its object at exit;
 * `addr2line -f -e BINARY 0xOFFSET` names it. How src/core/parallel.h's regions were counted:
 *   LD_PRELOAD=./build/libgomp_region_count.so ./build/bench_patchtst --threads 2 --batch 1 --reps 1 \
 *       --steps 1 --infer-runs 1000 >/dev/null */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <stdio.h>

typedef void (*gomp_parallel_fn)(void (*)(void *), void *, unsigned, unsigned);
#define MAX_FNS 256
static void *fns[MAX_FNS];
static long counts[MAX_FNS];
static int n_fns;

void GOMP_parallel(void (*fn)(void *), void *data, unsigned num_threads, unsigned flags) {
    static gomp_parallel_fn real;
    if (!real) real = (gomp_parallel_fn)dlsym(RTLD_NEXT, "GOMP_parallel");
    int i = 0;
    while (i < n_fns && fns[i] != (void *)fn) i++;
    if (i == n_fns && n_fns < MAX_FNS) fns[n_fns++] = (void *)fn; /* racy but rare: first sight */
    if (i < MAX_FNS) __atomic_fetch_add(&counts[i], 1, __ATOMIC_RELAXED);
    real(fn, data, num_threads, flags);
}

__attribute__((destructor)) static void report(void) {
    for (int i = 0; i < n_fns; i++) {
        Dl_info d;
        if (!dladdr(fns[i], &d)) continue;
        fprintf(stderr, "%10ld regions  %s +0x%lx\n", counts[i], d.dli_fname,
                (unsigned long)((char *)fns[i] - (char *)d.dli_fbase));
    }
}
