/* core/safetensors: round trips of random tensors (scalars, empty tensors, 8-d, NaN/Inf bit
 * patterns) and awkward metadata, the exact on-disk layout of tiny files, writer argument
 * errors, and a malformed file for every validation rule (each must fail with a one-line
 * message naming the file and the problem). Works in a fresh directory under /tmp. */
#include "core/error.h"
#include "core/fileio.h"
#include "core/safetensors.h"
#include "test_util.h"

#include <dirent.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char g_dir[64];
static uint64_t g_rng;

static uint64_t rnd(void) { /* xorshift64* */
    g_rng ^= g_rng >> 12;
    g_rng ^= g_rng << 25;
    g_rng ^= g_rng >> 27;
    return g_rng * 2685821657736338717ull;
}

static char *path_in(const char *name) {
    static char buf[8][256];
    static int k;
    char *p = buf[k++ % 8];
    snprintf(p, 256, "%s/%s", g_dir, name);
    return p;
}

static int has(const char *hay, const char *needle) { return strstr(hay, needle) != NULL; }

static int count_tmp_files(void) {
    DIR *d = opendir(g_dir);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (strstr(e->d_name, ".tmp.")) n++;
    if (d) closedir(d);
    return n;
}

static void rm_dir_files(void) {
    DIR *d = opendir(g_dir);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        char p[512];
        snprintf(p, sizeof p, "%s/%s", g_dir, e->d_name);
        if (unlink(p) != 0) rmdir(p);
    }
    if (d) closedir(d);
    rmdir(g_dir);
}

static uint64_t le64(const unsigned char *b) {
    uint64_t v = 0;
    for (int k = 7; k >= 0; k--) v = (v << 8) | b[k];
    return v;
}

static int64_t numel_of(int ndim, const int64_t *shape) {
    int64_t n = 1;
    for (int d = 0; d < ndim; d++) n *= shape[d];
    return n;
}

/* ------------------------------------------------------------------------------------------ */

#define NT 14

