#!/usr/bin/env python3
"""Client side of tests/integration/test_content_routing.sh (runs in the tlb-client namespace).

Sends chat/completions requests whose text the appliance tags with conf/rules (pii, secrets,
code, none) over real kernel TCP and checks, with the x-tokenlb-backend response header, where
each one was served. Exits non-zero with a message on the first violation.
"""
import http.client
import json
import os
import random
import sys
import threading

VIP = "10.10.0.1"
MODEL = "llama-3-8b"

PROSE = ("The committee met on Tuesday to review the quarterly report and agreed that the "
         "new schedule gives every team enough time to finish the migration before winter.")
PII = [
    "Please write a polite reminder to jane.doe@example.com about the unpaid invoice.",
    "My card 4111 1111 1111 1111 was charged twice; draft a complaint to the bank.",
    "Call me back on +44 20 7946 0958 tomorrow morning, or write to ops-team@corp.example.org.",
    "Summarise this: the customer (card 5500-0000-0000-0004, exp 12/29) asked for a refund.",
]
SECRETS = [
    "Why does this fail? export OPENAI_API_KEY=sk-proj-Abc123def456Ghi789jkl012MNO345 && python run.py",
    "Our CI log shows AKIAIOSFODNN7EXAMPLE in the output, is that bad?",
    "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA7\n-----END RSA PRIVATE KEY-----\nWhat format is this?",
]
CODE = [
    "Explain this function:\n```python\ndef area(r):\n    return 3.14159 * r * r\n```\n",
    "Why does this crash?\n```c\nint main(void) {\n    char *p = 0;\n    return *p;\n}\n```",
    "#include <stdio.h>\nint main(void) { printf(\"hi\\n\"); printf(\"bye\\n\"); return 0; }\nFix the warning.",
]
NOT_PII = [
    # 16 digits that fail the Luhn check: not a card number.
    "Order 4111 1111 1111 1112 shipped on Monday; write a short thank-you note.",
    PROSE,
]


def fail(msg):
    print("FAIL:", msg, flush=True)
    sys.exit(1)


def ok(msg):
    print("ok:", msg, flush=True)


