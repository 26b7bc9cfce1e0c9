"""``packet`` on nftables mode: the iptables PacketCase table, and nft semantics.

The flows of tests/test_packet.py (written from the scenario, not from
svcinspect's output) are run against the nftables capture of the same objects.
They must give the same answers except where kube-proxy's two modes really
differ; those cases carry the nftables answer here and are listed in
docs/nftables.md. The second half pins the evaluator's nft semantics on small
hand-written tables, one expression kind at a time.
"""

from __future__ import annotations

import ipaddress
import json
from fractions import Fraction

import pytest

from conftest import FIXTURES
from svcinspect.dataplane.nftables.evaluate import LOCALHOST_NOTE, NftEvaluator
from svcinspect.dataplane.nftables.parse import parse_nft
from svcinspect.simulate import Environment
from svcinspect.dataplane import simulate
from svcinspect.model.flow import Hook, Packet
from svcinspect.model.netfilter import Family
from test_packet import CASES, HW, NODE, OUTSIDE, POD, PacketCase, _check, _run

NFT = FIXTURES / "kube-proxy-v1.36.2" / "nftables"

# Where nftables mode answers differently from iptables mode, and why.
MODE_DIFFERENCES = {
    "nodePort on localhost from the node": ("none", "nftables mode has no localhost node ports"),
    "no endpoints nodePort on localhost from the node: REJECT in INPUT": (
        "none", "nftables mode has no localhost node ports: 127.0.0.1 is excluded from the node-port checks, so "
                "no rule rejects it (the kernel answers with a reset when nothing listens)"),
    "health-check nodePort is accepted": ("none", "no explicit accept: nothing in kube-proxy's table drops it "
                                                  "either, so it passes untouched to the health-check server"),
    "wrong protocol is not the service": ("reject", "cluster-ips-check rejects other ports/protocols of a "
                                                    "cluster IP (iptables mode lets them pass)"),
    "cluster IP on a port the service does not have": ("reject", "cluster-ips-check, as above"),
}


@pytest.fixture(scope="module", params=["nft-list-ruleset.txt", "nft-list-ruleset.json"])
def nft(request):
    return parse_nft((NFT / request.param).read_text(), request.param)


@pytest.mark.parametrize("case", [c for c in CASES if c.name not in MODE_DIFFERENCES], ids=lambda c: c.name)
def test_same_answer_as_iptables_mode(nft, case):
    _check(_run(nft, case), case)


@pytest.mark.parametrize("name", sorted(MODE_DIFFERENCES))
def test_real_mode_differences(nft, name):
    case = next(c for c in CASES if c.name == name)
    want, _why = MODE_DIFFERENCES[name]
    sim = _run(nft, case)
    assert {o.disposition.value for o in sim.outcomes} == {want}
    assert want != case.expect  # really a difference, not a copy of the iptables expectation
    if "localhost" in name:
        assert LOCALHOST_NOTE in sim.warnings


def test_ipv6(nft):
    case = PacketCase("v6", "fd00:10:244:1::7", "fd00:10:96::130", 80, "tcp", [], False)
    sim = _run(nft, case, node_ips=("fd00:10:11::11",))
    assert sorted(o.endpoint for o in sim.outcomes) == ["[fd00:10:244:1::130]:8080", "[fd00:10:244:2::130]:8080"]
    assert all(not o.masquerade and o.probability == Fraction(1, 2) for o in sim.outcomes)
    out = _run(nft, PacketCase("v6np", "2001:db8::5", "fd00:10:11::11", 31615, "tcp", [], True),
               node_ips=("fd00:10:11::11",))
    assert len(out.outcomes) == 2 and all(o.masquerade for o in out.outcomes)


def test_affinity_first_packet_is_a_stated_assumption(nft):
    sim = _run(nft, PacketCase("aff", POD, "10.96.70.10", 80, "tcp", [], False))
    assert sorted(o.endpoint for o in sim.outcomes) == ["10.244.1.70:8080", "10.244.2.70:8080", "10.244.2.71:8080"]
    assert all(o.probability == Fraction(1, 3) for o in sim.outcomes)
    assert all(any("has no entry for it yet" in a for a in o.assumptions) for o in sim.outcomes)
    assert all(any(s.action.startswith("update @affinity-") for s in o.steps) for o in sim.outcomes)


def test_trace_quotes_the_map_elements(nft):
    sim = _run(nft, PacketCase("np", OUTSIDE, NODE, 31611, "tcp", HW, True))
    steps = sim.outcomes[0].steps
    el = [s for s in steps if s.chain == "@service-nodeports"]
    assert len(el) == 1 and "31611" in el[0].rule and "external-AN52JS3S" in el[0].rule
    chains = [s.chain for s in steps]
    # base chains in priority order: filter -110, nat -100, filter 0, nat 100
    assert chains.index("filter-prerouting-pre-dnat") < chains.index("nat-prerouting") \
        < chains.index("filter-forward") < chains.index("nat-postrouting")
    if nft.form == "text":
        lines = (NFT / "nft-list-ruleset.txt").read_text().splitlines()
        assert lines[el[0].line - 1].strip().startswith("elements = { tcp . 31080") or "31611" in lines[el[0].line - 1]


