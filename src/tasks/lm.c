#include "tasks/lm.h"

#include <math.h>
#include <string.h>

#include "core/error.h"
#include "core/fileio.h"
#include "core/rng.h"

typedef struct {
    sf_lm_vocab v;
    int byte_tokenizer;
    int T;
    int32_t *tok; /* every byte of the file as a token id */
    long n, n_train;  /* tokens; the first n_train train, the rest validate */
    int32_t *test;    /* a separate test text (NULL: test = validation) */
    long n_test;
    int n_windows[3];
    long *starts; /* [n_windows[SF_TRAIN]] this epoch's training window starts */
} lm_task;

/* ---- text files and the vocabulary --------------------------------------------------------- */

static int read_text(const char *path, unsigned char **out, size_t *n) {
    void *data;
    if (sf_read_file(path, &data, n)) return SF_ERR;
    const unsigned char *p = data;
    if (*n == 0) {
        free(data);
        return sf_errorf("%s: the text file is empty", path);
    }
    size_t control = 0;
    for (size_t i = 0; i < *n; i++) {
        if (p[i] == 0) {
            free(data);
            return sf_errorf("%s: a binary file (NUL byte at offset %zu), not text", path, i);
        }
        if ((p[i] < 0x20 && !strchr("\t\n\r\f\v\x1b", p[i])) || p[i] == 0x7f) control++;
    }
    if (control * 100 > *n) {
        free(data);
        return sf_errorf("%s: a binary file (%zu of %zu bytes are control bytes), not text", path,
                         control, *n);
    }
    *out = data;
    return SF_OK;
}

static void vocab_bytes(sf_lm_vocab *v) {
    v->vocab = 256;
    for (int b = 0; b < 256; b++) v->id_of[b] = b, v->byte_of[b] = (unsigned char)b;
}

static void vocab_of_text(sf_lm_vocab *v, const unsigned char *p, size_t n) {
    int seen[256] = {0};
    for (size_t i = 0; i < n; i++) seen[p[i]] = 1;
    v->vocab = 0;
    for (int b = 0; b < 256; b++) {
        v->id_of[b] = seen[b] ? v->vocab : -1;
        if (seen[b]) v->byte_of[v->vocab++] = (unsigned char)b;
    }
}

static int encode(const sf_lm_vocab *v, const unsigned char *p, size_t n, const char *path,
                  int32_t **out) {
    int32_t *t = sf_malloc((n ? n : 1) * sizeof *t);
    for (size_t i = 0; i < n; i++) {
        t[i] = v->id_of[p[i]];
        if (t[i] < 0) {
            free(t);
            return sf_errorf("%s: byte 0x%02x at offset %zu is not in the model's vocabulary "
                             "(%d characters of the training text)",
                             path, p[i], i, v->vocab);
        }
    }
    *out = t;
    return SF_OK;
}

int sf_lm_vocab_from_meta(const sf_meta *meta, sf_lm_vocab *v) {
    const char *tk = meta ? sf_meta_get(meta, "lm_tokenizer") : NULL;
    if (!tk) return sf_errorf("the checkpoint has no lm tokenizer (it was not trained by the lm task)");
    if (!strcmp(tk, "byte")) {
        vocab_bytes(v);
        return SF_OK;
    }
    const char *hex = sf_meta_get(meta, "lm_vocab");
    if (strcmp(tk, "char") != 0 || !hex || strlen(hex) % 2 || strlen(hex) / 2 < 1 ||
        strlen(hex) / 2 > 256)
        return sf_errorf("the checkpoint's lm tokenizer metadata is damaged (lm_tokenizer '%s')", tk);
    v->vocab = (int)(strlen(hex) / 2);
    for (int b = 0; b < 256; b++) v->id_of[b] = -1;
    for (int i = 0; i < v->vocab; i++) {
        unsigned x;
        if (sscanf(hex + 2 * i, "%2x", &x) != 1) return sf_errorf("lm_vocab: not hex");
        v->byte_of[i] = (unsigned char)x;
        v->id_of[x] = i;
    }
    return SF_OK;
}

/* ---- loss ------------------------------------------------------------------------------------ */

double sf_lm_cross_entropy(const float *logits, const float *targets, float *dlogits, long n, int V) {
    double total = 0;
#pragma omp parallel for reduction(+ : total) schedule(static) if (n * V >= 65536)
    for (long i = 0; i < n; i++) {
        const float *z = logits + i * V;
        int y = (int)targets[i];
        double mx = z[0];
        for (int k = 1; k < V; k++) mx = z[k] > mx ? z[k] : mx;
        double sum = 0;
        for (int k = 0; k < V; k++) sum += exp(z[k] - mx);
        double lse = mx + log(sum);
        total += lse - z[y];
        if (dlogits) {
            float *g = dlogits + i * V;
            for (int k = 0; k < V; k++) g[k] = (float)(exp(z[k] - lse) / (double)n);
            g[y] -= (float)(1.0 / (double)n);
        }
    }
    return total / (double)n;
}

