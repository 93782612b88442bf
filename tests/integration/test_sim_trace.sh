#!/usr/bin/env bash
# tokenlb-sim command-line and trace contract: a JSONL trace with missing optional fields,
# numeric prefix groups, unknown keys, an unknown model and a `model: "auto"` alias on a fleet
# file with [[aliases]]; CSV columns; determinism per seed; clear errors for bad input.
# Creates only a temp dir, removed on exit.
set -euo pipefail
cd "$(dirname "$0")/../.."
SIM=${TOKENLB_SIM:-}
if [ -z "$SIM" ]; then
  for c in build/perf/sim/tokenlb-sim build-*/perf/sim/tokenlb-sim; do
    [ -x "$c" ] && { SIM=$c; break; }
  done
fi
[ -n "$SIM" ] && [ -x "$SIM" ] || { echo "tokenlb-sim not built (set TOKENLB_SIM)"; exit 1; }
TMP=$(mktemp -d /tmp/tlb-sim-trace.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

T=tests/data/sim/sample.jsonl
F=tests/data/sim/fleet-sample.toml
POL=round_robin,random,least_requests,power_of_two,least_tokens,prefix_hash,token_aware,token_aware:e2e,token_aware:cost,race2,race3,race2-ttft

"$SIM" --trace $T --fleet $F --policies $POL --csv "$TMP/a.csv" > "$TMP/a.md" 2> "$TMP/a.err" || fail "sample trace run"
head -1 "$TMP/a.csv" | grep -qx 'policy,requests,mean_ttft_s,p50_ttft_s,p99_ttft_s,mean_e2e_s,p99_e2e_s,gpu_busy_s,wasted_tokens,throughput_tok_s' || fail "CSV header"
[ "$(($(wc -l < "$TMP/a.csv") - 1))" -eq 12 ] || fail "one CSV row per policy"
# 9 requests: one names a model no backend serves -> 8 complete under every policy.
awk -F, 'NR>1 && $2 != 8 {bad=1} END {exit bad}' "$TMP/a.csv" || fail "8 completed requests per policy"
grep -q "1 rejected" "$TMP/a.err" || fail "unknown model counted as rejected"
# Racing wastes tokens, single dispatch does not.
awk -F, 'NR>1 && $1 ~ /^race/ && $9 == 0 {bad=1} NR>1 && $1 !~ /^race/ && $9 != 0 {bad=1} END {exit bad}' "$TMP/a.csv" || fail "wasted tokens only for races"
grep -q '^| token_aware | 8 |' "$TMP/a.md" || fail "markdown table"

# Deterministic for a seed; --load rescales arrival times.
"$SIM" --trace $T --fleet $F --policies $POL --csv "$TMP/b.csv" --quiet > /dev/null
cmp -s "$TMP/a.csv" "$TMP/b.csv" || fail "same seed, same CSV"
python3 tests/data/sim/gen_trace.py hetero 3000 3 > "$TMP/h.jsonl"
"$SIM" --trace "$TMP/h.jsonl" --fleet tests/data/sim/fleet-hetero.toml --load 0.2 --policies least_requests --csv "$TMP/l2.csv" --quiet > /dev/null
"$SIM" --trace "$TMP/h.jsonl" --fleet tests/data/sim/fleet-hetero.toml --load 0.9 --policies least_requests --csv "$TMP/l9.csv" --quiet > /dev/null
python3 - "$TMP" <<'PY' || fail "--load 0.9 must be slower than --load 0.2"
import csv, sys
a = next(csv.DictReader(open(sys.argv[1] + "/l2.csv")))
b = next(csv.DictReader(open(sys.argv[1] + "/l9.csv")))
sys.exit(0 if float(b["mean_ttft_s"]) > float(a["mean_ttft_s"]) else 1)
PY

# Errors are clear and non-zero.
printf '{"t": 0, "model": "m", "prompt_tokens": 10}\n{"t": 1, "model": \n' > "$TMP/bad.jsonl"
if "$SIM" --trace "$TMP/bad.jsonl" --fleet $F 2> "$TMP/e1"; then fail "malformed trace accepted"; fi
grep -q 'bad.jsonl:2' "$TMP/e1" || fail "malformed trace error names the line: $(cat "$TMP/e1")"
printf '{"t": 0, "model": "m"}\n' > "$TMP/noprompt.jsonl"
if "$SIM" --trace "$TMP/noprompt.jsonl" --fleet $F 2> /dev/null; then fail "trace without prompt_tokens accepted"; fi
if "$SIM" --scenario mixed-fleet --policies fastest 2> "$TMP/e2"; then fail "unknown policy accepted"; fi
grep -q "unknown policy 'fastest'" "$TMP/e2" || fail "unknown policy message"
if "$SIM" --scenario nope 2> /dev/null; then fail "unknown scenario accepted"; fi
if "$SIM" --trace $T 2> /dev/null; then fail "--trace without --fleet accepted"; fi
printf '[[backends]]\nname = "x"\nmodels = ["m"]\nprofile = "no-such-profile"\n' > "$TMP/f.toml"
if "$SIM" --trace $T --fleet "$TMP/f.toml" 2> "$TMP/e3"; then fail "missing profile accepted"; fi
grep -q 'profile' "$TMP/e3" || fail "missing profile message"
"$SIM" --help | grep -q -- '--scenario' || fail "--help"
for s in mixed-fleet mixed-length multi-turn bursty; do
  "$SIM" --scenario $s --requests 500 --policies token_aware,round_robin --quiet > "$TMP/$s.md" || fail "scenario $s"
  grep -q '^| token_aware | 500 |' "$TMP/$s.md" || fail "scenario $s completes 500 requests"
done
# Several data-plane workers (own views and prefix directories) still complete every request.
"$SIM" --scenario multi-turn --requests 2000 --workers 4 --refresh-us 100 --policies token_aware,prefix_hash --csv "$TMP/w.csv" --quiet > /dev/null || fail "--workers 4"
awk -F, 'NR>1 && $2 != 2000 {bad=1} END {exit bad}' "$TMP/w.csv" || fail "--workers 4 completes all requests"
if "$SIM" --scenario multi-turn --workers 17 2> /dev/null; then fail "--workers 17 accepted"; fi
echo "tokenlb-sim trace contract: all checks passed"
