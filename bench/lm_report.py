"""The table of bench/lm_budget.sh and bench/lm_wall.sh: per run, the best validation loss, where and
when it was reached, the speed, and the best validation loss by the CPU (or wall) time every run
reached; then, when both ran, how closely the C softmax run and its PyTorch twin from the C init agree.
usage: lm_report.py OUT_DIR cpu|wall RUN..."""
import csv, json, math, sys

out, clock, runs = sys.argv[1], sys.argv[2], sys.argv[3:]
col = f"{clock}_seconds"
names = {"softmax": "seqformer softmax", "linear": "seqformer linear (elu+1)", "mamba": "seqformer mamba",
         "hybrid": "seqformer hybrid (mamba, softmax) x2", "torch": "PyTorch twin of softmax",
         "torch_cinit": "PyTorch twin of softmax, from the C init"}
rows = {}
for r in runs:
    try:
        rows[r] = [dict((k, float(v)) for k, v in x.items()) for x in csv.DictReader(open(f"{out}/{r}/cpu_log.csv"))]
    except FileNotFoundError:
        rows[r] = []
common = min((rs[-1][col] for rs in rows.values() if rs), default=0)
print(f"| model | params | best val loss | bpc | at step | steps | {clock} s |" + (" CPU s |" if clock == "wall" else "")
      + f" train tokens per {clock} s (validation included) | best val loss by {common:.0f} {clock} s | steps by then |")
print("|---" * (11 if clock == "wall" else 10) + "|")
for r in runs:
    rs = rows[r]
    if not rs:
        print(f"| {names.get(r, r)} | - | (no evaluation yet) |" + " |" * (8 if clock == "wall" else 7))
        continue
    try:
        params = int(json.load(open(f"{out}/{r}/metrics.json"))["params"])
    except (FileNotFoundError, KeyError, ValueError):  # still running: the log's first line
        try:
            log = open(f"{out}/{r}.log").read()
        except FileNotFoundError:
            log = ""
        params = int(log.split(" parameters")[0].split()[-1]) if " parameters" in log else "-"
    best = min(rs, key=lambda x: x["val_loss"])
    last = rs[-1]
    upto = [x for x in rs if x[col] <= common + 1e-9]
    by = f"{min(x['val_loss'] for x in upto):.4f}" if upto else "-"
    print(f"| {names.get(r, r)} | {params} | {best['val_loss']:.4f} | {best['val_loss'] / math.log(2):.3f} | "
          f"{int(best['steps'])} | {int(last['steps'])} | {last[col]:.0f} |"
          + (f" {last['cpu_seconds']:.0f} |" if clock == "wall" else "")
          + f" {last['steps'] * 32 * 128 / last[col]:.0f} | {by} | {int(upto[-1]['steps']) if upto else 0} |")
if rows.get("softmax") and rows.get("torch_cinit"):  # the same steps on both sides
    a, b = rows["softmax"], rows["torch_cinit"]
    n = min(len(a), len(b))
    d = max(abs(a[i]["val_loss"] - b[i]["val_loss"]) for i in range(n))
    print(f"\nsoftmax vs its twin at the first {n} validation points (same steps): max |C - twin| val loss = {d:.4f}")
