/* 16-lane float vectors (GCC/clang vector extensions) for the explicit x86-64-v4 kernels
 * (attention tiles, the row GEMMs of kernels/gemm_rows.c): the type and the few helpers GCC
 * otherwise compiles poorly. Include only from code that runs under the v4 target. */
#ifndef SF_KERNELS_VEC16_H
#define SF_KERNELS_VEC16_H

#include <stdint.h>
#include <string.h>

#pragma GCC diagnostic ignored "-Wpsabi"
typedef float v16sf __attribute__((vector_size(64)));
typedef int32_t v16si __attribute__((vector_size(64)));

static inline __attribute__((always_inline)) v16sf v16_splat(float x) {
    return (v16sf){x, x, x, x, x, x, x, x, x, x, x, x, x, x, x, x};
}
static inline __attribute__((always_inline)) v16sf v16_load(const float *p) {
    v16sf x;
    memcpy(&x, p, sizeof x);
    return x;
}
static inline __attribute__((always_inline)) void v16_store(float *p, v16sf x) {
    memcpy(p, &x, sizeof x);
}
/* x in every lane by one broadcast (GCC builds v16_splat of a loaded value lane by lane, 16
 * masked broadcasts) */
static inline __attribute__((always_inline)) v16sf v16_bcast(float x) {
    v16sf t = v16_splat(0.0f);
    t[0] = x;
    return __builtin_shufflevector(t, t, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
}

#endif
