/* seqformer train: flags -> model config + training options -> DIR/{model.safetensors,
 * metrics.json, train_log.csv, loss.svg, train_state.safetensors}. */
#include <stdio.h>
#include <string.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "core/error.h"
#include "core/fileio.h"
#include "train/trainer.h"
#include "util/progress.h"

int cmd_train(int argc, char **argv) {
    /* The model decides several defaults, so find --model first. */
    const char *model = "patchtst";
    for (int i = 0; i + 1 < argc; i++)
        if (!strcmp(argv[i], "--model")) model = argv[i + 1];
        else if (!strncmp(argv[i], "--model=", 8)) model = argv[i] + 8;
    sf_model_config c;
    sf_config_defaults(&c, strcmp(model, "dlinear") == 0 ? "dlinear" : "patchtst");
    sf_train_opts o;
    sf_train_opts_defaults(&o, c.model);
    const char *task = "forecast", *data = NULL, *target = "OT", *features = "M",
               *split = "auto", *out = NULL, *progress = "auto", *lradj = "type3";
    const char *mixer = "softmax", *norm = "batchnorm", *norm_place = "post", *pos = "learned";
    int seed = 2021, threads = 0, resume = 0;
    arg_spec specs[] = {
        {"task", ARG_CHOICE, &task, 0, 0, "forecast", "task", 0},
        {"data", ARG_STRING, &data, 0, 0, NULL, "CSV file (date column + numeric columns; .gz ok)", 0},
        {"target", ARG_STRING, &target, 0, 0, NULL, "target column", 0},
        {"features", ARG_CHOICE, &features, 0, 0, "M|S", "M: all channels, S: target only", 0},
        {"split", ARG_CHOICE, &split, 0, 0, "auto|ett-hour|ett-minute|custom",
         "train/val/test borders (auto: from the file name, as Time-Series-Library)", 0},
        {"seq-len", ARG_INT, &c.seq_len, 1, 100000, NULL, "input length", 0},
        {"pred-len", ARG_INT, &c.pred_len, 1, 100000, NULL, "forecast horizon", 0},
        {"model", ARG_CHOICE, &model, 0, 0, "patchtst|dlinear", "model", 0},
        {"mixer", ARG_CHOICE, &mixer, 0, 0, "softmax|linear", "token mixer", 0},
        {"causal", ARG_BOOL, &c.causal, 0, 1, NULL, "causal token mixing", 0},
        {"norm", ARG_CHOICE, &norm, 0, 0, "layernorm|rmsnorm|batchnorm", "normalisation", 0},
        {"norm-place", ARG_CHOICE, &norm_place, 0, 0, "post|pre", "norm placement", 0},
        {"pos", ARG_CHOICE, &pos, 0, 0, "learned|sinusoidal", "positions", 0},
        {"d-model", ARG_INT, &c.d_model, 1, 4096, NULL, "model width", 0},
        {"n-heads", ARG_INT, &c.n_heads, 1, 256, NULL, "attention heads", 0},
        {"e-layers", ARG_INT, &c.e_layers, 0, 64, NULL, "encoder blocks", 0},
        {"d-ff", ARG_INT, &c.d_ff, 1, 65536, NULL, "feed-forward width", 0},
        {"dropout", ARG_FLOAT, &c.dropout, 0, 0.99, NULL, "dropout", 0},
        {"head-dropout", ARG_FLOAT, &c.head_dropout, 0, 0.99, NULL, "head dropout", 0},
        {"patch-len", ARG_INT, &c.patch_len, 1, 100000, NULL, "patch length", 0},
        {"stride", ARG_INT, &c.stride, 1, 100000, NULL, "patch stride", 0},
        {"revin", ARG_BOOL, &c.revin, 0, 1, NULL, "reversible instance normalisation (0/1)", 0},
        {"kernel-size", ARG_INT, &c.kernel_size, 1, 1001, NULL, "DLinear moving-average kernel", 0},
        {"batch-size", ARG_INT, &o.batch_size, 1, 65536, NULL, "training batch size", 0},
        {"lr", ARG_FLOAT, &o.lr, 1e-9, 10, NULL, "peak learning rate", 0},
        {"lradj", ARG_CHOICE, &lradj, 0, 0, "type3|cosine|constant", "schedule after warm-up", 0},
        {"warmup-epochs", ARG_INT, &o.warmup_epochs, 0, 1000, NULL, "linear warm-up epochs", 0},
        {"weight-decay", ARG_FLOAT, &o.weight_decay, 0, 10, NULL, "AdamW weight decay", 0},
        {"clip-grad", ARG_FLOAT, &o.clip_grad, 0, 1e9, NULL, "max global grad norm (0: off)", 0},
        {"epochs", ARG_INT, &o.epochs, 1, 100000, NULL, "max epochs", 0},
        {"min-delta", ARG_FLOAT, &o.min_delta, 0, 1e9, NULL,
         "early stopping: least val MSE improvement that counts", 0},
        {"patience", ARG_INT, &o.patience, 1, 100000, NULL, "early-stopping patience (epochs)", 0},
        {"seed", ARG_INT, &seed, 0, 2147483647, NULL, "random seed", 0},
        {"threads", ARG_INT, &threads, 0, 1024, NULL, "threads (0: OpenMP default)", 0},
        {"out", ARG_STRING, &out, 0, 0, NULL, "output directory", 0},
        {"resume", ARG_BOOL, &resume, 0, 1, NULL, "continue from DIR/train_state.safetensors", 0},
        {"progress", ARG_CHOICE, &progress, 0, 0, "auto|tty|plain|quiet", "progress display", 0},
        {"stop-after", ARG_INT, &o.stop_after, 0, 100000, NULL,
         "stop after N epochs of this run, keeping the state for --resume (0: never)", 0},
    };
    int ns = (int)(sizeof specs / sizeof *specs);
    int pr = args_parse("train", argc, argv, specs, ns, "--data F.csv --out DIR [flags]");
    if (pr == 1) return 0;
    if (pr != SF_OK) goto usage_error;
    if (!data || !out) {
        sf_errorf("train: --data and --out are required (see seqformer train --help)");
        goto usage_error;
    }
    snprintf(c.mixer, sizeof c.mixer, "%s", mixer);
    snprintf(c.norm, sizeof c.norm, "%s", norm);
    snprintf(c.norm_place, sizeof c.norm_place, "%s", norm_place);
    snprintf(c.pos, sizeof c.pos, "%s", pos);
    snprintf(o.lradj, sizeof o.lradj, "%s", lradj);
    o.seed = (uint64_t)seed;
    o.out_dir = out;
    o.resume = resume;
    o.progress_mode = !strcmp(progress, "tty")     ? SF_PROGRESS_TTY
                      : !strcmp(progress, "plain") ? SF_PROGRESS_PLAIN
                      : !strcmp(progress, "quiet") ? SF_PROGRESS_QUIET
                                                   : SF_PROGRESS_AUTO;
    if (o.eval_batch_size < o.batch_size) o.eval_batch_size = o.batch_size;
    cli_set_threads(threads);

    int kind;
    cli_split_kind(split, &kind);
    sf_forecast_data d;
    if (sf_forecast_data_load(data, target, features[0], (sf_split_kind)kind, c.seq_len,
                              c.pred_len, &d)) {
        fprintf(stderr, "seqformer: %s\n", sf_error_message());
        return 1;
    }
    c.n_channels = d.n_channels;
    int rc = 1;
    sf_model m = {0};
    if (sf_config_validate(&c) || sf_model_create(&m, &c)) goto fail_usage;
    sf_model_init_weights(&m, o.seed);
    if (sf_mkdir_p(out)) goto fail;
    sf_data_info info = {.features = features[0]};
    snprintf(info.target, sizeof info.target, "%s", target);
    snprintf(info.split, sizeof info.split, "%s", sf_split_kind_name(d.kind));
    fprintf(stderr, "seqformer: %s on %s (%s split, features %c, %d channels): %ld parameters, "
            "%d/%d/%d train/val/test windows\n",
            c.model, data, info.split, info.features, d.n_channels, sf_model_n_params(&m),
            sf_forecast_n_windows(&d, SF_TRAIN), sf_forecast_n_windows(&d, SF_VAL),
            sf_forecast_n_windows(&d, SF_TEST));
    sf_train_result r;
    if (sf_train(&m, &d, &o, &info, &r)) goto fail;
    if (r.interrupted) {
        fprintf(stderr, "seqformer: stopped after epoch %d; continue with --resume\n",
                r.epochs_run);
    } else {
        printf("{\"val\":{\"mse\":%.6f,\"mae\":%.6f},\"test\":{\"mse\":%.6f,\"mae\":%.6f},"
               "\"best_epoch\":%d,\"epochs_run\":%d,\"train_seconds\":%.1f}\n",
               r.val_mse, r.val_mae, r.test_mse, r.test_mae, r.best_epoch + 1, r.epochs_run,
               r.seconds);
    }
    rc = 0;
    goto done;
fail_usage:
    rc = 2;
fail:
    fprintf(stderr, "seqformer: %s\n", sf_error_message());
done:
    sf_model_destroy(&m);
    sf_forecast_data_free(&d);
    return rc;
usage_error:
    fprintf(stderr, "seqformer: %s\n", sf_error_message());
    return 2;
}
