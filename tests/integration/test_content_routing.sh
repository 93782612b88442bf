#!/usr/bin/env bash
# Content tags on the data plane, in the namespace lab with real kernel TCP clients and gpu-emu
# backends: the appliance classifies every chat/completions request with conf/rules (Hyperscan)
# and routes by it.
#   gpu-1: trust_zone "private"      gpu-2: tags ["code"]      gpu-3, gpu-4: neither
#   policy: round_robin (so unrestricted requests visibly spread), tag_match = "prefer", sensitive_zones = ["private"]
#   1. prompts with PII (e-mail address, Luhn-valid card number) or secrets (API key, private key)
#      in any text field (message string, content part, tool-call arguments, tool description,
#      completions prompt string or array)
#      are served by gpu-1 only, even when other backends are idle
#   2. code prompts go to gpu-2 (preferred: it has the "code" capability)
#   3. plain prose spreads over the fleet; a card-like number that fails the Luhn check is not PII
#   4. the access log names each request's tags, the metrics count them
#   5. with gpu-1 killed, a PII prompt gets a 503 whose OpenAI-style error names the tag and the
#      zone; other requests keep being served
#   6. with gpu-2 killed too, code prompts are served by the others (a preference, not a filter)
#   7. tag_match = "require": code prompts only on gpu-2; with it killed, an error naming the filter
. "$(dirname "$0")/lib/lab.sh"
HERE=$(cd "$(dirname "$0")" && pwd)
export GPU_EMU_BIN=${GPU_EMU_BIN:-$LAB_ROOT/build/perf/gpu-emu/gpu-emu}

lab_session
mkdir -p "$LAB_RUN"
CONF=$LAB_RUN/content.toml
ALOG=$LAB_RUN/content-access.log
rm -f "$ALOG"
python3 "$LAB_ROOT/scripts/lab-content-config.py" "$LAB_ROOT/conf/lab.toml" "$CONF" "$ALOG" || fail "config"
cd "$LAB_ROOT"  # rules_dir = "conf/rules" is relative to the current directory
"$TOKENLB_BIN" --check-config "$CONF" > /dev/null || fail "content.toml does not validate"
# A misspelt sensitive tag would silently protect nothing: it must stop the start.
sed 's/^sensitive_tags = .*/sensitive_tags = ["pii", "secret"]/' "$CONF" > "$LAB_RUN/typo.toml"
if err=$("$TOKENLB_BIN" --check-config "$LAB_RUN/typo.toml" 2>&1 >/dev/null); then fail "a sensitive tag the rules do not define was accepted"; fi
case $err in *'"secret" is not a tag of the rules in conf/rules'*) ;; *) fail "unexpected error for the misspelt tag: $err" ;; esac
pass "a misspelt sensitive tag is refused: $err"

# The offline view of the same rules: tokenlb-tokens tags (what an operator runs on a logged body).
TOKENS_BIN=${TOKENS_BIN:-$LAB_ROOT/build/app/tokenlb-tokens/tokenlb-tokens}
T=$LAB_RUN/tags && rm -rf "$T" && mkdir -p "$T"
python3 - "$T" "$HERE" <<'PY' || fail "tags inputs"
import json, os, sys
sys.path.insert(0, sys.argv[2])
import content_client as c
for name, text in (("pii", c.PII[1]), ("secrets", c.SECRETS[0]), ("code", c.CODE[0]), ("plain", c.NOT_PII[0])):
    body = {"model": c.MODEL, "messages": [{"role": "user", "content": [{"type": "text", "text": text}]}]}
    open(os.path.join(sys.argv[1], name + ".json"), "w").write(json.dumps(body))
PY
out=$("$TOKENS_BIN" tags --rules conf/rules --explain "$T/pii.json" "$T/secrets.json" "$T/code.json" "$T/plain.json") \
  || fail "tokenlb-tokens tags"
