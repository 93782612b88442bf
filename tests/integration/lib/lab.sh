# Shared helpers for integration tests that use the namespace lab. Source it:
#   . "$(dirname "$0")/lib/lab.sh"
#   lab_session            # lock, lab.sh up, trap -> lab.sh stop + down on any exit
#   lab_start [args...]    # lab.sh start (appliance, and gpu-emu with --backends N)
#   in_client CMD...       # run in tlb-client;  in_gpu CMD... in tlb-gpu
#   pass/fail MSG          # uniform result lines; fail exits 1 (the trap cleans up)
# Several engineers run integration tests on one machine and the lab names are fixed, so a whole
# session (up .. down) holds an exclusive flock on /run/tokenlb-lab.lock (fd 9; lab.sh closes fd 9
# for everything it launches, so only this shell holds it).

LAB_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
LAB_SH=$LAB_ROOT/scripts/lab.sh
LAB_LOCK_FILE=${LAB_LOCK_FILE:-/run/tokenlb-lab.lock}
LAB_LOCK_WAIT=${LAB_LOCK_WAIT:-900}
LAB_VIP=10.10.0.1
LAB_CLIENT=10.10.0.2
LAB_APPLIANCE_GPU=10.20.0.1
export LAB_RUN=${LAB_RUN:-$LAB_ROOT/lab-run}
export TOKENLB_BIN=${TOKENLB_BIN:-$LAB_ROOT/build/app/tokenlb/tokenlb}

lab_log() { echo "[$(date +%H:%M:%S)] $*"; }
pass() { lab_log "PASS: $*"; }
fail() { lab_log "FAIL: $*"; exit 1; }

lab_lock() {
  exec 9>"$LAB_LOCK_FILE"
  if ! flock -n 9; then
    lab_log "lab busy (another test or demo holds $LAB_LOCK_FILE); waiting up to ${LAB_LOCK_WAIT}s"
    flock -w "$LAB_LOCK_WAIT" 9 || fail "could not get the lab lock"
  fi
}

_lab_cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [ $rc -ne 0 ] && [ -f "$LAB_RUN/tokenlb.log" ]; then
    lab_log "appliance log (tail):"; tail -n 40 "$LAB_RUN/tokenlb.log" || true
  fi
  "$LAB_SH" stop >/dev/null 2>&1 || true
  "$LAB_SH" down >/dev/null 2>&1 || true
  exit $rc
}

lab_session() {
  [ "$(id -u)" -eq 0 ] || { echo "needs root" >&2; exit 1; }
  lab_lock
  trap _lab_cleanup EXIT
  trap 'exit 130' INT TERM
  "$LAB_SH" up
}

lab_start() { "$LAB_SH" start "$@"; }
lab_stop() { "$LAB_SH" stop; }
in_client() { ip netns exec tlb-client "$@"; }
in_gpu() { ip netns exec tlb-gpu "$@"; }
