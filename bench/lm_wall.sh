#!/bin/sh
# Tiny shakespeare at equal WALL time on the idle 2-core machine (issue #15's own protocol): the
# seqformer lms (causal softmax, linear attention (elu+1), Mamba, a mamba/softmax hybrid) and the
# PyTorch twin of the softmax one (bench/torch_lm_train.py, from the C softmax run's initial
# weights, replaying the C RNG: same windows, same batches, same losses up to rounding), each
# trained ALONE for BUDGET_S wall seconds at THREADS threads, one after the other, not niced.
# Same sizes, data split, optimizer, validation points and report as bench/lm_budget.sh (which
# budgets CPU time at one thread instead, for a shared machine): bench/lm_common.sh. Run it on an
# idle machine: the script prints the load average before and after each run; anything else
# running skews the result.
#
# usage: bench/lm_wall.sh BUDGET_S [OUT_DIR]   (default OUT_DIR: runs/lm_wall_BUDGET_S)
#   RUNS="softmax torch_cinit linear mamba hybrid" (the default; in this order)
#   THREADS=2  EPOCH_WINDOWS=1600 (50 steps of batch 32 between validations)
#   A run whose OUT_DIR/RUN/metrics.json exists is not run again (delete it to rerun), so a
#   session can run the comparison in parts.  REPORT_ONLY=1: print the table from the logs.
# Prints: model | params | best val loss | bpc | at step | steps | wall s | CPU s | train tokens
# per wall s | best val loss by the wall time every run reached; then 300 generated characters
# from each C model.
set -eu
BUDGET=${1:?usage: bench/lm_wall.sh BUDGET_S [OUT_DIR]}
OUT=${2:-runs/lm_wall_$BUDGET}
CLOCK=wall
THREADS=${THREADS:-2}
. "$(dirname "$0")/lm_common.sh"
RUNS=${RUNS:-softmax torch_cinit linear mamba hybrid}
load() { cut -d' ' -f1-3 /proc/loadavg; }

mkdir -p "$OUT"
if [ "${REPORT_ONLY:-0}" != 1 ]; then
    softmax_config
    for r in $RUNS; do
        if [ -f "$OUT/$r/metrics.json" ]; then
            echo "$r: done before ($OUT/$r/metrics.json), not run again"
            continue
        fi
        rm -rf "${OUT:?}/$r"
        echo "$r: started $(date -u +%H:%M:%S) UTC, load average $(load)"
        case $r in
            torch*)
                [ $r = torch ] || c_init
                "$PY" bench/torch_lm_train.py $(twin_args $r) > "$OUT/$r.log" 2>&1 ;;
            *) "$SF" train --data "$DATA" --out "$OUT/$r" $(model_flags $r) $TRAIN --epochs 100000 \
                > "$OUT/$r.log" 2>&1 ;;
        esac
        echo "$r: finished $(date -u +%H:%M:%S) UTC, load average $(load)"
    done
fi

# only finished runs in the table (a run cut short has no metrics.json)
DONE=""
for r in $RUNS; do [ -f "$OUT/$r/metrics.json" ] && DONE="$DONE $r"; done
report_and_samples $DONE
