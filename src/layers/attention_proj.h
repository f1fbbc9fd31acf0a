/* The input and output projections every attention-style token mixer shares:
 *   qkv = x Wqkv^T + b  [N, 3d]  (q | k | v, heads interleaved as view(B, T, H, d/H))
 *   y   = a Wout^T + b  [N, d]
 * Names: <prefix>.qkv.{weight,bias} [3d, d], <prefix>.out.{weight,bias} [d, d]. Keeping them in one
 * place keeps the mixers' parameter names interchangeable. */
#ifndef SF_LAYERS_ATTENTION_PROJ_H
#define SF_LAYERS_ATTENTION_PROJ_H

#include "layers/layer.h"
#include "layers/linear.h"

typedef struct {
    sf_linear qkv, out;
} sf_attention_proj;

void sf_attention_proj_declare(sf_attention_proj *p, sf_params *ps, const char *prefix, int d);
void sf_attention_proj_init(sf_attention_proj *p, sf_rng *rng);

/* The options every multi-head attention mixer takes: n_heads, causal. SF_ATTENTION_OPTION_ROWS
 * are the same two rows, for a mixer whose own table starts with them. */
#define SF_ATTENTION_N_OPTIONS 2
#define SF_ATTENTION_OPTION_ROWS                                                           \
    {"n_heads", SF_OPT_INT, 4, NULL, 1, 4096, NULL, "attention heads (must divide d_model)"}, \
    {"causal", SF_OPT_BOOL, 0, NULL, 0, 1, NULL, "token t sees only tokens <= t"}
extern const sf_option sf_attention_options[SF_ATTENTION_N_OPTIONS];
/* Reads n_heads and causal from a normalised options object; SF_ERR (message naming the option) when n_heads does not divide d or gives heads wider than max_dh. */
int sf_attention_heads(const sf_mixer_args *a, int max_dh, int *H, int *Dh, int *causal);

#endif
