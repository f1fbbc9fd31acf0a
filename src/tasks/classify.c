/* Time-series classification (UCR .tsv, UEA .ts; data/classify_data.h).
 *
 * Splits: the validation split is carved from the training file with the seed, stratified
 * (per class, a fraction `val_fraction` rounded, at least one example of every class with two or
 * more, never the last one); the test split is the --test file (without one, the validation
 * split stands in for it, and the banner says so). The classes are the training file's; a test
 * or eval file with another class is an error naming it.
 *
 * Normalisation ("normalize"): "channel" (default) standardises each channel by the mean and
 *   standard deviation of the training split's valid steps, stored in the checkpoint. UCR sets are
 *   already z-normalised per series, so there this changes almost nothing, while UEA sets keep
 *   their between-series amplitude differences (BasicMotions' standing vs running); "series"
 *   z-normalises every series and channel over its own valid steps (the UCR convention); "none"
 *   feeds the values as they are. Padding stays 0.
 *
 * Each example is x = [seq_len * C values, valid length] (model.h: reads_lengths) and y the
 * one-hot class [K]; the model returns K logits. Loss: cross-entropy of the softmax, optionally
 * with class weights ("balanced": w_k = n / (K n_k) over the training split, sklearn's and t2's
 * class-balanced weights), averaged over the batch as Keras does (sum w_i CE_i / n).
 * Metrics (tasks/class_metrics.h): log_loss first — it is the early-stopping metric (lower is
 * better; unweighted) — then accuracy, balanced_accuracy, cb_log_loss, roc_auc_micro/macro,
 * pr_auc_micro/macro; `eval` adds the confusion matrix and the class names. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/fileio.h"
#include "data/classify_data.h"
#include "models/checkpoint.h"
#include "models/t2.h"
#include "tasks/class_metrics.h"
#include "tasks/classify.h"
#include "tasks/task.h"
#include "util/svg_plot.h"

typedef enum { NORM_CHANNEL, NORM_SERIES, NORM_NONE } norm_kind;
static const char *const norm_names[] = {"channel", "series", "none"};

typedef struct {
    sf_class_data train, test;
    const sf_class_data *src[3];
    int *idx[3], n[3];
    int L, C, K, test_is_val;
    norm_kind norm;
    double *mean, *std; /* [C] (channel normalisation) */
    float *weight;      /* [K] class weights, or NULL */
    char weights_name[16];
    /* the evaluation in progress / last finished: probabilities and labels */
    float *p;
    int *y;
    long cap, n_eval;
    float augment; /* strength of the training-batch augmentation (0: off) */
    float mixup;   /* mixup's Beta(a, a) parameter a (0: off) */
    sf_rng aug;    /* their stream, reseeded from (seed, epoch) so --resume replays it */
    float *partner; /* [x_floats] a mixup partner series */
} classify;

static int parse_norm(const char *s, norm_kind *k) {
    for (int i = 0; i < 3; i++)
        if (s && !strcmp(s, norm_names[i])) {
            *k = (norm_kind)i;
            return SF_OK;
        }
    return sf_errorf("normalize: '%s' is not one of channel, series, none", s ? s : "(null)");
}

/* Mean and std per channel over the valid steps of the examples idx (std 1 when ~constant). */
static void channel_stats(const sf_class_data *d, const int *idx, int n, double *mean,
                          double *std) {
    int C = d->C;
    double *s = sf_calloc((size_t)C, sizeof(double)), *ss = sf_calloc((size_t)C, sizeof(double));
    double cnt = 0;
    for (int i = 0; i < n; i++) {
        int e = idx ? idx[i] : i;
        const float *x = d->x + (size_t)e * d->T * C;
        for (int t = 0; t < d->len[e]; t++)
            for (int c = 0; c < C; c++) s[c] += x[(size_t)t * C + c];
        cnt += d->len[e];
    }
    for (int c = 0; c < C; c++) mean[c] = s[c] / cnt;
    for (int i = 0; i < n; i++) {
        int e = idx ? idx[i] : i;
        const float *x = d->x + (size_t)e * d->T * C;
        for (int t = 0; t < d->len[e]; t++)
            for (int c = 0; c < C; c++) {
                double v = x[(size_t)t * C + c] - mean[c];
                ss[c] += v * v;
            }
    }
    for (int c = 0; c < C; c++) {
        std[c] = sqrt(ss[c] / cnt);
        if (!(std[c] > 1e-12)) std[c] = 1;
    }
    free(s);
    free(ss);
}

/* The channel of observation times when the model's positions are "time" (t2 on irregular
 * observations), else -1: times stay in their units (days), never normalised. */
static int time_channel_of(const cJSON *config) {
    const cJSON *pos = cJSON_GetObjectItemCaseSensitive(config, "positions");
    if (cJSON_IsString(pos)) return strcmp(pos->valuestring, "time") == 0 ? 0 : -1;
    const cJSON *kind = cJSON_GetObjectItemCaseSensitive(pos, "kind");
    if (!cJSON_IsString(kind) || strcmp(kind->valuestring, "time") != 0) return -1;
    const cJSON *ch = cJSON_GetObjectItemCaseSensitive(pos, "channel");
    return cJSON_IsNumber(ch) ? ch->valueint : 0;
}

/* Normalise every channel but `keep` (-1: all). */
static void normalize(sf_class_data *d, norm_kind k, const double *mean, const double *std,
                      int keep) {
    if (k == NORM_NONE) return;
    int C = d->C;
    double *m = sf_malloc((size_t)C * sizeof(double)), *sd = sf_malloc((size_t)C * sizeof(double));
    for (int e = 0; e < d->n; e++) {
        float *x = d->x + (size_t)e * d->T * C;
        if (k == NORM_SERIES) {
            sf_class_data one = {.n = 1, .T = d->T, .C = C, .x = x, .len = &d->len[e]};
            channel_stats(&one, NULL, 1, m, sd);
        } else {
            memcpy(m, mean, (size_t)C * sizeof(double));
            memcpy(sd, std, (size_t)C * sizeof(double));
        }
        if (keep >= 0 && keep < C) m[keep] = 0, sd[keep] = 1;
        for (int t = 0; t < d->len[e]; t++)
            for (int c = 0; c < C; c++)
                x[(size_t)t * C + c] = (float)((x[(size_t)t * C + c] - m[c]) / sd[c]);
    }
    free(m);
    free(sd);
}

