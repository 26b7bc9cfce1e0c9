"""The live reader parses iptables-save output while the command prints it
(``dataplane.iptables.stream.SaveStream``): the ruleset must be exactly the one
``parse_iptables_save`` builds from the whole text, whatever the cut points.

Compared: every table (name, family, source, line) with its chains' entries as
the scanner cut them (policy, counters, declaration line, the runs of rule
lines with their first line numbers, declared or not), the chains the parser
lists as undeclared, every diagnostic, the gaps and the origin; or, for input
the parser refuses, the same exception with the same message. With the
compiled scanner and with the pure-Python one, and with the fast paths off.
"""

from __future__ import annotations

import codecs
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import FIXTURES, IPT
from svcinspect import perf
from svcinspect.dataplane.iptables.parse import LazyChains, parse_iptables_save
from svcinspect.dataplane.iptables.stream import SaveStream, parse_pieces
from svcinspect.errors import SvcinspectError
from svcinspect.model.netfilter import Family
from svcinspect.sources.command import _Tally, count_kube

RULES = sorted(p for p in FIXTURES.rglob("*") if p.is_file() and p.suffix in (".txt", ".rules")
               and p.name not in ("versions.txt", "kube-proxy-cmdline.txt"))
SAVES = [p for p in RULES if p.name.startswith(("iptables-save", "ip6tables-save"))]
REAL = (IPT / "iptables-save.txt").read_bytes()


@pytest.fixture(params=["native", "python"], autouse=True)
def scanner(request):
    if request.param == "native" and not perf.native_built():
        pytest.skip("the compiled scanner is not built (setup.py build_ext --inplace)")
    with perf.native_scanner(request.param == "native"):
        yield request.param


def shape(ruleset) -> tuple:
    """Everything parse_iptables_save decides, as plain data."""
    tables = []
    for t in ruleset.tables:
        chains = t.chains
        if isinstance(chains, LazyChains):
            body = {name: list(entry) for name, entry in chains._entries.items()}
        else:
            body = {name: (ch.policy, ch.counters, ch.line, ch.declared, ch.rules.raw) for name, ch in chains.items()}
        kind = "lazy" if isinstance(chains, LazyChains) else type(chains).__name__
        tables.append((t.name, t.family, t.source, t.line, kind, body))
    return (tuple(tables), ruleset.diagnostics, ruleset.gaps, ruleset.origin, ruleset.notes)


def whole(data: bytes, **kw):
    try:
        return shape(parse_iptables_save(data.decode("utf-8", "replace"), "src", **kw))
    except SvcinspectError as exc:
        return (type(exc), str(exc))


def streamed(pieces, piece: int = 64, **kw):
    stream = SaveStream("src", piece=piece, family=kw.pop("family", None))
    for p in pieces:
        stream.feed(p)
    try:
        return shape(stream.finish(**kw)), stream
    except SvcinspectError as exc:
        return (type(exc), str(exc)), stream


def cut(data: bytes, size: int) -> list[bytes]:
    return [data[i:i + size] for i in range(0, len(data), size)] or [b""]


@pytest.mark.parametrize("path", RULES, ids=lambda p: str(p.relative_to(FIXTURES)))
@pytest.mark.parametrize("size", [1, 7, 4096, 1 << 30])
def test_every_fixture_parses_the_same_in_pieces(path, size):
    data = path.read_bytes()
    got, _ = streamed(cut(data, size))
    assert got == whole(data)


@pytest.mark.parametrize("path", SAVES, ids=lambda p: str(p.relative_to(FIXTURES)))
def test_real_saves_stay_on_the_fast_path(path):
    """What iptables-save prints is parsed while it arrives (else the live
    reader would gain nothing), with the family the live reader gives."""
    data = path.read_bytes()
    fam = Family.V6 if path.name.startswith("ip6") else Family.V4
    stream = SaveStream("src", piece=256, family=fam)
    for p in cut(data, 1000):
        stream.feed(p)
    assert stream.on and stream._tables, "the pre-work was switched off for real iptables-save output"
    assert shape(stream.finish()) == shape(parse_iptables_save(data.decode(), "src", family=fam))
    assert stream.prebuilt


