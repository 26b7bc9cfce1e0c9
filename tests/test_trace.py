"""`trace`: every entry point of a service, its path, exact shares and masquerade.

Golden files (tests/golden/trace-*.txt) hold the full text output; refresh with
SVCINSPECT_UPDATE_GOLDEN=1 and read the diff before committing it.
"""

from __future__ import annotations

import json

import pytest

from conftest import IPT, WILD, check_golden

RULES = str(IPT / "iptables-save.txt")
NODE = ["--node-ip", "192.168.10.11"]


def trace_json(cli, service, *extra, rules=RULES):
    r = cli("trace", service, "--rules", rules, *NODE, "-o", "json", *extra)
    assert r.code == 0, r.err
    doc = json.loads(r.out)
    assert doc["schema"] == "svcinspect/v1"
    return doc


def entry(doc, kind, port_index=0):
    return [e for e in doc["ports"][port_index]["entries"] if e["kind"] == kind]


def client(e, words):
    (sc,) = [s for s in e["scenarios"] if words in s["client"]]
    return sc


GOLDEN = ["default/hello-world", "default/cascade-1ep", "default/cascade-2ep", "default/cascade-3ep",
          "default/cascade-4ep", "default/cascade-7ep", "default/web-multi", "kube-system/kube-dns",
          "default/diameter-sctp", "default/no-endpoints", "default/no-endpoints-np", "default/affinity",
          "default/extip", "default/lb-ranges", "default/lb-plain", "default/etp-local-has", "default/etp-local-none",
          "default/itp-local-has", "default/itp-local-none", "default/only-terminating", "default/mixed-readiness"]


@pytest.mark.parametrize("service", GOLDEN)
def test_golden_text(cli, service):
    r = cli("trace", service, "--rules", RULES, *NODE)
    assert r.code == 0, r.err
    check_golden(f"trace-{service.replace('/', '_')}.txt", r.out)


@pytest.mark.parametrize("name,service,dump", [
    ("xlb-1.16", "infra/statsd", "016-counters-xlb-user-annotated-excerpt.rules"),
    ("no-comments", "kube-system/kube-dns:dns-tcp", "018-no-comments-svc-affinity-calico-excerpt.rules"),
    ("gke-1.2", "default/nginx", "042-gke-2016-v1.4.14-loadbalancer-prefw-full.rules"),
    ("aks-1.30", "app-routing-system/nginx", "059-aks-1.30-lb-local-kube-ext-svl-azv-no-dport-duplicated.rules"),
])
def test_golden_text_old_and_wild_layouts(cli, name, service, dump):
    r = cli("trace", service, "--rules", str(WILD / dump), "--node-ip", "192.0.2.1")
    assert r.code == 0, r.err
    check_golden(f"trace-wild-{name}.txt", r.out)


def test_hello_world_nodeport(cli):
    doc = trace_json(cli, "default/hello-world")
    (port,) = doc["ports"]
    assert port["name"] == "default/hello-world" and port["protocol"] == "tcp"
    assert [(e["endpoint"], e["fraction"]) for e in port["endpoints"]] == [
        ("10.244.1.10:8080", "1/3"), ("10.244.1.11:8080", "1/3"), ("10.244.2.10:8080", "1/3")]
    (cip,) = entry(doc, "clusterIP")
    assert (cip["address"], cip["port"]) == ("10.96.10.10", 80)
    assert [s["chain"] for s in cip["path"]] == ["PREROUTING", "KUBE-SERVICES"]
    assert all(e["masquerade"] is False for e in cip["endpoints"])  # first client: a pod
    assert all(o["masquerade"] for o in client(cip, "from this node")["outcomes"])
    (np,) = entry(doc, "nodePort")
    assert np["port"] == 31611
    assert [s["chain"] for s in np["path"]][:3] == ["PREROUTING", "KUBE-SERVICES", "KUBE-NODEPORTS"]
    outside = client(np, "from outside")
    assert sorted((o["endpoint"], o["fraction"], o["masquerade"]) for o in outside["outcomes"]) == [
        ("10.244.1.10:8080", "1/3", True), ("10.244.1.11:8080", "1/3", True), ("10.244.2.10:8080", "1/3", True)]
    assert any("hairpin" in n for n in cip["notes"])


@pytest.mark.parametrize("service,n", [("default/cascade-1ep", 1), ("default/cascade-2ep", 2),
                                       ("default/cascade-3ep", 3), ("default/cascade-4ep", 4),
                                       ("default/cascade-7ep", 7)])
def test_cascades(cli, service, n):
    doc = trace_json(cli, service)
    (port,) = doc["ports"]
    assert [e["fraction"] for e in port["endpoints"]] == [("1" if n == 1 else f"1/{n}")] * n
    pod = client(entry(doc, "clusterIP")[0], "from a pod")
    assert len(pod["outcomes"]) == n and all(o["masquerade"] is False for o in pod["outcomes"])
    assert port["warnings"] == []


