#!/usr/bin/env python3
"""What one `svcinspect serve` cycle costs on a node of SERVICES x ENDPOINTS
(default 10000 x 10, ~440k rules), reading a private network namespace loaded
with the generator's dump, as the DaemonSet reads its node.

Prints:
- the whole process `serve --once --netns NS --textfile F` (start-up, live
  `iptables-save -c` of both backends, parse, analysis, exposition): median wall
  time of 3 and peak RSS;
- a long-running agent's steady state: wall and CPU seconds (the agent and its
  iptables-save children) of 3 consecutive cycles in one process, per-stage wall
  seconds, its peak RSS, and the exposition's size and series count (CPU seconds
  are the figure to trust on a busy machine);
- the same with --per-endpoint.

These size the DaemonSet's requests and limits (deploy/kubernetes/daemonset.yaml).

    sudo python3 benchmarks/bench_serve.py             # 10000 x 10
    sudo python3 benchmarks/bench_serve.py 1000 10
"""

import json
import subprocess
import sys

from _common import OUT, Namespace, best_of, generate, installed, svcinspect

STEADY = r"""
import json, resource, sys, time
from svcinspect.model.netfilter import Family
from svcinspect.serve.agent import Agent, Readers
from svcinspect.sources.command import read_live
ns, per_endpoint = sys.argv[1], sys.argv[2] == "1"
def rules():
    return read_live("auto", (Family.V4, Family.V6), ns, counters=True), "live"
agent = Agent(Readers(rules, lambda: None, lambda rs: None, "bench"), per_endpoint=per_endpoint, log=print)
def cpu():
    return sum(resource.getrusage(w).ru_utime + resource.getrusage(w).ru_stime
               for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
cycles = []
for _ in range(3):
    t, c = time.perf_counter(), cpu()
    assert agent.cycle(), agent.status.last_error
    cycles.append({"total": time.perf_counter() - t, "cpu": cpu() - c, **agent.status.durations})
t = time.perf_counter()
body = agent.exposition()
expo = time.perf_counter() - t
series = sum(1 for ln in body.splitlines() if ln and not ln.startswith(b"#"))
print(json.dumps({"cycles": cycles, "exposition_s": expo, "bytes": len(body), "series": series,
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024}))
"""


def main() -> None:
    services = int(sys.argv[1]) if len(sys.argv) > 1 else 10000
    endpoints = int(sys.argv[2]) if len(sys.argv) > 2 else 10
    gen = generate(services, endpoints)
    python = str(installed().parent / "python")
    # serve's optional extra (svcinspect[agent]); installed() installs the base package
    subprocess.run([python, "-m", "pip", "install", "-q", "prometheus_client"], check=True)
    with Namespace() as ns:
        ns.restore(gen)
        out = OUT / "bench-serve.prom"
        wall, rss = best_of(3, svcinspect("serve", "--once", "--netns", ns.name, "--no-conntrack",
                                          "--textfile", str(out)))
        print(f"{services} services x {endpoints} endpoints: serve --once (whole process, live read of the "
              f"namespace): median {wall:.2f} s, peak {rss} MB", flush=True)
        for per_endpoint in ("0", "1"):
            res = subprocess.run([python, "-c", STEADY, ns.name, per_endpoint], capture_output=True, text=True,
                                 check=True)
            doc = json.loads(res.stdout.strip().splitlines()[-1])
            stages = "; ".join(
                f"cycle {i + 1}: {c['total']:.2f} s wall, {c['cpu']:.2f} s CPU (" +
                ", ".join(f"{k} {v:.2f}" for k, v in c.items() if k not in ("total", "cpu")) + ")"
                for i, c in enumerate(doc["cycles"]))
            print(f"steady state{' --per-endpoint' if per_endpoint == '1' else ''}: {stages}; exposition "
                  f"{doc['exposition_s']:.2f} s, {doc['bytes'] // 1024} KiB, {doc['series']} series; "
                  f"peak {doc['peak_mb']} MB", flush=True)


if __name__ == "__main__":
    main()
