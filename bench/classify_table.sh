#!/usr/bin/env bash
# The run loop and the table shared by bench/ucr_table.sh and bench/uea_table.sh (sourced by them,
# not run on its own). The caller sets:
#   DATA   the archive folder (<set>/<set>_TRAIN.<EXT>, <set>/<set>_TEST.<EXT>)
#   EXT    tsv (UCR) or ts (UEA)
#   RUNS   where the runs go (<set>_s<seed>)
#   LOG    the JSON-lines log (one line per finished run; a run already there is not repeated)
#   REF    lines "name 1-NN-ED ResNet FCN" ("-": no reference), the sets in training order
# and passes its arguments on: [seeds] [extra train flags...]; TABLE_ONLY=1 prints the table only.
set -euo pipefail
seeds=${1:-"2021 2022 2023"}; shift $(( $# < 1 ? $# : 1 ))
SF=${SF:-build/seqformer}
mkdir -p "$RUNS" "$(dirname "$LOG")"
touch "$LOG"
flags="$*"
# the flags as a JSON string's contents (--mixer-options passes JSON, with quotes)
flags_json=$(printf '%s' "$flags" | sed 's/\\/\\\\/g; s/"/\\"/g')
if [ -z "${TABLE_ONLY:-}" ]; then
  while read -r name _; do
    # SETS: train only these (parallel loops over disjoint sets or seeds can share one LOG)
    [ -n "${SETS:-}" ] && [[ " $SETS " != *" $name "* ]] && continue
    for s in $seeds; do
      key="\"set\":\"$name\",\"seed\":$s,\"flags\":\"$flags_json\""
      grep -qF "$key" "$LOG" && continue
      out=$RUNS/${name}_s$s
      t0=$(date +%s)
      if OMP_WAIT_POLICY=passive "$SF" train --task classify --data "$DATA/$name/${name}_TRAIN.$EXT" \
          --test "$DATA/$name/${name}_TEST.$EXT" --seed "$s" --threads 1 --progress quiet \
          --out "$out" "$@" >"$out.json" 2>"$out.log"; then
        echo "{$key,\"wall_s\":$(( $(date +%s) - t0 )),\"result\":$(cat "$out.json")}" >>"$LOG"
        echo "$name seed $s: $(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['test']['accuracy'])" "$out.json")"
      else
        echo "$name seed $s FAILED (see $out.log)"
      fi
    done
  done <<<"$REF"
fi
# BASE_LOG (optional): a second log whose runs with BASE_FLAGS (default: none, i.e. the defaults)
# and the same seeds add a column "base (mean)" beside the table's runs (e.g. a recipe vs the defaults)
python3 - "$LOG" "$seeds" "$flags" "$REF" "${BASE_LOG:-}" "${BASE_FLAGS:-}" <<'PY'
import json, sys
log, seeds, flags, ref = sys.argv[1], [int(s) for s in sys.argv[2].split()], sys.argv[3], sys.argv[4]
base_log, base_flags = sys.argv[5], sys.argv[6]
def load(path, want):
    runs = {}
    for line in open(path):
        r = json.loads(line)
        if r["flags"] == want and r["seed"] in seeds and \
                all(q["seed"] != r["seed"] for q in runs.get(r["set"], [])):  # one run per (set, seed)
            runs.setdefault(r["set"], []).append(r)
    return runs
runs = load(log, flags)
base = load(base_log, base_flags) if base_log else None
def base_cell(name):
    b = [r["result"]["test"]["accuracy"] for r in base.get(name, [])]
    return f" {sum(b) / len(b):.4f} ({len(b)}) |" if b else " - |"
print(f"flags: --task classify (defaults) {flags}".rstrip())
if base is not None:
    print(f"base: {base_log}, flags: (defaults) {base_flags}".rstrip())
    print("| dataset | t2 test acc (mean) | seeds | per seed | base (mean, seeds) | 1-NN ED | ResNet | FCN |")
    print("|---|---|---|---|---|---|---|---|")
else:
    print("| dataset | t2 test acc (mean) | seeds | per seed | 1-NN ED | ResNet | FCN |")
    print("|---|---|---|---|---|---|---|")
acc_all, refs_all, missing, base_means = [], [], [], []
for line in ref.strip().splitlines():
    name, *refs = line.split()
    rs = runs.get(name, [])
    if not rs:
        missing.append(name)
        print(f"| {name} | not run | 0 | |{base_cell(name) if base is not None else ''} {' | '.join(refs)} |")
        continue
    accs = [r["result"]["test"]["accuracy"] for r in rs]
    m = sum(accs) / len(accs)
    acc_all.append(m)
    refs_all.append(refs)
    print(f"| {name} | {m:.4f} | {len(accs)} | {' '.join(f'{a:.3f}' for a in accs)} |"
          f"{base_cell(name) if base is not None else ''} {' | '.join(refs)} |")
    if base is not None:
        b = [r["result"]["test"]["accuracy"] for r in base.get(name, [])]
        base_means.append(sum(b) / len(b) if b else None)
if acc_all:
    mean = lambda v: sum(v) / len(v)
    # a reference column's mean only where every set run has that reference
    cols = [f"{mean([float(r[c]) for r in refs_all]):.4f}" if all(r[c] != "-" for r in refs_all) else ""
            for c in range(3)]
    bcol = ""
    if base is not None:
        bcol = f" {mean(base_means):.4f} |" if all(b is not None for b in base_means) else " |"
    print(f"| **mean over the {len(acc_all)} sets run** | **{mean(acc_all):.4f}** | | |{bcol} {' | '.join(cols)} |")
if missing:
    print("not run: " + ", ".join(missing))
PY
