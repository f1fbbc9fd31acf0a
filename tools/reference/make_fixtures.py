#!/usr/bin/env python3
"""Write the PyTorch parity fixtures for seqformer's C tests into tests/fixtures/.

Each fixture (float32 safetensors) holds
  * every model parameter under its state_dict name,
  * ``x`` [B, L, C] input, ``y`` [B, P, C] target,
  * ``out`` [B, P, C] model output, ``loss`` [1] MSE(out, y) (mean over B*P*C),
  * ``grad.<name>`` d loss / d parameter, for every parameter,
and, for batchnorm fixtures (model run in train mode, see make_one):
  * the batchnorm buffers (running_mean, running_var, num_batches_tracked as an F32 scalar)
    as they were *before* the training forward, under their state_dict names,
  * ``after.<buffer name>`` the buffers after the training forward,
  * ``out_eval`` [B, P, C] the eval-mode output (using the updated running statistics),
and ``__metadata__`` = {"config": <json>, "format_version": "2", "producer": "..."}, where config is
json.dumps of the canonical format_version 2 config (docs/config.md; seqformer_ref.canonical_config).

Fixtures (FIXTURES below): the five original small ones (same seeds, weights and inputs as when their
config was format_version 1), ``hybrid`` (every block kind, placement, mixer kind and activation in one
model), and two at PatchTST's ETTh1 size (``patchtst_train_softmax``, batchnorm post, B=32;
``patchtst_train_linear_pre``, d_model 64, B=16).

Deterministic: torch.manual_seed per fixture, one thread, dropout 0.
Also re-runs every fixture in float64 (same weights, same inputs) and prints how far
float32 PyTorch is from float64, as an honest tolerance reference (--report-json to save it).

Usage (from the repository root):  /usr/bin/python3 tools/reference/make_fixtures.py
"""

import argparse
import copy
import json
import math
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import seqformer_ref as ref  # noqa: E402

SMALL = dict(seq_len=48, pred_len=12, n_channels=3, d_model=8)
SMALL_INPUT = {"kind": "patches", "patch_len": 8, "stride": 4}  # N = 12 patches


def metaformer(placement="pre", norm="layernorm", mixer="softmax", n_heads=2, causal=False, d_ff=16,
               activation="gelu", repeat=1, **norm_opts):
    return {"kind": "metaformer", "repeat": repeat, "placement": placement, "dropout": 0,
            "norm": {"kind": norm, **norm_opts},
            "token_mixer": {"kind": mixer, "n_heads": n_heads, "causal": causal},
            "channel_mixer": {"kind": "mlp", "d_ff": d_ff, "activation": activation, "dropout": 0}}


def patchtst_cfg(blocks, positions="learned", final_norm="auto", size=SMALL, input=SMALL_INPUT):
    """A format_version 2 patchtst config (canonical_config fills in what is left out); positions: a
    kind name or a positions object."""
    pos = positions if isinstance(positions, dict) else {"kind": positions}
    return ref.canonical_config({"format_version": 2, "task": "forecast", "model": "patchtst", **size,
                                 "revin": True, "dropout": 0, "input": input, "positions": pos,
                                 "blocks": blocks, "final_norm": final_norm,
                                 "head": {"kind": "flatten", "dropout": 0}})


def small_v1_pair(**kw):
    """The v1 fixtures: E=2 metaformer blocks, H=2, F=16 (the format_version 1 small config)."""
    return metaformer(repeat=2, **kw)


# The hybrid: every block kind, both placements for each, every mixer kind (identity as token, channel
# and residual mixer), both activations, causal and not, layernorm and rmsnorm (eps 1e-5 and 1e-6),
# a repeat, and final_norm auto (the last block is pre rmsnorm eps 1e-6 -> norm_f rmsnorm eps 1e-6).
HYBRID_BLOCKS = [
    metaformer("pre", "layernorm", "softmax", n_heads=2, d_ff=16, activation="gelu"),
    {"kind": "residual", "placement": "pre", "norm": {"kind": "rmsnorm"},
     "mixer": {"kind": "linear", "n_heads": 2, "causal": True}},
    metaformer("post", "layernorm", "linear", n_heads=4, d_ff=12, activation="relu"),
    {"kind": "parallel", "placement": "post", "norm": {"kind": "rmsnorm"},
     "token_mixer": {"kind": "softmax", "n_heads": 2, "causal": True},
     "channel_mixer": {"kind": "mlp", "d_ff": 16, "activation": "relu"}},
    {"kind": "residual", "placement": "post", "norm": {"kind": "layernorm", "eps": 1e-6},
     "mixer": {"kind": "identity"}},
    {"kind": "metaformer", "repeat": 2, "placement": "pre", "norm": {"kind": "rmsnorm"},
     "token_mixer": {"kind": "identity"}, "channel_mixer": {"kind": "mlp", "d_ff": 16, "activation": "gelu"}},
    {"kind": "parallel", "placement": "pre", "norm": {"kind": "rmsnorm", "eps": 1e-6},
     "token_mixer": {"kind": "linear", "n_heads": 2, "causal": False}, "channel_mixer": {"kind": "identity"}},
]