/* ---- task ops --------------------------------------------------------------------------------- */

static int lm_n_examples(const sf_task *t, sf_split s) {
    const lm_task *l = t->self;
    return l->n_windows[s];
}

static void lm_gather(const sf_task *t, sf_split s, const int *idx, int n, float *x, float *y) {
    const lm_task *l = t->self;
    const int32_t *tok = s == SF_TEST && l->test ? l->test : l->tok;
    long base = s == SF_TRAIN ? 0 : s == SF_TEST && l->test ? 0 : l->n_train;
    for (int k = 0; k < n; k++) {
        long start = s == SF_TRAIN ? l->starts[idx[k]] : base + (long)idx[k] * l->T;
        float *xk = x + (size_t)k * t->x_floats;
        for (int i = 0; i < l->T; i++) xk[i] = (float)tok[start + i];
        if (y) {
            float *yk = y + (size_t)k * t->y_floats; /* the targets fill its first T floats */
            for (int i = 0; i < l->T; i++) yk[i] = (float)tok[start + i + 1];
        }
    }
}

static void lm_begin_epoch(const sf_task *t, uint64_t seed, int epoch) {
    lm_task *l = t->self;
    sf_rng r;
    sf_rng_seed_stream(&r, seed, 3000 + (uint64_t)epoch);
    long span = l->n_train - l->T; /* starts 0..span-1 leave room for the shifted target */
    for (int i = 0; i < l->n_windows[SF_TRAIN]; i++)
        l->starts[i] = (long)(((sf_rng_u64(&r) >> 11) * (double)span) / 9007199254740992.0);
}

/* The trainer sizes out, y and dy alike (y_floats per example); ours are T*V wide, targets first. */
static double lm_loss(const sf_task *t, const float *out, const float *y, float *dy, int n) {
    const lm_task *l = t->self;
    int V = l->v.vocab, T = l->T;
    double sum = 0;
    for (int k = 0; k < n; k++) {
        const float *o = out + (size_t)k * t->y_floats;
        float *d = dy ? dy + (size_t)k * t->y_floats : NULL;
        sum += sf_lm_cross_entropy(o, y + (size_t)k * t->y_floats, d, T, V);
        if (d)
            for (long i = 0; i < (long)T * V; i++) d[i] /= (float)n;
    }
    return sum / n;
}

static void lm_metrics_add(const sf_task *t, const float *out, const float *y, int n, double *acc) {
    const lm_task *l = t->self;
    for (int k = 0; k < n; k++) {
        acc[0] += l->T * sf_lm_cross_entropy(out + (size_t)k * t->y_floats,
                                             y + (size_t)k * t->y_floats, NULL, l->T, l->v.vocab);
        acc[1] += l->T;
    }
}

static void lm_metrics_finish(const sf_task *t, const double *acc, long n_total, sf_metrics *out) {
    (void)t, (void)n_total;
    double loss = acc[1] > 0 ? acc[0] / acc[1] : NAN;
    out->n = 3;
    out->name[0] = "loss";
    out->value[0] = loss;
    out->name[1] = "bpc";
    out->value[1] = loss / log(2.0);
    out->name[2] = "perplexity";
    out->value[2] = exp(loss);
}

static void lm_save_meta(const sf_task *t, sf_meta *meta) {
    const lm_task *l = t->self;
    sf_meta_set(meta, "lm_tokenizer", l->byte_tokenizer ? "byte" : "char");
    if (!l->byte_tokenizer) {
        char hex[513];
        for (int i = 0; i < l->v.vocab; i++) snprintf(hex + 2 * i, 3, "%02x", l->v.byte_of[i]);
        hex[2 * l->v.vocab] = 0;
        sf_meta_set(meta, "lm_vocab", hex);
    }
}

static void lm_close(sf_task *t) {
    lm_task *l = t->self;
    if (!l) return;
    free(l->tok);
    free(l->test);
    free(l->starts);
    free(l);
    t->self = NULL;
}

static const sf_task_ops lm_task_ops = {
    .n_examples = lm_n_examples,
    .gather = lm_gather,
    .loss = lm_loss,
    .metrics_add = lm_metrics_add,
    .metrics_finish = lm_metrics_finish,
    .save_meta = lm_save_meta,
    .close = lm_close,
};

