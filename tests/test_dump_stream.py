"""`dump` written in pieces (``render.iptables.iter_dump``): chains are rendered
in groups so a 20k-service dump is never held whole; every grouping gives the
text and the diagnostics of the general renderer, for every rules fixture and
the hand-edited variants of test_perf_equivalence (odd rules among canonical
ones, a chain in two runs, duplicates, counters)."""

from __future__ import annotations

import pytest

from conftest import FIXTURES
from svcinspect.errors import SvcinspectError
from svcinspect.dataplane.iptables.parse import parse_iptables_save
from svcinspect.render import iptables as render_iptables
from svcinspect.render.iptables import iter_dump, render_ruleset
from test_perf_equivalence import RULES, _variants


def _every_diagnostic(rs):
    out = list(rs.diagnostics)
    for t in rs.tables:
        for ch in t.chains.values():
            for r in ch.rules:
                out.extend(r.diagnostics)
    return out


def _inputs(tmp_path):
    return list(RULES) + _variants(tmp_path)


@pytest.mark.parametrize("group_chars", [1, 200, 5000, 1 << 21])
@pytest.mark.parametrize("counters", [True, False])
def test_every_grouping_prints_what_the_general_renderer_prints(tmp_path, monkeypatch, group_chars, counters):
    monkeypatch.setattr(render_iptables, "_GROUP_CHARS", group_chars)
    monkeypatch.setattr(render_iptables, "_fast_dump", True)
    checked = 0
    for path in _inputs(tmp_path):
        try:
            fast = parse_iptables_save(path.read_text(errors="replace"), str(path))
        except SvcinspectError:
            continue
        pieces, diagnostics = iter_dump(fast, counters=counters)
        pieces = list(pieces)
        diags = diagnostics()
        slow = parse_iptables_save(path.read_text(errors="replace"), str(path))
        assert "".join(pieces) == (render_ruleset(slow, counters=counters) if slow.tables else "\n"), path
        if diags is not None:  # when it answers, it answers what decoding every rule says
            assert diags == _every_diagnostic(slow), path
        checked += 1
    assert checked >= 30


def test_a_big_table_comes_in_several_pieces(monkeypatch):
    monkeypatch.setattr(render_iptables, "_GROUP_CHARS", 1000)
    monkeypatch.setattr(render_iptables, "_fast_dump", True)
    rs = parse_iptables_save((FIXTURES / "kube-proxy-v1.36.2" / "iptables" / "iptables-save.txt").read_text())
    pieces, diagnostics = iter_dump(rs)
    pieces = list(pieces)
    assert len(pieces) > 10 and max(map(len, pieces)) < 20000
    assert diagnostics() == list(rs.diagnostics)  # a clean dump: no rule had to be decoded to say so
