#include "core/safetensors.h"

#include "core/error.h"
#include "core/fileio.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <float.h>
#include <inttypes.h>
#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>

#if defined(__BYTE_ORDER__) && defined(__ORDER_LITTLE_ENDIAN__)
_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
               "safetensors I/O copies raw bytes and needs a little-endian host");
#endif
_Static_assert(sizeof(float) == 4 && FLT_MANT_DIG == 24, "F32 must be IEEE binary32");
_Static_assert(sizeof(int64_t) == 8, "I64 must be 8 bytes");

#define ALIGN 64
/* Integers in the header are parsed as doubles by cJSON: only those below 2^53 are exact. */
#define MAX_JSON_INT 9007199254740992.0

static int host_is_little_endian(void) {
    const uint16_t one = 1;
    unsigned char b;
    memcpy(&b, &one, 1);
    return b == 1;
}

static const char *dtype_str(sf_st_dtype d) { return d == SF_ST_I64 ? "I64" : "F32"; }
static uint64_t dtype_size(sf_st_dtype d) { return d == SF_ST_I64 ? 8 : 4; }

/* ------------------------------------------------------------------------------------------
 * Small helpers: messages, UTF-8, a growable string. */

/* Set "<path>: <problem>" and return SF_ERR. */
static int SF_PRINTF(2, 3) st_fail(const char *path, const char *fmt, ...) {
    char msg[900];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return sf_errorf("%s: %s", path, msg);
}

/* A name made safe for a one-line message: at most ~60 bytes, control characters as '?'. */
static const char *show(const char *s, char buf[80]) {
    size_t i = 0, j = 0;
    while (s[i] && j < 60) {
        unsigned char c = (unsigned char)s[i++];
        buf[j++] = c < 0x20 || c == 0x7f ? '?' : (char)c;
    }
    if (s[i]) {
        while (j > 0 && ((unsigned char)buf[j - 1] & 0xC0) == 0x80) j--; /* whole characters */
        if (j > 0 && ((unsigned char)buf[j - 1] & 0xC0) == 0xC0) j--;
        memcpy(buf + j, "...", 4);
    } else {
        buf[j] = '\0';
    }
    return buf;
}

static void fmt_shape(char *buf, size_t cap, int ndim, const int64_t *shape) {
    size_t len = 0;
    len += (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < ndim && len < cap; i++)
        len += (size_t)snprintf(buf + len, cap - len, "%s%" PRId64, i ? ", " : "", shape[i]);
    if (len < cap) snprintf(buf + len, cap - len, "]");
}

/* Strict UTF-8: no overlong forms, no surrogates, nothing above U+10FFFF. */
static int utf8_valid(const unsigned char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t len;
        unsigned cp, min;
        if ((c & 0xE0) == 0xC0) {
            len = 2, cp = c & 0x1F, min = 0x80;
        } else if ((c & 0xF0) == 0xE0) {
            len = 3, cp = c & 0x0F, min = 0x800;
        } else if ((c & 0xF8) == 0xF0) {
            len = 4, cp = c & 0x07, min = 0x10000;
        } else {
            return 0;
        }
        if (n - i < len) return 0;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80) return 0;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
        i += len;
    }
    return 1;
}

typedef struct {
    char *p;
    size_t len, cap;
} sbuf;

static void sb_add(sbuf *b, const char *s, size_t n) {
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1) cap *= 2;
        b->p = sf_realloc(b->p, cap);
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void sb_str(sbuf *b, const char *s) { sb_add(b, s, strlen(s)); }

static void SF_PRINTF(2, 3) sb_printf(sbuf *b, const char *fmt, ...) {
    char tmp[64];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    SF_ASSERT(n >= 0 && (size_t)n < sizeof tmp);
    sb_add(b, tmp, (size_t)n);
}

/* A JSON string literal: quotes, backslashes and control characters escaped; other bytes
 * (already checked to be UTF-8) copied as they are. */
