#!/usr/bin/python3
"""RR Lyrae ab vs c: a baseline classifier nobody here wrote (scikit-learn's gradient
boosting) on simple per-object light-curve features, 5-fold stratified CV with exactly the
folds `seqformer gp --folds 5 --seed S --out-dir DIR` wrote (DIR/folds.csv), so its numbers
sit next to a model trained on DIR/fold<i>_{TRAIN,TEST}.ts.

Features per band (u, g, r, i, z; magnitudes, rows with mag or error >= 99 dropped as the C
loader does): number of observations, median, standard deviation, amplitude (95th - 5th
percentile), skewness, kurtosis, median absolute deviation, fraction of points more than one
std from the mean, median error; plus the median colours u-g, g-r, r-i, i-z. No period: the
`Per` column of rrlyrae_periods.csv separates the classes almost by itself (the script prints
how well a single threshold on it does), so it would leak the label.

With --ts-dir DIR the same classifier is also run on the GP grids of the .ts fold files
(500 raw values per object), to show how much of the signal the t2-style grid keeps.

usage: /usr/bin/python3 bench/rrlyrae_baseline.py --folds DIR/folds.csv [--ts-dir DIR]
          [--data OBS.csv.gz] [--labels LABELS.csv] [--seed 1]
"""
import argparse
import csv
import gzip
import math
import sys

import numpy as np

try:
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.metrics import accuracy_score, log_loss, roc_auc_score
except ImportError:
    sys.exit("rrlyrae_baseline.py needs scikit-learn: apt-get install python3-sklearn "
             "(Debian package; run with /usr/bin/python3)")

BANDS = ["u", "g", "r", "i", "z"]


def read_obs(path):
    per = {}
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt") as f:
        for r in csv.DictReader(f):
            m, e = float(r["mag"]), float(r["magerr"])
            if m >= 99 or e >= 99:
                continue
            per.setdefault(r["object_id"], {b: ([], []) for b in BANDS})[r["band"]][0].append(m)
            per[r["object_id"]][r["band"]][1].append(e)
    return per


def features(bands):
    out, med = [], {}
    for b in BANDS:
        m, e = np.array(bands[b][0]), np.array(bands[b][1])
        if len(m) < 2:
            out += [len(m)] + [np.nan] * 8
            med[b] = np.nan
            continue
        mu, sd = m.mean(), m.std()
        z = (m - mu) / sd if sd > 0 else np.zeros_like(m)
        med[b] = np.median(m)
        out += [len(m), med[b], sd, np.percentile(m, 95) - np.percentile(m, 5),
                float(np.mean(z**3)), float(np.mean(z**4) - 3), float(np.median(np.abs(m - med[b]))),
                float(np.mean(np.abs(z) > 1)), float(np.median(e))]
    out += [med["u"] - med["g"], med["g"] - med["r"], med["r"] - med["i"], med["i"] - med["z"]]
    return out


def read_ts(path):
    X, y, data = [], [], False
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            if line.lower() == "@data":
                data = True
                continue
            if not data:
                continue
            *dims, lab = line.split(":")
            X.append([float(v) for d in dims for v in d.split(",")])
            y.append(lab)
    return np.array(X), np.array(y)


def cv(name, fold_data, seed):
    acc, ll, auc = [], [], []
    for Xtr, ytr, Xte, yte in fold_data:
        clf = GradientBoostingClassifier(random_state=seed)
        clf.fit(Xtr, ytr)
        p = clf.predict_proba(Xte)
        pos = list(clf.classes_).index("c")
        acc.append(accuracy_score(yte, clf.classes_[p.argmax(1)]))
        ll.append(log_loss(yte, p, labels=clf.classes_))
        auc.append(roc_auc_score(yte == "c", p[:, pos]))
    f = lambda v: f"{np.mean(v):.4f} +- {np.std(v):.4f}"
    print(f"{name}: accuracy {f(acc)}, log-loss {f(ll)}, ROC-AUC {f(auc)} "
          f"(folds: acc {' '.join(f'{a:.3f}' for a in acc)})")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default="../shared/data/lightcurves/rrlyrae_sdss_stripe82.csv.gz")
    ap.add_argument("--labels", default="../shared/data/lightcurves/rrlyrae_periods.csv")
    ap.add_argument("--folds", required=True, help="folds.csv written by seqformer gp --folds")
    ap.add_argument("--ts-dir", help="also classify the GP grids of DIR/fold<i>_{TRAIN,TEST}.ts")
    ap.add_argument("--seed", type=int, default=1, help="random_state of the classifier")
    a = ap.parse_args()

    with open(a.labels) as f:
        rows = list(csv.DictReader(f))
    label = {r["Num"]: r["Type"] for r in rows}
    period = {r["Num"]: float(r["Per"]) for r in rows}
    folds = {}
    with open(a.folds) as f:
        for r in csv.DictReader(f):
            folds[r["object_id"]] = int(r["fold"])
            if label[r["object_id"]] != r["label"]:
                sys.exit(f"{a.folds}: object {r['object_id']} is '{r['label']}' there, "
                         f"'{label[r['object_id']]}' in {a.labels}")
    k = max(folds.values()) + 1
    ids = sorted(folds, key=lambda i: (folds[i], i))
    y = np.array([label[i] for i in ids])
    fold = np.array([folds[i] for i in ids])
    counts = {c: int((y == c).sum()) for c in sorted(set(y))}
    print(f"{len(ids)} objects {counts}, {k} folds from {a.folds}")

    # Why the period is left out: one threshold on it, chosen on the training folds.
    per = np.array([period[i] for i in ids])
    acc = []
    for f in range(k):
        tr, te = fold != f, fold == f
        cands = np.unique(per[tr])
        best = max(cands, key=lambda t: np.mean((per[tr] < t) == (y[tr] == "c")))
        acc.append(np.mean((per[te] < best) == (y[te] == "c")))
    print(f"(not used) period < threshold alone: accuracy {np.mean(acc):.4f} -- the period leaks the label")

    obs = read_obs(a.data)
    X = np.array([features(obs[i]) for i in ids], dtype=float)
    X = np.nan_to_num(X, nan=-999.0)  # a band with < 2 points (none in this data set)
    cv("gradient boosting, light-curve features", [(X[fold != f], y[fold != f], X[fold == f], y[fold == f]) for f in range(k)], a.seed)

    if a.ts_dir:
        fd = []
        for f in range(k):
            Xtr, ytr = read_ts(f"{a.ts_dir}/fold{f}_TRAIN.ts")
            Xte, yte = read_ts(f"{a.ts_dir}/fold{f}_TEST.ts")
            fd.append((Xtr, ytr, Xte, yte))
        cv("gradient boosting, GP grid (.ts)", fd, a.seed)


if __name__ == "__main__":
    main()
