/* seqformer train: a model config (from --config model.json, or built from the shorthand flags)
 * + training options -> DIR/{model.safetensors, metrics.json, train_log.csv, loss.svg,
 * train_state.safetensors}. Time-Series-Library's flag names are accepted too, so a user can
 * paste a TSLib / PatchTST script line (see the README). */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "cli/common.h"
#include "core/error.h"
#include "core/fileio.h"
#include "data/time_features.h"
#include "layers/norm.h"
#include "layers/positions.h"
#include "train/trainer.h"
#include "util/progress.h"

/* TSLib model names ("PatchTST", "DLinear", "iTransformer") are ours in lower case. */
static const char *model_name(const char *s) {
    if (!strcasecmp(s, "patchtst")) return "patchtst";
    if (!strcasecmp(s, "dlinear")) return "dlinear";
    if (!strcasecmp(s, "itransformer")) return "itransformer";
    if (!strcasecmp(s, "informer")) return "informer";
    if (!strcasecmp(s, "lm")) return "lm";
    if (!strcasecmp(s, "t2")) return "t2";
    return s;
}

/* TSLib's --data names the dataset class: ETTh1/ETTh2 -> hourly ETT split, ETTm1/ETTm2 ->
 * minute, custom -> 70/10/20. */
static int tslib_split(const char *data, const char **split) {
    if (!strncmp(data, "ETTh", 4)) *split = "ett-hour";
    else if (!strncmp(data, "ETTm", 4)) *split = "ett-minute";
    else if (!strcmp(data, "custom")) *split = "custom";
    else return sf_errorf("train: --data '%s' with --root_path/--data_path names the split: "
                          "ETTh1, ETTh2, ETTm1, ETTm2 or custom", data);
    return SF_OK;
}

static int read_config(const char *path, cJSON **raw) {
    void *text;
    size_t n;
    if (sf_read_file(path, &text, &n)) return SF_ERR;
    (void)n; /* sf_read_file NUL-terminates */
    int rc = sf_json_parse(text, path, raw);
    free(text);
    return rc;
}

static void print_metrics(const sf_metrics *mt) {
    printf("{");
    for (int i = 0; i < mt->n; i++) printf("%s\"%s\":%.6f", i ? "," : "", mt->name[i], mt->value[i]);
    printf("}");
}

/* Informer's config from the flags that were given (its options' defaults fill the rest). */
static cJSON *informer_config(const arg_spec *specs, int ns, const sf_flat_config *c, int label_len,
                              int d_layers, int factor, int distil, int mix, const char *freq,
                              const char *embed, const char *attn, const char *activation,
                              int enc_in) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "model", "informer");
    const struct {
        const char *flag, *key;
        int value;
    } ints[] = {{"seq-len", "seq_len", c->seq_len},   {"pred-len", "pred_len", c->pred_len},
                {"label-len", "label_len", label_len}, {"d-model", "d_model", c->d_model},
                {"n-heads", "n_heads", c->n_heads},   {"e-layers", "e_layers", c->e_layers},
                {"d-layers", "d_layers", d_layers},   {"d-ff", "d_ff", c->d_ff},
                {"factor", "factor", factor}};
    for (size_t i = 0; i < sizeof ints / sizeof *ints; i++)
        if (args_seen(specs, ns, ints[i].flag)) cJSON_AddNumberToObject(o, ints[i].key, ints[i].value);
    if (enc_in) cJSON_AddNumberToObject(o, "n_channels", enc_in);
    if (args_seen(specs, ns, "dropout")) cJSON_AddItemToObject(o, "dropout", sf_json_float(c->dropout));
    if (args_seen(specs, ns, "attn")) cJSON_AddStringToObject(o, "attn", attn);
    if (args_seen(specs, ns, "activation")) cJSON_AddStringToObject(o, "activation", activation);
    if (args_seen(specs, ns, "distil")) cJSON_AddBoolToObject(o, "distil", distil);
    if (args_seen(specs, ns, "mix")) cJSON_AddBoolToObject(o, "mix", mix);
    if (args_seen(specs, ns, "freq")) cJSON_AddStringToObject(o, "freq", freq);
    if (args_seen(specs, ns, "embed")) cJSON_AddStringToObject(o, "embed", embed);
    return o;
}

/* t2 from the flags that were given; the rest are t2's defaults (astronet t2: d_model 32, 16
 * heads, d_ff 128, 1 layer, dropout 0.1, post-LayerNorm eps 1e-6, ReLU feed-forward, sinusoidal
 * positions). */
