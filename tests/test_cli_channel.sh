#!/usr/bin/env bash
# Issue 15 parts through the CLI on a tiny PatchTST: a lut channel mixer (tau 4, and the
# MemoryFormer ffn) trained with --optimizer lazy_adamw, peri placement and rope / t5 positions
# train to finite metrics, eval reproduces the stored validation metric, and a resumed lazy run
# equals the uninterrupted one bit for bit. Bad settings are refused naming the field.
set -uo pipefail
SF=${1:?usage: test_cli_channel.sh path/to/seqformer}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
pass=0; fail=0
. "$(dirname "$0")/cli_expect.sh" # ok, bad, check, expect CODE PATTERN -- command...
# (exit codes are kept in rc first: a $(...) in check's message would reset $?)

small=(--data data/ETTh1.csv --seq-len 96 --pred-len 24 --d-model 8 --n-heads 2 --e-layers 1
       --d-ff 16 --patch-len 16 --stride 8 --norm layernorm --norm-place pre)
"$SF" train "${small[@]}" --print-config > "$tmp/base.json"
sed 's/"channel_mixer": {"kind": "mlp", "d_ff": 16, "activation": "gelu", "dropout": 0[.0-9]*, "fuse": "auto"}/"channel_mixer": {"kind": "lut", "tau": 4}/; s/"placement": "pre"/"placement": "peri"/; s/"positions": {"kind": "learned"}/"positions": {"kind": "rope"}/' \
  "$tmp/base.json" > "$tmp/lut.json"
check "grep -q '\"kind\": \"lut\"' '$tmp/lut.json' && grep -q peri '$tmp/lut.json' && grep -q rope '$tmp/lut.json'" \
  "config with lut, peri, rope ($(grep -c lut "$tmp/lut.json"))"
sed 's/"tau": 4}/"tau": 2, "ffn": true}/; s/"positions": {"kind": "rope"}/"positions": {"kind": "t5", "num_buckets": 8, "max_distance": 6}/' \
  "$tmp/lut.json" > "$tmp/ffn.json"
run=(--data data/ETTh1.csv --batch-size 256 --progress plain --threads 2 --patience 5 --lr 1e-3)

for cfg in lut ffn; do
  "$SF" train "${run[@]}" --config "$tmp/$cfg.json" --optimizer lazy_adamw --epochs 2 --out "$tmp/$cfg" \
    >/dev/null 2>"$tmp/$cfg.log"; rc=$?
  check '[ $rc -eq 0 ]' "$cfg: train exit code ($(tail -1 "$tmp/$cfg.log"))"
  check "grep -q val '$tmp/$cfg/metrics.json' && ! grep -qi 'nan' '$tmp/$cfg/metrics.json'" "$cfg: finite metrics"
  "$SF" eval --model "$tmp/$cfg/model.safetensors" --data data/ETTh1.csv --subset val > "$tmp/$cfg.eval" 2>&1; rc=$?
  check '[ $rc -eq 0 ]' "$cfg: eval exit code ($(tail -1 "$tmp/$cfg.eval"))"
done
check "head -c 8192 '$tmp/ffn/model.safetensors' | grep -aq 'blocks.0.ffn.lut2.tables'" "ffn checkpoint names"
check "head -c 8192 '$tmp/ffn/model.safetensors' | grep -aq 'blocks.0.mixer.relative_attention_bias'" "t5 bias stored"

# lazy AdamW resumes exactly (its moments are the usual ones; untouched rows simply kept theirs)
"$SF" train "${run[@]}" --config "$tmp/lut.json" --optimizer lazy_adamw --epochs 2 --stop-after 1 --out "$tmp/c" >/dev/null 2>&1
"$SF" train "${run[@]}" --config "$tmp/lut.json" --optimizer lazy_adamw --epochs 2 --resume --out "$tmp/c" >/dev/null 2>&1; rc=$?
check '[ $rc -eq 0 ]' "resume exit code"
check "cmp -s '$tmp/lut/train_state.safetensors' '$tmp/c/train_state.safetensors'" "resumed lazy training state identical"
"$SF" train "${run[@]}" --config "$tmp/lut.json" --epochs 2 --resume --out "$tmp/c" >"$tmp/r.log" 2>&1; rc=$?
check '[ $rc -ne 0 ] && grep -q "optimizer" "$tmp/r.log"' "resume with another optimizer is refused ($(tail -1 "$tmp/r.log"))"

# bad settings
sed 's/"tau": 4}/"tau": 3}/' "$tmp/lut.json" > "$tmp/bad1.json"
"$SF" train "${run[@]}" --config "$tmp/bad1.json" --epochs 1 --out "$tmp/b1" >/dev/null 2>"$tmp/b1.log"; rc=$?
check '[ $rc -ne 0 ] && grep -q "channel_mixer: tau: d_model 8 is not a multiple of tau 3" "$tmp/b1.log"' \
  "tau not dividing d_model ($(cat "$tmp/b1.log"))"
sed -e 's/"kind": "softmax"/"kind": "linear"/' -e 's/, "attn_dropout": [0-9.e-]*//' "$tmp/lut.json" > "$tmp/bad2.json"  # (attn_dropout is softmax-only)
"$SF" train "${run[@]}" --config "$tmp/bad2.json" --epochs 1 --out "$tmp/b2" >/dev/null 2>"$tmp/b2.log"; rc=$?
check '[ $rc -ne 0 ] && grep -q "positions .rope. act inside softmax attention" "$tmp/b2.log"' \
  "rope with a linear mixer ($(cat "$tmp/b2.log"))"
"$SF" train "${small[@]}" --optimizer sgd --epochs 1 --out "$tmp/b3" >/dev/null 2>"$tmp/b3.log"; rc=$?
check '[ $rc -ne 0 ]' "unknown optimizer ($(head -1 "$tmp/b3.log"))"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
