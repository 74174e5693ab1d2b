#!/bin/sh
# tests/run.sh: run every unit test binary (TAP output, one process each,
# with a time limit), then the examples, then the export check; print a
# closing line "N passed, M failed".
BUILD=${BUILD:-build}
export CASK_BIN="$BUILD/cask" CASK_TESTDATA=tests/data CMOCKA_MESSAGE_OUTPUT=TAP
pass=0 fail=0 failed=""
log=$(mktemp)
trap 'rm -f "$log"' EXIT

# ONLY="test_a test_b": run just those unit tests (the sanitizer suites).
for t in "$BUILD"/tests/test_*; do
    [ -x "$t" ] || continue
    if [ -n "${ONLY:-}" ]; then
        case " $ONLY " in *" $(basename "$t") "*) ;; *) continue ;; esac
    fi
    name=$(basename "$t")
    timeout 600 "$t" >"$log" 2>&1
    rc=$?
    ok=$(grep -c '^ok ' "$log")
    bad=$(grep -c '^not ok ' "$log")
    if [ "$rc" -ne 0 ] && [ "$bad" -eq 0 ]; then bad=1; fi  # crashed or timed out
    pass=$((pass + ok)); fail=$((fail + bad))
    if [ "$bad" -ne 0 ]; then
        failed="$failed $name"
        echo "FAIL $name (exit $rc)"; grep -v '^ok ' "$log" | head -40
    else
        echo "ok   $name: $ok tests"
    fi
done

[ -n "${ONLY:-}" ] && { echo "tests: $pass passed, $fail failed"; [ "$fail" -eq 0 ]; exit; }

for e in "$BUILD"/examples/*; do
    [ -x "$e" ] || continue
    name=$(basename "$e")
    if timeout 300 "$e" >"$log" 2>&1; then
        pass=$((pass + 1)); echo "ok   example $name"
    else
        fail=$((fail + 1)); failed="$failed $name"; echo "FAIL example $name"; tail -20 "$log"
    fi
done

if make --no-print-directory -s BUILD="$BUILD" check-exports >"$log" 2>&1; then
    pass=$((pass + 1)); echo "ok   exported symbols all start with cask_"
else
    fail=$((fail + 1)); failed="$failed check-exports"; cat "$log"
fi

[ -n "$failed" ] && echo "failed:$failed"
echo "tests: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