GLU_BLOCKS = [
    {"kind": "metaformer", "placement": "pre", "norm": {"kind": "layernorm"},
     "token_mixer": {"kind": "softmax", "n_heads": 2}, "channel_mixer": {"kind": "glu", "d_ff": 12}},
    {"kind": "parallel", "placement": "post", "norm": {"kind": "rmsnorm"},
     "token_mixer": {"kind": "linear", "n_heads": 2},
     "channel_mixer": {"kind": "glu", "d_ff": 10, "activation": "gelu"}},
    {"kind": "residual", "placement": "pre", "norm": {"kind": "rmsnorm"},
     "mixer": {"kind": "glu", "d_ff": 8, "activation": "silu"}},
]

# Efficient attention mixers (issue #12), one small fixture each (N = 12 patches)
LOCAL_BLOCKS = [
    {"kind": "metaformer", "placement": "pre", "norm": {"kind": "layernorm"},
     "token_mixer": {"kind": "local", "n_heads": 2, "window": 2}, "channel_mixer": {"kind": "mlp", "d_ff": 16}},
    {"kind": "residual", "placement": "post", "norm": {"kind": "rmsnorm"},
     "mixer": {"kind": "local", "n_heads": 4, "window": 3, "causal": True}},
]
FASTFORMER_BLOCKS = [
    {"kind": "metaformer", "placement": "pre", "norm": {"kind": "layernorm"},
     "token_mixer": {"kind": "fastformer", "n_heads": 2}, "channel_mixer": {"kind": "mlp", "d_ff": 16}},
    {"kind": "parallel", "placement": "post", "norm": {"kind": "rmsnorm"},
     "token_mixer": {"kind": "fastformer", "n_heads": 4}, "channel_mixer": {"kind": "mlp", "d_ff": 12}},
]
LINFORMER_BLOCKS = [
    {"kind": "metaformer", "placement": "pre", "norm": {"kind": "layernorm"},
     "token_mixer": {"kind": "linformer", "n_heads": 2, "k": 5}, "channel_mixer": {"kind": "mlp", "d_ff": 16}},
    {"kind": "residual", "placement": "post", "norm": {"kind": "rmsnorm"},
     "mixer": {"kind": "linformer", "n_heads": 4, "k": 12, "share_kv": True}},
]
LS_BLOCKS = [
    {"kind": "metaformer", "placement": "pre", "norm": {"kind": "layernorm"},
     "token_mixer": {"kind": "ls", "n_heads": 4, "local_heads": 2, "window": 2},
     "channel_mixer": {"kind": "mlp", "d_ff": 16}},
    {"kind": "metaformer", "placement": "post", "norm": {"kind": "rmsnorm"},
     "token_mixer": {"kind": "ls", "n_heads": 2, "local_heads": 1, "window": 3, "causal": True},
     "channel_mixer": {"kind": "mlp", "d_ff": 12}},
]
# kernelized attention with relative positions (elu and relu features), bidirectional and causal
RPE_BLOCKS = [
    {"kind": "metaformer", "placement": "pre", "norm": {"kind": "layernorm"},
     "token_mixer": {"kind": "rpe", "n_heads": 2, "algorithm": "fft"}, "channel_mixer": {"kind": "mlp", "d_ff": 16}},
    {"kind": "metaformer", "placement": "post", "norm": {"kind": "layernorm"},
     "token_mixer": {"kind": "rpe", "n_heads": 2, "causal": True, "feature_map": "relu"},
     "channel_mixer": {"kind": "mlp", "d_ff": 16}},
    {"kind": "residual", "placement": "pre", "norm": {"kind": "rmsnorm"},
     "mixer": {"kind": "rpe", "n_heads": 4, "causal": True, "algorithm": "fft"}},
]
def with_token_mixer(mixer, placement="pre", norm="layernorm", d_ff=16, repeat=2):
    """A metaformer block entry around a token mixer object (for mixers with options of their own)."""
    return {"kind": "metaformer", "repeat": repeat, "placement": placement, "dropout": 0,
            "norm": {"kind": norm}, "token_mixer": mixer,
            "channel_mixer": {"kind": "mlp", "d_ff": d_ff, "activation": "gelu", "dropout": 0}}


# PatchTST at its ETTh1 size (L=336, P=96, C=7, patch 16 / stride 8 -> N=42)
ETTH1 = dict(seq_len=336, pred_len=96, n_channels=7)
ETTH1_INPUT = {"kind": "patches", "patch_len": 16, "stride": 8}


class Fixture:
    def __init__(self, name, cfg, batch, init="fixed", seed=None):
        self.name, self.cfg, self.batch, self.init = name, cfg, batch, init
        self.seed = seed  # explicit seed (new fixtures): independent of the list position

    def __iter__(self):  # name, cfg = fixture
        return iter((self.name, self.cfg))


