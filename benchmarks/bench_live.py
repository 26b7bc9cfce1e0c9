#!/usr/bin/env python3
"""Live `services` (reading a namespace's tables) against the save command alone,
on the generated SERVICES x 10 dump (default 10000 x 10, ~440k lines).

The dump is restored into private namespaces, one per backend
(iptables-legacy-restore, iptables-nft-restore), so each holds the rules in one
backend only, like a real node. Reported in one run, svcinspect installed as
the README does it (benchmarks/out/venv, compiled bytecode):

- `iptables-<backend>-save` alone, printing into a pipe as svcinspect reads it;
- `svcinspect services --netns NS`, each run paired with a run of the save
  (A B A B ...): wall and CPU seconds and their ratios to the save, pair by
  pair (the issue's target is about waiting: the wall ratio, <= 1.5x);
- the peak RSS of svcinspect's own process (ru_maxrss of the process itself)
  and of the run (the largest process: the save);
- what is left after the save's last byte (wall and svcinspect's CPU, from
  when the runner read the save's end to the end of the output): the part of
  the analysis that did not overlap the save;
- `svcinspect services --rules <saved dump>` for reference: the analysis alone;
- with --iptc, python-iptables reading every rule (one run: it is slow).

The CPU ratio cannot go below 1 + (analysis CPU / save CPU): live `services`
does the save's work and the analysis. What reading the save's output while it
prints (sources.limits.run_streamed, dataplane.iptables.stream) buys is wall
time: the parse and the nat scans run while the save is still printing.

    sudo python3 benchmarks/bench_live.py              # 10000 services x 10 endpoints
    sudo python3 benchmarks/bench_live.py 20000 --runs 5
    sudo python3 benchmarks/bench_live.py 3000 --iptc --backends legacy

Benchmarks print numbers; nothing here passes or fails.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

from _common import ROOT, Namespace, generate, installed, measure, saved_dump

sys.path.insert(0, str(ROOT))

# The CLI run in this interpreter as the installed `svcinspect` command runs it
# (svcinspect.entry.console: the read's commands started first, the process
# ended by cli.leave without teardown), so what the wrappers below report
# (from an exit handler: leave runs them, then ends the process) is the
# command's own.
RUN_CLI = ("sys.argv = ['svcinspect'] + sys.argv[1:]\n"
           "from svcinspect.entry import console\n"
           "console()\n")

# svcinspect's own peak RSS: run its CLI in this interpreter and read
# ru_maxrss of the process itself (wait4's figure is the largest process of the
# tree, which for a live read is the save command).
OWN_RSS = ("import atexit, resource, sys\n"
           "atexit.register(lambda: sys.stderr.write('own-rss %d\\n' % "
           "resource.getrusage(resource.RUSAGE_SELF).ru_maxrss))\n" + RUN_CLI)


# What is left after the save's last byte: run the CLI in this interpreter,
# note when the runner's helper thread read the save's end (and the process'
# CPU then), and print the wall and CPU seconds from there to the output's end.
AFTER = ("import atexit, sys, time\n"
         "from svcinspect.sources import prestart\n"
         "prestart.start_for(sys.argv[1:])  # (first, as the entry point: the patch below needs limits)\n"
         "from svcinspect.sources import limits\n"
         "mark = {}\n"
         "run = limits._Drain.run\n"
         "def noted(self):\n"
         "    run(self)\n"
         "    mark['wall'], mark['cpu'] = time.perf_counter(), time.process_time()\n"
         "limits._Drain.run = noted\n"
         "atexit.register(lambda: sys.stdout.flush() or sys.stderr.write('after %.3f %.3f\\n' % ("
         "time.perf_counter() - mark['wall'], time.process_time() - mark['cpu'])))\n" + RUN_CLI)


def after_save(python: str, args: list[str], runs: int) -> tuple[list[float], list[float]]:
    """Wall and CPU seconds of svcinspect after the save's last byte, per run."""
    walls, cpus = [], []
    for _ in range(runs):
        proc = subprocess.run([python, "-c", AFTER, *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              text=True, check=False)
        line = [ln for ln in proc.stderr.splitlines() if ln.startswith("after ")]
        if line:
            walls.append(float(line[-1].split()[1]))
            cpus.append(float(line[-1].split()[2]))
    return walls, cpus


def _run(argv: list[str]) -> tuple[float, float]:
    wall, cpu, _, code = measure(argv)
    if code not in (0, 1):
        raise RuntimeError(f"{argv} exited {code}")
    return wall, cpu


def _mid(xs: list[float], fmt: str = "%.2f") -> str:
    return (fmt % statistics.median(xs)) + (f" ({fmt % min(xs)}-{fmt % max(xs)})" if len(xs) > 1 else "")


def paired(argv: list[str], base: list[str], runs: int) -> dict:
    """A/B runs: argv and base in turn, ratios taken pair by pair."""
    out: dict = {k: [] for k in ("wall", "cpu", "base_wall", "base_cpu", "wall_ratio", "cpu_ratio")}
    rss = 0
    for _ in range(runs):
        w, c, r, code = measure(argv)
        if code not in (0, 1):
            raise RuntimeError(f"{argv} exited {code}")
        bw, bc = _run(base)
        rss = max(rss, r)
        for k, v in (("wall", w), ("cpu", c), ("base_wall", bw), ("base_cpu", bc), ("wall_ratio", w / bw),
                     ("cpu_ratio", c / bc)):
            out[k].append(v)
    out["rss"] = rss
    return out


def own_rss(python: str, args: list[str]) -> int:
    """Peak RSS in MB of svcinspect's own process for one run of ``args``."""
    proc = subprocess.run([python, "-c", OWN_RSS, *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          text=True, check=False)
    line = [ln for ln in proc.stderr.splitlines() if ln.startswith("own-rss ")]
    return int(line[-1].split()[1]) // 1024 if line else -1


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("services", type=int, nargs="?", default=10000)
    ap.add_argument("--runs", type=int, default=3, help="A/B pairs per command")
    ap.add_argument("--backends", default="legacy,nft", help="which backends to load and read")
    ap.add_argument("--iptc", action="store_true", help="also time python-iptables (slow: minutes at 10000)")
    args = ap.parse_args()
    exe = str(installed())
    python = str(installed().parent / "python")
    n = args.services
    gen = generate(n, 10)
    backends = [b for b in args.backends.split(",") if b]
    spaces = {b: Namespace() for b in backends}
    try:
        for b, ns in spaces.items():
            ns.restore(gen, f"iptables-{b}-restore")
        first = spaces[backends[0]]
        dump = saved_dump(first, n, 10, f"iptables-{backends[0]}-save")
        with open(dump) as fh:
            lines = sum(1 for _ in fh)
        print(f"{n} services x 10 endpoints: {lines} lines; {args.runs} A/B pairs per row", flush=True)
        for b, ns in spaces.items():
            save = ns.cmd(f"iptables-{b}-save")
            live = [exe, "services", "--netns", ns.name]
            res = paired(live, save, args.runs)
            mine = own_rss(python, ["services", "--netns", ns.name])
            walls, cpus = after_save(python, ["services", "--netns", ns.name], args.runs)
            print(f"  iptables-{b}-save alone: wall {_mid(res['base_wall'])} s, CPU {_mid(res['base_cpu'])} s")
            print(f"  services --netns ({b} backend): wall {_mid(res['wall'])} s = {_mid(res['wall_ratio'])}x the "
                  f"save, CPU {_mid(res['cpu'])} s = {_mid(res['cpu_ratio'])}x; peak RSS: svcinspect {mine} MB, "
                  f"the run {res['rss']} MB", flush=True)
            if walls:
                print(f"    after the save's last byte: wall {_mid(walls)} s, svcinspect's CPU {_mid(cpus)} s",
                      flush=True)
        files = paired([exe, "services", "--rules", str(dump)], first.cmd(f"iptables-{backends[0]}-save"), args.runs)
        mine = own_rss(python, ["services", "--rules", str(dump)])
        print(f"  services --rules <saved dump> (the analysis alone): wall {_mid(files['wall'])} s, "
              f"CPU {_mid(files['cpu'])} s = {_mid(files['cpu_ratio'])}x the save; peak RSS {mine} MB", flush=True)
        if args.iptc and "legacy" in spaces:
            from svcinspect.model.netfilter import Family
            from svcinspect.sources.iptc import read_iptc_texts
            from svcinspect.sources.netns import resolve_netns

            start = time.perf_counter()
            texts = read_iptc_texts((Family.V4,), resolve_netns(spaces["legacy"].name))
            print(f"  python-iptables, every IPv4 rule ({texts[Family.V4].count('-A ')} rules), 1 run: "
                  f"{time.perf_counter() - start:.1f} s", flush=True)
    finally:
        for ns in spaces.values():
            ns.close()


if __name__ == "__main__":
    main()
