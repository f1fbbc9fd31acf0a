#!/usr/bin/env bash
# Accuracy benchmark (not a test): PatchTST with default flags on ETTh1, features M, look-back 336,
# for the given horizons and seeds; prints each run's test MSE/MAE and the mean per horizon.
# Usage: bench/etth1_accuracy.sh [data.csv] [horizons] [seeds]
#   e.g. bench/etth1_accuracy.sh data/ETTh1.csv "96 192 336 720" "2021 2022 2023"
set -euo pipefail
cd "$(dirname "$0")/.."
data=${1:-data/ETTh1.csv}; horizons=${2:-96}; seeds=${3:-"2021 2022 2023"}
bash scripts/build.sh
for h in $horizons; do
  for s in $seeds; do
    out=runs/etth1_${h}_s$s
    [ -s "$out/metrics.json" ] || ./build/seqformer train --data "$data" --pred-len "$h" --seed "$s" \
        --progress plain --out "$out" >/dev/null 2>"$out.log" || { echo "run $out failed"; exit 1; }
  done
done
python3 - "$horizons" "$seeds" <<'PY'
import json, sys
for h in sys.argv[1].split():
    rows = [json.load(open(f"runs/etth1_{h}_s{s}/metrics.json")) for s in sys.argv[2].split()]
    for s, r in zip(sys.argv[2].split(), rows):
        print(f"H={h} seed={s}: test mse {r['test']['mse']:.4f} mae {r['test']['mae']:.4f} "
              f"(best epoch {r['best_epoch']}, {r['epochs_run']} epochs, {r['train_seconds']:.0f} s)")
    mse = sum(r['test']['mse'] for r in rows) / len(rows); mae = sum(r['test']['mae'] for r in rows) / len(rows)
    print(f"H={h} mean of {len(rows)}: test mse {mse:.4f} mae {mae:.4f}")
PY
