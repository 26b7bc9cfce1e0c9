"""The whole-dump ``graph`` overview's region pass and DOT templates give the
general code's answers.

- ``graph._ENTRY_RULE``: for every line it reads as kube-proxy's entry-rule
  shape, the target is ``raw_target``'s (never a goto), the match summary is
  ``match_summary``'s and the service port name is ``parse_comment``'s; every
  other line comes back whole. Checked on every line of every fixture, on
  hand-written lines at the edge of the shape (quotes, backslashes, ``<>&``,
  Unicode blanks, ``--jump`` inside a comment, other protocols, goto, counters,
  very long names) and on hypothesis-made lines.
- ``graph.overview_parts`` (the region pass, the in-service jumps of collapsed
  chains, node_for) against the reference builder ``_build_overview_graph``:
  the same nodes, attributes and edges in the same order, on every fixture and
  on the real dump edited to leave each fast path, with the compiled scanner and
  with the pure-Python one.
- ``render.dot.write_dot``'s templates for service nodes and plain edges against
  pydot's writer, on those graphs and on hand-made graphs with hostile labels.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import FIXTURES, IPT, RULE_FILES
from svcinspect import graph, perf
from svcinspect.dataplane.iptables.kubeproxy import normalize_spn, parse_comment
from svcinspect.dataplane.iptables.parse import parse_iptables_save, raw_comment, raw_target
from svcinspect.errors import SvcinspectError
from svcinspect.render import dot

RULES = RULE_FILES
REAL = (IPT / "iptables-save.txt").read_text()
SCANNERS = [pytest.param(True, id="native-scanner"), pytest.param(False, id="python-scanner")]

SVC = "-A KUBE-SERVICES -d 10.96.0.1/32 -p tcp -m comment --comment \"{c}\" -m tcp --dport 80 -j KUBE-SVC-ABCDEFGHIJKLMNOP"
# Lines at the edge of _ENTRY_RULE (hand-written).
EDGES = [
    SVC.format(c="ns/svc:http cluster IP"), SVC.format(c="ns/svc cluster IP"), SVC.format(c="ns/svc:"),
    SVC.format(c="ns/svc: cluster IP"), SVC.format(c="ns/svc:a:b:c external IP"),
    SVC.format(c="ns/svc:http loadbalancer IP"), SVC.format(c="ns/svc:http"), SVC.format(c="a/b"),
    SVC.format(c="ns/svc:http cluster IP extra"), SVC.format(c="ns/svc:http  cluster IP"),
    SVC.format(c="ns/svc:http has no endpoints"), SVC.format(c="Ns/svc:http"), SVC.format(c="ns-/svc:http"),
    SVC.format(c="-ns/svc"), SVC.format(c="ns/:http"), SVC.format(c="ns/svc/x:http"), SVC.format(c="n.s/svc"),
    SVC.format(c='ns/s\\"vc:http cluster IP'), SVC.format(c="ns/s\\\\vc:http"), SVC.format(c="ns/svc:ht\\tp"),
    SVC.format(c="ns/<b>&amp;:p cluster IP"), SVC.format(c="ns/svc\u00e9:http"), SVC.format(c="ns/svc\x1c:http"),
    SVC.format(c="ns/svc\u2028:http"), SVC.format(c="ns/svc\x85x"), SVC.format(c="ns/svc\x0bx"),
    SVC.format(c="ns/--jump:x"), SVC.format(c="ns/x--goto"), SVC.format(c="ns/a -j b"), SVC.format(c="ns/a -g B"),
    SVC.format(c="kubernetes/x"), SVC.format(c=""), SVC.format(c=" "), SVC.format(c="ns/" + "x" * 5000),
    SVC.format(c="n" * 3000 + "/svc:http cluster IP"),
    "-A KUBE-SERVICES -p tcp -m comment --comment \"ns/svc:http\" -m tcp --dport 30000 -j KUBE-EXT-ABCDEFGHIJKLMNOP",
    "-A KUBE-SERVICES -d 10.96.0.1/32 -p udp -m comment --comment \"ns/svc:dns cluster IP\" -m udp --dport 53 -j KUBE-SVC-X",
    "-A KUBE-SERVICES -d 10.96.0.1/32 -p sctp -m comment --comment \"ns/svc cluster IP\" -m sctp --dport 9 -j KUBE-SVC-X",
    "-A KUBE-SERVICES -d 10.96.0.1/32 -p tcp -m comment --comment \"ns/svc cluster IP\" -m udp --dport 53 -j KUBE-SVC-X",
    "-A KUBE-SERVICES -d 10.96.0.1/32 -p TCP -m comment --comment \"ns/svc cluster IP\" -m TCP --dport 53 -j KUBE-SVC-X",
    "-A KUBE-SERVICES -d fd00::1/128 -p tcp -m comment --comment \"ns/svc cluster IP\" -m tcp --dport 1 -j KUBE-SVC-X",
    "-A KUBE-SERVICES ! -d 10.96.0.1/32 -p tcp -m comment --comment \"ns/svc cluster IP\" -m tcp --dport 80 -j KUBE-SVC-X",
    "-A KUBE-SERVICES -s 10.96.0.1/32 -p tcp -m comment --comment \"ns/svc cluster IP\" -m tcp --dport 80 -j KUBE-SVC-X",
    "-A KUBE-SERVICES -d 10.96.0.1/32 -p tcp -m comment --comment \"ns/svc cluster IP\" -m tcp --dport 80 -g KUBE-SVC-X",
    "-A KUBE-SERVICES -d 10.96.0.1/32 -p tcp -m comment --comment \"ns/svc cluster IP\" -m tcp --dport 80 -j kube-svc-x",
    "-A KUBE-SERVICES -d 10.96.0.1/32 -p tcp -m comment --comment \"ns/svc cluster IP\" -m tcp --dport 80 -j KUBE-SVC-X ",
    "-A KUBE-SERVICES -d 10.96.0.1/32 -p tcp -m comment --comment \"ns/svc cluster IP\" -m tcp --dport 80 -j KUBE-\"X\"",
    "-A KUBE-SERVICES -d 10.96.0.1/32 -p tcp -m comment --comment \"ns/svc cluster IP\" -m tcp --dport 80 -j REJECT "
    "--reject-with icmp-port-unreachable",
    "-A KUBE-SERVICES -d 10.96.0.1/32 -p tcp -m comment --comment \"ns/svc cluster IP\" -m tcp --dport 80:90 -j KUBE-SVC-X",
    "-A KUBE-SERVICES -d 10.96.0.1/32 -p tcp -m comment --comment \"ns/svc cluster IP\" -m tcp --dport 80 -m nfacct "
    "--nfacct-name  x -j KUBE-EXT-X",
    "-A KUBE-SERVICES -d 10.96.0.1/32 -p tcp -m comment --comment ns/svc -m tcp --dport 80 -j KUBE-SVC-X",
    "-A KUBE-SERVICES  -d 10.96.0.1/32 -p tcp -m comment --comment \"ns/svc cluster IP\" -m tcp --dport 80 -j KUBE-SVC-X",
    "[0:0] -A KUBE-SERVICES -d 10.96.0.1/32 -p tcp -m comment --comment \"ns/svc cluster IP\" -m tcp --dport 80 -j KUBE-SVC-X",
    "-A KUBE-SERVICES -d 10.96.0.1/32\t-p tcp -m comment --comment \"ns/svc cluster IP\" -m tcp --dport 80 -j KUBE-SVC-X",
    "-A KUBE-SERVICES -m comment --comment \"kubernetes service nodeports; NOTE: this must be the last rule in this chain\" "
    "-m addrtype --dst-type LOCAL -j KUBE-NODEPORTS",
    "-A KUBE-SERVICES -j KUBE-SVC-X", "-A KUBE-SERVICES", "-A X -p tcp -j Y", "",
]


def _fixture_lines() -> list[str]:
    lines = []
    for path in RULES:
        lines.extend(ln for ln in path.read_text(errors="replace").split("\n") if ln.startswith(("-A ", "[")))
    return lines


def _check_line(line: str) -> bool:
    """Whether _ENTRY_RULE read ``line`` as the entry shape (asserting its answers).
    A chain whose block holds "--jump" or "--goto" is not given to it at all
    (_entry_rules; test_the_edits_leave_the_fast_paths)."""
    if "--jump" in line or "--goto" in line:
        return False
    found = graph._ENTRY_RULE.findall(line + "\n")
    assert len(found) == 1, line
    dport, proto, spn, port, target, text = found[0]
    if not target:
        assert text == line and not (dport or proto or spn or port)
        return False
    assert text == ""
    assert raw_target(line) == (target, False), line
    assert graph._entry_match(dport, proto, port) == graph.match_summary(line), line
    info = parse_comment(raw_comment(line))
    assert info is not None and info.spn == normalize_spn(spn), line
    return True


def test_the_entry_shape_is_read_as_the_general_functions_read_it():
    fast = [ln for ln in EDGES if _check_line(ln)]
    # (the shape is taken where it should be: not a test that only ever declines)
    assert SVC.format(c="ns/svc:http cluster IP") in fast and SVC.format(c="ns/<b>&amp;:p cluster IP") in fast
    assert SVC.format(c='ns/s\\"vc:http cluster IP') not in fast and SVC.format(c="ns/svc\u2028:http") not in fast


def test_every_fixture_line_is_read_as_the_general_functions_read_it():
    lines = _fixture_lines()
    assert sum(map(_check_line, lines)) > 20  # the fixtures' KUBE-SERVICES and KUBE-NODEPORTS jumps


def test_several_lines_come_back_in_order_one_tuple_each():
    block = "".join(ln + "\n" for ln in EDGES if "\n" not in ln)
    found = graph._ENTRY_RULE.findall(block)
    assert len(found) == block.count("\n")
    for line, (_, _, _, _, target, text) in zip(block.split("\n"), found):
        assert (text == line) is (not target)


_piece = st.sampled_from([
    "-A KUBE-SERVICES ", "-d 10.96.0.1/32 ", "! ", "-p tcp ", "-p udp ", "-m comment --comment ", '"', "ns/svc",
    ":http", " cluster IP", " external IP", "\\", "\\\"", " -m tcp ", "-m udp ", "--dport 80 ", "--dport 8", " -j ",
    "-g ", "KUBE-SVC-ABCDEFGHIJKLMNOP", "KUBE-EXT-X", "--jump ", "\t", " ", "\u2028", "\x85", "\xe9", "<&>", "--goto"])


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_piece, max_size=24), st.sampled_from(EDGES[:12] + _fixture_lines()[:40]), st.integers(0, 300))
def test_cut_and_spliced_lines_are_read_as_the_general_functions_read_them(pieces, base, at):
    at = min(at, len(base))
    line = (base[:at] + "".join(pieces) + base[at:]).replace("\n", " ")
    _check_line(line)


# --- the whole overview against the reference builder ----------------------------------------

def _first_hash(text: str, prefix: str) -> str:
    return re.search(rf"^:{prefix}-([A-Z2-7]{{16}}) ", text, re.M).group(1)


def _insert_after(text: str, prefix: str, line: str) -> str:
    """``line`` inserted after the nat table's first line starting with ``prefix``."""
    at = text.index("\n", text.index("\n" + prefix, text.index("*nat\n")) + 1) + 1
    return text[:at] + line + "\n" + text[at:]


