#!/usr/bin/env bash
# t2 on the 16 UCR sets of ../shared/data/classification/ucr with ONE set of flags (the classify
# defaults plus whatever is passed after the seeds), one training at a time, then the table of
# test accuracies (mean over the seeds that finished) next to 1-NN Euclidean and the published
# ResNet / FCN means (Fawaz et al. 2019, as copied in ../shared/data/README.md §2.1).
# Usage: bash bench/ucr_table.sh [seeds] [extra train flags...]
#   bash bench/ucr_table.sh "2021 2022 2023"
#   TABLE_ONLY=1 bash bench/ucr_table.sh "2021 2022 2023"     # the table of what has finished
#   LOG=bench/results/ucr_runs_recipe.jsonl bash bench/ucr_table.sh "2021 2022 2023" --recipe ucr
#   SETS="Beef Lightning2" ...   # train only these sets (several such loops can share one LOG)
# Runs go to ${RUNS:-/dev/shm/seqformer_ucr}/<set>_s<seed> (tmpfs: the per-epoch training-state
# fsyncs cost more than the training on a disk), one JSON line per run is appended to
# bench/results/ucr_runs.jsonl; a run already there is not repeated.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${UCR:-../shared/data/classification/ucr}
EXT=tsv
RUNS=${RUNS:-/dev/shm/seqformer_ucr}
LOG=${LOG:-bench/results/ucr_runs.jsonl}
# name  1-NN-ED  ResNet  FCN   (ordered by training cost, cheapest first)
REF="Chinatown 0.9446 0.978 0.980
ItalyPowerDemand 0.9553 0.962 0.963
SonyAIBORobotSurface1 0.6955 0.961 0.958
SonyAIBORobotSurface2 0.8594 0.975 0.980
MoteStrain 0.8786 0.924 0.936
TwoLeadECG 0.7471 1.000 0.999
ECGFiveDays 0.7967 0.966 0.985
Coffee 1.0000 1.000 1.000
GunPoint 0.9133 0.991 1.000
ECG200 0.8800 0.874 0.888
ArrowHead 0.8000 0.838 0.843
PowerCons 0.9778 0.879 0.863
Plane 0.9619 1.000 1.000
DistalPhalanxOutlineCorrect 0.7174 0.770 0.760
Beef 0.6667 0.753 0.680
Lightning2 0.7541 0.780 0.734"
. bench/classify_table.sh "$@"
