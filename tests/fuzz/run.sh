#!/usr/bin/env bash
# The fuzz targets of tests/fuzz (cargo-fuzz, libFuzzer): install, build, and run them.
#
#   tests/fuzz/run.sh install          cargo-fuzz $CARGO_FUZZ_VERSION into tests/fuzz/.tools, once
#   tests/fuzz/run.sh build [PROFILE]  every target, in PROFILE (dev, the default, or release)
#   tests/fuzz/run.sh smoke [T…]       `make test`'s suite: each target (dev build) over its
#                                      committed corpus, then new inputs for
#                                      FUZZ_SMOKE_SECONDS (20); TAP and a pass/fail line
#   tests/fuzz/run.sh long [T…]        `make fuzz`: each target (release build) for
#                                      FUZZ_SECONDS (600); the new inputs it finds are kept
#                                      in target/corpus/<target>
#   tests/fuzz/run.sh seeds            rewrites the seeds only the targets can make (values
#                                      sealed with their secret, tokens signed with their key)
#
# Targets build with the stable toolchain: without a sanitizer (`-s none`), cargo-fuzz needs
# no nightly-only flag, so neither a nightly toolchain nor RUSTC_BOOTSTRAP. The library
# forbids unsafe code and its C dependency (aws-lc) is not instrumented by rustc's
# sanitizers either way, so AddressSanitizer would buy little for twice the build and run
# time; panics, overflows (debug assertions are on in both profiles), inputs slower than
# FUZZ_TIMEOUT_SECONDS and memory beyond FUZZ_RSS_LIMIT_MB are what the runs catch. The dev
# profile (tests/fuzz/Cargo.toml) builds in a fraction of the release build's time, which
# keeps `make test` short; the long runs want the release build's speed. A crash is written
# to tests/fuzz/artifacts/<target>/ and the run fails; replay it with
# `target/x86_64-unknown-linux-gnu/<release|debug>/<target> <file>` from tests/fuzz.
set -euo pipefail
cd "$(dirname "$0")"
FUZZ=$PWD
CARGO_FUZZ_VERSION=0.13.2
TOOLS=$FUZZ/.tools
TARGETS=(path_normalize forward_auth bearer_token session_cookie config_load form_method)
# The folder of a profile's binaries.
bin() { echo "$FUZZ/target/x86_64-unknown-linux-gnu/$([ "$1" = dev ] && echo debug || echo release)"; }
: "${FUZZ_SMOKE_SECONDS:=20}" "${FUZZ_SECONDS:=600}" "${FUZZ_RSS_LIMIT_MB:=2048}"
# A slower input than this is a finding too (libFuzzer's default is 20 minutes).
: "${FUZZ_TIMEOUT_SECONDS:=10}"

install() {
  if [ "$("$TOOLS/bin/cargo-fuzz" --version 2>/dev/null)" != "cargo-fuzz $CARGO_FUZZ_VERSION" ]; then
    cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked --root "$TOOLS"
  fi
}

build() {
  local profile=${1:-dev}
  install
  # Cargo.lock is committed. When the library's dependencies have changed since, cargo adds
  # what is new to it (keeping every other version) instead of failing the build.
  if ! cargo metadata --locked --format-version 1 >/dev/null 2>&1; then
    cargo metadata --format-version 1 >/dev/null
    echo "tests/fuzz/Cargo.lock: updated to the library's dependencies; commit it" >&2
  fi
  case $profile in
    dev) "$TOOLS/bin/cargo-fuzz" build --fuzz-dir "$FUZZ" --sanitizer none --dev ;;
    release) "$TOOLS/bin/cargo-fuzz" build --fuzz-dir "$FUZZ" --sanitizer none --release --debug-assertions ;;
    *) echo "unknown profile $profile: dev or release" >&2; return 2 ;;
  esac
}

# Options of one target: its dictionary (<target>.dict), if it has one; for paths, inputs
# long enough to pass the 8 KiB limit.
options() {
  if [ -f "$FUZZ/$1.dict" ]; then echo "-dict=$FUZZ/$1.dict"; fi
  if [ "$1" = path_normalize ]; then echo "-max_len=8300"; fi
}

