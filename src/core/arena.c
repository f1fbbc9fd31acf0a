#include "core/arena.h"

#include <stdlib.h>
#include <string.h>
#if defined(__linux__)
#include <sys/mman.h>
#endif

#include "core/error.h"

void sf_arena_init_plan(sf_arena *a) {
    memset(a, 0, sizeof *a);
    a->planning = 1;
}

/* Arenas of at least this many bytes are 2 MiB-aligned and advised to use transparent huge pages
 * (where the kernel's THP mode is "madvise", the common default, nothing else gets them): a
 * training arena is hundreds of MB streamed every step, and with 4 KiB pages its first touch costs
 * one page fault per page and every pass over a 19 MB tensor misses the TLB. */
#define SF_ARENA_HUGE_MIN (8UL << 20)
#define SF_ARENA_HUGE_ALIGN (2UL << 20)

void sf_arena_alloc(sf_arena *a, size_t floats) {
    memset(a, 0, sizeof *a);
    a->cap = floats;
    const size_t bytes = ((floats ? floats : 16) * sizeof(float) + 63) & ~(size_t)63;
    if (bytes >= SF_ARENA_HUGE_MIN) {
        const size_t rounded = (bytes + SF_ARENA_HUGE_ALIGN - 1) & ~(SF_ARENA_HUGE_ALIGN - 1);
        a->base = aligned_alloc(SF_ARENA_HUGE_ALIGN, rounded);
#if defined(__linux__) && defined(MADV_HUGEPAGE)
        if (a->base) (void)madvise(a->base, rounded, MADV_HUGEPAGE); /* advice only */
#endif
    } else {
        a->base = aligned_alloc(64, bytes);
    }
    if (!a->base) {
        fprintf(stderr, "seqformer: out of memory allocating a %zu MB activation arena\n",
                floats * sizeof(float) >> 20);
        abort();
    }
}

void sf_arena_init_view(sf_arena *a, float *base, size_t floats) {
    memset(a, 0, sizeof *a);
    a->base = base;
    a->cap = floats;
}

void sf_arena_free(sf_arena *a) {
    free(a->base);
    memset(a, 0, sizeof *a);
}

float *sf_arena_push(sf_arena *a, size_t n) {
    size_t n16 = (n + 15) & ~(size_t)15;
    size_t at = a->used;
    a->used += n16;
    if (a->used > a->peak) a->peak = a->used;
    if (a->planning) return NULL;
    if (a->used > a->cap) {
        fprintf(stderr, "internal error: activation arena overflow (%zu > %zu floats)\n", a->used,
                a->cap);
        abort();
    }
    return a->base + at;
}

uint8_t *sf_arena_push_bytes(sf_arena *a, size_t n) {
    return (uint8_t *)sf_arena_push(a, (n + sizeof(float) - 1) / sizeof(float));
}
