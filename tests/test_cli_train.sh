#!/usr/bin/env bash
# End-to-end CLI test on the shipped ETTh1 file with a tiny model: train writes every output,
# eval agrees with metrics.json, predict continues the dates in original units, a fixed seed is
# reproducible, and --resume after an interruption gives the same weights as an uninterrupted run.
set -uo pipefail
SF=${1:?usage: test_cli_train.sh path/to/seqformer}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
pass=0; fail=0
. "$(dirname "$0")/cli_expect.sh" # ok, bad, check, expect CODE PATTERN -- command...

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

# --eval-batch-size sets the windows per forward of the validation and test passes: eval at the
# same batch size gives the same test mse
"$SF" train "${small[@]}" --epochs 1 --eval-batch-size 7 --out "$tmp/e7" >"$tmp/e7.json" 2>/dev/null
check '[ $? -eq 0 ]' "train --eval-batch-size 7 exit code"
"$SF" eval --model "$tmp/e7/model.safetensors" --data data/ETTh1.csv --batch-size 7 >"$tmp/e7eval.json"
m1=$(sed -n 's/.*"test":{"mse":\([0-9.]*\).*/\1/p' "$tmp/e7.json")
m2=$(sed -n 's/.*"mse":\([0-9.]*\).*/\1/p' "$tmp/e7eval.json")
check "[ -n '$m1' ] && [ '$m1' = '$m2' ]" "eval --batch-size 7 mse ($m2) equals train --eval-batch-size 7's ($m1)"
expect 2 "'--eval-batch-size': 0 is out of range" -- "$SF" train --data data/ETTh1.csv --out "$tmp/x" \
    --eval-batch-size 0

# predict: 24 rows after the last timestamp, original units (OT around 10..20 degrees, not z-scores)
"$SF" predict --model "$tmp/a/model.safetensors" --data data/ETTh1.csv --out "$tmp/p.csv" --plot "$tmp/p.svg" 2>/dev/null
check '[ $? -eq 0 ]' "predict exit code"
check "[ \$(wc -l < '$tmp/p.csv') -eq 25 ]" "predict writes 24 rows + header"
# --ensemble averages class probabilities: refused for a forecast checkpoint, no file written
expect 2 "predict: --ensemble is for classify checkpoints" -- "$SF" predict --model "$tmp/a/model.safetensors" \
    --ensemble "$tmp/a/model.safetensors" --data data/ETTh1.csv --out "$tmp/pe.csv"
check "[ ! -e '$tmp/pe.csv' ]" "refused predict --ensemble writes nothing"
expect 1 "eval: --ensemble is for classify checkpoints" -- "$SF" eval --model "$tmp/a/model.safetensors" \
    --ensemble "$tmp/a/model.safetensors" --data data/ETTh1.csv
check "head -1 '$tmp/p.csv' | grep -q '^date,HUFL,HULL,MUFL,MULL,LUFL,LULL,OT$'" "predict header"
check "sed -n 2p '$tmp/p.csv' | grep -q '^2018-06-26 20:00:00,'" "first forecast timestamp"
check "sed -n 25p '$tmp/p.csv' | grep -q '^2018-06-27 19:00:00,'" "last forecast timestamp"
ot=$(sed -n 2p "$tmp/p.csv" | awk -F, '{print $8}')
check "awk 'BEGIN{exit !($ot > 2 && $ot < 40)}'" "OT forecast in original units ($ot)"
check "grep -q '</svg>' '$tmp/p.svg'" "forecast plot written"

