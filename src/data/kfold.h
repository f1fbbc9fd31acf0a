/* Stratified k-fold assignment: every class is spread over the k folds as evenly as possible
 * (fold sizes differ by at most one overall and per class), in an order drawn from the seed.
 * Per class (classes in index order) the members are shuffled with one sf_rng stream seeded
 * by `seed`, then dealt round-robin, continuing the deal where the previous class stopped so
 * the fold totals stay balanced. */
#ifndef SF_DATA_KFOLD_H
#define SF_DATA_KFOLD_H

#include <stdint.h>

/* fold[i] in [0, k) for i < n. SF_ERR (message names the class index) when a class has
 * fewer than k members, or k < 2. */
int sf_kfold_stratified(int n, const int *class_of, int n_classes, int k, uint64_t seed,
                        int *fold);

#endif