# run BIN_DIR TARGET SECONDS NEW_INPUTS_DIR: every committed seed, then new inputs until
# SECONDS.
run() {
  local dir=$1 t=$2 seconds=$3 new=$4
  mkdir -p "$new" "$FUZZ/artifacts/$t"
  # The first folder receives new inputs; the committed corpus is only read.
  "$dir/$t" $(options "$t") -max_total_time="$seconds" -timeout="$FUZZ_TIMEOUT_SECONDS" \
    -rss_limit_mb="$FUZZ_RSS_LIMIT_MB" -print_final_stats=1 \
    -artifact_prefix="$FUZZ/artifacts/$t/" "$new" "$FUZZ/corpus/$t"
}

# each MODE SECONDS [TARGET…]: runs the targets one after the other, then prints a TAP line
# each and "fuzz: N passed, N failed".
each() {
  local mode=$1 seconds=$2; shift 2
  local wanted=("$@") passed=0 failed=0 lines=() profile=release n=0
  [ ${#wanted[@]} -gt 0 ] || wanted=("${TARGETS[@]}")
  [ "$mode" = smoke ] && profile=dev
  local dir
  dir=$(bin "$profile")
  for t in "${wanted[@]}"; do [ -x "$dir/$t" ] || { build "$profile"; break; }; done
  for t in "${wanted[@]}"; do
    local log=$FUZZ/target/logs/$t.log new
    mkdir -p "$FUZZ/target/logs"
    if [ "$mode" = smoke ]; then
      new=$FUZZ/target/smoke/$t
      rm -rf "$new"
    else
      new=$FUZZ/target/corpus/$t
    fi
    echo "=== fuzz $t: ${seconds}s"
    local code=0
    run "$dir" "$t" "$seconds" "$new" >"$log" 2>&1 || code=$?
    grep -E '^(INFO: seed|INFO: +[0-9]+ files found|#[0-9]+ +(INITED|DONE))' "$log" || true
    local execs
    execs=$(awk '/^stat::number_of_executed_units:/{print $2}' "$log")
    n=$((n + 1))
    if [ "$code" = 0 ]; then
      passed=$((passed + 1))
      lines+=("ok $n - $t: ${execs:-?} executions in ${seconds}s")
    else
      failed=$((failed + 1))
      # The panic and the input that caused it.
      grep -E -A3 "panicked at|^==[0-9]+==|SUMMARY|Test unit written|Base64:|out-of-memory|timeout" "$log" | head -40 || true
      lines+=("not ok $n - $t: exit $code after ${execs:-?} executions, see $log and $FUZZ/artifacts/$t/")
    fi
  done
  echo "1..$n"
  printf '%s\n' "${lines[@]}"
  echo "# pass $passed"
  echo "# fail $failed"
  echo "fuzz: $passed passed, $failed failed"
  [ "$failed" = 0 ]
}

seeds() {
  local dir tmp
  dir=$(bin dev)
  [ -x "$dir/bearer_token" ] && [ -x "$dir/session_cookie" ] || build dev
  tmp=$(mktemp -d)
  for t in bearer_token session_cookie; do
    # One run of an empty input initializes the target, which then writes its seeds.
    PORTCULLIS_FUZZ_WRITE_SEEDS=$FUZZ/corpus "$dir/$t" -runs=1 "$tmp" >/dev/null 2>&1
  done
  rm -rf "$tmp"
  echo "seeds written to $FUZZ/corpus/{bearer_token,session_cookie}"
}

cmd=${1:-smoke}
shift || true
case $cmd in
  install) install ;;
  build) build "$@" ;;
  smoke) each smoke "$FUZZ_SMOKE_SECONDS" "$@" ;;
  long) each long "$FUZZ_SECONDS" "$@" ;;
  seeds) seeds ;;
  *) echo "usage: $0 install|build|smoke|long|seeds [target…]" >&2; exit 2 ;;
esac