def test_multiport_udp_and_sctp(cli):
    doc = trace_json(cli, "default/web-multi")
    assert sorted(p["name"] for p in doc["ports"]) == ["default/web-multi:http", "default/web-multi:metrics"]
    only = trace_json(cli, "default/web-multi", "--port", "metrics")
    assert [p["name"] for p in only["ports"]] == ["default/web-multi:metrics"]
    by_number = trace_json(cli, "default/web-multi", "--port", "9090")
    assert [p["name"] for p in by_number["ports"]] == ["default/web-multi:metrics"]
    dns = trace_json(cli, "kube-system/kube-dns")
    assert {(p["name"], p["protocol"]) for p in dns["ports"]} == {
        ("kube-system/kube-dns:dns", "udp"), ("kube-system/kube-dns:dns-tcp", "tcp"),
        ("kube-system/kube-dns:metrics", "tcp")}
    sctp = trace_json(cli, "default/diameter-sctp")
    assert sctp["ports"][0]["protocol"] == "sctp"
    assert {o["endpoint"] for o in client(entry(sctp, "clusterIP")[0], "from a pod")["outcomes"]} == {
        "10.244.1.40:3868", "10.244.2.40:3868"}


def test_no_endpoints_reject(cli):
    doc = trace_json(cli, "default/no-endpoints-np")
    kinds = {e["kind"]: e for e in doc["ports"][0]["entries"]}
    assert set(kinds) == {"clusterIP", "nodePort"}
    assert kinds["clusterIP"]["verdict"] == "reject"
    for e in kinds.values():
        assert all(o["disposition"] == "reject" for s in e["scenarios"] for o in s["outcomes"])


def test_session_affinity(cli):
    doc = trace_json(cli, "default/affinity")
    (port,) = doc["ports"]
    assert port["affinity"] == {"timeoutSeconds": 600}
    assert any("600 s" in n and "same endpoint" in n for n in port["notes"])
    pod = client(entry(doc, "clusterIP")[0], "from a pod")
    assert any("no session-affinity entry" in a for a in pod["assumptions"])


def test_external_ip(cli):
    doc = trace_json(cli, "default/extip")
    (ext,) = entry(doc, "externalIP")
    assert ext["address"] == "203.0.113.10"
    outside = client(ext, "from outside")
    assert {(o["endpoint"], o["masquerade"]) for o in outside["outcomes"]} == {
        ("10.244.1.80:8080", True), ("10.244.2.80:8080", True)}


def test_load_balancer_source_ranges(cli):
    doc = trace_json(cli, "default/lb-ranges")
    (lb,) = entry(doc, "loadBalancer")
    allowed = [s for s in lb["scenarios"] if "allowed source" in s["client"]]
    assert [s["packet"]["src"] for s in allowed] == ["203.0.113.1", "198.51.100.1"]
    assert all(o["disposition"] == "dnat" for s in allowed for o in s["outcomes"])
    blocked = client(lb, "outside the allowed ranges")
    assert [o["disposition"] for o in blocked["outcomes"]] == ["drop"]


def test_etp_local_with_and_without_local_endpoints(cli):
    has = trace_json(cli, "default/etp-local-has")
    (lb,) = entry(has, "loadBalancer")
    outside = client(lb, "from outside")
    assert [(o["endpoint"], o["fraction"], o["masquerade"]) for o in outside["outcomes"]] == [
        ("10.244.1.100:8080", "1", False)]
    assert [e["port"] for e in entry(has, "healthCheckNodePort")] == [32001]
    none = trace_json(cli, "default/etp-local-none")
    (np,) = entry(none, "nodePort")
    assert [o["disposition"] for o in client(np, "from outside")["outcomes"]] == ["drop"]
    assert {o["endpoint"] for o in client(np, "from a pod")["outcomes"]} == {"10.244.2.102:8080", "10.244.2.103:8080"}


def test_itp_local(cli):
    has = trace_json(cli, "default/itp-local-has")
    assert has["ports"][0]["endpoints"] == [] and [e["endpoint"] for e in has["ports"][0]["localEndpoints"]] == [
        "10.244.1.110:8080"]
    assert [o["endpoint"] for o in client(entry(has, "clusterIP")[0], "from a pod")["outcomes"]] == [
        "10.244.1.110:8080"]
    none = trace_json(cli, "default/itp-local-none")
    assert [o["disposition"] for o in client(entry(none, "clusterIP")[0], "from a pod")["outcomes"]] == ["drop"]


def test_terminating_endpoints_serve_when_none_is_ready(cli):
    doc = trace_json(cli, "default/only-terminating")
    assert [e["endpoint"] for e in doc["ports"][0]["endpoints"]] == ["10.244.1.122:8080", "10.244.2.122:8080"]