static void test_round_trip(void) {
    const char *p = path_in("round.safetensors");
    sf_st_tensor_in t[NT];
    float *bufs[NT];
    int64_t counters[3] = {42, -1, INT64_MAX};
    memset(t, 0, sizeof t);
    static const char *names[NT] = {"enc.layers.0.attn.w_q", "bias", "scalar", "empty",
                                    "eight_d", "big", "we\"ird\nname\\ünï", "r0", "r1", "r2",
                                    "r3", "r4", "steps", "empty_i64"};
    const int64_t fixed[7][8] = {{3, 4}, {5}, {0}, {2, 0, 3}, {1, 1, 1, 1, 1, 1, 1, 2},
                                 {17, 33}, {1}};
    const int fixed_nd[7] = {2, 1, 0, 3, 8, 2, 1};
    for (int i = 0; i < NT; i++) {
        t[i].name = names[i];
        if (i < 7) {
            t[i].ndim = fixed_nd[i];
            memcpy(t[i].shape, fixed[i], sizeof fixed[i]);
        } else if (i < 12) { /* random shapes, ndim 0..4, dims 0..6 (zeros included) */
            t[i].ndim = (int)(rnd() % 5);
            for (int d = 0; d < t[i].ndim; d++) t[i].shape[d] = (int64_t)(rnd() % 7);
        }
        int64_t n = numel_of(t[i].ndim, t[i].shape);
        bufs[i] = NULL;
        if (i < 12) {
            bufs[i] = malloc((size_t)(n ? n : 1) * sizeof(float));
            for (int64_t k = 0; k < n; k++) {
                uint32_t bits = (uint32_t)rnd();
                memcpy(&bufs[i][k], &bits, 4); /* any bit pattern: NaNs, Infs, denormals */
            }
            t[i].data = n ? bufs[i] : NULL;
        }
    }
    t[12].dtype = SF_ST_I64;
    t[12].ndim = 1;
    t[12].shape[0] = 3;
    t[12].data_i64 = counters;
    t[13].dtype = SF_ST_I64;
    t[13].ndim = 2;
    t[13].shape[0] = 4; /* 4 x 0 */

    const char *cfg = "{\"d_model\": 64, \"name\": \"x\\\"y\",\n\t\"nested\": {\"a\": [1, 2]}}\n";
    sf_st_meta meta[] = {{"config", cfg},
                         {"format", "pt"},
                         {"weird", "quote\" back\\slash \x01 ctrl \r\n€ end"},
                         {"empty", ""},
                         {"key with \"quotes\"", "v"}};
    int n_meta = (int)(sizeof meta / sizeof meta[0]);
    CHECK(sf_safetensors_write(p, t, NT, meta, n_meta) == SF_OK);
    CHECK(count_tmp_files() == 0);

    sf_safetensors *st = NULL;
    int rc = sf_safetensors_open(p, &st);
    CHECK_MSG(rc == SF_OK && st, "%s", sf_error_message());
    if (!st) return;
    CHECK(strcmp(sf_safetensors_path(st), p) == 0);
    CHECK(sf_safetensors_count(st) == NT);
    for (int i = 0; i < NT && i < sf_safetensors_count(st); i++) {
        CHECK_MSG(strcmp(sf_safetensors_name(st, i), names[i]) == 0, "i=%d", i);
        CHECK(sf_safetensors_find(st, names[i]) == i);
        CHECK(sf_safetensors_dtype(st, i) == t[i].dtype);
        CHECK(sf_safetensors_numel(st, i) == numel_of(t[i].ndim, t[i].shape));
    }
    for (int i = 0; i < 12; i++) {
        int ndim = -1;
        int64_t shape[8] = {0};
        const float *x = sf_safetensors_get(st, names[i], &ndim, shape);
        CHECK_MSG(x != NULL, "%s", names[i]);
        if (!x) continue;
        CHECK(((uintptr_t)x % 4) == 0);
        CHECK(ndim == t[i].ndim);
        CHECK(memcmp(shape, t[i].shape, (size_t)t[i].ndim * sizeof(int64_t)) == 0);
        int64_t n = numel_of(ndim, shape);
        CHECK_MSG(n == 0 || memcmp(x, bufs[i], (size_t)n * 4) == 0, "%s", names[i]);
        if (n > 0) {
            float *dst = malloc((size_t)n * 4);
            CHECK(sf_safetensors_load_f32(st, names[i], t[i].ndim, t[i].shape, dst) == SF_OK);
            CHECK(memcmp(dst, bufs[i], (size_t)n * 4) == 0);
            free(dst);
        }
    }
    CHECK(((uintptr_t)sf_safetensors_get(st, names[0], NULL, NULL) % 64) == 0);
    CHECK(sf_safetensors_get(st, "scalar", NULL, NULL)[0] == bufs[2][0] ||
          bufs[2][0] != bufs[2][0]);
    int nd;
    int64_t sh[8];
    const int64_t *c = sf_safetensors_get_i64(st, "steps", &nd, sh);
    CHECK(c && nd == 1 && sh[0] == 3 && ((uintptr_t)c % 8) == 0);
    CHECK(c && c[0] == 42 && c[1] == -1 && c[2] == INT64_MAX);
    CHECK(sf_safetensors_get_i64(st, "empty_i64", &nd, sh) != NULL && nd == 2 && sh[1] == 0);
    CHECK(sf_safetensors_get(st, "steps", NULL, NULL) == NULL); /* wrong dtype */
    CHECK(sf_safetensors_get_i64(st, "bias", NULL, NULL) == NULL);
    CHECK(sf_safetensors_get(st, "nope", NULL, NULL) == NULL);
    CHECK(sf_safetensors_find(st, "nope") == -1);
    CHECK(sf_safetensors_find(st, "") == -1);

    /* Checked loads: messages name the file and the tensor. */
    float tmp[12];
    int64_t wrong[2] = {4, 3};
    CHECK(sf_safetensors_load_f32(st, names[0], 2, wrong, tmp) == SF_ERR);
    CHECK_MSG(has(sf_error_message(), p) && has(sf_error_message(), "shape [3, 4], expected [4, 3]"),
              "%s", sf_error_message());
    CHECK(sf_safetensors_load_f32(st, "missing.w", 2, wrong, tmp) == SF_ERR);
    CHECK_MSG(has(sf_error_message(), p) && has(sf_error_message(), "'missing.w' not found"), "%s",
              sf_error_message());
    CHECK(sf_safetensors_load_f32(st, "steps", 1, (int64_t[]){3}, tmp) == SF_ERR);
    CHECK_MSG(has(sf_error_message(), "dtype I64"), "%s", sf_error_message());

    CHECK(sf_safetensors_meta_count(st) == n_meta);
    for (int i = 0; i < n_meta && i < sf_safetensors_meta_count(st); i++) {
        CHECK(strcmp(sf_safetensors_meta_key(st, i), meta[i].key) == 0);
        const char *v = sf_safetensors_meta(st, meta[i].key);
        CHECK_MSG(v && strcmp(v, meta[i].value) == 0, "key %s", meta[i].key);
    }
    CHECK(sf_safetensors_meta(st, "absent") == NULL);
    sf_safetensors_close(st);

    /* File size and header alignment. */
    void *raw;
    size_t n;
    CHECK(sf_read_file(p, &raw, &n) == SF_OK);
    const unsigned char *b = raw;
    uint64_t hlen = le64(b), total = 0;
    for (int i = 0; i < NT; i++)
        total += (uint64_t)numel_of(t[i].ndim, t[i].shape) * (t[i].dtype == SF_ST_I64 ? 8 : 4);
    CHECK(hlen % 8 == 0);
    CHECK(n == 8 + hlen + total);
    CHECK(b[8] == '{');
    uint64_t last = 8 + hlen - 1;
    while (b[last] == ' ') last--;
    CHECK(b[last] == '}' && 8 + hlen - 1 - last < 8);
    free(raw);

    for (int i = 0; i < 12; i++) free(bufs[i]);
    sf_safetensors_close(NULL);
}

