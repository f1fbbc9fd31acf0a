#include "train/adamw.h"

#include <math.h>
#include <string.h>

#include "core/error.h"

void sf_adamw_init(sf_adamw *o, const sf_params *ps, float weight_decay) {
    memset(o, 0, sizeof *o);
    o->beta1 = 0.9f;
    o->beta2 = 0.999f;
    o->eps = 1e-8f;
    o->weight_decay = weight_decay;
    o->n = ps->total;
    o->m = sf_calloc(o->n, sizeof(float));
    o->v = sf_calloc(o->n, sizeof(float));
    o->decay = sf_calloc(o->n, sizeof(float));
    for (int i = 0; i < ps->n; i++)
        if (!ps->p[i].no_decay)
            for (size_t j = 0; j < ps->p[i].numel; j++) o->decay[ps->p[i].offset + j] = 1.0f;
}

void sf_adamw_free(sf_adamw *o) {
    free(o->m);
    free(o->v);
    free(o->decay);
    memset(o, 0, sizeof *o);
}

/* The constants of step t (o->t already incremented). */
typedef struct {
    float step, rc2, wd;
} step_consts;

static step_consts consts(const sf_adamw *o, float lr) {
    float c1 = 1.0f - powf(o->beta1, (float)o->t), c2 = 1.0f - powf(o->beta2, (float)o->t);
    return (step_consts){lr / c1, 1.0f / sqrtf(c2), lr * o->weight_decay};
}

/* The update of floats [begin, end). */
static void update_range(sf_adamw *o, sf_params *ps, step_consts k, size_t begin, size_t end) {
    float b1 = o->beta1, b2 = o->beta2, step = k.step, rc2 = k.rc2, wd = k.wd;
    float *p = ps->data, *g = ps->grad, *m = o->m, *v = o->v, *dk = o->decay;
    long lo = (long)begin, hi = (long)end;
#pragma omp parallel for schedule(static) if (hi - lo > 32768)
    for (long i = lo; i < hi; i++) {
        p[i] -= wd * dk[i] * p[i];
        m[i] = b1 * m[i] + (1.0f - b1) * g[i];
        v[i] = b2 * v[i] + (1.0f - b2) * g[i] * g[i];
        p[i] -= step * m[i] / (sqrtf(v[i]) * rc2 + o->eps);
    }
}

void sf_adamw_step(sf_adamw *o, sf_params *ps, float lr) {
    o->t++;
    step_consts c = consts(o, lr);
    if (!o->lazy || !ps->touched) {
        update_range(o, ps, c, 0, o->n);
        return;
    }
    /* dense runs between row-sparse tensors, touched rows of those */
    size_t dense_from = 0;
    for (int k = 0; k < ps->n; k++) {
        const sf_param *pp = &ps->p[k];
        if (!pp->row_floats) continue;
        update_range(o, ps, c, dense_from, pp->offset);
        const unsigned char *touched = ps->touched + pp->touched_offset;
        size_t rows = pp->numel / pp->row_floats;
        for (size_t r = 0; r < rows; r++)
            if (touched[r])
                update_range(o, ps, c, pp->offset + r * pp->row_floats,
                             pp->offset + (r + 1) * pp->row_floats);
        dense_from = pp->offset + pp->numel;
    }
    update_range(o, ps, c, dense_from, o->n);
}

double sf_clip_grad_norm(sf_params *ps, double max_norm) {
    double s = 0;
    for (size_t i = 0; i < ps->total; i++) s += (double)ps->grad[i] * ps->grad[i];
    double norm = sqrt(s);
    if (max_norm > 0 && norm > max_norm) {
        float k = (float)(max_norm / (norm + 1e-6));
        for (size_t i = 0; i < ps->total; i++) ps->grad[i] *= k;
    }
    return norm;
}
