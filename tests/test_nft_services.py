"""``services`` on nftables mode gives the iptables mode's answers.

kube-proxy v1.36.2 programmed the same Services and EndpointSlices once in
iptables mode and once in nftables mode (fixtures/kube-proxy-v1.36.2/iptables and
/nftables). Read each, the service ports, entry points, endpoints, exact shares,
node ports, affinity and filter verdicts must agree, keys that only name one
mode's objects aside (chain names, line numbers, the element comments). The few
real differences are listed here and in docs/nftables.md, and asserted to be the
only ones.
"""

from __future__ import annotations

import json

import pytest

from conftest import FIXTURES, IPT, WILD
from svcinspect.dataplane.nftables.parse import parse_nft
from svcinspect.dataplane.nftables.services import (
    build_service_ports, chain_hash, select_service_ports, split_name, spn_of,
)
from svcinspect.errors import UnknownServiceError
from svcinspect.render.json import service_port_json

NFT = FIXTURES / "kube-proxy-v1.36.2" / "nftables"
IGNORED = {"key", "chains", "line", "chain", "probability", "warnings", "dataplane", "comment",
           "localhost"}  # localhost: asserted on its own below
# What the two modes really write differently for these objects:
# - an external IP and a load-balancer IP look alike in nft's service-ips map (no
#   comment); only a loadBalancerSourceRanges IP (firewall-ips) is known to be an LB IP;
# - iptables mode ACCEPTs health-check node ports in filter; nftables mode writes
#   nothing for them (its chains never drop them);
# - iptables mode serves node ports on 127.0.0.1 (localhost), nftables mode does not.
MODE_DIFFERENCES = {
    ("default/etp-local-has:http", "IPv4"): {"loadBalancerIPs", "externalIPs", "entries", "healthCheckNodePort",
                                            "filter"},
    ("default/lb-plain:https", "IPv4"): {"loadBalancerIPs", "externalIPs", "entries"},
}


def _norm(x):
    if isinstance(x, dict):
        return {k: _norm(v) for k, v in x.items() if k not in IGNORED}
    if isinstance(x, list):
        return sorted((_norm(v) for v in x), key=json.dumps)
    return x


def _by_port(docs):
    return {(d["name"], d["family"]): d for d in docs}


@pytest.fixture(scope="module", params=["nft-list-ruleset.txt", "nft-list-ruleset.json"])
def nft_ports(request):
    return build_service_ports(parse_nft((NFT / request.param).read_text(), request.param))


@pytest.fixture(scope="module")
def ipt_docs(cli_module):
    return _by_port(cli_module)


@pytest.fixture(scope="module")
def cli_module():
    from svcinspect.dataplane.iptables.parse import parse_dumps
    from svcinspect.dataplane import build_service_ports as ipt_build
    from svcinspect.sources.files import read_text

    rs = parse_dumps([read_text(str(IPT / "iptables-save.txt")), read_text(str(IPT / "ip6tables-save.txt"))])
    return [service_port_json(p) for p in ipt_build(rs)]


def test_same_service_ports_as_iptables_mode_both_families(nft_ports, ipt_docs):
    nft = _by_port(service_port_json(p) for p in nft_ports)
    assert set(nft) == set(ipt_docs)
    assert {f for _, f in nft} == {"IPv4", "IPv6"}
    differing = {}
    for k in nft:
        a, b = _norm(ipt_docs[k]), _norm(nft[k])
        keys = {f for f in a if a[f] != b.get(f)}
        if keys:
            differing[k] = keys
    assert differing == MODE_DIFFERENCES
    for k, doc in nft.items():
        assert doc["dataplane"] == "nftables"
        assert doc["warnings"] == [], (k, doc["warnings"])


