/* Per-thread scratch for streaming steps (sf_mixer_ops.step, sf_block_step, a model's step).
 *
 * A step needs a few rows of temporaries (projections, a norm's output) but has no sf_ctx and no
 * arena, and the streaming path must not allocate per token. So steps take their temporaries
 * from this stack, which belongs to the calling thread: push, use, release to the mark taken
 * before. The stack grows (allocates) only when a step needs more than any step before it on
 * this thread; after the first token of a stream (sf_stream_create runs one to warm it up),
 * every further step allocates nothing. Memory stays with the thread until
 * sf_scratch_free_thread or the thread's end (kernels also push from OpenMP worker threads). */
#ifndef SF_CORE_SCRATCH_H
#define SF_CORE_SCRATCH_H

#include <stddef.h>

/* n floats, 64-byte aligned, valid until the stack is released below them. */
float *sf_scratch_push(size_t n);
size_t sf_scratch_mark(void);
void sf_scratch_release(size_t mark);
/* Free this thread's scratch (the stack must be empty). */
void sf_scratch_free_thread(void);

#endif