# same seed -> identical weights; resume after interruption -> identical weights
"$SF" train "${small[@]}" --epochs 2 --out "$tmp/b" >/dev/null 2>&1
check "cmp -s '$tmp/a/model.safetensors' '$tmp/b/model.safetensors'" "fixed seed reproduces weights"
# resume: an interrupted-then-resumed run must equal an uninterrupted one in its whole training
# state (weights, best weights, AdamW moments, RNG, counters, history) and its per-epoch log, not
# only in the best weights (which may be an early epoch's).
"$SF" train "${small[@]}" --epochs 3 --patience 5 --out "$tmp/u" >/dev/null 2>&1
"$SF" train "${small[@]}" --epochs 3 --patience 5 --stop-after 1 --out "$tmp/c" >/dev/null 2>&1
check "[ ! -e '$tmp/c/model.safetensors' ] && [ -s '$tmp/c/train_state.safetensors' ]" "interrupted run keeps state only"
# a crash between the log append and the state save leaves an extra row: resume must drop it
sed -n 2p "$tmp/c/train_log.csv" | sed 's/^1,/2,/' >> "$tmp/c/train_log.csv"
"$SF" train "${small[@]}" --epochs 3 --patience 5 --resume --out "$tmp/c" >/dev/null 2>&1
check '[ $? -eq 0 ]' "resume exit code"
check "cmp -s '$tmp/u/train_state.safetensors' '$tmp/c/train_state.safetensors'" "resume: full training state identical to the uninterrupted run"
check "cmp -s '$tmp/u/model.safetensors' '$tmp/c/model.safetensors'" "resume gives the same final weights"
check "[ \"\$(cut -d, -f1-6 '$tmp/u/train_log.csv')\" = \"\$(cut -d, -f1-6 '$tmp/c/train_log.csv')\" ]" "resumed log equals the uninterrupted log (no duplicated row)"
check "[ \$(wc -l < '$tmp/c/train_log.csv') -eq 4 ]" "resumed log has header + 3 epochs"
# --ema: the weights' moving average is what is validated and saved (so the weights differ from
# the plain run's), and its state resumes exactly; a different decay (or none) is refused on resume
"$SF" train "${small[@]}" --epochs 3 --patience 5 --ema 0.9 --out "$tmp/eu" >/dev/null 2>&1
check '[ $? -eq 0 ]' "--ema train exit code"
check "! cmp -s '$tmp/u/model.safetensors' '$tmp/eu/model.safetensors'" "--ema saves other weights than the plain run"
check "[ \"\$(cut -d, -f2 '$tmp/u/train_log.csv')\" = \"\$(cut -d, -f2 '$tmp/eu/train_log.csv')\" ]" "--ema leaves the training itself (train loss per epoch) unchanged"
check "[ \"\$(cut -d, -f3 '$tmp/u/train_log.csv')\" != \"\$(cut -d, -f3 '$tmp/eu/train_log.csv')\" ]" "--ema validates the average (val loss differs)"
"$SF" train "${small[@]}" --epochs 3 --patience 5 --ema 0.9 --stop-after 1 --out "$tmp/ec" >/dev/null 2>&1
"$SF" train "${small[@]}" --epochs 3 --patience 5 --ema 0.9 --resume --out "$tmp/ec" >/dev/null 2>&1
check "cmp -s '$tmp/eu/train_state.safetensors' '$tmp/ec/train_state.safetensors'" "--ema resume: full training state identical"
check "cmp -s '$tmp/eu/model.safetensors' '$tmp/ec/model.safetensors'" "--ema resume: same final weights"
expect 1 "different ema" -- "$SF" train "${small[@]}" --epochs 3 --ema 0.5 --resume --out "$tmp/ec"
expect 1 "different ema" -- "$SF" train "${small[@]}" --epochs 3 --resume --out "$tmp/ec"
expect 2 "ema" -- "$SF" train "${small[@]}" --epochs 3 --ema 1 --out "$tmp/e1"
# the loss plot marks the best epoch that metrics.json reports (1-based)
be=$(sed -n 's/.*"best_epoch":[[:space:]]*\([0-9]*\).*/\1/p' "$tmp/u/metrics.json")
check "grep -q 'best epoch $be<' '$tmp/u/loss.svg'" "loss.svg marks best epoch $be as metrics.json does"
"$SF" train "${small[@]}" --epochs 2 --seed 7 --out "$tmp/d" >/dev/null 2>&1
check "! cmp -s '$tmp/a/model.safetensors' '$tmp/d/model.safetensors'" "another seed gives other weights"

# the other mixer, norm placement and model
"$SF" train "${small[@]}" --epochs 1 --mixer linear --norm rmsnorm --norm-place pre --pos sinusoidal --out "$tmp/e" >/dev/null 2>&1
check '[ $? -eq 0 ] && [ -s "$tmp/e/model.safetensors" ]' "linear/rmsnorm/pre-norm trains"
"$SF" train --data data/ETTh1.csv --model dlinear --seq-len 96 --pred-len 24 --epochs 1 --progress quiet --out "$tmp/f" >"$tmp/f.json" 2>/dev/null
check '[ $? -eq 0 ] && grep -q test "$tmp/f.json"' "dlinear trains"
"$SF" eval --model "$tmp/f/model.safetensors" --data data/ETTh1.csv >/dev/null
check '[ $? -eq 0 ]' "dlinear eval"

