#!/usr/bin/env bash
# Language modelling from the command line on a small synthetic text: train --model lm prints
# loss/bpc/perplexity, eval agrees, generate is reproducible with a fixed seed, streams through a
# saved state (--state-out / --state-in continue exactly), stops cleanly on Ctrl-C (exit 130,
# partial output kept), and refuses bad input with clear errors and non-zero exits.
set -uo pipefail
SF=${1:?usage: test_cli_lm.sh path/to/seqformer}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
pass=0; fail=0
. "$(dirname "$0")/cli_expect.sh" # ok, bad, check, expect CODE PATTERN -- command...

# ~24 KB of text over a small alphabet (lower case, space, newline, ".,")
awk 'BEGIN { srand(5400); w[0]="the"; w[1]="cat"; w[2]="sat"; w[3]="on"; w[4]="a"; w[5]="mat";
             w[6]="and"; w[7]="dog"; w[8]="ran"; w[9]="far";
             for (l = 0; l < 1000; l++) { s = ""; for (k = 0; k < 5; k++) s = s w[int(rand()*10)] " ";
                                          print s (l % 3 ? "." : ","); } }' >"$tmp/text.txt"
small=(--model lm --data "$tmp/text.txt" --seq-len 32 --d-model 16 --n-heads 2 --e-layers 1
       --d-ff 32 --batch-size 16 --epochs 1 --progress plain --threads 1 --seed 5401)

"$SF" train "${small[@]}" --out "$tmp/a" >"$tmp/a.json" 2>"$tmp/a.log"
check '[ $? -eq 0 ]' "train --model lm exit code ($(tail -2 "$tmp/a.log"))"
check "grep -q '\"bpc\"' '$tmp/a.json' && grep -q '\"perplexity\"' '$tmp/a.json'" "train prints bpc and perplexity"
check "grep -q 'val_bpc' '$tmp/a.log'" "progress shows val_bpc"
check "grep -q 'char vocabulary of 17' '$tmp/a.log'" "char vocabulary of the text (13 letters + space, newline, '.', ',')"
"$SF" eval --model "$tmp/a/model.safetensors" --data "$tmp/text.txt" >"$tmp/eval.json"
check '[ $? -eq 0 ]' "eval exit code"
l1=$(sed -n 's/.*"test":{"loss":\([0-9.]*\).*/\1/p' "$tmp/a.json")
l2=$(sed -n 's/.*"loss":\([0-9.]*\).*/\1/p' "$tmp/eval.json")
check "[ -n '$l1' ] && [ '$l1' = '$l2' ]" "eval loss ($l2) equals train's test loss ($l1)"
check "grep -q '\"bpc\"' '$tmp/eval.json' && grep -q '\"perplexity\"' '$tmp/eval.json'" "eval JSON has bpc and perplexity"

# --test: a separate test text (same vocabulary); --tokenizer byte: all 256 bytes
head -c 4000 "$tmp/text.txt" >"$tmp/test.txt"
"$SF" train "${small[@]}" --test "$tmp/test.txt" --tokenizer byte --out "$tmp/t" >"$tmp/t.json" 2>"$tmp/t.log"
check '[ $? -eq 0 ]' "train --test --tokenizer byte"
check "grep -q 'byte vocabulary of 256' '$tmp/t.log'" "byte tokenizer: vocabulary of 256"
v=$(sed -n 's/.*"val":{"loss":\([0-9.]*\).*/\1/p' "$tmp/t.json"); t=$(sed -n 's/.*"test":{"loss":\([0-9.]*\).*/\1/p' "$tmp/t.json")
check "[ -n '$t' ] && [ '$v' != '$t' ]" "--test scores the other text (val $v, test $t)"
printf 'the cat sat on a mat. ZEBRA\n%.0s' $(seq 40) >"$tmp/oov.txt"
"$SF" train "${small[@]}" --test "$tmp/oov.txt" --out "$tmp/t2" >/dev/null 2>"$tmp/e"
check "[ \$? -eq 1 ] && grep -q 'not in the model.s vocabulary' '$tmp/e'" "--test with bytes outside the char vocabulary refused"

