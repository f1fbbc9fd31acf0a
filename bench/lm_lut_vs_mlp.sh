#!/bin/sh
# MemoryFormer's lookup-table FFN against the MLP it replaces, inside the tiny-shakespeare lm
# (issue #15): the same lm (d_model 120 -- the width nearest the budget runs' 128 that tau 8 and
# tau 10 both divide --, 4 pre-norm blocks of causal softmax with 4 heads, context 128) with four
# channel mixers, as bench_lut defines them at d 120:
#   lut ffn   MemoryLayer(tau 8) -> LayerNorm -> MemoryLayer(tau 10), --optimizer lazy_adamw
#   mlp 4d    d_ff 480 (what it replaces)
#   mlp =params  d_ff 10040 (as many parameters as lut ffn)
#   mlp =flops   d_ff 21 (as many forward FLOPs as lut ffn)
# each trained BUDGET_S seconds of process CPU time at one thread (all four at once, niced), or with
# CLOCK=wall BUDGET_S seconds of wall time at THREADS=2 threads, one after the other, not niced (the
# issue's "equal wall time": run it on an idle machine),
# AdamW (lazy for the tables; the MLPs have none) at constant lr 1e-3, clip 1, batch 32,
# validation every EPOCH_WINDOWS=640 windows (20 steps). Prints, per model, the validation loss at
# every step count all four reached and the best validation loss by the CPU (or wall) time all four
# reached.
# usage: bench/lm_lut_vs_mlp.sh BUDGET_S [OUT_DIR]   (REPORT_ONLY=1: only the table)
set -eu
BUDGET=${1:?usage: bench/lm_lut_vs_mlp.sh BUDGET_S [OUT_DIR]}
OUT=${2:-runs/lm_lut_$BUDGET}
SF=${SF:-./build/seqformer}
PY=${PY:-/usr/bin/python3}
DATA=${DATA:-../shared/data/text/tinyshakespeare.txt}
EW=${EPOCH_WINDOWS:-640}
CLOCK=${CLOCK:-cpu}
if [ "$CLOCK" = wall ]; then
    THREADS=${THREADS:-2}
else
    THREADS=1
    export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 OMP_WAIT_POLICY=passive
fi
RUNS="lut_ffn mlp_4d mlp_params mlp_flops"

channel_mixer() {
    case $1 in
        lut_ffn) echo '{"kind": "lut", "tau": 8, "ffn": true}' ;;
        mlp_4d) echo '{"kind": "mlp", "d_ff": 480}' ;;
        mlp_params) echo '{"kind": "mlp", "d_ff": 10040}' ;;
        mlp_flops) echo '{"kind": "mlp", "d_ff": 21}' ;;
    esac
}

mkdir -p "$OUT"
if [ "${REPORT_ONLY:-0}" != 1 ]; then
    "$SF" train --model lm --data "$DATA" --seq-len 128 --d-model 120 --e-layers 4 --n-heads 4 \
        --print-config > "$OUT/base_config.json"
    for r in $RUNS; do
        "$PY" -c 'import json, sys
c = json.load(open(sys.argv[1])); c["blocks"][0]["channel_mixer"] = json.loads(sys.argv[2])
json.dump(c, open(sys.argv[3], "w"), indent=1)' "$OUT/base_config.json" "$(channel_mixer $r)" "$OUT/$r.json"
        rm -rf "$OUT/$r"
        opt=adamw
        [ $r = lut_ffn ] && opt=lazy_adamw
        set -- "$SF" train --data "$DATA" --out "$OUT/$r" --config "$OUT/$r.json" \
            --optimizer $opt --batch-size 32 --lr 1e-3 --lradj constant --warmup-epochs 0 \
            --clip-grad 1 --patience 100000 --epochs 100000 --epoch-windows "$EW" \
            --time-budget "$BUDGET" --budget-clock "$CLOCK" --threads "$THREADS" --seed 5902 \
            --progress plain
        if [ "$CLOCK" = wall ]; then # alone, one after the other
            echo "$r: started $(date -u +%H:%M:%S) UTC; load average: $(cut -d' ' -f1-3 /proc/loadavg)"
            "$@" > "$OUT/$r.log" 2>&1
        else
            nice -n "${NICE:-19}" "$@" > "$OUT/$r.log" 2>&1 &
            echo $! > "$OUT/$r.pid"
        fi
    done
    echo "started $(date -u +%H:%M:%S) UTC; load average: $(cut -d' ' -f1-3 /proc/loadavg)"
    wait
    echo "finished $(date -u +%H:%M:%S) UTC; load average: $(cut -d' ' -f1-3 /proc/loadavg)"
fi

"$PY" - "$OUT" "$CLOCK" $RUNS <<'EOF'
import csv, json, sys
out, clock, runs = sys.argv[1], sys.argv[2], sys.argv[3:]
col = "wall_seconds" if clock == "wall" else "cpu_seconds"
rows, params = {}, {}
for r in runs:
    try:
        rows[r] = [dict((k, float(v)) for k, v in x.items()) for x in csv.DictReader(open(f"{out}/{r}/cpu_log.csv"))]
    except FileNotFoundError:
        rows[r] = []
    try:
        params[r] = int(json.load(open(f"{out}/{r}/metrics.json"))["params"])
    except (FileNotFoundError, KeyError):  # still running (the log's first line) or not started
        try:
            log = open(f"{out}/{r}.log").read()
        except FileNotFoundError:
            log = ""
        params[r] = int(log.split(" parameters")[0].split()[-1]) if " parameters" in log else None
if not all(rows.values()):
    print("some runs have no evaluation yet:", [r for r in runs if not rows[r]])
    runs = [r for r in runs if rows[r]]
steps = sorted(set.intersection(*(set(int(x["steps"]) for x in rows[r]) for r in runs)))
common = min(rows[r][-1][col] for r in runs)
print("validation loss (nats/char) at equal steps:")
print("| steps | " + " | ".join(runs) + " |")
print("|---" * (len(runs) + 1) + "|")
for s in steps:
    print(f"| {s} | " + " | ".join(f"{next(x['val_loss'] for x in rows[r] if int(x['steps']) == s):.4f}" for r in runs) + " |")
print(f"\nby {clock.upper() if clock == 'cpu' else clock} time (common budget reached by all: {common:.0f} s):")
print(f"| model | params | steps by then | {clock} s per step (validation included) | best val loss by then | best val loss (all) | steps (all) |")
print("|---|---|---|---|---|---|---|")
for r in runs:
    rs = rows[r]
    upto = [x for x in rs if x[col] <= common + 1e-9]
    last = rs[-1]
    print(f"| {r} | {params[r] if params[r] else '-'} | {int(upto[-1]['steps']) if upto else 0} | "
          f"{last[col] / last['steps']:.2f} | {min(x['val_loss'] for x in upto) if upto else float('nan'):.4f} | "
          f"{min(x['val_loss'] for x in rs):.4f} | {int(last['steps'])} |")
EOF
