#!/usr/bin/env python3
"""Test accuracy of the average of several trained UCR models' class probabilities (an ensemble
over seeds), next to the mean of the members' own accuracies, from the runs a bench/ucr_par.sh /
bench/ucr_table.sh pass left in its RUNS folder (<set>_s<seed>/model.safetensors).

  python3 bench/ucr_ensemble.py RUNS "2021 2022 2023" [SF]

SF (default build/seqformer) runs `predict` on each set's test file; the table lists, per set, the
members' accuracies, their mean, and the accuracy of the averaged probabilities."""
import csv
import io
import os
import subprocess
import sys

runs, seeds = sys.argv[1], sys.argv[2].split()
sf = sys.argv[3] if len(sys.argv) > 3 else "build/seqformer"
data = os.environ.get("UCR", "../shared/data/classification/ucr")
sets = sorted({d.rsplit("_s", 1)[0] for d in os.listdir(runs) if os.path.isdir(os.path.join(runs, d))})


def predict(model, test):
    out = subprocess.run([sf, "predict", "--model", model, "--data", test, "--threads", "1"],
                         check=True, capture_output=True, text=True).stdout
    rows = list(csv.DictReader(io.StringIO(out)))
    classes = [k[2:] for k in rows[0] if k.startswith("p_")]
    return [r["label"] for r in rows], classes, [[float(r["p_" + c]) for c in classes] for r in rows]


print(f"runs: {runs}, seeds: {' '.join(seeds)}")
print("| dataset | members | mean of members | ensemble (mean probabilities) |")
print("|---|---|---|---|")
means, ens = [], []
for name in sets:
    test = os.path.join(data, name, f"{name}_TEST.tsv")
    models = [os.path.join(runs, f"{name}_s{s}", "model.safetensors") for s in seeds]
    if not all(os.path.exists(m) for m in models):
        print(f"| {name} | missing runs | | |")
        continue
    accs, total = [], None
    for m in models:
        labels, classes, p = predict(m, test)
        accs.append(sum(classes[max(range(len(r)), key=r.__getitem__)] == y for y, r in zip(labels, p)) / len(p))
        total = p if total is None else [[a + b for a, b in zip(u, v)] for u, v in zip(total, p)]
    acc = sum(classes[max(range(len(r)), key=r.__getitem__)] == y for y, r in zip(labels, total)) / len(total)
    means.append(sum(accs) / len(accs))
    ens.append(acc)
    print(f"| {name} | {' '.join(f'{a:.3f}' for a in accs)} | {means[-1]:.4f} | {acc:.4f} |")
if means:
    print(f"| **mean over the {len(means)} sets** | | **{sum(means) / len(means):.4f}** | "
          f"**{sum(ens) / len(ens):.4f}** |")
