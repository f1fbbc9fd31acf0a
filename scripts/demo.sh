#!/usr/bin/env bash
# The main job, end to end on a fresh Debian 12 machine: install missing packages, build, train a
# small PatchTST forecaster on the shipped ETTh1 file, print its test metrics, and forecast the
# 96 hours after the last row in original units. Extra arguments go to `seqformer train`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh
out=runs/demo
./build/seqformer train --data data/ETTh1.csv --model patchtst --seq-len 336 --pred-len 96 \
  --epochs 6 --patience 3 --out "$out" "$@"
echo "--- eval (test split, z-scored units):"
./build/seqformer eval --model "$out/model.safetensors" --data data/ETTh1.csv
./build/seqformer predict --model "$out/model.safetensors" --data data/ETTh1.csv \
  --out "$out/forecast.csv" --plot "$out/forecast.svg"
echo "--- first forecast rows (original units):"
head -4 "$out/forecast.csv"
echo "--- outputs: $out/{model.safetensors,metrics.json,train_log.csv,loss.svg,forecast.csv,forecast.svg}"