def _variants() -> dict[str, bytes]:
    text = REAL.decode()
    lines = text.splitlines(keepends=True)
    commit = max(i for i, ln in enumerate(lines) if ln == "COMMIT\n")  # nat's
    rule = next(i for i, ln in enumerate(lines) if ln.startswith("-A KUBE-SEP-"))
    decl = next(i for i, ln in enumerate(lines) if ln.startswith(":KUBE-SEP-"))
    v = {
        "crlf": text.replace("\n", "\r\n"),
        "lone-cr": text.replace("\n", "\r", 3),
        "no-final-newline": text.rstrip("\n"),
        "nul-at-start": "\x00" + text,
        "nul-later": text[:3000] + "\x00" + text[3000:],
        "log-prefix": "".join("Dec 01 10:00:00 node kube-proxy[1]: " + ln for ln in lines),
        "prompt-and-grep": "root@node:~# iptables-save | grep KUBE\n" + text + "root@node:~#\n",
        "blank-lines": text.replace("COMMIT\n", "\nCOMMIT\n\n"),
        "warning-banner": "# Warning: iptables-legacy tables present, use iptables-legacy-save to see them\n" + text,
        "ip6-header": text.replace("# Generated by iptables-save", "# Generated by ip6tables-save"),
        "declared-twice": "".join(lines[:decl + 1] + [lines[decl]] + lines[decl + 1:]),
        "declared-after-rules": "".join(lines[:commit] + [":LATE - [0:0]\n", "-A LATE -j RETURN\n", ":LATE - [0:0]\n"]
                                        + lines[commit:]),
        "empty-declaration": "".join(lines[:decl] + [": - [0:0]\n"] + lines[decl:]),
        "no-commit": "".join(lines[:commit] + lines[commit + 1:]),
        "commit-outside": "COMMIT\n" + text,
        "table-twice": text + text,
        "rules-before-table": lines[rule] + text,
        "excerpt": "".join(ln for ln in lines if ln.startswith("-A")),
        "new-chain-and-policy": "".join(lines[:commit] + ["-N EXTRA\n", "-P PREROUTING DROP\n"] + lines[commit:]),
        "markdown-star": "* item\n" + text,
        "junk-line": "".join(lines[:rule] + ["this is not a rule\n"] + lines[rule:]),
        "split-chain": "".join(lines[:rule] + lines[rule + 1:commit] + [lines[rule]] + lines[commit:]),
        "undeclared-chain": "".join(lines[:commit] + ["-A NOWHERE -j RETURN\n"] + lines[commit:]),
        "counters": text.replace("-A ", "[3:180] -A "),
        "tabs": text.replace("-A KUBE-SEP-", "-A\tKUBE-SEP-", 2),
        "non-ascii-comment": text.replace('--comment "', '--comment "caf\u00e9 \u2028 ', 5),
        "nft-json": '{"nftables": [{"table": {"family": "ip", "name": "kube-proxy"}}]}\n',
        "nft-text": "table ip kube-proxy {\n}\n",
        "empty": "",
        "only-comments": "# Generated by iptables-save v1.8.9\n# Completed\n",
        "prose": "".join(f"- point {i}\n" for i in range(40)) + lines[rule],
        "huge-line": "".join(lines[:rule] + ["-A KUBE-X " + "x" * 300_000 + "\n"] + lines[rule:]),
    }
    out = {k: t.encode("utf-8") for k, t in v.items()}
    # Bytes that are not UTF-8 (a truncated character, a stray continuation byte).
    out["bad-utf8"] = REAL.replace(b'--comment "', b'--comment "\xe2\x82 \xff', 4)
    out["truncated-character"] = REAL + "-A KUBE-X -m comment --comment \u20ac".encode()[:-1]
    return out


VARIANTS = _variants()


@pytest.mark.parametrize("name", sorted(VARIANTS))
@pytest.mark.parametrize("size", [1, 3, 500, 1 << 30])
def test_odd_and_hostile_input_parses_or_fails_the_same(name, size):
    data = VARIANTS[name]
    got, _ = streamed(cut(data, size), piece=97)
    assert got == whole(data)


@pytest.mark.parametrize("name", ["crlf", "log-prefix", "prompt-and-grep", "declared-twice", "no-commit", "rules-before-table",
                                  "junk-line", "new-chain-and-policy", "nul-later"])
def test_input_the_parser_has_to_say_something_about_goes_to_the_parser(name):
    """The pre-work never guesses at a diagnostic: it hands such text over."""
    data = VARIANTS[name]
    got, stream = streamed(cut(data, 4096), piece=512)
    assert got == whole(data)
    assert stream.prebuilt is False


@pytest.mark.parametrize("strict", [False, True])
@pytest.mark.parametrize("name", ["counters", "junk-line", "warning-banner"])
def test_strict_is_the_parsers_strict(name, strict):
    data = VARIANTS[name]
    got, _ = streamed(cut(data, 333), strict=strict)
    assert got == whole(data, strict=strict)


def test_family_is_the_callers():
    got, _ = streamed(cut(REAL, 1000), family=Family.V6)
    assert got == whole(REAL, family=Family.V6)


@pytest.mark.parametrize("fast", [True, False])
def test_same_with_the_fast_paths_off(fast):
    with perf.all_fast_paths(fast):
        got, stream = streamed(cut(REAL, 1000))
        assert got == whole(REAL) and stream.prebuilt is fast


