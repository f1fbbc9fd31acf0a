/* Whether the explicit AVX-512 kernels run (kernels/multiversion.h: sf_avx512). */
#include <stdlib.h>
#include <string.h>

#include "kernels/multiversion.h"

/* -1: not decided yet. Atomic: the first call may come from several threads of a parallel region
 * at once (each computes the same value). */
static int use_512 = -1;

static int cpu_has_v4(void) {
#if SF_HAVE_CLONES
    __builtin_cpu_init();
    return __builtin_cpu_supports("x86-64-v4");
#else
    return 0;
#endif
}

int sf_avx512(void) {
    int v = __atomic_load_n(&use_512, __ATOMIC_RELAXED);
    if (v < 0) {
        const char *e = getenv("SF_AVX512");
        v = cpu_has_v4() && !(e && strcmp(e, "0") == 0);
        __atomic_store_n(&use_512, v, __ATOMIC_RELAXED);
    }
    return v;
}

int sf_set_avx512(int on) {
    const int v = on && cpu_has_v4();
    __atomic_store_n(&use_512, v, __ATOMIC_RELAXED);
    return v;
}
