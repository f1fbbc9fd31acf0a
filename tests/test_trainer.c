/* Optimizer and schedule: AdamW against a plain double-precision transcription of
 * torch.optim.AdamW's update, weight decay skipped for no_decay tensors, global-norm clipping,
 * and the warm-up + type3 learning-rate schedule. */
#include <string.h>

#include "core/error.h"
#include "train/adamw.h"
#include "train/trainer.h"
#include "test_util.h"

static void test_adamw(sf_rng *rng) {
    sf_params ps;
    sf_params_init(&ps);
    float *w, *dw, *b, *db;
    sf_params_declare(&ps, "w", 2, (int64_t[]){3, 5}, &w, &dw, 0);
    sf_params_declare(&ps, "b", 1, (int64_t[]){5}, &b, &db, 1);
    sf_params_alloc(&ps);
    sf_rng_fill_normal(rng, w, 15, 0, 1);
    sf_rng_fill_normal(rng, b, 5, 0, 1);
    double ref[20], m[20] = {0}, v[20] = {0};
    for (int i = 0; i < 15; i++) ref[i] = w[i];
    for (int i = 0; i < 5; i++) ref[15 + i] = b[i];
    sf_adamw opt;
    sf_adamw_init(&opt, &ps, 0.1f);
    const double lr = 1e-2, b1 = 0.9, b2 = 0.999, eps = 1e-8, wd = 0.1;
    for (int t = 1; t <= 5; t++) {
        sf_rng_fill_normal(rng, dw, 15, 0, 1);
        sf_rng_fill_normal(rng, db, 5, 0, 1);
        for (int i = 0; i < 20; i++) {
            double g = i < 15 ? dw[i] : db[i - 15];
            if (i < 15) ref[i] -= lr * wd * ref[i]; /* decoupled decay, weights only */
            m[i] = b1 * m[i] + (1 - b1) * g;
            v[i] = b2 * v[i] + (1 - b2) * g * g;
            double mh = m[i] / (1 - pow(b1, t)), vh = v[i] / (1 - pow(b2, t));
            ref[i] -= lr * mh / (sqrt(vh) + eps);
        }
        sf_adamw_step(&opt, &ps, (float)lr);
    }
    double worst = 0;
    for (int i = 0; i < 20; i++) {
        double got = i < 15 ? w[i] : b[i - 15];
        double e = fabs(got - ref[i]);
        if (e > worst) worst = e;
    }
    printf("AdamW vs reference after 5 steps: max abs err %.2e\n", worst);
    CHECK(worst < 1e-5);
    /* clipping: norm reported before clipping, gradients scaled to max_norm */
    for (int i = 0; i < 15; i++) dw[i] = 1.0f;
    for (int i = 0; i < 5; i++) db[i] = 1.0f;
    double norm = sf_clip_grad_norm(&ps, 2.0);
    CHECK_NEAR(norm, sqrt(20.0), 1e-5);
    double s = 0;
    for (size_t i = 0; i < ps.total; i++) s += (double)ps.grad[i] * ps.grad[i];
    CHECK_NEAR(sqrt(s), 2.0, 1e-4);
    CHECK_NEAR(sf_clip_grad_norm(&ps, 0.0), sqrt(s), 1e-5); /* 0: report only */
    sf_adamw_free(&opt);
    sf_params_free(&ps);
}

static void test_schedule(void) {
    sf_train_opts o;
    sf_train_opts_defaults(&o, "patchtst");
    int spe = 10;
    CHECK_NEAR(sf_train_lr(&o, 0, 0, spe), 0.04 * o.lr, 1e-10);            /* warm-up start */
    CHECK(sf_train_lr(&o, 0, 5, spe) > sf_train_lr(&o, 0, 4, spe));         /* rising */
    CHECK_NEAR(sf_train_lr(&o, 1, 0, spe), o.lr, 1e-10);                    /* peak */
    CHECK_NEAR(sf_train_lr(&o, 3, 0, spe), o.lr, 1e-10);
    CHECK_NEAR(sf_train_lr(&o, 4, 0, spe), o.lr * 0.9, 1e-9);               /* type3 decay */
    CHECK_NEAR(sf_train_lr(&o, 13, 7, spe), o.lr * pow(0.9, 10), 1e-9);
    strcpy(o.lradj, "cosine");
    CHECK_NEAR(sf_train_lr(&o, o.epochs, 0, spe), 0.0, 1e-9);
    strcpy(o.lradj, "constant");
    CHECK_NEAR(sf_train_lr(&o, 50, 3, spe), o.lr, 1e-10);
}

int main(void) {
    sf_rng rng;
    sf_rng_seed(&rng, test_seed());
    test_adamw(&rng);
    test_schedule();
    return test_finish();
}
