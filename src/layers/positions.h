/* Positions added to token embeddings: "learned" (a [N, d] parameter, init U(-0.02, 0.02)),
 * "sinusoidal" (the fixed table pe[p, 2i] = sin(p / 10000^(2i/d)), pe[p, 2i+1] = cos(...),
 * computed in double; needs an even d) or "none". Position p of a batch row is
 * ctx->pos_offset + t, so a stream continued at an offset gets the positions it would have had
 * in one long pass. Name: <name> ("pos_embed") for learned. */
#ifndef SF_LAYERS_POSITIONS_H
#define SF_LAYERS_POSITIONS_H

#include "layers/layer.h"

typedef enum { SF_POS_LEARNED, SF_POS_SINUSOIDAL, SF_POS_NONE } sf_pos_kind;

extern const sf_part_info sf_positions_registry[3]; /* indexed by sf_pos_kind */

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
