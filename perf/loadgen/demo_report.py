#!/usr/bin/env python3
"""demo_report — side-by-side report of tokenlb_loadgen runs (Python standard library only).

    demo_report.py --outdir demo-out RUN_DIR...

Each RUN_DIR (written by scripts/demo.sh) holds:
  label            the policy name
  requests.jsonl   tokenlb_loadgen output (one line per request + a summary line)
  metrics_before/  metrics_after/   gpu-emu /metrics text per backend (<name>.prom)
  counters.txt     the appliance's counters line (scripts/lab.sh counters), optional
Writes OUTDIR/report.md, OUTDIR/ttft_cdf.dat (+ .gp) and prints the table to stdout.
Also writes OUTDIR/summary.json (the numbers, for tests and for repeated runs).
"""
import argparse
import json
import os
import re
import sys


def pct(xs, p):
    """Nearest-rank percentile (no interpolation: p99 of 100 samples is the 99th smallest)."""
    if not xs:
        return float("nan")
    xs = sorted(xs)
    k = max(0, min(len(xs) - 1, int(-(-p * len(xs) // 100)) - 1))
    return xs[k]


def mean(xs):
    return sum(xs) / len(xs) if xs else float("nan")


METRIC_RE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+([-+0-9.eEnaNInf]+)')


def prom_sum(text, name):
    total, seen = 0.0, False
    for line in text.splitlines():
        m = METRIC_RE.match(line)
        if m and m.group(1) == name:
            total += float(m.group(3))
            seen = True
    return total if seen else None


def scrape_dir(d, name):
    out = {}
    if not os.path.isdir(d):
        return out
    for f in sorted(os.listdir(d)):
        if f.endswith(".prom"):
            with open(os.path.join(d, f)) as fh:
                out[f[:-5]] = prom_sum(fh.read(), name)
    return out


def delta(run_dir, name):
    b = scrape_dir(os.path.join(run_dir, "metrics_before"), name)
    a = scrape_dir(os.path.join(run_dir, "metrics_after"), name)
    per = {k: (a[k] - (b.get(k) or 0.0)) for k in a if a[k] is not None}
    return per


def estimate_error(run_dir):
    """The appliance's prompt-token estimate vs the backend's usage.prompt_tokens, per request
    from the access log (est_prompt_tokens, prompt_tokens), else the totals from its /metrics."""
    rel = []
    ap = os.path.join(run_dir, "access.log")
    if os.path.exists(ap):
        with open(ap) as f:
            for line in f:
                try:
                    o = json.loads(line)
                except ValueError:
                    continue
                e, a = o.get("est_prompt_tokens"), o.get("prompt_tokens")
                if isinstance(e, (int, float)) and isinstance(a, (int, float)) and a > 0:
                    rel.append((e - a) / a)
    if rel:
        ab = [abs(x) for x in rel]
        return {"source": "access log", "n": len(rel), "bias": mean(rel), "mean_abs": mean(ab),
                "p50_abs": pct(ab, 50), "p90_abs": pct(ab, 90), "max_abs": max(ab)}
    pp = os.path.join(run_dir, "tokenlb.prom")
    if os.path.exists(pp):
        with open(pp) as f:
            text = f.read()
        e = prom_sum(text, "tokenlb_prompt_tokens_estimated_total")
        a = prom_sum(text, "tokenlb_prompt_tokens_total")
        if e is not None and a:
            return {"source": "tokenlb /metrics totals", "n": None, "bias": (e - a) / a}
    return None


def fmt_est(est):
    if not est:
        return "n/a"
    if est.get("n"):
        return f"{est['mean_abs'] * 100:.1f}% (p90 {est['p90_abs'] * 100:.1f}%)"
    return f"total {est['bias'] * 100:+.1f}%"


def load_run(run_dir):
    with open(os.path.join(run_dir, "label")) as f:
        label = f.read().strip()
    recs, summary = [], {}
    with open(os.path.join(run_dir, "requests.jsonl")) as f:
        for line in f:
            o = json.loads(line)
            if o.get("summary"):
                summary = o
            else:
                recs.append(o)
    ok = [r for r in recs if r["status"] == 200 and not r["error"]]
    ttft = [r["ttft_s"] for r in ok if r["stream"] and r["ttft_s"] is not None]
    e2e = [r["e2e_s"] for r in ok if r["e2e_s"] is not None]
    out_tok = sum(r["completion_tokens"] or 0 for r in ok)
    # Throughput over the span from the first arrival to the last completion.
    t_end = max((r["t"] + r["e2e_s"] for r in ok), default=0.0)
    t_first = min((r["t"] for r in recs), default=0.0)
    span = max(1e-9, t_end - t_first)
    backends = {}
    for r in ok:
        backends[r["backend"] or "?"] = backends.get(r["backend"] or "?", 0) + 1
    rag_ttft = [r["ttft_s"] for r in ok if r["stream"] and r["kind"] == "rag" and r["ttft_s"] is not None]
    chat_ttft = [r["ttft_s"] for r in ok if r["stream"] and r["kind"] == "chat" and r["ttft_s"] is not None]
    busy = delta(run_dir, "gpuemu_busy_gpu_seconds_total")
    cost = delta(run_dir, "gpuemu_busy_cost_usd_total")
    lag_max = {}
    after = os.path.join(run_dir, "metrics_after")
    if os.path.isdir(after):
        for f in sorted(os.listdir(after)):
            if f.endswith(".prom"):
                with open(os.path.join(after, f)) as fh:
                    lag_max[f[:-5]] = prom_sum(fh.read(), "gpuemu_event_lag_seconds_max")
    counters = ""
    cp = os.path.join(run_dir, "counters.txt")
    if os.path.exists(cp):
        with open(cp) as f:
            counters = f.read().strip()
    prompt_tok = [r["prompt_tokens"] for r in ok if r["prompt_tokens"] is not None]
    est = estimate_error(run_dir)
    return {
        "label": label, "requests": len(recs), "ok": len(ok), "errors": len(recs) - len(ok),
        "error_samples": sorted({(r["error"] or f"status {r['status']}") for r in recs
                                 if r not in ok})[:5],
        "span_s": span, "req_per_s": len(ok) / span, "out_tok_per_s": out_tok / span,
        "out_tokens": out_tok, "prompt_tokens": sum(prompt_tok),
        "ttft_n": len(ttft), "ttft_mean": mean(ttft), "ttft_p50": pct(ttft, 50),
        "ttft_p99": pct(ttft, 99), "ttft_max": max(ttft) if ttft else float("nan"),
        "ttft_rag_p99": pct(rag_ttft, 99), "ttft_chat_p99": pct(chat_ttft, 99),
        "e2e_mean": mean(e2e), "e2e_p99": pct(e2e, 99),
        "gpu_busy_s": sum(busy.values()) if busy else float("nan"), "gpu_busy_per": busy,
        "gpu_cost_usd": sum(cost.values()) if cost else float("nan"),
        "emu_lag_max_s": max([v for v in lag_max.values() if v is not None], default=float("nan")),
        "est": est,
        "backends": dict(sorted(backends.items())), "ttft": sorted(ttft), "counters": counters,
        "seed": summary.get("seed"), "rate": summary.get("rate"),
        "duration": summary.get("duration"),
    }


def fmt_ms(x):
    return "n/a" if x != x else f"{x * 1000:,.0f} ms"


def table(runs):
    names = sorted({b for r in runs for b in r["backends"]})
    rows = [
        ("requests ok / sent", lambda r: f"{r['ok']} / {r['requests']}"),
        ("throughput (req/s)", lambda r: f"{r['req_per_s']:.2f}"),
        ("output tokens/s", lambda r: f"{r['out_tok_per_s']:.0f}"),
        ("TTFT mean", lambda r: fmt_ms(r["ttft_mean"])),
        ("TTFT p50", lambda r: fmt_ms(r["ttft_p50"])),
        ("**TTFT p99**", lambda r: "**" + fmt_ms(r["ttft_p99"]) + "**"),
        ("TTFT p99, RAG prompts", lambda r: fmt_ms(r["ttft_rag_p99"])),
        ("TTFT p99, chat prompts", lambda r: fmt_ms(r["ttft_chat_p99"])),
        ("end-to-end mean", lambda r: fmt_ms(r["e2e_mean"])),
        ("end-to-end p99", lambda r: fmt_ms(r["e2e_p99"])),
        ("prompt-token estimate error, mean abs", lambda r: fmt_est(r["est"])),
        ("GPU busy seconds (sum)", lambda r: f"{r['gpu_busy_s']:.1f} s"),
        ("GPU cost of busy time", lambda r: f"${r['gpu_cost_usd']:.4f}"),
    ] + [(f"requests → {n}", (lambda n: lambda r: str(r["backends"].get(n, 0)))(n)) for n in names]
    out = ["| | " + " | ".join(r["label"] for r in runs) + " |",
           "|---|" + "---:|" * len(runs)]
    for name, f in rows:
        out.append(f"| {name} | " + " | ".join(f(r) for r in runs) + " |")
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--outdir", required=True)
    ap.add_argument("--fleet", default="")
    ap.add_argument("runs", nargs="+")
    args = ap.parse_args()
    runs = [load_run(d) for d in args.runs]
    os.makedirs(args.outdir, exist_ok=True)

    # CDF data: one block per run (gnuplot index), "ttft_ms fraction".
    dat = os.path.join(args.outdir, "ttft_cdf.dat")
    with open(dat, "w") as f:
        for r in runs:
            f.write(f"# {r['label']}\n")
            n = len(r["ttft"])
            for i, x in enumerate(r["ttft"]):
                f.write(f"{x * 1000:.3f} {(i + 1) / n:.5f}\n")
            f.write("\n\n")
    gp = os.path.join(args.outdir, "ttft_cdf.gp")
    with open(gp, "w") as f:
        f.write('set terminal pngcairo size 900,540 noenhanced\n' if os.environ.get("DEMO_PNGCAIRO")
                else 'set terminal png size 900,540 noenhanced\n')
        f.write(f'set output "{os.path.join(args.outdir, "ttft_cdf.png")}"\n')
        f.write('set title "tokenlb: time to first token, same workload per policy"\n')
        f.write('set xlabel "TTFT (ms, log scale)"\nset ylabel "fraction of streamed requests"\n')
        f.write('set logscale x\nset grid\nset key bottom right\nset yrange [0:1.02]\n')
        f.write("plot " + ", ".join(
            f'"{dat}" index {i} using 1:2 with steps lw 2 title "{r["label"]} (p99 {fmt_ms(r["ttft_p99"])})"'
            for i, r in enumerate(runs)) + "\n")

    tbl = table(runs)
    base = runs[0]
    lines = ["# tokenlb demo report", ""]
    r0 = runs[0]
    lines.append(f"Workload: Poisson arrivals at {r0['rate']} req/s for {r0['duration']} s, seed "
                 f"{r0['seed']} (the same request sequence for every policy); OpenAI chat bodies, "
                 "~75% short chat and ~25% long RAG-style prompts, 90% streamed with "
                 "`stream_options.include_usage`. TTFT = arrival to the first SSE data event, "
                 "streamed requests only. Fleet: " + (args.fleet or "see conf/lab.toml") +
                 ". Backends and appliance restarted between policies.")
    lines += ["", tbl, ""]
    ta = next((r for r in runs if r["label"] == "token_aware"), None)
    rr = next((r for r in runs if r["label"] == "round_robin"), None)
    if ta and rr and ta["ttft_p99"] == ta["ttft_p99"] and rr["ttft_p99"] == rr["ttft_p99"]:
        if ta["ttft_p99"] < rr["ttft_p99"]:
            lines.append(f"**token_aware p99 TTFT is {rr['ttft_p99'] / ta['ttft_p99']:.1f}x lower "
                         f"than round_robin** ({fmt_ms(ta['ttft_p99'])} vs {fmt_ms(rr['ttft_p99'])}).")
        else:
            lines.append(f"**token_aware is NOT ahead of round_robin on p99 TTFT in this run** "
                         f"({fmt_ms(ta['ttft_p99'])} vs {fmt_ms(rr['ttft_p99'])}).")
        lines.append("")
    if any(r["est"] for r in runs):
        lines.append("Estimate error = (the appliance's estimated prompt tokens − the backend's "
                     "`usage.prompt_tokens`) / usage, per request from the appliance's access log: " +
                     "; ".join(f"{r['label']}: " + (
                         f"{r['est']['n']} requests, bias {r['est']['bias'] * 100:+.1f}%, mean abs "
                         f"{r['est']['mean_abs'] * 100:.1f}%, p50 {r['est']['p50_abs'] * 100:.1f}%, "
                         f"p90 {r['est']['p90_abs'] * 100:.1f}%, max {r['est']['max_abs'] * 100:.1f}%"
                         if r["est"] and r["est"].get("n") else fmt_est(r["est"])) for r in runs) +
                     ". gpu-emu (no --spm) counts prompt tokens as ceil(bytes/4) of the rendered "
                     "chat, so this compares two estimates, not the appliance against a real "
                     "tokenizer.")
    else:
        lines.append("Estimate error (the appliance's estimated prompt tokens vs `usage.prompt_tokens`): "
                     "this appliance build exposes no per-request estimate (no access log, no "
                     "`tokenlb_prompt_tokens_estimated_total`), so it is not measured. Prompt tokens "
                     "reported by the backends: " +
                     ", ".join(f"{r['label']} {r['prompt_tokens']:,}" for r in runs) + ".")
    lines.append("")
    for r in runs:
        if r["errors"]:
            lines.append(f"- {r['label']}: {r['errors']} failed requests, e.g. "
                         + "; ".join(r["error_samples"]))
    lines.append("")
    lines.append("Per-backend GPU busy seconds: " + "; ".join(
        f"{r['label']}: " + ", ".join(f"{k} {v:.1f}" for k, v in sorted(r["gpu_busy_per"].items()))
        for r in runs) + ".")
    lines.append("gpu-emu max event lag (how late the emulator process ran; host contention): " +
                 ", ".join(f"{r['label']} {fmt_ms(r['emu_lag_max_s'])}" for r in runs) + ".")
    lines.append("")
    lines.append("Appliance counters at the end of each run (`scripts/lab.sh counters`):")
    lines.append("")
    for r in runs:
        if r["counters"]:
            lines.append(f"- {r['label']}: `{r['counters'].splitlines()[0]}`")
    lines.append("")
    lines.append("![TTFT CDF](ttft_cdf.png)")
    with open(os.path.join(args.outdir, "report.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    with open(os.path.join(args.outdir, "summary.json"), "w") as f:
        json.dump([{k: v for k, v in r.items() if k != "ttft"} for r in runs], f, indent=1)
    print(tbl)
    for ln in lines:
        if ln.startswith("**token_aware"):
            print("\n" + ln)
    return 0


if __name__ == "__main__":
    sys.exit(main())
