#!/usr/bin/env bash
# Runs every test suite of `make test`, each bounded in time, all of them even when one fails,
# then prints one summary line per suite with its counts and a total, so a reader of a CI log
# sees at once which part failed. Exits non-zero when any suite failed.
#
#   tests/run.sh                 every suite
#   tests/run.sh cargo browser   only those (names as in SUITES below)
#
# Each suite's output goes to the console and to target/test-logs/<suite>.log. A suite that
# outlives its bound is stopped by `timeout` (with every process it started: the test
# harnesses tie their servers to their own life) and counted as failed.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
LOGS=$ROOT/target/test-logs
mkdir -p "$LOGS"

# name | bound in seconds | kind of output (cargo, node, unittest) | command (run from the root)
SUITES=(
  "cargo|1800|cargo|cargo test --release --locked --no-fail-fast"
  "provider|300|node|cd tests/e2e && node --test --test-reporter=tap provider/"
  "browser|600|node|cd tests/e2e && node --test --test-reporter=tap browser/"
  "dot|300|unittest|tests/e2e/dot/.venv/bin/python -m unittest discover -s tests/e2e/dot -p 'test_*.py'"
  "keycloak|1200|node|cd tests/e2e && node --test --test-reporter=tap --test-concurrency=1 keycloak/"
  "django-unit|120|unittest|cd deploy/examples/django && DJANGO_SECRET_KEY=test-only-not-a-secret-0123456789abcdef .venv/bin/python manage.py test"
  "django|900|node|cd tests/e2e && node --test --test-reporter=tap django/"
  "forward-auth|900|node|cd tests/e2e && node --test --test-concurrency=1 --test-reporter=tap forward-auth/"
  "faults|900|node|cd tests/e2e && node --test --test-concurrency=1 --test-reporter=tap faults/"
  "bench-smoke|600|node|benches/load/smoke.sh"
  "deploy|300|unittest|tests/e2e/deploy/.venv/bin/python -m unittest discover -s tests/e2e/deploy -p 'test_*.py'"
  "fuzz|600|node|tests/fuzz/run.sh smoke"
)

wanted=("$@")
selected() {
  [ ${#wanted[@]} -eq 0 ] && return 0
  local w; for w in "${wanted[@]}"; do [ "$w" = "$1" ] && return 0; done; return 1
}

# Prints "passed failed skipped" from a suite's log.
count() {
  local kind=$1 log=$2
  case $kind in
    cargo)
      # test result: ok. 12 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; ...
      awk '/^test result: /{for(i=1;i<=NF;i++){if($(i+1)~/^passed;/)p+=$i; if($(i+1)~/^failed;/)f+=$i; if($(i+1)~/^ignored;/)s+=$i}}
           END{print p+0, f+0, s+0}' "$log" ;;
    node)
      # TAP summary: "# pass 30", "# fail 0", "# cancelled 0", "# skipped 0", "# todo 1"
      awk '/^# pass /{p+=$3} /^# fail /{f+=$3} /^# cancelled /{f+=$3} /^# (skipped|todo) /{s+=$3}
           END{print p+0, f+0, s+0}' "$log" ;;
    unittest)
      # "Ran 12 tests in 3.2s" then "OK", "OK (skipped=1)" or "FAILED (failures=1, errors=2)"
      awk '/^Ran [0-9]+ tests? in/{n+=$2}
           /^(OK|FAILED)/{line=$0; while(match(line,/(failures|errors|skipped|expected failures|unexpected successes)=[0-9]+/)){
             kv=substr(line,RSTART,RLENGTH); split(kv,a,"="); if(a[1]=="skipped")s+=a[2]; else if(a[1]=="failures"||a[1]=="errors")f+=a[2];
             line=substr(line,RSTART+RLENGTH)}}
           END{print n-f-s, f+0, s+0}' "$log" ;;
  esac
}

results=()
total_p=0 total_f=0 total_s=0 any_failed=0
for entry in "${SUITES[@]}"; do
  IFS='|' read -r name bound kind cmd <<<"$entry"
  selected "$name" || continue
  log=$LOGS/$name.log
  echo
  echo "=== suite $name (bound ${bound}s): $cmd"
  start=$(date +%s)
  timeout -k 30 "$bound" bash -c "$cmd" 2>&1 | tee "$log"
  code=${PIPESTATUS[0]}
  took=$(( $(date +%s) - start ))
  read -r p f s < <(count "$kind" "$log")
  note=""
  if [ "$code" = 124 ] || [ "$code" = 137 ]; then
    note=" (stopped after its bound of ${bound}s)"
  elif [ "$code" != 0 ] && [ "$f" = 0 ]; then
    note=" (exit $code with no failed test counted: see $log)"
  fi
  if [ "$code" != 0 ]; then
    any_failed=1
    [ "$f" = 0 ] && f=1
  fi
  total_p=$((total_p + p)) total_f=$((total_f + f)) total_s=$((total_s + s))
  results+=("$name|$p|$f|$s|$took|$note")
done

echo
echo "=== make test: one line per suite (logs in target/test-logs/)"
for r in "${results[@]}"; do
  IFS='|' read -r name p f s took note <<<"$r"
  printf '%s: %d passed, %d failed, %d skipped\n' "$name" "$p" "$f" "$s"
  printf '    %s took %dm%02ds%s\n' "$name" $((took / 60)) $((took % 60)) "$note"
done
printf 'total: %d passed, %d failed, %d skipped\n' "$total_p" "$total_f" "$total_s"
exit "$any_failed"
