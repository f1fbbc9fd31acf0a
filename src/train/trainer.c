#include "train/trainer.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <string.h>
#include <time.h>
#include <zlib.h>

#include "core/error.h"
#include "core/fileio.h"
#include "core/safetensors.h"
#include "layers/pararnn_mixer.h"
#include "train/adamw.h"
#include "util/progress.h"
#include "util/svg_plot.h"


void sf_train_opts_defaults(sf_train_opts *o, const char *model) {
    memset(o, 0, sizeof *o);
    int dl = model && strcmp(model, "dlinear") == 0, inf = model && strcmp(model, "informer") == 0;
    int it = model && strcmp(model, "itransformer") == 0;
    /* PatchTST's ETTh1 script: Adam, lr 1e-4, batch 128, 100 epochs, lradj type3 (OneCycle's
     * warm-up approximated by one linear warm-up epoch), patience 10. */
    o->epochs = 100;
    o->patience = 10;
    o->batch_size = 128;
    o->eval_batch_size = 256;
    o->warmup_epochs = 1;
    o->min_delta = 1e-4f;
    o->lr = 1e-4f;
    snprintf(o->lradj, sizeof o->lradj, "%s", "type3");
    if (dl || it || inf) {
        /* LTSF-Linear's, iTransformer's and Informer's run scripts: Adam, batch 32, at most 10
         * epochs (main_informer.py: 6), lradj type1, early stopping with patience 3 on any
         * decrease of the validation loss (delta 0), no warm-up. lr: 5e-3 in LTSF-Linear's ETTh1
         * script, 1e-4 for iTransformer (run.py) and Informer (main_informer.py). */
        o->epochs = inf ? 6 : 10;
        o->patience = 3;
        o->batch_size = 32;
        o->warmup_epochs = 0;
        o->min_delta = 0;
        o->lr = dl ? 5e-3f : 1e-4f;
        snprintf(o->lradj, sizeof o->lradj, "%s", "type1");
    }
    if (model && strcmp(model, "lm") == 0) {
        /* small character models (nanoGPT's shakespeare_char scale): AdamW lr 1e-3 with a
         * cosine decay over the epochs, batch 32, gradient clipping at 1 */
        o->epochs = 10;
        o->patience = 3;
        o->batch_size = 32;
        o->eval_batch_size = 32; /* logits are [B, T, vocab]: keep evaluation batches small */
        o->warmup_epochs = 0;
        o->min_delta = 0;
        o->lr = 1e-3f;
        o->clip_grad = 1.0f;
        snprintf(o->lradj, sizeof o->lradj, "%s", "cosine");
    }
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
    /* type1 (Informer, LTSF-Linear, Time-Series-Library): their adjust_learning_rate(epoch + 1)
     * after each epoch sets lr * 0.5^epoch, so (0-based, after any warm-up) epochs 0 and 1 train
     * at lr, epoch 2 at lr/2, epoch 3 at lr/4, ... */
    if (strcmp(o->lradj, "type1") == 0) {
        int e = epoch - o->warmup_epochs;
        return e <= 1 ? o->lr : o->lr * powf(0.5f, (float)(e - 1));
    }
    /* type3: lr for the first three epochs, then x0.9 per epoch. */
    return epoch <= 3 ? o->lr : o->lr * powf(0.9f, (float)(epoch - 3));
}

/* ---- training state for --resume ---------------------------------------------------------- */

typedef struct {
    int next_epoch, best_epoch, bad_epochs;
    double best_val;
    double *train_hist, *val_hist; /* [epochs] */
    float *best;                   /* [params.total] */
    float *ema;                    /* [params.total] the weights' moving average (NULL: off) */
} run_state;

static char *dir_file(const char *dir, const char *name) {
    char *p = sf_malloc(strlen(dir) + strlen(name) + 2);
    sprintf(p, "%s/%s", dir, name);
    return p;
}