static void sb_json_string(sbuf *b, const char *s) {
    sb_add(b, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '"': sb_add(b, "\\\"", 2); break;
        case '\\': sb_add(b, "\\\\", 2); break;
        case '\n': sb_add(b, "\\n", 2); break;
        case '\r': sb_add(b, "\\r", 2); break;
        case '\t': sb_add(b, "\\t", 2); break;
        case '\b': sb_add(b, "\\b", 2); break;
        case '\f': sb_add(b, "\\f", 2); break;
        default:
            if (*p < 0x20)
                sb_printf(b, "\\u%04x", *p);
            else
                sb_add(b, (const char *)p, 1);
        }
    }
    sb_add(b, "\"", 1);
}

static int cmp_str_ptr(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The first name that occurs twice in names[0..n), or NULL. */
static const char *find_duplicate(const char **names, int n) {
    if (n < 2) return NULL;
    const char **s = sf_malloc((size_t)n * sizeof *s);
    memcpy(s, names, (size_t)n * sizeof *s);
    qsort(s, (size_t)n, sizeof *s, cmp_str_ptr);
    const char *dup = NULL;
    for (int i = 1; i < n && !dup; i++)
        if (strcmp(s[i - 1], s[i]) == 0) dup = s[i];
    free(s);
    return dup;
}

/* ------------------------------------------------------------------------------------------
 * Writer */

int sf_safetensors_write(const char *path, const sf_st_tensor_in *t, int n_tensors,
                         const sf_st_meta *meta, int n_meta) {
    SF_ASSERT(path && n_tensors >= 0 && n_meta >= 0);
    SF_ASSERT(n_tensors == 0 || t);
    SF_ASSERT(n_meta == 0 || meta);
    SF_ASSERT(host_is_little_endian());
    char nb[80], sb[200];

    /* Validate everything before creating any file. */
    uint64_t *bytes = sf_malloc(((size_t)n_tensors + 1) * sizeof *bytes);
    const char **names = sf_malloc(((size_t)n_tensors + (size_t)n_meta + 1) * sizeof *names);
    int rc = SF_OK;
    for (int i = 0; i < n_tensors && rc == SF_OK; i++) {
        const sf_st_tensor_in *x = &t[i];
        SF_ASSERT(x->name);
        names[i] = x->name;
        if (!x->name[0]) {
            rc = st_fail(path, "tensor %d has an empty name", i);
        } else if (!utf8_valid((const unsigned char *)x->name, strlen(x->name))) {
            rc = st_fail(path, "tensor %d: name '%s' is not valid UTF-8", i, show(x->name, nb));
        } else if (strcmp(x->name, "__metadata__") == 0) {
            rc = st_fail(path, "tensor %d: '__metadata__' is reserved and cannot name a tensor",
                         i);
        } else if (x->dtype != SF_ST_F32 && x->dtype != SF_ST_I64) {
            rc = st_fail(path, "tensor '%s': unknown dtype code %d", show(x->name, nb),
                         (int)x->dtype);
        } else if (x->ndim < 0 || x->ndim > SF_ST_MAX_DIMS) {
            rc = st_fail(path, "tensor '%s': ndim %d is outside 0..%d", show(x->name, nb),
                         x->ndim, SF_ST_MAX_DIMS);
        } else {
            uint64_t esize = dtype_size(x->dtype), numel = 1;
            for (int d = 0; d < x->ndim && rc == SF_OK; d++) {
                int64_t dim = x->shape[d];
                if (dim < 0) {
                    fmt_shape(sb, sizeof sb, x->ndim, x->shape);
                    rc = st_fail(path, "tensor '%s': shape %s has a negative dimension",
                                 show(x->name, nb), sb);
                } else if (dim != 0 && numel > (UINT64_MAX / 2 / esize) / (uint64_t)dim) {
                    fmt_shape(sb, sizeof sb, x->ndim, x->shape);
                    rc = st_fail(path, "tensor '%s': shape %s is too large", show(x->name, nb),
                                 sb);
                } else {
                    numel *= (uint64_t)dim;
                }
            }
            bytes[i] = numel * esize;
            if (rc == SF_OK && numel > 0)
                SF_ASSERT(x->dtype == SF_ST_F32 ? x->data != NULL : x->data_i64 != NULL);
        }
    }
    const char *dup;
    if (rc == SF_OK && (dup = find_duplicate(names, n_tensors)))
        rc = st_fail(path, "duplicate tensor name '%s'", show(dup, nb));
    for (int i = 0; i < n_meta && rc == SF_OK; i++) {
        SF_ASSERT(meta[i].key && meta[i].value);
        names[i] = meta[i].key;
        if (!utf8_valid((const unsigned char *)meta[i].key, strlen(meta[i].key)))
            rc = st_fail(path, "metadata key '%s' is not valid UTF-8", show(meta[i].key, nb));
        else if (!utf8_valid((const unsigned char *)meta[i].value, strlen(meta[i].value)))
            rc = st_fail(path, "metadata value for key '%s' is not valid UTF-8",
                         show(meta[i].key, nb));
    }
    if (rc == SF_OK && (dup = find_duplicate(names, n_meta)))
        rc = st_fail(path, "duplicate metadata key '%s'", show(dup, nb));
    free(names);
    if (rc != SF_OK) {
        free(bytes);
        return rc;
    }

    /* Header: metadata first, then the tensors in the given (= data) order; compact JSON. */
    sbuf h = {0};
    sb_str(&h, "{");
    if (n_meta > 0) {
        sb_str(&h, "\"__metadata__\":{");
        for (int i = 0; i < n_meta; i++) {
            if (i) sb_str(&h, ",");
            sb_json_string(&h, meta[i].key);
            sb_str(&h, ":");
            sb_json_string(&h, meta[i].value);
        }
        sb_str(&h, "}");
    }
    uint64_t off = 0;
    for (int i = 0; i < n_tensors; i++) {
        if (i || n_meta > 0) sb_str(&h, ",");
        sb_json_string(&h, t[i].name);
        sb_printf(&h, ":{\"dtype\":\"%s\",\"shape\":[", dtype_str(t[i].dtype));
        for (int d = 0; d < t[i].ndim; d++) sb_printf(&h, "%s%" PRId64, d ? "," : "", t[i].shape[d]);
        sb_printf(&h, "],\"data_offsets\":[%" PRIu64 ",%" PRIu64 "]}", off, off + bytes[i]);
        off += bytes[i];
    }
    sb_str(&h, "}");
    while (h.len % 8) sb_str(&h, " ");

    unsigned char len8[8];
    for (int k = 0; k < 8; k++) len8[k] = (unsigned char)((uint64_t)h.len >> (8 * k));

    sf_atomic_file f;
    rc = sf_atomic_open(&f, path);
    if (rc == SF_OK) {
        rc = sf_atomic_write(&f, len8, 8);
        if (rc == SF_OK) rc = sf_atomic_write(&f, h.p, h.len);
        for (int i = 0; i < n_tensors && rc == SF_OK; i++) {
            const void *src = t[i].dtype == SF_ST_F32 ? (const void *)t[i].data
                                                      : (const void *)t[i].data_i64;
            if (bytes[i] > 0) rc = sf_atomic_write(&f, src, (size_t)bytes[i]);
        }
        if (rc == SF_OK)
            rc = sf_atomic_commit(&f);
        else
            sf_atomic_abort(&f);
    }
    free(h.p);
    free(bytes);
    return rc;
}

/* ------------------------------------------------------------------------------------------
 * Reader */

typedef struct {
    char *name;
    sf_st_dtype dtype;
    int ndim;
    int64_t shape[SF_ST_MAX_DIMS];
    uint64_t begin, end;
    void *data; /* into the shared buffer, or `own` */
    void *own;  /* aligned private copy (I64 tensors at an offset that is not 8-aligned) */
} st_entry;

struct sf_safetensors {
    char *path;
    unsigned char *buf; /* the data buffer, ALIGN-aligned */
    uint64_t buf_size;
    st_entry *t;
    int n;
    int *by_name; /* indices sorted by name */
    char **mkey, **mval;
    int n_meta;
};

static void *aligned_alloc_or_die(uint64_t n) {
    uint64_t size = (n + ALIGN - 1) / ALIGN * ALIGN;
    if (size == 0) size = ALIGN;
    if (size > SIZE_MAX) {
        fprintf(stderr, "seqformer: out of memory allocating %" PRIu64 " bytes\n", size);
        abort();
    }
    void *p = NULL;
    if (posix_memalign(&p, ALIGN, (size_t)size) != 0) {
        fprintf(stderr, "seqformer: out of memory allocating %" PRIu64 " bytes\n", size);
        abort();
    }
    return p;
}

void sf_safetensors_close(sf_safetensors *st) {
    if (!st) return;
    for (int i = 0; i < st->n; i++) {
        free(st->t[i].name);
        free(st->t[i].own);
    }
    for (int i = 0; i < st->n_meta; i++) {
        free(st->mkey[i]);
        free(st->mval[i]);
    }
    free(st->t);
    free(st->by_name);
    free(st->mkey);
    free(st->mval);
    free(st->buf);
    free(st->path);
    free(st);
}

/* A JSON number that must be a non-negative integer (exact in a double). */
static int get_uint(const char *path, const char *tname, const char *what, const cJSON *item,
                    uint64_t *out) {
    char nb[80];
    if (!cJSON_IsNumber(item))
        return st_fail(path, "tensor '%s': %s is not a number", show(tname, nb), what);
    double v = item->valuedouble;
    if (v < 0)
        return st_fail(path, "tensor '%s': %s is negative (%g)", show(tname, nb), what, v);
    if (!(v <= MAX_JSON_INT))
        return st_fail(path, "tensor '%s': %s is too large (%g)", show(tname, nb), what, v);
    if ((double)(uint64_t)v != v)
        return st_fail(path, "tensor '%s': %s is not an integer (%g)", show(tname, nb), what, v);
    *out = (uint64_t)v;
    return SF_OK;
}

static int parse_entry(const char *path, const char *name, const cJSON *obj, uint64_t buf_size,
                       st_entry *e) {
    char nb[80], sb[200];
    const char *tn = show(name, nb);
    if (!cJSON_IsObject(obj)) return st_fail(path, "tensor '%s': entry is not a JSON object", tn);
    const cJSON *dtype = NULL, *shape = NULL, *offs = NULL;
    for (const cJSON *c = obj->child; c; c = c->next) {
        const cJSON **slot = strcmp(c->string, "dtype") == 0          ? &dtype
                             : strcmp(c->string, "shape") == 0        ? &shape
                             : strcmp(c->string, "data_offsets") == 0 ? &offs
                                                                      : NULL;
        char fb[80];
        if (!slot)
            return st_fail(path, "tensor '%s': unexpected field \"%s\"", tn, show(c->string, fb));
        if (*slot) return st_fail(path, "tensor '%s': duplicate field \"%s\"", tn, c->string);
        *slot = c;
    }
    if (!dtype) return st_fail(path, "tensor '%s': missing \"dtype\"", tn);
    if (!shape) return st_fail(path, "tensor '%s': missing \"shape\"", tn);
    if (!offs) return st_fail(path, "tensor '%s': missing \"data_offsets\"", tn);

    if (!cJSON_IsString(dtype)) return st_fail(path, "tensor '%s': \"dtype\" is not a string", tn);
    char db[80];
    if (strcmp(dtype->valuestring, "F32") == 0)
        e->dtype = SF_ST_F32;
    else if (strcmp(dtype->valuestring, "I64") == 0)
        e->dtype = SF_ST_I64;
    else
        return st_fail(path, "tensor '%s': unsupported dtype \"%s\" (supported: F32, I64)", tn,
                       show(dtype->valuestring, db));

    if (!cJSON_IsArray(shape)) return st_fail(path, "tensor '%s': \"shape\" is not an array", tn);
    int ndim = cJSON_GetArraySize(shape);
    if (ndim > SF_ST_MAX_DIMS)
        return st_fail(path, "tensor '%s': shape has %d dimensions, more than the supported %d",
                       tn, ndim, SF_ST_MAX_DIMS);
    e->ndim = ndim;
    uint64_t esize = dtype_size(e->dtype);
    int d = 0;
    for (const cJSON *c = shape->child; c; c = c->next, d++) {
        char what[40];
        snprintf(what, sizeof what, "shape[%d]", d);
        uint64_t v;
        if (get_uint(path, name, what, c, &v) != SF_OK) return SF_ERR;
        e->shape[d] = (int64_t)v;
    }
    /* Element count; an overflow only matters when no dimension is zero. */
    uint64_t numel = 1;
    int too_large = 0;
    for (d = 0; d < ndim; d++) {
        uint64_t v = (uint64_t)e->shape[d];
        if (v == 0) {
            numel = 0, too_large = 0;
            break;
        }
        if (numel > (UINT64_MAX / esize) / v) too_large = 1;
        if (!too_large) numel *= v;
    }

    if (!cJSON_IsArray(offs) || cJSON_GetArraySize(offs) != 2)
        return st_fail(path, "tensor '%s': \"data_offsets\" must be an array [begin, end]", tn);
    if (get_uint(path, name, "data_offsets[0]", offs->child, &e->begin) != SF_OK ||
        get_uint(path, name, "data_offsets[1]", offs->child->next, &e->end) != SF_OK)
        return SF_ERR;
    if (e->begin > e->end)
        return st_fail(path, "tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64 "] begin > end",
                       tn, e->begin, e->end);
    if (e->end > buf_size)
        return st_fail(path,
                       "tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64
                       "] out of range (the data buffer has %" PRIu64 " bytes)",
                       tn, e->begin, e->end, buf_size);
    fmt_shape(sb, sizeof sb, e->ndim, e->shape);
    if (too_large)
        return st_fail(path, "tensor '%s': shape %s is too large for the file", tn, sb);
    if (numel * esize != e->end - e->begin)
        return st_fail(path,
                       "tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64 "] span %" PRIu64
                       " bytes but shape %s of %s needs %" PRIu64,
                       tn, e->begin, e->end, e->end - e->begin, sb, dtype_str(e->dtype),
                       numel * esize);
    return SF_OK;
}

