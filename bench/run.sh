#!/usr/bin/env bash
# C vs PyTorch at the same config and thread count, in one run: training steps/s and batch-1
# inference latency (p50, p99 over 1,000 calls) of the ETTh1 PatchTST model, and the ratios; which
# BLAS library and core type were loaded and which of our GEMM paths ran; the per-operation time
# tables of seqformer's training step and batch-1 call. Needs Debian's python3-torch for the
# baseline (installed here if missing). Usage: bench/run.sh [threads] [norm]
set -euo pipefail
cd "$(dirname "$0")/.."
threads=${1:-2}
norm=${2:-batchnorm}   # PatchTST default; both sides run the same config
bash scripts/build.sh
if ! /usr/bin/python3 -c 'import torch' 2>/dev/null; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get install -y -qq python3-torch >/dev/null
fi
echo "load before: $(uptime)"
c=$(./build/bench_patchtst --threads "$threads" --norm "$norm" --profile 1)
t=$(/usr/bin/python3 bench/torch_patchtst.py --threads "$threads" --norm "$norm")
echo "load after:  $(uptime)"
echo "seqformer: $c"
echo "pytorch:   $t"
/usr/bin/python3 - "$c" "$t" <<'PY'
import json, sys
c, t = json.loads(sys.argv[1]), json.loads(sys.argv[2])
assert c["params"] == t["params"], (c["params"], t["params"])
assert c["norm"] == t["config"]["norm"], (c["norm"], t["config"]["norm"])
def paths(mask):
    names = ["small-dot", "small-panel", "packed", "openblas"]
    return "+".join(n for i, n in enumerate(names) if mask >> i & 1) or "none"
print(f"BLAS library: {c['blas_library']} (OpenBLAS core: {c['blas_core']}); our kernels: {c['our_kernels']}")
print(f"GEMM paths taken: training {paths(c['gemm_paths_train'])}, batch-1 {paths(c['gemm_paths_infer'])}")
n_b1 = c['infer_runs'] + 20
print(f"batch-1 blocks split over the threads by series: {c['infer_split_calls']} of {n_b1} timed+warm-up calls"
      + ("" if c['threads'] > 1 else " (one thread: never)"))
print(f"training throughput: {c['train_steps_per_s']:.2f} vs {t['train_steps_per_s']:.2f} steps/s "
      f"-> {c['train_steps_per_s']/t['train_steps_per_s']:.2f}x PyTorch")
print(f"batch-1 latency p50: {c['infer_b1_p50_ms']:.3f} vs {t['infer_b1_p50_ms']:.3f} ms "
      f"-> {t['infer_b1_p50_ms']/c['infer_b1_p50_ms']:.2f}x lower ({c['infer_runs']} calls each)")
print(f"batch-1 latency p99: {c['infer_b1_p99_ms']:.3f} vs {t['infer_b1_p99_ms']:.3f} ms "
      f"-> {t['infer_b1_p99_ms']/c['infer_b1_p99_ms']:.2f}x lower")
print(f"achieved {c['train_gflops']:.1f} GFLOP/s in training = {100*c['train_gflops']/c['blas_peak_gflops']:.1f}% "
      f"of the {c['blas_peak_gflops']:.0f} GFLOP/s sf_gemm 1024^3 peak measured in this run "
      f"(FMA peak and MFU: ./build/bench_mfu)")
PY
