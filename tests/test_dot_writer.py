"""The direct DOT writer (``render.dot.write_dot``) prints the bytes pydot prints
for every graph ``graph`` draws: the whole dump (collapsed and expanded), each
service port, each namespace, over every rules fixture, and for labels chosen to
hit every branch of pydot's quoting (keywords, digits, underscores, quotes,
backslashes, non-ASCII, control characters, empty texts)."""

from __future__ import annotations

import networkx as nx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import FIXTURES, RULE_FILES
from svcinspect.errors import SvcinspectError
from svcinspect.graph import build_graph
from svcinspect.dataplane import build_service_ports
from svcinspect.dataplane.iptables.parse import parse_iptables_save
from svcinspect.render import dot

RULES = RULE_FILES


def _graphs(path):
    try:
        rs = parse_iptables_save(path.read_text(errors="replace"), str(path))
    except SvcinspectError:
        return []
    out = [build_graph(rs), build_graph(rs, expand=True)]
    ports = [p for p in build_service_ports(rs) if p.name]
    for sp in ports[:6]:
        try:
            out.append(build_graph(rs, sp.name))
        except SvcinspectError:  # a name shared by several ports of an excerpt
            pass
    for ns in sorted({p.name.split("/")[0] for p in ports})[:3]:
        try:
            out.append(build_graph(rs, None, ns))
        except SvcinspectError:
            pass
    return out


def _same(g: nx.MultiDiGraph, title: str) -> None:
    slow = dot._render_dot_pydot(g, title)
    fast = dot.write_dot(g.graph.get("clusters", {}), g.nodes(data=True), g.edges(data=True), title)
    assert fast == slow


@pytest.mark.parametrize("path", RULES, ids=lambda p: str(p.relative_to(FIXTURES)))
def test_every_fixture_graph_is_written_as_pydot_writes_it(path):
    graphs = _graphs(path)
    for g, title in graphs:
        _same(g, title)


def test_the_fixtures_reach_clusters_and_every_node_kind():
    kinds, clustered = set(), 0
    for path in RULES:
        for g, _ in _graphs(path):
            clustered += bool(g.graph.get("clusters"))
            kinds |= {a.get("type") for _, a in g.nodes(data=True)}
    assert clustered >= 10
    assert {"chain", "endpoint", "entry", "service", "target"} <= kinds


TEXT = st.one_of(st.sampled_from(["", "node", "Graph", "10", "1.5", "a_b", "ab", "_x", "a b", '"q"', "x\\", "é",
                                  "…", "<b>", "a\nb", "\x1b[1m", "-1", "#fff", "a:b", '"', "\u2028"]),
                 st.text(max_size=12))


@settings(max_examples=300, deadline=None)
@given(title=TEXT, labels=st.lists(st.tuples(TEXT, st.sampled_from(["chain", "endpoint", "entry", "service",
                                                                   "target", "missing", None]),
                                             st.sampled_from(["svc", "sep", "ext", "builtin", "nodeports", ""]),
                                             TEXT), min_size=1, max_size=6),
       edge=st.tuples(TEXT, TEXT, TEXT, st.booleans(), st.sampled_from(["", "set", "10800"])),
       cluster_titles=st.lists(TEXT, max_size=3))
def test_hostile_texts_are_quoted_as_pydot_quotes_them(title, labels, edge, cluster_titles):
    clusters = {f"c{i}": t for i, t in enumerate(cluster_titles)}
    g = nx.MultiDiGraph(clusters=clusters)
    for i, (label, typ, kind, extra) in enumerate(labels):
        attrs = {"label": label, "kind": kind, "service": extra, "masquerade": extra, "endpoints": i,
                 "cluster": f"c{i % 4}"}
        if typ is not None:
            attrs["type"] = typ
        g.add_node(f"n{i}/{label}", **attrs)
    nodes = list(g.nodes)
    share, note, match, goto, aff = edge
    g.add_edge(nodes[0], nodes[-1], line=7, match=match, goto=goto, share=share, affinity=aff, masquerade=goto,
               note=note)
    g.add_edge(nodes[-1], nodes[0], line="", match="DNAT", goto=False, share="", affinity="", masquerade=False,
               note="")
    _same(g, title)


@settings(max_examples=500, deadline=None)
@given(value=st.one_of(TEXT, st.from_regex(r"[A-Za-z0-9_#]{0,8}", fullmatch=True)))
def test_one_value_is_quoted_as_pydot_quotes_it(value):
    import pydot

    expect = pydot.core.quote_attr_if_necessary(value if value != "" else '""')
    assert dot._attr(value) == expect
    assert dot._attr(value) == expect  # and again, from the cache


def test_the_whole_dump_dot_needs_neither_networkx_nor_pydot(tmp_path):
    # Each costs start-up time (networkx ~0.3 s) that a whole-dump DOT does not need.
    import subprocess
    import sys

    from conftest import IPT, ROOT

    code = ("import sys; from svcinspect.cli import cli; "
            "sys.argv = ['svcinspect', 'graph', '--rules', sys.argv[1], '--out', sys.argv[2]]\n"
            "try:\n    cli()\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in ('networkx', 'pydot') if m in sys.modules))")
    r = subprocess.run([sys.executable, "-c", code, str(IPT / "iptables-save.txt"), str(tmp_path / "g.dot")],
                       capture_output=True, text=True, cwd=ROOT, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert r.stdout.strip() == "[]", r.stderr
    assert (tmp_path / "g.dot").read_text().startswith("digraph svcinspect {")
