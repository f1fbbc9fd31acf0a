/* Positions added to token embeddings: "learned" (a [N, d] parameter, init U(-0.02, 0.02)),
 * "sinusoidal" (the fixed table pe[p, 2i] = sin(p / 10000^(2i/d)), pe[p, 2i+1] = cos(...),
 * computed in double; needs an even d) or "none".
 * "rope" (rotary, Su et al.) and "t5" (T5's bucketed relative bias) add nothing to the tokens:
 * they act inside softmax attention (layers/softmax_attention.c reads them from its
 * sf_mixer_args.positions), so a model passes its positions object to its block stack
 * (sf_block_stack_create_pos); any other token mixer is refused with them. Position p of a batch row is
 * ctx->pos_offset + t, so a stream continued at an offset gets the positions it would have had
 * in one long pass. Name: <name> ("pos_embed") for learned.
 * "time" (irregular series): the sinusoidal formula with the step index replaced by an
 * observation time read from an input channel (layers/time_encoding.h); only models that read
 * times take it (t2), sf_positions_create refuses it. */
#ifndef SF_LAYERS_POSITIONS_H
#define SF_LAYERS_POSITIONS_H

#include "layers/layer.h"

typedef enum { SF_POS_LEARNED, SF_POS_SINUSOIDAL, SF_POS_NONE, SF_POS_ROPE, SF_POS_T5, SF_POS_TIME } sf_pos_kind;
#define SF_POSITIONS_N 6

extern const sf_part_info sf_positions_registry[SF_POSITIONS_N]; /* indexed by sf_pos_kind */
/* 1 for the kinds that act inside attention (rope, t5) rather than on the tokens. */
int sf_positions_in_attention(const char *kind);

typedef struct {
    sf_pos_kind kind;
    int n, d;          /* positions available, width */
    float *w, *dw;     /* learned [n, d] */
    float *table;      /* sinusoidal [n, d] (owned) */
} sf_positions;

/* SF_ERR naming the field when the kind does not fit (sinusoidal with odd d). */
int sf_positions_create(sf_positions *p, const char *kind, int n, int d);
void sf_positions_declare(sf_positions *p, sf_params *ps, const char *name);
void sf_positions_init(sf_positions *p, sf_rng *rng);
void sf_positions_destroy(sf_positions *p);
/* x [B, T, d] += positions ctx->pos_offset .. + T-1 (T + pos_offset <= n). */
void sf_positions_forward(const sf_positions *p, const sf_ctx *ctx, float *x);
/* Learned: dw += sum over the batch of dx rows. */
void sf_positions_backward(sf_positions *p, const sf_ctx *ctx, const float *dx);

#endif
