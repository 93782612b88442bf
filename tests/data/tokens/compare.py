#!/usr/bin/env python3
"""Compares `tokenlb-tokens estimate` and `exact` outputs (lines "<n>\\t<path>").

  compare.py ESTIMATE.tsv EXACT.tsv [--max-mape 2] [--max-class-mape 3] [--max-p95 6]

Class = file name up to the first '-'. Prints a table (class, bodies, MAPE %, p95 %, bias %) and
exits 1 if a threshold is exceeded (thresholds in percent; omitted = report only).
"""
import argparse, collections, os, sys

def read(p):
    out = {}
    with open(p) as f:
        for line in f:
            n, path = line.rstrip("\n").split("\t", 1)
            out[path] = int(n)
    return out

def pct(v, q):
    v = sorted(v)
    return v[min(len(v) - 1, int(len(v) * q))] if v else 0.0

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("est")
    ap.add_argument("exact")
    ap.add_argument("--max-mape", type=float)
    ap.add_argument("--max-class-mape", type=float)
    ap.add_argument("--max-p95", type=float)
    ap.add_argument("--label", default="")
    a = ap.parse_args()
    est, ex = read(a.est), read(a.exact)
    errs = collections.defaultdict(list)
    bias = collections.defaultdict(lambda: [0, 0])
    for path, n in ex.items():
        if n == 0 or path not in est:
            continue
        cls = os.path.basename(path).split("-")[0]
        e = (est[path] - n) / n * 100
        for k in (cls, "ALL"):
            errs[k].append(abs(e))
            bias[k][0] += est[path]
            bias[k][1] += n
    ok = True
    print(f"{a.label}{'class':8} {'bodies':>6} {'MAPE%':>7} {'p95%':>7} {'max%':>7} {'bias%':>7}")
    for k in sorted(errs, key=lambda k: (k == "ALL", k)):
        v = errs[k]
        mape = sum(v) / len(v)
        p95 = pct(v, 0.95)
        b = (bias[k][0] / bias[k][1] - 1) * 100
        print(f"{a.label}{k:8} {len(v):6d} {mape:7.2f} {p95:7.2f} {max(v):7.2f} {b:7.2f}")
        if k == "ALL":
            if a.max_mape is not None and mape > a.max_mape: ok = False
            if a.max_p95 is not None and p95 > a.max_p95: ok = False
        elif a.max_class_mape is not None and mape > a.max_class_mape:
            ok = False
    if not ok:
        print(f"{a.label}FAIL: thresholds exceeded (MAPE<={a.max_mape} class<={a.max_class_mape} p95<={a.max_p95})")
    return 0 if ok else 1

if __name__ == "__main__":
    sys.exit(main())
