/* Parameters of a whole model in two flat, 64-byte aligned buffers (values and gradients), as in
 * llm.c: AdamW, gradient clipping, all-reduce and checkpointing are single loops over them.
 *
 * Building a model is two-phase: layers *declare* each tensor (PyTorch-style name, shape and the
 * address of the layer's own `float *` fields), then sf_params_alloc() allocates both buffers and
 * points every declared field at its slice. Layer structs must not move after declaring. */
#ifndef SF_CORE_PARAMS_H
#define SF_CORE_PARAMS_H

#include <stddef.h>
#include <stdint.h>

#define SF_PARAM_NAME_MAX 96
#define SF_PARAM_MAX_DIMS 4

typedef struct {
    char name[SF_PARAM_NAME_MAX];
    int ndim;
    int64_t shape[SF_PARAM_MAX_DIMS];
    size_t offset, numel;
    float **value_slot, **grad_slot; /* bound by sf_params_alloc */
    int no_decay;                    /* 1: excluded from weight decay (biases, norms, positions) */
    int buffer;                      /* 1: state, not trained (BatchNorm running statistics) */
} sf_param;

typedef struct {
    sf_param *p;
    int n, cap;
    size_t total;       /* floats in each buffer */
    float *data, *grad; /* NULL until sf_params_alloc */
    size_t saved_bytes; /* per-call records the layers reserved (the size of sf_ctx.saved) */
} sf_params;

void sf_params_init(sf_params *ps);
void sf_params_free(sf_params *ps);
/* Declare one tensor. `name` may be built with printf-style formatting by the caller. */
void sf_params_declare(sf_params *ps, const char *name, int ndim, const int64_t *shape,
                       float **value_slot, float **grad_slot, int no_decay);
/* A tensor that is saved and loaded with the weights but never trained: its gradient stays 0, so
 * AdamW leaves it alone, and gradient checks skip it (PyTorch's register_buffer). */
void sf_params_declare_buffer(sf_params *ps, const char *name, int ndim, const int64_t *shape,
                              float **value_slot);
void sf_params_alloc(sf_params *ps); /* zero-filled values and gradients */
void sf_params_zero_grad(sf_params *ps);
int sf_params_find(const sf_params *ps, const char *name); /* index or -1 */
/* Reserve `bytes` (16-byte aligned) of per-call record in every context that runs the model;
 * returns its offset (a layer's `slot`). Records hold what forward saves for backward, so the
 * layer structs themselves stay read-only during a call. */
size_t sf_params_reserve_saved(sf_params *ps, size_t bytes);

#endif
