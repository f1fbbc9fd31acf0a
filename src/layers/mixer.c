/* The mixer registry: the one table that maps a config name to a mixer definition. Adding a
 * mixer is its own file (defining an sf_mixer_def) plus one line here. */
#include <string.h>

#include "core/error.h"
#include "layers/layer.h"
#include "layers/mixers.h"

const sf_mixer_def *const sf_mixer_registry[] = {
    &sf_mixer_softmax,
    &sf_mixer_linear,
    &sf_mixer_mlp,
    &sf_mixer_glu,
    &sf_mixer_identity,
    &sf_mixer_local,
    &sf_mixer_fastformer,
    &sf_mixer_linformer,
    &sf_mixer_ls,
    &sf_mixer_rpe,
    &sf_mixer_cosformer,
    &sf_mixer_probsparse,
    &sf_mixer_lut,
    &sf_mixer_mamba,
    &sf_mixer_gru_diag,
    &sf_mixer_lstm_cifg,
    &sf_mixer_gru,
    &sf_mixer_lstm,
    &sf_mixer_s4d,
    &sf_mixer_deltanet,
    &sf_mixer_dwconv,
};
const int sf_mixer_registry_n = (int)(sizeof sf_mixer_registry / sizeof *sf_mixer_registry);

const sf_mixer_def *sf_mixer_find(const char *name) {
    for (int i = 0; i < sf_mixer_registry_n; i++)
        if (strcmp(sf_mixer_registry[i]->info.name, name) == 0) return sf_mixer_registry[i];
    return NULL;
}

sf_mixer *sf_mixer_wrap(const sf_mixer_ops *ops, int d, void *self) {
    sf_mixer *m = sf_calloc(1, sizeof *m);
    m->ops = ops;
    m->d = d;
    m->can_step = 1;
    m->can_pad = 1;
    m->self = self;
    return m;
}

sf_mixer *sf_mixer_create(const sf_mixer_def *def, const sf_mixer_args *a) {
    if (a->d_model <= 0) {
        sf_errorf("mixer '%s': d_model must be positive (got %d)", def->info.name, a->d_model);
        return NULL;
    }
    sf_mixer *m = def->create(a);
    if (m) m->def = def;
    return m;
}

void sf_mixer_destroy(sf_mixer *m) {
    if (!m) return;
    m->ops->destroy(m);
    free(m);
}
