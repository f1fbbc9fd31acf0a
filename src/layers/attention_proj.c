#include "layers/attention_proj.h"

#include <stdio.h>

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