/* Compare a file with expected bytes. */
static int file_is(const char *path, const unsigned char *want, size_t n) {
    void *raw;
    size_t got;
    if (sf_read_file(path, &raw, &got) != SF_OK) return 0;
    int ok = got == n && memcmp(raw, want, n) == 0;
    if (!ok)
        fprintf(stderr, "  got %zu bytes: %.*s\n", got, (int)(got > 8 ? got - 8 : 0),
                (char *)raw + 8);
    free(raw);
    return ok;
}

static void test_exact_layout(void) {
    /* One F32 tensor [1, -2] and one metadata entry. Header JSON by hand: 79 bytes, padded
     * with one space to 80 = 0x50; then 1.0f = 0x3f800000, -2.0f = 0xc0000000 little-endian. */
    const char *p = path_in("tiny.safetensors");
    const float a[2] = {1.0f, -2.0f};
    sf_st_tensor_in t = {.name = "a", .ndim = 1, .shape = {2}, .data = a};
    sf_st_meta m = {"k", "v"};
    CHECK(sf_safetensors_write(p, &t, 1, &m, 1) == SF_OK);
    const char *json =
        "{\"__metadata__\":{\"k\":\"v\"},\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";
    CHECK(strlen(json) == 79);
    unsigned char want[96] = {0x50, 0, 0, 0, 0, 0, 0, 0};
    memcpy(want + 8, json, 79);
    want[87] = ' ';
    const unsigned char data[8] = {0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x00, 0xc0};
    memcpy(want + 88, data, 8);
    CHECK(file_is(p, want, sizeof want));

    /* An I64 scalar, no metadata: 53 bytes of JSON + 3 spaces = 56 = 0x38. */
    const char *q = path_in("tiny_i64.safetensors");
    const int64_t s = 0x0102030405060708;
    sf_st_tensor_in u = {.name = "s", .ndim = 0, .dtype = SF_ST_I64, .data_i64 = &s};
    CHECK(sf_safetensors_write(q, &u, 1, NULL, 0) == SF_OK);
    const char *json2 = "{\"s\":{\"dtype\":\"I64\",\"shape\":[],\"data_offsets\":[0,8]}}";
    CHECK(strlen(json2) == 53);
    unsigned char want2[72] = {0x38, 0, 0, 0, 0, 0, 0, 0};
    memcpy(want2 + 8, json2, 53);
    memcpy(want2 + 61, "   ", 3);
    const unsigned char d2[8] = {8, 7, 6, 5, 4, 3, 2, 1};
    memcpy(want2 + 64, d2, 8);
    CHECK(file_is(q, want2, sizeof want2));

    /* Nothing at all: "{}" padded to 8, 16 bytes in total. */
    const char *r = path_in("empty.safetensors");
    CHECK(sf_safetensors_write(r, NULL, 0, NULL, 0) == SF_OK);
    const unsigned char want3[16] = {8, 0, 0, 0, 0, 0, 0, 0, '{', '}', ' ', ' ', ' ', ' ', ' ', ' '};
    CHECK(file_is(r, want3, sizeof want3));
    sf_safetensors *st;
    CHECK(sf_safetensors_open(r, &st) == SF_OK && sf_safetensors_count(st) == 0 &&
          sf_safetensors_meta_count(st) == 0);
    sf_safetensors_close(st);

    /* Escapes: quote, backslash, newline, control character, UTF-8 passed through. */
    const char *e = path_in("escape.safetensors");
    sf_st_meta em = {"q\"\\", "l1\nl2\x01\xc3\xa9"};
    CHECK(sf_safetensors_write(e, NULL, 0, &em, 1) == SF_OK);
    const char *json4 = "{\"__metadata__\":{\"q\\\"\\\\\":\"l1\\nl2\\u0001\xc3\xa9\"}}";
    unsigned char want4[56] = {48, 0, 0, 0, 0, 0, 0, 0};
    size_t l4 = strlen(json4);
    CHECK(l4 == 43);
    memcpy(want4 + 8, json4, l4);
    memset(want4 + 8 + l4, ' ', 48 - l4);
    CHECK(file_is(e, want4, sizeof want4));
}

