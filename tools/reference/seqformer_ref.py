"""PyTorch reference twin of seqformer's models, plus a minimal safetensors reader/writer.

The C implementation follows these modules exactly; the parameter names of the
state_dicts below are the contract between the two (checkpoints and fixtures
are loaded with ``load_state_dict(strict=True)``).

Models are built from the format_version 2 JSON config of docs/config.md
(``build_model(cfg)``; ``canonical_config(cfg)`` fills in the defaults and orders the keys as the
doc does, ``expand_blocks`` expands ``repeat``).  format_version 1 configs (the flat
model/d_model/mixer/norm/norm_place/pos form of older checkpoints) are still read:
``config_v1_to_v2`` turns them into the equivalent v2 config, with the same parameter names.

Only depends on torch and numpy (the ``safetensors`` package is not needed).
"""

import json
import math
import struct

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

FORMAT_VERSION = 2  # the config format written (1 is still read)
REVIN_EPS = 1e-5
NORM_EPS = 1e-5
LINATTN_EPS = 1e-6

# Tensors that fixtures hold besides the model parameters (see make_fixtures.py).
FIXTURE_TENSORS = ("x", "y", "out", "loss", "out_eval", "marks", "lens")
GRAD_PREFIX = "grad."
AFTER_PREFIX = "after."  # batchnorm fixtures: buffers after the training forward

# --------------------------------------------------------------------------
# safetensors IO
# --------------------------------------------------------------------------

_ST_DTYPES = {
    "F64": np.dtype("<f8"),
    "F32": np.dtype("<f4"),
    "F16": np.dtype("<f2"),
    "I64": np.dtype("<i8"),
    "I32": np.dtype("<i4"),
    "I16": np.dtype("<i2"),
    "I8": np.dtype("i1"),
    "U8": np.dtype("u1"),
    "BOOL": np.dtype("?"),
}
_NP_TO_ST = {v: k for k, v in _ST_DTYPES.items()}


def _to_numpy(t):
    if isinstance(t, torch.Tensor):
        t = t.detach().cpu().numpy()
    return np.asarray(t)


def save_safetensors(path, tensors, metadata=None):
    """Write ``tensors`` (name -> torch.Tensor / np.ndarray, order kept) to ``path``.

    ``metadata`` is a dict of str -> str stored under ``__metadata__``.
    """
    header = {}
    chunks = []
    offset = 0
    for name, t in tensors.items():
        a = _to_numpy(t)
        dt = a.dtype.newbyteorder("<") if a.dtype.byteorder == ">" else a.dtype
        if dt not in _NP_TO_ST:
            raise ValueError(f"{name}: unsupported dtype {a.dtype}")
        raw = np.ascontiguousarray(a, dtype=dt).tobytes()
        header[name] = {
            "dtype": _NP_TO_ST[dt],
            "shape": list(a.shape),
            "data_offsets": [offset, offset + len(raw)],
        }
        chunks.append(raw)
        offset += len(raw)
    if metadata:
        for k, v in metadata.items():
            if not isinstance(k, str) or not isinstance(v, str):
                raise ValueError("safetensors metadata must map str -> str")
        header["__metadata__"] = dict(metadata)
    hbytes = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hbytes += b" " * ((-len(hbytes)) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hbytes)))
        f.write(hbytes)
        for raw in chunks:
            f.write(raw)


def load_safetensors(path):
    """Read ``path``; returns (dict name -> np.ndarray (in file order), metadata dict)."""
    with open(path, "rb") as f:
        buf = f.read()
    if len(buf) < 8:
        raise ValueError(f"{path}: too short for a safetensors file")
    (n,) = struct.unpack("<Q", buf[:8])
    if 8 + n > len(buf):
        raise ValueError(f"{path}: header length {n} exceeds file size")
    header = json.loads(buf[8:8 + n].decode("utf-8"))
    data = memoryview(buf)[8 + n:]
    metadata = header.pop("__metadata__", {}) or {}
    out = {}
    for name, info in header.items():
        dt = _ST_DTYPES.get(info["dtype"])
        if dt is None:
            raise ValueError(f"{path}: tensor {name}: unsupported dtype {info['dtype']}")
        b, e = info["data_offsets"]
        shape = tuple(info["shape"])
        count = int(np.prod(shape)) if shape else 1
        if e - b != count * dt.itemsize or e > len(data):
            raise ValueError(f"{path}: tensor {name}: bad data_offsets {b},{e}")
        out[name] = np.frombuffer(data[b:e], dtype=dt).reshape(shape).copy()
    return out, metadata


# --------------------------------------------------------------------------
# model configs (docs/config.md): format_version 2, canonical form, v1 -> v2
# --------------------------------------------------------------------------


class ConfigError(ValueError):
    """A config that does not follow docs/config.md; the message starts with the field path,
    e.g. ``blocks[3].token_mixer.window: unknown option (options: n_heads, causal, attn_dropout)``."""


REQUIRED = object()  # option without a default


def f32_number(v):
    """A float option as the canonical JSON writes it: the shortest decimal that reads back to the
    same float32 (0.30000001192092896 -> 0.3, 1e-5 -> 1e-05), and an int when that is integral
    (0.0 -> 0), as C's shortest-float printing gives "0"."""
    s = str(np.float32(v))
    f = float(s)
    if math.isfinite(f) and f == int(f):
        return int(f)
    return f


def _check_range(path, v, lo=None, hi=None, lo_open=False, hi_open=False):
    if lo is not None and (v <= lo if lo_open else v < lo):
        raise ConfigError(f"{path}: must be {'>' if lo_open else '>='} {lo} (got {v})")
    if hi is not None and (v >= hi if hi_open else v > hi):
        raise ConfigError(f"{path}: must be {'<' if hi_open else '<='} {hi} (got {v})")


def _int(path, v, lo=None, hi=None):
    if isinstance(v, bool) or not isinstance(v, (int, float)) or (isinstance(v, float) and v != int(v)):
        raise ConfigError(f"{path}: expected an integer (got {json.dumps(v)})")
    v = int(v)
    _check_range(path, v, lo, hi)
    return v


def _float(path, v, lo=None, hi=None, lo_open=False, hi_open=False):
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise ConfigError(f"{path}: expected a number (got {json.dumps(v)})")
    _check_range(path, float(np.float32(v)), lo, hi, lo_open, hi_open)
    return f32_number(v)


def _bool(path, v):
    if not isinstance(v, bool):
        raise ConfigError(f"{path}: expected true or false (got {json.dumps(v)})")
    return v


def _enum(path, v, allowed):
    if not isinstance(v, str) or v not in allowed:
        raise ConfigError(f"{path}: {json.dumps(v)} is not one of {', '.join(allowed)}")
    return v


# Option tables, in the documented key order: name -> (parse(path, value), default).
def _opt_int(lo=None, hi=None):
    return lambda p, v: _int(p, v, lo, hi)


def _opt_float(lo=None, hi=None, lo_open=False, hi_open=False):
    return lambda p, v: _float(p, v, lo, hi, lo_open, hi_open)


def _opt_enum(*allowed):
    return lambda p, v: _enum(p, v, allowed)


def _opt_bool():
    return _bool


_DROPOUT = _opt_float(0.0, 1.0, hi_open=True)

NORM_KINDS = {
    "layernorm": {"eps": (_opt_float(0.0, lo_open=True), 1e-5)},
    "rmsnorm": {"eps": (_opt_float(0.0, lo_open=True), 1e-5)},
    "batchnorm": {"eps": (_opt_float(0.0, lo_open=True), 1e-5), "momentum": (_opt_float(0.0, 1.0), 0.1)},
}
# kind -> (slot, options); slot "token", "channel" or "any"
MIXER_KINDS = {
    "softmax": ("token", {"n_heads": (_opt_int(1), 4), "causal": (_opt_bool(), False),
                          "attn_dropout": (_DROPOUT, 0)}),
    "linear": ("token", {"n_heads": (_opt_int(1), 4), "causal": (_opt_bool(), False),
                         "feature_map": (_opt_enum("elu", "relu", "favor"), "elu"),
                         "n_features": (_opt_int(1, 65536), 64), "redraw": (_opt_int(0, 1 << 24), 0)}),
    "mlp": ("channel", {"d_ff": (_opt_int(1), 128), "activation": (_opt_enum("gelu", "relu"), "gelu"),
                        "dropout": (_DROPOUT, 0)}),
    "glu": ("channel", {"d_ff": (_opt_int(1), 128), "activation": (_opt_enum("silu", "gelu"), "silu"),
                        "dropout": (_DROPOUT, 0)}),
    "identity": ("any", {}),
    # efficient attention (docs/config.md); max_T is the number of patches
    "local": ("token", {"n_heads": (_opt_int(1), 4), "causal": (_opt_bool(), False),
                        "window": (_opt_int(1), 4)}),
    "fastformer": ("token", {"n_heads": (_opt_int(1), 4), "causal": (_opt_bool(), False)}),
    "linformer": ("token", {"n_heads": (_opt_int(1), 4), "causal": (_opt_bool(), False),
                            "k": (_opt_int(1), 8), "share_kv": (_opt_bool(), False)}),
    "ls": ("token", {"n_heads": (_opt_int(1), 4), "causal": (_opt_bool(), False), "window": (_opt_int(1), 4),
                     "local_heads": (_opt_int(1), 2)}),
    "rpe": ("token", {"n_heads": (_opt_int(1), 4), "causal": (_opt_bool(), False),
                      "feature_map": (_opt_enum("elu", "relu", "favor"), "elu"),
                      "n_features": (_opt_int(1, 65536), 64),
                      "algorithm": (_opt_enum("auto", "fft", "direct"), "auto")}),  # C-side only: same math
    "cosformer": ("token", {"n_heads": (_opt_int(1), 4), "causal": (_opt_bool(), False)}),
    "probsparse": ("token", {"n_heads": (_opt_int(1), 4), "causal": (_opt_bool(), False),
                             "factor": (_opt_int(1, 1000), 5), "mix": (_opt_bool(), False)}),
    "lut": ("channel", {"tau": (_opt_int(1, 16), 8), "score": (_opt_enum("paper", "code"), "paper"),
                        "ffn": (_opt_bool(), False)}),
    # Mamba-1 (state-spaces/mamba mamba_simple.py's options; dt_rank 0 = ceil(d_model / 16))
    "mamba": ("token", {"d_state": (_opt_int(1, 256), 16), "d_conv": (_opt_int(1, 64), 4),
                        "expand": (_opt_int(1, 64), 2), "dt_rank": (_opt_int(0, 1 << 16), 0),
                        "dt_min": (_opt_float(1e-9, 100), 1e-3), "dt_max": (_opt_float(1e-9, 100), 0.1),
                        "dt_init_floor": (_opt_float(0, 100), 1e-4), "bidirectional": (_opt_bool(), False)}),
    # recurrent / state-space mixers (causal)
    "s4d": ("token", {"d_state": (_opt_int(2, 1024), 64), "dt_min": (_opt_float(1e-8, 10), 0.001),
                      "dt_max": (_opt_float(1e-8, 10), 0.1), "bidirectional": (_opt_bool(), False)}),
    "deltanet": ("token", {"n_heads": (_opt_int(1, 4096), 4), "causal": (_opt_bool(), True),
                           "chunk_size": (_opt_int(1, 4096), 64)}),
    # depth-wise convolution along the tokens (nn.Conv1d(d, d, K, groups=d), zero padding)
    "dwconv": ("token", {"kernel_size": (_opt_int(1, 4096), 7), "causal": (_opt_bool(), False)}),
}
# ParaRNN cells (diagonal state weights; Newton-parallel in C, a plain loop here) and the dense
# nn.GRU / nn.LSTM; all causal only (no "causal" option)
_PARARNN_OPTS = {"heads": (_opt_int(1, 4096), 2), "hidden": (_opt_int(0, 1 << 16), 0),
                 "solver": (_opt_enum("newton", "sequential"), "newton"),
                 "newton_iters": (_opt_int(1, 1000), 3), "newton_tol": (_opt_float(0.0, 1.0), 1e-5)}
MIXER_KINDS.update({"gru_diag": ("token", dict(_PARARNN_OPTS)), "lstm_cifg": ("token", dict(_PARARNN_OPTS)),
                    "gru": ("token", {"hidden": (_opt_int(0, 1 << 16), 0)}),
                    "lstm": ("token", {"hidden": (_opt_int(0, 1 << 16), 0)})})
FAVOR_ONLY_DEFAULTS = {"n_features": 64, "redraw": 0}  # linear's options that only favor uses
POSITION_KINDS = {"learned": {}, "sinusoidal": {}, "none": {},
                  # inside softmax attention (Mixer.set_positions)
                  "rope": {"base": (_opt_float(1.0, 1e9), 10000.0)},
                  "t5": {"num_buckets": (_opt_int(2, 4096), 32), "max_distance": (_opt_int(1, 1 << 24), 128)},
                  # observation times of irregular series (t2 only; layers/time_encoding.h)
                  "time": {"channel": (_opt_int(0, 100000), 0), "scale": (_opt_float(1e-9, 1e9), 1.0)}}
INPUT_KINDS = {"patches": {"patch_len": (_opt_int(1), 16), "stride": (_opt_int(1), 8)},
               "inverted": {"time_tokens": (_opt_bool(), False)},
               "pointwise": {},
               "conv_patches": {"patch_len": (_opt_int(1), 8), "stride": (_opt_int(1), 4)}}
INPUT_KINDS["tokens"] = {"vocab": (_opt_int(2, 1 << 24), 256)}  # lm
HEAD_KINDS = {"flatten": {"dropout": (_DROPOUT, 0)}, "per_token": {},
              "pool_classify": {"dropout": (_opt_float(0.0, 0.99), 0.1)}}
HEAD_KINDS["lm"] = {"tie_weights": (_opt_bool(), False), "bias": (_opt_bool(), False)}
PLACEMENTS = ("pre", "post", "peri")  # peri: metaformer only
_BLOCK_COMMON = {"repeat": (_opt_int(1), 1), "placement": (_opt_enum(*PLACEMENTS), "pre"),
                 "dropout": (_DROPOUT, 0), "norm": ("norm", {"kind": "layernorm"})}
