#!/bin/sh
# Interleaved A/B of bench_t2 (t2's default size, the config of bench/t2_throughput.sh): a bench_t2
# built from another commit (OLD) against this tree's (NEW), REPS rounds, so slow drifts of a shared
# machine hit both alike. Prints batch-1 p50 latency and batched curves/s per run.
# usage: OLD=/path/to/old/build/bench_t2 bench/t2_ab.sh [THREADS (1)] [REPS (3)] [BATCH (512)]
#   e.g. git worktree add /tmp/old REV && cmake -S /tmp/old -B /tmp/old/build -DCMAKE_BUILD_TYPE=Release
#        && cmake --build /tmp/old/build --target bench_t2
set -eu
OLD=${OLD:?set OLD to the other build\'s bench_t2}
NEW=${NEW:-./build/bench_t2}
T=${1:-1}
REPS=${2:-3}
B=${3:-512}
CFG=$(sed -n "s/^CFG='\(.*\)'$/\1/p" "$(dirname "$0")/t2_throughput.sh")
[ -n "$CFG" ] || { echo "t2_ab.sh: no CFG line in t2_throughput.sh" >&2; exit 1; }
. "$(dirname "$0")/ab_common.sh"
one_run() {
    printf '%s: ' "$2"
    "$1" --config "$CFG" --threads "$T" --batch "$B" --runs 500 --secs 3 --gp-objects 0 |
        grep -o '"b1_latency_ms_p50":[0-9.]*\|"batched_curves_per_s":[0-9.]*\|"chunked_curves_per_s":[0-9.]*' | tr '\n' ' '
    echo
}
ab_rounds "$REPS" one_run
