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
    /* Row-sparse gradients (lookup tables): rows of row_floats floats; the layer flags each row
     * it adds a gradient to in touched[row] (sf_params.touched + touched_offset), so a lazy
     * optimizer updates only those rows. 0: dense. */
    size_t row_floats, touched_offset;
    unsigned char **touched_slot;
} sf_param;

typedef struct {
    sf_param *p;
    int n, cap;
    size_t total;       /* floats in each buffer */
    float *data, *grad; /* NULL until sf_params_alloc */
    size_t saved_bytes; /* per-call records the layers reserved (the size of sf_ctx.saved) */
    unsigned char *touched; /* row flags of the row-sparse tensors (touched_total bytes) */
    size_t touched_total;
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
/* Marks the tensor declared last as row-sparse: its gradient arrives in whole rows of row_floats
 * floats (numel a multiple of it), and *touched_slot is bound by sf_params_alloc to its row flags,
 * which the layer sets for every row it writes a gradient to. */
void sf_params_mark_sparse_rows(sf_params *ps, size_t row_floats, unsigned char **touched_slot);
void sf_params_alloc(sf_params *ps); /* zero-filled values and gradients */
/* Zero every gradient and clear the row flags of row-sparse tensors. */
void sf_params_zero_grad(sf_params *ps);
int sf_params_find(const sf_params *ps, const char *name); /* index or -1 */
/* Reserve `bytes` (16-byte aligned) of per-call record in every context that runs the model;
 * returns its offset (a layer's `slot`). Records hold what forward saves for backward, so the
 * layer structs themselves stay read-only during a call. */
size_t sf_params_reserve_saved(sf_params *ps, size_t bytes);

#endif
