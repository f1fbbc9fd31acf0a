#!/usr/bin/env python3
"""Checks of the reference twin against itself and against independent formulations.

  * safetensors write/read round trip and header layout;
  * linear attention (linear-time formula) vs the explicit masked quadratic form;
  * softmax Mixer vs torch.nn.MultiheadAttention with the same weights (causal and not);
  * PatchTST / DLinear forward vs a from-scratch NumPy float64 implementation of the spec;
  * the default ETTh1 PatchTST parameter count;
  * every fixture in tests/fixtures reloads (strict) and reproduces out, loss and grads
    (batchnorm: also after.* running statistics and out_eval);
  * batchnorm: TokenBatchNorm == the official Transpose/BatchNorm1d/Transpose Sequential, state_dict
    names, F32 num_batches_tracked loads strictly back as int64;
  * check_checkpoint.py on a zero-head checkpoint vs a NumPy computation of the same metric.

Usage (from the repository root):  /usr/bin/python3 tools/reference/selftest.py
"""

import json
import math
import os
import sys
import tempfile

import numpy as np
import torch
import torch.nn as nn

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


# ---- independent NumPy float64 implementation of the spec ----

def np_norm(x, sd, pre, kind, bn_train=False, bn_stats=None):
    if kind == "batchnorm":
        w, b = sd[pre + ".weight"], sd[pre + ".bias"]
        if not bn_train:
            return (x - sd[pre + ".running_mean"]) / np.sqrt(sd[pre + ".running_var"] + 1e-5) * w + b
        flat = x.reshape(-1, x.shape[-1])  # every token of every series
        mu = flat.mean(0)
        var = ((flat - mu) ** 2).mean(0)
        n = flat.shape[0]
        if bn_stats is not None:
            bn_stats[pre + ".running_mean"] = 0.9 * sd[pre + ".running_mean"] + 0.1 * mu
            bn_stats[pre + ".running_var"] = 0.9 * sd[pre + ".running_var"] + 0.1 * var * n / (n - 1)
            bn_stats[pre + ".num_batches_tracked"] = sd[pre + ".num_batches_tracked"] + 1
        return (x - mu) / np.sqrt(var + 1e-5) * w + b
    if kind == "layernorm":
        mu = x.mean(-1, keepdims=True)
        var = ((x - mu) ** 2).mean(-1, keepdims=True)
        return (x - mu) / np.sqrt(var + 1e-5) * sd[pre + ".weight"] + sd[pre + ".bias"]
    return x / np.sqrt((x ** 2).mean(-1, keepdims=True) + 1e-5) * sd[pre + ".weight"]


def np_linear(x, sd, pre):
    return x @ sd[pre + ".weight"].T + sd[pre + ".bias"]


def np_gelu(x):
    from math import erf
    return 0.5 * x * (1.0 + np.vectorize(erf)(x / math.sqrt(2.0)))


def np_mixer(x, sd, pre, cfg):
    Bp, N, d = x.shape
    H = cfg["n_heads"]
    dh = d // H
    qkv = np_linear(x, sd, pre + ".qkv")
    out = np.zeros_like(x)
    for b in range(Bp):
        for hh in range(H):
            q = qkv[b, :, hh * dh:(hh + 1) * dh]
            k = qkv[b, :, d + hh * dh:d + (hh + 1) * dh]
            v = qkv[b, :, 2 * d + hh * dh:2 * d + (hh + 1) * dh]
            for i in range(N):
                js = range(i + 1) if cfg["causal"] else range(N)
                if cfg["mixer"] == "softmax":
                    s = np.array([q[i] @ k[j] * dh ** -0.5 for j in js])
                    w = np.exp(s - s.max())
                    w /= w.sum()
                    o = sum(w[t] * v[j] for t, j in enumerate(js))
                else:
                    phi = lambda a: np.where(a > 0, a + 1.0, np.exp(a))  # elu(a) + 1
                    S = sum(np.outer(phi(k[j]), v[j]) for j in js)
                    z = sum(phi(k[j]) for j in js)
                    o = phi(q[i]) @ S / (phi(q[i]) @ z + 1e-6)
                out[b, i, hh * dh:(hh + 1) * dh] = o
    return np_linear(out, sd, pre + ".out")


