#!/usr/bin/env python3
"""tokenlb_loadgen — open-loop OpenAI chat workload driver (Python standard library only).

    tokenlb_loadgen.py --target 10.10.0.1:80 --rate 4 --duration 40 --seed 7 --out run.jsonl

Arrivals are Poisson at a fixed rate (open loop: a slow server does not slow the arrivals down,
as with real users; a closed loop would hide queueing, which is what a router is judged on).
The request sequence — arrival offsets, bodies, max_tokens, stream flags — is a pure function of
--seed, so two runs against two policies see exactly the same workload.

Workload (the mix a chat product behind one model sees):
  * chat  (~75%): a shared system prompt + a short user turn (40..300 words), max_tokens 16..128
  * rag   (~25%): a system prompt + 3..5 retrieved "documents" (long prompt, ~1.5k..5k tokens by
    the 4-bytes-per-token rule), then the question; max_tokens 32..96
  * 90% streaming with stream_options.include_usage (TTFT = arrival -> first SSE data event),
    10% non-streaming (TTFT not defined; only end-to-end is recorded)

Connections are kept alive and reused from an idle pool, as HTTP client libraries do
(--keepalive off: one connection per request with Connection: close); a new connection is opened
whenever no idle one exists, so arrivals never wait for a connection. One JSON line per request goes to --out: arrival offset,
kind, stream, status, backend (x-tokenlb-backend), ttft_s, e2e_s, usage.prompt_tokens,
usage.completion_tokens, bytes of the body, error. A progress bar goes to stderr.
"""
import argparse
import asyncio
import json
import math
import random
import sys
import time

MODEL = "llama-3-8b"
WORDS = ("the of and to in is that for it as with was on be by this are from or an at which "
         "token model batch cache prefill decode server request latency route stream prompt "
         "kernel packet queue window segment checksum buffer memory layer weight invoice "
         "customer order shipping refund policy account password network storage cluster "
         "deploy service container volume region replica index query answer document").split()
SYSTEM = ("You are a helpful assistant for an online store. Answer briefly and precisely. "
          "Cite the document number when you use retrieved context. " * 3).strip()


def words(rng, n):
    return " ".join(rng.choice(WORDS) for _ in range(n))


def make_workload(seed, rate, duration, rag_frac=0.25, stream_frac=0.9):
    """List of request dicts with arrival offsets (s). Deterministic in its arguments."""
    rng = random.Random(seed)
    reqs, t, i = [], 0.0, 0
    while True:
        t += rng.expovariate(rate)
        if t >= duration:
            break
        kind = "rag" if rng.random() < rag_frac else "chat"
        if kind == "chat":
            msgs = [{"role": "system", "content": SYSTEM},
                    {"role": "user", "content": words(rng, rng.randint(40, 300)) + "?"}]
            max_tokens = rng.choice([16, 32, 48, 64, 96, 128])
        else:
            docs = []
            for d in range(rng.randint(3, 5)):
                docs.append(f"[doc {d + 1}] " + words(rng, rng.randint(250, 600)))
            msgs = [{"role": "system", "content": SYSTEM},
                    {"role": "user", "content": "Context:\n" + "\n\n".join(docs) +
                     "\n\nQuestion: " + words(rng, rng.randint(10, 30)) + "?"}]
            max_tokens = rng.choice([32, 64, 96])
        stream = rng.random() < stream_frac
        body = {"model": MODEL, "messages": msgs, "max_tokens": max_tokens}
        if stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        reqs.append({"i": i, "t": t, "kind": kind, "stream": stream, "max_tokens": max_tokens,
                     "body": json.dumps(body, separators=(",", ":")).encode()})
        i += 1
    return reqs


async def read_headers(reader):
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    hdrs = {}
    for ln in lines[1:]:
        if ":" in ln:
            k, v = ln.split(":", 1)
            hdrs[k.strip().lower()] = v.strip()
    return status, hdrs


async def body_chunks(reader, hdrs):
    """Yields the response body in pieces as they arrive (chunked or Content-Length or to EOF)."""
    if hdrs.get("transfer-encoding", "").lower() == "chunked":
        while True:
            size_line = await reader.readuntil(b"\r\n")
            size = int(size_line.split(b";")[0], 16)
            if size == 0:
                await reader.readuntil(b"\r\n")
                return
            data = await reader.readexactly(size + 2)
            yield data[:-2]
    elif "content-length" in hdrs:
        n = int(hdrs["content-length"])
        if n:
            yield await reader.readexactly(n)
    else:
        while True:
            data = await reader.read(65536)
            if not data:
                return
            yield data