/* ------------------------------------------------------------------------------------------
 * Malformed files: [8-byte length][header][data_len zero bytes]. */

static void write_raw(const char *path, uint64_t hlen_field, const char *hdr, size_t hdr_len,
                      size_t data_len) {
    size_t n = 8 + hdr_len + data_len;
    unsigned char *b = calloc(n, 1);
    for (int k = 0; k < 8; k++) b[k] = (unsigned char)(hlen_field >> (8 * k));
    memcpy(b + 8, hdr, hdr_len);
    CHECK(sf_write_file_atomic(path, b, n) == SF_OK);
    free(b);
}

static void expect_bad_file(const char *path, const char *word, int line) {
    sf_safetensors *st = (sf_safetensors *)&st;
    sf_error_clear();
    int rc = sf_safetensors_open(path, &st);
    const char *msg = sf_error_message();
    if (getenv("SF_TEST_VERBOSE")) printf("  line %d: %s\n", line, msg);
    CHECK_MSG(rc == SF_ERR && st == NULL, "line %d: opened a bad file", line);
    CHECK_MSG(has(msg, path) && has(msg, word) && !strchr(msg, '\n'),
              "line %d: message '%s' should name the file and say '%s'", line, msg, word);
    if (rc == SF_OK) sf_safetensors_close(st);
}

static int g_case;
static void bad_n(const char *hdr, size_t hdr_len, uint64_t hlen, size_t data_len,
                  const char *word, int line) {
    char name[64];
    snprintf(name, sizeof name, "bad_%02d_line%d.safetensors", g_case++, line);
    const char *p = path_in(name);
    write_raw(p, hlen, hdr, hdr_len, data_len);
    expect_bad_file(p, word, line);
}
#define BAD(hdr, data_len, word) bad_n(hdr, strlen(hdr), strlen(hdr), data_len, word, __LINE__)

