/* Tests for the forecasting data protocol (src/data/forecast_data.c) against the data
 * README, section 1: the repeat-last-value baseline on the real ETTh1 test split (computed
 * through sf_forecast_gather, the path the trainer uses), train statistics, split borders,
 * window counts, channel selection, the custom split, loading with a saved scaler, and one
 * bad-input file per error (message names the file). Run from the repo root. */
#include <string.h>
#include <unistd.h>

#include "core/error.h"
#include "data/forecast_data.h"
#include "test_tmpdir.h"
#include "test_util.h"

#define ETTH1 "data/ETTh1.csv"

/* Repeat-last-value baseline over every test window: the forecast for each of the pred_len
 * steps of channel c is the last input value of channel c. MSE/MAE over all windows, steps
 * and channels, accumulated in double. Windows are fetched in batches with
 * sf_forecast_gather. */
static void repeat_last_baseline(const sf_forecast_data *d, sf_split split, double *mse,
                                 double *mae, int *n_windows) {
    enum { B = 64 };
    int nw = sf_forecast_n_windows(d, split);
    int L = d->seq_len, P = d->pred_len, C = d->n_channels;
    float *x = sf_malloc((size_t)B * L * C * sizeof *x);
    float *y = sf_malloc((size_t)B * P * C * sizeof *y);
    int idx[B];
    double se = 0, ae = 0;
    long count = 0;
    for (int w0 = 0; w0 < nw; w0 += B) {
        int n = nw - w0 < B ? nw - w0 : B;
        for (int k = 0; k < n; k++) idx[k] = w0 + k;
        sf_forecast_gather(d, split, idx, n, x, y);
        for (int k = 0; k < n; k++) {
            const float *last = x + ((size_t)k * L + (size_t)(L - 1)) * C;
            const float *yk = y + (size_t)k * P * C;
            for (int t = 0; t < P; t++)
                for (int c = 0; c < C; c++) {
                    double diff = (double)yk[(size_t)t * C + c] - (double)last[c];
                    se += diff * diff;
                    ae += fabs(diff);
                    count++;
                }
        }
    }
    free(x);
    free(y);
    *mse = se / (double)count;
    *mae = ae / (double)count;
    *n_windows = nw;
}

static void test_baseline(void) {
    static const struct {
        int pred_len, windows;
        double mse, mae;
    } ref[] = {{96, 2785, 1.2944, 0.7132}, {192, 2689, 1.3249, 0.7331}};
    for (size_t r = 0; r < sizeof ref / sizeof ref[0]; r++) {
        sf_forecast_data d;
        int rc = sf_forecast_data_load(ETTH1, NULL, 'M', SF_SPLIT_AUTO, 96, ref[r].pred_len, &d);
        CHECK_MSG(rc == SF_OK, "%s", sf_error_message());
        if (rc != SF_OK) continue;
        CHECK(d.kind == SF_SPLIT_ETT_HOUR);
        CHECK(d.n_channels == 7);
        double mse, mae;
        int nw;
        repeat_last_baseline(&d, SF_TEST, &mse, &mae, &nw);
        printf("ETTh1 M seq 96 pred %d: %d test windows, repeat-last MSE %.6f MAE %.6f\n",
               ref[r].pred_len, nw, mse, mae);
        CHECK(nw == ref[r].windows);
        CHECK_NEAR(mse, ref[r].mse, 5e-5);
        CHECK_NEAR(mae, ref[r].mae, 5e-5);
        sf_forecast_data_free(&d);
    }
}

/* Scaled value the protocol prescribes for raw value v of a channel, as the float stored. */
static float scaled(double v, double mean, double std) { return (float)((v - mean) / std); }

