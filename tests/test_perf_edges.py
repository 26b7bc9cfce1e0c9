"""The graph's edge pass (``check``'s dangling jumps, orphan chains and loops) gives
the same answers on every path.

``graph._edge_pass`` and ``graph._summary_pass`` (pure Python) are the references of the
compiled ``svcinspect/dataplane/iptables/_edges.c``: on every fixture, on
hand-written blocks at the edges of the fast shape, and on hypothesis-made dumps
(real lines cut and spliced with the tokens that steer the shape), the compiled
functions must return exactly what the references return. The graph questions
themselves (find_dangling_jumps, find_unreferenced_chains, find_cycles) must give
the same lists with the fast paths off (every chain read rule by rule, loops found
by the general search), with the pure-Python pass and with the compiled one,
including on dumps that do have loops, self-jumps and dangling jumps.
"""

from __future__ import annotations

import os
import shutil
import sysconfig
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import FIXTURES, IPT, RULE_FILES
from fuzzlines import LINES, mutate
from svcinspect import check, graph, perf
from svcinspect.dataplane.iptables.parse import parse_iptables_save
from svcinspect.errors import InputError

native = graph.native_edges
needs_native = pytest.mark.skipif(native is None, reason="the compiled edge pass svcinspect.dataplane.iptables._edges "
                                                         "is not built (no C compiler at install time?): nothing to compare")

def _is_dump(path: Path) -> bool:
    try:
        parse_iptables_save(path.read_text(errors="replace"), path.name)
    except InputError:  # nft listings, conntrack tables, ipvsadm output, a diff: not this reader's input
        return False
    return True


RULES = [p for p in RULE_FILES if _is_dump(p)]
TOKENS = [" -j ", " -g ", " -j", "-j ", " --jump ", " --goto ", "--jump", "KUBE-", "KUBE-SVC-ABCDEFGHIJKLMN23",
          "KUBE-SEP-ABCDEFGHIJKLMN23", " -j KUBE-MARK-MASQ", " -j DNAT --to-destination 10.0.0.1:80", '"', " ", "\t",
          "\x0b", "\r", "é", "-", "j", "g", "jump", "goto", " -j -j ", ":KUBE-X - [0:0]", "-A KUBE-X ", "\n",
          "-m comment --comment ", '"a -j b"']


def _sides(table):
    names = list(table.chains)
    blocks = getattr(table.chains, "blocks", None)
    return names, [blocks(n) for n in names] if blocks is not None else [None] * len(names)


def _compare_table(table) -> None:
    names, segs = _sides(table)
    assert native.edges(names, segs) == graph._edge_pass(names, segs)
    assert native.summary(names, segs, graph.KNOWN_TARGETS, graph._BUILTINS, graph._FLOAT_LAYERS) \
        == graph._summary_pass(names, segs, graph.KNOWN_TARGETS, graph._BUILTINS, graph._FLOAT_LAYERS) \
        == graph._summary_pass(names, segs)


def _answers(rs, fast: bool, native_on: bool):
    caches = (graph._EDGE_CACHE, graph._CACHE, graph._SUMMARY_CACHE)
    for c in caches:
        c.clear()
    with perf.all_fast_paths(fast), perf.native_scanner(fast and native_on):
        try:
            return (graph.find_dangling_jumps(rs), graph.find_unreferenced_chains(rs), graph.find_cycles(rs))
        finally:
            for c in caches:
                c.clear()


def _same_answers(text: str):
    """The three answers on every path (None for text that is not a dump: the same error either way)."""
    try:
        rs = parse_iptables_save(text, "t")
    except InputError:
        return None
    slow = _answers(rs, False, False)
    assert _answers(rs, True, False) == slow
    if native is not None:
        assert _answers(rs, True, True) == slow
        for table in rs.tables:
            _compare_table(table)
    return slow


