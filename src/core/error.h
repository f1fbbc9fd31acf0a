/* Error reporting: functions that can fail on user input return SF_OK (0) or SF_ERR (-1)
 * and leave a one-line, human-readable message (naming the file, line or field) that the
 * caller retrieves with sf_error_message(). Programmer errors (broken invariants) abort
 * through SF_ASSERT instead, because they are bugs, not bad input. */
#ifndef SF_CORE_ERROR_H
#define SF_CORE_ERROR_H

#include <stdio.h>
#include <stdlib.h>

#define SF_OK 0
#define SF_ERR (-1)

#if defined(__GNUC__)
#define SF_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define SF_PRINTF(a, b)
#endif

/* Set the current error message (printf-style) and return SF_ERR. */
int sf_errorf(const char *fmt, ...) SF_PRINTF(1, 2);
/* Prefix the current message with more context: "ctx: <old message>". Returns SF_ERR. */
int sf_error_prefix(const char *fmt, ...) SF_PRINTF(1, 2);
/* The last message set on this thread ("" if none). */
const char *sf_error_message(void);
void sf_error_clear(void);

#define SF_ASSERT(cond)                                                                   \
    do {                                                                                  \
        if (!(cond)) {                                                                    \
            fprintf(stderr, "%s:%d: internal error: assertion '%s' failed\n", __FILE__,   \
                    __LINE__, #cond);                                                     \
            abort();                                                                      \
        }                                                                                 \
    } while (0)

/* Allocation helpers that abort on out-of-memory (there is no sensible recovery). */
void *sf_malloc(size_t n);
void *sf_calloc(size_t count, size_t size);
void *sf_realloc(void *p, size_t n);
char *sf_strdup(const char *s);
/* Allocations made through sf_malloc/sf_calloc/sf_realloc so far (all threads). */
long sf_alloc_count(void);

#endif