/* Sort keys for the name index and the layout check (qsort has no context argument). */
typedef struct {
    const char *name;
    uint64_t begin, end;
    int idx;
} sort_key;

static int cmp_key_offset(const void *a, const void *b) {
    const sort_key *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return x->idx - y->idx;
}

static int cmp_key_name(const void *a, const void *b) {
    const sort_key *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    return c ? c : x->idx - y->idx;
}

static sort_key *sorted_keys(const sf_safetensors *st, int (*cmp)(const void *, const void *)) {
    sort_key *k = sf_malloc(((size_t)st->n + 1) * sizeof *k);
    for (int i = 0; i < st->n; i++)
        k[i] = (sort_key){st->t[i].name, st->t[i].begin, st->t[i].end, i};
    qsort(k, (size_t)st->n, sizeof *k, cmp);
    return k;
}

static int parse_header(sf_safetensors *st, const char *hdr, size_t hlen) {
    const char *path = st->path;
    char nb[80], nb2[80];
    if (memchr(hdr, 0, hlen)) return st_fail(path, "header contains a NUL byte");
    if (!utf8_valid((const unsigned char *)hdr, hlen))
        return st_fail(path, "header is not valid UTF-8");
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(hdr, hlen, &end, 0);
    if (!root) {
        size_t at = end && end >= hdr && end <= hdr + hlen ? (size_t)(end - hdr) : 0;
        return st_fail(path, "header is not valid JSON (error near header byte %zu)", at);
    }
    int rc = SF_OK;
    for (const char *p = end; p < hdr + hlen; p++) {
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
            rc = st_fail(path, "unexpected bytes after the JSON header object (header byte %zu)",
                         (size_t)(p - hdr));
            break;
        }
    }
    if (rc == SF_OK && !cJSON_IsObject(root)) rc = st_fail(path, "header is not a JSON object");
    if (rc != SF_OK) {
        cJSON_Delete(root);
        return rc;
    }

    int n_items = cJSON_GetArraySize(root);
    st->t = sf_calloc((size_t)n_items + 1, sizeof *st->t);
    const cJSON *meta = NULL;
    for (const cJSON *c = root->child; c && rc == SF_OK; c = c->next) {
        if (strcmp(c->string, "__metadata__") == 0) {
            if (meta)
                rc = st_fail(path, "duplicate \"__metadata__\"");
            else if (!cJSON_IsObject(c))
                rc = st_fail(path, "\"__metadata__\" is not a JSON object");
            meta = c;
            continue;
        }
        st_entry *e = &st->t[st->n];
        rc = parse_entry(path, c->string, c, st->buf_size, e);
        if (rc == SF_OK) {
            e->name = sf_strdup(c->string);
            st->n++;
        }
    }
    if (rc == SF_OK && meta) {
        int nm = cJSON_GetArraySize(meta);
        st->mkey = sf_calloc((size_t)nm + 1, sizeof *st->mkey);
        st->mval = sf_calloc((size_t)nm + 1, sizeof *st->mval);
        for (const cJSON *c = meta->child; c && rc == SF_OK; c = c->next) {
            if (!cJSON_IsString(c)) {
                rc = st_fail(path, "metadata value for key '%s' is not a string",
                             show(c->string, nb));
                break;
            }
            st->mkey[st->n_meta] = sf_strdup(c->string);
            st->mval[st->n_meta] = sf_strdup(c->valuestring);
            st->n_meta++;
        }
        const char *dup;
        if (rc == SF_OK && (dup = find_duplicate((const char **)st->mkey, st->n_meta)))
            rc = st_fail(path, "duplicate metadata key '%s'", show(dup, nb));
    }
    cJSON_Delete(root);
    if (rc != SF_OK) return rc;

    /* Names: unique (cJSON keeps duplicate object keys, so check here). */
    sort_key *k = sorted_keys(st, cmp_key_name);
    st->by_name = sf_malloc(((size_t)st->n + 1) * sizeof *st->by_name);
    for (int i = 0; i < st->n; i++) st->by_name[i] = k[i].idx;
    for (int i = 1; i < st->n && rc == SF_OK; i++)
        if (strcmp(k[i - 1].name, k[i].name) == 0)
            rc = st_fail(path, "duplicate tensor name '%s'", show(k[i].name, nb));
    free(k);
    if (rc != SF_OK) return rc;

    /* The tensors must tile the buffer exactly, in any order. */
    k = sorted_keys(st, cmp_key_offset);
    uint64_t expect = 0;
    for (int i = 0; i < st->n && rc == SF_OK; i++) {
        if (k[i].begin < expect) {
            rc = st_fail(path,
                         "tensors '%s' [%" PRIu64 ", %" PRIu64 "] and '%s' [%" PRIu64 ", %" PRIu64
                         "] overlap",
                         show(k[i - 1].name, nb), k[i - 1].begin, k[i - 1].end,
                         show(k[i].name, nb2), k[i].begin, k[i].end);
        } else if (k[i].begin > expect) {
            rc = st_fail(path,
                         "gap of %" PRIu64 " unused bytes before tensor '%s' at offset %" PRIu64,
                         k[i].begin - expect, show(k[i].name, nb), k[i].begin);
        }
        expect = k[i].end;
    }
    free(k);
    if (rc == SF_OK && expect != st->buf_size)
        rc = st_fail(path,
                     "%" PRIu64 " trailing bytes after the last tensor (data buffer %" PRIu64
                     " bytes, tensors end at %" PRIu64 ")",
                     st->buf_size - expect, st->buf_size, expect);
    if (rc != SF_OK) return rc;

    for (int i = 0; i < st->n; i++) {
        st_entry *e = &st->t[i];
        SF_ASSERT(e->begin % 4 == 0); /* all sizes are multiples of 4 and the tiling starts at 0 */
        e->data = st->buf + e->begin;
        if (e->dtype == SF_ST_I64 && e->begin % 8 != 0) {
            e->own = aligned_alloc_or_die(e->end - e->begin);
            memcpy(e->own, e->data, (size_t)(e->end - e->begin));
            e->data = e->own;
        }
    }
    return SF_OK;
}

