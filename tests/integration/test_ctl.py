#!/usr/bin/env python3
"""tokenlb-ctl against a running telemetry service over the real DPDK telemetry socket.

Checks: status/backends/stats/policy in table and --json form; `backend drain NAME` stops new
requests to NAME while its in-flight requests finish (outstanding drains to 0, routed stops
growing, other backends keep taking requests), undrain resumes; weight 0 behaves like drain;
`policy set`; clear errors (unknown backend: exit 1; appliance not running: exit 2 with a hint);
`top --count`; the backend /metrics scraper against a real gpu-emu on 127.0.0.1 (fresh metrics
for the scraped backend, stale for the others).

TARGET harness (default until app/tokenlb runs lib/telemetry): tlb-telemetry-harness (real
lib/telemetry service + DPDK telemetry, synthetic worker). TARGET appliance: scripts/lab.sh start
and load from the client namespace (set TLB_TELEMETRY_TARGET=appliance or change the default).
"""
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.environ.get("TLB_BUILD_DIR", os.path.join(ROOT, "build"))
TARGET = os.environ.get("TLB_TELEMETRY_TARGET", "appliance")
CTL = os.path.join(BUILD, "app", "tokenlb-ctl", "tokenlb-ctl")
HARNESS = os.path.join(BUILD, "app", "tokenlb-ctl", "tlb-telemetry-harness")
GPU_EMU = os.path.join(BUILD, "perf", "gpu-emu", "gpu-emu")
PREFIX = "tlb-ctl-test-%d" % os.getpid() if TARGET == "harness" else "tokenlb"

procs = []
failures = []
tmp = tempfile.mkdtemp(prefix="tlb-ctl.")
lab_started = False


lab_lock = None


def cleanup():
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    if lab_started:
        subprocess.call([os.path.join(ROOT, "scripts", "lab.sh"), "stop"])
        subprocess.call([os.path.join(ROOT, "scripts", "lab.sh"), "down"])
    subprocess.call(["rm", "-rf", tmp])
    if TARGET == "harness":
        subprocess.call(["rm", "-rf", "/var/run/dpdk/" + PREFIX])


def check(cond, msg):
    print(("ok   " if cond else "FAIL ") + msg)
    if not cond:
        failures.append(msg)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def ctl(*args, expect=0):
    cmd = [CTL, "--file-prefix", PREFIX] + list(args)
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    if expect is not None and r.returncode != expect:
        print("command %s: rc=%d\nstdout: %s\nstderr: %s" % (args, r.returncode, r.stdout, r.stderr))
    return r


def ctl_json(*args):
    r = ctl("--json", *args)
    return json.loads(r.stdout)


def backends():
    b = ctl_json("backends")
    return {b["name"][i]: {k: v[i] for k, v in b.items() if isinstance(v, list)} for i in range(b["count"])}


def wait_for(pred, timeout=15.0, step=0.1):
    end = time.time() + timeout
    while time.time() < end:
        v = pred()
        if v:
            return v
        time.sleep(step)
    return pred()