def _insert_before(text: str, prefix: str, line: str) -> str:
    """``line`` inserted before the nat table's first line starting with ``prefix``."""
    at = text.index("\n" + prefix, text.index("*nat\n")) + 1
    return text[:at] + line + "\n" + text[at:]


def _variants() -> dict[str, str]:
    ext = _first_hash(REAL, "KUBE-EXT")
    other = [h for h in re.findall(r"^:KUBE-SVC-([A-Z2-7]{16}) ", REAL, re.M) if h != ext][0]
    svc_line = next(ln for ln in REAL[REAL.index("*nat\n"):].split("\n")
                    if ln.startswith("-A KUBE-SERVICES -d ") and "KUBE-SVC-" in ln)
    target = svc_line.rsplit(" ", 1)[1]
    hostile = {
        "quote": 'ns/a\\"b:p cluster IP', "backslash": "ns/a\\\\b:p cluster IP", "html": "ns/<b>&amp;:p cluster IP",
        "unicode-blank": "ns/a\u2028b:p", "control": "ns/a\x1bb:p", "jump-word": "ns/--jump:p cluster IP",
        "long": "n" * 2000 + "/" + "s" * 3000 + ":p cluster IP", "unnamed-port": "ns/svc:", "bidi": "ns/a\u202eb:p",
        "dot-keyword": "graph", "digits": "12", "spaces": "ns/a b c", "escapes": "ns/a\\nb\\tc:p",
    }
    out = {}
    for name, comment in hostile.items():
        # The entry rule first in KUBE-SERVICES, so its comment names the service node.
        out[f"comment-{name}"] = _insert_before(
            REAL, "-A KUBE-SERVICES ", f'-A KUBE-SERVICES -d 10.96.9.9/32 -p tcp -m comment --comment "{comment}" '
                                    f"-m tcp --dport 81 -j {target}")
    out["entry-goto"] = REAL.replace(svc_line, svc_line.replace(" -j ", " -g "))
    out["entry-to-missing-chain"] = REAL.replace(svc_line, svc_line.rsplit(" ", 1)[0] + " -j KUBE-SVC-MISSINGMISSINGMI")
    out["entry-to-itself"] = REAL.replace(svc_line, svc_line.rsplit(" ", 1)[0] + " -j KUBE-SERVICES")
    out["entry-twice"] = REAL.replace(svc_line, svc_line + "\n" + svc_line.replace("--dport", "--dport 1"))
    out["entry-counters"] = REAL.replace(svc_line, "[3:4] " + svc_line)
    out["ext-to-another-service"] = _insert_after(REAL, f"-A KUBE-EXT-{ext} ", f"-A KUBE-EXT-{ext} -j KUBE-SVC-{other}")
    out["ext-to-missing-svl"] = _insert_after(REAL, f"-A KUBE-EXT-{ext} ", f"-A KUBE-EXT-{ext} -j KUBE-SVL-{ext}")
    out["ext-jump-twice"] = _insert_after(REAL, f"-A KUBE-EXT-{ext} ", f"-A KUBE-EXT-{ext} -j KUBE-SVC-{ext}")
    out["ext-jump-with-match"] = _insert_after(REAL, f"-A KUBE-EXT-{ext} ",
                                               f"-A KUBE-EXT-{ext} -s 10.0.0.0/8 -j KUBE-SVC-{ext}")
    out["ext-jump-to-sep"] = _insert_after(REAL, f"-A KUBE-EXT-{ext} ", f"-A KUBE-EXT-{ext} -j KUBE-SEP-{ext}")
    out["ext-goto"] = _insert_after(REAL, f"-A KUBE-EXT-{ext} ", f"-A KUBE-EXT-{ext} -g KUBE-SVC-{ext}")
    out["ext-trailing-blank"] = _insert_after(REAL, f"-A KUBE-EXT-{ext} ", f"-A KUBE-EXT-{ext} -j KUBE-SVC-{ext} ")
    # The service chain split in two runs (not one block: the per-rule code reads it).
    nat = REAL.index("*nat\n")
    out["ext-split"] = REAL[:nat] + REAL[nat:].replace("COMMIT", f"-A KUBE-EXT-{ext} -j KUBE-SVC-{ext}\nCOMMIT", 1)
    return out