def test_a_second_finish_gives_the_same_ruleset():
    stream = SaveStream("src", piece=100)
    stream.feed(REAL)
    first = shape(stream.finish())
    assert shape(stream.finish()) == first


def test_a_long_chain_is_not_rescanned_for_every_piece(monkeypatch):
    """The carried segment (one chain's run of rules, which may go on) is
    scanned again only once as much new text has come: linear work however
    the output is cut."""
    from svcinspect.dataplane.iptables import stream as mod

    body = "".join(f"-A KUBE-SERVICES -d 10.0.{i // 250}.{i % 250}/32 -p tcp -j KUBE-SVC-X\n" for i in range(20000))
    data = ("*nat\n:KUBE-SERVICES - [0:0]\n" + body + "COMMIT\n").encode()
    scanned = []
    real = mod.bulk.segments

    def counting(text):
        scanned.append(len(text))
        return real(text)

    monkeypatch.setattr(mod.bulk, "segments", counting)
    got, _ = streamed(cut(data, 512), piece=1024)
    assert got == whole(data)
    assert sum(scanned) <= 4 * len(data) + 4096, (sum(scanned), len(data))


ALL = b"".join(p.read_bytes() for p in SAVES[:3])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.sampled_from([REAL, VARIANTS["bad-utf8"], VARIANTS["non-ascii-comment"], VARIANTS["crlf"], ALL,
                             VARIANTS["counters"], VARIANTS["split-chain"]]),
       cuts=st.lists(st.integers(min_value=0, max_value=1 << 20), max_size=40),
       piece=st.integers(min_value=1, max_value=5000))
def test_arbitrary_byte_cuts(data, cuts, piece):
    points = sorted({c % (len(data) + 1) for c in cuts})
    pieces = [data[a:b] for a, b in zip([0] + points, points + [len(data)])]
    got, _ = streamed(pieces, piece=piece)
    assert got == whole(data)


@settings(max_examples=150, deadline=None)
@given(data=st.binary(max_size=300) | st.text(alphabet="-A :*#\nKUBE\r\"\u00e9\x00[]0123COMMIT", max_size=300)
       .map(lambda t: t.encode("utf-8", "surrogatepass")),
       size=st.integers(min_value=1, max_value=50), piece=st.integers(min_value=1, max_value=100))
def test_random_text_parses_or_fails_the_same(data, size, piece):
    got, _ = streamed(cut(data, size), piece=piece)
    assert got == whole(data)


@settings(max_examples=100, deadline=None)
@given(data=st.sampled_from([REAL, VARIANTS["bad-utf8"], VARIANTS["no-final-newline"], VARIANTS["truncated-character"],
                             b":KUBE-A\n-A KUBE-B\n:KUBE-PROXY-CANARY x\n*nat\n"]),
       size=st.integers(min_value=1, max_value=3000))
def test_the_tally_is_count_kube_of_the_whole_text(data, size):
    tally = _Tally()
    stream = SaveStream("src", observe=tally)
    for p in cut(data, size):
        stream.feed(p)
    stream.close()
    text = data.decode("utf-8", "replace")
    assert stream.text == text
    assert tally.count() == count_kube(text)
    assert tally.tables == (text.startswith("*") or "\n*" in text)
    assert tally.kube_proxy == (":KUBE-SERVICES " in text or ":KUBE-PROXY-CANARY " in text)


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=64), cuts=st.lists(st.integers(min_value=0, max_value=64), max_size=8))
def test_the_incremental_decoder_is_the_whole_decode(data, cuts):
    """The premise of decoding piece by piece: the same text, bad bytes replaced alike."""
    points = sorted({c % (len(data) + 1) for c in cuts})
    dec = codecs.getincrementaldecoder("utf-8")("replace")
    text = "".join(dec.decode(data[a:b]) for a, b in zip([0] + points, points + [len(data)])) + dec.decode(b"", True)
    assert text == data.decode("utf-8", "replace")


def test_parse_pieces_is_parse_iptables_save():
    ruleset = parse_pieces(cut(REAL, 777), "x", piece=300)
    assert shape(ruleset) == shape(parse_iptables_save(REAL.decode(), "x"))


@pytest.mark.parametrize("name", ["warning-banner", "counters", "blank-lines", "ip6-header", "non-ascii-comment",
                                  "bad-utf8", "split-chain", "undeclared-chain", "table-twice", "huge-line",
                                  "no-final-newline"])
def test_what_the_pre_work_reads_itself(name):
    """Shapes the pre-work handles (the parser's own steps, or diagnostics that
    are the parser's own functions at the end), not handed over."""
    data = VARIANTS[name]
    got, stream = streamed(cut(data, 4096), piece=512)
    assert got == whole(data)
    assert stream.prebuilt is True