def test_the_differences_are_the_named_ones(nft_ports, ipt_docs):
    nft = _by_port(service_port_json(p) for p in nft_ports)
    lb = nft[("default/lb-plain:https", "IPv4")]
    assert lb["externalIPs"] == ["192.0.2.102"] and lb["loadBalancerIPs"] == []
    assert ipt_docs[("default/lb-plain:https", "IPv4")]["loadBalancerIPs"] == ["192.0.2.102"]
    ranges = nft[("default/lb-ranges:http", "IPv4")]
    assert ranges["loadBalancerIPs"] == ["192.0.2.100"]  # firewall-ips says it is one
    assert sorted(ranges["loadBalancerSourceRanges"]) == ["198.51.100.0/25", "203.0.113.0/24"]
    assert nft[("default/etp-local-has:http", "IPv4")]["healthCheckNodePort"] is None
    assert all(not e["localhost"] for d in nft.values() for e in d["entries"])
    hw = ipt_docs[("default/hello-world", "IPv4")]
    assert [e["localhost"] for e in hw["entries"] if e["kind"] == "nodePort"] == [True]


def test_exact_shares_affinity_and_local_policies(nft_ports):
    by = {(p.name, int(p.family)): p for p in nft_ports}
    seven = by[("default/cascade-7ep:http", 4)]
    assert [str(e.share) for e in seven.endpoints] == ["1/7"] * 7
    aff = by[("default/affinity:http", 4)]
    assert aff.affinity_seconds == 600 and len(aff.chains["sep"]) == 3
    assert sorted(e.endpoint for e in aff.endpoints) == ["10.244.1.70:8080", "10.244.2.70:8080", "10.244.2.71:8080"]
    etp = by[("default/etp-local-has:http", 4)]
    assert [e.endpoint for e in etp.local_endpoints] == ["10.244.1.100:8080"] and len(etp.endpoints) == 3
    itp = by[("default/itp-local-has:http", 4)]
    assert itp.endpoints == () and [e.endpoint for e in itp.local_endpoints] == ["10.244.1.110:8080"]
    v6 = by[("default/v6-only:http", 6)]
    assert sorted(e.endpoint for e in v6.endpoints) == ["[fd00:10:244:1::131]:8080", "[fd00:10:244:2::131]:8080"]
    none = by[("default/no-endpoints-np", 4)]
    assert {(e.kind, e.verdict) for e in none.entries} == {("clusterIP", "reject"), ("nodePort", "reject")}


def test_chain_name_hashes_are_verified():
    assert chain_hash("default/hello-world/tcp/") == "AN52JS3S"
    n = split_name("endpoint-YZGV73UU-default/affinity/tcp/http__10.244.1.70/8080")
    assert n.verified and n.endpoint == "10.244.1.70:8080" and n.spn == "default/affinity:http"
    assert spn_of("default/hello-world/tcp/") == "default/hello-world"
    assert split_name("service-AAAAAAAA-default/hello-world/tcp/").verified is False
    text = (NFT / "nft-list-ruleset.txt").read_text().replace("AN52JS3S", "AN52JS3T")
    ports = build_service_ports(parse_nft(text, "edited"))
    hw = [p for p in ports if p.name == "default/hello-world"][0]
    assert any("hash is not base32(sha256(" in w and "AN52JS3S" in w for w in hw.warnings)
    assert [e.endpoint for e in hw.endpoints] == ["10.244.1.10:8080", "10.244.1.11:8080", "10.244.2.10:8080"]


def test_unequal_weights_and_a_numgen_that_disagrees_with_its_map():
    text = (NFT / "nft-list-ruleset.txt").read_text().replace(
        "numgen random mod 3 map { 0 : 10.244.1.10 . 8080, 1 : 10.244.1.11 . 8080, 2 : 10.244.2.10 . 8080 }",
        "numgen random mod 4 map { 0-1 : 10.244.1.10 . 8080, 2 : 10.244.1.11 . 8080 }")
    hw = [p for p in build_service_ports(parse_nft(text, "edited")) if p.name == "default/hello-world"][0]
    assert [(e.endpoint, str(e.share)) for e in hw.endpoints] == [("10.244.1.10:8080", "1/2"),
                                                                   ("10.244.1.11:8080", "1/4")]
    assert any("covers 3 of the 4 values: 1/4" in w for w in hw.warnings)
    assert any("do not get equal shares" in w for w in hw.warnings)


