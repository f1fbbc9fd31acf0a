#!/bin/sh
# Tiny shakespeare under a CPU-time budget (issue #15): four seqformer lms (causal softmax, linear
# attention (elu+1), Mamba, a mamba/softmax hybrid) and the PyTorch twin of the softmax model
# (bench/torch_lm_train.py; twice: PyTorch's own init and the C softmax run's init), each trained for BUDGET_S seconds of process CPU time at ONE thread,
# all six started at once under nice (the machine is shared: CPU time, not wall time, is the
# budget, so the runs are fair to each other whatever else runs). Same config, same data windows
# (the twin replays the C RNG), same optimizer (AdamW, constant lr 1e-3, clip 1), validation on the
# last 10% after every --epoch-windows windows (the same steps on both sides), best kept.
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
SF=${SF:-./build/seqformer}
PY=${PY:-/usr/bin/python3}
DATA=${DATA:-../shared/data/text/tinyshakespeare.txt}
EW=${EPOCH_WINDOWS:-1600}
SEED=5901
LR=1e-3
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 OMP_WAIT_POLICY=passive

SIZE="--seq-len 128 --d-model 128 --e-layers 4 --n-heads 4"
TRAIN="--batch-size 32 --lr $LR --lradj constant --warmup-epochs 0 --clip-grad 1 --patience 100000 \
 --epoch-windows $EW --time-budget $BUDGET --threads 1 --seed $SEED --progress plain"
RUNS="softmax linear mamba hybrid"

model_flags() { # the model of run $1
    case $1 in
        hybrid) echo "--config configs/lm_hybrid_shakespeare.json" ;;
        *) echo "--model lm $SIZE --mixer $1" ;;
    esac
}

mkdir -p "$OUT"
if [ "${REPORT_ONLY:-0}" != 1 ]; then
    "$SF" train --data "$DATA" $(model_flags softmax) --print-config > "$OUT/softmax_config.json"
    for r in $RUNS; do
        rm -rf "$OUT/$r"
        nice -n "${NICE:-19}" "$SF" train --data "$DATA" --out "$OUT/$r" $(model_flags $r) $TRAIN \
            --epochs 100000 > "$OUT/$r.log" 2>&1 &
        echo $! > "$OUT/$r.pid"
    done
    rm -rf "$OUT/torch"
    if [ "${TORCH_OWN_INIT:-1}" = 1 ]; then
        nice -n "${NICE:-19}" "$PY" bench/torch_lm_train.py --config "$OUT/softmax_config.json" \
            --data "$DATA" --out "$OUT/torch" --threads 1 --epoch-windows "$EW" --batch-size 32 \
            --lr $LR --clip-grad 1 --time-budget "$BUDGET" --seed $SEED > "$OUT/torch.log" 2>&1 &
        echo $! > "$OUT/torch.pid"
    fi
    # the twin once more, from the C softmax run's own initial weights (same config and seed: the
    # C init; one step at lr 1e-9 changes no weight by more than ~1e-9): same steps, same losses
    # up to float rounding, so only the speed differs
    "$SF" train --data "$DATA" --out "$OUT/c_init" --config "$OUT/softmax_config.json" --batch-size 32 \
        --lr 1e-9 --lradj constant --epochs 1 --epoch-windows 32 --threads 1 --seed $SEED \
        --progress quiet > /dev/null
    rm -rf "$OUT/torch_cinit"
    nice -n "${NICE:-19}" "$PY" bench/torch_lm_train.py --config "$OUT/softmax_config.json" \
        --data "$DATA" --out "$OUT/torch_cinit" --threads 1 --epoch-windows "$EW" --batch-size 32 \
        --lr $LR --clip-grad 1 --time-budget "$BUDGET" --seed $SEED \
        --init "$OUT/c_init/model.safetensors" > "$OUT/torch_cinit.log" 2>&1 &
    echo $! > "$OUT/torch_cinit.pid"
    echo "started $(date -u +%H:%M:%S) UTC; load average: $(cut -d' ' -f1-3 /proc/loadavg)"
    wait
    echo "finished $(date -u +%H:%M:%S) UTC; load average: $(cut -d' ' -f1-3 /proc/loadavg)"
fi

running() { [ -f "$OUT/$1.pid" ] && kill -0 "$(cat "$OUT/$1.pid")" 2>/dev/null; }
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

"$PY" - "$OUT" $RUNS torch torch_cinit <<'EOF'
import csv, json, math, os, sys
out, runs = sys.argv[1], sys.argv[2:]
rows = {}
for r in runs:
    try:
        rows[r] = [dict((k, float(v)) for k, v in row.items()) for row in csv.DictReader(open(f"{out}/{r}/cpu_log.csv"))]
    except FileNotFoundError:
        rows[r] = []
common = min((rs[-1]["cpu_seconds"] for rs in rows.values() if rs), default=0)
names = {"softmax": "seqformer softmax", "linear": "seqformer linear (elu+1)", "mamba": "seqformer mamba",
         "hybrid": "seqformer hybrid (mamba, softmax) x2", "torch": "PyTorch twin of softmax",
         "torch_cinit": "PyTorch twin of softmax, from the C init"}
print(f"| model | params | best val loss | bpc | at step | steps | CPU s | train tokens per CPU s (validation included) | best val loss by {common:.0f} CPU s |")
print("|---|---|---|---|---|---|---|---|---|")
for r in runs:
    rs = rows[r]
    if not rs:
        print(f"| {names[r]} | - | (no evaluation yet) | | | | | | |")
        continue
    try:
        params = int(json.load(open(f"{out}/{r}/metrics.json"))["params"])
    except (FileNotFoundError, KeyError, ValueError):  # still running: the log's first line
        log = open(f"{out}/{r}.log").read()
        params = int(log.split(" parameters")[0].split()[-1]) if " parameters" in log else "-"
    best = min(rs, key=lambda x: x["val_loss"])
    last = rs[-1]
    upto = [x["val_loss"] for x in rs if x["cpu_seconds"] <= common + 1e-9]
    by = f"{min(upto):.4f}" if upto else "-"
    tps = last["steps"] * 32 * 128 / last["cpu_seconds"]
    print(f"| {names[r]} | {params} | {best['val_loss']:.4f} | {best['val_loss'] / math.log(2):.3f} | "
          f"{int(best['steps'])} | {int(last['steps'])} | {last['cpu_seconds']:.0f} | {tps:.0f} | {by} |")
EOF

for r in $RUNS; do
    if [ -f "$OUT/$r/model.safetensors" ] && ! running $r; then
        echo
        echo "--- $r: ROMEO: + 300 characters (--temperature 0.8 --top-k 20 --seed 1)"
        "$SF" generate --model "$OUT/$r/model.safetensors" --prompt "ROMEO:" --tokens 300 \
            --temperature 0.8 --top-k 20 --seed 1 --threads 1
        echo
    fi
done
