#!/usr/bin/env python3
"""Client side of the data-plane integration test (tests/integration/test_dataplane.sh).

Runs inside the tlb-client namespace against the appliance's VIP with real kernel TCP clients
(curl and Python http.client / raw sockets). Each subcommand checks one acceptance item and exits
non-zero with a message on the first violation.
"""
import http.client
import json
import math
import os
import random
import socket
import struct
import subprocess
import sys
import threading
import time

VIP = "10.10.0.1"
MODEL = "llama-3-8b"
WORDS = ("the of and to in is that for it as with was on be by this are from or an at which "
         "token model batch cache prefill decode server request latency route stream prompt "
         "kernel packet queue window segment checksum buffer memory layer weight").split()


def fail(msg):
    print("FAIL:", msg, flush=True)
    sys.exit(1)


def ok(msg):
    print("ok:", msg, flush=True)


def text_of(nbytes, rng):
    out, n = [], 0
    while n < nbytes:
        w = rng.choice(WORDS)
        out.append(w)
        n += len(w) + 1
    return " ".join(out)[:max(1, nbytes)]


def chat_body(nbytes, rng, max_tokens=8, stream=False):
    b = {"model": MODEL, "messages": [{"role": "system", "content": "You are terse."},
                                      {"role": "user", "content": text_of(nbytes, rng)}],
         "max_tokens": max_tokens}
    if stream:
        b["stream"] = True
        b["stream_options"] = {"include_usage": True}
    return json.dumps(b)


def in_gpu(*cmd):
    return subprocess.run(["ip", "netns", "exec", "tlb-gpu", *cmd], capture_output=True,
                          text=True, timeout=30)


def curl(url, body, extra=()):
    r = subprocess.run(["curl", "-sS", "-N", "--max-time", "30", "-D", "-", url, "-H",
                        "content-type: application/json", "-d", body, *extra],
                       capture_output=True, timeout=60)
    if r.returncode != 0:
        fail(f"curl {url}: rc={r.returncode} {r.stderr.decode(errors='replace').strip()}")
    out = r.stdout.decode()
    head, _, payload = out.partition("\r\n\r\n")
    return head, payload


def normalise_completion(obj):
    """Drop what legitimately differs per request: ids, timestamps and the generated words
    (gpu-emu picks words from a per-request counter); keep the shape and every number."""
    obj = json.loads(json.dumps(obj))
    obj.pop("id", None)
    obj.pop("created", None)
    for ch in obj.get("choices", []):
        for k in ("message", "delta"):
            if k in ch and "content" in ch[k] and ch[k]["content"] is not None:
                ch[k]["content"] = len(ch[k]["content"].split())
    return obj


def sse_events(payload):
    ev = []
    for block in payload.split("\n\n"):
        block = block.strip()
        if not block:
            continue
        assert block.startswith("data: "), block
        data = block[6:]
        ev.append(data if data == "[DONE]" else normalise_completion(json.loads(data)))
    return ev


def cmd_compare():
    """curl through the appliance returns what gpu-emu returns directly (non-stream and stream)."""
    rng = random.Random(1)
    for stream in (False, True):
        body = chat_body(300, rng, max_tokens=12, stream=stream)
        head, via = curl(f"http://{VIP}/v1/chat/completions", body)
        if " 200 " not in head.split("\r\n")[0]:
            fail(f"via appliance: {head.splitlines()[0]}")
        if "x-tokenlb-backend:" not in head.lower():
            fail("no x-tokenlb-backend header")
        # The same request straight to a backend, from the backend namespace: another backend
        # than the one that served it, so its prefix cache does not answer differently.
        served = [l.split(":", 1)[1].strip() for l in head.split("\r\n")
                  if l.lower().startswith("x-tokenlb-backend:")][0]
        other = 12 if served == "gpu-1" else 11
        direct = f"http://10.20.0.{other}:8000/v1/chat/completions"
        r = in_gpu("curl", "-sS", "-N", "--max-time", "30", direct, "-H",
                   "content-type: application/json", "-d", body)
        if r.returncode != 0:
            fail(f"direct curl failed: {r.stderr}")
        d = r.stdout
        if stream:
            a, b = sse_events(via), sse_events(d)
            if a != b:
                fail(f"stream differs:\nvia    {a}\ndirect {b}")
            if a[-1] != "[DONE]" or "usage" not in a[-2]:
                fail("stream lacks the usage chunk or [DONE]")
            ok(f"stream: {len(a)} events identical modulo ids/timing")
        else:
            a, b = normalise_completion(json.loads(via)), normalise_completion(json.loads(d))
            if a != b:
                fail(f"body differs:\nvia    {a}\ndirect {b}")
            ok(f"non-stream: identical modulo ids/timing (usage {a['usage']})")


