#!/usr/bin/env bash
# t2 on the 16 UCR sets of ../shared/data/classification/ucr with ONE set of flags (the classify
# defaults plus whatever is passed after the seeds), one training at a time, then the table of
# test accuracies (mean over the seeds that finished) next to 1-NN Euclidean and the published
# ResNet / FCN means (Fawaz et al. 2019, as copied in ../shared/data/README.md §2.1).
# Usage: bash bench/ucr_table.sh [seeds] [extra train flags...]
#   bash bench/ucr_table.sh "2021 2022 2023"
#   TABLE_ONLY=1 bash bench/ucr_table.sh "2021 2022 2023"     # the table of what has finished
# Runs go to ${RUNS:-/dev/shm/seqformer_ucr}/<set>_s<seed> (tmpfs: the per-epoch training-state
# fsyncs cost more than the training on a disk), one JSON line per run is appended to
# bench/results/ucr_runs.jsonl; a run already there is not repeated.
set -euo pipefail
cd "$(dirname "$0")/.."
seeds=${1:-"2021 2022 2023"}; shift $(( $# < 1 ? $# : 1 ))
SF=${SF:-build/seqformer}
UCR=${UCR:-../shared/data/classification/ucr}
RUNS=${RUNS:-/dev/shm/seqformer_ucr}
LOG=bench/results/ucr_runs.jsonl
mkdir -p "$RUNS" bench/results
touch "$LOG"
# name  1-NN-ED  ResNet  FCN   (ordered by training cost, cheapest first)
REF="Chinatown 0.9446 0.978 0.980
ItalyPowerDemand 0.9553 0.962 0.963
SonyAIBORobotSurface1 0.6955 0.961 0.958
SonyAIBORobotSurface2 0.8594 0.975 0.980
MoteStrain 0.8786 0.924 0.936
TwoLeadECG 0.7471 1.000 0.999
ECGFiveDays 0.7967 0.966 0.985
Coffee 1.0000 1.000 1.000
GunPoint 0.9133 0.991 1.000
ECG200 0.8800 0.874 0.888
ArrowHead 0.8000 0.838 0.843
PowerCons 0.9778 0.879 0.863
Plane 0.9619 1.000 1.000
DistalPhalanxOutlineCorrect 0.7174 0.770 0.760
Beef 0.6667 0.753 0.680
Lightning2 0.7541 0.780 0.734"
flags="$*"
if [ -z "${TABLE_ONLY:-}" ]; then
  while read -r name _; do
    for s in $seeds; do
      key="\"set\":\"$name\",\"seed\":$s,\"flags\":\"$flags\""
      grep -qF "$key" "$LOG" && continue
      out=$RUNS/${name}_s$s
      t0=$(date +%s)
      if OMP_WAIT_POLICY=passive "$SF" train --task classify --data "$UCR/$name/${name}_TRAIN.tsv" \
          --test "$UCR/$name/${name}_TEST.tsv" --seed "$s" --threads 1 --progress quiet \
          --out "$out" "$@" >"$out.json" 2>"$out.log"; then
        echo "{$key,\"wall_s\":$(( $(date +%s) - t0 )),\"result\":$(cat "$out.json")}" >>"$LOG"
        echo "$name seed $s: $(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['test']['accuracy'])" "$out.json")"
      else
        echo "$name seed $s FAILED (see $out.log)"
      fi
    done
  done <<<"$REF"
fi
python3 - "$LOG" "$seeds" "$flags" "$REF" <<'PY'
import json, sys
log, seeds, flags, ref = sys.argv[1], [int(s) for s in sys.argv[2].split()], sys.argv[3], sys.argv[4]
runs = {}
for line in open(log):
    r = json.loads(line)
    if r["flags"] == flags and r["seed"] in seeds and \
            all(q["seed"] != r["seed"] for q in runs.get(r["set"], [])):  # one run per (set, seed)
        runs.setdefault(r["set"], []).append(r)
print(f"flags: --task classify (defaults) {flags}".rstrip())
print("| dataset | t2 test acc (mean) | seeds | per seed | 1-NN ED | ResNet | FCN |")
print("|---|---|---|---|---|---|---|")
acc_all, nn_all, res_all, fcn_all, missing = [], [], [], [], []
for line in ref.strip().splitlines():
    name, nn, res, fcn = line.split()
    rs = runs.get(name, [])
    if not rs:
        missing.append(name)
        print(f"| {name} | not run | 0 | | {nn} | {res} | {fcn} |")
        continue
    accs = [r["result"]["test"]["accuracy"] for r in rs]
    m = sum(accs) / len(accs)
    acc_all.append(m); nn_all.append(float(nn)); res_all.append(float(res)); fcn_all.append(float(fcn))
    print(f"| {name} | {m:.4f} | {len(accs)} | {' '.join(f'{a:.3f}' for a in accs)} | {nn} | {res} | {fcn} |")
if acc_all:
    k = len(acc_all)
    mean = lambda v: sum(v) / len(v)
    print(f"| **mean over the {k} sets run** | **{mean(acc_all):.4f}** | | | {mean(nn_all):.4f} | {mean(res_all):.4f} | {mean(fcn_all):.4f} |")
if missing:
    print("not run: " + ", ".join(missing))
PY
