#!/usr/bin/env python3
"""Writes OpenAI request bodies built from held-out corpus documents.

  make_bodies.py CORPUS_DIR OUT_DIR [--per-class N] [--seed S] [--split heldout|train]

For each class (en de es ru zh code) N chat bodies whose messages all come from that class, plus N
"mixed" bodies whose messages come from random classes (English, German, Spanish, Russian, Chinese
and source code in one conversation). Files are named <class>-<i>.json. Bodies vary the way
clients do: system prompt or not, 1-8 turns, string content or content-part arrays, occasional
/v1/completions bodies with "prompt", ASCII-escaped or raw UTF-8 JSON, random key order/spacing.
"""
import argparse, json, os, random

CLASSES = ["en", "de", "es", "ru", "zh", "code"]

def load(corpus, split):
    docs = {}
    for c in CLASSES:
        with open(os.path.join(corpus, c, split + ".txt"), encoding="utf-8") as f:
            docs[c] = [d for d in f.read().split("\n\x1e\n") if d.strip()]
    return docs

def text_of(rng, docs, cls, target):
    out, n = [], 0
    while n < target:
        d = rng.choice(docs[cls])
        if cls == "code" and rng.random() < 0.5:
            d = "```\n" + d + "\n```"
        out.append(d)
        n += len(d.encode())
    return "\n\n".join(out)

def body(rng, docs, cls_pick):
    size = int(rng.choice([600, 1200, 2500, 4000, 6000, 9000]) * rng.uniform(0.7, 1.3))
    turns = rng.randint(1, 8)
    msgs = []
    if rng.random() < 0.7:
        msgs.append({"role": "system", "content": text_of(rng, docs, cls_pick(), rng.randint(60, 400))})
    for t in range(turns):
        role = "user" if t % 2 == 0 else "assistant"
        content = text_of(rng, docs, cls_pick(), max(80, size // turns))
        if role == "user" and rng.random() < 0.2:
            parts = content.split("\n\n")
            content = [{"type": "text", "text": p} for p in parts if p]
        msgs.append({"role": role, "content": content})
    if rng.random() < 0.1:
        b = {"model": "m", "prompt": text_of(rng, docs, cls_pick(), size), "max_tokens": 64}
    else:
        b = {"model": "m", "messages": msgs, "max_tokens": rng.choice([16, 256, 1024]), "stream": rng.random() < 0.5}
        if rng.random() < 0.5:
            b = dict(reversed(list(b.items())))
    return json.dumps(b, ensure_ascii=rng.random() < 0.3,
                      indent=rng.choice([None, None, 2]),
                      separators=rng.choice([(",", ":"), (", ", ": ")]))

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("corpus")
    ap.add_argument("out")
    ap.add_argument("--per-class", type=int, default=40)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--split", default="heldout")
    a = ap.parse_args()
    rng = random.Random(a.seed)
    docs = load(a.corpus, a.split)
    os.makedirs(a.out, exist_ok=True)
    for cls in CLASSES + ["mixed"]:
        for i in range(a.per_class):
            pick = (lambda: rng.choice(CLASSES)) if cls == "mixed" else (lambda c=cls: c)
            with open(os.path.join(a.out, f"{cls}-{i:03d}.json"), "w", encoding="utf-8") as f:
                f.write(body(rng, docs, pick))

if __name__ == "__main__":
    main()