def np_patchtst(x, sd, cfg, bn_train=False, bn_stats=None):
    B, L, C = x.shape
    s, pl, d = cfg["stride"], cfg["patch_len"], cfg["d_model"]
    N = (L + s - pl) // s + 1
    mean = x.mean(1, keepdims=True)
    std = np.sqrt(x.var(1, keepdims=True) + 1e-5)
    xn = (x - mean) / std
    patches = np.zeros((B * C, N, pl))
    for b in range(B):
        for c in range(C):
            seq = np.concatenate([xn[b, :, c], np.full(s, xn[b, -1, c])])
            for p in range(N):
                patches[b * C + c, p] = seq[p * s:p * s + pl]
    u = np_linear(patches, sd, "patch_embed")
    if cfg["pos"] == "learned":
        u = u + sd["pos_embed"]
    else:
        pe = np.zeros((N, d))
        for p in range(N):
            for i in range(0, d, 2):
                pe[p, i] = math.sin(p / 10000 ** (i / d))
                pe[p, i + 1] = math.cos(p / 10000 ** (i / d))
        u = u + pe
    nk = dict(bn_train=bn_train, bn_stats=bn_stats)
    for blk in range(cfg["e_layers"]):
        pre = f"blocks.{blk}"
        ffn = lambda a: np_linear(np_gelu(np_linear(a, sd, pre + ".ffn.fc1")), sd, pre + ".ffn.fc2")
        if cfg["norm_place"] == "pre":
            u = u + np_mixer(np_norm(u, sd, pre + ".norm1", cfg["norm"], **nk), sd, pre + ".mixer", cfg)
            u = u + ffn(np_norm(u, sd, pre + ".norm2", cfg["norm"], **nk))
        else:
            u = np_norm(u + np_mixer(u, sd, pre + ".mixer", cfg), sd, pre + ".norm1", cfg["norm"], **nk)
            u = np_norm(u + ffn(u), sd, pre + ".norm2", cfg["norm"], **nk)
    if cfg["norm_place"] == "pre":
        u = np_norm(u, sd, "norm_f", cfg["norm"], **nk)
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


def test_numpy_twin():
    for name, cfg in mf.FIXTURES:
        path = os.path.join(ROOT, "tests", "fixtures", name + ".safetensors")
        tensors, meta = ref.load_safetensors(path)
        cfg = json.loads(meta["config"])
        sd = {k: v.astype(np.float64) for k, v in tensors.items()}
        x = sd["x"]
        y_np = np_patchtst(x, sd, cfg) if cfg["model"] == "patchtst" else np_dlinear(x, sd, cfg)
        model, _, _ = ref.load_checkpoint(path, dtype=torch.float64)
        with torch.no_grad():
            y_t = model(torch.from_numpy(x)).numpy()
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


def test_param_count():
    cfg = {"model": "patchtst", "seq_len": 336, "pred_len": 96, "n_channels": 7, "d_model": 16, "n_heads": 4,
           "e_layers": 3, "d_ff": 128, "patch_len": 16, "stride": 8}
    m = ref.build_model(cfg)
    n = ref.count_params(m)
    # 272 (patch_embed) + 42*16 (pos) + 3 * 5392 (blocks) + 672*96+96 (head)
    check("default PatchTST parameter count", n == 81728 and m.n == 42, f"{n} params, N={m.n}")


def test_replication_pad():
    x = torch.randn(2, 3, 10)
    a = nn.ReplicationPad1d((0, 4))(x)
    b = torch.nn.functional.pad(x, (0, 4), mode="replicate")
    check("F.pad replicate == nn.ReplicationPad1d", torch.equal(a, b))


