# Shared by bench/lm_budget.sh (CPU-time budget, one thread, all runs at once) and bench/lm_wall.sh
# (wall-time budget, each run alone): the same tiny-shakespeare lms, data split, optimizer,
# validation points and report. Sourced, not run; the caller sets BUDGET, OUT, CLOCK (cpu | wall)
# and THREADS first.
SF=${SF:-./build/seqformer}
PY=${PY:-/usr/bin/python3}
DATA=${DATA:-../shared/data/text/tinyshakespeare.txt}
EW=${EPOCH_WINDOWS:-1600} # 50 steps of batch 32 between validations
SEED=5901
LR=1e-3
SIZE="--seq-len 128 --d-model 128 --e-layers 4 --n-heads 4"
TRAIN="--batch-size 32 --lr $LR --lradj constant --warmup-epochs 0 --clip-grad 1 --patience 100000 \
 --epoch-windows $EW --time-budget $BUDGET --budget-clock $CLOCK --threads $THREADS --seed $SEED \
 --progress plain"

model_flags() { # the model of C run $1
    case $1 in
        hybrid) echo "--config configs/lm_hybrid_shakespeare.json" ;;
        softmax) echo "--config $OUT/softmax_config.json" ;;
        *) echo "--model lm $SIZE --mixer $1" ;;
    esac
}

softmax_config() {
    [ -f "$OUT/softmax_config.json" ] ||
        "$SF" train --data "$DATA" --model lm $SIZE --mixer softmax --print-config > "$OUT/softmax_config.json"
}

# The C softmax run's initial weights, for the twin (the same config and seed; one step at lr
# 1e-9 changes no weight by more than ~1e-9): the twin then takes the same steps with the same
# losses up to float rounding, so only the speed differs.
c_init() {
    "$SF" train --data "$DATA" --out "$OUT/c_init" --config "$OUT/softmax_config.json" --batch-size 32 \
        --lr 1e-9 --lradj constant --epochs 1 --epoch-windows 32 --threads 1 --seed $SEED \
        --progress quiet > /dev/null 2>&1
}

# The PyTorch twin of the softmax lm: run $1 (torch: PyTorch's own init; torch_cinit: the C init).
twin_args() {
    set -- --config "$OUT/softmax_config.json" --data "$DATA" --out "$OUT/$1" --threads "$THREADS" \
        --epoch-windows "$EW" --batch-size 32 --lr $LR --clip-grad 1 --time-budget "$BUDGET" \
        --clock "$CLOCK" --seed $SEED $([ "$1" = torch_cinit ] && echo "--init $OUT/c_init/model.safetensors")
    echo "$@"
}

# Run $1 was started in the background (OUT/$1.pid) and has not ended.
running() { [ -f "$OUT/$1.pid" ] && kill -0 "$(cat "$OUT/$1.pid")" 2>/dev/null; }

# The table (bench/lm_report.py) and 300 generated characters from each finished C model.
report_and_samples() { # runs...
    "$PY" bench/lm_report.py "$OUT" "$CLOCK" "$@"
    for r in "$@"; do
        case $r in torch | torch_cinit) continue ;; esac
        if [ -f "$OUT/$r/model.safetensors" ] && ! running $r; then
            echo
            echo "--- $r: ROMEO: + 300 characters (--temperature 0.8 --top-k 20 --seed 1)"
            "$SF" generate --model "$OUT/$r/model.safetensors" --prompt "ROMEO:" --tokens 300 \
                --temperature 0.8 --top-k 20 --seed 1 --threads 1
            echo
        fi
    done
}
