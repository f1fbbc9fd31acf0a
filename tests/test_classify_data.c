/* UCR .tsv and UEA .ts loaders on small hand-written files (good ones, padded ones and every
 * kind of malformed one), class relabelling, the classification metrics against values
 * worked out by hand (scikit-learn's documented examples), the Beta sampler's moments, and the
 * classify task's mixup batches and soft-target loss (finite differences). */
#include <math.h>
#include <string.h>

#include "data/classify_data.h"
#include "tasks/class_metrics.h"
#include "tasks/task.h"
#include "test_tmpdir.h"
#include "test_util.h"

/* A load must fail with a message containing every one of the (up to 3) fragments. */
static void expect_error(int (*load)(const char *, sf_class_data *), const char *name,
                         const char *text, const char *a, const char *b, const char *c) {
    sf_class_data d;
    const char *p = text ? write_file(name, text) : tmp_path(name);
    int rc = load(p, &d);
    const char *msg = sf_error_message();
    CHECK_MSG(rc == SF_ERR, "%s loaded", name);
    CHECK_MSG(strstr(msg, a) && (!b || strstr(msg, b)) && (!c || strstr(msg, c)), "%s: '%s'", name,
              msg);
    printf("%-22s -> %s\n", name, msg);
}

static void test_ucr(void) {
    /* labels sorted numerically (-1 < 1 < 2 < 10), trailing NaNs are padding */
    const char *p = write_file("good.tsv", "1\t0.5\t1.5\t2.5\n"
                                           "10\t1\t2\tNaN\n"
                                           "-1\t3\tNaN\tNaN\r\n"
                                           "2\t4\t5\t6\n");
    sf_class_data d;
    CHECK_MSG(sf_ucr_load(p, &d) == SF_OK, "%s", sf_error_message());
    CHECK(d.n == 4 && d.T == 3 && d.C == 1 && d.n_classes == 4);
    CHECK(!strcmp(d.class_names[0], "-1") && !strcmp(d.class_names[1], "1") &&
          !strcmp(d.class_names[2], "2") && !strcmp(d.class_names[3], "10"));
    CHECK(d.label[0] == 1 && d.label[1] == 3 && d.label[2] == 0 && d.label[3] == 2);
    CHECK(d.len[0] == 3 && d.len[1] == 2 && d.len[2] == 1 && d.len[3] == 3);
    CHECK(d.x[3 + 1] == 2.0f && d.x[3 + 2] == 0.0f && d.x[6] == 3.0f && d.x[7] == 0.0f);
    /* relabel a "test" file into these classes; an unseen class is an error naming it */
    sf_class_data t;
    CHECK(sf_ucr_load(write_file("t.tsv", "2\t1\t2\t3\n-1\t1\t1\t1\n"), &t) == SF_OK);
    CHECK(sf_class_data_relabel(&t, d.class_names, d.n_classes, "t.tsv") == SF_OK);
    CHECK(t.n_classes == 4 && t.label[0] == 2 && t.label[1] == 0);
    sf_class_data_free(&t);
    CHECK(sf_ucr_load(write_file("u.tsv", "2\t1\t2\t3\n7\t1\t1\t1\n"), &t) == SF_OK);
    CHECK(sf_class_data_relabel(&t, d.class_names, d.n_classes, "u.tsv") == SF_ERR);
    CHECK_MSG(strstr(sf_error_message(), "class '7'") != NULL, "%s", sf_error_message());
    printf("unseen class           -> %s\n", sf_error_message());
    sf_class_data_free(&t);
    sf_class_data_free(&d);

    expect_error(sf_ucr_load, "ragged.tsv", "1\t1\t2\t3\n2\t1\t2\n", "ragged.tsv:2", "ragged", NULL);
    expect_error(sf_ucr_load, "inner_nan.tsv", "1\t1\tNaN\t3\n", "inner_nan.tsv:1", "field 3",
                 "inside");
    expect_error(sf_ucr_load, "text.tsv", "1\t1\t2\n1\t1\tabc\n", "text.tsv:2", "'abc'", NULL);
    expect_error(sf_ucr_load, "all_nan.tsv", "1\tNaN\tNaN\n", "all_nan.tsv:1", "no values", NULL);
    expect_error(sf_ucr_load, "nolabel.tsv", "\t1\t2\n", "nolabel.tsv:1", "empty class label", NULL);
    expect_error(sf_ucr_load, "empty.tsv", "\n\n", "empty.tsv", "no series", NULL);
    expect_error(sf_ucr_load, "missing.tsv", NULL, "missing.tsv", NULL, NULL);
}

static const char *ts_head = "# comment\n@problemName Toy\n@timeStamps false\n@missing true\n"
                             "@univariate false\n@dimensions 2\n@equalLength false\n"
                             "@classLabel true walk run\n@data\n";

