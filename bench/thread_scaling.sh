#!/bin/sh
# Training-step thread scaling of the ETTh1 PatchTST model (issue #11 target 4): bench_patchtst at
# 1 and at THREADS threads, interleaved REPS times so that the drifts of a shared machine hit both
# alike; prints each pair's step times and their ratio, then the median ratio.
# usage: bench/thread_scaling.sh [THREADS (2)] [REPS (5)]
set -eu
cd "$(dirname "$0")/.."
BIN=${BIN:-./build/bench_patchtst}
T=${1:-2}
REPS=${2:-5}
rep=1
ratios=""
while [ "$rep" -le "$REPS" ]; do
    one=$("$BIN" --threads 1 --infer-runs 100 | grep -o '"train_step_ms":[0-9.]*' | cut -d: -f2)
    many=$("$BIN" --threads "$T" --infer-runs 100 | grep -o '"train_step_ms":[0-9.]*' | cut -d: -f2)
    r=$(echo "$one $many" | awk '{printf "%.3f", $1 / $2}')
    echo "pair $rep (load $(cut -d' ' -f1 /proc/loadavg)): 1 thread $one ms, $T threads $many ms -> ${r}x"
    ratios="$ratios $r"
    rep=$((rep + 1))
done
echo "$ratios" | tr ' ' '\n' | sed '/^$/d' | sort -n | awk '{a[NR] = $1} END {
    m = NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2; printf "median of %d pairs: %.3fx\n", NR, m }'
