#!/usr/bin/env bash
# Installs dependencies, builds, and runs every test suite: unit (GoogleTest), integration
# (network namespaces, real kernel clients, real backends), the request-path suites under
# ASan/UBSan and a fuzz smoke run.
# Exits non-zero on any failure. Prints "N passed, N failed" as its last line.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

if [ "$(id -u)" -ne 0 ]; then
  echo "test.sh: run as root (sudo ./scripts/test.sh): the lab needs network namespaces" >&2
  exit 1
fi

./scripts/install-deps.sh || { echo "test.sh: dependency install failed" >&2; exit 1; }
./scripts/build.sh --werror || { echo "test.sh: build failed" >&2; echo "0 passed, 1 failed"; exit 1; }

passed=0; failed=0; failed_names=()
record() { # name rc
  if [ "$2" -eq 0 ]; then passed=$((passed+1)); echo "PASS $1"
  else failed=$((failed+1)); failed_names+=("$1"); echo "FAIL $1 (rc=$2)"; fi
}

echo "== unit tests =="
for t in build/tests/unit/*_test; do
  [ -x "$t" ] || continue
  name=unit/$(basename "$t")
  timeout 900 "$t" --gtest_brief=1 > "build/$(basename "$t").log" 2>&1
  rc=$?
  tail -n 3 "build/$(basename "$t").log"
  [ $rc -ne 0 ] && tail -n 40 "build/$(basename "$t").log"
  record "$name" $rc
done

echo "== integration tests =="
for t in tests/integration/test_*; do
  [ -x "$t" ] || continue
  name=integration/$(basename "$t")
  echo "-- $name"
  timeout 1200 "$t" > "build/$(basename "$t").log" 2>&1
  rc=$?
  tail -n 5 "build/$(basename "$t").log"
  [ $rc -ne 0 ] && tail -n 60 "build/$(basename "$t").log"
  record "$name" $rc
done

if [ -x tests/asan.sh ]; then
  echo "== request-path suites under ASan/UBSan =="
  timeout 1800 tests/asan.sh > build/asan.log 2>&1
  rc=$?
  tail -n 8 build/asan.log
  record asan/request-path $rc
fi

if [ -x tests/fuzz/smoke.sh ]; then
  echo "== fuzz smoke =="
  timeout 900 tests/fuzz/smoke.sh > build/fuzz-smoke.log 2>&1
  rc=$?
  tail -n 10 build/fuzz-smoke.log
  record fuzz/smoke $rc
fi

echo "== summary =="
for n in "${failed_names[@]}"; do echo "failed: $n"; done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
