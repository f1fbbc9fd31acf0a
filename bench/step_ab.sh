#!/bin/sh
# Interleaved A/B of the PatchTST training step and batch-1 call: this tree against commit REV,
# each side bench/step_worker.c built against its own tree's library, alternated in one run by
# bench/step_ab.py (see there). REV's library is built in a temporary git worktree.
# usage: bench/step_ab.sh REV [step_ab.py options: --threads 2 --pairs 30 --steps 3 --b1 200]
set -eu
cd "$(dirname "$0")/.."
REV=${1:?usage: bench/step_ab.sh REV [options]}
shift
bash scripts/build.sh >/dev/null
d=$(mktemp -d)
trap 'git worktree remove --force "$d/old" 2>/dev/null || true; rm -rf "$d"' EXIT
git worktree add --detach "$d/old" "$REV" >/dev/null 2>&1
cmake -S "$d/old" -B "$d/old/build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$d/old/build" -j"$(nproc)" --target seqformer_lib >/dev/null
blas=$(sed -n 's/^SF_OPENBLAS_OPENMP_LIB:FILEPATH=//p' build/CMakeCache.txt)
[ -n "$blas" ] && [ -e "$blas" ] || blas=-lopenblas
for side in old new; do
    tree=.; [ "$side" = old ] && tree="$d/old"
    cc -std=c11 -O2 -D_GNU_SOURCE -fopenmp -I"$tree/src" -Ibench bench/step_worker.c \
        "$tree/build/libseqformer.a" -lcjson -llapack "$blas" -lz -lm -o "$d/worker_$side"
done
echo "this tree ($(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src || echo '+changes')) vs $REV; $(lscpu | sed -n 's/^Model name: *//p')"
python3 bench/step_ab.py "$d/worker_old" "$d/worker_new" "$@"
