/* t2 interpretability: the softmax attention weights of every head of every block for one
 * series (as t2's attention maps), from the exact forward the model runs. */
#ifndef SF_MODELS_T2_H
#define SF_MODELS_T2_H

#include "models/model.h"

typedef struct {
    int T;         /* the model's seq_len: each map is [T, T] (query row, key column) */
    int len;       /* the series' valid steps: rows and columns >= len are 0 */
    int n_maps;    /* one per (softmax block mixer, head) */
    int *block;    /* [n_maps] block index (repeats expanded) */
    int *head;     /* [n_maps] head index */
    float *p;      /* [n_maps, T, T] attention weights; each valid row sums to 1 */
} sf_attention_maps;

/* x: one example as the model reads it (seq_len * C values, then the valid length). SF_ERR
 * (naming why) when the model is not t2 or none of its blocks has a softmax token mixer. */
int sf_t2_attention_maps(sf_model *m, const float *x, sf_attention_maps *out);
void sf_attention_maps_free(sf_attention_maps *a);

#endif