# Default mixers (docs/config.md does not name any; these are PatchTST's): softmax / mlp.
BLOCK_KINDS = {
    "metaformer": {**_BLOCK_COMMON, "token_mixer": ("mixer:token", {"kind": "softmax"}),
                   "channel_mixer": ("mixer:channel", {"kind": "mlp"})},
    "residual": {**_BLOCK_COMMON, "mixer": ("mixer:any", {"kind": "softmax"})},
    "parallel": {**_BLOCK_COMMON, "token_mixer": ("mixer:token", {"kind": "softmax"}),
                 "channel_mixer": ("mixer:channel", {"kind": "mlp"})},
}
FINAL_NORMS = ("auto", "none") + tuple(NORM_KINDS)
TASKS = ("forecast", "classify", "lm")
MODEL_KINDS = {
    "patchtst": {"seq_len": (_opt_int(1), REQUIRED), "pred_len": (_opt_int(1), REQUIRED),
                 "n_channels": (_opt_int(1), REQUIRED), "d_model": (_opt_int(1), REQUIRED),
                 "revin": (_opt_bool(), True), "dropout": (_DROPOUT, 0),
                 "final_norm": ("final_norm", "auto"),  # canonical order as the C reader prints it
                 "input": ("part:input", {"kind": "patches"}), "positions": ("part:positions", {"kind": "learned"}),
                 "blocks": ("blocks", REQUIRED), "head": ("part:head", {"kind": "flatten"})},
    "dlinear": {"seq_len": (_opt_int(1), REQUIRED), "pred_len": (_opt_int(1), REQUIRED),
                "n_channels": (_opt_int(1), REQUIRED), "kernel_size": (_opt_int(1), 25)},
    "itransformer": {"seq_len": (_opt_int(1), REQUIRED), "pred_len": (_opt_int(1), REQUIRED),
                     "n_channels": (_opt_int(1), REQUIRED), "d_model": (_opt_int(1), 512),
                     "use_norm": (_opt_bool(), True), "dropout": (_DROPOUT, 0.1),
                     "final_norm": (_opt_enum("none", *NORM_KINDS), "layernorm"),
                     "freq": (_opt_enum("auto", "h", "t", "s", "d", "b", "w", "m"), "h"),
                     "input": ("part:input", {"kind": "inverted"}), "positions": ("part:positions", {"kind": "none"}),
                     "blocks": ("blocks", REQUIRED), "head": ("part:head", {"kind": "per_token"})},
    # main_informer.py's defaults, in the C reader's canonical order
    "informer": {"seq_len": (_opt_int(1), 96), "pred_len": (_opt_int(1), 24), "n_channels": (_opt_int(1), 7),
                 "label_len": (_opt_int(0), 48), "d_model": (_opt_int(2, 4096), 512),
                 "n_heads": (_opt_int(1), 8), "e_layers": (_opt_int(1, 16), 2), "d_layers": (_opt_int(1, 16), 1),
                 "d_ff": (_opt_int(1), 2048), "factor": (_opt_int(1, 1000), 5),
                 "dropout": (_opt_float(0.0, 0.99), 0.05), "attn": (_opt_enum("prob", "full"), "prob"),
                 "activation": (_opt_enum("gelu", "relu"), "gelu"), "distil": (_opt_bool(), True),
                 "mix": (_opt_bool(), True), "embed": (_opt_enum("timeF", "none"), "timeF"),
                 "freq": (_opt_enum("auto", "h", "t", "s", "d", "b", "w", "m"), "h")},
    # t2 (classification; tasks/classify.c fills seq_len, n_channels, n_classes from the data)
    "t2": {"seq_len": (_opt_int(1), 100), "n_channels": (_opt_int(1), 1), "n_classes": (_opt_int(2), 2),
           "d_model": (_opt_int(1, 4096), 32),
           "input": ("part:input", {"kind": "pointwise"}), "positions": ("part:positions", {"kind": "sinusoidal"}),
           "blocks": ("blocks", REQUIRED), "head": ("part:head", {"kind": "pool_classify"})},
}
# the causal language model (src/models/lm.c), in the C reader's canonical order
MODEL_KINDS["lm"] = {"seq_len": (_opt_int(1, 1 << 20), 256), "max_len": (_opt_int(0, 1 << 24), 0),
                     "d_model": (_opt_int(1, 8192), 128), "dropout": (_DROPOUT, 0),
                     "final_norm": (_opt_enum("auto", "none", "layernorm", "rmsnorm"), "auto"),
                     "input": ("part:input", {"kind": "tokens"}),
                     "positions": ("part:positions", {"kind": "learned"}),
                     "blocks": ("blocks", REQUIRED), "head": ("part:head", {"kind": "lm"})}
_PART_TABLES = {"part:input": INPUT_KINDS, "part:positions": POSITION_KINDS, "part:head": HEAD_KINDS}


def _join(path, key):
    return f"{path}.{key}" if path else key


def _options(path, obj, table, skip=()):
    """obj's options per ``table`` (defaults filled in, documented order); unknown keys are errors."""
    for k in obj:
        if k not in table and k not in skip:
            names = ", ".join(table) if table else "none"
            raise ConfigError(f"{_join(path, k)}: unknown option (options: {names})")
    out = {}
    for name, (parse, default) in table.items():
        p = _join(path, name)
        if name in obj:
            v = obj[name]
        elif default is REQUIRED:
            raise ConfigError(f"{p}: missing")
        else:
            v = default
        if callable(parse):
            out[name] = parse(p, v)
        elif parse in _SPECIAL:
            out[name] = _SPECIAL[parse](p, v)
        else:
            out[name] = _part(p, v, _PART_TABLES[parse])
    return out


def _kind(path, obj, table):
    if not isinstance(obj, dict):
        raise ConfigError(f"{path}: expected an object with a \"kind\"")
    if "kind" not in obj:
        raise ConfigError(f"{_join(path, 'kind')}: missing (one of {', '.join(table)})")
    return obj, _enum(_join(path, "kind"), obj["kind"], tuple(table))


def _part(path, obj, table):
    obj, kind = _kind(path, obj, table)
    return {"kind": kind, **_options(path, obj, table[kind], skip=("kind",))}


def _norm(path, obj):
    return _part(path, obj, NORM_KINDS)


def _mixer(slot):
    def parse(path, obj):
        obj, kind = _kind(path, obj, MIXER_KINDS)
        have, opts = MIXER_KINDS[kind]
        if slot != "any" and have not in (slot, "any"):
            ok = [k for k, (s, _) in MIXER_KINDS.items() if s in (slot, "any")]
            raise ConfigError(f"{_join(path, 'kind')}: {kind!r} is a {have} mixer, not a {slot} mixer "
                              f"(one of {', '.join(ok)})")
        out = {"kind": kind, **_options(path, obj, opts, skip=("kind",))}
        if kind == "rpe" and out["feature_map"] != "favor" and out["n_features"] != 64:
            raise ConfigError(f"{_join(path, 'n_features')}: only used with feature_map favor "
                              f"(feature_map is {out['feature_map']})")
        if kind == "linear" and out["feature_map"] != "favor":
            for k, dflt in FAVOR_ONLY_DEFAULTS.items():
                if out[k] != dflt:
                    raise ConfigError(f"{_join(path, k)}: only used with feature_map favor "
                                      f"(feature_map is {out['feature_map']})")
        if kind == "mamba" and out["dt_min"] > out["dt_max"]:
            raise ConfigError(f"{path}: dt_min: {out['dt_min']} is above dt_max {out['dt_max']}")
        return out
    return parse


def _blocks(path, v):
    if not isinstance(v, list):
        raise ConfigError(f"{path}: expected a list of blocks")
    return [_part(f"{path}[{i}]", b, BLOCK_KINDS) for i, b in enumerate(v)]


def _final_norm(path, v):
    return _enum(path, v, FINAL_NORMS)


_SPECIAL = {"norm": _norm, "mixer:token": _mixer("token"), "mixer:channel": _mixer("channel"),
            "mixer:any": _mixer("any"), "blocks": _blocks, "final_norm": _final_norm}


# format_version 1 (the flat config of checkpoints written before format_version 2)
V1_PATCHTST_KEYS = ("format_version", "model", "seq_len", "pred_len", "n_channels", "d_model", "n_heads",
                    "e_layers", "d_ff", "patch_len", "stride", "revin", "dropout", "head_dropout", "mixer",
                    "causal", "norm", "norm_place", "pos")
V1_DLINEAR_KEYS = ("format_version", "model", "seq_len", "pred_len", "n_channels", "kernel_size")
V1_PATCHTST_DEFAULTS = {"revin": True, "dropout": 0.0, "head_dropout": 0.0, "mixer": "softmax", "causal": False,
                        "norm": "layernorm", "norm_place": "post", "pos": "learned"}


def config_v1_to_v2(cfg):
    """Convert a format_version 1 config (flat: model, seq_len, pred_len, n_channels, d_model, n_heads,
    e_layers, d_ff, patch_len, stride, revin, dropout, head_dropout, mixer, causal, norm, norm_place, pos;
    dlinear: kernel_size) into the equivalent format_version 2 config, canonical.  The model is the same
    function with the same parameter names:

      PatchTST -> one metaformer entry with repeat = e_layers, placement = norm_place, dropout = dropout,
        norm {kind: norm, eps 1e-5, momentum 0.1 (batchnorm only)}, token_mixer {kind: mixer, n_heads,
        causal}, channel_mixer {mlp, d_ff, gelu, dropout}; final_norm auto (v1 had norm_f exactly for
        norm_place pre); head {flatten, dropout: head_dropout}; positions {kind: pos};
        input {patches, patch_len, stride}; revin, dropout (after the positions) as they were.
        e_layers = 0 gives no blocks, and then final_norm = the norm kind for norm_place pre (v1 still had
        norm_f there), else none.
      DLinear -> the same keys (kernel_size default 25).

    v1 defaults as the v1 twin had them: revin true, dropout 0, head_dropout 0, mixer softmax, causal
    false, norm layernorm, norm_place post, pos learned, kernel_size 25; the other keys are required.
    Unknown keys are errors.  (v1 floats written by the C side, e.g. 0.30000001192092896, come out as
    the shortest float32 decimal, 0.3.)"""
    if not isinstance(cfg, dict):
        raise ConfigError("config: expected a JSON object")
    model = cfg.get("model")
    keys = {"patchtst": V1_PATCHTST_KEYS, "dlinear": V1_DLINEAR_KEYS}.get(model)
    if keys is None:
        raise ConfigError(f"model: {json.dumps(model)} is not one of patchtst, dlinear")
    for k in cfg:
        if k not in keys:
            raise ConfigError(f"{k}: unknown key in a format_version 1 {model} config"
                              + (" (a format_version 2 config needs \"format_version\": 2)"
                                 if k in ("blocks", "input", "positions", "head", "final_norm", "task") else ""))

    def need(k):
        if k not in cfg:
            raise ConfigError(f"{k}: missing (format_version 1 config)")
        return cfg[k]

    base = {"format_version": FORMAT_VERSION, "task": "forecast", "model": model,
            "seq_len": need("seq_len"), "pred_len": need("pred_len"), "n_channels": need("n_channels")}
    if model == "dlinear":
        return canonical_config({**base, "kernel_size": cfg.get("kernel_size", 25)})
    c = {**V1_PATCHTST_DEFAULTS, **cfg}
    norm_kind = _enum("norm", c["norm"], tuple(NORM_KINDS))
    placement = _enum("norm_place", c["norm_place"], PLACEMENTS)
    norm = {"kind": norm_kind, "eps": 1e-5}
    if norm_kind == "batchnorm":
        norm["momentum"] = 0.1
    e_layers = _int("e_layers", need("e_layers"), 0)
    blocks = []
    if e_layers > 0:
        blocks.append({"kind": "metaformer", "repeat": e_layers, "placement": placement, "dropout": c["dropout"],
                       "norm": norm,
                       "token_mixer": {"kind": c["mixer"], "n_heads": need("n_heads"), "causal": c["causal"]},
                       "channel_mixer": {"kind": "mlp", "d_ff": need("d_ff"), "activation": "gelu",
                                         "dropout": c["dropout"]}})
        final_norm = "auto"
    else:
        final_norm = norm_kind if placement == "pre" else "none"
    v2 = {**base, "d_model": need("d_model"), "revin": c["revin"], "dropout": c["dropout"],
          "input": {"kind": "patches", "patch_len": need("patch_len"), "stride": need("stride")},
          "positions": {"kind": c["pos"]}, "blocks": blocks, "final_norm": final_norm,
          "head": {"kind": "flatten", "dropout": c["head_dropout"]}}
    return canonical_config(v2)


def canonical_config(cfg):
    """The canonical format_version 2 form of ``cfg`` (a dict or a JSON string), as docs/config.md
    describes and checkpoints store it: every option present with its default filled in, keys in the
    documented order (format_version, task, model, the model's options; in every part "kind" first, then
    its options in the documented order), ``repeat`` kept as written (not expanded), float options as the
    shortest float32 decimal (integral values as integers: "dropout": 0).  Unknown keys, wrong types and
    out-of-range values raise ConfigError naming the field path.  A format_version 1 config (or a flat one
    without format_version, as the v1 twin accepted) goes through config_v1_to_v2 first; any other config
    without format_version is read as the current version, as the C reader does.

    Defaults: task "forecast"; patchtst: revin true, dropout 0, input {patches, patch_len 16, stride 8},
    positions {learned}, final_norm "auto", head {flatten, dropout 0}; each block: repeat 1, placement
    "pre", dropout 0, norm {layernorm, eps 1e-5} (batchnorm also momentum 0.1), token_mixer {softmax},
    channel_mixer {mlp} (residual: mixer {softmax}); softmax/linear/cosformer: n_heads 4, causal false
    (linear also feature_map elu, n_features 64, redraw 0; the last two only with favor); mlp: d_ff
    128, activation gelu, dropout 0; dlinear: kernel_size 25.  Required: seq_len, pred_len, n_channels,
    d_model, blocks (a list; may be empty)."""
    if isinstance(cfg, (str, bytes)):
        cfg = json.loads(cfg)
    if not isinstance(cfg, dict):
        raise ConfigError("config: expected a JSON object")
    # Without format_version: the current format, as the C reader does, unless the keys are v1's
    # (a flat config from the v1 twin, which did not require the field).
    v1_keys = ("e_layers", "mixer", "norm_place", "pos", "head_dropout")
    v1_like = cfg.get("model") != "informer" and any(k in cfg for k in v1_keys)  # informer has e_layers
    fv = cfg.get("format_version", 1 if v1_like else FORMAT_VERSION)
    if isinstance(fv, bool) or fv not in (1, 2):
        raise ConfigError(f"format_version: {json.dumps(fv)} is not supported (this twin reads 1 and 2)")
    if fv == 1:
        return config_v1_to_v2(cfg)
    model = _enum("model", cfg.get("model"), tuple(MODEL_KINDS))
    out = {"format_version": FORMAT_VERSION, "task": _enum("task", cfg.get("task", "forecast"), TASKS),
           "model": model}
    out.update(_options("", cfg, MODEL_KINDS[model], skip=("format_version", "task", "model")))
    if model == "patchtst":
        _check_patchtst(out)
    elif model == "itransformer":
        _check_itransformer(out)
    elif model == "lm":
        _check_lm(out)
    elif model == "t2":
        if out["task"] != "classify":
            raise ConfigError(f"task: t2 is a classifier; its task is classify, not {out['task']!r}")
        if out["input"]["kind"] not in ("pointwise", "conv_patches") or out["head"]["kind"] != "pool_classify":
            raise ConfigError("t2: input.kind pointwise or conv_patches and head.kind pool_classify")
        if out["input"]["kind"] == "conv_patches":
            if out["input"]["patch_len"] > out["seq_len"]:
                raise ConfigError(f"input.patch_len: {out['input']['patch_len']} is longer than seq_len {out['seq_len']}")
            if out["input"]["stride"] > out["input"]["patch_len"]:
                raise ConfigError(f"input.stride: {out['input']['stride']} is longer than patch_len {out['input']['patch_len']}")
        pos = out["positions"]
        if pos["kind"] == "time":
            if pos["channel"] >= out["n_channels"]:
                raise ConfigError(f"positions.channel: {pos['channel']}, but the series have "
                                  f"{out['n_channels']} channels")
            if out["n_channels"] < 2 or out["d_model"] % 2:
                raise ConfigError("positions.kind: time positions need 2 or more channels and an even d_model")
            if pos["kind"] == "time" and out["input"]["kind"] != "pointwise":
                raise ConfigError("positions.kind: time positions give each step its observation time; "
                                  "they need input pointwise")
    elif model == "informer":
        if out["label_len"] > out["seq_len"]:
            raise ConfigError(f"label_len: {out['label_len']} is longer than seq_len {out['seq_len']}")
        if out["d_model"] % out["n_heads"]:
            raise ConfigError(f"n_heads: {out['n_heads']} does not divide d_model {out['d_model']}")
    else:
        if out["kernel_size"] % 2 == 0:
            raise ConfigError(f"kernel_size: must be odd (got {out['kernel_size']})")
    if model != "t2" and isinstance(out.get("positions"), dict) and out["positions"]["kind"] == "time":
        raise ConfigError("positions.kind: time positions encode observation times read from the input; "
                          "only model t2 takes them")
    return out


