#!/usr/bin/env python3
"""The PyTorch twin of `seqformer train --task lm` under a CPU-time budget (issue #15).

Trains tools/reference/seqformer_ref.py's LM, built from the same JSON config the C side trains,
with the C trainer's protocol replayed exactly:
  - data: the text's bytes -> the char vocabulary (sorted distinct bytes), the first
    int(0.9 * n) bytes train, the rest validate (src/tasks/lm.c);
  - epoch e (0-based) has --epoch-windows windows of seq_len whose starts are drawn from the C
    RNG stream (seed, 3000 + e) as lm_begin_epoch draws them, visited in the order of a
    Fisher-Yates shuffle from stream (seed, 1000 + e) (src/train/trainer.c), batch B, the last
    incomplete batch dropped: the same token windows in the same batches as the C run;
  - AdamW (0.9, 0.999, eps 1e-8, weight decay 0), constant lr, global-norm gradient clipping;
  - after every epoch: validation loss over the consecutive validation windows
    (start n_train + k * seq_len, batches of 32), the best kept;
  - stop at the first epoch end where the process CPU time (time.process_time(), training and
    validation; model building and data loading excluded, as in the C trainer) reaches --time-budget,
    or with --clock wall the wall time since training began (seqformer train --budget-clock wall).
Initial weights are PyTorch's own initialisation (same shapes, not the C run's draws), or with
--init a seqformer checkpoint's weights (load_state_dict strict; the protocol check below).

Writes OUT/cpu_log.csv (epoch,steps,cpu_seconds,train_loss,val_loss,val_bpc,wall_seconds, as the
C trainer's)
and OUT/metrics.json.  Run at one thread:
  /usr/bin/python3 bench/torch_lm_train.py --config cfg.json --data tinyshakespeare.txt --out DIR \\
      --threads 1 --epoch-windows 3200 --batch-size 32 --lr 1e-3 --time-budget 1800 --seed 5901
"""

import argparse
import copy
import json
import math
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools", "reference"))
import seqformer_ref as ref  # noqa: E402


def epoch_batches(seed, epoch, n_windows, span, batch):
    """The C trainer's windows for one epoch: lists of batch window starts (lm_begin_epoch's draw,
    then the trainer's shuffle)."""
    r = ref.SfRng(seed, 3000 + epoch)
    starts = [int((float(r.u64() >> 11) * float(span)) / 9007199254740992.0) for _ in range(n_windows)]
    r = ref.SfRng(seed, 1000 + epoch)
    order = list(range(n_windows))
    for i in range(n_windows - 1, 0, -1):
        j = r.below(i + 1)
        order[i], order[j] = order[j], order[i]
    return [[starts[k] for k in order[s * batch:(s + 1) * batch]] for s in range(n_windows // batch)]


def windows(tok, starts, T):
    idx = torch.tensor(starts, dtype=torch.long)[:, None] + torch.arange(T + 1)[None, :]
    w = tok[idx]
    return w[:, :T], w[:, 1:]


def evaluate(model, tok, n_train, T, eval_batch):
    n_val = tok.numel() - n_train
    nw = (n_val - 1) // T
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for b in range(0, nw, eval_batch):
            starts = [n_train + k * T for k in range(b, min(nw, b + eval_batch))]
            x, y = windows(tok, starts, T)
            logits = model(x)
            total += F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1),
                                     reduction="sum").item()
            count += y.numel()
    model.train()
    return total / count


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", required=True, help="lm config JSON (seqformer train ... --print-config)")
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--epoch-windows", type=int, required=True)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--eval-batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--clip-grad", type=float, default=1.0)
    ap.add_argument("--time-budget", type=float, required=True, help="seconds of --clock")
    ap.add_argument("--clock", choices=["cpu", "wall"], default="cpu",
                    help="what the budget counts: process CPU seconds (default) or wall seconds "
                         "(an idle machine, all threads: seqformer train --budget-clock wall)")
    ap.add_argument("--max-epochs", type=int, default=100000)
    ap.add_argument("--seed", type=int, default=2021)
    ap.add_argument("--init", help="start from this seqformer model.safetensors (same config)")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    text = open(args.data, "rb").read()
    vocab = sorted(set(text))
    id_of = {b: i for i, b in enumerate(vocab)}
    tok = torch.tensor([id_of[b] for b in text], dtype=torch.long)
    n = len(text)
    n_train = int(0.9 * n)
    with open(args.config) as f:
        cfg = json.load(f)
    cfg["input"]["vocab"] = len(vocab)
    model = ref.build_model(cfg)
    if args.init:
        tensors, _ = ref.load_safetensors(args.init)
        model.load_state_dict({k: torch.from_numpy(v) for k, v in tensors.items()}, strict=True)
    T = model.cfg["seq_len"]
    span = n_train - T
    params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
    os.makedirs(args.out, exist_ok=True)
    log = open(os.path.join(args.out, "cpu_log.csv"), "w")
    log.write("epoch,steps,cpu_seconds,train_loss,val_loss,val_metric2,wall_seconds\n")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s): {params} parameters, "
          f"vocabulary {len(vocab)}, {n_train} train / {n - n_train} val bytes", file=sys.stderr, flush=True)

    best_val, best_epoch, best_state, steps = math.inf, 0, None, 0
    wall0, c0 = time.time(), time.process_time()
    epoch, used = 0, 0.0
    model.train()
    while epoch < args.max_epochs:
        loss_sum, nb = 0.0, 0
        for starts in epoch_batches(args.seed, epoch, args.epoch_windows, span, args.batch_size):
            x, y = windows(tok[:n_train], starts, T)
            logits = model(x)
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if args.clip_grad > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip_grad)
            opt.step()
            loss_sum += loss.item()
            nb += 1
            steps += 1
        val = evaluate(model, tok, n_train, T, args.eval_batch_size)
        epoch += 1
        if val < best_val:
            best_val, best_epoch = val, epoch
            best_state = copy.deepcopy(model.state_dict())
        used = time.process_time() - c0
        wall = time.time() - wall0
        log.write(f"{epoch},{steps},{used:.3f},{loss_sum / nb:.6f},{val:.6f},{val / math.log(2):.6f},"
                  f"{wall:.3f}\n")
        log.flush()
        print(f"epoch {epoch} steps {steps} cpu {used:.1f}s train_loss {loss_sum / nb:.5f} "
              f"val_loss {val:.5f} val_bpc {val / math.log(2):.5f}", file=sys.stderr, flush=True)
        if (wall if args.clock == "wall" else used) >= args.time_budget:
            break
    log.close()
    torch.save(best_state, os.path.join(args.out, "best_state.pt"))
    out = {"val": {"loss": best_val, "bpc": best_val / math.log(2), "perplexity": math.exp(best_val)},
           "best_epoch": best_epoch, "epochs_run": epoch, "steps": steps, "train_cpu_seconds": used,
           "train_seconds": time.time() - wall0, "params": params, "torch": torch.__version__,
           "threads": torch.get_num_threads()}
    with open(os.path.join(args.out, "metrics.json"), "w") as f:
        json.dump(out, f, indent=1)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