int sf_safetensors_open(const char *path, sf_safetensors **out) {
    SF_ASSERT(path && out);
    SF_ASSERT(host_is_little_endian());
    *out = NULL;
    FILE *fp = fopen(path, "rbe");
    if (!fp) return st_fail(path, "cannot open: %s", strerror(errno));
    struct stat sst;
    if (fstat(fileno(fp), &sst) != 0) {
        int e = errno;
        fclose(fp);
        return st_fail(path, "cannot read: %s", strerror(e));
    }
    if (!S_ISREG(sst.st_mode)) {
        fclose(fp);
        return st_fail(path, "not a regular file");
    }
    uint64_t size = (uint64_t)sst.st_size;
    if (size < 8) {
        fclose(fp);
        return st_fail(path, "file is too short (%" PRIu64 " bytes) to be safetensors: it needs at "
                             "least the 8-byte header length",
                       size);
    }
    unsigned char len8[8];
    if (fread(len8, 1, 8, fp) != 8) {
        fclose(fp);
        return st_fail(path, "cannot read the header length");
    }
    uint64_t hlen = 0;
    for (int k = 7; k >= 0; k--) hlen = (hlen << 8) | len8[k];
    if (hlen > SF_ST_MAX_HEADER) {
        fclose(fp);
        return st_fail(path,
                       "header length %" PRIu64 " exceeds the %llu-byte limit; not a safetensors "
                       "file?",
                       hlen, SF_ST_MAX_HEADER);
    }
    if (hlen > size - 8) {
        fclose(fp);
        return st_fail(path,
                       "header length %" PRIu64 " exceeds the file size (%" PRIu64
                       " bytes); truncated file?",
                       hlen, size);
    }

    sf_safetensors *st = sf_calloc(1, sizeof *st);
    st->path = sf_strdup(path);
    st->buf_size = size - 8 - hlen;
    char *hdr = sf_malloc((size_t)hlen + 1);
    st->buf = aligned_alloc_or_die(st->buf_size);
    int rc = SF_OK;
    if (fread(hdr, 1, (size_t)hlen, fp) != hlen ||
        fread(st->buf, 1, (size_t)st->buf_size, fp) != st->buf_size)
        rc = st_fail(path, "read error or file truncated while reading%s%s",
                     ferror(fp) ? ": " : "", ferror(fp) ? strerror(errno) : "");
    fclose(fp);
    if (rc == SF_OK) {
        hdr[hlen] = '\0';
        rc = parse_header(st, hdr, (size_t)hlen);
    }
    free(hdr);
    if (rc != SF_OK) {
        sf_safetensors_close(st);
        return rc;
    }
    *out = st;
    return SF_OK;
}

