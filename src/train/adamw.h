/* AdamW (Loshchilov & Hutter) over a model's flat parameter buffers, PyTorch torch.optim.AdamW
 * semantics: decoupled weight decay p -= lr*wd*p (skipped for parameters declared no_decay),
 * bias-corrected moments. With weight_decay 0 it is exactly Adam.
 *
 * Lazy mode (`lazy`, the CLI's --optimizer lazy_adamw): tensors declared row-sparse (lookup
 * tables, core/params.h) are updated only in the rows the last backward touched; every other
 * tensor as above. This is *not* dense AdamW: a row that a step did not touch keeps its value
 * and its moments bit for bit, where dense AdamW would decay its moments (m *= beta1, v *= beta2),
 * still move it by the decayed momentum, and apply weight decay. Touched rows get exactly the
 * dense update with the global step count t for bias correction (as TensorFlow's LazyAdam and
 * PyTorch's SparseAdam), so on a step that touches every row lazy and dense agree. */
#ifndef SF_TRAIN_ADAMW_H
#define SF_TRAIN_ADAMW_H

#include <stddef.h>

#include "core/params.h"

typedef struct {
    float beta1, beta2, eps, weight_decay;
    long t;        /* steps taken */
    size_t n;      /* floats, = params.total */
    float *m, *v;  /* first and second moments */
    float *decay;  /* per-float weight-decay multiplier (0 or 1) */
    int lazy;      /* 1: row-sparse tensors update only their touched rows (set after init) */
} sf_adamw;

void sf_adamw_init(sf_adamw *o, const sf_params *ps, float weight_decay);
void sf_adamw_free(sf_adamw *o);
void sf_adamw_step(sf_adamw *o, sf_params *ps, float lr);
/* Global L2 norm of all gradients; if max_norm > 0 and the norm exceeds it, scale gradients
 * down to max_norm (torch.nn.utils.clip_grad_norm_). Returns the norm before clipping. */
double sf_clip_grad_norm(sf_params *ps, double max_norm);

#endif
