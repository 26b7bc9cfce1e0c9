"""Shared benchmark plumbing: generate a kube-proxy-like dump, load it into a
private network namespace, and time commands (wall time and peak RSS per child).

Benchmarks print figures; they never pass or fail on time.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The shared folder sits beside the repo (or beside the worktrees' parent).
GENERATOR = next((p / "shared" / "bench" / "gen_kubeproxy_dump.py" for p in ROOT.parents
                  if (p / "shared" / "bench" / "gen_kubeproxy_dump.py").exists()),
                 ROOT.parent / "shared" / "bench" / "gen_kubeproxy_dump.py")
OUT = ROOT / "benchmarks" / "out"


def generate(services: int, endpoints: int) -> Path:
    """The restore input for SERVICES x ENDPOINTS (cached under benchmarks/out/)."""
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"gen-{services}x{endpoints}.rules"
    if not path.exists():
        if not GENERATOR.exists():
            sys.exit(f"generator not found at {GENERATOR} (it lives in the shared folder beside the repo)")
        with open(path, "w") as fh:
            subprocess.run([sys.executable, str(GENERATOR), str(services), str(endpoints)], stdout=fh, check=True)
    return path


class Namespace:
    """``ip netns add`` a throwaway namespace; never touches the host's tables."""

    def __init__(self) -> None:
        if os.geteuid() != 0:
            sys.exit("benchmarks that load rules need root (a private network namespace)")
        self.name = "svcibench-" + uuid.uuid4().hex[:8]
        subprocess.run(["ip", "netns", "add", self.name], check=True)

    def cmd(self, *argv: str) -> list[str]:
        return ["ip", "netns", "exec", self.name, *argv]

    def restore(self, path: Path, tool: str = "iptables-legacy-restore") -> None:
        if shutil.which("nfacct"):
            for obj in ("ct_state_invalid_dropped_pkts", "localhost_nps_accepted_pkts"):
                subprocess.run(self.cmd("nfacct", "add", obj), capture_output=True)
        with open(path) as fh:
            subprocess.run(self.cmd(tool), stdin=fh, check=True)

    def close(self) -> None:
        subprocess.run(["ip", "netns", "del", self.name], check=False)

    def __enter__(self) -> "Namespace":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def measure(argv: list[str], stdout_path: Path | None = None) -> tuple[float, float, int, int]:
    """Run argv once: (wall seconds, CPU seconds (user + system), peak RSS in MB, exit code).
    CPU and peak RSS come from wait4, so they count the children it waited for."""
    out = open(stdout_path, "w") if stdout_path else subprocess.DEVNULL
    try:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.DEVNULL)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
    finally:
        if stdout_path:
            out.close()
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss // 1024, os.waitstatus_to_exitcode(status)


def run_timed(argv: list[str], stdout_path: Path | None = None) -> tuple[float, int]:
    """Run argv once; return (wall seconds, peak RSS in MB) of that child alone."""
    wall, _, rss, code = measure(argv, stdout_path)
    if code != 0:
        raise RuntimeError(f"{argv} exited {code}")
    return wall, rss


def best_of(n: int, argv: list[str], stdout_path: Path | None = None) -> tuple[float, int]:
    """Median wall time of n runs and the largest peak RSS."""
    runs = [run_timed(argv, stdout_path) for _ in range(n)]
    return statistics.median(r[0] for r in runs), max(r[1] for r in runs)


_INSTALLED: Path | None = None


def installed() -> Path:
    """svcinspect installed from this tree the way the README does it (a venv,
    ``pip install .``), with its bytecode compiled as pip normally leaves it.

    Timing ``python -m svcinspect`` from the source tree instead would add what
    users never pay: an editable-install finder, and here (PYTHONDONTWRITEBYTECODE
    is set machine-wide) compiling every module from source on each start:
    +0.1 s per command."""
    global _INSTALLED
    if _INSTALLED is None:
        venv = OUT / "venv"
        if not (venv / "bin" / "python").exists():
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "--force-reinstall", "--no-deps", str(ROOT)],
                       check=True, env=env)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", str(ROOT)], check=True, env=env)
        subprocess.run([str(venv / "bin" / "python"), "-m", "compileall", "-q", str(venv / "lib")],
                       check=True, env=env, stdout=subprocess.DEVNULL)
        _INSTALLED = venv / "bin" / "svcinspect"
    return _INSTALLED


def svcinspect(*args: str) -> list[str]:
    return [str(installed()), *args]


def saved_dump(ns: Namespace, services: int, endpoints: int, save: str = "iptables-legacy-save") -> Path:
    """What the kernel gives back (normalised order), as users would save it."""
    path = OUT / f"saved-{save}-{services}x{endpoints}.txt"
    with open(path, "w") as fh:
        subprocess.run(ns.cmd(save), stdout=fh, check=True)
    return path


def prepared_dump(services: int, endpoints: int = 10) -> tuple[Path, float, int, int]:
    """Generate, restore into a throwaway namespace and save back: the saved dump,
    the median time and peak RSS of `iptables-legacy-save` printing it, and its lines."""
    gen = generate(services, endpoints)
    with Namespace() as ns:
        ns.restore(gen)
        dump = saved_dump(ns, services, endpoints)
        save_t, save_rss = best_of(3, ns.cmd("iptables-legacy-save"))
    return dump, save_t, save_rss, sum(1 for _ in open(dump))
