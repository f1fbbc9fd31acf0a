#include "models/config.h"

#include <cjson/cJSON.h>
#include <string.h>

#include "core/error.h"

void sf_config_defaults(sf_model_config *c, const char *model) {
    memset(c, 0, sizeof *c);
    snprintf(c->model, sizeof c->model, "%s", model);
    c->seq_len = 336;
    c->pred_len = 96;
    c->n_channels = 7;
    c->d_model = 16;
    c->n_heads = 4;
    c->e_layers = 3;
    c->d_ff = 128;
    c->patch_len = 16;
    c->stride = 8;
    c->revin = 1;
    c->dropout = 0.3f;
    c->head_dropout = 0.0f;
    strcpy(c->mixer, "softmax");
    strcpy(c->norm, "batchnorm"); /* PatchTST's default (norm='BatchNorm') */
    strcpy(c->norm_place, "post");
    strcpy(c->pos, "learned");
    c->kernel_size = 25;
}

int sf_config_n_patches(const sf_model_config *c) {
    /* PatchTST pads the end with `stride` copies of the last value before unfolding. */
    return (c->seq_len + c->stride - c->patch_len) / c->stride + 1;
}

static int one_of(const char *field, const char *v, const char *a, const char *b) {
    if (strcmp(v, a) == 0 || strcmp(v, b) == 0) return SF_OK;
    return sf_errorf("config field '%s': '%s' is not one of %s, %s", field, v, a, b);
}

int sf_config_validate(const sf_model_config *c) {
    if (strcmp(c->model, "patchtst") != 0 && strcmp(c->model, "dlinear") != 0)
        return sf_errorf("config field 'model': unknown model '%s' (expected patchtst or dlinear)",
                         c->model);
    if (c->seq_len < 1 || c->seq_len > 100000)
        return sf_errorf("config field 'seq_len': %d out of range [1, 100000]", c->seq_len);
    if (c->pred_len < 1 || c->pred_len > 100000)
        return sf_errorf("config field 'pred_len': %d out of range [1, 100000]", c->pred_len);
    if (c->n_channels < 1 || c->n_channels > 100000)
        return sf_errorf("config field 'n_channels': %d out of range", c->n_channels);
    if (strcmp(c->model, "dlinear") == 0) {
        if (c->kernel_size < 1 || c->kernel_size % 2 == 0 || c->kernel_size > 1001)
            return sf_errorf("config field 'kernel_size': %d must be odd and in [1, 1001]",
                             c->kernel_size);
        return SF_OK;
    }
    if (c->d_model < 1 || c->d_model > 4096)
        return sf_errorf("config field 'd_model': %d out of range [1, 4096]", c->d_model);
    if (c->n_heads < 1 || c->d_model % c->n_heads != 0)
        return sf_errorf("config field 'n_heads': %d must divide d_model %d", c->n_heads,
                         c->d_model);
    if (c->d_model / c->n_heads > 256)
        return sf_errorf("config field 'n_heads': head size %d exceeds 256",
                         c->d_model / c->n_heads);
    if (c->e_layers < 0 || c->e_layers > 64)
        return sf_errorf("config field 'e_layers': %d out of range [0, 64]", c->e_layers);
    if (c->d_ff < 1 || c->d_ff > 65536)
        return sf_errorf("config field 'd_ff': %d out of range [1, 65536]", c->d_ff);
    if (c->patch_len < 1 || c->patch_len > c->seq_len)
        return sf_errorf("config field 'patch_len': %d must be in [1, seq_len=%d]", c->patch_len,
                         c->seq_len);
    if (c->stride < 1 || c->stride > c->seq_len)
        return sf_errorf("config field 'stride': %d must be in [1, seq_len=%d]", c->stride,
                         c->seq_len);
    if (!(c->dropout >= 0.0f && c->dropout < 1.0f))
        return sf_errorf("config field 'dropout': %g must be in [0, 1)", (double)c->dropout);
    if (!(c->head_dropout >= 0.0f && c->head_dropout < 1.0f))
        return sf_errorf("config field 'head_dropout': %g must be in [0, 1)",
                         (double)c->head_dropout);
    if (one_of("mixer", c->mixer, "softmax", "linear")) return SF_ERR;
    if (strcmp(c->norm, "batchnorm") != 0 && one_of("norm", c->norm, "layernorm", "rmsnorm"))
        return sf_errorf("config field 'norm': '%s' is not one of layernorm, rmsnorm, batchnorm",
                         c->norm);
    if (one_of("norm_place", c->norm_place, "post", "pre")) return SF_ERR;
    if (one_of("pos", c->pos, "learned", "sinusoidal")) return SF_ERR;
    if (strcmp(c->pos, "sinusoidal") == 0 && c->d_model % 2)
        return sf_errorf("config field 'pos': sinusoidal positions need an even d_model");
    return SF_OK;
}