# Seeds: fixture i uses torch.manual_seed(1234 + i), data generator 2234 + i, unless it names its own
# `seed=` (every fixture added from now on should, so fixtures added on parallel branches keep their
# seeds when the list is merged); the first five are the format_version 1 fixtures (same seeds, same
# weights and inputs; the configs re-expressed in v2).
FIXTURES = [
    Fixture("patchtst_softmax_post", patchtst_cfg([small_v1_pair(placement="post")]), 4),
    Fixture("patchtst_linear_pre", patchtst_cfg([small_v1_pair(placement="pre", norm="rmsnorm", mixer="linear")],
                                                positions="sinusoidal"), 4),
    Fixture("patchtst_softmax_causal", patchtst_cfg([small_v1_pair(placement="pre", causal=True)]), 4),
    Fixture("dlinear", ref.canonical_config({"format_version": 2, "task": "forecast", "model": "dlinear",
                                             "seq_len": 48, "pred_len": 12, "n_channels": 3, "kernel_size": 25}), 4),
    Fixture("patchtst_batchnorm_post", patchtst_cfg([small_v1_pair(placement="post", norm="batchnorm")]), 4),
    Fixture("hybrid", patchtst_cfg(HYBRID_BLOCKS), 4),
    Fixture("patchtst_train_softmax",
            patchtst_cfg([metaformer("post", "batchnorm", "softmax", n_heads=4, d_ff=128, repeat=3)],
                         size=dict(ETTH1, d_model=16), input=ETTH1_INPUT), 32, init="fan_in"),
    Fixture("patchtst_train_linear_pre",
            patchtst_cfg([metaformer("pre", "layernorm", "linear", n_heads=8, d_ff=128, repeat=2)],
                         size=dict(ETTH1, d_model=64), input=ETTH1_INPUT), 16, init="fan_in"),
    # gated channel mixers (SwiGLU, GEGLU) in a metaformer, a parallel block and as a residual's mixer
    Fixture("glu", patchtst_cfg(GLU_BLOCKS), 4),
    # sliding-window attention, bidirectional (window 2) and causal (window 3)
    Fixture("local", patchtst_cfg(LOCAL_BLOCKS), 4),
    # additive attention (H = 2 in a metaformer, H = 4 in a parallel block)
    Fixture("fastformer", patchtst_cfg(FASTFORMER_BLOCKS), 4),
    # sequence-projected keys/values: k = 5 of 12 patches, and k = 12 with share_kv
    Fixture("linformer", patchtst_cfg(LINFORMER_BLOCKS), 4),
    # long-short heads: 2 local of 4 (window 2), and 1 local of 2 causal (window 3)
    Fixture("ls", patchtst_cfg(LS_BLOCKS), 4),
    Fixture("patchtst_rpe", patchtst_cfg(RPE_BLOCKS), 4),
    # linear attention with other feature maps (relu; FAVOR+ with the projection buffer stored in the
    # file, bidirectional and causal) and cosFormer (bidirectional and causal)
    Fixture("linear_favor", patchtst_cfg([
        with_token_mixer({"kind": "linear", "feature_map": "favor", "n_features": 10, "n_heads": 2})]), 4),
    Fixture("linear_favor_causal", patchtst_cfg([
        with_token_mixer({"kind": "linear", "feature_map": "favor", "n_features": 16, "n_heads": 2,
                          "causal": True}, "post", "rmsnorm")], positions="sinusoidal"), 4),
    Fixture("cosformer", patchtst_cfg([with_token_mixer({"kind": "cosformer", "n_heads": 2})],
                                      size=dict(SMALL, d_model=16)), 4),
    Fixture("cosformer_causal", patchtst_cfg([
        # d_model 16, head width 8 (both cosformer fixtures): normalisers that sum few ReLU products
        # (the first causal tokens) were tiny but not 0 at head width 2 or 4, and the gradient's
        # sensitivity (~ 1/normaliser^2) put even torch's float32 gradients 1e-5 from float64
        with_token_mixer({"kind": "cosformer", "n_heads": 2, "causal": True}, "post", "layernorm")],
        size=dict(SMALL, d_model=16)), 4),
    Fixture("linear_relu", patchtst_cfg([
        with_token_mixer({"kind": "linear", "feature_map": "relu", "n_heads": 2}, repeat=1),
        with_token_mixer({"kind": "linear", "feature_map": "relu", "n_heads": 2, "causal": True},
                         "pre", "rmsnorm", repeat=1)]), 4),
    # iTransformer: variates as tokens (use_norm, inverted embedding, the official post-norm
    # softmax + mlp encoder layers, final layernorm, per-token projector); C = 5 tokens
    Fixture("itransformer", ref.canonical_config(
        {"format_version": 2, "task": "forecast", "model": "itransformer", "seq_len": 48, "pred_len": 12,
         "n_channels": 5, "d_model": 16, "dropout": 0,
         "blocks": [metaformer("post", "layernorm", "softmax", n_heads=4, d_ff=24, repeat=2)]}), 4),
    # Informer: factor 2 keeps ProbSparse sparse (8 of 24 encoder queries, 6 of 12 after distilling,
    # 6 of 20 decoder queries); two decoder layers, hourly time features
    Fixture("informer", ref.canonical_config({"model": "informer", "seq_len": 24, "label_len": 12, "pred_len": 8,
                                              "n_channels": 3, "d_model": 16, "n_heads": 4, "e_layers": 2,
                                              "d_layers": 2, "d_ff": 32, "factor": 2, "dropout": 0}), 4),
    # rpe with the paper's features: FAVOR+ on l2-normalised q and k (projection stored in the file),
    # bidirectional by FFT and causal (direct), d_model 16 (head width 8)
    Fixture("rpe_favor", patchtst_cfg([
        with_token_mixer({"kind": "rpe", "feature_map": "favor", "n_features": 12, "n_heads": 2,
                          "algorithm": "fft"}, repeat=1),
        with_token_mixer({"kind": "rpe", "feature_map": "favor", "n_features": 8, "n_heads": 2,
                          "causal": True}, "post", "rmsnorm", repeat=1)], size=dict(SMALL, d_model=16)), 4),
    # iTransformer with time-feature tokens: C = 7 variates (as ETT) + 4 hourly features = 11 tokens;
    # only the variate tokens are projected (the feature tokens still shape them through attention).
    # With C = 3 torch's own float32 gradients were 1.7e-5..3.3e-5 from float64 (this data's
    # conditioning, not a model difference); at C = 7, head width 8, 3.4e-6
    Fixture("itransformer_marks", ref.canonical_config(
        {"format_version": 2, "task": "forecast", "model": "itransformer", "seq_len": 48, "pred_len": 12,
         "n_channels": 7, "d_model": 16, "dropout": 0, "input": {"kind": "inverted", "time_tokens": True},
         "blocks": [metaformer("post", "layernorm", "softmax", n_heads=2, d_ff=24, repeat=2)]}), 4),
    # MemoryFormer lookup tables (issue 15): tau 4 (2 tables of 16 rows) with the paper's score in a
    # pre block, tau 2 with the code's score in a post block, and the FFN (tau 2 -> LayerNorm -> tau 4)
    Fixture("lut", patchtst_cfg([
        {**metaformer("pre", "layernorm"), "channel_mixer": {"kind": "lut", "tau": 4}},
        {**metaformer("post", "rmsnorm"), "channel_mixer": {"kind": "lut", "tau": 2, "score": "code"}},
        {**metaformer("pre", "layernorm"), "channel_mixer": {"kind": "lut", "tau": 2, "ffn": True}}]), 4,
        seed=5300),
    # peri-norm (issue 15): norms on each mixer's input and output; layernorm then rmsnorm, the last
    # block peri so final_norm auto adds norm_f
    Fixture("peri", patchtst_cfg([metaformer("peri", "layernorm", "softmax", causal=True),
                                  metaformer("peri", "rmsnorm", "linear", activation="relu")]), 4, seed=5301),
    # positions inside softmax attention (issue 15): rotary (bidirectional, then causal with base 100) and
    # T5 relative bias (8 buckets, max distance 6: the 12 patches reach the log-spaced and last buckets;
    # bidirectional then causal, each layer its own table); an mlp residual block takes no positions
    Fixture("rope", patchtst_cfg([metaformer("pre", "layernorm", "softmax"),
                                  metaformer("post", "rmsnorm", "softmax", causal=True),
                                  {"kind": "residual", "mixer": {"kind": "mlp", "d_ff": 8}}],
                                 positions={"kind": "rope", "base": 100}), 4, seed=5302),
    Fixture("t5", patchtst_cfg([metaformer("pre", "layernorm", "softmax"),
                                metaformer("pre", "rmsnorm", "softmax", n_heads=4, causal=True)],
                               positions={"kind": "t5", "num_buckets": 8, "max_distance": 6}), 4, seed=5303),
    # Mamba-1 (token mixer "mamba"): two pre-rmsnorm residual blocks (Mamba's own stack shape),
    # d_model 16 (d_inner 32, dt_rank 1), d_state 4, d_conv 4, over 12 patches
    Fixture("mamba", patchtst_cfg([
        {"kind": "residual", "repeat": 2, "placement": "pre", "dropout": 0, "norm": {"kind": "rmsnorm"},
         "mixer": {"kind": "mamba", "d_state": 4}}], size=dict(SMALL, d_model=16)), 4, seed=5000),
    # bidirectional Mamba (second set bwd.* over the reversed sequence): a post-layernorm residual
    # block, then S-Mamba's encoder layer shape (post metaformer, d_state 2, d_conv 2, expand 1 + mlp)
    Fixture("mamba_bidirectional", patchtst_cfg([
        {"kind": "residual", "placement": "post", "dropout": 0, "norm": {"kind": "layernorm"},
         "mixer": {"kind": "mamba", "d_state": 3, "bidirectional": True}},
        with_token_mixer({"kind": "mamba", "d_state": 2, "d_conv": 2, "expand": 1, "bidirectional": True},
                         "post", "layernorm", repeat=1)], size=dict(SMALL, d_model=16)), 4, seed=5001),
    # S-Mamba (wzhwzhwzh0921/S-D-Mamba model/S_Mamba.py): iTransformer's variates-as-tokens with the
    # encoder layer's attention replaced by a bidirectional Mamba (d_state 2, d_conv 2, expand 1)
    Fixture("smamba", ref.canonical_config(
        {"format_version": 2, "task": "forecast", "model": "itransformer", "seq_len": 48, "pred_len": 12,
         "n_channels": 7, "d_model": 16, "dropout": 0,
         "blocks": [with_token_mixer({"kind": "mamba", "d_state": 2, "d_conv": 2, "expand": 1,
                                      "bidirectional": True}, "post", "layernorm", d_ff=32, repeat=2)]}),
            4, seed=5002),
    # ParaRNN cells: gru_diag (Newton, defaults: hidden = d, 2 heads) and lstm_cifg (hidden 12 with the
    # output projection, 4 heads, sequential solver); the twin is the sequential loop
    Fixture("pararnn", patchtst_cfg([
        with_token_mixer({"kind": "gru_diag"}, repeat=1),
        with_token_mixer({"kind": "lstm_cifg", "hidden": 12, "heads": 4, "solver": "sequential"},
                         "post", "rmsnorm", repeat=1),
        with_token_mixer({"kind": "lstm_cifg", "heads": 1}, repeat=1)]), 4, seed=5100),
    # dense nn.GRU (hidden 12, output projection) and nn.LSTM (hidden = d)
    Fixture("rnn_dense", patchtst_cfg([
        with_token_mixer({"kind": "gru", "hidden": 12}, repeat=1),
        with_token_mixer({"kind": "lstm"}, "post", "rmsnorm", repeat=1)]), 4, seed=5101),
    # causal language models (src/models/lm.c): every causal block kind with softmax, linear, local
    # mixers, a tied head with bias and learned positions; and an untied head with sinusoidal
    # positions over cosformer and rpe (vocab 13, T = 16)
    Fixture("lm_tied", ref.canonical_config(
        {"task": "lm", "model": "lm", "seq_len": 16, "d_model": 16, "input": {"kind": "tokens", "vocab": 13},
         "blocks": [metaformer("pre", "layernorm", "softmax", n_heads=2, d_ff=24, causal=True),
                    {"kind": "parallel", "placement": "post", "norm": {"kind": "rmsnorm"},
                     "token_mixer": {"kind": "linear", "n_heads": 2, "causal": True},
                     "channel_mixer": {"kind": "glu", "d_ff": 12}},
                    {"kind": "residual", "placement": "pre", "norm": {"kind": "layernorm"},
                     "mixer": {"kind": "local", "n_heads": 4, "window": 3, "causal": True}}],
         "head": {"kind": "lm", "tie_weights": True, "bias": True}}), 3, seed=5400),
    Fixture("lm_untied", ref.canonical_config(
        {"task": "lm", "model": "lm", "seq_len": 16, "max_len": 24, "d_model": 16,
         "input": {"kind": "tokens", "vocab": 13}, "positions": {"kind": "sinusoidal"},
         "final_norm": "rmsnorm",
         "blocks": [with_token_mixer({"kind": "cosformer", "n_heads": 2, "causal": True}, repeat=1),
                    with_token_mixer({"kind": "rpe", "n_heads": 2, "causal": True}, "post", repeat=1)],
         "head": {"kind": "lm", "bias": True}}), 3, seed=5401),
    # t2 (classification): pointwise ReLU embedding, sinusoidal positions, two post-LayerNorm
    # (eps 1e-6) softmax + mlp blocks, mean pooling over the valid steps, 5 logits; four series
    # of valid lengths 20, 13, 7, 1 padded to 20 with random values (which must not matter); the
    # fixture adds `lens` [B] and y [B, n_classes]. The mlp is gelu here: with t2's relu, 5 of 24
    # hidden units were dead on these 41 tokens (zero gradients the reproduce check refuses); the
    # relu mlp has its parity in `hybrid`
    Fixture("t2", ref.canonical_config(
        {"task": "classify", "model": "t2", "seq_len": 20, "n_channels": 3, "n_classes": 5, "d_model": 16,
         "blocks": [metaformer("post", "layernorm", "softmax", n_heads=4, d_ff=24, activation="gelu",
                               repeat=2, eps=1e-6)],
         "head": {"kind": "pool_classify", "dropout": 0}}), 4, seed=5500),
    # S4D (diagonal SSM, causal FFT convolution on the C side, the recurrence in the twin): a pre
    # metaformer block (d_state 8) and a post residual one (d_state 4, dt in [0.01, 0.5])
    Fixture("s4d", patchtst_cfg([
        with_token_mixer({"kind": "s4d", "d_state": 8}, repeat=1),
        {"kind": "residual", "placement": "post", "norm": {"kind": "rmsnorm"},
         "mixer": {"kind": "s4d", "d_state": 4, "dt_min": 0.01, "dt_max": 0.5}}]), 4, seed=5200),
    # DeltaNet (chunked WY form on the C side, the recurrence in the twin): 12 patches in chunks of 5
    # (tail 2) with 2 heads of width 8, and chunks of 3 with 4 heads of width 4 in a post residual block
    Fixture("deltanet", patchtst_cfg([
        with_token_mixer({"kind": "deltanet", "n_heads": 2, "chunk_size": 5}, repeat=1),
        {"kind": "residual", "placement": "post", "norm": {"kind": "layernorm"},
         "mixer": {"kind": "deltanet", "n_heads": 4, "chunk_size": 3}}], size=dict(SMALL, d_model=16)),
            4, seed=5201),
    # bidirectional S4D (a second C for the anti-causal kernel) in a post metaformer and a parallel block
    Fixture("s4d_bidirectional", patchtst_cfg([
        with_token_mixer({"kind": "s4d", "d_state": 6, "bidirectional": True}, "post", repeat=1),
        {"kind": "parallel", "placement": "pre", "norm": {"kind": "layernorm"},
         "token_mixer": {"kind": "s4d", "d_state": 4, "bidirectional": True},
         "channel_mixer": {"kind": "mlp", "d_ff": 16}}]), 4, seed=5202),
    # positions acting inside softmax attention reach the lm and t2 models too (before, both built
    # their blocks without them and silently trained without positions): an lm with rotary
    # positions, a t2 with T5 relative biases over padded series
    Fixture("lm_rope", ref.canonical_config(
        {"task": "lm", "model": "lm", "seq_len": 16, "max_len": 20, "d_model": 16,
         "input": {"kind": "tokens", "vocab": 13}, "positions": {"kind": "rope", "base": 100.0},
         "blocks": [metaformer("pre", "layernorm", "softmax", n_heads=2, d_ff=24, causal=True, repeat=2)],
         "head": {"kind": "lm", "bias": True}}), 3, seed=6100),
    Fixture("t2_t5", ref.canonical_config(
        {"task": "classify", "model": "t2", "seq_len": 20, "n_channels": 3, "n_classes": 5, "d_model": 16,
         "positions": {"kind": "t5", "num_buckets": 8, "max_distance": 12},
         "blocks": [metaformer("post", "layernorm", "softmax", n_heads=4, d_ff=24, activation="gelu",
                               repeat=2, eps=1e-6)],
         "head": {"kind": "pool_classify", "dropout": 0}}), 4, seed=6101),
    # t2 with the conv_patches input (ucr recipe): windows of 5 steps every 3 (20 steps -> 7
    # tokens), two channels, learned positions, one post softmax + gelu mlp block; valid lengths
    # 20, 13, 7, 1 (7, 5, 3, 1 tokens; the last windows run past the valid end into zeros)
    Fixture("t2_conv_patches", ref.canonical_config(
        {"task": "classify", "model": "t2", "seq_len": 20, "n_channels": 2, "n_classes": 3, "d_model": 16,
         "input": {"kind": "conv_patches", "patch_len": 5, "stride": 3}, "positions": {"kind": "learned"},
         "blocks": [metaformer("post", "layernorm", "softmax", n_heads=4, d_ff=24, activation="gelu",
                               repeat=1, eps=1e-6)],
         "head": {"kind": "pool_classify", "dropout": 0}}), 4, seed=5800),
    # depth-wise convolution token mixer: a centred even kernel (4: one more tap on the right) in a
    # pre metaformer block and a causal kernel 3 in a post residual one, over 12 patches
    Fixture("dwconv", patchtst_cfg([
        with_token_mixer({"kind": "dwconv", "kernel_size": 4}, repeat=1),
        {"kind": "residual", "placement": "post", "norm": {"kind": "layernorm"},
         "mixer": {"kind": "dwconv", "kernel_size": 3, "causal": True}}]), 4, seed=5900),
    # t2 with windows (5 every 3) and a dwconv (kernel 5) block then a softmax block, over padded
    # series of valid lengths 20, 13, 7, 1: the conv must read the padding as zeros
    Fixture("t2_dwconv", ref.canonical_config(
        {"task": "classify", "model": "t2", "seq_len": 20, "n_channels": 2, "n_classes": 3, "d_model": 16,
         "input": {"kind": "conv_patches", "patch_len": 5, "stride": 3},
         "blocks": [with_token_mixer({"kind": "dwconv", "kernel_size": 5}, "post", d_ff=24, repeat=1),
                    metaformer("post", "layernorm", "softmax", n_heads=4, d_ff=24, activation="gelu",
                               repeat=1, eps=1e-6)],
         "head": {"kind": "pool_classify", "dropout": 0}}), 4, seed=5901),
    # t2 on irregular observations: channel 1 of 4 holds increasing observation times (days), encoded
    # sinusoidally (positions "time", scale 3: angles up to ~100 rad) and not embedded; lengths 20, 13,
    # 7, 1 as in `t2`
    Fixture("t2_time", ref.canonical_config(
        {"task": "classify", "model": "t2", "seq_len": 20, "n_channels": 4, "n_classes": 3, "d_model": 16,
         "positions": {"kind": "time", "channel": 1, "scale": 3.0},
         "blocks": [metaformer("post", "layernorm", "softmax", n_heads=4, d_ff=24, activation="gelu",
                               repeat=1, eps=1e-6)],
         "head": {"kind": "pool_classify", "dropout": 0}}), 4, seed=5700),
]


