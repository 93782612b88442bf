#!/usr/bin/env bash
# Data-plane acceptance (issue 6) in the namespace lab, with real kernel TCP clients in tlb-client
# and gpu-emu backends in tlb-gpu:
#   1. curl non-stream and stream through the appliance == gpu-emu directly (modulo ids/timing)
#   2. one keep-alive connection, 200 mixed requests, routed per request (round_robin), all done,
#      x-tokenlb-backend agrees with gpu-emu's own counters
#   3. every malformed request gets its status over real TCP while another client keeps working
#   4. a client that resets mid-stream: gpu-emu logs the abort within 10 ms
#   5. 64 clients x 50 requests, bodies 100 B .. 1 MiB: zero failures
#   6. a backend killed during load: only streams already running from it fail
#   7. afterwards flows, client connections and request buffers are back at idle
. "$(dirname "$0")/lib/lab.sh"
HERE=$(cd "$(dirname "$0")" && pwd)
CLIENT="$HERE/dataplane_client.py"
export GPU_EMU_BIN=${GPU_EMU_BIN:-$LAB_ROOT/build/perf/gpu-emu/gpu-emu}
CLIENTS=${DP_CLIENTS:-64}
PER_CLIENT=${DP_PER_CLIENT:-50}

lab_session
counter() { "$LAB_SH" counters | head -1 | tr ' ' '\n' | awk -F= -v k="$1" '$1 == k { print $2 }'; }
idle_check() { # after traffic stopped: no client flows, no request buffers, only pooled backends
  local clients buffers
  sleep 1
  clients=$(counter clients); buffers=$(counter buffers)
  [ "${clients:-x}" = 0 ] || fail "client connections still open: ${clients:-?}"
  [ "${buffers:-x}" = 0 ] || fail "request buffers still in use: ${buffers:-?}"
  pass "idle again: clients=0 buffers=0 flows=$(counter flows) (pooled backend connections)"
}

# --- 1-4 with the lab config (mixed fleet), round robin so requests visibly spread ---
lab_start --backends 4 --policy round_robin || fail "lab start"
in_client python3 "$CLIENT" compare || fail "compare"
in_client python3 "$CLIENT" keepalive 200 4 || fail "keep-alive"
in_client python3 "$CLIENT" malformed || fail "malformed requests"
ABORT_FILE=$LAB_RUN/abort.txt in_client env ABORT_FILE="$LAB_RUN/abort.txt" python3 "$CLIENT" abort || fail "abort run"
sleep 0.5
read -r t_reset backend < "$LAB_RUN/abort.txt"
idx=${backend#gpu-}
abort_ts=$(grep -o 'abort_ts=[0-9.]*' "$LAB_RUN/gpu-emu-$idx.log" | tail -1 | cut -d= -f2)
[ -n "$abort_ts" ] || fail "gpu-emu $backend logged no abort"
ms=$(awk -v a="$abort_ts" -v r="$t_reset" 'BEGIN { printf "%.2f", (a - r) * 1000 }')
awk -v m="$ms" 'BEGIN { exit !(m < 10) }' || fail "abort recorded ${ms} ms after the client's reset (limit 10 ms)"
pass "client reset mid-stream: $backend aborted the request ${ms} ms later"
idle_check
lab_stop

# --- 5-6 with wide backends (1 MiB prompts fit) and the default token-aware policy ---
wide=$LAB_RUN/wide-profile.toml
sed -e 's/^name = .*/name = "lab-wide"/' -e 's/^max_model_len = .*/max_model_len = 2097152/' \
    -e 's/^capacity_tokens = .*/capacity_tokens = 200000000/' -e 's/^base_s = .*/base_s = 0.010/' \
    "$LAB_ROOT/conf/profiles/bench-fast.toml" > "$wide"
sed -e 's/^max_context = .*/max_context = 2097152/' -e "s|^profile_name = .*|profile_name = \"$wide\"|" \
    "$LAB_ROOT/conf/lab.toml" > "$LAB_RUN/wide.toml"
lab_start --backends 4 --config "$LAB_RUN/wide.toml" || fail "lab start (wide)"
out=$(in_client python3 "$CLIENT" load "$CLIENTS" "$PER_CLIENT") || fail "load run"
echo "$out" | tail -1
python3 - "$out" "$CLIENTS" "$PER_CLIENT" <<'PY' || fail "load"
import json, sys
s = json.loads(sys.argv[1].strip().splitlines()[-1])
want = int(sys.argv[2]) * int(sys.argv[3])
assert s["requests"] == want, f"{s['requests']} of {want} requests ran"
assert s["failed"] == 0, f"{s['failed']} failed: {s['failures'][:5]}"
print(f"PASS: {want} requests (100 B .. 1 MiB bodies, half streamed) in {s['seconds']} s, 0 failed, {s['by_backend']}")
PY
idle_check

# A backend dies under load.
( sleep 4; kill -9 "$(cat "$LAB_RUN/gpu-emu-2.pid")" ) &
killer=$!
out=$(in_client python3 "$CLIENT" load 32 12) || fail "load run (kill)"
wait $killer
python3 - "$out" <<'PY' || fail "backend kill"
import json, sys
s = json.loads(sys.argv[1].strip().splitlines()[-1])
bad = s["failures"]
for f in bad:
    assert f["backend"] == "gpu-2" and f["started"], f"a request failed that had not started streaming from the killed backend: {f}"
print(f"PASS: gpu-2 killed under load: {s['requests']} requests, {s['failed']} failed (all were streaming from gpu-2), {s['by_backend']}")
PY
idle_check
pass "data plane acceptance"
