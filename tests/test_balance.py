"""balance without a kernel: the chi-square distribution against published
critical values, conntrack parsing, and the verdicts on real captured counters
and on counts a test composes (each verdict and its reason)."""

from __future__ import annotations

import json
import math
from fractions import Fraction

import pytest

from conftest import IPT
from svcinspect.balance import (ALPHA, Verdict, balance_port, chi2_sf, chi_square_test,
                                regularized_gamma_q)
from svcinspect.errors import ParseError
from svcinspect.parse.conntrack import parse_conntrack
from svcinspect.dataplane.iptables.parse import parse_iptables_save
from svcinspect.dataplane import select_service_ports

COUNTERS = IPT / "iptables-save-counters.txt"

# (statistic, df, upper-tail probability): standard chi-square tables.
CRITICAL = [
    (3.841458820694124, 1, 0.05), (6.634896601021214, 1, 0.01), (0.454936423119572, 1, 0.5),
    (5.991464547107979, 2, 0.05), (11.070497693516351, 5, 0.05), (23.209251158954356, 10, 0.01),
    (9.341817765591966, 10, 0.5), (124.34211340400407, 100, 0.05), (10.827566170662733, 1, 0.001),
]


@pytest.mark.parametrize("stat,df,p", CRITICAL)
def test_chi2_survival_matches_published_critical_values(stat, df, p):
    assert chi2_sf(stat, df) == pytest.approx(p, rel=1e-7)


@pytest.mark.parametrize("x", [0.1, 1.0, 2.0, 7.5, 40.0])
def test_gamma_q_closed_forms(x):
    # Q(1, x) = e^-x; Q(1/2, x) = erfc(sqrt(x)): both branches (series and fraction).
    assert regularized_gamma_q(1.0, x) == pytest.approx(math.exp(-x), rel=1e-12)
    assert regularized_gamma_q(0.5, x) == pytest.approx(math.erfc(math.sqrt(x)), rel=1e-10)


def test_chi_square_test_counts_and_minimum():
    t = chi_square_test([30, 10], [Fraction(1, 2), Fraction(1, 2)])
    assert (t.statistic, t.df, t.total, t.minimum) == (10.0, 1, 40, 10)
    assert t.p_value == pytest.approx(chi2_sf(10.0, 1))
    # a count where the rules give no share: impossible under them
    assert chi_square_test([1, 5], [Fraction(0), Fraction(1)]).p_value == 0.0
    assert chi_square_test([1, 1, 1], [Fraction(1, 3)] * 3).enough is False


FLOW = ("tcp      6 431999 ESTABLISHED src=10.250.0.2 dst=10.96.10.10 sport=40000 dport=80 "
        "src=10.244.1.10 dst=10.251.0.1 sport=8080 dport=40000 [ASSURED] mark=0 use=1")


@pytest.mark.parametrize("line,expect", [
    (FLOW, ("tcp", "ESTABLISHED", "10.96.10.10", 80, "10.244.1.10", 8080, True, True)),
    ("ipv4     2 " + FLOW.replace("ESTABLISHED", "TIME_WAIT"),
     ("tcp", "TIME_WAIT", "10.96.10.10", 80, "10.244.1.10", 8080, True, False)),
    ("udp      17 28 src=10.250.0.2 dst=10.96.0.10 sport=5353 dport=53 [UNREPLIED] src=10.244.2.2 "
     "dst=10.250.0.2 sport=53 dport=5353 mark=0 use=1", ("udp", None, "10.96.0.10", 53, "10.244.2.2", 53, True, True)),
    ("tcp      6 86399 ESTABLISHED src=fd00::2 dst=fd00:10:96::1 sport=1 dport=443 src=fd00::2 dst=fd00::1 "
     "sport=443 dport=1 [ASSURED] mark=0 zone=3 use=1", ("tcp", "ESTABLISHED", "fd00:10:96::1", 443, "fd00::2", 443,
                                                         True, True)),
    ("icmp     1 29 src=10.0.0.1 dst=10.0.0.2 type=8 code=0 id=7 src=10.0.0.2 dst=10.0.0.1 type=0 code=0 id=7 mark=0 "
     "use=1", ("icmp", None, "10.0.0.2", None, "10.0.0.2", None, False, True)),
])
def test_parse_conntrack_lines(line, expect):
    entries, diags = parse_conntrack(line + "\nconntrack v1.4.7 (conntrack-tools): 1 flow entries have been shown.\n")
    e = entries[0]
    assert (e.protocol, e.state, e.original.dst, e.original.dport, e.reply.src, e.reply.sport, e.dnat,
            e.open) == expect
    assert diags == []


def test_parse_conntrack_bad_lines_are_diagnostics_or_refused():
    entries, diags = parse_conntrack(FLOW + "\ngarbage here\n", "ct.txt")
    assert len(entries) == 1 and diags[0].line == 2 and diags[0].source == "ct.txt"
    with pytest.raises(ParseError, match=r"ct.txt:2: not a conntrack entry"):
        parse_conntrack(FLOW + "\ngarbage here\n", "ct.txt", strict=True)
    with pytest.raises(ParseError, match=r"not a `conntrack -L` listing"):
        parse_conntrack("Chain INPUT (policy ACCEPT)\n", "x")


def _port(ruleset, name):
    (sp,) = [p for p in select_service_ports(ruleset, name) if int(p.family) == 4]
    return sp


def _with_counts(text: str, counts: dict[str, int]) -> str:
    """The capture with the DNAT rules' packet counters set to ``counts`` per endpoint."""
    out = []
    for line in text.splitlines():
        for ep, n in counts.items():
            if line.endswith(f"-j DNAT --to-destination {ep}"):
                line = f"[{n}:{n * 60}]" + line[line.index("]") + 1:]
        out.append(line)
    return "\n".join(out) + "\n"