def _can_build() -> bool:
    include = sysconfig.get_paths().get("include") or ""
    cc = (sysconfig.get_config_var("CC") or "cc").split()[0]
    return bool(shutil.which(cc) or shutil.which("cc")) and (Path(include) / "Python.h").exists()


def test_the_compiled_edge_pass_is_built_where_it_can_be():
    """Where a C compiler and Python's headers are present (CI installs gcc and
    python3-dev), a build that silently fell back to pure Python fails here instead
    of skipping the comparisons; SVCINSPECT_REQUIRE_NATIVE=1 asks for it anywhere."""
    required = os.environ.get("SVCINSPECT_REQUIRE_NATIVE", "") not in ("", "0")
    if not required and not _can_build():
        pytest.skip("no C compiler or Python headers here: the compiled edge pass is optional, and was not built")
    assert native is not None, "svcinspect.dataplane.iptables._edges was not built by pip install, though it could be"
    assert perf.native_edges_built()


@pytest.mark.parametrize("path", RULES, ids=lambda p: str(p.relative_to(FIXTURES)))
def test_every_fixture_gives_the_same_graph_answers(path):
    assert _same_answers(path.read_text(errors="replace")) is not None


def test_the_real_dump_is_read_by_the_fast_pass():
    """Not two empty answers: every chain of the real dump whose rules all have a
    target is answered by the fast pass, its targets are the rules' targets, and
    the summary proves what check needs (no loop, nothing undeclared, the
    unreferenced chains are the built-in ones and the canaries)."""
    rs = parse_iptables_save((IPT / "iptables-save.txt").read_text(), "x")
    nat = rs.table("nat")
    names, segs = _sides(nat)
    edges, slow = graph._edge_pass(names, segs)
    assert len(edges) > 20 and len(slow) <= 3
    assert all(any(r.target is None for r in nat.chains[n].rules) or not nat.chains[n].rules for n in slow)
    svc = next(n for n in edges if n.startswith("KUBE-SVC-"))
    assert set(edges[svc]) == {r.target.name for r in nat.chains[svc].rules if r.target}
    unref, declared, down, slow2 = graph._summary_pass(names, segs)
    assert declared and down and slow2 == slow
    assert {"PREROUTING", "OUTPUT", "KUBE-PROXY-CANARY"} <= set(unref) and not any(
        n.startswith(("KUBE-SVC-", "KUBE-SEP-")) for n in unref)
    if native is not None:
        assert native.edges(names, segs) == (edges, slow)
        assert native.summary(names, segs, graph.KNOWN_TARGETS, graph._BUILTINS, graph._FLOAT_LAYERS) == (
            unref, declared, down, slow)


# One chain's block -> what the fast pass answers: its targets, or None (declined).
BLOCKS = [
    ("-A X -j A\n-A X -j B\n-A X -j A\n", ("A", "B")),
    ("-A X -g A\n-A X -m comment --comment \"a\" -j C\n", ("A", "C")),
    ("-A X -m comment --comment \"a -j b\" -j C\n", None),   # a flag in a comment: the general reader
    ("-A X -j A\n", ("A",)),
    ("-A X -j A -m comment --comment \"x\"\n", None),   # a quote after the flag
    ("-A X -j A --to x -j B\n", None),                  # two flags
    ("-A X -j -j B\n", None),                           # a name that is an option
    ("-A X -j  A\n", None),                             # an empty name
    ("-A X -j A\n-A X -p tcp\n", None),                 # a line without a flag
    ("-A X -j A\n\n", None),                            # an empty line
    ("-A X -p tcp -j\n", None),                         # a bare flag at the end
    ("-A X --jump A\n", None),
    ("-A X -m comment --comment --goto -j A\n", None),  # a long option anywhere
    ("-A X\t-j A\n", None),
    ("-A X -j A", None),                                # not whole lines
    ("-A X -m comment --comment \"é\" -j A\n", None),   # not ASCII: the general reader
    ("-A X -j A\r\n", ("A\r",)),
    ("-A X -j A \n", ("A",)),
    ("-A X -m comment --comment \"\" -j RETURN\n-A X -g jg\n", ("RETURN", "jg")),
]


