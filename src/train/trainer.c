#include "train/trainer.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <string.h>
#include <time.h>

#include "core/error.h"
#include "core/fileio.h"
#include "core/safetensors.h"
#include "train/adamw.h"
#include "util/progress.h"
#include "util/svg_plot.h"

void sf_train_opts_defaults(sf_train_opts *o, const char *model) {
    memset(o, 0, sizeof *o);
    int dl = model && strcmp(model, "dlinear") == 0;
    /* PatchTST's ETTh1 script: Adam, lr 1e-4, batch 128, 100 epochs, lradj type3. DLinear's
     * (LTSF-Linear ETTh1): lr 5e-3, batch 32. */
    o->epochs = 100;
    o->patience = 10;
    o->batch_size = dl ? 32 : 128;
    o->eval_batch_size = 256;
    o->warmup_epochs = 1;
    o->min_delta = 1e-4f;
    o->lr = dl ? 5e-3f : 1e-4f;
    snprintf(o->lradj, sizeof o->lradj, "%s", "type3");
    o->seed = 2021;
    o->progress_mode = SF_PROGRESS_AUTO;
}

float sf_train_lr(const sf_train_opts *o, int epoch, int step, int steps_per_epoch) {
    long warm = (long)o->warmup_epochs * steps_per_epoch, s = (long)epoch * steps_per_epoch + step;
    if (s < warm) /* linear warm-up from lr/25 (PatchTST's OneCycle start) to lr */
        return o->lr * (0.04f + 0.96f * (float)s / (float)warm);
    if (strcmp(o->lradj, "constant") == 0) return o->lr;
    if (strcmp(o->lradj, "cosine") == 0) {
        double span = (double)(o->epochs - o->warmup_epochs) * steps_per_epoch;
        double f = span > 0 ? (double)(s - warm) / span : 1.0;
        return (float)(o->lr * 0.5 * (1.0 + cos(M_PI * (f > 1 ? 1 : f))));
    }
    /* type3: lr for the first three epochs, then x0.9 per epoch. */
    return epoch <= 3 ? o->lr : o->lr * powf(0.9f, (float)(epoch - 3));
}

void sf_evaluate(sf_model *m, const sf_forecast_data *d, sf_split split, int batch, double *mse,
                 double *mae) {
    int nw = sf_forecast_n_windows(d, split), C = d->n_channels;
    int L = d->seq_len, P = d->pred_len;
    if (batch > nw) batch = nw;
    float *x = sf_malloc((size_t)batch * L * C * sizeof(float));
    float *y = sf_malloc((size_t)batch * P * C * sizeof(float));
    float *out = sf_malloc((size_t)batch * P * C * sizeof(float));
    int *idx = sf_malloc((size_t)batch * sizeof(int));
    double se = 0, ae = 0;
    for (int start = 0; start < nw; start += batch) {
        int n = nw - start < batch ? nw - start : batch;
        for (int i = 0; i < n; i++) idx[i] = start + i;
        sf_forecast_gather(d, split, idx, n, x, y);
        sf_model_forward(m, x, out, n, 0, NULL);
        for (long i = 0; i < (long)n * P * C; i++) {
            double e = (double)out[i] - y[i];
            se += e * e;
            ae += fabs(e);
        }
    }
    double cnt = (double)nw * P * C;
    *mse = se / cnt;
    *mae = ae / cnt;
    free(x);
    free(y);
    free(out);
    free(idx);
}

/* ---- training state for --resume ---------------------------------------------------------- */

typedef struct {
    int next_epoch, best_epoch, bad_epochs;
    double best_val;
    double *train_hist, *val_hist; /* [epochs] */
    float *best;                   /* [params.total] */
} run_state;

static char *state_path(const char *dir) {
    char *p = sf_malloc(strlen(dir) + 32);
    sprintf(p, "%s/train_state.safetensors", dir);
    return p;
}