/* CRC-32 and size of a file: --resume must see the same data. */
static int file_fingerprint(const char *path, char *out, size_t n) {
    FILE *f = fopen(path, "rb");
    if (!f) return sf_errorf("cannot open '%s'", path);
    unsigned char buf[1 << 16];
    uLong crc = crc32(0L, Z_NULL, 0);
    long long size = 0;
    size_t got;
    while ((got = fread(buf, 1, sizeof buf, f)) > 0) {
        crc = crc32(crc, buf, (uInt)got);
        size += (long long)got;
    }
    fclose(f);
    snprintf(out, n, "%lld bytes, crc32 %08lx", size, (unsigned long)crc);
    return SF_OK;
}

/* The settings a resumed run must share with the original one, as JSON text. */
static char *run_settings(const sf_train_opts *o) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddItemToObject(j, "lr", sf_json_float(o->lr));
    cJSON_AddNumberToObject(j, "batch_size", o->batch_size);
    char seed[32];
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)o->seed);
    cJSON_AddStringToObject(j, "seed", seed);
    cJSON_AddItemToObject(j, "weight_decay", sf_json_float(o->weight_decay));
    cJSON_AddStringToObject(j, "lradj", o->lradj);
    cJSON_AddNumberToObject(j, "warmup_epochs", o->warmup_epochs);
    if (o->lazy_adamw) cJSON_AddStringToObject(j, "optimizer", "lazy_adamw");
    if (o->ema > 0) cJSON_AddItemToObject(j, "ema", sf_json_float(o->ema));
    char fp[96] = "";
    if (o->data_path && file_fingerprint(o->data_path, fp, sizeof fp) == SF_OK)
        cJSON_AddStringToObject(j, "data", fp);
    char *s = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    return s;
}

static int save_state(const char *dir, const sf_model *m, const sf_adamw *opt, const sf_rng *rng,
                      const run_state *rs, int n_epochs, const char *settings) {
    char *path = dir_file(dir, "train_state.safetensors");
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
        {.name = "ema_params", .ndim = 1, .shape = {n}, .data = rs->ema},
    };
    char best_val[64];
    snprintf(best_val, sizeof best_val, "%.17g", rs->best_val);
    char *config = sf_model_config_json(m, 0);
    sf_st_meta meta[] = {{"format_version", "2"},
                         {"config", config},
                         {"best_val", best_val},
                         {"settings", settings}};
    int rc = sf_safetensors_write(path, t, rs->ema ? 9 : 8, meta, 4);
    free(config);
    free(th);
    free(path);
    return rc;
}

static const int64_t *get_i64(const sf_safetensors *st, const char *path, const char *name,
                              int64_t want) {
    int nd;
    int64_t shape[8];
    const int64_t *v = sf_safetensors_get_i64(st, name, &nd, shape);
    if (!v || nd != 1 || shape[0] != want) {
        sf_errorf("%s: training state tensor '%s' is missing or not I64 [%lld]", path, name,
                  (long long)want);
        return NULL;
    }
    return v;
}

/* Names the first setting that differs between the stored and the current run. */
static int check_settings(const char *path, const char *stored, const char *mine) {
    cJSON *a = stored ? cJSON_Parse(stored) : NULL, *b = cJSON_Parse(mine);
    int rc = SF_OK;
    if (!a) {
        rc = sf_errorf("%s: training state has no run settings; it was written by another "
                       "version — start a new run", path);
        goto done;
    }
    for (const cJSON *e = b->child; e; e = e->next) {
        const cJSON *o = cJSON_GetObjectItemCaseSensitive(a, e->string);
        if (!o || !cJSON_Compare(o, e, 1)) {
            char *was = o ? cJSON_PrintUnformatted(o) : sf_strdup("(absent)");
            char *now = cJSON_PrintUnformatted(e);
            rc = sf_errorf("%s: --resume with a different %s (the run used %s, now %s); resume "
                           "with the same flags and data, or start a new --out",
                           path, e->string, was, now);
            free(was);
            free(now);
            break;
        }
    }
    /* a setting only the stored run has (an option written only when not the default, such as
     * optimizer lazy_adamw) also differs */
    for (const cJSON *e = a->child; e && rc == SF_OK; e = e->next)
        if (!cJSON_GetObjectItemCaseSensitive(b, e->string)) {
            char *was = cJSON_PrintUnformatted(e);
            rc = sf_errorf("%s: --resume with a different %s (the run used %s, now the default); "
                           "resume with the same flags and data, or start a new --out",
                           path, e->string, was);
            free(was);
        }
done:
    cJSON_Delete(a);
    cJSON_Delete(b);
    return rc;
}