@pytest.mark.parametrize("block,want", BLOCKS)
def test_blocks_at_the_edges_of_the_fast_shape(block, want):
    got = graph._edge_pass(["X"], [[(3, block)]])
    assert got == (({"X": want}, []) if want is not None else ({}, ["X"]))
    if native is not None:
        assert native.edges(["X"], [[(3, block)]]) == got


def test_segments_that_are_not_one_block_are_declined():
    cases = [None, [], [(1, "-A X -j A\n"), (9, "-A X -j B\n")], ((1, "-A X -j A\n"),)]
    got = graph._edge_pass(["a", "b", "c", "d"], cases)
    assert got == ({"d": ("A",)}, ["a", "b", "c"])
    if native is not None:
        assert native.edges(["a", "b", "c", "d"], cases) == got


# Rules of one table -> (unreferenced, declared, down) as the summary gives them.
def _rules(*lines: str) -> tuple[list[str], list]:
    chains: dict[str, list[str]] = {}
    for ln in lines:
        chains.setdefault(ln.split()[0], []).append("-A " + ln + "\n")
    names = list(dict.fromkeys([*chains, "KUBE-MARK-MASQ", "KUBE-SEP-Z", "é"]))
    return names, [[(1, "".join(chains[n]))] if n in chains else [] for n in names]


SUMMARIES = [
    (("PREROUTING -j KUBE-SERVICES", "KUBE-SERVICES -j KUBE-SVC-A", "KUBE-SERVICES -j KUBE-NODEPORTS",
      "KUBE-NODEPORTS -j KUBE-EXT-A", "KUBE-EXT-A -j KUBE-MARK-MASQ", "KUBE-EXT-A -j KUBE-SVC-A",
      "KUBE-SVC-A -j KUBE-SEP-A", "KUBE-SEP-A -j KUBE-MARK-MASQ", "KUBE-SEP-A -j DNAT --to-destination 1.2.3.4:5"),
     (["PREROUTING", "KUBE-SEP-Z", "é"], True, True)),
    (("KUBE-SVC-A -j KUBE-SVC-B", "KUBE-SVC-B -j RETURN"), (["KUBE-SVC-A", "KUBE-MARK-MASQ", "KUBE-SEP-Z", "é"],
                                                          True, False)),           # sideways
    (("KUBE-SEP-A -j KUBE-SVC-A", "KUBE-SVC-A -j KUBE-SEP-Z"), (["KUBE-SEP-A", "KUBE-MARK-MASQ", "é"], True,
                                                                False)),         # up
    (("KUBE-SVC-A -j KUBE-SVC-A",), (["KUBE-SVC-A", "KUBE-MARK-MASQ", "KUBE-SEP-Z", "é"], True, False)),  # self
    (("KUBE-SVC-A -j KUBE-SVC-A", "KUBE-SEP-Z -j KUBE-SVC-A"), (["KUBE-SEP-Z", "KUBE-MARK-MASQ", "é"], True, False)),
    (("INPUT -j MYCHAIN", "MYCHAIN -j ACCEPT"), (["INPUT", "KUBE-MARK-MASQ", "KUBE-SEP-Z", "é"], True, False)),
    (("MYCHAIN -j KUBE-FIREWALL", "KUBE-FIREWALL -j DROP"), (["MYCHAIN", "KUBE-MARK-MASQ", "KUBE-SEP-Z", "é"],
                                                            True, True)),           # -1 -> 1.5
    (("KUBE-FIREWALL -j KUBE-SERVICES", "KUBE-SERVICES -j RETURN"), (["KUBE-FIREWALL", "KUBE-MARK-MASQ",
                                                                     "KUBE-SEP-Z", "é"], True, False)),  # 1.5 -> 1
    (("KUBE-SVC-A -j NOT-A-CHAIN", "KUBE-SVC-A -j KUBE-SEP-Z"), (["KUBE-SVC-A", "KUBE-MARK-MASQ", "é"], False, True)),
    (("KUBE-SVC-A -j DNAT", "KUBE-SVC-A -g KUBE-MARK-MASQ"), (["KUBE-SVC-A", "KUBE-SEP-Z", "é"], True, True)),
]


