/* Writer for the sktime/aeon UEA `.ts` format (equal-length, multivariate, string labels):
 *   # comment lines
 *   @problemName NAME / @timeStamps false / @missing false / @univariate true|false /
 *   @dimensions D / @equalLength true / @seriesLength L / @classLabel true c1 c2 ... / @data
 *   v,v,...:v,v,...:...:label        (one case per line, dimensions separated by ':')
 * Values are printed with 9 significant digits (exact for float32). The file is written
 * atomically (core/fileio.h). Labels must be non-empty and contain no ':', ',' or blanks. */
#ifndef SF_DATA_TS_WRITE_H
#define SF_DATA_TS_WRITE_H

typedef struct {
    const char *problem;          /* @problemName (no blanks) */
    const char *comment;          /* one "# ..." line per '\n'-separated line; may be NULL */
    int n_dims, length;
    int n_classes;
    const char *const *classes;   /* the @classLabel list, in this order */
} sf_ts_header;

/* Write the cases rows[0..n_rows) of values [case][dim][length] with labels[case]. Each
 * label must be one of h->classes. SF_OK / SF_ERR (message names the path). */
int sf_ts_write(const char *path, const sf_ts_header *h, const float *values,
                const char *const *labels, const int *rows, int n_rows);

/* Unequal lengths (@equalLength false, no @seriesLength; h->length is ignored): case r is
 * cases[rows[r]], [n_dims][lens[rows[r]]] values (lengths >= 1). */
int sf_ts_write_ragged(const char *path, const sf_ts_header *h, const float *const *cases,
                       const int *lens, const char *const *labels, const int *rows, int n_rows);

#endif
