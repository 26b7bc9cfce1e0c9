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

from conftest import FIXTURES, IPT
from svcinspect import graph, perf
from svcinspect.dataplane.iptables.kubeproxy import normalize_spn, parse_comment
from svcinspect.dataplane.iptables.parse import parse_iptables_save, raw_comment, raw_target
from svcinspect.errors import SvcinspectError
from svcinspect.render import dot

RULES = sorted(p for p in FIXTURES.rglob("*") if p.is_file() and p.suffix in (".txt", ".rules")
               and p.name not in ("versions.txt", "kube-proxy-cmdline.txt"))
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