@pytest.mark.parametrize("lines,want", SUMMARIES)
def test_summaries(lines, want):
    names, segs = _rules(*lines)
    assert graph._summary_pass(names, segs)[:3] == want
    if native is not None:
        assert native.summary(names, segs, graph.KNOWN_TARGETS, graph._BUILTINS, graph._FLOAT_LAYERS)[:3] == want


_BASE = """*nat
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:KUBE-SERVICES - [0:0]
:KUBE-SVC-AAAAAAAAAAAAAAAA - [0:0]
:KUBE-SEP-AAAAAAAAAAAAAAAA - [0:0]
:KUBE-MARK-MASQ - [0:0]
-A PREROUTING -j KUBE-SERVICES
-A OUTPUT -j KUBE-SERVICES
-A KUBE-SERVICES -d 10.96.0.1/32 -p tcp -m comment --comment "default/a cluster IP" -j KUBE-SVC-AAAAAAAAAAAAAAAA
-A KUBE-SVC-AAAAAAAAAAAAAAAA -j KUBE-SEP-AAAAAAAAAAAAAAAA
-A KUBE-SEP-AAAAAAAAAAAAAAAA -s 10.244.0.5/32 -j KUBE-MARK-MASQ
-A KUBE-SEP-AAAAAAAAAAAAAAAA -p tcp -j DNAT --to-destination 10.244.0.5:80
-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000
"""


@pytest.mark.parametrize("extra,decl,want", [
    ("", "", ([], [], [])),
    # a loop between two of kube-proxy's chains: one cycle
    ("-A KUBE-SEP-AAAAAAAAAAAAAAAA -j KUBE-SVC-AAAAAAAAAAAAAAAA\n", "", ([], [], [[
        "KUBE-SEP-AAAAAAAAAAAAAAAA", "KUBE-SVC-AAAAAAAAAAAAAAAA"]])),
    # a chain that only jumps to itself is still unreferenced, and a loop of one
    ("-A KUBE-SVC-BBBBBBBBBBBBBBBB -j KUBE-SVC-BBBBBBBBBBBBBBBB\n", ":KUBE-SVC-BBBBBBBBBBBBBBBB - [0:0]\n",
     ([], ["KUBE-SVC-BBBBBBBBBBBBBBBB"], [["KUBE-SVC-BBBBBBBBBBBBBBBB"]])),
    # a jump to a chain that is not declared
    ("-A KUBE-SVC-AAAAAAAAAAAAAAAA -j KUBE-SEP-CCCCCCCCCCCCCCCC\n", "", (["KUBE-SEP-CCCCCCCCCCCCCCCC"], [], [])),
    # the same, hidden from the fast pass by a quote after the flag
    ('-A KUBE-SVC-AAAAAAAAAAAAAAAA -j KUBE-SEP-CCCCCCCCCCCCCCCC -m comment --comment "x"\n', "",
     (["KUBE-SEP-CCCCCCCCCCCCCCCC"], [], [])),
    # a declared chain nothing jumps to
    ("", ":KUBE-SEP-DDDDDDDDDDDDDDDD - [0:0]\n", ([], ["KUBE-SEP-DDDDDDDDDDDDDDDD"], [])),
    # a sideways jump (no layer proof) without a loop
    ("-A KUBE-SVC-AAAAAAAAAAAAAAAA -j KUBE-SVC-EEEEEEEEEEEEEEEE\n", ":KUBE-SVC-EEEEEEEEEEEEEEEE - [0:0]\n",
     ([], [], [])),
])
def test_graph_answers_on_hand_made_dumps(extra, decl, want):
    text = _BASE.replace(":KUBE-MARK-MASQ - [0:0]\n", ":KUBE-MARK-MASQ - [0:0]\n" + decl) + extra + "COMMIT\n"
    dangling, unref, cycles = _same_answers(text)
    assert ([d.target for d in dangling], [c.chain for c in unref], cycles) == want


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(LINES), max_size=40), st.data())
def test_mutated_dumps_give_the_same_answers(lines, data):
    out = mutate(lines, data, TOKENS, max_drop=3)
    _same_answers("*nat\n:KUBE-SEP-ABCDEFGHIJKLMN23 - [0:0]\n:KUBE-X - [0:0]\n" + "\n".join(out) + "\nCOMMIT\n")


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.lists(st.sampled_from(TOKENS), max_size=12).map("".join), max_size=20))
def test_token_soup_gives_the_same_answers(lines):
    _same_answers("*nat\n:KUBE-X - [0:0]\n" + "\n".join("-A KUBE-X " + ln for ln in lines) + "\nCOMMIT\n")


