"""nftables reader: text as nft prints it and ``nft -j`` JSON, into one model.

The strongest check is the real capture read both ways: kube-proxy v1.36.2's
ruleset as ``nft list ruleset`` text and as ``nft -j list ruleset`` JSON must
give the same statements, sets, maps and elements (handles aside). The
expression table pins each kind of statement to the JSON shape nft itself gives.
"""

from __future__ import annotations

import json

import pytest

from conftest import FIXTURES, WILD
from svcinspect.dataplane.nftables.parse import parse_nft, parse_priority, parse_rule_text, parse_seconds
from svcinspect.parse.recognise import looks_like_nft
from svcinspect.dataplane.nftables.render import render_exprs, render_ruleset
from svcinspect.errors import NotADumpError, ParseError, Severity

NFT = FIXTURES / "kube-proxy-v1.36.2" / "nftables"


@pytest.fixture(scope="module")
def both():
    text = parse_nft((NFT / "nft-list-ruleset.txt").read_text(), "nft-list-ruleset.txt")
    js = parse_nft((NFT / "nft-list-ruleset.json").read_text(), "nft-list-ruleset.json")
    return text, js


def test_text_and_json_of_the_real_capture_read_the_same(both):
    text, js = both
    assert [(t.family, t.name) for t in text.tables] == [("ip", "kube-proxy"), ("ip6", "kube-proxy")]
    assert [(t.family, t.name) for t in js.tables] == [("ip", "kube-proxy"), ("ip6", "kube-proxy")]
    assert text.diagnostics == () and js.diagnostics == ()
    n_rules = n_elems = 0
    for tt, jt in zip(text.tables, js.tables):
        assert tt.comment == "rules for kube-proxy"  # nft 1.0.6 -j leaves table comments out
        assert set(tt.chains) == set(jt.chains)
        for name, c in tt.chains.items():
            jc = jt.chains[name]
            assert (c.type, c.hook, c.priority, c.policy) == (jc.type, jc.hook, jc.priority, jc.policy), name
            assert [(r.exprs, r.comment) for r in c.rules] == [(r.exprs, r.comment) for r in jc.rules], name
            # JSON rules are rendered back to the text nft printed, for quoting
            assert [r.text for r in c.rules] == [r.text for r in jc.rules], name
            n_rules += len(c.rules)
        assert set(tt.sets) == set(jt.sets)
        for name, s in tt.sets.items():
            js_ = jt.sets[name]
            assert (s.is_map, s.key_type, s.data_type, s.timeout, s.comment) == \
                (js_.is_map, js_.key_type, js_.data_type, js_.timeout, js_.comment), name
            assert [(e.key, e.value) for e in s.elements] == [(e.key, e.value) for e in js_.elements], name
            n_elems += len(s.elements)
    assert n_rules > 80 and n_elems > 90


def test_lines_and_positions_are_kept_for_quoting(both):
    text, js = both
    lines = (NFT / "nft-list-ruleset.txt").read_text().splitlines()
    svc = text.tables[0].chains["services"]
    assert all(lines[r.line - 1].strip() == r.text for r in svc.rules)
    m = text.tables[0].sets["no-endpoint-services"]
    e = m.elements[0]
    assert e.comment == "default/no-endpoints:http" and "10.96.50.10 . tcp . 80" in lines[e.line - 1]
    items = json.loads((NFT / "nft-list-ruleset.json").read_text())["nftables"]
    jr = js.tables[0].chains["services"].rules[0]
    assert items[jr.line - 1]["rule"]["handle"] == jr.handle


IP = {"payload": {"protocol": "ip", "field": "daddr"}}
SADDR = {"payload": {"protocol": "ip", "field": "saddr"}}
MARK = {"meta": {"key": "mark"}}
L4 = {"meta": {"key": "l4proto"}}
DPORT = {"payload": {"protocol": "th", "field": "dport"}}

