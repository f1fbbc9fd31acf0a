#include "models/model.h"

#include <string.h>

#include "core/error.h"

int sf_model_create(sf_model *m, const sf_model_config *cfg) {
    memset(m, 0, sizeof *m);
    if (sf_config_validate(cfg)) return SF_ERR;
    m->cfg = *cfg;
    m->ops = strcmp(cfg->model, "dlinear") == 0 ? &sf_dlinear_ops : &sf_patchtst_ops;
    sf_params_init(&m->params);
    if (m->ops->build(m)) {
        m->ops->destroy(m);
        sf_params_free(&m->params);
        return SF_ERR;
    }
    sf_params_alloc(&m->params);
    return SF_OK;
}

void sf_model_destroy(sf_model *m) {
    if (m->ops) m->ops->destroy(m);
    sf_params_free(&m->params);
    sf_arena_free(&m->arena);
    memset(m, 0, sizeof *m);
}

void sf_model_init_weights(sf_model *m, uint64_t seed) {
    sf_rng rng;
    sf_rng_seed_stream(&rng, seed, 1);
    m->ops->init(m, &rng);
}

long sf_model_n_params(const sf_model *m) {
    long n = 0;
    for (int i = 0; i < m->params.n; i++)
        if (!m->params.p[i].buffer) n += (long)m->params.p[i].numel;
    return n;
}

void sf_model_reserve(sf_model *m, int max_batch, int training) {
    if (m->arena.base && max_batch <= m->arena_batch && training <= m->arena_training) return;
    if (m->arena.base) {
        if (m->arena_batch > max_batch) max_batch = m->arena_batch;
        if (m->arena_training > training) training = m->arena_training;
    }
    sf_arena plan;
    sf_arena_init_plan(&plan);
    sf_ctx ctx = {.arena = &plan, .rng = NULL, .training = training, .B = max_batch};
    m->ops->forward(m, &ctx, NULL, NULL);
    if (training) m->ops->backward(m, &ctx, NULL);
    sf_arena_free(&m->arena);
    sf_arena_alloc(&m->arena, plan.peak);
    m->arena_batch = max_batch;
    m->arena_training = training;
}

void sf_model_forward(sf_model *m, const float *x, float *y, int B, int training, sf_rng *rng) {
    sf_model_reserve(m, B, training);
    sf_arena_reset_to(&m->arena, 0);
    sf_ctx ctx = {.arena = &m->arena, .rng = rng, .training = training, .B = B};
    m->ops->forward(m, &ctx, x, y);
}

void sf_model_backward(sf_model *m, const float *dy, int B) {
    SF_ASSERT(m->arena_training);
    sf_ctx ctx = {.arena = &m->arena, .rng = NULL, .training = 1, .B = B};
    m->ops->backward(m, &ctx, dy);
}

double sf_mse_loss(const float *y, const float *target, float *dy, long n) {
    double s = 0;
    float scale = 2.0f / (float)n;
    for (long i = 0; i < n; i++) {
        float e = y[i] - target[i];
        s += (double)e * e;
        if (dy) dy[i] = scale * e;
    }
    return s / (double)n;
}