static void good(const char *hdr, size_t data_len, int line) {
    const char *p = path_in("good.safetensors");
    write_raw(p, strlen(hdr), hdr, strlen(hdr), data_len);
    sf_safetensors *st = NULL;
    CHECK_MSG(sf_safetensors_open(p, &st) == SF_OK, "line %d: %s", line, sf_error_message());
    sf_safetensors_close(st);
}

#define T1(dt, shape, offs) "{\"a\":{\"dtype\":\"" dt "\",\"shape\":" shape ",\"data_offsets\":" offs "}}"

static void test_malformed(void) {
    /* File-level problems. */
    const char *missing = path_in("does_not_exist.safetensors");
    expect_bad_file(missing, "No such file", __LINE__);
    const char *dir = path_in("a_directory.safetensors");
    CHECK(mkdir(dir, 0755) == 0);
    expect_bad_file(dir, "not a regular file", __LINE__);
    const char *shortf = path_in("short.safetensors");
    CHECK(sf_write_file_atomic(shortf, "\x02\0\0\0\0", 5) == SF_OK);
    expect_bad_file(shortf, "too short", __LINE__);
    const char *zero = path_in("zero.safetensors");
    CHECK(sf_write_file_atomic(zero, "", 0) == SF_OK);
    expect_bad_file(zero, "too short", __LINE__);
    bad_n("{}      ", 8, 200000000, 0, "limit", __LINE__);         /* absurd header length */
    bad_n("{}      ", 8, UINT64_MAX, 0, "limit", __LINE__);        /* huge (would overflow) */
    bad_n("{}      ", 8, 1000, 0, "exceeds the file size", __LINE__);
    bad_n("{}      ", 8, 9, 0, "exceeds the file size", __LINE__); /* off by one */
    bad_n("", 0, 0, 0, "not valid JSON", __LINE__);                 /* empty header */

    /* Header syntax. */
    BAD("{\"a\":", 0, "not valid JSON");
    BAD("{\"a\" 1}", 0, "not valid JSON");
    BAD("[1, 2]  ", 0, "not a JSON object");
    BAD("\"str\"", 0, "not a JSON object");
    BAD("{} x", 0, "after the JSON header");
    BAD("{}{}", 0, "after the JSON header");
    bad_n("{}\0     ", 8, 8, 0, "NUL", __LINE__);
    BAD("{\"\xff\":{}}", 0, "UTF-8");
    BAD("{\"\xc0\xaf\":{}}", 0, "UTF-8"); /* overlong '/' */

    /* Tensor entries. */
    BAD("{\"a\":5}", 0, "entry is not a JSON object");
    BAD("{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "missing \"dtype\"");
    BAD("{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4, "missing \"shape\"");
    BAD("{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, "missing \"data_offsets\"");
    BAD("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"extra\":1}}", 4,
        "unexpected field \"extra\"");
    BAD("{\"a\":{\"dtype\":\"F32\",\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
        "duplicate field");
    BAD(T1("F16", "[2]", "[0,4]"), 4, "unsupported dtype \"F16\"");
    BAD(T1("f32", "[1]", "[0,4]"), 4, "unsupported dtype");
    BAD("{\"a\":{\"dtype\":5,\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "\"dtype\" is not a string");
    BAD(T1("F32", "[-1]", "[0,4]"), 4, "shape[0] is negative");
    BAD(T1("F32", "[2.5]", "[0,4]"), 4, "shape[0] is not an integer");
    BAD(T1("F32", "[1,\"2\"]", "[0,4]"), 4, "shape[1] is not a number");
    BAD(T1("F32", "\"x\"", "[0,4]"), 4, "\"shape\" is not an array");
    BAD(T1("F32", "[1,1,1,1,1,1,1,1,1]", "[0,4]"), 4, "9 dimensions");
    BAD(T1("F32", "[1e300]", "[0,4]"), 4, "too large");
    BAD(T1("F32", "[4294967296,4294967296,4294967296]", "[0,4]"), 4, "too large");
    BAD(T1("F32", "[1]", "[0]"), 4, "[begin, end]");
    BAD(T1("F32", "[1]", "[0,4,8]"), 8, "[begin, end]");
    BAD(T1("F32", "[1]", "{\"a\":0}"), 4, "[begin, end]");
    BAD(T1("F32", "[1]", "[0,-4]"), 4, "data_offsets[1] is negative");
    BAD(T1("F32", "[1]", "[0,4.5]"), 4, "not an integer");
    BAD(T1("F32", "[1]", "[8,4]"), 8, "begin > end");
    BAD(T1("F32", "[25]", "[0,100]"), 4, "out of range");
    BAD(T1("F32", "[2]", "[0,4]"), 4, "needs 8");
    BAD(T1("I64", "[1]", "[0,4]"), 4, "needs 8");
    BAD(T1("F32", "[2,0]", "[0,4]"), 4, "needs 0");

    /* Layout of the data buffer. */
    BAD("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
        "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
        12, "overlap");
    BAD("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
        "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}",
        12, "gap of 4 unused bytes");
    BAD(T1("F32", "[1]", "[4,8]"), 8, "gap");
    BAD(T1("F32", "[2]", "[0,8]"), 12, "4 trailing bytes");
    BAD("{}", 4, "trailing bytes");
    BAD("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
        "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
        8, "duplicate tensor name 'a'");

    /* Metadata. */
    BAD("{\"__metadata__\":{\"k\":5}}", 0, "metadata value for key 'k' is not a string");
    BAD("{\"__metadata__\":{\"k\":{\"x\":\"y\"}}}", 0, "not a string");
    BAD("{\"__metadata__\":[\"x\"]}", 0, "\"__metadata__\" is not a JSON object");
    BAD("{\"__metadata__\":{},\"__metadata__\":{}}", 0, "duplicate \"__metadata__\"");
    BAD("{\"__metadata__\":{\"k\":\"1\",\"k\":\"2\"}}", 0, "duplicate metadata key 'k'");

    /* Long or odd names still give one-line messages. */
    BAD("{\"line\\nbreak\":5}", 0, "'line?break'");

    /* Valid files not written by us: unpadded header, whitespace, tensors stored in a
     * different order than the header lists them, I64 at an offset that is not 8-aligned. */
    good("{ \"b\" : {\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]},\n"
         "  \"a\" : {\"data_offsets\":[0,4],\"shape\":[1],\"dtype\":\"F32\"} }\n",
         8, __LINE__);
    good("{}", 0, __LINE__);
    good("{\"__metadata__\":{}}", 0, __LINE__);
    good(T1("F32", "[0]", "[0,0]"), 0, __LINE__);

    const char *p = path_in("misaligned_i64.safetensors");
    const char *hdr = "{\"f\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                      "\"i\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[4,12]}}";
    size_t hl = strlen(hdr);
    unsigned char b[256] = {0};
    b[0] = (unsigned char)hl;
    memcpy(b + 8, hdr, hl);
    const float one = 1.0f;
    const int64_t big = -1234567890123;
    memcpy(b + 8 + hl, &one, 4);
    memcpy(b + 8 + hl + 4, &big, 8);
    CHECK(sf_write_file_atomic(p, b, 8 + hl + 12) == SF_OK);
    sf_safetensors *st = NULL;
    CHECK_MSG(sf_safetensors_open(p, &st) == SF_OK, "%s", sf_error_message());
    if (st) {
        const int64_t *i = sf_safetensors_get_i64(st, "i", NULL, NULL);
        CHECK(i && ((uintptr_t)i % 8) == 0 && *i == big);
        const float *f = sf_safetensors_get(st, "f", NULL, NULL);
        CHECK(f && *f == 1.0f);
        sf_safetensors_close(st);
    }
}

