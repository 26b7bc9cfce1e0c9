"""Property tests: mutated nftables rulesets (text and JSON) give a model and
answers, or svcinspect's own error: never a crash."""

from __future__ import annotations

import ipaddress
import json
from fractions import Fraction

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import FIXTURES
from svcinspect.dataplane.nftables.check import check_rules
from svcinspect.dataplane.nftables.parse import parse_nft
from svcinspect.dataplane.nftables.render import render_ruleset
from svcinspect.dataplane.nftables.services import build_service_ports
from svcinspect.errors import ParseError
from svcinspect.simulate import Environment
from svcinspect.dataplane import simulate
from svcinspect.model.flow import Packet
from svcinspect.trace import conditions

NFT = FIXTURES / "kube-proxy-v1.36.2" / "nftables"
LINES = (NFT / "nft-list-table-ip-kube-proxy.txt").read_text().splitlines()
TOKENS = ["{", "}", ";", ",", ":", ".", "@cluster-ips", "ip", "daddr", "saddr", "vmap", "goto", "jump", "numgen",
          "random", "mod", "0", "3", "map", "dnat", "to", "10.0.0.1", "fd00::1", "10.0.0.0/8", "1-2", '"x"',
          "meta", "mark", "set", "|", "&", "0x4000", "!=", "ct", "state", "new", "fib", "type", "local", "tcp",
          "th", "dport", "elements", "=", "table", "chain", "map", "type filter hook input priority -1;", "\t"]
PACKETS = [Packet(ipaddress.ip_address("10.244.1.7"), ipaddress.ip_address("10.96.10.10"), 80),
           Packet(ipaddress.ip_address("203.0.113.5"), ipaddress.ip_address("192.168.10.11"), 31611)]


def _exercise(text: str) -> None:
    try:
        rs = parse_nft(text, "fuzz")
    except ParseError:
        return
    build_service_ports(rs)
    check_rules(rs)
    render_ruleset(rs)
    for p in PACKETS:
        sim = simulate(rs, p, Environment(frozenset({ipaddress.ip_address("192.168.10.11")})))
        # Alternatives ("if X" / "if not: X") are not probabilities: each set of
        # conditions carries the whole packet at most once.
        groups: dict[tuple, Fraction] = {}
        for o in sim.outcomes:
            key = conditions(o)
            groups[key] = groups.get(key, Fraction(0)) + o.probability
        assert all(0 < v <= 1 for v in groups.values()), groups


@settings(max_examples=150, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, len(LINES) - 1), st.sampled_from(["drop", "dup", "cut", "tok"]),
                          st.sampled_from(TOKENS)), max_size=6))
def test_mutated_text(mutations):
    lines = list(LINES)
    for i, how, tok in mutations:
        i %= len(lines) or 1
        if not lines:
            break
        if how == "drop":
            del lines[i]
        elif how == "dup":
            lines.insert(i, lines[i])
        elif how == "cut":
            lines[i] = lines[i][: len(lines[i]) // 2]
        else:
            words = lines[i].split(" ")
            words.insert(len(words) // 2, tok)
            lines[i] = " ".join(words)
    _exercise("\n".join(lines) + "\n")


DOC = json.loads((NFT / "nft-list-ruleset.json").read_text())


@settings(max_examples=100, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, len(DOC["nftables"]) - 1),
                          st.sampled_from([None, 0, "x", [], {}, {"rule": {}}, {"set": {"name": "s"}}])), max_size=5))
def test_mutated_json(mutations):
    items = list(DOC["nftables"])
    for i, value in mutations:
        items[i % len(items)] = value
    _exercise(json.dumps({"nftables": items}))