def _scan_of(table):
    from svcinspect.dataplane.iptables import bulk

    scan = bulk.scan_nat(table)
    return None if scan is None else (scan.cascades, scan.dnat, set(scan.names))


@pytest.mark.parametrize("name", ["real", "split-chain", "counters", "non-ascii-comment", "bad-utf8", "table-twice",
                                  "undeclared-chain"])
@pytest.mark.parametrize("size", [1, 700, 1 << 30])
def test_the_nat_scan_read_while_arriving_is_bulk_scan_nat(name, size):
    """bulk.scan_nat on the streamed nat table answers from what the stream
    read as the chains arrived: the same cascades and DNAT destinations as its
    own two passes over the whole-text parse (a chain that got a second run
    later is dropped from both, as single_blocks leaves it out)."""
    from svcinspect.dataplane.iptables.stream import PrescannedChains

    data = REAL if name == "real" else VARIANTS[name]
    stream = SaveStream("src", piece=300)
    for p in cut(data, size):
        stream.feed(p)
    got = stream.finish().table("nat")
    want = parse_iptables_save(data.decode("utf-8", "replace"), "src").table("nat")
    assert _scan_of(got) == _scan_of(want)
    if name == "table-twice":  # merged into one table of chains: nothing read ahead, no bulk pass
        assert not isinstance(got.chains, PrescannedChains) and _scan_of(got) is None
    else:
        assert isinstance(got.chains, PrescannedChains) and _scan_of(got)[0], "no cascade was read"


def test_split_chains_are_left_out_of_the_nat_scan():
    from svcinspect.dataplane.iptables.stream import PrescannedChains

    data = VARIANTS["split-chain"]
    stream = SaveStream("src", piece=200)
    for p in cut(data, 300):
        stream.feed(p)
    nat = stream.finish().table("nat")
    assert isinstance(nat.chains, PrescannedChains)
    split = [n for n in nat.chains if len(nat.chains.blocks(n) or ()) > 1]
    assert split and not any(n in nat.chains.nat_scan[1].cascades or n in nat.chains.nat_scan[1].dnat for n in split)


def _big(head: str = "", tail: str = "", final_newline: bool = True) -> bytes:
    """The real dump grown past 1 MiB (extra endpoint chains in nat), with
    ``head`` before it and ``tail`` after: the finish reads only the edges of
    such a text, not a joined copy."""
    text = REAL.decode()
    commit = text.rindex("COMMIT\n")
    extra = "".join(f"-A KUBE-SEP-EXTRA{i:06d} -p tcp -m tcp -j DNAT --to-destination 10.1.{i // 250}.{i % 250}:80\n"
                    for i in range(20000))
    out = head + text[:commit] + extra + text[commit:] + tail
    return (out if final_newline else out.rstrip("\n")).encode()


BIG = {
    "plain": _big(),
    "grep-comment-at-the-start": _big(head="# iptables-save | grep KUBE\n"),
    "grep-comment-at-the-end": _big(tail="# sudo iptables-save | grep -v DROP\n"),
    "no-final-newline": _big(tail="# iptables-save | grep KUBE", final_newline=False),
    "log-prefix-at-the-start": _big(head="Dec 01 10:00:00 node kube-proxy[1]: # x\n"),
    "nul-in-the-first-4096": _big(head="#" + "x" * 3000 + "\x00\n"),
}


@pytest.mark.parametrize("name", sorted(BIG))
def test_large_texts_read_by_their_edges_parse_the_same(name):
    data = BIG[name]
    assert len(data) > 1 << 20
    got, stream = streamed(cut(data, 65536), piece=1 << 18)
    assert got == whole(data)
    if name in ("plain", "grep-comment-at-the-start", "grep-comment-at-the-end", "no-final-newline"):
        assert stream.prebuilt is True
    if "grep" in name:
        assert any("grep" in g for g in got[2]), "the grep the comment shows is not in the gaps"


def test_a_long_line_arriving_in_many_reads_is_not_copied_for_each():
    """A 16 MB line with no line break, read 64 KiB at a time: kept as the
    pieces read until its end comes (joining the line so far on every read
    would copy gigabytes for a long one), and parsed as the parser parses it."""
    line = b"-A KUBE-X " + b"x" * (16 << 20)
    head = b"*nat\n:KUBE-X - [0:0]\n"
    stream = SaveStream("src")
    stream.feed(head)
    for i in range(0, len(line), 1 << 16):
        stream.feed(line[i:i + (1 << 16)])
    assert len(stream._partial) == -(-len(line) // (1 << 16)) and max(map(len, stream._partial)) == 1 << 16
    stream.feed(b"\nCOMMIT\n")
    got = stream.finish()
    assert stream.prebuilt and got.table("nat").chains.blocks("KUBE-X")[0][1] == line.decode() + "\n"
    assert shape(got) == whole(head + line + b"\nCOMMIT\n")
