#!/usr/bin/env bash
# Issue #11 target 5: full ETTh1 H=96 PatchTST training to early stopping with the default flags,
# timed, for each seed in turn (nothing else should run), then the mean test MSE/MAE over them.
# Usage: bench/etth1_full_training.sh OUTDIR [threads (2)] [seeds ("2021 2022 2023")] [binary]
# Writes OUTDIR/seedS.log (the training log and /usr/bin/time -v) and OUTDIR/seedS_metrics.json.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: bench/etth1_full_training.sh OUTDIR [threads] [seeds] [binary]}
threads=${2:-2}; seeds=${3:-"2021 2022 2023"}; bin=${4:-./build/seqformer}
mkdir -p "$out"
for s in $seeds; do
    run=$(mktemp -d)
    /usr/bin/time -v "$bin" train --data data/ETTh1.csv --pred-len 96 --seed "$s" --threads "$threads" \
        --progress plain --out "$run/o" > "$out/seed$s.log" 2>&1
    cp "$run/o/metrics.json" "$out/seed${s}_metrics.json"
    rm -rf "$run"
done
/usr/bin/python3 - "$out" $seeds <<'PY'
import json, re, sys
out, seeds = sys.argv[1], sys.argv[2:]
ms, ma = [], []
for s in seeds:
    r = json.load(open(f"{out}/seed{s}_metrics.json"))
    log = open(f"{out}/seed{s}.log").read()
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)", log).group(1)
    ms.append(r["test"]["mse"]); ma.append(r["test"]["mae"])
    print(f"seed {s}: test mse {r['test']['mse']:.6f} mae {r['test']['mae']:.6f}, best epoch "
          f"{r['best_epoch']}, {r['epochs_run']} epochs, process wall {wall}")
print(f"mean of {len(seeds)}: test mse {sum(ms)/len(ms):.6f} mae {sum(ma)/len(ma):.6f}")
PY
