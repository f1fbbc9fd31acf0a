/* Lazy AdamW (train/adamw.h) against dense AdamW: on steps where every row of a row-sparse tensor
 * is touched the two are bitwise equal; on a step that touches some rows, untouched rows keep
 * their values and both moments bit for bit while touched rows get the dense update; and a
 * real lut mixer's backward flags exactly the rows it wrote gradients to, so a lazy step after it
 * leaves every other row alone. Also shows where lazy and dense differ (the decayed momentum of
 * untouched rows). Random values; the seed is printed. */
#include <string.h>

#include "core/error.h"
#include "layers/layer.h"
#include "test_util.h"
#include "train/adamw.h"

static sf_rng rng;

typedef struct {
    sf_params ps;
    float *dense, *ddense, *table, *dtable;
    unsigned char *touched;
} toy;

enum { ROWS = 37, WIDTH = 5, DENSE = 23 };

static void toy_make(toy *t) {
    sf_params_init(&t->ps);
    int64_t sd[1] = {DENSE}, st[2] = {ROWS, WIDTH};
    sf_params_declare(&t->ps, "dense", 1, sd, &t->dense, &t->ddense, 0);
    sf_params_declare(&t->ps, "table", 2, st, &t->table, &t->dtable, 0);
    sf_params_mark_sparse_rows(&t->ps, WIDTH, &t->touched);
    sf_params_alloc(&t->ps);
}

static int same(const float *a, const float *b, size_t n) { return memcmp(a, b, n * sizeof(float)) == 0; }

/* Gradients for rows where mask is set (all rows when mask NULL), zero elsewhere, as a backward. */
static void fill_grads(toy *t, const unsigned char *mask) {
    sf_params_zero_grad(&t->ps);
    sf_rng_fill_normal(&rng, t->ddense, DENSE, 0.0f, 1.0f);
    for (int r = 0; r < ROWS; r++)
        if (!mask || mask[r]) {
            sf_rng_fill_normal(&rng, t->dtable + r * WIDTH, WIDTH, 0.0f, 1.0f);
            t->touched[r] = 1;
        }
}

static void check_all_touched_equals_dense(void) {
    toy a, b;
    toy_make(&a);
    toy_make(&b);
    sf_rng_fill_normal(&rng, a.ps.data, (long)a.ps.total, 0.0f, 1.0f);
    memcpy(b.ps.data, a.ps.data, a.ps.total * sizeof(float));
    sf_adamw da, la;
    sf_adamw_init(&da, &a.ps, 0.01f);
    sf_adamw_init(&la, &b.ps, 0.01f);
    la.lazy = 1;
    int ok = 1;
    for (int step = 0; step < 4; step++) {
        sf_rng saved = rng;
        fill_grads(&a, NULL);
        rng = saved;
        fill_grads(&b, NULL);
        sf_adamw_step(&da, &a.ps, 1e-2f);
        sf_adamw_step(&la, &b.ps, 1e-2f);
        ok &= same(a.ps.data, b.ps.data, a.ps.total) && same(da.m, la.m, da.n) && same(da.v, la.v, da.n);
    }
    CHECK_MSG(ok, "lazy AdamW differs from dense AdamW on steps that touch every row");
    printf("every row touched, 4 steps: lazy == dense bitwise: %s\n", ok ? "yes" : "NO");
    sf_adamw_free(&da), sf_adamw_free(&la);
    sf_params_free(&a.ps), sf_params_free(&b.ps);
}

static void check_partial_touch(void) {
    toy a, b;
    toy_make(&a);
    toy_make(&b);
    sf_rng_fill_normal(&rng, a.ps.data, (long)a.ps.total, 0.0f, 1.0f);
    memcpy(b.ps.data, a.ps.data, a.ps.total * sizeof(float));
    sf_adamw da, la;
    sf_adamw_init(&da, &a.ps, 0.01f);
    sf_adamw_init(&la, &b.ps, 0.01f);
    la.lazy = 1;
    /* step 1 touches every row (both optimizers then hold equal, non-zero moments) */
    sf_rng saved = rng;
    fill_grads(&a, NULL);
    rng = saved;
    fill_grads(&b, NULL);
    sf_adamw_step(&da, &a.ps, 1e-2f);
    sf_adamw_step(&la, &b.ps, 1e-2f);
    /* step 2 touches about a third of the rows */
    unsigned char mask[ROWS];
    int n_touched = 0;
    for (int r = 0; r < ROWS; r++) n_touched += mask[r] = sf_rng_below(&rng, 3) == 0;
    mask[0] = 1, mask[1] = 0; /* at least one of each */
    float *before = malloc(b.ps.total * sizeof(float)), *m0 = malloc(la.n * sizeof(float)),
          *v0 = malloc(la.n * sizeof(float));
    memcpy(before, b.ps.data, b.ps.total * sizeof(float));
    memcpy(m0, la.m, la.n * sizeof(float));
    memcpy(v0, la.v, la.n * sizeof(float));
    saved = rng;
    fill_grads(&a, mask);
    rng = saved;
    fill_grads(&b, mask);
    sf_adamw_step(&da, &a.ps, 1e-2f);
    sf_adamw_step(&la, &b.ps, 1e-2f);
    size_t off = b.ps.p[1].offset;
    int untouched_kept = 1, touched_dense = 1, dense_moved = 0;
    for (int r = 0; r < ROWS; r++) {
        size_t i = off + (size_t)r * WIDTH;
        if (mask[r]) {
            touched_dense &= same(b.ps.data + i, a.ps.data + i, WIDTH) && same(la.m + i, da.m + i, WIDTH) &&
                             same(la.v + i, da.v + i, WIDTH);
        } else {
            untouched_kept &= same(b.ps.data + i, before + i, WIDTH) && same(la.m + i, m0 + i, WIDTH) &&
                              same(la.v + i, v0 + i, WIDTH);
            dense_moved |= !same(a.ps.data + i, before + i, WIDTH); /* dense decays and moves them */
        }
    }
    int dense_part_same = same(b.ps.data, a.ps.data, DENSE) && same(la.m, da.m, DENSE);
    CHECK_MSG(untouched_kept, "untouched rows changed under lazy AdamW");
    CHECK_MSG(touched_dense, "touched rows differ from the dense update");
    CHECK_MSG(dense_part_same, "dense tensors differ between lazy and dense AdamW");
    CHECK_MSG(dense_moved, "expected dense AdamW to move untouched rows (decayed momentum)");
    printf("%d of %d rows touched: untouched rows bit-identical (values, m, v): %s; touched rows == "
           "dense: %s; dense AdamW moved untouched rows: %s\n", n_touched, ROWS,
           untouched_kept ? "yes" : "NO", touched_dense ? "yes" : "NO", dense_moved ? "yes" : "no");
    free(before), free(m0), free(v0);
    sf_adamw_free(&da), sf_adamw_free(&la);
    sf_params_free(&a.ps), sf_params_free(&b.ps);
}