echo "$out"
want=$(printf 'pii\t%s\nsecrets\t%s\ncode\t%s\n-\t%s' "$T/pii.json" "$T/secrets.json" "$T/code.json" "$T/plain.json")
[ "$(echo "$out" | grep -v '^  ')" = "$want" ] || fail "tokenlb-tokens tags: unexpected tags"
echo "$out" | grep -q $'^  pii\tconf/rules/pii.rules:[0-9]*\t1\t' || fail "--explain does not name the card rule"
pass "tokenlb-tokens tags: pii, secrets, code, none; --explain names the rule file and line"
lab_start --backends 4 --policy round_robin --config "$CONF" || fail "lab start"
grep -q "classify: .* rules" "$LAB_RUN/tokenlb.log" || fail "appliance did not load the rules"
pass "appliance up with $(grep -o 'classify: [^(]*' "$LAB_RUN/tokenlb.log")"

in_client python3 "$HERE/content_client.py" route || fail "content routing"
sleep 0.5  # access log drain (20 ms) and a metrics scrape
python3 - "$ALOG" <<'PY' || fail "access log tags"
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
tags = {}
for r in recs:
    for t in r.get("tags", []):
        tags[t] = tags.get(t, 0) + 1
assert tags.get("pii", 0) >= 20, f"pii-tagged records: {tags}"
assert tags.get("secrets", 0) >= 10, f"secrets-tagged records: {tags}"
assert tags.get("code", 0) >= 20, f"code-tagged records: {tags}"
for r in recs:
    if "pii" in r.get("tags", []) or "secrets" in r.get("tags", []):
        assert r["backend"] == "gpu-1", f"sensitive request logged on {r['backend']}: {r}"
print(f"PASS: access log: {len(recs)} records, tag counts {tags}, every sensitive one on gpu-1")
PY
metrics=$(curl -s -m 5 http://127.0.0.1:9100/metrics) || fail "metrics"
for t in pii secrets code; do
  v=$(echo "$metrics" | awk -v t="tokenlb_requests_tagged_total{tag=\"$t\"}" '$1 == t { print $2 }')
  [ -n "$v" ] && [ "$v" -gt 0 ] || fail "tokenlb_requests_tagged_total{tag=\"$t\"} is '${v:-absent}'"
done
sens=$(echo "$metrics" | awk '$1 == "tokenlb_requests_sensitive_total" { print $2 }')
[ "${sens:-0}" -ge 30 ] || fail "tokenlb_requests_sensitive_total is ${sens:-absent}"
pass "metrics: requests_tagged_total for pii/secrets/code > 0, requests_sensitive_total = $sens"
echo "$metrics" | awk '
  $1 == "tokenlb_understood_requests_total" { n = $2 }
  $1 == "tokenlb_understand_seconds_total{stage=\"all\"}" { all = $2 }
  $1 == "tokenlb_understand_seconds_total{stage=\"classify\"}" { cls = $2 }
  END { if (n < 165 || all <= 0 || cls <= 0 || cls > all) { print "bad understand metrics: " n " " all " " cls; exit 1 }
        printf "PASS: understand step on the worker: %d requests, %.2f us each, of which classify %.2f us\n", n, all / n * 1e6, cls / n * 1e6 }' \
  || fail "understand metrics"

# gpu-1 dies: sensitive requests have nowhere to go, everything else still flows.
kill -9 "$(cat "$LAB_RUN/gpu-emu-1.pid")"
in_client python3 "$HERE/content_client.py" zone-down || fail "sensitive requests with the private zone down"
# gpu-2 dies too: code prompts fall back to the rest.
kill -9 "$(cat "$LAB_RUN/gpu-emu-2.pid")"
in_client python3 "$HERE/content_client.py" prefer-fallback || fail "code prompts with gpu-2 down"
lab_stop

# tag_match = "require": the capability is a hard filter. With gpu-2 (the only "code" backend)
# down, code prompts get an explained 503/502; prose is still served.
sed -e 's/^tag_match = "prefer"/tag_match = "require"/' "$CONF" > "$LAB_RUN/content-require.toml"
lab_start --backends 4 --policy round_robin --config "$LAB_RUN/content-require.toml" || fail "lab start (require)"
in_client env GPU2_PIDFILE="$LAB_RUN/gpu-emu-2.pid" python3 "$HERE/content_client.py" require || fail "tag_match = require"
pass "content routing"