def main():
    global lab_started
    for path in (CTL,) + ((HARNESS, GPU_EMU) if TARGET == "harness" else ()):
        if not os.access(path, os.X_OK):
            print("missing %s (build first)" % path)
            return 1

    if TARGET == "harness":
        emu_port = free_port()
        emu = subprocess.Popen([GPU_EMU, "--listen", "127.0.0.1:%d" % emu_port, "--profile", "h100-8b",
                                "--model", "llama-3-8b", "--quiet"],
                               stdout=open(os.path.join(tmp, "emu.log"), "w"), stderr=subprocess.STDOUT)
        procs.append(emu)
        mport = free_port()
        h = subprocess.Popen([HARNESS, "--listen", "127.0.0.1:%d" % mport, "--file-prefix", PREFIX,
                              "--backends", "4", "--rate", "80", "--hold-ms", "300",
                              "--metrics-url", "http://127.0.0.1:%d/metrics" % emu_port],
                             stdout=open(os.path.join(tmp, "harness.log"), "w"), stderr=subprocess.STDOUT)
        procs.append(h)
    else:
        # The lab is shared by every lab test: hold its lock for the whole session (the fd is not
        # inherited by what lab.sh launches).
        import fcntl
        global lab_lock
        # Module-level: held until the process exits, i.e. after cleanup() tore the lab down.
        lab_lock = open(os.environ.get("LAB_LOCK_FILE", "/run/tokenlb-lab.lock"), "w")
        fcntl.flock(lab_lock, fcntl.LOCK_EX)
        lab_started = True
        subprocess.check_call([os.path.join(ROOT, "scripts", "lab.sh"), "up"])
        # round_robin: every backend takes requests before the drain, whatever their speed.
        subprocess.check_call([os.path.join(ROOT, "scripts", "lab.sh"), "start", "--backends", "4",
                               "--policy", "round_robin"])
        load = subprocess.Popen(["bash", "-c",
                                 "while :; do ip netns exec tlb-client curl -s -m 20 -o /dev/null "
                                 "http://10.10.0.1/v1/completions -H 'content-type: application/json' "
                                 "-d '{\"model\":\"llama-3-8b\",\"prompt\":\"hello\",\"max_tokens\":64}' & "
                                 "sleep 0.05; done"], start_new_session=True)
        procs.append(load)

    ok = wait_for(lambda: ctl("status", expect=None).returncode == 0, timeout=30)
    check(bool(ok), "tokenlb-ctl status reaches the service")
    r = ctl("status")
    check("policy" in r.stdout and "requests_finished" in r.stdout, "status prints a key/value table")
    st = ctl_json("status")
    check(st["backends"] == 4 and isinstance(st["busy_permille"], list), "status --json: backends, busy")

    r = ctl("backends")
    lines = r.stdout.strip().splitlines()
    check(lines[0].split()[:5] == ["NAME", "ADDRESS", "HEALTH", "DRAIN", "WEIGHT"] and len(lines) == 5,
          "backends prints a table with one row per backend")
    wait_for(lambda: all(b["routed"] > 0 for b in backends().values()), timeout=20)
    b0 = backends()
    check(all(b["routed"] > 0 for b in b0.values()), "every backend takes requests before the drain")
    victim = sorted(b0)[1]

    # Drain: new requests stop, in-flight ones finish.
    r = ctl("backend", "drain", victim)
    check(r.returncode == 0 and "draining" in r.stdout, "backend drain %s" % victim)
    drained = wait_for(lambda: backends()[victim]["outstanding"] == 0, timeout=20)
    check(bool(drained), "in-flight requests on the drained backend finish (outstanding -> 0)")
    b1 = backends()
    check(b1[victim]["completed"] >= b0[victim]["routed"], "the drained backend completed what it had")
    time.sleep(1.5)
    b2 = backends()
    check(b2[victim]["routed"] == b1[victim]["routed"], "no new requests reach the drained backend")
    others = [n for n in b2 if n != victim]
    check(all(b2[n]["routed"] > b1[n]["routed"] for n in others), "the other backends keep taking requests")
    check(b2[victim]["drain"] == 1, "backends --json shows drain=1")

    r = ctl("backend", "undrain", victim)
    check(r.returncode == 0, "backend undrain")
    check(bool(wait_for(lambda: backends()[victim]["routed"] > b2[victim]["routed"], timeout=10)),
          "an undrained backend takes requests again")

    # Weight 0 = no new requests; weight restored.
    r = ctl("backend", "weight", victim, "0")
    check(r.returncode == 0 and "weight 0" in r.stdout, "backend weight NAME 0")
    wait_for(lambda: backends()[victim]["outstanding"] == 0, timeout=20)
    w1 = backends()[victim]["routed"]
    time.sleep(1.0)
    check(backends()[victim]["routed"] == w1 and backends()[victim]["weight"] == 0,
          "weight 0 stops new requests")
    ctl("backend", "weight", victim, "100")
    check(backends()[victim]["weight"] == 100, "weight restored")

    # Policy.
    r = ctl("policy", "set", "least_requests")
    check(r.returncode == 0 and "least_requests" in r.stdout, "policy set least_requests")
    check(ctl_json("policy")["policy"] == "least_requests", "policy reads back")
    r = ctl("policy", "set", "nonsense", expect=1)
    check(r.returncode == 1 and "unknown policy" in r.stderr, "bad policy name: exit 1 with the reason")

    # Errors.
    r = ctl("backend", "drain", "no-such-backend", expect=1)
    check(r.returncode == 1 and "no backend named" in r.stderr, "unknown backend: exit 1 with the reason")
    r = ctl("backend", "weight", victim, "5000", expect=1)
    check(r.returncode == 1 and "0..1000" in r.stderr, "weight out of range refused")
    r = subprocess.run([CTL, "--socket", os.path.join(tmp, "nothing.sock"), "status"], capture_output=True,
                       text=True, timeout=10)
    check(r.returncode == 2 and "is tokenlb running" in r.stderr, "appliance not running: exit 2 with a hint")
    r = subprocess.run([CTL, "frobnicate"], capture_output=True, text=True, timeout=10)
    check(r.returncode == 2, "bad command line: exit 2")

    # Stats and top.
    s = ctl_json("stats")
    check(s.get("requests", 0) > 0 and any(k.startswith("tcp_") for k in s), "stats: data-plane and TCP counters")
    r = ctl("top", "--count", "2", "--interval", "0.5")
    check(r.returncode == 0 and "req/s" in r.stdout and "ROUTED/s" in r.stdout, "top refreshes with rates")

    if TARGET == "harness":
        # Scraper: backend gpu0's metrics_url is the gpu-emu; the others have unreachable addresses.
        fresh = wait_for(lambda: backends()["gpu0"]["metrics_stale"] == 0, timeout=15)
        check(bool(fresh), "scraped backend (gpu-emu on 127.0.0.1) has fresh metrics")
        bb = backends()
        check(all(bb[n]["metrics_stale"] == 1 for n in bb if n != "gpu0"), "unscraped backends are stale")

    print("%d failure(s)" % len(failures))
    return 1 if failures else 0


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(1))
    try:
        rc = main()
    finally:
        cleanup()
    sys.exit(rc)
