#include "models/model.h"

#include <omp.h>
#include <string.h>

#include "core/error.h"
#include "data/time_features.h"

/* The model registry. Adding a model is its own file (an sf_model_def) plus one line here. */
const sf_model_def *const sf_model_registry[] = {&sf_model_patchtst, &sf_model_dlinear,
                                                  &sf_model_itransformer,
                                                  &sf_model_informer, &sf_model_t2,
                                                  &sf_model_lm};
const int sf_model_registry_n = (int)(sizeof sf_model_registry / sizeof *sf_model_registry);

const sf_model_def *sf_model_find(const char *name) {
    for (int i = 0; i < sf_model_registry_n; i++)
        if (strcmp(sf_model_registry[i]->info.name, name) == 0) return sf_model_registry[i];
    return NULL;
}

void sf_model_names(char *buf, size_t n) {
    size_t len = 0;
    buf[0] = 0;
    for (int i = 0; i < sf_model_registry_n && len + 1 < n; i++)
        len += (size_t)snprintf(buf + len, n - len, "%s%s", len ? ", " : "",
                                sf_model_registry[i]->info.name);
}

void sf_run_init(sf_run *r) { memset(r, 0, sizeof *r); }

void sf_run_free(sf_run *r) {
    sf_arena_free(&r->arena);
    free(r->saved);
    memset(r, 0, sizeof *r);
}

int sf_model_create(sf_model *m, const cJSON *config) {
    memset(m, 0, sizeof *m);
    if (sf_config_normalize(config, &m->config)) return SF_ERR;
    m->def = sf_model_find(sf_opt_str(m->config, "model"));
    m->seq_len = sf_opt_int(m->config, "seq_len");
    /* models that are not forecasters (lm) have no horizon and one value per step */
    const cJSON *pl = cJSON_GetObjectItemCaseSensitive(m->config, "pred_len");
    const cJSON *nc = cJSON_GetObjectItemCaseSensitive(m->config, "n_channels");
    m->pred_len = pl ? sf_opt_int(m->config, "pred_len") : 0;
    m->n_channels = nc ? sf_opt_int(m->config, "n_channels") : 1;
    m->time_features = sf_config_time_features(m->config, &m->freq);
    sf_params_init(&m->params);
    if (m->def->ops->build(m)) {
        sf_model_destroy(m);
        return SF_ERR;
    }
    sf_params_alloc(&m->params);
    return SF_OK;
}

int sf_model_create_json(sf_model *m, const char *json, const char *name) {
    cJSON *raw;
    memset(m, 0, sizeof *m);
    if (sf_json_parse(json, name, &raw)) return SF_ERR;
    int rc = sf_model_create(m, raw);
    cJSON_Delete(raw);
    if (rc) sf_error_prefix("%s", name);
    return rc;
}

void sf_model_destroy(sf_model *m) {
    if (m->def && m->self) m->def->ops->destroy(m);
    sf_params_free(&m->params);
    sf_run_free(&m->run);
    for (int i = 0; i < m->pool_n; i++) sf_run_free(&m->pool[i]);
    free(m->pool);
    cJSON_Delete(m->config);
    memset(m, 0, sizeof *m);
}

void sf_model_init_weights(sf_model *m, uint64_t seed) {
    sf_rng rng;
    sf_rng_seed_stream(&rng, seed, 1);
    m->def->ops->init(m, &rng);
}

long sf_model_n_params(const sf_model *m) {
    long n = 0;
    for (int i = 0; i < m->params.n; i++)
        if (!m->params.p[i].buffer) n += (long)m->params.p[i].numel;
    return n;
}

long sf_model_x_floats(const sf_model *m) {
    return (long)m->seq_len * m->n_channels + (long)(m->seq_len + m->pred_len) * m->time_features +
           (m->def->reads_lengths ? 1 : 0);
}

int sf_config_time_features(const cJSON *config, char *freq) {
    const sf_model_def *def = sf_model_find(sf_opt_str(config, "model"));
    *freq = 0;
    return def && def->time_features ? def->time_features(config, freq) : 0;
}

int sf_config_freq_features(const cJSON *config, char *freq) {
    *freq = sf_opt_str(config, "freq")[0];
    return sf_time_features_count(*freq);
}

int sf_error_freq_auto(void) {
    return sf_errorf("freq: 'auto' is resolved from the data when training; a model needs a "
                     "frequency letter (%s)",
                     SF_TIME_FREQ_CHOICES);
}

