#!/usr/bin/env python3
"""nftables mode at scale: services, trace and packet on kube-proxy v1.36's
ruleset for SERVICES x 10 endpoints (default 10000), as `nft list ruleset` text
and `nft -j list ruleset` JSON, against `nft list ruleset` / `nft -j list
ruleset` printing the same rules from a private namespace (ratios), with the peak
RSS of each command. svcinspect runs as the README installs it
(benchmarks/out/venv, bytecode compiled).

    sudo python3 benchmarks/bench_nft.py [SERVICES] [RUNS]

The ruleset comes from the shared generator (gen_kubeproxy_nft.py, beside the
repo), is loaded with `nft -f` into a namespace made for this run (deleted at the
end) and listed back; loading 10000 x 10 takes minutes of kernel time.
Benchmarks print figures; nothing here passes or fails on time.
"""

from __future__ import annotations

import subprocess
import sys

from _common import OUT, ROOT, Namespace, best_of, svcinspect

N = int(sys.argv[1]) if len(sys.argv) > 1 else 10000
RUNS = int(sys.argv[2]) if len(sys.argv) > 2 else 3
# The shared folder sits beside the repository (or beside the worktrees' parent).
GENERATOR = next((p for p in (ROOT.parent / "shared" / "bench" / "gen_kubeproxy_nft.py",
                              ROOT.parent.parent / "shared" / "bench" / "gen_kubeproxy_nft.py") if p.exists()),
                 ROOT.parent / "shared" / "bench" / "gen_kubeproxy_nft.py")


def generate(services: int, endpoints: int = 10):
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"gen-nft-{services}x{endpoints}.nft"
    if not path.exists():
        if not GENERATOR.exists():
            sys.exit(f"generator not found at {GENERATOR}")
        with open(path, "w") as fh:
            subprocess.run([sys.executable, str(GENERATOR), str(services), str(endpoints)], stdout=fh, check=True,
                           stderr=subprocess.DEVNULL)
    return path


def main() -> None:
    gen = generate(N)
    with Namespace() as ns:
        subprocess.run(ns.cmd("nft", "-f", str(gen)), check=True)
        text, js = OUT / f"listed-nft-{N}.nft", OUT / f"listed-nft-{N}.json"
        with open(text, "w") as fh:
            subprocess.run(ns.cmd("nft", "list", "ruleset"), stdout=fh, check=True)
        with open(js, "w") as fh:
            subprocess.run(ns.cmd("nft", "-j", "list", "ruleset"), stdout=fh, check=True)
        base = {"text": best_of(RUNS, ns.cmd("nft", "list", "ruleset")),
                "json": best_of(RUNS, ns.cmd("nft", "-j", "list", "ruleset"))}
    print(f"ruleset: {N} services x 10 endpoints, {sum(1 for _ in open(text))} lines of nft text; "
          f"nft list ruleset {base['text'][0]:.2f} s, nft -j list ruleset {base['json'][0]:.2f} s (median of {RUNS})")
    env = ["--node-ip", "192.168.10.11"]
    commands = {
        "services": ["services"],
        "services -o json": ["services", "-o", "json"],
        "trace ns5/svc5": ["trace", "ns5/svc5", *env],
        "packet (cluster IP, from a pod)": ["packet", "--src", "10.244.200.7", "--dst", "10.96.0.5", "--dport", "80",
                                            *env],
    }
    print(f"{'command':<36}{'form':<6}{'median s':>10}{'ratio':>8}{'peak RSS MB':>13}")
    for form, path in (("text", text), ("json", js)):
        for name, args in commands.items():
            t, rss = best_of(RUNS, svcinspect(*args, "--rules", str(path)))
            print(f"{name:<36}{form:<6}{t:>10.2f}{t / base[form][0]:>7.2f}x{rss:>13}")


if __name__ == "__main__":
    main()