# resume replays the per-epoch random windows: stop after 1 of 2 epochs + --resume == 2 epochs
"$SF" train "${small[@]}" --epochs 2 --out "$tmp/r2" >/dev/null 2>&1
"$SF" train "${small[@]}" --epochs 2 --stop-after 1 --out "$tmp/r1" >/dev/null 2>&1
"$SF" train "${small[@]}" --epochs 2 --resume --out "$tmp/r1" >/dev/null 2>&1
check "cmp -s '$tmp/r1/model.safetensors' '$tmp/r2/model.safetensors'" "--resume gives the uninterrupted run's weights"

M="$tmp/a/model.safetensors"
"$SF" generate --model "$M" --prompt "the cat " --tokens 40 --seed 7 >"$tmp/g1.txt"
check '[ $? -eq 0 ]' "generate exit code"
"$SF" generate --model "$M" --prompt "the cat " --tokens 40 --seed 7 >"$tmp/g2.txt"
check "cmp -s '$tmp/g1.txt' '$tmp/g2.txt'" "a fixed --seed gives the same text"
check "[ \$(wc -c < '$tmp/g1.txt') -eq 40 ]" "40 tokens = 40 bytes written"
"$SF" generate --model "$M" --prompt "the cat " --tokens 40 --seed 8 --top-k 5 --top-p 0.9 --temperature 0.8 >"$tmp/g3.txt"
check '[ $? -eq 0 ]' "top-k / top-p / temperature sampling"

# greedy through a saved state: 10 tokens + state, then the 11th as prompt, continues the 20
"$SF" generate --model "$M" --prompt "a dog " --tokens 20 --temperature 0 >"$tmp/full.txt"
"$SF" generate --model "$M" --prompt "a dog " --tokens 10 --temperature 0 --state-out "$tmp/s.state" >"$tmp/p1.txt"
check '[ $? -eq 0 ] && [ -s "$tmp/s.state" ]' "--state-out writes the state"
next=$(head -c 11 "$tmp/full.txt" | tail -c 1)
"$SF" generate --model "$M" --state-in "$tmp/s.state" --prompt "$next" --tokens 9 --temperature 0 >"$tmp/p2.txt"
check '[ $? -eq 0 ]' "--state-in exit code"
check "[ \"\$(head -c 10 '$tmp/full.txt')\" = \"\$(cat '$tmp/p1.txt')\" ]" "first 10 greedy tokens agree"
check "[ \"\$(tail -c 9 '$tmp/full.txt')\" = \"\$(cat '$tmp/p2.txt')\" ]" "a loaded state continues the greedy text exactly"

# Ctrl-C: stops after the current token, keeps what was written, exit 130
timeout -s INT --preserve-status 2 "$SF" generate --model "$M" --prompt "the " --tokens 100000000 >"$tmp/int.txt" 2>"$tmp/int.err"
rc=$?
check "[ $rc -eq 130 ]" "SIGINT exit code 130 (got $rc)"
check "[ -s '$tmp/int.txt' ] && grep -q 'interrupted after' '$tmp/int.err'" "partial output kept and reported"

# bad input: clear errors, non-zero exits
expect 2 "top-k 0" -- "$SF" generate --model "$M" --prompt "a" --top-k 0
expect 2 "temperature -1" -- "$SF" generate --model "$M" --prompt "a" --temperature -1
expect 2 "top-p 0" -- "$SF" generate --model "$M" --prompt "a" --top-p 0
expect 2 "top-p 1.5" -- "$SF" generate --model "$M" --prompt "a" --top-p 1.5
expect 1 "byte 2 (0x51 'Q') is not in the model's vocabulary" -- "$SF" generate --model "$M" --prompt "a Q"
expect 2 "prompt" -- "$SF" generate --model "$M" --prompt ""
expect 1 "not a seqformer stream state" -- "$SF" generate --model "$M" --prompt "a" --state-in "$tmp/text.txt"
"$SF" train "${small[@]}" --d-model 8 --out "$tmp/b" >/dev/null 2>&1
expect 1 "width 16; this model has width 8" -- "$SF" generate --model "$tmp/b/model.safetensors" --prompt "a" --state-in "$tmp/s.state"
"$SF" train --data data/ETTh1.csv --model dlinear --seq-len 48 --pred-len 12 --epochs 1 --progress quiet --threads 1 --out "$tmp/fc" >/dev/null 2>&1
expect 1 "cannot stream" -- "$SF" generate --model "$tmp/fc/model.safetensors" --prompt "a"
: >"$tmp/empty.txt"
expect 1 "empty" -- "$SF" train "${small[@]}" --data "$tmp/empty.txt" --out "$tmp/c"
head -c 3000 /dev/urandom >"$tmp/bin.txt"; printf '\0' >>"$tmp/bin.txt"
expect 1 "binary" -- "$SF" train "${small[@]}" --data "$tmp/bin.txt" --out "$tmp/c"
head -c 40 "$tmp/text.txt" >"$tmp/short.txt"
expect 1 "seq_len + 1" -- "$SF" train "${small[@]}" --data "$tmp/short.txt" --out "$tmp/c"
expect 2 "--task lm, but the model config.s task is forecast" -- "$SF" train --data data/ETTh1.csv --task lm --out "$tmp/c"
expect 2 "blocks\[0\].token_mixer: causal" -- "$SF" train "${small[@]}" --mixer fastformer --out "$tmp/c"
expect 1 "language model" -- "$SF" predict --model "$M" --data "$tmp/text.txt"

