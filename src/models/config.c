#include "models/config.h"

#include <math.h>
#include <string.h>

#include "blocks/block.h"
#include "config/options.h"
#include "core/error.h"
#include "layers/layer.h"
#include "layers/norm.h"
#include "layers/positions.h"
#include "models/model.h"
#include "tasks/task.h"

/* ---- generic: one part object {"kind": ..., options...} --------------------------------- */

typedef struct {
    const sf_part_info *items[32];
    int n;
} part_list;

static void list_names(const part_list *l, char *buf, size_t cap) {
    size_t len = 0;
    buf[0] = 0;
    for (int i = 0; i < l->n && len + 1 < cap; i++)
        len += (size_t)snprintf(buf + len, cap - len, "%s%s", len ? ", " : "", l->items[i]->name);
}

/* Normalise `in` (object or NULL) as a part of list l; out gets "kind" first, then options. */
static int normalize_part(const cJSON *in, const part_list *l, const char *default_kind,
                          const char *path, const char *what, cJSON **out) {
    *out = NULL;
    if (in && cJSON_IsString(in)) /* "sinusoidal" is short for {"kind": "sinusoidal"} */
        default_kind = in->valuestring, in = NULL;
    if (in && !cJSON_IsObject(in))
        return sf_errorf("%s: expected an object {\"kind\": ...} or a %s name", path, what);
    const cJSON *k = in ? cJSON_GetObjectItemCaseSensitive(in, "kind") : NULL;
    if (k && !cJSON_IsString(k)) return sf_errorf("%s.kind: expected a string", path);
    const char *kind = k ? k->valuestring : default_kind;
    if (!kind) return sf_errorf("%s.kind: missing", path);
    const sf_part_info *p = NULL;
    for (int i = 0; i < l->n; i++)
        if (strcmp(l->items[i]->name, kind) == 0) p = l->items[i];
    if (!p) {
        char names[512];
        list_names(l, names, sizeof names);
        return sf_errorf("%s.kind: unknown %s '%s' (known: %s)", path, what, kind, names);
    }
    static const char *const extra_keys[] = {"kind", NULL};
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "kind", kind);
    if (sf_options_normalize(in, p->opts, p->n_opts, path, extra_keys, o)) {
        cJSON_Delete(o);
        return SF_ERR;
    }
    *out = o;
    return SF_OK;
}

static part_list mixers_for(unsigned slot) {
    part_list l = {.n = 0};
    for (int i = 0; i < sf_mixer_registry_n && l.n < 32; i++)
        if (sf_mixer_registry[i]->slots & slot) l.items[l.n++] = &sf_mixer_registry[i]->info;
    return l;
}

static part_list norms(void) {
    part_list l = {.n = 3};
    for (int i = 0; i < 3; i++) l.items[i] = &sf_norm_registry[i];
    return l;
}

/* ---- blocks -------------------------------------------------------------------------------- */

int sf_config_normalize_block(const cJSON *in, int index, cJSON **out) {
    char path[64];
    snprintf(path, sizeof path, "blocks[%d]", index);
    *out = NULL;
    if (!cJSON_IsObject(in)) return sf_errorf("%s: expected an object", path);
    part_list kinds = {.n = 0};
    for (int i = 0; i < sf_block_registry_n; i++)
        kinds.items[kinds.n++] = &sf_block_registry[i]->info;
    const cJSON *k = cJSON_GetObjectItemCaseSensitive(in, "kind");
    const char *kind = k && cJSON_IsString(k) ? k->valuestring : "metaformer";
    const sf_block_def *def = sf_block_find(kind);
    if (k && !cJSON_IsString(k)) return sf_errorf("%s.kind: expected a string", path);
    if (!def) {
        char names[256];
        list_names(&kinds, names, sizeof names);
        return sf_errorf("%s.kind: unknown block kind '%s' (known: %s)", path, kind, names);
    }
    const char *extra[5] = {"kind", "norm", def->mixer_keys[0], def->mixer_keys[1], NULL};
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "kind", kind);
    if (sf_options_normalize(in, SF_OPTS(sf_block_options), path, extra, o)) goto fail;
    char sub[96];
    snprintf(sub, sizeof sub, "%s.norm", path);
    part_list nl = norms();
    cJSON *norm;
    if (normalize_part(cJSON_GetObjectItemCaseSensitive(in, "norm"), &nl, "layernorm", sub,
                       "norm", &norm))
        goto fail;
    cJSON_AddItemToObject(o, "norm", norm);
    for (int i = 0; i < def->n_mixers; i++) {
        const char *key = def->mixer_keys[i];
        snprintf(sub, sizeof sub, "%s.%s", path, key);
        part_list ml = mixers_for(def->mixer_slots[i]);
        const cJSON *mi = cJSON_GetObjectItemCaseSensitive(in, key);
        const char *dflt = def->mixer_slots[i] == SF_SLOT_CHANNEL ? "mlp" : "softmax";
        if (!mi && def->n_mixers == 1) return cJSON_Delete(o), sf_errorf("%s: missing", sub);
        cJSON *m;
        if (normalize_part(mi, &ml, dflt, sub, "mixer", &m)) goto fail;
        cJSON_AddItemToObject(o, key, m);
    }
    *out = o;
    return SF_OK;