/* ------------------------------------------------------------------------------------------ */

static void expect_write_error(const char *path, const sf_st_tensor_in *t, int n,
                               const sf_st_meta *m, int nm, const char *word, int line) {
    CHECK_MSG(sf_safetensors_write(path, t, n, m, nm) == SF_ERR, "line %d", line);
    const char *msg = sf_error_message();
    CHECK_MSG(has(msg, path) && has(msg, word), "line %d: '%s' lacks '%s'", line, msg, word);
}

static void test_writer_errors(void) {
    const char *p = path_in("keep.safetensors");
    const float x[4] = {1, 2, 3, 4};
    sf_st_tensor_in ok = {.name = "w", .ndim = 1, .shape = {4}, .data = x};
    CHECK(sf_safetensors_write(p, &ok, 1, NULL, 0) == SF_OK);
    void *before;
    size_t nb;
    CHECK(sf_read_file(p, &before, &nb) == SF_OK);

    sf_st_tensor_in two[2] = {ok, ok};
    expect_write_error(p, two, 2, NULL, 0, "duplicate tensor name 'w'", __LINE__);
    sf_st_tensor_in t = ok;
    t.name = "__metadata__";
    expect_write_error(p, &t, 1, NULL, 0, "reserved", __LINE__);
    t.name = "";
    expect_write_error(p, &t, 1, NULL, 0, "empty name", __LINE__);
    t.name = "bad\xff";
    expect_write_error(p, &t, 1, NULL, 0, "UTF-8", __LINE__);
    t = ok;
    t.ndim = 9;
    expect_write_error(p, &t, 1, NULL, 0, "ndim 9", __LINE__);
    t.ndim = -1;
    expect_write_error(p, &t, 1, NULL, 0, "ndim -1", __LINE__);
    t = ok;
    t.shape[0] = -4;
    expect_write_error(p, &t, 1, NULL, 0, "negative", __LINE__);
    t = ok;
    t.ndim = 3;
    t.shape[0] = t.shape[1] = t.shape[2] = INT64_C(1) << 30;
    expect_write_error(p, &t, 1, NULL, 0, "too large", __LINE__);
    sf_st_meta m2[2] = {{"k", "1"}, {"k", "2"}};
    expect_write_error(p, &ok, 1, m2, 2, "duplicate metadata key 'k'", __LINE__);
    sf_st_meta mbad = {"k", "\xc3("};
    expect_write_error(p, &ok, 1, &mbad, 1, "UTF-8", __LINE__);

    /* None of these touched the existing file or left a temp file. */
    void *after;
    size_t na;
    CHECK(sf_read_file(p, &after, &na) == SF_OK);
    CHECK(na == nb && memcmp(before, after, nb) == 0);
    free(after);
    free(before);
    CHECK(count_tmp_files() == 0);

    /* A fresh path that fails validation is not created at all. */
    const char *fresh = path_in("never.safetensors");
    expect_write_error(fresh, two, 2, NULL, 0, "duplicate", __LINE__);
    CHECK(access(fresh, F_OK) != 0);

    /* Unwritable destination: the message names the path. */
    const char *nodir = path_in("no/such/dir/x.safetensors");
    expect_write_error(nodir, &ok, 1, NULL, 0, "No such file", __LINE__);

    /* Rewriting replaces the content completely (a smaller file, no stale bytes). */
    sf_st_tensor_in small = {.name = "s", .ndim = 0, .data = x};
    CHECK(sf_safetensors_write(p, &small, 1, NULL, 0) == SF_OK);
    sf_safetensors *st = NULL;
    CHECK(sf_safetensors_open(p, &st) == SF_OK);
    CHECK(st && sf_safetensors_count(st) == 1 && sf_safetensors_find(st, "w") == -1);
    sf_safetensors_close(st);
    CHECK(count_tmp_files() == 0);
}

int main(void) {
    g_rng = test_seed() | 1;
    snprintf(g_dir, sizeof g_dir, "/tmp/sf_test_st.XXXXXX");
    if (!mkdtemp(g_dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_round_trip();
    test_exact_layout();
    test_malformed();
    test_writer_errors();
    if (getenv("SF_TEST_KEEP"))
        printf("kept %s\n", g_dir);
    else
        rm_dir_files();
    return test_finish();
}
