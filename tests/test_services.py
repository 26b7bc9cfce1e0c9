"""services: entry points, exact shares and warnings, from real and edited dumps."""

from fractions import Fraction

import pytest

from conftest import IPT, KP, WILD
from svcinspect.model.netfilter import Family
from svcinspect.dataplane.iptables.parse import parse_iptables_save
from svcinspect.model.service import find_service
from svcinspect.dataplane.iptables.services import branch_of, build_service_ports, sep_endpoint, _branches


@pytest.fixture(scope="module")
def ports():
    rs = parse_iptables_save((IPT / "iptables-save.txt").read_text(), "v4")
    rs6 = parse_iptables_save((IPT / "ip6tables-save.txt").read_text(), "v6")
    return {(p.name, int(p.family)): p for p in build_service_ports(rs) + build_service_ports(rs6)}


def eps(sp, local=False):
    return [(e.endpoint, e.share) for e in (sp.local_endpoints if local else sp.endpoints)]


def test_hello_world_nodeport(ports):
    sp = ports[("default/hello-world", 4)]
    assert sp.protocol == "tcp" and sp.node_port == 31611
    assert (sp.cluster_ip.address, sp.cluster_ip.port) == ("10.96.10.10", 80)
    assert eps(sp) == [("10.244.1.10:8080", Fraction(1, 3)), ("10.244.1.11:8080", Fraction(1, 3)),
                       ("10.244.2.10:8080", Fraction(1, 3))]
    assert sp.chains["svc"] == "KUBE-SVC-DZ6LTOHRG6HQWHYE" and sp.chains["ext"] == "KUBE-EXT-DZ6LTOHRG6HQWHYE"
    np = sp.entries_of("nodePort")[0]
    assert np.localhost and np.address is None
    assert sp.warnings == ()


@pytest.mark.parametrize("name,n", [("default/cascade-1ep:http", 1), ("default/cascade-2ep:http", 2),
                                    ("default/cascade-3ep:http", 3), ("default/cascade-4ep:http", 4),
                                    ("default/cascade-7ep:http", 7)])
def test_cascades_give_exactly_one_nth(ports, name, n):
    sp = ports[(name, 4)]
    assert [s for _, s in eps(sp)] == [Fraction(1, n)] * n
    assert sp.warnings == ()


def test_protocols_affinity_external_and_lb(ports):
    assert ports[("kube-system/kube-dns:dns", 4)].protocol == "udp"
    assert ports[("default/diameter-sctp:diameter", 4)].protocol == "sctp"
    assert ports[("default/affinity:http", 4)].affinity_seconds == 600
    assert ports[("default/extip:http", 4)].entries_of("externalIP")[0].address == "203.0.113.10"
    lb = ports[("default/lb-ranges:http", 4)]
    assert lb.source_ranges == ("203.0.113.0/24", "198.51.100.0/25")
    assert {e.verdict for e in lb.entries_of("loadBalancer")} == {None, "drop"}


def test_no_endpoints_and_local_policies(ports):
    ne = ports[("default/no-endpoints:http", 4)]
    assert ne.endpoints == () and ne.entries[0].verdict == "reject"
    assert {e.kind for e in ports[("default/no-endpoints-np", 4)].entries} == {"clusterIP", "nodePort"}
    has = ports[("default/etp-local-has:http", 4)]
    assert eps(has, local=True) == [("10.244.1.100:8080", Fraction(1))]
    assert has.entries_of("healthCheckNodePort")[0].port == 32001
    none = ports[("default/etp-local-none:http", 4)]
    assert any(e.verdict == "drop" and e.kind == "nodePort" for e in none.entries)
    itp = ports[("default/itp-local-has:http", 4)]
    assert itp.endpoints == () and eps(itp, local=True) == [("10.244.1.110:8080", Fraction(1))]
    assert ports[("default/itp-local-none:http", 4)].entries[0].verdict == "drop"


def test_dual_stack_gives_one_row_per_family(ports):
    v6 = ports[("default/dual-stack:http", 6)]
    assert v6.family is Family.V6 and v6.cluster_ip.address == "fd00:10:96::130"
    assert eps(v6)[0] == ("[fd00:10:244:1::130]:8080", Fraction(1, 2))
    assert ("default/v6-only:http", 6) in ports and ("default/v6-only:http", 4) not in ports


def test_no_comment_dump_is_tied_by_hash():
    rs = parse_iptables_save((WILD / "018-no-comments-svc-affinity-calico-excerpt.rules").read_text())
    ps = build_service_ports(rs)
    dns = [p for p in ps if p.key == "ERIFXISQEP7F7OF4"][0]
    # No comment names it, but its hash is the well-known kube-system/kube-dns:dns-tcp (issue 11).
    assert dns.name == "kube-system/kube-dns:dns-tcp" and [s for _, s in eps(dns)] == [Fraction(1, 2)] * 2
    assert any("recomputing the chain hash" in w for w in dns.warnings)
    api = [p for p in ps if p.key == "NPX46M4PTMTKRN6Y"][0]
    assert api.affinity_seconds == 10800
    assert find_service(ps, "KUBE-SVC-ERIFXISQEP7F7OF4") == [dns]


