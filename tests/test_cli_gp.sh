#!/usr/bin/env bash
# seqformer gp: bad input never crashes (exit code, one short message naming the file, line,
# object or flag, no partial output), and a small run writes the .ts, the fold files and the
# plot.
set -uo pipefail
SF=${1:?usage: test_cli_gp.sh path/to/seqformer}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
pass=0; fail=0
. "$(dirname "$0")/cli_expect.sh" # ok, bad, check, expect CODE PATTERN -- command...
ok() { if "$@"; then pass=$((pass+1)); else fail=$((fail+1)); echo "FAIL: $*"; fi; }

# A small data set: 12 objects (8 "ab", 4 "c"), 5 bands, 20 observations each.
awk 'BEGIN{srand(3); print "object_id,time,band,mag,magerr";
  split("u g r i z", b, " ");
  for (o = 1; o <= 12; o++) for (k = 0; k < 20; k++) {
    t = 50000 + k * 0.7 + o; m = 17 + 0.3 * sin(t * 2.1 + o) + 0.1 * (k % 5);
    printf "%d,%.5f,%s,%.3f,%.3f\n", 100 + o, t, b[k % 5 + 1], m, 0.02 }}' > "$tmp/obs.csv"
{ echo "Num,Type,Per"; for o in $(seq 1 12); do [ "$o" -le 8 ] && c=ab || c=c; echo "$((100+o)),$c,0.5"; done; } > "$tmp/lab.csv"
gzip -c "$tmp/obs.csv" > "$tmp/obs.csv.gz"

D=(--data "$tmp/obs.csv" --labels "$tmp/lab.csv")
# flags
expect 2 "--data is required" -- "$SF" gp --out "$tmp/x.ts"
expect 2 "nothing to do" -- "$SF" gp --data "$tmp/obs.csv"
expect 2 "--labels is required" -- "$SF" gp --data "$tmp/obs.csv" --out "$tmp/x.ts"
expect 2 "--folds needs --out-dir" -- "$SF" gp "${D[@]}" --folds 3
expect 2 "only used with --folds" -- "$SF" gp "${D[@]}" --out "$tmp/x.ts" --out-dir "$tmp/f"
expect 2 "go together" -- "$SF" gp --data "$tmp/obs.csv" --plot 101
expect 2 "'--steps': 1 is out of range" -- "$SF" gp "${D[@]}" --out "$tmp/x.ts" --steps 1
expect 2 "'--folds': 1 is out of range" -- "$SF" gp "${D[@]}" --folds 1 --out-dir "$tmp/f"
expect 2 "unknown flag '--period'" -- "$SF" gp "${D[@]}" --out "$tmp/x.ts" --period 1
# data
{ head -3 "$tmp/obs.csv"; echo "101,50001.5,y,17.0,0.02"; } > "$tmp/band.csv"
expect 1 "band.csv:4: unknown band 'y'" -- "$SF" gp --data "$tmp/band.csv" --labels "$tmp/lab.csv" --out "$tmp/x.ts"
{ head -3 "$tmp/obs.csv"; echo "101,50001.5,g,nan,0.02"; } > "$tmp/nan.csv"
expect 1 "nan.csv:4: column 'mag': nan is not a finite value" -- "$SF" gp --data "$tmp/nan.csv" --labels "$tmp/lab.csv" --out "$tmp/x.ts"
{ head -3 "$tmp/obs.csv"; echo "101,50001.5,g,17.0"; } > "$tmp/ragged.csv"
expect 1 "ragged.csv:4: 4 fields, the header has 5" -- "$SF" gp --data "$tmp/ragged.csv" --labels "$tmp/lab.csv" --out "$tmp/x.ts"
{ cat "$tmp/obs.csv"; echo "999,50001.5,g,17.0,0.02"; } > "$tmp/single.csv"
expect 1 "object '999' has 1 usable observation" -- "$SF" gp --data "$tmp/single.csv" --labels "$tmp/lab.csv" --out "$tmp/x.ts"
# --drop-short drops it (and says so), then the missing label does not matter
"$SF" gp --data "$tmp/single.csv" --labels "$tmp/lab.csv" --out "$tmp/drop.ts" --drop-short --threads 1 >/dev/null 2>"$tmp/err"
ok test -s "$tmp/drop.ts"
ok grep -q "1 object with < 2 observations" "$tmp/err"
head -5 "$tmp/lab.csv" > "$tmp/lab_short.csv"
expect 1 "object '105' has no label in" -- "$SF" gp --data "$tmp/obs.csv" --labels "$tmp/lab_short.csv" --out "$tmp/x.ts"
{ cat "$tmp/lab.csv"; echo "555,c,0.3"; } > "$tmp/lab_extra.csv"
expect 1 "lab_extra.csv:14: object '555' has no observations in" -- "$SF" gp --data "$tmp/obs.csv" --labels "$tmp/lab_extra.csv" --out "$tmp/x.ts"
expect 1 "cannot open" -- "$SF" gp --data "$tmp/none.csv" --labels "$tmp/lab.csv" --out "$tmp/x.ts"
expect 1 "folds: class 1 has 4 members, fewer than the 5 folds" -- "$SF" gp "${D[@]}" --folds 5 --out-dir "$tmp/f5"
expect 1 "--plot: object '4242' is not in the data" -- "$SF" gp --data "$tmp/obs.csv" --plot 4242 --svg "$tmp/p.svg"
expect 1 "bands: 'u' is not name:wavelength" -- "$SF" gp "${D[@]}" --out "$tmp/x.ts" --bands u,g
ok test ! -e "$tmp/x.ts"
ok test ! -e "$tmp/p.svg"
ok test -z "$(ls "$tmp" | grep '\.tmp\.')"