static void test_etth1_protocol(void) {
    sf_forecast_data d;
    int rc = sf_forecast_data_load(ETTH1, NULL, 'M', SF_SPLIT_AUTO, 336, 96, &d);
    CHECK_MSG(rc == SF_OK, "%s", sf_error_message());
    if (rc != SF_OK) return;
    CHECK(d.n_rows == 17420 && d.n_channels == 7);
    CHECK(d.target_channel == 6); /* ETT keeps the file order */
    CHECK(strcmp(d.scaler.names[6], "OT") == 0 && strcmp(d.scaler.names[2], "MUFL") == 0);
    for (int c = 0; c < 7; c++) CHECK(d.channel_cols[c] == c);
    /* Train OT statistics (README 1.3: 17.1283 / 9.1765). */
    printf("ETTh1 train OT mean %.6f std %.6f\n", d.scaler.mean[6], d.scaler.std[6]);
    CHECK_NEAR(d.scaler.mean[6], 17.1283, 5e-5);
    CHECK_NEAR(d.scaler.std[6], 9.1765, 5e-5);
    /* Split borders with seq_len 336. */
    CHECK(d.split_begin[SF_TRAIN] == 0 && d.split_end[SF_TRAIN] == 8640);
    CHECK(d.split_begin[SF_VAL] == 8304 && d.split_end[SF_VAL] == 11520);
    CHECK(d.split_begin[SF_TEST] == 11184 && d.split_end[SF_TEST] == 14400);
    CHECK(sf_forecast_n_windows(&d, SF_TRAIN) == 8209);
    CHECK(sf_forecast_n_windows(&d, SF_VAL) == 2785);
    CHECK(sf_forecast_n_windows(&d, SF_TEST) == 2785);

    /* The scaler is fitted on the train rows only: recompute it here (two-pass, ddof=0). */
    int ok = 1;
    for (int c = 0; c < 7; c++) {
        double s = 0, ss = 0;
        for (int i = 0; i < 8640; i++) s += d.table.values[(size_t)i * 7 + c];
        double m = s / 8640;
        for (int i = 0; i < 8640; i++) {
            double dv = d.table.values[(size_t)i * 7 + c] - m;
            ss += dv * dv;
        }
        double sd = sqrt(ss / 8640);
        if (fabs(d.scaler.mean[c] - m) > 1e-9 * fabs(m) + 1e-12 ||
            fabs(d.scaler.std[c] - sd) > 1e-9 * sd)
            ok = 0;
    }
    CHECK(ok);

    /* Gather: the first and last val/test windows hold exactly the scaled rows. */
    int L = 336, P = 96, C = 7;
    float *x = sf_malloc((size_t)2 * L * C * sizeof *x), *y = sf_malloc((size_t)2 * P * C * sizeof *y);
    for (int s = SF_TRAIN; s <= SF_TEST; s++) {
        int idx[2] = {0, sf_forecast_n_windows(&d, (sf_split)s) - 1};
        sf_forecast_gather(&d, (sf_split)s, idx, 2, x, y);
        int good = 1;
        for (int k = 0; k < 2; k++) {
            int start = d.split_begin[s] + idx[k];
            for (int t = 0; t < L + P; t++)
                for (int c = 0; c < C; c++) {
                    float want = scaled(d.table.values[(size_t)(start + t) * 7 + c],
                                        d.scaler.mean[c], d.scaler.std[c]);
                    float got = t < L ? x[((size_t)k * L + t) * C + c]
                                      : y[((size_t)k * P + (t - L)) * C + c];
                    if (got != want) good = 0;
                }
        }
        CHECK_MSG(good, "%s windows differ from the scaled rows", sf_split_name((sf_split)s));
        /* The last test target row is row 14399 (rows 14400.. are never used). */
        if (s == SF_TEST) CHECK(d.split_begin[s] + idx[1] + L + P == 14400);
    }
    /* y may be NULL. */
    int i0 = 5;
    sf_forecast_gather(&d, SF_VAL, &i0, 1, x, NULL);
    CHECK(x[0] == d.data[(size_t)(8304 + 5) * 7]);
    free(x);
    free(y);

    /* Last input: the last seq_len scaled rows of the whole file. */
    float *li = sf_malloc((size_t)L * C * sizeof *li);
    sf_forecast_last_input(&d, li);
    CHECK(memcmp(li, d.data + (size_t)(17420 - L) * C, (size_t)L * C * sizeof *li) == 0);
    CHECK(li[(size_t)(L - 1) * C + 6] == scaled(d.table.values[(size_t)17419 * 7 + 6],
                                                 d.scaler.mean[6], d.scaler.std[6]));
    free(li);
    sf_forecast_data_free(&d);
    CHECK(d.data == NULL && d.n_rows == 0);

    /* An explicit kind equals AUTO for this file name. */
    rc = sf_forecast_data_load(ETTH1, "OT", 'M', SF_SPLIT_ETT_HOUR, 96, 720, &d);
    CHECK_MSG(rc == SF_OK, "%s", sf_error_message());
    if (rc == SF_OK) {
        CHECK(sf_forecast_n_windows(&d, SF_TEST) == 2161);
        CHECK(d.split_begin[SF_TEST] == 11424);
        sf_forecast_data_free(&d);
    }
}

