#!/usr/bin/env python3
"""Side-by-side UCR test accuracy (mean over seeds) of every flag set in a ucr_table.sh log that has
all 16 sets x the given number of seeds, e.g.
    python3 bench/ucr_compare.py bench/results/ucr_variants.jsonl 3
Columns are the flags after --recipe ucr (--recipe ucr-mamba is kept; or after the recipe's training flags, for a --config run),
in the order they first appear in the log."""
import collections
import json
import re
import sys

log, want = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 3
by = collections.defaultdict(lambda: collections.defaultdict(dict))
sets = []
for line in open(log):
    r = json.loads(line)
    by[r["flags"]][r["set"]].setdefault(r["seed"], r["result"]["test"]["accuracy"])
    if r["set"] not in sets:
        sets.append(r["set"])
flags = [f for f in by if len(by[f]) == 16 and all(len(v) >= want for v in by[f].values())]
# the ucr recipe's training flags, written out where a --config replaces its model flags
TRAINING = ("--task classify --val-fraction 0 --batch-size 0 --train-steps 4000 --lradj cosine "
            "--patience 100000 --augment 0.2")
names = [re.sub(r"--recipe ucr(?=\s|$)", "", f).replace(TRAINING, "").strip() or "(recipe)" for f in flags]
print("| dataset | " + " | ".join(f"`{n}`" if n != "(recipe)" else n for n in names) + " |")
print("|---|" + "---|" * len(flags))
means = {f: {s: sum(by[f][s].values()) / len(by[f][s]) for s in sets} for f in flags}
for s in sets:
    print(f"| {s} | " + " | ".join(f"{means[f][s]:.4f}" for f in flags) + " |")
print("| **mean over the 16** | " + " | ".join(f"**{sum(means[f].values()) / 16:.4f}**" for f in flags) + " |")
