#!/usr/bin/env bash
# A real Prometheus server (Debian package) scrapes tokenlb's /metrics while requests flow, and a
# tokenlb metric is read back through Prometheus' HTTP API (/api/v1/query): the exposition is
# accepted by the reference parser, counters increase under load, histograms work with
# histogram_quantile().
#
# TARGET=harness (default until the data plane is wired into app/tokenlb): the telemetry test
# harness (real lib/telemetry service, synthetic worker) serves /metrics. TARGET=appliance: the
# lab appliance via scripts/lab.sh start ([telemetry] metrics_listen of conf/lab.toml) with
# traffic from the client namespace.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
BUILD=${TLB_BUILD_DIR:-$ROOT/build}
TARGET=${TLB_TELEMETRY_TARGET:-appliance}

PROM=$(command -v prometheus || true)
[ -n "$PROM" ] || { echo "test_prometheus: prometheus not installed (Debian package prometheus)"; exit 1; }
HARNESS=$BUILD/app/tokenlb-ctl/tlb-telemetry-harness

TMP=$(mktemp -d /tmp/tlb-prom.XXXXXX)
PIDS=()
PREFIX=tlb-prom-test-$$
LAB_STARTED=0
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  if [ "$LAB_STARTED" = 1 ]; then "$ROOT/scripts/lab.sh" stop || true; "$ROOT/scripts/lab.sh" down || true; fi
  rm -rf "$TMP" "/var/run/dpdk/$PREFIX"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

if [ "$TARGET" = harness ]; then
  [ -x "$HARNESS" ] || { echo "test_prometheus: $HARNESS not built"; exit 1; }
  MPORT=$(free_port)
  "$HARNESS" --listen 127.0.0.1:$MPORT --file-prefix "$PREFIX" --rate 100 --hold-ms 100 \
      > "$TMP/harness.log" 2>&1 &
  PIDS+=($!)
  LOAD_PID=
else
  MPORT=$(sed -n 's/^metrics_listen *= *"127\.0\.0\.1:\([0-9]*\)".*/\1/p' "$ROOT/conf/lab.toml")
  # The lab is shared by every lab test: hold its lock for the whole session.
  . "$ROOT/tests/integration/lib/lab.sh"
  lab_lock
  LAB_STARTED=1
  "$ROOT/scripts/lab.sh" up
  "$ROOT/scripts/lab.sh" start --backends 4
  # Load: a stream of small completions from the client namespace for the whole test.
  ( while :; do
      ip netns exec tlb-client curl -s -m 10 -o /dev/null http://10.10.0.1/v1/completions \
        -H 'content-type: application/json' \
        -d '{"model":"llama-3-8b","prompt":"hello there","max_tokens":8}' || true
    done ) &
  PIDS+=($!)
fi

# Wait for the endpoint.
for _ in $(seq 1 100); do
  curl -sf "http://127.0.0.1:$MPORT/health" >/dev/null 2>&1 && break
  sleep 0.1
done
curl -sf "http://127.0.0.1:$MPORT/health" >/dev/null || { echo "metrics endpoint never came up"; cat "$TMP"/*.log 2>/dev/null; exit 1; }
curl -sfD "$TMP/headers" -o "$TMP/metrics.txt" "http://127.0.0.1:$MPORT/metrics"
grep -qi '^content-type: text/plain; version=0.0.4' "$TMP/headers" || { echo "wrong content type"; cat "$TMP/headers"; exit 1; }

PPORT=$(free_port)
cat > "$TMP/prometheus.yml" <<YML
global:
  scrape_interval: 1s
  scrape_timeout: 900ms
scrape_configs:
  - job_name: tokenlb
    static_configs:
      - targets: ['127.0.0.1:$MPORT']
YML
"$PROM" --config.file="$TMP/prometheus.yml" --storage.tsdb.path="$TMP/data" \
    --web.listen-address=127.0.0.1:$PPORT --log.level=warn > "$TMP/prometheus.log" 2>&1 &
PIDS+=($!)

query() { # PromQL -> first value or empty; evaluated at $AT (Unix time) when set, else now
  curl -sG "http://127.0.0.1:$PPORT/api/v1/query" --data-urlencode "query=$1" ${AT:+--data-urlencode "time=$AT"} 2>/dev/null |
    python3 -c 'import json,sys
try:
    d=json.load(sys.stdin)
except Exception:
    sys.exit(0)
r=d.get("data",{}).get("result",[])
if d.get("status")=="success" and r: print(r[0]["value"][1])' || true
}

# Wait until Prometheus has scraped us at least three times (rate() needs two points).
up=; n=
for _ in $(seq 1 120); do
  up=$(query 'up{job="tokenlb"}')
  n=$(query 'count_over_time(up{job="tokenlb"}[1m])')
  [ "$up" = 1 ] && [ -n "$n" ] && [ "${n%.*}" -ge 3 ] && break
  sleep 0.5
done
[ "$up" = 1 ] || { echo "FAIL: Prometheus reports up=$up for the tokenlb target"; cat "$TMP/prometheus.log"; \
  curl -s "http://127.0.0.1:$PPORT/api/v1/targets"; exit 1; }
echo "prometheus scraped tokenlb $n times, up=$up"

# All checks read one instant: queried at "now" one by one, a scrape landing between two queries
# showed fast_framed from a newer scrape than requests (128 > 113 in one CI run).
AT=$(date +%s.%N)
total=$(query 'sum(tokenlb_requests_total)')
rate=$(query 'sum(rate(tokenlb_requests_total[30s]))')
p50=$(query 'histogram_quantile(0.5, sum by (le) (rate(tokenlb_request_ttft_seconds_bucket[30s])))')
families=$(query 'count(count by (__name__) ({__name__=~"tokenlb_.*"}))')
framed=$(query 'sum(tokenlb_dataplane_requests_total)')
fast=$(query 'sum(tokenlb_dataplane_requests_fast_framed_total)')
echo "tokenlb_requests_total=$total rate=$rate/s ttft_p50=$p50 s families=$families framed=$framed fast=$fast"
python3 - "$total" "$rate" "$p50" "$families" "$framed" "$fast" <<'PY'
import sys, math
total, rate, p50, fam, framed, fast = sys.argv[1:7]
ok = True
def check(cond, msg):
    global ok
    if not cond:
        print("FAIL:", msg); ok = False
check(total not in ("", "NaN") and float(total) > 0, "tokenlb_requests_total read back through the API is > 0")
check(rate not in ("", "NaN") and float(rate) > 0, "requests rate > 0 during load")
check(p50 not in ("", "NaN") and 0 < float(p50) < 300, "histogram_quantile over tokenlb_request_ttft_seconds works")
check(fam not in ("", "NaN") and float(fam) >= 30, "at least 30 tokenlb_ families ingested")
# The load is plain Content-Length POSTs: framed without http-parser (docs/http.md), never more
# than the requests framed in the same scrape.
check(framed not in ("", "NaN") and fast not in ("", "NaN") and 0 < float(fast) <= float(framed),
      "dataplane_requests_fast_framed_total is > 0 and <= dataplane_requests_total")
sys.exit(0 if ok else 1)
PY
# Prometheus would log (and drop) a malformed exposition; make sure it did not.
if grep -qiE 'invalid|parse error|expected' "$TMP/prometheus.log"; then
  echo "FAIL: Prometheus complained about the exposition:"; cat "$TMP/prometheus.log"; exit 1
fi
echo "PASS test_prometheus ($TARGET)"
