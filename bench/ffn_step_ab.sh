#!/bin/sh
# The PatchTST training step and batch-1 call with the feed-forward layers fused (kernels/ffn.c,
# the default) against layer by layer, in this tree: bench/step_worker.c built once, started
# twice (--mlp-fuse never / auto), alternated by bench/step_ab.py.
# usage: bench/ffn_step_ab.sh [step_ab.py options: --threads 2 --pairs 30 --steps 3 --b1 200]
set -eu
cd "$(dirname "$0")/.."
bash scripts/build.sh >/dev/null
d=$(mktemp -d)
trap 'rm -rf "$d"' EXIT
blas=$(sed -n 's/^SF_OPENBLAS_OPENMP_LIB:FILEPATH=//p' build/CMakeCache.txt)
[ -n "$blas" ] && [ -e "$blas" ] || blas=-lopenblas
cc -std=c11 -O2 -D_GNU_SOURCE -fopenmp -Isrc -Ibench bench/step_worker.c build/libseqformer.a \
    -lcjson -llapack "$blas" -lz -lm -o "$d/worker"
for f in never auto; do
    printf '#!/bin/sh\nexec "%s" --mlp-fuse %s "$@"\n' "$d/worker" "$f" > "$d/$f"
    chmod +x "$d/$f"
done
echo "fused (new) vs layer by layer (old), $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src || echo '+changes'); $(lscpu | sed -n 's/^Model name: *//p')"
python3 bench/step_ab.py "$d/never" "$d/auto" "$@"