def expand_blocks(cfg):
    """Canonical config -> one dict per block (``repeat`` expanded, the key removed), in order;
    block i has the parameter prefix ``blocks.{i}``."""
    out = []
    for b in cfg["blocks"]:
        one = {k: v for k, v in b.items() if k != "repeat"}
        out += [json.loads(json.dumps(one)) for _ in range(b["repeat"])]
    return out


def final_norm_spec(cfg):
    """The final norm of a canonical patchtst config as a norm object, or None.
    auto: the last block's norm (kind and options) when that block's placement is pre or peri, else none."""
    fn = cfg["final_norm"]
    if fn == "none":
        return None
    if fn == "auto":
        blocks = expand_blocks(cfg)
        if blocks and blocks[-1]["placement"] in ("pre", "peri"):
            return dict(blocks[-1]["norm"])
        return None
    return _norm("final_norm", {"kind": fn})


def n_patches(cfg):
    """Number of patches per channel: (L + stride - patch_len) // stride + 1 (canonical v2 config)."""
    inp = cfg["input"]
    return (cfg["seq_len"] + inp["stride"] - inp["patch_len"]) // inp["stride"] + 1


def _check_patchtst(c):
    d = c["d_model"]
    if c["input"]["kind"] != "patches":
        raise ConfigError(f"input.kind: patchtst reads its input as patches, not {c['input']['kind']!r}")
    if c["head"]["kind"] != "flatten":
        raise ConfigError(f"head.kind: patchtst's head is flatten, not {c['head']['kind']!r}")
    if n_patches(c) < 1:
        raise ConfigError(f"input.patch_len: {c['input']['patch_len']} too long for seq_len {c['seq_len']} "
                          f"and stride {c['input']['stride']}")
    if c["positions"]["kind"] == "sinusoidal" and d % 2:
        raise ConfigError(f"positions.kind: sinusoidal positions need an even d_model (got {d})")
    for i, b in enumerate(c["blocks"]):
        for slot in ("token_mixer", "channel_mixer", "mixer"):
            m = b.get(slot)
            if m and "n_heads" in m and d % m["n_heads"]:
                raise ConfigError(f"blocks[{i}].{slot}.n_heads: {m['n_heads']} must divide d_model {d}")
            if m:
                _check_efficient_mixer(f"blocks[{i}].{slot}", m, n_patches(c))


# token mixers with a causal streaming form (the C mixers whose step works when causal)
LM_CAUSAL_MIXERS = ("softmax", "linear", "local", "ls", "rpe", "cosformer", "identity")


def _check_lm(c):
    """The lm model's refusals, as src/models/lm.c words them."""
    if c["task"] != "lm":
        raise ConfigError(f"task: the lm model is trained by task lm, not {c['task']!r}")
    if c["input"]["kind"] != "tokens":
        raise ConfigError(f"input.kind: lm reads token ids (tokens), not {c['input']['kind']!r}")
    if c["head"]["kind"] != "lm":
        raise ConfigError(f"head.kind: lm's head is lm, not {c['head']['kind']!r}")
    T, max_len = c["seq_len"], c["max_len"] or c["seq_len"]
    if max_len < T:
        raise ConfigError(f"max_len: {max_len} is shorter than seq_len {T}")
    if c["positions"]["kind"] == "learned" and max_len > T:
        raise ConfigError("max_len: learned positions are trained for seq_len positions only")
    for i, b in enumerate(c["blocks"]):
        for slot in ("token_mixer", "channel_mixer", "mixer"):
            m = b.get(slot)
            if not m or MIXER_KINDS[m["kind"]][0] == "channel":
                continue
            if m["kind"] not in LM_CAUSAL_MIXERS or not m.get("causal", True):
                raise ConfigError(f"blocks[{i}].{slot}: mixer {m['kind']!r} cannot stream (lm needs "
                                  "causal mixers)")
            if "n_heads" in m and c["d_model"] % m["n_heads"]:
                raise ConfigError(f"blocks[{i}].{slot}.n_heads: {m['n_heads']} must divide d_model")


def _check_efficient_mixer(path, m, max_T):
    """The options of local / linformer / ls / fastformer that depend on the sequence length or
    on each other, refused as the C reader refuses them (same wording)."""
    kind = m["kind"]
    if kind == "ls" and m["local_heads"] >= m["n_heads"]:
        raise ConfigError(f"{path}.local_heads: {m['local_heads']} leaves no global head (n_heads "
                          f"{m['n_heads']}); use at most {m['n_heads'] - 1}, or the local mixer")
    if kind in ("local", "ls") and m["window"] >= max_T - 1:
        raise ConfigError(f"{path}.window: {m['window']} covers the whole sequence ({max_T} tokens: every "
                          f"key is within {max_T - 1} positions); use a window below {max_T - 1}, or the "
                          f"softmax mixer")
    if kind == "linformer" and m["causal"]:
        raise ConfigError(f"{path}.causal: linformer has no causal form (each projected key mixes the whole "
                          f"sequence); use softmax, linear or local for causal models")
    if kind == "linformer" and m["k"] > max_T:
        raise ConfigError(f"{path}.k: {m['k']} exceeds the sequence length {max_T} (projecting to more rows "
                          f"than there are tokens compresses nothing)")
    if kind == "fastformer" and m["causal"]:
        raise ConfigError(f"{path}.causal: fastformer has no causal form (its global query and key pool "
                          f"the whole sequence); use softmax, linear or local for causal models")
    if kind == "s4d" and m["d_state"] % 2:
        raise ConfigError(f"{path}: d_state: must be even (N/2 complex modes; got {m['d_state']})")
    if kind == "s4d" and m["dt_min"] > m["dt_max"]:
        raise ConfigError(f"{path}: dt_min: {m['dt_min']:g} exceeds dt_max {m['dt_max']:g}")
    if kind == "deltanet" and not m["causal"]:
        raise ConfigError(f"{path}: causal: deltanet is causal only (the delta rule has no bidirectional form)")


def _check_itransformer(c):
    if c["input"]["kind"] != "inverted":
        raise ConfigError(f"input.kind: itransformer embeds each variate as one token (inverted), "
                          f"not {c['input']['kind']!r}")
    if c["input"]["time_tokens"] and c["freq"] == "auto":
        raise ConfigError("freq: 'auto' is resolved from the data when training; a model needs a letter")
    if c["head"]["kind"] != "per_token":
        raise ConfigError(f"head.kind: itransformer projects each token (per_token), not {c['head']['kind']!r}")
    d = c["d_model"]
    if c["positions"]["kind"] == "sinusoidal" and d % 2:
        raise ConfigError(f"positions.kind: sinusoidal positions need an even d_model (got {d})")
    for i, b in enumerate(c["blocks"]):
        for slot in ("token_mixer", "channel_mixer", "mixer"):
            m = b.get(slot)
            if m and "n_heads" in m and d % m["n_heads"]:
                raise ConfigError(f"blocks[{i}].{slot}.n_heads: {m['n_heads']} must divide d_model {d}")


def is_batchnorm(cfg):
    """Whether a model config has any batchnorm (blocks or final norm): such a model has running
    statistics and behaves differently in train and eval mode."""
    c = canonical_config(cfg)
    if c["model"] == "informer":  # the distilling layers' BatchNorm
        return c["distil"] and c["e_layers"] > 1
    if c["model"] != "patchtst":
        return False
    fn = final_norm_spec(c)
    return any(b["norm"]["kind"] == "batchnorm" for b in c["blocks"]) or (fn is not None and
                                                                          fn["kind"] == "batchnorm")


# --------------------------------------------------------------------------
# building blocks
# --------------------------------------------------------------------------


class RMSNorm(nn.Module):
    """y = x / sqrt(mean(x^2) + eps) * weight (no bias, no mean subtraction)."""

    def __init__(self, d, eps=NORM_EPS):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


class TokenBatchNorm(nn.BatchNorm1d):
    """Official PatchTST norm='BatchNorm': Sequential(Transpose(1,2), BatchNorm1d(d), Transpose(1,2))
    on x [B*C, N, d]: per-feature statistics over all B*C*N tokens.  nn.BatchNorm1d defaults
    (eps 1e-5, momentum 0.1, affine, track_running_stats) unless the config says otherwise.
    Subclassing BatchNorm1d keeps the state_dict names flat: <name>.weight, .bias, .running_mean,
    .running_var, .num_batches_tracked.
    Train mode: normalise with the batch mean and biased variance, and update
    running_mean = (1-m) running_mean + m mean, running_var = (1-m) running_var + m var * n/(n-1)
    (n = B*C*N, m = momentum), num_batches_tracked += 1.  Eval mode: normalise with the running
    statistics."""

    def __init__(self, d, eps=NORM_EPS, momentum=0.1):
        super().__init__(d, eps=eps, momentum=momentum)

    def forward(self, x):
        return super().forward(x.transpose(1, 2)).transpose(1, 2)


def make_norm(spec, d):
    """spec: a norm object {"kind", "eps", ("momentum")} (defaults filled in) or just the kind."""
    spec = _norm("norm", {"kind": spec} if isinstance(spec, str) else spec)
    kind = spec["kind"]
    if kind == "layernorm":
        return nn.LayerNorm(d, eps=spec["eps"])
    if kind == "rmsnorm":
        return RMSNorm(d, eps=spec["eps"])
    return TokenBatchNorm(d, eps=spec["eps"], momentum=spec["momentum"])


def elu_feature_map(x):
    return F.elu(x) + 1.0


def linear_attention(q, k, v, causal):
    """q, k, v: [B, H, N, Dh].  out_i = phi(q_i)^T S_i / (phi(q_i) . z_i + eps) with
    S_i = sum_j phi(k_j) v_j^T, z_i = sum_j phi(k_j), sums over all j (or j <= i if causal)."""
    fq, fk = elu_feature_map(q), elu_feature_map(k)
    if causal:
        kv = torch.cumsum(fk.unsqueeze(-1) * v.unsqueeze(-2), dim=2)  # [B,H,N,Dh,Dh]
        z = torch.cumsum(fk, dim=2)  # [B,H,N,Dh]
        num = torch.einsum("bhnd,bhnde->bhne", fq, kv)
        den = (fq * z).sum(-1, keepdim=True)
    else:
        kv = torch.einsum("bhnd,bhne->bhde", fk, v)  # [B,H,Dh,Dh]
        z = fk.sum(dim=2)  # [B,H,Dh]
        num = torch.einsum("bhnd,bhde->bhne", fq, kv)
        den = torch.einsum("bhnd,bhd->bhn", fq, z).unsqueeze(-1)
    return num / (den + LINATTN_EPS)


def linear_attention_quadratic(q, k, v, causal):
    """Same function as linear_attention via the explicit (masked) N x N kernel matrix.
    Used only to check the linear-time formula."""
    a = elu_feature_map(q) @ elu_feature_map(k).transpose(-2, -1)  # [B,H,N,N]
    if causal:
        n = a.shape[-1]
        a = a * torch.tril(torch.ones(n, n, dtype=a.dtype, device=a.device))
    return (a @ v) / (a.sum(-1, keepdim=True) + LINATTN_EPS)


# ---- feature-map linear attention (C: kernels/feature_attention.h, kernels/feature_maps.h) ----

FAVOR_STABILIZER = 1e-6
FAVOR_CAUSAL_HEADROOM = 30.0
COSFORMER_EPS = 1e-6


