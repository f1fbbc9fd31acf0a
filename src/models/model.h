/* A model: x [B, seq_len, C] -> y [B, pred_len, C] for forecasting (the only task so far).
 *
 * sf_model owns the canonical config (models/config.h), the flat parameter buffers and the
 * layers. Everything that belongs to one call lives in an sf_run the caller owns: the activation
 * arena (sized by a planning pass for the largest (B, T, training) it has seen, so forward and
 * backward never allocate) and the layers' saved records. Two threads with two sf_runs can run
 * inference on one model at once; training mutates the model (gradients, BatchNorm running
 * statistics) and is single-caller. The sf_model_forward/backward shorthands use the model's own
 * run. Concrete models (patchtst.c, dlinear.c, itransformer.c) are sf_model_defs in the registry (model.c). */
#ifndef SF_MODELS_MODEL_H
#define SF_MODELS_MODEL_H

#include <stdint.h>

#include "core/arena.h"
#include "core/params.h"
#include "core/rng.h"
#include "layers/layer.h"
#include "models/config.h"

typedef struct sf_model sf_model;

typedef struct {
    int (*build)(sf_model *m); /* create layers, declare parameters; SF_ERR naming the field */
    void (*init)(sf_model *m, sf_rng *rng);
    void (*forward)(sf_model *m, sf_ctx *ctx, const float *x, float *y);
    void (*backward)(sf_model *m, sf_ctx *ctx, const float *dy); /* accumulates param grads */
    void (*destroy)(sf_model *m);
    /* Forward FLOPs for one sample (multiply-adds count 2); a training step is about 3x. */
    double (*flops)(const sf_model *m);
} sf_model_ops;

/* Streaming (models/stream.h), for models that can: floats of one stream's state; floats of one
 * step's input and output row and the most steps a stream holds; one step at position t, state
 * updated in place (SF_ERR with a message, state untouched, for an input the model refuses, e.g.
 * a token id outside the vocabulary). Temporaries come from core/scratch.h. */
typedef struct {
    size_t (*state_floats)(const sf_model *m);
    void (*step_shape)(const sf_model *m, long *in_floats, long *out_floats, int *max_steps);
    int (*step)(const sf_model *m, const float *x_t, float *state, float *y_t, int t);
} sf_model_stream_ops;

typedef struct {
    sf_part_info info; /* model-level options */
    int has_blocks;    /* 1: input, positions, blocks and head sub-objects */
    const char *default_input, *default_head;
    const char *default_positions; /* NULL: "learned" */
    const sf_model_ops *ops;
    /* A model that reads calendar features of its window's timestamps (Informer's timeF)
     * returns, for a normalised config, the features per timestamp and their frequency letter
     * (data/time_features.h); NULL or 0: it reads values only. */
    int (*time_features)(const cJSON *config, char *freq);
    const sf_model_stream_ops *stream; /* NULL: the model cannot stream */
    /* 1: each example of x ends with one more float, its valid length (1..seq_len; the steps
     * after it are padding), which the model hands to its mixers, norms and pooling as
     * ctx->lens (classification of unequal-length series, tasks/classify.c). */
    int reads_lengths;
} sf_model_def;

extern const sf_model_def sf_model_patchtst, sf_model_dlinear, sf_model_itransformer,
    sf_model_informer, sf_model_t2;
extern const sf_model_def sf_model_lm; /* models/lm.c */
/* Inference calls in which PatchTST ran its blocks split over the threads by series (patchtst.c);
 * for tests and benchmarks that need to see which path ran. */
unsigned long sf_patchtst_split_calls(void);
/* 0 turns that split off process-wide (comparisons and tests); 1 (the default) allows it. */
void sf_patchtst_split_enable(int on);

/* The options every forecaster's table starts with: the shape x [B, seq_len, C] -> [B, pred_len, C]. */
#define SF_FORECAST_SHAPE_OPTIONS                                                                 \
    {"seq_len", SF_OPT_INT, 336, NULL, 1, 100000, NULL, "look-back window (input steps)"},        \
        {"pred_len", SF_OPT_INT, 96, NULL, 1, 100000, NULL, "forecast horizon (output steps)"},   \
        {"n_channels", SF_OPT_INT, 7, NULL, 1, 100000, NULL, "input/output channels (variates)"}
const sf_model_def *sf_model_find(const char *name);
void sf_model_names(char *buf, size_t n);
extern const sf_model_def *const sf_model_registry[];
extern const int sf_model_registry_n;
/* Input kinds and heads of the block-stacked models. */
extern const sf_part_info sf_input_registry[];
extern const int sf_input_registry_n;
extern const sf_part_info sf_head_registry[];
extern const int sf_head_registry_n;

/* The caller-owned per-call context. Zero-initialise (or sf_run_init) before first use. */
typedef struct {
    sf_arena arena;
    unsigned char *saved;
    size_t saved_cap;
    int B, T, training; /* what the arena was planned for */
    int threads;        /* ... and at how many OpenMP threads (some layers size per-thread
                         * scratch by omp_get_max_threads(); more threads re-plan) */
    int kept;           /* the last forward kept what backward needs (a training forward) */
    struct sf_newton_tally *newton; /* set by the caller: forwards in this run add the ParaRNN
                                     * mixers' Newton statistics there (NULL: not collected) */
} sf_run;

