#!/usr/bin/env python3
"""Cross-check a seqformer checkpoint (e.g. written by the C CLI) in PyTorch.

    /usr/bin/python3 tools/reference/check_checkpoint.py model.safetensors data/ETTh1.csv

Loads the weights strictly (load_state_dict(strict=True)) into the reference twin built
from __metadata__["config"] (format_version 2, or an older format_version 1 config, converted
by seqformer_ref.config_v1_to_v2), z-scores the CSV with the stored statistics
(__metadata__["scaler_mean"], ["scaler_std"], ["columns"], each a JSON string), and
evaluates on the ETTh1 standard test split: rows [11520 - L, 14400) of the data
(header excluded), every window (stride 1), in batches (--drop-last B: only the windows of the
full batches of B, as a drop_last=True test loader scores them).  Prints one JSON line
{"mse": ..., "mae": ..., "windows": ...} (errors in z-scored units, mean over windows * P * C).
"""

import argparse
import csv
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import seqformer_ref as ref  # noqa: E402

ETTH1_TEST_START = 12 * 30 * 24 + 4 * 30 * 24  # 11520
ETTH1_TEST_END = 12 * 30 * 24 + 8 * 30 * 24  # 14400


def read_csv(path, columns=None):
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    header, body = rows[0], [r for r in rows[1:] if r]
    if columns is None:
        columns = [h for h in header if h.lower() != "date"]
    missing = [c for c in columns if c not in header]
    if missing:
        raise SystemExit(f"columns {missing} not in {path} (header {header})")
    idx = [header.index(c) for c in columns]
    data = np.array([[float(r[i]) for i in idx] for r in body], dtype=np.float64)
    return data, columns


def evaluate(model, z, seq_len, pred_len, batch_size=256, drop_last=0):
    """z [T, C] (already scaled) -> (mse, mae) over all windows x=z[i:i+L], y=z[i+L:i+L+P]; with
    drop_last = b, only the first floor(n / b) * b windows (a test loader with batch size b and
    drop_last=True, as LTSF-Linear's before its commit 6fe4c28 and the papers of that time)."""
    T = z.shape[0]
    n_win = T - seq_len - pred_len + 1
    if drop_last > 0:
        n_win = n_win // drop_last * drop_last
    if n_win < 1:
        raise SystemExit(f"test split too short: {T} rows for L={seq_len}, P={pred_len}")
    zt = torch.from_numpy(z.astype(np.float32))
    se = ae = 0.0
    count = 0
    with torch.no_grad():
        for s in range(0, n_win, batch_size):
            idx = torch.arange(s, min(s + batch_size, n_win))
            x = torch.stack([zt[i:i + seq_len] for i in idx.tolist()])
            y = torch.stack([zt[i + seq_len:i + seq_len + pred_len] for i in idx.tolist()])
            d = (model(x) - y).double()
            se += (d * d).sum().item()
            ae += d.abs().sum().item()
            count += d.numel()
    return se / count, ae / count, n_win


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint")
    ap.add_argument("csv")
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0: torch default)")
    ap.add_argument("--verbose", action="store_true", help="also print windows / rows / config to stderr")
    ap.add_argument("--drop-last", type=int, default=0, metavar="B",
                    help="score only the windows a test loader with batch B and drop_last=True sees "
                         "(0: every window)")
    args = ap.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)

    model, cfg, meta = ref.load_checkpoint(args.checkpoint)
    for k in ("scaler_mean", "scaler_std"):
        if k not in meta:
            raise SystemExit(f"{args.checkpoint}: __metadata__ lacks {k!r}")
    mean = np.array(json.loads(meta["scaler_mean"]), dtype=np.float64)
    std = np.array(json.loads(meta["scaler_std"]), dtype=np.float64)
    columns = json.loads(meta["columns"]) if "columns" in meta else None
    data, columns = read_csv(args.csv, columns)
    C = cfg["n_channels"]
    if data.shape[1] != C or mean.shape != (C,) or std.shape != (C,):
        raise SystemExit(f"channel mismatch: config n_channels={C}, csv columns={data.shape[1]}, "
                         f"scaler_mean={mean.shape}, scaler_std={std.shape}")
    L, P = cfg["seq_len"], cfg["pred_len"]
    if data.shape[0] < ETTH1_TEST_END:
        raise SystemExit(f"{args.csv}: {data.shape[0]} rows, the ETTh1 split needs {ETTH1_TEST_END}")
    test = data[ETTH1_TEST_START - L:ETTH1_TEST_END]
    z = (test - mean) / std
    mse, mae, n_win = evaluate(model, z, L, P, args.batch_size, args.drop_last)
    if args.verbose:
        print(f"rows [{ETTH1_TEST_START - L}, {ETTH1_TEST_END}), {n_win} windows, columns {columns}, "
              f"config (canonical v2) {json.dumps(cfg)}", file=sys.stderr)
    print(json.dumps({"mse": mse, "mae": mae, "windows": n_win}))


if __name__ == "__main__":
    main()