/* ---- the task ops ------------------------------------------------------------------------ */

static int cl_n_examples(const sf_task *t, sf_split s) { return ((const classify *)t->self)->n[s]; }

/* Training-series augmentation for small sets (--augment F): the series times 1 + F g, shifted
 * by up to F len / 2 steps (the edge value repeated into the gap), plus noise of std F / 4
 * (g and the noise standard normal, the shift uniform; values are about unit scale after
 * normalisation). */
static void augment_series(float *x, int len, int C, float f, sf_rng *r) {
    float scale = 1.0f + f * sf_rng_normal(r);
    int reach = (int)(f * len / 2), shift = 0;
    if (reach > 0) shift = (int)(sf_rng_uniform(r) * (float)(2 * reach + 1)) - reach;
    if (shift > reach) shift = reach;
    float *tmp = sf_malloc((size_t)len * C * sizeof(float));
    for (int i = 0; i < len; i++) {
        int from = i - shift;
        from = from < 0 ? 0 : from >= len ? len - 1 : from;
        for (int ch = 0; ch < C; ch++)
            tmp[(size_t)i * C + ch] = scale * x[(size_t)from * C + ch] + 0.25f * f * sf_rng_normal(r);
    }
    memcpy(x, tmp, (size_t)len * C * sizeof(float));
    free(tmp);
}

static void cl_begin_epoch(const sf_task *t, uint64_t seed, int epoch) {
    classify *c = t->self;
    sf_rng_seed_stream(&c->aug, seed, 5000 + (uint64_t)epoch);
}

/* Training example e of split s into xk (x_floats values: the series padded with 0, then its
 * length) and, when yk is given, its one-hot class into yk [K]. */
static void gather_one(classify *c, sf_split s, int e, float *xk, float *yk) {
    const sf_class_data *d = c->src[s];
    size_t LC = (size_t)c->L * c->C;
    memset(xk, 0, LC * sizeof(float));
    memcpy(xk, d->x + (size_t)e * d->T * d->C, (size_t)d->len[e] * d->C * sizeof(float));
    xk[LC] = (float)d->len[e];
    if (s == SF_TRAIN && c->augment > 0) augment_series(xk, d->len[e], d->C, c->augment, &c->aug);
    if (yk) {
        memset(yk, 0, (size_t)c->K * sizeof(float));
        yk[d->label[e]] = 1.0f;
    }
}

/* mixup (Zhang et al., ICLR 2018; --mixup A): each training example becomes lam x + (1 - lam) x'
 * with the class lam y + (1 - lam) y', for a partner x' drawn from the whole training split and
 * lam ~ Beta(A, A); the mixed series is as long as the longer of the two (padding reads 0). */
static void mix_with_partner(classify *c, float *xk, float *yk) {
    size_t LC = (size_t)c->L * c->C;
    float *p = c->partner, *py = p + LC + 1;
    int e = c->idx[SF_TRAIN][sf_rng_below(&c->aug, (uint32_t)c->n[SF_TRAIN])];
    gather_one(c, SF_TRAIN, e, p, py);
    float lam = (float)sf_rng_beta(&c->aug, c->mixup, c->mixup);
    for (size_t i = 0; i < LC; i++) xk[i] = lam * xk[i] + (1 - lam) * p[i];
    if (p[LC] > xk[LC]) xk[LC] = p[LC];
    for (int k = 0; k < c->K; k++) yk[k] = lam * yk[k] + (1 - lam) * py[k];
}

static void cl_gather(const sf_task *t, sf_split s, const int *idx, int n, float *x, float *y) {
    classify *c = t->self;
    for (int k = 0; k < n; k++) {
        float *xk = x + (size_t)k * t->x_floats, *yk = y ? y + (size_t)k * c->K : NULL;
        gather_one(c, s, c->idx[s][idx[k]], xk, yk);
        if (s == SF_TRAIN && c->mixup > 0 && yk) mix_with_partner(c, xk, yk);
    }
}

static void softmax_row(const float *z, float *p, int K) {
    float mx = z[0];
    for (int k = 1; k < K; k++)
        if (z[k] > mx) mx = z[k];
    double sum = 0;
    for (int k = 0; k < K; k++) sum += exp((double)z[k] - mx);
    for (int k = 0; k < K; k++) p[k] = (float)(exp((double)z[k] - mx) / sum);
}

static int label_of(const float *y, int K) { return sf_argmax(y, K); }

/* Cross-entropy against the target distribution y (one-hot, or mixed by mixup):
 * loss_i = sum_k w_k y_k (lse(z) - z_k), so d loss_i / d z_k = (sum_j w_j y_j) p_k - w_k y_k. */
static double cl_loss(const sf_task *t, const float *out, const float *y, float *dy, int n) {
    const classify *c = t->self;
    int K = c->K;
    double total = 0;
    for (int i = 0; i < n; i++) {
        const float *z = out + (size_t)i * K, *yi = y + (size_t)i * K;
        float mx = z[0];
        for (int k = 1; k < K; k++)
            if (z[k] > mx) mx = z[k];
        double sum = 0;
        for (int k = 0; k < K; k++) sum += exp((double)z[k] - mx);
        double lse = mx + log(sum), wsum = 0;
        for (int k = 0; k < K; k++) {
            double wy = (c->weight ? c->weight[k] : 1.0) * yi[k];
            wsum += wy;
            total += wy * (lse - z[k]);
        }
        if (dy)
            for (int k = 0; k < K; k++) {
                double wy = (c->weight ? c->weight[k] : 1.0) * yi[k];
                dy[(size_t)i * K + k] = (float)((wsum * exp((double)z[k] - lse) - wy) / (double)n);
            }
    }
    return total / n;
}