static int save_state(const char *dir, const sf_model *m, const sf_adamw *opt, const sf_rng *rng,
                      const run_state *rs, int n_epochs) {
    char *path = state_path(dir);
    int64_t n = (int64_t)m->params.total, ne = rs->next_epoch;
    int64_t counters[5] = {opt->t, rs->next_epoch, rs->best_epoch, rs->bad_epochs, n_epochs};
    int64_t rngs[4];
    memcpy(rngs, rng->s, sizeof rngs);
    float *th = sf_malloc((size_t)(ne ? ne : 1) * 2 * sizeof(float)), *vh = th + (ne ? ne : 1);
    for (int i = 0; i < ne; i++) {
        th[i] = (float)rs->train_hist[i];
        vh[i] = (float)rs->val_hist[i];
    }
    sf_st_tensor_in t[] = {
        {.name = "params", .ndim = 1, .shape = {n}, .data = m->params.data},
        {.name = "best_params", .ndim = 1, .shape = {n}, .data = rs->best},
        {.name = "adam.m", .ndim = 1, .shape = {n}, .data = opt->m},
        {.name = "adam.v", .ndim = 1, .shape = {n}, .data = opt->v},
        {.name = "history.train_loss", .ndim = 1, .shape = {ne}, .data = th},
        {.name = "history.val_loss", .ndim = 1, .shape = {ne}, .data = vh},
        {.name = "counters", .ndim = 1, .shape = {5}, .dtype = SF_ST_I64, .data_i64 = counters},
        {.name = "rng", .ndim = 1, .shape = {4}, .dtype = SF_ST_I64, .data_i64 = rngs},
    };
    char best_val[64];
    snprintf(best_val, sizeof best_val, "%.17g", rs->best_val);
    char *config = sf_config_to_json(&m->cfg);
    sf_st_meta meta[] = {{"format_version", "1"}, {"config", config}, {"best_val", best_val}};
    int rc = sf_safetensors_write(path, t, 8, meta, 3);
    free(config);
    free(th);
    free(path);
    return rc;
}

static int load_state(const char *dir, sf_model *m, sf_adamw *opt, sf_rng *rng, run_state *rs,
                      int max_epochs) {
    char *path = state_path(dir);
    sf_safetensors *st = NULL;
    int rc = SF_ERR;
    if (sf_safetensors_open(path, &st)) goto done;
    const char *config = sf_safetensors_meta(st, "config");
    char *mine = sf_config_to_json(&m->cfg);
    int same = config && strcmp(config, mine) == 0;
    free(mine);
    if (!same) {
        sf_errorf("%s: training state was made with a different model config; "
                  "resume with the same flags",
                  path);
        goto done;
    }
    int64_t n = (int64_t)m->params.total;
    int nd;
    int64_t shape[8];
    const int64_t *counters = sf_safetensors_get_i64(st, "counters", &nd, shape);
    const int64_t *rngs = sf_safetensors_get_i64(st, "rng", &nd, shape);
    const char *best_val = sf_safetensors_meta(st, "best_val");
    if (!counters || !rngs || !best_val) {
        sf_errorf("%s: training state is missing 'counters', 'rng' or 'best_val'", path);
        goto done;
    }
    if (sf_safetensors_load_f32(st, "params", 1, &n, m->params.data) ||
        sf_safetensors_load_f32(st, "best_params", 1, &n, rs->best) ||
        sf_safetensors_load_f32(st, "adam.m", 1, &n, opt->m) ||
        sf_safetensors_load_f32(st, "adam.v", 1, &n, opt->v))
        goto done;
    int ne = (int)counters[1];
    if (ne < 0 || ne > max_epochs) {
        sf_errorf("%s: training state is at epoch %d, beyond --epochs %d", path, ne, max_epochs);
        goto done;
    }
    int64_t ne64 = ne;
    float *h = sf_malloc((size_t)(ne ? ne : 1) * sizeof(float));
    if (sf_safetensors_load_f32(st, "history.train_loss", 1, &ne64, h)) {
        free(h);
        goto done;
    }
    for (int i = 0; i < ne; i++) rs->train_hist[i] = h[i];
    if (sf_safetensors_load_f32(st, "history.val_loss", 1, &ne64, h)) {
        free(h);
        goto done;
    }
    for (int i = 0; i < ne; i++) rs->val_hist[i] = h[i];
    free(h);
    opt->t = counters[0];
    rs->next_epoch = ne;
    rs->best_epoch = (int)counters[2];
    rs->bad_epochs = (int)counters[3];
    rs->best_val = strtod(best_val, NULL);
    memcpy(rng->s, rngs, sizeof rng->s);
    rc = SF_OK;
done:
    sf_safetensors_close(st);
    free(path);
    return rc;
}