@needs_native
@pytest.mark.parametrize("args", [(), (None, []), ([], None), (["a"], []), ([1], [None]), ("ab", "ab")])
def test_wrong_arguments_to_edges_are_type_errors(args):
    with pytest.raises(TypeError):
        native.edges(*args)


@needs_native
@pytest.mark.parametrize("args", [
    ([], []),                                                   # too few
    (None, [], frozenset(), frozenset(), ()),                   # names not a list
    (["a"], [], frozenset(), frozenset(), ()),                  # lengths differ
    ([1], [[]], frozenset(), frozenset(), ()),                  # a name not a str
    (["a"], [[]], set(), frozenset(), ()),                      # known not a frozenset
    (["a"], [[]], frozenset(), frozenset(), (("KUBE-", 1),)),   # a rank that is not a float
    (["a"], [[]], frozenset(), frozenset(), ("KUBE-",)),        # a layer that is not a pair
])
def test_wrong_arguments_to_summary_are_type_errors(args):
    with pytest.raises(TypeError):
        native.summary(*args)


@needs_native
def test_long_lines_and_many_targets():
    """Bounded loops: a 1 MB line, and a chain with 5000 distinct targets (each once, in order)."""
    long = "-A X " + "j g -" * 200_000 + " -j A\n"
    many = "".join(f"-A X -j T{i}\n-A X -j T{i}\n" for i in range(5000))
    for block in (long, many, '"' * 100_000 + " -j A\n"):
        assert native.edges(["X"], [[(1, block)]]) == graph._edge_pass(["X"], [[(1, block)]])
        assert native.summary(["X", "T7"], [[(1, block)], []], graph.KNOWN_TARGETS, graph._BUILTINS,
                              graph._FLOAT_LAYERS) == graph._summary_pass(["X", "T7"], [[(1, block)], []])
    assert native.edges(["X"], [[(1, many)]])[0]["X"] == tuple(f"T{i}" for i in range(5000))


def _py_counts(text: str, needle: str, absent: str):
    with perf.native_scanner(False):
        return check._line_counts(text, needle, absent)


@pytest.mark.parametrize("text,want", [
    ("", (0, 0)),
    ("-A S -m comment --comment x -j KUBE-SEP-A\n-A S -j KUBE-SEP-B\n-A S -j KUBE-MARK-MASQ\n", (2, 1)),
    ("-A S -j KUBE-SEP-A -j KUBE-SEP-B\n", (1, 1)),                  # one line, counted once
    ("  -j KUBE-SEP-A\n", (0, 0)),                                   # raw_rules strips the blank before it
    ("\t -A S -j KUBE-SEP-A --comment\n", (1, 0)),
    ("-A S -j KUBE-SEP-A", (1, 1)),                                   # no final newline
    ("-A S -m comment --comment \"é\" -j KUBE-SEP-A\n", (1, 0)),      # not ASCII: Python counts
])
def test_line_counts(text, want):
    assert _py_counts(text, " -j KUBE-SEP-", "--comment") == want
    assert check._line_counts(text, " -j KUBE-SEP-", "--comment") == want


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(TOKENS + [" -j KUBE-SEP-", "--comment", "-", " "]), max_size=30).map("".join))
def test_line_counts_agree(text):
    assert check._line_counts(text, " -j KUBE-SEP-", "--comment") == _py_counts(text, " -j KUBE-SEP-", "--comment")
    if native is not None and text.isascii():
        got = native.line_counts(text, " -j KUBE-SEP-", "--comment")
        lines = text.split("\n")
        assert got[2] == any(ln[:1] in (" ", "\t") and ln for ln in lines)
        assert got[:2] == (sum(" -j KUBE-SEP-" in ln for ln in lines),
                           sum(" -j KUBE-SEP-" in ln and "--comment" not in ln for ln in lines))