def test_older_layout_with_endpoint_chains_from_k3s():
    rs = parse_nft((WILD / "036-kube-proxy-nftables-k3s-full-table-spaces.nft").read_text(), "k3s")
    ports = {p.name: p for p in build_service_ports(rs)}
    hp = ports["riset/hellopod-np-svc"]
    assert len(hp.endpoints) == 9 and {str(e.share) for e in hp.endpoints} == {"1/9"}
    assert all(e.sep.startswith("endpoint-") for e in hp.endpoints)
    assert hp.node_port == 30000 and hp.cluster_ip.address == "10.43.195.72"
    assert "10.42.2.218:8080" in {e.endpoint for e in hp.endpoints}


def test_select_by_name_port_and_chain(nft_ports):
    rs = parse_nft((NFT / "nft-list-ruleset.txt").read_text(), "t")
    assert [p.name for p in select_service_ports(rs, "kube-system/kube-dns:53")] == \
        ["kube-system/kube-dns:dns", "kube-system/kube-dns:dns-tcp"]
    assert [p.name for p in select_service_ports(rs, "hello-world", "default")] == ["default/hello-world"]
    assert [p.name for p in select_service_ports(rs, "service-AN52JS3S-default/hello-world/tcp/")] == \
        ["default/hello-world"]
    with pytest.raises(UnknownServiceError) as exc:
        select_service_ports(rs, "default/hello-wrld")
    assert "default/hello-world" in str(exc.value)


def test_services_command_on_nft_text_and_json(cli):
    for name in ("nft-list-ruleset.txt", "nft-list-ruleset.json"):
        r = cli("services", "--rules", str(NFT / name), "-o", "json")
        assert r.code == 0, r.err
        doc = json.loads(r.out)
        assert len(doc["services"]) == 30 and all(s["dataplane"] == "nftables" for s in doc["services"])
    table = cli("services", "--rules", str(NFT / "nft-list-table-ip-kube-proxy.txt"))
    assert table.code == 0 and "service-AN52JS3S-default/hello-world/tcp/" in table.out
    both = cli("services", "--rules", str(NFT / "nft-list-table-ip-kube-proxy.txt"),
               "--rules", str(NFT / "nft-list-table-ip6-kube-proxy.txt"), "-o", "json")
    assert len(json.loads(both.out)["services"]) == 30
    mixed = cli("services", "--rules", str(NFT / "nft-list-ruleset.txt"), "--rules", str(IPT / "iptables-save.txt"))
    assert mixed.code == 2 and "one mode's rules at a time" in mixed.err


def test_iptables_json_has_no_dataplane_key(cli):
    doc = json.loads(cli("services", "--rules", str(IPT / "iptables-save.txt"), "-o", "json").out)
    assert doc["input"]["dataplane"] == "iptables"  # issue 11's input summary names every mode
    assert not any("dataplane" in s for s in doc["services"])  # per-port facts predate the key


# --- check, graph and dump on nftables mode ------------------------------------------------

SEQ = NFT / "sequence"


def test_check_on_the_capture_and_its_objects_is_clean(cli):
    r = cli("check", "--rules", str(NFT / "nft-list-ruleset.txt"), "--objects", str(NFT / "objects.json"),
            "--node", "node-a", "-o", "json")
    assert r.code == 0, r.out + r.err
    doc = json.loads(r.out)
    assert doc["findings"] == [] and doc["checked"] == 30


@pytest.mark.parametrize("rules,objects,code,port", [
    ("step0-initial", "step1-hello-world-scaled-3-to-5", "endpoints-mismatch", "default/hello-world"),
    ("step0-initial", "step2-web-multi-deleted", "stale-service-port", "default/web-multi:http"),
    ("step2-web-multi-deleted", "step0-initial", "missing-service-port", "default/web-multi:metrics"),
])
def test_check_finds_what_a_stale_node_would_have(cli, rules, objects, code, port):
    r = cli("check", "--rules", str(SEQ / rules / "nft-list-ruleset.txt"), "--objects",
            str(SEQ / objects / "objects.json"), "--node", "node-a", "-o", "json")
    assert r.code == 1
    found = {(f["code"], f["servicePort"]) for f in json.loads(r.out)["findings"]}
    assert (code, port) in found