def favor_projection(m, d, generator=None, dtype=torch.float32):
    """FAVOR+ projection [m, d] as google-research's create_projection_matrix (scaling 0): stacked
    blocks, each the transposed Q of a d x d Gaussian matrix's QR (the last block truncated; Q's
    signs fixed, see below), rows
    scaled by chi(d) lengths (norms of Gaussian d-vectors).  The C model draws its own (from its
    init seed); fixtures store the twin's draw and the C side loads it."""
    blocks = []
    for _ in range((m + d - 1) // d):
        g = torch.randn(d, d, generator=generator, dtype=torch.float64)
        q, r = torch.linalg.qr(g)
        # signs such that R's diagonal is positive: Q is then Haar-distributed (uniform directions,
        # as create_projection_matrix's docstring intends; the raw Householder Q is not: its
        # entries have mean ~ -0.07 at d = 8).  The C draw (Gram-Schmidt) does the same.
        q = q * torch.sign(torch.diagonal(r))[None, :]
        blocks.append(q.T)
    w = torch.cat(blocks, 0)[:m]
    lengths = torch.randn(m, d, generator=generator, dtype=torch.float64).norm(dim=1)
    return (lengths[:, None] * w).to(dtype)


def favor_features(x, w, role, l2=False):
    """FAVOR+ positive random features (softmax_kernel_transformation).  x [..., n, D], w [M, D].
    role "query": stabiliser = max over the row's features; "key": max over all positions and
    features (of x's last two dims); "key_causal": max(0, max_m |w_m|^2/2 - 30), from w alone.
    The gradient flows through the query and key maxima (as the official reduce_max; the C kernel
    too); key_causal's bound depends on the buffer w only.  l2: x / max(|x|, 1e-12) first."""
    d, m = x.shape[-1], w.shape[0]
    if l2:
        x = F.normalize(x, dim=-1, eps=1e-12)
    x = x * d ** -0.25
    u = torch.einsum("...nd,md->...nm", x, w)
    diag = (x * x).sum(-1, keepdim=True) / 2
    if role == "query":
        c = u.amax(-1, keepdim=True)
    elif role == "key":
        c = u.amax((-2, -1), keepdim=True)
    else:
        c = ((w * w).sum(-1).max() / 2 - FAVOR_CAUSAL_HEADROOM).clamp_min(0).detach()
    return m ** -0.5 * (torch.exp(u - diag - c) + FAVOR_STABILIZER)


def cosformer_features(x, length):
    """cosFormer (cosformer.py): relu(x) re-weighted by sin and cos of pi/2 * i / length (1-based
    positions i), concatenated -> [..., n, 2 Dh].  Angles in float64, then x's dtype."""
    n = x.shape[-2]
    th = math.pi / 2 * torch.arange(1, n + 1, dtype=torch.float64) / length
    sn, cs = (t.to(x.dtype)[:, None] for t in (torch.sin(th), torch.cos(th)))
    r = F.relu(x)
    return torch.cat([r * sn, r * cs], -1)


def feature_attention(fq, fk, v, causal, clamp, eps):
    """fq, fk [B, H, N, M], v [B, H, N, Dv]: out_i = fq_i^T S_i / N(fq_i . z_i), S, z summed over
    j (j <= i if causal); N(s) = max(s, eps) (clamp, cosFormer) or s + eps."""
    if causal:
        kv = torch.cumsum(fk.unsqueeze(-1) * v.unsqueeze(-2), dim=2)  # [B,H,N,M,Dv]
        z = torch.cumsum(fk, dim=2)
        num = torch.einsum("bhnm,bhnme->bhne", fq, kv)
        den = (fq * z).sum(-1, keepdim=True)
    else:
        kv = torch.einsum("bhnm,bhne->bhme", fk, v)
        z = fk.sum(dim=2)
        num = torch.einsum("bhnm,bhme->bhne", fq, kv)
        den = torch.einsum("bhnm,bhm->bhn", fq, z).unsqueeze(-1)
    return num / (den.clamp_min(eps) if clamp else den + eps)


def feature_attention_quadratic(fq, fk, v, causal, clamp, eps):
    """Same as feature_attention via the explicit (masked) N x N matrix (cosFormer's left_product)."""
    a = fq @ fk.transpose(-2, -1)
    if causal:
        n = a.shape[-1]
        a = a * torch.tril(torch.ones(n, n, dtype=a.dtype, device=a.device))
    s = a.sum(-1, keepdim=True)
    return (a @ v) / (s.clamp_min(eps) if clamp else s + eps)


def t5_bucket(rel, bidirectional, num_buckets, max_distance):
    """T5's _relative_position_bucket for one offset rel = key - query position; the log in double
    (as the C kernel; T5 takes it in float32)."""
    ret = 0
    if bidirectional:
        num_buckets //= 2
        ret += num_buckets if rel > 0 else 0
        n = abs(rel)
    else:
        n = max(-rel, 0)
    max_exact = num_buckets // 2
    if n < max_exact:
        return ret + n
    large = max_exact + int(math.log(n / max_exact) / math.log(max_distance / max_exact) * (num_buckets - max_exact))
    return ret + min(large, num_buckets - 1)


def rope_rotate(x, base):
    """Rotary positions, rotate-half layout (GPT-NeoX / LLaMA): x [.., n, dh], token p rotated by
    p * base^(-2i/dh) on the pairs (i, i + dh/2); angles, cos and sin in float64."""
    n, dh = x.shape[-2], x.shape[-1]
    half = dh // 2
    ang = torch.arange(n, dtype=torch.float64)[:, None] * \
        torch.tensor([base ** (-2.0 * i / dh) for i in range(half)], dtype=torch.float64)[None, :]
    c, s = torch.cos(ang).to(x.dtype), torch.sin(ang).to(x.dtype)
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat([x1 * c - x2 * s, x2 * c + x1 * s], dim=-1)


def softmax_attention(q, k, v, causal, bias=None, dropout=None):
    """softmax(q k^T / sqrt(Dh) [+ bias] [causal mask]) v; dropout (an nn.Dropout, or None) on the
    weights, as the official iTransformer / Informer attention: active only in training mode."""
    scale = q.shape[-1] ** -0.5
    s = (q @ k.transpose(-2, -1)) * scale
    if bias is not None:
        s = s + bias
    if causal:
        n = s.shape[-1]
        mask = torch.ones(n, n, dtype=torch.bool, device=s.device).triu(1)
        s = s.masked_fill(mask, float("-inf"))
    a = torch.softmax(s, dim=-1)
    return (dropout(a) if dropout is not None else a) @ v


class Mixer(nn.Module):
    """Attention token mixer (kind softmax, linear or cosformer): parameters qkv [3d, d] (+bias),
    out [d, d] (+bias).  linear with feature_map favor also has the buffer projection
    [n_features, d/H] (and redraw_state [4] when redraw > 0; the twin never redraws: it runs the
    fixtures' single forward with the stored projection).  cosformer causal re-weights with the
    model's longest sequence, max_T (PatchTST: its number of patches; set by the model), as the C
    mixer does; bidirectional with the sequence length."""

    def __init__(self, d, n_heads, kind, causal, feature_map="elu", n_features=64, redraw=0, attn_dropout=0.0):
        super().__init__()
        # softmax: dropout on the attention weights while training (the C mixer's attn_dropout)
        self.attn_drop = nn.Dropout(attn_dropout) if attn_dropout > 0 else None
        if d % n_heads:
            raise ValueError("d_model must be divisible by n_heads")
        if kind not in ("softmax", "linear", "cosformer"):
            raise ValueError(f"unknown mixer {kind!r}")
        self.d, self.h, self.kind, self.causal = d, n_heads, kind, causal
        self.feature_map = feature_map if kind == "linear" else None
        self.max_T = None
        self.rope_base, self.t5 = None, None
        self.qkv = nn.Linear(d, 3 * d)
        self.out = nn.Linear(d, d)
        if self.feature_map == "favor":
            self.register_buffer("projection", favor_projection(n_features, d // n_heads))
            if redraw > 0:
                self.register_buffer("redraw_state", torch.zeros(4))

    def set_positions(self, pos):
        """The model's positions object when it acts inside attention: rope (rotate q and k) or t5
        (relative_attention_bias [num_buckets, H], init N(0, d^-1/2), added to the logits)."""
        if pos["kind"] == "rope":
            if (self.d // self.h) % 2:
                raise ConfigError("positions: rope needs an even head width")
            self.rope_base = pos["base"]
        elif pos["kind"] == "t5":
            self.t5 = (pos["num_buckets"], pos["max_distance"])
            self.relative_attention_bias = nn.Parameter(torch.randn(pos["num_buckets"], self.h) * self.d ** -0.5)

    def forward(self, x):
        b, n, d = x.shape
        h, dh = self.h, d // self.h
        qkv = self.qkv(x)
        q, k, v = (qkv[:, :, i * d:(i + 1) * d].reshape(b, n, h, dh).transpose(1, 2) for i in range(3))
        if self.rope_base is not None:
            q, k = rope_rotate(q, self.rope_base), rope_rotate(k, self.rope_base)
        if self.kind == "softmax" and self.t5 is not None:
            nb, maxd = self.t5
            idx = torch.tensor([[t5_bucket(j - i, not self.causal, nb, maxd) for j in range(n)] for i in range(n)])
            o = softmax_attention(q, k, v, self.causal, self.relative_attention_bias[idx].permute(2, 0, 1),
                                  self.attn_drop)
        elif self.kind == "softmax":
            o = softmax_attention(q, k, v, self.causal, dropout=self.attn_drop)
        elif self.kind == "linear" and self.feature_map == "elu":
            o = linear_attention(q, k, v, self.causal)
        elif self.kind == "linear" and self.feature_map == "relu":
            o = feature_attention(F.relu(q), F.relu(k), v, self.causal, False, LINATTN_EPS)
        elif self.kind == "linear":  # favor: no eps (every feature is > 0), as favor_attention
            w = self.projection.to(q.dtype)
            fq = favor_features(q, w, "query")
            fk = favor_features(k, w, "key_causal" if self.causal else "key")
            o = feature_attention(fq, fk, v, self.causal, False, 0.0)
        else:
            if self.causal and self.max_T is None:
                raise ValueError("a causal cosformer needs max_T (the model sets it)")
            length = self.max_T if self.causal else n
            o = feature_attention(cosformer_features(q, length), cosformer_features(k, length), v,
                                  self.causal, True, COSFORMER_EPS)
        o = o.transpose(1, 2).reshape(b, n, d)
        return self.out(o)


def band_mask(n, window, causal, device=None):
    """[n, n] bool: query i may see key j (|i - j| <= window; causal: also j <= i)."""
    i = torch.arange(n, device=device)[:, None]
    j = torch.arange(n, device=device)[None, :]
    m = (i - j).abs() <= window
    return m & (j <= i) if causal else m


def masked_softmax_attention(q, k, v, mask):
    """softmax(q k^T / sqrt(Dh) with -inf where mask is False) v; q, k, v [B, H, N, Dh]."""
    s = (q @ k.transpose(-2, -1)) * q.shape[-1] ** -0.5
    return torch.softmax(s.masked_fill(~mask, float("-inf")), dim=-1) @ v


def _split_heads(t, h):
    b, n, d = t.shape
    return t.reshape(b, n, h, d // h).transpose(1, 2)


def _merge_heads(t):
    b, h, n, dh = t.shape
    return t.transpose(1, 2).reshape(b, n, h * dh)


class LocalAttention(nn.Module):
    """Token mixer local: sliding-window softmax attention, query i sees keys |i - j| <= window (causal:
    i - window <= j <= i).  Same parameters as softmax (qkv [3d, d], out [d, d]).  The reference is the
    full score matrix with a band mask (the C kernel never forms it)."""

    def __init__(self, d, spec, max_T=None):
        super().__init__()
        self.h, self.causal, self.window = spec["n_heads"], bool(spec["causal"]), spec["window"]
        self.qkv = nn.Linear(d, 3 * d)
        self.out = nn.Linear(d, d)

    def forward(self, x):
        d = x.shape[-1]
        q, k, v = (_split_heads(t, self.h) for t in self.qkv(x).split(d, dim=-1))
        o = masked_softmax_attention(q, k, v, band_mask(x.shape[1], self.window, self.causal, x.device))
        return self.out(_merge_heads(o))


class Fastformer(nn.Module):
    """Token mixer fastformer (Wu et al. 2021): additive attention.  q | k | v = qkv(x);
    alpha = softmax_i(query_att(q_i) / sqrt(Dh)) per head, gq = sum_i alpha_i q_i (per head's columns);
    p_i = gq * k_i; beta = softmax_i(key_att(p_i) / sqrt(Dh)), gk = sum_i beta_i p_i; u_i = gk * v_i;
    y = out(transform(u) + q).  query_att / key_att are Linear(d, H) over the whole d-wide vector, as
    in the official FastSelfAttention; values are their own projection (the official code reuses the
    query).  Bidirectional only."""

    def __init__(self, d, spec, max_T=None):
        super().__init__()
        self.h = spec["n_heads"]
        self.qkv = nn.Linear(d, 3 * d)
        self.out = nn.Linear(d, d)
        self.query_att = nn.Linear(d, self.h)
        self.key_att = nn.Linear(d, self.h)
        self.transform = nn.Linear(d, d)

    def _pool(self, att, z):
        """sum_i softmax_i(att(z_i) / sqrt(Dh))[h] z_i[head h columns] -> [B, 1, d]"""
        b, n, d = z.shape
        w = torch.softmax(att(z) * (d // self.h) ** -0.5, dim=1)  # [B, N, H]
        return torch.einsum("bnh,bnhe->bhe", w, z.reshape(b, n, self.h, d // self.h)).reshape(b, 1, d)

    def forward(self, x):
        q, k, v = self.qkv(x).split(x.shape[-1], dim=-1)
        p = self._pool(self.query_att, q) * k
        u = self._pool(self.key_att, p) * v
        return self.out(self.transform(u) + q)


class Linformer(nn.Module):
    """Token mixer linformer (Wang et al. 2020): softmax attention of the queries over K' = E[:, :N] K and
    V' = F[:, :N] V (k rows each), E = proj_k, F = proj_v [k, max_T] (F = E when share_kv), the first N
    columns for a sequence of N tokens.  Same qkv / out as softmax.  Bidirectional only."""

    def __init__(self, d, spec, max_T):
        super().__init__()
        if max_T is None:
            raise ValueError("linformer needs the sequence length max_T")
        self.h, self.k, self.share_kv = spec["n_heads"], spec["k"], bool(spec["share_kv"])
        self.qkv = nn.Linear(d, 3 * d)
        self.out = nn.Linear(d, d)
        r = self.k ** -0.5
        self.proj_k = nn.Parameter(torch.empty(self.k, max_T).uniform_(-r, r))
        self.proj_v = None if self.share_kv else nn.Parameter(torch.empty(self.k, max_T).uniform_(-r, r))

    def forward(self, x):
        n, d = x.shape[1], x.shape[2]
        q, k, v = self.qkv(x).split(d, dim=-1)
        e = self.proj_k[:, :n]
        f = e if self.share_kv else self.proj_v[:, :n]
        kp, vp = e @ k, f @ v  # [B, k, d]
        s = (_split_heads(q, self.h) @ _split_heads(kp, self.h).transpose(-2, -1)) * (d // self.h) ** -0.5
        o = torch.softmax(s, dim=-1) @ _split_heads(vp, self.h)
        return self.out(_merge_heads(o))


class LSAttention(nn.Module):
    """Token mixer ls (long-short, heads split): the first local_heads heads attend within the window
    (as local), the others to the whole sequence (as softmax; causal masks both).  Same qkv / out as
    softmax.  Not the paper's joint window + dynamic-projection softmax with DualLN (docs/config.md)."""

    def __init__(self, d, spec, max_T=None):
        super().__init__()
        self.h, self.causal, self.window = spec["n_heads"], bool(spec["causal"]), spec["window"]
        self.local_heads = spec["local_heads"]
        self.qkv = nn.Linear(d, 3 * d)
        self.out = nn.Linear(d, d)

    def forward(self, x):
        n, d = x.shape[1], x.shape[2]
        q, k, v = (_split_heads(t, self.h) for t in self.qkv(x).split(d, dim=-1))
        local = band_mask(n, self.window, self.causal, x.device)
        full = band_mask(n, n, self.causal, x.device)
        mask = torch.stack([local if h < self.local_heads else full for h in range(self.h)])  # [H, N, N]
        return self.out(_merge_heads(masked_softmax_attention(q, k, v, mask)))


EFFICIENT_MIXERS = {"local": LocalAttention, "fastformer": Fastformer, "linformer": Linformer,
                    "ls": LSAttention}

class Mamba(nn.Module):
    """Token mixer "mamba": the Mamba-1 mixer written from its equations (Gu & Dao 2023) with
    state-spaces/mamba's parameter names and initialisation (mamba_simple.py), plain PyTorch and a
    sequential scan (selective_scan_ref's recurrence, no mamba_ssm import):
      [x | z] = in_proj(u); x = silu(conv1d(x)[:L]) (causal depth-wise); [dt | B | C] = x_proj(x);
      delta = softplus(dt_proj(dt)); h_t = exp(delta_t A) h_{t-1} + delta_t B_t x_t, A = -exp(A_log);
      y = (C_t . h_t + D x_t) * silu(z); out = out_proj(y).
    bidirectional: a second Mamba `bwd` over the reversed sequence, its output reversed back and added
    (S-Mamba's Mamba(x) + Mamba_r(x.flip(1)).flip(1))."""

    def __init__(self, d, spec, max_T=None, _second=False):
        super().__init__()
        self.N, self.K = spec["d_state"], spec["d_conv"]
        self.Di = spec["expand"] * d
        self.R = spec["dt_rank"] or math.ceil(d / 16)
        Di, N, K, R = self.Di, self.N, self.K, self.R
        self.in_proj = nn.Linear(d, 2 * Di, bias=False)
        self.conv1d = nn.Conv1d(Di, Di, K, groups=Di, padding=K - 1, bias=True)
        self.x_proj = nn.Linear(Di, R + 2 * N, bias=False)
        self.dt_proj = nn.Linear(R, Di, bias=True)
        with torch.no_grad():
            s = R ** -0.5
            self.dt_proj.weight.uniform_(-s, s)
            lo, hi = math.log(spec["dt_min"]), math.log(spec["dt_max"])
            dt = torch.exp(torch.rand(Di) * (hi - lo) + lo).clamp(min=spec["dt_init_floor"])
            self.dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))
        self.A_log = nn.Parameter(torch.log(torch.arange(1, N + 1, dtype=torch.float32)).repeat(Di, 1))
        self.D = nn.Parameter(torch.ones(Di))
        self.out_proj = nn.Linear(Di, d, bias=False)
        self.bwd = Mamba(d, spec, max_T, True) if spec["bidirectional"] and not _second else None

    def one_direction(self, x):
        L = x.shape[1]
        xi, z = self.in_proj(x).chunk(2, dim=-1)
        u = F.silu(self.conv1d(xi.transpose(1, 2))[..., :L].transpose(1, 2))
        dt, Bm, Cm = self.x_proj(u).split([self.R, self.N, self.N], dim=-1)
        delta = F.softplus(self.dt_proj(dt))  # [B, L, Di]
        A = -torch.exp(self.A_log)  # [Di, N]
        h = x.new_zeros(x.shape[0], self.Di, self.N)
        ys = []
        for t in range(L):
            dl = delta[:, t, :, None]
            h = torch.exp(dl * A) * h + dl * Bm[:, t, None, :] * u[:, t, :, None]
            ys.append((h * Cm[:, t, None, :]).sum(-1))
        y = (torch.stack(ys, dim=1) + u * self.D) * F.silu(z)
        return self.out_proj(y)

    def forward(self, x):
        y = self.one_direction(x)
        if self.bwd is not None:
            y = y + self.bwd.one_direction(x.flip(1)).flip(1)
        return y



class FFN(nn.Module):
    """Channel mixer mlp: fc2(dropout(act(fc1(x)))), act = GELU (erf) or ReLU."""

    def __init__(self, d, d_ff, dropout, activation="gelu"):
        super().__init__()
        self.fc1 = nn.Linear(d, d_ff)
        if activation == "gelu":
            self.act = nn.GELU()
        elif activation == "relu":
            self.act = nn.ReLU()
        else:
            raise ValueError(f"unknown activation {activation!r}")
        self.drop = nn.Dropout(dropout)
        self.fc2 = nn.Linear(d_ff, d)

    def forward(self, x):
        return self.fc2(self.drop(self.act(self.fc1(x))))


class GLU(nn.Module):
    """Channel mixer glu (Shazeer 2020): fc2(dropout(act(gate) * value)) with [gate | value] = fc1(x)
    (fc1 has 2*d_ff outputs, the gate first); act = SiLU (SwiGLU) or GELU, erf form (GEGLU)."""

    def __init__(self, d, d_ff, dropout, activation="silu"):
        super().__init__()
        self.d_ff = d_ff
        self.fc1 = nn.Linear(d, 2 * d_ff)
        if activation == "silu":
            self.act = nn.SiLU()
        elif activation == "gelu":
            self.act = nn.GELU()
        else:
            raise ValueError(f"unknown activation {activation!r}")
        self.drop = nn.Dropout(dropout)
        self.fc2 = nn.Linear(d_ff, d)

    def forward(self, x):
        gate, value = self.fc1(x).split(self.d_ff, dim=-1)
        return self.fc2(self.drop(self.act(gate) * value))


class RPEMixer(nn.Module):
    """Token mixer rpe: kernelized attention with a learned relative-position bias (Luo et al. 2021),
    the naive O(N^2) form: per head, with phi = elu + 1 or relu on q and k,
      w_ij = exp(rpe_bias[h, j - i + max_t - 1]) * phi(q_i) . phi(k_j)   (causal: j <= i only)
      o_i = sum_j w_ij v_j / (sum_j w_ij + LINATTN_EPS)
    Parameters qkv [3d, d], out [d, d] (as Mixer), rpe_bias [H, 2*max_t - 1] (init 0); max_t is the
    number of tokens the model runs (PatchTST: its patches). The C mixer computes the same sums with
    FFTs."""

    def __init__(self, d, n_heads, causal, feature_map, max_t, n_features=64):
        super().__init__()
        if d % n_heads:
            raise ValueError("d_model must be divisible by n_heads")
        if max_t is None or max_t < 1:
            raise ValueError("rpe needs the sequence length (max_t)")
        self.d, self.h, self.causal, self.feature_map, self.max_t = d, n_heads, causal, feature_map, max_t
        self.qkv = nn.Linear(d, 3 * d)
        self.out = nn.Linear(d, d)
        self.rpe_bias = nn.Parameter(torch.zeros(n_heads, 2 * max_t - 1))
        if feature_map == "favor":  # FAVOR+ on l2-normalised q, k (the paper's "stable" variant)
            self.register_buffer("projection", favor_projection(n_features, d // n_heads))

    def phi(self, x, role):
        if self.feature_map == "favor":
            return favor_features(x, self.projection.to(x.dtype), role, l2=True)
        return elu_feature_map(x) if self.feature_map == "elu" else F.relu(x)

    def forward(self, x):
        b, n, d = x.shape
        h, dh = self.h, d // self.h
        qkv = self.qkv(x)
        q, k, v = (qkv[:, :, i * d:(i + 1) * d].reshape(b, n, h, dh).transpose(1, 2) for i in range(3))
        pos = torch.arange(n, device=x.device)
        offset = pos[None, :] - pos[:, None] + self.max_t - 1  # [i, j] -> j - i + max_t - 1
        fk = self.phi(k, "key_causal" if self.causal else "key")
        w = (self.phi(q, "query") @ fk.transpose(-2, -1)) * torch.exp(self.rpe_bias)[:, offset]
        if self.causal:
            w = w * torch.tril(torch.ones(n, n, dtype=w.dtype, device=w.device))
        o = (w @ v) / (w.sum(-1, keepdim=True) + LINATTN_EPS)
        return self.out(o.transpose(1, 2).reshape(b, n, d))


class MemoryLayer(nn.Module):
    """MemoryFormer's Memory Layer without a hashing projection (C0-Design/MemoryFormer memory.py with
    remove_projection): x [.., K*tau] -> K chunks z_k; bucket h_k = the sign bits (z >= 0 -> 1, first
    element most significant); p_k = prod_i sigmoid(2|z_i|) (the softmax over all 2^tau buckets of
    <z_k, s> at the chosen one; score "code" multiplies by ||z_k||_1 as compute_code_score_torch);
    y = sum_k p_k tables[k * 2^tau + h_k] + bias.  tables [K * 2^tau, dout], bias [dout]."""

    def __init__(self, din, dout, tau, score):
        super().__init__()
        if din % tau:
            raise ValueError("the input width must be a multiple of tau")
        self.K, self.tau, self.dout, self.score = din // tau, tau, dout, score
        self.tables = nn.Parameter(0.02 * torch.randn(self.K * 2 ** tau, dout))
        self.bias = nn.Parameter(0.001 * torch.randn(dout))

    def forward(self, x):
        z = x.reshape(*x.shape[:-1], self.K, self.tau)
        weights = 2 ** torch.arange(self.tau - 1, -1, -1, device=x.device)
        code = ((z >= 0).long() * weights).sum(-1)  # [.., K]
        p = torch.sigmoid(2 * z.abs()).prod(-1)
        if self.score == "code":
            p = p * z.abs().sum(-1)
        rows = code + torch.arange(self.K, device=x.device) * 2 ** self.tau
        return (p.unsqueeze(-1) * self.tables[rows]).sum(-2) + self.bias


class MemoryFFN(nn.Module):
    """Channel mixer lut with ffn: MemoryFormer's FFN, lut1 = MemoryLayer(tau, d -> K (tau + 2)) ->
    norm (LayerNorm) -> lut2 = MemoryLayer(tau + 2, -> d), K = d / tau."""

    def __init__(self, d, tau, score):
        super().__init__()
        d1 = d // tau * (tau + 2)
        self.lut1 = MemoryLayer(d, d1, tau, score)
        self.norm = nn.LayerNorm(d1)
        self.lut2 = MemoryLayer(d1, d, tau + 2, score)

    def forward(self, x):
        return self.lut2(self.norm(self.lut1(x)))
class DiagRNN(nn.Module):
    """Token mixers gru_diag / lstm_cifg (apple/ml-pararnn gru_diag_mh.py, lstm_cifg_diag_mh.py): diagonal
    state weights A [3, N], per-head block-diagonal input weights B [H, d/H, 3, N/H], bias b [3, N], LSTM
    peepholes C [2, N]; u = x B + b per head.  The C code solves the recurrence by Newton iterations;
    this twin is the plain sequential loop (the C side's reference).  hidden != d adds out (Linear)."""

    def __init__(self, d, spec, lstm):
        super().__init__()
        n, h = spec["hidden"] or d, spec["heads"]
        self.lstm, self.n = lstm, n
        self.A = nn.Parameter(torch.empty(3, n))
        self.B = nn.Parameter(torch.empty(h, d // h, 3, n // h))
        if lstm:
            self.C = nn.Parameter(torch.empty(2, n))
        self.b = nn.Parameter(torch.empty(3, n))
        self.out = nn.Linear(n, d) if n != d else None
        with torch.no_grad():  # the reference's init (utils/init.py)
            std = 2 / math.sqrt(5 * n)
            self.A.normal_(0, std)
            fan_out = n // h if lstm else n
            bound = math.sqrt(6 / (d // h + fan_out))
            self.B.uniform_(-bound, bound)
            if lstm:
                self.C.normal_(0, std)
            self.b.zero_()
            self.b[0] = -torch.linspace(0, 1, n)

    def forward(self, x):
        bsz, T, d = x.shape
        h = self.B.shape[0]
        u = torch.einsum("bthi,higj->btghj", x.reshape(bsz, T, h, d // h), self.B).reshape(bsz, T, 3, self.n)
        u = u + self.b
        A = self.A
        hs = x.new_zeros(bsz, self.n)
        cs = x.new_zeros(bsz, self.n)
        outs = []
        for t in range(T):
            ut = u[:, t]
            if not self.lstm:
                z = torch.sigmoid(A[0] * hs + ut[:, 0])
                r = torch.sigmoid(A[1] * hs + ut[:, 1])
                c = torch.tanh(A[2] * hs * r + ut[:, 2])
                hs = z * c + (1 - z) * hs
            else:
                f = torch.sigmoid(A[0] * hs + ut[:, 0] + self.C[0] * cs)
                g = torch.tanh(A[2] * hs + ut[:, 2])
                cs = f * cs + (1 - f) * g
                o = torch.sigmoid(A[1] * hs + ut[:, 1] + self.C[1] * cs)
                hs = o * torch.tanh(cs)
            outs.append(hs)
        y = torch.stack(outs, 1)
        return self.out(y) if self.out is not None else y


class DenseGRU(nn.GRU):
    """Token mixer gru: nn.GRU itself (weight_ih_l0, ...), hidden != d adds out (Linear)."""

    def __init__(self, d, spec):
        n = spec["hidden"] or d
        super().__init__(d, n, batch_first=True)
        self.out = nn.Linear(n, d) if n != d else None

    def forward(self, x):
        y, _ = super().forward(x)
        return self.out(y) if self.out is not None else y


class DenseLSTM(nn.LSTM):
    """Token mixer lstm: nn.LSTM itself, hidden != d adds out (Linear)."""

    def __init__(self, d, spec):
        n = spec["hidden"] or d
        super().__init__(d, n, batch_first=True)
        self.out = nn.Linear(n, d) if n != d else None

    def forward(self, x):
        y, _ = super().forward(x)
        return self.out(y) if self.out is not None else y
class S4DMixer(nn.Module):
    """Token mixer s4d: the S4D layer of state-spaces/s4 models/s4/s4d.py on x [B, T, H] (H = d):
    z = K * x + D x (causal), y = GLU(output_linear(GELU(z))).  Parameter names as s4d.py
    (kernel.log_dt [H], kernel.C [H, N/2, 2], kernel.log_A_real, kernel.A_imag [H, N/2], D [H]),
    except output_linear, a Linear(H, 2H) (s4d.py: Conv1d(H, 2H, 1) + GLU(dim=-2)).  Computed as the
    plain recurrence x_n <- exp(dt A_n) x_n + (exp(dt A_n) - 1)/A_n u_t, z_t = 2 Re sum_n C_n x_n + D u_t,
    one token at a time (the C side convolves by FFT).  bidirectional: kernel.C [2, H, N/2, 2], the
    second C read by a reverse-time recurrence over the tokens after t (as S4's bidirectional kernels)."""

    def __init__(self, d, d_state=64, dt_min=1e-3, dt_max=0.1, bidirectional=False):
        super().__init__()
        H, N2 = d, d_state // 2
        self.bidirectional = bidirectional
        self.kernel = nn.Module()
        self.kernel.log_dt = nn.Parameter(torch.rand(H) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min))
        shape = (2, H, N2) if bidirectional else (H, N2)
        self.kernel.C = nn.Parameter(torch.view_as_real(torch.randn(*shape, dtype=torch.cfloat)))
        self.kernel.log_A_real = nn.Parameter(torch.log(0.5 * torch.ones(H, N2)))
        self.kernel.A_imag = nn.Parameter(math.pi * torch.arange(N2, dtype=torch.float32).repeat(H, 1))
        self.D = nn.Parameter(torch.randn(H))
        self.output_linear = nn.Linear(H, 2 * H)

    def forward(self, x):
        B, T, H = x.shape
        k = self.kernel
        dt = torch.exp(k.log_dt)
        A = -torch.exp(k.log_A_real) + 1j * k.A_imag
        z = torch.exp(A * dt[:, None])
        E = (z - 1.0) / A
        C = torch.view_as_complex(k.C.contiguous())
        Cf = C[0] if self.bidirectional else C
        state = torch.zeros(B, H, A.shape[1], dtype=z.dtype, device=x.device)
        ys = []
        for t in range(T):
            u = x[:, t]
            state = z * state + E * u[..., None]
            ys.append(2.0 * (Cf * state).sum(-1).real + self.D * u)
        if self.bidirectional:  # + sum_{s > t} Kb[s - t - 1] u_s, scanning backwards
            state = torch.zeros_like(state)
            for t in reversed(range(T)):
                ys[t] = ys[t] + 2.0 * (C[1] * state).sum(-1).real
                state = z * state + E * x[:, t, :, None]
        y = F.gelu(torch.stack(ys, 1))
        return F.glu(self.output_linear(y), dim=-1)


class DeltaNetMixer(nn.Module):
    """Token mixer deltanet: fla's DeltaNet layer (fla/layers/delta_net.py) with use_short_conv=False,
    use_gate=False, expand 1: q, k = l2norm(silu(proj)) (eps 1e-6; q also * Dh^-1/2 as fla's ops),
    v = silu(v_proj x), beta = sigmoid(b_proj x), the delta rule run as the plain recurrence
    (fla/ops/delta_rule/naive.py delta_rule_recurrence), o_norm = RMSNorm(Dh, eps 1e-5) per head,
    o_proj.  No biases.  chunk_size is the C side's training chunk (same math)."""

    def __init__(self, d, n_heads=4, chunk_size=64):
        super().__init__()
        if d % n_heads:
            raise ValueError(f"n_heads {n_heads} does not divide d_model {d}")
        self.H, self.Dh = n_heads, d // n_heads
        self.q_proj = nn.Linear(d, d, bias=False)
        self.k_proj = nn.Linear(d, d, bias=False)
        self.v_proj = nn.Linear(d, d, bias=False)
        self.b_proj = nn.Linear(d, n_heads, bias=False)
        self.o_norm = RMSNorm(self.Dh, eps=1e-5)
        self.o_proj = nn.Linear(d, d, bias=False)

    @staticmethod
    def _l2norm(x):
        return x * torch.rsqrt(x.pow(2).sum(-1, keepdim=True) + 1e-6)

    def forward(self, x):
        B, T, d = x.shape
        H, Dh = self.H, self.Dh
        q = self._l2norm(F.silu(self.q_proj(x)).view(B, T, H, Dh)) * Dh ** -0.5
        k = self._l2norm(F.silu(self.k_proj(x)).view(B, T, H, Dh))
        v = F.silu(self.v_proj(x)).view(B, T, H, Dh)
        beta = torch.sigmoid(self.b_proj(x))
        S = x.new_zeros(B, H, Dh, Dh)  # S[a][c]: key index a, value index c
        outs = []
        for t in range(T):
            kt = k[:, t]
            u = beta[:, t, :, None] * (v[:, t] - torch.einsum("bha,bhac->bhc", kt, S))
            S = S + kt[..., :, None] * u[..., None, :]
            outs.append(torch.einsum("bha,bhac->bhc", q[:, t], S))
        o = self.o_norm(torch.stack(outs, 1))
        return self.o_proj(o.reshape(B, T, d))


class DWConv(nn.Module):
    """Token mixer dwconv: nn.Conv1d(d, d, kernel_size, groups=d) along the tokens with zero padding,
    centred (left (K-1)//2, the rest on the right: padding="same") or causal (left K-1)."""

    def __init__(self, d, spec):
        super().__init__()
        self.causal = bool(spec["causal"])
        self.conv = nn.Conv1d(d, d, spec["kernel_size"], groups=d)

    def forward(self, x):
        K = self.conv.kernel_size[0]
        left = K - 1 if self.causal else (K - 1) // 2
        h = torch.nn.functional.pad(x.transpose(1, 2), (left, K - 1 - left))
        return self.conv(h).transpose(1, 2)


def make_mixer(spec, d, max_T=None):
    """spec: a canonical mixer object -> module (identity: nn.Identity, no parameters).  max_T (the
    longest sequence) is needed by linformer only."""
    kind = spec["kind"]
    if kind in EFFICIENT_MIXERS:
        return EFFICIENT_MIXERS[kind](d, spec, max_T)
    if kind == "mamba":
        return Mamba(d, spec, max_T)
    if kind == "rpe":
        return RPEMixer(d, spec["n_heads"], bool(spec["causal"]), spec["feature_map"], max_T,
                        spec["n_features"])
    if kind in ("softmax", "linear", "cosformer"):
        return Mixer(d, spec["n_heads"], kind, bool(spec["causal"]), spec.get("feature_map", "elu"),
                     spec.get("n_features", 64), spec.get("redraw", 0), spec.get("attn_dropout", 0.0))
    if kind == "mlp":
        return FFN(d, spec["d_ff"], spec["dropout"], spec["activation"])
    if kind == "glu":
        return GLU(d, spec["d_ff"], spec["dropout"], spec["activation"])
    if kind == "lut":
        if spec["ffn"]:
            return MemoryFFN(d, spec["tau"], spec["score"])
        return MemoryLayer(d, d, spec["tau"], spec["score"])
    if kind == "identity":
        return nn.Identity()
    if kind in ("gru_diag", "lstm_cifg"):
        return DiagRNN(d, spec, kind == "lstm_cifg")
    if kind == "gru":
        return DenseGRU(d, spec)
    if kind == "lstm":
        return DenseLSTM(d, spec)
    if kind == "probsparse":
        return ProbSparseMixer(d, spec["n_heads"], bool(spec["causal"]), spec["factor"], bool(spec["mix"]))
    if kind == "s4d":
        return S4DMixer(d, spec["d_state"], spec["dt_min"], spec["dt_max"], bool(spec["bidirectional"]))
    if kind == "deltanet":
        return DeltaNetMixer(d, spec["n_heads"], spec["chunk_size"])
    if kind == "dwconv":
        return DWConv(d, spec)
    raise ValueError(f"unknown mixer {kind!r}")


# --------------------------------------------------------------------------
# Informer: the C code's random stream, ProbSparse attention, time features
# --------------------------------------------------------------------------

_U64 = (1 << 64) - 1


class SfRng:
    """src/core/rng.c replayed exactly: xoshiro256** seeded through splitmix64, Lemire's bounded
    draw.  The ProbSparse key sample comes from this stream (see ProbSparseMixer)."""

    def __init__(self, seed, stream=None):
        if stream is not None:
            x = (stream * 0xD1B54A32D192ED03) & _U64
            seed ^= self._splitmix(x)[1]
        x, self.s = seed & _U64, []
        for _ in range(4):
            x, z = self._splitmix(x)
            self.s.append(z)

    @staticmethod
    def _splitmix(x):
        x = (x + 0x9E3779B97F4A7C15) & _U64
        z = x
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _U64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _U64
        return x, z ^ (z >> 31)

    def u64(self):
        s = self.s
        rotl = lambda v, k: ((v << k) | (v >> (64 - k))) & _U64  # noqa: E731
        result = (rotl((s[1] * 5) & _U64, 7) * 9) & _U64
        t = (s[1] << 17) & _U64
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = rotl(s[3], 45)
        return result

    def below(self, n):
        m = (self.u64() >> 32) * n
        lo = m & 0xFFFFFFFF
        if lo < n:
            thresh = ((1 << 32) - n) % n
            while lo < thresh:
                m = (self.u64() >> 32) * n
                lo = m & 0xFFFFFFFF
        return m >> 32


PROB_EVAL_SEED = 0  # the sample seed at inference (src/layers/probsparse_attention.c)


def prob_top(L, factor):
    """min(factor * ceil(ln L), L), at least 1 (kernels/prob_attention.c)."""
    return max(1, min(factor * int(math.ceil(math.log(L))), L))


def prob_sample(L, U, seed):
    """sample[L, U]: key indices per query, as sf_prob_attention_sample draws them."""
    r = SfRng(seed, stream=0)
    return torch.tensor([r.below(L) for _ in range(L * U)], dtype=torch.long).view(L, U)


def prob_attention(q, k, v, sample, u, causal):
    """Informer's ProbAttention on q, k, v [B, H, L, Dh] with a given key sample [L, U]:
    sparsity M = max - sum/L of the sampled (unscaled) scores, the u queries of largest M (ties: the
    lower index) attend with a full softmax (causal: keys <= query), the rest take mean(V) or,
    causal, cumsum(V).  Returns the context [B, H, L, Dh]."""
    B, H, L, Dh = q.shape
    qk = (q.unsqueeze(-2) @ k[:, :, sample, :].transpose(-2, -1)).squeeze(-2)  # [B, H, L, U]
    m = qk.max(-1)[0] - qk.sum(-1) / L
    top = torch.sort(m, dim=-1, descending=True, stable=True)[1][..., :u]  # [B, H, u]
    ctx = v.cumsum(-2) if causal else v.mean(-2, keepdim=True).expand(B, H, L, Dh)
    q_top = torch.gather(q, 2, top.unsqueeze(-1).expand(B, H, u, Dh))
    s = (q_top @ k.transpose(-2, -1)) * Dh ** -0.5  # [B, H, u, L]
    if causal:
        s = s.masked_fill(torch.arange(L)[None, None, None, :] > top[..., None], float("-inf"))
    a = torch.softmax(s, dim=-1) @ v
    return ctx.scatter(2, top.unsqueeze(-1).expand(B, H, u, Dh), a)


class ProbSparseMixer(nn.Module):
    """Token mixer probsparse: qkv [3d, d] (+bias), ProbSparse attention per head, (mix: heads read
    out in [H, L, Dh] order, the reference's mix=True), out [d, d] (+bias).  The key sample's seed is
    one u64 draw from ``seed_source[0]`` (an SfRng standing for the C trainer's ctx->rng) when
    training with a source set, else PROB_EVAL_SEED; a model shares one source list among its
    mixers, so the draws follow the forward order as in C."""

    def __init__(self, d, n_heads, causal, factor, mix):
        super().__init__()
        if d % n_heads:
            raise ValueError("d_model must be divisible by n_heads")
        self.d, self.h, self.causal, self.factor, self.mix = d, n_heads, causal, factor, mix
        self.qkv = nn.Linear(d, 3 * d)
        self.out = nn.Linear(d, d)
        self.seed_source = [None]

    def forward(self, x):
        b, n, d = x.shape
        h, dh = self.h, d // self.h
        qkv = self.qkv(x)
        q, k, v = (qkv[:, :, i * d:(i + 1) * d].reshape(b, n, h, dh).transpose(1, 2) for i in range(3))
        src = self.seed_source[0]
        seed = src.u64() if (self.training and src is not None) else PROB_EVAL_SEED
        u = prob_top(n, self.factor)
        o = prob_attention(q, k, v, prob_sample(n, u, seed).to(x.device), u, self.causal)
        o = o.reshape(b, n, d) if self.mix else o.transpose(1, 2).reshape(b, n, d)
        return self.out(o)


def time_features(datetimes, freq):
    """Informer's timeF features (utils/timefeatures.py, timeenc=1) of python datetimes ->
    [n, F] float64 (data/time_features.h has the table)."""
    def feats(t):
        doy = t.timetuple().tm_yday
        f = {"second": t.second / 59.0 - 0.5, "minute": t.minute / 59.0 - 0.5, "hour": t.hour / 23.0 - 0.5,
             "weekday": t.weekday() / 6.0 - 0.5, "mday": (t.day - 1) / 30.0 - 0.5,
             "yday": (doy - 1) / 365.0 - 0.5, "month": (t.month - 1) / 11.0 - 0.5,
             "week": (t.isocalendar()[1] - 1) / 52.0 - 0.5}
        order = {"s": ["second", "minute", "hour", "weekday", "mday", "yday"],
                 "t": ["minute", "hour", "weekday", "mday", "yday"],
                 "h": ["hour", "weekday", "mday", "yday"], "d": ["weekday", "mday", "yday"],
                 "b": ["weekday", "mday", "yday"], "w": ["mday", "week"], "m": ["month"]}[freq]
        return [f[k] for k in order]
    return torch.tensor([feats(t) for t in datetimes], dtype=torch.float64)


TIME_FEATURES = {"s": 6, "t": 5, "h": 4, "d": 3, "b": 3, "w": 2, "m": 1}


class MetaFormerBlock(nn.Module):
    """kind metaformer.  pre:  h = x + drop(tok(norm1(x))); y = h + drop(ch(norm2(h)))
                         post: h = norm1(x + drop(tok(x))); y = norm2(h + drop(ch(h)))
                         peri: h = x + drop(norm1_out(tok(norm1(x)))); y = h + drop(norm2_out(ch(norm2(h))))
    Parameters norm1, mixer (token mixer), [norm1_out], norm2, ffn (channel mixer), [norm2_out], created
    in that order."""

    def __init__(self, d, b, max_T=None):
        super().__init__()
        self.pre = b["placement"] == "pre"
        self.peri = b["placement"] == "peri"
        self.norm1 = make_norm(b["norm"], d)
        self.mixer = make_mixer(b["token_mixer"], d, max_T)
        if self.peri:
            self.norm1_out = make_norm(b["norm"], d)
        self.norm2 = make_norm(b["norm"], d)
        self.ffn = make_mixer(b["channel_mixer"], d, max_T)
        if self.peri:
            self.norm2_out = make_norm(b["norm"], d)
        self.drop = nn.Dropout(b["dropout"])

    def forward(self, x):
        if self.peri:
            x = x + self.drop(self.norm1_out(self.mixer(self.norm1(x))))
            x = x + self.drop(self.norm2_out(self.ffn(self.norm2(x))))
        elif self.pre:
            x = x + self.drop(self.mixer(self.norm1(x)))
            x = x + self.drop(self.ffn(self.norm2(x)))
        else:
            x = self.norm1(x + self.drop(self.mixer(x)))
            x = self.norm2(x + self.drop(self.ffn(x)))
        return x


Block = MetaFormerBlock  # the v1 name


class ResidualBlock(nn.Module):
    """kind residual (one mixer, as Mamba stacks).  pre: y = x + drop(mix(norm(x)));
    post: y = norm(x + drop(mix(x))).  Parameters norm, mixer."""

    def __init__(self, d, b, max_T=None):
        super().__init__()
        if b["placement"] == "peri":
            raise ConfigError("placement: peri is only for metaformer blocks")
        self.pre = b["placement"] == "pre"
        self.norm = make_norm(b["norm"], d)
        self.mixer = make_mixer(b["mixer"], d, max_T)
        self.drop = nn.Dropout(b["dropout"])

    def forward(self, x):
        if self.pre:
            return x + self.drop(self.mixer(self.norm(x)))
        return self.norm(x + self.drop(self.mixer(x)))


class ParallelBlock(nn.Module):
    """kind parallel (GPT-J / PaLM).  pre: n = norm(x); y = (x + drop(tok(n))) + drop(ch(n));
    post: y = norm((x + drop(tok(x))) + drop(ch(x))).  Parameters norm, mixer (token), ffn (channel).
    The two dropouts draw independent masks."""

    def __init__(self, d, b, max_T=None):
        super().__init__()
        if b["placement"] == "peri":
            raise ConfigError("placement: peri is only for metaformer blocks")
        self.pre = b["placement"] == "pre"
        self.norm = make_norm(b["norm"], d)
        self.mixer = make_mixer(b["token_mixer"], d, max_T)
        self.ffn = make_mixer(b["channel_mixer"], d, max_T)
        self.drop = nn.Dropout(b["dropout"])

    def forward(self, x):
        if self.pre:
            n = self.norm(x)
            return x + self.drop(self.mixer(n)) + self.drop(self.ffn(n))
        return self.norm(x + self.drop(self.mixer(x)) + self.drop(self.ffn(x)))


BLOCK_CLASSES = {"metaformer": MetaFormerBlock, "residual": ResidualBlock, "parallel": ParallelBlock}


def make_block(b, d, max_T=None):
    """b: one expanded canonical block object; max_T: the longest sequence (PatchTST: patches),
    which sizes linformer's projections."""
    return BLOCK_CLASSES[b["kind"]](d, b, max_T)


def sinusoidal_table(n, d, dtype=torch.float64):
    """pe[p, 2i] = sin(p / 10000^(2i/d)), pe[p, 2i+1] = cos(p / 10000^(2i/d)); computed in float64."""
    if d % 2:
        raise ValueError("sinusoidal positions need an even d_model")
    pe = np.zeros((n, d), dtype=np.float64)
    p = np.arange(n, dtype=np.float64)[:, None]
    two_i = np.arange(0, d, 2, dtype=np.float64)[None, :]
    ang = p / np.power(10000.0, two_i / d)
    pe[:, 0::2] = np.sin(ang)
    pe[:, 1::2] = np.cos(ang)
    return torch.from_numpy(pe).to(dtype)


def revin_norm(x):
    """x [B, L, C] -> (x_norm, mean, stdev); statistics over time, detached."""
    mean = x.mean(dim=1, keepdim=True).detach()
    stdev = torch.sqrt(x.var(dim=1, keepdim=True, unbiased=False) + REVIN_EPS).detach()
    return (x - mean) / stdev, mean, stdev


class PatchTST(nn.Module):
    """model patchtst, built from a canonical format_version 2 config (anything canonical_config
    accepts, v1 included).  Modules are created in the order patch_embed, pos_embed, blocks.{i},
    norm_f, head (the order the v1 twin used, so a fixed seed gives the same initial weights)."""

    def __init__(self, cfg):
        super().__init__()
        cfg = canonical_config(cfg)
        if cfg["model"] != "patchtst":
            raise ConfigError(f"model: {cfg['model']!r} given to PatchTST")
        self.cfg = cfg
        d, inp = cfg["d_model"], cfg["input"]
        pl = inp["patch_len"]
        self.seq_len, self.pred_len, self.c = cfg["seq_len"], cfg["pred_len"], cfg["n_channels"]
        self.stride, self.patch_len = inp["stride"], pl
        self.revin = bool(cfg["revin"])
        self.n = n_patches(cfg)
        self.patch_embed = nn.Linear(pl, d)
        pos = cfg["positions"]["kind"]
        self._pe64 = None
        if pos == "learned":
            self.pos_embed = nn.Parameter(torch.empty(self.n, d).uniform_(-0.02, 0.02))
        else:
            self.pos_embed = None
            if pos == "sinusoidal":
                self._pe64 = sinusoidal_table(self.n, d)  # not a parameter, not in the state_dict
        self.drop = nn.Dropout(cfg["dropout"])
        self.block_cfgs = expand_blocks(cfg)
        self.blocks = nn.ModuleList([make_block(b, d, self.n) for b in self.block_cfgs])
        for mod in self.blocks.modules():  # the longest sequence a mixer sees (causal cosformer)
            if isinstance(mod, Mixer):
                mod.max_T = self.n
        attach_attention_positions(self.blocks, self.block_cfgs, cfg["positions"])
        fn = final_norm_spec(cfg)
        self.norm_f = make_norm(fn, d) if fn is not None else None
        self.head = nn.Linear(d * self.n, self.pred_len)
        self.head_drop = nn.Dropout(cfg["head"]["dropout"])

    def forward(self, x):
        b, l, c = x.shape
        if self.revin:
            x, mean, stdev = revin_norm(x)
        z = x.permute(0, 2, 1)  # [B, C, L]
        z = F.pad(z, (0, self.stride), mode="replicate")  # == nn.ReplicationPad1d((0, stride))
        z = z.unfold(-1, self.patch_len, self.stride)  # [B, C, N, pl]
        z = z.reshape(b * c, self.n, self.patch_len)
        u = self.patch_embed(z)
        if self.pos_embed is not None:
            u = u + self.pos_embed
        elif self._pe64 is not None:
            u = u + self._pe64.to(dtype=u.dtype, device=u.device)
        u = self.drop(u)
        for blk in self.blocks:
            u = blk(u)
        if self.norm_f is not None:
            u = self.norm_f(u)
        h = u.transpose(1, 2).reshape(b * c, -1)  # index di*N + p
        y = self.head_drop(self.head(h))
        y = y.reshape(b, c, self.pred_len).permute(0, 2, 1)
        if self.revin:
            y = y * stdev + mean
        return y


class CircularConv(nn.Module):
    """layers/circular_conv.c: Conv1d(c_in, c_out, 3, padding 1, circular) on rows [B, T, c_in]; the
    weight is stored [c_out, 3*c_in] (PyTorch's [c_out, c_in, 3] flattened)."""

    def __init__(self, c_in, c_out, bias):
        super().__init__()
        self.c_in, self.c_out = c_in, c_out
        self.weight = nn.Parameter(torch.empty(c_out, 3 * c_in))
        self.bias = nn.Parameter(torch.zeros(c_out)) if bias else None
        nn.init.kaiming_normal_(self.weight.view(c_out, c_in, 3), mode="fan_in", nonlinearity="leaky_relu")

    def forward(self, x):
        xp = F.pad(x.transpose(1, 2), (1, 1), mode="circular")
        return F.conv1d(xp, self.weight.view(self.c_out, self.c_in, 3), self.bias).transpose(1, 2)


class Distil(nn.Module):
    """Informer's ConvLayer: circular conv -> BatchNorm1d -> ELU -> MaxPool1d(3, 2, 1)."""

    def __init__(self, d):
        super().__init__()
        self.conv = CircularConv(d, d, True)
        self.norm = TokenBatchNorm(d)

    def forward(self, x):
        e = F.elu(self.norm(self.conv(x)))
        return F.max_pool1d(e.transpose(1, 2), 3, 2, 1).transpose(1, 2)


class DataEmbedding(nn.Module):
    """drop(value conv + sinusoidal positions + temporal Linear(F, d, no bias)(marks))."""

    def __init__(self, c_in, d, n_feats, n_pos, dropout):
        super().__init__()
        self.value = CircularConv(c_in, d, False)
        self.temporal = nn.Linear(n_feats, d, bias=False) if n_feats else None
        self.pe = sinusoidal_table(n_pos, d)  # a constant, not state (C has no tensor for it)
        self.drop = nn.Dropout(dropout)

    def forward(self, x, marks):
        z = self.value(x) + self.pe[:x.shape[1]].to(x.dtype)
        if self.temporal is not None:
            z = z + self.temporal(marks)
        return self.drop(z)


class CrossAttention(nn.Module):
    """layers/cross_attention.c: q [d, d], kv [2d, d], out [d, d] (+biases); softmax(q k^T/sqrt(Dh)),
    dropout on the probabilities, times v."""

    def __init__(self, d, n_heads, dropout):
        super().__init__()
        self.d, self.h = d, n_heads
        self.q = nn.Linear(d, d)
        self.kv = nn.Linear(d, 2 * d)
        self.out = nn.Linear(d, d)
        self.drop = nn.Dropout(dropout)

    def forward(self, x, mem):
        B, Tq, d = x.shape
        Tk, h, dh = mem.shape[1], self.h, d // self.h
        q = self.q(x).view(B, Tq, h, dh).transpose(1, 2)
        kv = self.kv(mem)
        k = kv[..., :d].reshape(B, Tk, h, dh).transpose(1, 2)
        v = kv[..., d:].reshape(B, Tk, h, dh).transpose(1, 2)
        p = self.drop(torch.softmax((q @ k.transpose(-2, -1)) * dh ** -0.5, dim=-1))
        return self.out((p @ v).transpose(1, 2).reshape(B, Tq, d))


class InformerDecoderLayer(nn.Module):
    def __init__(self, d, n_heads, self_blk, ffn_blk, dropout):
        super().__init__()
        self.self_attn = ResidualBlock(d, self_blk)
        self.cross_attn = CrossAttention(d, n_heads, dropout)
        self.norm2 = nn.LayerNorm(d)
        self.ffn = ResidualBlock(d, ffn_blk)
        self.drop = nn.Dropout(dropout)

    def forward(self, u, mem):
        u = self.self_attn(u)
        u = self.norm2(u + self.drop(self.cross_attn(u, mem)))
        return self.ffn(u)


class Informer(nn.Module):
    """src/models/informer.c (Zhou et al. 2021, Informer2020 models/model.py): forward(x, marks) with
    x [B, L, C] and marks [B, L+P, F] (or x packed as the C model reads it: [B, L*C + (L+P)*F])."""

    def __init__(self, cfg):
        super().__init__()
        self.cfg = c = canonical_config(cfg)
        d, H, p = c["d_model"], c["n_heads"], c["dropout"]
        self.L, self.P, self.C, self.label = c["seq_len"], c["pred_len"], c["n_channels"], c["label_len"]
        if c["embed"] == "timeF" and c["freq"] == "auto":
            raise ConfigError("freq: 'auto' is resolved from the data when training; a model needs a letter")
        self.F = TIME_FEATURES[c["freq"]] if c["embed"] == "timeF" else 0
        Ld = self.label + self.P
        prob = c["attn"] == "prob"
        self.enc_embedding = DataEmbedding(self.C, d, self.F, max(self.L, Ld), p)
        self.dec_embedding = DataEmbedding(self.C, d, self.F, max(self.L, Ld), p)
        ffn = {"kind": "mlp", "d_ff": c["d_ff"], "activation": c["activation"], "dropout": p}
        tok = ({"kind": "probsparse", "n_heads": H, "factor": c["factor"], "causal": False, "mix": False}
               if prob else {"kind": "softmax", "n_heads": H, "causal": False})
        enc_blk = {"kind": "metaformer", "placement": "post", "dropout": p, "norm": {"kind": "layernorm", "eps": 1e-5},
                   "token_mixer": tok, "channel_mixer": ffn}
        self.encoder = nn.Module()
        self.encoder.layers = nn.ModuleList([MetaFormerBlock(d, enc_blk) for _ in range(c["e_layers"])])
        n_conv = c["e_layers"] - 1 if c["distil"] else 0
        self.encoder.conv_layers = nn.ModuleList([Distil(d) for _ in range(n_conv)])
        self.encoder.norm = nn.LayerNorm(d)
        if prob or c["mix"]:  # with attn full and mix: dense probsparse (every query active)
            dtok = {"kind": "probsparse", "n_heads": H, "factor": c["factor"] if prob else 1000,
                    "causal": True, "mix": c["mix"]}
        else:
            dtok = {"kind": "softmax", "n_heads": H, "causal": True}
        ln = {"kind": "layernorm", "eps": 1e-5}
        self_blk = {"kind": "residual", "placement": "post", "dropout": p, "norm": ln, "mixer": dtok}
        ffn_blk = {"kind": "residual", "placement": "post", "dropout": p, "norm": ln, "mixer": ffn}
        self.decoder = nn.Module()
        self.decoder.layers = nn.ModuleList([InformerDecoderLayer(d, H, self_blk, ffn_blk, p)
                                             for _ in range(c["d_layers"])])
        self.decoder.norm = nn.LayerNorm(d)
        self.projection = nn.Linear(d, self.C)
        self.seed_source = [None]
        for mod in self.modules():
            if isinstance(mod, ProbSparseMixer):
                mod.seed_source = self.seed_source

    def set_sample_rng(self, rng):
        """The stream ProbSparse samples draw their seeds from when training (None: fixed seed)."""
        self.seed_source[0] = rng

    def forward(self, x, marks=None):
        L, P, C, F_ = self.L, self.P, self.C, self.F
        if marks is None:  # packed as the C model reads it
            B = x.shape[0]
            marks = x[:, L * C:].reshape(B, L + P, F_) if F_ else None
            x = x[:, :L * C].reshape(B, L, C)
        B = x.shape[0]
        xd = torch.cat([x[:, L - self.label:], x.new_zeros(B, P, C)], dim=1)
        me = marks[:, :L] if F_ else None
        md = marks[:, L - self.label:] if F_ else None
        h = self.enc_embedding(x, me)
        for i, layer in enumerate(self.encoder.layers):
            h = layer(h)
            if i < len(self.encoder.conv_layers):
                h = self.encoder.conv_layers[i](h)
        mem = self.encoder.norm(h)
        u = self.dec_embedding(xd, md)
        for layer in self.decoder.layers:
            u = layer(u, mem)
        return self.projection(self.decoder.norm(u))[:, -P:]


class SeriesDecomp(nn.Module):
    def __init__(self, k):
        super().__init__()
        if k % 2 == 0 or k < 1:
            raise ValueError("kernel_size must be odd and positive")
        self.k = k

    def forward(self, x):
        """x [B, L, C] -> (seasonal, trend), both [B, L, C]."""
        p = (self.k - 1) // 2
        front = x[:, :1, :].repeat(1, p, 1)
        end = x[:, -1:, :].repeat(1, p, 1)
        xp = torch.cat([front, x, end], dim=1)
        trend = F.avg_pool1d(xp.permute(0, 2, 1), kernel_size=self.k, stride=1).permute(0, 2, 1)
        return x - trend, trend


class DLinear(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        cfg = canonical_config(cfg)
        if cfg["model"] != "dlinear":
            raise ConfigError(f"model: {cfg['model']!r} given to DLinear")
        self.cfg = cfg
        L, P = cfg["seq_len"], cfg["pred_len"]
        self.decomp = SeriesDecomp(cfg["kernel_size"])
        self.Linear_Seasonal = nn.Linear(L, P)
        self.Linear_Trend = nn.Linear(L, P)

    def forward(self, x):
        seasonal, trend = self.decomp(x)
        s = self.Linear_Seasonal(seasonal.permute(0, 2, 1))
        t = self.Linear_Trend(trend.permute(0, 2, 1))
        return (s + t).permute(0, 2, 1)


class ITransformer(nn.Module):
    """model itransformer (Liu et al. 2024, thuml/iTransformer model/iTransformer.py), built from a
    canonical format_version 2 config:
      use_norm: x -> (x - mean) / sqrt(var + 1e-5), per window and variate, over time (biased var);
      input.time_tokens: the look-back rows' F time features (marks[:, :L], unnormalised) join the
      variates as F more tokens (DataEmbedding_inverted's cat of x and x_mark);
      tokens = dropout(embed(cat(x, marks)^T)) [B, C+F, d] (+ positions, default none); blocks;
      final norm; projector(tokens)[:, :C] [B, C, P] -> [B, P, C]; use_norm undone.
    forward(x, marks) with x [B, L, C] and marks [B, L+P, F], or x packed as the C model reads it
    ([B, L*C + (L+P)*F]) when time_tokens is on and marks is None.
    Modules in the order embed, pos_embed, blocks.{i}, norm_f, projector (as the C model declares them)."""

    def __init__(self, cfg):
        super().__init__()
        cfg = canonical_config(cfg)
        if cfg["model"] != "itransformer":
            raise ConfigError(f"model: {cfg['model']!r} given to ITransformer")
        self.cfg = cfg
        d, c = cfg["d_model"], cfg["n_channels"]
        self.seq_len, self.pred_len, self.c = cfg["seq_len"], cfg["pred_len"], c
        self.use_norm = bool(cfg["use_norm"])
        self.F = TIME_FEATURES[cfg["freq"]] if cfg["input"]["time_tokens"] else 0
        c = c + self.F  # tokens: the variates, then the time features
        self.embed = nn.Linear(self.seq_len, d)
        pos = cfg["positions"]["kind"]
        self._pe64 = None
        if pos == "learned":
            self.pos_embed = nn.Parameter(torch.empty(c, d).uniform_(-0.02, 0.02))
        else:
            self.pos_embed = None
            if pos == "sinusoidal":
                self._pe64 = sinusoidal_table(c, d)
        self.drop = nn.Dropout(cfg["dropout"])
        self.block_cfgs = expand_blocks(cfg)
        self.blocks = nn.ModuleList([make_block(b, d) for b in self.block_cfgs])
        fn = cfg["final_norm"]
        self.norm_f = make_norm(_norm("final_norm", {"kind": fn}), d) if fn != "none" else None
        self.projector = nn.Linear(d, self.pred_len)

    def forward(self, x, marks=None):
        L, P, C, F_ = self.seq_len, self.pred_len, self.c, self.F
        if F_ and marks is None:  # packed as the C model reads it
            B = x.shape[0]
            marks = x[:, L * C:].reshape(B, L + P, F_)
            x = x[:, :L * C].reshape(B, L, C)
        if self.use_norm:
            x, mean, stdev = revin_norm(x)  # the same statistics (Non-stationary Transformer's)
        if F_:
            x = torch.cat([x, marks[:, :L].to(x.dtype)], dim=2)  # [B, L, C+F]
        u = self.embed(x.permute(0, 2, 1))  # [B, C+F, d]: one token per variate / feature
        if self.pos_embed is not None:
            u = u + self.pos_embed
        elif self._pe64 is not None:
            u = u + self._pe64.to(dtype=u.dtype, device=u.device)
        u = self.drop(u)
        for blk in self.blocks:
            u = blk(u)
        if self.norm_f is not None:
            u = self.norm_f(u)
        y = self.projector(u[:, :C]).permute(0, 2, 1)  # [B, P, C]: the variate tokens only
        if self.use_norm:
            y = y * stdev + mean
        return y


class _TiedHeadBias(nn.Module):
    """head.bias of a tied lm head (its weight is embed.weight)."""

    def __init__(self, V):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(V))


def attach_attention_positions(blocks, block_cfgs, positions):
    """Positions that act inside softmax attention (rope, t5) handed to every softmax mixer of
    `blocks`; any other token mixer refuses them (as blocks/block.c). Other kinds: nothing to do."""
    pos = positions["kind"]
    if pos not in ("rope", "t5"):
        return
    for i, blk in enumerate(block_cfgs):
        for key in ("token_mixer", "mixer"):
            if key in blk and MIXER_KINDS[blk[key]["kind"]][0] == "token" and \
                    blk[key]["kind"] not in ("softmax", "identity"):
                raise ConfigError(f"blocks[{i}].{key}: positions {pos!r} act inside softmax attention; "
                                  f"mixer {blk[key]['kind']!r} cannot take them")
    for mod in blocks.modules():
        if isinstance(mod, Mixer) and mod.kind == "softmax":
            mod.set_positions(positions)


class LM(nn.Module):
    """model lm (src/models/lm.c), a causal decoder-only language model:
      x [B, T] token ids (floats or ints) -> embed (nn.Embedding(vocab, d)) + positions (learned
      pos_embed [max_len, d] or the sinusoidal table) -> dropout -> blocks (causal mixers only) ->
      final norm (auto: the last block's norm when it is pre-norm) -> head -> logits [B, T, vocab].
      head: nn.Linear(d, vocab, bias) named head, or tied (logits = h @ embed.weight^T, + head.bias).
    Modules in the order embed, pos_embed, blocks.{i}, norm_f, head (as the C model declares them)."""

    def __init__(self, cfg):
        super().__init__()
        cfg = canonical_config(cfg)
        if cfg["model"] != "lm":
            raise ConfigError(f"model: {cfg['model']!r} given to LM")
        self.cfg = cfg
        d, V = cfg["d_model"], cfg["input"]["vocab"]
        self.max_len = cfg["max_len"] or cfg["seq_len"]
        self.embed = nn.Embedding(V, d)
        pos = cfg["positions"]["kind"]
        self._pe64 = None
        if pos == "learned":
            self.pos_embed = nn.Parameter(torch.empty(self.max_len, d).uniform_(-0.02, 0.02))
        else:
            self.pos_embed = None
            if pos == "sinusoidal":
                self._pe64 = sinusoidal_table(self.max_len, d)
        self.drop = nn.Dropout(cfg["dropout"])
        self.block_cfgs = expand_blocks(cfg)
        self.blocks = nn.ModuleList([make_block(b, d, self.max_len) for b in self.block_cfgs])
        for mod in self.blocks.modules():  # causal cosformer re-weights over max_len, as the C mixer
            if isinstance(mod, Mixer):
                mod.max_T = self.max_len
        attach_attention_positions(self.blocks, self.block_cfgs, cfg["positions"])
        fn = final_norm_spec(cfg)
        self.norm_f = make_norm(fn, d) if fn is not None else None
        self.tie = cfg["head"]["tie_weights"]
        bias = cfg["head"]["bias"]
        if self.tie:
            self.head = _TiedHeadBias(V) if bias else None
        else:
            self.head = nn.Linear(d, V, bias=bias)

    def forward(self, x):
        T = x.shape[1]
        u = self.embed(x.long())
        if self.pos_embed is not None:
            u = u + self.pos_embed[:T]
        elif self._pe64 is not None:
            u = u + self._pe64[:T].to(dtype=u.dtype, device=u.device)
        u = self.drop(u)
        for blk in self.blocks:
            u = blk(u)
        if self.norm_f is not None:
            u = self.norm_f(u)
        if not self.tie:
            return self.head(u)
        y = u @ self.embed.weight.t()
        return y + self.head.bias if self.head is not None else y


def time_encoding(t, d, scale):
    """[n, d] sinusoidal encoding of observation times t [n] (layers/time_encoding.c): the table of
    sinusoidal_table with the step p replaced by scale * t, in float64 from the given (float32) t."""
    p = scale * t.detach().to(torch.float64)[:, None]
    freq = torch.tensor([10000.0 ** (-i / d) for i in range(0, d, 2)], dtype=torch.float64)
    pe = torch.empty(t.shape[0], d, dtype=torch.float64)
    pe[:, 0::2] = torch.sin(p * freq)
    pe[:, 1::2] = torch.cos(p * freq)
    return pe


class T2(nn.Module):
    """model t2 (Allam & McEwen, astronet t2; models/t2.c): embed = ReLU(Linear(C -> d)) on every
    step, + positions (default sinusoidal), blocks, mean over the valid steps, dropout, classifier
    Linear(d -> n_classes) -> logits.  forward(x, lens): x [B, L, C], lens [B] valid steps.  Padding
    is handled by running each series' valid prefix x[b, :lens[b]] through the blocks on its own
    (so the twin needs no masks; the C model masks instead, and must agree).
    Modules in the order embed, pos_embed, blocks.{i}, classifier (as the C model declares them)."""

    def __init__(self, cfg):
        super().__init__()
        cfg = canonical_config(cfg)
        if cfg["model"] != "t2":
            raise ConfigError(f"model: {cfg['model']!r} given to T2")
        self.cfg = cfg
        d, L = cfg["d_model"], cfg["seq_len"]
        self.seq_len, self.c, self.k = L, cfg["n_channels"], cfg["n_classes"]
        # conv_patches: token t = the window x[t*stride : t*stride + patch_len] (zeros past the
        # valid end) flattened step-major, ceil(L / stride) tokens; pointwise = windows of 1, stride 1
        inp = cfg["input"]
        self.p, self.s = (inp["patch_len"], inp["stride"]) if inp["kind"] == "conv_patches" else (1, 1)
        L = -(-L // self.s)
        pos = cfg["positions"]["kind"]
        # time positions: channel `time_ch` holds observation times, encoded, not embedded
        self.time_ch = cfg["positions"]["channel"] if pos == "time" else None
        self.time_scale = cfg["positions"]["scale"] if pos == "time" else None
        self.embed = nn.Linear(self.p * (self.c - (1 if pos == "time" else 0)), d)
        self._pe64 = None
        if pos == "learned":
            self.pos_embed = nn.Parameter(torch.empty(L, d).uniform_(-0.02, 0.02))
        else:
            self.pos_embed = None
            if pos == "sinusoidal":
                self._pe64 = sinusoidal_table(L, d)
        self.block_cfgs = expand_blocks(cfg)
        self.blocks = nn.ModuleList([make_block(b, d, L) for b in self.block_cfgs])
        attach_attention_positions(self.blocks, self.block_cfgs, cfg["positions"])
        self.drop = nn.Dropout(cfg["head"]["dropout"])
        self.classifier = nn.Linear(d, self.k)

    def forward(self, x, lens):
        pooled = []
        for b in range(x.shape[0]):
            n = int(lens[b])
            if self.time_ch is not None:
                keep = [c for c in range(self.c) if c != self.time_ch]
                u = F.relu(self.embed(x[b:b + 1, :n, keep]))
                u = u + time_encoding(x[b, :n, self.time_ch], u.shape[-1], self.time_scale).to(u.dtype)
            elif self.p == 1 and self.s == 1:
                u = F.relu(self.embed(x[b:b + 1, :n]))
            else:
                t = -(-n // self.s)
                xv = F.pad(x[b:b + 1, :n], (0, 0, 0, (t - 1) * self.s + self.p - n))
                win = xv.unfold(1, self.p, self.s)[:, :t]          # [1, t, C, P]
                u = F.relu(self.embed(win.transpose(2, 3).reshape(1, t, self.p * self.c)))
                n = t
            if self.pos_embed is not None:
                u = u + self.pos_embed[:n]
            elif self._pe64 is not None:
                u = u + self._pe64[:n].to(dtype=u.dtype, device=u.device)
            for blk in self.blocks:
                u = blk(u)
            pooled.append(u.mean(dim=1))
        return self.classifier(self.drop(torch.cat(pooled)))


def build_model(cfg):
    """Model from a config (dict or JSON string; format_version 2, or 1 via config_v1_to_v2).
    ``model.cfg`` is the canonical format_version 2 config."""
    cfg = canonical_config(cfg)
    if cfg["model"] == "lm":
        return LM(cfg)
    if cfg["model"] == "t2":
        return T2(cfg)
    if cfg["model"] == "patchtst":
        return PatchTST(cfg)
    if cfg["model"] == "itransformer":
        return ITransformer(cfg)
    if cfg["model"] == "informer":
        return Informer(cfg)
    return DLinear(cfg)


def count_params(model):
    return sum(p.numel() for p in model.parameters())


def zero_grad_params(model):
    """Names of parameters whose gradient is exactly zero mathematically in train mode (Informer: the
    distilling convs' biases, right before their BatchNorm, and the bias of the LayerNorm that feeds
    each distilling conv: a constant shift through a circular conv stays constant per channel and the
    batch mean removes it); PatchTST: the output bias
    of a branch that is added right before a post-placement batchnorm (which subtracts the batch mean,
    so a constant shift cancels): mixer.out.bias / mixer.fc2.bias, ffn.out.bias / ffn.fc2.bias of
    blocks with placement post and a batchnorm norm.  Float32 backprop gives rounding noise there."""
    names = set()
    if isinstance(model, Informer):  # what feeds a distilling layer's BatchNorm through its conv only
        n_conv = len(model.encoder.conv_layers)
        return ({f"encoder.conv_layers.{i}.conv.bias" for i in range(n_conv)} |
                {f"encoder.layers.{i}.norm2.bias" for i in range(n_conv)})
    if not isinstance(model, PatchTST):
        return names
    own = dict(model.named_parameters())
    for i, b in enumerate(model.block_cfgs):
        if b["placement"] != "post" or b["norm"]["kind"] != "batchnorm":
            continue
        for branch in ("mixer", "ffn"):
            for leaf in ("out.bias", "fc2.bias"):
                n = f"blocks.{i}.{branch}.{leaf}"
                if n in own:
                    names.add(n)
    return names


# --------------------------------------------------------------------------
# checkpoints
# --------------------------------------------------------------------------


def is_model_tensor(name):
    return name not in FIXTURE_TENSORS and not name.startswith(GRAD_PREFIX) and not name.startswith(AFTER_PREFIX)


def state_dict_from_arrays(model, arrays):
    """name -> np.ndarray (as read from a file) -> name -> torch.Tensor with each entry cast to the
    dtype of the model's own state_dict entry (e.g. num_batches_tracked: stored F32 [] -> int64 [])."""
    own = model.state_dict()
    sd = {}
    for k, v in arrays.items():
        t = torch.from_numpy(v)
        if k in own and own[k].dtype != t.dtype:
            want = own[k].dtype
            if not want.is_floating_point:
                if not torch.equal(t, torch.round(t)):
                    raise ValueError(f"{k}: non-integral value for an integer buffer")
                t = torch.round(t)
            t = t.to(want)
        sd[k] = t
    return sd


def load_checkpoint(path, dtype=torch.float32):
    """Load a seqformer checkpoint (or fixture) -> (model in eval mode, config dict, metadata dict).

    The config comes from ``__metadata__["config"]`` (format_version 2, or 1: converted with
    config_v1_to_v2); the returned config is the canonical format_version 2 form.  The weights are loaded with
    ``load_state_dict(strict=True)``.  Fixture-only tensors (x, y, out, loss, out_eval, grad.*,
    after.*) are skipped so fixtures load too; anything else unknown is an error.  Integer buffers
    (batchnorm num_batches_tracked) are stored as F32 and cast back to int64 here.
    """
    tensors, meta = load_safetensors(path)
    if "config" not in meta:
        raise ValueError(f"{path}: no __metadata__['config']")
    model = build_model(json.loads(meta["config"]))
    cfg = model.cfg
    sd = state_dict_from_arrays(model, {k: v for k, v in tensors.items() if is_model_tensor(k)})
    model.load_state_dict(sd, strict=True)
    model = model.to(dtype).eval()
    return model, cfg, meta


def save_checkpoint(path, model, cfg, extra_metadata=None, producer="tools/reference/seqformer_ref.py"):
    """Write model's state_dict (all F32) with __metadata__ config = the canonical v2 form of cfg."""
    meta = {"config": json.dumps(canonical_config(cfg)), "format_version": str(FORMAT_VERSION),
            "producer": f"{producer} torch {torch.__version__}"}
    if extra_metadata:
        meta.update(extra_metadata)
    tensors = {k: v.detach().to(torch.float32) for k, v in model.state_dict().items()}
    save_safetensors(path, tensors, meta)