static void test_features_s(void) {
    sf_forecast_data m, s;
    int rc = sf_forecast_data_load(ETTH1, NULL, 'M', SF_SPLIT_AUTO, 96, 96, &m);
    CHECK_MSG(rc == SF_OK, "%s", sf_error_message());
    int rc2 = sf_forecast_data_load(ETTH1, NULL, 'S', SF_SPLIT_AUTO, 96, 96, &s);
    CHECK_MSG(rc2 == SF_OK, "%s", sf_error_message());
    if (rc == SF_OK && rc2 == SF_OK) {
        CHECK(s.n_channels == 1 && s.target_channel == 0 && s.channel_cols[0] == 6);
        CHECK(s.scaler.n == 1 && strcmp(s.scaler.names[0], "OT") == 0);
        CHECK(s.scaler.mean[0] == m.scaler.mean[6] && s.scaler.std[0] == m.scaler.std[6]);
        CHECK_NEAR(s.scaler.mean[0], 17.1283, 5e-5);
        CHECK_NEAR(s.scaler.std[0], 9.1765, 5e-5);
        int same = 1;
        for (int i = 0; i < s.n_rows; i++)
            if (s.data[i] != m.data[(size_t)i * 7 + 6]) same = 0;
        CHECK(same);
        for (int sp = 0; sp < 3; sp++)
            CHECK(s.split_begin[sp] == m.split_begin[sp] && s.split_end[sp] == m.split_end[sp]);
        float x[96], y[96];
        int idx = 0;
        sf_forecast_gather(&s, SF_TEST, &idx, 1, x, y);
        CHECK(x[0] == m.data[(size_t)11424 * 7 + 6] && y[0] == m.data[(size_t)11520 * 7 + 6]);
    }
    if (rc == SF_OK) sf_forecast_data_free(&m);
    if (rc2 == SF_OK) sf_forecast_data_free(&s);
}

/* A small custom-split file: columns date,a,OT,b; n rows of hourly data. */
static double cv_a(int i) { return 1.0 + 0.5 * i; }
static double cv_ot(int i) { return (double)((i * i) % 17) - 3.25; }
static double cv_b(int i) { return 100.0 - 0.125 * i * (i % 3); }

static const char *write_custom(const char *name, int n) {
    const char *p = tmp_path(name);
    FILE *f = fopen(p, "wb");
    if (!f) {
        perror(p);
        exit(2);
    }
    fprintf(f, "date,a,OT,b\n");
    for (int i = 0; i < n; i++)
        fprintf(f, "2020-01-%02d %02d:00:00,%.17g,%.17g,%.17g\n", 1 + i / 24, i % 24, cv_a(i),
                cv_ot(i), cv_b(i));
    fclose(f);
    return p;
}

static void stats(double (*fn)(int), int n, double *mean, double *std) {
    double s = 0, ss = 0;
    for (int i = 0; i < n; i++) s += fn(i);
    *mean = s / n;
    for (int i = 0; i < n; i++) ss += (fn(i) - *mean) * (fn(i) - *mean);
    *std = sqrt(ss / n);
}

