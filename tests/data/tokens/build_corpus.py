#!/usr/bin/env python3
"""Builds the token-estimator corpora from Debian packages (fortunes, fortunes-de/-es/-ru/-zh,
C/C++ headers, Python sources, JSON files) into OUTDIR:

  OUTDIR/<class>/train.txt    documents for spm training and calibration
  OUTDIR/<class>/heldout.txt  documents never seen by training or calibration
  OUTDIR/spm_train_a.txt      one sentence per line, mix A (model A)
  OUTDIR/spm_train_b.txt      one sentence per line, mix B (model B: other proportions, other code)

Documents are separated by a line holding only "\\x1e" (ASCII record separator). Classes: en, de,
es, ru, zh, code. The split is by a stable hash of the document text, so it is the same on every
machine with the same packages. Nothing here is committed; tests build it at setup.
"""
import hashlib, os, random, re, sys

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
SEP = "\x1e"

def read_text(path):
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError:
        return None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return None

def rot13(t):
    return t.translate(str.maketrans(
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
        "NOPQRSTUVWXYZABCDEFGHIJKLMnopqrstuvwxyzabcdefghijklm"))

def fortune_docs(paths):
    docs = []
    for p in paths:
        t = read_text(p)
        if t is None:
            continue
        if "/off/" in p:  # fortune(6) stores the "offensive" sets ROT13-encoded
            t = rot13(t)
        t = ANSI.sub("", t).replace("\r", "")
        for d in re.split(r"\n%\n", t):
            d = d.strip("\n")
            if 20 <= len(d) <= 6000:
                docs.append(d)
    return docs

def fortune_files(d, exclude=()):
    out = []
    for root, _, files in os.walk(d):
        for f in sorted(files):
            if f.endswith(".dat") or f.endswith(".u8"):
                continue
            p = os.path.join(root, f)
            if any(x in p for x in exclude) or os.path.islink(p):
                continue
            out.append(p)
    return sorted(out)

def code_docs(roots, exts, limit_bytes, seed):
    files = []
    for r in roots:
        for root, _, fs in os.walk(r):
            for f in fs:
                if f.endswith(exts):
                    files.append(os.path.join(root, f))
    files.sort()
    random.Random(seed).shuffle(files)
    docs, total = [], 0
    for p in files:
        t = read_text(p)
        if not t:
            continue
        t = t.replace("\r", "")
        # Cut files into pieces of 20-120 lines, the size of code pasted into a chat.
        lines = t.split("\n")
        rng = random.Random(p)
        i = 0
        while i < len(lines):
            n = rng.randint(20, 120)
            d = "\n".join(lines[i:i + n]).strip("\n")
            i += n
            if len(d) >= 80:
                docs.append(d)
                total += len(d)
        if total >= limit_bytes:
            break
    return docs

def is_heldout(doc):
    return hashlib.sha1(doc.encode()).digest()[0] % 5 == 0

def main():
    out = sys.argv[1]
    fb = "/usr/share/games/fortunes"
    classes = {
        "en": fortune_docs(fortune_files(fb, exclude=("/de/", "/es/", "/ru/", "/chinese", "/tang300", "/song100", "art"))),
        "de": fortune_docs(fortune_files(fb + "/de", exclude=("asciiart",))),
        "es": fortune_docs(fortune_files(fb + "/es")),
        "ru": fortune_docs(fortune_files(fb + "/ru", exclude=("/art",))),
        "zh": fortune_docs([fb + "/chinese", fb + "/tang300", fb + "/song100"]),
        "code": code_docs(["/usr/include"], (".h", ".hpp"), 6_000_000, 1)
              + code_docs(["/usr/lib/python3"], (".py",), 2_000_000, 2)
              + code_docs(["/usr/share/doc"], (".json",), 500_000, 3),
    }
    os.makedirs(out, exist_ok=True)
    train_docs = {}
    for c, docs in classes.items():
        os.makedirs(os.path.join(out, c), exist_ok=True)
        tr = [d for d in docs if not is_heldout(d)]
        ho = [d for d in docs if is_heldout(d)]
        train_docs[c] = tr
        for name, ds in (("train", tr), ("heldout", ho)):
            with open(os.path.join(out, c, name + ".txt"), "w", encoding="utf-8") as f:
                f.write(("\n" + SEP + "\n").join(ds))
        print(f"{c}: {len(tr)} train docs, {len(ho)} heldout docs, "
              f"{sum(map(len, tr)) // 1024} KiB train chars", file=sys.stderr)
    # spm training text: budget of characters per class. Model B sees other proportions and only
    # the second half of each class's training documents (a different sample).
    mixes = {
        "a": {"en": 3_000_000, "de": 1_500_000, "es": 800_000, "ru": 1_500_000, "zh": 700_000, "code": 2_500_000},
        "b": {"en": 1_500_000, "de": 600_000, "es": 1_000_000, "ru": 800_000, "zh": 1_500_000, "code": 1_000_000},
    }
    for m, budget in mixes.items():
        rng = random.Random(m)
        lines = []
        for c, b in budget.items():
            docs = train_docs[c] if m == "a" else train_docs[c][len(train_docs[c]) // 2:]
            docs = list(docs)
            rng.shuffle(docs)
            n = 0
            for d in docs:
                for ln in d.split("\n"):
                    if ln.strip():
                        lines.append(ln)
                        n += len(ln)
                if n >= b:
                    break
        rng.shuffle(lines)
        with open(os.path.join(out, f"spm_train_{m}.txt"), "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")

if __name__ == "__main__":
    main()
