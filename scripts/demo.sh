#!/usr/bin/env bash
# tokenlb demo:  sudo ./scripts/demo.sh
#
# Installs dependencies, builds, brings up the namespace lab (scripts/lab.sh) with a mixed fleet of
# four emulated GPU servers (gpu-emu: one H100, two A10G, one L4; conf/lab.toml), and drives the
# same open-loop OpenAI chat workload (perf/loadgen/tokenlb_loadgen.py: Poisson arrivals, short
# chats and long RAG prompts, mostly streamed) through the appliance once per routing policy,
# restarting backends and appliance in between. Prints a side-by-side table and writes
# demo-out/report.md and demo-out/ttft_cdf.png (docs/demo.md explains how to read them).
# Everything it creates is removed on exit, also on failure or Ctrl-C.
#
# Environment:
#   DEMO_BUILDDIR (default build), DEMO_FULL_BUILD=1 (scripts/build.sh: the whole tree, not just
#   tokenlb and gpu-emu), DEMO_SKIP_BUILD=1 (use an existing build; TOKENLB_BIN and
#   GPU_EMU_BIN point at other binaries, as for scripts/lab.sh)
#   DEMO_POLICIES (default "round_robin token_aware"; least_requests also works)
#   DEMO_RATE (req/s, default 4), DEMO_DURATION (s of arrivals, default 40), DEMO_SEED (default 7)
#   DEMO_OUT (default demo-out), DEMO_PING=1 (also show the ARP/ICMP first-packet walk-through),
#   DEMO_CONTENT=0 (skip the last step: routing by content tags, PII kept to a private zone)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

if [ "$(id -u)" -ne 0 ]; then
  echo "demo.sh: run as root (sudo ./scripts/demo.sh): the lab needs network namespaces" >&2
  exit 1
fi

BUILDDIR=${DEMO_BUILDDIR:-build}
export TOKENLB_BIN=${TOKENLB_BIN:-$ROOT/$BUILDDIR/app/tokenlb/tokenlb}
export GPU_EMU_BIN=${GPU_EMU_BIN:-$ROOT/$BUILDDIR/perf/gpu-emu/gpu-emu}
export GPU_EMU_PROFILES_DIR=${GPU_EMU_PROFILES_DIR:-$ROOT/conf/profiles}
LAB=$ROOT/scripts/lab.sh
POLICIES=${DEMO_POLICIES:-round_robin token_aware}
RATE=${DEMO_RATE:-4}
DURATION=${DEMO_DURATION:-40}
SEED=${DEMO_SEED:-7}
OUT=${DEMO_OUT:-$ROOT/demo-out}
BACKENDS=4
T_START=$SECONDS

bold() { if [ -t 1 ]; then printf '\n\033[1m== %s\033[0m\n' "$*"; else printf '\n== %s\n' "$*"; fi; }
run() { echo "\$ $*"; "$@"; }

if [ "${DEMO_SKIP_BUILD:-0}" != 1 ]; then
  bold "1. dependencies (Debian packages)"
  ./scripts/install-deps.sh
  if [ "${DEMO_FULL_BUILD:-0}" = 1 ]; then
    bold "2. build ($BUILDDIR/, everything)"
    ./scripts/build.sh --builddir "$BUILDDIR"
  else
    # Only what the demo runs (the appliance and the emulator): a fresh clone's full build
    # (tests, benchmarks, fuzzers) would not fit the demo's few minutes on a 2-core machine.
    # Same configuration as scripts/build.sh (release); DEMO_FULL_BUILD=1 runs that instead.
    bold "2. build ($BUILDDIR/: tokenlb and gpu-emu)"
    [ -f "$BUILDDIR/build.ninja" ] || meson setup "$BUILDDIR" --buildtype=release
    ninja -C "$BUILDDIR" app/tokenlb/tokenlb perf/gpu-emu/gpu-emu
  fi