static void cl_metrics_add(const sf_task *t, const float *out, const float *y, int n, double *acc) {
    classify *c = t->self;
    int K = c->K;
    long at = (long)acc[0]; /* examples of this evaluation so far: acc[0] is zeroed at its start */
    if (at + n > c->cap) {
        c->cap = 2 * (at + n);
        c->p = sf_realloc(c->p, (size_t)c->cap * K * sizeof(float));
        c->y = sf_realloc(c->y, (size_t)c->cap * sizeof(int));
    }
    for (int i = 0; i < n; i++) {
        softmax_row(out + (size_t)i * K, c->p + (size_t)(at + i) * K, K);
        c->y[at + i] = label_of(y + (size_t)i * K, K);
    }
    acc[0] += n;
}

static const char *const metric_names[8] = {"log_loss",      "accuracy",      "balanced_accuracy",
                                            "cb_log_loss",   "roc_auc_micro", "roc_auc_macro",
                                            "pr_auc_micro",  "pr_auc_macro"};

static void fill_metrics(const sf_class_metrics *cm, sf_metrics *out) {
    const double v[8] = {cm->log_loss,      cm->accuracy,      cm->balanced_accuracy,
                         cm->cb_log_loss,   cm->roc_auc_micro, cm->roc_auc_macro,
                         cm->pr_auc_micro,  cm->pr_auc_macro};
    out->n = 8;
    for (int i = 0; i < 8; i++) {
        out->name[i] = metric_names[i];
        out->value[i] = v[i];
    }
}

static void cl_metrics_finish(const sf_task *t, const double *acc, long n_total, sf_metrics *out) {
    classify *c = t->self;
    SF_ASSERT((long)acc[0] == n_total);
    c->n_eval = n_total;
    sf_class_metrics cm;
    sf_class_metrics_compute(c->p, c->y, n_total, c->K, &cm);
    fill_metrics(&cm, out);
}

const float *sf_classify_probabilities(const sf_task *t, long *n, int *K, char *const **names) {
    if (t->def != &sf_task_classify) return NULL;
    const classify *c = t->self;
    if (!c->p) return NULL;
    *n = c->n_eval;
    *K = c->K;
    *names = c->train.class_names;
    return c->p;
}

int sf_classify_set_probabilities(sf_task *t, const float *p, long n, sf_metrics *out) {
    if (t->def != &sf_task_classify) return sf_errorf("class probabilities: not a classify task");
    classify *c = t->self;
    if (!c->p || n != c->n_eval)
        return sf_errorf("class probabilities: %ld rows, but the last split scored had %ld", n,
                         c->p ? c->n_eval : 0);
    memcpy(c->p, p, (size_t)n * c->K * sizeof(float));
    sf_class_metrics cm;
    sf_class_metrics_compute(c->p, c->y, n, c->K, &cm);
    fill_metrics(&cm, out);
    return SF_OK;
}

static char *json_numbers(const double *v, int n) {
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; i < n; i++) cJSON_AddItemToArray(a, cJSON_CreateNumber(v[i]));
    char *s = cJSON_PrintUnformatted(a);
    cJSON_Delete(a);
    return s;
}

static void cl_save_meta(const sf_task *t, sf_meta *meta) {
    const classify *c = t->self;
    cJSON *a = cJSON_CreateArray();
    for (int k = 0; k < c->K; k++)
        cJSON_AddItemToArray(a, cJSON_CreateString(c->train.class_names[k]));
    char *names = cJSON_PrintUnformatted(a);
    cJSON_Delete(a);
    sf_meta_set(meta, "classes", names);
    free(names);
    sf_meta_set(meta, "normalize", norm_names[c->norm]);
    sf_meta_set(meta, "class_weights", c->weights_name);
    if (c->norm == NORM_CHANNEL) {
        char *m = json_numbers(c->mean, c->C), *s = json_numbers(c->std, c->C);
        sf_meta_set(meta, "channel_mean", m);
        sf_meta_set(meta, "channel_std", s);
        free(m);
        free(s);
    }
}

/* ---- plots and the eval report -------------------------------------------------------------- */

/* PREFIX (a trailing ".svg" dropped) + suffix. */
static char *plot_path(const char *prefix, const char *suffix) {
    size_t n = strlen(prefix);
    if (n >= 4 && !strcmp(prefix + n - 4, ".svg")) n -= 4;
    char *s = sf_malloc(n + strlen(suffix) + 1);
    memcpy(s, prefix, n);
    strcpy(s + n, suffix);
    return s;
}

/* ROC and PR curves (one-vs-rest per class, or of the second class when there are two) and the
 * confusion matrix: PREFIX_roc.svg, PREFIX_pr.svg, PREFIX_confusion.svg. */