static cJSON *t2_config(const arg_spec *specs, int ns, const sf_flat_config *c, const char *mixer,
                        const char *norm, const char *norm_place, const char *pos) {
    int seen_dropout = args_seen(specs, ns, "dropout");
    float dropout = seen_dropout ? c->dropout : 0.1f;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "task", "classify");
    cJSON_AddStringToObject(o, "model", "t2");
    cJSON_AddNumberToObject(o, "d_model", args_seen(specs, ns, "d-model") ? c->d_model : 32);
    cJSON *in = cJSON_AddObjectToObject(o, "input");
    if (args_seen(specs, ns, "patch-len")) { /* windows of steps instead of t2's single steps */
        cJSON_AddStringToObject(in, "kind", "conv_patches");
        cJSON_AddNumberToObject(in, "patch_len", c->patch_len);
        cJSON_AddNumberToObject(in, "stride", args_seen(specs, ns, "stride") ? c->stride
                                                                            : (c->patch_len + 1) / 2);
    } else {
        cJSON_AddStringToObject(in, "kind", "pointwise");
    }
    cJSON_AddStringToObject(cJSON_AddObjectToObject(o, "positions"), "kind",
                            args_seen(specs, ns, "pos") ? pos : "sinusoidal");
    cJSON *b = cJSON_CreateObject();
    cJSON_AddItemToArray(cJSON_AddArrayToObject(o, "blocks"), b);
    cJSON_AddStringToObject(b, "kind", "metaformer");
    cJSON_AddNumberToObject(b, "repeat", args_seen(specs, ns, "e-layers") ? c->e_layers : 1);
    cJSON_AddStringToObject(b, "placement", args_seen(specs, ns, "norm-place") ? norm_place : "post");
    cJSON_AddItemToObject(b, "dropout", sf_json_float(dropout));
    cJSON *nm = cJSON_AddObjectToObject(b, "norm");
    const char *nk = args_seen(specs, ns, "norm") ? norm : "layernorm";
    cJSON_AddStringToObject(nm, "kind", nk);
    if (strcmp(nk, "batchnorm") != 0) cJSON_AddItemToObject(nm, "eps", sf_json_float(1e-6f));
    cJSON *tok = cJSON_AddObjectToObject(b, "token_mixer");
    cJSON_AddStringToObject(tok, "kind", mixer);
    const sf_mixer_def *md = sf_mixer_find(mixer);
    if (md && sf_part_has_option(&md->info, "n_heads")) /* t2's 16 heads, for any mixer with heads */
        cJSON_AddNumberToObject(tok, "n_heads", args_seen(specs, ns, "n-heads") ? c->n_heads : 16);
    cJSON *ch = cJSON_AddObjectToObject(b, "channel_mixer");
    cJSON_AddStringToObject(ch, "kind", "mlp");
    cJSON_AddNumberToObject(ch, "d_ff", args_seen(specs, ns, "d-ff") ? c->d_ff : 128);
    cJSON_AddStringToObject(ch, "activation", "relu");
    cJSON *head = cJSON_AddObjectToObject(o, "head");
    cJSON_AddStringToObject(head, "kind", "pool_classify");
    cJSON_AddItemToObject(head, "dropout",
                          sf_json_float(args_seen(specs, ns, "head-dropout") ? c->head_dropout
                                                                             : dropout));
    return o;
}

/* --pos time's options from --time-channel / --time-scale (t2 on irregular observations). */
static int t2_time_flags(cJSON *cfg, const arg_spec *specs, int ns, int time_channel,
                         float time_scale) {
    int ch = args_seen(specs, ns, "time-channel"), sc = args_seen(specs, ns, "time-scale");
    if (!ch && !sc) return SF_OK;
    cJSON *pos = cJSON_GetObjectItemCaseSensitive(cfg, "positions");
    if (strcmp(sf_opt_str(pos, "kind"), "time") != 0)
        return sf_errorf("--time-channel / --time-scale: they set --pos time's options; give --pos time");
    if (ch) cJSON_AddNumberToObject(pos, "channel", time_channel);
    if (sc) cJSON_AddItemToObject(pos, "scale", sf_json_float(time_scale));
    return SF_OK;
}

/* --mixer-options '{"d_state": 32}': options merged into the token mixer of every block of a config
 * built from the flags (normalised, so every default is there; they overwrite them), then the
 * whole config is normalised again, which checks them against the mixer's own options. */
static int apply_mixer_options(cJSON **cfg, const char *json) {
    cJSON *opts = NULL;
    if (sf_json_parse(json, "--mixer-options", &opts)) return SF_ERR;
    int rc = SF_OK, n = 0;
    if (!cJSON_IsObject(opts)) {
        rc = sf_errorf("--mixer-options: expected a JSON object of token-mixer options, such as "
                       "'{\"d_state\": 32}'");
        goto done;
    }
    if (cJSON_GetObjectItemCaseSensitive(opts, "kind")) {
        rc = sf_errorf("--mixer-options: 'kind' is chosen with --mixer");
        goto done;
    }
    cJSON *blocks = cJSON_GetObjectItemCaseSensitive(*cfg, "blocks");
    for (cJSON *b = blocks ? blocks->child : NULL; b; b = b->next) {
        cJSON *tok = cJSON_GetObjectItemCaseSensitive(b, "token_mixer");
        if (!tok) tok = cJSON_GetObjectItemCaseSensitive(b, "mixer");
        if (!tok) continue;
        for (const cJSON *kv = opts->child; kv; kv = kv->next) {
            cJSON_DeleteItemFromObjectCaseSensitive(tok, kv->string);
            cJSON_AddItemToObject(tok, kv->string, cJSON_Duplicate(kv, 1));
        }
        n++;
    }
    if (!n) {
        rc = sf_errorf("--mixer-options: the %s model has no token-mixer blocks",
                       sf_opt_str(*cfg, "model"));
        goto done;
    }
    cJSON *again = NULL;
    if ((rc = sf_config_normalize(*cfg, &again)) == SF_OK) {
        cJSON_Delete(*cfg);
        *cfg = again;
    } else {
        sf_error_prefix("--mixer-options");
    }
done:
    cJSON_Delete(opts);
    return rc;
}

