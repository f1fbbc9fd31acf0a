/* Optimizer, weight average and schedule: AdamW against a plain double-precision transcription of
 * torch.optim.AdamW's update, the --ema moving average against one of its own, weight decay skipped
 * for no_decay tensors, global-norm clipping, and the warm-up + type3 learning-rate schedule.
 * Crafted training-state files (wrong tensor shapes, inconsistent counters, missing settings) are
 * rejected with a message, and a good one still resumes. */
#include <string.h>

#include "core/error.h"
#include "core/fileio.h"
#include "core/safetensors.h"
#include "tasks/forecast.h"
#include "train/adamw.h"
#include "train/trainer.h"
#include "util/progress.h"
#include "test_util.h"
#include "test_tmpdir.h"

static void test_adamw(sf_rng *rng) {
    sf_params ps;
    sf_params_init(&ps);
    float *w, *dw, *b, *db;
    sf_params_declare(&ps, "w", 2, (int64_t[]){3, 5}, &w, &dw, 0);
    sf_params_declare(&ps, "b", 1, (int64_t[]){5}, &b, &db, 1);
    sf_params_alloc(&ps);
    sf_rng_fill_normal(rng, w, 15, 0, 1);
    sf_rng_fill_normal(rng, b, 5, 0, 1);
    double ref[20], m[20] = {0}, v[20] = {0};
    for (int i = 0; i < 15; i++) ref[i] = w[i];
    for (int i = 0; i < 5; i++) ref[15 + i] = b[i];
    sf_adamw opt;
    sf_adamw_init(&opt, &ps, 0.1f);
    const double lr = 1e-2, b1 = 0.9, b2 = 0.999, eps = 1e-8, wd = 0.1;
    for (int t = 1; t <= 5; t++) {
        sf_rng_fill_normal(rng, dw, 15, 0, 1);
        sf_rng_fill_normal(rng, db, 5, 0, 1);
        for (int i = 0; i < 20; i++) {
            double g = i < 15 ? dw[i] : db[i - 15];
            if (i < 15) ref[i] -= lr * wd * ref[i]; /* decoupled decay, weights only */
            m[i] = b1 * m[i] + (1 - b1) * g;
            v[i] = b2 * v[i] + (1 - b2) * g * g;
            double mh = m[i] / (1 - pow(b1, t)), vh = v[i] / (1 - pow(b2, t));
            ref[i] -= lr * mh / (sqrt(vh) + eps);
        }
        sf_adamw_step(&opt, &ps, (float)lr);
    }
    double worst = 0;
    for (int i = 0; i < 20; i++) {
        double got = i < 15 ? w[i] : b[i - 15];
        double e = fabs(got - ref[i]);
        if (e > worst) worst = e;
    }
    printf("AdamW vs reference after 5 steps: max abs err %.2e\n", worst);
    CHECK(worst < 1e-5);
    /* clipping: norm reported before clipping, gradients scaled to max_norm */
    for (int i = 0; i < 15; i++) dw[i] = 1.0f;
    for (int i = 0; i < 5; i++) db[i] = 1.0f;
    double norm = sf_clip_grad_norm(&ps, 2.0);
    CHECK_NEAR(norm, sqrt(20.0), 1e-5);
    double s = 0;
    for (size_t i = 0; i < ps.total; i++) s += (double)ps.grad[i] * ps.grad[i];
    CHECK_NEAR(sqrt(s), 2.0, 1e-4);
    CHECK_NEAR(sf_clip_grad_norm(&ps, 0.0), sqrt(s), 1e-5); /* 0: report only */
    sf_adamw_free(&opt);
    sf_params_free(&ps);
}

/* The weights' moving average (--ema) against a double-precision transcription: warmed-up decay
 * min(decay, (1 + t) / (10 + t)) on trained tensors, buffers (BatchNorm statistics) copied. */
static void test_ema(sf_rng *rng) {
    sf_params ps;
    sf_params_init(&ps);
    float *w, *dw, *run;
    sf_params_declare(&ps, "w", 1, (int64_t[]){7}, &w, &dw, 0);
    sf_params_declare_buffer(&ps, "running_mean", 1, (int64_t[]){3}, &run);
    sf_params_alloc(&ps);
    /* tensors sit at aligned offsets in ps.data: index the average by each tensor's offset */
    float *ema = sf_malloc(ps.total * sizeof(float));
    float *ew = ema + ps.p[0].offset, *erun = ema + ps.p[1].offset;
    double ref[7];
    sf_rng_fill_normal(rng, w, 7, 0, 1);
    sf_rng_fill_normal(rng, run, 3, 0, 1);
    memcpy(ema, ps.data, ps.total * sizeof(float));
    for (int i = 0; i < 7; i++) ref[i] = w[i];
    const double decay = 0.95;
    for (long t = 1; t <= 40; t++) {
        sf_rng_fill_normal(rng, w, 7, 0, 1);
        sf_rng_fill_normal(rng, run, 3, 0, 1);
        sf_train_ema_update(ema, &ps, (float)decay, t);
        double d = fmin(decay, (1.0 + t) / (10.0 + t));
        for (int i = 0; i < 7; i++) ref[i] = d * ref[i] + (1 - d) * w[i];
    }
    double worst = 0;
    for (int i = 0; i < 7; i++) worst = fmax(worst, fabs(ew[i] - ref[i]));
    printf("weight EMA vs reference after 40 steps: max abs err %.2e\n", worst);
    CHECK(worst < 3e-7); /* float rounding of 40 updates of O(1) values */
    for (int i = 0; i < 3; i++) CHECK(erun[i] == run[i]); /* buffers copied exactly */
    free(ema);
    sf_params_free(&ps);
}

