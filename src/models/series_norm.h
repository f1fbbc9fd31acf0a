/* Per-series normalisation statistics, shared by PatchTST's RevIN and iTransformer's use_norm
 * (Non-stationary Transformer): the mean and the standard deviation of L values x[t * stride],
 * accumulated in double, population variance + 1e-5 under the root, rounded to float. With
 * on == 0: mean 0, stdev 1 (the series passes unchanged). */
#ifndef SF_MODELS_SERIES_NORM_H
#define SF_MODELS_SERIES_NORM_H

#include <math.h>
#include <stddef.h>

static inline void sf_series_stats(const float *x, size_t stride, int L, int on, float *mean,
                                   float *stdev) {
    double mu = 0, var = 0;
    if (on) {
        for (int t = 0; t < L; t++) mu += x[(size_t)t * stride];
        mu /= L;
        for (int t = 0; t < L; t++) {
            double e = x[(size_t)t * stride] - mu;
            var += e * e;
        }
        var /= L;
    }
    *mean = (float)mu;
    *stdev = on ? (float)sqrt(var + 1e-5) : 1.0f;
}

#endif
