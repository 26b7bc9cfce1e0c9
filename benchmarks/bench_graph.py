#!/usr/bin/env python3
"""`svcinspect graph` on a generated 10000 x 10 dump, against `iptables-legacy-save`
and, when installed (`pip install iptables-graph`), the peer tool iptables-graph.

Restores the generator's output into a private namespace, times
`iptables-legacy-save` printing it, then (median of 3, peak RSS, output size):
  - `svcinspect graph --rules DUMP -o dot`            (whole dump, one node per service port)
  - `svcinspect graph ns0/svc0:http --rules DUMP`     (one service in detail)
  - `iptables-graph -i DUMP -f dot`                   (every rule of the dump)

    sudo python3 benchmarks/bench_graph.py            # 10000 services x 10 endpoints
    sudo python3 benchmarks/bench_graph.py 3000       # another size
"""

import shutil
import sys

from _common import OUT, best_of, prepared_dump, svcinspect


def size(path) -> str:
    n = path.stat().st_size
    return f"{n / 1e6:.1f} MB" if n >= 1e6 else f"{n / 1e3:.1f} kB"


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10000
    dump, save_t, save_rss, lines = prepared_dump(n)
    one = "ns0/svc0:http"
    whole_out, one_out, peer_out = OUT / f"graph-all-{n}.dot", OUT / f"graph-one-{n}.dot", OUT / f"peer-{n}.dot"
    whole_t, whole_rss = best_of(3, svcinspect("graph", "--rules", str(dump), "-o", "dot"), whole_out)
    one_t, one_rss = best_of(3, svcinspect("graph", one, "--rules", str(dump)), one_out)
    print(f"{n} services x 10 = {lines} lines ({size(dump)})")
    print(f"  iptables-legacy-save            {save_t:6.2f}s  {save_rss:4d} MB RSS")
    print(f"  svcinspect graph (collapsed)    {whole_t:6.2f}s  {whole_rss:4d} MB RSS  -> {size(whole_out)}")
    print(f"  svcinspect graph {one:<13} {one_t:6.2f}s  {one_rss:4d} MB RSS  -> {size(one_out)}"
          f"   ratio to iptables-legacy-save {one_t / save_t:.2f} (target <= 0.30)")
    peer = shutil.which("iptables-graph")
    if peer is None:
        print("  iptables-graph: not installed (pip install iptables-graph); no peer figure")
        return
    peer_t, peer_rss = best_of(1, [peer, "-i", str(dump), "-f", "dot"], peer_out)
    print(f"  iptables-graph (every rule)     {peer_t:6.2f}s  {peer_rss:4d} MB RSS  -> {size(peer_out)}"
          f"   collapsed/peer {whole_t / peer_t:.2f} (target <= 0.50)")


if __name__ == "__main__":
    main()