static void test_custom_split(void) {
    const char *path = write_custom("custom.csv", 97);
    sf_forecast_data d;
    int L = 4, P = 2;
    int rc = sf_forecast_data_load(path, NULL, 'M', SF_SPLIT_AUTO, L, P, &d);
    CHECK_MSG(rc == SF_OK, "%s", sf_error_message());
    if (rc != SF_OK) return;
    CHECK(d.kind == SF_SPLIT_CUSTOM);
    /* Target moved last: a, b, OT. */
    CHECK(d.n_channels == 3 && d.target_channel == 2);
    CHECK(d.channel_cols[0] == 0 && d.channel_cols[1] == 2 && d.channel_cols[2] == 1);
    CHECK(strcmp(d.scaler.names[0], "a") == 0 && strcmp(d.scaler.names[1], "b") == 0 &&
          strcmp(d.scaler.names[2], "OT") == 0);
    /* N = 97: num_train = int(67.9) = 67, num_test = int(19.4) = 19, num_val = 11. */
    int N = 97, ntr = (int)(N * 0.7), nte = (int)(N * 0.2), nva = N - ntr - nte;
    CHECK(ntr == 67 && nte == 19 && nva == 11);
    CHECK(d.split_begin[SF_TRAIN] == 0 && d.split_end[SF_TRAIN] == 67);
    CHECK(d.split_begin[SF_VAL] == 67 - L && d.split_end[SF_VAL] == 78);
    CHECK(d.split_begin[SF_TEST] == 97 - 19 - L && d.split_end[SF_TEST] == 97);
    CHECK(sf_forecast_n_windows(&d, SF_TRAIN) == 67 - L - P + 1);
    CHECK(sf_forecast_n_windows(&d, SF_VAL) == (78 - (67 - L)) - L - P + 1);
    CHECK(sf_forecast_n_windows(&d, SF_TEST) == 19 - P + 1);
    /* Scaler fitted on the 67 train rows, per channel (in the new order). */
    double (*fns[3])(int) = {cv_a, cv_b, cv_ot};
    int ok = 1;
    for (int c = 0; c < 3; c++) {
        double m, sd;
        stats(fns[c], 67, &m, &sd);
        if (fabs(d.scaler.mean[c] - m) > 1e-12 * (1 + fabs(m)) || fabs(d.scaler.std[c] - sd) > 1e-12 * sd)
            ok = 0;
        for (int i = 0; i < N; i++)
            if (d.data[(size_t)i * 3 + c] != scaled(fns[c](i), d.scaler.mean[c], d.scaler.std[c]))
                ok = 0;
    }
    CHECK(ok);
    /* Last test window ends at the last row; last input = last L rows. */
    int nw = sf_forecast_n_windows(&d, SF_TEST), last = nw - 1;
    float x[4 * 3], y[2 * 3], li[4 * 3];
    sf_forecast_gather(&d, SF_TEST, &last, 1, x, y);
    CHECK(y[(size_t)(P - 1) * 3 + 2] == d.data[(size_t)96 * 3 + 2]);
    sf_forecast_last_input(&d, li);
    CHECK(memcmp(li, d.data + (size_t)(N - L) * 3, sizeof li) == 0);
    CHECK(li[3 * 3 + 2] == scaled(cv_ot(96), d.scaler.mean[2], d.scaler.std[2]));
    sf_forecast_data_free(&d);

    /* S on a custom file: only OT. Target by another name: that column moves last. */
    rc = sf_forecast_data_load(path, "OT", 'S', SF_SPLIT_CUSTOM, L, P, &d);
    CHECK_MSG(rc == SF_OK, "%s", sf_error_message());
    if (rc == SF_OK) {
        CHECK(d.n_channels == 1 && d.channel_cols[0] == 1 && d.target_channel == 0);
        sf_forecast_data_free(&d);
    }
    rc = sf_forecast_data_load(path, "a", 'M', SF_SPLIT_CUSTOM, L, P, &d);
    CHECK_MSG(rc == SF_OK, "%s", sf_error_message());
    if (rc == SF_OK) {
        CHECK(d.channel_cols[0] == 1 && d.channel_cols[1] == 2 && d.channel_cols[2] == 0);
        CHECK(d.target_channel == 2);
        sf_forecast_data_free(&d);
    }
}

