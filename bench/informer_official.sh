#!/bin/sh
# The Informer behind the published ETTh1 H=96 figure that issue #12 names (0.865 / 0.713, the
# LTSF-Linear paper's table): LTSF-Linear's own code (github.com/cure-lab/LTSF-Linear, a checkout
# given as $1, ETTh1.csv in its dataset/), its scripts/EXP-LongForecasting/Formers_Long.sh flags
# for Informer on ETTh1 (d_model 512, factor 3, 10 epochs, patience 3, lr 1e-4, batch 32), at the
# seeds given, one thread each, on the CPU. bench/ltsf_official.py executes the checkout's
# run_longExp.py with only `fix_seed` changed.
# usage: bench/informer_official.sh CHECKOUT ["2021 2022 2023"] [OUT] [extra run_longExp.py flags, e.g. --d_model 64 --d_ff 256]
# Seeds run side by side (PAR=0: one after another) (one process per seed, each OMP_NUM_THREADS=1); prints one line per seed:
# seed, test mse, mae, and the run's wall seconds. Logs in OUT/seed_S.log.
set -eu
CK=${1:?usage: bench/informer_official.sh CHECKOUT [SEEDS] [OUT]}
SEEDS=${2:-2021 2022 2023}
OUT=${3:-runs/informer_official}
shift $(($# < 3 ? $# : 3))
mkdir -p "$OUT"
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
for s in $SEEDS; do
    (
        t0=$(date +%s)
        nice -n "${NICE:-19}" /usr/bin/python3 bench/ltsf_official.py --ltsf "$CK" --seed "$s" -- \
            --is_training 1 --root_path ./dataset/ --data_path ETTh1.csv --model_id "ETTh1_96_96_s$s" \
            --model Informer --data ETTh1 --features M --seq_len 96 --label_len 48 --pred_len 96 \
            --e_layers 2 --d_layers 1 --factor 3 --enc_in 7 --dec_in 7 --c_out 7 --des Exp \
            --itr 1 --num_workers 0 "$@" > "$OUT/seed_$s.log" 2>&1
        t1=$(date +%s)
        echo "seed $s $(grep -o 'mse:[0-9.]*, mae:[0-9.]*' "$OUT/seed_$s.log" | tail -n 1) wall_s $((t1 - t0))"
    ) &
    [ "${PAR:-1}" = 0 ] && wait
done
wait
