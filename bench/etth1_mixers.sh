#!/usr/bin/env bash
# PatchTST on ETTh1 H=96 (configs/patchtst_etth1.json: look-back 336, all test windows) with each
# token mixer in place of softmax, at the same seeds; prints one JSON line per run and a markdown
# table of mean test MSE/MAE per mixer (relative to the first mixer listed). A mixer spec is
# kind[:json-options], e.g.
#   bash bench/etth1_mixers.sh "2021 2022 2023" softmax linear 'linear:{"feature_map":"relu"}'
# A run whose OUT/NAME-SEED/metrics.json exists is reused, not trained again, so the table can be
# built in parts (or by two invocations at THREADS=1 side by side on different mixers, then one
# with all of them to print the table; REPORT_ONLY=1 trains nothing).
# Usage: bash bench/etth1_mixers.sh [seeds] [mixer ...]   (default: seed 2021, softmax linear)
#   THREADS=2  OUT=runs/etth1_mixers  SF=build/seqformer
set -euo pipefail
cd "$(dirname "$0")/.."
seeds=${1:-2021}
shift || true
mixers=("$@")
[ ${#mixers[@]} -gt 0 ] || mixers=(softmax linear)
threads=${THREADS:-2}
out=${OUT:-runs/etth1_mixers}
SF=${SF:-build/seqformer}
[ -x "$SF" ] || bash scripts/build.sh >/dev/null
mkdir -p "$out"
results=$(mktemp)
trap 'rm -f "$results"' EXIT
for spec in "${mixers[@]}"; do
  kind=${spec%%:*}
  opts=""
  [ "$kind" = "$spec" ] || opts=${spec#*:}
  name=$(echo "$spec" | tr -c 'A-Za-z0-9_\n' '_')
  cfg="$out/$name.json"
  /usr/bin/python3 - "$kind" "$opts" "$cfg" <<'PY'
import json, sys
kind, opts, path = sys.argv[1], sys.argv[2], sys.argv[3]
c = json.load(open("configs/patchtst_etth1.json"))
tm = {"kind": kind, "n_heads": c["blocks"][0]["token_mixer"]["n_heads"], "causal": False}
tm.update(json.loads(opts) if opts else {})
c["blocks"][0]["token_mixer"] = tm
json.dump(c, open(path, "w"), indent=2)
PY
  for seed in $seeds; do
    run="$out/$name-$seed"
    if [ ! -f "$run/metrics.json" ]; then
      if [ "${REPORT_ONLY:-0}" = 1 ]; then
        echo "$spec seed $seed: not run yet" >&2
        continue
      fi
      "$SF" train --config "$cfg" --data data/ETTh1.csv --seed "$seed" --threads "$threads" \
        --progress quiet --out "$run" > /dev/null
    fi
    r=$(cat "$run/metrics.json")
    line="{\"mixer\":$(/usr/bin/python3 -c 'import json,sys; print(json.dumps(sys.argv[1]))' "$spec"),\"seed\":$seed,\"result\":$(echo "$r" | tr -d '\n\t')}"
    echo "$line"
    echo "$line" >> "$results"
  done
done
/usr/bin/python3 - "$results" <<'PY'
import json, sys, statistics as st
rows = [json.loads(l) for l in open(sys.argv[1])]
by = {}
for r in rows:
    by.setdefault(r["mixer"], []).append(r["result"])
print("\n| token mixer | seeds | test MSE (mean) | test MAE (mean) | MSE per seed | best / last epoch per seed |")
print("|---|---|---|---|---|---|")
base = None
for m, rs in by.items():
    mse = st.mean(r["test"]["mse"] for r in rs); mae = st.mean(r["test"]["mae"] for r in rs)
    base = base if base is not None else mse
    print(f"| {m} | {len(rs)} | {mse:.4f} ({100*(mse/base-1):+.1f}%) | {mae:.4f} | "
          + ", ".join(f"{r['test']['mse']:.4f}" for r in rs) + " | "
          + ", ".join(f"{r.get('best_epoch', '?')} / {r.get('epochs_run', '?')}" for r in rs) + " |")
PY