fail:
    cJSON_Delete(o);
    return SF_ERR;
}

/* ---- top level ------------------------------------------------------------------------------ */

int sf_config_normalize(const cJSON *in0, cJSON **out) {
    *out = NULL;
    if (!cJSON_IsObject(in0)) return sf_errorf("config: expected a JSON object");
    const cJSON *fv = cJSON_GetObjectItemCaseSensitive(in0, "format_version");
    cJSON *converted = NULL;
    const cJSON *in = in0;
    if (fv) {
        if (!cJSON_IsNumber(fv) || fv->valuedouble != floor(fv->valuedouble) ||
            fv->valuedouble < 1)
            return sf_errorf("format_version: expected a positive integer");
        if (fv->valuedouble > SF_FORMAT_VERSION)
            return sf_errorf("format_version: %g is newer than this build reads (%d); "
                             "upgrade seqformer",
                             fv->valuedouble, SF_FORMAT_VERSION);
        if (fv->valuedouble == 1) in = converted = sf_config_v1_to_v2(in0);
    }
    int rc = SF_ERR;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "format_version", SF_FORMAT_VERSION);
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(in, "task");
    const char *task = "forecast";
    if (t) {
        if (!cJSON_IsString(t)) {
            sf_errorf("task: expected a string");
            goto done;
        }
        task = t->valuestring;
    }
    if (!sf_task_find(task)) {
        char names[256];
        sf_task_names(names, sizeof names);
        sf_errorf("task: unknown task '%s' (known: %s)", task, names);
        goto done;
    }
    cJSON_AddStringToObject(o, "task", task);
    const cJSON *mk = cJSON_GetObjectItemCaseSensitive(in, "model");
    if (!mk || !cJSON_IsString(mk)) {
        char names[256];
        sf_model_names(names, sizeof names);
        sf_errorf("model: missing or not a string (known: %s)", names);
        goto done;
    }
    const sf_model_def *md = sf_model_find(mk->valuestring);
    if (!md) {
        char names[256];
        sf_model_names(names, sizeof names);
        sf_errorf("model: unknown model '%s' (known: %s)", mk->valuestring, names);
        goto done;
    }
    cJSON_AddStringToObject(o, "model", md->info.name);
    static const char *const stack_keys[] = {"format_version", "task", "model", "input",
                                             "positions", "blocks", "head", NULL};
    static const char *const flat_keys[] = {"format_version", "task", "model", NULL};
    if (sf_options_normalize(in, md->info.opts, md->info.n_opts, "config",
                             md->has_blocks ? stack_keys : flat_keys, o))
        goto done;
    if (md->has_blocks) {
        part_list l = {.n = sf_input_registry_n};
        for (int i = 0; i < l.n; i++) l.items[i] = &sf_input_registry[i];
        cJSON *part;
        if (normalize_part(cJSON_GetObjectItemCaseSensitive(in, "input"), &l, md->default_input,
                           "input", "input", &part))
            goto done;
        cJSON_AddItemToObject(o, "input", part);
        l.n = SF_POSITIONS_N;
        for (int i = 0; i < SF_POSITIONS_N; i++) l.items[i] = &sf_positions_registry[i];
        const char *dpos = md->default_positions ? md->default_positions : "learned";
        if (normalize_part(cJSON_GetObjectItemCaseSensitive(in, "positions"), &l, dpos,
                           "positions", "positions", &part))
            goto done;
        cJSON_AddItemToObject(o, "positions", part);
        const cJSON *blocks = cJSON_GetObjectItemCaseSensitive(in, "blocks");
        if (!blocks || !cJSON_IsArray(blocks)) {
            sf_errorf("blocks: missing or not a list");
            goto done;
        }
        cJSON *ob = cJSON_AddArrayToObject(o, "blocks");
        int i = 0, total = 0;
        for (const cJSON *b = blocks->child; b; b = b->next, i++) {
            cJSON *nb;
            if (sf_config_normalize_block(b, i, &nb)) goto done;
            total += sf_opt_int(nb, "repeat");
            cJSON_AddItemToArray(ob, nb);
        }
        if (total > 1024) {
            sf_errorf("blocks: %d blocks after repeat exceeds 1024", total);
            goto done;
        }
        l.n = sf_head_registry_n;
        for (int k = 0; k < l.n; k++) l.items[k] = &sf_head_registry[k];
        if (normalize_part(cJSON_GetObjectItemCaseSensitive(in, "head"), &l, md->default_head,
                           "head", "head", &part))
            goto done;
        cJSON_AddItemToObject(o, "head", part);
    }
    *out = o;
    o = NULL;
    rc = SF_OK;
