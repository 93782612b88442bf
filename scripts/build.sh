#!/usr/bin/env bash
# Configure and build tokenlb into build/ (release by default).
#   scripts/build.sh [--debug] [--asan] [--werror] [--builddir DIR]
set -euo pipefail
cd "$(dirname "$0")/.."

buildtype=release
builddir=build
extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --debug) buildtype=debug ;;
    --asan) extra+=(-Db_sanitize=address,undefined -Db_lundef=false); buildtype=debug; builddir=${builddir}-asan ;;
    --werror) extra+=(-Dwerror=true) ;;
    --builddir) builddir=$2; shift ;;
    *) echo "build.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
# CI builds are warning-free builds.
if [ "${CI:-}" = "true" ]; then extra+=(-Dwerror=true); fi

if [ -f "$builddir/build.ninja" ]; then
  meson configure "$builddir" -Dbuildtype="$buildtype" "${extra[@]}" >/dev/null
else
  meson setup "$builddir" --buildtype="$buildtype" "${extra[@]}"
fi
ninja -C "$builddir"
echo "build.sh: built into $builddir ($buildtype)"
