#include "layers/time_encoding.h"

#include <math.h>

#include "core/error.h"
#include "core/parallel.h"

void sf_time_encoding_add(float *x, long rows, int d, const float *t, long t_stride, double scale) {
    SF_ASSERT(d % 2 == 0);
    SF_PARALLEL_FOR_IF(rows * d >= 65536,
        for (long r = 0; r < rows; r++) {
            double p = scale * (double)t[r * t_stride];
            float *xr = x + r * d;
            for (int i = 0; i < d; i += 2) {
                double a = p * pow(10000.0, -(double)i / d);
                xr[i] += (float)sin(a);
                xr[i + 1] += (float)cos(a);
            }
        }
    );
}
