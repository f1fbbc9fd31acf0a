/* Activation arena: one buffer, sized ahead of time, handed out stack-like.
 *
 * A model's forward and backward push every activation they save and every temporary they need.
 * Sizing ahead works by a *planning pass*: the same forward/backward code runs with the arena in
 * plan mode, where pushes only count (and return NULL) and layers skip their arithmetic
 * (`if (sf_arena_planning(a)) return;`). The peak of that pass is the exact capacity needed, so
 * training never allocates inside the step loop. */
#ifndef SF_CORE_ARENA_H
#define SF_CORE_ARENA_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    float *base;
    size_t cap, used, peak; /* in floats */
    int planning;
} sf_arena;

void sf_arena_init_plan(sf_arena *a);            /* counting only */
void sf_arena_alloc(sf_arena *a, size_t floats); /* real buffer (a need not be initialised) */
void sf_arena_free(sf_arena *a);
/* An arena over `floats` floats of memory owned elsewhere (a region pushed on another arena),
 * for a helper thread's temporaries; not freed. */
void sf_arena_init_view(sf_arena *a, float *base, size_t floats);
static inline int sf_arena_planning(const sf_arena *a) { return a->planning; }
/* n floats, 64-byte aligned; NULL while planning; aborts if the plan was too small (a bug). */
float *sf_arena_push(sf_arena *a, size_t n);
uint8_t *sf_arena_push_bytes(sf_arena *a, size_t n);
static inline size_t sf_arena_mark(const sf_arena *a) { return a->used; }
static inline void sf_arena_reset_to(sf_arena *a, size_t mark) { a->used = mark; }

#endif