def post(conn, text, path="/v1/chat/completions", max_tokens=4, shape=0):
    """shape (chat only) puts the text where clients put it: 0 a string content, 1 a content-part
    array, 2 an earlier assistant turn's tool-call arguments, 3 a tool's description."""
    if path == "/v1/completions":
        body = {"model": MODEL, "prompt": [PROSE, text] if shape % 2 else text, "max_tokens": max_tokens}
    else:
        msgs = [{"role": "system", "content": "You are terse."}]
        if shape == 1:
            msgs.append({"role": "user", "content": [{"type": "text", "text": "Look at this."},
                                                     {"type": "text", "text": text}]})
        elif shape == 2:
            msgs += [{"role": "user", "content": "Go on."},
                     {"role": "assistant", "content": None,
                      "tool_calls": [{"id": "c1", "type": "function",
                                      "function": {"name": "lookup", "arguments": json.dumps({"q": text})}}]},
                     {"role": "tool", "tool_call_id": "c1", "content": "done"},
                     {"role": "user", "content": "Thanks, continue."}]
        else:
            msgs.append({"role": "user", "content": text if shape == 0 else "Use the tool."})
        body = {"model": MODEL, "messages": msgs, "max_tokens": max_tokens}
        if shape == 3:
            body["tools"] = [{"type": "function", "function": {
                "name": "lookup", "description": text,
                "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}}]
    conn.request("POST", path, body=json.dumps(body), headers={"content-type": "application/json"})
    r = conn.getresponse()
    data = r.read()
    return r.status, r.getheader("x-tokenlb-backend"), data


def run_kind(texts, n, workers=4, shapes=(0, 1, 2, 3)):
    """n requests over `workers` keep-alive connections in parallel; returns [(status, backend, body)]."""
    out, lock = [], threading.Lock()

    def one(w):
        conn = http.client.HTTPConnection(VIP, 80, timeout=30)
        rng = random.Random(w)
        for i in range(w, n, workers):
            text = texts[i % len(texts)] + f"\n(request {i}, {rng.random():.6f})"
            path = "/v1/completions" if i % 5 == 4 else "/v1/chat/completions"
            res = post(conn, text, path, shape=shapes[(i // 5) % len(shapes)])
            with lock:
                out.append(res)
        conn.close()

    ts = [threading.Thread(target=one, args=(w,)) for w in range(workers)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return out


def spread(res):
    d = {}
    for _, b, _ in res:
        d[b] = d.get(b, 0) + 1
    return dict(sorted(d.items(), key=lambda kv: str(kv[0])))


def cmd_route():
    # Keep the other backends busy-free and attractive: prose first, so the policy has seen load.
    prose = run_kind([PROSE], 40)
    if any(s != 200 for s, _, _ in prose):
        fail(f"prose requests failed: {[s for s, _, _ in prose]}")
    if len(spread(prose)) < 3:
        fail(f"plain prose did not spread over the fleet: {spread(prose)}")
    ok(f"plain prose spreads: {spread(prose)}")

    for name, texts, n in (("pii", PII, 40), ("secrets", SECRETS, 15)):
        res = run_kind(texts, n)
        bad = [(s, b) for s, b, _ in res if s != 200 or b != "gpu-1"]
        if bad:
            fail(f"{name} prompts served elsewhere than gpu-1 (private zone): {bad[:5]}, all: {spread(res)}")
        ok(f"{n} {name} prompts, all on gpu-1: {spread(res)}")

    res = run_kind(CODE, 30, shapes=(0, 1, 3))  # in tool-call arguments code is JSON-escaped text
    bad = [(s, b) for s, b, _ in res if s != 200 or b != "gpu-2"]
    if bad:
        fail(f"code prompts not on gpu-2 (code capability): {bad[:5]}, all: {spread(res)}")
    ok(f"30 code prompts, all on gpu-2: {spread(res)}")

    res = run_kind(NOT_PII, 40)
    if any(s != 200 for s, _, _ in res):
        fail("non-PII requests failed")
    if len(spread(res)) < 3:
        fail(f"a Luhn-invalid number was treated as PII (requests did not spread): {spread(res)}")
    ok(f"Luhn-invalid card-like numbers are not PII: {spread(res)}")


def cmd_zone_down():
    conn = http.client.HTTPConnection(VIP, 80, timeout=30)
    for text in PII[:2] + SECRETS[:1]:
        # 502 upstream_failed when the appliance tried gpu-1 and it refused the connection; 503
        # no_backend once gpu-1 is on hold-down and nothing else may serve the request.
        status, backend, data = post(conn, text)
        if status not in (502, 503) or backend is not None:
            fail(f"sensitive prompt with the private zone down: status {status} from {backend}: {data[:200]!r}")
        try:
            err = json.loads(data)["error"]
        except (ValueError, KeyError):
            fail(f"{status} without an OpenAI-style error body: {data[:200]!r}")
        msg = err.get("message", "")
        want = "no_backend" if status == 503 else "upstream_failed"
        if err.get("code") != want or "only trust zones private may serve it" not in msg or "tagged" not in msg:
            fail(f"{status} body does not say why: {err}")
        ok(f"sensitive prompt with gpu-1 down: {status} {want}: {msg!r}")
    # The same connection and others keep working for everything else.
    status, backend, _ = post(conn, PROSE)
    if status != 200 or backend in (None, "gpu-1"):
        fail(f"prose after the 503s: {status} from {backend}")
    conn.close()
    res = run_kind([PROSE] + CODE, 20)
    if any(s != 200 for s, _, _ in res):
        fail(f"other requests failed with gpu-1 down: {spread(res)}")
    ok(f"other requests still served: {spread(res)}")


def cmd_prefer_fallback():
    res = run_kind(CODE, 20)
    bad = [(s, b) for s, b, _ in res if s != 200 or b in ("gpu-1", "gpu-2")]
    if bad:
        fail(f"code prompts with gpu-2 down: {bad[:5]}")
    ok(f"code prompts with gpu-2 down served by the others: {spread(res)}")


def cmd_require():
    res = run_kind(CODE, 15, shapes=(0, 1, 3))
    bad = [(s, b) for s, b, _ in res if s != 200 or b != "gpu-2"]
    if bad:
        fail(f"tag_match=require: code prompts not on gpu-2: {bad[:5]}")
    ok(f"tag_match=require: 15 code prompts, all on gpu-2: {spread(res)}")
    with open(os.environ["GPU2_PIDFILE"]) as f:
        os.kill(int(f.read().strip()), 9)
    conn = http.client.HTTPConnection(VIP, 80, timeout=30)
    seen = set()
    for text in CODE * 2:
        status, backend, data = post(conn, text)
        if status not in (502, 503) or backend is not None:
            fail(f"tag_match=require, gpu-2 down: code prompt got {status} from {backend}: {data[:200]!r}")
        err = json.loads(data)["error"]
        if 'tagged code and policy.tag_match = "require" allows only backends with that capability' \
                not in err["message"]:
            fail(f"{status} does not say why: {err}")
        seen.add((status, err["code"], err["message"]))
    for s_, code, msg in sorted(seen):
        ok(f"tag_match=require, gpu-2 down: code prompt -> {s_} {code}: {msg!r}")
    status, backend, _ = post(conn, PROSE)
    if status != 200 or backend == "gpu-2":
        fail(f"prose with gpu-2 down under tag_match=require: {status} from {backend}")
    ok(f"prose still served ({backend})")


if __name__ == "__main__":
    cmds = {"route": cmd_route, "zone-down": cmd_zone_down, "prefer-fallback": cmd_prefer_fallback,
            "require": cmd_require}
    if len(sys.argv) < 2 or sys.argv[1] not in cmds:
        fail(f"usage: {sys.argv[0]} {'|'.join(cmds)}")
    cmds[sys.argv[1]]()
