"""What kube-proxy should program on a node, checked against what a real kube-proxy
v1.36.2 did program on node-a (fixtures/kube-proxy-v1.36.2/iptables)."""

from __future__ import annotations

import pytest

from conftest import IPT

from svcinspect.expected import build_expected
from svcinspect.dataplane.iptables.kubeproxy import ChainKind, classify_chain
from svcinspect.model.netfilter import Family
from svcinspect.dataplane.iptables.parse import parse_dumps
from svcinspect.parse.kube_objects import parse_objects
from svcinspect.sources.files import read_text

STATE = parse_objects((IPT / "objects.json").read_text(), "objects.json")


@pytest.fixture(scope="module")
def on_node_a():
    return {(p.spn, int(p.family)): p for p in build_expected(STATE, "node-a").ports}


# (service port, cluster endpoints, local endpoints, cluster-IP verdict, external verdict, chains)
CASES = [
    ("default/hello-world", ["10.244.1.10:8080", "10.244.1.11:8080", "10.244.2.10:8080"], [], None, None,
     {"SVC", "EXT"}),
    ("default/mixed-readiness:http", ["10.244.1.120:8080"], [], None, None, {"SVC"}),
    # No ready endpoint anywhere: serving-and-terminating ones are used, the not-serving one is not.
    ("default/only-terminating:http", ["10.244.1.122:8080", "10.244.2.122:8080"], [], None, None, {"SVC", "EXT"}),
    ("default/only-notready:http", [], [], "reject", None, set()),
    ("default/no-endpoints-np", [], [], "reject", "reject", set()),
    # Zone hints: node-a is in zone-a, so only the zone-a endpoints.
    ("default/topology-zone:http", ["10.244.1.140:8080", "10.244.1.141:8080"], [], None, None, {"SVC"}),
    ("default/etp-local-has:http", ["10.244.1.100:8080", "10.244.2.100:8080", "10.244.2.101:8080"],
     ["10.244.1.100:8080"], None, None, {"SVC", "SVL", "EXT"}),
    ("default/etp-local-none:http", ["10.244.2.102:8080", "10.244.2.103:8080"], [], None, "drop", {"SVC", "EXT"}),
    ("default/itp-local-has:http", [], ["10.244.1.110:8080"], None, None, {"SVL"}),
    ("default/itp-local-none:http", [], [], "drop", None, set()),
    ("default/lb-ranges:http", ["10.244.1.90:8080", "10.244.2.90:8080"], [], None, None, {"SVC", "EXT", "FW"}),
]


@pytest.mark.parametrize("spn,cluster,local,internal,external,chains", CASES, ids=[c[0] for c in CASES])
def test_expected_endpoints_verdicts_and_chains(on_node_a, spn, cluster, local, internal, external, chains):
    p = on_node_a[(spn, 4)]
    assert sorted(e.endpoint for e in p.cluster_endpoints) == cluster
    assert sorted(e.endpoint for e in p.local_endpoints) == local
    assert (p.internal_verdict, p.external_verdict) == (internal, external)
    assert set(p.expected_chains()) == chains


def test_chain_names_are_exactly_those_kube_proxy_created(on_node_a):
    """Every per-service chain in the real dump is predicted, and nothing more."""
    rs = parse_dumps([read_text(str(IPT / "iptables-save.txt")), read_text(str(IPT / "ip6tables-save.txt"))])
    for family in (Family.V4, Family.V6):
        nat = rs.table("nat", family)
        actual = {n for n in nat.chains if classify_chain(n).per_service}
        ports = [p for p in on_node_a.values() if p.family is family]
        predicted = {c for p in ports for c in p.expected_chains().values()}
        predicted |= {e.sep_chain for p in ports for e in p.reachable_endpoints}
        assert predicted == actual, family
        assert any(classify_chain(c) is ChainKind.SEP for c in actual)


def test_addresses_ports_affinity_health_check(on_node_a):
    lb = on_node_a[("default/lb-ranges:http", 4)]
    assert (lb.cluster_ip, lb.node_port, lb.load_balancer_ips, lb.source_ranges) == (
        "10.96.90.10", 31080, ("192.0.2.100",), ("203.0.113.0/24", "198.51.100.0/25"))
    assert on_node_a[("default/extip:http", 4)].external_ips == ("203.0.113.10",)
    assert on_node_a[("default/affinity:http", 4)].affinity_seconds == 600
    assert on_node_a[("default/etp-local-has:http", 4)].health_check_node_port == 32001
    assert on_node_a[("default/hello-world", 4)].key == "DZ6LTOHRG6HQWHYE"


def test_dual_stack_and_v6_only_ports_per_family(on_node_a):
    assert on_node_a[("default/dual-stack:http", 6)].cluster_ip == "fd00:10:96::130"
    assert sorted(e.endpoint for e in on_node_a[("default/dual-stack:http", 6)].cluster_endpoints) == [
        "[fd00:10:244:1::130]:8080", "[fd00:10:244:2::130]:8080"]
    assert ("default/v6-only:http", 4) not in on_node_a and ("default/v6-only:http", 6) in on_node_a
    only_v4 = build_expected(STATE, "node-a", (Family.V4,))
    assert all(p.family is Family.V4 for p in only_v4.ports)


def test_headless_and_externalname_get_no_rules():
    exp = build_expected(STATE, "node-a")
    assert {s.name: why for s, why in exp.not_proxied} == {
        "extname": "ExternalName service (DNS only)", "headless": "headless service (clusterIP: None)"}
    assert not any(p.service.name in ("headless", "extname") for p in exp.ports)


def test_another_node_sees_other_local_endpoints_and_zone():
    b = {p.spn: p for p in build_expected(STATE, "node-b").ports if p.family is Family.V4}
    assert sorted(e.endpoint for e in b["default/etp-local-none:http"].local_endpoints) == [
        "10.244.2.102:8080", "10.244.2.103:8080"]
    assert b["default/etp-local-none:http"].external_verdict is None
    assert b["default/itp-local-none:http"].internal_verdict is None
    assert [e.endpoint for e in b["default/topology-zone:http"].cluster_endpoints] == ["10.244.2.140:8080"]


def test_without_node_the_node_dependent_ports_are_marked():
    exp = {p.spn: p for p in build_expected(STATE, None).ports if p.family is Family.V4}
    assert {s for s, p in exp.items() if p.node_dependent} == {
        "default/etp-local-has:http", "default/etp-local-none:http", "default/itp-local-has:http",
        "default/itp-local-none:http", "default/topology-zone:http"}
    assert not exp["default/hello-world"].node_dependent


def test_unknown_node_is_noted():
    exp = build_expected(STATE, "node-z")
    assert any("node node-z is not among the Node objects" in n for n in exp.notes)