char *sf_config_to_json(const sf_model_config *c) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "format_version", SF_FORMAT_VERSION);
    cJSON_AddStringToObject(o, "model", c->model);
    cJSON_AddNumberToObject(o, "seq_len", c->seq_len);
    cJSON_AddNumberToObject(o, "pred_len", c->pred_len);
    cJSON_AddNumberToObject(o, "n_channels", c->n_channels);
    if (strcmp(c->model, "dlinear") == 0) {
        cJSON_AddNumberToObject(o, "kernel_size", c->kernel_size);
    } else {
        cJSON_AddNumberToObject(o, "d_model", c->d_model);
        cJSON_AddNumberToObject(o, "n_heads", c->n_heads);
        cJSON_AddNumberToObject(o, "e_layers", c->e_layers);
        cJSON_AddNumberToObject(o, "d_ff", c->d_ff);
        cJSON_AddNumberToObject(o, "patch_len", c->patch_len);
        cJSON_AddNumberToObject(o, "stride", c->stride);
        cJSON_AddBoolToObject(o, "revin", c->revin);
        cJSON_AddNumberToObject(o, "dropout", c->dropout);
        cJSON_AddNumberToObject(o, "head_dropout", c->head_dropout);
        cJSON_AddStringToObject(o, "mixer", c->mixer);
        cJSON_AddBoolToObject(o, "causal", c->causal);
        cJSON_AddStringToObject(o, "norm", c->norm);
        cJSON_AddStringToObject(o, "norm_place", c->norm_place);
        cJSON_AddStringToObject(o, "pos", c->pos);
    }
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

static int get_int(const cJSON *o, const char *k, int *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!v) return sf_errorf("config: missing field '%s'", k);
    if (!cJSON_IsNumber(v) || v->valuedouble != (double)(int)v->valuedouble)
        return sf_errorf("config field '%s': expected an integer", k);
    *out = (int)v->valuedouble;
    return SF_OK;
}

static int get_float(const cJSON *o, const char *k, float *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!v) return sf_errorf("config: missing field '%s'", k);
    if (!cJSON_IsNumber(v)) return sf_errorf("config field '%s': expected a number", k);
    *out = (float)v->valuedouble;
    return SF_OK;
}

static int get_bool(const cJSON *o, const char *k, int *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!v) return sf_errorf("config: missing field '%s'", k);
    if (!cJSON_IsBool(v)) return sf_errorf("config field '%s': expected true or false", k);
    *out = cJSON_IsTrue(v);
    return SF_OK;
}

static int get_str(const cJSON *o, const char *k, char *out, size_t n) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!v) return sf_errorf("config: missing field '%s'", k);
    if (!cJSON_IsString(v) || strlen(v->valuestring) >= n)
        return sf_errorf("config field '%s': expected a short string", k);
    strcpy(out, v->valuestring);
    return SF_OK;
}

int sf_config_from_json(const char *json, sf_model_config *c) {
    cJSON *o = cJSON_Parse(json);
    if (!o || !cJSON_IsObject(o)) {
        cJSON_Delete(o);
        return sf_errorf("config: not a JSON object");
    }
    int rc = SF_ERR, version = 0;
    char model[16];
    if (get_int(o, "format_version", &version)) goto done;
    if (version != SF_FORMAT_VERSION) {
        sf_errorf("config field 'format_version': %d is not supported (this build reads %d)",
                  version, SF_FORMAT_VERSION);
        goto done;
    }
    if (get_str(o, "model", model, sizeof model)) goto done;
    sf_config_defaults(c, model);
    if (get_int(o, "seq_len", &c->seq_len) || get_int(o, "pred_len", &c->pred_len) ||
        get_int(o, "n_channels", &c->n_channels))
        goto done;
    if (strcmp(model, "dlinear") == 0) {
        if (get_int(o, "kernel_size", &c->kernel_size)) goto done;
    } else {
        if (get_int(o, "d_model", &c->d_model) || get_int(o, "n_heads", &c->n_heads) ||
            get_int(o, "e_layers", &c->e_layers) || get_int(o, "d_ff", &c->d_ff) ||
            get_int(o, "patch_len", &c->patch_len) || get_int(o, "stride", &c->stride) ||
            get_bool(o, "revin", &c->revin) || get_float(o, "dropout", &c->dropout) ||
            get_float(o, "head_dropout", &c->head_dropout) ||
            get_str(o, "mixer", c->mixer, sizeof c->mixer) ||
            get_bool(o, "causal", &c->causal) || get_str(o, "norm", c->norm, sizeof c->norm) ||
            get_str(o, "norm_place", c->norm_place, sizeof c->norm_place) ||
            get_str(o, "pos", c->pos, sizeof c->pos))
            goto done;
    }
    rc = sf_config_validate(c);
done:
    cJSON_Delete(o);
    return rc;
}