void sf_run_init(sf_run *r);
void sf_run_free(sf_run *r);

/* Time features travel inside x: each example is its seq_len*C values followed, for a model
 * whose def has time_features, by the time_features-wide features of the window's seq_len +
 * pred_len timestamps (input rows, then forecast rows: known in training and evaluation,
 * continued by the series' step in predict). So the trainer, evaluation and batching stay
 * unchanged: the task sizes its examples with sf_model_x_floats and fills the features
 * (tasks/forecast.c); other models read x as before. */
struct sf_model {
    cJSON *config; /* canonical (owned) */
    const sf_model_def *def;
    int seq_len, pred_len, n_channels; /* pred_len 0 for a model without that option (t2) */
    int time_features; /* features per timestamp in x (0: none) */
    char freq;         /* their frequency letter (time_features > 0) */
    void *self;
    sf_params params;
    sf_run run; /* used by sf_model_forward / sf_model_backward */
    sf_run *pool; /* one run per thread for sf_model_infer_chunked(runs = NULL) */
    int pool_n;
};

/* Build from a config (normalised here; the model keeps its own copy). Parameters are allocated
 * (zero) but not initialised. SF_ERR names the field. */
int sf_model_create(sf_model *m, const cJSON *config);
/* Same from JSON text; `name` (a file name) prefixes errors. */
int sf_model_create_json(sf_model *m, const char *json, const char *name);
void sf_model_destroy(sf_model *m);
void sf_model_init_weights(sf_model *m, uint64_t seed);
/* Make r's arena large enough for batches of up to B sequences of T tokens (training adds
 * backward) at the current OpenMP thread count. Re-plans only when (B, T, training, threads)
 * grows. */
void sf_model_reserve(sf_model *m, sf_run *r, int B, int training);
/* y = model(x) in context r. When training, dropout draws from rng and r keeps what backward
 * needs. Inference does not write to the model. */
void sf_model_forward_run(sf_model *m, sf_run *r, const float *x, float *y, int B, int training,
                          sf_rng *rng);
/* After a training forward in r with the same B: parameter gradients += d loss / d params. */
void sf_model_backward_run(sf_model *m, sf_run *r, const float *dy, int B);
/* The same in the model's own run. */
void sf_model_forward(sf_model *m, const float *x, float *y, int B, int training, sf_rng *rng);
/* Inference on B examples for throughput: the batch is cut into chunks of `chunk` examples
 * (the last one shorter) which the OpenMP threads take in turn, each thread running the whole
 * model on its chunk with one thread inside (its kernels open no team) in its own run. A team
 * working on one large batch streams every layer's activations through memory; a chunk's stay in
 * its core's cache, and no layer waits at a barrier. runs: omp_get_max_threads() caller-owned
 * runs (sf_run_init), kept between calls so their arenas are planned once. y_floats: outputs
 * per example. Each chunk's outputs are bit for bit those of sf_model_forward_run on that chunk
 * at one thread. runs NULL: the model's own pool (grown to the thread count; one caller at a
 * time, as for sf_model_forward); then, when the model's run collects Newton statistics
 * (run.newton), one forward in that run instead. One chunk: one forward of the team. */
void sf_model_infer_chunked(sf_model *m, sf_run *runs, const float *x, float *y, long y_floats,
                            int B, int chunk);
/* Inference on B examples in chunks of SF_INFER_CHUNK, in the model's own pool. The chunks do
 * not depend on the thread count, so neither do the results. Evaluation, class probabilities and
 * attributions use it (bench/eval_ab.sh: a whole ETTh1 `seqformer eval` took 0.50-0.55 s
 * instead of 0.58-0.92 s with one forward of the team per 256 windows). */
#define SF_INFER_CHUNK 8
void sf_model_infer(sf_model *m, const float *x, float *y, long y_floats, int B);
void sf_model_backward(sf_model *m, const float *dy, int B);
long sf_model_n_params(const sf_model *m);
/* Floats of one example of x: seq_len*C, plus (seq_len+pred_len)*time_features, plus 1 (the
 * valid length) for a model that reads_lengths. */
long sf_model_x_floats(const sf_model *m);
/* Time features a (normalised) config's model reads per timestamp, and their frequency. */
int sf_config_time_features(const cJSON *config, char *freq); /* trainable parameters (buffers excluded) */
/* The time-feature frequency option of models that read time features (informer, itransformer
 * with input.time_tokens); "auto" is replaced by the forecast task from the data's step. */
#define SF_OPTION_FREQ                                                                        \
    {"freq", SF_OPT_CHOICE, 0, "h", 0, 0, "auto|" SF_TIME_FREQ_CHOICES,                       \
     "time-feature frequency: h hourly, t minutely, s, d, b, w, m; auto: from the data's step"}
/* A config's "freq": its letter and the features per timestamp (0 while it is still "auto"). */
int sf_config_freq_features(const cJSON *config, char *freq);
/* The build error of a model that reads time features but was given freq "auto". */
int sf_error_freq_auto(void);
/* Floats of activation arena a batch of B needs (inference or training), by a planning pass. */
size_t sf_model_arena_floats(sf_model *m, int B, int training);
/* Canonical config as JSON text (malloc'd). */
char *sf_model_config_json(const sf_model *m, int pretty);

#endif
