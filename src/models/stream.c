#include "models/stream.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blocks/block.h"
#include "core/error.h"
#include "core/fileio.h"

#define STATE_MAGIC "seqformer-stream-state 1"

struct sf_stream {
    const sf_model *m;
    float *state, *out, *in;
    size_t n_state;
    long in_floats, out_floats;
    int max_steps, pos;
};

int sf_stream_check(const sf_model *m) {
    if (!m->def->stream)
        return sf_errorf("model '%s' cannot stream (only lm models generate step by step; this "
                         "one is trained for another task)",
                         m->def->info.name);
    return SF_OK;
}

size_t sf_stream_state_floats(const sf_model *m) {
    return m->def->stream ? m->def->stream->state_floats(m) : 0;
}

void sf_stream_reset(sf_stream *s) {
    memset(s->state, 0, s->n_state * sizeof(float));
    s->pos = 0;
}

sf_stream *sf_stream_create(const sf_model *m) {
    if (sf_stream_check(m)) return NULL;
    sf_stream *s = sf_calloc(1, sizeof *s);
    s->m = m;
    s->n_state = sf_stream_state_floats(m);
    m->def->stream->step_shape(m, &s->in_floats, &s->out_floats, &s->max_steps);
    s->state = sf_calloc(s->n_state ? s->n_state : 1, sizeof(float));
    s->out = sf_calloc((size_t)s->out_floats, sizeof(float));
    s->in = sf_calloc((size_t)s->in_floats, sizeof(float));
    /* warm-up: one step with an all-zero input (token 0) sizes this thread's step scratch */
    if (m->def->stream->step(m, s->in, s->state, s->out, 0)) sf_error_clear();
    sf_stream_reset(s);
    return s;
}

void sf_stream_destroy(sf_stream *s) {
    if (!s) return;
    free(s->state);
    free(s->out);
    free(s->in);
    free(s);
}

int sf_stream_position(const sf_stream *s) { return s->pos; }
int sf_stream_max_steps(const sf_stream *s) { return s->max_steps; }
long sf_stream_in_floats(const sf_stream *s) { return s->in_floats; }
long sf_stream_out_floats(const sf_stream *s) { return s->out_floats; }
const float *sf_stream_state(const sf_stream *s) { return s->state; }

int sf_stream_feed(sf_stream *s, const float *x_t, float *y_t) {
    if (s->pos >= s->max_steps)
        return sf_errorf("the stream is full: %d steps fed, the model holds %d (max_len)", s->pos,
                         s->max_steps);
    if (s->m->def->stream->step(s->m, x_t, s->state, y_t, s->pos)) return SF_ERR;
    s->pos++;
    return SF_OK;
}

const float *sf_stream_feed_token(sf_stream *s, int token) {
    s->in[0] = (float)token;
    return sf_stream_feed(s, s->in, s->out) ? NULL : s->out;
}

/* ---- state files ------------------------------------------------------------------------ */

static uint64_t fnv1a(uint64_t h, const void *data, size_t n) {
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}
#define FNV_START 0xcbf29ce484222325ULL

/* What identifies the model a state belongs to, as the header lines. */
typedef struct {
    uint64_t config_hash, weights_hash;
    int width;
    char mixers[1024]; /* "softmax+mlp,linear+mlp" (block kinds' mixers, after repeat) */
} identity;

static void model_identity(const sf_model *m, identity *id) {
    char *cfg = sf_model_config_json(m, 0);
    id->config_hash = fnv1a(FNV_START, cfg, strlen(cfg));
    free(cfg);
    id->weights_hash = fnv1a(FNV_START, m->params.data, m->params.total * sizeof(float));
    const cJSON *dm = cJSON_GetObjectItemCaseSensitive(m->config, "d_model");
    id->width = dm ? dm->valueint : 0;
    size_t len = 0;
    id->mixers[0] = 0;
    const cJSON *blocks = cJSON_GetObjectItemCaseSensitive(m->config, "blocks");
    for (const cJSON *b = blocks ? blocks->child : NULL; b; b = b->next) {
        const sf_block_def *bd = sf_block_find(sf_opt_str(b, "kind"));
        for (int r = 0; bd && r < sf_opt_int(b, "repeat"); r++)
            for (int k = 0; k < bd->n_mixers && len + 1 < sizeof id->mixers; k++) {
                const cJSON *mx = cJSON_GetObjectItemCaseSensitive(b, bd->mixer_keys[k]);
                len += (size_t)snprintf(id->mixers + len, sizeof id->mixers - len, "%s%s",
                                        k ? "+" : len ? "," : "", sf_opt_str(mx, "kind"));
            }
        if (len + 1 >= sizeof id->mixers) break;
    }
}

