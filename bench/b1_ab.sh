#!/bin/sh
# Interleaved A/B of the ETTh1 PatchTST batch-1 forecast latency (bench/run.sh's batch-1 figure):
# a bench_patchtst built from another commit (OLD) against this tree's (NEW), REPS rounds, at 1
# thread and at THREADS, so the slow drifts of a shared machine hit both alike. Prints p50 and p99
# over RUNS calls per run, and the checksum of a batch-1 training + eval pass (--batch 1: equal
# when the change keeps the bits of the batch-1 paths).
# usage: OLD=/path/to/old/build/bench_patchtst bench/b1_ab.sh [THREADS (2)] [REPS (3)] [RUNS (3000)]
set -eu
OLD=${OLD:?set OLD to the other build\'s bench_patchtst}
NEW=${NEW:-./build/bench_patchtst}
TH=${1:-2}
REPS=${2:-3}
RUNS=${3:-3000}
. "$(dirname "$0")/ab_common.sh"
one_run() {
    printf '%s: ' "$2"
    "$1" --threads "$T" --batch 1 --reps 1 --steps 2 --infer-runs "$RUNS" |
        grep -o '"infer_b1_p50_ms":[0-9.]*\|"infer_b1_p99_ms":[0-9.]*\|"out_checksum":[-0-9.]*' | tr '\n' ' '
    echo
}
for T in 1 "$TH"; do ab_rounds "$REPS" one_run; done
