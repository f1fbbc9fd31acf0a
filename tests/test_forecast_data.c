/* Tests for the forecasting data protocol (src/data/forecast_data.c) against the data
 * README, section 1: the repeat-last-value baseline on the real ETTh1 test split (computed
 * through sf_forecast_gather, the path the trainer uses), train statistics, split borders,
 * window counts, channel selection, the custom split, loading with a saved scaler, and one
 * bad-input file per error (message names the file). Run from the repo root. */
#include <string.h>
#include <unistd.h>

#include "core/error.h"
#include "data/forecast_data.h"
#include "test_util.h"

#define ETTH1 "data/ETTh1.csv"

static char g_dir[64];

static const char *tmp_path(const char *name) {
    static char buf[8][256];
    static int k;
    char *p = buf[k++ % 8];
    snprintf(p, 256, "%s/%s", g_dir, name);
    return p;
}

static const char *write_file(const char *name, const char *text) {
    const char *p = tmp_path(name);
    FILE *f = fopen(p, "wb");
    if (!f) {
        perror(p);
        exit(2);
    }
    fwrite(text, 1, strlen(text), f);
    fclose(f);
    return p;
}

static int msg_has(const char *needle) { return strstr(sf_error_message(), needle) != NULL; }

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

int main(void) {
    snprintf(g_dir, sizeof g_dir, "/tmp/sf_test_forecast_%ld", (long)getpid());
    char cmd[128];
    snprintf(cmd, sizeof cmd, "mkdir -p %s", g_dir);
    if (system(cmd) != 0) return 2;
    (void)write_file; /* used by the bad-input tests (to come) */
    (void)msg_has;
    test_baseline();
    snprintf(cmd, sizeof cmd, "rm -rf %s", g_dir);
    if (system(cmd) != 0) fprintf(stderr, "warning: could not remove %s\n", g_dir);
    return test_finish();
}
