#!/bin/sh
# Interleaved A/B of bench_mfu's encoder step: a bench_mfu built from another commit (OLD) against
# this tree's (NEW), REPS rounds, so slow drifts of a shared machine hit both alike. Check the FMA
# peak each run prints (about 200 GFLOP/s at 2 threads on the 2-core EPYC): a run whose peak reads
# half that had its threads on one core and says nothing about the kernels.
# usage: OLD=/path/to/old/build/bench_mfu [ONLY=encoder|lm] bench/mfu_ab.sh [THREADS] [REPS]
#   e.g. git worktree add /tmp/old REV && cmake -S /tmp/old -B /tmp/old/build -DCMAKE_BUILD_TYPE=Release
#        && cmake --build /tmp/old/build --target bench_mfu
set -eu
OLD=${OLD:?set OLD to the other build\'s bench_mfu}
NEW=${NEW:-./build/bench_mfu}
T=${1:-2}
REPS=${2:-3}
ONLY=${ONLY:-encoder}
. "$(dirname "$0")/ab_common.sh"
one_run() {
    echo "== $2"
    "$1" --only "$ONLY" --threads "$T" | grep -E "^$ONLY |^GEMM|^attention|^other|peak, $T"
}
ab_rounds "$REPS" one_run