/* A lut mixer (d 8, tau 4: 2 tables of 16 rows): after one backward on 3 tokens at most 6 of 32
 * rows are flagged, exactly the rows with a nonzero gradient, and a lazy step leaves the rest. */
static void check_lut_mixer(void) {
    const sf_mixer_def *def = sf_mixer_find("lut");
    CHECK(def != NULL);
    cJSON *in = cJSON_Parse("{\"tau\":4}"), *opts = cJSON_CreateObject();
    CHECK(sf_options_normalize(in, def->info.opts, def->info.n_opts, "lut", NULL, opts) == SF_OK);
    sf_mixer_args args = {.d_model = 8, .max_T = 3, .opts = opts};
    sf_mixer *m = sf_mixer_create(def, &args);
    sf_params ps;
    sf_params_init(&ps);
    m->ops->declare(m, &ps, "lut");
    sf_params_alloc(&ps);
    m->ops->init(m, &rng);
    sf_arena plan, a;
    sf_arena_init_plan(&plan);
    unsigned char *saved = calloc(ps.saved_bytes + 16, 1);
    sf_ctx pc = {.arena = &plan, .training = 1, .keep = 1, .B = 1, .T = 3, .saved = saved};
    m->ops->forward(m, &pc, NULL, NULL);
    m->ops->backward(m, &pc, NULL, NULL);
    sf_arena_alloc(&a, plan.peak);
    sf_ctx c = {.arena = &a, .training = 1, .keep = 1, .B = 1, .T = 3, .saved = saved};
    float x[24], y[24], dy[24], dx[24];
    sf_rng_fill_normal(&rng, x, 24, 0.0f, 1.0f);
    sf_rng_fill_normal(&rng, dy, 24, 0.0f, 1.0f);
    sf_params_zero_grad(&ps);
    m->ops->forward(m, &c, x, y);
    m->ops->backward(m, &c, dy, dx);
    const sf_param *tp = &ps.p[0];
    CHECK(strcmp(tp->name, "lut.tables") == 0 && tp->row_floats == 8);
    const unsigned char *fl = ps.touched + tp->touched_offset;
    int flagged = 0, consistent = 1;
    for (int r = 0; r < 32; r++) {
        int nz = 0;
        for (int k = 0; k < 8; k++) nz |= ps.grad[tp->offset + (size_t)r * 8 + k] != 0.0f;
        flagged += fl[r];
        consistent &= fl[r] == nz;
    }
    CHECK_MSG(flagged >= 2 && flagged <= 6 && consistent, "flagged %d rows, consistent %d", flagged, consistent);
    float *before = malloc(ps.total * sizeof(float));
    memcpy(before, ps.data, ps.total * sizeof(float));
    sf_adamw o;
    sf_adamw_init(&o, &ps, 0.1f);
    o.lazy = 1;
    sf_adamw_step(&o, &ps, 1e-2f);
    int kept = 1, moved = 1;
    for (int r = 0; r < 32; r++) {
        int eq = same(ps.data + tp->offset + (size_t)r * 8, before + tp->offset + (size_t)r * 8, 8);
        if (fl[r]) moved &= !eq;
        else kept &= eq;
    }
    CHECK_MSG(kept && moved, "lut lazy step: untouched kept %d, touched moved %d", kept, moved);
    printf("lut mixer: %d of 32 table rows touched by 3 tokens; lazy step kept the other %d bitwise: %s\n",
           flagged, 32 - flagged, kept ? "yes" : "NO");
    sf_params_zero_grad(&ps);
    int cleared = 1;
    for (size_t i = 0; i < ps.touched_total; i++) cleared &= ps.touched[i] == 0;
    CHECK(cleared);
    free(before);
    free(saved);
    sf_adamw_free(&o);
    sf_arena_free(&a);
    sf_mixer_destroy(m);
    sf_params_free(&ps);
    cJSON_Delete(in);
    cJSON_Delete(opts);
}

int main(void) {
    sf_rng_seed(&rng, test_seed());
    check_all_touched_equals_dense();
    check_partial_touch();
    check_lut_mixer();
    printf("%d passed, %d failed\n", t_passed, t_failed);
    return t_failed != 0;
}
