#!/usr/bin/env bash
# t2 on the UEA sets BasicMotions, JapaneseVowels (unequal lengths 7..29) and PenDigits of
# ../shared/data/classification/uea with the classify defaults (plus the flags passed after the
# seeds), then the test accuracies next to the references of ../shared/data/README.md §2.2:
# 1-NN Euclidean computed there (BasicMotions, PenDigits), ResNet / FCN on JapaneseVowels (Fawaz
# et al. 2019, MTS archive, mean of 10 runs); "-" = no reference there.
# Usage: bash bench/uea_table.sh [seeds] [extra train flags...]
#   bash bench/uea_table.sh "2021 2022 2023"
#   TABLE_ONLY=1 bash bench/uea_table.sh "2021 2022 2023"
# Runs go to ${RUNS:-/dev/shm/seqformer_uea}/<set>_s<seed> (tmpfs: the per-epoch training-state
# fsyncs cost more than the training on a disk), one JSON line per run is appended to
# bench/results/uea_runs.jsonl; a run already there is not repeated.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${UEA:-../shared/data/classification/uea}
EXT=ts
RUNS=${RUNS:-/dev/shm/seqformer_uea}
LOG=bench/results/uea_runs.jsonl
# name  1-NN-ED  ResNet  FCN
REF="BasicMotions 0.6000 - -
JapaneseVowels - 0.992 0.993
PenDigits 0.9774 - -"
. bench/classify_table.sh "$@"
