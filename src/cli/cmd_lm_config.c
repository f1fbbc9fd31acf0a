/* The lm config `seqformer train --model lm` builds from its flags: token input, positions,
 * e_layers pre-norm metaformer blocks of the chosen causal token mixer + MLP, final norm, lm head.
 * The mixer gets "causal": true and n_heads where it has those options. */
#include <string.h>

#include <cjson/cJSON.h>

#include "cli/common.h"
#include "layers/layer.h"

cJSON *cli_lm_config(int seq_len, int d_model, int n_heads, int e_layers, int d_ff, float dropout,
                     const char *mixer, const char *norm, const char *norm_place, const char *pos) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "task", "lm");
    cJSON_AddStringToObject(o, "model", "lm");
    cJSON_AddNumberToObject(o, "seq_len", seq_len);
    cJSON_AddNumberToObject(o, "d_model", d_model);
    cJSON_AddItemToObject(o, "dropout", sf_json_float(dropout));
    cJSON_AddStringToObject(cJSON_AddObjectToObject(o, "input"), "kind", "tokens");
    cJSON_AddStringToObject(cJSON_AddObjectToObject(o, "positions"), "kind", pos);
    cJSON *b = cJSON_CreateObject();
    cJSON_AddItemToArray(cJSON_AddArrayToObject(o, "blocks"), b);
    cJSON_AddStringToObject(b, "kind", "metaformer");
    cJSON_AddNumberToObject(b, "repeat", e_layers);
    cJSON_AddStringToObject(b, "placement", norm_place);
    cJSON_AddItemToObject(b, "dropout", sf_json_float(dropout));
    cJSON_AddStringToObject(cJSON_AddObjectToObject(b, "norm"), "kind", norm);
    cJSON *tok = cJSON_AddObjectToObject(b, "token_mixer");
    cJSON_AddStringToObject(tok, "kind", mixer);
    const sf_mixer_def *md = sf_mixer_find(mixer);
    if (md && sf_part_has_option(&md->info, "n_heads"))
        cJSON_AddNumberToObject(tok, "n_heads", n_heads);
    if (md && sf_part_has_option(&md->info, "causal")) cJSON_AddBoolToObject(tok, "causal", 1);
    cJSON *ch = cJSON_AddObjectToObject(b, "channel_mixer");
    cJSON_AddStringToObject(ch, "kind", "mlp");
    cJSON_AddNumberToObject(ch, "d_ff", d_ff);
    cJSON_AddItemToObject(ch, "dropout", sf_json_float(dropout));
    cJSON_AddStringToObject(cJSON_AddObjectToObject(o, "head"), "kind", "lm");
    return o;
}