EXPRESSIONS = [
    ("ct state new jump firewall-check",
     [{"match": {"op": "in", "left": {"ct": {"key": "state"}}, "right": "new"}}, {"jump": {"target": "firewall-check"}}]),
    ("ct status dnat accept", [{"match": {"op": "in", "left": {"ct": {"key": "status"}}, "right": "dnat"}},
                               {"accept": None}]),
    ("ip daddr @cluster-ips reject", [{"match": {"op": "==", "left": IP, "right": "@cluster-ips"}},
                                      {"reject": {"type": "icmp", "expr": "port-unreachable"}}]),
    ("ip saddr != 10.244.0.0/16 drop",
     [{"match": {"op": "!=", "left": SADDR, "right": {"prefix": {"addr": "10.244.0.0", "len": 16}}}}, {"drop": None}]),
    ("ip saddr != { 198.51.100.0/25, 203.0.113.0/24 } drop",
     [{"match": {"op": "!=", "left": SADDR, "right": {"set": [{"prefix": {"addr": "198.51.100.0", "len": 25}},
                                                               {"prefix": {"addr": "203.0.113.0", "len": 24}}]}}},
      {"drop": None}]),
    ("ip daddr . meta l4proto . th dport vmap @service-ips",
     [{"vmap": {"key": {"concat": [IP, L4, DPORT]}, "data": "@service-ips"}}]),
    ("meta mark & 0x00004000 != 0x00000000 meta mark set meta mark ^ 0x00004000 masquerade fully-random",
     [{"match": {"op": "!=", "left": {"&": [MARK, 16384]}, "right": 0}},
      {"mangle": {"key": MARK, "value": {"^": [MARK, 16384]}}}, {"masquerade": {"flags": "fully-random"}}]),
    ("meta mark set meta mark | 0x00004000", [{"mangle": {"key": MARK, "value": {"|": [MARK, 16384]}}}]),
    ("fib saddr type local goto service-X", [{"match": {"op": "==", "left": {"fib": {"result": "type",
                                                                                      "flags": ["saddr"]}},
                                                       "right": "local"}}, {"goto": {"target": "service-X"}}]),
    ("meta l4proto tcp dnat ip to numgen random mod 2 map { 0 : 10.244.1.1 . 80, 1 : 10.244.2.1 . 80 }",
     [{"match": {"op": "==", "left": L4, "right": "tcp"}},
      {"dnat": {"family": "ip", "addr": {"map": {"key": {"numgen": {"mode": "random", "mod": 2, "offset": 0}},
                                                 "data": {"set": [[0, {"concat": ["10.244.1.1", 80]}],
                                                                  [1, {"concat": ["10.244.2.1", 80]}]]}}}}}]),
    ("numgen random mod 10 vmap { 0-2 : goto endpoint-A, 3-9 : goto endpoint-B }",
     [{"vmap": {"key": {"numgen": {"mode": "random", "mod": 10, "offset": 0}},
                "data": {"set": [[{"range": [0, 2]}, {"goto": {"target": "endpoint-A"}}],
                                 [{"range": [3, 9]}, {"goto": {"target": "endpoint-B"}}]]}}}]),
    ("meta l4proto tcp dnat to 10.244.1.70:8080", [{"match": {"op": "==", "left": L4, "right": "tcp"}},
                                                   {"dnat": {"addr": "10.244.1.70", "port": 8080}}]),
    ("meta l4proto tcp dnat ip to 10.244.1.5 . 8080",  # 1.37: one endpoint, no numgen
     [{"match": {"op": "==", "left": L4, "right": "tcp"}},
      {"dnat": {"family": "ip", "addr": {"concat": ["10.244.1.5", 8080]}}}]),
    ("update @affinity-X { ip saddr }", [{"set": {"op": "update", "elem": SADDR, "set": "@affinity-X"}}]),
    ("ip daddr 10.43.0.1 tcp dport 443 ip saddr != 10.42.0.0/16 jump mark-for-masquerade",
     [{"match": {"op": "==", "left": IP, "right": "10.43.0.1"}},
      {"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 443}},
      {"match": {"op": "!=", "left": SADDR, "right": {"prefix": {"addr": "10.42.0.0", "len": 16}}}},
      {"jump": {"target": "mark-for-masquerade"}}]),
    ("ct state established,related accept",
     [{"match": {"op": "in", "left": {"ct": {"key": "state"}}, "right": ["established", "related"]}},
      {"accept": None}]),
    ('iifname "lo" counter packets 3 bytes 180 return',
     [{"match": {"op": "==", "left": {"meta": {"key": "iifname"}}, "right": "lo"}},
      {"counter": {"packets": 3, "bytes": 180}}, {"return": None}]),
    ("tcp dport 30000-32767 accept", [{"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}},
                                                 "right": {"range": [30000, 32767]}}}, {"accept": None}]),
]


