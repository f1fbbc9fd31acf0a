#!/bin/sh
# Tiny shakespeare under a CPU-time budget (issue #15): four seqformer lms (causal softmax, linear
# attention (elu+1), Mamba, a mamba/softmax hybrid) and the PyTorch twin of the softmax model
# (bench/torch_lm_train.py; twice: PyTorch's own init and the C softmax run's init), each trained
# for BUDGET_S seconds of process CPU time at ONE thread, all six started at once under nice (the
# machine is shared: CPU time, not wall time, is the budget, so the runs are fair to each other
# whatever else runs). Same config, same data windows (the twin replays the C RNG), same optimizer
# (AdamW, constant lr 1e-3, clip 1), validation on the last 10% after every --epoch-windows windows
# (the same steps on both sides), best kept. Sizes, settings and report: bench/lm_common.sh;
# bench/lm_wall.sh budgets wall time instead, each run alone (the issue's protocol, idle machine).
#
# usage: bench/lm_budget.sh BUDGET_S [OUT_DIR]     (default OUT_DIR: runs/lm_budget_BUDGET_S)
#   EPOCH_WINDOWS=1600 (50 steps of batch 32 between validations)  NICE=19
#   TORCH_OWN_INIT=0: skip the twin from PyTorch's own init (the C-init twin stays: same steps
#   and losses as the C softmax run, so it alone measures the speed difference)
#   REPORT_ONLY=1: do not train; finish any C run left without a model (from its last saved epoch,
#   --resume with --epochs = the epochs done) and print the table from the logs.
# Prints: model | params | best val loss | bpc | at step | steps | CPU s | tokens/CPU-s | best val
# loss by the CPU time every run reached; then 300 generated characters from each C model.
set -eu
BUDGET=${1:?usage: bench/lm_budget.sh BUDGET_S [OUT_DIR]}
OUT=${2:-runs/lm_budget_$BUDGET}
CLOCK=cpu
THREADS=1
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 OMP_WAIT_POLICY=passive
. "$(dirname "$0")/lm_common.sh"
RUNS="softmax linear mamba hybrid"
TWINS="torch_cinit"
[ "${TORCH_OWN_INIT:-1}" = 1 ] && TWINS="torch torch_cinit"

mkdir -p "$OUT"
if [ "${REPORT_ONLY:-0}" != 1 ]; then
    softmax_config
    c_init
    for r in $RUNS $TWINS; do
        rm -rf "${OUT:?}/$r"
        case $r in
            torch*) nice -n "${NICE:-19}" "$PY" bench/torch_lm_train.py $(twin_args $r) > "$OUT/$r.log" 2>&1 & ;;
            *) nice -n "${NICE:-19}" "$SF" train --data "$DATA" --out "$OUT/$r" $(model_flags $r) $TRAIN \
                --epochs 100000 > "$OUT/$r.log" 2>&1 & ;;
        esac
        echo $! > "$OUT/$r.pid"
    done
    echo "started $(date -u +%H:%M:%S) UTC; load average: $(cut -d' ' -f1-3 /proc/loadavg)"
    wait
    echo "finished $(date -u +%H:%M:%S) UTC; load average: $(cut -d' ' -f1-3 /proc/loadavg)"
fi

# A C run stopped before its budget: save its best weights from the last finished epoch.
for r in $RUNS; do
    if running $r; then
        echo "$r: still running (the table shows its evaluations so far)"
    elif [ ! -f "$OUT/$r/model.safetensors" ] && [ -f "$OUT/$r/train_state.safetensors" ]; then
        done_epochs=$(tail -n 1 "$OUT/$r/cpu_log.csv" | cut -d, -f1)
        echo "$r: unfinished; saving its best weights after epoch $done_epochs"
        "$SF" train --data "$DATA" --out "$OUT/$r" $(model_flags $r) $TRAIN --resume \
            --epochs "$done_epochs" > "$OUT/$r.finish.log" 2>&1 || echo "$r: could not finish"
    fi
done

report_and_samples $RUNS torch torch_cinit
