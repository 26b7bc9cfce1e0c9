"""kube-proxy's nftables layouts from 1.29 to 1.37, each simulated.

- 1.36 (the real capture): per-service ``dnat ... numgen map``, the
  ``hairpin-connections`` set, ``filter-*-pre-dnat`` at -110.
- before 1.36 (a real k3s node's table, wild/036): ``endpoint-*`` chains reached by a
  ``numgen ... vmap``, per-endpoint hairpin ``ip saddr <ep> jump mark-for-masquerade``,
  the ``mark-for-masquerade`` chain, the three-rule ``masquerading`` chain,
  ``filter-prerouting`` at dstnat-10 and ``filter-output-post-dnat`` at -90.
- 1.37: a plain ``dnat ip to A . P`` for a single endpoint (no numgen): written
  here by editing the 1.36 capture, as 1.37 prints it (not a capture: none was
  available).
"""

from __future__ import annotations

import ipaddress
from fractions import Fraction

import pytest

from conftest import FIXTURES, WILD
from svcinspect.dataplane.nftables.parse import parse_nft
from svcinspect.dataplane.nftables.services import build_service_ports
from svcinspect.evaluate import Environment, simulate
from svcinspect.model.flow import Hook, Packet

K3S = WILD / "036-kube-proxy-nftables-k3s-full-table-spaces.nft"
NFT = FIXTURES / "kube-proxy-v1.36.2" / "nftables"
K3S_NODE = "10.34.4.246"
HELLOPOD = ["10.42.2.218:8080", "10.42.4.201:8080", "10.42.4.202:8080", "10.42.4.203:8080", "10.42.4.204:8080",
            "10.42.4.205:8080", "10.42.4.206:8080", "10.42.4.207:8080", "10.42.5.164:8080"]


@pytest.fixture(scope="module")
def k3s():
    return parse_nft(K3S.read_text(), K3S.name)


def _sim(rs, src, dst, port, hook="prerouting", node=K3S_NODE):
    return simulate(rs, Packet(ipaddress.ip_address(src), ipaddress.ip_address(dst), port, "tcp", Hook(hook)),
                    Environment(frozenset({ipaddress.ip_address(node)})))


@pytest.mark.parametrize("src,dst,port,hook,masq", [
    ("10.42.0.9", "10.43.195.72", 8000, "prerouting", False),  # cluster IP from a pod
    ("192.168.77.1", "10.43.195.72", 8000, "prerouting", True),  # from outside the pod network
    ("203.0.113.5", K3S_NODE, 30000, "prerouting", True),        # node port
    (K3S_NODE, "10.43.195.72", 8000, "output", True),            # from the node
])
def test_pre_1_36_endpoint_chains_and_mark_for_masquerade(k3s, src, dst, port, hook, masq):
    sim = _sim(k3s, src, dst, port, hook)
    assert sorted(o.endpoint for o in sim.outcomes) == HELLOPOD
    assert all(o.probability == Fraction(1, 9) and o.masquerade is masq for o in sim.outcomes)
    steps = [s.chain for s in sim.outcomes[0].steps]
    assert any(c.startswith("endpoint-") for c in steps)
    if masq:
        assert "mark-for-masquerade" in steps and "masquerading" in steps


def test_pre_1_36_hairpin_is_the_endpoint_chain_rule(k3s):
    sim = _sim(k3s, "10.42.4.203", "10.43.195.72", 8000)
    masq = {o.endpoint: o.masquerade for o in sim.outcomes}
    assert masq.pop("10.42.4.203:8080") is True and not any(masq.values())


def test_pre_1_36_priorities_order_the_filter_chains(k3s):
    t = k3s.tables[0]
    assert t.chains["filter-prerouting"].priority == -110 and t.chains["filter-output-post-dnat"].priority == -90
    sim = _sim(k3s, "10.42.0.9", "10.43.99.99", 80)  # unallocated service IP: cluster-ips-check drops
    assert {o.disposition.value for o in sim.outcomes} == {"drop"}


SINGLE = "meta l4proto tcp dnat ip to numgen random mod 1 map { 0 : 10.244.1.200 . 8080 }"


def test_1_37_single_endpoint_plain_dnat():
    text = (NFT / "nft-list-ruleset.txt").read_text()
    assert SINGLE in text
    rs = parse_nft(text.replace(SINGLE, "meta l4proto tcp dnat ip to 10.244.1.200 . 8080"), "1.37-edit")
    sp = [p for p in build_service_ports(rs) if p.name == "default/cascade-1ep:http"][0]
    assert [(e.endpoint, e.share) for e in sp.endpoints] == [("10.244.1.200:8080", 1)]
    sim = _sim(rs, "10.244.1.7", "10.96.20.1", 80, node="192.168.10.11")
    assert [(o.endpoint, o.probability, o.masquerade) for o in sim.outcomes] == [("10.244.1.200:8080", 1, False)]


ADD = FIXTURES / "nftables-layouts" / "nft-pre-1.36-add-commands.nft"


def test_kube_proxy_hashes_match_its_own_test_expectations():
    """kube-proxy's nftables unit tests name ns1/svc1's chains service-ULMVA6XW-... and
    endpoint-5OJB2KTY-...__10.180.0.1/80 (pkg/proxy/nftables/proxier_test.go)."""
    from svcinspect.dataplane.nftables.services import chain_hash
    assert chain_hash("ns1/svc1/tcp/p80") == "ULMVA6XW"
    assert chain_hash("ns1/svc1/tcp/p80__10.180.0.1/80") == "5OJB2KTY"


@pytest.mark.parametrize("src,dst,port,want", [
    ("203.0.113.2", "192.168.0.2", 3003, [("dnat", "10.180.0.3:80", Fraction(1), True)]),
    ("10.0.0.5", "172.30.0.41", 80, [("dnat", "10.180.0.1:80", Fraction(1, 2), False),
                                     ("dnat", "10.180.0.2:80", Fraction(1, 2), False)]),
    ("10.180.0.1", "172.30.0.41", 80, [("dnat", "10.180.0.1:80", Fraction(1, 2), True),   # hairpin
                                       ("dnat", "10.180.0.2:80", Fraction(1, 2), False)]),
    ("10.0.0.5", "172.30.0.46", 80, [("reject", None, Fraction(1), False)]),
    ("10.0.0.5", "172.30.0.41", 81, [("reject", None, Fraction(1), False)]),
])
def test_add_commands_as_kube_proxy_writes_them(src, dst, port, want):
    rs = parse_nft(ADD.read_text(), ADD.name)
    assert rs.form == "commands" and not [d for d in rs.diagnostics if d.severity >= 1]
    sim = _sim(rs, src, dst, port, node="192.168.0.2")
    assert sorted((o.disposition.value, o.endpoint, o.probability, o.masquerade) for o in sim.outcomes) == \
        sorted(want, key=lambda t: (t[0], t[1] or ""))
