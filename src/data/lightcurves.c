#include "data/lightcurves.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>
#include <zlib.h>

#include "core/error.h"

void sf_lc_opts_init(sf_lc_opts *o) {
    memset(o, 0, sizeof *o);
}

/* ------------------------------------------------------------------ bands */

void sf_bandset_free(sf_bandset *b) {
    for (int i = 0; i < b->n_bands; i++) free(b->band_names[i]);
    memset(b, 0, sizeof *b);
}

int sf_bandset_parse(const char *spec, sf_bandset *b) {
    memset(b, 0, sizeof *b);
    char *copy = sf_strdup(spec), *save = NULL;
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *colon = strchr(tok, ':');
        char *end = NULL;
        double w = colon ? strtod(colon + 1, &end) : NAN;
        if (!colon || colon == tok || end == colon + 1 || *end || !isfinite(w) || w <= 0) {
            sf_errorf("bands: '%s' is not name:wavelength (a positive wavelength in Angstrom)",
                      tok);
            goto fail;
        }
        *colon = '\0';
        for (int i = 0; i < b->n_bands; i++)
            if (!strcmp(b->band_names[i], tok)) {
                sf_errorf("bands: band '%s' is listed twice", tok);
                goto fail;
            }
        if (b->n_bands == SF_LC_MAX_BANDS) {
            sf_errorf("bands: more than %d bands", SF_LC_MAX_BANDS);
            goto fail;
        }
        b->band_names[b->n_bands] = sf_strdup(tok);
        b->band_wavelength[b->n_bands++] = w;
    }
    free(copy);
    if (b->n_bands == 0) return sf_errorf("bands: empty band list");
    return SF_OK;
fail:
    free(copy);
    sf_bandset_free(b);
    return SF_ERR;
}

/* ------------------------------------------------------------ file input */

/* The whole (possibly gzip) file as a NUL-terminated buffer. */
static int read_all(const char *path, char **out) {
    *out = NULL;
    errno = 0;
    gzFile f = gzopen(path, "rb");
    if (!f) return sf_errorf("%s: cannot open: %s", path, errno ? strerror(errno) : "gzopen failed");
    size_t cap = 1 << 16, len = 0;
    char *buf = sf_malloc(cap);
    for (;;) {
        if (cap - len < (1 << 15)) buf = sf_realloc(buf, cap *= 2);
        int got = gzread(f, buf + len, (unsigned)(cap - len - 1));
        if (got < 0) break;
        len += (size_t)got;
        if (got == 0) break;
    }
    int errnum = Z_OK;
    const char *msg = gzerror(f, &errnum);
    if (errnum != Z_OK && errnum != Z_STREAM_END) {
        sf_errorf("%s: read error: %s", path, msg && *msg ? msg : "corrupt or truncated file");
        gzclose(f);
        free(buf);
        return SF_ERR;
    }
    gzclose(f);
    buf[len] = '\0';
    if (strlen(buf) != len) {
        free(buf);
        return sf_errorf("%s: contains a NUL byte (not a text CSV file)", path);
    }
    *out = buf;
    return SF_OK;
}

/* Iterates over lines of a buffer (in place): strips "\r", skips blank lines. */
typedef struct {
    char *p;
    long lineno;
} line_iter;

static char *next_line(line_iter *it) {
    while (it->p && *it->p) {
        char *line = it->p;
        char *nl = strchr(line, '\n');
        if (nl) {
            *nl = '\0';
            it->p = nl + 1;
        } else {
            it->p = NULL;
        }
        it->lineno++;
        size_t n = strlen(line);
        if (n && line[n - 1] == '\r') line[--n] = '\0';
        if (it->lineno == 1 && !strncmp(line, "\xEF\xBB\xBF", 3)) line += 3; /* UTF-8 BOM */
        const char *q = line;
        while (*q == ' ' || *q == '\t') q++;
        if (*q) return line;
    }
    return NULL;
}

#define MAX_FIELDS 64

/* Split at commas in place; trims spaces and one pair of surrounding double quotes. Returns
 * the number of fields (MAX_FIELDS + 1 when there are more). */