def is_batchnorm(cfg):
    return ref.is_batchnorm(cfg)


def randomize_buffers_(model):
    """Batchnorm running statistics random: running_mean N(0, 0.5), running_var U(0.5, 2), count 3."""
    with torch.no_grad():
        for name, b in model.named_buffers():
            if name.endswith("running_mean"):
                b.copy_(0.5 * torch.randn_like(b))
            elif name.endswith("running_var"):
                b.copy_(torch.empty_like(b).uniform_(0.5, 2.0))
            elif name.endswith("num_batches_tracked"):
                b.fill_(3)


def randomize_(model, std=0.3, init="fixed"):
    """Every parameter random and non-degenerate, drawn in named_parameters order: norm weights
    1 + N(0, 0.1); init "fixed": the rest N(0, std); init "fan_in" (the training-size fixtures, so that
    activations keep a trained network's scale at d = 64 and the 2688-wide head): matrix weights
    N(0, 1/fan_in) (std 1/sqrt(in_features)), biases and pos_embed N(0, std)."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            is_norm_weight = (".norm" in name or name.startswith("norm")) and name.endswith("weight")
            if is_norm_weight:
                p.copy_(1.0 + 0.1 * torch.randn_like(p))
            elif init == "fan_in" and p.dim() == 2 and name != "pos_embed":
                p.copy_(p.shape[1] ** -0.5 * torch.randn_like(p))
            elif init in ("fixed", "fan_in"):
                p.copy_(std * torch.randn_like(p))
            else:
                raise ValueError(f"unknown init {init!r}")


def make_data(L, P, C, g, B):
    """Raw-scale series with per-channel offsets/scales (so RevIN matters), split into x / y."""
    T = L + P
    t = torch.arange(T, dtype=torch.float64)
    offsets = torch.linspace(-3.0, 4.0, C, dtype=torch.float64)
    scales = torch.logspace(-1.0, 0.6, C, dtype=torch.float64)  # 0.1 .. ~4
    periods = torch.linspace(7.0, 24.0, C, dtype=torch.float64)
    xs = torch.empty(B, T, C, dtype=torch.float64)
    for b in range(B):
        phase = 2 * math.pi * torch.rand(C, generator=g, dtype=torch.float64)
        slope = 0.02 * torch.randn(C, generator=g, dtype=torch.float64)
        level = offsets + 0.5 * torch.randn(C, generator=g, dtype=torch.float64)
        noise = 0.3 * torch.randn(T, C, generator=g, dtype=torch.float64)
        wave = torch.sin(2 * math.pi * t[:, None] / periods[None, :] + phase[None, :])
        xs[b] = level + scales * (wave + noise + slope * t[:, None])
    xs = xs.float()
    return xs[:, :L].contiguous(), xs[:, L:].contiguous()


def make_marks(L, P, freq, g, B):
    """Time features [B, L+P, F] of hourly (freq h) or 15-minute (t) windows starting at random
    times from 2016-07-01 (ETTh1's first row)."""
    import datetime as dt
    step = dt.timedelta(hours=1) if freq == "h" else dt.timedelta(minutes=15)
    out = []
    for _ in range(B):
        t0 = dt.datetime(2016, 7, 1) + step * int(torch.randint(0, 20000, (1,), generator=g))
        out.append(ref.time_features([t0 + step * i for i in range(L + P)], freq))
    return torch.stack(out).float()


def run(model, x, y, marks=None):
    model.zero_grad(set_to_none=True)
    out = model(x) if marks is None else model(x, marks)
    if isinstance(model, ref.LM):  # mean cross-entropy over every token (tasks/lm.c)
        loss = torch.nn.functional.cross_entropy(out.reshape(-1, out.shape[-1]), y.reshape(-1).long())
    else:
        loss = torch.mean((out - y) ** 2)
    loss.backward()
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters()}
    return out.detach(), loss.detach(), grads


