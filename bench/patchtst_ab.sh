#!/bin/sh
# Interleaved A/B of bench_patchtst (the ETTh1 PatchTST training step of bench/run.sh): a
# bench_patchtst built from another commit (OLD) against this tree's (NEW), REPS rounds, so the
# slow drifts of a shared machine hit both alike. Prints the training step's wall and CPU
# milliseconds and the output checksum (equal when the change keeps the bits) per run.
# usage: OLD=/path/to/old/build/bench_patchtst bench/patchtst_ab.sh [THREADS (2)] [REPS (5)]
#   e.g. git worktree add /tmp/old REV && cmake -S /tmp/old -B /tmp/old/build -DCMAKE_BUILD_TYPE=Release
#        && cmake --build /tmp/old/build --target bench_patchtst
set -eu
OLD=${OLD:?set OLD to the other build\'s bench_patchtst}
NEW=${NEW:-./build/bench_patchtst}
T=${1:-2}
REPS=${2:-5}
. "$(dirname "$0")/ab_common.sh"
one_run() {
    printf '%s: ' "$2"
    "$1" --threads "$T" --infer-runs 100 |
        grep -o '"train_step_ms":[0-9.]*\|"train_step_cpu_ms":[0-9.]*\|"out_checksum":[-0-9.]*' | tr '\n' ' '
    echo
}
ab_rounds "$REPS" one_run