static int load_state(const char *dir, sf_model *m, sf_adamw *opt, sf_rng *rng, run_state *rs,
                      int max_epochs, const char *settings) {
    char *path = dir_file(dir, "train_state.safetensors");
    sf_safetensors *st = NULL;
    int rc = SF_ERR;
    if (sf_safetensors_open(path, &st)) goto done;
    const char *config = sf_safetensors_meta(st, "config");
    char *mine = sf_model_config_json(m, 0);
    int same = config && strcmp(config, mine) == 0;
    free(mine);
    if (!same) {
        sf_errorf("%s: training state was made with a different model config; "
                  "resume with the same flags",
                  path);
        goto done;
    }
    if (check_settings(path, sf_safetensors_meta(st, "settings"), settings)) goto done;
    int64_t n = (int64_t)m->params.total;
    const int64_t *counters = get_i64(st, path, "counters", 5);
    const int64_t *rngs = counters ? get_i64(st, path, "rng", 4) : NULL;
    const char *best_val = sf_safetensors_meta(st, "best_val");
    if (!counters || !rngs) goto done;
    char *end = NULL;
    double bv = best_val ? strtod(best_val, &end) : 0;
    if (!best_val || end == best_val || *end) {
        sf_errorf("%s: training state metadata 'best_val' is missing or not a number", path);
        goto done;
    }
    int64_t ne = counters[1], be = counters[2], bad = counters[3];
    if (ne < 0 || ne > max_epochs) {
        sf_errorf("%s: training state is at epoch %lld, beyond --epochs %d", path, (long long)ne,
                  max_epochs);
        goto done;
    }
    if (counters[0] < 0 || be < -1 || be >= ne || bad < 0 || bad > ne) {
        sf_errorf("%s: training state counters are inconsistent (step %lld, epoch %lld, best "
                  "epoch %lld, bad epochs %lld)",
                  path, (long long)counters[0], (long long)ne, (long long)be, (long long)bad);
        goto done;
    }
    if (sf_safetensors_load_f32(st, "params", 1, &n, m->params.data) ||
        sf_safetensors_load_f32(st, "best_params", 1, &n, rs->best) ||
        sf_safetensors_load_f32(st, "adam.m", 1, &n, opt->m) ||
        sf_safetensors_load_f32(st, "adam.v", 1, &n, opt->v) ||
        (rs->ema && sf_safetensors_load_f32(st, "ema_params", 1, &n, rs->ema)))
        goto done;
    float *h = sf_malloc((size_t)(ne ? ne : 1) * sizeof(float));
    if (sf_safetensors_load_f32(st, "history.train_loss", 1, &ne, h)) {
        free(h);
        goto done;
    }
    for (int i = 0; i < ne; i++) rs->train_hist[i] = h[i];
    if (sf_safetensors_load_f32(st, "history.val_loss", 1, &ne, h)) {
        free(h);
        goto done;
    }
    for (int i = 0; i < ne; i++) rs->val_hist[i] = h[i];
    free(h);
    opt->t = counters[0];
    rs->next_epoch = (int)ne;
    rs->best_epoch = (int)be;
    rs->bad_epochs = (int)bad;
    rs->best_val = bv;
    memcpy(rng->s, rngs, sizeof rng->s);
    rc = SF_OK;
done:
    sf_safetensors_close(st);
    free(path);
    return rc;
}

/* ---- weight averaging (sf_train_opts.ema) ------------------------------------------------- */

void sf_train_ema_update(float *ema, const sf_params *ps, float decay, long t) {
    const float warm = (float)(1 + t) / (float)(10 + t);
    const float d = decay < warm ? decay : warm;
    for (int k = 0; k < ps->n; k++) {
        const sf_param *p = &ps->p[k];
        float *e = ema + p->offset;
        const float *w = ps->data + p->offset;
        if (p->buffer) {
            memcpy(e, w, p->numel * sizeof(float));
            continue;
        }
        for (size_t i = 0; i < p->numel; i++) e[i] = d * e[i] + (1.0f - d) * w[i];
    }
}

