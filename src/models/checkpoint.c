#include "models/checkpoint.h"

#include <cjson/cJSON.h>
#include <string.h>

#include "core/error.h"
#include "core/safetensors.h"

static char *json_array_numbers(const double *v, int n) {
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; i < n; i++) cJSON_AddItemToArray(a, cJSON_CreateNumber(v[i]));
    char *s = cJSON_PrintUnformatted(a);
    cJSON_Delete(a);
    return s;
}

static char *json_array_strings(char *const *v, int n) {
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; i < n; i++) cJSON_AddItemToArray(a, cJSON_CreateString(v[i]));
    char *s = cJSON_PrintUnformatted(a);
    cJSON_Delete(a);
    return s;
}

int sf_checkpoint_save(const char *path, const sf_model *m, const sf_scaler *scaler,
                       const sf_data_info *info) {
    const sf_params *ps = &m->params;
    sf_st_tensor_in *t = sf_calloc((size_t)ps->n, sizeof *t);
    for (int i = 0; i < ps->n; i++) {
        t[i].name = ps->p[i].name;
        t[i].ndim = ps->p[i].ndim;
        for (int k = 0; k < ps->p[i].ndim; k++) t[i].shape[k] = ps->p[i].shape[k];
        t[i].data = ps->data + ps->p[i].offset;
        t[i].dtype = SF_ST_F32;
    }
    char *config = sf_config_to_json(&m->cfg);
    char *cols = json_array_strings(scaler->names, scaler->n);
    char *mean = json_array_numbers(scaler->mean, scaler->n);
    char *std = json_array_numbers(scaler->std, scaler->n);
    char features[2] = {info->features, 0};
    sf_st_meta meta[] = {
        {"format_version", "1"}, {"producer", "seqformer 0.1.0"}, {"config", config},
        {"columns", cols},       {"scaler_mean", mean},           {"scaler_std", std},
        {"target", info->target}, {"features", features},         {"split", info->split},
    };
    int rc = sf_safetensors_write(path, t, ps->n, meta, (int)(sizeof meta / sizeof *meta));
    free(t);
    free(config);
    free(cols);
    free(mean);
    free(std);
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

static int parse_array(const char *path, const char *key, const char *json, int n, double *num,
                       char **str) {
    cJSON *a = json ? cJSON_Parse(json) : NULL;
    int rc = SF_OK;
    if (!a || !cJSON_IsArray(a) || cJSON_GetArraySize(a) != n) {
        rc = sf_errorf("%s: metadata '%s' is missing or not an array of %d entries", path, key, n);
        goto done;
    }
    for (int i = 0; i < n; i++) {
        cJSON *e = cJSON_GetArrayItem(a, i);
        if (num) {
            if (!cJSON_IsNumber(e)) {
                rc = sf_errorf("%s: metadata '%s'[%d] is not a number", path, key, i);
                goto done;
            }
            num[i] = e->valuedouble;
        } else {
            if (!cJSON_IsString(e)) {
                rc = sf_errorf("%s: metadata '%s'[%d] is not a string", path, key, i);
                goto done;
            }
            str[i] = sf_strdup(e->valuestring);
        }
    }
done:
    cJSON_Delete(a);
    return rc;
}

int sf_checkpoint_load(const char *path, sf_model *m, sf_scaler *scaler, sf_data_info *info) {
    sf_safetensors *st = NULL;
    memset(m, 0, sizeof *m);
    memset(scaler, 0, sizeof *scaler);
    if (sf_safetensors_open(path, &st)) return SF_ERR;
    int rc = SF_ERR, n = 0;
    double *mean = NULL, *std = NULL;
    char **names = NULL;
    const char *config = sf_safetensors_meta(st, "config");
    if (!config) {
        sf_errorf("%s: not a seqformer checkpoint (no 'config' in __metadata__)", path);
        goto done;
    }
    sf_model_config cfg;
    if (sf_config_from_json(config, &cfg)) {
        sf_error_prefix("%s", path);
        goto done;
    }
    if (sf_model_create(m, &cfg)) {
        sf_error_prefix("%s", path);
        goto done;
    }
    if (sf_checkpoint_load_params(st, &m->params, 0)) goto done;
    n = cfg.n_channels;
    mean = sf_calloc((size_t)n, sizeof *mean);
    std = sf_calloc((size_t)n, sizeof *std);
    names = sf_calloc((size_t)n, sizeof *names);
    if (parse_array(path, "scaler_mean", sf_safetensors_meta(st, "scaler_mean"), n, mean, NULL) ||
        parse_array(path, "scaler_std", sf_safetensors_meta(st, "scaler_std"), n, std, NULL) ||
        parse_array(path, "columns", sf_safetensors_meta(st, "columns"), n, NULL, names))
        goto done;
    if (sf_scaler_init(scaler, n, (const char *const *)names, mean, std)) {
        sf_error_prefix("%s", path);
        goto done;
    }
    const char *target = sf_safetensors_meta(st, "target");
    const char *features = sf_safetensors_meta(st, "features");
    const char *split = sf_safetensors_meta(st, "split");
    if (!target || !features || !split || strlen(target) >= sizeof info->target ||
        (strcmp(features, "M") != 0 && strcmp(features, "S") != 0) ||
        strlen(split) >= sizeof info->split) {
        sf_errorf("%s: metadata 'target', 'features' or 'split' missing or invalid", path);
        goto done;
    }
    strcpy(info->target, target);
    info->features = features[0];
    strcpy(info->split, split);
    rc = SF_OK;
done:
    if (names)
        for (int i = 0; i < n; i++) free(names[i]);
    free(names);
    free(mean);
    free(std);
    sf_safetensors_close(st);
    if (rc != SF_OK) {
        if (m->ops) sf_model_destroy(m);
        sf_scaler_free(scaler);
    }
    return rc;
}
