#!/usr/bin/env bash
# Installs every build, test, lab and demo dependency of tokenlb from Debian packages.
# Idempotent: packages already present are skipped, apt is only touched when something is missing.
set -euo pipefail

PKGS=(
  # build
  build-essential g++ meson ninja-build pkg-config python3 clang-format
  # libraries
  dpdk libdpdk-dev libnuma-dev libpcap-dev libhyperscan-dev libsimdjson-dev
  libsentencepiece-dev sentencepiece libhttp-parser-dev libtomlplusplus-dev
  # tests and benchmarks
  libgtest-dev libgmock-dev libbenchmark-dev clang libclang-rt-14-dev valgrind
  # lab
  iproute2 iputils-ping arping iptables curl procps psmisc ethtool tcpdump wrk
  # corpora for tokenizer calibration tests
  fortunes fortunes-min fortunes-de fortunes-es fortunes-ru fortunes-zh
  # demo and observability
  gnuplot-nox prometheus
)

missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#PKGS[@]} packages present"
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: missing packages (${missing[*]}); run as root (sudo)" >&2
  exit 1
fi

echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
# The prometheus package starts a system service on install; tests start their own on loopback.
if command -v systemctl >/dev/null 2>&1; then systemctl disable --now prometheus >/dev/null 2>&1 || true; fi
pkill -x prometheus 2>/dev/null || true
echo "install-deps: done"
