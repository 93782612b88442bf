#!/usr/bin/env bash
# Issue 5 acceptance, asserted from tokenlb-sim's CSV output (one run per scenario, 20k requests):
#   mixed-fleet  load 0.7: token_aware p99 TTFT >= 5x lower than round_robin, and >= 5x lower
#                          than race2 ("far below")
#   mixed-fleet  load 0.3: token_aware mean TTFT <= 1.10 x race2's, gpu_busy_s <= 0.55 x race2's
#   mixed-length load 0.7: token_aware p99 TTFT >= 1.5x lower than least_requests
#   multi-turn   load 0.7: token_aware mean TTFT <= prefix_hash's
# plus the same claims on traces from an independent generator (tests/data/sim/gen_trace.py),
# the CSV header contract, and a --plot PNG.
# Runtime: ~15 s on a 2-core machine. Creates only a temp dir, removed on exit.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
SIM=${TOKENLB_SIM:-}
if [ -z "$SIM" ]; then
  for c in build/perf/sim/tokenlb-sim build-*/perf/sim/tokenlb-sim; do
    [ -x "$c" ] && { SIM=$c; break; }
  done
fi
[ -n "$SIM" ] && [ -x "$SIM" ] || { echo "tokenlb-sim not built (set TOKENLB_SIM)"; exit 1; }
TMP=$(mktemp -d /tmp/tlb-sim-accept.XXXXXX)
trap 'rm -rf "$TMP"' EXIT

N=20000
run() { # name args...
  local name=$1; shift
  echo "-- $name: $SIM $*"
  "$SIM" "$@" --csv "$TMP/$name.csv" --quiet > "$TMP/$name.md"
  cat "$TMP/$name.md"
}

run mf07 --scenario mixed-fleet --load 0.7 --requests $N --policies round_robin,least_requests,token_aware,race2 --seed 1 --plot "$TMP/mf07.png"
run mf03 --scenario mixed-fleet --load 0.3 --requests $N --policies token_aware,race2 --seed 1
run ml07 --scenario mixed-length --load 0.7 --requests $N --policies least_requests,token_aware --seed 1
run mt07 --scenario multi-turn --load 0.7 --requests $N --policies prefix_hash,token_aware --seed 1

# Unseen traces: a different generator, different fleets.
python3 tests/data/sim/gen_trace.py hetero $N 11 > "$TMP/hetero.jsonl"
python3 tests/data/sim/gen_trace.py rag $N 12 > "$TMP/rag.jsonl"
python3 tests/data/sim/gen_trace.py chat $N 13 > "$TMP/chat.jsonl"
run th07 --trace "$TMP/hetero.jsonl" --fleet tests/data/sim/fleet-hetero.toml --load 0.7 --policies round_robin,least_requests,token_aware,race2
run th03 --trace "$TMP/hetero.jsonl" --fleet tests/data/sim/fleet-hetero.toml --load 0.3 --policies token_aware,race2
run tr07 --trace "$TMP/rag.jsonl" --fleet tests/data/sim/fleet-rag.toml --load 0.7 --policies least_requests,token_aware
run tc07 --trace "$TMP/chat.jsonl" --fleet tests/data/sim/fleet-chat.toml --load 0.7 --policies prefix_hash,token_aware

python3 - "$TMP" <<'PY'
import csv, sys, os
tmp = sys.argv[1]
HEADER = "policy,requests,mean_ttft_s,p50_ttft_s,p99_ttft_s,mean_e2e_s,p99_e2e_s,gpu_busy_s,wasted_tokens,throughput_tok_s"
fails = []
def load(name):
    path = os.path.join(tmp, name + ".csv")
    with open(path) as f:
        first = f.readline().strip()
        if first != HEADER:
            fails.append("%s: CSV header %r" % (name, first))
    with open(path) as f:
        rows = {r["policy"]: r for r in csv.DictReader(f)}
    for p, r in rows.items():
        if int(r["requests"]) < 19900:
            fails.append("%s/%s: only %s requests completed" % (name, p, r["requests"]))
    return rows
def v(rows, p, k):
    return float(rows[p][k])
def check(ok, msg):
    print(("ok   " if ok else "FAIL ") + msg)
    if not ok:
        fails.append(msg)

for tag, fleet07, fleet03 in (("scenario", "mf07", "mf03"), ("trace", "th07", "th03")):
    a = load(fleet07)
    ta, rr, r2 = v(a, "token_aware", "p99_ttft_s"), v(a, "round_robin", "p99_ttft_s"), v(a, "race2", "p99_ttft_s")
    check(ta * 5 <= rr, "%s mixed fleet 0.7: token_aware p99 %.3f x5 <= round_robin p99 %.3f (%.1fx)" % (tag, ta, rr, rr / ta))
    check(ta * 5 <= r2, "%s mixed fleet 0.7: token_aware p99 %.3f far below race2 p99 %.3f (%.1fx)" % (tag, ta, r2, r2 / ta))
    b = load(fleet03)
    tm, rm = v(b, "token_aware", "mean_ttft_s"), v(b, "race2", "mean_ttft_s")
    tb, rb = v(b, "token_aware", "gpu_busy_s"), v(b, "race2", "gpu_busy_s")
    check(tm <= 1.10 * rm, "%s mixed fleet 0.3: token_aware mean %.3f <= 1.1 x race2 mean %.3f" % (tag, tm, rm))
    check(tb <= 0.55 * rb, "%s mixed fleet 0.3: token_aware gpu_busy %.1f <= 0.55 x race2 %.1f (%.0f%%)" % (tag, tb, rb, 100 * tb / rb))
for tag, name in (("scenario", "ml07"), ("trace", "tr07")):
    a = load(name)
    ta, lr = v(a, "token_aware", "p99_ttft_s"), v(a, "least_requests", "p99_ttft_s")
    check(ta * 1.5 <= lr, "%s mixed length 0.7: token_aware p99 %.3f x1.5 <= least_requests p99 %.3f (%.2fx)" % (tag, ta, lr, lr / ta))
for tag, name in (("scenario", "mt07"), ("trace", "tc07")):
    a = load(name)
    ta, ph = v(a, "token_aware", "mean_ttft_s"), v(a, "prefix_hash", "mean_ttft_s")
    check(ta <= ph, "%s multi-turn 0.7: token_aware mean %.3f <= prefix_hash mean %.3f" % (tag, ta, ph))
png = os.path.join(tmp, "mf07.png")
check(os.path.exists(png) and open(png, "rb").read(8) == b"\x89PNG\r\n\x1a\n", "--plot wrote a PNG")
if fails:
    print("%d check(s) failed" % len(fails))
    sys.exit(1)
print("all acceptance checks passed")
PY
