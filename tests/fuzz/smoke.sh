#!/usr/bin/env bash
# Fuzz smoke run (called by scripts/test.sh): builds the libFuzzer targets with clang in their own
# build dir and runs each for FUZZ_SECONDS (default 60) from the seed corpus in
# tests/fuzz/corpus/<target>/. Exits non-zero if a target fails to build or finds a crash,
# a sanitizer report or a broken invariant.
#
# The libraries are instrumented too (-fsanitize=fuzzer-no-link plus ASan/UBSan through meson's
# b_sanitize), otherwise libFuzzer would only see coverage of the small target files and not of
# lib/http and lib/openai. New inputs go to build-fuzz/corpus-work/, never into the repository.
set -uo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
BUILD=${FUZZ_BUILD_DIR:-build-fuzz}
SECONDS_PER_TARGET=${FUZZ_SECONDS:-60}
TARGETS=(http_request http_response openai_body tokens_estimate)

if [ ! -f "$BUILD/build.ninja" ]; then
  CC=clang CXX=clang++ meson setup "$BUILD" -Dfuzz=true -Dtests=false -Dbenchmarks=false \
    -Dbuildtype=debugoptimized -Db_sanitize=address,undefined -Db_lundef=false \
    -Dcpp_args=-fsanitize=fuzzer-no-link -Dc_args=-fsanitize=fuzzer-no-link \
    || { echo "fuzz smoke: meson setup failed"; exit 1; }
fi
ninja -C "$BUILD" $(for t in "${TARGETS[@]}"; do echo "tests/fuzz/${t}_fuzz"; done) \
  || { echo "fuzz smoke: build failed"; exit 1; }

export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
rc=0
for t in "${TARGETS[@]}"; do
  bin="$BUILD/tests/fuzz/${t}_fuzz"
  work="$BUILD/corpus-work/$t"
  art="$BUILD/artifacts/$t/"
  mkdir -p "$work" "$art"
  cp -n "tests/fuzz/corpus/$t/"* "$work/" 2>/dev/null || true
  echo "== $t (${SECONDS_PER_TARGET}s)"
  "$bin" -max_total_time="$SECONDS_PER_TARGET" -max_len=8192 -timeout=10 -rss_limit_mb=2048 \
    -artifact_prefix="$art" -print_final_stats=1 "$work" > "$BUILD/fuzz-$t.log" 2>&1
  r=$?
  grep -E "^stat::number_of_executed_units|^stat::new_units_added|Done [0-9]+ runs" "$BUILD/fuzz-$t.log" | tr '\n' ' '
  echo
  if [ $r -ne 0 ]; then
    echo "fuzz smoke: $t FAILED (rc=$r); artifacts in $art"
    tail -n 40 "$BUILD/fuzz-$t.log"
    rc=1
  else
    echo "fuzz smoke: $t ok"
  fi
done
exit $rc
