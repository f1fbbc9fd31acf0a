#include "util/progress.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "core/error.h"
#include "core/fileio.h"

#define SF_BAR_WIDTH 20

static double mono_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int stream_is_tty(FILE *f) {
    int fd = f ? fileno(f) : -1;
    if (fd < 0 || !isatty(fd)) return 0;
    const char *term = getenv("TERM");
    return !(term && strcmp(term, "dumb") == 0);
}

static int stream_cols(FILE *f) {
    int fd = f ? fileno(f) : -1;
    struct winsize ws;
    if (fd >= 0 && ioctl(fd, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) return ws.ws_col;
    const char *c = getenv("COLUMNS");
    if (c) {
        int n = atoi(c);
        if (n > 0) return n;
    }
    return 0;
}

void sf_progress_init(sf_progress *p, FILE *out, int mode, int n_epochs, int steps_per_epoch) {
    memset(p, 0, sizeof *p);
    if (mode == SF_PROGRESS_AUTO) mode = stream_is_tty(out) ? SF_PROGRESS_TTY : SF_PROGRESS_PLAIN;
    SF_ASSERT(mode == SF_PROGRESS_TTY || mode == SF_PROGRESS_PLAIN || mode == SF_PROGRESS_QUIET);
    if (!out) mode = SF_PROGRESS_QUIET;
    p->out = out;
    p->mode = mode;
    p->n_epochs = n_epochs;
    p->steps_per_epoch = steps_per_epoch;
    p->min_redraw = 0.1;
    p->term_cols = mode == SF_PROGRESS_TTY ? stream_cols(out) : 0;
    p->clock = mono_now;
    p->t_start = p->t_mark = p->t_epoch = p->t_last = p->clock();
}

void sf_progress_set_interval(sf_progress *p, double seconds) { p->interval = seconds; }

const char *sf_progress_fmt_duration(double seconds, char *buf, size_t size) {
    if (!(seconds >= 0) || seconds > 1e9) {
        snprintf(buf, size, "--:--");
        return buf;
    }
    long s = (long)(seconds + 0.5);
    long h = s / 3600, m = (s / 60) % 60, sec = s % 60;
    if (h > 0)
        snprintf(buf, size, "%ld:%02ld:%02ld", h, m, sec);
    else
        snprintf(buf, size, "%ld:%02ld", m, sec);
    return buf;
}

/* "%.<prec>g" of v, or "-" for NaN. */
static const char *fmt_num(char *buf, size_t size, double v, int prec) {
    if (isnan(v))
        snprintf(buf, size, "-");
    else
        snprintf(buf, size, "%.*g", prec, v);
    return buf;
}

static void clear_bar(sf_progress *p) {
    if (p->bar_visible) {
        fputs("\r\033[K", p->out);
        p->bar_visible = 0;
    }
}

static void draw_line(sf_progress *p) {
    fprintf(p->out, "\r%s\033[K", p->line);
    fflush(p->out);
    p->bar_visible = 1;
}

/* Rate (steps/s) and ETAs for the current epoch; negative where unknown. */
static void estimates(const sf_progress *p, double now, double *rate, double *eta_epoch,
                      double *eta_run) {
    double el = now - p->t_epoch;
    *rate = (el > 0 && p->step > 0) ? p->step / el : -1;
    *eta_epoch = -1;
    *eta_run = -1;
    if (*rate <= 0) return;
    int spe = p->steps_per_epoch;
    if (spe > 0) {
        int left = spe - p->step;
        *eta_epoch = left > 0 ? left / *rate : 0;
        double per_epoch = p->epochs_done > 0 ? p->epoch_secs_sum / p->epochs_done : spe / *rate;
        int epochs_left = p->n_epochs - p->epoch;
        if (epochs_left < 0) epochs_left = 0;
        *eta_run = *eta_epoch + epochs_left * per_epoch;
    }
}

static double mean_loss(const sf_progress *p) {
    return p->loss_n > 0 ? p->loss_sum / (double)p->loss_n : NAN;
}

static void format_bar(sf_progress *p, double now, int bar_w) {
    double rate, eta_e, eta_r;
    estimates(p, now, &rate, &eta_e, &eta_r);
    char loss[32], rs[32], e1[32], e2[32];
    fmt_num(loss, sizeof loss, mean_loss(p), 4);
    if (isnan(mean_loss(p))) snprintf(loss, sizeof loss, "nan");
    if (rate > 0)
        snprintf(rs, sizeof rs, "%.3g", rate);
    else
        snprintf(rs, sizeof rs, "-");
    sf_progress_fmt_duration(eta_e, e1, sizeof e1);
    sf_progress_fmt_duration(eta_r, e2, sizeof e2);

    char *b = p->line;
    size_t cap = sizeof p->line;
    int n = snprintf(b, cap, "epoch %d/%d ", p->epoch, p->n_epochs);
    int spe = p->steps_per_epoch;
    if (spe > 0) {
        int digits = snprintf(NULL, 0, "%d", spe);
        if (bar_w > 0) {
            int fill = (int)((double)p->step / spe * bar_w);
            if (fill > bar_w) fill = bar_w;
            if (fill < 0) fill = 0;
            n += snprintf(b + n, cap - n, "[");
            for (int i = 0; i < bar_w; i++)
                b[n++] = i < fill ? '=' : (i == fill ? '>' : ' ');
            n += snprintf(b + n, cap - n, "] ");
        }
        n += snprintf(b + n, cap - n, " %*d/%d  loss %s  %s steps/s  ETA %s  (run %s)", digits,
                      p->step, spe, loss, rs, e1, e2);
    } else {
        snprintf(b + n, cap - n, " step %d  loss %s  %s steps/s", p->step, loss, rs);
    }
}

static void redraw(sf_progress *p, double now) {
    format_bar(p, now, SF_BAR_WIDTH);
    int cols = p->term_cols;
    if (cols > 1) {
        int len = (int)strlen(p->line);
        if (len > cols - 1) {
            /* shrink the bar first, then cut the tail */
            int bw = SF_BAR_WIDTH - (len - (cols - 1));
            format_bar(p, now, bw >= 5 ? bw : 0);
            if ((int)strlen(p->line) > cols - 1) p->line[cols - 1] = '\0';
        }
    }
    draw_line(p);
    p->t_last = now;
}

static void enter_epoch(sf_progress *p, int epoch) {
    if (epoch == p->epoch) return;
    p->epoch = epoch;
    p->step = 0;
    p->loss_sum = 0;
    p->loss_n = 0;
    p->t_epoch = p->t_mark;
}

void sf_progress_step(sf_progress *p, int epoch, int step, double loss) {
    if (p->mode == SF_PROGRESS_QUIET) return;
    int first = epoch != p->epoch;
    enter_epoch(p, epoch);
    p->step = step;
    if (isfinite(loss)) {
        p->loss_sum += loss;
        p->loss_n++;
    }
    double now = p->clock();
    if (p->mode == SF_PROGRESS_TTY) {
        int last = p->steps_per_epoch > 0 && step >= p->steps_per_epoch;
        if (first || last || now - p->t_last >= p->min_redraw) redraw(p, now);
    } else if (p->interval > 0 && now - p->t_last >= p->interval) {
        double rate, eta_e, eta_r;
        estimates(p, now, &rate, &eta_e, &eta_r);
        char l[32], r[32], e[32];
        fmt_num(l, sizeof l, mean_loss(p), 6);
        fmt_num(r, sizeof r, rate > 0 ? rate : NAN, 3);
        sf_progress_fmt_duration(eta_e, e, sizeof e);
        if (p->steps_per_epoch > 0)
            fprintf(p->out, "epoch %d/%d step %d/%d loss %s steps/s %s eta %s\n", epoch,
                    p->n_epochs, step, p->steps_per_epoch, l, r, e);
        else
            fprintf(p->out, "epoch %d/%d step %d loss %s steps/s %s\n", epoch, p->n_epochs, step,
                    l, r);
        fflush(p->out);
        p->t_last = now;
    }
}

void sf_progress_epoch_end(sf_progress *p, int epoch, double train_loss, double val_loss,
                           double val_mse, double val_mae, double lr, int is_best) {
    if (p->mode == SF_PROGRESS_QUIET) return;
    enter_epoch(p, epoch);
    double now = p->clock();
    double secs = now - p->t_epoch;
    if (secs < 0) secs = 0;
    p->epochs_done++;
    p->epoch_secs_sum += secs;
    int left = p->n_epochs - epoch;
    if (left < 0) left = 0;
    char tl[32], vl[32], vm[32], va[32], lrs[32], eta[32];
    fmt_num(tl, sizeof tl, train_loss, 6);
    fmt_num(vl, sizeof vl, val_loss, 6);
    fmt_num(vm, sizeof vm, val_mse, 6);
    fmt_num(va, sizeof va, val_mae, 6);
    if (isnan(lr))
        snprintf(lrs, sizeof lrs, "-");
    else
        snprintf(lrs, sizeof lrs, "%.3e", lr);
    sf_progress_fmt_duration(left * (p->epoch_secs_sum / p->epochs_done), eta, sizeof eta);
    clear_bar(p);
    fprintf(p->out,
            "epoch %d/%d train_loss %s val_loss %s val_%s %s val_%s %s lr %s time %.1fs eta "
            "%s%s\n",
            epoch, p->n_epochs, tl, vl, p->val_names[0] ? p->val_names[0] : "mse", vm,
            p->val_names[1] ? p->val_names[1] : "mae", va, lrs, secs, eta, is_best ? " best" : "");
    fflush(p->out);
    p->line[0] = '\0';
    p->t_mark = now;
    p->t_last = now;
}

void sf_progress_message(sf_progress *p, const char *fmt, ...) {
    if (p->mode == SF_PROGRESS_QUIET) return;
    int had_bar = p->bar_visible;
    clear_bar(p);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(p->out, fmt, ap);
    va_end(ap);
    size_t n = strlen(fmt);
    if (n == 0 || fmt[n - 1] != '\n') fputc('\n', p->out);
    if (had_bar && p->line[0])
        draw_line(p);
    else
        fflush(p->out);
}

void sf_progress_finish(sf_progress *p) {
    if (p->mode == SF_PROGRESS_QUIET) return;
    if (p->bar_visible) {
        fputc('\n', p->out);
        p->bar_visible = 0;
    }
    fflush(p->out);
}

/* ---- CSV log ---- */

static void csv_num(FILE *f, double v, const char *fmt) {
    fputc(',', f);
    if (!isnan(v)) fprintf(f, fmt, v);
}

int sf_csv_log_open(sf_csv_log *l, const char *path, int append) {
    return sf_csv_log_open_extra(l, path, append, NULL);
}

int sf_csv_log_open_extra(sf_csv_log *l, const char *path, int append, const char *extra_header) {
    memset(l, 0, sizeof *l);
    FILE *fp = fopen(path, append ? "a" : "w");
    if (!fp) return sf_errorf("cannot open '%s' for writing: %s", path, strerror(errno));
    long size = 0;
    if (append && fseek(fp, 0, SEEK_END) == 0) size = ftell(fp);
    if (size <= 0) {
        fputs("epoch,train_loss,val_loss,val_mse,val_mae,lr,seconds", fp);
        if (extra_header) fprintf(fp, ",%s", extra_header);
        fputc('\n', fp);
    }
    if (fflush(fp) != 0 || ferror(fp)) {
        int e = errno;
        fclose(fp);
        return sf_errorf("cannot write '%s': %s", path, strerror(e));
    }
    l->fp = fp;
    l->path = sf_strdup(path);
    return SF_OK;
}

int sf_csv_log_append_row(sf_csv_log *l, int epoch, double train_loss, double val_loss,
                          double val_mse, double val_mae, double lr, double seconds) {
    return sf_csv_log_append_row_extra(l, epoch, train_loss, val_loss, val_mse, val_mae, lr,
                                       seconds, NULL);
}

int sf_csv_log_append_row_extra(sf_csv_log *l, int epoch, double train_loss, double val_loss,
                                double val_mse, double val_mae, double lr, double seconds,
                                const char *extra_fields) {
    SF_ASSERT(l->fp);
    fprintf(l->fp, "%d", epoch);
    csv_num(l->fp, train_loss, "%.9g");
    csv_num(l->fp, val_loss, "%.9g");
    csv_num(l->fp, val_mse, "%.9g");
    csv_num(l->fp, val_mae, "%.9g");
    csv_num(l->fp, lr, "%.9g");
    csv_num(l->fp, seconds, "%.3f");
    if (extra_fields) fprintf(l->fp, ",%s", extra_fields);
    fputc('\n', l->fp);
    if (fflush(l->fp) != 0 || ferror(l->fp))
        return sf_errorf("cannot write '%s': %s", l->path, strerror(errno));
    return SF_OK;
}

int sf_csv_log_close(sf_csv_log *l) {
    int rc = SF_OK;
    if (l->fp) {
        int bad = ferror(l->fp);
        if (fclose(l->fp) != 0 || bad)
            rc = sf_errorf("cannot write '%s': %s", l->path ? l->path : "?", strerror(errno));
    }
    free(l->path);
    l->fp = NULL;
    l->path = NULL;
    return rc;
}

int sf_csv_log_truncate(const char *path, int rows) {
    if (access(path, F_OK) != 0 && errno == ENOENT) return SF_OK; /* no log yet */
    void *data;
    size_t len;
    if (sf_read_file(path, &data, &len)) return SF_ERR;
    const char *buf = data;
    size_t keep = 0;
    int lines = 0;
    while (keep < len && lines < rows + 1) /* header + rows */
        if (buf[keep++] == '\n') lines++;
    int rc = keep == len ? SF_OK : sf_write_file_atomic(path, buf, keep);
    free(data);
    return rc;
}
