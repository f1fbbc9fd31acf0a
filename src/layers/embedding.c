#include "layers/embedding.h"

#include <stdio.h>
#include <string.h>

#include "core/error.h"
#include "core/parallel.h"

void sf_embedding_declare(sf_embedding *e, sf_params *ps, const char *name, int vocab, int d) {
    char buf[SF_PARAM_NAME_MAX];
    e->vocab = vocab;
    e->d = d;
    snprintf(buf, sizeof buf, "%s.weight", name);
    sf_params_declare(ps, buf, 2, (int64_t[]){vocab, d}, &e->w, &e->dw, 1);
}

void sf_embedding_init(sf_embedding *e, sf_rng *rng) {
    sf_rng_fill_normal(rng, e->w, (long)e->vocab * e->d, 0.0f, 1.0f);
}

void sf_embedding_forward(const sf_embedding *e, float *y, const int32_t *ids, long N) {
    size_t row = (size_t)e->d * sizeof(float);
    SF_PARALLEL_FOR_IF(N * e->d >= 65536,
        for (long n = 0; n < N; n++) {
            SF_ASSERT(ids[n] >= 0 && ids[n] < e->vocab);
            memcpy(y + (size_t)n * e->d, e->w + (size_t)ids[n] * e->d, row);
        }
    );
}

void sf_embedding_backward(sf_embedding *e, const float *dy, const int32_t *ids, long N) {
    for (long n = 0; n < N; n++) {
        float *g = e->dw + (size_t)ids[n] * e->d;
        const float *d = dy + (size_t)n * e->d;
        for (int i = 0; i < e->d; i++) g[i] += d[i];
    }
}