static void test_schedule(void) {
    sf_train_opts o;
    sf_train_opts_defaults(&o, "patchtst");
    int spe = 10;
    CHECK_NEAR(sf_train_lr(&o, 0, 0, spe), 0.04 * o.lr, 1e-10);            /* warm-up start */
    CHECK(sf_train_lr(&o, 0, 5, spe) > sf_train_lr(&o, 0, 4, spe));         /* rising */
    CHECK_NEAR(sf_train_lr(&o, 1, 0, spe), o.lr, 1e-10);                    /* peak */
    CHECK_NEAR(sf_train_lr(&o, 3, 0, spe), o.lr, 1e-10);
    CHECK_NEAR(sf_train_lr(&o, 4, 0, spe), o.lr * 0.9, 1e-9);               /* type3 decay */
    CHECK_NEAR(sf_train_lr(&o, 13, 7, spe), o.lr * pow(0.9, 10), 1e-9);
    strcpy(o.lradj, "cosine");
    CHECK_NEAR(sf_train_lr(&o, o.epochs, 0, spe), 0.0, 1e-9);
    strcpy(o.lradj, "constant");
    CHECK_NEAR(sf_train_lr(&o, 50, 3, spe), o.lr, 1e-10);
    /* type1: LTSF-Linear's adjust_learning_rate sets lr * 0.5^(e-1) after epoch e (1-based), so
     * the first two epochs (0-based 0 and 1) train at lr, epoch 2 at lr/2, epoch 9 at lr/2^8 */
    sf_train_opts_defaults(&o, "dlinear");
    CHECK(o.warmup_epochs == 0 && o.epochs == 10 && o.patience == 3 && o.batch_size == 32);
    CHECK_NEAR(sf_train_lr(&o, 0, 0, spe), o.lr, 1e-10);
    CHECK_NEAR(sf_train_lr(&o, 0, 9, spe), o.lr, 1e-10);
    CHECK_NEAR(sf_train_lr(&o, 1, 5, spe), o.lr, 1e-10);
    CHECK_NEAR(sf_train_lr(&o, 2, 0, spe), o.lr * 0.5, 1e-10);
    CHECK_NEAR(sf_train_lr(&o, 9, 3, spe), o.lr * pow(0.5, 8), 1e-12);
    sf_train_opts_defaults(&o, "informer");
    CHECK(!strcmp(o.lradj, "type1") && o.epochs == 6 && o.batch_size == 32 && o.patience == 3);
    sf_train_opts_defaults(&o, "itransformer");
    CHECK(!strcmp(o.lradj, "type1") && fabs(o.lr - 1e-4) < 1e-10 && o.min_delta == 0);
}

/* ---- crafted training-state files are rejected, never read out of bounds -------------------- */

typedef struct {
    const char *name;
    int ndim;
    int64_t shape[2];
    const float *f;
    const int64_t *i;
} st_entry;

/* Rewrite DIR/train_state.safetensors from `orig` with one change applied by `edit`. */
static void rewrite_state(const char *path, const sf_safetensors *orig, const char *drop_tensor,
                          const char *i64_name, const int64_t *i64_data, int64_t i64_len,
                          const char *meta_key, const char *meta_value) {
    int n = sf_safetensors_count(orig), k = 0;
    sf_st_tensor_in *t = sf_calloc((size_t)n, sizeof *t);
    for (int i = 0; i < n; i++) {
        const char *name = sf_safetensors_name(orig, i);
        if (drop_tensor && !strcmp(name, drop_tensor)) continue;
        int nd;
        int64_t shape[8];
        sf_st_tensor_in *e = &t[k++];
        e->name = name;
        const int64_t *iv = sf_safetensors_get_i64(orig, name, &nd, shape);
        if (iv) {
            e->dtype = SF_ST_I64;
            e->data_i64 = iv;
        } else {
            e->data = sf_safetensors_get(orig, name, &nd, shape);
        }
        e->ndim = nd;
        for (int d = 0; d < nd; d++) e->shape[d] = shape[d];
        if (i64_name && !strcmp(name, i64_name)) {
            e->data_i64 = i64_data;
            e->ndim = 1;
            e->shape[0] = i64_len;
        }
    }
    int nm = sf_safetensors_meta_count(orig), km = 0;
    sf_st_meta *meta = sf_calloc((size_t)nm, sizeof *meta);
    for (int i = 0; i < nm; i++) {
        const char *key = sf_safetensors_meta_key(orig, i);
        if (meta_key && !strcmp(key, meta_key) && !meta_value) continue;
        meta[km].key = key;
        meta[km++].value = meta_key && !strcmp(key, meta_key) ? meta_value : sf_safetensors_meta(orig, key);
    }
    CHECK(sf_safetensors_write(path, t, k, meta, km) == SF_OK);
    free(t);
    free(meta);
}

