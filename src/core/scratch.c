#include "core/scratch.h"

#include <pthread.h>
#include <stdlib.h>

#include "core/error.h"

/* Chunks are never moved (pointers handed out stay valid). A push that does not fit opens an
 * overflow chunk; whenever the stack empties after that, the chunks are replaced by one chunk of
 * the highest height reached, so a thread settles on a single chunk after its first step. */
typedef struct chunk {
    struct chunk *prev;
    size_t cap, used_before; /* floats; stack height where this chunk starts */
    float *base;
} chunk;

static _Thread_local chunk *top;
static _Thread_local size_t height, peak; /* floats in use (incl. alignment), most ever */

#define ALIGN_FLOATS 16 /* 64 bytes */

static chunk *new_chunk(size_t cap, chunk *prev, size_t used_before) {
    chunk *c = sf_malloc(sizeof *c);
    c->prev = prev;
    c->cap = cap;
    c->used_before = used_before;
    c->base = aligned_alloc(64, cap * sizeof(float)); /* cap is a multiple of 16 floats */
    if (!c->base) SF_ASSERT(!"scratch: out of memory");
    return c;
}

static void free_chunks(void) {
    while (top) {
        chunk *p = top->prev;
        free(top->base);
        free(top);
        top = p;
    }
}

/* A thread that ends frees its chunks: kernels push scratch from OpenMP worker threads too (the
 * fused feed-forward blocks, kernels/ffn.c), and a nested team's threads may end before the
 * process does (their _Thread_local pointers would then be the only references). A pthread key
 * with a destructor runs at thread exit, before the thread's TLS goes away; it is set for a thread
 * when the thread opens its first chunk. The main thread keeps its chunks until exit. */
static pthread_key_t exit_key;
static pthread_once_t exit_key_once = PTHREAD_ONCE_INIT;

static void on_thread_exit(void *unused) {
    (void)unused;
    free_chunks();
    height = peak = 0;
}

static void make_exit_key(void) {
    if (pthread_key_create(&exit_key, on_thread_exit) != 0) SF_ASSERT(!"scratch: no pthread key");
}

static void register_thread(void) {
    pthread_once(&exit_key_once, make_exit_key);
    pthread_setspecific(exit_key, &exit_key); /* any non-NULL value: the destructor runs */
}

float *sf_scratch_push(size_t n) {
    size_t need = (n + ALIGN_FLOATS - 1) / ALIGN_FLOATS * ALIGN_FLOATS;
    if (need == 0) need = ALIGN_FLOATS;
    if (!top || height - top->used_before + need > top->cap) {
        if (!top) register_thread();
        size_t cap = top ? 2 * top->cap : 4096;
        if (cap < need) cap = need;
        top = new_chunk(cap, top, height);
    }
    float *p = top->base + (height - top->used_before);
    height += need;
    if (height > peak) peak = height;
    return p;
}

size_t sf_scratch_mark(void) { return height; }

void sf_scratch_release(size_t mark) {
    SF_ASSERT(mark <= height);
    height = mark;
    while (top && top->prev && height <= top->used_before) { /* drop emptied overflow chunks */
        chunk *c = top;
        top = c->prev;
        free(c->base);
        free(c);
    }
    if (height == 0 && top && peak > top->cap) {
        free_chunks();
        top = new_chunk(peak, NULL, 0);
    }
}

void sf_scratch_free_thread(void) {
    SF_ASSERT(height == 0);
    free_chunks();
    peak = 0;
}