def metrics_requests(addr):
    r = in_gpu("curl", "-s", "--max-time", "5", f"http://{addr}/metrics")
    n = 0
    for line in r.stdout.splitlines():
        if line.startswith("vllm:request_success_total"):
            n += int(float(line.rsplit(" ", 1)[1]))
    return n


def cmd_keepalive(n=200, n_backends=4):
    """One keep-alive connection, n requests of mixed sizes: all complete, routed per request."""
    addrs = [f"10.20.0.{11 + i}:8000" for i in range(n_backends)]
    before = [metrics_requests(a) for a in addrs]
    rng = random.Random(2)
    c = http.client.HTTPConnection(VIP, 80, timeout=60)
    seen = {}
    for i in range(n):
        size = int(math.exp(rng.uniform(math.log(100), math.log(20000))))
        c.request("POST", "/v1/chat/completions", chat_body(size, rng, rng.randint(1, 16)),
                  {"content-type": "application/json"})
        r = c.getresponse()
        data = r.read()
        if r.status != 200:
            fail(f"request {i}: {r.status} {data[:200]}")
        json.loads(data)
        b = r.getheader("x-tokenlb-backend")
        seen[b] = seen.get(b, 0) + 1
    c.close()
    after = [metrics_requests(a) for a in addrs]
    delta = [a - b for a, b in zip(after, before)]
    if len(seen) < 2:
        fail(f"all {n} requests on one backend: {seen}")
    if sum(delta) != n:
        fail(f"gpu-emu counted {delta} (sum {sum(delta)}), expected {n}")
    by_name = {f"gpu-{i + 1}": d for i, d in enumerate(delta)}
    if {k: v for k, v in by_name.items() if v} != seen:
        fail(f"x-tokenlb-backend {seen} disagrees with gpu-emu counters {by_name}")
    ok(f"{n} requests on one connection, spread {seen}, matching gpu-emu counters")