@pytest.mark.parametrize("text,want", EXPRESSIONS, ids=[e[0][:40] for e in EXPRESSIONS])
def test_expression_kinds(text, want):
    exprs, comment, unknown = parse_rule_text(text, "ip")
    assert unknown is None
    assert list(exprs) == want


def test_comment_and_unknown_statements():
    exprs, comment, unknown = parse_rule_text('ip daddr 10.0.0.1 drop comment "a b"', "ip")
    assert comment == "a b" and exprs[-1] == {"drop": None}
    exprs, _, unknown = parse_rule_text("ip daddr 10.0.0.1 quota over 10 mbytes drop", "ip")
    assert unknown and "quota" in unknown
    assert exprs[1] == {"unknown": "quota over 10 mbytes"} and exprs[2] == {"drop": None}  # the verdict still counts


def test_rendering_gives_back_what_nft_prints():
    for line in ("meta mark & 0x00004000 != 0x00000000 meta mark set meta mark ^ 0x00004000 masquerade fully-random",
                 "ip6 daddr . meta l4proto . th dport vmap @service-ips",
                 "ip saddr != { 198.51.100.0/25, 203.0.113.0/24 } drop"):
        assert render_exprs(parse_rule_text(line, "ip")[0]) == line


@pytest.mark.parametrize("text,value", [("dstnat - 10", -110), ("-110", -110), ("filter", 0), ("srcnat", 100),
                                        ("dstnat", -100), ("mangle + 5", -145), ("bogus", None)])
def test_priorities(text, value):
    assert parse_priority(text) == value


def test_seconds():
    assert parse_seconds("10m") == 600 and parse_seconds("3h") == 10800 and parse_seconds("1h30m5s") == 5405
    assert parse_seconds("abc") is None


HANDLES = """table ip kube-proxy { # handle 3
\tcomment "rules for kube-proxy"
\tset cluster-ips { # handle 5
\t\ttype ipv4_addr
\t\telements = { 10.96.0.1 }
\t}
\tchain nat-prerouting { # handle 14
\t\ttype nat hook prerouting priority dstnat; policy accept;
\t\tjump services # handle 28
\t}
\tchain services { # handle 26
\t\tip daddr @cluster-ips meta mark set meta mark | 0x00004000 # handle 51
\t}
}
"""


def test_handles_with_nft_a():
    rs = parse_nft(HANDLES, "a.nft")
    t = rs.tables[0]
    assert t.handle == 3 and t.chains["nat-prerouting"].handle == 14
    r = t.chains["nat-prerouting"].rules[0]
    assert (r.handle, r.text, r.exprs) == (28, "jump services", ({"jump": {"target": "services"}},))
    assert t.chains["nat-prerouting"].priority == -100
    assert t.sets["cluster-ips"].handle == 5


def test_spaces_instead_of_tabs_older_layout_from_k3s():
    rs = parse_nft((WILD / "036-kube-proxy-nftables-k3s-full-table-spaces.nft").read_text(), "k3s")
    t = rs.tables[0]
    assert not [d for d in rs.diagnostics if d.severity >= 1]
    assert t.chains["filter-prerouting"].priority == -110 and t.chains["filter-output-post-dnat"].priority == -90
    assert "mark-for-masquerade" in t.chains
    assert len(t.sets["service-ips"].elements) == 9
    assert not any(r.unknown for c in t.chains.values() for r in c.rules)


def test_truncated_and_elided_pastes_are_incomplete_with_line_numbers():
    text = HANDLES.replace("\t\tjump services # handle 28\n", "\t\tjump services\n\t\t...\n")
    rs = parse_nft(text, "paste")
    assert not rs.complete
    assert any(d.line == 10 and "elision" in d.message for d in rs.diagnostics)
    cut = "\n".join(HANDLES.splitlines()[:11])
    rs = parse_nft(cut, "cut")
    assert not rs.complete and any("not closed" in d.message for d in rs.diagnostics)
    with pytest.raises(ParseError) as exc:
        parse_nft(cut, "cut", strict=True)
    assert "cut:" in str(exc.value)


