/* Progress reporter (plain / tty / quiet modes, summary line format, ETA from a fake clock)
 * and the CSV training log. */
#include "util/progress.h"

#include <string.h>
#include <unistd.h>

#include "core/error.h"
#include "test_util.h"

static double g_now;
static double fake_clock(void) { return g_now; }

static int count(const char *s, const char *sub) {
    int n = 0;
    size_t l = strlen(sub);
    for (const char *p = strstr(s, sub); p; p = strstr(p + l, sub)) n++;
    return n;
}

/* Line i (0-based) of s copied into buf, or NULL. */
static const char *line_at(const char *s, int i, char *buf, size_t size) {
    for (; i > 0; i--) {
        s = strchr(s, '\n');
        if (!s) return NULL;
        s++;
    }
    if (!*s) return NULL;
    size_t n = strcspn(s, "\n");
    if (n >= size) n = size - 1;
    memcpy(buf, s, n);
    buf[n] = '\0';
    return buf;
}

static void run_training(sf_progress *p, int n_epochs, int spe) {
    for (int e = 1; e <= n_epochs; e++) {
        for (int s = 1; s <= spe; s++) {
            g_now += 0.5;
            sf_progress_step(p, e, s, 1.0 / e);
        }
        g_now += 1.0; /* validation */
        sf_progress_epoch_end(p, e, 1.0 / e, 1.1 / e, 1.1 / e, 0.9 / e, 1e-4, e != 2);
    }
    sf_progress_finish(p);
}

static void test_plain(void) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    sf_progress p;
    sf_progress_init(&p, f, SF_PROGRESS_PLAIN, 3, 10);
    CHECK(p.mode == SF_PROGRESS_PLAIN);
    p.clock = fake_clock;
    g_now = 100;
    p.t_start = p.t_mark = p.t_epoch = p.t_last = g_now;
    run_training(&p, 3, 10);
    fclose(f);
    CHECK(strchr(buf, '\r') == NULL);
    CHECK(strchr(buf, '\033') == NULL);
    CHECK_MSG(count(buf, "\n") == 3, "output:\n%s", buf);
    char l[512];
    for (int e = 1; e <= 3; e++) {
        const char *s = line_at(buf, e - 1, l, sizeof l);
        CHECK(s != NULL);
        if (!s) continue;
        char head[32];
        snprintf(head, sizeof head, "epoch %d/3 train_loss ", e);
        CHECK_MSG(strncmp(s, head, strlen(head)) == 0, "line: %s", s);
        CHECK(strstr(s, " val_loss ") && strstr(s, " val_mse ") && strstr(s, " val_mae "));
        CHECK(strstr(s, " lr 1.000e-04 ") != NULL);
        CHECK_MSG(strstr(s, " time 6.0s ") != NULL, "line: %s", s); /* 10 x 0.5 s + 1 s */
        int best = strlen(s) >= 5 && strcmp(s + strlen(s) - 5, " best") == 0;
        CHECK_MSG(best == (e != 2), "line: %s", s);
    }
    const char *s1 = line_at(buf, 0, l, sizeof l);
    CHECK_MSG(s1 && strcmp(s1, "epoch 1/3 train_loss 1 val_loss 1.1 val_mse 1.1 val_mae 0.9 lr "
                               "1.000e-04 time 6.0s eta 0:12 best") == 0,
              "line: %s", s1 ? s1 : "(none)");
    free(buf);
}

static void test_plain_nan_and_interval(void) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    sf_progress p;
    sf_progress_init(&p, f, SF_PROGRESS_PLAIN, 2, 10);
    p.clock = fake_clock;
    g_now = 0;
    p.t_start = p.t_mark = p.t_epoch = p.t_last = g_now;
    sf_progress_set_interval(&p, 2.0);
    for (int s = 1; s <= 10; s++) {
        g_now += 1.0;
        sf_progress_step(&p, 1, s, s == 3 ? NAN : 0.5);
    }
    sf_progress_epoch_end(&p, 1, 0.5, NAN, NAN, NAN, 1e-3, 0);
    sf_progress_message(&p, "saved %s", "ckpt.bin");
    fclose(f);
    CHECK(strchr(buf, '\r') == NULL);
    /* step lines at t = 2, 4, 6, 8, 10 */
    CHECK_MSG(count(buf, " step ") == 5, "output:\n%s", buf);
    CHECK(strstr(buf, "epoch 1/2 step 2/10 loss 0.5 steps/s 1 eta 0:08\n") != NULL);
    CHECK(strstr(buf, "epoch 1/2 train_loss 0.5 val_loss - val_mse - val_mae - lr 1.000e-03 ") != NULL);
    CHECK(strstr(buf, " best") == NULL);
    CHECK(strstr(buf, "saved ckpt.bin\n") != NULL);
    free(buf);
}

