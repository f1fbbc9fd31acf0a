/* Token embedding: y[n] = W[ids[n]] for integer token ids in [0, vocab). The backward pass
 * scatters: dW[ids[n]] += dy[n] (rows of repeated ids accumulate), and there is no input
 * gradient. Name: <name>.weight [vocab, d] (nn.Embedding), init N(0, 1) as PyTorch's. */
#ifndef SF_LAYERS_EMBEDDING_H
#define SF_LAYERS_EMBEDDING_H

#include <stdint.h>

#include "core/params.h"
#include "core/rng.h"

typedef struct {
    int vocab, d;
    float *w, *dw;
} sf_embedding;

void sf_embedding_declare(sf_embedding *e, sf_params *ps, const char *name, int vocab, int d);
void sf_embedding_init(sf_embedding *e, sf_rng *rng);
/* ids outside [0, vocab) are a programmer error (data loaders validate them): assert. */
void sf_embedding_forward(const sf_embedding *e, float *y, const int32_t *ids, long N);
/* Serial over tokens so repeated ids accumulate in a fixed order (deterministic). */
void sf_embedding_backward(sf_embedding *e, const float *dy, const int32_t *ids, long N);

#endif
