#!/usr/bin/env bash
# Accuracy benchmark (not a test): Informer on ETTh1, features M, look-back 96, label 48, horizon 96,
# with main_informer.py's training settings (Adam lr 1e-4, batch 32, 6 epochs, patience 3, lradj
# type1: the seqformer defaults for --model informer) and configs/informer_etth1.json (d_model 32:
# the official 512 does not fit a 15-minute run on the shared 2-core machine); one run at a time,
# one thread. Prints each seed's test MSE/MAE, epochs and seconds per epoch, and the mean.
# Usage: bench/informer_etth1.sh [data.csv] [seeds]
set -euo pipefail
cd "$(dirname "$0")/.."
data=${1:-data/ETTh1.csv}; seeds=${2:-"2021 2022 2023"}
for s in $seeds; do
  out=runs/informer_etth1_96_s$s
  [ -s "$out/metrics.json" ] || ./build/seqformer train --config configs/informer_etth1.json \
      --data "$data" --features M --seed "$s" --threads 1 --progress plain --out "$out" \
      >/dev/null 2>"$out.log" || { echo "run $out failed (see $out.log)"; exit 1; }
done
python3 - "$seeds" <<'PY'
import csv, json, sys
seeds = sys.argv[1].split()
rows = []
for s in seeds:
    r = json.load(open(f"runs/informer_etth1_96_s{s}/metrics.json"))
    log = list(csv.DictReader(open(f"runs/informer_etth1_96_s{s}/train_log.csv")))
    per_epoch = sum(float(e["seconds"]) for e in log) / len(log) if log and "seconds" in log[0] else float("nan")
    rows.append(r)
    print(f"seed {s}: test mse {r['test']['mse']:.4f} mae {r['test']['mae']:.4f} (best epoch {r['best_epoch']}, "
          f"{r['epochs_run']} epochs, {r['train_seconds']:.0f} s, {per_epoch:.0f} s/epoch incl. validation)")
mse = sum(r["test"]["mse"] for r in rows) / len(rows)
mae = sum(r["test"]["mae"] for r in rows) / len(rows)
print(f"mean of {len(rows)}: test mse {mse:.4f} mae {mae:.4f}")
PY