def test_old_xlb_layout(cli):
    doc = trace_json(cli, "infra/statsd", rules=str(WILD / "016-counters-xlb-user-annotated-excerpt.rules"))
    (port,) = doc["ports"]
    assert port["chains"]["xlb"] == "KUBE-XLB-5DULF7GDAT3CNN73" and port["protocol"] == "udp"
    assert [e["port"] for e in port["entries"] if e["kind"] == "nodePort"] == [30125]
    # The excerpt has no KUBE-SERVICES: kube-proxy's standard one is assumed, and said (issue 11).
    assert any("the KUBE-SERVICES -> KUBE-NODEPORTS rule is not in the input" in w for w in doc["warnings"])
    assert doc["input"]["complete"] is False and port["endpointsComplete"] is False


def test_gke_2016_inline_load_balancer(cli):
    doc = trace_json(cli, "default/nginx", rules=str(WILD / "042-gke-2016-v1.4.14-loadbalancer-prefw-full.rules"))
    (lb,) = entry(doc, "loadBalancer")
    assert lb["address"] == "146.148.10.228"
    assert [(o["endpoint"], o["masquerade"]) for o in client(lb, "from outside")["outcomes"]] == [
        ("10.80.0.7:80", True)]


def test_no_comment_dump_is_traced_by_recomputed_hash(cli):
    doc = trace_json(cli, "kube-system/kube-dns:dns-tcp",
                     rules=str(WILD / "018-no-comments-svc-affinity-calico-excerpt.rules"))
    (port,) = doc["ports"]
    assert port["name"] == "kube-system/kube-dns:dns-tcp" and port["chains"]["svc"] == "KUBE-SVC-ERIFXISQEP7F7OF4"
    assert [e["fraction"] for e in port["endpoints"]] == ["1/2", "1/2"]
    assert any("recomputing the chain hash" in w for w in port["warnings"])


def test_ipv6_service(cli):
    r = cli("trace", "default/v6-only", "--rules", str(IPT / "ip6tables-save.txt"), "-o", "json")
    assert r.code == 0, r.err
    (port,) = json.loads(r.out)["ports"]
    assert port["family"] == "IPv6" and [e["endpoint"] for e in port["endpoints"]] == [
        "[fd00:10:244:1::131]:8080", "[fd00:10:244:2::131]:8080"]


def test_unknown_service_lists_the_closest_names(cli):
    r = cli("trace", "default/helo-world", "--rules", RULES)
    assert r.code == 2 and "Traceback" not in r.err
    assert "no service 'default/helo-world'" in r.err and "default/hello-world" in r.err


def test_bare_name_with_namespace_option(cli):
    doc = json.loads(cli("trace", "kube-dns", "-n", "kube-system", "--rules", RULES, "-o", "json").out)
    assert len(doc["ports"]) == 3


def test_objects_show_pods_nodes_and_conditions(cli):
    objects = ["--objects", str(IPT / "objects.json"), "--node", "node-a"]
    r = cli("trace", "default/mixed-readiness", "--rules", RULES, *NODE, *objects)
    assert r.code == 0, r.err
    row = [ln for ln in r.out.splitlines() if ln.strip().startswith("10.244.1.120:8080")][0]
    assert "mixed-ready" in row and "node-a (this node)" in row and "ready" in row
    assert "not in the rules: 10.244.2.120:8080 (pod mixed-notready, node node-b, not ready)" in r.out
    doc = trace_json(cli, "default/mixed-readiness", *objects)
    objs = {o["endpoint"]: o for o in doc["ports"][0]["objects"]}
    assert objs["10.244.1.120:8080"]["inRules"] and objs["10.244.1.120:8080"]["pod"] == "mixed-ready"
    assert not objs["10.244.2.121:8080"]["inRules"] and objs["10.244.2.121:8080"]["terminating"]


def test_a_service_shown_by_hash_can_be_traced_by_that_hash(cli):
    """services shows comment-less ports by chain hash; trace must accept what it shows."""
    rules = str(WILD / "018-no-comments-svc-affinity-calico-excerpt.rules")
    shown = [s["key"] for s in json.loads(cli("services", "--rules", rules, "-o", "json").out)["services"]]
    assert "NPX46M4PTMTKRN6Y" in shown
    for query in ("NPX46M4PTMTKRN6Y", "KUBE-SVC-NPX46M4PTMTKRN6Y"):
        doc = trace_json(cli, query, rules=rules)
        assert [p["chains"]["svc"] for p in doc["ports"]] == ["KUBE-SVC-NPX46M4PTMTKRN6Y"]
        assert doc["ports"][0]["affinity"] == {"timeoutSeconds": 10800}
