#include "core/error.h"

#include <stdarg.h>
#include <string.h>

static _Thread_local char g_msg[1024];

int sf_errorf(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g_msg, sizeof g_msg, fmt, ap);
    va_end(ap);
    return SF_ERR;
}

int sf_error_prefix(const char *fmt, ...) {
    char prefix[512], old[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, g_msg, sizeof old);
    snprintf(g_msg, sizeof g_msg, "%.400s: %.600s", prefix, old);
    return SF_ERR;
}

const char *sf_error_message(void) { return g_msg; }
void sf_error_clear(void) { g_msg[0] = '\0'; }

static void oom(size_t n) {
    fprintf(stderr, "seqformer: out of memory allocating %zu bytes\n", n);
    abort();
}

/* Counts every allocation through these wrappers (tests check that streaming steps make none). */
static _Atomic long alloc_count;
long sf_alloc_count(void) { return alloc_count; }

void *sf_malloc(size_t n) {
    alloc_count++;
    void *p = malloc(n ? n : 1);
    if (!p) oom(n);
    return p;
}

void *sf_calloc(size_t count, size_t size) {
    alloc_count++;
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (!p) oom(count * size);
    return p;
}

void *sf_realloc(void *p, size_t n) {
    alloc_count++;
    void *q = realloc(p, n ? n : 1);
    if (!q) oom(n);
    return q;
}

char *sf_strdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = sf_malloc(n);
    memcpy(d, s, n);
    return d;
}
