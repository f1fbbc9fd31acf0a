#!/usr/bin/env bash
# Bad input never crashes: every case exits non-zero with a one-line message naming the file,
# line, field or flag, and leaves no partial output behind.
set -uo pipefail
SF=${1:?usage: test_cli_errors.sh path/to/seqformer}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
pass=0; fail=0

# expect CODE PATTERN -- command...   (stderr must match PATTERN; no crash signals)
expect() {
  local code=$1 pat=$2; shift 3
  "$@" >"$tmp/out" 2>"$tmp/err"; local rc=$?
  if [ "$rc" -ne "$code" ] || ! grep -q -- "$pat" "$tmp/err"; then
    fail=$((fail+1)); echo "FAIL: [$*] rc=$rc (want $code), stderr: $(head -c 300 "$tmp/err")"
  elif [ "$(wc -l < "$tmp/err")" -gt 2 ]; then
    fail=$((fail+1)); echo "FAIL: [$*] error is not short: $(cat "$tmp/err")"
  else pass=$((pass+1)); fi
}

head -200 data/ETTh1.csv > "$tmp/short.csv"
{ head -50 data/ETTh1.csv; echo "2016-07-03 01:00:00,1,2,3"; } > "$tmp/ragged.csv"
{ head -50 data/ETTh1.csv; echo "2016-07-03 01:00:00,1,2,3,4,5,abc,7"; } > "$tmp/nonnum.csv"
{ head -50 data/ETTh1.csv; echo "2016-07-03 01:00:00,1,2,3,4,5,nan,7"; } > "$tmp/nan.csv"
sed 's/,OT$/,TEMP/' data/ETTh1.csv > "$tmp/renamed.csv"
cut -d, -f1-7 data/ETTh1.csv > "$tmp/fewer.csv"

# flags
expect 2 "unknown command" -- "$SF" frobnicate
expect 2 "unknown flag '--bogus'" -- "$SF" train --data data/ETTh1.csv --out "$tmp/x" --bogus 1
expect 2 "'--seq-len': -5 is out of range" -- "$SF" train --data data/ETTh1.csv --out "$tmp/x" --seq-len -5
expect 2 "'--dropout': 1.5 is out of range" -- "$SF" train --data data/ETTh1.csv --out "$tmp/x" --dropout 1.5
expect 2 "'--lr': 'fast' is not a finite number" -- "$SF" train --data data/ETTh1.csv --out "$tmp/x" --lr fast
expect 2 "'--model': 'gpt' is not one of" -- "$SF" train --data data/ETTh1.csv --out "$tmp/x" --model gpt
expect 2 "needs a value" -- "$SF" train --data data/ETTh1.csv --out
expect 2 "required" -- "$SF" train --data data/ETTh1.csv
expect 2 "n_heads" -- "$SF" train --data data/ETTh1.csv --out "$tmp/x" --d-model 16 --n-heads 3
expect 2 "patch_len" -- "$SF" train --data data/ETTh1.csv --out "$tmp/x" --seq-len 8 --pred-len 4 --patch-len 16
expect 2 "required" -- "$SF" eval --model x
expect 2 "unknown flag" -- "$SF" predict --model x --data y --horizon 3
"$SF" train --help >/dev/null && "$SF" eval --help >/dev/null && "$SF" predict --help >/dev/null \
  && pass=$((pass+1)) || { fail=$((fail+1)); echo "FAIL: --help"; }
# data files
expect 1 "missing.csv" -- "$SF" train --data "$tmp/missing.csv" --out "$tmp/x"
expect 1 "ragged.csv:51" -- "$SF" train --data "$tmp/ragged.csv" --out "$tmp/x"
expect 1 "nonnum.csv:51.*abc" -- "$SF" train --data "$tmp/nonnum.csv" --out "$tmp/x"
expect 1 "nan.csv:51" -- "$SF" train --data "$tmp/nan.csv" --out "$tmp/x"
expect 1 "too short" -- "$SF" train --data "$tmp/short.csv" --out "$tmp/x"
expect 1 "OT" -- "$SF" train --data "$tmp/renamed.csv" --out "$tmp/x"
[ ! -e "$tmp/x/model.safetensors" ] && pass=$((pass+1)) || { fail=$((fail+1)); echo "FAIL: output after error"; }

# checkpoints: train a tiny one, then break it
"$SF" train --data data/ETTh1.csv --model dlinear --seq-len 48 --pred-len 12 --epochs 1 --progress quiet --out "$tmp/m" >/dev/null 2>&1
ck="$tmp/m/model.safetensors"
head -c 100 "$ck" > "$tmp/trunc.safetensors"
head -c $(( $(stat -c %s "$ck") - 4 )) "$ck" > "$tmp/trunc2.safetensors"
cp data/ETTh1.csv "$tmp/foreign.safetensors"
: > "$tmp/empty.safetensors"
expect 1 "trunc.safetensors" -- "$SF" eval --model "$tmp/trunc.safetensors" --data data/ETTh1.csv
expect 1 "trunc2.safetensors" -- "$SF" eval --model "$tmp/trunc2.safetensors" --data data/ETTh1.csv
expect 1 "foreign.safetensors" -- "$SF" eval --model "$tmp/foreign.safetensors" --data data/ETTh1.csv
expect 1 "empty.safetensors" -- "$SF" predict --model "$tmp/empty.safetensors" --data data/ETTh1.csv
expect 1 "nope.safetensors" -- "$SF" eval --model "$tmp/nope.safetensors" --data data/ETTh1.csv
expect 1 "fewer.csv" -- "$SF" eval --model "$ck" --data "$tmp/fewer.csv"
expect 1 "OT" -- "$SF" predict --model "$ck" --data "$tmp/renamed.csv"
# unwritable prediction output: error, and nothing half-written left behind
expect 1 "nodir" -- "$SF" predict --model "$ck" --data data/ETTh1.csv --out "$tmp/nodir/p.csv"
[ ! -e "$tmp/nodir" ] && pass=$((pass+1)) || { fail=$((fail+1)); echo "FAIL: partial predict output"; }
# resume without state
expect 1 "train_state.safetensors" -- "$SF" train --data data/ETTh1.csv --model dlinear --seq-len 48 --pred-len 12 --epochs 1 --resume --out "$tmp/empty_dir"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