static int split(char *line, char **f) {
    int n = 0;
    for (char *p = line;;) {
        char *c = strchr(p, ',');
        if (c) *c = '\0';
        if (n == MAX_FIELDS) return MAX_FIELDS + 1;
        while (*p == ' ' || *p == '\t') p++;
        size_t len = strlen(p);
        while (len && (p[len - 1] == ' ' || p[len - 1] == '\t')) p[--len] = '\0';
        if (len >= 2 && p[0] == '"' && p[len - 1] == '"') {
            p[len - 1] = '\0';
            p++;
        }
        f[n++] = p;
        if (!c) break;
        p = c + 1;
    }
    return n;
}

/* Column index of the first name (in order) present in the header, or -1. */
static int find_col(char **hdr, int n, const char *const *names) {
    for (; *names; names++)
        for (int i = 0; i < n; i++)
            if (!strcasecmp(hdr[i], *names)) return i;
    return -1;
}

static int parse_num(const char *s, double *v, const char *path, long line, const char *col) {
    char *end = NULL;
    errno = 0;
    *v = strtod(s, &end);
    if (!*s || end == s || *end)
        return sf_errorf("%s:%ld: column '%s': not a number: '%s'", path, line, col, s);
    if (!isfinite(*v))
        return sf_errorf("%s:%ld: column '%s': %s is not a finite value", path, line, col, s);
    return SF_OK;
}

/* -------------------------------------------------------- object lookup */

typedef struct {
    int *slot; /* object index + 1, 0 = empty */
    int cap;
} id_map;

