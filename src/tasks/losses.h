/* Losses over padded batches: rows [B, T, ...] where only t < lens[b] are real (lens NULL: all).
 * Each returns the mean over the valid elements and, when grad is not NULL, its gradient with
 * exactly 0 on padding, so padded positions never move a parameter. */
#ifndef SF_TASKS_LOSSES_H
#define SF_TASKS_LOSSES_H

#include <stdint.h>

/* Mean squared error over the valid [B, T, d] elements. */
double sf_masked_mse(const float *y, const float *target, float *grad, int B, int T, int d,
                     const int *lens);
/* Mean cross-entropy of logits [B, T, V] against class ids [B, T] over the valid positions;
 * grad = (softmax - onehot) / n_valid. Computed with the max subtracted (no overflow). */
double sf_masked_cross_entropy(const float *logits, const int32_t *labels, float *grad, int B,
                               int T, int V, const int *lens);

#endif