# model configs: --print-config shows the JSON the flags build; training from that JSON file is
# bit-identical to training from the flags; the checkpoint stores it and inspect shows it
"$SF" train "${small[@]}" --epochs 2 --print-config > "$tmp/cfg.json"
check '[ $? -eq 0 ] && grep -q "\"format_version\": 2" "$tmp/cfg.json"' "--print-config prints the v2 config"
check 'grep -q "\"dropout\": 0.3[,}]" "$tmp/cfg.json"' "floats print exactly (0.3, not 0.300000011920929)"
rest=(--data data/ETTh1.csv --batch-size 256 --progress plain --threads 2 --epochs 2)
"$SF" train "${rest[@]}" --config "$tmp/cfg.json" --out "$tmp/g" >/dev/null 2>&1
check "cmp -s '$tmp/a/model.safetensors' '$tmp/g/model.safetensors'" "--config run bit-identical to the flag run"
"$SF" inspect "$tmp/g/model.safetensors" --batch-size 32 > "$tmp/inspect.txt"
check '[ $? -eq 0 ] && grep -q "blocks.0" "$tmp/inspect.txt" && grep -q "FLOPs per sample" "$tmp/inspect.txt" && grep -q "activations at batch 32" "$tmp/inspect.txt"' "inspect"
"$SF" list > "$tmp/list.txt"
check '[ $? -eq 0 ] && grep -q "^  softmax" "$tmp/list.txt" && grep -q "^  residual" "$tmp/list.txt" && grep -q "n_heads" "$tmp/list.txt"' "list"
# a hybrid stack is just a config: softmax and linear blocks alternating, a single-mixer block among them
cat > "$tmp/hybrid.json" <<'JSON'
{"format_version": 2, "task": "forecast", "model": "patchtst", "seq_len": 96, "pred_len": 24,
 "d_model": 8, "input": {"patch_len": 16, "stride": 8}, "positions": "sinusoidal",
 "blocks": [
   {"kind": "metaformer", "norm": {"kind": "rmsnorm"}, "token_mixer": {"kind": "softmax", "n_heads": 2}, "channel_mixer": {"d_ff": 16}},
   {"kind": "residual", "norm": {"kind": "rmsnorm"}, "mixer": {"kind": "linear", "n_heads": 2}},
   {"kind": "parallel", "norm": {"kind": "rmsnorm"}, "token_mixer": {"kind": "softmax", "n_heads": 2}, "channel_mixer": {"d_ff": 16}}
 ]}
JSON
"$SF" train "${rest[@]}" --epochs 1 --config "$tmp/hybrid.json" --out "$tmp/h" > "$tmp/h.json" 2>/dev/null
check '[ $? -eq 0 ] && grep -q test "$tmp/h.json"' "hybrid config trains"
"$SF" eval --model "$tmp/h/model.safetensors" --data data/ETTh1.csv > /dev/null
check '[ $? -eq 0 ]' "hybrid eval"
# a Time-Series-Library command line (PatchTST's etth1.sh, shortened): runs/MODEL_ID, same model
(cd "$tmp" && "$SF" train --random_seed 2021 --is_training 1 --root_path "$OLDPWD/data" \
   --data_path ETTh1.csv --model_id ETTh1_96_24 --model PatchTST --data ETTh1 --features M \
   --seq_len 96 --pred_len 24 --enc_in 7 --e_layers 1 --n_heads 2 --d_model 8 --d_ff 16 \
   --dropout 0.3 --fc_dropout 0.3 --head_dropout 0 --patch_len 16 --stride 8 --des Exp \
   --train_epochs 2 --itr 1 --batch_size 256 --learning_rate 0.0001 --progress quiet --threads 2) >/dev/null 2>&1
check "cmp -s '$tmp/a/model.safetensors' '$tmp/runs/ETTh1_96_24/model.safetensors'" "TSLib flags give the same run (runs/MODEL_ID)"

# iTransformer's ETTh1 script line (shortened): TSLib flags build the model, and its config
# round-trips through --print-config / --config
(cd "$tmp" && "$SF" train --is_training 1 --root_path "$OLDPWD/data" --data_path ETTh1.csv \
   --model_id ETTh1_96_24_it --model iTransformer --data ETTh1 --features M --seq_len 96 \
   --pred_len 24 --e_layers 1 --enc_in 7 --dec_in 7 --c_out 7 --des Exp --d_model 16 --d_ff 16 \
   --n_heads 2 --train_epochs 1 --itr 1 --progress quiet --threads 2) >/dev/null 2>&1
