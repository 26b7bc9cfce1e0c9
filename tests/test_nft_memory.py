"""nftables mode at 20000 services within 500 MB: the reader's memory savings
change memory, never answers.

The text reader keeps kube-proxy's load-balancing rules (``dnat ip to numgen
random mod N map { ... }``) as their text and builds their statements on each
use (``NftRule.exprs``): the statements built must be exactly what the full
decoder gives, on every fixture and on hand-edited lines that must be declined
(decoded in full instead). Every command must print the same bytes with the
deferral on and off (``SVCINSPECT_NO_FAST=1`` / ``perf.all_fast_paths(False)``).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import FIXTURES
from svcinspect import perf
from svcinspect.dataplane.nftables import parse as P

NFT_TEXT = sorted(p for p in FIXTURES.rglob("*") if p.is_file() and (
    p.suffix == ".nft" and not p.name.endswith(".add.nft") or p.name.startswith("nft-list-") and p.suffix == ".txt"))
NFT_JSON = sorted(p for p in FIXTURES.rglob("nft-list-*.json"))
LINE = "meta l4proto tcp dnat ip to numgen random mod 3 map { 0 : 10.244.1.5 . 8080, 1 : 10.244.2.5 . 8080, 2 : " \
       "10.244.3.5 . 8080 }"


def _rules(rs):
    return [r for t in rs.tables for c in t.chains.values() for r in c.rules]


def test_the_fixture_lists_are_not_empty():
    assert len(NFT_TEXT) >= 6 and NFT_JSON


@pytest.mark.parametrize("path", NFT_TEXT, ids=lambda p: str(p.relative_to(FIXTURES)))
def test_deferred_rules_decode_as_the_full_decoder_does(path):
    rs = P.parse_nft(path.read_text(), path.name)
    for r in _rules(rs):
        full = P.parse_rule_text(r.text, r.family)
        assert r.exprs == full[0], (r.line, r.text)
        if r.stored_exprs is None:
            assert full[1] is None and full[2] is None and r.unknown is None and r.comment is None


def test_the_real_tables_have_deferred_rules():
    """Guard against comparing the full decoder with itself: kube-proxy v1.36.2's
    own table has multi-endpoint ports, whose rules the reader defers."""
    text = (FIXTURES / "kube-proxy-v1.36.2" / "nftables" / "nft-list-ruleset.txt").read_text()
    deferred = [r for r in _rules(P.parse_nft(text, "x")) if r.stored_exprs is None]
    assert deferred and all(" numgen random mod " in r.text for r in deferred)
    with perf.all_fast_paths(False):
        assert all(r.stored_exprs is not None for r in _rules(P.parse_nft(text, "x")))


@pytest.mark.parametrize("line,deferred", [
    (LINE, True),
    (LINE.replace("tcp", "udp"), True),
    (LINE.replace("dnat ip to", "dnat ip6 to").replace("10.244.1.5", "fd00:10:244::5"), True),
    (LINE.replace("mod 3 map { 0 : 10.244.1.5 . 8080, 1 : 10.244.2.5 . 8080, 2 : 10.244.3.5 . 8080",
                  "mod 1 map { 0 : 10.244.1.5 . 8080"), True),
    (LINE.replace("random", "inc"), True),
    (LINE.replace("2 : 10.244.3.5 . 8080", "256 : 10.244.3.5 . 0").replace("mod 3", "mod 300"), True),
    (LINE.replace(" . 8080", " . 65535"), True),
    (LINE.replace(" 8080,", " 08080,", 1), False),          # int("08080", 0) fails: the full decoder says so
    (LINE.replace("10.244.1.5", "10.244.1.0/24"), False),    # a prefix, not a plain address
    (LINE.replace("10.244.1.5", "10.244.1.5-10.244.1.9"), False),
    (LINE.replace("0 : ", "0x0 : "), False),
    (LINE.replace("mod 3 map", "mod 3 offset 1 map"), False),
    (LINE + " fully-random", False),
    (LINE + ' comment "x"', False),
    (LINE.replace(" : 10.244.2.5", "  : 10.244.2.5"), False),
    (LINE.replace("tcp", "6"), False),
    (LINE.replace("8080 }", "8080 , }"), False),
    ("counter " + LINE, False),
])
def test_a_hand_edited_rule_is_deferred_only_in_the_exact_shape(line, deferred):
    text = ("table ip kube-proxy {\n\tchain service-X {\n\t\t" + line + "\n\t}\n}\n")
    r = _rules(P.parse_nft(text, "x"))[0]
    assert (r.stored_exprs is None) == deferred
    full = P.parse_rule_text(line, "ip")
    assert r.exprs == full[0] and r.unknown == full[2]
    assert P.decode_deferred(line, "ip") == full[0]  # a text it did not defer is decoded in full


def test_each_use_gets_fresh_values():
    """Nothing built for one caller is seen by the next (values are never shared
    mutable state across uses)."""
    text = "table ip kube-proxy {\n\tchain service-X {\n\t\t" + LINE + "\n\t}\n}\n"
    r = _rules(P.parse_nft(text, "x"))[0]
    a, b = r.exprs, r.exprs
    assert a == b and a[1] is not b[1]


def _commands(path: Path) -> list[list[str]]:
    r = ["--rules", str(path)]
    cmds = [["services", *r], ["services", *r, "-o", "json"], ["check", *r, "--fail-on", "never"],
            ["check", *r, "-o", "json", "--fail-on", "never"], ["graph", *r, "-o", "dot", "--out", OUT], ["dump", *r],
            ["trace", "default/hello-world", *r, "--node-ip", "172.18.0.2"],
            ["packet", *r, "--src", "10.244.1.7", "--dst", "10.96.0.10", "--dport", "53", "--proto", "udp"]]
    objects = path.parent / "objects.json"
    if objects.exists():
        cmds.append(["services", *r, "--objects", str(objects), "-o", "json"])
    return cmds


OUT = "@OUT@"  # graph writes bytes to the real stdout, past capsys: give it a file


def _run(cli, args, on, out: Path):
    out.unlink(missing_ok=True)
    with perf.all_fast_paths(on):
        r = cli(*[str(out) if a == OUT else a for a in args])
    return r.code, r.out, r.err, out.read_bytes() if out.exists() else None


@pytest.mark.parametrize("path", NFT_TEXT + NFT_JSON, ids=lambda p: str(p.relative_to(FIXTURES)))
def test_every_command_prints_the_same_with_and_without_deferral(cli, path, tmp_path):
    for args in _commands(path):
        slow, fast = _run(cli, args, False, tmp_path / "slow"), _run(cli, args, True, tmp_path / "fast")
        assert fast == slow, args
        assert slow[0] in (0, 1, 2), (args, slow[2])
        assert slow[1] or slow[2] or slow[3], args  # it printed something to compare


# --- JSON read item by item --------------------------------------------------------

JSON_TEXT = (FIXTURES / "kube-proxy-v1.36.2" / "nftables" / "nft-list-ruleset.json").read_text()


def _reading(text: str, on: bool):
    """What the JSON reader makes of ``text``: the model (rules, sets, chains and
    diagnostics as plain values) or the error, with the item-by-item reading on
    or off."""
    from svcinspect.errors import SvcinspectError

    with perf.all_fast_paths(on):
        try:
            rs = P.parse_nft(text, "x.json")
        except SvcinspectError as exc:
            return type(exc).__name__, str(exc)
    return ([(t.family, t.name, t.line, t.handle, t.comment,
              [(c.name, c.line, c.type, c.hook, c.priority, c.policy,
                [(r.chain, r.exprs, r.text, r.line, r.handle, r.comment, r.unknown) for r in c.rules])
               for c in t.chains.values()],
              [(s.name, s.line, s.key_type, s.flags, [(e.key, e.value, e.comment, e.line) for e in s.elements])
               for s in t.sets.values()]) for t in rs.tables],
            [(d.severity, d.message, d.line, d.text) for d in rs.diagnostics], rs.form, rs.complete)


def _deep(n: int) -> str:
    return '{"rule": {"family": "ip", "table": "kube-proxy", "chain": "c", "expr": ' + "[" * n + "]" * n + "}}"


JSON_VARIANTS = {
    "as listed": JSON_TEXT,
    "pretty-printed": __import__("json").dumps(__import__("json").loads(JSON_TEXT), indent=2),
    "spaces and newlines around": "\n  " + JSON_TEXT.replace('{"nftables": [', '{ "nftables" :\n[ ', 1) + " \r\n",
    "empty array": '{"nftables": []}',
    "empty array, spaced": '{"nftables": [ ] }',
    "invalid after the first items": JSON_TEXT.replace("}}, {", "}} {", 5)[:len(JSON_TEXT)],
    "cut short": JSON_TEXT[: len(JSON_TEXT) // 2],
    "text after the end": JSON_TEXT + " x",
    "a second document": JSON_TEXT + JSON_TEXT,
    "nftables given twice": JSON_TEXT[:-1] + ', "nftables": []}',
    "another key after": JSON_TEXT[:-1] + ', "extra": 1}',
    "a byte-order mark": "\ufeff" + JSON_TEXT,
    "nested 98 levels (within)": '{"nftables": [' + _deep(94) + "]}",
    "nested 101 levels": '{"nftables": [' + _deep(97) + "]}",
    "nested deeper than the interpreter recurses": '{"nftables": [' + _deep(100000) + "]}",
    "deep, then invalid": '{"nftables": [' + _deep(200) + ", x]}",
    "items that are not objects": '{"nftables": [1, "two", [3], {"a": 1, "b": 2}]}',
    "not the nftables key": '{"other": []}',
    "nftables not an array": '{"nftables": {}}',
    "a bare array": "[1, 2]",
}


@pytest.mark.parametrize("name", JSON_VARIANTS)
def test_json_read_item_by_item_is_read_as_a_whole_document_is(name):
    text = JSON_VARIANTS[name]
    fast, slow = _reading(text, True), _reading(text, False)
    assert fast == slow
    if name in ("as listed", "pretty-printed"):
        assert isinstance(fast[0], list) and fast[0], "a model, not an error"


def test_the_json_reader_streams_the_real_listing_and_defers_its_rules():
    items = list(P._stream_items(JSON_TEXT))
    assert items == __import__("json").loads(JSON_TEXT)["nftables"]
    with perf.all_fast_paths(True):
        rules = _rules(P.parse_nft(JSON_TEXT, "x.json"))
    assert any(r.stored_exprs is None for r in rules)
    with pytest.raises(P._NotStreamable):
        list(P._stream_items(JSON_VARIANTS["nested 101 levels"]))
