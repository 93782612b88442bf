#!/usr/bin/env python3
"""Trace generator independent of tokenlb-sim's built-in scenarios (different distributions,
different arrival processes), used to check that routing results hold on traces the simulator
was not written against. Writes the JSONL trace contract of docs/routing.md.

  gen_trace.py KIND N SEED > trace.jsonl
  KIND: hetero   (Pareto prompts, diurnal-like rate, two models' worth of tags)
        rag      (bimodal prompts: chat and 3k-7k retrieved context, gamma arrivals)
        chat     (conversations sharing app system prompts, then their own history)
"""
import json
import math
import random
import sys


def pareto(rng, xm, alpha, cap):
    return int(min(cap, xm / (rng.random() ** (1.0 / alpha))))


def hetero(n, rng):
    t = 0.0
    for i in range(n):
        rate = 1.0 + 0.6 * math.sin(2 * math.pi * i / 4000.0)  # slow swell and ebb
        t += rng.expovariate(rate)
        p = pareto(rng, 120, 1.3, 6000)
        mt = rng.choice([256, 512, 1024])
        o = max(1, min(mt, int(rng.gammavariate(2.0, 90))))
        yield {"t": round(t, 6), "model": "llama-3.1-8b", "prompt_tokens": p, "output_tokens": o,
               "max_tokens": mt}


def rag(n, rng):
    t = 0.0
    for i in range(n):
        t += rng.gammavariate(0.5, 2.0)  # burstier than Poisson (cv^2 = 2)
        if rng.random() < 0.25:
            p, o = rng.randint(3000, 7000), max(1, int(rng.gammavariate(3.0, 40)))
            tags = ["rag"]
        else:
            p, o = pareto(rng, 80, 1.8, 1500), max(1, int(rng.gammavariate(2.0, 60)))
            tags = []
        r = {"t": round(t, 6), "model": "llama-3.1-8b", "prompt_tokens": p, "output_tokens": min(o, 400),
             "max_tokens": 400}
        if tags:
            r["tags"] = tags
        yield r


def chat(n, rng):
    # Half the traffic: one-shot requests of 8 apps, each app with its own system prompt shared
    # by all its requests. The other half: conversations whose turns share their history.
    apps = [rng.randint(400, 1800) for _ in range(8)]
    reqs = []
    conv = 0
    t = 0.0
    while len(reqs) < n:
        t += rng.expovariate(1.0 / 2.5)
        if rng.random() < 0.5:
            app = rng.randrange(8)
            o = max(1, int(rng.gammavariate(2.0, 80)))
            reqs.append({"t": round(t, 6), "model": "llama-3.1-8b",
                         "prompt_tokens": apps[app] + rng.randint(20, 400), "output_tokens": min(o, 800),
                         "max_tokens": 800, "prefix_group": "app-%d" % app, "prefix_tokens": apps[app]})
            continue
        ctx = rng.randint(200, 2500)
        tt = t
        prev = 0
        for k in range(rng.randint(2, 8)):
            o = max(1, min(800, int(rng.gammavariate(2.0, 80))))
            reqs.append({"t": round(tt, 6), "model": "llama-3.1-8b", "prompt_tokens": ctx,
                         "output_tokens": o, "max_tokens": 800, "prefix_group": "c%d" % conv,
                         "prefix_tokens": prev})
            prev = ctx + o
            ctx = prev + rng.randint(10, 300)
            tt += rng.expovariate(1.0 / 25.0)
            if ctx > 6500:
                break
        conv += 1
    reqs.sort(key=lambda r: r["t"])
    return reqs[:n]


def main():
    kind, n, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    rng = random.Random(seed)
    gen = {"hetero": hetero, "rag": rag, "chat": chat}[kind]
    for r in gen(n, rng):
        sys.stdout.write(json.dumps(r, separators=(",", ":")) + "\n")


if __name__ == "__main__":
    main()