VARIANTS = _variants()


def _same_overview(rs) -> None:
    want = graph._build_overview_graph(rs, False)
    got = graph.overview_parts(rs)
    assert list(got.nodes(data=True)) == list(want.nodes(data=True))
    assert list(got.edges(data=True)) == [(u, v, a) for u, v, a in want.edges(data=True)]
    assert got.graph == want.graph
    n = sum(1 for _, a in got.nodes(data=True) if a.get("type") == "service")
    title = f"{n} service ports (one node each; --expand shows chains)"
    assert dot.write_dot(got.graph.get("clusters", {}), got.nodes(), got.edges(), title) == \
        dot._render_dot_pydot(want, title)


def _parse(text: str, source: str):
    try:
        return parse_iptables_save(text, source)
    except SvcinspectError:
        return None


# (the nft listings, conntrack and ipvsadm texts among the fixtures are not iptables-save dumps)
DUMPS = [p for p in RULES if _parse(p.read_text(errors="replace"), str(p)) is not None]


def test_the_fixtures_hold_dumps():
    assert len(DUMPS) > 20


@pytest.mark.parametrize("native", SCANNERS)
@pytest.mark.parametrize("path", DUMPS, ids=lambda p: str(p.relative_to(FIXTURES)))
def test_every_fixture_overview_is_the_reference_builders(path, native):
    if native and not perf.native_built():
        pytest.skip("the compiled scanner svcinspect.dataplane.iptables._scan is not built: nothing to compare")
    rs = _parse(path.read_text(errors="replace"), str(path))
    with perf.native_scanner(native):
        _same_overview(rs)


