#include "tasks/losses.h"

#include <math.h>
#include <string.h>

#include "core/error.h"

static int valid_len(const int *lens, int b, int T) {
    int n = lens ? lens[b] : T;
    SF_ASSERT(n >= 0 && n <= T);
    return n;
}

static long count_valid(const int *lens, int B, int T) {
    long n = 0;
    for (int b = 0; b < B; b++) n += valid_len(lens, b, T);
    return n;
}

double sf_masked_mse(const float *y, const float *target, float *grad, int B, int T, int d,
                     const int *lens) {
    long n = count_valid(lens, B, T) * d;
    double s = 0;
    float scale = n ? 2.0f / (float)n : 0.0f;
    for (int b = 0; b < B; b++) {
        int len = valid_len(lens, b, T);
        for (long i = (long)b * T * d; i < ((long)b * T + T) * d; i++) {
            int valid = (i - (long)b * T * d) / d < len;
            float e = valid ? y[i] - target[i] : 0.0f;
            s += (double)e * e;
            if (grad) grad[i] = scale * e;
        }
    }
    return n ? s / (double)n : 0.0;
}

double sf_masked_cross_entropy(const float *logits, const int32_t *labels, float *grad, int B,
                               int T, int V, const int *lens) {
    long n = count_valid(lens, B, T);
    double s = 0;
    for (int b = 0; b < B; b++) {
        int len = valid_len(lens, b, T);
        for (int t = 0; t < T; t++) {
            const float *z = logits + ((size_t)b * T + t) * V;
            float *g = grad ? grad + ((size_t)b * T + t) * V : NULL;
            if (t >= len) {
                if (g) memset(g, 0, (size_t)V * sizeof(float));
                continue;
            }
            int32_t c = labels[(size_t)b * T + t];
            SF_ASSERT(c >= 0 && c < V);
            double mx = z[0], sum = 0;
            for (int v = 1; v < V; v++) mx = z[v] > mx ? z[v] : mx;
            for (int v = 0; v < V; v++) sum += exp((double)z[v] - mx);
            double lse = mx + log(sum);
            s += lse - z[c];
            if (g) {
                for (int v = 0; v < V; v++) g[v] = (float)(exp((double)z[v] - lse) / (double)n);
                g[c] -= 1.0f / (float)n;
            }
        }
    }
    return n ? s / (double)n : 0.0;
}
