#!/usr/bin/env python3
"""`svcinspect diff` against one `svcinspect services` run on the same dump.

The dump: the generator's SERVICES x 10 output restored into a private network
namespace and saved back (what a user saves; without root, the generator's
restore input as is). B: a copy in which ENDPOINTS endpoints (one per service,
spread over the dump) have a new IP, as after pods were rescheduled. Prints the
median wall time and peak RSS of each command on an installed copy (compiled
bytecode), the ratio diff / services, and checks that diff found exactly the
changed service ports.

    sudo python3 benchmarks/bench_diff.py                 # 10000 services x 10, 100 endpoints changed
    sudo python3 benchmarks/bench_diff.py 3000 50         # other sizes
"""

import json
import os
import re
import statistics
import subprocess
import sys
import time

import _common
from _common import OUT, ROOT, generate, prepared_dump, svcinspect

if not _common.GENERATOR.exists():  # a git worktree one level deeper than the main checkout
    _common.GENERATOR = ROOT.parent.parent / "shared" / "bench" / "gen_kubeproxy_dump.py"

_DNAT = re.compile(r"-j DNAT --to-destination (\d+\.\d+\.\d+\.\d+):(\d+)")
_COMMENT = re.compile(r'--comment "?([^" ]+)')


def timed(n: int, argv: list[str], ok=(0, 1)) -> tuple[float, int]:
    """Median wall seconds of n runs and the largest peak RSS (MB); diff exits 1
    when the sides differ, which is not a failure here."""
    runs = []
    for _ in range(n):
        start = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _, status, usage = os.wait4(proc.pid, 0)
        runs.append((time.perf_counter() - start, usage.ru_maxrss // 1024))
        if os.waitstatus_to_exitcode(status) not in ok:
            raise RuntimeError(f"{argv} exited {os.waitstatus_to_exitcode(status)}")
    return statistics.median(r[0] for r in runs), max(r[1] for r in runs)


def changed_copy(dump, count: int):
    """B: ``count`` endpoints (the first of every k-th service port) moved to 10.252.x.y."""
    text = dump.read_text()
    eps = []
    owner = {}
    for line in text.splitlines():
        m = _DNAT.search(line)
        if m and m.group(1) not in owner:
            eps.append(m.group(1))
            owner[m.group(1)] = _COMMENT.search(line).group(1)
    step = max(1, len(eps) // count)
    chosen = eps[::step][:count]
    for n, ip in enumerate(chosen):
        new = f"10.252.{n >> 8}.{n & 255}"
        text = text.replace(f"{ip}:", f"{new}:").replace(f"{ip}/32", f"{new}/32")
    path = OUT / f"{dump.stem}-{count}-endpoints-changed.txt"
    path.write_text(text)
    return path, len(chosen), len({owner[ip] for ip in chosen})


def main() -> None:
    services = int(sys.argv[1]) if len(sys.argv) > 1 else 10000
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 100
    if os.geteuid() == 0:
        dump, _, _, lines = prepared_dump(services)
        what = "saved by iptables-legacy-save"
    else:
        dump = generate(services, 10)
        lines = sum(1 for _ in open(dump))
        what = "generator output (not root: not restored and saved back)"
    changed, n, owners = changed_copy(dump, count)
    svc_t, svc_rss = timed(5, svcinspect("services", "--rules", str(dump)))
    diff_t, diff_rss = timed(5, svcinspect("diff", str(dump), str(changed)))
    self_t, self_rss = timed(3, svcinspect("diff", str(dump), str(dump)))
    proc = subprocess.run(svcinspect("diff", str(dump), str(changed), "-o", "json"), capture_output=True, text=True)
    doc = json.loads(proc.stdout)
    found = sum(1 for p in doc["servicePorts"] if p["status"] == "changed")
    print(f"{services} services x 10 = {lines} lines ({what}); B: {n} endpoints of {owners} service ports moved")
    print(f"  services {svc_t:6.2f}s ({svc_rss} MB)")
    print(f"  diff A B {diff_t:6.2f}s ({diff_rss} MB): {diff_t / svc_t:4.2f}x one services run; "
          f"exit {proc.returncode}, {found} service port(s) changed, {len(doc['nodeWide'])} node-wide")
    print(f"  diff A A {self_t:6.2f}s ({self_rss} MB): {self_t / svc_t:4.2f}x")


if __name__ == "__main__":
    main()