static void test_uea(void) {
    char text[1024];
    snprintf(text, sizeof text, "%s1,2,3:4,5,6:run\r\n1.5,2.5:3.5,4.5:walk\n7,?,?:8,?,?:run\n",
             ts_head);
    sf_class_data d;
    CHECK_MSG(sf_uea_load(write_file("good.ts", text), &d) == SF_OK, "%s", sf_error_message());
    CHECK(d.n == 3 && d.T == 3 && d.C == 2 && d.n_classes == 2);
    CHECK(!strcmp(d.class_names[0], "walk") && !strcmp(d.class_names[1], "run"));
    CHECK(d.label[0] == 1 && d.label[1] == 0 && d.label[2] == 1);
    CHECK(d.len[0] == 3 && d.len[1] == 2 && d.len[2] == 1);
    /* [n, T, C]: example 0 step 1 = (2, 5); example 1 step 1 = (2.5, 4.5), step 2 padding */
    CHECK(d.x[2] == 2.0f && d.x[3] == 5.0f && d.x[6 + 2] == 2.5f && d.x[6 + 3] == 4.5f &&
          d.x[6 + 4] == 0.0f && d.x[12] == 7.0f && d.x[13] == 8.0f);
    sf_class_data_free(&d);

    snprintf(text, sizeof text, "%s1,2:3,4:run\n", "@problemName X\n@frobnicate 3\n");
    expect_error(sf_uea_load, "directive.ts", text, "directive.ts:2", "unknown directive",
                 "@frobnicate");
    snprintf(text, sizeof text, "%s1,2:3,4:jog\n", ts_head);
    expect_error(sf_uea_load, "label.ts", text, "label.ts:10", "'jog'", "@classLabel");
    snprintf(text, sizeof text, "%s1,2:3,4:5,6:run\n", ts_head);
    expect_error(sf_uea_load, "dims.ts", text, "dims.ts:10", "4 ':'-separated parts", NULL);
    snprintf(text, sizeof text, "%s1,?,3:4,5,6:run\n", ts_head);
    expect_error(sf_uea_load, "inner_missing.ts", text, "inner_missing.ts:10", "missing value",
                 "inside");
    snprintf(text, sizeof text, "%s1,2,3:4,5:run\n", ts_head);
    expect_error(sf_uea_load, "unequal_dims.ts", text, "unequal_dims.ts:10", "dimension 2 has 2",
                 NULL);
    snprintf(text, sizeof text, "%s1,x:4,5:run\n", ts_head);
    expect_error(sf_uea_load, "value.ts", text, "value.ts:10", "'x'", NULL);
    expect_error(sf_uea_load, "stamps.ts", "@timeStamps true\n@classLabel true a b\n@data\n",
                 "stamps.ts:1", "@timeStamps true", NULL);
    expect_error(sf_uea_load, "nolabels.ts", "@dimensions 1\n@data\n1,2\n", "nolabels.ts:2",
                 "@classLabel", NULL);
    expect_error(sf_uea_load, "equal.ts",
                 "@dimensions 1\n@equalLength true\n@seriesLength 3\n@classLabel true a b\n@data\n"
                 "1,2,3:a\n1,2:b\n",
                 "equal.ts:7", "@seriesLength is 3", NULL);
    expect_error(sf_uea_load, "nodata.ts", "@classLabel true a b\n", "nodata.ts", "no @data", NULL);
    expect_error(sf_uea_load, "before.ts", "1,2:a\n", "before.ts:1", "header directive", NULL);
    /* by extension: .ts is UEA */
    CHECK(sf_class_data_load(write_file("x.ts", "@classLabel true a b\n@data\n1,2:a\n3:b\n"), &d) ==
          SF_OK);
    CHECK(d.n == 2 && d.C == 1 && d.T == 2 && d.len[1] == 1);
    sf_class_data_free(&d);
}

