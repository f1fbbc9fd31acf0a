#!/usr/bin/env bash
# Bad input never crashes: every case exits non-zero with a one-line message naming the file,
# line, field or flag, and leaves no partial output behind.
set -uo pipefail
SF=${1:?usage: test_cli_errors.sh path/to/seqformer}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
pass=0; fail=0
. "$(dirname "$0")/cli_expect.sh" # ok, bad, check, expect CODE PATTERN -- command...

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
expect 2 "model: unknown model 'gpt' (known: patchtst, dlinear" -- "$SF" train --data data/ETTh1.csv --out "$tmp/x" --model gpt
expect 2 "needs a value" -- "$SF" train --data data/ETTh1.csv --out
expect 2 "required" -- "$SF" train --data data/ETTh1.csv
expect 2 "n_heads" -- "$SF" train --data data/ETTh1.csv --out "$tmp/x" --d-model 16 --n-heads 3
expect 2 "patch_len" -- "$SF" train --data data/ETTh1.csv --out "$tmp/x" --seq-len 8 --pred-len 4 --patch-len 16
expect 2 "required" -- "$SF" eval --model x
expect 2 "unknown flag" -- "$SF" predict --model x --data y --horizon 3
"$SF" train --help >/dev/null && "$SF" eval --help >/dev/null && "$SF" predict --help >/dev/null \
  && pass=$((pass+1)) || { fail=$((fail+1)); echo "FAIL: --help"; }
# model configs (docs/config.md): errors name the file, the field path and line/column
printf '{"model": "patchtst",\n  "blocks": [\n    {"kind": "metaformer",, }\n  ]}\n' > "$tmp/malformed.json"
cat > "$tmp/unknown_mixer.json" <<'JSON'
{"format_version": 2, "model": "patchtst", "d_model": 16,
 "blocks": [{"kind": "metaformer", "token_mixer": {"kind": "softmax"}},
            {"kind": "residual", "mixer": {"kind": "mamba9"}}]}
