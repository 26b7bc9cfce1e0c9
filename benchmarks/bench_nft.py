#!/usr/bin/env python3
"""nftables mode at scale: every command on kube-proxy v1.36's ruleset for
SERVICES x 10 endpoints, as `nft list ruleset` text and `nft -j list ruleset`
JSON, as a ratio to `nft list ruleset` / `nft -j list ruleset` printing the same
rules from a private namespace (same run), with peak RSS, and how cost grows
from 1k to 20k services; writes docs/performance-nftables.md.

    sudo python3 benchmarks/bench_nft.py                      # 10000 x 10 ratios; scaling 1k 3k 10k 20k
    sudo python3 benchmarks/bench_nft.py --services 200 --sizes 100,200 --no-write   # a quick try
    sudo python3 benchmarks/bench_nft.py --reuse 20000=NETNS  # a namespace already holding that ruleset

Method. The shared generator (gen_kubeproxy_nft.py, beside the repo) writes the
ruleset; it is loaded with `nft -f` into a namespace made for this run (deleted
at the end) and listed back with `nft list ruleset` and `nft -j list ruleset`:
those listings are the files svcinspect reads with --rules, and the listing
commands are the yardsticks. One change on loading: the per-endpoint affinity
sets' `size 65535` line is left out of what is loaded, because on the kernels
measured here a dynamic set declared with an explicit size preallocates about
2 MB (1000 services: 2 GB of kernel memory, 10000: 20 GB); the kernel prints
`size 65535` for those sets anyway, and the benchmark checks that the text
listing is byte-identical to the generator's output (it says so when not).

Each round runs both listings and then every command once; a command's ratio is
its median over the rounds divided by the median of its form's listing, for
wall time and for CPU time (user + system of the child: nft's time is mostly
the kernel's netlink dump, counted as its system time). Peak RSS is the largest
of the rounds (wait4). svcinspect runs as the README installs it
(benchmarks/out/venv: `pip install .`, compiled bytecode). Live `services`
reads the namespace (`--netns`). Benchmarks print figures; nothing here passes
or fails on time.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import OUT, ROOT, Namespace, installed  # noqa: E402
from _common import measure as measure_one  # noqa: E402  (this script has a measure() of its own)

GENERATOR = next((p / "shared" / "bench" / "gen_kubeproxy_nft.py" for p in ROOT.parents
                  if (p / "shared" / "bench" / "gen_kubeproxy_nft.py").exists()),
                 ROOT.parent / "shared" / "bench" / "gen_kubeproxy_nft.py")
NODE = ["--node-ip", "192.168.10.11"]
TARGETS = {"services": "≤ 1.0x", "services -o json": "≤ 1.0x", "trace ns5/svc5": "≤ 0.3x",
           "packet (cluster IP, from a pod)": "≤ 0.3x", "live services (--netns)": "≤ 1.5x"}
LISTING = {"text": ["nft", "list", "ruleset"], "json": ["nft", "-j", "list", "ruleset"]}


def generate(services: int, endpoints: int = 10) -> Path:
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"gen-nft-{services}x{endpoints}.nft"
    if not path.exists():
        if not GENERATOR.exists():
            sys.exit(f"generator not found at {GENERATOR}")
        with open(path, "w") as fh:
            subprocess.run([sys.executable, str(GENERATOR), str(services), str(endpoints)], stdout=fh, check=True,
                           stderr=subprocess.DEVNULL)
    return path


def _run(argv: list[str], stdout: Path | None = None) -> tuple[float, float, int]:
    """(wall seconds, CPU seconds (user + system), peak RSS in MB) of one run of argv."""
    wall, cpu, rss, code = measure_one(argv, stdout)
    if code not in (0, 1):
        # e.g. 3: live reading gave up at --command-timeout; shown in the tables, not hidden
        print(f"    ! {' '.join(argv[-6:])} exited {code}", flush=True)
        FAILED.setdefault(tuple(argv), set()).add(code)
    return wall, cpu, rss


FAILED: dict[tuple, set] = {}


class Loaded:
    """A namespace holding the SERVICES x 10 ruleset, and its two listings."""

    def __init__(self, services: int, reuse: str | None = None, listings: bool = True) -> None:
        self.services = services
        gen = generate(services)
        self.ns = None
        if reuse:
            self.name, self.owned = reuse, False
        else:
            self.ns = Namespace()
            self.name, self.owned = self.ns.name, True
            loadable = OUT / f"load-nft-{services}x10.nft"
            with open(gen) as src, open(loadable, "w") as dst:
                dst.writelines(ln for ln in src if ln != "\t\tsize 65535\n")
            t0 = time.perf_counter()
            subprocess.run(self.cmd("nft", "-f", str(loadable)), check=True)
            self.load_s = time.perf_counter() - t0
        self.text, self.json = OUT / f"listed-nft-{services}.nft", OUT / f"listed-nft-{services}.json"
        if not listings:
            return
        self.first = {"text": _run(self.cmd(*LISTING["text"]), self.text),
                      "json": _run(self.cmd(*LISTING["json"]), self.json)}
        with open(self.text) as fh:
            self.lines = sum(1 for _ in fh)
        self.identical = self.text.read_bytes() == gen.read_bytes()

    def cmd(self, *argv: str) -> list[str]:
        return ["ip", "netns", "exec", self.name, *argv]

    def close(self) -> None:
        if self.ns is not None:
            self.ns.close()


def commands(loaded: Loaded, form: str) -> dict[str, list[str]]:
    exe = str(installed())
    r = ["--rules", str(loaded.text if form == "text" else loaded.json)]
    cmds = {
        "services": [exe, "services", *r],
        "services -o json": [exe, "services", *r, "-o", "json"],
        "check (rules only)": [exe, "check", *r, "--fail-on", "never"],
        "graph -o dot (whole ruleset)": [exe, "graph", *r, "-o", "dot"],
        "dump": [exe, "dump", *r],
        "trace ns5/svc5": [exe, "trace", "ns5/svc5", *r, *NODE],
        "packet (cluster IP, from a pod)": [exe, "packet", *r, "--src", "10.244.200.7", "--dst", "10.96.0.5",
                                            "--dport", "80", *NODE],
    }
    if form == "text":
        cmds["live services (--netns)"] = [exe, "services", "--netns", loaded.name]
    return cmds


def measure(loaded: Loaded, rounds: int, forms=("text", "json")) -> dict:
    """{form: {"listing": runs, command: runs}}, runs = [(wall, cpu, rss), ...]."""
    res: dict[str, dict[str, list]] = {f: {"listing": [loaded.first[f]]} for f in forms}
    for rnd in range(rounds):
        for form in forms:
            if rnd:  # the first listing (to the file) is round 0's
                res[form]["listing"].append(_run(loaded.cmd(*LISTING[form])))
        for form in forms:
            for name, argv in commands(loaded, form).items():
                res[form].setdefault(name, []).append(_run(argv))
                w, c, m = res[form][name][-1]
                print(f"    {loaded.services} {form:<4} {name:<34} {w:7.2f} s  cpu {c:7.2f} s  {m:5} MB", flush=True)
    return res


def _exit(loaded, form: str, name: str) -> str:
    codes = FAILED.get(tuple(commands(loaded, form)[name]), set())
    return f" **exit {', '.join(map(str, sorted(codes)))}**" if codes else ""


RSS_TARGET_MB = 500  # issue 14: every command within 500 MB at 20000 services


def _mb(runs) -> str:
    """The peak RSS of the runs, marked when over the target."""
    peak = max(x[2] for x in runs)
    return f"{peak}" + (f" **> {RSS_TARGET_MB} MB**" if peak > RSS_TARGET_MB else "")


def _med(runs, i: int) -> float:
    return statistics.median(r[i] for r in runs)


def _span(runs, i: int, fmt: str = "%.2f") -> str:
    xs = [r[i] for r in runs]
    return (fmt % statistics.median(xs)) + (f" ({fmt % min(xs)}–{fmt % max(xs)})" if len(xs) > 1 else "")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--services", type=int, default=10000, help="size of the ratio table")
    ap.add_argument("--sizes", default="1000,3000,10000,20000", help="sizes of the scaling table")
    ap.add_argument("--runs", type=int, default=3, help="rounds for the ratio table")
    ap.add_argument("--scale-runs", type=int, default=1, help="rounds per size (scaling table)")
    ap.add_argument("--reuse", action="append", default=[], metavar="N=NETNS",
                    help="use namespace NETNS, already loaded with the N-service ruleset (its listing is checked)")
    ap.add_argument("--no-write", action="store_true", help="do not write docs/performance-nftables.md")
    ap.add_argument("--live-only", metavar="SIZES",
                    help="only live `services` against `nft list table ip kube-proxy` at these sizes; rewrites the "
                         "live section of docs/performance-nftables.md")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("this benchmark loads rules into a private network namespace: run it as root")
    reuse = {int(k): v for k, v in (r.split("=", 1) for r in args.reuse)}
    installed()
    if args.live_only:
        live_only(args, [int(x) for x in args.live_only.split(",") if x], reuse)
        return
    sizes = sorted({int(s) for s in args.sizes.split(",") if s})
    results: dict[int, tuple[Loaded, dict]] = {}
    for n in sorted(set(sizes) | {args.services}):
        loaded = Loaded(n, reuse.get(n))
        try:
            print(f"{n} services x 10 endpoints: {loaded.lines} lines of nft text"
                  + (f", loaded in {loaded.load_s:.0f} s" if loaded.owned else f", namespace {loaded.name}")
                  + ("; the listing is the generator's text byte for byte" if loaded.identical
                     else "; the listing DIFFERS from the generator's text"), flush=True)
            results[n] = (loaded, measure(loaded, args.runs if n == args.services else args.scale_runs))
        finally:
            loaded.close()
    doc = render_doc(args, results, sizes)
    print()
    print(doc)
    if not args.no_write:
        (ROOT / "docs" / "performance-nftables.md").write_text(doc)
        print(f"wrote {ROOT / 'docs' / 'performance-nftables.md'}")


LIVE_HEAD = "## Live `services` (--netns)"


def live_only(args, sizes: list[int], reuse: dict[int, str]) -> None:
    """Live `services` reads `nft list table ip kube-proxy` (and ip6) and analyses
    it: timed against that listing alone, at the default --command-timeout (60 s)
    and with room (--command-timeout 900)."""
    exe = str(installed())
    rows = []
    for n in sizes:
        loaded = Loaded(n, reuse.get(n), listings=False)
        try:
            runs: dict[str, list] = {}
            for _ in range(args.runs):
                for name, argv in (("listing", loaded.cmd("nft", "list", "table", "ip", "kube-proxy")),
                                   ("default", [exe, "services", "--netns", loaded.name]),
                                   ("room", [exe, "--command-timeout", "900", "services", "--netns", loaded.name])):
                    runs.setdefault(name, []).append(_run(argv))
                    w, c, m = runs[name][-1]
                    print(f"    {n} live {name:<8} {w:7.2f} s  cpu {c:7.2f} s  {m:5} MB", flush=True)
            rows.append((n, loaded, runs))
        finally:
            loaded.close()
    out = [LIVE_HEAD, "",
           f"Generated by `benchmarks/bench_nft.py --live-only` on {time.strftime('%Y-%m-%d')}: live `services` "
           "in the namespace against `nft list table ip kube-proxy` alone (what it reads), "
           f"{args.runs} round(s); wall s (CPU s), peak RSS MB.", "",
           "| services | `nft list table ip kube-proxy` | live `services` (default 60 s timeout) | ratio (wall, CPU) "
           "| live `services --command-timeout 900` | ratio (wall, CPU) |", "|---|---|---|---|---|---|"]
    for n, loaded, runs in rows:
        lw, lc = _med(runs["listing"], 0), _med(runs["listing"], 1)
        cells = []
        for name in ("default", "room"):
            r = runs[name]
            codes = FAILED.get(tuple([exe] + (["--command-timeout", "900"] if name == "room" else [])
                                     + ["services", "--netns", loaded.name]), set())
            mark = f" **exit {', '.join(map(str, sorted(codes)))}**" if codes else ""
            cells.append(f"{_med(r, 0):.2f} ({_med(r, 1):.2f}) / {max(x[2] for x in r)}{mark} | "
                         f"{_med(r, 0) / lw:.2f}x, {_med(r, 1) / lc:.2f}x")
        out.append(f"| {n} | {lw:.2f} ({lc:.2f}) | " + " | ".join(cells) + " |")
    out += ["", "Exit 3 is svcinspect stopping nft at `--command-timeout` (60 s by default) and saying so; "
            "nft's listing is the kernel's netlink dump, which grows faster than linearly with the table.", ""]
    section = "\n".join(out)
    print(section)
    path = ROOT / "docs" / "performance-nftables.md"
    if not args.no_write and path.exists():
        doc = path.read_text()
        head, sep, rest = doc.partition(LIVE_HEAD)
        tail = rest[rest.find("\n## "):] if sep and "\n## " in rest else ""
        path.write_text(head.rstrip("\n") + "\n\n" + section + tail)
        print(f"wrote {path}")


def render_doc(args, results, sizes) -> str:
    loaded, res = results[args.services]
    out = ["# Performance: nftables mode", "",
           f"Generated by `benchmarks/bench_nft.py` on {time.strftime('%Y-%m-%d')} ({os.cpu_count()} cores). "
           "Ratios are to `nft list ruleset` (text input) and `nft -j list ruleset` (JSON input) printing the "
           "same ruleset from a namespace, in the same run.", "",
           f"## The {args.services}-service x 10-endpoint ruleset ({loaded.lines} lines of text)", "",
           "| command | input | time (s) | ratio (wall) | ratio (CPU) | target | peak RSS (MB) |",
           "|---|---|---|---|---|---|---|"]
    for form in ("text", "json"):
        lst = res[form]["listing"]
        out.append(f"| `{' '.join(LISTING[form])}` (the yardstick) | {form} | {_span(lst, 0)} | 1 | 1 | | "
                   f"{max(r[2] for r in lst)} |")
    for form in ("text", "json"):
        lw, lc = _med(res[form]["listing"], 0), _med(res[form]["listing"], 1)
        for name, runs in res[form].items():
            if name == "listing":
                continue
            out.append(f"| `{name}`{_exit(loaded, form, name)} | {form} | {_span(runs, 0)} | {_med(runs, 0) / lw:.2f}x | "
                       f"{_med(runs, 1) / lc:.2f}x | {TARGETS.get(name, '')} | {max(r[2] for r in runs)} |")
    for form, label in (("text", "text"), ("json", "JSON")):
        listing = f"`{' '.join(LISTING[form])}`"
        names = [k for k in res[form] if k != "listing"]
        lines = form == "text"  # the text table also gives each ruleset's line count
        out += ["", f"## Scaling ({label} input: wall s / peak RSS MB (CPU ratio to {listing}))", "",
                "| services | " + ("lines | " if lines else "") + f"{listing} wall / CPU s | "
                + " | ".join(f"`{n}`" for n in names) + " |",
                "|---|" + ("---|" if lines else "") + "---|" + "---|" * len(names)]
        for n in sizes:
            ld, r = results[n]
            t = r[form]
            lc = _med(t["listing"], 1)
            out.append(f"| {n} | " + (f"{ld.lines} | " if lines else "") + f"{_med(t['listing'], 0):.2f} / {lc:.2f} | "
                       + " | ".join(f"{_med(t[c], 0):.2f} / {_mb(t[c])} ({_med(t[c], 1) / lc:.2f}x)"
                                    f"{_exit(ld, form, c)}" for c in names) + " |")
    out += ["", "Method: each round runs both listings in the namespace, then every command once; ratios are "
            f"medians over the rounds ({args.runs} for the first table, {args.scale_runs} per size for the "
            "others) divided by the median listing of the same form, whole-process wall time and CPU time "
            "(user + system of the child; nft's is mostly the kernel's netlink dump); peak RSS of the child "
            f"(marked when over the {RSS_TARGET_MB} MB target); "
            "svcinspect installed with `pip install .` and compiled bytecode. The affinity sets are loaded "
            "without their `size 65535` line (the kernel preallocates ~2 MB per sized dynamic set: 20 GB at "
            "10000 services) and listed back with it: "
            + ("every listing was the generator's text byte for byte." if all(ld.identical for ld, _ in
                                                                            results.values())
               else "some listings differed from the generator's text (see the run's output).")
            + " **exit N** marks a command that did not finish with 0 or 1 (3: live reading stopped at the "
            "default 60 s `--command-timeout`). The machine was shared with other work, so wall seconds vary "
            "more than CPU ratios.", ""]
    return "\n".join(out)


if __name__ == "__main__":
    main()
