# Shared by the interleaved A/B scripts (bench/mfu_ab.sh, t2_ab.sh, patchtst_ab.sh). Sourced, not
# run; the caller sets OLD, NEW and T. `ab_rounds REPS FN` calls `FN BINARY LABEL` for OLD, then
# NEW, REPS times, so the slow drifts of a shared machine hit both alike; LABEL is "old|new rep R
# threads T load L" (L: the 1-minute load average before the run).
ab_rounds() {
    ab_reps=$1 ab_fn=$2 ab_rep=1
    while [ "$ab_rep" -le "$ab_reps" ]; do
        for ab_v in old new; do
            if [ "$ab_v" = old ]; then ab_bin=$OLD; else ab_bin=$NEW; fi
            "$ab_fn" "$ab_bin" "$ab_v rep $ab_rep threads $T load $(cut -d' ' -f1 /proc/loadavg)"
        done
        ab_rep=$((ab_rep + 1))
    done
}
