#!/bin/sh
# Builds and runs bench/gemm_src_ab.c: this tree's packed sgemm (the library in build/, built
# first) against src/kernels/gemm_packed.c at commit REV, compiled beside it with an old_ prefix
# on its exported names, both with the Release flags. One thread (OMP_NUM_THREADS=1; the weight
# gradients' K split would otherwise fork).
# usage: bench/gemm_src_ab.sh REV [REPS (100)]
set -eu
cd "$(dirname "$0")/.."
REV=${1:?usage: bench/gemm_src_ab.sh REV [REPS]}
REPS=${2:-100}
bash scripts/build.sh >/dev/null
d=$(mktemp -d)
trap 'rm -rf "$d"' EXIT
git show "$REV:src/kernels/gemm_packed.c" >"$d/gemm_packed_old.c"
cc -std=c11 -O3 -DNDEBUG -D_GNU_SOURCE -Wno-psabi -fopenmp -Isrc -c "$d/gemm_packed_old.c" -o "$d/old.o"
# every global the old file defines gets an old_ prefix (sf_gemm_packed_serial -> old_gemm_packed_serial)
nm --defined-only -g "$d/old.o" | awk '$3 ~ /^sf_/ {print $3, "old_" substr($3, 4)}' >"$d/syms"
objcopy --redefine-syms="$d/syms" "$d/old.o"
cc -std=c11 -O2 -D_GNU_SOURCE -fopenmp -Isrc -Ibench bench/gemm_src_ab.c "$d/old.o" \
    build/libseqformer.a -lopenblas -lm -o "$d/gemm_src_ab"
echo "gemm_packed.c: this tree ($(git rev-parse --short HEAD)$(git diff --quiet -- src/kernels/gemm_packed.c || echo '+changes')) vs $REV; $(lscpu | sed -n 's/^Model name: *//p')"
OMP_NUM_THREADS=1 "$d/gemm_src_ab" "$REPS"