class Pool:
    """Idle keep-alive connections to the target (an HTTP client library's pool, as the OpenAI
    SDKs use). keepalive=False opens a connection per request and sends Connection: close."""

    def __init__(self, host, port, keepalive):
        self.host, self.port, self.keepalive = host, port, keepalive
        self.idle = []
        self.opened = 0

    async def get(self):
        if self.idle:
            return self.idle.pop(), True
        self.opened += 1
        return await asyncio.open_connection(self.host, self.port), False

    def put(self, conn):
        self.idle.append(conn)

    def close_all(self):
        for _, w in self.idle:
            w.close()
        self.idle.clear()


async def exchange(conn, host, req, start, keepalive, rec):
    """One request/response on conn. Returns True when conn may be reused."""
    reader, writer = conn
    writer.write(b"POST /v1/chat/completions HTTP/1.1\r\nHost: %s\r\n"
                 b"Content-Type: application/json\r\nConnection: %s\r\n"
                 b"Content-Length: %d\r\n\r\n" % (host.encode(),
                                                   b"keep-alive" if keepalive else b"close",
                                                   len(req["body"])) + req["body"])
    await writer.drain()
    status, hdrs = await read_headers(reader)
    rec["status"] = status
    rec["backend"] = hdrs.get("x-tokenlb-backend")
    if not req["stream"] or status != 200:
        body = b"".join([c async for c in body_chunks(reader, hdrs)])
        rec["e2e_s"] = time.monotonic() - start
        try:
            obj = json.loads(body)
            u = obj.get("usage") or {}
            rec["prompt_tokens"] = u.get("prompt_tokens")
            rec["completion_tokens"] = u.get("completion_tokens")
            if status != 200:
                rec["error"] = (obj.get("error") or {}).get("message", "")[:200]
        except ValueError:
            rec["error"] = "bad json body"
    else:
        buf = b""
        done = False
        async for chunk in body_chunks(reader, hdrs):
            buf += chunk
            while b"\n\n" in buf:
                ev, buf = buf.split(b"\n\n", 1)
                for line in ev.split(b"\n"):
                    if not line.startswith(b"data:"):
                        continue
                    data = line[5:].strip()
                    if rec["ttft_s"] is None:
                        rec["ttft_s"] = time.monotonic() - start
                    if data == b"[DONE]":
                        done = True
                        continue
                    obj = json.loads(data)
                    u = obj.get("usage")
                    if u:
                        rec["prompt_tokens"] = u.get("prompt_tokens")
                        rec["completion_tokens"] = u.get("completion_tokens")
        rec["e2e_s"] = time.monotonic() - start
        if not done:
            rec["error"] = "stream ended without [DONE]"
    framed = ("content-length" in hdrs or
              hdrs.get("transfer-encoding", "").lower() == "chunked")
    return keepalive and framed and hdrs.get("connection", "").lower() != "close"


async def one_request(pool, host, req, t0, timeout):
    rec = {"i": req["i"], "t": round(req["t"], 6), "kind": req["kind"], "stream": req["stream"],
           "max_tokens": req["max_tokens"], "body_bytes": len(req["body"]), "status": 0,
           "backend": None, "ttft_s": None, "e2e_s": None, "prompt_tokens": None,
           "completion_tokens": None, "reused": False, "error": None}
    start = t0 + req["t"]
    try:
        async with asyncio.timeout(timeout):
            for attempt in (0, 1):
                conn, reused = await pool.get()
                rec["reused"] = reused
                try:
                    reuse = await exchange(conn, host, req, start, pool.keepalive, rec)
                except (OSError, asyncio.IncompleteReadError) as e:
                    conn[1].close()
                    # A pooled connection the server closed while idle: retry once on a new
                    # one, as HTTP clients do, but only when no response byte was seen.
                    if reused and rec["status"] == 0 and attempt == 0:
                        continue
                    raise
                if reuse and not rec["error"]:
                    pool.put(conn)
                else:
                    conn[1].close()
                break
    except TimeoutError:
        rec["error"] = f"timeout after {timeout}s"
    except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as e:
        rec["error"] = f"{type(e).__name__}: {e}"[:200]
    return rec