static void swap_floats(float *a, float *b, size_t n) {
    for (size_t i = 0; i < n; i++) {
        const float t = a[i];
        a[i] = b[i];
        b[i] = t;
    }
}

/* ---- outputs ------------------------------------------------------------------------------ */

static cJSON *metrics_json(const sf_metrics *mt) {
    cJSON *o = cJSON_CreateObject();
    for (int i = 0; i < mt->n; i++) cJSON_AddNumberToObject(o, mt->name[i], mt->value[i]);
    return o;
}

static cJSON *newton_json(const sf_newton_tally *t) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "solves", (double)t->solves);
    cJSON_AddNumberToObject(o, "iters_mean", t->solves ? (double)t->iters_sum / (double)t->solves : 0);
    cJSON_AddNumberToObject(o, "iters_max", t->iters_max);
    cJSON_AddItemToObject(o, "residual_max", sf_json_float(t->residual_max));
    cJSON_AddNumberToObject(o, "fallbacks", (double)t->fallbacks);
    return o;
}

static int write_metrics(const char *dir, const sf_model *m, const sf_train_result *r,
                         const sf_newton_tally *newton) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToObject(o, "val", metrics_json(&r->val));
    cJSON_AddItemToObject(o, "test", metrics_json(&r->test));
    cJSON_AddNumberToObject(o, "best_epoch", r->best_epoch + 1);
    cJSON_AddNumberToObject(o, "epochs_run", r->epochs_run);
    cJSON_AddNumberToObject(o, "train_seconds", r->seconds);
    cJSON_AddNumberToObject(o, "train_cpu_seconds", r->cpu_seconds);
    cJSON_AddNumberToObject(o, "steps", (double)r->steps);
    if (r->budget_reached) cJSON_AddTrueToObject(o, "time_budget_reached");
    cJSON_AddNumberToObject(o, "params", (double)sf_model_n_params(m));
    if (r->skipped_steps) cJSON_AddNumberToObject(o, "skipped_steps", (double)r->skipped_steps);
    /* the ParaRNN mixers' Newton solves of the final validation and test evaluation */
    if (newton) cJSON_AddItemToObject(o, "newton", newton_json(newton));
    char *s = cJSON_Print(o);
    cJSON_Delete(o);
    char *path = dir_file(dir, "metrics.json");
    size_t n = strlen(s);
    s[n] = '\n';
    int rc = sf_write_file_atomic(path, s, n + 1);
    free(path);
    free(s);
    return rc;
}

