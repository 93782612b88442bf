#!/usr/bin/env python3
"""Plain-text documents in the style of READMEs and notes: held-out paragraphs, every other one
under a heading with a rule or underline of one repeated symbol (- = * # ~ _ + .) of 3-100
characters, and now and then a Markdown or ASCII table whose borders are runs of dashes. Used by
test_tokens_accuracy.sh: long runs of one symbol are few pieces for a BPE vocabulary, which a
per-byte model misses.

usage: make_rules.py HELDOUT.txt OUT.txt SEED
"""
import random
import sys


def main():
    src, out, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
    rng = random.Random(seed)
    with open(src, encoding="utf-8") as f:
        text = f.read()
    paras = [p for p in text.split("\n\n") if 40 < len(p) < 600]
    rng.shuffle(paras)
    parts = []
    for i, p in enumerate(paras[:80]):
        if i % 2 == 0:
            parts.append(p.split("\n")[0][:60])
            parts.append(rng.choice("-=*#~_+.") * rng.choice([3, 8, 20, 40, 64, 72, 80, 100]))
        else:
            parts.append(p)
        if i % 7 == 3:
            w = [rng.randint(3, 24) for _ in range(rng.randint(2, 4))]
            edge = rng.choice("|+")
            border = edge + edge.join("-" * k for k in w) + edge
            words = p.split()[: len(w)] + ["x"] * len(w)
            row = "|" + "|".join(" " + words[j][: w[j] - 2].ljust(w[j] - 2) + " " for j in range(len(w))) + "|"
            parts.append("\n".join([border, row, border] if edge == "+" else [row, border, row]))
    with open(out, "w", encoding="utf-8") as f:
        f.write("\n\n".join(parts) + "\n")


if __name__ == "__main__":
    main()