def test_unknown_node_addresses_split(nft):
    sim = simulate(nft, Packet(ipaddress.ip_address(POD), ipaddress.ip_address("192.0.2.101"), 80), Environment())
    assert sum(o.probability for o in sim.outcomes) == 1
    eps = {o.endpoint for o in sim.outcomes}
    assert eps == {"10.244.1.100:8080", "10.244.2.100:8080", "10.244.2.101:8080"}


def test_packet_command(cli):
    r = cli("packet", "--rules", str(NFT / "nft-list-ruleset.txt"), "--src", OUTSIDE, "--dst", NODE,
            "--dport", "31611", "--node-ip", NODE, "-o", "json")
    assert r.code == 0, r.err
    doc = json.loads(r.out)
    assert sorted(o["endpoint"] for o in doc["outcomes"]) == sorted(HW)
    assert all(o["fraction"] == "1/3" and o["masquerade"] and o["final"]["src"] == NODE for o in doc["outcomes"])
    lo = cli("packet", "--rules", str(NFT / "nft-list-ruleset.txt"), "--src", "127.0.0.1", "--dst", "127.0.0.1",
             "--dport", "31611", "--node-ip", NODE)
    assert lo.code == 0 and "does not serve node ports on localhost" in lo.out


# --- nft semantics on small tables --------------------------------------------------------

def _table(body: str, family: str = "ip") -> str:
    return f"table {family} kube-proxy {{\n{body}\n}}\n"


def _sim(text: str, src: str, dst: str, dport: int = 80, proto: str = "tcp", hook: str = "prerouting",
         node_ips=("192.168.1.1",)):
    rs = parse_nft(text, "t.nft")
    env = Environment(frozenset(ipaddress.ip_address(a) for a in node_ips) if node_ips is not None else None)
    ev = NftEvaluator(rs, Family(ipaddress.ip_address(dst).version), env)
    return ev.simulate(Packet(ipaddress.ip_address(src), ipaddress.ip_address(dst), dport, proto, Hook(hook)))


def _summary(sim):
    return sorted((o.disposition.value, o.endpoint, str(o.probability), o.masquerade) for o in sim.outcomes)


NAT = "\tchain nat-prerouting {\n\t\ttype nat hook prerouting priority dstnat; policy accept;\n\t\tjump services\n\t}\n"


def test_numgen_ranges_give_unequal_exact_shares():
    text = _table(NAT + "\tchain services {\n\t\tip daddr 10.0.0.1 meta l4proto tcp dnat ip to numgen random mod 10"
                        " map { 0-6 : 10.1.0.1 . 80, 7-9 : 10.1.0.2 . 80 }\n\t}")
    assert _summary(_sim(text, "10.9.0.1", "10.0.0.1")) == [("dnat", "10.1.0.1:80", "7/10", False),
                                                            ("dnat", "10.1.0.2:80", "3/10", False)]


def test_numgen_value_without_element_falls_through():
    text = _table(NAT + "\tchain services {\n\t\tip daddr 10.0.0.1 dnat ip to numgen random mod 3 map "
                        "{ 0 : 10.1.0.1 . 80 }\n\t\tip daddr 10.0.0.1 drop\n\t}")
    assert _summary(_sim(text, "10.9.0.1", "10.0.0.1")) == [("dnat", "10.1.0.1:80", "1/3", False),
                                                            ("drop", None, "2/3", False)]


def test_accept_ends_only_its_base_chain_and_priorities_order_chains():
    text = _table("\tchain b {\n\t\ttype filter hook prerouting priority 10; policy accept;\n\t\tdrop\n\t}\n"
                  "\tchain a {\n\t\ttype filter hook prerouting priority -5; policy accept;\n\t\taccept\n\t}")
    sim = _sim(text, "10.9.0.1", "10.0.0.1")
    assert _summary(sim) == [("drop", None, "1", False)]
    assert [s.chain for s in sim.outcomes[0].steps] == ["a", "b"]


def test_goto_returns_to_the_caller_of_the_caller_jump_continues():
    text = _table("\tchain base {\n\t\ttype filter hook prerouting priority 0; policy accept;\n\t\tjump one\n"
                  "\t\tdrop\n\t}\n\tchain one {\n\t\tgoto two\n\t\taccept\n\t}\n\tchain two {\n\t\treturn\n\t}")
    sim = _sim(text, "10.9.0.1", "10.0.0.1")
    assert _summary(sim) == [("drop", None, "1", False)]  # two returns to base (not to one), base drops