@pytest.mark.parametrize("native", SCANNERS)
@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_edited_dumps_overview_is_the_reference_builders(name, native):
    if native and not perf.native_built():
        pytest.skip("the compiled scanner svcinspect.dataplane.iptables._scan is not built: nothing to compare")
    rs = parse_iptables_save(VARIANTS[name], name)
    with perf.native_scanner(native):
        _same_overview(rs)


def test_the_edits_leave_the_fast_paths():
    """The variants do reach the per-rule code (else they would prove nothing)."""
    text = VARIANTS["comment-quote"]
    rs = parse_iptables_save(text, "x")
    first, items = graph._entry_rules(rs.table("nat"), "KUBE-SERVICES")
    assert items[0][4] == "" and 'a\\"b' in items[0][5] and any(t for _, _, _, _, t, _ in items)
    assert graph._entry_rules(parse_iptables_save(VARIANTS["comment-jump-word"], "x").table("nat"),
                              "KUBE-SERVICES") is None
    g = graph.overview_parts(parse_iptables_save(VARIANTS["ext-to-another-service"], "x"))
    ext = _first_hash(REAL, "KUBE-EXT")
    assert any(u == f"v4/service/{ext}" and v != u for u, v, _ in g.edges())
    labels = {a["label"] for _, a in graph.overview_parts(rs).nodes()}
    assert 'ns/a"b:p' in labels  # the unescaped comment names the service


def test_the_real_dump_takes_the_region_pass():
    rs = parse_iptables_save(REAL, "x")
    first, items = graph._entry_rules(rs.table("nat"), "KUBE-SERVICES")
    assert sum(1 for it in items if it[4]) >= 10


# --- the DOT templates against pydot ----------------------------------------------------------

HOSTILE = ["plain", 'a"b', "a\\b", "ends\\", "<b>&amp;</b>", "line\nbreak", "tab\there", "\x00\x1b[31m", "\u2028\u202e",
           "é", "graph", "node", "_id", "12", "", " ", '"quoted"', "x" * 5000, "a\\nb", "}; x [URL=\"j\"]; {"]