def test_real_capture_counters_are_read_per_endpoint():
    rs = parse_iptables_save(COUNTERS.read_text(), str(COUNTERS))
    pb = balance_port(rs, _port(rs, "default/hello-world"), None)
    got = {e.endpoint: e.new_connections for e in pb.endpoints}
    # what the capture's counters say (lines 216, 240, 288 of the file)
    assert got == {"10.244.1.10:8080": 0, "10.244.1.11:8080": 2, "10.244.2.10:8080": 1}
    assert [e.expected_share for e in pb.endpoints] == [Fraction(1, 3)] * 3
    assert pb.verdict is Verdict.NOT_ENOUGH_DATA and "at least 15" in pb.reason
    assert pb.open_test is None and pb.endpoints[0].open_connections is None


def test_dump_without_counters_is_unknown_not_zero():
    rs = parse_iptables_save((IPT / "iptables-save.txt").read_text())
    pb = balance_port(rs, _port(rs, "default/hello-world"), None)
    assert pb.verdict is Verdict.UNKNOWN and "no counters" in pb.reason
    assert all(e.new_connections is None for e in pb.endpoints)


def _flows(ep_counts: dict[str, int], vip="10.96.10.10", port=80) -> list:
    lines = []
    sport = 10000
    for ep, n in ep_counts.items():
        ip, _, p = ep.rpartition(":")
        for _ in range(n):
            sport += 1
            lines.append(f"tcp      6 431999 ESTABLISHED src=10.250.0.2 dst={vip} sport={sport} dport={port} "
                         f"src={ip} dst=10.251.0.1 sport={p} dport={sport} [ASSURED] mark=0 use=1")
    # a flow to another service and a closed one: not counted
    lines.append("tcp      6 100 TIME_WAIT src=10.250.0.2 dst=10.96.10.10 sport=9 dport=80 src=10.244.1.10 "
                 "dst=10.251.0.1 sport=8080 dport=9 [ASSURED] mark=0 use=1")
    lines.append("tcp      6 431999 ESTABLISHED src=10.250.0.2 dst=10.96.0.10 sport=9 dport=53 src=10.244.1.10 "
                 "dst=10.251.0.1 sport=8080 dport=9 [ASSURED] mark=0 use=1")
    return parse_conntrack("\n".join(lines))[0]


EPS = ("10.244.1.10:8080", "10.244.1.11:8080", "10.244.2.10:8080")


@pytest.mark.parametrize("new,opened,verdict,words", [
    ((100, 98, 102), (30, 33, 29), Verdict.CONSISTENT, "consistent with kube-proxy's random split"),
    ((200, 50, 50), None, Verdict.NEW_SKEWED, "do not split as the rules' probabilities say"),
    ((100, 98, 102), (60, 2, 3), Verdict.OPEN_SKEWED, "long-lived connections"),
    ((3, 4, 2), (1, 1, 0), Verdict.NOT_ENOUGH_DATA, "needs at least 15"),
])
def test_verdicts(new, opened, verdict, words):
    text = _with_counts(COUNTERS.read_text(), dict(zip(EPS, new)))
    rs = parse_iptables_save(text)
    flows = _flows(dict(zip(EPS, opened))) if opened is not None else None
    pb = balance_port(rs, _port(rs, "default/hello-world"), flows)
    assert pb.verdict is verdict, pb.reason
    assert words in pb.reason
    assert [e.new_connections for e in pb.endpoints] == list(new)
    if opened is not None:
        assert [e.open_connections for e in pb.endpoints] == list(opened)
        assert pb.open_elsewhere == 0


def test_affinity_is_named_in_the_reason():
    rs = parse_iptables_save(_with_counts(COUNTERS.read_text(),
                                          {"10.244.1.70:8080": 60, "10.244.2.70:8080": 0, "10.244.2.71:8080": 0}))
    pb = balance_port(rs, _port(rs, "default/affinity:http"), None)
    assert pb.verdict is Verdict.NEW_SKEWED and "session affinity (600 s)" in pb.reason
    assert pb.new_test.p_value < ALPHA


def test_cli_text_json_and_exit_codes(cli, tmp_path):
    text = _with_counts(COUNTERS.read_text(), dict(zip(EPS, (200, 50, 50))))
    (tmp_path / "rules").write_text(text)
    r = cli("balance", "default/hello-world", "--rules", str(tmp_path / "rules"), "-o", "json")
    assert r.code == 1, r.err
    doc = json.loads(r.out)
    (sp,) = doc["service_ports"]
    assert sp["verdict"] == "new-connections-skewed" and sp["new_connections"] == 300
    assert [e["new_connections"] for e in sp["endpoints"]] == [200, 50, 50]
    assert sp["skew_ratio"] == pytest.approx(2.0)
    r = cli("balance", "-A", "--rules", str(COUNTERS))
    assert r.code == 0 and "default/hello-world (tcp, IPv4, cluster policy)" in r.out
    assert "default/affinity:http (tcp, IPv4, cluster policy, affinity 600 s)" in r.out
    r = cli("balance", "--rules", str(COUNTERS))
    assert r.code == 2 and "-A" in r.err
    r = cli("balance", "default/nope", "--rules", str(COUNTERS))
    assert r.code == 2 and "no service 'default/nope'" in r.err
    (tmp_path / "ct").write_text("not conntrack\n")
    r = cli("balance", "default/hello-world", "--rules", str(COUNTERS), "--conntrack", str(tmp_path / "ct"))
    assert r.code == 2 and "ct:1" in r.err and "Traceback" not in r.err
