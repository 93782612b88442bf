#!/usr/bin/env bash
# tokenlb demo:  sudo ./scripts/demo.sh
#
# Installs dependencies, builds, brings up the namespace lab (scripts/lab.sh), starts the appliance
# and shows the first packet path: ARP and ICMP echo from the client and GPU namespaces answered
# by tokenlb's worker lcore through DPDK (net_af_packet), then the appliance's own counters.
# Everything it creates is removed on exit, also on failure or Ctrl-C.
#
# Environment: DEMO_BUILDDIR (default build), DEMO_SKIP_BUILD=1 (use an existing build; with
# TOKENLB_BIN to point at another binary).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

if [ "$(id -u)" -ne 0 ]; then
  echo "demo.sh: run as root (sudo ./scripts/demo.sh): the lab needs network namespaces" >&2
  exit 1
fi

BUILDDIR=${DEMO_BUILDDIR:-build}
export TOKENLB_BIN=${TOKENLB_BIN:-$ROOT/$BUILDDIR/app/tokenlb/tokenlb}
LAB=$ROOT/scripts/lab.sh

bold() { if [ -t 1 ]; then printf '\n\033[1m== %s\033[0m\n' "$*"; else printf '\n== %s\n' "$*"; fi; }
run() { echo "\$ $*"; "$@"; }

if [ "${DEMO_SKIP_BUILD:-0}" != 1 ]; then
  bold "1. dependencies (Debian packages)"
  ./scripts/install-deps.sh
  bold "2. build ($BUILDDIR/)"
  ./scripts/build.sh --builddir "$BUILDDIR"
fi
[ -x "$TOKENLB_BIN" ] || { echo "demo.sh: no appliance binary at $TOKENLB_BIN" >&2; exit 1; }

# The lab's names are fixed: wait for a test or another demo that is using it.
exec 9>/run/tokenlb-lab.lock
flock -n 9 || { echo "demo.sh: the lab is in use (a test run?); waiting..."; flock -w 900 9; }

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  bold "cleanup"
  "$LAB" stop || true
  "$LAB" down || true
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

bold "3. the lab: namespaces tlb-client and tlb-gpu, veths to the appliance's two ports"
run "$LAB" up
run ip -n tlb-client -br addr show dev tlbc1
run ip -n tlb-gpu -br addr show dev tlbg1

bold "4. before the appliance runs, nothing answers 10.10.0.1"
run ip netns exec tlb-client ping -c 2 -W 1 10.10.0.1 || echo "(no reply, as expected)"

bold "5. start tokenlb (DPDK, net_af_packet on tlbc0 and tlbg0; conf/lab.toml)"
run "$LAB" start
grep -E "^tokenlb: (EAL args|port|ready)" "$ROOT/lab-run/tokenlb.log"

bold "6. ARP and ping from the client namespace to the VIP, answered by the worker lcore"
run ip netns exec tlb-client arping -c 3 -i tlbc1 10.10.0.1
run ip netns exec tlb-client ping -c 5 -i 0.2 10.10.0.1
run ip -n tlb-client neigh show 10.10.0.1

bold "7. the same from the GPU namespace to the appliance's backend-side address"
run ip netns exec tlb-gpu arping -c 3 -i tlbg1 10.20.0.1
run ip netns exec tlb-gpu ping -c 5 -i 0.2 -s 1400 10.20.0.1

bold "8. addresses the appliance does not own stay silent"
run ip netns exec tlb-client arping -c 2 -w 3 -i tlbc1 10.10.0.77 || echo "(no reply, as expected)"

bold "9. the appliance's counters (SIGUSR1)"
run "$LAB" counters

bold "10. stop: SIGTERM, clean exit with a final summary; then nothing answers again"
run "$LAB" stop
run ip netns exec tlb-client ping -c 2 -W 1 10.10.0.1 || echo "(no reply, as expected)"

bold "done: the first packet path works; the cleanup below removes the lab"