@needs_native
def test_line_counts_on_the_real_dumps_chains():
    rs = parse_iptables_save((IPT / "iptables-save.txt").read_text(), "x")
    nat = rs.table("nat")
    names = [n for n in nat.chains if n.startswith(("KUBE-SVC-", "KUBE-SVL-"))]
    text, rest = check._clean_text(nat, names)
    assert not rest and native.line_counts(text, " -j KUBE-SEP-", "--comment")[0] > 5
    assert check._line_counts(text, " -j KUBE-SEP-", "--comment") == _py_counts(text, " -j KUBE-SEP-", "--comment")
    with pytest.raises(TypeError):
        native.line_counts(text, None, "x")


def test_the_comment_count_is_the_same_on_every_path():
    """kube-proxy's large-cluster mode (no comment on endpoint jumps) in the real
    dump, one jump's line indented: check says the same "N of M" on every path,
    and N and M are the dump's own counts."""
    import re

    from svcinspect.check import check_rules

    text, n = re.subn(r'(-A KUBE-SVC-\S+ .*?)-m comment --comment "[^"]* -> [^"]*" ', r"\1",
                      (IPT / "iptables-save.txt").read_text())
    assert n > 5
    jumps = [ln for ln in text.splitlines() if ln.startswith(("-A KUBE-SVC-", "-A KUBE-SVL-")) and " -j KUBE-SEP-" in ln]
    bare = [ln for ln in jumps if "--comment" not in ln]
    text = text.replace(bare[0], "  " + bare[0])
    messages = []
    for fast, nat in ((False, False), (True, False), (True, True)):
        graph._SUMMARY_CACHE.clear()
        with perf.all_fast_paths(fast), perf.native_scanner(fast and nat):
            report = check_rules(parse_iptables_save(text, "x"))
        messages.append([f.message for f in report.findings if f.code == "no-endpoint-comments"])
    graph._SUMMARY_CACHE.clear()
    assert messages[0] == messages[1] == messages[2] == [
        f"{len(bare)} of {len(jumps)} endpoint jumps have no comment: kube-proxy's large-cluster mode "
        "(more than 1000 endpoints) or an old release; service ports are matched by chain hash"]


def test_many_self_jumps_stay_linear():
    """300 chains that jump to themselves (and one that another chain jumps to):
    the same orphans on every path, without a pass per self-jump."""
    decl = "".join(f":KUBE-SVC-S{i:015d} - [0:0]\n" for i in range(300))
    rules = "".join(f"-A KUBE-SVC-S{i:015d} -j KUBE-SVC-S{i:015d}\n" for i in range(300))
    text = _BASE.replace(":KUBE-MARK-MASQ - [0:0]\n", ":KUBE-MARK-MASQ - [0:0]\n" + decl) + rules \
        + f"-A KUBE-SVC-S{7:015d} -j KUBE-SVC-S{8:015d}\nCOMMIT\n"
    _, unref, cycles = _same_answers(text)
    assert [c.chain for c in unref] == [f"KUBE-SVC-S{i:015d}" for i in range(300) if i != 8]
    assert len(cycles) == 300
