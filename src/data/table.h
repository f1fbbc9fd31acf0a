/* Reader for ETT-style CSV tables: a header line, then one row per time step whose first
 * field is a date/time and whose remaining fields are numbers.
 *
 * - Plain or gzip-compressed files are read transparently (zlib gzopen/gzgets).
 * - LF or CRLF line endings, a trailing newline or not, a UTF-8 BOM, blank lines (skipped).
 * - Fields are comma-separated; a field may be double-quoted ("YEAR", "a,b", "say ""hi""").
 *   Surrounding spaces/tabs of a field are trimmed. Lines may be of any length.
 * - Values are stored as double; empty, non-numeric, NaN and infinite values are errors.
 * - Dates: YYYY-MM-DD HH:MM:SS, YYYY-MM-DD HH:MM, YYYY-MM-DD, YYYY/M/D H:MM, YYYY/M/D
 *   (month, day and hour may have one or two digits; a 'T' may replace the space).
 *   They are converted to int64 seconds since 1970-01-01 00:00:00, as UTC (no time zone,
 *   no DST). Anything else is an error.
 * Every failure returns SF_ERR with a one-line message such as
 *   "data/x.csv:17: column 'OT': not a number: 'abc'". */
#ifndef SF_DATA_TABLE_H
#define SF_DATA_TABLE_H

#include <stdint.h>

typedef struct {
    int n_rows;          /* data rows (header excluded) */
    int n_cols;          /* numeric columns (the date column is not counted) */
    char *path;          /* the path the table was read from */
    char *date_name;     /* header name of the first (date) column */
    char **col_names;    /* [n_cols] header names of the numeric columns, unquoted */
    char **dates;        /* [n_rows] the raw date strings, as written in the file */
    int64_t *timestamps; /* [n_rows] parsed dates, seconds since the epoch (UTC) */
    double *values;      /* [n_rows][n_cols] row-major */
} sf_table;

/* Read a CSV (optionally gzip) file. On SF_ERR, *out is left zeroed (nothing to free). */
int sf_table_read_csv(const char *path, sf_table *out);
/* Free everything a successful sf_table_read_csv allocated and zero *t (safe on a zeroed t). */
void sf_table_free(sf_table *t);
/* Index (into col_names / value columns) of the column called name, or -1 if absent. */
int sf_table_find_column(const sf_table *t, const char *name);

/* Parse one date string in a supported format. SF_OK and *ts on success; SF_ERR (with a
 * message naming the string) otherwise. */
int sf_parse_date(const char *s, int64_t *ts);

/* Proleptic Gregorian calendar <-> days since 1970-01-01 (negative before). */
int64_t sf_days_from_civil(int64_t y, int m, int d);
void sf_civil_from_days(int64_t days, int *y, int *m, int *d);

/* The series' step in seconds: the most common difference between consecutive timestamps among
 * the last (up to) 64 rows. SF_ERR unless it is positive and there are at least 2 rows. */
int sf_table_step(const sf_table *t, int64_t *step);

/* n (>= 1) dates continuing the series after its last row. The step is the most common
 * difference between consecutive timestamps among the last (up to) 64 rows; it must be
 * positive. The strings use the layout of the input's dates (separator '-' or '/', with or
 * without time and seconds, zero-padded or not). Needs at least 2 rows. On SF_OK *out_dates
 * is an array of n strings: free each string and then the array with free(). */
int sf_table_next_dates(const sf_table *t, int n, char ***out_dates);

#endif
