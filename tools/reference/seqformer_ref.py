"""PyTorch reference twin of seqformer's models, plus a minimal safetensors reader/writer.

The C implementation follows these modules exactly; the parameter names of the
state_dicts below are the contract between the two (checkpoints and fixtures
are loaded with ``load_state_dict(strict=True)``).

Only depends on torch and numpy (the ``safetensors`` package is not needed).
"""

import json
import math
import struct

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

FORMAT_VERSION = 1
REVIN_EPS = 1e-5
NORM_EPS = 1e-5
LINATTN_EPS = 1e-6

# Tensors that fixtures hold besides the model parameters (see make_fixtures.py).
FIXTURE_TENSORS = ("x", "y", "out", "loss", "out_eval")
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
    (eps 1e-5, momentum 0.1, affine, track_running_stats).  Subclassing BatchNorm1d keeps the
    state_dict names flat: <name>.weight, .bias, .running_mean, .running_var, .num_batches_tracked.
    Train mode: normalise with the batch mean and biased variance, and update
    running_mean = 0.9 running_mean + 0.1 mean, running_var = 0.9 running_var + 0.1 var * n/(n-1)
    (n = B*C*N), num_batches_tracked += 1.  Eval mode: normalise with the running statistics."""

    def __init__(self, d):
        super().__init__(d)  # eps=1e-5 == NORM_EPS, momentum=0.1, affine, track_running_stats

    def forward(self, x):
        return super().forward(x.transpose(1, 2)).transpose(1, 2)


def make_norm(kind, d):
    if kind == "layernorm":
        return nn.LayerNorm(d, eps=NORM_EPS)
    if kind == "rmsnorm":
        return RMSNorm(d)
    if kind == "batchnorm":
        return TokenBatchNorm(d)
    raise ValueError(f"unknown norm {kind!r}")


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


def softmax_attention(q, k, v, causal):
    scale = q.shape[-1] ** -0.5
    s = (q @ k.transpose(-2, -1)) * scale
    if causal:
        n = s.shape[-1]
        mask = torch.ones(n, n, dtype=torch.bool, device=s.device).triu(1)
        s = s.masked_fill(mask, float("-inf"))
    return torch.softmax(s, dim=-1) @ v


class Mixer(nn.Module):
    def __init__(self, d, n_heads, kind, causal):
        super().__init__()
        if d % n_heads:
            raise ValueError("d_model must be divisible by n_heads")
        if kind not in ("softmax", "linear"):
            raise ValueError(f"unknown mixer {kind!r}")
        self.d, self.h, self.kind, self.causal = d, n_heads, kind, causal
        self.qkv = nn.Linear(d, 3 * d)
        self.out = nn.Linear(d, d)

    def forward(self, x):
        b, n, d = x.shape
        h, dh = self.h, d // self.h
        qkv = self.qkv(x)
        q, k, v = (qkv[:, :, i * d:(i + 1) * d].reshape(b, n, h, dh).transpose(1, 2) for i in range(3))
        if self.kind == "softmax":
            o = softmax_attention(q, k, v, self.causal)
        else:
            o = linear_attention(q, k, v, self.causal)
        o = o.transpose(1, 2).reshape(b, n, d)
        return self.out(o)


class FFN(nn.Module):
    def __init__(self, d, d_ff, dropout):
        super().__init__()
        self.fc1 = nn.Linear(d, d_ff)
        self.act = nn.GELU()
        self.drop = nn.Dropout(dropout)
        self.fc2 = nn.Linear(d_ff, d)

    def forward(self, x):
        return self.fc2(self.drop(self.act(self.fc1(x))))


class Block(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        d = cfg["d_model"]
        self.pre = cfg["norm_place"] == "pre"
        if cfg["norm_place"] not in ("pre", "post"):
            raise ValueError(f"unknown norm_place {cfg['norm_place']!r}")
        self.norm1 = make_norm(cfg["norm"], d)
        self.mixer = Mixer(d, cfg["n_heads"], cfg["mixer"], bool(cfg["causal"]))
        self.norm2 = make_norm(cfg["norm"], d)
        self.ffn = FFN(d, cfg["d_ff"], cfg["dropout"])
        self.drop = nn.Dropout(cfg["dropout"])

    def forward(self, x):
        if self.pre:
            x = x + self.drop(self.mixer(self.norm1(x)))
            x = x + self.drop(self.ffn(self.norm2(x)))
        else:
            x = self.norm1(x + self.drop(self.mixer(x)))
            x = self.norm2(x + self.drop(self.ffn(x)))
        return x


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


def n_patches(cfg):
    return (cfg["seq_len"] + cfg["stride"] - cfg["patch_len"]) // cfg["stride"] + 1


def revin_norm(x):
    """x [B, L, C] -> (x_norm, mean, stdev); statistics over time, detached."""
    mean = x.mean(dim=1, keepdim=True).detach()
    stdev = torch.sqrt(x.var(dim=1, keepdim=True, unbiased=False) + REVIN_EPS).detach()
    return (x - mean) / stdev, mean, stdev


CONFIG_KEY_ORDER = ("format_version", "model", "seq_len", "pred_len", "n_channels", "d_model", "n_heads",
                    "e_layers", "d_ff", "patch_len", "stride", "kernel_size", "revin", "dropout", "head_dropout",
                    "mixer", "causal", "norm", "norm_place", "pos")


def canonical_config(cfg):
    """Same dict, keys in the documented order (unknown keys kept, at the end)."""
    out = {k: cfg[k] for k in CONFIG_KEY_ORDER if k in cfg}
    out.update({k: v for k, v in cfg.items() if k not in out})
    return out


PATCHTST_DEFAULTS = {
    "format_version": FORMAT_VERSION, "model": "patchtst", "revin": True, "dropout": 0.0,
    "head_dropout": 0.0, "mixer": "softmax", "causal": False, "norm": "layernorm",
    "norm_place": "post", "pos": "learned",
}


class PatchTST(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        cfg = canonical_config({**PATCHTST_DEFAULTS, **cfg})
        self.cfg = cfg
        d, pl = cfg["d_model"], cfg["patch_len"]
        self.seq_len, self.pred_len, self.c = cfg["seq_len"], cfg["pred_len"], cfg["n_channels"]
        self.stride, self.patch_len = cfg["stride"], pl
        self.revin = bool(cfg["revin"])
        self.n = n_patches(cfg)
        if self.n < 1:
            raise ValueError("seq_len too short for patch_len/stride")
        self.patch_embed = nn.Linear(pl, d)
        if cfg["pos"] == "learned":
            self.pos_embed = nn.Parameter(torch.empty(self.n, d).uniform_(-0.02, 0.02))
        elif cfg["pos"] == "sinusoidal":
            self.pos_embed = None
            self._pe64 = sinusoidal_table(self.n, d)  # not a parameter, not in the state_dict
        else:
            raise ValueError(f"unknown pos {cfg['pos']!r}")
        self.drop = nn.Dropout(cfg["dropout"])
        self.blocks = nn.ModuleList([Block(cfg) for _ in range(cfg["e_layers"])])
        self.norm_f = make_norm(cfg["norm"], d) if cfg["norm_place"] == "pre" else None
        self.head = nn.Linear(d * self.n, self.pred_len)
        self.head_drop = nn.Dropout(cfg["head_dropout"])

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
        else:
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
        cfg = canonical_config({"format_version": FORMAT_VERSION, "kernel_size": 25, **cfg})
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


def build_model(cfg):
    if isinstance(cfg, str):
        cfg = json.loads(cfg)
    fv = int(cfg.get("format_version", FORMAT_VERSION))
    if fv != FORMAT_VERSION:
        raise ValueError(f"unsupported format_version {fv}")
    kind = cfg.get("model")
    if kind == "patchtst":
        return PatchTST(cfg)
    if kind == "dlinear":
        return DLinear(cfg)
    raise ValueError(f"unknown model {kind!r}")


def count_params(model):
    return sum(p.numel() for p in model.parameters())


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

    The config comes from ``__metadata__["config"]``; the weights are loaded with
    ``load_state_dict(strict=True)``.  Fixture-only tensors (x, y, out, loss, out_eval, grad.*,
    after.*) are skipped so fixtures load too; anything else unknown is an error.  Integer buffers
    (batchnorm num_batches_tracked) are stored as F32 and cast back to int64 here.
    """
    tensors, meta = load_safetensors(path)
    if "config" not in meta:
        raise ValueError(f"{path}: no __metadata__['config']")
    cfg = json.loads(meta["config"])
    model = build_model(cfg)
    sd = state_dict_from_arrays(model, {k: v for k, v in tensors.items() if is_model_tensor(k)})
    model.load_state_dict(sd, strict=True)
    model = model.to(dtype).eval()
    return model, cfg, meta


def save_checkpoint(path, model, cfg, extra_metadata=None, producer="tools/reference/seqformer_ref.py"):
    meta = {"config": json.dumps(cfg), "format_version": str(FORMAT_VERSION),
            "producer": f"{producer} torch {torch.__version__}"}
    if extra_metadata:
        meta.update(extra_metadata)
    tensors = {k: v.detach().to(torch.float32) for k, v in model.state_dict().items()}
    save_safetensors(path, tensors, meta)
