#!/usr/bin/env python3
"""Live reading: the save subprocesses vs python-iptables, and `svcinspect services`
without --rules, on the generated SERVICES x 10 dump (default 10000 x 10, ~440k lines).

The dump is restored into two private namespaces, one per backend
(iptables-legacy-restore, iptables-nft-restore), so each holds the rules in one
backend only, like a real node. Reported in one run:

- `iptables-legacy-save`, `iptables-nft-save` (plain, as svcinspect runs them, and
  with -c), median of 3;
- svcinspect's default live read alone (read_live in a fresh interpreter), median of 3;
- python-iptables reading every rule of every IPv4 table (svcinspect's iptc reader:
  libiptc + the xtables save functions for each match and target), one run: it is slow;
- `svcinspect services --netns NS` with --reader auto, save (median of 3) and iptc (one run);
- `svcinspect services --rules <saved dump>` for reference.

    sudo python3 benchmarks/bench_live.py           # 10000 services x 10 endpoints
    sudo python3 benchmarks/bench_live.py 3000      # another size
"""

import sys
import time

from _common import ROOT, Namespace, best_of, generate, saved_dump, svcinspect

sys.path.insert(0, str(ROOT))

from svcinspect.model.netfilter import Family  # noqa: E402
from svcinspect.sources.iptc import read_iptc_texts  # noqa: E402
from svcinspect.sources.netns import resolve_netns  # noqa: E402


# The default live read on its own, in a fresh interpreter (startup included):
# everything `svcinspect services` does before its analysis starts.
READ_ONLY = ("import sys; from svcinspect.sources.command import read_live; "
             "r = read_live('auto', netns=sys.argv[1]); assert r.table('nat') is not None")


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10000
    gen = generate(n, 10)
    with Namespace() as legacy, Namespace() as nft:
        legacy.restore(gen, "iptables-legacy-restore")
        nft.restore(gen, "iptables-nft-restore")
        dump = saved_dump(legacy, n, 10)
        lines = sum(1 for _ in open(dump))
        print(f"{n} services x 10 endpoints: {lines} lines of iptables-legacy-save", flush=True)

        rows: list[tuple[str, float, int | str]] = []

        def report(label: str, seconds: float, rss: int | str = "") -> None:
            rows.append((label, seconds, rss))
            print(f"  {label:<58} {seconds:7.2f} s  {str(rss) + ' MB' if rss != '' else ''}", flush=True)

        for ns, backend in ((legacy, "legacy"), (nft, "nft")):
            for extra in ((), ("-c",)):
                t, rss = best_of(3, ns.cmd(f"iptables-{backend}-save", *extra))
                report(f"iptables-{backend}-save {' '.join(extra)}".strip(), t, rss)

        start = time.perf_counter()
        texts = read_iptc_texts((Family.V4,), resolve_netns(legacy.name))
        iptc_t = time.perf_counter() - start
        report(f"python-iptables, every IPv4 rule ({texts[Family.V4].count('-A ')} rules), 1 run", iptc_t)

        for ns, backend in ((legacy, "legacy"), (nft, "nft")):
            t, rss = best_of(3, [sys.executable, "-c", READ_ONLY, ns.name])
            report(f"svcinspect live read alone (read_live, auto; {backend} backend)", t, rss)
        for ns, backend in ((legacy, "legacy"), (nft, "nft")):
            for reader in ("auto", "save"):
                t, rss = best_of(3, svcinspect("services", "--netns", ns.name, "--reader", reader))
                report(f"svcinspect services --reader {reader} ({backend} backend)", t, rss)
        t, rss = best_of(1, svcinspect("services", "--netns", legacy.name, "--reader", "iptc"))
        report("svcinspect services --reader iptc (legacy backend), 1 run", t, rss)
        t, rss = best_of(3, svcinspect("services", "--rules", str(dump)))
        report("svcinspect services --rules <saved legacy dump>", t, rss)

    timing = {label: seconds for label, seconds, _ in rows}
    for backend in ("legacy", "nft"):
        read = timing[f"svcinspect live read alone (read_live, auto; {backend} backend)"]
        auto = timing[f"svcinspect services --reader auto ({backend} backend)"]
        save = timing[f"iptables-{backend}-save"]
        print(f"default live read ({backend}): {read:.2f} s = {read / save:.2f}x plain iptables-{backend}-save "
              f"({save:.2f} s), target <= 1.5x; whole `services` {auto:.2f} s = {auto / save:.2f}x")
    print(f"python-iptables vs iptables-legacy-save: {iptc_t / timing['iptables-legacy-save']:.0f}x slower")


if __name__ == "__main__":
    main()
