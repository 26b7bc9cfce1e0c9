"""Live `services`, round 3: the compiled per-piece and per-round steps of the
stream read what their pure-Python references read.

- ``_scan.save_tally(piece)`` against ``sources.command._tally_py(piece)``
  (three ``str.count``, non-overlapping, and three substring tests): on every
  fixture's save text cut in pieces at fixed and hypothesis-chosen positions,
  on hostile strings (overlapping ``-A KUBE-A KUBE-``, patterns at the very
  start or end, inside comments, non-ASCII), and, summed over pieces cut at
  line breaks, against ``count_kube`` of the whole text (what the backend
  choice sees).
- ``_scan.kube_runs(segs, start, end, last, chains)`` against
  ``stream._kube_runs_py``: the same ``(last, seps, cascades)`` for rule runs in
  iptables-save's order, None for runs out of order (then the stream falls
  back to the Python path).
- With ``SVCINSPECT_NO_NATIVE=1`` the live path counts with the references.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import FIXTURES, IPT
from svcinspect.dataplane.iptables import bulk
from svcinspect.dataplane.iptables import stream as stream_mod
from svcinspect.dataplane.iptables.parse import _SEGMENTS
from svcinspect.model.netfilter import Family
from svcinspect.sources import command

native = bulk.native_scanner
needs_native = pytest.mark.skipif(native is None or not hasattr(native, "save_tally"),
                                  reason="the compiled scanner svcinspect.dataplane.iptables._scan is not built "
                                         "(no C compiler at install time?): nothing to compare")

SAVES = sorted(p for p in FIXTURES.rglob("*") if p.is_file() and p.suffix in (".txt", ".rules")
               and ("-A " in p.read_text(errors="replace") or ":KUBE-" in p.read_text(errors="replace")))
HOSTILE = [
    "", "-", "-A", "-A ", "-A KUBE", "-A KUBE-", "-A KUBE-A KUBE-", "-A KUBE-A KUBE-A KUBE-", "-A -A -A ",
    "-A KUBE--A KUBE-", ":KUBE-", "\n:KUBE-", ":KUBE-\n:KUBE-", "\n:KUBE", "x:KUBE-", "*", "\n*", "x*",
    ":KUBE-PROXY-CANARY", ":KUBE-PROXY-CANARY ", "x:KUBE-PROXY-CANARY - [0:0]\n", ":KUBE-SERVICES",
    ":KUBE-SERVICES ", '-A X -m comment --comment "-A KUBE-Y :KUBE-SERVICES \n:KUBE-" -j ACCEPT\n',
    ":KUBE-PROXY-CANARY :KUBE-SERVICES ", ":KUBE-SERVICES :KUBE-PROXY-CANARY ", "-A KUBÉ-X\n", "é-A KUBE-X\n",
    "€-A KUBE-X\n:KUBE-PROXY-CANARY \n*nat\n", "\U0001F600\n:KUBE-A\n", "-\x00A KUBE-", "-A\tKUBE-", "-a kube-",
    "\n\n:KUBE-SEP-X - [0:0]\n-A KUBE-SEP-X -j DNAT\n", "-A KUBE-" * 50 + "-A ", "\n:KUBE-" * 30,
]
ALPHABET = ["-A ", "-A KUBE-", "KUBE-", "-", "A", " ", ":", ":KUBE-", "\n", "\n:", "*", "\n*", "PROXY-CANARY ",
            "SERVICES ", ":KUBE-PROXY-CANARY ", ":KUBE-SERVICES ", "é", "€", "x", '"', "#"]


def _pieces_at_lines(text: str, every: int) -> list[str]:
    lines = text.splitlines(keepends=True)
    return ["".join(lines[i:i + every]) for i in range(0, len(lines), every)]


def _cut(text: str, cuts: list[int]) -> list[str]:
    points = sorted({c % (len(text) + 1) for c in cuts} | {0, len(text)})
    return [text[a:b] for a, b in zip(points, points[1:])]


def _same_tally(piece: str) -> None:
    got = native.save_tally(piece)
    want = command._tally_py(piece)
    if piece.isascii() or max(map(ord, piece), default=0) < 256:
        assert got == want, piece
    else:
        assert got is None  # another str kind: left to str.count


@needs_native
@pytest.mark.parametrize("piece", HOSTILE)
def test_hostile_pieces_tally_the_same(piece):
    _same_tally(piece)
    _same_tally(piece + "\n")
    _same_tally("\n" + piece)


@needs_native
def test_the_overlapping_rule_prefix_counts_as_str_count_does():
    """Not two empty answers: ``-A KUBE-`` overlapping itself counts once per str.count."""
    assert native.save_tally("-A KUBE-A KUBE-") == (1, 0, 2, False, False, False)
    assert native.save_tally(":KUBE-X\n:KUBE-Y\n*nat\n:KUBE-PROXY-CANARY - [0:0]\n") == (0, 3, 0, True, False, True)


@needs_native
@pytest.mark.parametrize("path", SAVES, ids=lambda p: str(p.relative_to(FIXTURES)))
def test_every_fixture_tallies_the_same(path):
    text = path.read_text(errors="replace")
    assert text  # a fixture with rules in it
    for every in (1, 7, 1000):
        pieces = _pieces_at_lines(text, every)
        for piece in pieces:
            _same_tally(piece)
        tally = command._Tally()
        for piece in pieces:
            tally(piece)
        assert tally.count() == command.count_kube(text)
    rng = random.Random(str(path))
    for piece in _cut(text, [rng.randrange(len(text) + 1) for _ in range(40)]):
        _same_tally(piece)


@needs_native
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(ALPHABET), max_size=60).map("".join))
def test_token_soup_tallies_the_same(piece):
    _same_tally(piece)


@needs_native
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.integers(min_value=0, max_value=1 << 30), max_size=30))
def test_the_real_dump_cut_anywhere_tallies_the_same(cuts):
    text = (IPT / "iptables-save.txt").read_text()
    for piece in _cut(text, cuts):
        _same_tally(piece)


def test_the_tally_without_the_compiled_scanner_is_count_kube(monkeypatch):
    monkeypatch.setattr(command, "_NO_NATIVE_TALLY", True)
    text = (IPT / "iptables-save.txt").read_text()
    tally = command._Tally()
    for piece in _pieces_at_lines(text, 3):
        tally(piece)
    assert tally.count() == command.count_kube(text)
    assert tally.count().rules > 10 and tally.kube_proxy and tally.tables


def test_no_native_counts_with_the_reference():
    """SVCINSPECT_NO_NATIVE=1: the live tally uses _tally_py, with the same counts."""
    code = ("import sys; sys.path.insert(0, 'tests')\n"
            "from svcinspect.sources import command\n"
            "from conftest import IPT\n"
            "called = []\n"
            "ref = command._tally_py\n"
            "command._tally_py = lambda *a: called.append(1) or ref(*a)\n"
            "text = (IPT / 'iptables-save.txt').read_text()\n"
            "t = command._Tally()\n"
            "t(text)\n"
            "assert command.bulk_native() is None and called, called\n"
            "assert t.count() == command.count_kube(text)\n"
            "print('ok', t.count().rules)\n")
    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, SVCINSPECT_NO_NATIVE="1", PYTHONPATH=str(root))
    out = subprocess.run([sys.executable, "-c", code], cwd=root, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("ok ") and int(out.stdout.split()[1]) > 10


# --- kube_runs ------------------------------------------------------------------------

def _nat_runs(text: str):
    """The nat table's segments and the chains dict the fold builds for them
    (first run's line per chain), as the stream has them."""
    nat = text.index("*nat\n")
    end = text.find("COMMIT\n", nat)
    body = text[nat:end if end >= 0 else len(text)]
    segs = _SEGMENTS.findall(body)
    chains: dict = {}
    for n, seg in enumerate(segs):
        if seg[0]:
            chains.setdefault(seg[1], [None, None, n, [], False])[3].append((n + 1, seg[0]))
    return segs, chains


NAT_SAVES = [p for p in SAVES if "*nat\n" in p.read_text(errors="replace")]


def _same_runs(segs, start, end, last, chains) -> None:
    got = native.kube_runs(segs, start, end, last, chains)
    want = stream_mod._kube_runs_py(segs, start, end, last, chains)
    assert got == want


@needs_native
@pytest.mark.parametrize("path", NAT_SAVES, ids=lambda p: str(p.relative_to(FIXTURES)))
def test_every_fixture_reads_its_kube_runs_the_same(path):
    segs, chains = _nat_runs(path.read_text(errors="replace"))
    blocks = [i for i, s in enumerate(segs) if s[0]]
    if not blocks:
        pytest.skip(f"{path.name}: no rule runs in nat")
    names = sorted({s[1] for s in segs if s[1].startswith("KUBE-")})
    lasts = ["", "KUBE-", "KUBE-SEP-", "KUBE-SVC-"] + names[:1] + names[len(names) // 2:len(names) // 2 + 1] + names[-1:]
    rng = random.Random(str(path))
    windows = [(blocks[0], blocks[-1] + 1)] + [tuple(sorted((rng.choice(blocks), rng.choice(blocks) + 1)))
                                                 for _ in range(20)]
    for start, end in windows:
        for last in lasts:
            _same_runs(segs, start, end, last, chains)
    shuffled = list(segs)
    rng.shuffle(shuffled)
    _same_runs(shuffled, 0, len(shuffled), "", chains)


@needs_native
def test_the_real_dump_reads_its_runs_and_declines_out_of_order():
    """Not two empty answers: the real dump's endpoint and cascade chains come
    back in order; a run out of order is None from both."""
    segs, chains = _nat_runs((IPT / "iptables-save.txt").read_text())
    kube = [s for s in segs if s[0] and s[1].startswith("KUBE-")]
    ordered = sorted(kube, key=lambda s: s[1])
    last, seps, cascades = native.kube_runs(ordered, 0, len(ordered), "", chains)
    assert last == ordered[-1][1] and len(seps) > 5 and len(cascades) > 5
    assert [s[0] for s in seps] == sorted(s[0] for s in seps) and all(s[0].startswith("KUBE-SEP-") for s in seps)
    assert (last, seps, cascades) == stream_mod._kube_runs_py(ordered, 0, len(ordered), "", chains)
    swapped = ordered[:2][::-1] + ordered[2:]
    assert native.kube_runs(swapped, 0, len(swapped), "", chains) is None
    assert stream_mod._kube_runs_py(swapped, 0, len(swapped), "", chains) is None
    assert native.kube_runs(ordered, 0, len(ordered), ordered[0][1], chains) is None  # not above the last run


@needs_native
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(["KUBE-SEP-A", "KUBE-SEP-B", "KUBE-SVC-A", "KUBE-SVL-Z", "KUBE-XLB-Q", "KUBE-SERVICES",
                                 "KUBE-SEP", "KUBE-SEP.", "KUBE-MARK-MASQ", "POSTROUTING", "KUBE-SVCÉ", "KUBE-SEP-€",
                                 "KUBE-", "kube-sep-a", ""]), max_size=12),
       st.sampled_from(["", "KUBE-", "KUBE-SEP-A", "KUBE-SVC-", "ZZZ", "KUBE-SEP-€"]))
