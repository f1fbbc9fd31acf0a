#include "models/checkpoint.h"

#include <string.h>

#include "core/error.h"
#include "core/safetensors.h"

void sf_meta_set(sf_meta *m, const char *key, const char *value) {
    for (int i = 0; i < m->n; i++)
        if (strcmp(m->key[i], key) == 0) {
            free(m->value[i]);
            m->value[i] = sf_strdup(value);
            return;
        }
    if (m->n == m->cap) {
        m->cap = m->cap ? 2 * m->cap : 16;
        m->key = sf_realloc(m->key, (size_t)m->cap * sizeof *m->key);
        m->value = sf_realloc(m->value, (size_t)m->cap * sizeof *m->value);
    }
    m->key[m->n] = sf_strdup(key);
    m->value[m->n++] = sf_strdup(value);
}

const char *sf_meta_get(const sf_meta *m, const char *key) {
    for (int i = 0; m && i < m->n; i++)
        if (strcmp(m->key[i], key) == 0) return m->value[i];
    return NULL;
}

void sf_meta_free(sf_meta *m) {
    for (int i = 0; i < m->n; i++) {
        free(m->key[i]);
        free(m->value[i]);
    }
    free(m->key);
    free(m->value);
    memset(m, 0, sizeof *m);
}

int sf_checkpoint_save(const char *path, const sf_model *m, const sf_meta *extra) {
    const sf_params *ps = &m->params;
    sf_st_tensor_in *t = sf_calloc((size_t)ps->n, sizeof *t);
    for (int i = 0; i < ps->n; i++) {
        t[i].name = ps->p[i].name;
        t[i].ndim = ps->p[i].ndim;
        for (int k = 0; k < ps->p[i].ndim; k++) t[i].shape[k] = ps->p[i].shape[k];
        t[i].data = ps->data + ps->p[i].offset;
        t[i].dtype = SF_ST_F32;
    }
    char *config = sf_model_config_json(m, 0);
    char version[16];
    snprintf(version, sizeof version, "%d", SF_FORMAT_VERSION);
    int n_extra = extra ? extra->n : 0;
    sf_st_meta *meta = sf_calloc((size_t)n_extra + 3, sizeof *meta);
    meta[0] = (sf_st_meta){"format_version", version};
    meta[1] = (sf_st_meta){"producer", "seqformer 0.2.0"};
    meta[2] = (sf_st_meta){"config", config};
    for (int i = 0; i < n_extra; i++) meta[3 + i] = (sf_st_meta){extra->key[i], extra->value[i]};
    int rc = sf_safetensors_write(path, t, ps->n, meta, n_extra + 3);
    free(meta);
    free(t);
    free(config);
    return rc;
}

int sf_checkpoint_load_params(const sf_safetensors *st, sf_params *ps, int allow_extra) {
    const char *path = sf_safetensors_path(st);
    for (int i = 0; i < ps->n; i++) {
        const sf_param *p = &ps->p[i];
        if (sf_safetensors_find(st, p->name) < 0)
            return sf_errorf("%s: missing tensor '%s' required by the stored config", path,
                             p->name);
        if (sf_safetensors_load_f32(st, p->name, p->ndim, p->shape, ps->data + p->offset))
            return SF_ERR;
    }
    if (!allow_extra)
        for (int i = 0; i < sf_safetensors_count(st); i++)
            if (sf_params_find(ps, sf_safetensors_name(st, i)) < 0)
                return sf_errorf("%s: unexpected tensor '%s' (not part of the stored config)",
                                 path, sf_safetensors_name(st, i));
    return SF_OK;
}

int sf_checkpoint_load(const char *path, sf_model *m, sf_meta *meta) {
    sf_safetensors *st = NULL;
    memset(m, 0, sizeof *m);
    if (meta) memset(meta, 0, sizeof *meta);
    if (sf_safetensors_open(path, &st)) return SF_ERR;
    int rc = SF_ERR;
    const char *config = sf_safetensors_meta(st, "config");
    if (!config) {
        sf_errorf("%s: not a seqformer checkpoint (no 'config' in __metadata__)", path);
        goto done;
    }
    char name[512];
    snprintf(name, sizeof name, "%s: metadata 'config'", path);
    if (sf_model_create_json(m, config, name)) goto done;
    if (sf_checkpoint_load_params(st, &m->params, 0)) goto done;
    for (int i = 0; meta && i < sf_safetensors_meta_count(st); i++) {
        const char *k = sf_safetensors_meta_key(st, i);
        sf_meta_set(meta, k, sf_safetensors_meta(st, k));
    }
    rc = SF_OK;
done:
    sf_safetensors_close(st);
    if (rc != SF_OK) {
        if (m->def) sf_model_destroy(m);
        if (meta) sf_meta_free(meta);
    }
    return rc;
}
