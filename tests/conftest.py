"""Shared test helpers: fixture paths, an in-process CLI runner, netns helpers."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"
KP = FIXTURES / "kube-proxy-v1.36.2"
IPT = KP / "iptables"
WILD = FIXTURES / "wild"
GOLDEN = Path(__file__).resolve().parent / "golden"
# Every rule file among the fixtures (dumps, excerpts, pastes), and the same
# without the capture's two notes that are not rules (versions, command line).
ALL_RULE_FILES = sorted(p for p in FIXTURES.rglob("*") if p.is_file() and p.suffix in (".txt", ".rules"))
RULE_FILES = [p for p in ALL_RULE_FILES if p.name not in ("versions.txt", "kube-proxy-cmdline.txt")]


@pytest.fixture(params=["native", "python"])
def in_each_scanner(request):
    """Run the test twice, inside ``perf.native_scanner``: with the compiled
    scanner (skipped, saying so, when it is not built) and the pure-Python one."""
    from svcinspect import perf

    if request.param == "native" and not perf.native_built():
        pytest.skip("the compiled scanner is not built (setup.py build_ext --inplace)")
    with perf.native_scanner(request.param == "native"):
        yield request.param


def fixture_text(*parts: str) -> str:
    return FIXTURES.joinpath(*parts).read_text()


@dataclass
class Result:
    code: int
    out: str
    err: str


@pytest.fixture
def cli(capsys, monkeypatch):
    """Run ``svcinspect ARGS`` in-process through the real entry point."""
    from svcinspect.cli import _State, main

    def run(*args: str, stdin: str | bytes | None = None) -> Result:
        _State.debug = _State.verbose = False
        if stdin is not None:
            data = stdin.encode() if isinstance(stdin, str) else stdin
            monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
        capsys.readouterr()
        try:
            main(list(args))
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


def update_golden() -> bool:
    return os.environ.get("SVCINSPECT_UPDATE_GOLDEN") == "1"


def check_golden(name: str, actual: str) -> None:
    """Compare with tests/golden/NAME; SVCINSPECT_UPDATE_GOLDEN=1 rewrites it."""
    path = GOLDEN / name
    if update_golden() or not path.exists():
        if not update_golden():
            pytest.fail(f"golden file {path} missing; run with SVCINSPECT_UPDATE_GOLDEN=1 to create it")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(actual)
    assert actual == path.read_text(), f"output differs from {path} (SVCINSPECT_UPDATE_GOLDEN=1 to accept)"


# --- real kernel tables in a private network namespace -------------------------

def netns_unavailable_reason() -> str | None:
    """Why netns tests cannot run here, or None when they can."""
    if os.geteuid() != 0:
        return "needs root to create a network namespace"
    if not shutil.which("ip"):
        return "needs the `ip` command (apt-get install iproute2)"
    if not shutil.which("iptables-legacy-restore"):
        return "needs iptables (apt-get install iptables)"
    probe = subprocess.run(["unshare", "-n", "true"], capture_output=True)
    if probe.returncode != 0:
        return "cannot create a network namespace here: " + probe.stderr.decode().strip()
    return None


needs_netns = pytest.mark.skipif(netns_unavailable_reason() is not None,
                                 reason=netns_unavailable_reason() or "")


class NetNS:
    """A named network namespace (``ip netns add``), removed on close."""

    def __init__(self) -> None:
        self.name = "svci-" + uuid.uuid4().hex[:10]
        subprocess.run(["ip", "netns", "add", self.name], check=True)
        self.path = f"/run/netns/{self.name}"

    def run(self, *cmd: str, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(["ip", "netns", "exec", self.name, *cmd], input=input, text=True,
                              capture_output=True, check=check)

    def restore(self, text: str, family: int = 4, backend: str = "legacy") -> None:
        """Load a dump; creates the nfacct objects kube-proxy's rules refer to."""
        for obj in sorted(set(_NFACCT.findall(text))):
            if shutil.which("nfacct"):
                self.run("nfacct", "add", obj, check=False)
        tool = ("iptables" if family == 4 else "ip6tables") + f"-{backend}-restore"
        self.run(tool, input=text)

    def close(self) -> None:
        subprocess.run(["ip", "netns", "del", self.name], check=False)


import re as _re  # noqa: E402

_NFACCT = _re.compile(r"--nfacct-name\s+(\S+)")


@pytest.fixture
def netns():
    reason = netns_unavailable_reason()
    if reason:
        pytest.skip(reason)
    ns = NetNS()
    try:
        yield ns
    finally:
        ns.close()


def tries_to_see_every_endpoint(k: int, at_least: int = 30, miss: float = 1e-9) -> int:
    """Connections through a random 1/k split so that missing one of the k
    endpoints has probability below ``miss`` (a union bound: k (1 - 1/k)^n):
    real-kernel tests assert every predicted endpoint was reached, and the
    kernel's split is really random.

    >>> tries_to_see_every_endpoint(1), tries_to_see_every_endpoint(3), tries_to_see_every_endpoint(7)
    (30, 54, 148)
    """
    import math

    if k <= 1:
        return at_least
    return max(at_least, math.ceil(math.log(miss / k) / math.log(1 - 1 / k)))
