#!/bin/bash
# t2 throughput, seqformer (C) vs its PyTorch twin in the same run: GP preprocessing of real
# RR Lyrae stars (C only), and the model at t2's default size (d 32, 16 heads, d_ff 128, one
# post-LN block, 2 classes) on regularly sampled curves of 100 steps x 5 bands: batch-1 latency
# p50/p99, batched throughput (curves/s wall and per CPU-second), and the ratios.
# usage: bash bench/t2_throughput.sh [THREADS (2)] [BATCH (512)]   (after cmake --build build)
# Prints the load average beside the numbers: on a shared machine the wall-clock figures
# depend on it; the per-CPU-second figures much less.
set -euo pipefail
cd "$(dirname "$0")/.."
T=${1:-2}
B=${2:-512}
CFG='{"format_version":2,"task":"classify","model":"t2","seq_len":100,"n_channels":5,"n_classes":2,"d_model":32,"input":{"kind":"pointwise"},"positions":{"kind":"sinusoidal"},"blocks":[{"kind":"metaformer","repeat":1,"placement":"post","dropout":0.1,"norm":{"kind":"layernorm","eps":1e-06},"token_mixer":{"kind":"softmax","n_heads":16,"causal":false},"channel_mixer":{"kind":"mlp","d_ff":128,"activation":"relu","dropout":0}}],"head":{"kind":"pool_classify","dropout":0.1}}'
echo "# $(date -u '+%Y-%m-%d %H:%M UTC') $(nproc) cores, load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
C=$(./build/bench_t2 --config "$CFG" --threads "$T" --batch "$B" --runs 500 --secs 3 --gp-objects 40)
P=$(/usr/bin/python3 bench/torch_t2.py --config "$CFG" --threads "$T" --batch "$B" --runs 500 --secs 3)
echo "# load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "$C"
echo "$P"
/usr/bin/python3 - "$C" "$P" <<'PY'
import json, sys
c, p = json.loads(sys.argv[1]), json.loads(sys.argv[2])
print(f"| t2 (100 x 5, {c['params']} params), {c['threads']} threads | seqformer (C) | PyTorch twin | C / PyTorch |")
print("|---|---|---|---|")
for k, name, better in [("b1_latency_ms_p50", "batch-1 latency p50 (ms)", "lower"),
                        ("b1_latency_ms_p99", "batch-1 latency p99 (ms)", "lower"),
                        ("batched_curves_per_s", f"batched (batch {c['batch']}) curves/s, wall", "higher"),
                        ("batched_curves_per_cpu_s", "batched curves per CPU-second", "higher")]:
    r = c[k] / p[k] if better == "higher" else p[k] / c[k]
    print(f"| {name} | {c[k]:,.4g} | {p[k]:,.4g} | {r:.2f}x {'faster' if r >= 1 else 'slower'} |")
r = c['chunked_curves_per_s'] / p['batched_curves_per_s']
print(f"| chunked (sf_model_infer_chunked, {c['chunk']} curves per thread at a time) curves/s, wall; "
      f"twin: its batched figure | {c['chunked_curves_per_s']:,.4g} | {p['batched_curves_per_s']:,.4g} | "
      f"{r:.2f}x {'faster' if r >= 1 else 'slower'} |")
print(f"| GP preprocessing (first {c['gp_objects']} stars, 100 x 5 grid) curves/s, wall | "
      f"{c['gp_curves_per_s']:.2f} | - | |")
print(f"| GP preprocessing curves per CPU-second | {c['gp_curves_per_cpu_s']:.2f} | - | |")
PY
