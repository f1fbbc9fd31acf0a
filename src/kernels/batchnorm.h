/* Batch normalisation over rows (PyTorch nn.BatchNorm1d on [rows, D] with per-feature statistics
 * across all N rows; PatchTST applies it to every token of every series). Written as plain
 * double-accumulating loops: it is its own reference.
 *
 * Padding: the *_masked variants take row_valid[N] (nonzero = a real token, 0 = padding;
 * NULL = every row valid: they then call the unmasked functions).
 * Statistics are taken over the n_valid >= 1 valid rows only (mean, biased variance over
 * n_valid, unbiased over n_valid - 1), invalid rows of y and dx are set to 0, and invalid rows
 * of x and dy are never read and contribute nothing to dw, db or the statistics' gradient. */
#ifndef SF_KERNELS_BATCHNORM_H
#define SF_KERNELS_BATCHNORM_H

#include <stdint.h>

#define SF_BATCHNORM_MAX_D 4096 /* statistics live on the stack: kernels never allocate */

/* Training mode: per-feature batch mean and biased variance; y = (x-mean)*rstd*w + b with
 * rstd = 1/sqrt(var+eps). Writes mean[D], rstd[D] and, if var_unbiased is not NULL, the unbiased
 * variance (for the running estimate). */
void sf_batchnorm_forward_train(float *y, float *mean, float *rstd, float *var_unbiased,
                                const float *x, const float *w, const float *b, int N, int D,
                                float eps);
/* Eval mode (or any fixed statistics): y = (x-mean)*rstd*w + b. */
void sf_batchnorm_forward_fixed(float *y, const float *x, const float *mean, const float *rstd,
                                const float *w, const float *b, int N, int D);
/* Backward. batch_stats = 1: mean/rstd came from this batch (training), so gradients flow
 * through them; 0: they were fixed. dx overwritten, dw/db accumulated. */
void sf_batchnorm_backward(float *dx, float *dw, float *db, const float *dy, const float *x,
                           const float *w, const float *mean, const float *rstd, int N, int D,
                           int batch_stats);

/* The same over the valid rows only (row_valid: see the padding note above). */
void sf_batchnorm_forward_train_masked(float *y, float *mean, float *rstd, float *var_unbiased,
                                       const float *x, const float *w, const float *b, int N,
                                       int D, float eps, const uint8_t *row_valid);
void sf_batchnorm_forward_fixed_masked(float *y, const float *x, const float *mean,
                                       const float *rstd, const float *w, const float *b, int N,
                                       int D, const uint8_t *row_valid);
void sf_batchnorm_backward_masked(float *dx, float *dw, float *db, const float *dy,
                                  const float *x, const float *w, const float *mean,
                                  const float *rstd, int N, int D, int batch_stats,
                                  const uint8_t *row_valid);

#endif
