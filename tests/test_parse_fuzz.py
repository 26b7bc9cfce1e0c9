"""Property tests: arbitrary and mutated dumps give a model or our own error, nothing else."""

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fuzzlines import LINES, mutate
from svcinspect.errors import ParseError
from svcinspect.dataplane.iptables.parse import parse_iptables_save
from svcinspect.render.iptables import render_ruleset
from svcinspect.dataplane import build_service_ports

TOKENS = ["-A", "KUBE-SVC-DZ6LTOHRG6HQWHYE", "-j", "-m", "comment", "--comment", '"', "!", "-s", "-d", "10.0.0.1/32",
          "fd00::1", "-p", "tcp", "--dport", "80", "*nat", "COMMIT", ":X", "- [0:0]", "[1:2]", "\\", "'", "\t",
          "statistic", "--probability", "0.5", "DNAT", "--to-destination", "-g", "KUBE-SEP-X", "-N", "-P"]


def _exercise(text: str) -> None:
    try:
        rs = parse_iptables_save(text, "fuzz")
    except ParseError:
        return
    for t in rs.tables:
        for ch in t.chains.values():
            for rule in ch.rules:
                assert rule.line >= 1
    build_service_ports(rs)
    render_ruleset(rs)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=400))
def test_arbitrary_text(text):
    _exercise(text)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(LINES), max_size=60), st.data())
def test_mutated_real_lines(lines, data):
    _exercise("\n".join(mutate(lines, data, TOKENS)))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(TOKENS), max_size=30))
def test_token_soup_rules(tokens):
    _exercise("*nat\n:X - [0:0]\n-A X " + " ".join(tokens) + "\nCOMMIT\n")
