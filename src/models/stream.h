/* Step-by-step inference with explicit state (rwkv.cpp style): a stream is one sequence being
 * fed one step at a time (a token id for an lm) through a model that can stream (its ops have
 * step: every mixer causal with a step, e.g. softmax attention with its KV cache, linear
 * attention with its running sums). Many streams may share one model; a stream owns its state.
 *
 *   sf_stream *s = sf_stream_create(model);        // allocates everything, once
 *   const float *logits = sf_stream_feed_token(s, id);  // per step: allocates nothing
 *   sf_stream_save(s, "chat.state");  ... sf_stream_load(s2, "chat.state");  // continue later
 *
 * The state is sf_stream_state_floats(model) floats (the blocks' mixer states in order) plus the
 * position. A state file is written atomically: a text header naming the model (format, a hash
 * of the canonical config, width, the mixer of every block, a hash of the weights, the state
 * size and position) and the raw little-endian floats. Loading refuses a file from another
 * model, mixer, width or weights with a message saying which. */
#ifndef SF_MODELS_STREAM_H
#define SF_MODELS_STREAM_H

#include <stddef.h>

#include "models/model.h"

typedef struct sf_stream sf_stream;

/* SF_OK if m can stream, else SF_ERR with the reason (the model kind, or the block and mixer). */
int sf_stream_check(const sf_model *m);
/* Floats of one stream's state (0 for a model that cannot stream). */
size_t sf_stream_state_floats(const sf_model *m);
/* A fresh stream at position 0 (NULL with the error of sf_stream_check). It runs one warm-up
 * step so the per-thread step scratch (core/scratch.h) is sized, then resets. The model must
 * outlive the stream and keep its weights while the stream is in use. */
sf_stream *sf_stream_create(const sf_model *m);
void sf_stream_destroy(sf_stream *s);
/* Back to position 0 with a zero state. */
void sf_stream_reset(sf_stream *s);
int sf_stream_position(const sf_stream *s);
/* Most steps a stream holds (an lm's max_len); feeding more is an error. */
int sf_stream_max_steps(const sf_stream *s);
/* Floats of one step's input row and output row (an lm: 1 and vocab). */
long sf_stream_in_floats(const sf_stream *s);
long sf_stream_out_floats(const sf_stream *s);
/* One step: y_t = model(x_t | everything fed before); advances the position. Allocates nothing.
 * SF_ERR (state and position unchanged) for an input the model refuses or a full stream. */
int sf_stream_feed(sf_stream *s, const float *x_t, float *y_t);
/* For token models: feed one id; the output (logits) stays valid until the next feed. NULL on
 * error. */
const float *sf_stream_feed_token(sf_stream *s, int token);
/* The stream's own state buffer (for tests and tools). */
const float *sf_stream_state(const sf_stream *s);
int sf_stream_save(const sf_stream *s, const char *path);
int sf_stream_load(sf_stream *s, const char *path);

#endif