const char *sf_safetensors_path(const sf_safetensors *st) {
    SF_ASSERT(st);
    return st->path;
}

int sf_safetensors_count(const sf_safetensors *st) {
    SF_ASSERT(st);
    return st->n;
}

const char *sf_safetensors_name(const sf_safetensors *st, int i) {
    SF_ASSERT(st && i >= 0 && i < st->n);
    return st->t[i].name;
}

int sf_safetensors_find(const sf_safetensors *st, const char *name) {
    SF_ASSERT(st && name);
    int lo = 0, hi = st->n - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        int c = strcmp(st->t[st->by_name[mid]].name, name);
        if (c == 0) return st->by_name[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return -1;
}

sf_st_dtype sf_safetensors_dtype(const sf_safetensors *st, int i) {
    SF_ASSERT(st && i >= 0 && i < st->n);
    return st->t[i].dtype;
}

int sf_safetensors_shape(const sf_safetensors *st, int i, int64_t shape[SF_ST_MAX_DIMS]) {
    SF_ASSERT(st && i >= 0 && i < st->n);
    if (shape)
        for (int d = 0; d < st->t[i].ndim; d++) shape[d] = st->t[i].shape[d];
    return st->t[i].ndim;
}

int64_t sf_safetensors_numel(const sf_safetensors *st, int i) {
    SF_ASSERT(st && i >= 0 && i < st->n);
    return (int64_t)((st->t[i].end - st->t[i].begin) / dtype_size(st->t[i].dtype));
}

static const void *get_typed(const sf_safetensors *st, const char *name, sf_st_dtype dt,
                             int *ndim, int64_t shape[SF_ST_MAX_DIMS]) {
    int i = sf_safetensors_find(st, name);
    if (i < 0 || st->t[i].dtype != dt) return NULL;
    int nd = sf_safetensors_shape(st, i, shape);
    if (ndim) *ndim = nd;
    return st->t[i].data;
}

const float *sf_safetensors_get(const sf_safetensors *st, const char *name, int *ndim,
                                int64_t shape[SF_ST_MAX_DIMS]) {
    return get_typed(st, name, SF_ST_F32, ndim, shape);
}

const int64_t *sf_safetensors_get_i64(const sf_safetensors *st, const char *name, int *ndim,
                                      int64_t shape[SF_ST_MAX_DIMS]) {
    return get_typed(st, name, SF_ST_I64, ndim, shape);
}

int sf_safetensors_load_f32(const sf_safetensors *st, const char *name, int ndim,
                            const int64_t *shape, float *dst) {
    SF_ASSERT(st && name && ndim >= 0 && ndim <= SF_ST_MAX_DIMS && (shape || ndim == 0));
    char nb[80], got[200], want[200];
    int i = sf_safetensors_find(st, name);
    if (i < 0) return st_fail(st->path, "tensor '%s' not found", show(name, nb));
    const st_entry *e = &st->t[i];
    if (e->dtype != SF_ST_F32)
        return st_fail(st->path, "tensor '%s' has dtype %s, expected F32", show(name, nb),
                       dtype_str(e->dtype));
    int same = e->ndim == ndim;
    for (int d = 0; same && d < ndim; d++) same = e->shape[d] == shape[d];
    if (!same) {
        fmt_shape(got, sizeof got, e->ndim, e->shape);
        fmt_shape(want, sizeof want, ndim, shape);
        return st_fail(st->path, "tensor '%s' has shape %s, expected %s", show(name, nb), got,
                       want);
    }
    SF_ASSERT(dst || e->end == e->begin);
    if (e->end > e->begin) memcpy(dst, e->data, (size_t)(e->end - e->begin));
    return SF_OK;
}

const char *sf_safetensors_meta(const sf_safetensors *st, const char *key) {
    SF_ASSERT(st && key);
    for (int i = 0; i < st->n_meta; i++)
        if (strcmp(st->mkey[i], key) == 0) return st->mval[i];
    return NULL;
}

int sf_safetensors_meta_count(const sf_safetensors *st) {
    SF_ASSERT(st);
    return st->n_meta;
}

const char *sf_safetensors_meta_key(const sf_safetensors *st, int i) {
    SF_ASSERT(st && i >= 0 && i < st->n_meta);
    return st->mkey[i];
}