/* Training defaults of --task classify: Adam at a constant 1e-3 (Keras' default, which t2 uses),
 * batch 16 (the UCR training files have 20..600 series; Fawaz et al. use min(n/10, 16)), up to
 * 300 epochs with patience 50 on the validation log-loss, no warm-up. */
static void classify_train_defaults(sf_train_opts *o) {
    o->lr = 1e-3f;
    o->batch_size = 16;
    o->epochs = 300;
    o->patience = 50;
    o->warmup_epochs = 0;
    o->min_delta = 0;
    snprintf(o->lradj, sizeof o->lradj, "%s", "constant");
}

/* --batch-size 0 (min(n/10, 16), at least 1, of the n training series: Fawaz et al.'s UCR batch)
 * and --train-steps (a fixed number of optimiser steps, whatever the training file's size), now
 * that the task knows n. */
static int classify_budget(const sf_task *t, sf_train_opts *o, int train_steps) {
    int n = t->ops->n_examples(t, SF_TRAIN);
    if (o->batch_size == 0) {
        if (t->def != &sf_task_classify)
            return sf_errorf("train: --batch-size 0 (min(n/10, 16)) is for --task classify");
        o->batch_size = n / 10 < 16 ? (n / 10 > 0 ? n / 10 : 1) : 16;
        if (o->eval_batch_size < o->batch_size) o->eval_batch_size = o->batch_size;
    }
    if (train_steps > 0) {
        if (t->def != &sf_task_classify)
            return sf_errorf("train: --train-steps is for --task classify");
        int per_epoch = n / (o->batch_size < n ? o->batch_size : n);
        o->epochs = (train_steps + per_epoch - 1) / per_epoch;
    }
    return SF_OK;
}

/* Flags that shape the model: with --config they would be ignored, so they are refused. */
static const char *const model_flags[] = {"model", "seq-len", "pred-len", "mixer", "causal", "norm",
                                          "norm-place", "pos", "d-model", "n-heads", "e-layers",
                                          "d-ff", "dropout", "head-dropout", "patch-len",
                                          "stride", "revin", "use-norm", "kernel-size", "moving-avg",
                                          "attn", "activation", "distil", "mix", "time-channel",
                                          "time-scale", "mixer-options", NULL};

/* Named recipes: flags put before the command line's own (later flags win, so any of them can be
 * overridden). ucr: t2 for short univariate UCR sets (README, "Time-series classification"; chosen
 * by probes on the hardest sets): windows of 16 steps every 8 instead of single steps, a wider and
 * deeper encoder, and Fawaz et al.'s ResNet protocol — the whole training file, batch min(n/10,
 * 16), a fixed budget of optimiser steps (cosine decay), the weights of the lowest training loss,
 * no early stopping — plus scale/shift/noise augmentation of strength 0.2. ucr-mamba: the same with
 * pre-norm Mamba blocks (issue #13's mixer) on windows every 4 steps and mixup 0.4, the best single
 * model of the probes (README, bench/results/ucr_variants.jsonl). */
static const struct {
    const char *name;
    const char *const flags[32];
} recipes[] = {
    {"ucr", {"--task", "classify", "--patch-len", "16", "--stride", "8", "--d-model", "64",
             "--n-heads", "8", "--e-layers", "2", "--val-fraction", "0", "--batch-size", "0",
             "--train-steps", "4000", "--lradj", "cosine", "--patience", "100000", "--augment",
             "0.2", NULL}},
    /* a recipe may start with another: cmd_train expands the "--recipe ucr" in turn */
    {"ucr-mamba", {"--recipe", "ucr", "--stride", "4", "--mixer", "mamba", "--norm-place", "pre",
                   "--mixup", "0.4", NULL}},
};

static int train_with_recipe(int argc, char **argv, int at) {
    const char *name = at + 1 < argc ? argv[at + 1] : "";
    for (size_t r = 0; r < sizeof recipes / sizeof *recipes; r++) {
        if (strcmp(recipes[r].name, name) != 0) continue;
        int nf = 0;
        while (recipes[r].flags[nf]) nf++;
        char **v = sf_malloc((size_t)(nf + argc) * sizeof(char *));
        int n = 0;
        for (int i = 0; i < nf; i++) v[n++] = (char *)recipes[r].flags[i];
        for (int i = 0; i < argc; i++)
            if (i != at && i != at + 1) v[n++] = argv[i];
        int rc = cmd_train(n, v);
        free(v);
        return rc;
    }
    sf_errorf("train: --recipe '%s': the recipes are: ucr, ucr-mamba", name);
    return cli_fail(2);
}

