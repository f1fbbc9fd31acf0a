#!/bin/sh
# Builds and runs bench/attention_ab.c: this tree's softmax attention kernels (the library in
# build/, built first) against src/kernels/attention.c at commit REV, compiled beside it with
# REV's headers and an old_ prefix on its exported names, both with the Release flags. Default
# shapes: bench_mfu's encoder (B 16, T 512, H 8, Dh 32) and lm (B 16, T 256, H 6, Dh 64, causal),
# and PatchTST's training step (B 896 series, T 42, H 4, Dh 4).
# usage: bench/attention_ab.sh REV [THREADS (2) [REPS (15) [B T H Dh CAUSAL ...]]]
set -eu
cd "$(dirname "$0")/.."
REV=${1:?usage: bench/attention_ab.sh REV [THREADS [REPS [B T H Dh CAUSAL ...]]]}
THREADS=${2:-2}
REPS=${3:-15}
[ $# -gt 3 ] && shift 3 || set -- 16 512 8 32 0 16 256 6 64 1 896 42 4 4 0
bash scripts/build.sh >/dev/null
d=$(mktemp -d)
trap 'rm -rf "$d"' EXIT
git archive "$REV" src | tar -x -C "$d"
cc -std=c11 -O3 -DNDEBUG -D_GNU_SOURCE -Wno-psabi -fopenmp -I"$d/src" -c "$d/src/kernels/attention.c" -o "$d/old.o"
# every global the old file defines gets an old_ prefix (sf_attention_forward -> old_attention_forward)
nm --defined-only -g "$d/old.o" | awk '$3 ~ /^sf_/ {print $3, "old_" substr($3, 4)}' >"$d/syms"
objcopy --redefine-syms="$d/syms" "$d/old.o"
cc -std=c11 -O2 -Wall -Wextra -Werror -D_GNU_SOURCE -fopenmp -Isrc -Ibench bench/attention_ab.c "$d/old.o" \
    build/libseqformer.a -lopenblas -lm -o "$d/attention_ab"
echo "attention kernels: this tree ($(git rev-parse --short HEAD)$(git diff --quiet -- src/kernels || echo '+changes')) vs $REV; $(lscpu | sed -n 's/^Model name: *//p')"
OMP_NUM_THREADS=$THREADS "$d/attention_ab" "$REPS" "$@"