static int write_plots(const char *prefix, const float *p, const int *y, long n, int K,
                       char *const *names) {
    int rc = SF_ERR, first = K == 2 ? 1 : 0;
    int ns = K - first;
    double *s = sf_malloc((size_t)(n ? n : 1) * sizeof(double));
    unsigned char *pos = sf_malloc((size_t)(n ? n : 1));
    double *cx = sf_malloc((size_t)ns * (n + 1) * sizeof(double));
    double *cy = sf_malloc((size_t)ns * (n + 1) * sizeof(double));
    sf_series *series = sf_calloc((size_t)ns, sizeof(sf_series));
    char **labels = sf_calloc((size_t)ns, sizeof(char *));
    char *path = NULL;
    long *cm = sf_malloc((size_t)K * K * sizeof(long));
    for (int pass = 0; pass < 2; pass++) {
        for (int k = first; k < K; k++) {
            int j = k - first;
            for (long i = 0; i < n; i++) {
                s[i] = p[(size_t)i * K + k];
                pos[i] = y[i] == k;
            }
            double *ax = cx + (size_t)j * (n + 1), *ay = cy + (size_t)j * (n + 1);
            long np = pass == 0 ? sf_roc_curve(s, pos, n, ax, ay) : sf_pr_curve(s, pos, n, ax, ay);
            double area = pass == 0 ? sf_roc_auc(s, pos, n) : sf_average_precision(s, pos, n);
            free(labels[j]);
            labels[j] = sf_malloc(strlen(names[k]) + 48);
            sprintf(labels[j], "%s (%s %.3f)", names[k], pass == 0 ? "AUC" : "AP", area);
            series[j] = (sf_series){labels[j], ax, ay, (int)np};
        }
        free(path);
        path = plot_path(prefix, pass == 0 ? "_roc.svg" : "_pr.svg");
        sf_plot_opts o;
        sf_plot_opts_init(&o);
        o.title = pass == 0 ? "ROC (one class vs the rest)" : "precision-recall (one class vs the rest)";
        o.xlabel = pass == 0 ? "false positive rate" : "recall";
        o.ylabel = pass == 0 ? "true positive rate" : "precision";
        if (sf_svg_plot(path, &o, series, ns)) goto out;
    }
    sf_confusion_matrix(p, y, n, K, cm);
    free(path);
    path = plot_path(prefix, "_confusion.svg");
    if (sf_svg_matrix_plot(path, "confusion matrix (rows: true class, columns: predicted)", cm, K,
                           (const char *const *)names))
        goto out;
    rc = SF_OK;
out:
    for (int j = 0; j < ns; j++) free(labels[j]);
    free(labels);
    free(series);
    free(cx);
    free(cy);
    free(s);
    free(pos);
    free(cm);
    free(path);
    return rc;
}

static cJSON *confusion_json(const float *p, const int *y, long n, int K) {
    long *cm = sf_malloc((size_t)K * K * sizeof(long));
    sf_confusion_matrix(p, y, n, K, cm);
    cJSON *rows = cJSON_CreateArray();
    for (int i = 0; i < K; i++) {
        cJSON *r = cJSON_CreateArray();
        for (int j = 0; j < K; j++) cJSON_AddItemToArray(r, cJSON_CreateNumber((double)cm[i * K + j]));
        cJSON_AddItemToArray(rows, r);
    }
    free(cm);
    return rows;
}

/* After sf_task_evaluate: the classes, the confusion matrix and (plot) the SVGs. */
static int cl_report(const sf_task *t, cJSON *out, const char *plot) {
    const classify *c = t->self;
    cJSON *names = cJSON_CreateArray();
    for (int k = 0; k < c->K; k++)
        cJSON_AddItemToArray(names, cJSON_CreateString(c->train.class_names[k]));
    cJSON_AddItemToObject(out, "classes", names);
    cJSON_AddItemToObject(out, "confusion_matrix", confusion_json(c->p, c->y, c->n_eval, c->K));
    if (plot && write_plots(plot, c->p, c->y, c->n_eval, c->K, c->train.class_names)) return SF_ERR;
    return SF_OK;
}

static void cl_close(sf_task *t) {
    classify *c = t->self;
    if (!c) return;
    sf_class_data_free(&c->train);
    sf_class_data_free(&c->test);
    for (int s = 0; s < 3; s++)
        if (!(s == SF_TEST && c->test_is_val)) free(c->idx[s]);
    free(c->mean);
    free(c->std);
    free(c->weight);
    free(c->p);
    free(c->y);
    free(c->partner);
    free(c);
    t->self = NULL;
}

static const sf_task_ops cl_ops = {cl_n_examples, cl_gather,    cl_loss, cl_metrics_add,
                                   cl_metrics_finish, cl_save_meta, cl_close, cl_report};

/* ---- opening ------------------------------------------------------------------------------- */

/* Stratified split of the training file: per class (in a seeded shuffle), round(frac * n_k)
 * examples go to validation, at least one when the class has two or more, never all. */
static void stratified_split(classify *c, uint64_t seed, double frac) {
    const sf_class_data *d = &c->train;
    int *order = sf_malloc((size_t)d->n * sizeof(int));
    for (int i = 0; i < d->n; i++) order[i] = i;
    sf_rng rng;
    sf_rng_seed_stream(&rng, seed, 77);
    sf_rng_shuffle_i32(&rng, order, d->n);
    c->idx[SF_TRAIN] = sf_malloc((size_t)d->n * sizeof(int));
    c->idx[SF_VAL] = sf_malloc((size_t)d->n * sizeof(int));
    c->n[SF_TRAIN] = c->n[SF_VAL] = 0;
    for (int k = 0; k < d->n_classes; k++) {
        int nk = 0;
        for (int i = 0; i < d->n; i++) nk += d->label[i] == k;
        int nv = (int)floor(frac * nk + 0.5);
        if (frac > 0 && nv < 1 && nk >= 2) nv = 1;
        if (nv >= nk) nv = nk - 1;
        for (int i = 0, taken = 0; i < d->n; i++) {
            int e = order[i];
            if (d->label[e] != k) continue;
            if (taken++ < nv) c->idx[SF_VAL][c->n[SF_VAL]++] = e;
            else c->idx[SF_TRAIN][c->n[SF_TRAIN]++] = e;
        }
    }
    /* keep the file order within each split (the trainer shuffles) */
    for (int s = 0; s < 2; s++) {
        int *v = c->idx[s], n = c->n[s];
        for (int i = 1; i < n; i++)
            for (int j = i; j > 0 && v[j - 1] > v[j]; j--) {
                int tmp = v[j];
                v[j] = v[j - 1];
                v[j - 1] = tmp;
            }
    }
    free(order);
}

static int check_fits(const char *path, const sf_class_data *d, int L, int C) {
    if (d->C != C)
        return sf_errorf("%s: %d channel%s per step, but the model reads %d", path, d->C,
                         d->C == 1 ? "" : "s", C);
    if (d->T > L)
        return sf_errorf("%s: a series of %d steps is longer than the model's seq_len %d", path,
                         d->T, L);
    return SF_OK;
}