static void test_tty(void) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    sf_progress p;
    sf_progress_init(&p, f, SF_PROGRESS_TTY, 4, 20);
    CHECK(p.mode == SF_PROGRESS_TTY);
    p.clock = fake_clock;
    g_now = 0;
    p.t_start = p.t_mark = p.t_epoch = p.t_last = g_now;
    p.term_cols = 0;
    for (int s = 1; s <= 10; s++) {
        g_now += 0.25;
        sf_progress_step(&p, 1, s, 0.4123);
    }
    fflush(f);
    CHECK(strchr(buf, '\r') != NULL && strstr(buf, "\033[K") != NULL);
    CHECK(strchr(buf, '\n') == NULL); /* still one redrawn line */
    /* after 10 of 20 steps at 4 steps/s: half a bar, 2.5 s left in the epoch */
    CHECK_MSG(strstr(buf, "\repoch 1/4 [==========>         ]  10/20  loss 0.4123  4 steps/s  "
                          "ETA 0:03  (run 0:18)\033[K") != NULL,
              "output: %s", buf);
    sf_progress_message(&p, "note\n");
    fflush(f);
    /* message: clear, print, redraw the same bar */
    CHECK(strstr(buf, "\r\033[Knote\n\repoch 1/4 [") != NULL);
    for (int s = 11; s <= 20; s++) {
        g_now += 0.25;
        sf_progress_step(&p, 1, s, 0.4123);
    }
    sf_progress_epoch_end(&p, 1, 0.4123, 0.5, 0.5, 0.6, 1e-4, 1);
    fflush(f);
    CHECK(strstr(buf, "]  20/20  ") != NULL); /* the last step is always drawn */
    CHECK(strstr(buf, "\r\033[Kepoch 1/4 train_loss 0.4123 val_loss 0.5 ") != NULL);
    CHECK(len > 0 && buf[len - 1] == '\n' && strstr(buf, " best\n") != NULL);
    /* narrow terminal: the bar line is cut to fit */
    size_t before = len;
    p.term_cols = 40;
    g_now += 1;
    sf_progress_step(&p, 2, 1, 0.3);
    sf_progress_finish(&p);
    fclose(f);
    const char *last = buf + before;
    CHECK(last[0] == '\r');
    size_t n = strcspn(last + 1, "\033");
    CHECK_MSG(n <= 39, "%zu chars: %s", n, last + 1);
    CHECK(buf[len - 1] == '\n'); /* finish ends the bar line */
    free(buf);
}

static void test_quiet_and_auto(void) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    sf_progress p;
    sf_progress_init(&p, f, SF_PROGRESS_QUIET, 2, 5);
    run_training(&p, 2, 5);
    sf_progress_message(&p, "hidden");
    fclose(f);
    CHECK(len == 0);
    free(buf);
    /* a memory stream is not a terminal: auto picks plain */
    buf = NULL;
    f = open_memstream(&buf, &len);
    sf_progress_init(&p, f, SF_PROGRESS_AUTO, 2, 5);
    CHECK(p.mode == SF_PROGRESS_PLAIN);
    fclose(f);
    free(buf);
    sf_progress_init(&p, NULL, SF_PROGRESS_PLAIN, 2, 5);
    CHECK(p.mode == SF_PROGRESS_QUIET);
    sf_progress_step(&p, 1, 1, 0.5); /* must not touch the NULL stream */
    sf_progress_epoch_end(&p, 1, 0.5, 0.5, 0.5, 0.5, 0.1, 1);
}

static void test_unknown_steps(void) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    sf_progress p;
    sf_progress_init(&p, f, SF_PROGRESS_TTY, 1, 0);
    sf_progress_step(&p, 1, 7, 2.0);
    sf_progress_epoch_end(&p, 1, 2, 2, 2, 2, 0.01, 0);
    fclose(f);
    CHECK(strstr(buf, "step 7  loss 2") != NULL);
    CHECK(strstr(buf, "] ") == NULL); /* no bar */
    free(buf);
}

