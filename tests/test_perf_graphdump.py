"""The compiled template pass of ``dump`` reads what the regexes read.

``render.iptables._shapes_of`` (the ``_TEMPLATE_SUBS`` regexes applied one
after the other, then the lines) is the reference; the compiled
``_scan.dump_shapes`` must give the same templates, in the same order, with
the same first line each, and the same ``_plain`` answer, on every fixture, on
hand-made lines that sit at the edge of each pattern (octets 255/256, leading
zeros, a hash of 15 or 17 characters, an argument at the end of the text, an
empty comment, counters with leading zeros) and on hypothesis-made text. The
whole ``dump`` command with the fast paths on and off is compared in
test_perf_equivalence.py; here is also the declarations shortcut
(``LazyChains.heads``) against ``head``/``blocks``.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import FIXTURES, IPT, WILD, ALL_RULE_FILES
from svcinspect import perf
from svcinspect.dataplane.iptables import bulk
from svcinspect.dataplane.iptables.parse import parse_iptables_save
from svcinspect.render import iptables as render_iptables
from svcinspect.render.iptables import _shapes_of

native = getattr(bulk.native_scanner, "dump_shapes", None)
needs_native = pytest.mark.skipif(native is None, reason="the compiled scanner svcinspect.dataplane.iptables._scan is not "
                                                         "built (no C compiler at install time?): nothing to compare")

RULES = ALL_RULE_FILES
REAL = (IPT / "iptables-save.txt").read_text()
WILD_LINES = [ln for p in sorted(WILD.glob("*.rules")) for ln in p.read_text(errors="replace").splitlines()]

# Lines at the edge of every pattern of _TEMPLATE_SUBS (hand-written).
EDGES = [
    "[0:0] -A KUBE-SEP-ABCDEFGHIJKLMNOP -s 10.0.0.1/32 -j KUBE-MARK-MASQ",
    "[00:1] -A X -j ACCEPT", "[1:01] -A X -j ACCEPT", "[1:2]-A X", "[1:2]  -A X", "[12345678901234567890:0] -A X",
    " [1:2] -A X -j ACCEPT", "[1:2 -A X", "[:] -A X", "[1:2] ",
    '-A X -m comment --comment "" -j Y', '-A X -m comment --comment "a\\"b" -j Y', '-A X -m comment --comment "a\x0cb"',
    '-A X -m comment --comment "unterminated', '-A X -m comment --comment "a" --comment "b"',
    '-A X -m comment --comment "KUBE-SEP-ABCDEFGHIJKLMNOP" -j KUBE-SEP-ABCDEFGHIJKLMNOP',
    "-A KUBE-SEP-ABCDEFGHIJKLMNO -j X", "-A KUBE-SEP-ABCDEFGHIJKLMNOPQ -j X", "-A KUBE-SEP-abcdefghijklmnop",
    "-A KUBE-SEP-ABCDEFGHIJKLMN18 -j X", "-A KUBE-SEP-ABCDEFGHIJKLMN27",
    "-A KUBE-EXT-AAAAAAAAAAAAKUBE-SEP-BBBBBBBBBBBBBBBB -j X",  # a later pattern matches across an earlier's replacement
    "-A KUBE-FW-ABCDEFGHIJKLMNOP -j KUBE-XLB-ABCDEFGHIJKLMNOP -j KUBE-SVL-ABCDEFGHIJKLMNOP",
    "-A X -s 255.255.255.255/32 -j Y", "-A X -s 256.1.1.1/32 -j Y", "-A X -s 01.1.1.1/32 -j Y", "-A X -s 0.0.0.0/32 -j Y",
    "-A X -s 1.2.3.4/32", "-A X -s 1.2.3.4/32\t-j Y", "-A X -s 1.2.3.4/320 -j Y", "-A X -s 1.2.3/32 -j Y",
    "-A X -s 1.2.3.4.5/32 -j Y", "-A X -d 249.250.199.100/32 -p tcp", "-A X -d 1234.1.1.1/32 -j Y",
    "-A X -s 10.0.0.1/32 -d 10.0.0.2/32 -j Y", "-A X ! -d 10.0.0.2/32 -j Y", "-A X -s -d 1.1.1.1/32 -j Y",
    "-A X -p tcp -m tcp --dport 80", "-A X -p tcp -m tcp --dport 80 -j Y", "-A X -p tcp -m tcp --dport 80:90\t-j Y",
    "-A X -p tcp -m tcp --dport 8a/b.c:d -j Y", "-A X -p tcp -m tcp --dport x80 -j Y", "-A X --dport  80",
    "-A X -m statistic --mode random --probability 0.50000000000 -j Y",
    "-A X -j DNAT --to-destination 10.0.0.1:8080", "-A X -j SNAT --to-source 1.1.1.1-1.1.1.9 --random",
    "-A X -m recent --rcheck --seconds 10800 --reap --name N --mask 255.255.255.255 --rsource",
    "-A X -m mark --mark 0x4000/0x4000 -j RETURN", "-A X -j MARK --set-xmark 0x4000/0x4000",
    "-A X -m mark ! --mark 0x4000/0x4000 -j RETURN", "-A X --sport 1 --sport 2 --sport 3",
    "", " ", "-A X ", "-A X\t", "\t-A X",
]


def _lines(text: str) -> str:
    return text if text.endswith("\n") else text + "\n"


def _compare(text: str) -> None:
    for counted in (False, True):
        want = _shapes_of(text, counted)
        got = native(text, counted)
        if not text.isascii():
            assert got is None
            continue
        assert got is not None
        assert list(got[0].items()) == list(want[0].items()), text[:300]
        assert got[1] is want[1]
        assert got[2] is want[2], text[:300]


def test_a_rule_repeated_with_other_counters_is_not_distinct():
    assert render_iptables._distinct("[1:2] -A X -j Y\n[3:4] -A X -j Y\n", True) is False
    assert render_iptables._distinct("[1:2] -A X -j Y\n[3:4] -A X -j Z\n", True) is True


def test_the_reference_finds_the_templates_a_user_relies_on():
    """Two endpoint chains of one shape share a template; a leading zero in an
    address makes a template of its own (its rule renders differently)."""
    text = ("-A KUBE-SEP-AAAAAAAAAAAAAAAA -s 10.0.0.1/32 -m comment --comment \"a/b:p\" -j KUBE-MARK-MASQ\n"
            "-A KUBE-SEP-BBBBBBBBBBBBBBBB -s 10.0.0.2/32 -m comment --comment \"c/d:q\" -j KUBE-MARK-MASQ\n"
            "-A KUBE-SEP-CCCCCCCCCCCCCCCC -s 10.0.0.03/32 -m comment --comment \"c/d:q\" -j KUBE-MARK-MASQ\n")
    first, plain, distinct = _shapes_of(text, False)
    assert list(first.values()) == [text.splitlines()[0], text.splitlines()[2]]
    assert plain and distinct


@needs_native
@pytest.mark.parametrize("path", RULES, ids=lambda p: str(p.relative_to(FIXTURES)))
def test_every_fixture_gives_the_same_templates(path):
    text = path.read_text(errors="replace")
    _compare(_lines(text))
    # the blocks as the dump renderer hands them over (rule lines only)
    _compare("".join(ln + "\n" for ln in text.splitlines() if ln.lstrip().startswith(("-A", "["))))


@needs_native
def test_the_edges_of_every_pattern_give_the_same_templates():
    for line in EDGES:
        _compare(line)
        _compare(line + "\n")
        _compare(line + "\n" + line + "\n")
    _compare("".join(line + "\n" for line in EDGES))
    _compare("")
    _compare("\n\n")
    # repeated rules, counters aside (a diagnostic for the chain), and lines that only look alike
    for a, b in (("[1:2] -A X -j Y", "[3:4] -A X -j Y"), ("[1:2] -A X -j Y", "-A X -j Y"), ("[1:2]-A X", "[3:4]-A X"),
                 ("[1:2] ] -A X", "[3:4] ] -A X"), ("[1:2] -A X", "[1:2] -A X "), ("-A X", "-A X"), ("", ""),
                 ("[1:2] ", "[3:4] "), ("[1:2] -A X] -j Y", "[5:6] -A X] -j Y"), ("[a] b", "[c] b")):
        _compare(a + "\n" + b + "\n")
        _compare("-A Z\n" + a + "\n-A W\n" + b)


@needs_native
def test_the_real_dump_gives_the_same_templates():
    _compare(REAL)
    _compare(REAL.replace("\n", "\n[0:0] "))


@needs_native
def test_non_ascii_text_is_left_to_the_regexes():
    assert native('-A X -m comment --comment "café" -j Y\n', False) is None
    assert native("-A X -m comment --comment \"a\u2028b\" -j Y\n", True) is None


@needs_native
def test_wrong_arguments_raise_type_error():
    for args in ((b"-A X\n", False), (None, True), ("-A X\n",), ()):
        with pytest.raises(TypeError):
            native(*args)


TOKENS = ["-A ", "KUBE-SEP-", "KUBE-SVC-", "KUBE-EXT-", "KUBE-FW-", "ABCDEFGH", "2345", "Z", " -s ", " -d ", "10.", "1.",
          "255", "256", "0", "01", "/32", "/3", " ", "\t", "\x0b", "\x1c", "\n", "[", "]", ":", "[0:0] ", "[1:2] ",
          ' --comment "', '"', "\\", " --dport ", " --sport ", " --probability ", "0.5", " --to-destination ",
          " --to-source ", " --seconds ", " --mask ", " --mark ", " --set-xmark ", "0x4000/0x4000", "a", ".", "/", "-j X"]


@needs_native
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(st.sampled_from(TOKENS), st.sampled_from(WILD_LINES or ["-A X"]),
                          st.text(alphabet="0123456789.:/ -AKS[]\"\n", max_size=6)), max_size=40))
def test_made_up_text_gives_the_same_templates(parts):
    _compare("".join(parts))


def test_declarations_shortcut_gives_what_head_and_blocks_give():
    """``LazyChains.heads`` (the declarations of dump) against one ``head`` and
    ``blocks`` call per chain, with counters (leading zeros included) and a chain
    already built."""
    text = ("*nat\n:PREROUTING ACCEPT [007:0100]\n:INPUT ACCEPT [0:0]\n:KUBE-X - [0:0]\n:KUBE-Y - [3:4]\n:KUBE-Z -\n"
            "-A PREROUTING -j KUBE-X\n-A KUBE-X -j KUBE-Y\n-A KUBE-Y -j RETURN\n-A KUBE-X -j RETURN\nCOMMIT\n")
    for on in (False, True):
        with perf.native_scanner(on):
            chains = parse_iptables_save(text, "t").tables[0].chains
        chains["KUBE-Y"]  # noqa: B018 (built: heads must answer from the built chain)
        names = list(chains)
        got = chains.heads(names)
        want = [(p, None if c is None else str(c), chains.blocks(n)) for n in names for p, c in (chains.head(n),)]
        assert got == want
        assert got[0][:2] == ("ACCEPT", "[7:100]")


def test_dump_takes_the_compiled_pass_when_it_is_built():
    """The fast ``dump`` asks for the compiled function only when the fast paths are on."""
    assert perf.native("dump_shapes") is native
    with perf.all_fast_paths(False):
        assert perf.native("dump_shapes") is None
    with perf.native_scanner(False):
        assert perf.native("dump_shapes") is None
    assert render_iptables.render_dump(parse_iptables_save(REAL, "r"))[0] == \
        render_iptables.render_ruleset(parse_iptables_save(REAL, "r"))


# --- the dump index (trace, packet, graph of one service) --------------------------

from svcinspect.dataplane.iptables import index as dump_index  # noqa: E402

count_all = getattr(bulk.native_scanner, "count_all", None)
rule_names = getattr(bulk.native_scanner, "rule_names", None)
needs_index_native = pytest.mark.skipif(count_all is None or rule_names is None,
                                        reason="the compiled scanner svcinspect.dataplane.iptables._scan is not "
                                               "built (no C compiler at install time?): nothing to compare")
REAL_BYTES = REAL.encode()
COUNTED_BYTES = b"".join((b"[3:40] " + ln if ln.startswith(b"-A ") else ln) + b"\n"
                         for ln in REAL_BYTES.split(b"\n")[:-1])


@needs_index_native
@pytest.mark.parametrize("data", [REAL_BYTES, COUNTED_BYTES, b"", b"\n", b"aaaa", b"\n-A \n-A X\n"], ids=range(6))
def test_count_all_counts_what_bytes_count_counts(data):
    n = len(data)
    specs = [(needle, a, b) for needle in (b"\n", b"\n-A ", b"] -A ", b"\n:", b"aa", b"\n[", b"COMMIT")
             for a, b in ((0, n), (1, n - 1), (-5, n), (0, -3), (n, 0), (-n - 9, n + 9), (3, 2), (n // 2, n))]
    specs += [(b"\n", a, min(a + 4096, n)) for a in range(0, n, 4096)]
    assert count_all(data, specs) == dump_index._count_all(data, specs)


@needs_index_native
def test_count_all_refuses_what_it_cannot_count():
    with pytest.raises(ValueError):
        count_all(b"abc", [(b"", 0, 3)])
    for args in ((b"abc", [("x", 0, 1)]), (b"abc", [(b"x", 0)]), ("abc", []), (b"abc", ((b"x", 0, 1),))):
        with pytest.raises(TypeError):
            count_all(*args)


def _names_in(data: bytes) -> list[bytes]:
    return sorted({ln.split(b" ")[1] for ln in data.split(b"\n") if ln.startswith(b"-A ") and b" " in ln})


@needs_index_native
@pytest.mark.parametrize("counted", [False, True])
def test_rule_names_counts_what_the_regex_counts(counted):
    data = COUNTED_BYTES if counted else REAL_BYTES
    names = _names_in(REAL_BYTES)
    start = data.index(b"\n-A " if not counted else b"\n[3:40] -A ") + 1
    for keys in (names, names[:3], names[::7] + [b"KUBE-NOPE", b"KUBE-SEP"], [b"X"]):
        for a, b in ((start, len(data)), (start, len(data) - 200), (1, len(data)), (start + 5, len(data) // 2)):
            assert rule_names(data, a, b, keys, counted) == dump_index._rule_names(data, a, b, set(keys), counted)
    assert rule_names(data, start, len(data), [b"with space"], counted) is None
    assert rule_names(data, start, len(data), [b""], counted) is None


@needs_index_native
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from([b"\n", b"-A ", b"[1:2] ", b"[1:] ", b"[:2] ", b"X", b"XY", b"KUBE-SEP-A", b" ", b"\x0b",
                                 b"-j Y", b"[", b"]", b"12"]), max_size=30),
       st.integers(0, 40), st.integers(-5, 200), st.booleans())
def test_rule_names_on_made_up_lines(parts, start, end, counted):
    data = b"".join(parts)
    keys = [b"X", b"XY", b"KUBE-SEP-A", b"Y\x0b"]
    start = max(start, 1)
    assert rule_names(data, start, end, keys, counted) == dump_index._rule_names(data, start, end, set(keys), counted)


def test_the_index_proves_a_hand_moved_rule_wrong():
    """A rule of a chain the analysis read, moved out of its block (a hand
    edit): the lookups are not confirmed, with the compiled scanner or without."""
    lines = REAL.splitlines(keepends=True)
    sep = next(i for i, ln in enumerate(lines) if ln.startswith("-A KUBE-SEP-"))
    chain = lines[sep].split()[1]
    moved = lines[:sep] + lines[sep + 1:]
    nat_at = moved.index("*nat\n")
    moved.insert(next(i for i, ln in enumerate(moved) if i > nat_at and ln.startswith("COMMIT")), lines[sep])
    for on in (True, False):
        with perf.native_scanner(on):
            for text, ok in ((REAL, True), ("".join(moved), False)):
                rs = dump_index.index_iptables_save(text.encode(), "t")
                assert rs is not None
                nat = next(t for t in rs.tables if t.name == "nat")
                try:
                    nat.chains[chain].rules.raw  # noqa: B018
                except dump_index.OutOfOrder:
                    assert not ok
                    continue
                assert dump_index.confirm_lookups(rs) is ok


# --- the DOT writer's quoting shortcuts ----------------------------------------------

from svcinspect.render import dot as render_dot  # noqa: E402
from svcinspect.render.escape import dot_quote  # noqa: E402

QUOTING_SAMPLES = ["", "a", "node", "Node", "_x1", "1x", "ns5/svc5:http", "v4/service/ABCDEFGHIJKLMNOP",
                   'a"b', "a\\b", "a\nb", "a\tb", "a\x7fb", "a\x1bb", "é", "a\u2028b", "a\u202eb", " ", "~", "#", "[x]",
                   "line 12: -d 10.96.0.5/32 -p tcp --dport 80", "3 endpoints\nmasquerade: x"]


@settings(max_examples=500, deadline=None)
@given(st.one_of(st.sampled_from(QUOTING_SAMPLES), st.text(max_size=12),
                 st.text(alphabet="ab\n\t \"\\/:#[]~\x7f\x1b_0", max_size=12)))
def test_dot_ids_and_texts_are_quoted_as_json_and_dot_quote_quote_them(text):
    import json

    assert render_dot._q(text) == json.dumps(text)
    assert render_dot._q(text) == json.dumps(text)  # the cached answer too
    assert render_dot._dq(text) == dot_quote(text)


def test_the_whole_dump_graph_is_the_same_with_and_without_the_fast_paths():
    from svcinspect.graph import build_graph

    rs = parse_iptables_save(REAL, "r")
    fast = render_dot.render_dot(*build_graph(rs, None, None, light=True))
    with perf.all_fast_paths(False):
        slow = render_dot.render_dot(*build_graph(parse_iptables_save(REAL, "r"), None, None))
        assert not perf.fast_paths()
    assert perf.fast_paths()
    assert fast == slow and fast.count(" -> ") > 10


# --- the whole-dump overview's tally of a service chain -------------------------------

from svcinspect import graph as graph_module  # noqa: E402

overview_tally = getattr(bulk.native_scanner, "overview_tally", None)
needs_tally = pytest.mark.skipif(overview_tally is None, reason="the compiled scanner svcinspect.dataplane.iptables._scan "
                                                                "is not built (no C compiler at install time?)")
SEP_JUMP = " -j KUBE-SEP-ABCDEFGHIJKLMN23"
TALLY_LINES = ["-A KUBE-SVC-X -m comment --comment x" + SEP_JUMP, "-A KUBE-SVC-X -j KUBE-MARK-MASQ",
               "-A KUBE-SVC-X -m recent --rcheck --seconds 10800 --reap" + SEP_JUMP, "-A KUBE-SVC-X --rcheck" + SEP_JUMP,
               "-A KUBE-SVC-X--rcheck" + SEP_JUMP[1:], "--rcheck" + SEP_JUMP, "--rchec" + SEP_JUMP, SEP_JUMP,
               SEP_JUMP[1:], SEP_JUMP + "4", SEP_JUMP[:-1] + "1", "-A X -j KUBE-MARK-MASQX", "-j KUBE-MARK-MASQ", "",
               " -A X", "-A X ", "-A X\t-j Y", "-A X -m comment --comment \"é\"" + SEP_JUMP]


@needs_tally
@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(TALLY_LINES), max_size=8), st.sampled_from(["\n", ""]))
def test_the_tally_counts_what_the_regexes_count(lines, end):
    block = "\n".join(lines) + end
    got = overview_tally(block)
    assert got == (False if not block.isascii() else graph_module._tally(block)), block


@needs_tally
def test_the_tally_of_every_service_chain_of_the_real_dump():
    rs = parse_iptables_save(REAL, "r")
    seen = 0
    for table in rs.tables:
        for name in table.chains:
            for _, block in table.chains.blocks(name):
                assert overview_tally(block) == graph_module._tally(block)
                seen += name.startswith("KUBE-SVC-")
    assert seen > 3
    with pytest.raises(TypeError):
        overview_tally(b"-A X\n")
