#!/usr/bin/env bash
# FAVOR+ projection redraw through the CLI: a tiny PatchTST whose linear mixers use feature_map
# favor with redraw 7 (about 4 redraws per epoch at batch 256) trains to finite metrics, and
# an interrupted-then-resumed run (--stop-after 1, --resume) equals the uninterrupted one bit for
# bit, projection buffers and redraw counters included: the redraw state lives in the checkpointed
# buffers, not in the process.
set -uo pipefail
SF=${1:?usage: test_cli_favor_redraw.sh path/to/seqformer}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
pass=0; fail=0
. "$(dirname "$0")/cli_expect.sh" # ok, bad, check, expect CODE PATTERN -- command...

small=(--data data/ETTh1.csv --seq-len 96 --pred-len 24 --d-model 8 --n-heads 2 --e-layers 1
       --d-ff 16 --patch-len 16 --stride 8 --mixer linear)
"$SF" train "${small[@]}" --print-config > "$tmp/base.json"
sed 's/"feature_map": "elu", "n_features": 64, "redraw": 0/"feature_map": "favor", "n_features": 12, "redraw": 7/' \
  "$tmp/base.json" > "$tmp/favor.json"
check "grep -q '\"redraw\": 7' '$tmp/favor.json'" "config with feature_map favor, redraw 7"
run=(--data data/ETTh1.csv --config "$tmp/favor.json" --batch-size 256 --progress plain --threads 2 --patience 5)

"$SF" train "${run[@]}" --epochs 2 --out "$tmp/u" >/dev/null 2>"$tmp/u.log"
rc=$? # saved first: the message's $(tail ...) below would reset $?
check "[ $rc -eq 0 ]" "train exit code ($(tail -1 "$tmp/u.log"))"
check "! grep -qi 'nan' '$tmp/u/metrics.json'" "finite metrics"
"$SF" train "${run[@]}" --epochs 2 --stop-after 1 --out "$tmp/c" >/dev/null 2>&1
"$SF" train "${run[@]}" --epochs 2 --resume --out "$tmp/c" >/dev/null 2>&1
rc=$?
check "[ $rc -eq 0 ]" "resume exit code"
check "cmp -s '$tmp/u/train_state.safetensors' '$tmp/c/train_state.safetensors'" "resumed training state identical"
check "cmp -s '$tmp/u/model.safetensors' '$tmp/c/model.safetensors'" "resumed weights identical"
check "head -c 8192 '$tmp/u/model.safetensors' | grep -aq 'blocks.0.mixer.redraw_state'" \
  "the checkpoint holds the projection's redraw state"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