BAD_REQUESTS = [
    ("CL and TE", b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                  b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    ("duplicate CL", b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
                     b"Content-Length: 3\r\n\r\n{}", 400),
    ("bad chunk size", b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked"
                       b"\r\n\r\nzz\r\n{}\r\n0\r\n\r\n", 400),
    ("obs-fold", b"GET /health HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n continued\r\n\r\n", 400),
    ("control char", b"GET /health HTTP/1.1\r\nHost: x\r\nX-A: a\x01b\r\n\r\n", 400),
    ("bad method", b"G(T /health HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    ("bad version", b"GET /health HTTP/9.x\r\nHost: x\r\n\r\n", 400),
    ("bad target", b"GET health HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    ("headers too large", b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n",
     431),
    ("body too large", b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999"
                       b"\r\n\r\n", 413),
    ("unsupported coding", b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip"
                           b", chunked\r\n\r\n0\r\n\r\n", 501),
    ("invalid JSON", None, 400),
    ("wrong type", None, 400),
    ("unknown model", None, 404),
    ("unknown path", b"GET /v2/nothing HTTP/1.1\r\nHost: x\r\n\r\n", 404),
]


def raw_exchange(req, timeout=10):
    s = socket.create_connection((VIP, 80), timeout=timeout)
    s.sendall(req)
    data = b""
    try:
        while b"\r\n\r\n" not in data or len(data) < data.find(b"\r\n\r\n") + 4 + _cl(data):
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    finally:
        s.close()
    return data


def _cl(data):
    head = data.split(b"\r\n\r\n", 1)[0].lower()
    for line in head.split(b"\r\n"):
        if line.startswith(b"content-length:"):
            return int(line.split(b":", 1)[1])
    return 0


def json_req(body):
    b = body.encode()
    return (b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: " + str(len(b)).encode() + b"\r\n\r\n" + b)


def cmd_malformed():
    """Every malformed-request case gets its status over real TCP; other clients keep working."""
    bodies = {"invalid JSON": '{"model": "llama-3-8b", "messages": [',
              "wrong type": '{"model": "llama-3-8b", "messages": [{"role": "user", "content": 7}]}',
              "unknown model": '{"model": "gpt-nope", "messages": [{"role": "user", "content": "hi"}]}'}
    # A healthy client in parallel the whole time.
    stop = threading.Event()
    errors = []
    good = [0]

    def healthy():
        rng = random.Random(3)
        c = http.client.HTTPConnection(VIP, 80, timeout=30)
        while not stop.is_set():
            try:
                c.request("POST", "/v1/chat/completions", chat_body(200, rng, 2),
                          {"content-type": "application/json"})
                r = c.getresponse()
                r.read()
                if r.status != 200:
                    errors.append(r.status)
                good[0] += 1
            except Exception as e:  # noqa: BLE001
                errors.append(repr(e))
                return

    t = threading.Thread(target=healthy)
    t.start()
    for name, req, want in BAD_REQUESTS:
        if req is None:
            req = json_req(bodies[name])
        data = raw_exchange(req)
        line = data.split(b"\r\n", 1)[0].decode(errors="replace")
        parts = line.split()
        if len(parts) < 2 or parts[1] != str(want):
            fail(f"{name}: wanted {want}, got {line!r}")
        body = data.split(b"\r\n\r\n", 1)[1]
        try:
            err = json.loads(body)["error"]
            assert err["message"]
        except Exception:  # noqa: BLE001
            fail(f"{name}: body is not an OpenAI-style error: {body[:200]!r}")
        ok(f"{name}: {want} \"{err['message'][:60]}\"")
    # Split at every byte: one request dribbled byte by byte still works.
    s = socket.create_connection((VIP, 80), timeout=10)
    req = json_req(chat_body(50, random.Random(9), 2))
    for i in range(len(req)):
        s.send(req[i:i + 1])
        time.sleep(0.0005)
    data = s.recv(65536)
    s.close()
    if not data.startswith(b"HTTP/1.1 200"):
        fail(f"byte-by-byte request: {data[:80]!r}")
    ok("request sent one byte per segment answered 200")
    stop.set()
    t.join()
    if errors or good[0] == 0:
        fail(f"healthy client affected: {errors[:5]} after {good[0]} requests")
    ok(f"healthy client unaffected ({good[0]} requests alongside)")


def cmd_abort():
    """A client that resets mid-stream: gpu-emu records the abort within 10 ms."""
    body = chat_body(100, random.Random(4), max_tokens=2000, stream=True).encode()
    req = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
           b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    s = socket.create_connection((VIP, 80), timeout=10)
    s.sendall(req)
    got = b""
    while got.count(b"data: ") < 3:
        chunk = s.recv(65536)
        if not chunk:
            fail("stream ended early")
        got += chunk
    head = got.split(b"\r\n\r\n", 1)[0].decode()
    backend = [l.split(":", 1)[1].strip() for l in head.split("\r\n")
               if l.lower().startswith("x-tokenlb-backend:")]
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    t_reset = time.time()
    s.close()  # RST
    print(f"reset at {t_reset:.6f}, stream from {backend}", flush=True)
    with open(os.environ.get("ABORT_FILE", "/dev/null"), "w") as f:
        f.write(f"{t_reset:.6f} {backend[0] if backend else ''}\n")


def cmd_load(clients=64, per_client=50, kill_after=0.0):
    """clients x per_client requests with bodies 100 B .. 1 MiB; optionally a backend is killed
    (by the harness) during the load: prints a JSON summary the harness judges."""
    results = []
    lock = threading.Lock()

    def one(cid):
        rng = random.Random(1000 + cid)
        c = http.client.HTTPConnection(VIP, 80, timeout=120)
        for i in range(per_client):
            size = int(math.exp(rng.uniform(math.log(100), math.log(1 << 20))))
            stream = rng.random() < 0.5
            body = chat_body(size, rng, rng.randint(1, 24) if not stream else rng.randint(20, 60),
                             stream)
            rec = {"cid": cid, "i": i, "size": size, "stream": stream, "status": None,
                   "backend": None, "started": False, "error": None}
            try:
                c.request("POST", "/v1/chat/completions", body, {"content-type": "application/json"})
                r = c.getresponse()
                rec["status"] = r.status
                rec["backend"] = r.getheader("x-tokenlb-backend")
                rec["started"] = True
                data = r.read()
                if r.status == 200:
                    if stream:
                        if not data.rstrip().endswith(b"data: [DONE]"):
                            raise RuntimeError("stream without [DONE]")
                    else:
                        json.loads(data)
                else:
                    rec["error"] = data[:200].decode(errors="replace")
            except Exception as e:  # noqa: BLE001
                rec["error"] = repr(e)[:200]
                c.close()
                c = http.client.HTTPConnection(VIP, 80, timeout=120)
            with lock:
                results.append(rec)
        c.close()

    threads = [threading.Thread(target=one, args=(i,)) for i in range(clients)]
    t0 = time.time()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    dt = time.time() - t0
    bad = [r for r in results if r["error"] or r["status"] != 200]
    summary = {"requests": len(results), "failed": len(bad), "seconds": round(dt, 2),
               "by_backend": {}, "failures": bad[:20]}
    for r in results:
        summary["by_backend"][r["backend"]] = summary["by_backend"].get(r["backend"], 0) + 1
    print(json.dumps(summary), flush=True)
    return summary


if __name__ == "__main__":
    cmd = sys.argv[1]
    args = [int(a) if a.isdigit() else a for a in sys.argv[2:]]
    {"compare": cmd_compare, "keepalive": cmd_keepalive, "malformed": cmd_malformed,
     "abort": cmd_abort, "load": cmd_load}[cmd](*args)
