#!/usr/bin/env python3
"""`svcinspect services` against `iptables-legacy-save` on generated dumps.

For each size: restore the generator's output into a private namespace with
iptables-legacy-restore, time `iptables-legacy-save` printing it, then time
`svcinspect services --rules` on that output (median of 3, peak RSS).

    sudo python3 benchmarks/bench_services.py            # 1k, 3k, 10k, 30k services x 10
    sudo python3 benchmarks/bench_services.py 10000      # one size
"""

import sys

from _common import best_of, prepared_dump, svcinspect


def main() -> None:
    sizes = [int(a) for a in sys.argv[1:]] or [1000, 3000, 10000, 30000]
    rows = []
    for n in sizes:
        dump, save_t, save_rss, lines = prepared_dump(n)
        svc_t, svc_rss = best_of(3, svcinspect("services", "--rules", str(dump)))
        json_t, _ = best_of(1, svcinspect("services", "--rules", str(dump), "-o", "json"))
        rows.append((n, lines, save_t, svc_t, svc_t / save_t, svc_rss, json_t))
        print(f"{n:>6} services x 10 = {lines:>7} lines: iptables-legacy-save {save_t:6.2f}s ({save_rss} MB) | "
              f"svcinspect services {svc_t:6.2f}s ({svc_rss} MB), ratio {svc_t / save_t:4.2f} | -o json {json_t:6.2f}s",
              flush=True)
    if len(rows) > 1:
        base = rows[0]
        print("growth vs smallest: " + ", ".join(f"{r[0]}: x{r[3] / base[3]:.1f} time for x{r[1] / base[1]:.1f} lines"
                                                 for r in rows[1:]))


if __name__ == "__main__":
    main()
