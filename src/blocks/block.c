/* What every block kind shares: creation from a config object, parameter declaration in a fixed
 * order (norm 0, mixer 0, norm 1, mixer 1), init, streaming state, and the registry of kinds. */
#include "blocks/block.h"
#include "kernels/activations.h"

#include <string.h>

#include "core/error.h"
#include "layers/positions.h"

const sf_block_def *const sf_block_registry[] = {
    &sf_block_metaformer,
    &sf_block_residual,
    &sf_block_parallel,
};
const int sf_block_registry_n = (int)(sizeof sf_block_registry / sizeof *sf_block_registry);

const sf_option sf_block_options[3] = {
    {"repeat", SF_OPT_INT, 1, NULL, 0, 1024, NULL, "copies of this block"},
    {"placement", SF_OPT_CHOICE, 0, "pre", 0, 0, "pre|post|peri", "norm before the mixer (pre), after the residual add (post), or on the mixer's input and output (peri; metaformer only)"},
    {"dropout", SF_OPT_FLOAT, 0, NULL, 0, 0.99, NULL, "dropout on each mixer output before the residual add"},
};

const sf_block_def *sf_block_find(const char *name) {
    for (int i = 0; i < sf_block_registry_n; i++)
        if (strcmp(sf_block_registry[i]->info.name, name) == 0) return sf_block_registry[i];
    return NULL;
}

int sf_block_create(sf_block *b, const cJSON *cfg, int d_model, int max_T, const char *path) {
    return sf_block_create_pos(b, cfg, d_model, max_T, path, NULL);
}

int sf_block_create_pos(sf_block *b, const cJSON *cfg, int d_model, int max_T, const char *path,
                        const cJSON *positions) {
    memset(b, 0, sizeof *b);
    if (positions && !sf_positions_in_attention(sf_opt_str(positions, "kind"))) positions = NULL;
    b->def = sf_block_find(sf_opt_str(cfg, "kind"));
    SF_ASSERT(b->def); /* the config was normalised */
    b->d = d_model;
    b->pre = strcmp(sf_opt_str(cfg, "placement"), "pre") == 0;
    b->peri = strcmp(sf_opt_str(cfg, "placement"), "peri") == 0;
    if (b->peri && b->def != &sf_block_metaformer)
        return sf_errorf("%s.placement: peri is only for metaformer blocks (this one is '%s')", path,
                         b->def->info.name);
    b->dropout = sf_opt_float(cfg, "dropout");
    b->norm_spec = sf_norm_spec_from_json(cJSON_GetObjectItemCaseSensitive(cfg, "norm"));
    for (int i = 0; i < b->def->n_mixers; i++) {
        const cJSON *mc = cJSON_GetObjectItemCaseSensitive(cfg, b->def->mixer_keys[i]);
        const sf_mixer_def *md = sf_mixer_find(sf_opt_str(mc, "kind"));
        SF_ASSERT(md);
        if (positions && (md->slots & SF_SLOT_TOKEN) && !md->takes_positions) {
            sf_errorf("%s.%s: positions '%s' act inside softmax attention; mixer '%s' cannot take them",
                      path, b->def->mixer_keys[i], sf_opt_str(positions, "kind"), md->info.name);
            sf_block_destroy(b);
            return SF_ERR;
        }
        sf_mixer_args a = {.d_model = d_model, .max_T = max_T, .opts = mc, .positions = positions};
        b->mixer[i] = sf_mixer_create(md, &a);
        if (!b->mixer[i]) {
            sf_error_prefix("%s.%s", path, b->def->mixer_keys[i]);
            sf_block_destroy(b);
            return SF_ERR;
        }
    }
    return SF_OK;
}

int sf_block_stack_create(const cJSON *blocks, int d_model, int max_T, sf_block **out, int *n) {
    return sf_block_stack_create_pos(blocks, d_model, max_T, NULL, out, n);
}

int sf_block_stack_create_pos(const cJSON *blocks, int d_model, int max_T, const cJSON *positions,
                              sf_block **out, int *n) {
    int E = 0;
    for (const cJSON *b = blocks->child; b; b = b->next) E += sf_opt_int(b, "repeat");
    sf_block *bs = sf_calloc((size_t)(E ? E : 1), sizeof *bs);
    int i = 0, bi = 0;
    for (const cJSON *b = blocks->child; b; b = b->next, bi++) {
        char path[32];
        snprintf(path, sizeof path, "blocks[%d]", bi);
        for (int r = 0; r < sf_opt_int(b, "repeat"); r++, i++)
            if (sf_block_create_pos(&bs[i], b, d_model, max_T, path, positions)) {
                sf_block_stack_destroy(bs, i);
                *out = NULL;
                *n = 0;
                return SF_ERR;
            }
    }
    *out = bs;
    *n = E;
    return SF_OK;
}

