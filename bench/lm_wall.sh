#!/bin/sh
# Tiny shakespeare at equal WALL time on the idle 2-core machine (issue #15's own protocol): the
# seqformer lms (causal softmax, linear attention (elu+1), Mamba, a mamba/softmax hybrid) and the
# PyTorch twin of the softmax one (bench/torch_lm_train.py, from the C softmax run's initial
# weights, replaying the C RNG: same windows, same batches, same losses up to rounding), each
# trained ALONE for BUDGET_S wall seconds at THREADS threads, one after the other, not niced.
# Same sizes, data split, optimizer and validation points as bench/lm_budget.sh (which budgets
# CPU time at one thread instead, for a shared machine). Run it on an idle machine: the script
# prints the load average before and after each run; anything else running skews the result.
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
SF=${SF:-./build/seqformer}
PY=${PY:-/usr/bin/python3}
DATA=${DATA:-../shared/data/text/tinyshakespeare.txt}
EW=${EPOCH_WINDOWS:-1600}
THREADS=${THREADS:-2}
RUNS=${RUNS:-softmax torch_cinit linear mamba hybrid}
SEED=5901
LR=1e-3
SIZE="--seq-len 128 --d-model 128 --e-layers 4 --n-heads 4"
TRAIN="--batch-size 32 --lr $LR --lradj constant --warmup-epochs 0 --clip-grad 1 --patience 100000 \
 --epoch-windows $EW --time-budget $BUDGET --budget-clock wall --threads $THREADS --seed $SEED \
 --progress plain --epochs 100000"
load() { cut -d' ' -f1-3 /proc/loadavg; }
model_flags() { # the model of C run $1
    case $1 in
        hybrid) echo "--config configs/lm_hybrid_shakespeare.json" ;;
        softmax) echo "--config $OUT/softmax_config.json" ;;
        *) echo "--model lm $SIZE --mixer $1" ;;
    esac
}

mkdir -p "$OUT"
if [ "${REPORT_ONLY:-0}" != 1 ]; then
    [ -f "$OUT/softmax_config.json" ] ||
        "$SF" train --data "$DATA" --model lm $SIZE --mixer softmax --print-config > "$OUT/softmax_config.json"
    for r in $RUNS; do
        if [ -f "$OUT/$r/metrics.json" ]; then
            echo "$r: done before ($OUT/$r/metrics.json), not run again"
            continue
        fi
        rm -rf "$OUT/$r"
        echo "$r: started $(date -u +%H:%M:%S) UTC, load average $(load)"
        if [ "$r" = torch_cinit ]; then
            # the C softmax run's initial weights (the same config and seed; one step at lr 1e-9
            # changes no weight by more than ~1e-9)
            "$SF" train --data "$DATA" --out "$OUT/c_init" --config "$OUT/softmax_config.json" \
                --batch-size 32 --lr 1e-9 --lradj constant --epochs 1 --epoch-windows 32 --threads 1 \
                --seed $SEED --progress quiet > /dev/null 2>&1
            "$PY" bench/torch_lm_train.py --config "$OUT/softmax_config.json" --data "$DATA" \
                --out "$OUT/torch_cinit" --threads "$THREADS" --epoch-windows "$EW" --batch-size 32 \
                --lr $LR --clip-grad 1 --time-budget "$BUDGET" --clock wall --seed $SEED \
                --init "$OUT/c_init/model.safetensors" > "$OUT/torch_cinit.log" 2>&1
        else
            "$SF" train --data "$DATA" --out "$OUT/$r" $(model_flags $r) $TRAIN > "$OUT/$r.log" 2>&1
        fi
        echo "$r: finished $(date -u +%H:%M:%S) UTC, load average $(load)"
    done
fi

"$PY" - "$OUT" <<'PYEOF'
import csv, json, math, os, sys
out = sys.argv[1]
names = {"softmax": "seqformer softmax", "torch_cinit": "PyTorch twin of softmax, from the C init",
         "linear": "seqformer linear (elu+1)", "mamba": "seqformer mamba",
         "hybrid": "seqformer hybrid (mamba, softmax) x2"}
rows = {r: [dict((k, float(v)) for k, v in row.items()) for row in csv.DictReader(open(f"{out}/{r}/cpu_log.csv"))]
        for r in names if os.path.exists(f"{out}/{r}/metrics.json")}
common = min(rs[-1]["wall_seconds"] for rs in rows.values())
print(f"| model | params | best val loss | bpc | at step | steps | wall s | CPU s | train tokens per wall s "
      f"(validation included) | best val loss by {common:.0f} wall s | steps by then |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
for r, rs in rows.items():
    params = int(json.load(open(f"{out}/{r}/metrics.json"))["params"])
    best = min(rs, key=lambda x: x["val_loss"])
    last = rs[-1]
    upto = [x for x in rs if x["wall_seconds"] <= common + 1e-9]
    by = min(upto, key=lambda x: x["val_loss"])
    print(f"| {names[r]} | {params} | {best['val_loss']:.4f} | {best['val_loss'] / math.log(2):.3f} | "
          f"{int(best['steps'])} | {int(last['steps'])} | {last['wall_seconds']:.0f} | {last['cpu_seconds']:.0f} | "
          f"{last['steps'] * 32 * 128 / last['wall_seconds']:.0f} | {by['val_loss']:.4f} | {int(upto[-1]['steps'])} |")
if "softmax" in rows and "torch_cinit" in rows:  # the same steps on both sides
    a, b = rows["softmax"], rows["torch_cinit"]
    n = min(len(a), len(b))
    d = max(abs(a[i]["val_loss"] - b[i]["val_loss"]) for i in range(n))
    print(f"\nsoftmax vs its twin at the first {n} validation points (same steps): max |C - twin| val loss = {d:.4f}")
PYEOF

for r in $RUNS; do
    if [ "$r" != torch_cinit ] && [ -f "$OUT/$r/model.safetensors" ]; then
        echo
        echo "--- $r: ROMEO: + 300 characters (--temperature 0.8 --top-k 20 --seed 1)"
        "$SF" generate --model "$OUT/$r/model.safetensors" --prompt "ROMEO:" --tokens 300 \
            --temperature 0.8 --top-k 20 --seed 1 --threads 1
        echo
    fi
done
