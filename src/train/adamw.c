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

void sf_adamw_step(sf_adamw *o, sf_params *ps, float lr) {
    o->t++;
    float b1 = o->beta1, b2 = o->beta2;
    float c1 = 1.0f - powf(b1, (float)o->t), c2 = 1.0f - powf(b2, (float)o->t);
    float step = lr / c1, rc2 = 1.0f / sqrtf(c2), wd = lr * o->weight_decay;
    float *p = ps->data, *g = ps->grad, *m = o->m, *v = o->v, *dk = o->decay;
    long n = (long)o->n;
#pragma omp parallel for schedule(static)
    for (long i = 0; i < n; i++) {
        p[i] -= wd * dk[i] * p[i];
        m[i] = b1 * m[i] + (1.0f - b1) * g[i];
        v[i] = b2 * v[i] + (1.0f - b2) * g[i] * g[i];
        p[i] -= step * m[i] / (sqrtf(v[i]) * rc2 + o->eps);
    }
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