def _hand_graph(labels, matches) -> graph.OverviewParts:
    g = graph.OverviewParts(clusters={}, view="collapsed")
    g.add_node("v4/nat/KUBE-SERVICES", cluster="", type="chain", label="KUBE-SERVICES", table="nat", family="v4",
               chain="KUBE-SERVICES", kind="services", service="", rules=1)
    for i, label in enumerate(labels):
        node = f"v4/service/{label}{i}"
        g.add_node(node, type="service", label=label, key=label, family="v4", table="nat", service=label,
                   kind="service", chains=[], endpoints=i % 3, masquerade=bool(i % 2), cluster="")
        for j, match in enumerate(matches):
            g.add_edge("v4/nat/KUBE-SERVICES", node, line=i * 100 + j, match=match, goto=j % 5 == 4, share="",
                       affinity="", masquerade=False, note="")
    # labels and lines that are not text, and the attributes the templates leave to _edge_line
    g.add_node("v4/service/n", type="service", label=7, endpoints=1.0, cluster="")
    g.add_node("v4/service/m", type="service", label="m", endpoints=True, cluster="")
    g.add_node("v4/service/k", type="service", cluster="")
    g.add_edge("v4/service/n", "v4/service/m", line="x\"y", match="DNAT", goto=False, share="", affinity="", note="")
    g.add_edge("v4/service/n", "v4/service/k", match="", share="1/3", affinity="10800")
    g.add_edge("v4/service/m", "v4/service/k", line=None, match=None, note="n\"o")
    g.add_edge("v4/service/k", "v4/service/n", line=3, match="DNAT", affinity="set", masquerade=True)
    g.add_edge("v4/service/k", "v4/service/m")
    return g


def _same_dot(g: graph.OverviewParts, title: str = "t") -> None:
    assert dot.write_dot(g.graph.get("clusters", {}), g.nodes(), g.edges(), title) == \
        dot._render_dot_pydot(g.to_networkx(), title)


def test_hostile_labels_and_matches_are_written_as_pydot_writes_them():
    _same_dot(_hand_graph(HOSTILE, HOSTILE + ["DNAT", "-d 10.0.0.1/32 -p tcp --dport 80"]))


@settings(max_examples=150, deadline=None)
@given(st.lists(st.text(max_size=30), min_size=1, max_size=5), st.lists(st.text(max_size=30), max_size=4))
def test_any_label_and_match_text_is_written_as_pydot_writes_it(labels, matches):
    _same_dot(_hand_graph(labels, matches))


# --- the compiled overview loops against their references -------------------------------------

run_native = getattr(graph.native_edges, "overview_run", None)
entry_native = getattr(graph.native_edges, "entry_run", None)
needs_runs = pytest.mark.skipif(run_native is None or entry_native is None or not perf.native_built(),
                                reason="the compiled extensions svcinspect.dataplane.iptables._edges and _scan are "
                                       "not built (no C compiler at install time?): nothing to compare")
tally_native = getattr(perf, "native", lambda name: None)("overview_tally")


def _node_maker(prefix, family, tname, nodes, succ, node_of):
    """node_for as overview_parts makes it (chain nodes simplified: the loops only pass them on)."""
    def node_for(cname):
        node = node_of.get(cname)
        if node is not None:
            return node
        m = graph._HASHED.match(cname)
        if m is None:
            node = f"{family}/{tname}/{cname}"
            nodes.setdefault(node, {"type": "chain", "label": cname, "cluster": ""})
            succ.setdefault(node, {})
        else:
            key = m.group(2)
            node = prefix + key
            attrs = nodes.get(node)
            if attrs is None:
                attrs = nodes[node] = {"type": "service", "label": key, "key": key, "family": family, "table": tname,
                                       "service": "", "kind": "service", "chains": [], "endpoints": 0,
                                       "masquerade": False, "cluster": ""}
                succ[node] = {}
            if m.group(1) != "SEP" and cname not in attrs["chains"]:
                attrs["chains"].append(cname)
        node_of[cname] = node
        return node
    return node_for


def _state(seed=None):
    nodes, succ, node_of = {}, {}, {}
    for cname in seed or ():
        _node_maker("v4/service/", "v4", "nat", nodes, succ, node_of)(cname)
    return nodes, succ, node_of


def _copy(state):
    import copy
    return copy.deepcopy(state)


def _both_runs(names, blocks, tally, seed=None, known=None):
    """Drive both loops over ``names`` the way overview_parts does (the chain each
    leaves is skipped here) and compare every answer and the graphs they build."""
    a, b = _state(seed), _state(seed)
    known = set(names) if known is None else known
    i = j = 0
    steps = 0
    while True:
        i = run_native(names, i, blocks, tally, "v4/service/", "v4", "nat", *a, known)
        j = graph._overview_run(names, j, blocks, tally, "v4/service/", "v4", "nat", *b, known)
        assert i == j
        assert [(k, list(v.items())) for k, v in a[0].items()] == [(k, list(v.items())) for k, v in b[0].items()]
        assert a[1] == b[1] and list(a[2].items()) == list(b[2].items())
        if i >= len(names):
            return steps
        i = j = i + 1
        steps += 1


@needs_runs
@pytest.mark.parametrize("path", DUMPS, ids=lambda p: str(p.relative_to(FIXTURES)))
def test_the_compiled_run_is_its_reference_on_every_fixture(path):
    rs = _parse(path.read_text(errors="replace"), str(path))
    for table in rs.tables:
        blocks = getattr(table.chains, "blocks", None)
        names = list(table.chains)
        _both_runs(names, blocks, tally_native)
        _both_runs(names, blocks, graph._tally)
        _both_runs(names[::-1], blocks, tally_native, seed=[n for n in names if graph._HASHED.match(n)][:3])


