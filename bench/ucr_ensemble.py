#!/usr/bin/env python3
"""UCR test accuracy of ensembles over seeds: `seqformer eval --model A --ensemble B,C` (the mean of
the members' class probabilities) for each group of seeds, next to the mean of the members' own
accuracies, from the runs a bench/ucr_par.sh / bench/ucr_table.sh pass left in its RUNS folder
(<set>_s<seed>/model.safetensors).

  python3 bench/ucr_ensemble.py RUNS "2021,2022,2023 2024,2025,2026 2027,2028,2029" [SF]

Each space-separated group is one ensemble; the table gives, per set, every group's ensemble
accuracy, their mean, and the mean accuracy of all the single members. SF: default
build/seqformer."""
import json
import os
import subprocess
import sys

runs, groups = sys.argv[1], [g.split(",") for g in sys.argv[2].split()]
sf = sys.argv[3] if len(sys.argv) > 3 else "build/seqformer"
data = os.environ.get("UCR", "../shared/data/classification/ucr")
sets = sorted({d.rsplit("_s", 1)[0] for d in os.listdir(runs) if os.path.isdir(os.path.join(runs, d))})


def evaluate(models, test):
    cmd = [sf, "eval", "--model", models[0], "--data", test, "--threads", "1"]
    if len(models) > 1:
        cmd += ["--ensemble", ",".join(models[1:])]
    return json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)["accuracy"]


print(f"runs: {runs}, ensembles: {' | '.join(','.join(g) for g in groups)}")
print("| dataset | ensembles | mean of the ensembles | mean of the single members |")
print("|---|---|---|---|")
ens_means, single_means = [], []
for name in sets:
    test = os.path.join(data, name, f"{name}_TEST.tsv")
    model = lambda s: os.path.join(runs, f"{name}_s{s}", "model.safetensors")
    if not all(os.path.exists(model(s)) for g in groups for s in g):
        print(f"| {name} | missing runs | | |")
        continue
    ens = [evaluate([model(s) for s in g], test) for g in groups]
    singles = [evaluate([model(s)], test) for g in groups for s in g]
    ens_means.append(sum(ens) / len(ens))
    single_means.append(sum(singles) / len(singles))
    print(f"| {name} | {' '.join(f'{a:.3f}' for a in ens)} | {ens_means[-1]:.4f} | {single_means[-1]:.4f} |")
if ens_means:
    print(f"| **mean over the {len(ens_means)} sets** | | **{sum(ens_means) / len(ens_means):.4f}** | "
          f"**{sum(single_means) / len(single_means):.4f}** |")
