#!/usr/bin/env python3
"""Checks of the reference twin against itself and against independent formulations.

  * safetensors write/read round trip and header layout;
  * linear attention (linear-time formula) vs the explicit masked quadratic form;
  * softmax Mixer vs torch.nn.MultiheadAttention with the same weights (causal and not);
  * configs (docs/config.md): the doc's examples are canonical; canonical_config fills every default
    in the documented order; errors name the field path; config_v1_to_v2 of the five original v1
    fixture configs gives their v2 configs;
  * block kinds: parameter names (metaformer / residual / parallel, identity mixers have none), the
    residual and parallel formulas (pre and post), identity mixers, where block and mlp dropout act,
    final_norm auto / none / a kind, positions none;
  * PatchTST / DLinear forward vs a from-scratch NumPy float64 implementation of the spec that reads
    the stored v2 config itself (every fixture, the hybrid one included);
  * the default ETTh1 PatchTST parameter count (v1 config and the doc's v2 example);
  * every fixture in tests/fixtures reloads (strict), stores its canonical v2 config, and reproduces
    out, loss and grads (batchnorm: also after.* running statistics and out_eval);
  * format_version 1 checkpoints still load into the same model;
  * batchnorm: TokenBatchNorm == the official Transpose/BatchNorm1d/Transpose Sequential (also with
    non-default eps / momentum), state_dict names, F32 num_batches_tracked loads strictly back as int64;
  * check_checkpoint.py on a zero-head checkpoint (v2 and v1 config) vs a NumPy computation of the
    same metric.

Usage (from the repository root):  /usr/bin/python3 tools/reference/selftest.py
"""

import json
import math
import os
import re
import sys
import tempfile

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import seqformer_ref as ref  # noqa: E402
import make_fixtures as mf  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
FAILED = []


def check(name, ok, detail=""):
    print(f"{'ok  ' if ok else 'FAIL'} {name} {detail}")
    if not ok:
        FAILED.append(name)


def test_safetensors():
    t = {"a": torch.randn(3, 4), "b": torch.arange(5, dtype=torch.int64), "c": torch.randn(2, dtype=torch.float64),
         "s": torch.tensor(1.5)}
    with tempfile.TemporaryDirectory() as d:
        p = os.path.join(d, "t.safetensors")
        ref.save_safetensors(p, t, {"config": '{"x":1}', "k": "v"})
        back, meta = ref.load_safetensors(p)
        with open(p, "rb") as f:
            raw = f.read()
    n = int.from_bytes(raw[:8], "little")
    ok = n % 8 == 0 and meta == {"config": '{"x":1}', "k": "v"} and list(back) == list(t)
    ok = ok and all(np.array_equal(back[k], t[k].numpy()) and back[k].dtype == t[k].numpy().dtype for k in t)
    check("safetensors round trip", ok)


def test_linear_attention():
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(3, 2, 11, 5, generator=g, dtype=torch.float64) for _ in range(3))
    for causal in (False, True):
        a = ref.linear_attention(q, k, v, causal)
        b = ref.linear_attention_quadratic(q, k, v, causal)
        # explicit per-position loop, straight from the formula
        fq, fk = ref.elu_feature_map(q), ref.elu_feature_map(k)
        c = torch.empty_like(a)
        for i in range(q.shape[2]):
            j = i + 1 if causal else q.shape[2]
            S = torch.einsum("bhjd,bhje->bhde", fk[:, :, :j], v[:, :, :j])
            z = fk[:, :, :j].sum(2)
            num = torch.einsum("bhd,bhde->bhe", fq[:, :, i], S)
            den = (fq[:, :, i] * z).sum(-1, keepdim=True) + ref.LINATTN_EPS
            c[:, :, i] = num / den
        e1, e2 = (a - b).abs().max().item(), (a - c).abs().max().item()
        check(f"linear attention causal={causal}", e1 < 1e-12 and e2 < 1e-12, f"quadratic {e1:.1e} loop {e2:.1e}")


def test_feature_maps():
    """The feature-map mixers' pieces: linear-time == quadratic form (cosFormer's left_product check)
    for every feature map, causal and not; cosFormer's features give relu(q).relu(k) cos(pi/2 (i-j)/M);
    FAVOR+ estimates exp(q.k/sqrt(d)); l2 makes FAVOR+ depend on the direction only."""
    torch.manual_seed(5)
    B, H, N, dh = 2, 3, 11, 4
    q, k, v = (torch.randn(B, H, N, dh, dtype=torch.float64) for _ in range(3))
    w = ref.favor_projection(12, dh, dtype=torch.float64)
    maps = {"relu": (F.relu(q), F.relu(k), False, 1e-6),
            "cosformer": (ref.cosformer_features(q, 15), ref.cosformer_features(k, 15), True, 1e-6)}
    for causal in (False, True):
        maps["favor"] = (ref.favor_features(q, w, "query"),
                         ref.favor_features(k, w, "key_causal" if causal else "key"), False, 0.0)
        for name, (fq, fk, clamp, eps) in maps.items():
            a = ref.feature_attention(fq, fk, v, causal, clamp, eps)
            b = ref.feature_attention_quadratic(fq, fk, v, causal, clamp, eps)
            e = (a - b).abs().max().item()
            check(f"feature attention linear == quadratic: {name} causal={causal}", e < 1e-12, f"{e:.1e}")
    fq, fk = ref.cosformer_features(q, 15), ref.cosformer_features(k, 15)
    i = torch.arange(N, dtype=torch.float64)
    want = (F.relu(q) @ F.relu(k).transpose(-2, -1)) * torch.cos(math.pi / 2 * (i[:, None] - i[None, :]) / 15)
    e = (fq @ fk.transpose(-2, -1) - want).abs().max().item()
    check("cosformer features: phi(q_i).phi(k_j) = relu(q_i).relu(k_j) cos(pi/2 (i-j)/M)", e < 1e-12, f"{e:.1e}")
    d, m = 8, 8192
    w = ref.favor_projection(m, d, dtype=torch.float64)
    x, y = 0.6 * torch.randn(2, d, dtype=torch.float64), 0.6 * torch.randn(2, d, dtype=torch.float64)
    est = (ref.favor_features(x[:, None], w, "key_causal") * ref.favor_features(y[:, None], w, "key_causal")).sum(-1)
    true = torch.exp((x * y).sum(-1) / math.sqrt(d))
    sd = torch.sqrt((torch.exp(((x + y) ** 2).sum(-1) / math.sqrt(d)) - 1) / m)  # Performer Lemma 2
    z = ((est[:, 0] / true - 1).abs() / sd).max().item()
    check("favor+ estimates exp(q.k/sqrt(d)) (8192 features)", z < 5, f"{z:.2f} sd")
    p1 = ref.favor_features(x[:, None], w[:16], "query", l2=True)
    p2 = ref.favor_features(3.5 * x[:, None], w[:16], "query", l2=True)
    check("favor+ l2: phi(3.5 x) == phi(x)", (p1 - p2).abs().max().item() < 1e-12)


def projection_ok(w, d):
    """FAVOR+ projection [m, d]: rows orthogonal within each block of d rows (|cos| < 1e-5); mean
    squared row norm d (chi^2(d)) within 5 sd (sd sqrt(2d/m)).  -> (ok, detail)."""
    w = np.asarray(w, dtype=np.float64)
    m = w.shape[0]
    worst = 0.0
    for b0 in range(0, m, d):
        blk = w[b0:b0 + d]
        u = blk / np.linalg.norm(blk, axis=1, keepdims=True)
        g = np.abs(u @ u.T - np.eye(len(blk)))
        worst = max(worst, g.max())
    n2 = (w ** 2).sum(1).mean()
    ok = worst < 1e-5 and abs(n2 - d) < 5 * math.sqrt(2 * d / m)
    return ok, f"worst |cos| {worst:.1e}, mean |w|^2 {n2:.2f} (d {d}, m {m})"


def test_favor_projection():
    w = ref.favor_projection(4096, 8).numpy()
    ok, det = projection_ok(w, 8)
    mean, sq = w.mean(), (w ** 2).mean()
    ok = ok and abs(mean) < 5 / math.sqrt(w.size) and abs(sq - 1) < 5 * math.sqrt(2 / w.size)
    check("favor_projection(4096, 8): orthogonal blocks, chi(d) row norms, N(0,1) entries", ok,
          f"{det}, entry mean {mean:.4f}, mean square {sq:.4f}")
    for fx in mf.FIXTURES:
        tensors, meta = ref.load_safetensors(os.path.join(ROOT, "tests", "fixtures", fx.name + ".safetensors"))
        for name, t in tensors.items():
            if name.endswith(".projection"):
                ok, det = projection_ok(t, t.shape[1])
                check(f"fixture {fx.name}: {name} is a FAVOR+ projection", ok and t.dtype == np.float32, det)


def test_softmax_vs_mha():
    torch.manual_seed(1)
    d, h, n = 8, 2, 7
    for causal in (False, True):
        mix = ref.Mixer(d, h, "softmax", causal).double()
        mha = nn.MultiheadAttention(d, h, batch_first=True).double()
        with torch.no_grad():
            mha.in_proj_weight.copy_(mix.qkv.weight)
            mha.in_proj_bias.copy_(mix.qkv.bias)
            mha.out_proj.weight.copy_(mix.out.weight)
            mha.out_proj.bias.copy_(mix.out.bias)
        x = torch.randn(4, n, d, dtype=torch.float64)
        mask = torch.ones(n, n, dtype=torch.bool).triu(1) if causal else None
        a = mix(x)
        b, _ = mha(x, x, x, attn_mask=mask, need_weights=False)
        e = (a - b).abs().max().item()
        check(f"softmax mixer vs nn.MultiheadAttention causal={causal}", e < 1e-12, f"{e:.1e}")


# ---- independent NumPy float64 implementation of the spec (docs/config.md) ----
# Reads the canonical format_version 2 config itself (its own repeat expansion and final-norm rule).