int cmd_train(int argc, char **argv) {
    for (int i = 0; i < argc; i++)
        if (!strcmp(argv[i], "--recipe")) return train_with_recipe(argc, argv, i);
    /* The model decides several defaults, so find --model (or the --config file's model) first. */
    const char *model = "patchtst", *config_arg = NULL;
    int classify = 0; /* --task classify: the model defaults to t2, with its training defaults */
    for (int i = 0; i + 1 < argc; i++)
        if (!strcmp(argv[i], "--task") && !strcmp(argv[i + 1], "classify")) classify = 1, model = "t2";
    for (int i = 0; i < argc; i++)
        if (!strcmp(argv[i], "--task=classify")) classify = 1, model = "t2";
    for (int i = 0; i + 1 < argc; i++)
        if (!strcmp(argv[i], "--model")) model = model_name(argv[i + 1]);
        else if (!strcmp(argv[i], "--config")) config_arg = argv[i + 1];
    for (int i = 0; i < argc; i++)
        if (!strncmp(argv[i], "--model=", 8)) model = model_name(argv[i] + 8);
        else if (!strncmp(argv[i], "--config=", 9)) config_arg = argv[i] + 9;
    cJSON *raw = NULL, *cfg = NULL;
    if (config_arg) {
        if (read_config(config_arg, &raw)) return cli_fail(2);
        const cJSON *mk = cJSON_GetObjectItemCaseSensitive(raw, "model");
        if (cJSON_IsString(mk)) model = mk->valuestring;
    }
    sf_flat_config c;
    int is_it = strcmp(model, "itransformer") == 0;
    sf_flat_config_defaults(&c, strcmp(model, "dlinear") == 0 ? "dlinear" : is_it ? model : "patchtst");
    sf_train_opts o;
    int is_lm = strcmp(model, "lm") == 0;
    sf_train_opts_defaults(&o, strcmp(model, "informer") == 0 ? "informer" : is_lm ? "lm" : c.model);
    if (classify) classify_train_defaults(&o);
    const char *test = NULL, *normalize = "channel", *class_weights = "none";
    float val_fraction = 0.2f;
    int train_steps = 0; /* classify: a budget of optimiser steps rather than epochs */
    float augment = 0; /* classify: training-series augmentation strength */
    float mixup = 0;   /* classify: mixup's Beta parameter */
    const char *recipe = NULL; /* consumed by train_with_recipe; listed for --help */
    const char *task = "forecast", *data = NULL, *target = "OT", *features = "M", *split = NULL,
               *out = NULL, *progress = "auto", *budget_clock = "cpu", *lradj = NULL, *config_path = NULL,
               *optimizer = NULL;
    const char *mixer = "softmax", *norm = is_it ? "layernorm" : "batchnorm", *norm_place = "post",
               *pos = is_it ? "none" : "learned", *mixer_options = NULL;
    const char *root_path = NULL, *data_path = NULL, *model_id = NULL, *task_name = NULL;
    const char *ignored = NULL;
    const char *tokenizer = NULL; /* lm */
    int epoch_windows = 0;        /* lm */
    /* the choices of --mixer, --norm and --pos come from the registries, as the config reader's do */
    char token_mixers[256] = "", norms[128] = "", positions[128] = "";
    for (int i = 0, len = 0; i < sf_mixer_registry_n; i++)
        if (sf_mixer_registry[i]->slots & SF_SLOT_TOKEN)
            len += snprintf(token_mixers + len, sizeof token_mixers - (size_t)len, "%s%s",
                            len ? "|" : "", sf_mixer_registry[i]->info.name);
    for (int i = 0, len = 0; i < 3; i++)
        len += snprintf(norms + len, sizeof norms - (size_t)len, "%s%s", len ? "|" : "",
                        sf_norm_registry[i].name);
    for (int i = 0, len = 0; i < SF_POSITIONS_N; i++)
        len += snprintf(positions + len, sizeof positions - (size_t)len, "%s%s", len ? "|" : "",
                        sf_positions_registry[i].name);
    int seed = 2021, threads = 0, resume = 0, print_config = 0, enc_in = 0, is_training = 1;
    int itr = 1, individual = 0;
    int time_channel = 0; /* t2 --pos time */
    float time_scale = 1.0f;
    /* Informer's flags: only those given reach its config, so its own defaults hold otherwise */
    int label_len = 48, d_layers = 1, factor = 5, distil = 1, mix = 1;
    const char *freq = "h", *embed = "timeF", *attn = "prob", *activation = "gelu";
    arg_spec specs[] = {
        {"task", ARG_CHOICE, &task, 0, 0, "forecast|classify|lm", "task (lm: with --model lm)", 0},
        {"test", ARG_STRING, &test, 0, 0, NULL,
         "classify: test file (UCR .tsv / UEA .ts); lm: a separate test text (default: test = "
         "validation)", 0},
        {"tokenizer", ARG_CHOICE, &tokenizer, 0, 0, "char|byte",
         "lm: char (the bytes the text uses; default) or byte (all 256)", 0},
        {"normalize", ARG_CHOICE, &normalize, 0, 0, "channel|series|none",
         "classify: channel: per channel by the training split's mean/std; series: each series "
         "by its own; none", 0},
        {"class-weights", ARG_CHOICE, &class_weights, 0, 0, "none|balanced",
         "classify: balanced: weight each class's loss by n / (K n_k) (t2)", 0},
        {"val-fraction", ARG_FLOAT, &val_fraction, 0, 0.9, NULL,
         "classify: share of each class carved from the training file for validation (0: none; "
         "validation = the whole training file, so the kept weights are those of the lowest "
         "training loss)", 0},
        {"config", ARG_STRING, &config_path, 0, 0, NULL, "model config JSON (docs/config.md); replaces the model flags", 0},
        {"print-config", ARG_BOOL, &print_config, 0, 1, NULL, "print the model config these flags build and exit", 0},
        {"data", ARG_STRING, &data, 0, 0, NULL, "CSV file (date column + numeric columns; .gz ok); classify: training file (UCR .tsv / UEA .ts)", 0},
        {"target", ARG_STRING, &target, 0, 0, NULL, "target column", 0},
        {"features", ARG_CHOICE, &features, 0, 0, "M|S", "M: all channels, S: target only", 0},
        {"split", ARG_CHOICE, &split, 0, 0, "auto|ett-hour|ett-minute|custom",
         "train/val/test borders (auto: from the file name, as Time-Series-Library)", 0},
        {"seq-len", ARG_INT, &c.seq_len, 1, 100000, NULL, "input length", 0},
        {"pred-len", ARG_INT, &c.pred_len, 1, 100000, NULL, "forecast horizon", 0},
        {"model", ARG_STRING, &model, 0, 0, NULL,
         "model: patchtst, dlinear, itransformer, informer or lm (TSLib: PatchTST, DLinear, "
         "iTransformer, Informer)", 0},
        {"mixer", ARG_CHOICE, &mixer, 0, 0, token_mixers, "token mixer (seqformer list: its options)", 0},
        {"mixer-options", ARG_STRING, &mixer_options, 0, 0, NULL,
         "JSON object of token-mixer options for every block, e.g. '{\"d_state\": 32}' (seqformer list)", 0},
        {"causal", ARG_BOOL, &c.causal, 0, 1, NULL, "causal token mixing", 0},
        {"norm", ARG_CHOICE, &norm, 0, 0, norms, "normalisation", 0},
        {"norm-place", ARG_CHOICE, &norm_place, 0, 0, "post|pre", "norm placement", 0},
        {"pos", ARG_CHOICE, &pos, 0, 0, positions, "positions", 0},
        {"time-channel", ARG_INT, &time_channel, 0, 100000, NULL,
         "t2 --pos time: the input channel of observation times (default 0)", 0},
        {"time-scale", ARG_FLOAT, &time_scale, 1e-9, 1e9, NULL,
         "t2 --pos time: angle = scale * time * 10000^(-2i/d); shortest period 2 pi / scale (default 1)", 0},
        {"d-model", ARG_INT, &c.d_model, 1, 4096, NULL, "model width", 0},
        {"n-heads", ARG_INT, &c.n_heads, 1, 256, NULL, "attention heads", 0},
        {"e-layers", ARG_INT, &c.e_layers, 0, 64, NULL, "encoder blocks", 0},
        {"d-ff", ARG_INT, &c.d_ff, 1, 65536, NULL, "feed-forward width", 0},
        {"dropout", ARG_FLOAT, &c.dropout, 0, 0.99, NULL, "dropout", 0},
        {"head-dropout", ARG_FLOAT, &c.head_dropout, 0, 0.99, NULL, "head dropout", 0},
        {"patch-len", ARG_INT, &c.patch_len, 1, 100000, NULL, "patch length", 0},
        {"stride", ARG_INT, &c.stride, 1, 100000, NULL, "patch stride", 0},
        {"revin", ARG_BOOL, &c.revin, 0, 1, NULL, "reversible instance normalisation (0/1)", 0},
        {"use-norm", ARG_INT, &c.revin, 0, 1, NULL, "TSLib (iTransformer) name of --revin", 0},
        {"kernel-size", ARG_INT, &c.kernel_size, 1, 1001, NULL, "DLinear moving-average kernel", 0},
        {"moving-avg", ARG_INT, &c.kernel_size, 1, 1001, NULL, "TSLib name of --kernel-size", 0},
        {"batch-size", ARG_INT, &o.batch_size, 0, 65536, NULL,
         "training batch size (classify: 0 = min(n/10, 16) of the n training series, Fawaz et al.)", 0},
        {"eval-batch-size", ARG_INT, &o.eval_batch_size, 1, 65536, NULL,
         "windows per step of the validation and test passes, inferred in chunks of up to 8 per "
         "thread (default: the larger of 256 and the training batch; lm 32); only speed and the "
         "last bits of the metrics depend on it",
         0},
        {"lr", ARG_FLOAT, &o.lr, 1e-9, 10, NULL, "peak learning rate", 0},
        {"learning-rate", ARG_FLOAT, &o.lr, 1e-9, 10, NULL, "TSLib name of --lr", 0},
        {"lradj", ARG_CHOICE, &lradj, 0, 0, "type3|type1|cosine|constant",
         "schedule after warm-up (default: the model's: type3 for patchtst, type1 for dlinear, "
         "itransformer and informer; type1: lr for two epochs, then halved every epoch)", 0},
        {"warmup-epochs", ARG_INT, &o.warmup_epochs, 0, 1000, NULL, "linear warm-up epochs", 0},
        {"weight-decay", ARG_FLOAT, &o.weight_decay, 0, 10, NULL, "AdamW weight decay", 0},
        {"optimizer", ARG_CHOICE, &optimizer, 0, 0, "adamw|lazy_adamw",
         "lazy_adamw: lookup tables (lut mixer) update only the rows a step touched; untouched "
         "rows keep their moments (not dense AdamW)", 0},
        {"clip-grad", ARG_FLOAT, &o.clip_grad, 0, 1e9, NULL, "max global grad norm (0: off)", 0},
        {"ema", ARG_FLOAT, &o.ema, 0, 0.99999, NULL,
         "decay per step of a moving average of the weights, which is validated, kept and saved "
         "(e.g. 0.999; 0: off)", 0},
        {"epochs", ARG_INT, &o.epochs, 1, 100000, NULL, "max epochs", 0},
        {"augment", ARG_FLOAT, &augment, 0, 1, NULL,
         "classify: augment training series with strength F: x (1 + F g), shifted up to F len/2 "
         "steps, noise std F/4 (0: off)", 0},
        {"mixup", ARG_FLOAT, &mixup, 0, 100, NULL,
         "classify: mixup with Beta(A, A): train on lam x + (1-lam) x' with the classes mixed alike, "
         "x' another training series (e.g. 0.2; 0: off)", 0},
        {"recipe", ARG_CHOICE, &recipe, 0, 0, "ucr|ucr-mamba",
         "named set of flags put before the others (ucr: t2 for UCR sets; ucr-mamba: with "
         "pre-norm Mamba blocks and mixup; README)", 0},
        {"train-steps", ARG_INT, &train_steps, 0, 100000000, NULL,
         "classify: optimiser steps instead of --epochs (epochs = ceil(steps / steps per epoch); "
         "0: off)", 0},
        {"train-epochs", ARG_INT, &o.epochs, 1, 100000, NULL, "TSLib name of --epochs", 0},
        {"min-delta", ARG_FLOAT, &o.min_delta, 0, 1e9, NULL,
         "early stopping: least val improvement that counts", 0},
        {"patience", ARG_INT, &o.patience, 1, 100000, NULL, "early-stopping patience (epochs)", 0},
        {"seed", ARG_INT, &seed, 0, 2147483647, NULL, "random seed", 0},
        {"random-seed", ARG_INT, &seed, 0, 2147483647, NULL, "TSLib name of --seed", 0},
        {"threads", ARG_INT, &threads, 0, 1024, NULL, "threads (0: OpenMP default)", 0},
        {"out", ARG_STRING, &out, 0, 0, NULL, "output directory (default: runs/MODEL_ID)", 0},
        {"resume", ARG_BOOL, &resume, 0, 1, NULL, "continue from DIR/train_state.safetensors", 0},
        {"progress", ARG_CHOICE, &progress, 0, 0, "auto|tty|plain|quiet", "progress display", 0},
        {"time-budget", ARG_FLOAT, &o.time_budget, 0, 1e9, NULL,
         "stop at the first epoch end after this many seconds of process CPU time, keeping the "
         "best weights; logs DIR/cpu_log.csv (0: no budget)", 0},
        {"budget-clock", ARG_CHOICE, &budget_clock, 0, 0, "cpu|wall",
         "what --time-budget counts: process CPU seconds (fair on a shared machine) or wall "
         "seconds (an idle machine, all threads)", 0},
        {"epoch-windows", ARG_INT, &epoch_windows, 0, 100000000, NULL,
         "lm: training windows per epoch, i.e. the validation interval (0: the whole training "
         "text once)", 0},
        {"stop-after", ARG_INT, &o.stop_after, 0, 100000, NULL,
         "stop after N epochs of this run, keeping the state for --resume (0: never)", 0},
        {"skip-nonfinite", ARG_BOOL, &o.skip_nonfinite, 0, 1, NULL,
         "skip (and count) steps whose loss or gradient is NaN/Inf instead of stopping", 0},
        {"root-path", ARG_STRING, &root_path, 0, 0, NULL, "TSLib: data folder (with --data_path)", 0},
        {"data-path", ARG_STRING, &data_path, 0, 0, NULL, "TSLib: file in --root_path; --data then names the split", 0},
        {"model-id", ARG_STRING, &model_id, 0, 0, NULL, "TSLib: run name; without --out, the run goes to runs/MODEL_ID", 0},
        {"enc-in", ARG_INT, &enc_in, 1, 100000, NULL, "TSLib: channel count, checked against the data", 0},
        {"is-training", ARG_INT, &is_training, 0, 1, NULL, "TSLib: must be 1 (use seqformer eval to test)", 0},
        {"itr", ARG_INT, &itr, 1, 1000, NULL, "TSLib: repetitions; seqformer runs once per command (vary --seed)", 0},
        {"task-name", ARG_STRING, &task_name, 0, 0, NULL, "TSLib: long_term_forecast", 0},
        {"individual", ARG_INT, &individual, 0, 0, NULL, "TSLib: 0 (shared weights across channels)", 0},
        {"des", ARG_IGNORE, &ignored, 0, 0, NULL, "", 0},
        {"fc-dropout", ARG_IGNORE, &ignored, 0, 0, NULL, "", 0},
        {"label-len", ARG_INT, &label_len, 0, 100000, NULL, "Informer: known steps starting the decoder input", 0},
        {"d-layers", ARG_INT, &d_layers, 1, 16, NULL, "Informer: decoder layers", 0},
        {"factor", ARG_INT, &factor, 1, 1000, NULL, "Informer: ProbSparse factor c", 0},
        {"attn", ARG_CHOICE, &attn, 0, 0, "prob|full", "Informer: self-attention", 0},
        {"activation", ARG_CHOICE, &activation, 0, 0, "gelu|relu", "Informer: FFN activation", 0},
        {"distil", ARG_BOOL, &distil, 0, 1, NULL,
         "Informer: distilling layers (0/1; the reference's bare --distil turns them off: give --distil=0)", 0},
        {"mix", ARG_BOOL, &mix, 0, 1, NULL, "Informer: mixed decoder self-attention heads (0/1)", 0},
        {"freq", ARG_CHOICE, &freq, 0, 0, "auto|" SF_TIME_FREQ_CHOICES, "Informer: time-feature frequency (h hourly, t minutely, ...; auto: from the data's step)", 0},
        {"embed", ARG_CHOICE, &embed, 0, 0, "timeF|none", "Informer: time features (timeF) or none", 0},
        {"dec-in", ARG_IGNORE, &ignored, 0, 0, NULL, "", 0},
        {"c-out", ARG_IGNORE, &ignored, 0, 0, NULL, "", 0},
        {"num-workers", ARG_IGNORE, &ignored, 0, 0, NULL, "", 0},
        {"use-gpu", ARG_IGNORE, &ignored, 0, 0, NULL, "", 0},
        {"gpu", ARG_IGNORE, &ignored, 0, 0, NULL, "", 0},
        {"use-multi-gpu", ARG_IGNORE, &ignored, 0, 0, NULL, "", 0},
        {"devices", ARG_IGNORE, &ignored, 0, 0, NULL, "", 0},
        {"checkpoints", ARG_IGNORE, &ignored, 0, 0, NULL, "", 0},
        {"pct-start", ARG_IGNORE, &ignored, 0, 0, NULL, "", 0},
        {"padding-patch", ARG_IGNORE, &ignored, 0, 0, NULL, "", 0},
        {"affine", ARG_IGNORE, &ignored, 0, 0, NULL, "", 0},
        {"subtract-last", ARG_IGNORE, &ignored, 0, 0, NULL, "", 0},
        {"decomposition", ARG_IGNORE, &ignored, 0, 0, NULL, "", 0},
        {"use-amp", ARG_IGNORE, &ignored, 0, 0, NULL, "", 0},
    };
    int ns = (int)(sizeof specs / sizeof *specs);
    int pr = args_parse("train", argc, argv, specs, ns, "--data F.csv --out DIR [flags]");
    if (pr == 1) {
        cJSON_Delete(raw);
        return 0;
    }
    int rc;
    if (pr != SF_OK) goto usage;
    model = model_name(model);
    if (config_path != config_arg) { /* the pre-scan read another argument than the parser */
        sf_errorf("train: --config must be given as a flag with a file, not as another flag's value");
        goto usage;
    }
    if (!is_training) {
        sf_errorf("train: --is_training 0 means testing a trained model: use "
                  "seqformer eval --model DIR/model.safetensors --data F.csv");
        goto usage;
    }
    if (task_name && strcmp(task_name, "long_term_forecast") != 0) {
        sf_errorf("train: --task_name '%s' is not supported (long_term_forecast is)", task_name);
        goto usage;
    }
    if (itr > 1)
        fprintf(stderr, "seqformer: note: --itr %d: this command trains once; run it again with "
                        "another --seed for more repetitions\n", itr);
    char file_buf[4096];
    if (root_path || data_path) { /* TSLib: the file is root_path/data_path, --data the split */
        if (!data_path) {
            sf_errorf("train: --root_path needs --data_path");
            goto usage;
        }
        if (data && tslib_split(data, &split)) goto usage;
        snprintf(file_buf, sizeof file_buf, "%s/%s", root_path ? root_path : ".", data_path);
        data = file_buf;
    }
    char out_buf[4096];
    if (!out && model_id) {
        snprintf(out_buf, sizeof out_buf, "runs/%s", model_id);
        out = out_buf;
    }
    if (!data || (!out && !print_config)) {
        sf_errorf("train: --data and --out are required (see seqformer train --help)");
        goto usage;
    }
    /* The model config: from the file, or from the shorthand flags. */
    int has_channels = 0;
    if (config_path) {
        for (int i = 0; model_flags[i]; i++)
            if (args_seen(specs, ns, model_flags[i])) {
                sf_errorf("train: --%s cannot be combined with --config (set it in %s)",
                          model_flags[i], config_path);
                goto usage;
            }
        has_channels = cJSON_GetObjectItemCaseSensitive(raw, "n_channels") != NULL;
        if (is_lm && !cJSON_GetObjectItemCaseSensitive(raw, "task"))
            cJSON_AddStringToObject(raw, "task", "lm"); /* an lm config implies its task */
    } else if (!strcmp(model, "lm")) {
        /* small character-model defaults: context 256, 4 pre-norm blocks of width 128 */
        raw = cli_lm_config(args_seen(specs, ns, "seq-len") ? c.seq_len : 256,
                            args_seen(specs, ns, "d-model") ? c.d_model : 128,
                            args_seen(specs, ns, "n-heads") ? c.n_heads : 4,
                            args_seen(specs, ns, "e-layers") ? c.e_layers : 4,
                            args_seen(specs, ns, "d-ff") ? c.d_ff
                            : args_seen(specs, ns, "d-model") ? 4 * c.d_model : 512,
                            args_seen(specs, ns, "dropout") ? c.dropout : 0.0f, mixer,
                            args_seen(specs, ns, "norm") ? norm : "layernorm",
                            args_seen(specs, ns, "norm-place") ? norm_place : "pre", pos);
    } else if (!strcmp(model, "t2")) {
        raw = t2_config(specs, ns, &c, mixer, norm, norm_place, pos);
        has_channels = 0;
        if (t2_time_flags(raw, specs, ns, time_channel, time_scale)) goto usage;
    } else if (!strcmp(model, "informer")) {
        raw = informer_config(specs, ns, &c, label_len, d_layers, factor, distil, mix, freq,
                              embed, attn, activation, enc_in);
        has_channels = enc_in > 0;
    } else {
        snprintf(c.model, sizeof c.model, "%s", model);
        snprintf(c.mixer, sizeof c.mixer, "%s", mixer);
        snprintf(c.norm, sizeof c.norm, "%s", norm);
        snprintf(c.norm_place, sizeof c.norm_place, "%s", norm_place);
        snprintf(c.pos, sizeof c.pos, "%s", pos);
        if (enc_in) c.n_channels = enc_in;
        has_channels = enc_in > 0;
        raw = sf_flat_config_to_json(&c);
    }
    rc = sf_config_normalize(raw, &cfg);
    cJSON_Delete(raw);
    raw = NULL;
    if (rc) {
        if (config_path) sf_error_prefix("%s", config_path);
        return cli_fail(2);
    }
    if (mixer_options && apply_mixer_options(&cfg, mixer_options)) {
        cJSON_Delete(cfg);
        return cli_fail(2);
    }
    const sf_task_def *td = sf_task_find(sf_opt_str(cfg, "task"));
    if (lradj) snprintf(o.lradj, sizeof o.lradj, "%s", lradj);
    if (optimizer) o.lazy_adamw = strcmp(optimizer, "lazy_adamw") == 0;
    o.seed = (uint64_t)seed;
    o.out_dir = out;
    o.data_path = data;
    o.resume = resume;
    o.budget_wall = !strcmp(budget_clock, "wall");
    o.progress_mode = !strcmp(progress, "tty")     ? SF_PROGRESS_TTY
                      : !strcmp(progress, "plain") ? SF_PROGRESS_PLAIN
                      : !strcmp(progress, "quiet") ? SF_PROGRESS_QUIET
                                                   : SF_PROGRESS_AUTO;
    if (!args_seen(specs, ns, "eval-batch-size") && o.eval_batch_size < o.batch_size)
        o.eval_batch_size = o.batch_size;
    cli_set_threads(threads);

    if (strcmp(task, sf_opt_str(cfg, "task")) != 0 && args_seen(specs, ns, "task")) {
        sf_errorf("train: --task %s, but the model config's task is %s", task,
                  sf_opt_str(cfg, "task"));
        cJSON_Delete(cfg);
        return cli_fail(2);
    }
    if (tokenizer && strcmp(sf_opt_str(cfg, "task"), "lm") != 0) {
        sf_errorf("train: --tokenizer is for --task lm (--model lm)");
        cJSON_Delete(cfg);
        return cli_fail(2);
    }
    if (epoch_windows && strcmp(sf_opt_str(cfg, "task"), "lm") != 0) {
        sf_errorf("train: --epoch-windows is for --task lm (--model lm)");
        cJSON_Delete(cfg);
        return cli_fail(2);
    }
    if ((augment > 0 || mixup > 0) && strcmp(sf_opt_str(cfg, "task"), "classify") != 0) {
        sf_errorf("train: --%s is for --task classify", augment > 0 ? "augment" : "mixup");
        cJSON_Delete(cfg);
        return cli_fail(2);
    }
    if (test && strcmp(sf_opt_str(cfg, "task"), "forecast") == 0) {
        sf_errorf("train: --test is for --task classify or lm (forecast splits the one file)");
        cJSON_Delete(cfg);
        return cli_fail(2);
    }
    sf_task_args ta = {.data = data, .target = target, .features = features[0], .split = split,
                       .test = test, .tokenizer = tokenizer, .normalize = normalize,
                       .class_weights = class_weights, .val_fraction = val_fraction, .augment = augment,
                       .mixup = mixup, .seed = (uint64_t)seed, .epoch_windows = epoch_windows};
    sf_task t = {0};
    sf_model m = {0};
    if (td->open_train(&t, &ta, &cfg, has_channels)) {
        cJSON_Delete(cfg);
        return cli_fail(1);
    }
    rc = 1;
    if (classify_budget(&t, &o, train_steps)) {
        rc = cli_fail(2);
        goto done;
    }
    if (print_config) {
        char *s = sf_config_print(cfg, 1);
        printf("%s\n", s);
        free(s);
        rc = 0;
        goto done;
    }
    if (sf_model_create(&m, cfg)) {
        if (config_path) sf_error_prefix("%s", config_path);
        rc = cli_fail(2);
        goto done;
    }
    sf_model_init_weights(&m, o.seed);
    if (sf_mkdir_p(out)) {
        rc = cli_fail(1);
        goto done;
    }
    fprintf(stderr, "seqformer: %s on %s (", sf_opt_str(cfg, "model"), data);
    td->describe(&t, stderr);
    fprintf(stderr, "): %ld parameters\n", sf_model_n_params(&m));
    sf_train_result r;
    if (sf_train(&m, &t, &o, &r)) {
        rc = cli_fail(1);
        goto done;
    }
    if (r.interrupted) {
        fprintf(stderr, "seqformer: stopped after epoch %d; continue with --resume\n",
                r.epochs_run);
    } else {
        printf("{\"val\":");
        print_metrics(&r.val);
        printf(",\"test\":");
        print_metrics(&r.test);
        printf(",\"best_epoch\":%d,\"epochs_run\":%d,\"train_seconds\":%.1f}\n", r.best_epoch + 1,
               r.epochs_run, r.seconds);
    }
    rc = 0;
done:
    sf_model_destroy(&m);
    sf_task_close(&t);
    cJSON_Delete(cfg);
    return rc;
usage:
    cJSON_Delete(raw);
    return cli_fail(2);
}