static void test_metrics(void) {
    /* scikit-learn's roc_auc_score / average_precision_score examples: 0.75 and 0.8333 */
    const double s[4] = {0.1, 0.4, 0.35, 0.8};
    const unsigned char pos[4] = {0, 0, 1, 1};
    CHECK_NEAR(sf_roc_auc(s, pos, 4), 0.75, 1e-12);
    CHECK_NEAR(sf_average_precision(s, pos, 4), 0.8333333333333333, 1e-12);
    /* ties count half */
    const double st[4] = {0.5, 0.5, 0.5, 0.5};
    CHECK_NEAR(sf_roc_auc(st, pos, 4), 0.5, 1e-12);
    /* three classes */
    const float p[5 * 3] = {0.7f, 0.2f, 0.1f, 0.1f, 0.8f, 0.1f, 0.3f, 0.4f, 0.3f,
                            0.2f, 0.2f, 0.6f, 0.5f, 0.25f, 0.25f};
    const int y[5] = {0, 1, 2, 2, 1};
    sf_class_metrics m;
    sf_class_metrics_compute(p, y, 5, 3, &m);
    CHECK_NEAR(m.accuracy, 3.0 / 5, 1e-12);
    /* recalls: class 0 1/1, class 1 1/2, class 2 1/2 */
    CHECK_NEAR(m.balanced_accuracy, (1 + 0.5 + 0.5) / 3, 1e-12);
    double ll = -(log(0.7) + log(0.8) + log(0.3) + log(0.6) + log(0.25)) / 5;
    CHECK_NEAR(m.log_loss, ll, 1e-6);
    double cb = (-log(0.7) - (log(0.8) + log(0.25)) / 2 - (log(0.3) + log(0.6)) / 2) / 3;
    CHECK_NEAR(m.cb_log_loss, cb, 1e-6);
    long cm[9];
    sf_confusion_matrix(p, y, 5, 3, cm);
    const long want[9] = {1, 0, 0, 1, 1, 0, 0, 1, 1};
    CHECK(!memcmp(cm, want, sizeof want));
    /* scikit-learn 1.x on the one-hot labels: roc_auc_score micro 0.88, macro 0.9444...,
     * average_precision_score micro 0.825397, macro 0.9444... */
    CHECK_NEAR(m.roc_auc_micro, 0.88, 1e-12);
    CHECK_NEAR(m.roc_auc_macro, 0.9444444444444445, 1e-12);
    CHECK_NEAR(m.pr_auc_micro, 0.8253968253968254, 1e-12);
    CHECK_NEAR(m.pr_auc_macro, 0.9444444444444443, 1e-12);
    printf("metrics: acc %.3f bal %.3f ll %.4f cb %.4f auc micro %.4f macro %.4f ap micro %.4f "
           "macro %.4f\n",
           m.accuracy, m.balanced_accuracy, m.log_loss, m.cb_log_loss, m.roc_auc_micro,
           m.roc_auc_macro, m.pr_auc_micro, m.pr_auc_macro);
}

/* Sample mean and variance of n draws against the distribution's, within 6 standard errors
 * (the variance's standard error from the fourth central moment, estimated from the draws). */
static void check_moments(const char *what, const double *v, int n, double mean, double var) {
    double m = 0, m2 = 0, m4 = 0;
    for (int i = 0; i < n; i++) m += v[i];
    m /= n;
    for (int i = 0; i < n; i++) {
        double d = v[i] - m;
        m2 += d * d;
        m4 += d * d * d * d;
    }
    m2 /= n - 1;
    m4 /= n;
    double se_mean = sqrt(var / n), se_var = sqrt((m4 - m2 * m2) / n);
    printf("%-16s mean %.5f (want %.5f, se %.1e)  var %.5f (want %.5f, se %.1e)\n", what, m, mean,
           se_mean, m2, var, se_var);
    CHECK_MSG(fabs(m - mean) < 6 * se_mean, "%s: mean %g, want %g", what, m, mean);
    CHECK_MSG(fabs(m2 - var) < 6 * se_var, "%s: variance %g, want %g", what, m2, var);
}

static void test_beta_gamma(sf_rng *rng) {
    enum { N = 200000 };
    double *v = sf_malloc(N * sizeof(double));
    const double shapes[3] = {0.4, 1.0, 3.0};
    for (int s = 0; s < 3; s++) {
        char what[64];
        for (int i = 0; i < N; i++) v[i] = sf_rng_gamma(rng, shapes[s]);
        snprintf(what, sizeof what, "gamma(%g)", shapes[s]);
        check_moments(what, v, N, shapes[s], shapes[s]); /* mean = variance = shape */
        const double a = shapes[s], b = shapes[(s + 1) % 3];
        for (int i = 0; i < N; i++) {
            v[i] = sf_rng_beta(rng, a, b);
            CHECK(v[i] >= 0 && v[i] <= 1);
        }
        snprintf(what, sizeof what, "beta(%g, %g)", a, b);
        check_moments(what, v, N, a / (a + b), a * b / ((a + b) * (a + b) * (a + b + 1)));
    }
    free(v);
}

/* Opens the classify task on PATH (normalize none, no validation carve) with mixup A. */
static int open_classify(sf_task *t, const char *path, double mixup, const char *weights) {
    cJSON *cfg = cJSON_Parse("{\"model\": \"t2\", \"seq_len\": 0, \"n_channels\": 1, "
                             "\"n_classes\": 0, \"positions\": {\"kind\": \"sinusoidal\"}}");
    sf_task_args a = {.data = path, .normalize = "none", .class_weights = weights,
                      .val_fraction = 0, .seed = 11, .mixup = mixup};
    int rc = sf_task_classify.open_train(t, &a, &cfg, 0);
    cJSON_Delete(cfg);
    return rc;
}

