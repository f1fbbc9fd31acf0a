#!/usr/bin/env python3
"""PyTorch baseline timings for seqformer's PatchTST (the reference twin in tools/reference).

(a) training throughput: forward + MSE + backward + Adam step, train mode (dropout on),
    random inputs, after warm-up; median over --reps repetitions of --steps steps each.
(b) batch-1 inference latency: eval mode, torch.no_grad(), p50 (median) and p99 of --infer-runs calls.

Defaults are the ETTh1 PatchTST setting (L=336, P=96, C=7, d=16, H=4, E=3, F=128,
patch 16, stride 8, batch 128, dropout 0.3, post-norm LayerNorm, learned positions).
Prints one JSON line.  Run with Debian's torch:  /usr/bin/python3 bench/torch_patchtst.py --threads 2
"""

import argparse
import json
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools", "reference"))
import seqformer_ref as ref  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0: leave torch's default)")
    ap.add_argument("--seq-len", type=int, default=336)
    ap.add_argument("--pred-len", type=int, default=96)
    ap.add_argument("--n-channels", type=int, default=7)
    ap.add_argument("--d-model", type=int, default=16)
    ap.add_argument("--n-heads", type=int, default=4)
    ap.add_argument("--e-layers", type=int, default=3)
    ap.add_argument("--d-ff", type=int, default=128)
    ap.add_argument("--patch-len", type=int, default=16)
    ap.add_argument("--stride", type=int, default=8)
    ap.add_argument("--dropout", type=float, default=0.3)
    ap.add_argument("--head-dropout", type=float, default=0.0)
    ap.add_argument("--mixer", choices=["softmax", "linear"], default="softmax")
    ap.add_argument("--causal", action="store_true")
    ap.add_argument("--norm", choices=["layernorm", "rmsnorm", "batchnorm"], default="layernorm")
    ap.add_argument("--norm-place", choices=["post", "pre"], default="post")
    ap.add_argument("--pos", choices=["learned", "sinusoidal"], default="learned")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--warmup", type=int, default=3, help="untimed training steps first")
    ap.add_argument("--steps", type=int, default=5, help="training steps per timed repetition")
    ap.add_argument("--reps", type=int, default=5, help="timed training repetitions (median reported)")
    ap.add_argument("--infer-runs", type=int, default=1000)
    ap.add_argument("--infer-warmup", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    cfg = {"format_version": 1, "model": "patchtst", "seq_len": args.seq_len, "pred_len": args.pred_len,
           "n_channels": args.n_channels, "d_model": args.d_model, "n_heads": args.n_heads,
           "e_layers": args.e_layers, "d_ff": args.d_ff, "patch_len": args.patch_len, "stride": args.stride,
           "revin": True, "dropout": args.dropout, "head_dropout": args.head_dropout, "mixer": args.mixer,
           "causal": args.causal, "norm": args.norm, "norm_place": args.norm_place, "pos": args.pos}
    model = ref.build_model(cfg)
    n_params = ref.count_params(model)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    L, P, C, B = args.seq_len, args.pred_len, args.n_channels, args.batch
    x = torch.randn(B, L, C)
    y = torch.randn(B, P, C)

    # (a) training
    model.train()

    def step():
        opt.zero_grad(set_to_none=True)
        loss = torch.mean((model(x) - y) ** 2)
        loss.backward()
        opt.step()
        return loss

    for _ in range(args.warmup):
        step()
    rep_times = []
    for _ in range(args.reps):
        t0 = time.perf_counter()
        for _ in range(args.steps):
            step()
        rep_times.append((time.perf_counter() - t0) / args.steps)
    step_s = statistics.median(rep_times)

    # (b) batch-1 inference
    model.eval()
    x1 = torch.randn(1, L, C)
    lat = []
    with torch.no_grad():
        for _ in range(args.infer_warmup):
            model(x1)
        for _ in range(args.infer_runs):
            t0 = time.perf_counter()
            model(x1)
            lat.append(time.perf_counter() - t0)
    lat_ms = statistics.median(lat) * 1e3

    print(json.dumps({
        "impl": "pytorch", "torch_version": torch.__version__, "threads": torch.get_num_threads(),
        "params": n_params, "batch": B,
        "train_steps_per_s": 1.0 / step_s, "train_step_ms": step_s * 1e3,
        "train_step_ms_min": min(rep_times) * 1e3,
        "infer_b1_latency_ms": lat_ms, "infer_b1_latency_ms_p10": sorted(lat)[len(lat) // 10] * 1e3,
        "infer_b1_p50_ms": lat_ms, "infer_b1_p99_ms": sorted(lat)[round(0.99 * (len(lat) - 1))] * 1e3,
        "infer_runs": len(lat),
        "config": cfg,
    }))


if __name__ == "__main__":
    main()
