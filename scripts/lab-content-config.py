#!/usr/bin/env python3
"""Writes the lab's routing-by-content variant of a lab config (used by scripts/demo.sh and
tests/integration/test_content_routing.sh):

    scripts/lab-content-config.py conf/lab.toml OUT.toml [ACCESS_LOG]

gpu-1 goes to trust zone "private", gpu-2 gets the capability tag "code" (their other tags are
dropped), and [policy] gets tag_match = "prefer", sensitive_tags = ["pii", "secrets"],
sensitive_zones = ["private"]; with ACCESS_LOG, [telemetry] access_log points there.
"""
import re
import sys


def main():
    if len(sys.argv) not in (3, 4):
        sys.exit(__doc__)
    src, dst = sys.argv[1], sys.argv[2]
    alog = sys.argv[3] if len(sys.argv) == 4 else None
    out, backend = [], None
    for line in open(src).read().splitlines():
        m = re.match(r'name = "(gpu-\d)"', line)
        if m:
            backend = m.group(1)
        elif line.startswith("["):
            if not line.startswith("[backends.") and not line.startswith("[[backends]]"):
                backend = None
        if backend and re.match(r"(tags|trust_zone) *=", line):
            continue
        if alog and line.startswith("access_log"):
            continue
        out.append(line)
        if m and backend == "gpu-1":
            out.append('trust_zone = "private"')
        if m and backend == "gpu-2":
            out.append('tags = ["code"]')
        if line.strip() == "[policy]":
            out += ['tag_match = "prefer"', 'sensitive_tags = ["pii", "secrets"]',
                    'sensitive_zones = ["private"]']
        if alog and line.strip() == "[telemetry]":
            out.append(f'access_log = "{alog}"')
    open(dst, "w").write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
