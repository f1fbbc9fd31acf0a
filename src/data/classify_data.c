#include "data/classify_data.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/error.h"
#include "core/fileio.h"

/* Rows as they are read: label text, valid length, values [len, C] (time-major). */
typedef struct {
    int n, cap, C;
    char **label;
    int *len;
    float **values;
} rows;

static void rows_push(rows *r, const char *label, int len, float *values) {
    if (r->n == r->cap) {
        r->cap = r->cap ? 2 * r->cap : 64;
        r->label = sf_realloc(r->label, (size_t)r->cap * sizeof *r->label);
        r->len = sf_realloc(r->len, (size_t)r->cap * sizeof *r->len);
        r->values = sf_realloc(r->values, (size_t)r->cap * sizeof *r->values);
    }
    r->label[r->n] = sf_strdup(label);
    r->len[r->n] = len;
    r->values[r->n] = values;
    r->n++;
}

static void rows_free(rows *r) {
    for (int i = 0; i < r->n; i++) {
        free(r->label[i]);
        free(r->values[i]);
    }
    free(r->label);
    free(r->len);
    free(r->values);
    memset(r, 0, sizeof *r);
}

void sf_class_data_free(sf_class_data *d) {
    for (int i = 0; i < d->n_classes; i++) free(d->class_names[i]);
    free(d->class_names);
    free(d->x);
    free(d->len);
    free(d->label);
    memset(d, 0, sizeof *d);
}

/* Next line of text (NUL-terminated in place, trailing '\r' removed); NULL at the end. */
static char *next_line(char **cursor) {
    char *s = *cursor;
    if (!s || !*s) return NULL;
    char *e = strchr(s, '\n');
    if (e) {
        *e = 0;
        *cursor = e + 1;
    } else {
        *cursor = s + strlen(s);
    }
    size_t n = strlen(s);
    if (n && s[n - 1] == '\r') s[n - 1] = 0;
    return s;
}

static char *trim(char *s) {
    while (isspace((unsigned char)*s)) s++;
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1])) s[--n] = 0;
    return s;
}

/* One value: a number, or missing ('?', NaN) -> NaN. SF_ERR for anything else. */
static int parse_value(const char *tok, float *v) {
    while (isspace((unsigned char)*tok)) tok++;
    if (!strcmp(tok, "?")) {
        *v = NAN;
        return SF_OK;
    }
    char *end;
    float f = strtof(tok, &end);
    while (isspace((unsigned char)*end)) end++;
    if (end == tok || *end) return SF_ERR;
    if (isinf(f)) return SF_ERR;
    *v = f;
    return SF_OK;
}

/* Valid length of n values: the index after the last non-missing one; a missing value before
 * it is an error (returns -1 - its index). */
static int valid_length(const float *v, int n, int stride) {
    int len = n;
    while (len > 0 && isnan(v[(size_t)(len - 1) * stride])) len--;
    for (int t = 0; t < len; t++)
        if (isnan(v[(size_t)t * stride])) return -1 - t;
    return len;
}