JSON
cat > "$tmp/range.json" <<'JSON'
{"format_version": 2, "model": "patchtst", "blocks": [{}, {}, {}, {"token_mixer": {"kind": "softmax", "n_heads": 0}}]}
JSON
cat > "$tmp/badtype.json" <<'JSON'
{"format_version": 2, "model": "patchtst", "blocks": [{"dropout": "high"}]}
JSON
cat > "$tmp/unknown_key.json" <<'JSON'
{"format_version": 2, "model": "patchtst", "blocks": [{"token_mixer": {"kind": "linear", "widow": 3}}]}
JSON
cat > "$tmp/channels.json" <<'JSON'
{"format_version": 2, "model": "patchtst", "n_channels": 5, "blocks": [{}]}
JSON
cat > "$tmp/long.json" <<'JSON'
{"format_version": 2, "model": "dlinear", "seq_len": 9000, "pred_len": 96}
JSON
cat > "$tmp/heads.json" <<'JSON'
{"format_version": 2, "model": "patchtst", "d_model": 16, "blocks": [{"repeat": 2}, {"token_mixer": {"n_heads": 3}}]}
JSON
cat > "$tmp/newer.json" <<'JSON'
{"format_version": 99, "model": "patchtst", "blocks": []}
JSON
expect 2 "malformed.json: malformed JSON at line 3, column" -- "$SF" train --data data/ETTh1.csv --out "$tmp/c" --config "$tmp/malformed.json"
expect 2 "blocks\[1\].mixer.kind: unknown mixer 'mamba9' (known: softmax, linear" -- "$SF" train --data data/ETTh1.csv --out "$tmp/c" --config "$tmp/unknown_mixer.json"
expect 2 "blocks\[3\].token_mixer.n_heads: must be >= 1" -- "$SF" train --data data/ETTh1.csv --out "$tmp/c" --config "$tmp/range.json"
cat > "$tmp/attn_drop.json" <<'JSON'
{"format_version": 2, "model": "patchtst", "blocks": [{"token_mixer": {"kind": "softmax", "attn_dropout": 1.5}}]}
JSON
expect 2 "blocks\[0\].token_mixer.attn_dropout: must be <= 0.99 (got 1.5)" -- "$SF" train --data data/ETTh1.csv --out "$tmp/c" --config "$tmp/attn_drop.json"
expect 2 "blocks\[0\].dropout: expected a finite number" -- "$SF" train --data data/ETTh1.csv --out "$tmp/c" --config "$tmp/badtype.json"
expect 2 "blocks\[0\].token_mixer: unknown option 'widow' (options: n_heads, causal" -- "$SF" train --data data/ETTh1.csv --out "$tmp/c" --config "$tmp/unknown_key.json"
expect 1 "n_channels: the config says 5, but data/ETTh1.csv has 7 channels" -- "$SF" train --data data/ETTh1.csv --out "$tmp/c" --config "$tmp/channels.json"
expect 1 "train split of data/ETTh1.csv has 8640 rows, needs seq_len+pred_len=9096" -- "$SF" train --data data/ETTh1.csv --out "$tmp/c" --config "$tmp/long.json"
expect 2 "blocks\[1\].token_mixer: n_heads: 3 does not divide d_model 16" -- "$SF" train --data data/ETTh1.csv --out "$tmp/c" --config "$tmp/heads.json"
# efficient attention mixers: options that do not fit the sequence (42 patches) or each other
expect 2 "blocks\[0\].token_mixer: causal: fastformer has no causal form" -- "$SF" train --data data/ETTh1.csv --out "$tmp/c" --mixer fastformer --causal
cat > "$tmp/window.json" <<'JSON'
{"format_version": 2, "model": "patchtst", "blocks": [{}, {"token_mixer": {"kind": "local", "window": 64}}]}
JSON
expect 2 "blocks\[1\].token_mixer: window: 64 covers the whole sequence (42 tokens" -- "$SF" train --data data/ETTh1.csv --out "$tmp/c" --config "$tmp/window.json"
expect 2 "format_version: 99 is newer than this build reads" -- "$SF" train --data data/ETTh1.csv --out "$tmp/c" --config "$tmp/newer.json"
expect 2 "missing.json" -- "$SF" train --data data/ETTh1.csv --out "$tmp/c" --config "$tmp/missing.json"
expect 2 "--d-model cannot be combined with --config" -- "$SF" train --data data/ETTh1.csv --out "$tmp/c" --config "$tmp/range.json" --d-model 8
expect 2 "--model cannot be combined with --config" -- "$SF" train --data data/ETTh1.csv --out "$tmp/c" --config "$tmp/range.json" --model dlinear
[ ! -e "$tmp/c" ] && pass=$((pass+1)) || { fail=$((fail+1)); echo "FAIL: output after config error"; }
# divergence is never silent: --lr 10 stops with the epoch and step, exit 1, no model saved.
# Batch 8 gives the warm-up 1065 steps in epoch 1 to reach a diverging rate (at batch 128 the
# step where it diverges moved to epoch 2 with the GEMM's rounding, issue #11)
expect 1 "training diverged at epoch 1, step" -- "$SF" train --data data/ETTh1.csv --seq-len 96 --pred-len 24 --e-layers 1 --lr 10 --epochs 2 --batch-size 8 --progress quiet --out "$tmp/div"
[ ! -e "$tmp/div/model.safetensors" ] && [ ! -e "$tmp/div/train_state.safetensors" ] && pass=$((pass+1)) || { fail=$((fail+1)); echo "FAIL: state saved after divergence"; }
# TSLib: --is_training 0 and an unknown --data split name
expect 2 "use seqformer eval" -- "$SF" train --is_training 0 --root_path data --data_path ETTh1.csv --data ETTh1 --model_id x
expect 2 "names the split" -- "$SF" train --root_path data --data_path ETTh1.csv --data weather --out "$tmp/t"

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
# a checkpoint whose config is from a newer format
python3 - "$ck" "$tmp/newer.safetensors" <<'PY'
import json, struct, sys
b = open(sys.argv[1], "rb").read(); n = struct.unpack("<Q", b[:8])[0]
h = json.loads(b[8:8 + n]); c = json.loads(h["__metadata__"]["config"]); c["format_version"] = 7
h["__metadata__"]["config"] = json.dumps(c); hb = json.dumps(h).encode(); hb += b" " * (-len(hb) % 8)
open(sys.argv[2], "wb").write(struct.pack("<Q", len(hb)) + hb + b[8 + n:])
PY
python3 - "$ck" "$tmp/split.safetensors" <<'PY'
import json, struct, sys
b = open(sys.argv[1], "rb").read(); n = struct.unpack("<Q", b[:8])[0]
h = json.loads(b[8:8 + n]); h["__metadata__"]["split"] = "weird"
hb = json.dumps(h).encode(); hb += b" " * (-len(hb) % 8)
open(sys.argv[2], "wb").write(struct.pack("<Q", len(hb)) + hb + b[8 + n:])
PY
expect 1 "split.safetensors: metadata 'split': 'weird' is not a split kind" -- "$SF" eval --model "$tmp/split.safetensors" --data data/ETTh1.csv
expect 1 "split.safetensors: metadata 'split': 'weird' is not a split kind" -- "$SF" predict --model "$tmp/split.safetensors" --data data/ETTh1.csv
expect 1 "newer.safetensors: metadata 'config': format_version: 7 is newer than this build reads" -- "$SF" eval --model "$tmp/newer.safetensors" --data data/ETTh1.csv
# --resume refuses a changed learning rate / batch size / seed / data file
"$SF" train --data data/ETTh1.csv --model dlinear --seq-len 48 --pred-len 12 --epochs 3 --stop-after 1 --progress quiet --out "$tmp/r" >/dev/null 2>&1
expect 1 "different lr" -- "$SF" train --data data/ETTh1.csv --model dlinear --seq-len 48 --pred-len 12 --epochs 3 --progress quiet --out "$tmp/r" --resume --lr 0.001
expect 1 "different batch_size" -- "$SF" train --data data/ETTh1.csv --model dlinear --seq-len 48 --pred-len 12 --epochs 3 --progress quiet --out "$tmp/r" --resume --batch-size 16
expect 1 "different seed" -- "$SF" train --data data/ETTh1.csv --model dlinear --seq-len 48 --pred-len 12 --epochs 3 --progress quiet --out "$tmp/r" --resume --seed 7
head -16000 data/ETTh1.csv > "$tmp/ETTh1.csv"
expect 1 "different data" -- "$SF" train --data "$tmp/ETTh1.csv" --model dlinear --seq-len 48 --pred-len 12 --epochs 3 --progress quiet --out "$tmp/r" --resume
# resume without state
expect 1 "train_state.safetensors" -- "$SF" train --data data/ETTh1.csv --model dlinear --seq-len 48 --pred-len 12 --epochs 1 --resume --out "$tmp/empty_dir"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