static size_t plan(sf_model *m, int B, int training) {
    sf_arena a;
    sf_arena_init_plan(&a);
    unsigned char *saved = sf_calloc(m->params.saved_bytes + 16, 1);
    sf_ctx ctx = {.arena = &a, .training = training, .keep = training, .B = B, .T = m->seq_len,
                  .saved = saved};
    m->def->ops->forward(m, &ctx, NULL, NULL);
    if (training) m->def->ops->backward(m, &ctx, NULL);
    free(saved);
    return a.peak;
}

size_t sf_model_arena_floats(sf_model *m, int B, int training) { return plan(m, B, training); }

void sf_model_reserve(sf_model *m, sf_run *r, int B, int training) {
    int T = m->seq_len;
    if (!r->saved || r->saved_cap < m->params.saved_bytes) {
        free(r->saved);
        r->saved_cap = m->params.saved_bytes;
        r->saved = sf_calloc(r->saved_cap + 16, 1);
    }
    const int threads = omp_get_max_threads();
    if (r->arena.base && B <= r->B && T <= r->T && training <= r->training && threads <= r->threads)
        return;
    if (r->arena.base) { /* grow to cover both the old and the new shape */
        if (r->B > B) B = r->B;
        if (r->T > T) T = r->T;
        if (r->training > training) training = r->training;
    }
    size_t need = plan(m, B, training);
    sf_arena_free(&r->arena);
    sf_arena_alloc(&r->arena, need);
    r->B = B;
    r->T = T;
    r->training = training;
    r->threads = threads;
}

void sf_model_forward_run(sf_model *m, sf_run *r, const float *x, float *y, int B, int training,
                          sf_rng *rng) {
    sf_model_reserve(m, r, B, training);
    sf_arena_reset_to(&r->arena, 0);
    sf_ctx ctx = {.arena = &r->arena, .rng = rng, .training = training, .keep = training, .B = B,
                  .T = m->seq_len, .saved = r->saved, .newton = r->newton};
    m->def->ops->forward(m, &ctx, x, y);
    r->kept = training;
}

void sf_model_backward_run(sf_model *m, sf_run *r, const float *dy, int B) {
    SF_ASSERT(r->training && r->kept && "backward follows a training forward in the same run");
    sf_ctx ctx = {.arena = &r->arena, .training = 1, .keep = 1, .B = B, .T = m->seq_len,
                  .saved = r->saved};
    m->def->ops->backward(m, &ctx, dy);
}

void sf_model_forward(sf_model *m, const float *x, float *y, int B, int training, sf_rng *rng) {
    sf_model_forward_run(m, &m->run, x, y, B, training, rng);
}

void sf_model_infer_chunked(sf_model *m, sf_run *runs, const float *x, float *y, long y_floats,
                            int B, int chunk) {
    SF_ASSERT(B >= 0 && chunk >= 1 && y_floats >= 1);
    const long xs = sf_model_x_floats(m);
    const int nc = (B + chunk - 1) / chunk;
    if (nc <= 1 || (!runs && m->run.newton)) { /* one chunk (or a Newton tally to fill, which
                                                  * is not thread-safe): the team, one forward */
        sf_model_forward_run(m, runs ? &runs[0] : &m->run, x, y, B, 0, NULL);
        return;
    }
    if (!runs) {
        const int nt = omp_get_max_threads();
        if (m->pool_n < nt) {
            m->pool = sf_realloc(m->pool, (size_t)nt * sizeof *m->pool);
            for (int i = m->pool_n; i < nt; i++) sf_run_init(&m->pool[i]);
            m->pool_n = nt;
        }
        runs = m->pool;
    }
#pragma omp parallel
    {
        sf_run *r = &runs[omp_get_thread_num()];
        omp_set_num_threads(1); /* this thread's ICV: the kernels inside run alone */
#pragma omp for schedule(dynamic, 1)
        for (int c = 0; c < nc; c++) {
            const int b0 = c * chunk, n = B - b0 < chunk ? B - b0 : chunk;
            sf_model_forward_run(m, r, x + (size_t)b0 * xs, y + (size_t)b0 * y_floats, n, 0, NULL);
        }
    }
}

void sf_model_infer(sf_model *m, const float *x, float *y, long y_floats, int B) {
    sf_model_infer_chunked(m, NULL, x, y, y_floats, B, SF_INFER_CHUNK);
}

void sf_model_backward(sf_model *m, const float *dy, int B) {
    sf_model_backward_run(m, &m->run, dy, B);
}

char *sf_model_config_json(const sf_model *m, int pretty) { return sf_config_print(m->config, pretty); }