def test_old_xlb_layout_is_recognised():
    rs = parse_iptables_save((WILD / "016-counters-xlb-user-annotated-excerpt.rules").read_text())
    (sp,) = build_service_ports(rs)
    assert sp.name == "infra/statsd:dogstatsd" and sp.node_port == 30125 and sp.protocol == "udp"
    assert sp.chains["xlb"] == "KUBE-XLB-5DULF7GDAT3CNN73"


def test_gke_2016_inline_loadbalancer():
    rs = parse_iptables_save((WILD / "042-gke-2016-v1.4.14-loadbalancer-prefw-full.rules").read_text())
    ps = {p.name: p for p in build_service_ports(rs)}
    lbs = [p for p in ps.values() if p.entries_of("loadBalancer")]
    assert lbs, "the 2016 layout handles LB IPs inline in KUBE-SERVICES"
    assert all(p.endpoints for p in lbs)


def _edit(text: str, old: str, new: str) -> str:
    assert old in text
    return text.replace(old, new, 1)


def test_hand_edited_cascade_is_flagged_with_exact_shares():
    text = (IPT / "iptables-save.txt").read_text()
    text = _edit(text, "--probability 0.33333333349 -j KUBE-SEP-TTFDDCQ6CXER73EZ",
                 "--probability 0.70000000000 -j KUBE-SEP-TTFDDCQ6CXER73EZ")
    sp = [p for p in build_service_ports(parse_iptables_save(text)) if p.name == "default/hello-world"][0]
    assert [s for _, s in eps(sp)] == [Fraction(7, 10), Fraction(3, 20), Fraction(3, 20)]
    assert any("0.70000000000" in w and "1/3" in w for w in sp.warnings)
    assert any("equal shares" in w for w in sp.warnings)


def test_missing_endpoint_chain_and_fall_through_are_flagged():
    text = (IPT / "iptables-save.txt").read_text()
    text = _edit(text, "-A KUBE-SVC-DZ6LTOHRG6HQWHYE -m comment --comment \"default/hello-world -> 10.244.2.10:8080\" "
                 "-j KUBE-SEP-ADT6UDJPDQHGYNFU", "-A KUBE-SVC-DZ6LTOHRG6HQWHYE -m comment --comment "
                 "\"default/hello-world -> 10.244.2.10:8080\" -m statistic --mode random --probability 0.50000000000 "
                 "-j KUBE-SEP-GONEGONEGONEGONE")
    sp = [p for p in build_service_ports(parse_iptables_save(text)) if p.name == "default/hello-world"][0]
    assert any("KUBE-SEP-GONEGONEGONEGONE" in w and "does not exist" in w for w in sp.warnings)
    assert any("fall through" in w and "16.67%" in w for w in sp.warnings)


@pytest.mark.parametrize("path", [IPT / "iptables-save.txt", IPT / "ip6tables-save.txt",
                                  KP / "iptables-legacy" / "iptables-save-counters.txt",
                                  WILD / "004-flannel-docker-k8s127-full-2024.rules",
                                  WILD / "018-no-comments-svc-affinity-calico-excerpt.rules",
                                  WILD / "059-aks-1.30-lb-local-kube-ext-svl-azv-no-dport-duplicated.rules",
                                  WILD / "013-k8s12-era-restore-order-unquoted-comments.rules"])
def test_fast_raw_reading_agrees_with_the_full_decoder(path):
    """The regex shortcuts services uses on large dumps must read exactly what
    decoding each rule reads."""
    rs = parse_iptables_save(path.read_text())
    for t in rs.tables:
        if t.name != "nat":
            continue
        for name, ch in t.chains.items():
            if name.startswith(("KUBE-SVC-", "KUBE-SVL-", "KUBE-XLB-")):
                fast, _ = _branches(ch)
                slow = [b for b in (branch_of(r) for r in ch.rules) if b is not None]
                assert [(b.sep, b.probability, b.affinity_seconds, b.line) for b in fast] == \
                       [(b.sep, b.probability, b.affinity_seconds, b.line) for b in slow]
            if name.startswith("KUBE-SEP-"):
                dnat = [r.target.value("--to-destination") for r in ch.rules if r.target and r.target.name == "DNAT"]
                assert sep_endpoint(t, name) == (dnat[0] if dnat else None)


def test_grep_excerpt_without_dispatch_rules_takes_names_from_endpoint_chains():
    text = "\n".join(ln for ln in (IPT / "iptables-save.txt").read_text().splitlines()
                     if ln.startswith(("-A KUBE-SVC-DZ6LTOHRG6HQWHYE", "-A KUBE-SEP-TTFDDCQ6CXER73EZ",
                                       "-A KUBE-SEP-HKT7TYOO7KSAV3CZ", "-A KUBE-SEP-ADT6UDJPDQHGYNFU")))
    text = text.replace('-m comment --comment "default/hello-world cluster IP" ', "")
    text = text.replace('-m comment --comment "default/hello-world -> ', '-m comment --comment "x -> ')
    (sp,) = build_service_ports(parse_iptables_save(text, "grep"))
    assert sp.name == "default/hello-world" and sp.protocol == "tcp"
    assert any("no entry point" in w for w in sp.warnings)
