#!/usr/bin/env bash
# The modular core's acceptance runs (issue #10): PatchTST and DLinear trained from their JSON
# configs (configs/*.json) at seed 2021 on ETTh1 H=96, and the hybrid stack (softmax and linear
# attention blocks alternating, a single-mixer block among them). Prints one JSON line per run.
# Usage: bash bench/config_runs.sh [threads] [out_dir]
set -euo pipefail
cd "$(dirname "$0")/.."
threads=${1:-2}
out=${2:-runs/config_runs}
SF=${SF:-build/seqformer}
[ -x "$SF" ] || bash scripts/build.sh >/dev/null
for c in patchtst_etth1 dlinear_etth1 hybrid_etth1; do
  r=$("$SF" train --config "configs/$c.json" --data data/ETTh1.csv --seed 2021 --threads "$threads" \
        --progress quiet --out "$out/$c")
  echo "{\"config\":\"configs/$c.json\",\"result\":$r}"
done
