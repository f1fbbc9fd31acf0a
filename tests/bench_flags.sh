#!/usr/bin/env bash
# The C benchmarks refuse a flag without its value (e.g. --help) with exit 2 and a message naming
# the flag, instead of running with their defaults; bench_t2 refuses --chunk 0. Usage: tests/bench_flags.sh BUILD_DIR
set -u
dir=${1:?usage: tests/bench_flags.sh BUILD_DIR}
fail=0
# each with a flag of its own: a valid pair first, then the same flag without its value
for b_flag in bench_generate:--d bench_mamba:--d bench_mfu:--threads bench_mixers:--threads \
              bench_patchtst:--threads bench_t2:--threads step_worker:--batch; do
    b=${b_flag%%:*} flag=${b_flag#*:}
    for args in "--help" "$flag 1 $flag"; do
        # shellcheck disable=SC2086 # args are split on purpose
        err=$(timeout 20 "$dir/$b" $args 2>&1 >/dev/null)
        rc=$?
        last=${args##* }
        if [ "$rc" -ne 2 ] || [[ "$err" != "$b: $last needs a value"* ]]; then
            echo "FAIL $b $args: exit $rc, stderr '$err'"
            fail=1
        else
            echo "ok   $b $args: exit 2, '$err'"
        fi
    done
done
# a value out of range is refused the same way: bench_t2 --chunk 0 (chunks of at least one curve)
err=$(timeout 20 "$dir/bench_t2" --config '{}' --chunk 0 2>&1 >/dev/null)
rc=$?
if [ "$rc" -ne 2 ] || [[ "$err" != "usage: bench_t2"*"[--chunk C]"* ]]; then
    echo "FAIL bench_t2 --chunk 0: exit $rc, stderr '$err'"
    fail=1
else
    echo "ok   bench_t2 --chunk 0: exit 2, usage"
fi
exit "$fail"
