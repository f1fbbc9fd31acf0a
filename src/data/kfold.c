#include "data/kfold.h"

#include <stdlib.h>

#include "core/error.h"
#include "core/rng.h"

int sf_kfold_stratified(int n, const int *class_of, int n_classes, int k, uint64_t seed,
                        int *fold) {
    if (k < 2) return sf_errorf("folds: %d folds (need at least 2)", k);
    int *count = sf_calloc((size_t)n_classes, sizeof(int));
    for (int i = 0; i < n; i++) count[class_of[i]]++;
    for (int c = 0; c < n_classes; c++)
        if (count[c] < k) {
            int got = count[c];
            free(count);
            return sf_errorf("folds: class %d has %d member%s, fewer than the %d folds", c, got,
                             got == 1 ? "" : "s", k);
        }
    sf_rng rng;
    sf_rng_seed_stream(&rng, seed, 0x6b666f6c64ULL /* "kfold" */);
    int32_t *idx = sf_malloc(sizeof(int32_t) * (size_t)(n ? n : 1));
    int next = 0;
    for (int c = 0; c < n_classes; c++) {
        int m = 0;
        for (int i = 0; i < n; i++)
            if (class_of[i] == c) idx[m++] = i;
        sf_rng_shuffle_i32(&rng, idx, m);
        for (int j = 0; j < m; j++) {
            fold[idx[j]] = next;
            next = (next + 1) % k;
        }
    }
    free(idx);
    free(count);
    return SF_OK;
}