int sf_stream_save(const sf_stream *s, const char *path) {
    identity id;
    model_identity(s->m, &id);
    char head[1536];
    int n = snprintf(head, sizeof head,
                     STATE_MAGIC "\nmodel %s\nconfig_hash %016" PRIx64 "\nwidth %d\nmixers %s\n"
                                 "weights_hash %016" PRIx64 "\nstate_floats %zu\nposition %d\nend\n",
                     s->m->def->info.name, id.config_hash, id.width, id.mixers[0] ? id.mixers : "-",
                     id.weights_hash, s->n_state, s->pos);
    sf_atomic_file f;
    if (sf_atomic_open(&f, path)) return SF_ERR;
    if (sf_atomic_write(&f, head, (size_t)n) ||
        sf_atomic_write(&f, s->state, s->n_state * sizeof(float))) {
        sf_atomic_abort(&f);
        return sf_errorf("%s: could not write the stream state", path);
    }
    return sf_atomic_commit(&f);
}

/* The value after "key " on the header line that starts with it, copied into buf. */
static int header_value(const char *head, const char *key, char *buf, size_t cap) {
    size_t kl = strlen(key);
    for (const char *l = head; *l;) {
        const char *e = strchr(l, '\n');
        if (!e) break;
        if ((size_t)(e - l) > kl && !strncmp(l, key, kl) && l[kl] == ' ') {
            size_t vl = (size_t)(e - l) - kl - 1;
            if (vl >= cap) vl = cap - 1;
            memcpy(buf, l + kl + 1, vl);
            buf[vl] = 0;
            return 1;
        }
        l = e + 1;
    }
    return 0;
}

int sf_stream_load(sf_stream *s, const char *path) {
    void *data;
    size_t n;
    if (sf_read_file(path, &data, &n)) return SF_ERR;
    int rc = SF_ERR;
    const char *text = data;
    const char *end = NULL;
    size_t ml = strlen(STATE_MAGIC);
    if (n < ml + 1 || memcmp(text, STATE_MAGIC "\n", ml + 1) != 0) {
        sf_errorf("%s: not a seqformer stream state (no '%s' header)", path, STATE_MAGIC);
        goto done;
    }
    for (size_t i = 0; i + 4 < n && !end; i++)
        if (!memcmp(text + i, "\nend\n", 5)) end = text + i + 5;
    if (!end) {
        sf_errorf("%s: truncated stream state header", path);
        goto done;
    }
    size_t hl = (size_t)(end - text);
    char *head = sf_malloc(hl + 1);
    memcpy(head, text, hl);
    head[hl] = 0;
    identity id;
    model_identity(s->m, &id);
    char model[128] = "", mixers[1024] = "", width[32] = "", chash[32] = "", whash[32] = "",
         nst[32] = "", pos[32] = "";
    header_value(head, "model", model, sizeof model);
    header_value(head, "mixers", mixers, sizeof mixers);
    header_value(head, "width", width, sizeof width);
    header_value(head, "config_hash", chash, sizeof chash);
    header_value(head, "weights_hash", whash, sizeof whash);
    header_value(head, "state_floats", nst, sizeof nst);
    header_value(head, "position", pos, sizeof pos);
    free(head);
    char want[32];
    const char *mine = id.mixers[0] ? id.mixers : "-";
    if (strcmp(model, s->m->def->info.name) != 0) {
        sf_errorf("%s: state of a '%s' model; this model is '%s'", path, model, s->m->def->info.name);
        goto done;
    }
    if (strcmp(mixers, mine) != 0) {
        sf_errorf("%s: state of a model with mixers %s; this model has %s", path, mixers, mine);
        goto done;
    }
    if (atoi(width) != id.width) {
        sf_errorf("%s: state of a model of width %s; this model has width %d", path, width, id.width);
        goto done;
    }
    snprintf(want, sizeof want, "%016" PRIx64, id.config_hash);
    if (strcmp(chash, want) != 0) {
        sf_errorf("%s: state of another model config (hash %s; this model's is %s): same mixers "
                  "and width, other options",
                  path, chash, want);
        goto done;
    }
    snprintf(want, sizeof want, "%016" PRIx64, id.weights_hash);
    if (strcmp(whash, want) != 0) {
        sf_errorf("%s: state computed with other weights (hash %s; this checkpoint's is %s)", path,
                  whash, want);
        goto done;
    }
    char *ep;
    unsigned long long ns = strtoull(nst, &ep, 10);
    long p = strtol(pos, NULL, 10);
    if (ns != s->n_state || n - hl != s->n_state * sizeof(float)) {
        sf_errorf("%s: state holds %zu bytes of floats, this model's state is %zu floats", path,
                  n - hl, s->n_state);
        goto done;
    }
    if (p < 0 || p > s->max_steps) {
        sf_errorf("%s: position %ld is outside 0..%d", path, p, s->max_steps);
        goto done;
    }
    memcpy(s->state, end, s->n_state * sizeof(float));
    s->pos = (int)p;
    rc = SF_OK;
done:
    free(data);
    return rc;
}