def test_check_rules_alone_finds_dangling_elements_orphans_and_numgen():
    text = (NFT / "nft-list-ruleset.txt").read_text()
    last = "goto service-AS2KJYAD-kube-system/kube-dns/tcp/metrics }"
    assert last in text
    text = text.replace(last, last[:-2] + ",\n\t\t\t     10.96.99.99 . tcp . 80 : goto "
                        "service-AAAAAAAA-default/gone/tcp/http }", 1)
    text = text.replace("numgen random mod 2 map { 0 : 10.244.1.210 . 8080, 1 : 10.244.2.211 . 8080 }",
                        "numgen random mod 3 map { 0 : 10.244.1.210 . 8080, 1 : 10.244.2.211 . 8080 }")
    from svcinspect.dataplane.nftables.check import check_rules
    codes = {(f.code, f.service_port) for f in check_rules(parse_nft(text, "edited")).findings}
    assert ("stale-element", "default/gone:http") in codes
    assert ("numgen-elements", "default/cascade-2ep:http") in codes


def test_graph_and_dump_on_nft(cli, tmp_path):
    g = cli("graph", "default/affinity", "--rules", str(NFT / "nft-list-ruleset.txt"), "-o", "json")
    assert g.code == 0, g.err
    doc = json.loads(g.out)
    eps = sorted(n["endpoint"] for n in doc["nodes"] if n.get("type") == "endpoint")
    assert eps == ["10.244.1.70:8080", "10.244.2.70:8080", "10.244.2.71:8080"]
    shares = [e["share"] for e in doc["edges"] if e.get("share")]
    assert shares.count("1/3") == 3
    overview = cli("graph", "--rules", str(NFT / "nft-list-ruleset.txt"), "-o", "json")
    nodes = json.loads(overview.out)["nodes"]
    assert sum(1 for n in nodes if n.get("type") == "service") >= 25
    d = cli("dump", "--rules", str(NFT / "nft-list-ruleset.json"))
    assert d.code == 0 and d.out.startswith("table ip kube-proxy {")
    again = parse_nft(d.out, "dump")
    orig = parse_nft((NFT / "nft-list-ruleset.json").read_text(), "json")
    assert [sorted(t.chains) for t in again.tables] == [sorted(t.chains) for t in orig.tables]
    assert [[r.exprs for c in t.chains.values() for r in c.rules] for t in again.tables] == \
        [[r.exprs for c in t.chains.values() for r in c.rules] for t in orig.tables]


def test_objects_join_the_nft_service_ports(cli):
    r = cli("services", "--rules", str(NFT / "nft-list-ruleset.txt"), "--objects", str(NFT / "objects.json"),
            "-o", "json")
    assert r.code == 0, r.err
    hw = [s for s in json.loads(r.out)["services"] if s["name"] == "default/hello-world"][0]
    assert {e["endpoint"]: e["node"] for e in hw["endpoints"]} == {
        "10.244.1.10:8080": "node-a", "10.244.1.11:8080": "node-a", "10.244.2.10:8080": "node-b"}
    assert all(e["inRules"] for e in hw["objectEndpoints"])


def test_dataplane_key_on_trace_and_packet_json_only_for_nft(cli):
    for cmd in (["trace", "default/hello-world"], ["packet", "--src", "10.244.1.7", "--dst", "10.96.10.10",
                                                   "--dport", "80"]):
        nft = json.loads(cli(*cmd, "--rules", str(NFT / "nft-list-ruleset.txt"), "-o", "json").out)
        ipt = json.loads(cli(*cmd, "--rules", str(IPT / "iptables-save.txt"), "-o", "json").out)
        assert "dataplane" not in json.dumps({k: v for k, v in ipt.items() if k != "input"})
        assert nft.get("dataplane") == "nftables" or all(p["dataplane"] == "nftables" for p in nft["ports"])


