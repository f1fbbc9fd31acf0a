/* Mixer "identity": y = x, no parameters. Fits either slot: a token-mixer-free block
 * (IdentityFormer, MetaFormer's baseline) or a block without a channel mixer. */
#include <string.h>

#include "core/error.h"
#include "layers/mixers.h"

static void id_declare(sf_mixer *m, sf_params *ps, const char *prefix) {
    (void)m, (void)ps, (void)prefix;
}
static void id_init(sf_mixer *m, sf_rng *rng) { (void)m, (void)rng; }

static void id_forward(sf_mixer *m, sf_ctx *ctx, const float *x, float *y) {
    if (!sf_arena_planning(ctx->arena))
        memcpy(y, x, (size_t)ctx->B * ctx->T * m->d * sizeof(float));
}

static void id_backward(sf_mixer *m, sf_ctx *ctx, const float *dy, float *dx) {
    if (!sf_arena_planning(ctx->arena))
        memcpy(dx, dy, (size_t)ctx->B * ctx->T * m->d * sizeof(float));
}

static size_t id_state_floats(const sf_mixer *m) {
    (void)m;
    return 0;
}

static void id_step(const sf_mixer *m, const float *x_t, const float *state_in, float *state_out,
                    float *y_t, int t) {
    (void)state_in, (void)state_out, (void)t;
    memcpy(y_t, x_t, (size_t)m->d * sizeof(float));
}

static void id_destroy(sf_mixer *m) { (void)m; }

static const sf_mixer_ops id_ops = {id_declare,      id_init, id_forward, id_backward,
                                    id_state_floats, id_step, id_destroy, NULL};

static sf_mixer *id_create(const sf_mixer_args *a) { return sf_mixer_wrap(&id_ops, a->d_model, NULL); }

const sf_mixer_def sf_mixer_identity = {
    .info = {"identity", "y = x (no parameters)", NULL, 0},
    .slots = SF_SLOT_TOKEN | SF_SLOT_CHANNEL,
    .takes_positions = 1, /* and ignores them */
    .create = id_create,
};