static double clock_seconds(clockid_t id) {
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double now_seconds(void) { return clock_seconds(CLOCK_MONOTONIC); }

/* Process CPU time: on a shared machine wall time measures our share of the CPU, not our work. */
static double cpu_seconds(void) { return clock_seconds(CLOCK_PROCESS_CPUTIME_ID); }

/* The cpu_seconds and wall_seconds columns of the last row of a --time-budget run's cpu_log.csv
 * (0 when the log is missing or has no rows; wall 0 in a log from before the column existed). */
static void last_logged_seconds(const char *path, double *cpu, double *wall) {
    *cpu = *wall = 0;
    FILE *f = fopen(path, "r");
    if (!f) return;
    char line[512];
    int epoch;
    long steps;
    double c, tl, vl, v2, w;
    while (fgets(line, sizeof line, f)) {
        int n = sscanf(line, "%d,%ld,%lf,%lf,%lf,%lf,%lf", &epoch, &steps, &c, &tl, &vl, &v2, &w);
        if (n >= 3) {
            *cpu = c;
            *wall = n == 7 ? w : 0;
        }
    }
    fclose(f);
}

int sf_train(sf_model *m, const sf_task *t, const sf_train_opts *o, sf_train_result *r) {
    memset(r, 0, sizeof *r);
    int nw = t->ops->n_examples(t, SF_TRAIN);
    if (nw < 1) return sf_errorf("no training examples");
    int B = o->batch_size < nw ? o->batch_size : nw;
    int steps = nw / B; /* drop the last incomplete training batch, as the reference loaders do */
    size_t total = m->params.total;
    float *x = sf_malloc((size_t)B * t->x_floats * sizeof(float));
    float *y = sf_malloc((size_t)B * t->y_floats * sizeof(float));
    float *out = sf_malloc((size_t)B * t->y_floats * sizeof(float));
    float *dy = sf_malloc((size_t)B * t->y_floats * sizeof(float));
    int *order = sf_malloc((size_t)nw * sizeof(int));
    run_state rs = {.best_val = INFINITY, .best_epoch = -1};
    sf_metrics best_val = {0}; /* the best epoch's validation metrics, when it ran in this process */
    int have_best_val = 0;
    rs.train_hist = sf_calloc((size_t)o->epochs + 1, sizeof(double));
    rs.val_hist = sf_calloc((size_t)o->epochs + 1, sizeof(double));
    rs.best = sf_malloc(total * sizeof(float));
    memcpy(rs.best, m->params.data, total * sizeof(float));
    if (o->ema > 0) {
        rs.ema = sf_malloc(total * sizeof(float));
        memcpy(rs.ema, m->params.data, total * sizeof(float));
    }
    sf_adamw opt;
    sf_adamw_init(&opt, &m->params, o->weight_decay);
    opt.lazy = o->lazy_adamw;
    sf_rng drop_rng;
    sf_rng_seed_stream(&drop_rng, o->seed, 2);
    sf_csv_log log = {0};
    FILE *cpu_log = NULL;
    sf_progress prog;
    int rc = SF_ERR, prog_open = 0;
    char *path = sf_malloc(strlen(o->out_dir) + 64);
    char *settings = run_settings(o);
    /* ParaRNN mixers solving by Newton: iterations, residual and fallbacks of each epoch's solves
     * go to the epoch log and train_log.csv, so a non-converging solve is seen where it happens */
    const int uses_newton = sf_config_uses_newton(m->config);
    sf_newton_tally newton = {0};
    if (uses_newton) m->run.newton = &newton;

    if (o->resume && load_state(o->out_dir, m, &opt, &drop_rng, &rs, o->epochs, settings))
        goto done;
    sprintf(path, "%s/train_log.csv", o->out_dir);
    if (o->resume && sf_csv_log_truncate(path, rs.next_epoch)) goto done;
    if (sf_csv_log_open_extra(&log, path, o->resume,
                              uses_newton ? "newton_iters_mean,newton_iters_max,newton_residual,"
                                            "newton_fallbacks"
                                          : NULL))
        goto done;
    sf_model_reserve(m, &m->run, B > o->eval_batch_size ? B : o->eval_batch_size, 1);
    sf_progress_init(&prog, stderr, o->progress_mode, o->epochs, steps);
    prog_open = 1;
    if (rs.next_epoch > 0)
        sf_progress_message(&prog, "resuming at epoch %d (best val %.6f at epoch %d)",
                            rs.next_epoch + 1, rs.best_val, rs.best_epoch + 1);
    /* CPU and wall seconds of the epochs before a --resume: the budget covers the whole run */
    double cpu_before = 0, wall_before = 0;
    if (o->time_budget > 0) {
        sprintf(path, "%s/cpu_log.csv", o->out_dir);
        if (o->resume) {
            if (sf_csv_log_truncate(path, rs.next_epoch)) goto done;
            last_logged_seconds(path, &cpu_before, &wall_before);
        }
        cpu_log = fopen(path, o->resume ? "a" : "w");
        if (!cpu_log) {
            sf_errorf("cannot write '%s'", path);
            goto done;
        }
        if (!o->resume)
            fprintf(cpu_log, "epoch,steps,cpu_seconds,train_loss,val_loss,val_metric2,wall_seconds\n");
    }
    double t0 = now_seconds(), c0 = cpu_seconds();
    int run_epochs = 0;
    for (int epoch = rs.next_epoch; epoch < o->epochs && rs.bad_epochs < o->patience; epoch++) {
        double te = now_seconds(), loss_sum = 0;
        int used = 0;
        /* The data order of an epoch depends only on (seed, epoch): resuming replays it. */
        sf_rng shuf;
        sf_rng_seed_stream(&shuf, o->seed, 1000 + (uint64_t)epoch);
        for (int i = 0; i < nw; i++) order[i] = i;
        sf_rng_shuffle_i32(&shuf, order, nw);
        if (t->def && t->def->begin_epoch) t->def->begin_epoch(t, o->seed, epoch);
        float lr = 0;
        memset(&newton, 0, sizeof newton);
        for (int s = 0; s < steps; s++) {
            t->ops->gather(t, SF_TRAIN, order + (size_t)s * B, B, x, y);
            sf_params_zero_grad(&m->params);
            sf_model_forward(m, x, out, B, 1, &drop_rng);
            double loss = t->ops->loss(t, out, y, dy, B);
            int finite = isfinite(loss);
            if (finite) {
                sf_model_backward(m, dy, B);
                /* one pass gives the norm for both clipping and the finiteness check (NaN and Inf
                 * make it non-finite; such a step is dropped, so clipping it does no harm) */
                finite = isfinite(sf_clip_grad_norm(&m->params, o->clip_grad));
            }
            if (!finite) {
                if (!o->skip_nonfinite) {
                    sf_errorf("training diverged at epoch %d, step %d: %s is not finite (lr %g); "
                              "lower --lr, set --clip-grad, or --skip-nonfinite to skip such steps",
                              epoch + 1, s + 1, isfinite(loss) ? "a gradient" : "the loss",
                              (double)sf_train_lr(o, epoch, s, steps));
                    goto done;
                }
                r->skipped_steps++;
                continue;
            }
            lr = sf_train_lr(o, epoch, s, steps);
            sf_adamw_step(&opt, &m->params, lr);
            if (rs.ema) sf_train_ema_update(rs.ema, &m->params, o->ema, (long)opt.t);
            loss_sum += loss;
            used++;
            sf_progress_step(&prog, epoch + 1, s + 1, loss);
        }
        if (used == 0) {
            sf_errorf("training diverged: every step of epoch %d had a non-finite loss or gradient",
                      epoch + 1);
            goto done;
        }
        sf_metrics val;
        /* with weight averaging, the average is what is validated and kept */
        if (rs.ema) swap_floats(m->params.data, rs.ema, total);
        sf_task_evaluate(t, m, SF_VAL, o->eval_batch_size, &val);
        if (rs.ema) swap_floats(m->params.data, rs.ema, total);
        double val_loss = val.value[0];
        if (!isfinite(val_loss)) {
            sf_errorf("training diverged at epoch %d: validation %s is not finite", epoch + 1,
                      val.name[0]);
            goto done;
        }
        double train_loss = loss_sum / used;
        rs.train_hist[epoch] = train_loss;
        rs.val_hist[epoch] = val_loss;
        int best = val_loss < rs.best_val - o->min_delta;
        if (best) {
            rs.best_val = val_loss;
            rs.best_epoch = epoch;
            rs.bad_epochs = 0;
            memcpy(rs.best, rs.ema ? rs.ema : m->params.data, total * sizeof(float));
            best_val = val;
            have_best_val = 1;
        } else {
            rs.bad_epochs++;
        }
        rs.next_epoch = epoch + 1;
        run_epochs++;
        double v1 = val.n > 1 ? val.value[1] : NAN;
        prog.val_names[0] = val.name[0];
        prog.val_names[1] = val.n > 1 ? val.name[1] : NULL;
        sf_progress_epoch_end(&prog, epoch + 1, train_loss, val_loss, val_loss, v1, lr, best);
        char newton_fields[96] = "";
        if (uses_newton) {
            char text[160];
            sf_newton_tally_format(&newton, text, sizeof text);
            if (newton.fallbacks)
                sf_progress_message(&prog, "warning: epoch %d newton: %s (residual above newton_tol "
                                    "after newton_iters: those solves fell back to the sequential "
                                    "loop)", epoch + 1, text);
            else
                sf_progress_message(&prog, "epoch %d newton: %s", epoch + 1, text);
            snprintf(newton_fields, sizeof newton_fields, "%.4g,%d,%.3g,%ld",
                     newton.solves ? (double)newton.iters_sum / (double)newton.solves : 0.0,
                     newton.iters_max, (double)newton.residual_max, newton.fallbacks);
        }
        if (sf_csv_log_append_row_extra(&log, epoch + 1, train_loss, val_loss, val_loss, v1, lr,
                                        now_seconds() - te, uses_newton ? newton_fields : NULL))
            goto done;
        sprintf(path, "%s/loss.svg", o->out_dir);
        /* the plot numbers epochs from 1 */
        if (sf_svg_loss_plot(path, "seqformer: loss per epoch", rs.train_hist, rs.val_hist,
                             rs.next_epoch, rs.best_epoch + 1))
            goto done;
        if (save_state(o->out_dir, m, &opt, &drop_rng, &rs, o->epochs, settings)) goto done;
        if (cpu_log) {
            double used_cpu = cpu_before + cpu_seconds() - c0;
            double used_wall = wall_before + now_seconds() - t0;
            fprintf(cpu_log, "%d,%ld,%.3f,%.6f,%.6f,%.6f,%.3f\n", epoch + 1,
                    (long)(epoch + 1) * steps, used_cpu, train_loss, val_loss, v1, used_wall);
            fflush(cpu_log);
            double used = o->budget_wall ? used_wall : used_cpu;
            if (used >= o->time_budget && rs.next_epoch < o->epochs) {
                r->budget_reached = 1;
                sf_progress_message(&prog, "time budget: %.0f %s seconds used (budget %g) after "
                                    "epoch %d", used, o->budget_wall ? "wall" : "CPU",
                                    (double)o->time_budget, epoch + 1);
                break;
            }
        }
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
    prog_open = 0;
    r->seconds = now_seconds() - t0;
    r->cpu_seconds = cpu_seconds() - c0;
    r->steps = (long)rs.next_epoch * steps;
    r->epochs_run = rs.next_epoch;
    r->best_epoch = rs.best_epoch;
    if (r->interrupted) {
        rc = SF_OK;
        goto done;
    }
    memcpy(m->params.data, rs.best, total * sizeof(float));
    memset(&newton, 0, sizeof newton);
    /* The best epoch's validation ran on exactly these values (weights, BatchNorm buffers and
     * random features are all in params.data, and evaluation does not depend on the thread
     * count), so its metrics are reused instead of a second pass over the validation set.
     * Evaluated again when the best epoch is from before a
     * --resume, when the Newton tally of the final passes goes into metrics.json, or with
     * SF_TRAIN_REEVALUATE_VAL=1 (test_cli_train.sh compares the two). */
    const char *reeval = getenv("SF_TRAIN_REEVALUATE_VAL");
    if (have_best_val && !uses_newton && !(reeval && strcmp(reeval, "0") != 0))
        r->val = best_val;
    else
        sf_task_evaluate(t, m, SF_VAL, o->eval_batch_size, &r->val);
    sf_task_evaluate(t, m, SF_TEST, o->eval_batch_size, &r->test);
    sprintf(path, "%s/model.safetensors", o->out_dir);
    sf_meta meta = {0};
    t->ops->save_meta(t, &meta);
    int saved = sf_checkpoint_save(path, m, &meta);
    sf_meta_free(&meta);
    if (saved) goto done;
    if (write_metrics(o->out_dir, m, r, uses_newton ? &newton : NULL)) goto done;
    rc = SF_OK;
done:
    m->run.newton = NULL; /* the tally lives on this stack */
    if (prog_open) sf_progress_finish(&prog);
    if (sf_csv_log_close(&log) && rc == SF_OK) rc = SF_ERR;
    if (cpu_log && fclose(cpu_log) && rc == SF_OK) rc = sf_errorf("cannot write cpu_log.csv");
    sf_adamw_free(&opt);
    free(rs.train_hist);
    free(rs.val_hist);
    free(rs.best);
    free(rs.ema);
    free(x);
    free(y);
    free(out);
    free(dy);
    free(order);
    free(path);
    free(settings);
    return rc;
}
