#!/usr/bin/env bash
# tokenlb network-namespace lab (see docs/lab.md).
#
#   scripts/lab.sh up                 namespaces tlb-client / tlb-gpu + veths (idempotent)
#   scripts/lab.sh down               stop what start launched, remove exactly what up made
#   scripts/lab.sh start [--backends N] [--policy NAME] [--config FILE] [--stats-interval S]
#                                     gpu-emu backends (when built) + the appliance, in background;
#                                     waits until the appliance answers ping on both sides
#   scripts/lab.sh stop               end exactly the processes start launched (PIDs in lab-run/)
#   scripts/lab.sh status             what exists / runs
#   scripts/lab.sh counters           ask the appliance for its counters (SIGUSR1) and print them
#
#   tlb-client: tlbc1 10.10.0.2/24  <-veth->  tlbc0 (root ns) = DPDK net_af_packet0,iface=tlbc0
#   tlb-gpu:    tlbg1 10.20.0.11../24 <-veth-> tlbg0 (root ns) = DPDK net_af_packet1,iface=tlbg0
#   appliance:  VIP 10.10.0.1 (client side), 10.20.0.1 (backend side)
#
# Environment: TOKENLB_BIN (default build/app/tokenlb/tokenlb), GPU_EMU_BIN (default
# build/perf/gpu-emu/gpu-emu), LAB_RUN (default lab-run/), LAB_START_TIMEOUT (s, default 60).
# Tests serialise whole lab sessions with flock on /run/tokenlb-lab.lock (tests/integration/lib/lab.sh);
# this script closes that descriptor (9) for everything it launches so a leftover process can never
# hold the lock.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

NS_CLIENT=tlb-client
NS_GPU=tlb-gpu
IF_C0=tlbc0 IF_C1=tlbc1 IF_G0=tlbg0 IF_G1=tlbg1
CLIENT_ADDR=10.10.0.2/24
VIP=10.10.0.1
APPLIANCE_GPU_ADDR=10.20.0.1
GPU_NET=10.20.0
DEFAULT_GPU_ADDRS=4          # 10.20.0.11-14, the lab config's backends
LAB_RUN=${LAB_RUN:-$ROOT/lab-run}
TOKENLB_BIN=${TOKENLB_BIN:-$ROOT/build/app/tokenlb/tokenlb}
GPU_EMU_BIN=${GPU_EMU_BIN:-$ROOT/build/perf/gpu-emu/gpu-emu}
LAB_CONFIG_DEFAULT=$ROOT/conf/lab.toml
START_TIMEOUT=${LAB_START_TIMEOUT:-60}
OP_LOCK=/run/tokenlb-lab.op.lock

log() { echo "lab: $*"; }
die() { echo "lab: $*" >&2; exit 1; }

need_root() { [ "$(id -u)" -eq 0 ] || die "run as root (network namespaces)"; }

# No `cmd | grep -q` under pipefail: grep's early exit can fail the pipeline with SIGPIPE.
ns_exists() { [ -e "/run/netns/$1" ]; }
link_exists() { ip link show dev "$1" >/dev/null 2>&1; }
ns_link_exists() { ip -n "$1" link show dev "$2" >/dev/null 2>&1; }