void sf_block_stack_declare(sf_block *b, int n, sf_params *ps) {
    char name[SF_PARAM_NAME_MAX];
    for (int k = 0; k < n; k++) {
        snprintf(name, sizeof name, "blocks.%d", k);
        sf_block_declare(&b[k], ps, name);
    }
}

void sf_block_stack_destroy(sf_block *b, int n) {
    for (int i = 0; i < n; i++) sf_block_destroy(&b[i]);
    free(b);
}

double sf_block_stack_flops(const sf_block *b, int n, int T) {
    double f = 0;
    for (int i = 0; i < n; i++)
        for (int k = 0; k < b[i].def->n_mixers; k++) {
            const sf_mixer *mx = b[i].mixer[k];
            if (mx->ops->flops) f += mx->ops->flops(mx, T);
        }
    return f;
}

void sf_block_declare(sf_block *b, sf_params *ps, const char *prefix) {
    static const char *const mixer_names[2] = {"mixer", "ffn"};
    char buf[SF_PARAM_NAME_MAX];
    for (int i = 0; i < b->def->n_mixers; i++) {
        if (i < b->def->n_norms) {
            snprintf(buf, sizeof buf, "%s.%s", prefix, b->def->norm_names[i]);
            sf_norm_declare(&b->norm[i], ps, buf, &b->norm_spec, b->d);
        }
        snprintf(buf, sizeof buf, "%s.%s", prefix, mixer_names[i]);
        b->mixer[i]->ops->declare(b->mixer[i], ps, buf);
        if (b->peri) {
            snprintf(buf, sizeof buf, "%s.%s_out", prefix, b->def->norm_names[i]);
            sf_norm_declare(&b->norm_out[i], ps, buf, &b->norm_spec, b->d);
        }
    }
    b->slot = sf_params_reserve_saved(ps, b->def->saved_bytes);
}

void sf_block_init(sf_block *b, sf_rng *rng) {
    for (int i = 0; i < b->def->n_mixers; i++) {
        if (i < b->def->n_norms) sf_norm_init(&b->norm[i]);
        b->mixer[i]->ops->init(b->mixer[i], rng);
        if (b->peri) sf_norm_init(&b->norm_out[i]);
    }
}

void sf_block_destroy(sf_block *b) {
    for (int i = 0; i < 2; i++) {
        sf_mixer_destroy(b->mixer[i]);
        b->mixer[i] = NULL;
    }
}

void sf_block_forward(sf_block *b, sf_ctx *ctx, const float *x, float *y) {
    b->def->forward(b, ctx, x, y);
}

void sf_block_backward(sf_block *b, sf_ctx *ctx, const float *dy, float *dx) {
    b->def->backward(b, ctx, dy, dx);
}

size_t sf_block_state_floats(const sf_block *b) {
    size_t n = 0;
    for (int i = 0; i < b->def->n_mixers; i++) n += b->mixer[i]->ops->state_floats(b->mixer[i]);
    return n;
}

int sf_block_can_step(const sf_block *b) {
    for (int i = 0; i < b->def->n_mixers; i++)
        if (!b->mixer[i]->can_step) return 0;
    return 1;
}

int sf_block_check_step(const sf_block *b, const char *path) {
    for (int i = 0; i < b->def->n_mixers; i++)
        if (!b->mixer[i]->can_step)
            return sf_errorf("%s.%s: mixer '%s' cannot stream (step needs a causal mixer; this one "
                             "is bidirectional or has no causal form)",
                             path, b->def->mixer_keys[i], b->mixer[i]->def->info.name);
    return SF_OK;
}

int sf_block_check_pad(const sf_block *b, const char *path) {
    for (int i = 0; i < b->def->n_mixers; i++)
        if (!b->mixer[i]->can_pad)
            return sf_errorf("%s.%s: mixer '%s' cannot handle padded sequences (unequal lengths)",
                             path, b->def->mixer_keys[i], b->mixer[i]->def->info.name);
    return SF_OK;
}

void sf_block_step(const sf_block *b, const float *x_t, float *state, float *y_t, int t) {
    b->def->step(b, x_t, state, y_t, t);
}

void sf_block_add(float *y, const float *a, const float *b, long n) { sf_add(y, a, b, n); }
