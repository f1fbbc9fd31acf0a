/* Training-time reporting: a progress reporter and a CSV log of per-epoch metrics.
 *
 * Progress output goes to one FILE (normally stderr) in one of three resolved modes:
 *   tty   - a single line redrawn in place ("\r" + text + "\033[K"), throttled to ~10 Hz:
 *             epoch 3/100 [=========>          ]  41/65  loss 0.4123  12.3 steps/s  ETA 0:02  (run 1:23:45)
 *           plus one permanent summary line per epoch.
 *   plain - no carriage returns or escape codes, one line per event (for CI, pipes, files):
 *           the per-epoch summary line, and, if sf_progress_set_interval() was given a
 *           positive interval, a step line at most that often:
 *             epoch 3/100 step 41/65 loss 0.4123 steps/s 12.3 eta 0:02
 *   quiet - nothing at all (messages included).
 * SF_PROGRESS_AUTO picks tty when the stream is a terminal (and TERM is not "dumb"),
 * plain otherwise.
 *
 * The per-epoch summary line is identical in tty and plain modes and stable for grep/awk:
 *   epoch 3/100 train_loss 0.412345 val_loss 0.398 val_mse 0.398 val_mae 0.41207 lr 1.000e-04 time 12.3s eta 0:20:41 best
 * Fields are "name value" pairs in this fixed order, metrics as %.6g; a NaN metric (e.g. no
 * validation set) prints as "-"; "time" is this epoch's wall time (from the previous
 * epoch_end, or init, to this call, so it includes validation); "eta" is the rest of the
 * run at the mean epoch time so far; the trailing "best" token is present only when is_best
 * is non-zero. The bar and step lines show the running mean of the epoch's step losses.
 *
 * Conventions: epochs are numbered 1..n_epochs; `step` is the number of steps completed in
 * the current epoch (1..steps_per_epoch). steps_per_epoch <= 0 means "unknown" (no bar, no
 * epoch ETA). All times come from CLOCK_MONOTONIC. */
#ifndef SF_UTIL_PROGRESS_H
#define SF_UTIL_PROGRESS_H

#include <stdio.h>

#include "core/error.h"

enum {
    SF_PROGRESS_AUTO = 0, /* tty if the stream is a terminal, plain otherwise */
    SF_PROGRESS_TTY = 1,
    SF_PROGRESS_PLAIN = 2,
    SF_PROGRESS_QUIET = 3
};

typedef struct {
    FILE *out;
    int mode; /* resolved: SF_PROGRESS_TTY, _PLAIN or _QUIET (never _AUTO) */
    int n_epochs, steps_per_epoch;
    double interval;     /* plain mode: seconds between step lines; <= 0: none (default) */
    double min_redraw;   /* tty mode: seconds between redraws (default 0.1) */
    int term_cols;       /* tty mode: line width limit, 0 = unknown (no truncation) */
    double (*clock)(void); /* seconds, monotonic; defaults to CLOCK_MONOTONIC (tests may swap it) */
    const char *val_names[2]; /* labels of epoch_end's val_mse/val_mae (NULL: "mse", "mae"; the
                               * trainer sets the task's first two metric names) */
    /* state */
    double t_start;      /* init time */
    double t_mark;       /* end of the previous epoch (or init): start of the next epoch */
    double t_epoch;      /* start of the current epoch */
    double t_last;       /* last redraw (tty) or last step line (plain) */
    int epoch;         /* epoch of the last step/epoch_end call, 0 before the first */
    int step;          /* last step seen in the current epoch */
    double loss_sum;   /* finite step losses in the current epoch */
    long loss_n;
    int bar_visible;   /* tty: an unterminated bar line is on screen */
    int epochs_done;
    double epoch_secs_sum; /* sum of completed epoch durations, for the run ETA */
    char line[512];        /* tty: the bar text last drawn, for redraw after a message */
} sf_progress;

/* mode: SF_PROGRESS_AUTO/TTY/PLAIN/QUIET. out may be NULL only in quiet mode. */
void sf_progress_init(sf_progress *p, FILE *out, int mode, int n_epochs, int steps_per_epoch);
/* Plain mode: also print a step line at most every `seconds` (<= 0 disables; default). */
void sf_progress_set_interval(sf_progress *p, double seconds);
/* Report that `step` steps of `epoch` are done; loss is this step's training loss (the bar
 * shows the running mean over the epoch; non-finite losses show as "nan" and are left out of
 * the mean). Starting a new epoch number resets the epoch clock and mean. Cheap: throttled. */
void sf_progress_step(sf_progress *p, int epoch, int step, double loss);
/* End of epoch: clears the bar and prints the summary line (see above). Any metric may be
 * NaN. lr is the learning rate used; is_best marks a new best validation score. */
void sf_progress_epoch_end(sf_progress *p, int epoch, double train_loss, double val_loss,
                           double val_mse, double val_mae, double lr, int is_best);
/* Print one line (a newline is added if missing) without breaking the bar: the bar is
 * cleared, the message printed, and the bar redrawn. Suppressed in quiet mode. */
void sf_progress_message(sf_progress *p, const char *fmt, ...) SF_PRINTF(2, 3);
/* Terminate an unfinished bar line (call before printing other output or at exit). */
void sf_progress_finish(sf_progress *p);
/* Format seconds as M:SS or H:MM:SS ("--:--" when negative/non-finite) into buf. */
const char *sf_progress_fmt_duration(double seconds, char *buf, size_t size);

/* CSV log of per-epoch metrics (train_log.csv), flushed after every row so the file is
 * usable while training runs. Header: epoch,train_loss,val_loss,val_mse,val_mae,lr,seconds
 * NaN metrics are written as empty fields. */
typedef struct {
    FILE *fp;
    char *path;
} sf_csv_log;

/* append != 0 keeps existing rows (e.g. --resume) and writes the header only if the file
 * is new or empty; append == 0 truncates. SF_ERR (message names the path) if it cannot be
 * opened. */
int sf_csv_log_open(sf_csv_log *l, const char *path, int append);
int sf_csv_log_append_row(sf_csv_log *l, int epoch, double train_loss, double val_loss,
                          double val_mse, double val_mae, double lr, double seconds);
/* The same with extra columns: extra_header (e.g. "newton_iters,newton_residual") is appended to
 * the header of a new log, and each row given to sf_csv_log_append_row_extra ends with
 * extra_fields (the same number of comma-separated fields). */
int sf_csv_log_open_extra(sf_csv_log *l, const char *path, int append, const char *extra_header);
int sf_csv_log_append_row_extra(sf_csv_log *l, int epoch, double train_loss, double val_loss,
                                double val_mse, double val_mae, double lr, double seconds,
                                const char *extra_fields);
/* Keep the header and the first `rows` rows of an existing log (atomically); a missing file is
 * fine. --resume uses it so a crash between a row and the state save cannot duplicate the row. */
int sf_csv_log_truncate(const char *path, int rows);
/* Closes and frees; SF_ERR if a write or the close failed. Safe on a zeroed/closed log. */
int sf_csv_log_close(sf_csv_log *l);

#endif
