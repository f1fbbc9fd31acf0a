/* Per-sequence valid lengths (padding masks): lens[b] tokens of sequence b are real, the rest of
 * its T positions padding; lens == NULL means every sequence has all T. */
#ifndef SF_CORE_LENS_H
#define SF_CORE_LENS_H

#include "core/error.h"

/* The valid length of sequence b (1..T). */
static inline int sf_seq_len(const int *lens, int b, int T) {
    if (!lens) return T;
    SF_ASSERT(lens[b] >= 1 && lens[b] <= T);
    return lens[b];
}

#endif
