/* The model and data of bench/run.sh's seqformer side, shared by bench_patchtst.c and
 * step_worker.c: the ETTh1 PatchTST defaults (sf_flat_config_defaults) with the given mixer and
 * norm, weights from seed 0, random normal inputs and targets for `batch` windows, AdamW, and
 * the arena reserved for training at that batch. Only long-standing library calls, so
 * bench/step_ab.sh can build step_worker.c against an older commit's library too. */
#ifndef SF_BENCH_PATCHTST_SETUP_H
#define SF_BENCH_PATCHTST_SETUP_H

#include <stdio.h>
#include <stdlib.h>

#include <cjson/cJSON.h>

#include "core/error.h"
#include "models/model.h"
#include "tasks/forecast.h"
#include "train/adamw.h"

typedef struct {
    sf_flat_config cfg;
    sf_model m;
    sf_adamw opt;
    sf_rng rng;
    float *x, *y, *out, *dy;
    long nx, ny;
} bench_patchtst_setup;

/* 0 on success; prints the library's message and returns 1 otherwise. mlp_fuse (not NULL): the
 * channel mixers' "fuse" option (auto|always|never; libraries from before d9586b4 reject it). */
static inline int bench_patchtst_init_fuse(bench_patchtst_setup *b, const char *who, int batch,
                                           const char *mixer, const char *norm,
                                           const char *mlp_fuse) {
    sf_flat_config_defaults(&b->cfg, "patchtst");
    if (mixer) snprintf(b->cfg.mixer, sizeof b->cfg.mixer, "%s", mixer);
    if (norm) snprintf(b->cfg.norm, sizeof b->cfg.norm, "%s", norm);
    cJSON *json = sf_flat_config_to_json(&b->cfg);
    const cJSON *blocks = cJSON_GetObjectItemCaseSensitive(json, "blocks");
    cJSON *blk;
    if (mlp_fuse)
        cJSON_ArrayForEach(blk, blocks) {
            cJSON *cm = cJSON_GetObjectItemCaseSensitive(blk, "channel_mixer");
            if (cm) cJSON_AddStringToObject(cm, "fuse", mlp_fuse);
        }
    const int bad = sf_model_create(&b->m, json);
    cJSON_Delete(json);
    if (bad) {
        fprintf(stderr, "%s: %s\n", who, sf_error_message());
        return 1;
    }
    sf_model_init_weights(&b->m, 0);
    b->nx = (long)batch * b->cfg.seq_len * b->cfg.n_channels;
    b->ny = (long)batch * b->cfg.pred_len * b->cfg.n_channels;
    b->x = malloc((size_t)b->nx * 4), b->y = malloc((size_t)b->ny * 4);
    b->out = malloc((size_t)b->ny * 4), b->dy = malloc((size_t)b->ny * 4);
    sf_rng_seed(&b->rng, 0);
    sf_rng_fill_normal(&b->rng, b->x, b->nx, 0, 1);
    sf_rng_fill_normal(&b->rng, b->y, b->ny, 0, 1);
    sf_adamw_init(&b->opt, &b->m.params, 0.0f);
    sf_model_reserve(&b->m, &b->m.run, batch, 1);
    return 0;
}

static inline int bench_patchtst_init(bench_patchtst_setup *b, const char *who, int batch,
                                      const char *mixer, const char *norm) {
    return bench_patchtst_init_fuse(b, who, batch, mixer, norm, NULL);
}

/* one training step: forward, MSE, backward, AdamW at lr 1e-4 */
static inline void bench_patchtst_step(bench_patchtst_setup *b, int batch) {
    sf_params_zero_grad(&b->m.params);
    sf_model_forward(&b->m, b->x, b->out, batch, 1, &b->rng);
    sf_mse_loss(b->out, b->y, b->dy, b->ny);
    sf_model_backward(&b->m, b->dy, batch);
    sf_adamw_step(&b->opt, &b->m.params, 1e-4f);
}

static inline void bench_patchtst_free(bench_patchtst_setup *b) {
    sf_adamw_free(&b->opt);
    sf_model_destroy(&b->m);
    free(b->x), free(b->y), free(b->out), free(b->dy);
}

#endif