static int cmp_numeric(const void *a, const void *b) {
    double x = atof(*(char *const *)a), y = atof(*(char *const *)b);
    return x < y ? -1 : x > y;
}
static int cmp_text(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int is_number(const char *s) {
    char *end;
    strtod(s, &end);
    return end != s && *end == 0;
}

static int find_name(char *const *names, int n, const char *s) {
    for (int i = 0; i < n; i++)
        if (!strcmp(names[i], s)) return i;
    return -1;
}

/* Rows -> padded x, lengths, labels as indices into names (owned by d afterwards). */
static int rows_finish(rows *r, char **names, int n_names, const char *path, sf_class_data *d) {
    memset(d, 0, sizeof *d);
    d->class_names = names;
    d->n_classes = n_names;
    if (r->n == 0) return sf_errorf("%s: no series", path);
    d->n = r->n;
    d->C = r->C;
    for (int i = 0; i < r->n; i++)
        if (r->len[i] > d->T) d->T = r->len[i];
    d->x = sf_calloc((size_t)d->n * d->T * d->C, sizeof(float));
    d->len = sf_malloc((size_t)d->n * sizeof(int));
    d->label = sf_malloc((size_t)d->n * sizeof(int));
    for (int i = 0; i < r->n; i++) {
        d->len[i] = r->len[i];
        d->label[i] = find_name(names, n_names, r->label[i]);
        SF_ASSERT(d->label[i] >= 0);
        memcpy(d->x + (size_t)i * d->T * d->C, r->values[i],
               (size_t)r->len[i] * d->C * sizeof(float));
    }
    return SF_OK;
}

int sf_ucr_load(const char *path, sf_class_data *d) {
    memset(d, 0, sizeof *d);
    void *text;
    size_t size;
    if (sf_read_file(path, &text, &size)) return SF_ERR;
    rows r = {.C = 1};
    char *cursor = text, *line;
    int lineno = 0, fields0 = -1, rc = SF_ERR;
    while ((line = next_line(&cursor))) {
        lineno++;
        if (!*trim(line)) continue;
        int nf = 1;
        for (const char *p = line; *p; p++) nf += *p == '\t';
        if (fields0 < 0) fields0 = nf;
        if (nf != fields0) {
            sf_errorf("%s:%d: ragged row: %d tab-separated fields, but the first row has %d", path,
                      lineno, nf, fields0);
            goto out;
        }
        if (nf < 2) {
            sf_errorf("%s:%d: a label and at least one value expected (tab-separated)", path, lineno);
            goto out;
        }
        char *save = strchr(line, '\t');
        *save++ = 0;
        char label[256];
        snprintf(label, sizeof label, "%s", trim(line));
        if (!*label) {
            sf_errorf("%s:%d: empty class label", path, lineno);
            goto out;
        }
        float *v = sf_malloc((size_t)(nf - 1) * sizeof(float));
        int k = 0;
        /* strtok_r would merge empty fields; walk them by hand */
        for (char *p = save; k < nf - 1; k++) {
            char *e = strchr(p, '\t');
            if (e) *e = 0;
            if (parse_value(p, &v[k])) {
                sf_errorf("%s:%d: field %d: '%s' is not a number", path, lineno, k + 2, p);
                free(v);
                goto out;
            }
            p = e ? e + 1 : p + strlen(p);
        }
        int len = valid_length(v, nf - 1, 1);
        if (len <= 0) {
            if (len == 0) sf_errorf("%s:%d: the series has no values (all NaN)", path, lineno);
            else
                sf_errorf("%s:%d: field %d: missing value (NaN) inside the series (only trailing "
                          "NaN padding is accepted)", path, lineno, -len - 1 + 2);
            free(v);
            goto out;
        }
        rows_push(&r, label, len, v);
    }
    if (r.n == 0) {
        sf_errorf("%s: no series", path);
        goto out;
    }
    /* the distinct labels, sorted (numerically when they are all numbers) */
    char **names = sf_malloc((size_t)r.n * sizeof(char *));
    int nn = 0, numeric = 1;
    for (int i = 0; i < r.n; i++) {
        if (find_name(names, nn, r.label[i]) >= 0) continue;
        names[nn++] = sf_strdup(r.label[i]);
        numeric &= is_number(r.label[i]);
    }
    qsort(names, (size_t)nn, sizeof *names, numeric ? cmp_numeric : cmp_text);
    rc = rows_finish(&r, names, nn, path, d);
out:
    rows_free(&r);
    free(text);
    if (rc) sf_class_data_free(d);
    return rc;
}

/* ---- UEA .ts ----------------------------------------------------------------------------- */

typedef struct {
    int dims, equal_length, series_length, univariate, has_labels;
    char **labels;
    int n_labels;
} ts_header;

static int parse_bool(const char *v, int *out) {
    if (!strcasecmp(v, "true")) *out = 1;
    else if (!strcasecmp(v, "false")) *out = 0;
    else return SF_ERR;
    return SF_OK;
}

static int parse_directive(char *line, int lineno, const char *path, ts_header *h, int *data) {
    char *save = NULL, *key = strtok_r(line, " \t", &save);
    char *rest = save ? trim(save) : (char *)"";
    if (!strcasecmp(key, "@data")) {
        *data = 1;
        return SF_OK;
    }
    if (!strcasecmp(key, "@problemName")) return SF_OK;
    if (!strcasecmp(key, "@timeStamps") || !strcasecmp(key, "@missing") ||
        !strcasecmp(key, "@univariate") || !strcasecmp(key, "@equalLength")) {
        int b;
        if (parse_bool(rest, &b))
            return sf_errorf("%s:%d: %s expects true or false (got '%s')", path, lineno, key, rest);
        if (!strcasecmp(key, "@timeStamps") && b)
            return sf_errorf("%s:%d: @timeStamps true (time-stamped values) is not supported; "
                             "give plain values", path, lineno);
        if (!strcasecmp(key, "@univariate")) h->univariate = b;
        if (!strcasecmp(key, "@equalLength")) h->equal_length = b;
        return SF_OK; /* @missing: '?' is handled as documented whatever it says */
    }
    if (!strcasecmp(key, "@dimensions") || !strcasecmp(key, "@seriesLength")) {
        char *end;
        long v = strtol(rest, &end, 10);
        if (end == rest || *end || v < 1 || v > 1000000)
            return sf_errorf("%s:%d: %s expects a positive integer (got '%s')", path, lineno, key,
                             rest);
        if (!strcasecmp(key, "@dimensions")) h->dims = (int)v;
        else h->series_length = (int)v;
        return SF_OK;
    }
    if (!strcasecmp(key, "@classLabel")) {
        char *tok = strtok_r(NULL, " \t", &save);
        int b;
        if (!tok || parse_bool(tok, &b))
            return sf_errorf("%s:%d: @classLabel expects true or false, then the labels", path,
                             lineno);
        if (!b)
            return sf_errorf("%s:%d: @classLabel false: a classification file needs its labels",
                             path, lineno);
        h->has_labels = 1;
        while ((tok = strtok_r(NULL, " \t", &save))) {
            if (find_name(h->labels, h->n_labels, tok) >= 0)
                return sf_errorf("%s:%d: @classLabel lists '%s' twice", path, lineno, tok);
            h->labels = sf_realloc(h->labels, (size_t)(h->n_labels + 1) * sizeof(char *));
            h->labels[h->n_labels++] = sf_strdup(tok);
        }
        if (h->n_labels < 1)
            return sf_errorf("%s:%d: @classLabel true lists no labels", path, lineno);
        return SF_OK;
    }
    return sf_errorf("%s:%d: unknown directive '%s' (known: @problemName @timeStamps @missing "
                     "@univariate @dimensions @equalLength @seriesLength @classLabel @data)",
                     path, lineno, key);
}

/* One case: D dimensions of comma-separated values, then the label. */
static int parse_case(char *line, int lineno, const char *path, const ts_header *h, rows *r) {
    int D = h->dims, parts = 1;
    for (const char *p = line; *p; p++) parts += *p == ':';
    if (parts != D + 1)
        return sf_errorf("%s:%d: %d ':'-separated parts, expected %d dimension%s and the label",
                         path, lineno, parts, D, D == 1 ? "" : "s");
    char **dim = sf_malloc((size_t)(D + 1) * sizeof(char *));
    char *p = line;
    for (int i = 0; i <= D; i++) {
        dim[i] = p;
        char *e = strchr(p, ':');
        if (e) *e = 0;
        p = e ? e + 1 : p + strlen(p);
    }
    const char *label = trim(dim[D]);
    int rc = SF_ERR, len = -1;
    float *v = NULL, *tmp = NULL;
    if (find_name(h->labels, h->n_labels, label) < 0) {
        sf_errorf("%s:%d: class label '%s' is not declared in @classLabel", path, lineno, label);
        goto out;
    }
    for (int c = 0; c < D; c++) {
        int n = 1;
        for (const char *q = dim[c]; *q; q++) n += *q == ',';
        tmp = sf_realloc(tmp, (size_t)n * sizeof(float));
        char *q = dim[c];
        for (int k = 0; k < n; k++) {
            char *e = strchr(q, ',');
            if (e) *e = 0;
            if (parse_value(q, &tmp[k])) {
                sf_errorf("%s:%d: dimension %d, value %d: '%s' is not a number or '?'", path,
                          lineno, c + 1, k + 1, trim(q));
                goto out;
            }
            q = e ? e + 1 : q + strlen(q);
        }
        int lc = valid_length(tmp, n, 1);
        if (lc == 0) {
            sf_errorf("%s:%d: dimension %d has no values", path, lineno, c + 1);
            goto out;
        }
        if (lc < 0) {
            sf_errorf("%s:%d: dimension %d, value %d: missing value ('?' or NaN) inside the series "
                      "(only trailing missing values, as padding, are accepted)",
                      path, lineno, c + 1, -lc);
            goto out;
        }
        if (c == 0) {
            len = lc;
            v = sf_malloc((size_t)len * D * sizeof(float));
        } else if (lc != len) {
            sf_errorf("%s:%d: dimension %d has %d values but dimension 1 has %d (the dimensions "
                      "of one case must have one length)", path, lineno, c + 1, lc, len);
            goto out;
        }
        for (int t = 0; t < len; t++) v[(size_t)t * D + c] = tmp[t];
    }
    if (h->equal_length && h->series_length && len != h->series_length) {
        sf_errorf("%s:%d: %d values per dimension, but @seriesLength is %d", path, lineno, len,
                  h->series_length);
        goto out;
    }
    rows_push(r, label, len, v);
    v = NULL;
    rc = SF_OK;
out:
    free(v);
    free(tmp);
    free(dim);
    return rc;
}

int sf_uea_load(const char *path, sf_class_data *d) {
    memset(d, 0, sizeof *d);
    void *text;
    size_t size;
    if (sf_read_file(path, &text, &size)) return SF_ERR;
    ts_header h = {.equal_length = 1};
    rows r = {0};
    char *cursor = text, *line;
    int lineno = 0, in_data = 0, rc = SF_ERR;
    while ((line = next_line(&cursor))) {
        lineno++;
        line = trim(line);
        if (!*line || *line == '#') continue;
        if (!in_data) {
            if (*line != '@') {
                sf_errorf("%s:%d: expected a header directive (@...) or @data before the series",
                          path, lineno);
                goto out;
            }
            if (parse_directive(line, lineno, path, &h, &in_data)) goto out;
            if (in_data) {
                if (!h.has_labels) {
                    sf_errorf("%s:%d: @data before @classLabel (a classification file needs its "
                              "labels)", path, lineno);
                    goto out;
                }
                if (h.univariate && h.dims > 1) {
                    sf_errorf("%s: @univariate true but @dimensions %d", path, h.dims);
                    goto out;
                }
                if (!h.dims) h.dims = 1;
                r.C = h.dims;
            }
            continue;
        }
        if (parse_case(line, lineno, path, &h, &r)) goto out;
    }
    if (!in_data) {
        sf_errorf("%s: no @data line", path);
        goto out;
    }
    char **names = h.labels;
    h.labels = NULL;
    rc = rows_finish(&r, names, h.n_labels, path, d);
out:
    for (int i = 0; h.labels && i < h.n_labels; i++) free(h.labels[i]);
    free(h.labels);
    rows_free(&r);
    free(text);
    if (rc) sf_class_data_free(d);
    return rc;
}

int sf_class_data_load(const char *path, sf_class_data *d) {
    size_t n = strlen(path);
    if (n >= 3 && !strcasecmp(path + n - 3, ".ts")) return sf_uea_load(path, d);
    return sf_ucr_load(path, d);
}

int sf_class_data_relabel(sf_class_data *d, char *const *names, int n_names, const char *path) {
    int *map = sf_malloc((size_t)d->n_classes * sizeof(int));
    int used_missing = -1;
    for (int k = 0; k < d->n_classes; k++) map[k] = find_name(names, n_names, d->class_names[k]);
    for (int i = 0; i < d->n && used_missing < 0; i++)
        if (map[d->label[i]] < 0) used_missing = d->label[i];
    if (used_missing >= 0) {
        sf_errorf("%s: class '%s' does not occur in the training data (its classes: %d)", path,
                  d->class_names[used_missing], n_names);
        free(map);
        return SF_ERR;
    }
    for (int i = 0; i < d->n; i++) d->label[i] = map[d->label[i]];
    free(map);
    for (int k = 0; k < d->n_classes; k++) free(d->class_names[k]);
    free(d->class_names);
    d->class_names = sf_malloc((size_t)n_names * sizeof(char *));
    for (int k = 0; k < n_names; k++) d->class_names[k] = sf_strdup(names[k]);
    d->n_classes = n_names;
    return SF_OK;
}