@needs_runs
def test_the_compiled_run_is_its_reference_on_the_real_dump_and_its_edits():
    for name in ("ext-split", "ext-jump-twice", "entry-counters"):
        rs = parse_iptables_save(VARIANTS[name], name)
        nat = rs.table("nat")
        assert _both_runs(list(nat.chains), nat.chains.blocks, tally_native) > 5


H = "ABCDEFGHIJKLMNOP"
SEP_BLOCK = [(3, f"-A KUBE-SVC-{H} -m statistic --mode random --probability 0.5 -j KUBE-SEP-{H}\n"
                 f"-A KUBE-SVC-{H} -m recent --rcheck --seconds 10 --name x -j KUBE-SEP-{H}\n"
                 f"-A KUBE-SVC-{H} -j KUBE-SEP-{H}\n-A KUBE-SVC-{H} -j KUBE-MARK-MASQ\n")]
HAND_NAMES = [f"KUBE-SVC-{H}", f"KUBE-SVL-{H}", f"KUBE-XLB-{H}", f"KUBE-EXT-{H}", f"KUBE-FW-{H}", f"KUBE-SEP-{H}",
              "KUBE-SEP-é", "KUBE-SEPX", f"KUBE-SVC-{H}\n", f"KUBE-SVC-{H.lower()}", f"KUBE-SVC-{H[:-1]}",
              f"KUBE-SVC-{H}Q", f"KUBE-SVC-{H[:-1]}1", f"KUBE-SVC-{H[:-1]}8", f"KUBE-FOO-{H}", "é", "", "KUBE-SVC-",
              f"KUBE-SVC-{H[:8]}22334455", f"KUBE-SVC-{H[:8]}66778899", f"KUBE-FW-{H}X", f"KUBE-SVC-{H}"]


@needs_runs
@pytest.mark.parametrize("shape", ["one", "none", "two", "not-clean", "not-ascii", "empty", "in-service",
                                   "in-service-twice", "in-service-sep", "another-service", "in-service-match",
                                   "in-service-lower", "in-service-blank", "in-service-sep-target",
                                   "in-service-not-ascii"])
def test_the_compiled_run_is_its_reference_on_hand_made_chains(shape):
    ext = f"-A KUBE-EXT-{H} -m comment --comment \"masquerade traffic\" -j KUBE-MARK-MASQ\n"
    segs = {"one": SEP_BLOCK, "none": None, "two": SEP_BLOCK * 2, "not-clean": [(3, " -A X -j KUBE-SEP-X\n")],
            "not-ascii": [(3, f"-A KUBE-SVC-{H} -m comment --comment é -j KUBE-SEP-{H}\n")], "empty": [],
            "in-service": [(3, ext + f"-A KUBE-EXT-{H} -j KUBE-SVC-{H}\n")],
            "in-service-twice": [(3, f"-A KUBE-EXT-{H} -j KUBE-SVL-{H}\n" + ext + f"-A KUBE-EXT-{H} -j KUBE-FW-{H}\n"
                                     f"-A KUBE-EXT-{H} -j KUBE-SVL-{H}\n")],
            "in-service-sep": [(3, SEP_BLOCK[0][1] + f"-A X -j KUBE-XLB-{H}\n")],
            "another-service": [(3, ext + f"-A KUBE-EXT-{H} -j KUBE-SVC-{H[:-1]}A\n")],
            "in-service-match": [(3, ext + f"-A KUBE-EXT-{H} -s 1.2.3.4 -j KUBE-SVC-{H}\n")],
            "in-service-lower": [(3, ext + f"-A kube-ext -j KUBE-SVC-{H}\n")],
            "in-service-blank": [(3, ext + f"-A KUBE-EXT-{H} -j KUBE-SVC-{H} \n")],
            "in-service-sep-target": [(3, ext + f"-A KUBE-EXT-{H} -j KUBE-SEP-{H}X\n")],
            "in-service-not-ascii": [(3, ext + f"-A KUBE-EXT-{H} -j KUBE-SVC-{H}\n-A é -j KUBE-MARK-MASQ\n")],
            }[shape]
    for seed in (None, [f"KUBE-EXT-{H}"], [f"KUBE-SVL-{H}", f"KUBE-SVC-{H}"]):
        for tally in (tally_native, graph._tally):
            for known in (None, set(), {f"KUBE-SVL-{H}"}):
                _both_runs(HAND_NAMES, lambda name: segs, tally, seed, known)
                _both_runs(HAND_NAMES[::-1], lambda name: segs, tally, seed, known)
                _both_runs(HAND_NAMES[3:], lambda name: segs, tally, seed, known)