done:
    cJSON_Delete(o);
    cJSON_Delete(converted);
    return rc;
}

int sf_config_parse(const char *text, const char *name, cJSON **out) {
    cJSON *raw;
    *out = NULL;
    if (sf_json_parse(text, name, &raw)) return SF_ERR;
    int rc = sf_config_normalize(raw, out);
    cJSON_Delete(raw);
    if (rc) sf_error_prefix("%s", name);
    return rc;
}

/* Pretty form for people: two-space indents, and an object whose values are all scalars (a
 * mixer, a norm) on one line, so a block reads as one short paragraph. */
typedef struct {
    char *s;
    size_t n, cap;
} strbuf;

static void put(strbuf *b, const char *t) {
    size_t k = strlen(t);
    if (b->n + k + 1 > b->cap) {
        b->cap = (b->n + k + 1) * 2;
        b->s = sf_realloc(b->s, b->cap);
    }
    memcpy(b->s + b->n, t, k + 1);
    b->n += k;
}

static int all_scalars(const cJSON *o) {
    for (const cJSON *e = o->child; e; e = e->next)
        if (cJSON_IsObject(e) || cJSON_IsArray(e)) return 0;
    return 1;
}

static void pretty(strbuf *b, const cJSON *v, int depth) {
    char pad[64];
    int w = 2 * (depth + 1) < 62 ? 2 * (depth + 1) : 62;
    memset(pad, ' ', (size_t)w);
    pad[w] = 0;
    if (cJSON_IsObject(v) || cJSON_IsArray(v)) {
        int obj = cJSON_IsObject(v), inline_ = depth > 0 && (obj ? all_scalars(v) : v->child == NULL);
        put(b, obj ? "{" : "[");
        for (const cJSON *e = v->child; e; e = e->next) {
            put(b, inline_ ? (e == v->child ? "" : ", ") : (e == v->child ? "\n" : ",\n"));
            if (!inline_) put(b, pad);
            if (obj) {
                put(b, "\"");
                put(b, e->string);
                put(b, "\": ");
            }
            pretty(b, e, depth + 1);
        }
        if (!inline_) {
            put(b, "\n");
            pad[w - 2] = 0;
            put(b, pad);
        }
        put(b, obj ? "}" : "]");
        return;
    }
    char *t = cJSON_PrintUnformatted(v);
    put(b, t);
    free(t);
}

char *sf_config_print(const cJSON *cfg, int pretty_form) {
    if (!pretty_form) return cJSON_PrintUnformatted(cfg);
    strbuf b = {0};
    put(&b, "");
    pretty(&b, cfg, 0);
    return b.s;
}


/* ---- format_version 1 and the flag shorthand ------------------------------------------------ */

static const cJSON *v1(const cJSON *o, const char *k) { return cJSON_GetObjectItemCaseSensitive(o, k); }

static void copy_item(cJSON *dst, const char *dk, const cJSON *src, const char *sk) {
    const cJSON *v = v1(src, sk);
    if (v) cJSON_AddItemToObject(dst, dk, cJSON_Duplicate(v, 1));
}

