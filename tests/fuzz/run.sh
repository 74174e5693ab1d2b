#!/bin/sh
# tests/fuzz/run.sh TARGET...: run each libFuzzer target (build/fuzz/bin/)
# for $FUZZ_SECONDS seconds on a corpus seeded from tests/fuzz/seeds/ and
# regress/, the test data and, when present, ../shared/dagsets; print the
# executions and the crashes of each. Crashes are kept in build/fuzz/crashes/.
set -u
secs=${FUZZ_SECONDS:-60}
out=$(cd "${FUZZ_BUILD:-build/fuzz}" 2>/dev/null && pwd || echo "$(pwd)/build/fuzz")
mkdir -p "$out/crashes"
small() { # the files under the given paths of at most 300 KB
    for d in "$@"; do [ -e "$d" ] && find "$d" -type f -size -300k; done 2>/dev/null
}
fail=0
for t in "$@"; do
    corpus=$out/corpus/$t
    mkdir -p "$corpus"
    case $t in
        graph_json) extra=$(small tests/data/graphs tests/data/json_bad) ;;
        graph_run) extra=$(small tests/data/graphs) ;;
        wfcommons) extra=$(small tests/data/dagsets/wfinstances tests/data/dagsets/legacy ../shared/dagsets/wfinstances ../shared/dagsets/pegasus-instances-legacy | grep '\.json$') ;;
        stg) extra=$(small tests/data/dagsets/stg ../shared/dagsets/stg | grep '\.stg$') ;;
        graph_load) extra=$(small tests/data/graphs tests/data/dagsets ../shared/dagsets | grep -v 'README\|\.csv$') ;;
        *) extra= ;;
    esac
    for f in tests/fuzz/seeds/$t/* tests/fuzz/regress/$t/* $extra; do
        [ -f "$f" ] && cp "$f" "$corpus/" 2>/dev/null
    done
    log=$out/$t.log
    "$out/bin/fuzz_$t" -max_total_time="$secs" -print_final_stats=1 -close_fd_mask=3 \
        -seed="${FUZZ_SEED:-1}" -timeout=20 -rss_limit_mb=4096 -artifact_prefix="$out/crashes/$t-" "$corpus" >"$log" 2>&1
    rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1)
    crashes=$(ls "$out/crashes" | grep -c "^$t-")
    printf '%-12s %10s executions  %-10s  %d crash files  exit %d\n' "$t" "${execs:-?}" "$cov" "$crashes" "$rc"
    if [ "$rc" -ne 0 ]; then
        fail=1
        grep -A30 '==ERROR\|SUMMARY\|deadly signal\|Test unit written' "$log" | head -50
    fi
done
[ "$fail" -eq 0 ] && echo "fuzz: no crash" || echo "fuzz: crashes found (build/fuzz/crashes/)"
exit $fail
