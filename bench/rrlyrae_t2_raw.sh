#!/bin/bash
# t2 on the raw irregular RR Lyrae observations with time encodings (positions "time"),
# 5-fold stratified CV on exactly the folds of bench/rrlyrae_baseline.py (seqformer gp
# --folds 5 --seed 1), one training per (fold, model seed); then the mean +- std over the
# folds of test accuracy, log-loss and ROC-AUC, per seed and over all runs.
#
# usage: bash bench/rrlyrae_t2_raw.sh [SEEDS] [PARALLEL]
#   SEEDS: model seeds (default "2021 2022 2023"); PARALLEL: trainings at once (default 2)
#   env: OUT (run directories; default /tmp/rrlyrae_t2_raw), EXTRA (more train flags),
#        FOLDS_DIR (default /tmp/rrlyrae_raw_folds), BIN (default ./build/seqformer),
#        SUMMARY_ONLY=1 (only print the table of the runs already finished)
# Every training runs under nice -n 19 with --threads 1 (shared machine).
set -euo pipefail
cd "$(dirname "$0")/.."
SEEDS=${1:-"2021 2022 2023"}
PAR=${2:-2}
OUT=${OUT:-/tmp/rrlyrae_t2_raw}
D=../shared/data/lightcurves
FOLDS=${FOLDS_DIR:-/tmp/rrlyrae_raw_folds}
BIN=${BIN:-./build/seqformer}
# model flags: t2's defaults, time positions with the shortest period 0.1 day
# (scale 2 pi / 0.1; the longest, at 10000^(-30/32), ~560 days), each star's channels
# z-normalised over its own observations (fluxes differ by 100x between stars)
FLAGS="--pos time --time-channel 0 --time-scale 62.83 --normalize series --batch-size 8 --epochs 30 --patience 10 ${EXTRA:-}"
mkdir -p "$OUT"
mkdir -p "$FOLDS"
if [ ! -f "$FOLDS/folds.csv" ]; then
    ./build/seqformer gp --data $D/rrlyrae_sdss_stripe82.csv.gz --labels $D/rrlyrae_periods.csv \
        --raw --out "$FOLDS/all.ts" --folds 5 --seed 1 --out-dir "$FOLDS" >/dev/null
fi
jobs=()
[ "${SUMMARY_ONLY:-0}" = 1 ] && SEEDS_RUN="" || SEEDS_RUN=$SEEDS
for s in $SEEDS_RUN; do for f in 0 1 2 3 4; do jobs+=("$s $f"); done; done
[ ${#jobs[@]} -gt 0 ] && printf '%s\n' "${jobs[@]}" | OMP_WAIT_POLICY=passive xargs -P "$PAR" -L 1 bash -c '
    s=$0; f=$1; dir='"$OUT"'/seed${s}_fold${f}
    [ -f "$dir/done.json" ] && exit 0
    nice -n 19 '"$BIN"' train --task classify --data '"$FOLDS"'/fold${f}_TRAIN.ts \
        --test '"$FOLDS"'/fold${f}_TEST.ts '"$FLAGS"' --seed $s --threads 1 --out $dir \
        --progress plain > $dir.log 2>&1 && tail -1 $dir.log > $dir/done.json'
/usr/bin/python3 - "$OUT" $SEEDS <<'PY'
import json, sys, glob, statistics as st
out, seeds = sys.argv[1], sys.argv[2:]
allr = {"accuracy": [], "log_loss": [], "roc_auc_macro": []}
def row(name, r):
    cells = []
    for k in ("accuracy", "log_loss", "roc_auc_macro"):
        v = r[k]
        cells.append(f"{st.mean(v):.4f} ± {st.stdev(v) if len(v) > 1 else 0:.4f}")
    print(f"| {name} | " + " | ".join(cells) + " |")
print("| t2 raw + time encoding (5 folds, mean ± std) | accuracy | log-loss | ROC-AUC |")
print("|---|---|---|---|")
means = {k: [] for k in allr}
for s in seeds:
    r = {k: [] for k in allr}
    for f in range(5):
        try:
            t = json.load(open(f"{out}/seed{s}_fold{f}/done.json"))["test"]
        except (OSError, ValueError, KeyError):
            continue
        for k in r: r[k].append(t[k]); allr[k].append(t[k])
    if len(r["accuracy"]) == 5:
        row(f"seed {s}", r)
        for k in r: means[k].append(st.mean(r[k]))
    elif r["accuracy"]:
        row(f"seed {s} ({len(r['accuracy'])} of 5 folds)", r)
if len(means["accuracy"]) > 1:
    row(f"mean of the {len(means['accuracy'])} seeds' fold means (± std over seeds)", means)
PY