/* Every class's series is constant (class 1: 1, class 2: 2, class 3: 4), so a mixed series must be
 * sum_k y_k v_k at every step, whatever lam and partner were drawn. */
static void test_mixup(sf_rng *rng) {
    const char *p = write_file("mix.tsv", "1\t1\t1\t1\t1\n1\t1\t1\t1\t1\n1\t1\t1\t1\t1\n"
                                          "2\t2\t2\t2\t2\n3\t4\t4\t4\t4\n");
    const float value[3] = {1, 2, 4};
    sf_task t;
    CHECK_MSG(open_classify(&t, p, 0.4, "balanced") == SF_OK, "%s", sf_error_message());
    enum { N = 5, K = 3, L = 4 };
    CHECK(t.x_floats == L + 1 && t.y_floats == K);
    float x[N * (L + 1)], y[N * K];
    int idx[N] = {0, 1, 2, 3, 4}, mixed = 0;
    double worst = 0;
    for (int epoch = 0; epoch < 20; epoch++) {
        sf_task_classify.begin_epoch(&t, 11, epoch);
        t.ops->gather(&t, SF_TRAIN, idx, N, x, y);
        for (int i = 0; i < N; i++) {
            const float *xi = x + i * (L + 1), *yi = y + i * K;
            double sum = 0, want = 0;
            int hot = 0;
            for (int k = 0; k < K; k++) {
                CHECK(yi[k] >= 0 && yi[k] <= 1);
                sum += yi[k];
                want += yi[k] * value[k];
                hot += yi[k] == 1.0f;
            }
            mixed += !hot;
            CHECK_NEAR(sum, 1.0, 1e-6);
            CHECK(xi[L] == L);
            for (int s = 0; s < L; s++) worst = fmax(worst, fabs(xi[s] - want) / want);
        }
    }
    printf("mixup: %d of %d training examples mixed, worst rel. error of x vs sum y_k v_k %.1e\n",
           mixed, 20 * N, worst);
    CHECK(mixed > 20 * N / 2);
    CHECK(worst < 2e-7);
    /* the validation split (here the training file) is never mixed */
    t.ops->gather(&t, SF_VAL, idx, N, x, y);
    for (int i = 0; i < N * K; i++) CHECK(y[i] == 0.0f || y[i] == 1.0f);

    /* soft-target, class-weighted cross-entropy: d loss / d z by central differences (z and the
     * step multiples of 2^-8, so z +- h is exact in float) */
    t.ops->gather(&t, SF_TRAIN, idx, N, x, y);
    float z[N * K], dz[N * K];
    for (int i = 0; i < N * K; i++) z[i] = (float)((int)(sf_rng_normal(rng) * 256) / 256.0);
    t.ops->loss(&t, z, y, dz, N);
    const float h = 1.0f / 256;
    double fd_worst = 0;
    for (int i = 0; i < N * K; i++) {
        float keep = z[i];
        z[i] = keep + h;
        double up = t.ops->loss(&t, z, y, NULL, N);
        z[i] = keep - h;
        double down = t.ops->loss(&t, z, y, NULL, N);
        z[i] = keep;
        fd_worst = fmax(fd_worst, fabs((up - down) / (2 * h) - dz[i]));
    }
    printf("soft-target loss: worst |finite difference - gradient| %.1e\n", fd_worst);
    CHECK(fd_worst < 2e-6);
    sf_task_close(&t);

    /* mixup is refused where the model reads observation times */
    cJSON *cfg = cJSON_Parse("{\"model\": \"t2\", \"seq_len\": 0, \"n_channels\": 1, "
                             "\"n_classes\": 0, \"positions\": {\"kind\": \"time\"}}");
    sf_task_args a = {.data = p, .normalize = "none", .val_fraction = 0, .seed = 11, .mixup = 0.2};
    CHECK(sf_task_classify.open_train(&t, &a, &cfg, 0) == SF_ERR);
    CHECK_MSG(strstr(sf_error_message(), "--mixup") != NULL, "%s", sf_error_message());
    printf("mixup + time positions -> %s\n", sf_error_message());
    cJSON_Delete(cfg);
    CHECK(open_classify(&t, p, -1, NULL) == SF_ERR);
    printf("mixup -1               -> %s\n", sf_error_message());
}

int main(void) {
    if (test_tmpdir_create("sf_classify")) return 1;
    sf_rng rng;
    sf_rng_seed(&rng, test_seed());
    test_ucr();
    test_uea();
    test_metrics();
    test_beta_gamma(&rng);
    test_mixup(&rng);
    test_tmpdir_remove();
    return test_finish();
}
