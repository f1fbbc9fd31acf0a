/* LayerNorm and RMSNorm over the last dimension D of N rows (row-major, contiguous rows).
 *
 * LayerNorm (PyTorch nn.LayerNorm): mean = sum(x)/D, var = sum((x-mean)^2)/D (biased),
 *   rstd = 1/sqrt(var + eps), y = (x - mean) * rstd * w + b.
 * RMSNorm: rstd = 1/sqrt(sum(x^2)/D + eps), y = x * rstd * w.
 *
 * Shapes: x, y, dy, dx [N, D]; w, b, dw, db [D]; mean, rstd [N] (saved for backward; they may be
 * NULL in forward when no backward follows). Forward may run in place (y == x). Backward
 * OVERWRITES dx and ACCUMULATES into dw and db (+=); dx may equal dy (in place); x is the
 * forward input. Any D >= 1 (no stack arrays sized by D).
 * Fast versions: OpenMP over rows for y/dx; dw/db are reduced race-free and deterministically
 * by splitting the columns among threads (each thread owns a column slice, double accumulators).
 * The *_ref versions are plain loops in double for tests. */
#ifndef SF_KERNELS_NORMS_H
#define SF_KERNELS_NORMS_H

void sf_layernorm_forward(float *y, float *mean, float *rstd, const float *x, const float *w,
                          const float *b, int N, int D, float eps);
void sf_layernorm_backward(float *dx, float *dw, float *db, const float *dy, const float *x,
                           const float *w, const float *mean, const float *rstd, int N, int D);
void sf_rmsnorm_forward(float *y, float *rstd, const float *x, const float *w, int N, int D,
                        float eps);
void sf_rmsnorm_backward(float *dx, float *dw, const float *dy, const float *x, const float *w,
                         const float *rstd, int N, int D);

void sf_layernorm_forward_ref(float *y, float *mean, float *rstd, const float *x, const float *w,
                              const float *b, int N, int D, float eps);
void sf_layernorm_backward_ref(float *dx, float *dw, float *db, const float *dy, const float *x,
                               const float *w, const float *mean, const float *rstd, int N,
                               int D);
void sf_rmsnorm_forward_ref(float *y, float *rstd, const float *x, const float *w, int N, int D,
                            float eps);
void sf_rmsnorm_backward_ref(float *dx, float *dw, const float *dy, const float *x,
                             const float *w, const float *rstd, int N, int D);

#endif