@needs_runs
def test_the_compiled_run_raises_typeerror_for_other_shapes():
    nodes, succ, node_of = _state()
    good = (list(HAND_NAMES), 0, lambda n: SEP_BLOCK, tally_native, "v4/service/", "v4", "nat", nodes, succ, node_of,
            set(HAND_NAMES))
    for at, bad in [(0, tuple(HAND_NAMES)), (2, lambda n: "segs"), (2, lambda n: [(1, b"x")]), (2, lambda n: [3]),
                    (3, lambda block: (1, 2, 3)), (3, lambda block: ("1", 0, 1, 0)), (3, lambda block: True),
                    (7, []), (9, None), (0, [1, 2])]:
        args = list(good)
        args[at] = bad
        with pytest.raises(TypeError):
            run_native(*args)
    nodes["v4/service/" + H] = "not a dict"
    with pytest.raises(TypeError):
        run_native(*good)
    nodes["v4/service/" + H] = {"chains": ()}
    with pytest.raises(TypeError):
        run_native(*good)
    assert run_native(list(HAND_NAMES), 10 ** 6, *good[2:]) == len(HAND_NAMES)
    assert run_native([], -5, *good[2:]) == graph._overview_run([], -5, *good[2:]) == 0


def _both_entries(items, names, seed=None, src="v4/nat/KUBE-SERVICES", naming=True):
    a, b = _state(seed), _state(seed)
    for st_ in (a, b):
        st_[0].setdefault(src, {"type": "chain", "label": "KUBE-SERVICES", "cluster": ""})
        st_[1].setdefault(src, {})
    i = j = 0
    steps = 0
    while True:
        i = entry_native(items, i, 40, src, names, _node_maker("v4/service/", "v4", "nat", *a), "v4/service/", "v4",
                         "nat", naming, *a)
        j = graph._entry_run(items, j, 40, src, names, _node_maker("v4/service/", "v4", "nat", *b), "v4/service/",
                             "v4", "nat", naming, *b)
        assert i == j
        assert [(k, list(v.items())) for k, v in a[0].items()] == [(k, list(v.items())) for k, v in b[0].items()]
        assert [(k, [(d, e) for d, e in v.items()]) for k, v in a[1].items()] == \
            [(k, [(d, e) for d, e in v.items()]) for k, v in b[1].items()]
        assert list(a[2].items()) == list(b[2].items())
        if i >= len(items):
            return steps
        i = j = i + 1
        steps += 1


@needs_runs
@pytest.mark.parametrize("path", DUMPS, ids=lambda p: str(p.relative_to(FIXTURES)))
def test_the_compiled_entry_run_is_its_reference_on_every_fixture(path):
    rs = _parse(path.read_text(errors="replace"), str(path))
    for table in rs.tables:
        for cname in table.chains:
            found = graph._entry_rules(table, cname)
            if found is not None:
                for naming in (True, False):
                    _both_entries(found[1], table.chains.names(), naming=naming)
                    _both_entries(found[1][::-1], set(list(table.chains)[::2]), naming=naming)


@needs_runs
def test_the_compiled_entry_run_is_its_reference_on_hand_made_rules():
    lines = [ln for ln in EDGES if "\n" not in ln] + [
        SVC.format(c="ns/a:") .replace("KUBE-SVC-ABCDEFGHIJKLMNOP", f"KUBE-SVC-{H}"),
        SVC.format(c="ns/b:p").replace("KUBE-SVC-ABCDEFGHIJKLMNOP", f"KUBE-SVC-{H}"),
        SVC.format(c="ns/c:p").replace("KUBE-SVC-ABCDEFGHIJKLMNOP", f"KUBE-SEP-{H}"),
        SVC.format(c="ns/d:p").replace("KUBE-SVC-ABCDEFGHIJKLMNOP", "KUBE-SERVICES"),
        SVC.format(c="ns/e:p").replace("KUBE-SVC-ABCDEFGHIJKLMNOP", f"KUBE-FW-{H}"),
        SVC.format(c="ns/f:p").replace("KUBE-SVC-ABCDEFGHIJKLMNOP", "KUBE-MARK-MASQ"),
        SVC.format(c="ns/g:p").replace("KUBE-SVC-ABCDEFGHIJKLMNOP", f"KUBE-SVC-{H}A"),
        SVC.format(c="ns/h:p").replace("KUBE-SVC-ABCDEFGHIJKLMNOP", f"KUBE-EXT-{H[:-1]}2")]
    items = graph._ENTRY_RULE.findall("".join(ln + "\n" for ln in lines))
    targets = {it[4] for it in items if it[4]}
    assert sum(1 for it in items if it[4]) > 10
    for names in (targets, set(), {t for t in targets if "SVC" in t}):
        for seed in (None, [f"KUBE-SVC-{H}"], [f"KUBE-EXT-{H[:-1]}2"]):
            for naming in (True, False):
                _both_entries(items, names, seed, naming=naming)
                _both_entries(items, names, (seed or []) + [f"KUBE-EXT-{H}"], src="v4/service/" + H, naming=naming)
    nodes, succ, node_of = _state([f"KUBE-SVC-{H}"])
    nodes["v4/service/" + H]["service"] = "taken"
    succ["v4/nat/KUBE-SERVICES"] = {}
    entry_native(items, 0, 1, "v4/nat/KUBE-SERVICES", targets, None, "v4/service/", "v4", "nat", True, nodes, succ,
                 node_of)
    assert nodes["v4/service/" + H]["label"] == H  # a named node keeps its name


