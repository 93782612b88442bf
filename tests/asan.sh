#!/usr/bin/env bash
# The request-path unit suites (framing, body extraction, token estimator, prefix fingerprint,
# classify, the whole understand step) built again with AddressSanitizer and UBSan in their own
# build dir and run (called by scripts/test.sh). The SIMD kernels read whole vectors around the
# bytes they price; this is what checks that no load leaves its buffer (an out-of-bounds stack
# read in the Han run pricing was found this way). Exits non-zero on a build failure, a failed
# test or a sanitizer report.
set -uo pipefail
cd "$(dirname "$0")/.."
BUILD=${ASAN_BUILD_DIR:-build-asan}
SUITES=(http_test openai_test tokens_test prefix_test classify_test understand_test)

if [ ! -f "$BUILD/build.ninja" ]; then
  meson setup "$BUILD" -Dbuildtype=debugoptimized -Db_sanitize=address,undefined -Db_lundef=false \
    -Dbenchmarks=false || { echo "asan: meson setup failed"; exit 1; }
fi
ninja -C "$BUILD" $(for s in "${SUITES[@]}"; do echo "tests/unit/$s"; done) || { echo "asan: build failed"; exit 1; }

export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
rc=0
for s in "${SUITES[@]}"; do
  if "$BUILD/tests/unit/$s" --gtest_brief=1 > "$BUILD/$s.log" 2>&1; then
    echo "asan: $s ok ($(tail -n 1 "$BUILD/$s.log"))"
  else
    echo "asan: $s FAILED"; tail -n 40 "$BUILD/$s.log"; rc=1
  fi
done
exit $rc