class Progress:
    def __init__(self, total, duration, label, enabled):
        self.total, self.duration, self.label, self.enabled = total, duration, label, enabled
        self.sent = self.done = self.errors = 0
        self.tty = sys.stderr.isatty()
        self.last = 0.0

    def draw(self, t0, final=False):
        if not self.enabled:
            return
        now = time.monotonic()
        if not self.tty and not final and now - self.last < 5.0:
            return  # a log file gets one line every 5 s instead of a redrawn bar
        self.last = now
        width = 30
        frac = self.done / self.total if self.total else 1.0
        bar = "#" * int(frac * width) + "." * (width - int(frac * width))
        el = time.monotonic() - t0
        sys.stderr.write(("\r" if self.tty else "") + f"  {self.label:<13} [{bar}] {self.done:4d}/{self.total} done, "
                         f"{self.sent - self.done:3d} in flight, {self.errors} errors, "
                         f"{el:5.1f}s")
        if final or not self.tty:
            sys.stderr.write("\n")
        sys.stderr.flush()


async def run(args):
    host, port = args.target.rsplit(":", 1)
    port = int(port)
    reqs = make_workload(args.seed, args.rate, args.duration, args.rag_frac, args.stream_frac)
    prog = Progress(len(reqs), args.duration, args.label,
                    args.progress == "on" or (args.progress == "auto" and sys.stderr.isatty()))
    results = []
    pool = Pool(host, port, args.keepalive == "on")
    t0 = time.monotonic() + 0.2

    async def fire(req):
        delay = t0 + req["t"] - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        prog.sent += 1
        rec = await one_request(pool, host, req, t0, args.timeout)
        prog.done += 1
        if rec["error"] or rec["status"] != 200:
            prog.errors += 1
        results.append(rec)

    async def ticker():
        while True:
            prog.draw(t0)
            await asyncio.sleep(0.5)

    tick = asyncio.create_task(ticker())
    await asyncio.gather(*(fire(r) for r in reqs))
    tick.cancel()
    prog.draw(t0, final=True)
    pool.close_all()
    wall = time.monotonic() - t0
    results.sort(key=lambda r: r["i"])
    with open(args.out, "w") as f:
        for r in results:
            f.write(json.dumps(r) + "\n")
        f.write(json.dumps({"summary": True, "wall_s": wall, "requests": len(reqs),
                            "rate": args.rate, "duration": args.duration, "seed": args.seed,
                            "keepalive": args.keepalive, "connections": pool.opened}) + "\n")
    bad = sum(1 for r in results if r["error"] or r["status"] != 200)
    return 0 if bad <= args.max_errors else 1


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--target", default="10.10.0.1:80")
    ap.add_argument("--rate", type=float, default=4.0, help="mean arrivals per second (Poisson)")
    ap.add_argument("--duration", type=float, default=40.0, help="seconds of arrivals")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--rag-frac", type=float, default=0.25)
    ap.add_argument("--stream-frac", type=float, default=0.9)
    ap.add_argument("--timeout", type=float, default=90.0, help="per request, seconds")
    ap.add_argument("--out", required=True, help="JSON lines, one per request")
    ap.add_argument("--keepalive", choices=["on", "off"], default="on",
                    help="reuse idle connections (on) or one connection per request (off)")
    ap.add_argument("--label", default="load")
    ap.add_argument("--progress", choices=["auto", "on", "off"], default="auto")
    ap.add_argument("--max-errors", type=int, default=0,
                    help="exit 1 when more requests than this fail")
    ap.add_argument("--describe", action="store_true", help="print the workload's shape and exit")
    args = ap.parse_args()
    if args.describe:
        reqs = make_workload(args.seed, args.rate, args.duration, args.rag_frac, args.stream_frac)
        for k in ("chat", "rag"):
            rs = [r for r in reqs if r["kind"] == k]
            if rs:
                b = sorted(len(r["body"]) for r in rs)
                print(f"{k}: {len(rs)} requests, body bytes median {b[len(b) // 2]} "
                      f"max {b[-1]} (~{b[len(b) // 2] // 4} tokens by bytes/4), "
                      f"max_tokens mean {sum(r['max_tokens'] for r in rs) / len(rs):.0f}")
        print(f"total {len(reqs)} over {args.duration}s, streaming "
              f"{sum(r['stream'] for r in reqs)}")
        return 0
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
