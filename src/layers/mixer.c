/* Mixer registry: the one place that maps a config name to a constructor. */
#include <string.h>

#include "core/error.h"
#include "layers/layer.h"
#include "layers/mixers.h"

typedef struct {
    const char *kind;
    sf_mixer *(*create)(const sf_mixer_opts *o);
} mixer_entry;

static const mixer_entry registry[] = {
    {"softmax", sf_softmax_attention_create},
    {"linear", sf_linear_attention_create},
    {"mlp", sf_mlp_create},
};

sf_mixer *sf_mixer_create(const char *kind, const sf_mixer_opts *o) {
    if (o->d_model <= 0) {
        sf_errorf("mixer '%s': d_model must be positive (got %d)", kind, o->d_model);
        return NULL;
    }
    for (size_t i = 0; i < sizeof registry / sizeof *registry; i++)
        if (strcmp(registry[i].kind, kind) == 0) return registry[i].create(o);
    sf_errorf("unknown mixer '%s' (expected softmax, linear or mlp)", kind);
    return NULL;
}

void sf_mixer_destroy(sf_mixer *m) {
    if (!m) return;
    m->ops->destroy(m);
    free(m);
}
