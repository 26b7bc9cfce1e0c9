#!/usr/bin/env python3
"""Every offline command on the 10000-service x 10-endpoint dump, in one run,
against `iptables-legacy-save` printing the same rules (median of 3, peak RSS).

    sudo python3 benchmarks/bench_commands.py [SERVICES]

Also times Python start-up plus importing the CLI, which every command pays.
"""

import sys

from _common import best_of, prepared_dump, svcinspect

N = int(sys.argv[1]) if len(sys.argv) > 1 else 10000


def main() -> None:
    dump, save_t, _, lines = prepared_dump(N)
    print(f"dump: {N} services x 10 endpoints, {lines} lines; iptables-legacy-save {save_t:.2f} s")
    r = ["--rules", str(dump)]
    commands = {
        "python + import svcinspect.cli": [sys.executable, "-c", "import svcinspect.cli"],
        "trace ns5/svc5": svcinspect("trace", "ns5/svc5", *r, "--node-ip", "192.168.0.1"),
        "trace ns5/svc5 -o json": svcinspect("trace", "ns5/svc5", *r, "--node-ip", "192.168.0.1", "-o", "json"),
        "packet (cluster IP, from a pod)": svcinspect("packet", *r, "--src", "10.250.0.7", "--dst", "10.96.0.5",
                                                      "--dport", "80", "--node-ip", "192.168.0.1"),
        "packet (node port, from outside)": svcinspect("packet", *r, "--src", "203.0.113.5", "--dst", "192.168.0.1",
                                                       "--dport", "30005", "--node-ip", "192.168.0.1"),
        "graph ns0/svc0:http": svcinspect("graph", "ns0/svc0:http", *r),
        "services": svcinspect("services", *r),
        "services -o json": svcinspect("services", *r, "-o", "json"),
        "check (rules only)": svcinspect("check", *r, "--fail-on", "never"),
    }
    for name, argv in commands.items():
        t, rss = best_of(3, argv)
        print(f"  {name:<36} {t:6.2f} s  {rss:5d} MB  ratio {t / save_t:4.2f}", flush=True)


if __name__ == "__main__":
    main()