@needs_runs
def test_the_compiled_entry_run_raises_typeerror_for_other_shapes():
    nodes, succ, node_of = _state()
    succ["s"] = {}
    item = ("", "tcp", "ns/a", "80", f"KUBE-SVC-{H}", "")
    for items in ([item[:5]], [list(item)], [item[:4] + (None, "")], (item,)):
        with pytest.raises(TypeError):
            entry_native(items, 0, 1, "s", {item[4]}, None, "v4/service/", "v4", "nat", True, nodes, succ, node_of)
    with pytest.raises(KeyError):
        entry_native([item], 0, 1, "missing", {item[4]}, None, "v4/service/", "v4", "nat", True, nodes, succ, node_of)
    succ["s"] = []
    with pytest.raises(TypeError):
        entry_native([item], 0, 1, "s", {item[4]}, None, "v4/service/", "v4", "nat", True, nodes, succ, node_of)


@needs_runs
@pytest.mark.parametrize("name", ["comment-quote", "entry-twice", "ext-to-another-service", "comment-unnamed-port"])
def test_the_overview_with_the_reference_loops_and_the_compiled_tally(name, monkeypatch):
    rs = parse_iptables_save(VARIANTS[name], name)
    compiled = graph.overview_parts(rs)

    class Without:  # the edge extension without the two loops: overview_parts uses the references
        summary = graph.native_edges.summary
        edges = graph.native_edges.edges
    monkeypatch.setattr(graph, "_native", Without)
    reference = graph.overview_parts(rs)
    assert list(compiled.nodes()) == list(reference.nodes()) and compiled.edges() == reference.edges()


# --- the compiled DOT templates against their references ---------------------------------------

service_native = getattr(graph.native_edges, "service_lines", None)
edge_lines_native = getattr(graph.native_edges, "plain_edge_lines", None)
needs_dot = pytest.mark.skipif(service_native is None or edge_lines_native is None,
                               reason="the compiled extension svcinspect.dataplane.iptables._edges is not built "
                                      "(no C compiler at install time?): nothing to compare")


def _same_lines(pairs, triples, style=dot._SERVICE_STYLE):
    for start in range(-1, len(pairs) + 2):
        a, b = [], []
        assert service_native(pairs, start, a, style) == dot._service_lines(pairs, start, b, style)
        assert a == b
    for start in range(-1, len(triples) + 2):
        a, b = [], []
        assert edge_lines_native(triples, start, a) == dot._plain_edge_lines(triples, start, b)
        assert a == b


@needs_dot
def test_the_compiled_dot_lines_are_their_references_on_hostile_graphs():
    g = _hand_graph(HOSTILE, HOSTILE + ["DNAT", "-d 10.0.0.1/32 -p tcp --dport 80"])
    pairs, triples = list(g.nodes()), g.edges()
    _same_lines(pairs, triples)
    _same_lines(pairs, triples, style="é];\n")
    a = []
    assert service_native(pairs, 1, a, dot._SERVICE_STYLE) > 1 and a[0].startswith('"v4/service/plain0" [label=')


@needs_dot
@pytest.mark.parametrize("path", DUMPS[:12], ids=lambda p: str(p.relative_to(FIXTURES)))
def test_the_compiled_dot_lines_are_their_references_on_fixtures(path):
    rs = _parse(path.read_text(errors="replace"), str(path))
    g = graph.overview_parts(rs)
    _same_lines(list(g.nodes()), g.edges())
    want = graph._build_overview_graph(rs, True)
    _same_lines(list(want.nodes(data=True)), list(want.edges(data=True)))


_value = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.integers(), st.floats(allow_nan=False),
                   st.text(max_size=12), st.sampled_from(["service", "DNAT", "", "chain", "1/3", "set"]))


@needs_dot
@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.one_of(st.text(max_size=10), st.integers()),
                          st.dictionaries(st.sampled_from(["type", "label", "endpoints", "cluster"]), _value)),
                max_size=6),
       st.lists(st.tuples(st.text(max_size=8), st.sampled_from(["v4/a", "x y", 'q"']),
                          st.dictionaries(st.sampled_from(["share", "affinity", "goto", "masquerade", "note", "match",
                                                           "line"]), _value)), max_size=6))
def test_the_compiled_dot_lines_are_their_references_on_any_values(pairs, triples):
    _same_lines([(n, dict(a, type="service") if i % 2 else a) for i, (n, a) in enumerate(pairs)], triples)


@needs_dot
def test_the_compiled_dot_lines_raise_typeerror_for_other_shapes():
    for bad in ((), {}, "x"):
        with pytest.raises(TypeError):
            service_native(bad, 0, [], "")
        with pytest.raises(TypeError):
            edge_lines_native(bad, 0, [])
    assert service_native([("a", {"type": "service"}), ["b", {}]], 0, [], "") == 1
    assert edge_lines_native([("a", "b", {}), ("a", "b", [])], 0, []) == 1