static void test_crafted_state(void) {
    if (test_tmpdir_create("sf_trainer")) return;
    cJSON *raw = cJSON_Parse("{\"model\":\"dlinear\",\"seq_len\":48,\"pred_len\":12}"), *cfg;
    CHECK(sf_config_normalize(raw, &cfg) == SF_OK);
    cJSON_Delete(raw);
    sf_task t;
    sf_task_args ta = {.data = "data/ETTh1.csv", .features = 'M'};
    CHECK_MSG(sf_task_forecast.open_train(&t, &ta, &cfg, 0) == SF_OK, "%s", sf_error_message());
    sf_model m;
    CHECK(sf_model_create(&m, cfg) == SF_OK);
    sf_model_init_weights(&m, 1);
    sf_train_opts o;
    sf_train_opts_defaults(&o, "dlinear");
    o.epochs = 3;
    o.stop_after = 1;
    o.out_dir = g_dir;
    o.data_path = "data/ETTh1.csv";
    o.progress_mode = SF_PROGRESS_QUIET;
    sf_train_result r;
    CHECK(sf_train(&m, &t, &o, &r) == SF_OK && r.interrupted);
    const char *state = tmp_path("train_state.safetensors");
    const char *good = tmp_path("good_state.safetensors");
    void *bytes;
    size_t nbytes;
    CHECK(sf_read_file(state, &bytes, &nbytes) == SF_OK);
    CHECK(sf_write_file_atomic(good, bytes, nbytes) == SF_OK);
    free(bytes);
    sf_safetensors *orig;
    CHECK(sf_safetensors_open(good, &orig) == SF_OK);
    int nd;
    int64_t shape[8];
    const int64_t *c = sf_safetensors_get_i64(orig, "counters", &nd, shape);
    int64_t short_counters[3] = {c[0], c[1], c[2]};
    int64_t bad_best[5] = {c[0], c[1], 7, c[3], c[4]};
    int64_t neg_step[5] = {-1, c[1], c[2], c[3], c[4]};
    int64_t short_rng[2] = {1, 2};
    struct {
        const char *what, *drop, *i64_name;
        const int64_t *i64;
        int64_t len;
        const char *meta_key, *meta_value, *msg;
    } cases[] = {
        {"counters [3]", NULL, "counters", short_counters, 3, NULL, NULL, "'counters' is missing or not I64 [5]"},
        {"best epoch 7 of 1", NULL, "counters", bad_best, 5, NULL, NULL, "counters are inconsistent"},
        {"negative step", NULL, "counters", neg_step, 5, NULL, NULL, "counters are inconsistent"},
        {"rng [2]", NULL, "rng", short_rng, 2, NULL, NULL, "'rng' is missing or not I64 [4]"},
        {"no counters", "counters", NULL, NULL, 0, NULL, NULL, "'counters' is missing"},
        {"best_val text", NULL, NULL, NULL, 0, "best_val", "abc", "'best_val' is missing or not a number"},
        {"no settings", NULL, NULL, NULL, 0, "settings", NULL, "has no run settings"},
        {"other config", NULL, NULL, NULL, 0, "config", "{\"model\":\"dlinear\"}", "different model config"},
    };
    o.resume = 1;
    o.stop_after = 0;
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        rewrite_state(state, orig, cases[i].drop, cases[i].i64_name, cases[i].i64, cases[i].len,
                      cases[i].meta_key, cases[i].meta_value);
        int rc = sf_train(&m, &t, &o, &r);
        CHECK_MSG(rc == SF_ERR && msg_has(cases[i].msg), "%s: got '%s'", cases[i].what,
                  rc ? sf_error_message() : "accepted");
    }
    /* the untouched state still resumes */
    CHECK(sf_write_file_atomic(state, "", 0) == SF_OK);
    CHECK(sf_read_file(good, &bytes, &nbytes) == SF_OK);
    CHECK(sf_write_file_atomic(state, bytes, nbytes) == SF_OK);
    free(bytes);
    CHECK_MSG(sf_train(&m, &t, &o, &r) == SF_OK && r.epochs_run == 3, "%s", sf_error_message());
    sf_safetensors_close(orig);
    sf_model_destroy(&m);
    sf_task_close(&t);
    cJSON_Delete(cfg);
    test_tmpdir_remove();
}

int main(void) {
    sf_rng rng;
    sf_rng_seed(&rng, test_seed());
    test_adamw(&rng);
    test_ema(&rng);
    test_schedule();
    test_crafted_state();
    return test_finish();
}