def test_fixtures_reproduce():
    torch.set_num_threads(1)
    for name, _ in mf.FIXTURES:
        path = os.path.join(ROOT, "tests", "fixtures", name + ".safetensors")
        tensors, meta = ref.load_safetensors(path)
        model, cfg, _ = ref.load_checkpoint(path)
        pnames = [n for n, _ in model.named_parameters()]
        have_all = all("grad." + n in tensors for n in pnames) and \
            sorted(k[5:] for k in tensors if k.startswith("grad.")) == sorted(pnames)
        bn = mf.is_batchnorm(cfg)
        out, loss, grads, after, out_eval = mf.run_fixture(model, torch.from_numpy(tensors["x"]),
                                                           torch.from_numpy(tensors["y"]), bn)
        e_out = np.abs(out.numpy() - tensors["out"]).max()
        e_loss = abs(loss.item() - tensors["loss"][0])
        e_g = max(np.abs(grads[n].numpy() - tensors["grad." + n]).max() for n in pnames)
        # biases added right before a train-mode batchnorm (post-norm: mixer.out.bias, ffn.fc2.bias) have
        # an exactly zero gradient mathematically; the stored values are float32 noise
        zero_grad = {n for n in pnames if bn and cfg["norm_place"] == "post" and
                     (n.endswith("mixer.out.bias") or n.endswith("ffn.fc2.bias"))}
        gmax = max(np.abs(tensors["grad." + n]).max() for n in pnames)
        nonzero = all(np.abs(tensors["grad." + n]).min() > 0 or np.count_nonzero(tensors["grad." + n]) > 0.9 *
                      tensors["grad." + n].size for n in pnames if n not in zero_grad)
        nonzero = nonzero and all(np.abs(tensors["grad." + n]).max() < 1e-6 * gmax for n in zero_grad)
        shapes = tensors["loss"].shape == (1,) and tensors["x"].dtype == np.float32
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
        check(f"fixture reload + reproduce: {name}",
              have_all and nonzero and shapes and e_out == 0 and e_loss == 0 and e_g == 0 and extra_ok,
              f"(out {e_out:.1e}, loss {e_loss:.1e}, grads {e_g:.1e}{extra}, {len(pnames)} params, "
              f"{os.path.getsize(path)} bytes, producer={meta['producer']!r})")


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

    cfg = {"model": "patchtst", "seq_len": 48, "pred_len": 12, "n_channels": 3, "d_model": 8, "n_heads": 2,
           "e_layers": 1, "d_ff": 16, "patch_len": 8, "stride": 4, "norm": "batchnorm", "norm_place": "pre"}
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
        raw, _ = ref.load_safetensors(p)
        m2, cfg2, _ = ref.load_checkpoint(p)
    nbt = [k for k in raw if k.endswith("num_batches_tracked")]
    ok = len(nbt) == 3 and all(raw[k].dtype == np.float32 and raw[k].shape == () for k in nbt)  # norm1, norm2, norm_f
    sd2 = m2.state_dict()
    ok = ok and all(sd2[k].dtype == torch.int64 and sd2[k].item() == 7 for k in nbt)
    ok = ok and all(torch.equal(v.float(), sd2[k].float()) for k, v in m.state_dict().items())
    ok = ok and list(json.loads(json.dumps(m.cfg))) == list(ref.canonical_config(m.cfg)) and cfg2["norm"] == "batchnorm"
    check("batchnorm checkpoint: F32 [] num_batches_tracked -> int64, strict load", ok, f"{nbt}")


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
    cfg = {"format_version": 1, "model": "patchtst", "seq_len": L, "pred_len": P, "n_channels": 7, "d_model": 16,
           "n_heads": 4, "e_layers": 1, "d_ff": 32, "patch_len": 16, "stride": 8}
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
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "zero_head.safetensors")
        ref.save_checkpoint(path, m, m.cfg, meta)
        res = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "reference", "check_checkpoint.py"),
                              path, csv_path], capture_output=True, text=True)
    got = json.loads(res.stdout.strip().splitlines()[-1]) if res.returncode == 0 else {}
    ok = res.returncode == 0 and n == 2857 and all(abs(got[k] - want[k]) < 1e-6 * want[k] for k in want)
    check("check_checkpoint.py vs NumPy (zero head => window mean)", ok, f"got {got} want {want} {res.stderr[-300:]}")


def main():
    test_safetensors()
    test_linear_attention()
    test_softmax_vs_mha()
    test_replication_pad()
    test_param_count()
    test_batchnorm_module()
    test_numpy_twin()
    test_fixtures_reproduce()
    test_check_checkpoint()
    print("ALL OK" if not FAILED else f"{len(FAILED)} FAILED: {FAILED}")
    sys.exit(1 if FAILED else 0)


if __name__ == "__main__":
    main()
