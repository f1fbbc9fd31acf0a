#!/bin/sh
# The official iTransformer code (github.com/thuml/iTransformer, a checkout given as $1) on ETTm1
# H=96 with its script's flags (scripts/multivariate_forecasting/ETT/iTransformer_ETTm1.sh), at
# the seeds given, one thread, next to ours (`bash bench/config_seeds.sh configs/itransformer_ettm1_marks.json ...`).
# bench/ltsf_official.py executes the checkout's run.py with only `fix_seed` changed; the modules
# it imports only for other models (reformer_pytorch, einops: not in Debian) are placeholders.
# usage: bench/itransformer_official.sh CHECKOUT DATA_DIR(with ETTm1.csv) ["2021 2022 2023"] [OUT]
# Prints one line per seed: seed, test mse, mae, and the run's wall seconds.
set -eu
CK=${1:?usage: bench/itransformer_official.sh CHECKOUT DATA_DIR [SEEDS] [OUT]}
DATA=${2:?DATA_DIR with ETTm1.csv}
SEEDS=${3:-2021 2022 2023}
OUT=${4:-runs/itransformer_official}
mkdir -p "$OUT"
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
for s in $SEEDS; do
    t0=$(date +%s)
    nice -n "${NICE:-19}" /usr/bin/python3 bench/ltsf_official.py --ltsf "$CK" --script run.py \
        --stub reformer_pytorch --stub einops --seed "$s" -- --is_training 1 --root_path "$DATA/" \
        --data_path ETTm1.csv --model_id "ETTm1_96_96_s$s" --model iTransformer --data ETTm1 \
        --features M --seq_len 96 --pred_len 96 --e_layers 2 --enc_in 7 --dec_in 7 --c_out 7 \
        --des Exp --d_model 128 --d_ff 128 --itr 1 --num_workers 0 > "$OUT/seed_$s.log" 2>&1
    t1=$(date +%s)
    echo "seed $s $(grep -o 'mse:[0-9.]*, mae:[0-9.]*' "$OUT/seed_$s.log" | tail -n 1) wall_s $((t1 - t0))"
done