def test_check_compares_external_ips_and_source_ranges(cli, tmp_path):
    objects = json.loads((NFT / "objects.json").read_text())
    for item in objects["items"]:
        if item["kind"] == "Service" and item["metadata"]["name"] == "lb-ranges":
            item["spec"]["loadBalancerSourceRanges"] = ["198.51.100.0/25"]
        if item["kind"] == "Service" and item["metadata"]["name"] == "extip":
            item["spec"]["externalIPs"] = ["203.0.113.11"]
    path = tmp_path / "objects.json"
    path.write_text(json.dumps(objects))
    r = cli("check", "--rules", str(NFT / "nft-list-ruleset.txt"), "--objects", str(path), "--node", "node-a",
            "-o", "json")
    found = {(f["code"], f["servicePort"]) for f in json.loads(r.out)["findings"]}
    assert found == {("source-ranges-mismatch", "default/lb-ranges:http"), ("external-ip-mismatch", "default/extip:http")}


NP_ELEMENTS = ('elements = { tcp . 31614 comment "default/etp-local-none:http" : drop,\n'
               '\t\t\t     tcp . 30081 comment "default/no-endpoints-np" : goto reject-chain }')


def _edited_check(cli, tmp_path, rules_edit=None, objects_edit=None):
    text = (NFT / "nft-list-ruleset.txt").read_text()
    if rules_edit:
        assert rules_edit[0] in text
        text = text.replace(rules_edit[0], rules_edit[1], 1)
    objects = json.loads((NFT / "objects.json").read_text())
    for item in objects["items"]:
        if objects_edit and item["kind"] == "Service" and item["metadata"]["name"] == objects_edit[0]:
            objects_edit[1](item)
    (tmp_path / "r.nft").write_text(text)
    (tmp_path / "o.json").write_text(json.dumps(objects))
    r = cli("check", "--rules", str(tmp_path / "r.nft"), "--objects", str(tmp_path / "o.json"), "--node", "node-a",
            "-o", "json")
    assert r.code == 1, r.out + r.err
    return {(f["code"], f["servicePort"]) for f in json.loads(r.out)["findings"]}, json.loads(r.out)


def _etp(policy):
    def edit(item):
        item["spec"]["externalTrafficPolicy"] = policy
    return edit


@pytest.mark.parametrize("rules_edit,objects_edit,want", [
    # the eTP=Local node port without a local endpoint loses its drop element
    ((NP_ELEMENTS, 'elements = { tcp . 30081 comment "default/no-endpoints-np" : goto reject-chain }'), None,
     ("missing-element", "default/etp-local-none:http")),
    # the no-endpoints node port answers drop instead of reject
    ((NP_ELEMENTS, NP_ELEMENTS.replace("goto reject-chain", "drop")), None,
     ("missing-element", "default/no-endpoints-np")),
    # a drop element for a node port that has endpoints: a black hole
    ((NP_ELEMENTS, NP_ELEMENTS.replace("{ tcp . 31614", '{ tcp . 31611 comment "default/hello-world" : drop,\n'
                                                        '\t\t\t     tcp . 31614')), None,
     ("stale-element", "default/hello-world")),
    # the objects say Cluster, the rules still send outside traffic to the local- chain
    (None, ("etp-local-has", _etp("Cluster")), ("external-policy-mismatch", "default/etp-local-has:http")),
    # the objects say Local, the rules still spread it over every endpoint
    (None, ("hello-world", _etp("Local")), ("external-policy-mismatch", "default/hello-world")),
])
def test_check_compares_external_wiring_and_node_port_verdicts(cli, tmp_path, rules_edit, objects_edit, want):
    found, doc = _edited_check(cli, tmp_path, rules_edit, objects_edit)
    assert want in found, found
    if rules_edit:  # only the edited port is reported
        assert {p for _, p in found} == {want[1]}, found


def test_external_policy_finding_quotes_the_rule(cli, tmp_path):
    _, doc = _edited_check(cli, tmp_path, None, ("hello-world", _etp("Local")))
    f = [f for f in doc["findings"] if f["code"] == "external-policy-mismatch"][0]
    assert any("goto service-AN52JS3S-default/hello-world/tcp/" in e.get("text", "") for e in f["evidence"]), f