def test_detection_and_refusals():
    assert looks_like_nft((NFT / "nft-list-ruleset.txt").read_text())
    assert looks_like_nft((NFT / "nft-list-ruleset.json").read_text())
    assert not looks_like_nft("*nat\n:PREROUTING ACCEPT [0:0]\nCOMMIT\n")
    with pytest.raises(NotADumpError):
        parse_nft('{"foo": 1}', "x.json")
    with pytest.raises(ParseError) as exc:
        parse_nft('{"nftables": [', "bad.json")
    assert "bad.json" in str(exc.value)


def test_canonical_dump_reads_back_the_same(both):
    text, _ = both
    again = parse_nft(render_ruleset(text), "again")
    for a, b in zip(text.tables, again.tables):
        assert {n: [r.exprs for r in c.rules] for n, c in a.chains.items()} == \
            {n: [r.exprs for r in c.rules] for n, c in b.chains.items()}
        assert {n: [(e.key, e.value) for e in s.elements] for n, s in a.sets.items()} == \
            {n: [(e.key, e.value) for e in s.elements] for n, s in b.sets.items()}
        assert {n: c.priority for n, c in a.chains.items()} == {n: c.priority for n, c in b.chains.items()}


ONE_LINE = '''table ip kube-proxy {
	set cluster-ips { type ipv4_addr; comment "Active ClusterIPs; one line"; elements = { 10.96.0.1 } }
	map service-ips { type ipv4_addr . inet_proto . inet_service : verdict; elements = { 10.96.0.1 . tcp . 443 : goto service-2QRHZV4L-default/kubernetes/tcp/https } }
	chain services {
		ip daddr . meta l4proto . th dport vmap @service-ips
	}
	chain service-2QRHZV4L-default/kubernetes/tcp/https {
		meta l4proto tcp dnat to 192.168.10.11:6443
	}
}
'''

MULTI_LINE = '''table ip kube-proxy {
	set cluster-ips {
		type ipv4_addr
		comment "Active ClusterIPs; one line"
		elements = { 10.96.0.1 }
	}

	map service-ips {
		type ipv4_addr . inet_proto . inet_service : verdict
		elements = { 10.96.0.1 . tcp . 443 : goto service-2QRHZV4L-default/kubernetes/tcp/https }
	}

	chain services {
		ip daddr . meta l4proto . th dport vmap @service-ips
	}
	chain service-2QRHZV4L-default/kubernetes/tcp/https {
		meta l4proto tcp dnat to 192.168.10.11:6443
	}
}
'''


def test_one_line_set_and_map_blocks_read_as_the_listed_form():
    """`nft -f` files written by hand put a set on one line (`set x { type ...; elements = {...} }`);
    nft accepts it and lists it on several lines: both read the same, each element at its line."""
    one, multi = parse_nft(ONE_LINE, "one"), parse_nft(MULTI_LINE, "multi")
    assert not one.diagnostics
    t1, t2 = one.tables[0], multi.tables[0]
    for name in ("cluster-ips", "service-ips"):
        a, b = t1.sets[name], t2.sets[name]
        assert (a.is_map, a.key_type, a.data_type, a.comment) == (b.is_map, b.key_type, b.data_type, b.comment)
        assert [(e.key, e.value) for e in a.elements] == [(e.key, e.value) for e in b.elements]
    assert t1.sets["service-ips"].line == 3 and {e.line for e in t1.sets["service-ips"].elements} == {3}
    assert t1.sets["cluster-ips"].comment == "Active ClusterIPs; one line"  # a quoted ; does not split


def test_an_unbalanced_one_line_block_is_still_reported():
    rs = parse_nft(ONE_LINE.replace("elements = { 10.96.0.1 } }", "elements = { 10.96.0.1 }"), "x")
    assert any(d.severity >= Severity.WARNING for d in rs.diagnostics)
