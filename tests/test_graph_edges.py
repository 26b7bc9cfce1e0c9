"""The chain-graph questions check asks (dangling jumps, unreferenced chains,
loops) give the same answers on graph's bulk edge pass as on the per-rule scan,
on every fixture and on dumps made to trip the bulk pass (a quote or a second
flag after the jump, tabs, long options, rules without a target, loops through
kube-proxy's layers and through other chains)."""

from __future__ import annotations

import pytest

from conftest import FIXTURES, IPT, RULE_FILES
from svcinspect import graph, perf
from svcinspect.errors import SvcinspectError
from svcinspect.dataplane.iptables.parse import parse_dumps
from svcinspect.sources.files import read_text

RULES = RULE_FILES

BASE = (IPT / "iptables-save.txt").read_text()


def _with_nat(extra_decls: list[str], extra_rules: list[str]) -> str:
    head, _, rest = BASE.partition("*nat\n")
    body, _, tail = rest.partition("COMMIT\n")
    return head + "*nat\n" + "".join(extra_decls) + body + "".join(extra_rules) + "COMMIT\n" + tail


TRICKY = {
    "quote-after-flag": _with_nat([":T1 - [0:0]\n"], ['-A T1 -j LOG --log-prefix "x -j KUBE-NOPE"\n']),
    "two-flags": _with_nat([":T2 - [0:0]\n"], ["-A T2 -m string --string -j -j KUBE-NOPE2\n"]),
    "tab": _with_nat([":T3 - [0:0]\n"], ["-A T3 -s 10.0.0.1/32\t-j KUBE-NOPE3\n"]),
    "long-option": _with_nat([":T4 - [0:0]\n"], ["-A T4 --jump KUBE-NOPE4\n"]),
    "no-target": _with_nat([":T5 - [0:0]\n"], ['-A T5 -m comment --comment "no target"\n', "-A T5 -s 10.0.0.2/32\n"]),
    "kube-loop": _with_nat([], ["-A KUBE-MARK-MASQ -j KUBE-SERVICES\n"]),
    "other-loop": _with_nat([":A1 - [0:0]\n", ":A2 - [0:0]\n"],
                            ["-A PREROUTING -j A1\n", "-A A1 -j A2\n", "-A A2 -g A1\n"]),
    "self-loop": _with_nat([":S1 - [0:0]\n"], ["-A S1 -j S1\n"]),
    "dangling": _with_nat([":D1 - [0:0]\n"], ["-A D1 -j KUBE-SVC-AAAAAAAAAAAAAAAA\n", "-A D1 -g NOWHERE\n"]),
}


def _answers(text: str, fast: bool):
    graph._CACHE.clear()
    graph._EDGE_CACHE.clear()
    with perf.all_fast_paths(fast):
        try:
            rs = parse_dumps([read_text_of(text)])
        except SvcinspectError as exc:  # not an iptables dump (nft, ipvsadm): refused alike
            return type(exc).__name__
        edges = {(int(t.family), t.name): graph._edges(t) for t in rs.tables}
        return (edges, graph.find_dangling_jumps(rs), graph.find_unreferenced_chains(rs), graph.find_cycles(rs))


def read_text_of(text: str):
    import tempfile
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        f.write(text)
    return read_text(f.name)


@pytest.mark.parametrize("path", RULES, ids=lambda p: str(p.relative_to(FIXTURES)))
def test_every_fixture_gives_the_same_graph_answers(path):
    text = path.read_text(errors="replace")
    assert _answers(text, True) == _answers(text, False)


@pytest.mark.parametrize("name", sorted(TRICKY))
def test_tricky_dumps_give_the_same_graph_answers(name):
    fast, slow = _answers(TRICKY[name], True), _answers(TRICKY[name], False)
    assert fast == slow
    _, dangling, _, cycles = fast
    if name.endswith("loop"):
        assert cycles, name  # the layer shortcut must not hide a loop
    if name == "dangling":
        assert {d.target for d in dangling} >= {"KUBE-SVC-AAAAAAAAAAAAAAAA", "NOWHERE"}
