/* SF_MULTIVERSION: compile a function twice, for baseline x86-64 (SSE2, what the default build
 * targets) and for x86-64-v3 (AVX2 + FMA), and pick one at load time (GCC function
 * multi-versioning through an ifunc). fp-contract=fast lets the v3 clone fuse multiply-adds.
 * Put it on plain range functions, not on functions holding an OpenMP parallel region: OpenMP
 * outlines the region's body into a separate function, which does not inherit the clones.
 * -DSF_NO_MULTIVERSION (or a compiler/platform without ifuncs) builds the baseline only, and
 * SF_HAVE_CLONES says which. */
#ifndef SF_KERNELS_MULTIVERSION_H
#define SF_KERNELS_MULTIVERSION_H

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) && \
    !defined(SF_NO_MULTIVERSION)
#define SF_MULTIVERSION                                                                         \
    __attribute__((target_clones("arch=x86-64-v3", "default"), optimize("fp-contract=fast")))
/* the same with an x86-64-v4 (AVX-512) clone too, where 16-wide vectors pay: the selective scan's
 * tiles, elementwise loops (which GCC vectorises 16 wide there; each element gets the same
 * operations, so the same bits as the v3 clone) */
#define SF_MULTIVERSION_512                                                                     \
    __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default"),               \
                   optimize("fp-contract=fast")))
/* the same three clones with no fused multiply-adds: each clone rounds as the baseline does, so
 * the results do not depend on the CPU (loops that used to be baseline-only keep their bits) */
#define SF_MULTIVERSION_512_EXACT                                                               \
    __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default"),               \
                   optimize("fp-contract=off")))
#define SF_HAVE_CLONES 1
#else
#define SF_MULTIVERSION
#define SF_MULTIVERSION_512
#define SF_MULTIVERSION_512_EXACT
#define SF_HAVE_CLONES 0
#endif

/* SF_TARGET_V4: one explicit x86-64-v4 (AVX-512F/BW/CD/DQ/VL + AVX2/FMA) version of a function,
 * for kernels written with 16-lane vectors, called only when sf_avx512() says so. */
#if SF_HAVE_CLONES
#define SF_TARGET_V4 __attribute__((target("arch=x86-64-v4"), optimize("fp-contract=fast")))
#endif

/* Whether the explicit AVX-512 kernels run (the packed GEMM's 6x32 kernel, the wide-head
 * attention tiles): the CPU has x86-64-v4 and the environment does not say SF_AVX512=0 (decided
 * at the first call). Each of those kernels gives the same bits as its AVX2 counterpart (tests
 * check both where the CPU allows). sf_set_avx512 overrides it (on only where the CPU has
 * x86-64-v4; returns the new state), for tests and A/B runs; call it outside parallel regions. */
int sf_avx512(void);
int sf_set_avx512(int on);

#endif