def test_made_up_runs_read_the_same(names, last):
    segs = [(f"-A {n} -j X\n", n, "", "") for n in names]
    chains = {n: [None, None, i, [(i + 1, f"-A {n} -j X\n")], False] for i, n in enumerate(names)}
    _same_runs(segs, 0, len(segs), last, chains)


@needs_native
@pytest.mark.parametrize("args", [([("a", "KUBE-SEP-A")], 0, 1, "", {}), ("x", 0, 1, "", {}), ([], 0, 0, 1, {}),
                                  ([(1, "KUBE-SEP-A")], 0, 1, "", {}), ([("a", "KUBE-SEP-A")], 0, 5, "", {}),
                                  ([("a", "KUBE-SEP-A")], 0, 1, "", {"KUBE-SEP-A": "no"})])
def test_odd_shapes_decline(args):
    """Another shape than the stream's is None (the Python path decides), never a crash."""
    assert native.kube_runs(*args) is None


@pytest.mark.parametrize("native_on", [True, False])
def test_the_stream_gives_the_same_ruleset_either_way(native_on):
    """The live path's stream with the compiled steps on and off builds the same nat chains."""
    from svcinspect import perf
    text = (IPT / "iptables-save.txt").read_text().encode()
    got = []
    for on in (True, native_on):
        with perf.native_scanner(on):
            s = stream_mod.SaveStream("live:x", family=Family.V4, piece=512, observe=command._Tally())
            for i in range(0, len(text), 700):
                s.feed(text[i:i + 700])
            rs = s.finish()
            got.append((s.observe.count(), [(t.name, sorted((c.name, c.rules) for c in t.chains.values()))
                                             for t in rs.tables]))
    assert got[0] == got[1]
    assert got[0][0].rules > 10