fi
[ -x "$TOKENLB_BIN" ] || { echo "demo.sh: no appliance binary at $TOKENLB_BIN" >&2; exit 1; }
[ -x "$GPU_EMU_BIN" ] || { echo "demo.sh: no gpu-emu binary at $GPU_EMU_BIN" >&2; exit 1; }
command -v gnuplot >/dev/null || echo "demo.sh: gnuplot not found: no PNG (apt-get install gnuplot-nox)" >&2

# The lab's names are fixed: wait for a test or another demo that is using it.
exec 9>/run/tokenlb-lab.lock
flock -n 9 || { echo "demo.sh: the lab is in use (a test run?); waiting..."; flock -w 900 9; }

LOADGEN_PID=""
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  bold "cleanup"
  if [ -n "$LOADGEN_PID" ] && [ -d "/proc/$LOADGEN_PID" ]; then kill "$LOADGEN_PID" 2>/dev/null || true; fi
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

if [ "${DEMO_PING:-0}" = 1 ]; then
  bold "3b. first packet path: ARP and ping to the VIP, answered by the worker lcore"
  run "$LAB" start
  run ip netns exec tlb-client arping -c 2 -i tlbc1 10.10.0.1
  run ip netns exec tlb-client ping -c 3 -i 0.2 10.10.0.1
  run ip netns exec tlb-gpu ping -c 3 -i 0.2 -s 1400 10.20.0.1
  run "$LAB" stop
fi

LOADGEN=$ROOT/perf/loadgen/tokenlb_loadgen.py
bold "4. the workload (same for every policy: seed $SEED)"
python3 "$LOADGEN" --describe --rate "$RATE" --duration "$DURATION" --seed "$SEED" --out /dev/null

scrape() { # dir: each backend's /metrics (gpu-emu busy seconds, event lag, ...)
  mkdir -p "$1"
  local i
  for ((i = 1; i <= BACKENDS; i++)); do
    ip netns exec tlb-gpu curl -s --max-time 5 "http://10.20.0.$((10 + i)):8000/metrics" \
      >"$1/gpu-$i.prom" || echo "demo.sh: could not scrape gpu-$i" >&2
  done
}

