#!/usr/bin/env bash
# The classify task end to end on a real UCR set (data/ucr/Chinatown) and a small hand-written
# UEA file with unequal lengths: train -> eval JSON (metrics + confusion matrix) -> predict CSV
# and the three SVGs; then bad input: every case exits non-zero with a short message naming the
# file, line, class or flag, and leaves no output file behind.
set -uo pipefail
SF=${1:?usage: test_cli_classify.sh path/to/seqformer}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
pass=0; fail=0
. "$(dirname "$0")/cli_expect.sh" # ok, bad, check, expect CODE PATTERN -- command...

TR=data/ucr/Chinatown_TRAIN.tsv; TE=data/ucr/Chinatown_TEST.tsv
common=(--threads 1 --progress quiet --epochs 4 --batch-size 8 --d-model 16 --n-heads 4)

# --- UCR: train, eval, predict, plots
if "$SF" train --task classify --data $TR --test $TE --out "$tmp/run" "${common[@]}" >"$tmp/train.json" 2>"$tmp/train.err"; then
  python3 - "$tmp/train.json" <<'PY' && ok || bad "train JSON: $(cat "$tmp/train.json")"
import json, sys
r = json.load(open(sys.argv[1]))
for k in ["log_loss", "accuracy", "balanced_accuracy", "cb_log_loss", "roc_auc_micro", "roc_auc_macro", "pr_auc_micro", "pr_auc_macro"]:
    assert k in r["test"], k
assert 0 <= r["test"]["accuracy"] <= 1
PY
else bad "train failed: $(cat "$tmp/train.err")"; fi
# stratified split of Chinatown's 20 training series (10 per class): 2 of each to validation
grep -q "2 classes, 1 channel, up to 24 steps, 16/4/343 train/val/test series" "$tmp/train.err" && ok || bad "banner: $(cat "$tmp/train.err")"
"$SF" eval --model "$tmp/run/model.safetensors" --data $TE --plot "$tmp/ev" >"$tmp/eval.json" 2>"$tmp/eval.err" && ok || bad "eval: $(cat "$tmp/eval.err")"
python3 - "$tmp/eval.json" "$tmp/train.json" <<'PY' && ok || bad "eval JSON: $(cat "$tmp/eval.json")"
import json, sys
e = json.load(open(sys.argv[1])); t = json.load(open(sys.argv[2]))
assert e["classes"] == ["1", "2"], e["classes"]
cm = e["confusion_matrix"]
assert len(cm) == 2 and sum(map(sum, cm)) == 343 == e["examples"]
assert abs(e["accuracy"] - (cm[0][0] + cm[1][1]) / 343) < 1e-6
assert abs(e["accuracy"] - t["test"]["accuracy"]) < 1e-6   # eval == the trainer's test score
PY
for f in confusion roc pr; do grep -q "</svg>" "$tmp/ev_$f.svg" 2>/dev/null && ok || bad "no $tmp/ev_$f.svg"; done
"$SF" predict --model "$tmp/run/model.safetensors" --data $TE --out "$tmp/pred.csv" --plot "$tmp/pp.svg" 2>"$tmp/pred.err" && ok || bad "predict: $(cat "$tmp/pred.err")"
python3 - "$tmp/pred.csv" <<'PY' && ok || bad "predict CSV: $(head -3 "$tmp/pred.csv")"
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
assert len(rows) == 343 and list(rows[0].keys()) == ["index", "label", "predicted", "p_1", "p_2"]
for r in rows:
    assert abs(float(r["p_1"]) + float(r["p_2"]) - 1) < 1e-4
    assert r["predicted"] == ("1" if float(r["p_1"]) >= float(r["p_2"]) else "2")
