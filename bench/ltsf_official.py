#!/usr/bin/env python3
"""Run the official LTSF-Linear code (github.com/cure-lab/LTSF-Linear, a checkout given by --ltsf)
at another seed than the 2021 its run_longExp.py hard-codes: the script's text is executed with
that one assignment changed; nothing of it is copied here. The same works for the other
Time-Series-Library-style repositories whose entry script hard-codes `fix_seed = N`, e.g. the
official iTransformer (github.com/thuml/iTransformer): `--ltsf ../iTransformer --script run.py`. Needs python3-torch, python3-pandas,
python3-sklearn. Everything after `--` goes to run_longExp.py, e.g. the DLinear ETTh1 H=96 run:

  python3 bench/ltsf_official.py --ltsf ../LTSF-Linear --seed 2022 -- --is_training 1 \
      --root_path ./dataset/ --data_path ETTh1.csv --model_id ETTh1_336_96 --model DLinear \
      --data ETTh1 --features M --seq_len 336 --pred_len 96 --enc_in 7 --des Exp --itr 1 \
      --batch_size 32 --learning_rate 0.005 --num_workers 0

(the data path is relative to the checkout; its final line prints the test mse/mae). The
iTransformer ETTm1 H=96 run of its scripts/multivariate_forecasting/ETT/iTransformer_ETTm1.sh:

  python3 bench/ltsf_official.py --ltsf ../iTransformer --script run.py --seed 2021 -- \
      --is_training 1 --root_path DIR --data_path ETTm1.csv --model_id ETTm1_96_96 \
      --model iTransformer --data ETTm1 --features M --seq_len 96 --pred_len 96 --e_layers 2 \
      --enc_in 7 --dec_in 7 --c_out 7 --des Exp --d_model 128 --d_ff 128 --itr 1 --num_workers 0"""
import argparse
import os
import re
import sys
import types

ap = argparse.ArgumentParser()
ap.add_argument("--ltsf", required=True, help="LTSF-Linear checkout")
ap.add_argument("--script", default="run_longExp.py", help="entry script inside the checkout")
ap.add_argument("--seed", type=int, required=True)
ap.add_argument("--stub", action="append", default=[],
                help="a module the checkout imports only for models not run here (iTransformer: "
                     "reformer_pytorch, einops); it becomes a placeholder that fails if anything is used")
ap.add_argument("rest", nargs=argparse.REMAINDER)
a = ap.parse_args()
rest = a.rest[1:] if a.rest[:1] == ["--"] else a.rest
script = os.path.join(a.ltsf, a.script)
src = open(script).read()
src, n = re.subn(r"^(\s*)fix_seed = \d+$", rf"\g<1>fix_seed = {a.seed}", src, flags=re.M)
if n != 1:
    sys.exit(f"{script}: expected one 'fix_seed = N' line, found {n}")
for name in a.stub:
    def missing(attr, name=name):
        if attr.startswith("__"):
            raise AttributeError(attr)
        def fail(*_args, **_kw):
            raise RuntimeError(f"{name}.{attr} is a --stub placeholder")
        return fail
    stub = types.ModuleType(name)
    stub.__getattr__ = missing
    sys.modules[name] = stub
os.chdir(a.ltsf)
sys.path.insert(0, os.getcwd())
sys.argv = [script] + rest
exec(compile(src, script, "exec"), {"__name__": "__main__"})
