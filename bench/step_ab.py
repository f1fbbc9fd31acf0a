#!/usr/bin/env python3
"""Interleaved A/B of two builds' PatchTST training step and batch-1 call (bench/step_worker.c),
alternating within one run: both workers stay loaded, and each pair runs OLD then NEW (or NEW
then OLD, alternately) a fraction of a second apart, so the tens-of-percent speed drifts of a
shared machine, which last seconds, hit both alike. Prints the median of each side and the
median over pairs of new/old, and the two workers' checksums at the end (equal: same bits).
Usage: bench/step_ab.py OLD_WORKER NEW_WORKER [--threads 2] [--pairs 30] [--steps 3] [--b1 200]
(bench/step_ab.sh REV builds the two workers and calls this)."""
import argparse, statistics, subprocess

ap = argparse.ArgumentParser()
ap.add_argument("old"); ap.add_argument("new")
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--pairs", type=int, default=30)
ap.add_argument("--steps", type=int, default=3)
ap.add_argument("--b1", type=int, default=200)
a = ap.parse_args()

def start(path):
    return subprocess.Popen([path, "--threads", str(a.threads)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, bufsize=1)

def ask(p, cmd):
    p.stdin.write(cmd + "\n"); p.stdin.flush()
    key, val = p.stdout.readline().split()
    return float(val)

w = {"old": start(a.old), "new": start(a.new)}
res = {k: {"train": [], "b1": []} for k in w}
for pair in range(-1, a.pairs):            # pair -1: warm-up of both
    order = ["old", "new"] if pair % 2 == 0 else ["new", "old"]
    for k in order:
        t = ask(w[k], f"train {a.steps}")
        b = ask(w[k], f"b1 {a.b1}") if a.b1 > 0 else 0.0
        if pair >= 0:
            res[k]["train"].append(t); res[k]["b1"].append(b)
sums = {k: ask(w[k], "sum") for k in w}
for p in w.values():
    p.stdin.write("quit\n"); p.stdin.flush(); p.wait()
print(f"step_ab: {a.pairs} pairs, {a.threads} threads, {a.steps} training steps and {a.b1} batch-1 calls per turn")
for what in (["train", "b1"] if a.b1 > 0 else ["train"]):
    o, n = res["old"][what], res["new"][what]
    r = [y / x for x, y in zip(o, n)]
    unit = "ms/step" if what == "train" else "ms/call (median of the turn)"
    print(f"{what:5s} old median {statistics.median(o):9.4f} min {min(o):9.4f} | new median {statistics.median(n):9.4f} "
          f"min {min(n):9.4f} {unit} | new/old per pair: median {statistics.median(r):.3f}, "
          f"quartiles {statistics.quantiles(r, n=4)[0]:.3f}-{statistics.quantiles(r, n=4)[2]:.3f}")
print(f"checksums: old {sums['old']!r} new {sums['new']!r} -> {'same bits' if sums['old'] == sums['new'] else 'DIFFERENT'}")