static void test_with_scaler(void) {
    const char *path = write_custom("predict.csv", 30);
    const char *names[2] = {"OT", "a"};
    double mean[2] = {2.5, -1.0}, std[2] = {4.0, 0.25};
    sf_scaler sc;
    int rc = sf_scaler_init(&sc, 2, names, mean, std);
    CHECK_MSG(rc == SF_OK, "%s", sf_error_message());
    if (rc != SF_OK) return;
    sf_forecast_data d;
    rc = sf_forecast_data_load_with_scaler(path, NULL, 'M', 8, 5, &sc, &d);
    CHECK_MSG(rc == SF_OK, "%s", sf_error_message());
    if (rc == SF_OK) {
        CHECK(d.kind == SF_SPLIT_AUTO && d.n_rows == 30 && d.n_channels == 2);
        CHECK(d.channel_cols[0] == 1 && d.channel_cols[1] == 0 && d.target_channel == 0);
        CHECK(d.scaler.names != sc.names && strcmp(d.scaler.names[1], "a") == 0); /* a copy */
        int ok = 1;
        for (int i = 0; i < 30; i++) {
            if (d.data[(size_t)i * 2] != scaled(cv_ot(i), 2.5, 4.0)) ok = 0;
            if (d.data[(size_t)i * 2 + 1] != scaled(cv_a(i), -1.0, 0.25)) ok = 0;
        }
        CHECK(ok);
        for (int s = 0; s < 3; s++) CHECK(d.split_begin[s] == 0 && d.split_end[s] == 30);
        float li[8 * 2];
        sf_forecast_last_input(&d, li);
        CHECK(memcmp(li, d.data + (size_t)22 * 2, sizeof li) == 0);
        CHECK(li[7 * 2 + 1] == scaled(cv_a(29), -1.0, 0.25));
        sf_forecast_data_free(&d);
    }
    /* Fewer rows than seq_len. */
    sf_error_clear();
    rc = sf_forecast_data_load_with_scaler(path, NULL, 'M', 31, 5, &sc, &d);
    CHECK(rc == SF_ERR && msg_has(path) && msg_has("31"));
    CHECK(d.data == NULL && d.n_rows == 0);
    /* Target not among the channels. */
    sf_error_clear();
    rc = sf_forecast_data_load_with_scaler(path, "b", 'M', 8, 5, &sc, &d);
    CHECK_MSG(rc == SF_ERR && msg_has(path) && msg_has("'b'"), "%s", sf_error_message());
    sf_scaler_free(&sc);

    /* A channel of the model missing from the file. */
    const char *names2[3] = {"a", "nope", "OT"};
    double mean2[3] = {0, 0, 0}, std2[3] = {1, 1, 1};
    rc = sf_scaler_init(&sc, 3, names2, mean2, std2);
    CHECK(rc == SF_OK);
    sf_error_clear();
    rc = sf_forecast_data_load_with_scaler(path, NULL, 'M', 8, 5, &sc, &d);
    CHECK(rc == SF_ERR);
    CHECK_MSG(msg_has(path) && msg_has("'nope'"), "%s", sf_error_message());
    CHECK(strchr(sf_error_message(), '\n') == NULL);
    CHECK(d.data == NULL && d.channel_cols == NULL);
    sf_scaler_free(&sc);

    /* Invalid saved statistics. */
    double bad_std[2] = {4.0, 0.0};
    sf_error_clear();
    CHECK(sf_scaler_init(&sc, 2, names, mean, bad_std) == SF_ERR && msg_has("'a'"));
    double bad_mean[2] = {NAN, 0.0};
    CHECK(sf_scaler_init(&sc, 2, names, bad_mean, std) == SF_ERR && msg_has("'OT'"));
}

/* Expect sf_forecast_data_load to fail with a one-line message naming path and the needles,
 * leaving *out zeroed. */
static void expect_fail(const char *path, const char *target, char features, int seq_len,
                        int pred_len, const char *n1, const char *n2, const char *n3) {
    sf_forecast_data d;
    sf_error_clear();
    int rc = sf_forecast_data_load(path, target, features, SF_SPLIT_AUTO, seq_len, pred_len, &d);
    CHECK_MSG(rc == SF_ERR, "%s unexpectedly loaded", path);
    CHECK_MSG(msg_has(path), "message lacks path: %s", sf_error_message());
    const char *nd[3] = {n1, n2, n3};
    for (int k = 0; k < 3; k++)
        if (nd[k]) CHECK_MSG(msg_has(nd[k]), "message lacks '%s': %s", nd[k], sf_error_message());
    CHECK(strchr(sf_error_message(), '\n') == NULL);
    CHECK(d.data == NULL && d.table.values == NULL && d.channel_cols == NULL &&
          d.scaler.mean == NULL);
    if (rc == SF_OK) sf_forecast_data_free(&d);
}

