#!/usr/bin/env bash
# t2 on the UEA sets BasicMotions, JapaneseVowels (unequal lengths 7..29) and PenDigits of
# ../shared/data/classification/uea with the classify defaults (plus the flags passed after the
# seeds), then the test accuracies next to the references of ../shared/data/README.md §2.2:
# 1-NN Euclidean computed there (BasicMotions, PenDigits), ResNet / FCN on JapaneseVowels (Fawaz
# et al. 2019, MTS archive, mean of 10 runs); "-" = no reference there.
# Usage: bash bench/uea_table.sh [seeds] [extra train flags...]
#   bash bench/uea_table.sh "2021 2022 2023"
#   TABLE_ONLY=1 bash bench/uea_table.sh "2021 2022 2023"
# Runs go to ${RUNS:-/dev/shm/seqformer_uea}/<set>_s<seed> (tmpfs: the per-epoch training-state
# fsyncs cost more than the training on a disk), one JSON line per run is appended to
# bench/results/uea_runs.jsonl; a run already there is not repeated.
set -euo pipefail
cd "$(dirname "$0")/.."
seeds=${1:-"2021 2022 2023"}; shift $(( $# < 1 ? $# : 1 ))
SF=${SF:-build/seqformer}
UCR=${UEA:-../shared/data/classification/uea}
RUNS=${RUNS:-/dev/shm/seqformer_uea}
LOG=bench/results/uea_runs.jsonl
mkdir -p "$RUNS" bench/results
touch "$LOG"
# name  1-NN-ED  ResNet  FCN
REF="BasicMotions 0.6000 - -
JapaneseVowels - 0.992 0.993
PenDigits 0.9774 - -"
flags="$*"
if [ -z "${TABLE_ONLY:-}" ]; then
  while read -r name _; do
    for s in $seeds; do
      key="\"set\":\"$name\",\"seed\":$s,\"flags\":\"$flags\""
      grep -qF "$key" "$LOG" && continue
      out=$RUNS/${name}_s$s
      t0=$(date +%s)
      if OMP_WAIT_POLICY=passive "$SF" train --task classify --data "$UCR/$name/${name}_TRAIN.ts" \
          --test "$UCR/$name/${name}_TEST.ts" --seed "$s" --threads 1 --progress quiet \
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
    acc_all.append(m); pass
    print(f"| {name} | {m:.4f} | {len(accs)} | {' '.join(f'{a:.3f}' for a in accs)} | {nn} | {res} | {fcn} |")
if acc_all:
    k = len(acc_all)
    mean = lambda v: sum(v) / len(v)
    print(f"| mean over the {k} sets run | {mean(acc_all):.4f} | | | | | |")
if missing:
    print("not run: " + ", ".join(missing))
PY
