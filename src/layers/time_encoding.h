/* Sinusoidal encoding of continuous observation times, for irregularly sampled series (positions
 * kind "time"). It is the fixed table of positions.h (Vaswani et al.; astronet t2's
 * PositionalEncoding: pe[p, 2i] = sin(p / 10000^(2i/d)), pe[p, 2i+1] = cos(...)) with the integer
 * step p replaced by scale * t, t the step's observation time: two steps 0.3 days apart get
 * encodings that differ as steps 0.3 * scale apart would. No parameters. Computed in double. */
#ifndef SF_LAYERS_TIME_ENCODING_H
#define SF_LAYERS_TIME_ENCODING_H

/* x[r, :d] += pe(scale * t[r * t_stride]) for r in [0, rows); d even. */
void sf_time_encoding_add(float *x, long rows, int d, const float *t, long t_stride, double scale);

#endif
