#!/usr/bin/env python3
"""The issue-16 commands on the SERVICES x 10-endpoint dump (default 10000),
against `iptables-legacy-save` printing the same rules: explain, trace by
cluster IP and by bare name (the kubectl-style lookups), and report with a few
Services in detail. Median wall time of 5 runs (3 for report), peak RSS.
svcinspect runs as the README installs it (benchmarks/out/venv).

    sudo python3 benchmarks/bench_explain.py [SERVICES]

(SVCINSPECT_BENCH_GENERATOR=PATH names gen_kubeproxy_dump.py when it is not beside the repository.)
"""

import os
import sys
from pathlib import Path

import _common
from _common import OUT, best_of, prepared_dump, svcinspect

# The shared generator beside the repository; a git worktree elsewhere names it here.
if os.environ.get("SVCINSPECT_BENCH_GENERATOR"):
    _common.GENERATOR = Path(os.environ["SVCINSPECT_BENCH_GENERATOR"])

N = int(sys.argv[1]) if len(sys.argv) > 1 else 10000


def main() -> None:
    dump, save_t, save_rss, lines = prepared_dump(N)
    print(f"{N} services x 10 endpoints: {lines} lines; iptables-legacy-save {save_t:.2f} s ({save_rss} MB)")
    with open(dump) as fh:
        line = next(ln for ln in fh if ln.startswith("-A KUBE-SERVICES") and '"ns5/svc5:http cluster IP"' in ln)
    cip = line.split(" -d ", 1)[1].split("/", 1)[0]
    rows = [
        ("trace ns5/svc5", ["trace", "ns5/svc5", "--rules", str(dump)], 5),
        ("explain ns5/svc5", ["explain", "ns5/svc5", "--rules", str(dump)], 5),
        (f"trace {cip}:80 (cluster IP lookup)", ["trace", f"{cip}:80", "--rules", str(dump)], 5),
        ("trace svc5 -n ns5", ["trace", "svc5", "-n", "ns5", "--rules", str(dump)], 5),
        ("trace svc5 (bare name, every namespace)", ["trace", "svc5", "-A", "--rules", str(dump)], 5),
        ("report --max-services 5", ["report", "--rules", str(dump), "--max-services", "5",
                                     "--out", str(OUT / "report.html")], 3),
    ]
    for label, args, n in rows:
        t, rss = best_of(n, svcinspect(*args))
        print(f"  {label:<45} {t:6.2f} s  {rss:4d} MB  {t / save_t:5.2f}x")


if __name__ == "__main__":
    main()
