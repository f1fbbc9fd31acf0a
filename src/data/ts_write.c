#include "data/ts_write.h"

#include <string.h>

#include "core/error.h"
#include "core/fileio.h"

static int bad_token(const char *s) {
    return !*s || strpbrk(s, ":, \t\r\n") != NULL;
}

/* values != NULL: equal length h->length, case i at values + i * n_dims * length;
 * else case i is cases[i] with length lens[i]. */
static int write_ts(const char *path, const sf_ts_header *h, const float *values,
                    const float *const *cases, const int *lens, const char *const *labels,
                    const int *rows, int n_rows) {
    if (bad_token(h->problem)) return sf_errorf("%s: problem name '%s' is empty or has blanks", path, h->problem);
    for (int c = 0; c < h->n_classes; c++)
        if (bad_token(h->classes[c]))
            return sf_errorf("%s: class label '%s' cannot be written to a .ts file (empty, or "
                             "contains ':', ',' or a blank)",
                             path, h->classes[c]);
    for (int r = 0; r < n_rows; r++) {
        int known = 0;
        for (int c = 0; c < h->n_classes; c++) known |= !strcmp(labels[rows[r]], h->classes[c]);
        if (!known) return sf_errorf("%s: label '%s' is not in the class list", path, labels[rows[r]]);
    }
    sf_atomic_file f;
    if (sf_atomic_open(&f, path) != SF_OK) return SF_ERR;
    if (h->comment) {
        const char *p = h->comment;
        while (*p) {
            const char *nl = strchr(p, '\n');
            int len = nl ? (int)(nl - p) : (int)strlen(p);
            fprintf(f.fp, "# %.*s\n", len, p);
            p += len + (nl != NULL);
        }
    }
    fprintf(f.fp,
            "@problemName %s\n@timeStamps false\n@missing false\n@univariate %s\n"
            "@dimensions %d\n",
            h->problem, h->n_dims == 1 ? "true" : "false", h->n_dims);
    if (values) fprintf(f.fp, "@equalLength true\n@seriesLength %d\n@classLabel true", h->length);
    else fprintf(f.fp, "@equalLength false\n@classLabel true");
    for (int c = 0; c < h->n_classes; c++) fprintf(f.fp, " %s", h->classes[c]);
    fprintf(f.fp, "\n@data\n");
    for (int r = 0; r < n_rows; r++) {
        int len = values ? h->length : lens[rows[r]];
        const float *v = values ? values + (size_t)rows[r] * h->n_dims * h->length : cases[rows[r]];
        for (int dm = 0; dm < h->n_dims; dm++) {
            for (int j = 0; j < len; j++)
                fprintf(f.fp, "%s%.9g", j ? "," : "", (double)v[(size_t)dm * len + j]);
            fputc(':', f.fp);
        }
        fprintf(f.fp, "%s\n", labels[rows[r]]);
    }
    if (ferror(f.fp)) f.failed = 1;
    return sf_atomic_commit(&f);
}

int sf_ts_write(const char *path, const sf_ts_header *h, const float *values,
                const char *const *labels, const int *rows, int n_rows) {
    return write_ts(path, h, values, NULL, NULL, labels, rows, n_rows);
}

int sf_ts_write_ragged(const char *path, const sf_ts_header *h, const float *const *cases,
                       const int *lens, const char *const *labels, const int *rows, int n_rows) {
    for (int r = 0; r < n_rows; r++)
        if (lens[rows[r]] < 1) return sf_errorf("%s: case %d is empty", path, rows[r]);
    return write_ts(path, h, NULL, cases, lens, labels, rows, n_rows);
}