cJSON *sf_config_v1_to_v2(const cJSON *in) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "format_version", SF_FORMAT_VERSION);
    cJSON_AddStringToObject(o, "task", "forecast");
    copy_item(o, "model", in, "model");
    copy_item(o, "seq_len", in, "seq_len");
    copy_item(o, "pred_len", in, "pred_len");
    copy_item(o, "n_channels", in, "n_channels");
    const cJSON *model = v1(in, "model");
    if (model && cJSON_IsString(model) && strcmp(model->valuestring, "dlinear") == 0) {
        copy_item(o, "kernel_size", in, "kernel_size");
        return o;
    }
    copy_item(o, "d_model", in, "d_model");
    copy_item(o, "revin", in, "revin");
    copy_item(o, "dropout", in, "dropout");
    cJSON *input = cJSON_AddObjectToObject(o, "input");
    cJSON_AddStringToObject(input, "kind", "patches");
    copy_item(input, "patch_len", in, "patch_len");
    copy_item(input, "stride", in, "stride");
    cJSON *pos = cJSON_AddObjectToObject(o, "positions");
    copy_item(pos, "kind", in, "pos");
    cJSON *blocks = cJSON_AddArrayToObject(o, "blocks");
    cJSON *b = cJSON_CreateObject();
    cJSON_AddItemToArray(blocks, b);
    cJSON_AddStringToObject(b, "kind", "metaformer");
    copy_item(b, "repeat", in, "e_layers");
    copy_item(b, "placement", in, "norm_place");
    copy_item(b, "dropout", in, "dropout");
    cJSON *norm = cJSON_AddObjectToObject(b, "norm");
    copy_item(norm, "kind", in, "norm");
    cJSON *tok = cJSON_AddObjectToObject(b, "token_mixer");
    copy_item(tok, "kind", in, "mixer");
    /* the flags' n_heads and causal reach only mixers that have them (not mamba, gru_diag...) */
    const cJSON *mk = v1(in, "mixer");
    const sf_mixer_def *md = cJSON_IsString(mk) ? sf_mixer_find(mk->valuestring) : NULL;
    if (!md || sf_part_has_option(&md->info, "n_heads")) copy_item(tok, "n_heads", in, "n_heads");
    if (!md || sf_part_has_option(&md->info, "causal")) copy_item(tok, "causal", in, "causal");
    cJSON *ch = cJSON_AddObjectToObject(b, "channel_mixer");
    cJSON_AddStringToObject(ch, "kind", "mlp");
    copy_item(ch, "d_ff", in, "d_ff");
    copy_item(ch, "dropout", in, "dropout");
    /* v1 had norm_f whenever norm_place was pre, even with no blocks */
    const cJSON *el = v1(in, "e_layers"), *np = v1(in, "norm_place"), *nk = v1(in, "norm");
    if (cJSON_IsNumber(el) && el->valuedouble == 0 && cJSON_IsString(np) &&
        strcmp(np->valuestring, "pre") == 0 && cJSON_IsString(nk))
        cJSON_AddStringToObject(o, "final_norm", nk->valuestring);
    cJSON *head = cJSON_AddObjectToObject(o, "head");
    cJSON_AddStringToObject(head, "kind", "flatten");
    copy_item(head, "dropout", in, "head_dropout");
    return o;
}

void sf_flat_config_defaults(sf_flat_config *c, const char *model) {
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
    if (strcmp(model, "itransformer") == 0) {
        /* the official iTransformer run.py defaults; revin stands for use_norm */
        c->seq_len = 96;
        c->d_model = 512;
        c->n_heads = 8;
        c->e_layers = 2;
        c->d_ff = 2048;
        c->dropout = 0.1f;
        strcpy(c->norm, "layernorm");
        strcpy(c->pos, "none");
    }
}

/* iTransformer from the flags: e_layers metaformer blocks (the official EncoderLayer: post-norm,
 * attention + mlp, dropout on both residual branches and after the activation), a final norm of
 * the blocks' kind, the inverted input and the per-token head. */