def np_norm(x, sd, pre, spec, bn_train=False, bn_stats=None):
    kind, eps = spec["kind"], spec["eps"]
    if kind == "batchnorm":
        m = spec["momentum"]
        w, b = sd[pre + ".weight"], sd[pre + ".bias"]
        if not bn_train:
            return (x - sd[pre + ".running_mean"]) / np.sqrt(sd[pre + ".running_var"] + eps) * w + b
        flat = x.reshape(-1, x.shape[-1])  # every token of every series
        mu = flat.mean(0)
        var = ((flat - mu) ** 2).mean(0)
        n = flat.shape[0]
        if bn_stats is not None:
            bn_stats[pre + ".running_mean"] = (1 - m) * sd[pre + ".running_mean"] + m * mu
            bn_stats[pre + ".running_var"] = (1 - m) * sd[pre + ".running_var"] + m * var * n / (n - 1)
            bn_stats[pre + ".num_batches_tracked"] = sd[pre + ".num_batches_tracked"] + 1
        return (x - mu) / np.sqrt(var + eps) * w + b
    if kind == "layernorm":
        mu = x.mean(-1, keepdims=True)
        var = ((x - mu) ** 2).mean(-1, keepdims=True)
        return (x - mu) / np.sqrt(var + eps) * sd[pre + ".weight"] + sd[pre + ".bias"]
    assert kind == "rmsnorm"
    return x / np.sqrt((x ** 2).mean(-1, keepdims=True) + eps) * sd[pre + ".weight"]


def np_linear(x, sd, pre):
    return x @ sd[pre + ".weight"].T + sd[pre + ".bias"]


def np_gelu(x):
    from math import erf
    return 0.5 * x * (1.0 + np.vectorize(erf)(x / math.sqrt(2.0)))


def np_features(spec, sd, pre, q, k):
    """Feature maps of the linear (relu, favor) and cosformer mixers, per head: q, k [B', N, dh] ->
    (phi(q), phi(k), clamp normaliser?, eps).  cosformer's length is N (PatchTST's max_T is N)."""
    N, dh = q.shape[1], q.shape[2]
    if spec["kind"] == "cosformer":  # an lm's causal cosformer re-weights over max_len
        th = math.pi / 2 * np.arange(1, N + 1) / spec.get("_max_T", N)
        f = lambda a: np.concatenate([np.maximum(a, 0) * np.sin(th)[:, None],
                                      np.maximum(a, 0) * np.cos(th)[:, None]], -1)
        return f(q), f(k), True, 1e-6
    if spec["feature_map"] == "relu":
        return np.maximum(q, 0), np.maximum(k, 0), False, 1e-6
    w = sd[pre + ".projection"]
    m = w.shape[0]
    l2 = spec["kind"] == "rpe"  # rpe's favor: FAVOR+ on l2-normalised q and k

    def favor(a, c_kind):
        if l2:
            a = a / np.maximum(np.linalg.norm(a, axis=-1, keepdims=True), 1e-12)
        a = a * dh ** -0.25
        u = a @ w.T
        diag = (a ** 2).sum(-1, keepdims=True) / 2
        if c_kind == "query":
            c = u.max(-1, keepdims=True)
        elif c_kind == "key":
            c = u.max(axis=(1, 2), keepdims=True)
        else:
            c = max(0.0, (w ** 2).sum(-1).max() / 2 - 30.0)
        return m ** -0.5 * (np.exp(u - diag - c) + 1e-6)
    return favor(q, "query"), favor(k, "key_causal" if spec["causal"] else "key"), False, 0.0


def np_attention(x, sd, pre, spec):
    """softmax / local (sliding window) / linear (elu+1, relu, favor) / cosformer / rpe attention,
    straight from the formulas: a loop over heads and query positions (vectorised over the series)."""
    Bp, N, d = x.shape
    H = spec["n_heads"]
    dh = d // H
    qkv = np_linear(x, sd, pre + ".qkv")
    out = np.zeros_like(x)
    phi = lambda a: np.where(a > 0, a + 1.0, np.exp(np.minimum(a, 0.0)))  # elu(a) + 1
    pos = spec.get("_positions", {"kind": "none"})  # the model's positions, when inside attention
    for hh in range(H):
        q = qkv[:, :, hh * dh:(hh + 1) * dh]
        k = qkv[:, :, d + hh * dh:d + (hh + 1) * dh]
        v = qkv[:, :, 2 * d + hh * dh:2 * d + (hh + 1) * dh]
        if pos["kind"] == "rope":  # as complex numbers: (x_i + i x_{i+dh/2}) e^{i p theta_i}
            half = dh // 2
            theta = np.array([pos["base"] ** (-2.0 * t / dh) for t in range(half)])
            rot = np.exp(1j * np.arange(N)[:, None] * theta[None, :])
            rope = lambda a: (lambda z: np.concatenate([z.real, z.imag], -1))((a[..., :half] + 1j * a[..., half:]) * rot)
            q, k = rope(q), rope(k)
        for i in range(N):
            lo, j = 0, i + 1 if spec["causal"] else N
            if spec["kind"] == "local" or (spec["kind"] == "ls" and hh < spec["local_heads"]):
                lo, j = max(0, i - spec["window"]), min(j, i + spec["window"] + 1)  # keys within `window` of i
            if spec["kind"] == "rpe":  # w_ij = exp(bias[h, j - i + N - 1]) phi(q_i).phi(k_j)
                if spec["feature_map"] == "favor":
                    fq_all, fk_all = np_features(spec, sd, pre, q, k)[:2]
                    fqi, fkj = fq_all[:, i], fk_all[:, :j]
                else:
                    f = phi if spec["feature_map"] == "elu" else (lambda a: np.maximum(a, 0.0))
                    fqi, fkj = f(q[:, i]), f(k[:, :j])
                M = spec.get("_max_T", N)  # an lm's rpe table spans max_len
                c = np.exp(sd[pre + ".rpe_bias"][hh, np.arange(j) - i + M - 1])
                w = np.einsum("bd,bjd->bj", fqi, fkj) * c
                o = np.einsum("bj,bjd->bd", w, v[:, :j]) / (w.sum(-1, keepdims=True) + 1e-6)
            elif spec["kind"] in ("softmax", "local", "ls"):
                s = np.einsum("bd,bjd->bj", q[:, i], k[:, lo:j]) * dh ** -0.5
                if pos["kind"] == "t5":
                    s = s + np.array([sd[pre + ".relative_attention_bias"][
                        ref.t5_bucket(jj - i, not spec["causal"], pos["num_buckets"], pos["max_distance"]), hh]
                        for jj in range(lo, j)])
                w = np.exp(s - s.max(-1, keepdims=True))
                w /= w.sum(-1, keepdims=True)
                o = np.einsum("bj,bjd->bd", w, v[:, lo:j])
            elif spec["kind"] == "linear" and spec["feature_map"] == "elu":
                S = np.einsum("bjd,bje->bde", phi(k[:, :j]), v[:, :j])
                z = phi(k[:, :j]).sum(1)
                fq = phi(q[:, i])
                o = np.einsum("bd,bde->be", fq, S) / ((fq * z).sum(-1, keepdims=True) + 1e-6)
            else:
                fqs, fks, clamp, eps = np_features(spec, sd, pre, q, k)
                S = np.einsum("bjm,bje->bme", fks[:, :j], v[:, :j])
                z = fks[:, :j].sum(1)
                fq = fqs[:, i]
                den = (fq * z).sum(-1, keepdims=True)
                o = np.einsum("bm,bme->be", fq, S) / (np.maximum(den, eps) if clamp else den + eps)
            out[:, i, hh * dh:(hh + 1) * dh] = o
    return np_linear(out, sd, pre + ".out")


