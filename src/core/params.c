#include "core/params.h"

#include <stdlib.h>
#include <string.h>

#include "core/error.h"

void sf_params_init(sf_params *ps) { memset(ps, 0, sizeof *ps); }

void sf_params_free(sf_params *ps) {
    free(ps->p);
    free(ps->data);
    free(ps->grad);
    free(ps->touched);
    memset(ps, 0, sizeof *ps);
}

void sf_params_declare(sf_params *ps, const char *name, int ndim, const int64_t *shape,
                       float **value_slot, float **grad_slot, int no_decay) {
    SF_ASSERT(ps->data == NULL && "declare before alloc");
    SF_ASSERT(ndim >= 0 && ndim <= SF_PARAM_MAX_DIMS);
    SF_ASSERT(strlen(name) < SF_PARAM_NAME_MAX);
    SF_ASSERT(sf_params_find(ps, name) < 0);
    if (ps->n == ps->cap) {
        ps->cap = ps->cap ? 2 * ps->cap : 32;
        ps->p = sf_realloc(ps->p, (size_t)ps->cap * sizeof *ps->p);
    }
    sf_param *p = &ps->p[ps->n++];
    memset(p, 0, sizeof *p);
    strcpy(p->name, name);
    p->ndim = ndim;
    p->numel = 1;
    for (int i = 0; i < ndim; i++) {
        SF_ASSERT(shape[i] > 0);
        p->shape[i] = shape[i];
        p->numel *= (size_t)shape[i];
    }
    /* Keep every tensor 16-float (64-byte) aligned inside the flat buffer. */
    p->offset = ps->total;
    ps->total += (p->numel + 15) & ~(size_t)15;
    p->value_slot = value_slot;
    p->grad_slot = grad_slot;
    p->no_decay = no_decay;
}

void sf_params_declare_buffer(sf_params *ps, const char *name, int ndim, const int64_t *shape,
                              float **value_slot) {
    sf_params_declare(ps, name, ndim, shape, value_slot, NULL, 1);
    ps->p[ps->n - 1].buffer = 1;
}

void sf_params_mark_sparse_rows(sf_params *ps, size_t row_floats, unsigned char **touched_slot) {
    SF_ASSERT(ps->n > 0 && ps->data == NULL && row_floats > 0);
    sf_param *p = &ps->p[ps->n - 1];
    SF_ASSERT(p->numel % row_floats == 0);
    p->row_floats = row_floats;
    p->touched_offset = ps->touched_total;
    p->touched_slot = touched_slot;
    ps->touched_total += p->numel / row_floats;
}

void sf_params_alloc(sf_params *ps) {
    SF_ASSERT(ps->data == NULL);
    size_t bytes = (ps->total ? ps->total : 16) * sizeof(float);
    ps->data = aligned_alloc(64, bytes);
    ps->grad = aligned_alloc(64, bytes);
    if (!ps->data || !ps->grad) {
        fprintf(stderr, "seqformer: out of memory allocating parameters\n");
        abort();
    }
    memset(ps->data, 0, bytes);
    memset(ps->grad, 0, bytes);
    for (int i = 0; i < ps->n; i++) {
        sf_param *p = &ps->p[i];
        if (p->value_slot) *p->value_slot = ps->data + p->offset;
        if (p->grad_slot) *p->grad_slot = ps->grad + p->offset;
    }
    if (ps->touched_total) ps->touched = sf_calloc(ps->touched_total, 1);
    for (int i = 0; i < ps->n; i++)
        if (ps->p[i].touched_slot) *ps->p[i].touched_slot = ps->touched + ps->p[i].touched_offset;
}

void sf_params_zero_grad(sf_params *ps) {
    if (ps->grad) memset(ps->grad, 0, ps->total * sizeof(float));
    if (ps->touched) memset(ps->touched, 0, ps->touched_total);
}

int sf_params_find(const sf_params *ps, const char *name) {
    for (int i = 0; i < ps->n; i++)
        if (strcmp(ps->p[i].name, name) == 0) return i;
    return -1;
}

size_t sf_params_reserve_saved(sf_params *ps, size_t bytes) {
    size_t slot = ps->saved_bytes;
    ps->saved_bytes += (bytes + 15) & ~(size_t)15;
    return slot;
}