def run_fixture(model, x, y, batchnorm, marks=None):
    """What a fixture records.  Non-batchnorm: eval mode, -> (out, loss, grads, {}, None).
    Batchnorm: train mode forward/backward (updates the running statistics), then the buffers
    (-> after), then eval mode forward (-> out_eval).  Leaves the model in eval mode.
    Informer: the training forward's ProbSparse samples draw their seeds from SfRng(1), as
    tests/test_parity.c's training forward does from sf_rng_seed(&rng, 1)."""
    if hasattr(model, "set_sample_rng"):
        model.set_sample_rng(ref.SfRng(1))
    if not batchnorm:
        model.train(False)
        out, loss, grads = run(model, x, y, marks)
        return out, loss, grads, {}, None
    model.train(True)
    out, loss, grads = run(model, x, y, marks)
    after = {n: b.detach().clone() for n, b in model.named_buffers()}
    model.train(False)
    with torch.no_grad():
        out_eval = model(x) if marks is None else model(x, marks)
    return out, loss, grads, after, out_eval


def fixture_state(model):
    """state_dict for a fixture file: everything float32 (num_batches_tracked -> F32 scalar)."""
    return {k: v.detach().clone().to(torch.float32) for k, v in model.state_dict().items()}


def rel_err(a, b):
    """max |a - b| / max |b| (b is the float64 reference)."""
    a, b = a.double(), b.double()
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-300)).item()