def np_softmax_pool(x, sd, name, z, H):
    """g[b, c] = sum_i softmax_i((z_i . W_h + b_h) / sqrt(Dh))[h(c)] z_i[c], a loop over heads."""
    d = z.shape[-1]
    s = np_linear(z, sd, name) * (d // H) ** -0.5  # [B', N, H]
    w = np.exp(s - s.max(1, keepdims=True))
    w /= w.sum(1, keepdims=True)
    g = np.zeros((z.shape[0], 1, d))
    for h in range(H):
        cols = slice(h * (d // H), (h + 1) * (d // H))
        g[:, 0, cols] = np.einsum("bn,bnc->bc", w[:, :, h], z[:, :, cols])
    return g


def np_fastformer(x, sd, pre, spec):
    d, H = x.shape[-1], spec["n_heads"]
    qkv = np_linear(x, sd, pre + ".qkv")
    q, k, v = qkv[..., :d], qkv[..., d:2 * d], qkv[..., 2 * d:]
    p = np_softmax_pool(x, sd, pre + ".query_att", q, H) * k
    u = np_softmax_pool(x, sd, pre + ".key_att", p, H) * v
    return np_linear(np_linear(u, sd, pre + ".transform") + q, sd, pre + ".out")


def np_linformer(x, sd, pre, spec):
    d, N, H = x.shape[-1], x.shape[1], spec["n_heads"]
    qkv = np_linear(x, sd, pre + ".qkv")
    E = sd[pre + ".proj_k"][:, :N]
    F = E if spec["share_kv"] else sd[pre + ".proj_v"][:, :N]
    kp, vp = np.einsum("rj,bjc->brc", E, qkv[..., d:2 * d]), np.einsum("rj,bjc->brc", F, qkv[..., 2 * d:])
    out, dh = np.zeros_like(x), d // H
    for h in range(H):
        cols = slice(h * dh, (h + 1) * dh)
        for i in range(N):
            s = np.einsum("bc,brc->br", qkv[:, i, cols], kp[:, :, cols]) * dh ** -0.5
            w = np.exp(s - s.max(-1, keepdims=True))
            out[:, i, cols] = np.einsum("br,brc->bc", w / w.sum(-1, keepdims=True), vp[:, :, cols])
    return np_linear(out, sd, pre + ".out")


def np_memory_layer(x, sd, pre, tau, score):
    """MemoryFormer's Memory Layer from its definition: per chunk, the softmax over all 2^tau sign
    vectors s of <z, s>, the probability of the bucket the signs pick (bits MSB first), times its row."""
    K = x.shape[-1] // tau
    signs = np.array([[1.0 if (b >> (tau - 1 - i)) & 1 else -1.0 for i in range(tau)] for b in range(2 ** tau)])
    z = x.reshape(*x.shape[:-1], K, tau)
    logits = z @ signs.T  # [.., K, 2^tau]
    prob = np.exp(logits - logits.max(-1, keepdims=True))
    prob /= prob.sum(-1, keepdims=True)
    code = ((z >= 0) * (2 ** np.arange(tau - 1, -1, -1))).sum(-1)
    p = np.take_along_axis(prob, code[..., None], -1)[..., 0]
    if score == "code":
        p = p * np.abs(z).sum(-1)
    rows = sd[pre + ".tables"][code + np.arange(K) * 2 ** tau]  # [.., K, dout]
    return (p[..., None] * rows).sum(-2) + sd[pre + ".bias"]
def np_mamba_direction(x, sd, pre, spec):
    """One direction of the Mamba-1 mixer in float64, from the equations (docs/config.md)."""
    Bn, L, d = x.shape
    N, K, Di = spec["d_state"], spec["d_conv"], spec["expand"] * d
    R = spec["dt_rank"] or -(-d // 16)
    xz = x @ sd[pre + ".in_proj.weight"].T
    xi, z = xz[..., :Di], xz[..., Di:]
    w, cb = sd[pre + ".conv1d.weight"][:, 0, :], sd[pre + ".conv1d.bias"]  # [Di, K]
    xc = np.zeros_like(xi) + cb
    for t in range(L):
        for k in range(K):
            if t - (K - 1) + k >= 0:
                xc[:, t] += w[:, k] * xi[:, t - (K - 1) + k]
    u = xc / (1.0 + np.exp(-xc))
    xdbl = u @ sd[pre + ".x_proj.weight"].T
    dt, Bm, Cm = xdbl[..., :R], xdbl[..., R:R + N], xdbl[..., R + N:]
    r = dt @ sd[pre + ".dt_proj.weight"].T + sd[pre + ".dt_proj.bias"]
    delta = np.where(r > 20, r, np.log1p(np.exp(np.minimum(r, 20))))
    A = -np.exp(sd[pre + ".A_log"])
    h = np.zeros((Bn, Di, N))
    y = np.zeros_like(u)
    for t in range(L):
        dl = delta[:, t, :, None]
        h = np.exp(dl * A) * h + dl * Bm[:, t, None, :] * u[:, t, :, None]
        y[:, t] = (h * Cm[:, t, None, :]).sum(-1)
    y = (y + u * sd[pre + ".D"]) * z / (1.0 + np.exp(-z))
    return y @ sd[pre + ".out_proj.weight"].T


def np_mamba(x, sd, pre, spec):
    y = np_mamba_direction(x, sd, pre, spec)
    if spec["bidirectional"]:
        y = y + np_mamba_direction(x[:, ::-1], sd, pre + ".bwd", spec)[:, ::-1]
    return y
def np_sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def np_diag_rnn(x, sd, pre, spec):
    """gru_diag / lstm_cifg from their defining equations (kernels/pararnn.h), a loop over tokens."""
    B_, T, d = x.shape
    A, W, b = sd[pre + ".A"], sd[pre + ".B"], sd[pre + ".b"]
    H, hi, _, hs = W.shape
    N = H * hs
    u = np.zeros((B_, T, 3, N))
    for h in range(H):
        for g in range(3):
            u[:, :, g, h * hs:(h + 1) * hs] = x[..., h * hi:(h + 1) * hi] @ W[h, :, g, :]
    u += b
    hcur, ccur, ys = np.zeros((B_, N)), np.zeros((B_, N)), []
    for t in range(T):
        ut = u[:, t]
        if spec["kind"] == "gru_diag":
            z, r = np_sigmoid(A[0] * hcur + ut[:, 0]), np_sigmoid(A[1] * hcur + ut[:, 1])
            hcur = z * np.tanh(A[2] * hcur * r + ut[:, 2]) + (1 - z) * hcur
        else:
            C = sd[pre + ".C"]
            f = np_sigmoid(A[0] * hcur + ut[:, 0] + C[0] * ccur)
            ccur = f * ccur + (1 - f) * np.tanh(A[2] * hcur + ut[:, 2])
            hcur = np_sigmoid(A[1] * hcur + ut[:, 1] + C[1] * ccur) * np.tanh(ccur)
        ys.append(hcur)
    y = np.stack(ys, 1)
    return np_linear(y, sd, pre + ".out") if pre + ".out.weight" in sd else y


def np_dense_rnn(x, sd, pre, spec):
    """gru / lstm with PyTorch's gate order (GRU r, z, n; LSTM i, f, g, o)."""
    Wi, Wh, bi, bh = (sd[pre + k] for k in (".weight_ih_l0", ".weight_hh_l0", ".bias_ih_l0", ".bias_hh_l0"))
    N = Wh.shape[1]
    gi = x @ Wi.T + bi
    hcur, ccur, ys = np.zeros((x.shape[0], N)), np.zeros((x.shape[0], N)), []
    for t in range(x.shape[1]):
        a, gh = gi[:, t], hcur @ Wh.T + bh
        if spec["kind"] == "gru":
            r, z = np_sigmoid(a[:, :N] + gh[:, :N]), np_sigmoid(a[:, N:2 * N] + gh[:, N:2 * N])
            n = np.tanh(a[:, 2 * N:] + r * gh[:, 2 * N:])
            hcur = (1 - z) * n + z * hcur
        else:
            g = a + gh
            i, f, o = np_sigmoid(g[:, :N]), np_sigmoid(g[:, N:2 * N]), np_sigmoid(g[:, 3 * N:])
            ccur = f * ccur + i * np.tanh(g[:, 2 * N:3 * N])
            hcur = o * np.tanh(ccur)
        ys.append(hcur)
    y = np.stack(ys, 1)
    return np_linear(y, sd, pre + ".out") if pre + ".out.weight" in sd else y
def np_s4d(x, sd, pre, spec):
    """S4D as s4d.py computes it (bidirectional: a second kernel from the second C over later tokens):
    the Vandermonde kernel K[h, l] = 2 Re sum_n C_n (e^{dt A_n} - 1)/A_n
    e^{l dt A_n}, then the causal convolution as an explicit sum (the twin runs the recurrence, the C
    side an FFT), GELU, output_linear, GLU."""
    B, T, H = x.shape
    dt = np.exp(sd[pre + ".kernel.log_dt"])
    A = -np.exp(sd[pre + ".kernel.log_A_real"]) + 1j * sd[pre + ".kernel.A_imag"]
    Cw = sd[pre + ".kernel.C"][..., 0] + 1j * sd[pre + ".kernel.C"][..., 1]
    dtA = A * dt[:, None]
    kern = lambda c: 2 * np.einsum("hn,hnl->hl", c * (np.exp(dtA) - 1) / A,
                                   np.exp(dtA[..., None] * np.arange(T))).real
    K = kern(Cw[0] if spec["bidirectional"] else Cw)
    Kb = kern(Cw[1]) if spec["bidirectional"] else np.zeros_like(K)
    y = np.zeros_like(x)
    for t in range(T):
        for j in range(T):  # causal part j <= t, anti-causal (bidirectional) j > t
            y[:, t] += K[:, t - j] * x[:, j] if j <= t else Kb[:, j - t - 1] * x[:, j]
    y = np_gelu(y + sd[pre + ".D"] * x)
    g = np_linear(y, sd, pre + ".output_linear")
    return g[..., :H] / (1 + np.exp(-g[..., H:]))


def np_deltanet(x, sd, pre, spec):
    """DeltaNet with the delta rule in the chunked WY form of fla's naive delta_rule_chunkwise (chunks
    of spec chunk_size, the last one short): T = (I + strict_lower(diag(beta) K K^T))^-1,
    W = T diag(beta) K, U = T diag(beta) V, then o = Q S + lower(Q K^T)(U - W S), S += K^T (U - W S)."""
    B, T, d = x.shape
    H = spec["n_heads"]
    Dh, C = d // H, spec["chunk_size"]
    silu = lambda a: a / (1 + np.exp(-a))
    l2 = lambda a: a / np.sqrt((a ** 2).sum(-1, keepdims=True) + 1e-6)
    proj = lambda name: x @ sd[f"{pre}.{name}.weight"].T
    q = l2(silu(proj("q_proj")).reshape(B, T, H, Dh)) * Dh ** -0.5
    k = l2(silu(proj("k_proj")).reshape(B, T, H, Dh))
    v = silu(proj("v_proj")).reshape(B, T, H, Dh)
    beta = 1 / (1 + np.exp(-proj("b_proj")))
    o = np.zeros_like(v)
    for b in range(B):
        for h in range(H):
            S = np.zeros((Dh, Dh))
            for t0 in range(0, T, C):
                sl = slice(t0, min(t0 + C, T))
                Q, Kc, V, bt = q[b, sl, h], k[b, sl, h], v[b, sl, h], beta[b, sl, h][:, None]
                m = Kc.shape[0]
                Tm = np.linalg.inv(np.eye(m) + np.tril((bt * Kc) @ Kc.T, -1))
                W, U = Tm @ (bt * Kc), Tm @ (bt * V)
                Up = U - W @ S
                o[b, sl, h] = Q @ S + np.tril(Q @ Kc.T) @ Up
                S = S + Kc.T @ Up
    w = sd[pre + ".o_norm.weight"]
    o = o / np.sqrt((o ** 2).mean(-1, keepdims=True) + 1e-5) * w
    return o.reshape(B, T, d) @ sd[pre + ".o_proj.weight"].T


def np_dwconv(x, sd, pre, spec):
    """dwconv as its definition reads: y[t, c] = bias[c] + sum_k w[c, 0, k] x[t + k - left, c], zero
    outside the sequence, left = K - 1 (causal) or (K - 1) // 2."""
    B, T, d = x.shape
    w, bias = sd[pre + ".conv.weight"], sd[pre + ".conv.bias"]
    K = w.shape[2]
    left = K - 1 if spec["causal"] else (K - 1) // 2
    y = np.zeros_like(x) + bias
    for t in range(T):
        for k in range(K):
            if 0 <= t + k - left < T:
                y[:, t] += w[:, 0, k] * x[:, t + k - left]
    return y


def np_mixer(x, sd, pre, spec):
    kind = spec["kind"]
    if kind == "lut":
        tau, sc = spec["tau"], spec["score"]
        if not spec["ffn"]:
            return np_memory_layer(x, sd, pre, tau, sc)
        h = np_memory_layer(x, sd, pre + ".lut1", tau, sc)
        h = np_norm(h, sd, pre + ".norm", {"kind": "layernorm", "eps": 1e-5})
        return np_memory_layer(h, sd, pre + ".lut2", tau + 2, sc)
    if kind == "mamba":
        return np_mamba(x, sd, pre, spec)
    if kind in ("gru_diag", "lstm_cifg"):
        return np_diag_rnn(x, sd, pre, spec)
    if kind in ("gru", "lstm"):
        return np_dense_rnn(x, sd, pre, spec)
    if kind == "s4d":
        return np_s4d(x, sd, pre, spec)
    if kind == "deltanet":
        return np_deltanet(x, sd, pre, spec)
    if kind == "dwconv":
        return np_dwconv(x, sd, pre, spec)
    if kind == "linformer":
        return np_linformer(x, sd, pre, spec)
    if kind == "fastformer":
        return np_fastformer(x, sd, pre, spec)
    if kind == "identity":
        return x
    if kind == "mlp":
        h = np_linear(x, sd, pre + ".fc1")
        h = np_gelu(h) if spec["activation"] == "gelu" else np.maximum(h, 0.0)
        return np_linear(h, sd, pre + ".fc2")
    if kind == "glu":
        h = np_linear(x, sd, pre + ".fc1")
        f = spec["d_ff"]
        gate, value = h[..., :f], h[..., f:]
        act = np_gelu(gate) if spec["activation"] == "gelu" else gate / (1.0 + np.exp(-gate))
        return np_linear(act * value, sd, pre + ".fc2")
    return np_attention(x, sd, pre, spec)


def np_block(u, sd, pre, b, nk):
    norm = lambda a, name: np_norm(a, sd, f"{pre}.{name}", b["norm"], **nk)
    post = b["placement"] == "post"
    if b["kind"] == "metaformer":
        tok = lambda a: np_mixer(a, sd, pre + ".mixer", b["token_mixer"])
        ch = lambda a: np_mixer(a, sd, pre + ".ffn", b["channel_mixer"])
        if post:
            h = norm(u + tok(u), "norm1")
            return norm(h + ch(h), "norm2")
        if b["placement"] == "peri":
            h = u + norm(tok(norm(u, "norm1")), "norm1_out")
            return h + norm(ch(norm(h, "norm2")), "norm2_out")
        h = u + tok(norm(u, "norm1"))
        return h + ch(norm(h, "norm2"))
    if b["kind"] == "residual":
        mix = lambda a: np_mixer(a, sd, pre + ".mixer", b["mixer"])
        return norm(u + mix(u), "norm") if post else u + mix(norm(u, "norm"))
    assert b["kind"] == "parallel"
    tok = lambda a: np_mixer(a, sd, pre + ".mixer", b["token_mixer"])
    ch = lambda a: np_mixer(a, sd, pre + ".ffn", b["channel_mixer"])
    if post:
        return norm(u + tok(u) + ch(u), "norm")
    n = norm(u, "norm")
    return u + tok(n) + ch(n)


def np_patchtst(x, sd, cfg, bn_train=False, bn_stats=None):
    B, L, C = x.shape
    s, pl, d = cfg["input"]["stride"], cfg["input"]["patch_len"], cfg["d_model"]
    N = (L + s - pl) // s + 1
    if cfg["revin"]:
        mean = x.mean(1, keepdims=True)
        std = np.sqrt(x.var(1, keepdims=True) + 1e-5)
    else:
        mean, std = np.zeros((B, 1, C)), np.ones((B, 1, C))
    xn = (x - mean) / std
    patches = np.zeros((B * C, N, pl))
    for b in range(B):
        for c in range(C):
            seq = np.concatenate([xn[b, :, c], np.full(s, xn[b, -1, c])])
            for p in range(N):
                patches[b * C + c, p] = seq[p * s:p * s + pl]
    u = np_linear(patches, sd, "patch_embed")
    if cfg["positions"]["kind"] == "learned":
        u = u + sd["pos_embed"]
    elif cfg["positions"]["kind"] == "sinusoidal":
        pe = np.zeros((N, d))
        for p in range(N):
            for i in range(0, d, 2):
                pe[p, i] = math.sin(p / 10000 ** (i / d))
                pe[p, i + 1] = math.cos(p / 10000 ** (i / d))
        u = u + pe
    nk = dict(bn_train=bn_train, bn_stats=bn_stats)
    i = 0
    last = None
    for entry in cfg["blocks"]:
        entry = with_attention_positions(entry, cfg)
        for _ in range(entry["repeat"]):
            u = np_block(u, sd, f"blocks.{i}", entry, nk)
            last, i = entry, i + 1
    fn = cfg["final_norm"]
    if fn == "auto":
        spec = last["norm"] if last is not None and last["placement"] in ("pre", "peri") else None
    elif fn == "none":
        spec = None
    else:
        spec = {"kind": fn, "eps": 1e-5, "momentum": 0.1}
    if spec is not None:
        u = np_norm(u, sd, "norm_f", spec, **nk)
    flat = np.zeros((B * C, d * N))
    for di in range(d):
        for p in range(N):
            flat[:, di * N + p] = u[:, p, di]
    y = np_linear(flat, sd, "head").reshape(B, C, -1).transpose(0, 2, 1)
    return y * std + mean


def np_dlinear(x, sd, cfg):
    B, L, C = x.shape
    k = cfg["kernel_size"]
    p = (k - 1) // 2
    out = np.zeros((B, cfg["pred_len"], C))
    for b in range(B):
        for c in range(C):
            seq = np.concatenate([np.full(p, x[b, 0, c]), x[b, :, c], np.full(p, x[b, -1, c])])
            trend = np.array([seq[t:t + k].mean() for t in range(L)])
            seas = x[b, :, c] - trend
            out[b, :, c] = np_linear(seas, sd, "Linear_Seasonal") + np_linear(trend, sd, "Linear_Trend")
    return out


def np_itransformer(x, sd, cfg, marks=None):
    """iTransformer from its description (docs/config.md): use_norm statistics per window and
    variate, one token per variate (its whole look-back) and, with time_tokens, one per look-back
    time feature, blocks, final norm, per-token projector of the variate tokens."""
    B, L, C = x.shape
    if cfg["use_norm"]:
        mean = x.mean(1, keepdims=True)
        std = np.sqrt(((x - mean) ** 2).mean(1, keepdims=True) + 1e-5)
    else:
        mean, std = np.zeros((B, 1, C)), np.ones((B, 1, C))
    tokens = ((x - mean) / std).transpose(0, 2, 1)  # [B, C, L]
    if cfg["input"]["time_tokens"]:
        tokens = np.concatenate([tokens, marks[:, :L].transpose(0, 2, 1)], axis=1)  # [B, C+F, L]
    u = np_linear(tokens, sd, "embed")
    if cfg["positions"]["kind"] == "learned":
        u = u + sd["pos_embed"]
    i = 0
    for entry in cfg["blocks"]:
        for _ in range(entry["repeat"]):
            u = np_block(u, sd, f"blocks.{i}", entry, {})
            i += 1
    if cfg["final_norm"] != "none":
        u = np_norm(u, sd, "norm_f", {"kind": cfg["final_norm"], "eps": 1e-5, "momentum": 0.1})
    y = np_linear(u[:, :C], sd, "projector").transpose(0, 2, 1)  # [B, P, C]
    return y * std + mean


def with_attention_positions(entry, cfg):
    """A block entry whose softmax mixers carry the model's positions when they act inside
    attention (rope, t5), else the entry itself."""
    if cfg["positions"]["kind"] not in ("rope", "t5"):
        return entry
    entry = json.loads(json.dumps(entry))
    for key in ("token_mixer", "mixer"):
        if key in entry and entry[key]["kind"] == "softmax":
            entry[key]["_positions"] = cfg["positions"]
    return entry


def np_lm(x, sd, cfg):
    """The lm model from its formulas: embedding rows + positions, blocks (every mixer told max_len),
    final norm, head (tied: the embedding table)."""
    ids = x.astype(np.int64)
    B, T = ids.shape
    d, M = cfg["d_model"], cfg["max_len"] or cfg["seq_len"]
    u = sd["embed.weight"][ids]
    if cfg["positions"]["kind"] == "learned":
        u = u + sd["pos_embed"][:T]
    elif cfg["positions"]["kind"] == "sinusoidal":
        pe = np.zeros((T, d))
        for p in range(T):
            for i in range(0, d, 2):
                pe[p, i] = math.sin(p / 10000 ** (i / d))
                pe[p, i + 1] = math.cos(p / 10000 ** (i / d))
        u = u + pe
    i, last = 0, None
    for entry in cfg["blocks"]:
        e = json.loads(json.dumps(with_attention_positions(entry, cfg)))
        for key in ("token_mixer", "channel_mixer", "mixer"):
            if key in e:
                e[key]["_max_T"] = M
        for _ in range(entry["repeat"]):
            u = np_block(u, sd, f"blocks.{i}", e, {})
            last, i = entry, i + 1
    fn = cfg["final_norm"]
    spec = (last["norm"] if last is not None and last["placement"] == "pre" else None) if fn == "auto" \
        else None if fn == "none" else {"kind": fn, "eps": 1e-5, "momentum": 0.1}
    if spec is not None:
        u = np_norm(u, sd, "norm_f", spec)
    if cfg["head"]["tie_weights"]:
        y = u @ sd["embed.weight"].T
        return y + sd["head.bias"] if "head.bias" in sd else y
    return u @ sd["head.weight"].T + (sd["head.bias"] if "head.bias" in sd else 0)
def np_t2(x, sd, cfg, lens):
    """t2: relu(embed) + positions on each series' valid prefix, the blocks, mean, classifier."""
    d, out = cfg["d_model"], []
    for b in range(x.shape[0]):
        n = int(lens[b])
        inp = cfg["input"]
        if inp["kind"] == "conv_patches":  # token t: steps t*stride .. +patch_len-1, zero past n
            P, S = inp["patch_len"], inp["stride"]
            t_n = -(-n // S)
            win = np.zeros((1, t_n, P * x.shape[2]))
            for t in range(t_n):
                for j in range(P):
                    if t * S + j < n:
                        win[0, t, j * x.shape[2]:(j + 1) * x.shape[2]] = x[b, t * S + j]
            u, n = np.maximum(np_linear(win, sd, "embed"), 0.0), t_n
        elif cfg["positions"]["kind"] == "time":  # times in one channel: encoded, not embedded
            ch, sc = cfg["positions"]["channel"], cfg["positions"]["scale"]
            vals = np.delete(x[b:b + 1, :n], ch, axis=2)
            u = np.maximum(np_linear(vals, sd, "embed"), 0.0)
            pe = np.zeros((n, d))
            for p in range(n):
                for i in range(0, d, 2):
                    pe[p, i] = math.sin(sc * float(x[b, p, ch]) / 10000 ** (i / d))
                    pe[p, i + 1] = math.cos(sc * float(x[b, p, ch]) / 10000 ** (i / d))
            u = u + pe
        else:
            u = np.maximum(np_linear(x[b:b + 1, :n], sd, "embed"), 0.0)
        if cfg["positions"]["kind"] == "learned":
            u = u + sd["pos_embed"][:n]
        elif cfg["positions"]["kind"] == "sinusoidal":
            pe = np.zeros((n, d))
            for p in range(n):
                for i in range(0, d, 2):
                    pe[p, i] = math.sin(p / 10000 ** (i / d))
                    pe[p, i + 1] = math.cos(p / 10000 ** (i / d))
            u = u + pe
        i = 0
        for entry in cfg["blocks"]:
            for _ in range(entry["repeat"]):
                u = np_block(u, sd, f"blocks.{i}", with_attention_positions(entry, cfg), {})
                i += 1
        out.append(u.mean(axis=1))
    return np_linear(np.concatenate(out), sd, "classifier")


def test_numpy_twin():
    for name, _ in mf.FIXTURES:
        path = os.path.join(ROOT, "tests", "fixtures", name + ".safetensors")
        tensors, meta = ref.load_safetensors(path)
        cfg = json.loads(meta["config"])  # the stored canonical v2 config, read by the NumPy twin itself
        if cfg["model"] == "informer":  # no NumPy spec twin for Informer (the C parity test covers it)
            continue
        sd = {k: v.astype(np.float64) for k, v in tensors.items()}
        x = sd["x"]
        np_model = {"patchtst": np_patchtst, "dlinear": np_dlinear, "itransformer": np_itransformer,
                    "lm": np_lm, "t2": np_t2}
        marks = sd.get("marks", sd.get("lens"))  # t2: the valid lengths take the marks' place
        y_np = np_model[cfg["model"]](x, sd, cfg, marks) if marks is not None else \
            np_model[cfg["model"]](x, sd, cfg)
        model, _, _ = ref.load_checkpoint(path, dtype=torch.float64)
        with torch.no_grad():
            y_t = (model(torch.from_numpy(x)) if marks is None else
                   model(torch.from_numpy(x), torch.from_numpy(marks))).numpy()
        e = np.abs(y_np - y_t).max() / np.abs(y_np).max()
        check(f"numpy float64 spec twin vs torch float64: {name}", e < 1e-10, f"rel {e:.1e}")
        if mf.is_batchnorm(cfg):
            # train mode: batch statistics over all B*C*N tokens, running-stat update
            stats = {}
            y_np = np_patchtst(x, sd, cfg, bn_train=True, bn_stats=stats)
            model.train(True)
            with torch.no_grad():
                y_t = model(torch.from_numpy(x)).numpy()
            e = np.abs(y_np - y_t).max() / np.abs(y_np).max()
            bufs = dict(model.named_buffers())
            e_b = max(np.abs(stats[k] - bufs[k].double().numpy()).max() for k in stats)
            check(f"numpy float64 spec twin vs torch float64, train mode + running stats: {name}",
                  e < 1e-10 and e_b < 1e-12 and len(stats) == len(bufs) and
                  all(bufs[k].dtype == torch.int64 for k in bufs if k.endswith("num_batches_tracked")),
                  f"rel {e:.1e}, buffers abs {e_b:.1e}")


# ---- configs (docs/config.md) ----

# The format_version 1 configs the five original fixtures were written with (verbatim from their
# __metadata__ before format_version 2).
V1_FIXTURE_CONFIGS = {
    "patchtst_softmax_post": {"format_version": 1, "model": "patchtst", "seq_len": 48, "pred_len": 12,
                              "n_channels": 3, "d_model": 8, "n_heads": 2, "e_layers": 2, "d_ff": 16,
                              "patch_len": 8, "stride": 4, "revin": True, "dropout": 0.0, "head_dropout": 0.0,
                              "mixer": "softmax", "causal": False, "norm": "layernorm", "norm_place": "post",
                              "pos": "learned"},
    "patchtst_linear_pre": {"format_version": 1, "model": "patchtst", "seq_len": 48, "pred_len": 12,
                            "n_channels": 3, "d_model": 8, "n_heads": 2, "e_layers": 2, "d_ff": 16,
                            "patch_len": 8, "stride": 4, "revin": True, "dropout": 0.0, "head_dropout": 0.0,
                            "mixer": "linear", "causal": False, "norm": "rmsnorm", "norm_place": "pre",
                            "pos": "sinusoidal"},
    "patchtst_softmax_causal": {"format_version": 1, "model": "patchtst", "seq_len": 48, "pred_len": 12,
                                "n_channels": 3, "d_model": 8, "n_heads": 2, "e_layers": 2, "d_ff": 16,
                                "patch_len": 8, "stride": 4, "revin": True, "dropout": 0.0, "head_dropout": 0.0,
                                "mixer": "softmax", "causal": True, "norm": "layernorm", "norm_place": "pre",
                                "pos": "learned"},
    "dlinear": {"format_version": 1, "model": "dlinear", "seq_len": 48, "pred_len": 12, "n_channels": 3,
                "kernel_size": 25},
    "patchtst_batchnorm_post": {"format_version": 1, "model": "patchtst", "seq_len": 48, "pred_len": 12,
                                "n_channels": 3, "d_model": 8, "n_heads": 2, "e_layers": 2, "d_ff": 16,
                                "patch_len": 8, "stride": 4, "revin": True, "dropout": 0.0, "head_dropout": 0.0,
                                "mixer": "softmax", "causal": False, "norm": "batchnorm", "norm_place": "post",
                                "pos": "learned"},
}


def doc_examples():
    """The config examples of docs/config.md: the ```json blocks (patchtst, itransformer, informer, t2)
    and the inline dlinear one."""
    text = open(os.path.join(ROOT, "docs", "config.md")).read()
    blocks = re.findall(r"```json\n(.*?)```", text, re.S)
    dl = re.search(r'`(\{"format_version": 2, "task": "forecast", "model": "dlinear".*?\})`', text, re.S)
    return [json.loads(b) for b in blocks] + ([json.loads(dl.group(1).replace("\n", " "))] if dl else [])


def raises(fn, needle):
    try:
        fn()
    except ref.ConfigError as e:
        return needle in str(e), str(e)
    return False, "no error"


def test_config():
    ex = doc_examples()
    ok = len(ex) == 6 and all(json.dumps(ref.canonical_config(c)) == json.dumps(c) for c in ex)  # + lm, t2
    check("docs/config.md examples are canonical (same keys, order, values)", ok, f"{len(ex)} examples")
    m = ref.build_model(ex[0])
    check("docs/config.md patchtst example: 81,728 parameters, 3 blocks, no norm_f",
          ref.count_params(m) == 81728 and len(m.blocks) == 3 and m.norm_f is None, f"{ref.count_params(m)}")

    # defaults, filled in and ordered as the doc lists them
    minimal = {"format_version": 2, "model": "patchtst", "seq_len": 96, "pred_len": 24, "n_channels": 2,
               "d_model": 8, "blocks": [{"kind": "metaformer"}, {"kind": "residual", "repeat": 2},
                                        {"kind": "parallel", "norm": {"kind": "batchnorm"}}]}
    want_block_common = {"placement": "pre", "dropout": 0, "norm": {"kind": "layernorm", "eps": 1e-05}}
    att = {"kind": "softmax", "n_heads": 4, "causal": False, "attn_dropout": 0}
    mlp = {"kind": "mlp", "d_ff": 128, "activation": "gelu", "dropout": 0}
    want = {"format_version": 2, "task": "forecast", "model": "patchtst", "seq_len": 96, "pred_len": 24,
            "n_channels": 2, "d_model": 8, "revin": True, "dropout": 0, "final_norm": "auto",
            "input": {"kind": "patches", "patch_len": 16, "stride": 8}, "positions": {"kind": "learned"},
            "blocks": [{"kind": "metaformer", "repeat": 1, **want_block_common, "token_mixer": att,
                        "channel_mixer": mlp},
                       {"kind": "residual", "repeat": 2, **want_block_common, "mixer": att},
                       {"kind": "parallel", "repeat": 1, "placement": "pre", "dropout": 0,
                        "norm": {"kind": "batchnorm", "eps": 1e-05, "momentum": 0.1}, "token_mixer": att,
                        "channel_mixer": mlp}],
            "head": {"kind": "flatten", "dropout": 0}}
    got = ref.canonical_config(minimal)
    ok = json.dumps(got) == json.dumps(want) and ref.canonical_config(got) == got
    ok = ok and json.dumps(ref.canonical_config({"format_version": 2, "model": "dlinear", "seq_len": 48,
                                                 "pred_len": 12, "n_channels": 3})) == \
        '{"format_version": 2, "task": "forecast", "model": "dlinear", "seq_len": 48, "pred_len": 12, ' \
        '"n_channels": 3, "kernel_size": 25}'
    check("canonical_config: every default filled in, documented key order, idempotent, repeat kept", ok,
          json.dumps(got) if not ok else "")
    m = ref.build_model(minimal)
    names = [n for n, _ in m.named_parameters()]
    ok = len(m.blocks) == 4 and m.block_cfgs[2]["kind"] == "residual" and "repeat" not in m.block_cfgs[2]
    ok = ok and "blocks.3.norm.weight" in names and "blocks.2.mixer.qkv.weight" in names
    ok = ok and "norm_f.running_mean" in m.state_dict() and m.norm_f.momentum == 0.1
    check("repeat expanded into blocks.{i}; final_norm auto = last (pre) block's norm", ok)

    # floats: the shortest float32 decimal; integral values as integers
    c = ref.canonical_config({**minimal, "dropout": 0.30000001192092896,
                              "head": {"kind": "flatten", "dropout": 0.0}})
    ok = json.dumps(c["dropout"]) == "0.3" and json.dumps(c["head"]["dropout"]) == "0"
    check("float options: shortest float32 decimal (0.30000001192092896 -> 0.3, 0.0 -> 0)", ok)

    # errors name the field path
    def with_block(**kw):
        return {**minimal, "blocks": [{"kind": "metaformer", **kw}]}
    cases = [
        (with_block(token_mixer={"kind": "softmax", "window": 3}),
         "blocks[0].token_mixer.window: unknown option (options: n_heads, causal, attn_dropout)"),
        (with_block(token_mixer={"kind": "softmax", "n_heads": 3}), "blocks[0].token_mixer.n_heads: 3 must divide"),
        (with_block(token_mixer={"kind": "mlp"}), "blocks[0].token_mixer.kind: 'mlp' is a channel mixer"),
        (with_block(channel_mixer={"kind": "linear"}), "blocks[0].channel_mixer.kind: 'linear' is a token mixer"),
        (with_block(dropout=1.0), "blocks[0].dropout: must be < 1.0"),
        (with_block(placement="middle"), 'blocks[0].placement: "middle" is not one of pre, post'),
        (with_block(norm={"kind": "layernorm", "momentum": 0.1}), "blocks[0].norm.momentum: unknown option"),
        (with_block(norm="layernorm"), "blocks[0].norm: expected an object"),
        (with_block(repeat=0), "blocks[0].repeat: must be >= 1"),
        ({**minimal, "blocks": [{"kind": "transformer"}]}, "blocks[0].kind: \"transformer\" is not one of"),
        ({**minimal, "d_model": "8"}, "d_model: expected an integer"),
        ({**minimal, "revin": 1}, "revin: expected true or false"),
        ({k: v for k, v in minimal.items() if k != "d_model"}, "d_model: missing"),
        ({**minimal, "positions": {"kind": "sinusoidal"}, "d_model": 7,
          "blocks": [{"kind": "residual", "mixer": {"kind": "identity"}}]}, "positions.kind: sinusoidal positions"),
        ({**minimal, "final_norm": "groupnorm"}, 'final_norm: "groupnorm" is not one of auto, none'),
        ({**minimal, "format_version": 3}, "format_version: 3 is not supported"),
        ({**minimal, "mixer": "softmax"}, "mixer: unknown option"),
        ({**V1_FIXTURE_CONFIGS["patchtst_softmax_post"], "blocks": []}, '"format_version": 2'),
        # efficient attention mixers (the minimal config has 12 patches), as the C reader words them
        (with_block(token_mixer={"kind": "local", "window": 11}),
         "blocks[0].token_mixer.window: 11 covers the whole sequence (12 tokens"),
        (with_block(token_mixer={"kind": "local", "window": 0}), "blocks[0].token_mixer.window: must be >= 1"),
        (with_block(token_mixer={"kind": "linformer", "k": 13}),
         "blocks[0].token_mixer.k: 13 exceeds the sequence length 12"),
        (with_block(token_mixer={"kind": "linformer", "causal": True}),
         "blocks[0].token_mixer.causal: linformer has no causal form"),
        (with_block(token_mixer={"kind": "fastformer", "causal": True}),
         "blocks[0].token_mixer.causal: fastformer has no causal form"),
        (with_block(token_mixer={"kind": "ls", "n_heads": 4, "local_heads": 4}),
         "blocks[0].token_mixer.local_heads: 4 leaves no global head (n_heads 4)"),
        (with_block(token_mixer={"kind": "ls", "window": 50}),
         "blocks[0].token_mixer.window: 50 covers the whole sequence (12 tokens"),
    ]
    bad = []
    for cfg, needle in cases:
        ok, msg = raises(lambda: ref.canonical_config(cfg), needle)
        if not ok:
            bad.append(f"want {needle!r}, got {msg!r}")
    check(f"config errors name the field path ({len(cases)} cases)", not bad, "; ".join(bad))

    # format_version 1 -> 2
    v2 = {f.name: f.cfg for f in mf.FIXTURES}
    bad = [n for n, c in V1_FIXTURE_CONFIGS.items()
           if json.dumps(ref.config_v1_to_v2(c)) != json.dumps(v2[n]) or ref.canonical_config(c) != v2[n]]
    check("config_v1_to_v2(the five v1 fixture configs) == their v2 fixture configs", not bad, f"{bad}")
    v1 = {"model": "patchtst", "seq_len": 96, "pred_len": 24, "n_channels": 2, "d_model": 8, "n_heads": 2,
          "e_layers": 0, "d_ff": 16, "patch_len": 16, "stride": 8, "norm": "rmsnorm", "norm_place": "pre"}
    ok = True
    for place, fn in (("pre", "rmsnorm"), ("post", "none")):
        c = ref.config_v1_to_v2({**v1, "norm_place": place})
        m1 = ref.build_model({**v1, "norm_place": place})
        ok = ok and c["blocks"] == [] and c["final_norm"] == fn and \
            ("norm_f.weight" in m1.state_dict()) == (place == "pre")
    c = ref.config_v1_to_v2({**v1, "e_layers": 3, "dropout": 0.30000001192092896, "norm": "batchnorm"})
    ok = ok and c["blocks"][0]["repeat"] == 3 and c["blocks"][0]["dropout"] == 0.3 and \
        c["blocks"][0]["channel_mixer"]["dropout"] == 0.3 and c["dropout"] == 0.3 and \
        c["blocks"][0]["norm"] == {"kind": "batchnorm", "eps": 1e-05, "momentum": 0.1} and \
        c["blocks"][0]["placement"] == "pre" and c["final_norm"] == "auto"
    ok = ok and ref.config_v1_to_v2({k: v for k, v in v1.items() if k != "norm_place"} | {"e_layers": 1}
                                    )["blocks"][0]["placement"] == "post"  # v1 default: post
    check("config_v1_to_v2: e_layers 0 keeps v1's norm_f, floats to float32 decimals, v1 defaults", ok)


def test_param_count():
    cfg = {"model": "patchtst", "seq_len": 336, "pred_len": 96, "n_channels": 7, "d_model": 16, "n_heads": 4,
           "e_layers": 3, "d_ff": 128, "patch_len": 16, "stride": 8}
    m = ref.build_model(cfg)  # format_version 1 (no format_version key, as v1 allowed)
    n = ref.count_params(m)
    m2 = ref.build_model(doc_examples()[0])
    # 272 (patch_embed) + 42*16 (pos) + 3 * 5392 (blocks) + 672*96+96 (head)
    check("default PatchTST parameter count (v1 config and the v2 doc example)",
          n == 81728 and m.n == 42 and ref.count_params(m2) == n and
          [k for k in m.state_dict() if "norm" not in k] == [k for k in m2.state_dict() if "norm" not in k],
          f"{n} params, N={m.n}")


# ---- block kinds ----

def small_v2(blocks, **kw):
    return ref.canonical_config({"format_version": 2, "model": "patchtst", "seq_len": 48, "pred_len": 12,
                                 "n_channels": 3, "d_model": 8, "input": {"kind": "patches", "patch_len": 8,
                                                                          "stride": 4},
                                 "blocks": blocks, **kw})


def test_block_kinds():
    torch.manual_seed(11)
    d = 8
    x = torch.randn(5, 12, d, dtype=torch.float64)
    att = {"kind": "softmax", "n_heads": 2, "causal": True}
    lin = {"kind": "linear", "n_heads": 4, "causal": False}
    mlp = {"kind": "mlp", "d_ff": 16, "activation": "relu"}
    ok_all, detail = True, []

    def blk(**b):
        spec = ref.expand_blocks(small_v2([b]))[0]
        m = ref.make_block(spec, d).double()
        with torch.no_grad():
            for n, p in m.named_parameters():
                p.copy_(torch.randn_like(p) * 0.5 + (1.0 if n.endswith("norm.weight") else 0.0))
        return m.eval()

    # parameter names per kind (docs/config.md)
    want_names = {
        "metaformer": ["norm1.weight", "norm1.bias", "mixer.qkv.weight", "mixer.qkv.bias", "mixer.out.weight",
                       "mixer.out.bias", "norm2.weight", "norm2.bias", "ffn.fc1.weight", "ffn.fc1.bias",
                       "ffn.fc2.weight", "ffn.fc2.bias"],
        "residual": ["norm.weight", "norm.bias", "mixer.qkv.weight", "mixer.qkv.bias", "mixer.out.weight",
                     "mixer.out.bias"],
        "parallel": ["norm.weight", "norm.bias", "mixer.qkv.weight", "mixer.qkv.bias", "mixer.out.weight",
                     "mixer.out.bias", "ffn.fc1.weight", "ffn.fc1.bias", "ffn.fc2.weight", "ffn.fc2.bias"],
    }
    for kind, names in want_names.items():
        got = list(blk(kind=kind).state_dict())
        ok_all &= got == names
        detail.append(f"{kind}: {len(got)} tensors" if got == names else f"{kind}: {got}")
    got = list(blk(kind="metaformer", token_mixer={"kind": "identity"}, channel_mixer={"kind": "identity"},
                   norm={"kind": "rmsnorm"}).state_dict())
    ok_all &= got == ["norm1.weight", "norm2.weight"]
    got = list(blk(kind="residual", mixer={"kind": "identity"}).state_dict())
    ok_all &= got == ["norm.weight", "norm.bias"]

    # residual + identity mixer: pre y = x + norm(x), post y = norm(x + x)
    b = blk(kind="residual", mixer={"kind": "identity"}, norm={"kind": "layernorm", "eps": 1e-6})
    e1 = (b(x) - (x + b.norm(x))).abs().max().item()
    nrm = torch.nn.functional.layer_norm(x, (d,), b.norm.weight, b.norm.bias, 1e-6)
    e1 = max(e1, (b(x) - (x + nrm)).abs().max().item())
    b = blk(kind="residual", placement="post", mixer={"kind": "identity"}, norm={"kind": "rmsnorm"})
    two = 2 * x
    e2 = (b(x) - two / torch.sqrt((two ** 2).mean(-1, keepdim=True) + 1e-5) * b.norm.weight).abs().max().item()
    # residual with an attention mixer
    b = blk(kind="residual", mixer=lin)
    e3 = (b(x) - (x + b.mixer(b.norm(x)))).abs().max().item()
    b = blk(kind="residual", placement="post", mixer=att)
    e3 = max(e3, (b(x) - b.norm(x + b.mixer(x))).abs().max().item())
    # parallel: pre n = norm(x), y = x + tok(n) + ch(n); post y = norm(x + tok(x) + ch(x))
    b = blk(kind="parallel", token_mixer=att, channel_mixer=mlp)
    n = b.norm(x)
    e4 = (b(x) - (x + b.mixer(n) + b.ffn(n))).abs().max().item()
    b = blk(kind="parallel", placement="post", token_mixer=lin, channel_mixer=mlp, norm={"kind": "rmsnorm"})
    e4 = max(e4, (b(x) - b.norm(x + b.mixer(x) + b.ffn(x))).abs().max().item())
    b = blk(kind="parallel", token_mixer=att, channel_mixer={"kind": "identity"})
    n = b.norm(x)
    e4 = max(e4, (b(x) - (x + b.mixer(n) + n)).abs().max().item())
    # metaformer, identity token mixer (an MLP-only block); relu mlp
    b = blk(kind="metaformer", token_mixer={"kind": "identity"}, channel_mixer=mlp)
    h = x + b.norm1(x)
    ff = lambda a: torch.relu(a @ b.ffn.fc1.weight.T + b.ffn.fc1.bias) @ b.ffn.fc2.weight.T + b.ffn.fc2.bias
    e5 = (b(x) - (h + ff(b.norm2(h)))).abs().max().item()
    ok_all &= isinstance(b.ffn.act, nn.ReLU) and max(e1, e2, e3, e4, e5) < 1e-12
    detail.append(f"residual/identity {e1:.1e}/{e2:.1e}, residual {e3:.1e}, parallel {e4:.1e}, "
                  f"metaformer/identity {e5:.1e}")

    # block dropout acts on the branch only: residual pre + identity, train mode, p = 0.5:
    # y - x is 0 or 2 * norm(x) elementwise; mlp inner dropout sits after the activation
    b = blk(kind="residual", mixer={"kind": "identity"}, dropout=0.5).train()
    r = (b(x) - x) / b.norm(x)
    ok_d = bool(((r.abs() < 1e-9) | ((r - 2).abs() < 1e-9)).all()) and 0.3 < (r.abs() < 1e-9).double().mean() < 0.7
    f = ref.make_mixer(ref.canonical_config(small_v2([{"kind": "metaformer", "channel_mixer": {
        "kind": "mlp", "dropout": 0.25}}]))["blocks"][0]["channel_mixer"], d)
    ok_d = ok_d and [type(m).__name__ for m in f.children()] == ["Linear", "GELU", "Dropout", "Linear"] and f.drop.p == 0.25
    ok_all &= ok_d
    check("block kinds: parameter names, residual/parallel/metaformer formulas, identity mixers, dropout",
          ok_all, "; ".join(detail))

    # final_norm: auto / none / a kind; positions none
    cases = [
        ([{"kind": "residual", "placement": "pre", "norm": {"kind": "rmsnorm", "eps": 1e-6}}], "auto", ("RMSNorm", 1e-6)),
        ([{"kind": "residual", "placement": "pre", "norm": {"kind": "rmsnorm"}},
          {"kind": "parallel", "placement": "post"}], "auto", None),
        ([{"kind": "metaformer", "placement": "pre"}], "none", None),
        ([{"kind": "metaformer", "placement": "post"}], "rmsnorm", ("RMSNorm", 1e-5)),
        ([{"kind": "metaformer", "placement": "pre", "norm": {"kind": "batchnorm", "eps": 1e-3, "momentum": 0.2}}],
         "auto", ("TokenBatchNorm", 1e-3)),
        ([], "auto", None),
    ]
    ok = True
    for blocks, fn, want in cases:
        m = ref.build_model(small_v2(blocks, final_norm=fn))
        got = None if m.norm_f is None else (type(m.norm_f).__name__, m.norm_f.eps)
        ok = ok and got == want and (want is None) == ("norm_f.weight" not in m.state_dict())
        if want and want[0] == "TokenBatchNorm":
            ok = ok and m.norm_f.momentum == 0.2 and m.blocks[0].norm1.momentum == 0.2
    check("final_norm: auto (last block pre -> its norm kind and options), none, a kind", ok)

    torch.manual_seed(4)
    blocks = [{"kind": "metaformer", "token_mixer": att}]
    m_none = ref.build_model(small_v2(blocks, positions={"kind": "none"})).double().eval()
    m_learn = ref.build_model(small_v2(blocks)).double().eval()
    sd = dict(m_none.state_dict())
    sd["pos_embed"] = torch.zeros_like(m_learn.pos_embed)
    m_learn.load_state_dict(sd, strict=True)
    xin = torch.randn(2, 48, 3, dtype=torch.float64)
    with torch.no_grad():
        e = (m_none(xin) - m_learn(xin)).abs().max().item()
    check("positions none == learned positions set to zero; no pos_embed parameter",
          e == 0 and "pos_embed" not in m_none.state_dict(), f"{e:.1e}")


def test_replication_pad():
    x = torch.randn(2, 3, 10)
    a = nn.ReplicationPad1d((0, 4))(x)
    b = torch.nn.functional.pad(x, (0, 4), mode="replicate")
    check("F.pad replicate == nn.ReplicationPad1d", torch.equal(a, b))


def test_fixtures_reproduce():
    torch.set_num_threads(1)
    for fx in mf.FIXTURES:
        name = fx.name
        path = os.path.join(ROOT, "tests", "fixtures", name + ".safetensors")
        tensors, meta = ref.load_safetensors(path)
        model, cfg, _ = ref.load_checkpoint(path)
        # the stored config: format_version 2, canonical (key order included), the one make_fixtures defines
        cfg_ok = meta["config"] == json.dumps(fx.cfg) == json.dumps(cfg) and cfg["format_version"] == 2 and \
            meta["format_version"] == "2"
        pnames = [n for n, _ in model.named_parameters()]
        have_all = all("grad." + n in tensors for n in pnames) and \
            sorted(k[5:] for k in tensors if k.startswith("grad.")) == sorted(pnames)
        bn = mf.is_batchnorm(cfg)
        marks = torch.from_numpy(tensors["marks"]) if "marks" in tensors else None
        if "lens" in tensors:  # t2: the valid lengths go where the marks go
            marks = torch.from_numpy(tensors["lens"])
        out, loss, grads, after, out_eval = mf.run_fixture(model, torch.from_numpy(tensors["x"]),
                                                           torch.from_numpy(tensors["y"]), bn, marks)
        e_out = np.abs(out.numpy() - tensors["out"]).max()
        e_loss = abs(loss.item() - tensors["loss"][0])
        e_g = max(np.abs(grads[n].numpy() - tensors["grad." + n]).max() for n in pnames)
        # biases added right before a train-mode post batchnorm (mixer.out.bias, ffn.fc2.bias) have an
        # exactly zero gradient mathematically; the stored values are float32 noise
        zero_grad = ref.zero_grad_params(model) if bn else set()
        gmax = max(np.abs(tensors["grad." + n]).max() for n in pnames)

        def used(n):  # a causal rpe mixer never uses its positive offsets (the last max_t - 1 columns)
            g = tensors["grad." + n]
            if not n.endswith(".rpe_bias"):
                return g
            mod = model.get_submodule(n.rsplit(".", 1)[0])
            if cfg["model"] == "lm":  # offsets -(seq_len-1)..0 of a table spanning max_len
                return g[:, mod.max_t - cfg["seq_len"]:mod.max_t]
            return g[:, :mod.max_t] if mod.causal else g
        # Informer with mix: the last decoder layer's heads whose mixed-out rows land in the label
        # part (discarded by the output slice) get exactly zero gradient, as in the reference
        dead = {n for n in pnames if cfg["model"] == "informer" and cfg["mix"] and
                n.startswith(f"decoder.layers.{cfg['d_layers'] - 1}.self_attn.mixer.qkv.")}
        # lut tables get row-sparse gradients: only the rows the batch hashed to are nonzero; a t5 table's
        # buckets that no offset of the sequence falls in get none
        nonzero = all(np.abs(used(n)).min() > 0 or np.count_nonzero(used(n)) > 0.9 * used(n).size
                      or (n.endswith((".tables", ".relative_attention_bias")) and np.count_nonzero(used(n)) > 0)
                      for n in pnames if n not in zero_grad and n not in dead)
        nonzero = nonzero and all(np.abs(tensors["grad." + n]).max() < 1e-6 * gmax for n in zero_grad)
        B = fx.batch
        if cfg["model"] == "lm":  # token ids x, next-token ids y [B, T]; logits [B, T, vocab]
            T = cfg["seq_len"]
            shapes = tensors["loss"].shape == (1,) and tensors["x"].shape == tensors["y"].shape == (B, T) \
                and tensors["out"].shape == (B, T, cfg["input"]["vocab"])
        else:
            shapes = tensors["loss"].shape == (1,) and tensors["x"].dtype == np.float32 and \
                tensors["x"].shape == (B, cfg["seq_len"], cfg["n_channels"]) and \
                tensors["out"].shape == tensors["y"].shape == \
                ((B, cfg["n_classes"]) if cfg["model"] == "t2" else (B, cfg["pred_len"], cfg["n_channels"]))
        extra_ok, extra = True, ""
        if bn:
            bnames = [n for n, _ in model.named_buffers()]
            e_after = max(np.abs(after[n].float().numpy() - tensors["after." + n]).max() for n in bnames)
            e_eval = np.abs(out_eval.numpy() - tensors["out_eval"]).max()
            # state before the training forward is what the weights section holds
            st0 = all(tensors[n].shape == () and tensors[n] == 3.0 and tensors["after." + n] == 4.0
                      for n in bnames if n.endswith("num_batches_tracked"))
            moved = all(np.abs(tensors[n] - tensors["after." + n]).max() > 1e-3
                        for n in bnames if not n.endswith("num_batches_tracked"))
            eval_differs = np.abs(tensors["out_eval"] - tensors["out"]).max() > 1e-3
            keys_ok = sorted(k for k in tensors if k.startswith("after.")) == sorted("after." + n for n in bnames)
            extra_ok = e_after == 0 and e_eval == 0 and st0 and moved and eval_differs and keys_ok
            extra = f", after.* {e_after:.1e}, out_eval {e_eval:.1e}, {len(zero_grad)} zero-gradient biases"
        else:
            extra_ok = "out_eval" not in tensors and not any(k.startswith("after.") for k in tensors)
        check(f"fixture reload + reproduce: {name}",
              cfg_ok and have_all and nonzero and shapes and e_out == 0 and e_loss == 0 and e_g == 0 and extra_ok,
              f"(out {e_out:.1e}, loss {e_loss:.1e}, grads {e_g:.1e}{extra}, {len(pnames)} params, B={B}, "
              f"{os.path.getsize(path)} bytes, producer={meta['producer']!r})")


def test_v1_checkpoints():
    """A format_version 1 checkpoint (the five original fixtures with their v1 config) still loads:
    strictly, into the same model (canonical v2 config == the fixture's), with bit-identical outputs."""
    torch.set_num_threads(1)
    bad = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, v1 in V1_FIXTURE_CONFIGS.items():
            path = os.path.join(ROOT, "tests", "fixtures", name + ".safetensors")
            tensors, meta = ref.load_safetensors(path)
            p1 = os.path.join(tmp, name + ".safetensors")
            ref.save_safetensors(p1, tensors, {**meta, "config": json.dumps(v1), "format_version": "1"})
            m1, c1, _ = ref.load_checkpoint(p1)
            m2, c2, _ = ref.load_checkpoint(path)
            x = torch.from_numpy(tensors["x"])
            with torch.no_grad():
                same = torch.equal(m1(x), m2(x))
            if not (c1 == c2 and same and list(m1.state_dict()) == list(m2.state_dict())):
                bad.append(name)
    check("format_version 1 checkpoints load (v1 config -> same model, same outputs)", not bad,
          f"{len(V1_FIXTURE_CONFIGS)} checkpoints {bad}")


def test_batchnorm_module():
    """TokenBatchNorm vs the official PatchTST Sequential(Transpose(1,2), BatchNorm1d(d), Transpose(1,2)),
    train and eval mode, forward, backward and running statistics; state_dict names; a checkpoint with
    num_batches_tracked stored as F32 [] (as the C side and save_checkpoint write it) loads strictly."""
    class Transpose(nn.Module):
        def forward(self, x):
            return x.transpose(1, 2)

    torch.manual_seed(3)
    d = 8
    ours = ref.make_norm("batchnorm", d).double()
    official = nn.Sequential(Transpose(), nn.BatchNorm1d(d), Transpose()).double()
    with torch.no_grad():
        ours.weight.normal_()
        ours.bias.normal_()
        official[1].weight.copy_(ours.weight)
        official[1].bias.copy_(ours.bias)
    errs = []
    for train in (True, True, False):
        ours.train(train)
        official.train(train)
        x = torch.randn(12, 7, d, dtype=torch.float64)
        xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
        ya, yb = ours(xa), official(xb)
        (ya * torch.arange(ya.numel(), dtype=ya.dtype).reshape(ya.shape)).sum().backward()
        (yb * torch.arange(yb.numel(), dtype=yb.dtype).reshape(yb.shape)).sum().backward()
        errs += [(ya - yb).abs().max().item(), (xa.grad - xb.grad).abs().max().item(),
                 (ours.weight.grad - official[1].weight.grad).abs().max().item(),
                 (ours.running_mean - official[1].running_mean).abs().max().item(),
                 (ours.running_var - official[1].running_var).abs().max().item()]
    keys = list(ours.state_dict())
    ok = max(errs) < 1e-12 and keys == ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]
    ok = ok and ours.num_batches_tracked.item() == 2 == official[1].num_batches_tracked.item()
    ok = ok and ours.eps == 1e-5 and ours.momentum == 0.1
    check("batchnorm == official Transpose/BatchNorm1d/Transpose", ok, f"max err {max(errs):.1e}, keys {keys}")

    # non-default eps / momentum from the config == nn.BatchNorm1d(d, eps, momentum)
    ours = ref.make_norm({"kind": "batchnorm", "eps": 1e-3, "momentum": 0.25}, d).double().train()
    official = nn.BatchNorm1d(d, eps=1e-3, momentum=0.25).double().train()
    x = torch.randn(12, 7, d, dtype=torch.float64)
    e = (ours(x) - official(x.transpose(1, 2)).transpose(1, 2)).abs().max().item()
    e = max(e, (ours.running_var - official.running_var).abs().max().item())
    check("batchnorm eps 1e-3 momentum 0.25 == nn.BatchNorm1d(eps=1e-3, momentum=0.25)", e < 1e-12, f"{e:.1e}")

    cfg = small_v2([{"kind": "metaformer", "placement": "pre", "norm": {"kind": "batchnorm"},
                     "token_mixer": {"kind": "softmax", "n_heads": 2}, "channel_mixer": {"kind": "mlp", "d_ff": 16}}])
    m = ref.build_model(cfg)
    with torch.no_grad():
        for n, b in m.named_buffers():
            if n.endswith("num_batches_tracked"):
                b.fill_(7)
            else:
                b.uniform_(0.5, 1.5)
    with tempfile.TemporaryDirectory() as tmp:
        p = os.path.join(tmp, "bn.safetensors")
        ref.save_checkpoint(p, m, m.cfg)
        raw, meta = ref.load_safetensors(p)
        m2, cfg2, _ = ref.load_checkpoint(p)
    nbt = [k for k in raw if k.endswith("num_batches_tracked")]
    ok = len(nbt) == 3 and all(raw[k].dtype == np.float32 and raw[k].shape == () for k in nbt)  # norm1, norm2, norm_f
    sd2 = m2.state_dict()
    ok = ok and all(sd2[k].dtype == torch.int64 and sd2[k].item() == 7 for k in nbt)
    ok = ok and all(torch.equal(v.float(), sd2[k].float()) for k, v in m.state_dict().items())
    ok = ok and meta["config"] == json.dumps(cfg) and cfg2 == cfg and cfg2["blocks"][0]["norm"]["kind"] == "batchnorm"
    check("batchnorm checkpoint: F32 [] num_batches_tracked -> int64, strict load, canonical v2 config", ok, f"{nbt}")


def test_check_checkpoint():
    """check_checkpoint.py on a self-made checkpoint whose head is zero: then the prediction is
    the RevIN mean of each input window, which NumPy computes independently."""
    import subprocess
    import check_checkpoint as cc
    csv_path = os.path.join(ROOT, "data", "ETTh1.csv")
    if not os.path.exists(csv_path):
        print("skip check_checkpoint (no data/ETTh1.csv)")
        return
    data, cols = cc.read_csv(csv_path)
    train = data[:8640]
    mean, std = train.mean(0), train.std(0)
    meta = {"scaler_mean": json.dumps(mean.tolist()), "scaler_std": json.dumps(std.tolist()),
            "columns": json.dumps(cols)}
    L, P = 96, 24
    v1 = {"format_version": 1, "model": "patchtst", "seq_len": L, "pred_len": P, "n_channels": 7, "d_model": 16,
          "n_heads": 4, "e_layers": 1, "d_ff": 32, "patch_len": 16, "stride": 8}
    cfg = {"format_version": 2, "model": "patchtst", "seq_len": L, "pred_len": P, "n_channels": 7, "d_model": 16,
           "blocks": [{"kind": "metaformer", "placement": "post", "channel_mixer": {"kind": "mlp", "d_ff": 32}}]}
    torch.manual_seed(5)
    m = ref.build_model(cfg)
    with torch.no_grad():
        m.head.weight.zero_()
        m.head.bias.zero_()
    z = (data[cc.ETTH1_TEST_START - L:cc.ETTH1_TEST_END] - mean) / std
    n = z.shape[0] - L - P + 1
    win = np.lib.stride_tricks.sliding_window_view(z, L + P, axis=0)  # [n, C, L+P]
    d = win[:, :, L:] - win[:, :, :L].mean(-1, keepdims=True)
    want = {"mse": float((d ** 2).mean()), "mae": float(np.abs(d).mean())}
    for version, c in (("v2", cfg), ("v1", v1)):
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "zero_head.safetensors")
            if version == "v2":
                ref.save_checkpoint(path, m, c, meta)
            else:  # a format_version 1 checkpoint, as older C builds wrote them
                ref.save_safetensors(path, {k: v.float() for k, v in m.state_dict().items()},
                                     {**meta, "config": json.dumps(c), "format_version": "1"})
            res = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "reference", "check_checkpoint.py"),
                                  path, csv_path], capture_output=True, text=True)
        got = json.loads(res.stdout.strip().splitlines()[-1]) if res.returncode == 0 else {}
        ok = res.returncode == 0 and n == 2857 and all(abs(got[k] - want[k]) < 1e-6 * want[k] for k in want)
        check(f"check_checkpoint.py, {version} checkpoint, vs NumPy (zero head => window mean)", ok,
              f"got {got} want {want} {res.stderr[-300:]}")
    # --drop-last 32: only the 89 full batches of 32 windows (2848 of 2857), as a drop_last test loader
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "zero_head.safetensors")
        ref.save_checkpoint(path, m, cfg, meta)
        res = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "reference", "check_checkpoint.py"),
                              path, csv_path, "--drop-last", "32"], capture_output=True, text=True)
    got = json.loads(res.stdout.strip().splitlines()[-1]) if res.returncode == 0 else {}
    dk = d[:2848]
    want = {"mse": float((dk ** 2).mean()), "mae": float(np.abs(dk).mean())}
    ok = res.returncode == 0 and got.get("windows") == 2848 and all(abs(got[k] - want[k]) < 1e-6 * want[k]
                                                                     for k in want)
    check("check_checkpoint.py --drop-last 32 scores the first 2848 windows", ok, f"got {got} want {want}")


