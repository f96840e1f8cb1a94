#!/usr/bin/env bash
# The bench harness in seconds, so that it cannot rot between `make bench` runs (a suite of
# `make test`): benches/load/compare.sh with 1 s runs on four targets (nginx, public, bearer,
# login) and both probes kept small, then the report it wrote; and the criterion benches, each
# run once (`cargo bench -- --test`). Prints TAP; exits non-zero when any check fails.
#
#   benches/load/smoke.sh
#
# Needs what compare.sh needs for those targets (wrk, nginx, node with tests/e2e installed) and
# a release build.
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT_DIR=target/bench-smoke
mkdir -p "$OUT_DIR"
REPORT=$OUT_DIR/BENCHMARKS.md
rm -f "$REPORT"
n=0 pass=0 fail=0
check() { # DESCRIPTION COMMAND...
    local d=$1
    shift
    n=$((n + 1))
    if "$@"; then pass=$((pass + 1)); echo "ok $n - $d"
    else fail=$((fail + 1)); echo "not ok $n - $d"; fi
}
echo "TAP version 13"
check "compare.sh: 4 targets, 1 s runs, jwks and memory probes" env \
    TARGETS=nginx,public,bearer,login PROBES=jwks,memory IDLE_CONNS=300 BURST=200 \
    DURATION=1s ROUNDS=1 WARMUP=0s CONNS=16 OUT="$REPORT" benches/load/compare.sh
has() { grep -qF -- "$1" "$REPORT" 2>/dev/null || { echo "# $REPORT lacks: $1"; return 1; }; }
check "the report has the machine, the date and the command" \
    bash -c "grep -q '^- \*\*Machine:\*\* ' '$REPORT' && grep -q '^- \*\*Date:\*\* ' '$REPORT' && grep -q 'benches/load/compare.sh\`' '$REPORT'"
for row in 'nginx `proxy_pass` |' 'Portcullis `public` |' 'Portcullis `bearer`, one RS256 token repeated |' 'Portcullis `login`, a real session cookie |'; do
    check "the report has a row: $row" has "| $row"
done
check "the report marks the CPU ratio of public vs nginx" bash -c "grep -E '^\| CPU per request: \`public\` ≤ 2.5× nginx \| [0-9.]+× \| (met|\*\*not met\*\*) \|$' '$REPORT' >/dev/null"
check "the jwks probe counted one fetch for 200 requests of a new kid" has '| 200 concurrent requests with tokens of a new `kid` → 1 JWKS fetch | 1 fetch '
check "the memory probe measured 300 connections" has 'MB with 300 ('
check "the report counts no errors" has 'over all runs: 0.'
check "the criterion benches run (each once)" cargo bench --locked --benches -q -- --test
echo "1..$n"
echo "# pass $pass"
echo "# fail $fail"
((fail == 0))
