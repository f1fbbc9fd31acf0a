/* One streaming step of a causal depth-wise convolution over d channels with kernel width K
 * (weights w[d][K], the last tap on the newest input; bias b[d]): the state is the window
 * of the K - 1 previous inputs, [K-1][d], oldest first. Shared by the dwconv token mixer's `step`
 * and Mamba's conv1d `step`, which sum in the same order as their full forward passes:
 *   y[c] = b[c] + w[c][K-1] x[c] + sum_{k < K-1} w[c][k] win[k][c]
 * then the window moves on by one input (win_out may be win_in). */
#ifndef SF_KERNELS_CAUSAL_CONV_H
#define SF_KERNELS_CAUSAL_CONV_H

#include <string.h>

static inline void sf_causal_conv_step(const float *w, const float *b, int d, int K,
                                       const float *x, const float *win_in, float *win_out,
                                       float *y) {
    for (int c = 0; c < d; c++) {
        float acc = b[c] + w[(size_t)c * K + K - 1] * x[c];
        for (int k = 0; k < K - 1; k++) acc += w[(size_t)c * K + k] * win_in[(size_t)k * d + c];
        y[c] = acc;
    }
    if (K > 1) {
        memmove(win_out, win_in + d, (size_t)(K - 2) * d * sizeof(float));
        memcpy(win_out + (size_t)(K - 2) * d, x, (size_t)d * sizeof(float));
    }
}

#endif
