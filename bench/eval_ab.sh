#!/bin/sh
# Interleaved A/B of a whole `seqformer eval` process (start, data, the test pass, exit): binary OLD
# against NEW (default ./build/seqformer) on one checkpoint, REPS rounds, wall and user seconds
# from /usr/bin/time, and the metrics each printed (they should agree).
# usage: OLD=/path/to/old/seqformer bench/eval_ab.sh MODEL.safetensors [DATA (data/ETTh1.csv)]
#        [THREADS (2)] [REPS (6)]
#   MODEL e.g. from: seqformer train --data data/ETTh1.csv --pred-len 96 --epochs 2 --out DIR
set -eu
OLD=${OLD:?set OLD to the other build\'s seqformer}
NEW=${NEW:-./build/seqformer}
MODEL=${1:?usage: OLD=... bench/eval_ab.sh MODEL [DATA] [THREADS] [REPS]}
DATA=${2:-data/ETTh1.csv}
T=${3:-2}
REPS=${4:-6}
echo "# $(date -u '+%Y-%m-%d %H:%M UTC') $(nproc) cores; old $OLD new $NEW; $MODEL on $DATA, $T threads"
i=1
while [ "$i" -le "$REPS" ]; do
    for side in old new; do
        if [ "$side" = old ]; then b=$OLD; else b=$NEW; fi
        printf '%s rep %d: ' "$side" "$i"
        /usr/bin/time -f '%e s wall %U s user' "$b" eval --model "$MODEL" --data "$DATA" --threads "$T" 2>&1 | tr '\n' ' '
        echo
    done
    i=$((i + 1))
done
