#include "layers/attention_proj.h"

#include <stdio.h>

#include "core/error.h"

void sf_attention_proj_declare(sf_attention_proj *p, sf_params *ps, const char *prefix, int d) {
    char buf[SF_PARAM_NAME_MAX];
    snprintf(buf, sizeof buf, "%s.qkv", prefix);
    sf_linear_declare(&p->qkv, ps, buf, d, 3 * d, 1);
    snprintf(buf, sizeof buf, "%s.out", prefix);
    sf_linear_declare(&p->out, ps, buf, d, d, 1);
}

void sf_attention_proj_init(sf_attention_proj *p, sf_rng *rng) {
    sf_linear_init(&p->qkv, rng);
    sf_linear_init(&p->out, rng);
}

const sf_option sf_attention_options[SF_ATTENTION_N_OPTIONS] = {SF_ATTENTION_OPTION_ROWS};

int sf_attention_heads(const sf_mixer_args *a, int max_dh, int *H, int *Dh,
                       int *causal) {
    *H = sf_opt_int(a->opts, "n_heads");
    *causal = sf_opt_bool(a->opts, "causal");
    if (a->d_model % *H != 0)
        return sf_errorf("n_heads: %d does not divide d_model %d", *H, a->d_model);
    *Dh = a->d_model / *H;
    if (*Dh > max_dh)
        return sf_errorf("n_heads: head size d_model/n_heads = %d exceeds %d", *Dh, max_dh);
    return SF_OK;
}