PY
for f in confusion roc pr; do [ -s "$tmp/pp_$f.svg" ] && ok || bad "no $tmp/pp_$f.svg"; done
# interpretability: gradient x input attribution of one series
"$SF" predict --model "$tmp/run/model.safetensors" --data $TE --out "$tmp/pred2.csv" --plot "$tmp/one" --object 5 2>"$tmp/obj.err" && ok || bad "predict --object: $(cat "$tmp/obj.err")"
grep -q "series 5: gradient x input of log p(" "$tmp/one_attribution.svg" 2>/dev/null && ok || bad "no attribution SVG"
# per-head softmax attention maps of one series (the 4 heads of the one block)
"$SF" predict --model "$tmp/run/model.safetensors" --data $TE --out "$tmp/pred3.csv" --object 5 --attention-svg "$tmp/att.svg" 2>"$tmp/att.err" && ok || bad "predict --attention-svg: $(cat "$tmp/att.err")"
[ "$(grep -c "(max " "$tmp/att.svg" 2>/dev/null)" = 4 ] && grep -q "softmax attention weights" "$tmp/att.svg" && tail -n 1 "$tmp/att.svg" | grep -q '</svg>' && ok || bad "attention SVG: not 4 panels"

# --- UEA with unequal lengths and trailing '?' padding; class weights, series normalisation
{ printf '@problemName Toy\n@timeStamps false\n@missing true\n@univariate false\n@dimensions 2\n'
  printf '@equalLength false\n@classLabel true up down\n@data\n'
  for i in $(seq 1 12); do
    printf '1,2,3,4:0,1,0,1:up\n4,3,2:1,0,1:down\n1,2,3,?,?:1,1,1,?,?:up\n'
  done; } > "$tmp/toy.ts"
"$SF" train --task classify --data "$tmp/toy.ts" --test "$tmp/toy.ts" --out "$tmp/uea" \
  --class-weights balanced --normalize series "${common[@]}" >"$tmp/uea.json" 2>"$tmp/uea.err" && ok || bad "UEA train: $(cat "$tmp/uea.err")"
grep -q "up to 4 steps" "$tmp/uea.err" && ok || bad "UEA banner: $(cat "$tmp/uea.err")"
"$SF" eval --model "$tmp/uea/model.safetensors" --data "$tmp/toy.ts" >"$tmp/uea_eval.json" 2>&1 && ok || bad "UEA eval: $(cat "$tmp/uea_eval.json")"
grep -q '"classes":\["up","down"\]' "$tmp/uea_eval.json" && ok || bad "UEA classes: $(cat "$tmp/uea_eval.json")"
# irregular series: channel 0 as observation times (--pos time), eval reads the checkpoint's positions
"$SF" train --task classify --data "$tmp/toy.ts" --test "$tmp/toy.ts" --out "$tmp/uea_t" --pos time \
  --time-scale 3 --normalize series "${common[@]}" >"$tmp/uea_t.json" 2>"$tmp/uea_t.err" && ok || bad "UEA --pos time: $(cat "$tmp/uea_t.err")"
"$SF" eval --model "$tmp/uea_t/model.safetensors" --data "$tmp/toy.ts" >"$tmp/uea_t_eval.json" 2>&1 && grep -q '"accuracy"' "$tmp/uea_t_eval.json" && ok || bad "UEA --pos time eval: $(cat "$tmp/uea_t_eval.json")"

# --- bad input
printf '1\t1\t2\t3\n2\t1\t2\n' > "$tmp/ragged.tsv"
printf '1\t1\t2\t3\n3\t1\t2\t3\n' > "$tmp/newclass.tsv"
printf '1\t1\t2\t3\t4\t5\n' > "$tmp/ch.tsv"
head -c 400 $TE | head -2 | cut -f1 > "$tmp/nolen.tsv"
printf '@problemName X\n@frobnicate 1\n@data\n' > "$tmp/dir.ts"
printf '@dimensions 2\n@classLabel true 1 2\n@data\n1,2:3,4:1\n1,2:3,4:2\n' > "$tmp/two.ts"
python3 -c "import sys; print('1\t' + '\t'.join(['0.5'] * 30))" > "$tmp/long.tsv"
expect 1 "ragged.tsv:2: ragged row" -- "$SF" train --task classify --data "$tmp/ragged.tsv" --out "$tmp/x1"
expect 1 "class '3' does not occur in the training data" -- "$SF" train --task classify --data $TR --test "$tmp/newclass.tsv" --out "$tmp/x2"
expect 2 "blocks\[0\].token_mixer: mixer .probsparse. cannot handle padded sequences" -- "$SF" train --task classify --data $TR --mixer probsparse --out "$tmp/x2b"
expect 1 "dir.ts:2: unknown directive '@frobnicate'" -- "$SF" train --task classify --data "$tmp/dir.ts" --out "$tmp/x3"
expect 2 "give --pos time" -- "$SF" train --task classify --data $TR --time-scale 2 --out "$tmp/x3b"
expect 2 "time positions give each step its observation time; they need input pointwise" -- "$SF" train --task classify --data $TR --pos time --time-channel 0 --patch-len 4 --out "$tmp/x3c"
expect 2 "positions.channel: 3, but the series have 1 channels" -- "$SF" train --task classify --data $TR --pos time --time-channel 3 --out "$tmp/x3c"
expect 1 "channels per step, but the training file" -- "$SF" train --task classify --data $TR --test "$tmp/two.ts" --out "$tmp/x4"
expect 1 "class '3' does not occur" -- "$SF" eval --model "$tmp/run/model.safetensors" --data "$tmp/newclass.tsv"
expect 1 "longer than the model's seq_len 24" -- "$SF" eval --model "$tmp/run/model.safetensors" --data "$tmp/long.tsv"
expect 1 "2 channels per step, but the model reads 1" -- "$SF" predict --model "$tmp/run/model.safetensors" --data "$tmp/two.ts" --out "$tmp/never.csv"
[ ! -e "$tmp/never.csv" ] && ok || bad "predict left a file after an error"
expect 1 "--object '999' is not a row" -- "$SF" predict --model "$tmp/run/model.safetensors" --data $TE --out "$tmp/p3.csv" --plot "$tmp/q" --object 999
[ ! -e "$tmp/p3.csv" ] && ok || bad "predict --object 999 left a CSV"
expect 1 "--object draws an attribution picture; give --plot too" -- "$SF" predict --model "$tmp/run/model.safetensors" --data $TE --object 1
expect 1 "--attention-svg draws the attention of one series; give --object N" -- "$SF" predict --model "$tmp/run/model.safetensors" --data $TE --attention-svg "$tmp/a2.svg"
[ ! -e "$tmp/a2.svg" ] && ok || bad "--attention-svg without --object wrote a file"
printf '1\t1\t2\n2\t3\t4\n' > "$tmp/single.tsv"  # one series per class: nothing to carve (--val-fraction 0 trains on all)
expect 1 "validation split is empty" -- "$SF" train --task classify --data "$tmp/single.tsv" --out "$tmp/x5"
expect 2 "'--normalize': 'zscore'" -- "$SF" train --task classify --data $TR --normalize zscore --out "$tmp/x6"
expect 1 "ETTh1.csv:1: a label and at least one value expected (tab-separated)" -- "$SF" train --model t2 --data data/ETTh1.csv --out "$tmp/x7"
expect 2 "--test is for --task classify" -- "$SF" train --data data/ETTh1.csv --test $TE --out "$tmp/x8"
expect 2 "task classify, but the model config's task is forecast" -- "$SF" train --task classify --model patchtst --data $TR --out "$tmp/x9"
printf '{"task":"forecast","model":"t2","blocks":[{"token_mixer":"softmax"}]}' > "$tmp/t2f.json"
expect 1 "task: model 't2' has no pred_len, it is not a forecaster" -- "$SF" train --config "$tmp/t2f.json" --data data/ETTh1.csv --out "$tmp/x10"

# --- the ucr recipe (README): whole training file (val = train), batch min(20/10, 16) = 2, a step
# budget (20 steps = 2 epochs of 10), conv_patches; later flags override the recipe's
if "$SF" train --recipe ucr --data $TR --test $TE --out "$tmp/rec" --threads 1 --progress quiet \
    --train-steps 20 --d-model 16 >"$tmp/rec.json" 2>"$tmp/rec.err"; then
  grep -q "20/20/343 train/val/test series" "$tmp/rec.err" && ok || bad "recipe banner: $(cat "$tmp/rec.err")"
  python3 -c "import json,sys; r=json.load(open(sys.argv[1])); assert r['epochs_run'] == 2, r" "$tmp/rec.json" \
    && ok || bad "recipe epochs: $(cat "$tmp/rec.json")"
else bad "recipe train failed: $(cat "$tmp/rec.err")"; fi
"$SF" train --recipe ucr --data $TR --print-config --patch-len 6 > "$tmp/rec.cfg" 2>&1 && \
  grep -q '"input": {"kind": "conv_patches", "patch_len": 6, "stride": 8}' "$tmp/rec.cfg" && ok \
  || bad "recipe config: $(head -c 400 "$tmp/rec.cfg")"
expect 2 "input.stride: 8 is longer than patch_len 6" -- "$SF" train --recipe ucr --data $TR --patch-len 6 --out "$tmp/x11"
# --mixer-options: merged into the flags' token mixer, checked against its options
"$SF" train --recipe ucr --data $TR --print-config --mixer mamba --mixer-options '{"d_state": 8, "expand": 1}' \
    > "$tmp/mo.cfg" 2>&1 && grep -q '"token_mixer": {"kind": "mamba", "d_state": 8, "d_conv": 4, "expand": 1,' "$tmp/mo.cfg" \
  && ok || bad "--mixer-options config: $(head -c 600 "$tmp/mo.cfg")"
expect 2 "--mixer-options: blocks.0..token_mixer: unknown option 'd_stat'" -- "$SF" train --recipe ucr --data $TR \
    --mixer mamba --mixer-options '{"d_stat": 8}' --out "$tmp/x15"
expect 2 "--mixer-options: expected a JSON object" -- "$SF" train --recipe ucr --data $TR --mixer-options '[1]' --out "$tmp/x16"
expect 2 "--mixer-options: malformed JSON at line 1" -- "$SF" train --recipe ucr --data $TR --mixer-options '{"a":' --out "$tmp/x17"
expect 2 "--mixer-options: 'kind' is chosen with --mixer" -- "$SF" train --recipe ucr --data $TR --mixer-options '{"kind": "s4d"}' --out "$tmp/x18"
expect 2 "--mixer-options: the informer model has no token-mixer blocks" -- "$SF" train --model informer \
    --data data/ETTh1.csv --mixer-options '{"n_heads": 2}' --out "$tmp/x19"
# ucr-mamba is the ucr recipe with these flags (the probes' best row was run this way)
"$SF" train --recipe ucr-mamba --data $TR --print-config >"$tmp/um1.cfg" 2>&1 && \
  "$SF" train --recipe ucr --mixer mamba --stride 4 --norm-place pre --mixup 0.4 --data $TR --print-config >"$tmp/um2.cfg" 2>&1 && \
  cmp -s "$tmp/um1.cfg" "$tmp/um2.cfg" && grep -q '"kind": "mamba"' "$tmp/um1.cfg" && ok || bad "ucr-mamba config: $(diff "$tmp/um1.cfg" "$tmp/um2.cfg" | head -5)"
expect 2 "--recipe 'nope': the recipes are: ucr, ucr-mamba" -- "$SF" train --recipe nope --data $TR --out "$tmp/x12"
expect 2 "augment" -- "$SF" train --task classify --data $TR --augment 2 --out "$tmp/x13"
expect 2 "--augment is for --task classify" -- "$SF" train --data data/ETTh1.csv --augment 0.2 --out "$tmp/x20"
expect 2 "--mixup is for --task classify" -- "$SF" train --data data/ETTh1.csv --mixup 0.2 --out "$tmp/x21"
expect 2 "mixup" -- "$SF" train --task classify --data $TR --mixup -1 --out "$tmp/x22"
# --mixup: the same seed gives the same run; the training differs from the run without it
for r in a b; do
  "$SF" train --recipe ucr --data $TR --test $TE --out "$tmp/mix$r" --threads 1 --progress quiet \
      --train-steps 20 --d-model 16 --mixup 0.4 >"$tmp/mix$r.json" 2>"$tmp/mix$r.err" || bad "mixup train: $(cat "$tmp/mix$r.err")"
done
python3 - "$tmp/mixa.json" "$tmp/mixb.json" "$tmp/rec.json" <<'PY' && ok || bad "mixup runs: $(cat "$tmp/mixa.json" "$tmp/rec.json")"
import json, sys
a, b, plain = (json.load(open(p)) for p in sys.argv[1:])
assert a["test"] == b["test"] and a["val"] == b["val"], "same seed, different metrics"
assert a["val"]["log_loss"] != plain["val"]["log_loss"], "mixup changed nothing"
PY
# --ensemble (eval, predict): the mean of the members' probabilities, each member reading the data
# with its own stored protocol ($tmp/run carved a validation split, so its scaler differs)
M1="$tmp/run/model.safetensors" M2="$tmp/mixa/model.safetensors" M3="$tmp/rec/model.safetensors"
for i in 1 2 3; do eval "m=\$M$i"; "$SF" predict --model "$m" --data $TE --out "$tmp/p$i.csv" 2>/dev/null || bad "predict member $i"; done
"$SF" predict --model "$M1" --ensemble "$M2,$M3" --data $TE --out "$tmp/pe.csv" 2>"$tmp/pe.err" || bad "predict --ensemble: $(cat "$tmp/pe.err")"
"$SF" eval --model "$M1" --ensemble "$M2,$M3" --data $TE >"$tmp/ee.json" 2>"$tmp/ee.err" || bad "eval --ensemble: $(cat "$tmp/ee.err")"
python3 - "$tmp" <<'PY' && ok || bad "ensemble: $(head -c 300 "$tmp/ee.json")"
import csv, json, sys
d = sys.argv[1]
rows = [list(csv.DictReader(open(f"{d}/p{i}.csv"))) for i in (1, 2, 3)]
ens = list(csv.DictReader(open(f"{d}/pe.csv")))
cols = [k for k in ens[0] if k.startswith("p_")]
worst, right = 0.0, 0
for i, e in enumerate(ens):
    mean = {c: sum(float(r[i][c]) for r in rows) / 3 for c in cols}
    worst = max(worst, max(abs(float(e[c]) - mean[c]) for c in cols))
    assert e["predicted"] == max(cols, key=lambda c: float(e[c]))[2:]
    right += e["predicted"] == e["label"]
assert worst < 2e-6, worst          # the CSV's 6 significant digits
singles = [sum(r["predicted"] == r["label"] for r in rs) for rs in rows]
assert len(set(singles)) > 1 or any(float(r["p_1"]) != float(rows[0][i]["p_1"]) for i, r in enumerate(rows[1])), "members identical"
j = json.load(open(f"{d}/ee.json"))
assert j["models"] == 3 and abs(j["accuracy"] - right / len(ens)) < 1e-12, (j["accuracy"], right)
assert sum(map(sum, j["confusion_matrix"])) == len(ens)
print("ensemble acc", right / len(ens), "members", [s / len(ens) for s in singles], "worst", worst)
PY
expect 1 "nope.safetensors" -- "$SF" eval --model "$M1" --ensemble "$M2,$tmp/nope.safetensors" --data $TE
expect 1 "other classes than --model" -- "$SF" eval --model "$M1" --ensemble "$tmp/uea/model.safetensors" --data $TE
expect 1 "other classes than --model" -- "$SF" predict --model "$M1" --ensemble "$tmp/uea/model.safetensors" --data $TE --out "$tmp/x23.csv"
test ! -e "$tmp/x23.csv" && ok || bad "a failed predict --ensemble left $tmp/x23.csv"
expect 2 "--batch-size 0 (min(n/10, 16)) is for --task classify" -- "$SF" train --data data/ETTh1.csv --batch-size 0 --out "$tmp/x14"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
