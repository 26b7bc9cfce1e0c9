#!/usr/bin/env python3
"""Every command as a ratio to `iptables-legacy-save` printing the same dump, and
how cost grows with the cluster; writes docs/performance.md and the short
docs/performance-summary.md (what the README's Performance section shows).

    sudo python3 benchmarks/bench_perf.py                 # 10000 x 10 ratios, scaling 1k 3k 10k 20k
    sudo python3 benchmarks/bench_perf.py --runs 5 --sizes 1000,3000,10000,20000
    sudo python3 benchmarks/bench_perf.py --no-write      # print only
    sudo python3 benchmarks/bench_perf.py --nft           # plus nftables-mode rows (see nft_rows)

Method: the shared generator's SERVICES x 10 restore input is loaded with
iptables-legacy-restore into a private network namespace and saved back with
iptables-legacy-save (the dump users pass with --rules). Each command then runs
in turn with the save (A B A B ...: the ratio is taken pair by pair, so a busy
machine slows both sides of a pair alike); figures are the median of the runs
with min-max, for wall time and for CPU time (user + system of the child, which
a busy machine disturbs less), and peak RSS is the largest of the runs (wait4).
svcinspect runs as the README installs it (benchmarks/out/venv: `pip install .`
plus compiled bytecode). Live `services` reads the namespace itself.

Benchmarks print numbers; nothing here passes or fails.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

from _common import ROOT, Namespace, generate, installed, measure, saved_dump

SAVE = "iptables-legacy-save"
LIVE = "live services (--netns)"
# For the live row: svcinspect's own peak RSS (measured in main, see bench_live.own_rss)
# next to the run's (wait4: the largest process, the save svcinspect runs).
LIVE_RSS_NOTE = {"own": None}


def live_rss_note() -> str:
    own = LIVE_RSS_NOTE["own"]
    mine = f"svcinspect's own process peaked at {own} MB (`ru_maxrss` of the process itself)" if own else \
        "svcinspect's own peak was not measured"
    return (f" For live `services` the peak RSS is the largest process of the run, which is the `{SAVE}` "
            f"svcinspect runs (wait4 counts the children it waited for); {mine}. Its wall ratio is the one "
            "the target is about (waiting); its CPU ratio cannot go below 1 + analysis/save, since it does "
            "the save's work and the analysis.")


def _run(argv: list[str]) -> tuple[float, float, int]:
    """(wall seconds, CPU seconds (user + system), peak RSS in MB) of one run of argv."""
    wall, cpu, rss, code = measure(argv)
    if code not in (0, 1):
        raise RuntimeError(f"{argv} exited {code}")
    return wall, cpu, rss


def paired(argv: list[str], base: list[str], runs: int) -> dict:
    """A/B runs of argv against base: per-pair wall and CPU ratios, times, peak RSS."""
    ratios, cpu_ratios, times, bases, rss = [], [], [], [], 0
    for _ in range(runs):
        t, c, r = _run(argv)
        b, bc, _ = _run(base)
        ratios.append(t / b)
        cpu_ratios.append(c / bc)
        times.append(t)
        bases.append(b)
        rss = max(rss, r)
    return {"ratio": ratios, "cpu": cpu_ratios, "time": times, "base": bases, "rss": rss}


def _mid(xs: list[float], fmt: str) -> str:
    return (fmt % statistics.median(xs)) + (f" ({fmt % min(xs)}–{fmt % max(xs)})" if len(xs) > 1 else "")


def commands(dump: Path, ns: Namespace) -> dict[str, list[str]]:
    exe = str(installed())
    r = ["--rules", str(dump)]
    return {
        "services": [exe, "services", *r],
        "services -o json": [exe, "services", *r, "-o", "json"],
        "check (rules only)": [exe, "check", *r, "--fail-on", "never"],
        "graph -o dot (whole dump)": [exe, "graph", *r, "-o", "dot"],
        "dump": [exe, "dump", *r],
        "trace ns5/svc5": [exe, "trace", "ns5/svc5", *r, "--node-ip", "192.168.0.1"],
        "packet (cluster IP)": [exe, "packet", *r, "--src", "10.250.0.7", "--dst", "10.96.0.5", "--dport", "80",
                                "--node-ip", "192.168.0.1"],
        LIVE: [exe, "services", "--netns", ns.name, "--reader", "save"],
    }


TARGETS = {"services": "≤ 1.0x", "services -o json": "≤ 1.0x", "check (rules only)": "≤ 1.5x",
           "graph -o dot (whole dump)": "≤ 0.5x", "dump": "≤ 1.0x", "trace ns5/svc5": "≤ 0.3x",
           "packet (cluster IP)": "≤ 0.3x", LIVE: "≤ 1.5x"}
SCALED = tuple(TARGETS)  # every command, at every size


def nft_rows(services: int, runs: int) -> list[tuple[str, dict]] | None:
    """The nftables-mode rows: ``benchmarks/bench_nft.py`` owns loading kube-proxy's
    nftables ruleset into a namespace; when it offers ``ratio_rows(services, runs)``
    (``[(command name, paired()-style result)]``, ratios against `nft list
    ruleset`), its rows join the first table. None when it does not (yet)."""
    try:
        import bench_nft
    except Exception:  # noqa: BLE001 - not there, or it reads its own command line at import
        return None
    rows = getattr(bench_nft, "ratio_rows", None)
    return rows(services, runs) if callable(rows) else None


def prepare(n: int) -> tuple[Namespace, Path, int]:
    ns = Namespace()
    ns.restore(generate(n, 10))
    dump = saved_dump(ns, n, 10)
    with open(dump) as fh:
        lines = sum(1 for _ in fh)
    return ns, dump, lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--services", type=int, default=10000, help="size of the ratio table")
    ap.add_argument("--sizes", default="1000,3000,10000,20000", help="sizes of the scaling table")
    ap.add_argument("--runs", type=int, default=3, help="A/B pairs per command (ratio table)")
    ap.add_argument("--scale-runs", type=int, default=1, help="runs per command and size (scaling table)")
    ap.add_argument("--no-write", action="store_true", help="do not write docs/performance*.md")
    ap.add_argument("--nft", action="store_true", help="add the nftables-mode rows (benchmarks/bench_nft.py)")
    args = ap.parse_args()
    installed()
    sizes = [int(s) for s in args.sizes.split(",") if s]

    ratio_rows = []
    ns, dump, lines = prepare(args.services)
    try:
        base = ns.cmd(SAVE)
        print(f"{args.services} services x 10 endpoints: {lines} lines; A/B against {SAVE}, {args.runs} pairs",
              flush=True)
        for name, argv in commands(dump, ns).items():
            res = paired(argv, base, args.runs)
            ratio_rows.append((name, res))
            if name == LIVE:
                from bench_live import own_rss
                LIVE_RSS_NOTE["own"] = own_rss(str(installed().parent / "python"), argv[1:])
            print(f"  {name:<28} {_mid(res['time'], '%.2f')} s  ratio {_mid(res['ratio'], '%.2f')}  "
                  f"CPU ratio {_mid(res['cpu'], '%.2f')}  "
                  f"save {_mid(res['base'], '%.2f')} s  peak {res['rss']} MB", flush=True)
    finally:
        ns.close()
    if args.nft:
        rows = nft_rows(args.services, args.runs)
        if rows is None:
            print("  nftables mode: benchmarks/bench_nft.py has no ratio_rows(services, runs) yet; no rows", flush=True)
        else:
            ratio_rows += [(f"nftables: {name}", res) for name, res in rows]

    scale_rows = []
    for n in sizes:
        ns, dump, lines = prepare(n)
        try:
            base = ns.cmd(SAVE)
            cmds = commands(dump, ns)
            row = {"lines": lines}
            for name in SCALED:
                res = paired(cmds[name], base, args.scale_runs)
                row[name] = res
            scale_rows.append((n, row))
            print(f"  {n:>6} services, {lines} lines: " + "; ".join(
                f"{name} {statistics.median(row[name]['time']):.2f} s {row[name]['rss']} MB "
                f"({statistics.median(row[name]['ratio']):.2f}x)" for name in SCALED), flush=True)
        finally:
            ns.close()

    doc = render_doc(args, ratio_rows, scale_rows)
    summary = render_summary(args, ratio_rows, scale_rows)
    print()
    print(doc)
    print(summary)
    if not args.no_write:
        (ROOT / "docs").mkdir(exist_ok=True)
        (ROOT / "docs" / "performance.md").write_text(doc)
        (ROOT / "docs" / "performance-summary.md").write_text(summary)
        print(f"wrote {ROOT / 'docs' / 'performance.md'} and performance-summary.md")


def render_doc(args, ratio_rows, scale_rows) -> str:
    out = ["# Performance", "",
           f"Generated by `benchmarks/bench_perf.py` on {time.strftime('%Y-%m-%d')} "
           f"({os.cpu_count()} cores). Ratios are to `{SAVE}` printing the same dump in the same run.", "",
           f"## The {args.services}-service x 10-endpoint dump", "",
           "| command | time (s) | ratio to the save (wall) | (CPU) | target | peak RSS (MB) |",
           "|---|---|---|---|---|---|"]
    for name, res in ratio_rows:
        out.append(f"| `{name}` | {_mid(res['time'], '%.2f')} | {_mid(res['ratio'], '%.2f')}x | "
                   f"{_mid(res['cpu'], '%.2f')}x | {TARGETS.get(name, '')} | {res['rss']} |")
    out += ["", "## Scaling (wall s / peak RSS MB; wall ratio to the save, CPU ratio)", "",
            "One row per command, one column per cluster size; cost per service stays flat when the ratios do.", "",
            "| command | " + " | ".join(f"{n} services ({row['lines']} lines)" for n, row in scale_rows) + " |",
            "|---|" + "---|" * len(scale_rows)]
    for c in SCALED:
        out.append(f"| `{c}` | " + " | ".join(
            f"{statistics.median(row[c]['time']):.2f} / {row[c]['rss']} ({statistics.median(row[c]['ratio']):.2f}x, "
            f"{statistics.median(row[c]['cpu']):.2f}x)" for _, row in scale_rows) + " |")
    if scale_rows:
        out.append(f"| `{SAVE}` (s) | " + " | ".join(f"{statistics.median(row[SCALED[0]]['base']):.2f}"
                                                     for _, row in scale_rows) + " |")
    out += ["", f"Method: each command alternates with `{SAVE}` in a private network namespace "
            f"({args.runs} pairs for the first table, {args.scale_runs} per size for the second); "
            "whole-process wall time and CPU time (user + system of the child), median (min–max) of the "
            "pairwise ratios, peak RSS of the child; svcinspect installed with `pip install .` and compiled "
            "bytecode; the machine was shared by other work, so wall seconds vary more than the CPU ratios. "
            + live_rss_note(), ""]
    return "\n".join(out)


def render_summary(args, ratio_rows, scale_rows) -> str:
    """The README's Performance section: one table for the big dump, one for
    scaling (CPU ratio to the save and peak RSS), one line on method."""
    out = [f"On a {args.services}-service x 10-endpoint node (kube-proxy iptables mode), as a ratio to "
           f"`{SAVE}` printing the same rules:", "",
           "| command | ratio (CPU) | target | peak RSS |", "|---|---|---|---|"]
    for name, res in ratio_rows:
        # (live: the target is about waiting, the wall row below; its CPU cannot go below 1 + analysis/save)
        target = "(wall)" if name == LIVE else TARGETS.get(name, "")
        out.append(f"| `{name}` | {statistics.median(res['cpu']):.2f}x | {target} | {res['rss']} MB |")
        if name == LIVE:  # the live target is about waiting: its wall ratio too
            out.append(f"| `{name}`, wall | {statistics.median(res['ratio']):.2f}x | {TARGETS[name]} | |")
    if scale_rows:
        out += ["", "Scaling (CPU ratio to the save / peak RSS MB):", "",
                "| command | " + " | ".join(f"{n}" for n, _ in scale_rows) + " |",
                "|---|" + "---|" * len(scale_rows)]
        for c in SCALED:
            out.append(f"| `{c}` | " + " | ".join(f"{statistics.median(row[c]['cpu']):.2f}x / {row[c]['rss']}"
                                                 for _, row in scale_rows) + " |")
    out += ["", f"Method: `benchmarks/bench_perf.py` ({time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores): "
            f"each command alternates with `{SAVE}` in a private network namespace, whole-process CPU time "
            "(user + system) and peak RSS of an installed copy with compiled bytecode; details in "
            "[docs/performance.md](docs/performance.md)." + live_rss_note(), ""]
    return "\n".join(out)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    main()
