/* The concrete mixers' definitions, listed in the registry (layers/mixer.c). */
#ifndef SF_LAYERS_MIXERS_H
#define SF_LAYERS_MIXERS_H

#include "layers/layer.h"

extern const sf_mixer_def sf_mixer_softmax;  /* softmax_attention.c */
extern const sf_mixer_def sf_mixer_linear;   /* linear_attention.c (elu+1, relu, favor) */
extern const sf_mixer_def sf_mixer_mlp;      /* mlp.c */
extern const sf_mixer_def sf_mixer_glu;      /* glu.c (SwiGLU, GEGLU) */
extern const sf_mixer_def sf_mixer_identity; /* identity.c */
extern const sf_mixer_def sf_mixer_local;    /* local_attention.c (sliding window) */
extern const sf_mixer_def sf_mixer_fastformer; /* fastformer.c (additive attention) */
extern const sf_mixer_def sf_mixer_linformer; /* linformer.c (sequence-projected keys/values) */
extern const sf_mixer_def sf_mixer_ls;       /* ls_attention.c (local + global heads) */

/* SF_ERR (message naming the option) when a sliding window covers every key of a max_T-token
 * sequence (window >= max_T - 1): local_attention.c, shared with ls_attention.c. */
int sf_local_window_check(int window, int max_T);
extern const sf_mixer_def sf_mixer_rpe;      /* rpe_attention.c (relative positions by FFT) */
extern const sf_mixer_def sf_mixer_cosformer; /* cosformer.c */
extern const sf_mixer_def sf_mixer_probsparse; /* probsparse_attention.c (Informer) */
extern const sf_mixer_def sf_mixer_lut;      /* lut.c (MemoryFormer hashed lookup tables) */
extern const sf_mixer_def sf_mixer_mamba;     /* mamba.c (Mamba-1 selective SSM) */

extern const sf_mixer_def sf_mixer_gru_diag;  /* pararnn_mixer.c (ParaRNN, Newton-parallel) */
extern const sf_mixer_def sf_mixer_lstm_cifg; /* pararnn_mixer.c */
extern const sf_mixer_def sf_mixer_gru;       /* rnn_dense.c (nn.GRU, sequential) */
extern const sf_mixer_def sf_mixer_lstm;      /* rnn_dense.c (nn.LSTM, sequential) */
extern const sf_mixer_def sf_mixer_s4d;      /* s4d.c (diagonal state-space model, S4D) */
extern const sf_mixer_def sf_mixer_deltanet; /* deltanet.c (delta-rule linear attention) */
extern const sf_mixer_def sf_mixer_dwconv;   /* dwconv.c (depth-wise convolution) */

#endif