static uint64_t hash_str(const char *s) {
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

static int map_find(const id_map *m, sf_lightcurve *obj, const char *id, int *pos) {
    int i = (int)(hash_str(id) & (uint64_t)(m->cap - 1));
    while (m->slot[i]) {
        if (!strcmp(obj[m->slot[i] - 1].id, id)) {
            *pos = i;
            return m->slot[i] - 1;
        }
        i = (i + 1) & (m->cap - 1);
    }
    *pos = i;
    return -1;
}

static void map_grow(id_map *m, sf_lightcurve *obj, int n_obj) {
    free(m->slot);
    m->cap = m->cap ? m->cap * 2 : 1024;
    m->slot = sf_calloc((size_t)m->cap, sizeof *m->slot);
    for (int k = 0; k < n_obj; k++) {
        int pos;
        map_find(m, obj, obj[k].id, &pos);
        m->slot[pos] = k + 1;
    }
}

/* ------------------------------------------------------------ loading */

typedef struct {
    double t, f, e;
    int band;
    long row;
} obs_rec;

typedef struct {
    obs_rec *r;
    int n, cap;
} obs_vec;

static int cmp_obs(const void *a, const void *b) {
    const obs_rec *x = a, *y = b;
    if (x->t != y->t) return x->t < y->t ? -1 : 1;
    return (x->row > y->row) - (x->row < y->row);
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int sf_lc_find(const sf_lc_set *s, const char *id) {
    for (int i = 0; i < s->n_objects; i++)
        if (!strcmp(s->obj[i].id, id)) return i;
    return -1;
}

int sf_lc_class_index(const sf_lc_set *s, const char *label) {
    for (int i = 0; i < s->n_classes; i++)
        if (!strcmp(s->classes[i], label)) return i;
    return -1;
}

void sf_lc_free(sf_lc_set *s) {
    for (int i = 0; i < s->n_objects; i++) {
        sf_lightcurve *o = &s->obj[i];
        free(o->id);
        free(o->label);
        free(o->time);
        free(o->flux);
        free(o->flux_err);
        free(o->band);
    }
    free(s->obj);
    for (int i = 0; i < s->n_classes; i++) free(s->classes[i]);
    free(s->classes);
    sf_bandset_free(&s->bands);
    memset(s, 0, sizeof *s);
}

static int load_labels(const char *path, sf_lc_set *s, const id_map *map, const char *obs_path,
                       const char *const *dropped, int n_dropped) {
    char *text;
    if (read_all(path, &text) != SF_OK) return SF_ERR;
    line_iter it = {text, 0};
    char *f[MAX_FIELDS + 1];
    char *line = next_line(&it);
    int rc = SF_ERR;
    if (!line) {
        sf_errorf("%s: empty file (expected a header line)", path);
        goto done;
    }
    int nh = split(line, f);
    if (nh > MAX_FIELDS) {
        sf_errorf("%s:%ld: more than %d columns", path, it.lineno, MAX_FIELDS);
        goto done;
    }
    static const char *const id_names[] = {"object_id", "id", "objid", "num", NULL};
    static const char *const lab_names[] = {"label", "class", "type", "target", NULL};
    int c_id = find_col(f, nh, id_names), c_lab = find_col(f, nh, lab_names);
    if (c_id < 0 || c_lab < 0) {
        sf_errorf("%s:%ld: header needs an id column (object_id, id, objid or num) and a label "
                  "column (label, class, type or target)",
                  path, it.lineno);
        goto done;
    }
    while ((line = next_line(&it))) {
        int n = split(line, f);
        if (n != nh) {
            sf_errorf("%s:%ld: %d fields, the header has %d", path, it.lineno, n, nh);
            goto done;
        }
        const char *id = f[c_id], *lab = f[c_lab];
        if (!*id || !*lab) {
            sf_errorf("%s:%ld: empty %s", path, it.lineno, !*id ? "object id" : "label");
            goto done;
        }
        int pos, k = map_find(map, s->obj, id, &pos);
        if (k < 0) {
            int was_dropped = 0;
            for (int d = 0; d < n_dropped; d++) was_dropped |= !strcmp(dropped[d], id);
            if (was_dropped) continue;
            sf_errorf("%s:%ld: object '%s' has no observations in %s", path, it.lineno, id,
                      obs_path);
            goto done;
        }
        if (s->obj[k].label) {
            sf_errorf("%s:%ld: object '%s' is labelled twice", path, it.lineno, id);
            goto done;
        }
        s->obj[k].label = sf_strdup(lab);
    }
    for (int k = 0; k < s->n_objects; k++)
        if (!s->obj[k].label) {
            sf_errorf("%s: object '%s' has no label in %s", obs_path, s->obj[k].id, path);
            goto done;
        }
    /* Distinct classes, sorted. */
    s->classes = sf_malloc(sizeof(char *) * (size_t)(s->n_objects ? s->n_objects : 1));
    for (int k = 0; k < s->n_objects; k++) s->classes[k] = s->obj[k].label;
    qsort(s->classes, (size_t)s->n_objects, sizeof(char *), cmp_str);
    int nc = 0;
    for (int k = 0; k < s->n_objects; k++)
        if (nc == 0 || strcmp(s->classes[nc - 1], s->classes[k])) s->classes[nc++] = s->classes[k];
    for (int c = 0; c < nc; c++) s->classes[c] = sf_strdup(s->classes[c]);
    s->n_classes = nc;
    rc = SF_OK;
done:
    free(text);
    return rc;
}

int sf_lc_load(const char *obs_path, const char *labels_path, const sf_lc_opts *o_in,
               sf_lc_set *out) {
    memset(out, 0, sizeof *out);
    sf_lc_opts o = *o_in;
    if (o.zero_point == 0) o.zero_point = 27.5;
    if (o.sentinel == 0) o.sentinel = 99;
    if (o.min_obs == 0) o.min_obs = 2;
    if (sf_bandset_parse(o.bands ? o.bands : SF_LC_SDSS_BANDS, &out->bands) != SF_OK)
        return SF_ERR;

    char *text;
    if (read_all(obs_path, &text) != SF_OK) {
        sf_lc_free(out);
        return SF_ERR;
    }
    line_iter it = {text, 0};
    char *f[MAX_FIELDS + 1];
    id_map map = {0};
    obs_vec *vec = NULL;
    int cap_obj = 0;
    char **dropped = NULL;
    int n_dropped = 0;
    int rc = SF_ERR;

    char *line = next_line(&it);
    if (!line) {
        sf_errorf("%s: empty file (expected a header line)", obs_path);
        goto done;
    }
    int nh = split(line, f);
    if (nh > MAX_FIELDS) {
        sf_errorf("%s:%ld: more than %d columns", obs_path, it.lineno, MAX_FIELDS);
        goto done;
    }
    static const char *const id_names[] = {"object_id", "id", "objid", NULL};
    static const char *const t_names[] = {"time", "mjd", NULL};
    static const char *const b_names[] = {"band", "filter", "passband", NULL};
    static const char *const mag_names[] = {"mag", NULL};
    static const char *const flux_names[] = {"flux", NULL};
    static const char *const magerr_names[] = {"magerr", "mag_err", "err", NULL};
    static const char *const fluxerr_names[] = {"flux_err", "flux_error", "fluxerr", "err", NULL};
    int c_id = find_col(f, nh, id_names), c_t = find_col(f, nh, t_names),
        c_b = find_col(f, nh, b_names), c_mag = find_col(f, nh, mag_names),
        c_flux = find_col(f, nh, flux_names);
    if (c_id < 0 || c_t < 0 || c_b < 0 || (c_mag < 0 && c_flux < 0)) {
        sf_errorf("%s:%ld: header needs columns object_id, time (or mjd), band (or filter, "
                  "passband) and mag or flux",
                  obs_path, it.lineno);
        goto done;
    }
    if (c_mag >= 0 && c_flux >= 0) {
        sf_errorf("%s:%ld: both 'mag' and 'flux' columns: keep one", obs_path, it.lineno);
        goto done;
    }
    out->is_mag = c_mag >= 0;
    int c_val = out->is_mag ? c_mag : c_flux;
    int c_err = find_col(f, nh, out->is_mag ? magerr_names : fluxerr_names);
    if (c_err < 0) {
        sf_errorf("%s:%ld: no error column for '%s' (expected %s)", obs_path, it.lineno, f[c_val],
                  out->is_mag ? "magerr, mag_err or err" : "flux_err, flux_error, fluxerr or err");
        goto done;
    }
    char val_name[64], err_name[64];
    snprintf(val_name, sizeof val_name, "%s", f[c_val]);
    snprintf(err_name, sizeof err_name, "%s", f[c_err]);

    map_grow(&map, out->obj, 0);
    while ((line = next_line(&it))) {
        int n = split(line, f);
        if (n != nh) {
            if (n > MAX_FIELDS)
                sf_errorf("%s:%ld: more fields than the header's %d", obs_path, it.lineno, nh);
            else
                sf_errorf("%s:%ld: %d fields, the header has %d", obs_path, it.lineno, n, nh);
            goto done;
        }
        out->n_rows++;
        const char *id = f[c_id];
        if (!*id) {
            sf_errorf("%s:%ld: empty object id", obs_path, it.lineno);
            goto done;
        }
        int band = -1;
        for (int b = 0; b < out->bands.n_bands; b++)
            if (!strcmp(out->bands.band_names[b], f[c_b])) band = b;
        if (band < 0) {
            char known[256] = "";
            for (int b = 0; b < out->bands.n_bands; b++) {
                if (b) strncat(known, ", ", sizeof known - strlen(known) - 1);
                strncat(known, out->bands.band_names[b], sizeof known - strlen(known) - 1);
            }
            sf_errorf("%s:%ld: unknown band '%s' (known: %s; set others with --bands "
                      "name:wavelength,...)",
                      obs_path, it.lineno, f[c_b], known);
            goto done;
        }
        double t, v, e;
        if (parse_num(f[c_t], &t, obs_path, it.lineno, "time") != SF_OK ||
            parse_num(f[c_val], &v, obs_path, it.lineno, val_name) != SF_OK ||
            parse_num(f[c_err], &e, obs_path, it.lineno, err_name) != SF_OK)
            goto done;
        int pos, k = map_find(&map, out->obj, id, &pos);
        if (k < 0) {
            if (out->n_objects * 2 >= map.cap) {
                map_grow(&map, out->obj, out->n_objects);
                map_find(&map, out->obj, id, &pos);
            }
            if (out->n_objects == cap_obj) {
                cap_obj = cap_obj ? cap_obj * 2 : 256;
                out->obj = sf_realloc(out->obj, sizeof *out->obj * (size_t)cap_obj);
                vec = sf_realloc(vec, sizeof *vec * (size_t)cap_obj);
            }
            k = out->n_objects++;
            memset(&out->obj[k], 0, sizeof out->obj[k]);
            memset(&vec[k], 0, sizeof vec[k]);
            out->obj[k].id = sf_strdup(id);
            map.slot[pos] = k + 1;
        }
        if (out->is_mag && (v >= o.sentinel || e >= o.sentinel)) {
            out->n_dropped_sentinel++;
            continue;
        }
        if (e <= 0) {
            sf_errorf("%s:%ld: column '%s': error %s is not positive", obs_path, it.lineno,
                      err_name, f[c_err]);
            goto done;
        }
        double flux = v, ferr = e;
        if (out->is_mag) {
            flux = pow(10.0, -0.4 * (v - o.zero_point));
            ferr = flux * 0.4 * log(10.0) * e;
            if (!isfinite(flux) || !isfinite(ferr) || ferr <= 0) {
                sf_errorf("%s:%ld: magnitude %s (error %s) gives no finite flux", obs_path,
                          it.lineno, f[c_val], f[c_err]);
                goto done;
            }
        }
        obs_vec *ov = &vec[k];
        if (ov->n == ov->cap) {
            ov->cap = ov->cap ? ov->cap * 2 : 64;
            ov->r = sf_realloc(ov->r, sizeof *ov->r * (size_t)ov->cap);
        }
        ov->r[ov->n++] = (obs_rec){t, flux, ferr, band, it.lineno};
    }
    if (out->n_objects == 0) {
        sf_errorf("%s: no observations", obs_path);
        goto done;
    }

    /* Per object: sort by time, move into arrays, apply min_obs. */
    int kept = 0;
    for (int k = 0; k < out->n_objects; k++) {
        obs_vec *ov = &vec[k];
        sf_lightcurve *lc = &out->obj[k];
        if (ov->n < o.min_obs) {
            if (!o.drop_short) {
                sf_errorf("%s: object '%s' has %d usable observation%s; a GP needs at least %d "
                          "(drop such objects with --drop-short)",
                          obs_path, lc->id, ov->n, ov->n == 1 ? "" : "s", o.min_obs);
                for (int j = k; j < out->n_objects; j++) free(vec[j].r);
                for (int j = k + 1; j < out->n_objects; j++) free(out->obj[j].id);
                free(lc->id);
                out->n_objects = kept;
                goto done_noobs;
            }
            dropped = sf_realloc(dropped, sizeof(char *) * (size_t)(n_dropped + 1));
            dropped[n_dropped++] = lc->id;
            free(ov->r);
            out->n_dropped_short++;
            continue;
        }
        qsort(ov->r, (size_t)ov->n, sizeof *ov->r, cmp_obs);
        sf_lightcurve dst = {lc->id, NULL, ov->n, sf_malloc(sizeof(double) * (size_t)ov->n),
                             sf_malloc(sizeof(double) * (size_t)ov->n),
                             sf_malloc(sizeof(double) * (size_t)ov->n),
                             sf_malloc(sizeof(int) * (size_t)ov->n)};
        for (int i = 0; i < ov->n; i++) {
            dst.time[i] = ov->r[i].t;
            dst.flux[i] = ov->r[i].f;
            dst.flux_err[i] = ov->r[i].e;
            dst.band[i] = ov->r[i].band;
        }
        free(ov->r);
        out->obj[kept++] = dst;
    }
    out->n_objects = kept;
    if (kept == 0) {
        sf_errorf("%s: no object has at least %d observations", obs_path, o.min_obs);
        goto done_noobs;
    }
    /* Rebuild the lookup for the kept objects. */
    free(map.slot);
    map.slot = NULL;
    map.cap = 0;
    while (map.cap < 2 * kept + 2) map.cap = map.cap ? map.cap * 2 : 1024;
    map.cap /= 2;
    map_grow(&map, out->obj, kept);
    if (labels_path &&
        load_labels(labels_path, out, &map, obs_path, (const char *const *)dropped, n_dropped) !=
            SF_OK)
        goto done_noobs;
    rc = SF_OK;
    goto done_noobs;

done:
    for (int k = 0; k < out->n_objects; k++) free(vec[k].r);
done_noobs:
    free(vec);
    free(map.slot);
    for (int d = 0; d < n_dropped; d++) free(dropped[d]);
    free(dropped);
    free(text);
    if (rc != SF_OK) sf_lc_free(out);
    return rc;
}
