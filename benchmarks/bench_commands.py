#!/usr/bin/env python3
"""Every offline command on the 10000-service x 10-endpoint dump, in one run,
against `iptables-legacy-save` printing the same rules (median of 7 runs, of 3
for the slow whole-dump commands; peak RSS). svcinspect runs as the README
installs it (benchmarks/out/venv, rebuilt from this tree).

    sudo python3 benchmarks/bench_commands.py [SERVICES]

Also times Python start-up plus importing the CLI, which every command pays.
"""

import sys

from _common import OUT, best_of, generate, installed, prepared_dump, svcinspect

N = int(sys.argv[1]) if len(sys.argv) > 1 else 10000


def out_of_order(dump):
    """The same dump with one endpoint chain of ns5/svc5 moved to the end of nat:
    still shaped like iptables-save output, so packet indexes it, cannot confirm
    the lookups, and parses it fully (the worst case of the fast path). Streamed,
    so that this process stays small: children inherit its peak RSS."""
    with open(dump) as fh:
        sep = next(ln.split()[1] for ln in fh if ln.startswith("-A KUBE-SEP-") and "10.244.0.50:8080" in ln)
    with open(dump) as fh:
        moved = [ln for ln in fh if ln.startswith(f"-A {sep} ")]
    path = OUT / f"out-of-order-{N}.txt"
    with open(dump) as fh, open(path, "w") as out:
        table = None
        for ln in fh:
            if ln.startswith("*"):
                table = ln.strip()
            if ln == "COMMIT\n" and table == "*nat":
                out.writelines(moved)
            if not ln.startswith(f"-A {sep} "):
                out.write(ln)
    return path


def main() -> None:
    dump, save_t, _, lines = prepared_dump(N)
    print(f"dump: {N} services x 10 endpoints, {lines} lines; iptables-legacy-save {save_t:.2f} s")
    r = ["--rules", str(dump)]
    pod_packet = ["--src", "10.250.0.7", "--dst", "10.96.0.5", "--dport", "80", "--node-ip", "192.168.0.1"]
    commands = {
        "python + import svcinspect.cli": [str(installed().parent / "python"), "-c", "import svcinspect.cli"],
        "trace ns5/svc5": svcinspect("trace", "ns5/svc5", *r, "--node-ip", "192.168.0.1"),
        "trace ns5/svc5 -o json": svcinspect("trace", "ns5/svc5", *r, "--node-ip", "192.168.0.1", "-o", "json"),
        "packet (cluster IP, from a pod)": svcinspect("packet", *r, *pod_packet),
        "packet (node port, from outside)": svcinspect("packet", *r, "--src", "203.0.113.5", "--dst", "192.168.0.1",
                                                       "--dport", "30005", "--node-ip", "192.168.0.1"),
        "packet, kube-proxy restore input": svcinspect("packet", "--rules", str(generate(N, 10)), *pod_packet),
        "packet, dump out of order": svcinspect("packet", "--rules", str(out_of_order(dump)), *pod_packet),
        "graph ns0/svc0:http": svcinspect("graph", "ns0/svc0:http", *r),
        "services": svcinspect("services", *r),
        "services -o json": svcinspect("services", *r, "-o", "json"),
        "check (rules only)": svcinspect("check", *r, "--fail-on", "never"),
    }
    for name, argv in commands.items():
        t, rss = best_of(3 if name.startswith(("services", "check")) else 7, argv)
        print(f"  {name:<36} {t:6.2f} s  {rss:5d} MB  ratio {t / save_t:4.2f}", flush=True)


if __name__ == "__main__":
    main()
