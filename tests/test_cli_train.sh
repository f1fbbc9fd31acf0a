#!/usr/bin/env bash
# End-to-end CLI test on the shipped ETTh1 file with a tiny model: train writes every output,
# eval agrees with metrics.json, predict continues the dates in original units, a fixed seed is
# reproducible, and --resume after an interruption gives the same weights as an uninterrupted run.
set -uo pipefail
SF=${1:?usage: test_cli_train.sh path/to/seqformer}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
pass=0; fail=0
ok() { pass=$((pass+1)); }
bad() { fail=$((fail+1)); echo "FAIL: $*"; }
check() { if eval "$1"; then ok; else bad "$2"; fi; }

small=(--data data/ETTh1.csv --seq-len 96 --pred-len 24 --d-model 8 --n-heads 2 --e-layers 1
       --d-ff 16 --patch-len 16 --stride 8 --batch-size 256 --progress plain --threads 2)

"$SF" train "${small[@]}" --epochs 2 --out "$tmp/a" >"$tmp/a.json" 2>"$tmp/a.log"
check '[ $? -eq 0 ]' "train exit code"
for f in model.safetensors metrics.json train_log.csv loss.svg train_state.safetensors; do
  check "[ -s '$tmp/a/$f' ]" "train wrote $f"
done
check "[ \$(wc -l < '$tmp/a/train_log.csv') -eq 3 ]" "train_log.csv has header + 2 epochs"
check "grep -q 'epoch 2/2' '$tmp/a.log'" "plain progress lines"
check "! grep -q \$'\\r' '$tmp/a.log'" "no carriage returns when not a terminal"
check "grep -q '\"test\"' '$tmp/a/metrics.json'" "metrics.json has test"
check "[ -z \"\$(ls '$tmp/a' | grep '\\.tmp\\.')\" ]" "no temp files left"

# eval reproduces the test metrics in metrics.json
"$SF" eval --model "$tmp/a/model.safetensors" --data data/ETTh1.csv >"$tmp/eval.json"
check '[ $? -eq 0 ]' "eval exit code"
m1=$(sed -n 's/.*"test":{"mse":\([0-9.]*\).*/\1/p' "$tmp/a.json")
m2=$(sed -n 's/.*"mse":\([0-9.]*\).*/\1/p' "$tmp/eval.json")
check "[ -n '$m1' ] && [ '$m1' = '$m2' ]" "eval mse ($m2) equals train's test mse ($m1)"
check "grep -q '\"windows\":2857' '$tmp/eval.json'" "eval scores all 2857 test windows"

# predict: 24 rows after the last timestamp, original units (OT around 10..20 degrees, not z-scores)
"$SF" predict --model "$tmp/a/model.safetensors" --data data/ETTh1.csv --out "$tmp/p.csv" --plot "$tmp/p.svg" 2>/dev/null
check '[ $? -eq 0 ]' "predict exit code"
check "[ \$(wc -l < '$tmp/p.csv') -eq 25 ]" "predict writes 24 rows + header"
check "head -1 '$tmp/p.csv' | grep -q '^date,HUFL,HULL,MUFL,MULL,LUFL,LULL,OT$'" "predict header"
check "sed -n 2p '$tmp/p.csv' | grep -q '^2018-06-26 20:00:00,'" "first forecast timestamp"
check "sed -n 25p '$tmp/p.csv' | grep -q '^2018-06-27 19:00:00,'" "last forecast timestamp"
ot=$(sed -n 2p "$tmp/p.csv" | awk -F, '{print $8}')
check "awk 'BEGIN{exit !($ot > 2 && $ot < 40)}'" "OT forecast in original units ($ot)"
check "grep -q '</svg>' '$tmp/p.svg'" "forecast plot written"

# same seed -> identical weights; resume after interruption -> identical weights
"$SF" train "${small[@]}" --epochs 2 --out "$tmp/b" >/dev/null 2>&1
check "cmp -s '$tmp/a/model.safetensors' '$tmp/b/model.safetensors'" "fixed seed reproduces weights"
"$SF" train "${small[@]}" --epochs 2 --stop-after 1 --out "$tmp/c" >/dev/null 2>&1
check "[ ! -e '$tmp/c/model.safetensors' ] && [ -s '$tmp/c/train_state.safetensors' ]" "interrupted run keeps state only"
"$SF" train "${small[@]}" --epochs 2 --resume --out "$tmp/c" >/dev/null 2>&1
check "cmp -s '$tmp/a/model.safetensors' '$tmp/c/model.safetensors'" "resume gives the same final weights"
check "[ \$(wc -l < '$tmp/c/train_log.csv') -eq 3 ]" "resumed log has both epochs"
"$SF" train "${small[@]}" --epochs 2 --seed 7 --out "$tmp/d" >/dev/null 2>&1
check "! cmp -s '$tmp/a/model.safetensors' '$tmp/d/model.safetensors'" "another seed gives other weights"

# the other mixer, norm placement and model
"$SF" train "${small[@]}" --epochs 1 --mixer linear --norm rmsnorm --norm-place pre --pos sinusoidal --out "$tmp/e" >/dev/null 2>&1
check '[ $? -eq 0 ] && [ -s "$tmp/e/model.safetensors" ]' "linear/rmsnorm/pre-norm trains"
"$SF" train --data data/ETTh1.csv --model dlinear --seq-len 96 --pred-len 24 --epochs 1 --progress quiet --out "$tmp/f" >"$tmp/f.json" 2>/dev/null
check '[ $? -eq 0 ] && grep -q test "$tmp/f.json"' "dlinear trains"
"$SF" eval --model "$tmp/f/model.safetensors" --data data/ETTh1.csv >/dev/null
check '[ $? -eq 0 ]' "dlinear eval"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