check "[ -s '$tmp/runs/ETTh1_96_24_it/model.safetensors' ]" "iTransformer from TSLib flags trains"
"$SF" train --data data/ETTh1.csv --model itransformer --seq-len 96 --pred-len 24 --e-layers 1 \
   --d-model 16 --d-ff 16 --n-heads 2 --print-config > "$tmp/it.json"
"$SF" train --data data/ETTh1.csv --config "$tmp/it.json" --epochs 1 --progress quiet --threads 2 \
   --out "$tmp/it" >/dev/null 2>&1
check "cmp -s '$tmp/it/model.safetensors' '$tmp/runs/ETTh1_96_24_it/model.safetensors'" "iTransformer: --config gives the flag run"

# iTransformer with input.time_tokens and freq auto: the hourly step resolves to h (4 feature
# tokens) in the checkpoint; eval reproduces train's test score; predict continues the dates
head -n 1501 data/ETTh1.csv > "$tmp/etth1_head.csv"
python3 - "$tmp/it.json" "$tmp/it_tt.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c["input"]["time_tokens"] = True
c["freq"] = "auto"
json.dump(c, open(sys.argv[2], "w"))
PY
"$SF" train --data "$tmp/etth1_head.csv" --config "$tmp/it_tt.json" --epochs 1 --progress quiet \
   --threads 2 --out "$tmp/itt" >"$tmp/itt.json" 2>"$tmp/itt.log"
check '[ $? -eq 0 ]' "iTransformer time_tokens trains ($(tail -1 "$tmp/itt.log"))"
"$SF" inspect --model "$tmp/itt/model.safetensors" >"$tmp/itt_inspect.txt" 2>&1
check "grep -q '\"freq\": \"h\"' '$tmp/itt_inspect.txt' && grep -q '\"time_tokens\": true' '$tmp/itt_inspect.txt'" "time_tokens checkpoint holds freq h"
"$SF" eval --model "$tmp/itt/model.safetensors" --data "$tmp/etth1_head.csv" >"$tmp/itt_eval.json"
m1=$(sed -n 's/.*"test":{"mse":\([0-9.]*\).*/\1/p' "$tmp/itt.json")
m2=$(sed -n 's/.*"mse":\([0-9.]*\).*/\1/p' "$tmp/itt_eval.json")
check "[ -n '$m1' ] && [ '$m1' = '$m2' ]" "time_tokens: eval mse ($m2) equals train's test mse ($m1)"
"$SF" predict --model "$tmp/itt/model.safetensors" --data "$tmp/etth1_head.csv" --out "$tmp/itt.csv" 2>/dev/null
check "[ \$(wc -l < '$tmp/itt.csv') -eq 25 ]" "time_tokens: predict writes 24 rows + header"

# The final validation metrics reuse the best epoch's pass (trainer.c): the same values, to all
# 17 digits of metrics.json, as evaluating the restored best weights again. A run whose best
# epoch is not its last, so the weights were restored from the copy.
for r in 0 1; do
  SF_TRAIN_REEVALUATE_VAL=$r "$SF" train "${small[@]}" --epochs 6 --lr 0.05 --out "$tmp/rv$r" >/dev/null 2>&1
  check '[ $? -eq 0 ]' "train (SF_TRAIN_REEVALUATE_VAL=$r) exit code"
done
metric_block() { tr -d ' \t\n' < "$1" | sed 's/"train_seconds".*//'; }
be=$(sed -n 's/.*"best_epoch":[[:space:]]*\([0-9]*\).*/\1/p' "$tmp/rv0/metrics.json")
er=$(sed -n 's/.*"epochs_run":[[:space:]]*\([0-9]*\).*/\1/p' "$tmp/rv0/metrics.json")
check "[ -n '$be' ] && [ -n '$er' ] && [ $be -lt $er ]" "best epoch ($be) before the last ($er)"
check "[ \"\$(metric_block '$tmp/rv0/metrics.json')\" = \"\$(metric_block '$tmp/rv1/metrics.json')\" ]" \
  "reused best-epoch validation metrics equal a second evaluation"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