def make_one(fx, seed, out_dir):
    name, cfg = fx.name, fx.cfg
    torch.manual_seed(seed)
    model = ref.build_model(cfg)
    randomize_(model, init=fx.init)
    bn = is_batchnorm(cfg)
    if bn:
        randomize_buffers_(model)
    model.train(False)  # dropout is 0 anyway; eval keeps it obviously deterministic
    g = torch.Generator().manual_seed(seed + 1000)
    marks = None
    if cfg["model"] == "lm":  # token ids and next-token targets, as floats (the C model's x)
        V = cfg["input"]["vocab"]
        x = torch.randint(0, V, (fx.batch, cfg["seq_len"]), generator=g).float()
        y = torch.randint(0, V, (fx.batch, cfg["seq_len"]), generator=g).float()
    elif cfg["model"] == "t2":  # x [B, L, C] with padding, lens [B] (passed where marks go), y [B, K]
        x = torch.randn(fx.batch, cfg["seq_len"], cfg["n_channels"], generator=g)
        y = torch.randn(fx.batch, cfg["n_classes"], generator=g)
        marks = torch.tensor([cfg["seq_len"], 13, 7, 1][:fx.batch], dtype=torch.float32)
        if cfg["positions"]["kind"] == "time":  # increasing observation times, 0..~2 days apart
            x[:, :, cfg["positions"]["channel"]] = torch.cumsum(
                2 * torch.rand(fx.batch, cfg["seq_len"], generator=g), dim=1)
    else:
        x, y = make_data(cfg["seq_len"], cfg["pred_len"], cfg["n_channels"], g, fx.batch)
    if (cfg["model"] == "informer" and cfg["embed"] == "timeF") or \
            (cfg["model"] == "itransformer" and cfg["input"]["time_tokens"]):
        marks = make_marks(cfg["seq_len"], cfg["pred_len"], cfg["freq"], g, fx.batch)
    state0 = fixture_state(model)  # before anything runs (batchnorm buffers change in train mode)
    m64 = copy.deepcopy(model).double()
    out, loss, grads, after, out_eval = run_fixture(model, x, y, bn, marks)

    full_cfg = model.cfg  # with defaults filled in
    tensors = dict(state0)
    tensors["x"], tensors["y"], tensors["out"] = x, y, out
    tensors["loss"] = loss.reshape(1)
    if marks is not None:
        tensors["lens" if cfg["model"] == "t2" else "marks"] = marks
    for n, gr in grads.items():
        tensors[ref.GRAD_PREFIX + n] = gr
    for n, b in after.items():
        tensors[ref.AFTER_PREFIX + n] = b.to(torch.float32)
    if out_eval is not None:
        tensors["out_eval"] = out_eval
    meta = {"config": json.dumps(full_cfg), "format_version": str(ref.FORMAT_VERSION),
            "producer": f"tools/reference/make_fixtures.py torch {torch.__version__}"}
    path = os.path.join(out_dir, name + ".safetensors")
    ref.save_safetensors(path, tensors, meta)

    # float64 twin: same weights, buffers and inputs, everything in double
    out64, loss64, grads64, after64, out_eval64 = run_fixture(
        m64, x.double(), y.double(), bn,
        None if marks is None else marks if cfg["model"] == "t2" else marks.double())
    rep = {
        "file": os.path.relpath(path),
        "bytes": os.path.getsize(path),
        "params": ref.count_params(model),
        "loss32": loss.item(),
        "loss64": loss64.item(),
        "loss_rel_err": abs(loss.item() - loss64.item()) / abs(loss64.item()),
        "out_max_abs_err": (out.double() - out64).abs().max().item(),
        "out_max_abs": out64.abs().max().item(),
        "out_rel_err": rel_err(out, out64),
        "grad_rel_err": {n: rel_err(grads[n], grads64[n]) for n in grads},
        "grad_max_abs_err": {n: (grads[n].double() - grads64[n]).abs().max().item() for n in grads},
    }
    rep["grad_rel_err_worst"] = max(rep["grad_rel_err"].values())
    rep["grad_max_abs_err_worst"] = max(rep["grad_max_abs_err"].values())
    # train-mode batchnorm: biases right before a post batchnorm have an exactly-zero gradient; their
    # f32 values are rounding noise, "rel" meaningless -> report the others separately
    zero = sorted(ref.zero_grad_params(model)) if bn else []
    rest = [n for n in grads if n not in zero]
    rep["zero_grad_params"] = zero
    rep["grad_rel_err_worst_nonzero"] = max(rep["grad_rel_err"][n] for n in rest)
    rep["grad_rel_err_worst_nonzero_param"] = max(rest, key=lambda n: rep["grad_rel_err"][n])
    rep["grad_max_abs"] = max(grads64[n].abs().max().item() for n in grads)
    if zero:
        rep["zero_grad_max_abs32"] = max(grads[n].abs().max().item() for n in zero)
        rep["zero_grad_max_abs64"] = max(grads64[n].abs().max().item() for n in zero)
    if bn:
        rep["after_rel_err"] = {n: rel_err(after[n], after64[n]) for n in after}
        rep["after_max_abs_err"] = {n: (after[n].double() - after64[n].double()).abs().max().item()
                                    for n in after}
        rep["after_rel_err_worst"] = max(rep["after_rel_err"].values())
        rep["after_max_abs_err_worst"] = max(rep["after_max_abs_err"].values())
        rep["out_eval_max_abs_err"] = (out_eval.double() - out_eval64).abs().max().item()
        rep["out_eval_rel_err"] = rel_err(out_eval, out_eval64)
    return rep


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    root = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
    ap.add_argument("--out-dir", default=os.path.join(root, "tests", "fixtures"))
    ap.add_argument("--report-json", default=None, help="also write the float32-vs-float64 report here")
    ap.add_argument("--only", nargs="*", default=None, help="write only these fixtures (names)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    os.makedirs(args.out_dir, exist_ok=True)
    reports = []
    for i, fx in enumerate(FIXTURES):
        if args.only is not None and fx.name not in args.only:
            continue
        rep = make_one(fx, seed=fx.seed if fx.seed is not None else 1234 + i, out_dir=args.out_dir)
        reports.append(rep)
        zero = rep["zero_grad_params"]
        print(f"{rep['file']}: {rep['bytes']} bytes, {rep['params']} params, loss {rep['loss32']:.6f} | "
              f"f32 vs f64: loss rel {rep['loss_rel_err']:.2e}, out max abs {rep['out_max_abs_err']:.2e} "
              f"(rel {rep['out_rel_err']:.2e}), grads worst rel {rep['grad_rel_err_worst']:.2e} "
              f"worst abs {rep['grad_max_abs_err_worst']:.2e} (max |grad| {rep['grad_max_abs']:.2e})"
              + (f" | {len(zero)} exactly-zero grads (f32 noise <= {rep['zero_grad_max_abs32']:.1e}); others "
                 f"worst rel {rep['grad_rel_err_worst_nonzero']:.2e} ({rep['grad_rel_err_worst_nonzero_param']})"
                 if zero else "")
              + (f" | after.* worst rel {rep['after_rel_err_worst']:.2e} worst abs "
                 f"{rep['after_max_abs_err_worst']:.2e}, out_eval max abs {rep['out_eval_max_abs_err']:.2e} "
                 f"(rel {rep['out_eval_rel_err']:.2e})" if "after_rel_err" in rep else ""))
    if args.report_json:
        with open(args.report_json, "w") as f:
            json.dump(reports, f, indent=1)


if __name__ == "__main__":
    main()