static int cl_open_train(sf_task *t, const sf_task_args *a, cJSON **config, int has_channels) {
    memset(t, 0, sizeof *t);
    classify *c = sf_calloc(1, sizeof *c);
    t->def = &sf_task_classify;
    t->ops = &cl_ops;
    t->self = c;
    const char *w = a->class_weights ? a->class_weights : "none";
    if (parse_norm(a->normalize ? a->normalize : "channel", &c->norm)) goto fail;
    if (strcmp(w, "none") != 0 && strcmp(w, "balanced") != 0) {
        sf_errorf("class weights: '%s' is not one of none, balanced", w);
        goto fail;
    }
    snprintf(c->weights_name, sizeof c->weights_name, "%s", w);
    if (sf_class_data_load(a->data, &c->train)) goto fail;
    if (a->test) {
        if (sf_class_data_load(a->test, &c->test)) goto fail;
        if (c->test.C != c->train.C) {
            sf_errorf("%s: %d channels per step, but the training file %s has %d", a->test,
                      c->test.C, a->data, c->train.C);
            goto fail;
        }
        if (sf_class_data_relabel(&c->test, c->train.class_names, c->train.n_classes, a->test))
            goto fail;
    }
    c->C = c->train.C;
    c->K = c->train.n_classes;
    c->L = c->train.T > c->test.T ? c->train.T : c->test.T;
    if (c->K < 2) {
        sf_errorf("%s: only one class ('%s'); classification needs two or more", a->data,
                  c->train.class_names[0]);
        goto fail;
    }
    double frac = a->val_fraction;
    if (!(frac >= 0 && frac < 1)) {
        sf_errorf("validation fraction %g: must be in [0, 1)", frac);
        goto fail;
    }
    if (!(a->augment >= 0 && a->augment <= 1)) {
        sf_errorf("augmentation strength %g: must be in [0, 1]", a->augment);
        goto fail;
    }
    c->augment = (float)a->augment;
    if (!(a->mixup >= 0 && a->mixup <= 100)) {
        sf_errorf("mixup %g: must be in [0, 100] (0: off)", a->mixup);
        goto fail;
    }
    c->mixup = (float)a->mixup;
    sf_rng_seed_stream(&c->aug, a->seed, 5000);
    stratified_split(c, a->seed, frac);
    if (frac == 0) {
        /* no carve: train on the whole file and select the weights of the lowest loss on it (in
         * evaluation mode), as Fawaz et al.'s ResNet picks the lowest-training-loss model */
        c->n[SF_VAL] = c->n[SF_TRAIN];
        memcpy(c->idx[SF_VAL], c->idx[SF_TRAIN], (size_t)c->n[SF_TRAIN] * sizeof(int));
    }
    if (c->n[SF_VAL] == 0) {
        sf_errorf("%s: the validation split is empty (fraction %g of %d series); raise it", a->data,
                  frac, c->train.n);
        goto fail;
    }
    c->src[SF_TRAIN] = c->src[SF_VAL] = &c->train;
    if (a->test) {
        c->src[SF_TEST] = &c->test;
        c->n[SF_TEST] = c->test.n;
        c->idx[SF_TEST] = sf_malloc((size_t)c->test.n * sizeof(int));
        for (int i = 0; i < c->test.n; i++) c->idx[SF_TEST][i] = i;
    } else {
        c->test_is_val = 1;
        c->src[SF_TEST] = &c->train;
        c->n[SF_TEST] = c->n[SF_VAL];
        c->idx[SF_TEST] = c->idx[SF_VAL];
    }
    /* normalisation statistics from the training split only */
    c->mean = sf_calloc((size_t)c->C, sizeof(double));
    c->std = sf_calloc((size_t)c->C, sizeof(double));
    channel_stats(&c->train, c->idx[SF_TRAIN], c->n[SF_TRAIN], c->mean, c->std);
    int keep = time_channel_of(*config);
    if (keep >= 0 && keep < c->C) c->mean[keep] = 0, c->std[keep] = 1;
    if (keep >= 0 && c->mixup > 0) {
        sf_errorf("--mixup: the model reads observation times (positions 'time'), and mixing two "
                  "series step by step would mix their times");
        goto fail;
    }
    normalize(&c->train, c->norm, c->mean, c->std, keep);
    if (a->test) normalize(&c->test, c->norm, c->mean, c->std, keep);
    if (!strcmp(w, "balanced")) {
        c->weight = sf_calloc((size_t)c->K, sizeof(float));
        long *cnt = sf_calloc((size_t)c->K, sizeof(long));
        for (int i = 0; i < c->n[SF_TRAIN]; i++) cnt[c->train.label[c->idx[SF_TRAIN][i]]]++;
        for (int k = 0; k < c->K; k++)
            c->weight[k] = cnt[k] ? (float)((double)c->n[SF_TRAIN] / ((double)c->K * cnt[k])) : 0;
        free(cnt);
    }
    /* the data decide the model's shape */
    const struct {
        const char *key;
        int value;
    } shape[] = {{"seq_len", c->L}, {"n_channels", c->C}, {"n_classes", c->K}};
    for (int i = 0; i < 3; i++) {
        const cJSON *have = cJSON_GetObjectItemCaseSensitive(*config, shape[i].key);
        if (!have) {
            sf_errorf("model '%s' has no option %s: it is not a classifier (use --model t2)",
                      sf_opt_str(*config, "model"), shape[i].key);
            goto fail;
        }
        if (i == 1 && has_channels && have->valueint != c->C) {
            sf_errorf("n_channels: the config says %d, but %s has %d channels", have->valueint,
                      a->data, c->C);
            goto fail;
        }
        cJSON_ReplaceItemInObjectCaseSensitive(*config, shape[i].key,
                                               cJSON_CreateNumber(shape[i].value));
    }
    t->x_floats = (long)c->L * c->C + 1;
    t->y_floats = c->K;
    if (c->mixup > 0) c->partner = sf_malloc(((size_t)t->x_floats + (size_t)c->K) * sizeof(float));
    return SF_OK;
fail:
    sf_task_close(t);
    return SF_ERR;
}

