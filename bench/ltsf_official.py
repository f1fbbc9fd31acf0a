#!/usr/bin/env python3
"""Run the official LTSF-Linear code (github.com/cure-lab/LTSF-Linear, a checkout given by --ltsf)
at another seed than the 2021 its run_longExp.py hard-codes: the script's text is executed with
that one assignment changed; nothing of it is copied here. Needs python3-torch, python3-pandas,
python3-sklearn. Everything after `--` goes to run_longExp.py, e.g. the DLinear ETTh1 H=96 run:

  python3 bench/ltsf_official.py --ltsf ../LTSF-Linear --seed 2022 -- --is_training 1 \
      --root_path ./dataset/ --data_path ETTh1.csv --model_id ETTh1_336_96 --model DLinear \
      --data ETTh1 --features M --seq_len 336 --pred_len 96 --enc_in 7 --des Exp --itr 1 \
      --batch_size 32 --learning_rate 0.005 --num_workers 0

(the data path is relative to the checkout; its final line prints the test mse/mae)."""
import argparse
import os
import re
import sys

ap = argparse.ArgumentParser()
ap.add_argument("--ltsf", required=True, help="LTSF-Linear checkout")
ap.add_argument("--seed", type=int, required=True)
ap.add_argument("rest", nargs=argparse.REMAINDER)
a = ap.parse_args()
rest = a.rest[1:] if a.rest[:1] == ["--"] else a.rest
script = os.path.join(a.ltsf, "run_longExp.py")
src = open(script).read()
src, n = re.subn(r"^fix_seed = \d+$", f"fix_seed = {a.seed}", src, flags=re.M)
if n != 1:
    sys.exit(f"{script}: expected one 'fix_seed = N' line, found {n}")
os.chdir(a.ltsf)
sys.path.insert(0, os.getcwd())
sys.argv = [script] + rest
exec(compile(src, script, "exec"), {"__name__": "__main__"})
