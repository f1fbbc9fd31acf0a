/* The layer contract (DESIGN.md §2).
 *
 * Every token mixer (attention, linear attention, later SSMs and RNNs) and every channel mixer
 * (MLP, later GLU, lookup tables) is an sf_mixer: a vtable plus its own typed struct. All act on
 * activations laid out [B, T, d] (B sequences of T tokens, d features, row-major), so a MetaFormer
 * block can hold any of them:
 *   declare  - register parameters (PyTorch-style names under `prefix`) with sf_params
 *   init     - fill parameters from an explicit RNG
 *   forward  - y = f(x); pushes what backward needs onto ctx->arena and remembers the pointers
 *   backward - dx = df/dx^T dy (overwrites dx); *accumulates* parameter gradients
 *   step     - streaming: one token at position t; the caller owns `state` (state_floats() floats,
 *              in and out may alias), so many streams can share one model (rwkv.cpp style)
 * Forward and backward also run in the arena's planning pass, where they must only push. */
#ifndef SF_LAYERS_LAYER_H
#define SF_LAYERS_LAYER_H

#include <stddef.h>

#include "core/arena.h"
#include "core/params.h"
#include "core/rng.h"

typedef struct {
    sf_arena *arena;
    sf_rng *rng;  /* dropout stream; used only when training */
    int training; /* 1: dropout active */
    int B, T;     /* sequences in the batch, tokens per sequence */
} sf_ctx;

typedef struct sf_mixer sf_mixer;

typedef struct {
    const char *kind;
    void (*declare)(sf_mixer *m, sf_params *ps, const char *prefix);
    void (*init)(sf_mixer *m, sf_rng *rng);
    void (*forward)(sf_mixer *m, sf_ctx *ctx, const float *x, float *y);
    void (*backward)(sf_mixer *m, sf_ctx *ctx, const float *dy, float *dx);
    /* Floats of streaming state (0: stateless per token). Mixers whose state grows with the
     * sequence (softmax attention's KV cache) size it for sf_mixer_opts.max_T tokens. */
    size_t (*state_floats)(const sf_mixer *m);
    void (*step)(const sf_mixer *m, const float *x_t, const float *state_in, float *state_out,
                 float *y_t, int t);
    void (*destroy)(sf_mixer *m);
} sf_mixer_ops;

struct sf_mixer {
    const sf_mixer_ops *ops;
    int d; /* width of x and y */
    void *self;
};

/* Options a mixer may read; each mixer documents which ones it uses. */
typedef struct {
    int d_model, n_heads, d_ff;
    int causal;
    float dropout;
    int max_T; /* longest sequence a streaming state must hold */
} sf_mixer_opts;

/* Factory: kind is "softmax", "linear" (token mixers) or "mlp" (channel mixer).
 * Returns NULL (with an error message) for an unknown kind or invalid options. */
sf_mixer *sf_mixer_create(const char *kind, const sf_mixer_opts *o);
void sf_mixer_destroy(sf_mixer *m);

#endif