static int parse_array(const char *key, const char *json, int n, double *num, char **str) {
    cJSON *a = json ? cJSON_Parse(json) : NULL;
    int rc = SF_ERR;
    if (!a || !cJSON_IsArray(a) || (n >= 0 && cJSON_GetArraySize(a) != n)) {
        sf_errorf("metadata '%s' is missing or not an array of %d entries", key, n);
        goto done;
    }
    for (int i = 0; i < cJSON_GetArraySize(a); i++) {
        cJSON *e = cJSON_GetArrayItem(a, i);
        if (num ? !cJSON_IsNumber(e) : !cJSON_IsString(e)) {
            sf_errorf("metadata '%s'[%d] is not a %s", key, i, num ? "number" : "string");
            goto done;
        }
        if (num) num[i] = e->valuedouble;
        else str[i] = sf_strdup(e->valuestring);
    }
    rc = SF_OK;
done:
    cJSON_Delete(a);
    return rc;
}

/* The stored protocol: class names, normalisation (and its statistics). */
typedef struct {
    char **names;
    int K;
    norm_kind norm;
    double *mean, *std;
} protocol;

static void protocol_free(protocol *p) {
    for (int k = 0; p->names && k < p->K; k++) free(p->names[k]);
    free(p->names);
    free(p->mean);
    free(p->std);
    memset(p, 0, sizeof *p);
}

static int read_protocol(const sf_model *m, const sf_meta *meta, protocol *p) {
    memset(p, 0, sizeof *p);
    if (!cJSON_GetObjectItemCaseSensitive(m->config, "n_classes"))
        return sf_errorf("the checkpoint's model is not a classifier");
    p->K = sf_opt_int(m->config, "n_classes");
    p->names = sf_calloc((size_t)p->K, sizeof(char *));
    p->mean = sf_calloc((size_t)m->n_channels, sizeof(double));
    p->std = sf_calloc((size_t)m->n_channels, sizeof(double));
    if (parse_array("classes", sf_meta_get(meta, "classes"), p->K, NULL, p->names) ||
        parse_norm(sf_meta_get(meta, "normalize"), &p->norm) ||
        (p->norm == NORM_CHANNEL &&
         (parse_array("channel_mean", sf_meta_get(meta, "channel_mean"), m->n_channels, p->mean,
                      NULL) ||
          parse_array("channel_std", sf_meta_get(meta, "channel_std"), m->n_channels, p->std,
                      NULL)))) {
        protocol_free(p);
        return sf_error_prefix("metadata");
    }
    return SF_OK;
}

/* Load a file for a checkpoint: its shape checked, its classes the checkpoint's (relabel), then
 * normalised as in training. */
static int load_for(const sf_model *m, const protocol *p, const char *path, int relabel,
                    sf_class_data *d) {
    if (sf_class_data_load(path, d)) return SF_ERR;
    if (check_fits(path, d, m->seq_len, m->n_channels) ||
        (relabel && sf_class_data_relabel(d, p->names, p->K, path))) {
        sf_class_data_free(d);
        return SF_ERR;
    }
    normalize(d, p->norm, p->mean, p->std, time_channel_of(m->config));
    return SF_OK;
}

static int cl_open_eval(sf_task *t, const sf_task_args *a, const sf_model *m, const sf_meta *meta) {
    memset(t, 0, sizeof *t);
    protocol p;
    if (read_protocol(m, meta, &p)) return SF_ERR;
    classify *c = sf_calloc(1, sizeof *c);
    t->def = &sf_task_classify;
    t->ops = &cl_ops;
    t->self = c;
    int rc = load_for(m, &p, a->data, 1, &c->train);
    c->norm = p.norm;
    protocol_free(&p);
    if (rc) {
        sf_task_close(t);
        return SF_ERR;
    }
    c->L = m->seq_len;
    c->C = m->n_channels;
    c->K = c->train.n_classes;
    snprintf(c->weights_name, sizeof c->weights_name, "none");
    /* every split is the whole file */
    c->idx[SF_TRAIN] = sf_malloc((size_t)c->train.n * sizeof(int));
    for (int i = 0; i < c->train.n; i++) c->idx[SF_TRAIN][i] = i;
    for (int s = 0; s < 3; s++) {
        c->src[s] = &c->train;
        c->n[s] = c->train.n;
        if (s) c->idx[s] = sf_malloc((size_t)c->train.n * sizeof(int));
        if (s) memcpy(c->idx[s], c->idx[SF_TRAIN], (size_t)c->train.n * sizeof(int));
    }
    t->x_floats = sf_model_x_floats(m);
    t->y_floats = c->K;
    return SF_OK;
}

static void cl_describe(const sf_task *t, FILE *f) {
    const classify *c = t->self;
    fprintf(f, "%d classes, %d channel%s, up to %d steps, %d/%d/%d train/val/test series%s, "
               "normalize %s, class weights %s",
            c->K, c->C, c->C == 1 ? "" : "s", c->L, c->n[SF_TRAIN], c->n[SF_VAL], c->n[SF_TEST],
            c->test_is_val ? " (no --test: test = the validation split)" : "", norm_names[c->norm],
            c->weights_name);
}

/* Gradient x input attribution of one series (works for any token mixer): d log p(class) / d x
 * by central differences (step 1e-2 on the normalised values, all 2*len*C perturbed copies in
 * batches through the inference forward), times x. PREFIX_attribution.svg draws each channel's
 * (normalised) series and its attribution, the latter scaled to the series' range. */
