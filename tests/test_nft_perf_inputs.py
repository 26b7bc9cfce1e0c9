"""The nftables readers on input shaped to break them: line breaks other than
``\\n`` inside comments (issue 12 removed ``str.splitlines`` from the iptables
reader; nft text is split the same way), and JSON nested or sized beyond what a
ruleset needs (one-line error, never a traceback)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import FIXTURES, ROOT
from svcinspect.dataplane.nftables.parse import parse_nft
from svcinspect.errors import ParseError

NFT = FIXTURES / "kube-proxy-v1.36.2" / "nftables"
TEXT = (NFT / "nft-list-ruleset.txt").read_text()
ADD = (FIXTURES / "nftables-layouts" / "nft-1.34-1.35.add.nft").read_text()  # kube-proxy's add form

# Each is a line break to str.splitlines(), none is one to nft.
BREAKS = ["\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"]


def _rules(rs):
    return {(t.family, c.name): [(r.text, r.line, r.comment) for r in c.rules]
            for t in rs.tables for c in t.chains.values()}


@pytest.mark.parametrize("ch", BREAKS, ids=[f"U+{ord(c):04X}" for c in BREAKS])
def test_a_comment_holding_a_line_break_character_stays_one_rule(ch):
    old = '"masquerade clusterIP traffic from outside cluster"'
    assert TEXT.count(old) == 2  # ip and ip6
    base = parse_nft(TEXT, "t")
    rs = parse_nft(TEXT.replace(old, f'"masquerade clusterIP{ch}traffic from outside cluster"'), "t")
    assert [d.message for d in rs.diagnostics] == []
    got, want = _rules(rs), _rules(base)
    assert got.keys() == want.keys()
    for key, rules in want.items():
        # same rules, same line numbers (a split would shift every later line)
        assert [(t.replace(ch, " "), ln) for t, ln, _ in got[key]] == [(t, ln) for t, ln, _ in rules], key
    comments = [c for rules in got.values() for _, _, c in rules if c and "clusterIP" in c]
    assert comments == [f"masquerade clusterIP{ch}traffic from outside cluster"] * 2


@pytest.mark.parametrize("ch", ["\x0c", "\u2028"])
def test_an_element_comment_holding_a_line_break_character(ch):
    old = '"default/no-endpoints:http"'
    rs = parse_nft(TEXT.replace(old, f'"default/no-endpoints{ch}:http"'), "t")
    assert [d.message for d in rs.diagnostics] == []
    els = rs.tables[0].sets["no-endpoint-services"].elements
    base = parse_nft(TEXT, "t").tables[0].sets["no-endpoint-services"].elements
    assert [(e.key["elem"]["val"], e.value, e.line) for e in els] == \
        [(e.key["elem"]["val"], e.value, e.line) for e in base]
    assert els[0].comment == f"default/no-endpoints{ch}:http"


def test_kube_proxy_add_commands_with_a_line_break_character_in_a_comment():
    old = '"Reject traffic to invalid ports of ClusterIPs"'
    assert old in ADD
    base = parse_nft(ADD, "a")
    rs = parse_nft(ADD.replace(old, '"Reject traffic\x1cto invalid ports of ClusterIPs"'), "a")
    assert [d.message for d in rs.diagnostics] == [d.message for d in base.diagnostics]
    assert [(k, [ln for _, ln, _ in v]) for k, v in _rules(rs).items()] == \
        [(k, [ln for _, ln, _ in v]) for k, v in _rules(base).items()]
    chk = rs.tables[0].chains["cluster-ips-check"].rules
    assert any(r.comment == "Reject traffic\x1cto invalid ports of ClusterIPs" for r in chk)


def _nested_json(depth: int) -> str:
    """A one-rule ruleset whose rule compares ip daddr with a value nested DEPTH
    arrays deep, in a hooked chain (packet evaluates it)."""
    right = "[" * depth + "1" + "]" * depth
    return ('{"nftables": [{"table": {"family": "ip", "name": "kube-proxy", "handle": 1}}, '
            '{"chain": {"family": "ip", "table": "kube-proxy", "name": "services", "handle": 2, "type": "nat", '
            '"hook": "prerouting", "prio": -100, "policy": "accept"}}, '
            '{"rule": {"family": "ip", "table": "kube-proxy", "chain": "services", "handle": 3, "expr": ['
            '{"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "daddr"}}, "right": '
            + right + '}}, {"accept": null}]}}]}')


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "svcinspect", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=120)


@pytest.mark.parametrize("depth", [200, 5000, 200_000])
def test_json_nested_beyond_the_bound_is_refused_in_one_line(depth, tmp_path):
    limit = sys.getrecursionlimit()
    with pytest.raises(ParseError) as exc:
        parse_nft(_nested_json(depth), "deep.json")
    assert "nested more than 100 levels" in str(exc.value) and "deep.json" in str(exc.value)
    assert sys.getrecursionlimit() == limit  # put back after the bounded decode
    path = tmp_path / "deep.json"
    path.write_text(_nested_json(depth))
    r = _cli("services", "--rules", str(path))
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.count("\n") == 1 and "nested more than 100 levels" in r.stderr and "Traceback" not in r.stderr


def test_json_nested_within_the_bound_is_read_and_every_command_answers(tmp_path):
    path = tmp_path / "nested.json"
    path.write_text(_nested_json(60))
    for argv in (["services"], ["dump"], ["graph", "-o", "dot"], ["check", "--fail-on", "never"],
                 ["packet", "--src", "10.0.0.1", "--dst", "10.96.0.1", "--dport", "80"]):
        r = _cli(*argv, "--rules", str(path))
        assert r.returncode in (0, 1), (argv, r.stderr)
        assert "internal error" not in r.stderr and "Traceback" not in r.stderr
    assert "ip daddr" in _cli("dump", "--rules", str(path)).stdout  # the rule is kept


def test_a_huge_array_of_non_objects_gives_a_bounded_number_of_diagnostics():
    doc = json.loads((NFT / "nft-list-ruleset.json").read_text())
    good = len(doc["nftables"])
    doc["nftables"] += [0] * 200_000
    rs = parse_nft(json.dumps(doc), "big.json")
    said = [d for d in rs.diagnostics if "not nftables objects" in d.message or "not an nftables object" in d.message]
    assert len(said) == 21
    assert said[-1].message.startswith("199980 more items")
    assert [(t.family, t.name) for t in rs.tables] == [("ip", "kube-proxy"), ("ip6", "kube-proxy")]
    assert sum(len(c.rules) for t in rs.tables for c in t.chains.values()) > 80 and good > 0
