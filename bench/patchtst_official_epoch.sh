#!/bin/sh
# One ETTh1 epoch (training, then its validation and test passes) of the official PatchTST code
# (github.com/yuqinie98/PatchTST, PatchTST_supervised/, a checkout given as $1) at its ETTh1 paper
# settings (scripts/PatchTST/etth1.sh: look-back 336, H=96, d_model 16, 4 heads, 3 layers, d_ff 128,
# dropout 0.3, patch 16 / stride 8, batch 128, lr 1e-4; nothing else changed, so its data loader
# keeps its default 10 worker processes), against seqformer's `train --train-epochs 1` on the same
# file at the same thread count, one after the other (issue #11 target 2). Prints each side's wall
# seconds for the whole process, the official code's epoch alone (its output lines are time-stamped
# as they arrive) and its own "cost time" of the training part, and the ratios. Needs python3-torch, python3-pandas, python3-sklearn.
# usage: bench/patchtst_official_epoch.sh CHECKOUT [THREADS] [DATA] [REPS]
set -eu
CK=${1:?usage: bench/patchtst_official_epoch.sh CHECKOUT [THREADS] [DATA] [REPS]}
T=${2:-2}
DATA=${3:-data/ETTh1.csv}
REPS=${4:-1}
cd "$(dirname "$0")/.."
bash scripts/build.sh >/dev/null
if ! /usr/bin/python3 -c 'import torch, pandas, sklearn, matplotlib' 2>/dev/null; then
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get install -y -qq python3-torch python3-pandas python3-sklearn python3-matplotlib >/dev/null
fi
OUT=${OUT:-runs/patchtst_official_epoch}
mkdir -p "$OUT"
ROOT=$(cd "$(dirname "$DATA")" && pwd)/
ABS_OUT=$(cd "$OUT" && pwd)
export OMP_NUM_THREADS="$T"
echo "load before: $(uptime)"
r=1
while [ "$r" -le "$REPS" ]; do
    t0=$(date +%s.%N)
    (cd "$CK/PatchTST_supervised" && /usr/bin/python3 -u run_longExp.py --random_seed 2021 \
        --is_training 1 --root_path "$ROOT" --data_path "$(basename "$DATA")" \
        --model_id ETTh1_336_96 --model PatchTST --data ETTh1 --features M --seq_len 336 \
        --pred_len 96 --enc_in 7 --e_layers 3 --n_heads 4 --d_model 16 --d_ff 128 --dropout 0.3 \
        --fc_dropout 0.3 --head_dropout 0 --patch_len 16 --stride 8 --des Exp --train_epochs 1 \
        --itr 1 --batch_size 128 --learning_rate 0.0001 \
        --checkpoints "$ABS_OUT/official_ckpt/") 2>&1 |
        while IFS= read -r line; do printf '%s %s\n' "$(date +%s.%N)" "$line"; done > "$OUT/official_$r.log"
    t1=$(date +%s.%N)
    ./build/seqformer train --data "$DATA" --pred-len 96 --seed 2021 --train-epochs 1 \
        --threads "$T" --progress plain --out "$OUT/seqformer_$r" > "$OUT/seqformer_$r.out" \
        2> "$OUT/seqformer_$r.log"
    t2=$(date +%s.%N)
    cost=$(grep -o 'cost time: [0-9.]*' "$OUT/official_$r.log" | tail -n 1 | cut -d' ' -f3)
    # the official epoch: from its last data-set line ("test 2785", printed before training) to its
    # "Epoch: 1, Steps: ..." line (printed after the epoch's validation and test passes)
    e0=$(grep -E '^[0-9.]+ test [0-9]+$' "$OUT/official_$r.log" | head -n 1 | cut -d' ' -f1)
    e1=$(grep -E '^[0-9.]+ Epoch: 1, Steps' "$OUT/official_$r.log" | head -n 1 | cut -d' ' -f1)
    echo "$r $t0 $t1 $t2 $cost $e0 $e1" | awk -v T="$T" '{
        o = $3 - $2; s = $4 - $3; e = $7 - $6;
        printf "run %d, %d threads: official PatchTST process %.1f s, its epoch (training %.1f s + validation + test) %.1f s; seqformer process (start, data, epoch, validation, test, checkpoint) %.1f s -> %.1fx per process, %.1fx official epoch vs seqformer process\n",
               $1, T, o, $5, e, s, o / s, e / s }'
    grep -o 'mse:[0-9.]*, mae:[0-9.]*' "$OUT/official_$r.log" | tail -n 1 | sed 's/^/  official test after 1 epoch: /'
    r=$((r + 1))
done
echo "load after: $(uptime)"
