/* seqformer eval: checkpoint + CSV -> {"mse":..,"mae":..} on the standard test split, with the
 * protocol (split borders, target, features) stored in the checkpoint. */
#include <stdio.h>
#include <string.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "core/error.h"
#include "train/trainer.h"

/* The data's channels must be the checkpoint's, in the same order. */
static int check_columns(const char *data, const sf_scaler *ck, const sf_forecast_data *d) {
    if (d->n_channels != ck->n)
        return sf_errorf("%s: has %d channels for features %c, but the checkpoint was trained on %d",
                         data, d->n_channels, d->features, ck->n);
    for (int i = 0; i < ck->n; i++)
        if (strcmp(d->scaler.names[i], ck->names[i]) != 0)
            return sf_errorf("%s: channel %d is '%s', but the checkpoint expects '%s'", data, i,
                             d->scaler.names[i], ck->names[i]);
    return SF_OK;
}

int cmd_eval(int argc, char **argv) {
    const char *model = NULL, *data = NULL, *split = NULL, *which = "test";
    int batch = 256, threads = 0;
    arg_spec specs[] = {
        {"model", ARG_STRING, &model, 0, 0, NULL, "checkpoint (model.safetensors)", 0},
        {"data", ARG_STRING, &data, 0, 0, NULL, "CSV file", 0},
        {"split", ARG_CHOICE, &split, 0, 0, "auto|ett-hour|ett-minute|custom",
         "override the split borders stored in the checkpoint", 0},
        {"subset", ARG_CHOICE, &which, 0, 0, "test|val|train", "which split to score", 0},
        {"batch-size", ARG_INT, &batch, 1, 65536, NULL, "evaluation batch size", 0},
        {"threads", ARG_INT, &threads, 0, 1024, NULL, "threads (0: OpenMP default)", 0},
    };
    sf_model m;
    sf_scaler sc;
    sf_data_info info;
    int early = cli_parse_and_load("eval", argc, argv, specs, (int)(sizeof specs / sizeof *specs),
                                   "--model DIR/model.safetensors --data F.csv", &model, &data,
                                   &threads, &m, &sc, &info);
    if (early >= 0) return early;
    int kind, rc = 1;
    cli_split_kind(split ? split : info.split, &kind);
    sf_forecast_data d;
    if (sf_forecast_data_load(data, info.target, info.features, (sf_split_kind)kind,
                              m.cfg.seq_len, m.cfg.pred_len, &d))
        goto out_model;
    if (check_columns(data, &sc, &d)) goto out_data;
    sf_split s = !strcmp(which, "val") ? SF_VAL : !strcmp(which, "train") ? SF_TRAIN : SF_TEST;
    double mse, mae;
    sf_evaluate(&m, &d, s, batch, &mse, &mae);
    printf("{\"mse\":%.6f,\"mae\":%.6f,\"windows\":%d,\"split\":\"%s\"}\n", mse, mae,
           sf_forecast_n_windows(&d, s), which);
    rc = 0;
out_data:
    sf_forecast_data_free(&d);
out_model:
    if (rc) fprintf(stderr, "seqformer: %s\n", sf_error_message());
    sf_model_destroy(&m);
    sf_scaler_free(&sc);
    return rc;
}