def test_mamba_module():
    """The Mamba twin's parameter names and shapes are mamba_simple.py's (plus bwd.* when
    bidirectional) and its initialisation follows it: A_log = log(1..N), D = 1, softplus(dt_proj.bias)
    in [dt_min, dt_max], dt_proj.weight within +-dt_rank^-1/2."""
    spec = ref.canonical_config({"model": "itransformer", "seq_len": 8, "pred_len": 2, "n_channels": 2,
                                 "d_model": 40, "blocks": [{"kind": "residual", "mixer": {
                                     "kind": "mamba", "bidirectional": True}}]})["blocks"][0]["mixer"]
    m = ref.Mamba(40, spec)
    shapes = {n: tuple(p.shape) for n, p in m.named_parameters()}
    want = {"in_proj.weight": (160, 40), "conv1d.weight": (80, 1, 4), "conv1d.bias": (80,),
            "x_proj.weight": (3 + 32, 80), "dt_proj.weight": (80, 3), "dt_proj.bias": (80,),
            "A_log": (80, 16), "D": (80,), "out_proj.weight": (40, 80)}
    want.update({"bwd." + k: v for k, v in want.items()})
    dt = F.softplus(m.dt_proj.bias)
    ok = (shapes == want and torch.equal(m.A_log[3], torch.log(torch.arange(1.0, 17.0))) and
          bool((m.D == 1).all()) and dt.min() >= 1e-3 * (1 - 1e-5) and dt.max() <= 0.1 * (1 + 1e-5) and
          m.dt_proj.weight.abs().max() <= 3 ** -0.5)
    check("mamba twin: names, shapes (dt_rank ceil(40/16) = 3, bwd.*) and init", ok,
          f"softplus(dt bias) in [{dt.min():.2e}, {dt.max():.2e}]")


def main():
    test_safetensors()
    test_mamba_module()
    test_linear_attention()
    test_softmax_vs_mha()
    test_feature_maps()
    test_favor_projection()
    test_replication_pad()
    test_param_count()
    test_config()
    test_block_kinds()
    test_batchnorm_module()
    test_numpy_twin()
    test_fixtures_reproduce()
    test_v1_checkpoints()
    test_check_checkpoint()
    print("ALL OK" if not FAILED else f"{len(FAILED)} FAILED: {FAILED}")
    sys.exit(1 if FAILED else 0)


if __name__ == "__main__":
    main()