static int write_attribution(sf_model *m, const sf_class_data *d, int e, int cls,
                             const char *cls_name, const char *prefix) {
    int L = m->seq_len, C = d->C, n = d->len[e], K = sf_opt_int(m->config, "n_classes");
    long xs = sf_model_x_floats(m), LC = (long)L * C, nv = (long)n * C;
    const float h = 1e-2f;
    float *x0 = sf_calloc((size_t)xs, sizeof(float));
    memcpy(x0, d->x + (size_t)e * d->T * C, (size_t)nv * sizeof(float));
    x0[LC] = (float)n;
    int B = 32;
    float *xb = sf_malloc((size_t)B * xs * sizeof(float)), *z = sf_malloc((size_t)B * K * sizeof(float));
    float *p = sf_malloc((size_t)K * sizeof(float));
    double *lp = sf_malloc((size_t)2 * nv * sizeof(double));
    for (long start = 0; start < 2 * nv; start += B) {
        int k = 2 * nv - start < B ? (int)(2 * nv - start) : B;
        for (int i = 0; i < k; i++) {
            long j = (start + i) / 2;
            float *xi = xb + (size_t)i * xs;
            memcpy(xi, x0, (size_t)xs * sizeof(float));
            xi[j] += (start + i) % 2 ? -h : h;
        }
        sf_model_infer(m, xb, z, K, k);
        for (int i = 0; i < k; i++) {
            softmax_row(z + (size_t)i * K, p, K);
            lp[start + i] = log(p[cls] > 1e-30f ? p[cls] : 1e-30f);
        }
    }
    double *at = sf_malloc((size_t)nv * sizeof(double));
    double xmax = 0, amax = 0;
    for (long j = 0; j < nv; j++) {
        double g = (lp[2 * j] - lp[2 * j + 1]) / (2.0 * h);
        at[j] = g * x0[j];
        if (fabs(x0[j]) > xmax) xmax = fabs(x0[j]);
        if (fabs(at[j]) > amax) amax = fabs(at[j]);
    }
    double scale = amax > 0 ? (xmax > 0 ? xmax : 1) / amax : 1;
    sf_series *ser = sf_calloc((size_t)2 * C, sizeof(sf_series));
    double *vals = sf_malloc((size_t)2 * nv * sizeof(double));
    char (*names)[96] = sf_calloc((size_t)2 * C, sizeof *names);
    for (int c = 0; c < C; c++) {
        double *sv = vals + (size_t)c * n, *av = vals + nv + (size_t)c * n;
        for (int t = 0; t < n; t++) {
            sv[t] = x0[(size_t)t * C + c];
            av[t] = at[(size_t)t * C + c] * scale;
        }
        snprintf(names[2 * c], sizeof names[0], C > 1 ? "x[%d]" : "x", c);
        if (C > 1) snprintf(names[2 * c + 1], sizeof names[0], "attribution[%d] (x %.3g)", c, scale);
        else snprintf(names[2 * c + 1], sizeof names[0], "attribution (x %.3g)", scale);
        ser[2 * c] = (sf_series){names[2 * c], NULL, sv, n};
        ser[2 * c + 1] = (sf_series){names[2 * c + 1], NULL, av, n};
    }
    char title[256];
    snprintf(title, sizeof title, "series %d: gradient x input of log p(%s)", e, cls_name);
    char *path = plot_path(prefix, "_attribution.svg");
    sf_plot_opts o;
    sf_plot_opts_init(&o);
    o.title = title;
    o.xlabel = "step";
    o.ylabel = "normalised value / attribution";
    int rc = sf_svg_plot(path, &o, ser, 2 * C);
    free(path);
    free(names);
    free(vals);
    free(ser);
    free(at);
    free(lp);
    free(p);
    free(z);
    free(xb);
    free(x0);
    return rc;
}

/* Per-head attention maps of series e (models/t2.h), one heat-map panel per (block, head). */
static int write_attention(sf_model *m, const sf_class_data *d, int e, const char *cls_name,
                           const char *path) {
    long xs = sf_model_x_floats(m), LC = (long)m->seq_len * d->C;
    float *x0 = sf_calloc((size_t)xs, sizeof(float));
    memcpy(x0, d->x + (size_t)e * d->T * d->C, (size_t)d->len[e] * d->C * sizeof(float));
    x0[LC] = (float)d->len[e];
    sf_attention_maps am;
    int rc = sf_t2_attention_maps(m, x0, &am);
    free(x0);
    if (rc) return sf_error_prefix("predict: --attention-svg");
    char (*names)[48] = sf_calloc((size_t)am.n_maps, sizeof *names);
    const char **titles = sf_calloc((size_t)am.n_maps, sizeof *titles);
    for (int k = 0; k < am.n_maps; k++) {
        snprintf(names[k], sizeof names[k], "block %d head %d", am.block[k], am.head[k]);
        titles[k] = names[k];
    }
    char title[256];
    snprintf(title, sizeof title, "series %d (%d steps, predicted %s): softmax attention weights", e,
             am.len, cls_name);
    rc = sf_svg_heatmaps(path, title, am.p, am.n_maps, am.T, am.len, titles, 4);
    free(titles);
    free(names);
    sf_attention_maps_free(&am);
    return rc;
}

/* The class probabilities [d->n, K] of model m on the series d (loaded for m's protocol). */
static void probabilities_of(sf_model *m, const sf_class_data *d, int K, float *prob) {
    long xs = sf_model_x_floats(m), LC = (long)m->seq_len * m->n_channels;
    int B = 64;
    float *x = sf_malloc((size_t)B * xs * sizeof(float)), *z = sf_malloc((size_t)B * K * sizeof(float));
    for (int start = 0; start < d->n; start += B) {
        int n = d->n - start < B ? d->n - start : B;
        for (int k = 0; k < n; k++) {
            int e = start + k;
            float *xk = x + (size_t)k * xs;
            memset(xk, 0, (size_t)LC * sizeof(float));
            memcpy(xk, d->x + (size_t)e * d->T * d->C, (size_t)d->len[e] * d->C * sizeof(float));
            xk[LC] = (float)d->len[e];
        }
        sf_model_infer(m, x, z, K, n);
        for (int k = 0; k < n; k++) softmax_row(z + (size_t)k * K, prob + (size_t)(start + k) * K, K);
    }
    free(x);
    free(z);
}

