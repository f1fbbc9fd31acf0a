#!/usr/bin/env python3
"""PyTorch side of the t2 throughput comparison (bench/t2_throughput.sh): the twin of
tools/reference/seqformer_ref.py (T2) built from the same JSON config as bench/bench_t2.c, eval
mode, torch.no_grad(), random weights and regularly sampled curves (every series at full length,
so the batch runs through the twin's modules at once instead of its per-series padding loop):
batch-1 latency p50/p99 over --runs calls and batched throughput (curves per second over at
least --secs seconds, and per CPU-second). Prints one JSON line.
usage: /usr/bin/python3 bench/torch_t2.py --config JSON [--threads 2] [--batch 512] [--runs 2000]
"""
import argparse
import json
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools", "reference"))
import seqformer_ref as ref  # noqa: E402


def forward_full(m, x):
    """T2.forward for series that all have the full length (no padding): the whole batch at once."""
    u = F.relu(m.embed(x))
    if m.pos_embed is not None:
        u = u + m.pos_embed
    elif m._pe64 is not None:
        u = u + m._pe64.to(u.dtype)
    for blk in m.blocks:
        u = blk(u)
    return m.classifier(m.drop(u.mean(dim=1)))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--runs", type=int, default=2000)
    ap.add_argument("--secs", type=float, default=2.0)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(1)
    m = ref.build_model(json.loads(args.config)).eval()
    L, C = m.seq_len, m.c
    x = torch.randn(args.batch, L, C)
    lens = torch.full((args.batch,), float(L))
    with torch.no_grad():
        # the batched path is the twin's own forward on full-length series
        assert torch.allclose(forward_full(m, x[:3]), m(x[:3], lens[:3]), rtol=1e-5, atol=1e-6)
        lat = []
        for r in range(-50, args.runs):
            t = time.perf_counter()
            forward_full(m, x[:1])
            if r >= 0:
                lat.append(time.perf_counter() - t)
        lat.sort()
        q = lambda p: lat[min(len(lat) - 1, max(0, int(p * len(lat) + 0.5) - 1))] * 1e3  # noqa: E731
        forward_full(m, x)
        n, t0, c0 = 0, time.perf_counter(), time.process_time()
        while True:
            forward_full(m, x)
            n += args.batch
            t = time.perf_counter()
            if t - t0 >= args.secs:
                break
        cpu = time.process_time() - c0
    p50 = q(0.5)
    print(json.dumps({"impl": "pytorch", "torch": torch.__version__, "threads": args.threads, "seq_len": L,
                      "channels": C, "params": ref.count_params(m), "b1_latency_ms_p50": round(p50, 4),
                      "b1_latency_ms_p99": round(q(0.99), 4), "b1_curves_per_s": round(1e3 / p50, 1),
                      "batch": args.batch, "batched_curves_per_s": round(n / (t - t0), 1),
                      "batched_curves_per_cpu_s": round(n / cpu, 1)}))


if __name__ == "__main__":
    main()
