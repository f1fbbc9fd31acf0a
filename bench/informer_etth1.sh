#!/usr/bin/env bash
# Accuracy benchmark (not a test): Informer on ETTh1, features M, look-back 96, label 48, horizon 96,
# with main_informer.py's training settings (Adam lr 1e-4, batch 32, 6 epochs, patience 3, lradj
# type1: the seqformer defaults for --model informer) and configs/informer_etth1.json (d_model 32:
# the official 512 does not fit a 15-minute run on the shared 2-core machine); one run at a time,
# one thread. Prints each seed's test MSE/MAE, epochs and seconds per epoch, and the mean.
# Usage: bench/informer_etth1.sh [data.csv] [seeds]
#   CONFIG=configs/informer_etth1_d512.json (the official width, d_model 512 / d_ff 2048, the same
#   model as `--model Informer --seq-len 96 --label-len 48 --pred-len 96`): runs go to
#   runs/informer_etth1_d512_96_sS; PAR=2 trains two seeds at once (one thread each);
#   REPORT_ONLY=1 only prints the seeds that finished.
set -euo pipefail
cd "$(dirname "$0")/.."
data=${1:-data/ETTh1.csv}; seeds=${2:-"2021 2022 2023"}
config=${CONFIG:-configs/informer_etth1.json}
name=$(basename "$config" .json)
export data config name
mkdir -p runs
[ "${REPORT_ONLY:-0}" = 1 ] || printf '%s\n' $seeds | xargs -P "${PAR:-1}" -I{} bash -c '
  out=runs/${name}_96_s{}
  [ -s "$out/metrics.json" ] || ./build/seqformer train --config "$config" \
      --data "$data" --features M --seed {} --threads 1 --progress plain --out "$out" \
      >/dev/null 2>"$out.log" || { echo "run $out failed (see $out.log)"; exit 1; }'
python3 - "$seeds" "$name" <<'PY'
import csv, json, sys
seeds, name = sys.argv[1].split(), sys.argv[2]
rows = []
for s in seeds:
    try:
        r = json.load(open(f"runs/{name}_96_s{s}/metrics.json"))
    except OSError:
        print(f"seed {s}: not finished (no runs/{name}_96_s{s}/metrics.json)")
        continue
    log = list(csv.DictReader(open(f"runs/{name}_96_s{s}/train_log.csv")))
    per_epoch = sum(float(e["seconds"]) for e in log) / len(log) if log and "seconds" in log[0] else float("nan")
    rows.append(r)
    print(f"seed {s}: test mse {r['test']['mse']:.4f} mae {r['test']['mae']:.4f} (best epoch {r['best_epoch']}, "
          f"{r['epochs_run']} epochs, {r['train_seconds']:.0f} s, {per_epoch:.0f} s/epoch incl. validation)")
if not rows:
    sys.exit(0)
mse = sum(r["test"]["mse"] for r in rows) / len(rows)
mae = sum(r["test"]["mae"] for r in rows) / len(rows)
print(f"mean of {len(rows)}: test mse {mse:.4f} mae {mae:.4f}")
PY