int sf_classify_add_ensemble(const char *list, const char *data, char *const *names, int K, int n,
                             float *prob, int *members) {
    int rc = SF_OK;
    *members = 1;
    double *sum = sf_malloc((size_t)n * K * sizeof(double));
    float *q = sf_malloc((size_t)n * K * sizeof(float));
    for (long i = 0; i < (long)n * K; i++) sum[i] = prob[i];
    char *paths = sf_malloc(strlen(list) + 1);
    strcpy(paths, list);
    for (char *save = NULL, *path = strtok_r(paths, ",", &save); path && rc == SF_OK;
         path = strtok_r(NULL, ",", &save)) {
        sf_model m;
        sf_meta me;
        if (sf_checkpoint_load(path, &m, &me)) {
            rc = SF_ERR;
            break;
        }
        protocol p;
        memset(&p, 0, sizeof p);
        sf_class_data d;
        if (strcmp(sf_opt_str(m.config, "task"), "classify") != 0)
            rc = sf_errorf("--ensemble: %s is a %s checkpoint, not classify", path,
                           sf_opt_str(m.config, "task"));
        else if (read_protocol(&m, &me, &p))
            rc = sf_error_prefix("%s", path);
        else {
            int same = p.K == K;
            for (int k = 0; same && k < K; k++) same = !strcmp(p.names[k], names[k]);
            if (!same)
                rc = sf_errorf("--ensemble: %s has other classes than --model (or another order)", path);
            else if (load_for(&m, &p, data, 0, &d))
                rc = SF_ERR;
            else {
                SF_ASSERT(d.n == n); /* the same file */
                probabilities_of(&m, &d, K, q);
                for (long i = 0; i < (long)n * K; i++) sum[i] += q[i];
                ++*members;
                sf_class_data_free(&d);
            }
        }
        protocol_free(&p);
        sf_model_destroy(&m);
        sf_meta_free(&me);
    }
    if (rc == SF_OK)
        for (long i = 0; i < (long)n * K; i++) prob[i] = (float)(sum[i] / *members);
    free(paths);
    free(sum);
    free(q);
    return rc;
}

/* Per-series class probabilities as CSV: index, the file's label, the predicted class, then one
 * probability column per class (p_<name>). --plot: ROC, PR and confusion matrix over the series
 * whose label is one of the checkpoint's classes. */
static int cl_predict(sf_model *m, const sf_meta *meta, const sf_predict_args *a) {
    if (a->attention_svg && !a->item)
        return sf_errorf("predict: --attention-svg draws the attention of one series; give --object N");
    if (a->item && !a->plot && !a->attention_svg)
        return sf_errorf("predict: --object draws an attribution picture; give --plot too");
    protocol p;
    if (read_protocol(m, meta, &p)) return sf_error_prefix("%s", a->model ? a->model : "checkpoint");
    sf_class_data d;
    int rc = SF_ERR, K = p.K;
    if (load_for(m, &p, a->data, 0, &d)) {
        protocol_free(&p);
        return SF_ERR;
    }
    long e = -1; /* --object: checked before anything is written */
    if (a->item) {
        char *end;
        e = strtol(a->item, &end, 10);
        if (end == a->item || *end || e < 0 || e >= d.n) {
            sf_errorf("predict: --object '%s' is not a row of %s (0..%d)", a->item, a->data, d.n - 1);
            sf_class_data_free(&d);
            protocol_free(&p);
            return SF_ERR;
        }
    }
    float *prob = sf_malloc((size_t)d.n * K * sizeof(float));
    probabilities_of(m, &d, K, prob);
    int members;
    if (a->ensemble && sf_classify_add_ensemble(a->ensemble, a->data, p.names, K, d.n, prob, &members))
        goto done;
    sf_atomic_file f;
    FILE *out = stdout;
    if (a->out) {
        if (sf_atomic_open(&f, a->out)) goto done;
        out = f.fp;
    }
    fprintf(out, "index,label,predicted");
    for (int k = 0; k < K; k++) fprintf(out, ",p_%s", p.names[k]);
    fprintf(out, "\n");
    for (int i = 0; i < d.n; i++) {
        const float *pi = prob + (size_t)i * K;
        fprintf(out, "%d,%s,%s", i, d.class_names[d.label[i]], p.names[sf_argmax(pi, K)]);
        for (int k = 0; k < K; k++) fprintf(out, ",%.6g", (double)pi[k]);
        fprintf(out, "\n");
    }
    if (a->out && sf_atomic_commit(&f)) goto done;
    if (a->attention_svg &&
        write_attention(m, &d, (int)e, p.names[sf_argmax(prob + (size_t)e * K, K)], a->attention_svg))
        goto done;
    if (a->plot && a->item) { /* the attribution of one series, for its predicted class */
        int cls = sf_argmax(prob + (size_t)e * K, K);
        if (write_attribution(m, &d, (int)e, cls, p.names[cls], a->plot)) goto done;
    }
    if (a->plot) {
        /* the series whose label the checkpoint knows */
        int *y = sf_malloc((size_t)d.n * sizeof(int)), known = 0;
        float *pk = sf_malloc((size_t)d.n * K * sizeof(float));
        for (int i = 0; i < d.n; i++) {
            int lab = -1;
            for (int k = 0; k < K; k++)
                if (!strcmp(p.names[k], d.class_names[d.label[i]])) lab = k;
            if (lab < 0) continue;
            y[known] = lab;
            memcpy(pk + (size_t)known * K, prob + (size_t)i * K, (size_t)K * sizeof(float));
            known++;
        }
        int prc = write_plots(a->plot, pk, y, known, K, p.names);
        free(y);
        free(pk);
        if (prc) goto done;
    }
    if (a->out)
        fprintf(stderr, "seqformer: wrote class probabilities of %d series (%d classes) to %s\n",
                d.n, K, a->out);
    rc = SF_OK;
done:
    free(prob);
    sf_class_data_free(&d);
    protocol_free(&p);
    return rc;
}

const sf_task_def sf_task_classify = {
    .info = {"classify",
             "time-series classification (UCR .tsv, UEA .ts): cross-entropy; log-loss, accuracy, "
             "balanced accuracy, ROC-AUC, PR-AUC, confusion matrix",
             NULL, 0},
    .open_train = cl_open_train,
    .open_eval = cl_open_eval,
    .predict = cl_predict,
    .describe = cl_describe,
    .begin_epoch = cl_begin_epoch,
};