# a good run: .ts + 4 folds + plot, gzip input
"$SF" gp --data "$tmp/obs.csv.gz" --labels "$tmp/lab.csv" --out "$tmp/all.ts" --steps 16 \
  --folds 4 --seed 7 --out-dir "$tmp/folds" --plot 103 --svg "$tmp/p.svg" --threads 2 >"$tmp/out" 2>"$tmp/err"
ok test $? -eq 0
ok grep -q '"objects": 12' "$tmp/out"
ok grep -q '^@seriesLength 16$' "$tmp/all.ts"
ok grep -q '^@dimensions 5$' "$tmp/all.ts"
ok grep -q '^@classLabel true ab c$' "$tmp/all.ts"
ok test "$(grep -c ':ab$' "$tmp/all.ts")" -eq 8
ok test "$(grep -c ':c$' "$tmp/all.ts")" -eq 4
# every data line: 5 dimensions of 16 values, then the label
ok test "$(sed -n '/^@data/,$p' "$tmp/all.ts" | tail -n +2 | awk -F: '{ok = NF == 6; for (i = 1; i <= 5; i++) ok = ok && split($i, a, ",") == 16; n += ok} END{print n}')" -eq 12
for f in 0 1 2 3; do
  ok test "$(( $(sed -n '/^@data/,$p' "$tmp/folds/fold${f}_TEST.ts" | wc -l) - 1 ))" -eq 3
  ok test "$(( $(sed -n '/^@data/,$p' "$tmp/folds/fold${f}_TRAIN.ts" | wc -l) - 1 ))" -eq 9
done
ok test "$(tail -n +2 "$tmp/folds/folds.csv" | wc -l)" -eq 12
ok grep -q '<svg' "$tmp/p.svg"
ok grep -q 'object 103 (ab)' "$tmp/p.svg"
# the same seed gives the same folds; the grid does not depend on the thread count
"$SF" gp "${D[@]}" --out "$tmp/all1.ts" --steps 16 --folds 4 --seed 7 --out-dir "$tmp/folds2" --threads 1 >/dev/null 2>&1
ok cmp -s "$tmp/folds/folds.csv" "$tmp/folds2/folds.csv"
ok cmp -s <(grep -v '^#' "$tmp/all.ts") <(grep -v '^#' "$tmp/all1.ts")

# --raw: unequal-length observations (4 dimensions), the same folds; one observation is fine
"$SF" gp --data "$tmp/single.csv" --labels "$tmp/lab_extra.csv" --raw --out "$tmp/raw.ts" >/dev/null 2>"$tmp/err"
ok test $? -ne 0  # 555 is labelled but has no observations
{ cat "$tmp/lab.csv"; echo "999,c,0.3"; } > "$tmp/lab999.csv"
"$SF" gp --data "$tmp/single.csv" --labels "$tmp/lab999.csv" --raw --out "$tmp/raw.ts" --folds 4 --seed 7 --out-dir "$tmp/rawf" >"$tmp/out" 2>"$tmp/err"
ok test $? -eq 0
ok grep -q '^@equalLength false$' "$tmp/raw.ts"
ok grep -q '"max_length": 20' "$tmp/out"
ok test "$(sed -n '/^@data/,$p' "$tmp/raw.ts" | tail -n +2 | awk -F: '{split($1, a, ","); print NF, length(a)}' | sort | uniq -c | tr -s ' ' | sed 's/^ //' | tr '\n' ';')" = "1 5 1;12 5 20;"
ok test -s "$tmp/rawf/fold3_TEST.ts"

echo "test_cli_gp: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