# --epoch-windows (the validation interval) and --time-budget (process CPU seconds, checked at
# epoch ends; the best weights kept; each epoch's CPU and wall time in cpu_log.csv)
"$SF" train "${small[@]}" --epochs 50 --patience 50 --epoch-windows 32 --time-budget 0.000001 \
    --out "$tmp/tb" >"$tmp/tb.json" 2>"$tmp/tb.log"
check '[ $? -eq 0 ]' "train --time-budget exit code ($(tail -2 "$tmp/tb.log"))"
check "grep -q '32 windows of 32 per epoch' '$tmp/tb.log'" "--epoch-windows 32 sets the windows per epoch"
check "[ \$(wc -l < '$tmp/tb/cpu_log.csv') -eq 2 ] && grep -q '^1,2,' '$tmp/tb/cpu_log.csv'" \
    "the budget stops after the first epoch (2 steps of 16), logged in cpu_log.csv"
check "grep -q '\"time_budget_reached\":.*true' '$tmp/tb/metrics.json' && grep -q '\"steps\":.*2,' '$tmp/tb/metrics.json'" \
    "metrics.json says the budget stopped the run after 2 steps"
check "[ -f '$tmp/tb/model.safetensors' ]" "a budget-stopped run saves its model"
# a --resume'd budget run counts the CPU seconds of the epochs before it: 3 epochs, then one more
"$SF" train "${small[@]}" --epochs 3 --patience 50 --epoch-windows 32 --time-budget 1e9 --out "$tmp/tr" \
    >/dev/null 2>"$tmp/tr.log"
"$SF" train "${small[@]}" --epochs 4 --patience 50 --epoch-windows 32 --time-budget 1e9 --resume \
    --out "$tmp/tr" >/dev/null 2>>"$tmp/tr.log"
check "awk -F, 'NR == 4 { c3 = \$3 } NR == 5 { c4 = \$3 } END { exit !(NR == 5 && c4 > c3) }' '$tmp/tr/cpu_log.csv'" \
    "after --resume the cpu_log continues from the CPU seconds already used ($(tail -n 2 "$tmp/tr/cpu_log.csv" | tr '\n' ' '))"
check "awk -F, 'NR == 4 { w3 = \$7 } NR == 5 { w4 = \$7 } END { exit !(NR == 5 && w4 > w3 && w3 > 0) }' '$tmp/tr/cpu_log.csv'" \
    "after --resume the wall_seconds column continues too"
# --budget-clock wall: the same budget counts wall seconds (the CPU column is logged beside it)
"$SF" train "${small[@]}" --epochs 50 --patience 50 --epoch-windows 32 --time-budget 0.000001 \
    --budget-clock wall --out "$tmp/tw" >/dev/null 2>"$tmp/tw.log"
check "[ \$(wc -l < '$tmp/tw/cpu_log.csv') -eq 2 ] && grep -q 'wall seconds used' '$tmp/tw.log'" \
    "--budget-clock wall stops after the first epoch on the wall clock ($(tail -1 "$tmp/tw.log"))"
expect 2 "budget-clock" -- "$SF" train "${small[@]}" --time-budget 5 --budget-clock gpu --out "$tmp/c"
expect 2 "--epoch-windows is for --task lm" -- "$SF" train --data data/ETTh1.csv --model dlinear --epoch-windows 4 --out "$tmp/c"
expect 2 "time-budget" -- "$SF" train "${small[@]}" --time-budget -1 --out "$tmp/c"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
