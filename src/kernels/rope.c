#include "kernels/rope.h"

#include <math.h>

#include "core/error.h"
#include "core/parallel.h"

void sf_rope_rotate(float *x, long ld, int B, int T, int H, int Dh, int pos_offset, float base,
                    int inverse) {
    SF_ASSERT(Dh % 2 == 0);
    const int half = Dh / 2;
    SF_PARALLEL_FOR_IF((long)T * H * Dh >= 32768,
        for (int t = 0; t < T; t++) {
            double p = (double)(pos_offset + t);
            for (int i = 0; i < half; i++) {
                double a = p * pow((double)base, -2.0 * i / Dh);
                float c = (float)cos(a), s = inverse ? (float)-sin(a) : (float)sin(a);
                for (int b = 0; b < B; b++)
                    for (int h = 0; h < H; h++) {
                        float *r = x + ((long)b * T + t) * ld + (long)h * Dh;
                        float x1 = r[i], x2 = r[i + half];
                        r[i] = x1 * c - x2 * s;
                        r[i + half] = x2 * c + x1 * s;
                    }
            }
        }
    );
}
