#!/usr/bin/env bash
# End-to-end CLI test of Informer (time features from the date column) on the first 1500 rows of
# the shipped ETTh1 file (custom 70/10/20 split) with a tiny model: TSLib-style flags train it,
# eval agrees with metrics.json, predict continues the dates (the future rows' time features come
# from the series' step), a fixed seed reproduces the weights (the ProbSparse samples draw from the
# trainer's seeded stream), --resume after an interruption gives the same training state, and a
# label_len longer than seq_len is refused naming the option.
set -uo pipefail
SF=${1:?usage: test_cli_informer.sh path/to/seqformer}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
pass=0; fail=0
. "$(dirname "$0")/cli_expect.sh" # ok, bad, check, expect CODE PATTERN -- command...

head -n 1501 data/ETTh1.csv > "$tmp/etth1_head.csv"
small=(--model Informer --data "$tmp/etth1_head.csv" --features M --seq-len 48 --label-len 24
       --pred-len 12 --d-model 8 --n-heads 2 --e-layers 2 --d-layers 1 --d-ff 16 --factor 3
       --freq h --batch-size 32 --progress plain --threads 1)

"$SF" train "${small[@]}" --epochs 2 --out "$tmp/a" >"$tmp/a.json" 2>"$tmp/a.log"
check '[ $? -eq 0 ]' "train exit code ($(tail -1 "$tmp/a.log"))"
check "grep -q '^seqformer: informer on' '$tmp/a.log'" "trains an informer"
check "[ -s '$tmp/a/model.safetensors' ] && [ -s '$tmp/a/metrics.json' ]" "train outputs"
"$SF" inspect --model "$tmp/a/model.safetensors" >"$tmp/inspect.txt" 2>&1
check "grep -q '\"label_len\": 24' '$tmp/inspect.txt' && grep -q '\"freq\": \"h\"' '$tmp/inspect.txt'" "checkpoint config holds label_len and freq"

"$SF" eval --model "$tmp/a/model.safetensors" --data "$tmp/etth1_head.csv" >"$tmp/eval.json"
check '[ $? -eq 0 ]' "eval exit code"
m1=$(sed -n 's/.*"test":{"mse":\([0-9.]*\).*/\1/p' "$tmp/a.json")
m2=$(sed -n 's/.*"mse":\([0-9.]*\).*/\1/p' "$tmp/eval.json")
check "[ -n '$m1' ] && [ '$m1' = '$m2' ]" "eval mse ($m2) equals train's test mse ($m1)"

"$SF" predict --model "$tmp/a/model.safetensors" --data "$tmp/etth1_head.csv" --out "$tmp/p.csv" 2>/dev/null
check '[ $? -eq 0 ]' "predict exit code"
check "[ \$(wc -l < '$tmp/p.csv') -eq 13 ]" "predict writes 12 rows + header"
last=$(tail -1 "$tmp/etth1_head.csv" | cut -d, -f1)
check "sed -n 2p '$tmp/p.csv' | grep -q '^2016-09-01 12:00:00,'" "first forecast timestamp follows $last"
"$SF" predict --model "$tmp/a/model.safetensors" --data "$tmp/etth1_head.csv" --out "$tmp/p2.csv" 2>/dev/null
check "cmp -s '$tmp/p.csv' '$tmp/p2.csv'" "inference is deterministic (fixed ProbSparse sample at inference)"

"$SF" train "${small[@]}" --epochs 2 --out "$tmp/b" >/dev/null 2>&1
check "cmp -s '$tmp/a/model.safetensors' '$tmp/b/model.safetensors'" "fixed seed reproduces weights"
"$SF" train "${small[@]}" --epochs 2 --patience 5 --out "$tmp/u" >/dev/null 2>&1
"$SF" train "${small[@]}" --epochs 2 --patience 5 --stop-after 1 --out "$tmp/c" >/dev/null 2>&1
"$SF" train "${small[@]}" --epochs 2 --patience 5 --resume --out "$tmp/c" >/dev/null 2>&1
check "cmp -s '$tmp/u/train_state.safetensors' '$tmp/c/train_state.safetensors'" "resume: training state identical to the uninterrupted run"

# --freq auto: the letter of the data's step (hourly ETTh1 -> h) goes into the checkpoint; a
# 15-minute file gets t (minute features first)
"$SF" train "${small[@]}" --freq auto --epochs 1 --print-config >"$tmp/auto.json" 2>/dev/null
check "grep -q '\"freq\": \"h\"' '$tmp/auto.json'" "freq auto on hourly data is h"
python3 - "$tmp/etth1_head.csv" "$tmp/m15.csv" <<'PY'
import sys
rows = open(sys.argv[1]).read().splitlines()
out = [rows[0]]
for i, r in enumerate(rows[1:]):
    h, m = divmod(i * 15, 60)
    d, h = divmod(h, 24)
    out.append(f"2016-07-{1 + d:02d} {h:02d}:{m:02d}:00," + r.split(",", 1)[1])
open(sys.argv[2], "w").write("\n".join(out) + "\n")
PY
"$SF" train "${small[@]}" --data "$tmp/m15.csv" --freq auto --print-config >"$tmp/auto.json" 2>/dev/null
check "grep -q '\"freq\": \"t\"' '$tmp/auto.json'" "freq auto on 15-minute data is t"
"$SF" train "${small[@]}" --label-len 60 --out "$tmp/bad" >/dev/null 2>"$tmp/bad.log"
rc=$?
check "[ $rc -eq 2 ] && grep -q 'label_len: 60 is longer than seq_len 48' '$tmp/bad.log'" "label_len > seq_len refused (rc $rc: $(cat "$tmp/bad.log"))"
"$SF" train "${small[@]}" --factor 0 --out "$tmp/bad" >/dev/null 2>"$tmp/bad.log"
rc=$?
check "[ $rc -eq 2 ] && grep -q \"'--factor': 0 is out of range\" '$tmp/bad.log'" "factor 0 refused (rc $rc: $(cat "$tmp/bad.log"))"
printf '{"model": "informer", "seq_len": 48, "label_len": 24, "pred_len": 12, "factor": 0}' > "$tmp/bad.json"
"$SF" train --config "$tmp/bad.json" --data "$tmp/etth1_head.csv" --out "$tmp/bad" >/dev/null 2>"$tmp/bad.log"
rc=$?
check "[ $rc -eq 2 ] && grep -q 'factor: must be >= 1' '$tmp/bad.log'" "config factor 0 refused (rc $rc: $(cat "$tmp/bad.log"))"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
