#!/usr/bin/env bash
# End-to-end CLI test of the ParaRNN mixers' Newton statistics (gru_diag, lstm_cifg in a tiny
# PatchTST on the first 1500 rows of the shipped ETTh1 file): train prints each epoch's Newton
# iterations, final residual and fallbacks and writes them to train_log.csv and metrics.json; eval
# prints them on stderr; a cap too small for the tolerance (newton_iters 1, newton_tol 0) warns with
# the residual, falls back to the sequential solve, and trains exactly like solver sequential.
set -uo pipefail
SF=${1:?usage: test_cli_newton.sh path/to/seqformer}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
pass=0; fail=0
. "$(dirname "$0")/cli_expect.sh" # ok, bad, check, expect CODE PATTERN -- command...

head -n 1501 data/ETTh1.csv > "$tmp/etth1_head.csv"
# config MIXER EXTRA-OPTIONS > file
config() {
  cat <<EOF
{"format_version": 2, "task": "forecast", "model": "patchtst", "seq_len": 96, "pred_len": 24,
 "n_channels": 7, "d_model": 8, "revin": true, "dropout": 0,
 "input": {"kind": "patches", "patch_len": 16, "stride": 8},
 "blocks": [{"kind": "metaformer", "placement": "pre", "norm": {"kind": "layernorm"},
   "token_mixer": {"kind": "$1", "heads": 2$2}, "channel_mixer": {"kind": "mlp", "d_ff": 16}}],
 "head": {"kind": "flatten"}}
EOF
}
train() { # NAME CONFIG
  "$SF" train --config "$2" --data "$tmp/etth1_head.csv" --epochs 2 --batch-size 64 --seed 6000 \
    --progress plain --threads 1 --out "$tmp/$1" >"$tmp/$1.out" 2>"$tmp/$1.log"
}
test_mse() { sed -n 's/.*"test":{"mse":\([0-9.]*\).*/\1/p' "$tmp/$1.out"; }

for mixer in gru_diag lstm_cifg; do
  # converging: every epoch reports its solves, nothing falls back
  config $mixer ', "newton_iters": 8, "newton_tol": 1e-4' > "$tmp/$mixer.json"
  train $mixer "$tmp/$mixer.json"; rc=$?
  check "[ $rc -eq 0 ]" "$mixer: train exit code ($(tail -1 "$tmp/$mixer.log"))"
  check "grep -q '^epoch 2 newton: iters [0-9.]* mean / [0-9]* max, residual <= [0-9.e-]*, fallbacks 0 of [0-9]* solves$' '$tmp/$mixer.log'" \
    "$mixer: epoch line with Newton iterations and residual ($(grep newton "$tmp/$mixer.log" | head -1))"
  check "! grep -q warning '$tmp/$mixer.log'" "$mixer: no warning when Newton converges"
  check "head -1 '$tmp/$mixer/train_log.csv' | grep -q ',newton_iters_mean,newton_iters_max,newton_residual,newton_fallbacks$'" \
    "$mixer: train_log.csv has the Newton columns"
  check "[ \$(awk -F, 'NR > 1 && \$11 == 0 && \$9 >= 1 && \$10 <= 1e-4' '$tmp/$mixer/train_log.csv' | wc -l) -eq 2 ]" \
    "$mixer: train_log.csv rows: iterations >= 1, residual <= tol, no fallback"
  check "grep -q '\"newton\"' '$tmp/$mixer/metrics.json' && grep -q '\"fallbacks\":[[:space:]]*0' '$tmp/$mixer/metrics.json'" \
    "$mixer: metrics.json has the final evaluation's Newton statistics"
  "$SF" eval --model "$tmp/$mixer/model.safetensors" --data "$tmp/etth1_head.csv" >"$tmp/eval.json" 2>"$tmp/eval.err"; rc=$?
  check "[ $rc -eq 0 ] && grep -q '^newton: iters .* fallbacks 0 of [0-9]* solves$' '$tmp/eval.err'" \
    "$mixer: eval reports the Newton statistics ($(cat "$tmp/eval.err"))"
  check "[ '$(test_mse $mixer)' = \"\$(sed -n 's/.*\"mse\":\\([0-9.]*\\).*/\\1/p' '$tmp/eval.json')\" ]" "$mixer: eval mse = train's test mse"

  # a cap too small for the tolerance: warning with the residual, sequential fallback, and the
  # same training as the sequential solver (same forward states; the backward differs only by
  # float rounding between the parallel and the sequential adjoint solve)
  config $mixer ', "newton_iters": 1, "newton_tol": 0' > "$tmp/${mixer}_cap.json"
  train ${mixer}_cap "$tmp/${mixer}_cap.json"; rc=$?
  check "[ $rc -eq 0 ]" "$mixer cap: train exit code"
  check "grep -q '^warning: pararnn: Newton residual [0-9.e-]* after 1 iterations is above newton_tol 0; falling back to the sequential solve' '$tmp/${mixer}_cap.log'" \
    "$mixer cap: the kernel's warning with the residual reaches stderr"
  check "grep -q '^warning: epoch 1 newton: iters 1.00 mean / 1 max, residual <= [0-9.e-]*, fallbacks \\([0-9]*\\) of \\1 solves (residual above newton_tol' '$tmp/${mixer}_cap.log'" \
    "$mixer cap: every solve of the epoch is reported as fallen back ($(grep 'epoch 1 newton' "$tmp/${mixer}_cap.log"))"
  check "[ \$(awk -F, 'NR > 1 && \$11 > 0' '$tmp/${mixer}_cap/train_log.csv' | wc -l) -eq 2 ]" "$mixer cap: train_log.csv counts the fallbacks"
  "$SF" eval --model "$tmp/${mixer}_cap/model.safetensors" --data "$tmp/etth1_head.csv" >/dev/null 2>"$tmp/eval.err"
  check "grep -q '^warning: newton: iters 1.00 mean / 1 max, .* fallbacks [1-9][0-9]* of ' '$tmp/eval.err'" "$mixer cap: eval warns ($(tail -1 "$tmp/eval.err"))"
  config $mixer ', "solver": "sequential"' > "$tmp/${mixer}_seq.json"
  train ${mixer}_seq "$tmp/${mixer}_seq.json"
  check "! grep -q newton '$tmp/${mixer}_seq.log' && [ \$(head -1 '$tmp/${mixer}_seq/train_log.csv' | tr , '\\n' | wc -l) -eq 7 ]" \
    "$mixer sequential: no Newton report, plain train_log.csv"
  a=$(test_mse ${mixer}_cap); b=$(test_mse ${mixer}_seq)
  check "awk 'BEGIN { d = $a - $b; if (d < 0) d = -d; exit !(d <= 1e-5 * $b) }'" \
    "$mixer cap: the fallback's test mse ($a) equals the sequential solver's ($b) within 1e-5 relative"
done

echo "test_cli_newton: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