static void test_bad_input(void) {
    const char *ok = write_custom("ok.csv", 97);
    expect_fail(ok, "XX", 'M', 4, 2, "'XX'", "not found", NULL);
    expect_fail(ok, "XX", 'S', 4, 2, "'XX'", NULL, NULL);
    expect_fail(ok, NULL, 'X', 4, 2, "features", NULL, NULL);
    expect_fail(ok, NULL, 'M', 0, 2, "seq_len", NULL, NULL);
    expect_fail(ok, NULL, 'M', 4, 0, "pred_len", NULL, NULL);
    /* N = 20: train [0,14), val [14-8, 16) = 10 rows < seq_len+pred_len = 12. */
    expect_fail(write_custom("short.csv", 20), NULL, 'M', 8, 4, "val split", "10 rows", "12");
    /* N = 9, seq_len 1, pred_len 2: n_train 6, n_test int(1.8) = 1, n_val 2; train [0,6) and
     * val [5,8) are long enough, test [7,9) has 2 rows < 3. */
    expect_fail(write_custom("short2.csv", 9), NULL, 'M', 1, 2, "test split", "2 rows", "=3");
    /* Train split itself too short. */
    expect_fail(write_custom("short3.csv", 20), NULL, 'M', 10, 5, "train split", "14 rows",
                "15");
    /* An ETT-named file with fewer than 14400 rows. */
    expect_fail(write_custom("ETTh1_head.csv", 100), NULL, 'M', 96, 96, "too short", "14400",
                "100 rows");
    expect_fail(write_file("nan.csv", "date,a,OT\n2020-01-01,1,2\n2020-01-02,nan,3\n"), NULL,
                'M', 1, 1, ":3:", "'a'", "not finite");
    expect_fail(write_file("nan2.csv", "date,a,OT\n2020-01-01,1,2\n2020-01-02,2,NaN\n"), NULL,
                'S', 1, 1, ":3:", "'OT'", NULL);
    expect_fail(write_file("ragged.csv", "date,a,OT\n2020-01-01,1,2\n2020-01-02,2\n"), NULL, 'M',
                1, 1, ":3:", "expected 3 fields", "found 2");
    expect_fail(write_file("ragged2.csv", "date,a,OT\n2020-01-01,1,2,7\n"), NULL, 'M', 1, 1,
                ":2:", "found 4", NULL);
    expect_fail(write_file("text.csv", "date,a,OT\n2020-01-01,1,abc\n"), NULL, 'M', 1, 1,
                "not a number", "'abc'", NULL);
    expect_fail(tmp_path("does_not_exist.csv"), NULL, 'M', 4, 2, "cannot open", NULL, NULL);
}

static void test_scaler_roundtrip(void) {
    const char *names[2] = {"u", "v"};
    double mean[2] = {10.0, -3.0}, std[2] = {2.0, 0.5};
    sf_scaler s, c;
    CHECK(sf_scaler_init(&s, 2, names, mean, std) == SF_OK);
    sf_scaler_copy(&c, &s);
    CHECK(c.n == 2 && c.mean != s.mean && c.std[1] == 0.5 && strcmp(c.names[0], "u") == 0);
    float x[6] = {10, -3, 12, -2.5f, 8, -4};
    sf_scaler_transform(&s, x, 3);
    CHECK(x[0] == 0 && x[1] == 0 && x[2] == 1 && x[3] == 1 && x[4] == -1 && x[5] == -2);
    sf_scaler_inverse(&c, x, 3);
    CHECK(x[0] == 10 && x[1] == -3 && x[2] == 12 && x[3] == -2.5f && x[4] == 8 && x[5] == -4);
    sf_scaler_free(&s);
    sf_scaler_free(&c);
    sf_scaler_free(&c); /* safe on a zeroed scaler */
}

int main(void) {
    if (test_tmpdir_create("sf_test_forecast")) return 2;
    test_baseline();
    test_etth1_protocol();
    test_features_s();
    test_custom_split();
    test_with_scaler();
    test_bad_input();
    test_scaler_roundtrip();
    test_tmpdir_remove();
    return test_finish();
}
