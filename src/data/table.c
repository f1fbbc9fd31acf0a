#include "data/table.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <string.h>
#include <zlib.h>

#include "core/error.h"

/* ---------------------------------------------------------------- dates */

/* Layout of one date string, used to print continuing dates the same way. */
typedef struct {
    char sep;        /* '-' or '/' */
    char time_sep;   /* ' ' or 'T' (when has_time) */
    int has_time;    /* HH:MM present */
    int has_seconds; /* :SS present */
    int padded;      /* a month/day/hour field was written as two digits with a leading 0 */
    int unpadded;    /* a month/day/hour field was written with one digit */
} date_layout;

/* Read 1..max_digits decimal digits (exactly min_digits..max_digits). */
static const char *read_uint(const char *p, int min_digits, int max_digits, int *v, int *ndig) {
    int n = 0, x = 0;
    while (n < max_digits && p[n] >= '0' && p[n] <= '9') {
        x = x * 10 + (p[n] - '0');
        n++;
    }
    if (n < min_digits) return NULL;
    if (p[n] >= '0' && p[n] <= '9') return NULL; /* too many digits */
    *v = x;
    if (ndig) *ndig = n;
    return p + n;
}

static int is_leap(int y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

static int days_in_month(int y, int m) {
    static const int dm[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && is_leap(y) ? 29 : dm[m - 1];
}

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm). */
static int64_t days_from_civil(int64_t y, int m, int d) {
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int *yy, int *mm, int *dd) {
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t y = yoe + era * 400;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    int d = (int)(doy - (153 * mp + 2) / 5 + 1);
    int m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *yy = (int)(y + (m <= 2));
    *mm = m;
    *dd = d;
}

int64_t sf_days_from_civil(int64_t y, int m, int d) { return days_from_civil(y, m, d); }
void sf_civil_from_days(int64_t days, int *y, int *m, int *d) { civil_from_days(days, y, m, d); }

static void note_padding(date_layout *L, int v, int ndig) {
    (void)v;
    if (ndig == 2 && v < 10) L->padded = 1;
    if (ndig == 1) L->unpadded = 1;
}

/* Parse s; 0 on success. L (optional) receives the layout. */
static int parse_date(const char *s, int64_t *ts, date_layout *L) {
    date_layout tmp;
    if (!L) L = &tmp;
    memset(L, 0, sizeof *L);
    int y, mo, d, h = 0, mi = 0, se = 0, nd;
    const char *p = read_uint(s, 4, 4, &y, NULL);
    if (!p || (*p != '-' && *p != '/')) return -1;
    L->sep = *p++;
    if (!(p = read_uint(p, 1, 2, &mo, &nd)) || *p != L->sep) return -1;
    note_padding(L, mo, nd);
    p++;
    if (!(p = read_uint(p, 1, 2, &d, &nd))) return -1;
    note_padding(L, d, nd);
    if (*p == ' ' || *p == 'T') {
        L->time_sep = *p++;
        L->has_time = 1;
        if (!(p = read_uint(p, 1, 2, &h, &nd)) || *p != ':') return -1;
        note_padding(L, h, nd);
        if (!(p = read_uint(p + 1, 2, 2, &mi, NULL))) return -1;
        if (*p == ':') {
            L->has_seconds = 1;
            if (!(p = read_uint(p + 1, 2, 2, &se, NULL))) return -1;
        }
    }
    if (*p != '\0') return -1;
    if (mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 || se > 59)
        return -1;
    *ts = days_from_civil(y, mo, d) * 86400 + (int64_t)h * 3600 + mi * 60 + se;
    return 0;
}

int sf_parse_date(const char *s, int64_t *ts) {
    if (parse_date(s, ts, NULL) != 0)
        return sf_errorf("unparsable date '%s' (expected YYYY-MM-DD[ HH:MM[:SS]] or "
                         "YYYY/M/D[ H:MM[:SS]])",
                         s);
    return SF_OK;
}

/* ---------------------------------------------------------------- lines and fields */

typedef struct {
    gzFile f;
    char *buf;
    size_t cap;
    int eof;
} line_reader;

/* 0 if the stream has no pending error; otherwise -1 with "<path>: read error: ..." set.
 * zlib reports a truncated gzip stream as the non-fatal Z_BUF_ERROR ("unexpected end of
 * file") only through gzerror(), while gzgets() still hands out the partial data; so this
 * must be checked whenever the end of the input is reached, not only when gzgets fails. */
static int gz_check(gzFile f, const char *path) {
    int errnum = Z_OK;
    const char *msg = gzerror(f, &errnum);
    if (errnum == Z_OK || errnum == Z_STREAM_END) return 0;
    size_t plen = strlen(path); /* zlib's message is "<path>: <what>"; keep only <what> */
    if (msg && strncmp(msg, path, plen) == 0 && msg[plen] == ':' && msg[plen + 1] == ' ')
        msg += plen + 2;
    if (errnum == Z_ERRNO)
        sf_errorf("%s: read error: %s", path, errno ? strerror(errno) : "I/O error");
    else if (errnum == Z_BUF_ERROR)
        sf_errorf("%s: read error: truncated gzip stream (%s)", path,
                  msg && *msg ? msg : "unexpected end of file");
    else
        sf_errorf("%s: read error: %s", path, msg && *msg ? msg : "corrupt gzip stream");
    return -1;
}

/* Read one whole line (any length) without its "\n" / "\r\n". 1: a line, 0: end of file,
 * -1: read error (message set). */
static int read_line(line_reader *r, const char *path, size_t *len_out) {
    if (r->eof) return 0;
    size_t len = 0;
    for (;;) {
        if (r->cap - len < 2) {
            r->cap = r->cap ? r->cap * 2 : 4096;
            r->buf = sf_realloc(r->buf, r->cap);
        }
        size_t room = r->cap - len;
        int chunk = room > (size_t)INT_MAX ? INT_MAX : (int)room;
        errno = 0;
        if (!gzgets(r->f, r->buf + len, chunk)) {
            if (gz_check(r->f, path) != 0) return -1;
            r->eof = 1;
            if (len == 0) return 0;
            break;
        }
        size_t got = strlen(r->buf + len);
        len += got;
        if (len > 0 && r->buf[len - 1] == '\n') break;
        if (gzeof(r->f)) {
            /* A last line without "\n": make sure the stream really ended cleanly (a
             * truncated gzip member also ends in a partial line). */
            if (gz_check(r->f, path) != 0) return -1;
            r->eof = 1;
            break;
        }
    }
    if (len > 0 && r->buf[len - 1] == '\n') r->buf[--len] = '\0';
    if (len > 0 && r->buf[len - 1] == '\r') r->buf[--len] = '\0';
    *len_out = len;
    return 1;
}

typedef struct {
    char **v;
    int n, cap;
} field_list;

static char *trim(char *s) {
    while (*s == ' ' || *s == '\t') s++;
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t')) s[--n] = '\0';
    return s;
}

/* Split line in place at commas, honouring double quotes. 0 on success, -1 on a quoting
 * error (message set). */
static int split_fields(char *line, field_list *fl, const char *path, long lineno) {
    fl->n = 0;
    char *p = line;
    for (;;) {
        if (fl->n == fl->cap) {
            fl->cap = fl->cap ? fl->cap * 2 : 16;
            fl->v = sf_realloc(fl->v, (size_t)fl->cap * sizeof *fl->v);
        }
        char *start = p;
        while (*start == ' ' || *start == '\t') start++;
        if (*start == '"') {
            char *w = start, *q = start + 1;
            for (;;) {
                if (*q == '\0')
                    return sf_errorf("%s:%ld: field %d: unterminated quote", path, lineno,
                                     fl->n + 1);
                if (*q == '"') {
                    if (q[1] == '"') {
                        *w++ = '"';
                        q += 2;
                        continue;
                    }
                    q++;
                    break;
                }
                *w++ = *q++;
            }
            *w = '\0';
            while (*q == ' ' || *q == '\t') q++;
            if (*q != ',' && *q != '\0')
                return sf_errorf("%s:%ld: field %d: unexpected text after closing quote", path,
                                 lineno, fl->n + 1);
            fl->v[fl->n++] = start;
            if (*q == '\0') return 0;
            p = q + 1;
        } else {
            char *c = strchr(start, ',');
            if (c) *c = '\0';
            fl->v[fl->n++] = trim(start);
            if (!c) return 0;
            p = c + 1;
        }
    }
}

/* Strict number: the whole (trimmed) field must be a finite strtod number. 0 ok, 1 not a
 * number, 2 not finite. */
static int parse_number(const char *s, double *v) {
    if (*s == '\0') return 1;
    char *end;
    errno = 0;
    double x = strtod(s, &end);
    if (end == s || *end != '\0') return 1;
    if (!isfinite(x)) return 2;
    *v = x;
    return 0;
}

/* ---------------------------------------------------------------- reading */

void sf_table_free(sf_table *t) {
    if (!t) return;
    free(t->path);
    free(t->date_name);
    if (t->col_names)
        for (int j = 0; j < t->n_cols; j++) free(t->col_names[j]);
    free(t->col_names);
    if (t->dates)
        for (int i = 0; i < t->n_rows; i++) free(t->dates[i]);
    free(t->dates);
    free(t->timestamps);
    free(t->values);
    memset(t, 0, sizeof *t);
}

int sf_table_find_column(const sf_table *t, const char *name) {
    for (int j = 0; j < t->n_cols; j++)
        if (strcmp(t->col_names[j], name) == 0) return j;
    return -1;
}

static int is_blank(const char *s) {
    for (; *s; s++)
        if (*s != ' ' && *s != '\t') return 0;
    return 1;
}

int sf_table_read_csv(const char *path, sf_table *out) {
    SF_ASSERT(path && out);
    memset(out, 0, sizeof *out);
    errno = 0;
    gzFile f = gzopen(path, "rb");
    if (!f)
        return sf_errorf("%s: cannot open: %s", path, errno ? strerror(errno) : "gzopen failed");
    gzbuffer(f, 1 << 17);

    sf_table t;
    memset(&t, 0, sizeof t);
    t.path = sf_strdup(path);
    line_reader r = {f, NULL, 0, 0};
    field_list fl = {NULL, 0, 0};
    long lineno = 0;
    int rc = SF_ERR, row_cap = 0, got_header = 0;
    size_t len;
    int st;

    while ((st = read_line(&r, path, &len)) == 1) {
        lineno++;
        char *line = r.buf;
        if (lineno == 1 && len >= 3 && (unsigned char)line[0] == 0xEF &&
            (unsigned char)line[1] == 0xBB && (unsigned char)line[2] == 0xBF)
            line += 3; /* UTF-8 byte order mark */
        if (is_blank(line)) continue;
        if (strlen(line) != (size_t)(len - (size_t)(line - r.buf))) {
            sf_errorf("%s:%ld: line contains a NUL byte (binary file?)", path, lineno);
            goto done;
        }
        if (split_fields(line, &fl, path, lineno) != 0) goto done;

        if (!got_header) {
            if (fl.n < 2) {
                sf_errorf("%s:%ld: header has %d field(s); need a date column and at least "
                          "one value column",
                          path, lineno, fl.n);
                goto done;
            }
            int64_t ts;
            int looks_like_data = parse_date(fl.v[0], &ts, NULL) == 0;
            for (int j = 1; j < fl.n && looks_like_data; j++) {
                double v;
                if (parse_number(fl.v[j], &v) != 0) looks_like_data = 0;
            }
            if (looks_like_data) {
                sf_errorf("%s:%ld: missing header line (the first line looks like data: "
                          "'%s,...')",
                          path, lineno, fl.v[0]);
                goto done;
            }
            t.n_cols = fl.n - 1;
            t.date_name = sf_strdup(fl.v[0]);
            t.col_names = sf_calloc((size_t)t.n_cols, sizeof *t.col_names);
            for (int j = 0; j < t.n_cols; j++) {
                if (fl.v[j + 1][0] == '\0') {
                    sf_errorf("%s:%ld: header field %d is empty", path, lineno, j + 2);
                    goto done;
                }
                for (int k = 0; k < j; k++)
                    if (strcmp(t.col_names[k], fl.v[j + 1]) == 0) {
                        sf_errorf("%s:%ld: duplicate column name '%s'", path, lineno,
                                  fl.v[j + 1]);
                        goto done;
                    }
                t.col_names[j] = sf_strdup(fl.v[j + 1]);
            }
            got_header = 1;
            continue;
        }

        if (fl.n != t.n_cols + 1) {
            sf_errorf("%s:%ld: expected %d fields (as in the header), found %d", path, lineno,
                      t.n_cols + 1, fl.n);
            goto done;
        }
        if (t.n_rows == INT_MAX) {
            sf_errorf("%s:%ld: too many rows", path, lineno);
            goto done;
        }
        if (t.n_rows == row_cap) {
            row_cap = row_cap ? (row_cap > INT_MAX / 2 ? INT_MAX : row_cap * 2) : 1024;
            t.dates = sf_realloc(t.dates, (size_t)row_cap * sizeof *t.dates);
            t.timestamps = sf_realloc(t.timestamps, (size_t)row_cap * sizeof *t.timestamps);
            t.values = sf_realloc(t.values, (size_t)row_cap * (size_t)t.n_cols * sizeof(double));
        }
        int64_t ts;
        if (parse_date(fl.v[0], &ts, NULL) != 0) {
            sf_errorf("%s:%ld: column '%s': unparsable date '%s' (expected YYYY-MM-DD[ "
                      "HH:MM[:SS]] or YYYY/M/D[ H:MM[:SS]])",
                      path, lineno, t.date_name, fl.v[0]);
            goto done;
        }
        double *row = t.values + (size_t)t.n_rows * (size_t)t.n_cols;
        for (int j = 0; j < t.n_cols; j++) {
            int e = parse_number(fl.v[j + 1], &row[j]);
            if (e == 1) {
                sf_errorf("%s:%ld: column '%s': not a number: '%s'", path, lineno,
                          t.col_names[j], fl.v[j + 1]);
                goto done;
            }
            if (e == 2) {
                sf_errorf("%s:%ld: column '%s': value is not finite: '%s'", path, lineno,
                          t.col_names[j], fl.v[j + 1]);
                goto done;
            }
        }
        t.timestamps[t.n_rows] = ts;
        t.dates[t.n_rows] = sf_strdup(fl.v[0]);
        t.n_rows++;
    }
    if (st < 0) goto done;
    if (!got_header) {
        sf_errorf("%s: file is empty", path);
        goto done;
    }
    if (t.n_rows == 0) {
        sf_errorf("%s: no data rows after the header", path);
        goto done;
    }
    rc = SF_OK;

done:
    if (rc == SF_OK && gz_check(f, path) != 0) rc = SF_ERR; /* belt and braces */
    {
        int zc = gzclose(f);
        if (rc == SF_OK && zc != Z_OK) {
            sf_errorf("%s: read error: %s", path,
                      zc == Z_BUF_ERROR ? "truncated gzip stream (unexpected end of file)"
                                        : "error closing the stream");
            rc = SF_ERR;
        }
    }
    free(r.buf);
    free(fl.v);
    if (rc == SF_OK)
        *out = t;
    else
        sf_table_free(&t);
    return rc;
}

/* ---------------------------------------------------------------- continuing dates */

#define NEXT_DATES_WINDOW 64

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

int sf_table_step(const sf_table *t, int64_t *step_out) {
    if (t->n_rows < 2)
        return sf_errorf("%s: cannot continue the dates: need at least 2 rows, have %d", t->path,
                         t->n_rows);
    /* Most common delta among the last rows (ties: the smallest). */
    int first = t->n_rows > NEXT_DATES_WINDOW ? t->n_rows - NEXT_DATES_WINDOW : 0;
    int nd = t->n_rows - 1 - first;
    int64_t deltas[NEXT_DATES_WINDOW];
    for (int i = 0; i < nd; i++) deltas[i] = t->timestamps[first + i + 1] - t->timestamps[first + i];
    qsort(deltas, (size_t)nd, sizeof deltas[0], cmp_i64);
    int64_t step = deltas[0];
    int best = 0;
    for (int i = 0; i < nd;) {
        int j = i;
        while (j < nd && deltas[j] == deltas[i]) j++;
        if (j - i > best) {
            best = j - i;
            step = deltas[i];
        }
        i = j;
    }
    if (step <= 0)
        return sf_errorf("%s: cannot continue the dates: the most common step between the last "
                         "rows is %lld seconds (dates must increase)",
                         t->path, (long long)step);
    *step_out = step;
    return SF_OK;
}

int sf_table_next_dates(const sf_table *t, int n, char ***out_dates) {
    SF_ASSERT(t && out_dates && n >= 1);
    *out_dates = NULL;
    int64_t step;
    if (sf_table_step(t, &step)) return SF_ERR;

    /* Layout: separator/time parts from the last row; padding from all rows. */
    date_layout L, Li;
    int64_t ts;
    if (parse_date(t->dates[t->n_rows - 1], &ts, &L) != 0)
        return sf_errorf("%s: unparsable date '%s'", t->path, t->dates[t->n_rows - 1]);
    int padded_ev = 0, unpadded_ev = 0;
    for (int i = 0; i < t->n_rows && !padded_ev; i++)
        if (parse_date(t->dates[i], &ts, &Li) == 0) {
            padded_ev |= Li.padded;
            unpadded_ev |= Li.unpadded;
        }
    int padded = padded_ev ? 1 : unpadded_ev ? 0 : L.sep == '-';
    if (!L.has_time && step % 86400 != 0)
        return sf_errorf("%s: cannot continue the dates: the step is %lld seconds but the dates "
                         "have no time of day",
                         t->path, (long long)step);
    if (L.has_time && !L.has_seconds && step % 60 != 0)
        return sf_errorf("%s: cannot continue the dates: the step is %lld seconds but the dates "
                         "have no seconds",
                         t->path, (long long)step);

    char **res = sf_calloc((size_t)n, sizeof *res);
    int64_t last = t->timestamps[t->n_rows - 1];
    for (int k = 0; k < n; k++) {
        int64_t v = last + step * (int64_t)(k + 1);
        int64_t days = v >= 0 ? v / 86400 : -((-v + 86399) / 86400);
        int64_t sod = v - days * 86400;
        int y, m, d;
        civil_from_days(days, &y, &m, &d);
        int hh = (int)(sod / 3600), mi = (int)(sod / 60 % 60), ss = (int)(sod % 60);
        char buf[96];
        const char *fmt2 = padded ? "%02d" : "%d";
        int pos = snprintf(buf, sizeof buf, "%04d%c", y, L.sep);
        pos += snprintf(buf + pos, sizeof buf - (size_t)pos, fmt2, m);
        pos += snprintf(buf + pos, sizeof buf - (size_t)pos, "%c", L.sep);
        pos += snprintf(buf + pos, sizeof buf - (size_t)pos, fmt2, d);
        if (L.has_time) {
            pos += snprintf(buf + pos, sizeof buf - (size_t)pos, "%c", L.time_sep);
            pos += snprintf(buf + pos, sizeof buf - (size_t)pos, fmt2, hh);
            pos += snprintf(buf + pos, sizeof buf - (size_t)pos, ":%02d", mi);
            if (L.has_seconds) snprintf(buf + pos, sizeof buf - (size_t)pos, ":%02d", ss);
        }
        res[k] = sf_strdup(buf);
    }
    *out_dates = res;
    return SF_OK;
}