def test_policy_drop_and_set_intervals_and_concatenations():
    text = _table("\tset allowed {\n\t\ttype ipv4_addr . inet_service\n\t\tflags interval\n\t\telements = { "
                  "10.9.0.0/24 . 80, 10.8.0.1 . 443 }\n\t}\n\tchain base {\n\t\ttype filter hook prerouting "
                  "priority 0; policy drop;\n\t\tip saddr . th dport @allowed accept\n\t}")
    assert _summary(_sim(text, "10.9.0.77", "10.0.0.1", 80)) == [("accept", None, "1", False)]
    assert _summary(_sim(text, "10.9.0.77", "10.0.0.1", 443)) == [("drop", None, "1", False)]
    assert _summary(_sim(text, "10.8.0.1", "10.0.0.1", 443)) == [("accept", None, "1", False)]


def test_fib_local_ct_status_dnat_and_marks():
    text = _table(NAT + "\tchain services {\n\t\tfib saddr type local meta mark set meta mark | 0x00004000\n"
                        "\t\tip daddr 10.0.0.1 dnat to 10.1.0.1:8080\n\t}\n\tchain nat-output {\n\t\ttype nat hook "
                        "output priority -100; policy accept;\n\t\tjump services\n\t}\n\tchain post {\n\t\ttype nat "
                        "hook postrouting priority srcnat; policy accept;\n\t\tct status dnat meta mark & 0x00004000 "
                        "!= 0x00000000 masquerade\n\t}")
    assert _summary(_sim(text, "192.168.1.1", "10.0.0.1", hook="output")) == [("dnat", "10.1.0.1:8080", "1", True)]
    assert _summary(_sim(text, "10.9.0.1", "10.0.0.1")) == [("dnat", "10.1.0.1:8080", "1", False)]
    # without --node-ip: "if"/"if not" alternatives, each named
    sim = _sim(text, "10.9.0.1", "10.0.0.1", node_ips=None)
    assert sorted(o.masquerade for o in sim.outcomes) == [False, True]
    assert all(any("10.9.0.1 is an address of this node" in a for a in o.assumptions) for o in sim.outcomes)


def test_interfaces_become_alternatives_and_unknown_statements_are_said():
    text = _table("\tchain base {\n\t\ttype filter hook prerouting priority 0; policy accept;\n\t\t"
                  'iifname "eth0" drop\n\t\tip daddr 10.0.0.1 quota over 10 mbytes reject\n\t}')
    sim = _sim(text, "10.9.0.1", "10.0.0.1")
    got = {(o.disposition.value, tuple(o.assumptions)) for o in sim.outcomes}
    assert ("drop", ("if the packet arrives on an interface matching eth0",)) in got
    assert any(d == "reject" and any("does not evaluate" in a for a in a_) for d, a_ in got)


def test_vmap_verdicts_and_anonymous_maps():
    text = _table("\tchain base {\n\t\ttype filter hook input priority 0; policy accept;\n\t\t"
                  "meta l4proto . th dport vmap { tcp . 22 : accept, tcp . 23 : drop, udp . 53 : jump x }\n\t}\n"
                  "\tchain x {\n\t\treject\n\t}", )
    assert _summary(_sim(text, "10.9.0.1", "192.168.1.1", 23)) == [("drop", None, "1", False)]
    assert _summary(_sim(text, "10.9.0.1", "192.168.1.1", 22)) == [("accept", None, "1", False)]
    assert _summary(_sim(text, "10.9.0.1", "192.168.1.1", 53, "udp")) == [("reject", None, "1", False)]
    assert _summary(_sim(text, "10.9.0.1", "192.168.1.1", 80)) == [("none", None, "1", False)]


def test_affinity_set_listing_with_the_client_sticks():
    text = _table("\tset affinity-X {\n\t\ttype ipv4_addr\n\t\tflags dynamic,timeout\n\t\ttimeout 10m\n\t\t"
                  "elements = { 10.9.0.1 timeout 10m expires 9m }\n\t}\n" + NAT +
                  "\tchain services {\n\t\tip saddr @affinity-X dnat to 10.1.0.9:80\n\t\t"
                  "dnat ip to numgen random mod 2 map { 0 : 10.1.0.1 . 80, 1 : 10.1.0.2 . 80 }\n\t}")
    assert _summary(_sim(text, "10.9.0.1", "10.0.0.1")) == [("dnat", "10.1.0.9:80", "1", False)]
    assert len(_sim(text, "10.9.0.2", "10.0.0.1").outcomes) == 2


def test_packet_for_a_family_not_in_the_input(cli):
    r = cli("packet", "--rules", str(NFT / "nft-list-table-ip-kube-proxy.txt"), "--src", "fd00::1",
            "--dst", "fd00:10:96::130", "--dport", "80")
    assert r.code == 2 and "nft list table ip6 kube-proxy" in r.err and "Traceback" not in r.err