# Appliance "ready" means its ports answer; its backend pools may still be connecting (a request
# in that window can find every backend held down and get 503 no_backend). Wait until every
# backend has an idle pooled connection (the appliance's /metrics), at most 15 s.
wait_pools() {
  local end=$((SECONDS + 15)) m n
  while [ $SECONDS -lt $end ]; do
    m=$(curl -s --max-time 2 http://127.0.0.1:9100/metrics 2>/dev/null || true)
    if [ -z "$m" ]; then sleep 2; return 0; fi   # no metrics endpoint (older build): settle 2 s
    n=$(awk '/^tokenlb_backend_pool_connections\{.*state="idle"\}/ && $2 + 0 > 0 { n++ } END { print n + 0 }' <<<"$m")
    [ "$n" -ge "$BACKENDS" ] && { sleep 0.5; return 0; }
    sleep 0.3
  done
  echo "demo.sh: backend pools not all connected after 15 s; going on" >&2
}

# Only what an earlier demo wrote, never the directory itself (DEMO_OUT may be any path).
mkdir -p "$OUT"
rm -rf "$OUT"/run-[0-9]*-* "$OUT"/report.md "$OUT"/summary.json "$OUT"/ttft_cdf.*
RUN_DIRS=()
n=0
for policy in $POLICIES; do
  n=$((n + 1))
  d=$OUT/run-$n-$policy
  mkdir -p "$d"
  echo "$policy" >"$d/label"
  bold "5.$n policy $policy: fresh backends and appliance, then ${DURATION}s of arrivals at ${RATE}/s"
  "$LAB" stop >/dev/null 2>&1 || true
  # conf/lab.toml plus an access log for this run (estimated vs actual prompt tokens per request).
  awk -v alog="$d/access.log" '$1 == "access_log" { next } { print } /^\[telemetry\]/ { print "access_log = \"" alog "\"" }' \
    "$ROOT/conf/lab.toml" >"$d/lab.toml"
  run "$LAB" start --backends "$BACKENDS" --policy "$policy" --config "$d/lab.toml"
  wait_pools
  scrape "$d/metrics_before"
  # The load generator runs in the client namespace, a kernel TCP client like any other.
  ip netns exec tlb-client python3 "$LOADGEN" --target 10.10.0.1:80 --rate "$RATE" \
    --duration "$DURATION" --seed "$SEED" --out "$d/requests.jsonl" --label "$policy" \
    --progress on --max-errors 1000000 &
  LOADGEN_PID=$!
  wait "$LOADGEN_PID"
  LOADGEN_PID=""
  scrape "$d/metrics_after"
  # The appliance's own Prometheus endpoint (root namespace, [telemetry] metrics_listen).
  curl -s --max-time 5 http://127.0.0.1:9100/metrics >"$d/tokenlb.prom" 2>/dev/null || rm -f "$d/tokenlb.prom"
  "$LAB" counters >"$d/counters.txt" 2>&1 || true
  cp "$ROOT/lab-run/tokenlb.log" "$d/tokenlb.log" 2>/dev/null || true
  "$LAB" stop >/dev/null
  RUN_DIRS+=("$d")
done

bold "6. results ($OUT/report.md)"
python3 "$ROOT/perf/loadgen/demo_report.py" --outdir "$OUT" \
  --fleet "gpu-1 h100-8b, gpu-2 a10g-8b, gpu-3 a10g-8b, gpu-4 l4-8b (gpu-emu)" "${RUN_DIRS[@]}"
if command -v gnuplot >/dev/null; then
  gnuplot "$OUT/ttft_cdf.gp" && echo "TTFT CDFs: $OUT/ttft_cdf.png"
fi

if [ "${DEMO_CONTENT:-1}" = 1 ]; then
  # Every request's text is tagged with conf/rules (Hyperscan); tags route (docs/classify.md).
  bold "7. routing by content: gpu-1 in trust zone \"private\" (policy.sensitive_zones), gpu-2 with the \"code\" capability"
  d=$OUT/content
  rm -rf "$d" && mkdir -p "$d"
  python3 "$ROOT/scripts/lab-content-config.py" "$ROOT/conf/lab.toml" "$d/lab.toml" "$d/access.log"
  run "$LAB" start --backends "$BACKENDS" --policy round_robin --config "$d/lab.toml"
  wait_pools
  ask() { # label text: one chat request from the client namespace; prints where it went
    local body hdrs
    body=$(python3 -c 'import json, sys; print(json.dumps({"model": "llama-3-8b", "max_tokens": 8,
      "messages": [{"role": "user", "content": sys.argv[1]}]}))' "$2")
    hdrs=$(ip netns exec tlb-client curl -s -o /dev/null -D - --max-time 20 http://10.10.0.1/v1/chat/completions \
      -H 'content-type: application/json' -d "$body" || true)
    printf '  %-34s -> %s\n' "$1" "$(grep -i '^x-tokenlb-backend' <<<"$hdrs" | tr -d '\r' | cut -d' ' -f2)"
  }
  for i in 1 2; do ask "plain prose ($i)" "Summarise the plot of Hamlet in two sentences."; done
  for i in 1 2; do ask "e-mail address ($i)" "Write to jane.doe@example.com that the order shipped."; done
  ask "card number" "My card 4111 1111 1111 1111 was charged twice."
  ask "API key" "Is sk-proj-Abc123def456Ghi789jkl012MNO345 safe to paste here?"
  for i in 1 2; do ask "code ($i)" $'Why does this fail?\n```python\nprint(1/0)\n```'; done
  sleep 0.3  # access log drain
  echo "access log ($d/access.log): tags and backend per request"
  python3 -c 'import json, sys
for l in open(sys.argv[1]):
    r = json.loads(l)
    print("  tags=%-10s backend=%s" % (",".join(r["tags"]) or "-", r["backend"]))' "$d/access.log" || true
  curl -s --max-time 5 http://127.0.0.1:9100/metrics | grep -E '^tokenlb_requests_(tagged|sensitive)_total' || true
  "$LAB" stop >/dev/null
fi
echo "demo took $((SECONDS - T_START)) s"