/* ---- outputs ------------------------------------------------------------------------------ */

static int write_metrics(const char *dir, const sf_model *m, const sf_train_result *r) {
    cJSON *o = cJSON_CreateObject(), *v = cJSON_CreateObject(), *t = cJSON_CreateObject();
    cJSON_AddNumberToObject(v, "mse", r->val_mse);
    cJSON_AddNumberToObject(v, "mae", r->val_mae);
    cJSON_AddNumberToObject(t, "mse", r->test_mse);
    cJSON_AddNumberToObject(t, "mae", r->test_mae);
    cJSON_AddItemToObject(o, "val", v);
    cJSON_AddItemToObject(o, "test", t);
    cJSON_AddNumberToObject(o, "best_epoch", r->best_epoch + 1);
    cJSON_AddNumberToObject(o, "epochs_run", r->epochs_run);
    cJSON_AddNumberToObject(o, "train_seconds", r->seconds);
    cJSON_AddNumberToObject(o, "params", (double)sf_model_n_params(m));
    char *s = cJSON_Print(o);
    cJSON_Delete(o);
    char *path = sf_malloc(strlen(dir) + 32);
    sprintf(path, "%s/metrics.json", dir);
    size_t n = strlen(s);
    s[n] = '\n';
    int rc = sf_write_file_atomic(path, s, n + 1);
    free(path);
    free(s);
    return rc;
}

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int sf_train(sf_model *m, const sf_forecast_data *d, const sf_train_opts *o,
             const sf_data_info *info, sf_train_result *r) {
    memset(r, 0, sizeof *r);
    int nw = sf_forecast_n_windows(d, SF_TRAIN), C = d->n_channels;
    int L = d->seq_len, P = d->pred_len, B = o->batch_size < nw ? o->batch_size : nw;
    if (nw < 1) return sf_errorf("no training windows");
    int steps = nw / B; /* drop the last incomplete training batch, as the reference loaders do */
    size_t total = m->params.total;
    float *x = sf_malloc((size_t)B * L * C * sizeof(float));
    float *y = sf_malloc((size_t)B * P * C * sizeof(float));
    float *out = sf_malloc((size_t)B * P * C * sizeof(float));
    float *dy = sf_malloc((size_t)B * P * C * sizeof(float));
    int *order = sf_malloc((size_t)nw * sizeof(int));
    run_state rs = {.best_val = INFINITY, .best_epoch = -1};
    rs.train_hist = sf_calloc((size_t)o->epochs + 1, sizeof(double));
    rs.val_hist = sf_calloc((size_t)o->epochs + 1, sizeof(double));
    rs.best = sf_malloc(total * sizeof(float));
    memcpy(rs.best, m->params.data, total * sizeof(float));
    sf_adamw opt;
    sf_adamw_init(&opt, &m->params, o->weight_decay);
    sf_rng drop_rng;
    sf_rng_seed_stream(&drop_rng, o->seed, 2);
    sf_csv_log log = {0};
    sf_progress prog;
    int rc = SF_ERR;
    char *path = sf_malloc(strlen(o->out_dir) + 64);

    if (o->resume && load_state(o->out_dir, m, &opt, &drop_rng, &rs, o->epochs)) goto done;
    sprintf(path, "%s/train_log.csv", o->out_dir);
    if (sf_csv_log_open(&log, path, o->resume)) goto done;
    sf_model_reserve(m, B > o->eval_batch_size ? B : o->eval_batch_size, 1);
    sf_progress_init(&prog, stderr, o->progress_mode, o->epochs, steps);
    if (rs.next_epoch > 0)
        sf_progress_message(&prog, "resuming at epoch %d (best val %.6f at epoch %d)",
                            rs.next_epoch + 1, rs.best_val, rs.best_epoch + 1);
    double t0 = now_seconds();
    int run_epochs = 0;
    for (int epoch = rs.next_epoch; epoch < o->epochs && rs.bad_epochs < o->patience; epoch++) {
        double te = now_seconds(), loss_sum = 0;
        /* The data order of an epoch depends only on (seed, epoch): resuming replays it. */
        sf_rng shuf;
        sf_rng_seed_stream(&shuf, o->seed, 1000 + (uint64_t)epoch);
        for (int i = 0; i < nw; i++) order[i] = i;
        sf_rng_shuffle_i32(&shuf, order, nw);
        float lr = 0;
        for (int s = 0; s < steps; s++) {
            sf_forecast_gather(d, SF_TRAIN, order + (size_t)s * B, B, x, y);
            sf_params_zero_grad(&m->params);
            sf_model_forward(m, x, out, B, 1, &drop_rng);
            double loss = sf_mse_loss(out, y, dy, (long)B * P * C);
            sf_model_backward(m, dy, B);
            if (o->clip_grad > 0) sf_clip_grad_norm(&m->params, o->clip_grad);
            lr = sf_train_lr(o, epoch, s, steps);
            sf_adamw_step(&opt, &m->params, lr);
            loss_sum += loss;
            sf_progress_step(&prog, epoch + 1, s + 1, loss);
        }
        double val_mse, val_mae;
        sf_evaluate(m, d, SF_VAL, o->eval_batch_size, &val_mse, &val_mae);
        double train_loss = loss_sum / steps;
        rs.train_hist[epoch] = train_loss;
        rs.val_hist[epoch] = val_mse;
        int best = val_mse < rs.best_val - o->min_delta;
        if (best) {
            rs.best_val = val_mse;
            rs.best_epoch = epoch;
            rs.bad_epochs = 0;
            memcpy(rs.best, m->params.data, total * sizeof(float));
        } else {
            rs.bad_epochs++;
        }
        rs.next_epoch = epoch + 1;
        run_epochs++;
        sf_progress_epoch_end(&prog, epoch + 1, train_loss, val_mse, val_mse, val_mae, lr, best);
        if (sf_csv_log_append_row(&log, epoch + 1, train_loss, val_mse, val_mse, val_mae, lr,
                                  now_seconds() - te))
            goto done;
        sprintf(path, "%s/loss.svg", o->out_dir);
        if (sf_svg_loss_plot(path, "seqformer: MSE loss per epoch", rs.train_hist, rs.val_hist,
                             rs.next_epoch, rs.best_epoch))
            goto done;
        if (save_state(o->out_dir, m, &opt, &drop_rng, &rs, o->epochs)) goto done;
        if (rs.bad_epochs >= o->patience) {
            r->stopped_early = 1;
            sf_progress_message(&prog, "early stopping: no val improvement for %d epochs",
                                o->patience);
            break;
        }
        if (o->stop_after > 0 && run_epochs >= o->stop_after && rs.next_epoch < o->epochs) {
            r->interrupted = 1;
            break;
        }
    }
    sf_progress_finish(&prog);
    r->seconds = now_seconds() - t0;
    r->epochs_run = rs.next_epoch;
    r->best_epoch = rs.best_epoch;
    if (r->interrupted) {
        rc = SF_OK;
        goto done;
    }
    memcpy(m->params.data, rs.best, total * sizeof(float));
    sf_evaluate(m, d, SF_VAL, o->eval_batch_size, &r->val_mse, &r->val_mae);
    sf_evaluate(m, d, SF_TEST, o->eval_batch_size, &r->test_mse, &r->test_mae);
    sprintf(path, "%s/model.safetensors", o->out_dir);
    if (sf_checkpoint_save(path, m, &d->scaler, info)) goto done;
    if (write_metrics(o->out_dir, m, r)) goto done;
    rc = SF_OK;
done:
    if (sf_csv_log_close(&log) && rc == SF_OK) rc = SF_ERR;
    sf_adamw_free(&opt);
    free(rs.train_hist);
    free(rs.val_hist);
    free(rs.best);
    free(x);
    free(y);
    free(out);
    free(dy);
    free(order);
    free(path);
    return rc;
}