# --- new_jump_targets -------------------------------------------------------------------

def _new_targets_ref(segs, start, end, chains):
    """The stream's Python: jump_targets of the blocks (its reference, completeness._JUMP),
    less the names that are chains."""
    from svcinspect.completeness import _JUMP
    blocks = [seg[0] for seg in segs[start:end]]
    if not all(b.isascii() for b in blocks):
        return None
    return {name for b in blocks for name in _JUMP.findall(b) if name not in chains}


@needs_native
@pytest.mark.parametrize("path", NAT_SAVES, ids=lambda p: str(p.relative_to(FIXTURES)))
def test_every_fixture_finds_the_same_new_jump_targets(path):
    segs, chains = _nat_runs(path.read_text(errors="replace"))
    rng = random.Random(str(path))
    some = dict(rng.sample(sorted(chains.items()), len(chains) // 2)) if chains else {}
    for known in ({}, some, chains):
        for start, end in [(0, len(segs))] + [tuple(sorted((rng.randrange(len(segs) + 1), rng.randrange(len(segs) + 1))))
                                              for _ in range(10)]:
            got = native.new_jump_targets(segs, start, end, known)
            assert got == _new_targets_ref(segs, start, end, known)
            assert got == (None if got is None else
                           {n for n in native.jump_targets([s[0] for s in segs[start:end]]) if n not in known})


@needs_native
def test_the_real_dump_has_new_jump_targets():
    """Not two empty sets: before the chains are known every target is new; after, none is."""
    segs, chains = _nat_runs((IPT / "iptables-save.txt").read_text())
    before = native.new_jump_targets(segs, 0, len(segs), {})
    assert len(before) > 10 and "KUBE-MARK-MASQ" in before
    assert native.new_jump_targets(segs, 0, len(segs), {n: None for n in before}) == set()


@needs_native
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.lists(st.sampled_from([" -j KUBE-", " -g KUBE-", "KUBE-", "SEP-A", "SVC-B", "MARK-MASQ", " ", "-j ",
                                          " -j", "K", "é", "_", ".", "\n", "X"]), max_size=10).map("".join), max_size=8),
       st.sets(st.sampled_from(["KUBE-SEP-A", "KUBE-SVC-B", "KUBE-MARK-MASQ", "KUBE-X", "KUBE-SEP-ASVC-B"])))
def test_made_up_blocks_find_the_same_new_jump_targets(blocks, known):
    segs = [(b, "KUBE-SEP-A", "", "") for b in blocks]
    chains = dict.fromkeys(known)
    assert native.new_jump_targets(segs, 0, len(segs), chains) == _new_targets_ref(segs, 0, len(segs), chains)