# Kernel offloads off on a veth end: otherwise af_packet sees partial checksums (tx csum offload)
# and 64 KiB super-segments (TSO/GSO/GRO). Features a kernel does not have are skipped.
offloads_off() { # [ns] dev
  local pre=()
  if [ $# -eq 2 ]; then pre=(ip netns exec "$1"); shift; fi
  local f
  for f in rx tx sg tso gso gro lro rxvlan txvlan; do
    "${pre[@]}" ethtool -K "$1" "$f" off >/dev/null 2>&1 || true
  done
}

# The root-namespace ends belong to DPDK: the kernel must neither forward what arrives there,
# nor answer ARP, nor chatter IPv6 (router/neighbour solicitations would show up as drops).
quiet_root_end() {
  local dev=$1
  sysctl -qw "net.ipv6.conf.$dev.disable_ipv6=1" 2>/dev/null || true
  sysctl -qw "net.ipv4.conf.$dev.forwarding=0" 2>/dev/null || true
  sysctl -qw "net.ipv4.conf.$dev.arp_ignore=8" 2>/dev/null || true
  sysctl -qw "net.ipv4.conf.$dev.arp_announce=2" 2>/dev/null || true
  ip addr flush dev "$dev" 2>/dev/null || true
}

make_pair() { # root-end ns ns-end
  local r=$1 ns=$2 n=$3
  if link_exists "$r" && ! ns_link_exists "$ns" "$n"; then
    ip link del "$r"   # half-made pair from an interrupted run: ours by name, remake it
  fi
  if ! link_exists "$r"; then
    ip link add "$r" type veth peer name "$n" netns "$ns"
  fi
  offloads_off "$r"
  offloads_off "$ns" "$n"
  quiet_root_end "$r"
  ip link set "$r" up
  ip -n "$ns" link set "$n" up
}

ensure_gpu_addrs() { # count
  local i
  for ((i = 1; i <= $1; i++)); do
    local a="$GPU_NET.$((10 + i))"
    # Not `ip | grep -q`: with pipefail, grep's early exit can fail the pipeline (SIGPIPE).
    [[ "$(ip -n "$NS_GPU" -4 addr show dev "$IF_G1")" == *"inet $a/"* ]] ||
      ip -n "$NS_GPU" addr add "$a/24" dev "$IF_G1"
  done
}

cmd_up() {
  need_root
  exec 8>"$OP_LOCK"; flock -w 60 8 || die "another lab.sh up/down is running"
  local ns
  for ns in "$NS_CLIENT" "$NS_GPU"; do
    ns_exists "$ns" || ip netns add "$ns"
    ip -n "$ns" link set lo up
    ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 2>/dev/null || true
    ip netns exec "$ns" sysctl -qw net.ipv6.conf.default.disable_ipv6=1 2>/dev/null || true
  done
  make_pair "$IF_C0" "$NS_CLIENT" "$IF_C1"
  make_pair "$IF_G0" "$NS_GPU" "$IF_G1"
  [[ "$(ip -n "$NS_CLIENT" -4 addr show dev "$IF_C1")" == *"inet $CLIENT_ADDR"* ]] ||
    ip -n "$NS_CLIENT" addr add "$CLIENT_ADDR" dev "$IF_C1"
  ensure_gpu_addrs "$DEFAULT_GPU_ADDRS"
  mkdir -p "$LAB_RUN"
  log "up: $NS_CLIENT($IF_C1 $CLIENT_ADDR) <-> $IF_C0 | $IF_G0 <-> $NS_GPU($IF_G1 $GPU_NET.11-$((10 + DEFAULT_GPU_ADDRS))/24)"
}

cmd_down() {
  need_root
  cmd_stop || true
  exec 8>"$OP_LOCK"; flock -w 60 8 || die "another lab.sh up/down is running"
  local ns
  for ns in "$NS_CLIENT" "$NS_GPU"; do
    if ns_exists "$ns"; then ip netns del "$ns"; fi
  done
  # Deleting a namespace destroys its veth end and so the pair; remove a root end left alone.
  local r
  for r in "$IF_C0" "$IF_G0"; do
    if link_exists "$r"; then ip link del "$r" 2>/dev/null || true; fi
  done
  log "down"
}

lab_is_up() {
  ns_exists "$NS_CLIENT" && ns_exists "$NS_GPU" && link_exists "$IF_C0" && link_exists "$IF_G0" &&
    ns_link_exists "$NS_CLIENT" "$IF_C1" && ns_link_exists "$NS_GPU" "$IF_G1"
}

# pid file -> pid if that process is alive and runs the binary we launched (guards PID reuse).
live_pid() { # pidfile
  [ -f "$1" ] || return 1
  local pid exe want
  pid=$(cat "$1" 2>/dev/null) || return 1
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  [ -d "/proc/$pid" ] || return 1
  want=$(cat "$1.exe" 2>/dev/null || true)
  exe=$(readlink "/proc/$pid/exe" 2>/dev/null || true)
  if [ -n "$want" ] && [ "$exe" != "$want" ]; then return 1; fi
  echo "$pid"
}

launch() { # name logfile cmd... ; records pid + exe
  local name=$1 logf=$2; shift 2
  "$@" >"$logf" 2>&1 9>&- 8>&- </dev/null &
  local pid=$!
  echo "$pid" >"$LAB_RUN/$name.pid"
  # ip netns exec execs the program, so the PID is the program's; remember the binary for stop.
  local bin=$1
  if [ "$bin" = ip ]; then bin=$5; fi
  readlink -f "$bin" >"$LAB_RUN/$name.pid.exe" 2>/dev/null || true
}

# Copy of the config with [policy] name and the first N [[backends]] only (lab-run/lab.toml).
derive_config() { # src dst policy backends
  awk -v policy="$3" -v nb="$4" '
    /^\[\[backends\]\]/ { section = "backends"; nbk++; skip = (nb != "" && nbk > nb); if (!skip) print; next }
    /^\[backends\./     { if (!skip) print; next }
    /^\[/               { section = $0; skip = 0; print; next }
    {
      if (skip) next
      if (policy != "" && section == "[policy]" && $1 == "name") { print "name = \"" policy "\""; next }
      print
    }' "$1" >"$2"
}

config_backends() { # config -> "address profile_name" lines
  "$TOKENLB_BIN" --check-config "$1" | awk '
    /^\[\[backends\]\]/ { inb = 1; next }
    /^\[/ && !/^\[backends\./ { inb = 0 }
    inb && $1 == "address" { gsub(/"/, "", $3); addr = $3 }
    inb && $1 == "profile_name" { gsub(/"/, "", $3); print addr, ($3 == "" ? "default" : $3) }'
}

wait_ping() { # ns addr timeout_s
  local end=$((SECONDS + $3))
  while [ $SECONDS -lt $end ]; do
    ip netns exec "$1" ping -c 1 -W 1 "$2" >/dev/null 2>&1 && return 0
    sleep 0.5
  done
  return 1
}

cmd_start() {
  need_root
  local backends="" policy="" config="$LAB_CONFIG_DEFAULT" stats=0
  while [ $# -gt 0 ]; do
    case "$1" in
      --backends) backends=$2; shift ;;
      --policy) policy=$2; shift ;;
      --config) config=$2; shift ;;
      --stats-interval) stats=$2; shift ;;
      *) die "start: unknown option $1" ;;
    esac
    shift
  done
  [ -z "$backends" ] || [[ "$backends" =~ ^[0-9]+$ ]] || die "--backends wants a number"
  lab_is_up || die "lab is not up (scripts/lab.sh up)"
  [ -x "$TOKENLB_BIN" ] || die "no appliance binary at $TOKENLB_BIN (scripts/build.sh)"
  [ -f "$config" ] || die "no config $config"
  mkdir -p "$LAB_RUN"
  if pid=$(live_pid "$LAB_RUN/tokenlb.pid"); then
    log "appliance already running (pid $pid)"; return 0
  fi

  local run_config=$config
  if [ -n "$policy" ] || [ -n "$backends" ]; then
    run_config=$LAB_RUN/lab.toml
    derive_config "$config" "$run_config" "$policy" "$backends"
    "$TOKENLB_BIN" --check-config "$run_config" >/dev/null || die "derived config $run_config is invalid"
  fi

  # Backends first: the appliance prewarms its pool connections at start.
  if [ -n "$backends" ] && [ "$backends" -gt 0 ]; then
    if [ -x "$GPU_EMU_BIN" ]; then
      ensure_gpu_addrs "$backends"
      local i=0 addr profile
      while read -r addr profile; do
        i=$((i + 1))
        [ "$i" -le "$backends" ] || break
        launch "gpu-emu-$i" "$LAB_RUN/gpu-emu-$i.log" ip netns exec "$NS_GPU" "$GPU_EMU_BIN" \
          --listen "$addr" --profile "$profile" --model llama-3-8b
        log "gpu-emu $i on $addr profile $profile (pid $(cat "$LAB_RUN/gpu-emu-$i.pid"))"
      done < <(config_backends "$run_config")
      [ "$i" -ge "$backends" ] || die "config has only $i backends, asked for $backends"
      for ((i = 1; i <= backends; i++)); do
        local a; a=$(config_backends "$run_config" | sed -n "${i}p" | cut -d' ' -f1)
        local end=$((SECONDS + 30))
        until ip netns exec "$NS_GPU" curl -s -o /dev/null --max-time 1 "http://$a/v1/models"; do
          [ -d "/proc/$(cat "$LAB_RUN/gpu-emu-$i.pid")" ] || { tail -n 20 "$LAB_RUN/gpu-emu-$i.log" >&2; die "gpu-emu $i exited"; }
          [ $SECONDS -lt $end ] || die "gpu-emu $i not answering on $a"
          sleep 0.3
        done
      done
    else
      log "no gpu-emu binary at $GPU_EMU_BIN: starting the appliance without backends"
    fi
  fi

  launch tokenlb "$LAB_RUN/tokenlb.log" "$TOKENLB_BIN" --config "$run_config" --stats-interval "$stats"
  local pid; pid=$(cat "$LAB_RUN/tokenlb.pid")
  local end=$((SECONDS + START_TIMEOUT))
  until grep -q "tokenlb: ready" "$LAB_RUN/tokenlb.log" 2>/dev/null; do
    if ! [ -d "/proc/$pid" ]; then
      tail -n 30 "$LAB_RUN/tokenlb.log" >&2
      rm -f "$LAB_RUN/tokenlb.pid" "$LAB_RUN/tokenlb.pid.exe"
      die "appliance exited during start (log: $LAB_RUN/tokenlb.log)"
    fi
    [ $SECONDS -lt $end ] || { tail -n 30 "$LAB_RUN/tokenlb.log" >&2; cmd_stop; die "appliance not ready after ${START_TIMEOUT}s"; }
    sleep 0.2
  done
  if ! wait_ping "$NS_CLIENT" "$VIP" 20 || ! wait_ping "$NS_GPU" "$APPLIANCE_GPU_ADDR" 20; then
    tail -n 30 "$LAB_RUN/tokenlb.log" >&2
    cmd_stop
    die "appliance started but does not answer ping on $VIP / $APPLIANCE_GPU_ADDR"
  fi
  log "appliance running (pid $pid, log $LAB_RUN/tokenlb.log, config $run_config)"
}

stop_one() { # pidfile name; returns 0 when it stopped a live process
  local pid stopped=1
  if pid=$(live_pid "$1"); then
    stopped=0
    kill -TERM "$pid" 2>/dev/null || true
    local i
    for ((i = 0; i < 100; i++)); do [ -d "/proc/$pid" ] || break; sleep 0.1; done
    if [ -d "/proc/$pid" ]; then
      log "$2 (pid $pid) ignored SIGTERM for 10s: SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      for ((i = 0; i < 50; i++)); do [ -d "/proc/$pid" ] || break; sleep 0.1; done
    fi
    log "stopped $2 (pid $pid)"
  fi
  rm -f "$1" "$1.exe"
  return $stopped
}

cmd_stop() {
  [ -d "$LAB_RUN" ] || return 0
  # Appliance first (it holds connections to the backends), then the backends.
  if stop_one "$LAB_RUN/tokenlb.pid" tokenlb && [ -f "$LAB_RUN/tokenlb.log" ]; then
    # The exit summary: counters line, one line per port, exit code.
    awk '/^tokenlb: stopping/ { p = 1 } p && /^tokenlb: (counters|port|exit)/' "$LAB_RUN/tokenlb.log" || true
  fi
  local f
  for f in "$LAB_RUN"/gpu-emu-*.pid; do
    [ -e "$f" ] || continue
    stop_one "$f" "$(basename "$f" .pid)" || true
  done
  return 0
}

cmd_status() {
  local ns
  for ns in "$NS_CLIENT" "$NS_GPU"; do
    if ns_exists "$ns"; then echo "netns $ns: present"; else echo "netns $ns: absent"; fi
  done
  local l
  for l in "$IF_C0" "$IF_G0"; do
    if link_exists "$l"; then echo "link $l: $(ip -br link show dev "$l" | awk '{print $2}')"; else echo "link $l: absent"; fi
  done
  local f pid any=0
  for f in "$LAB_RUN"/*.pid; do
    [ -e "$f" ] || continue
    any=1
    if pid=$(live_pid "$f"); then echo "$(basename "$f" .pid): running (pid $pid)"; else echo "$(basename "$f" .pid): not running (stale pid file)"; fi
  done
  [ $any -eq 1 ] || echo "processes: none started"
  lab_is_up
}

cmd_counters() {
  local pid
  pid=$(live_pid "$LAB_RUN/tokenlb.pid") || die "appliance not running"
  local before; before=$(grep -c "^tokenlb: counters" "$LAB_RUN/tokenlb.log" || true)
  kill -USR1 "$pid"
  local i
  for ((i = 0; i < 50; i++)); do
    [ "$(grep -c "^tokenlb: counters" "$LAB_RUN/tokenlb.log" || true)" -gt "$before" ] && break
    sleep 0.1
  done
  # The counters line and the port lines that follow it.
  awk '/^tokenlb: counters/ { buf = $0; n = 0; next } /^tokenlb: port .* ipackets=/ { buf = buf "\n" $0 } END { print buf }' \
    "$LAB_RUN/tokenlb.log"
}

case "${1:-}" in
  up) shift; cmd_up "$@" ;;
  down) shift; cmd_down "$@" ;;
  start) shift; cmd_start "$@" ;;
  stop) shift; need_root; cmd_stop ;;
  status) shift; cmd_status ;;
  counters) shift; cmd_counters ;;
  *) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
