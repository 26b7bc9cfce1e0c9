"""Chain names are input: a compiled hash table keyed by them must not be
walked end to end by names made to collide (issue 14's compiled passes).

The names here collide in the low 20 bits of 64-bit FNV-1a, the hash the
compiled summary pass first used: the low bits of FNV's state depend only on
the low bits before each byte, so two 4-letter blocks that collide from one
state can be chained (a multicollision: 2^k names from k pairs). With that hash
the tables' lookups were quadratic (check: 32768 names 7 s of CPU, 131072 names
over 90 s; trace's rule count: 131072 names 75 s); with Python's per-process
keyed hash both answer in about a second.
"""

from __future__ import annotations

import itertools
import string
import subprocess
import sys

import pytest

from conftest import ROOT
from svcinspect import graph
from svcinspect.dataplane.iptables import bulk

BITS = 20
MASK = (1 << BITS) - 1
FNV_PRIME = 1099511628211
FNV_BASIS = 1469598103934665603


FNV32_PRIME = 16777619     # the 32-bit constants, computed in 64 bits (the index's first hash)
FNV32_BASIS = 2166136261


def _step(h: int, text: str, prime: int = FNV_PRIME) -> int:
    for ch in text.encode():
        h = ((h ^ ch) * prime) & MASK
    return h


def _pair(h: int, prime: int = FNV_PRIME) -> tuple[str, str, int]:
    seen: dict[int, str] = {}
    for letters in itertools.product(string.ascii_uppercase + string.digits, repeat=4):
        block = "".join(letters)
        x = _step(h, block, prime)
        if x in seen:
            return seen[x], block, x
        seen[x] = block
    raise AssertionError("no pair")  # pragma: no cover (birthday bound: ~1300 tries)


def colliding_names(k: int, prefix: str = "KUBE-SVC-", basis: int = FNV_BASIS, prime: int = FNV_PRIME) -> list[str]:
    h, blocks = _step(basis & MASK, prefix, prime), []
    for _ in range(k):
        a, b, h = _pair(h, prime)
        blocks.append((a, b))
    return [prefix + "".join(c) for c in itertools.product(*blocks)]


def test_the_names_really_collide_under_the_old_hashes():
    names = colliding_names(6)
    assert len(set(names)) == 64
    assert len({_step(FNV_BASIS & MASK, n) for n in names}) == 1
    names = colliding_names(6, basis=FNV32_BASIS, prime=FNV32_PRIME)
    assert len(set(names)) == 64 and len({_step(FNV32_BASIS & MASK, n, FNV32_PRIME) for n in names}) == 1


CALL = """
import sys, time
sys.path.insert(0, {tests!r})
from test_hostile_hash import colliding_names
from svcinspect import graph
names = colliding_names(17)
segs = [[(i + 2, f"-A {{n}} -j RETURN\\n")] for i, n in enumerate(names)]
unref, declared, down, slow = graph.native_edges.summary(names, segs, graph.KNOWN_TARGETS, graph._BUILTINS,
                                                         graph._FLOAT_LAYERS)
print(len(names), len(unref), declared, down, len(slow))
"""


def _run(code: str) -> list[str]:
    proc = subprocess.run([sys.executable, "-c", code.format(tests=str(ROOT / "tests"))], capture_output=True,
                          text=True, timeout=30, cwd=ROOT, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.split()


@pytest.mark.skipif(graph.native_edges is None, reason="the compiled edge pass is not built "
                    "(pip install . with a C compiler and the Python headers)")
def test_colliding_chain_names_do_not_make_the_compiled_summary_quadratic():
    # 131072 names: a hang guard with a wide margin, not a benchmark
    # (the keyed hash answers in about a second; the old one took minutes).
    # The guard is 30 s for both tests.
    # every chain answered by the fast pass, none referenced, every jump a known target, down the layers
    assert _run(CALL) == ["131072", "131072", "True", "True", "0"]


RULE_NAMES = """
import sys
sys.path.insert(0, {tests!r})
from test_hostile_hash import FNV32_BASIS, FNV32_PRIME, colliding_names
from svcinspect.dataplane.iptables import _scan
names = [n.encode() for n in colliding_names(17, basis=FNV32_BASIS, prime=FNV32_PRIME)]
data = b"\\n" + b"".join(b"-A " + n + b" -j RETURN\\n" for n in names)
counts = _scan.rule_names(data, 1, len(data), names, False)
print(len(counts), sum(counts.values()))
"""


@pytest.mark.skipif(bulk.native_scanner is None or not hasattr(bulk.native_scanner, "rule_names"),
                    reason="the compiled scanner is not built (pip install . with a C compiler and the Python headers)")
def test_colliding_chain_names_do_not_make_the_compiled_rule_count_quadratic():
    # trace's lookup of its chains' rule lines: 131072 keys and lines, all in one run of the old hash
    assert _run(RULE_NAMES) == ["131072", "131072"]
