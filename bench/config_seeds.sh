#!/usr/bin/env bash
# Accuracy runs from a JSON config over several seeds (one training at a time), with each run's
# test MSE/MAE and the mean. The model's own training defaults apply (iTransformer and DLinear:
# Adam, batch 32, 10 epochs, lradj type1, patience 3).
# Usage: bash bench/config_seeds.sh CONFIG DATA [seeds] [threads] [extra train flags...]
#   bash bench/config_seeds.sh configs/itransformer_etth1.json data/ETTh1.csv
#   bash bench/config_seeds.sh configs/itransformer_ettm1.json ../shared/data/forecasting/ETTm1.csv.gz
#   bash bench/config_seeds.sh configs/dlinear_etth1.json data/ETTh1.csv
# On a shared, oversubscribed machine use threads 1: two OpenMP threads that wait on each other
# while the cores are busy elsewhere ran 10x slower per epoch here.
set -euo pipefail
cd "$(dirname "$0")/.."
cfg=$1; data=$2; seeds=${3:-"2021 2022 2023"}; threads=${4:-1}; shift $(( $# < 4 ? $# : 4 ))
SF=${SF:-build/seqformer}
[ -x "$SF" ] || bash scripts/build.sh >/dev/null
mkdir -p runs
name=$(basename "$cfg" .json)
for s in $seeds; do
  out=runs/${name}_s$s
  [ -s "$out/metrics.json" ] || "$SF" train --config "$cfg" --data "$data" --seed "$s" --threads "$threads" \
      --progress plain --out "$out" "$@" >/dev/null 2>"$out.log" || { echo "run $out failed (see $out.log)"; exit 1; }
done
python3 - "$name" "$seeds" <<'PY'
import json, sys
name, seeds = sys.argv[1], sys.argv[2].split()
rows = [json.load(open(f"runs/{name}_s{s}/metrics.json")) for s in seeds]
for s, r in zip(seeds, rows):
    print(f"{name} seed={s}: test mse {r['test']['mse']:.4f} mae {r['test']['mae']:.4f} "
          f"(best epoch {r['best_epoch']}, {r['epochs_run']} epochs, {r['train_seconds']:.0f} s)")
mse = sum(r['test']['mse'] for r in rows) / len(rows); mae = sum(r['test']['mae'] for r in rows) / len(rows)
print(f"{name} mean of {len(rows)}: test mse {mse:.4f} mae {mae:.4f}")
PY