static void test_duration(void) {
    char b[32];
    CHECK(strcmp(sf_progress_fmt_duration(0, b, sizeof b), "0:00") == 0);
    CHECK(strcmp(sf_progress_fmt_duration(59.6, b, sizeof b), "1:00") == 0);
    CHECK(strcmp(sf_progress_fmt_duration(61, b, sizeof b), "1:01") == 0);
    CHECK(strcmp(sf_progress_fmt_duration(3661, b, sizeof b), "1:01:01") == 0);
    CHECK(strcmp(sf_progress_fmt_duration(-1, b, sizeof b), "--:--") == 0);
    CHECK(strcmp(sf_progress_fmt_duration(NAN, b, sizeof b), "--:--") == 0);
    CHECK(strcmp(sf_progress_fmt_duration(INFINITY, b, sizeof b), "--:--") == 0);
}

static char *slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    static char b[4096];
    size_t n = fread(b, 1, sizeof b - 1, f);
    b[n] = '\0';
    fclose(f);
    return b;
}

static void test_csv(void) {
    char dir[] = "/tmp/sf_progress_test_XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char path[128];
    snprintf(path, sizeof path, "%s/train_log.csv", dir);
    sf_csv_log l;
    CHECK(sf_csv_log_open(&l, path, 0) == SF_OK);
    CHECK(sf_csv_log_append_row(&l, 1, 0.5, 0.25, 0.25, 0.4, 1e-4, 12.3456) == SF_OK);
    /* flushed per row: readable before close */
    const char *s = slurp(path);
    CHECK(s && strcmp(s, "epoch,train_loss,val_loss,val_mse,val_mae,lr,seconds\n"
                         "1,0.5,0.25,0.25,0.4,0.0001,12.346\n") == 0);
    CHECK(sf_csv_log_append_row(&l, 2, 0.4, NAN, NAN, NAN, 1e-4, 10) == SF_OK);
    CHECK(sf_csv_log_close(&l) == SF_OK);
    CHECK(sf_csv_log_close(&l) == SF_OK); /* closing twice is harmless */
    /* append (resume): no second header */
    CHECK(sf_csv_log_open(&l, path, 1) == SF_OK);
    CHECK(sf_csv_log_append_row(&l, 3, 0.3, 0.3, 0.3, 0.3, 5e-5, 9) == SF_OK);
    CHECK(sf_csv_log_close(&l) == SF_OK);
    s = slurp(path);
    CHECK_MSG(s && strcmp(s, "epoch,train_loss,val_loss,val_mse,val_mae,lr,seconds\n"
                             "1,0.5,0.25,0.25,0.4,0.0001,12.346\n"
                             "2,0.4,,,,0.0001,10.000\n"
                             "3,0.3,0.3,0.3,0.3,5e-05,9.000\n") == 0,
              "got:\n%s", s ? s : "(null)");
    /* truncating open starts over */
    CHECK(sf_csv_log_open(&l, path, 0) == SF_OK);
    CHECK(sf_csv_log_close(&l) == SF_OK);
    s = slurp(path);
    CHECK(s && strcmp(s, "epoch,train_loss,val_loss,val_mse,val_mae,lr,seconds\n") == 0);
    /* append to a new file writes the header */
    unlink(path);
    CHECK(sf_csv_log_open(&l, path, 1) == SF_OK);
    CHECK(sf_csv_log_close(&l) == SF_OK);
    s = slurp(path);
    CHECK(s && strncmp(s, "epoch,", 6) == 0);
    unlink(path);
    rmdir(dir);
    /* unopenable path */
    const char *bad = "/nonexistent-sf-dir/train_log.csv";
    sf_error_clear();
    CHECK(sf_csv_log_open(&l, bad, 0) == SF_ERR);
    CHECK_MSG(strstr(sf_error_message(), bad) != NULL, "message: %s", sf_error_message());
    CHECK(l.fp == NULL && sf_csv_log_close(&l) == SF_OK);
}

int main(void) {
    test_plain();
    test_plain_nan_and_interval();
    test_tty();
    test_quiet_and_auto();
    test_unknown_steps();
    test_duration();
    test_csv();
    return test_finish();
}
