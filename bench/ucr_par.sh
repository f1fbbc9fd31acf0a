#!/usr/bin/env bash
# bench/ucr_table.sh with its seeds trained as parallel loops (one loop per seed, PAR at once,
# default 2, each training on one thread), then the table of all the seeds. Same environment as
# ucr_table.sh (LOG, RUNS, SETS, SF, BASE_LOG).
#   LOG=/tmp/ucr.jsonl bash bench/ucr_par.sh "2021 2022 2023" --recipe ucr --stride 4
set -euo pipefail
cd "$(dirname "$0")/.."
seeds=$1; shift
printf '%s\n' $seeds | xargs -P "${PAR:-2}" -I{} bash bench/ucr_table.sh {} "$@" >/dev/null
TABLE_ONLY=1 bash bench/ucr_table.sh "$seeds" "$@"