/* Tokenize a.data (and a.test) with l->v, split 90/10 and count windows of T. */
static int lm_load(sf_task *t, lm_task *l, const sf_task_args *a, int from_text) {
    unsigned char *text;
    size_t n;
    if (read_text(a->data, &text, &n)) return SF_ERR;
    if (from_text) vocab_of_text(&l->v, text, n);
    int rc = encode(&l->v, text, n, a->data, &l->tok);
    free(text);
    if (rc) return SF_ERR;
    l->n = (long)n;
    l->n_train = (long)(0.9 * (double)n);
    long n_val = l->n - l->n_train;
    if (l->n_train < l->T + 1 || n_val < l->T + 1)
        return sf_errorf("%s: %zu bytes give %ld training and %ld validation bytes; each split "
                         "needs at least seq_len + 1 = %d",
                         a->data, n, l->n_train, n_val, l->T + 1);
    l->n_windows[SF_TRAIN] = a->epoch_windows > 0 ? a->epoch_windows : (int)((l->n_train - 1) / l->T);
    l->n_windows[SF_VAL] = (int)((n_val - 1) / l->T);
    l->n_windows[SF_TEST] = l->n_windows[SF_VAL];
    if (a->test) {
        if (read_text(a->test, &text, &n)) return SF_ERR;
        rc = encode(&l->v, text, n, a->test, &l->test);
        free(text);
        if (rc) return SF_ERR;
        l->n_test = (long)n;
        if (l->n_test < l->T + 1)
            return sf_errorf("%s: %ld bytes; the test text needs at least seq_len + 1 = %d",
                             a->test, l->n_test, l->T + 1);
        l->n_windows[SF_TEST] = (int)((l->n_test - 1) / l->T);
    }
    l->starts = sf_malloc((size_t)l->n_windows[SF_TRAIN] * sizeof *l->starts);
    for (int i = 0; i < l->n_windows[SF_TRAIN]; i++) l->starts[i] = (long)i * l->T;
    t->x_floats = l->T;
    t->y_floats = (long)l->T * l->v.vocab;
    return SF_OK;
}

static lm_task *lm_new(sf_task *t) {
    memset(t, 0, sizeof *t);
    lm_task *l = sf_calloc(1, sizeof *l);
    t->def = &sf_task_lm;
    t->ops = &lm_task_ops;
    t->self = l;
    return l;
}

static int lm_open_train(sf_task *t, const sf_task_args *a, cJSON **config, int has_channels) {
    (void)has_channels;
    if (strcmp(sf_opt_str(*config, "model"), "lm") != 0)
        return sf_errorf("task lm trains the lm model, not '%s'", sf_opt_str(*config, "model"));
    if (a->tokenizer && strcmp(a->tokenizer, "char") && strcmp(a->tokenizer, "byte"))
        return sf_errorf("--tokenizer: '%s' (expected char or byte)", a->tokenizer);
    lm_task *l = lm_new(t);
    l->byte_tokenizer = a->tokenizer && !strcmp(a->tokenizer, "byte");
    if (l->byte_tokenizer) vocab_bytes(&l->v);
    l->T = sf_opt_int(*config, "seq_len");
    if (lm_load(t, l, a, !l->byte_tokenizer)) {
        sf_task_close(t);
        return SF_ERR;
    }
    cJSON *input = cJSON_GetObjectItemCaseSensitive(*config, "input");
    cJSON_ReplaceItemInObjectCaseSensitive(input, "vocab", cJSON_CreateNumber(l->v.vocab));
    return SF_OK;
}

static int lm_open_eval(sf_task *t, const sf_task_args *a, const sf_model *m, const sf_meta *meta) {
    if (strcmp(m->def->info.name, "lm") != 0)
        return sf_errorf("task lm evaluates lm models, not '%s'", m->def->info.name);
    lm_task *l = lm_new(t);
    if (sf_lm_vocab_from_meta(meta, &l->v)) {
        sf_task_close(t);
        return SF_ERR;
    }
    l->byte_tokenizer = !strcmp(sf_meta_get(meta, "lm_tokenizer"), "byte");
    l->T = m->seq_len;
    if (lm_load(t, l, a, 0)) {
        sf_task_close(t);
        return SF_ERR;
    }
    return SF_OK;
}

static int lm_predict(sf_model *m, const sf_meta *meta, const sf_predict_args *a) {
    (void)m, (void)meta;
    return sf_errorf("predict: %s is a language model; use seqformer generate --model %s "
                     "--prompt TEXT",
                     a->model, a->model);
}

static void lm_describe(const sf_task *t, FILE *f) {
    const lm_task *l = t->self;
    fprintf(f, "%ld bytes, %s vocabulary of %d, %ld train / %ld val, %d windows of %d per epoch",
            l->n, l->byte_tokenizer ? "byte" : "char", l->v.vocab, l->n_train, l->n - l->n_train,
            l->n_windows[SF_TRAIN], l->T);
}

const sf_task_def sf_task_lm = {
    .info = {"lm", "language modelling on a text file (char/byte tokens): loss, bpc, perplexity",
             NULL, 0},
    .open_train = lm_open_train,
    .open_eval = lm_open_eval,
    .predict = lm_predict,
    .describe = lm_describe,
    .begin_epoch = lm_begin_epoch,
};