static cJSON *itransformer_from_flat(const sf_flat_config *c) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "format_version", SF_FORMAT_VERSION);
    cJSON_AddStringToObject(o, "task", "forecast");
    cJSON_AddStringToObject(o, "model", "itransformer");
    cJSON_AddNumberToObject(o, "seq_len", c->seq_len);
    cJSON_AddNumberToObject(o, "pred_len", c->pred_len);
    cJSON_AddNumberToObject(o, "n_channels", c->n_channels);
    cJSON_AddNumberToObject(o, "d_model", c->d_model);
    cJSON_AddBoolToObject(o, "use_norm", c->revin);
    cJSON_AddItemToObject(o, "dropout", sf_json_float(c->dropout));
    cJSON_AddStringToObject(o, "final_norm", c->norm);
    cJSON_AddStringToObject(cJSON_AddObjectToObject(o, "input"), "kind", "inverted");
    cJSON_AddStringToObject(cJSON_AddObjectToObject(o, "positions"), "kind", c->pos);
    cJSON *b = cJSON_CreateObject();
    cJSON_AddItemToArray(cJSON_AddArrayToObject(o, "blocks"), b);
    cJSON_AddStringToObject(b, "kind", "metaformer");
    cJSON_AddNumberToObject(b, "repeat", c->e_layers);
    cJSON_AddStringToObject(b, "placement", c->norm_place);
    cJSON_AddItemToObject(b, "dropout", sf_json_float(c->dropout));
    cJSON_AddStringToObject(cJSON_AddObjectToObject(b, "norm"), "kind", c->norm);
    cJSON *tok = cJSON_AddObjectToObject(b, "token_mixer");
    cJSON_AddStringToObject(tok, "kind", c->mixer);
    const sf_mixer_def *md = sf_mixer_find(c->mixer);
    if (!md || sf_part_has_option(&md->info, "n_heads"))
        cJSON_AddNumberToObject(tok, "n_heads", c->n_heads);
    if (!md || sf_part_has_option(&md->info, "causal")) cJSON_AddBoolToObject(tok, "causal", c->causal);
    /* the official FullAttention drops its weights with the model's dropout */
    if (md && sf_part_has_option(&md->info, "attn_dropout"))
        cJSON_AddItemToObject(tok, "attn_dropout", sf_json_float(c->dropout));
    cJSON *ch = cJSON_AddObjectToObject(b, "channel_mixer");
    cJSON_AddStringToObject(ch, "kind", "mlp");
    cJSON_AddNumberToObject(ch, "d_ff", c->d_ff);
    cJSON_AddItemToObject(ch, "dropout", sf_json_float(c->dropout));
    cJSON_AddStringToObject(cJSON_AddObjectToObject(o, "head"), "kind", "per_token");
    return o;
}

cJSON *sf_flat_config_to_json(const sf_flat_config *c) {
    if (strcmp(c->model, "itransformer") == 0) return itransformer_from_flat(c);
    cJSON *f = cJSON_CreateObject();
    cJSON_AddNumberToObject(f, "format_version", 1);
    cJSON_AddStringToObject(f, "model", c->model);
    cJSON_AddNumberToObject(f, "seq_len", c->seq_len);
    cJSON_AddNumberToObject(f, "pred_len", c->pred_len);
    cJSON_AddNumberToObject(f, "n_channels", c->n_channels);
    cJSON_AddNumberToObject(f, "kernel_size", c->kernel_size);
    cJSON_AddNumberToObject(f, "d_model", c->d_model);
    cJSON_AddNumberToObject(f, "n_heads", c->n_heads);
    cJSON_AddNumberToObject(f, "e_layers", c->e_layers);
    cJSON_AddNumberToObject(f, "d_ff", c->d_ff);
    cJSON_AddNumberToObject(f, "patch_len", c->patch_len);
    cJSON_AddNumberToObject(f, "stride", c->stride);
    cJSON_AddBoolToObject(f, "revin", c->revin);
    cJSON_AddItemToObject(f, "dropout", sf_json_float(c->dropout));
    cJSON_AddItemToObject(f, "head_dropout", sf_json_float(c->head_dropout));
    cJSON_AddStringToObject(f, "mixer", c->mixer);
    cJSON_AddBoolToObject(f, "causal", c->causal);
    cJSON_AddStringToObject(f, "norm", c->norm);
    cJSON_AddStringToObject(f, "norm_place", c->norm_place);
    cJSON_AddStringToObject(f, "pos", c->pos);
    cJSON *v2 = sf_config_v1_to_v2(f);
    cJSON_Delete(f);
    return v2;
}
