/* The layer contract (docs/DESIGN.md §2).
 *
 * Every token mixer (attention, linear attention, later SSMs and RNNs) and every channel mixer
 * (MLP, later GLU, lookup tables) is an sf_mixer: a vtable plus its own typed struct. All act on
 * activations laid out [B, T, d] (B sequences of T tokens, d features, row-major), so a block
 * can hold any of them:
 *   declare  - register parameters (PyTorch-style names under `prefix`) with sf_params, and
 *              reserve the bytes of its per-call record (sf_params_reserve_saved)
 *   init     - fill parameters from an explicit RNG
 *   forward  - y = f(x); pushes what backward needs onto ctx->arena and keeps the pointers in its
 *              record in ctx->saved (SF_SAVED), never in the layer struct
 *   backward - dx = df/dx^T dy (overwrites dx); *accumulates* parameter gradients
 *   step     - streaming: one token at position t; the caller owns `state` (state_floats() floats,
 *              in and out may alias), so many streams can share one model (rwkv.cpp style);
 *              temporaries come from core/scratch.h, never malloc (streaming allocates nothing
 *              per token: tests/test_stream.c counts)
 * Forward and backward also run in the arena's planning pass, where they must only push.
 *
 * The layer structs hold only configuration and parameter pointers: everything that belongs to
 * one call (activations, saved pointers, batch statistics) lives in the caller's sf_ctx, so two
 * threads with two contexts can run inference on one model at the same time.
 *
 * Adding a mixer is one file that defines an sf_mixer_def (name, doc, options, slots, create)
 * plus one line in the table in layers/mixer.c. */
#ifndef SF_LAYERS_LAYER_H
#define SF_LAYERS_LAYER_H

#include <stddef.h>
#include <stdint.h>

#include "config/options.h"
#include "core/arena.h"
#include "core/params.h"
#include "core/rng.h"

typedef struct {
    sf_arena *arena;
    sf_rng *rng;        /* dropout stream; used only when training */
    int training;       /* 1: dropout active, batch statistics */
    int keep;           /* 1: keep what backward needs (training, or eval-mode gradients such as
                         * input attributions); 0: a model may free activations as it goes */
    int B, T;           /* sequences in the batch, tokens per sequence */
    const int *lens;    /* [B] valid tokens of each sequence (the rest is padding), or NULL */
    int pos_offset;     /* position of token 0 (streaming continuation) */
    unsigned char *saved; /* the layers' per-call records (sf_params.saved_bytes bytes) */
    struct sf_newton_tally *newton; /* ParaRNN mixers add each Newton solve's statistics here
                                     * (kernels/pararnn.h); NULL: nobody collects them */
} sf_ctx;

/* A layer's record in the context: `slot` is what sf_params_reserve_saved returned. */
#define SF_SAVED(ctx, slot, type) ((type *)(void *)((ctx)->saved + (slot)))

typedef struct sf_mixer sf_mixer;

typedef struct {
    void (*declare)(sf_mixer *m, sf_params *ps, const char *prefix);
    void (*init)(sf_mixer *m, sf_rng *rng);
    void (*forward)(sf_mixer *m, sf_ctx *ctx, const float *x, float *y);
    void (*backward)(sf_mixer *m, sf_ctx *ctx, const float *dy, float *dx);
    /* Floats of streaming state (0: stateless per token). Mixers whose state grows with the
     * sequence (softmax attention's KV cache) size it for max_T tokens. */
    size_t (*state_floats)(const sf_mixer *m);
    void (*step)(const sf_mixer *m, const float *x_t, const float *state_in, float *state_out,
                 float *y_t, int t);
    void (*destroy)(sf_mixer *m);
    /* Forward FLOPs for one sequence of T tokens (a multiply-add counts 2). */
    double (*flops)(const sf_mixer *m, int T);
} sf_mixer_ops;

struct sf_mixer {
    const sf_mixer_ops *ops;
    const struct sf_mixer_def *def;
    int d;       /* width of x and y */
    size_t slot;  /* offset of its record in sf_ctx.saved */
    int can_step; /* 1: step() streams (a bidirectional attention cannot) */
    int can_pad;  /* 1: forward honours ctx->lens (padded batches); 0: it asserts no padding */
    void *self;
};

/* What a mixer is built from: the width, the longest sequence a streaming state must hold, and
 * its normalised options object (read with sf_opt_int & co.). */
typedef struct {
    int d_model;
    int max_T;
    const cJSON *opts;
    /* The model's normalised positions object when its kind acts inside attention (rope, t5;
     * layers/positions.h), else NULL. */
    const cJSON *positions;
} sf_mixer_args;

enum { SF_SLOT_TOKEN = 1, SF_SLOT_CHANNEL = 2 };

typedef struct sf_mixer_def {
    sf_part_info info;
    unsigned slots; /* SF_SLOT_TOKEN and/or SF_SLOT_CHANNEL: where it may stand */
    /* 1: a token mixer that takes positions acting inside attention (sf_mixer_args.positions:
     * rope, t5) or may ignore them (identity); a token mixer without it refuses them. */
    int takes_positions;
    /* NULL with an error message (naming the option) when the options do not fit d_model. */
    sf_mixer *(*create)(const sf_mixer_args *a);
} sf_mixer_def;

/* The mixer registry (layers/mixer.c). */
extern const sf_mixer_def *const sf_mixer_registry[];
extern const int sf_mixer_registry_n;
const sf_mixer_def *sf_mixer_find(const char *name);

sf_mixer *sf_mixer_create(const sf_mixer_def *def, const sf_mixer_args *a);
void sf_mixer_destroy(sf_mixer *m);
/* Allocates the sf_mixer around a mixer's own struct (for create functions). */
sf_mixer *sf_mixer_wrap(const sf_mixer_ops *ops, int d, void *self);

#endif
