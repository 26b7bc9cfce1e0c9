"""Issue 11: on pasted excerpts svcinspect says only what the input proves.

Each case is a real paste (fixtures/wild/, from bug reports) or a real grep of
the real capture (fixtures/excerpts/, see its README). Expectations come from
the capture itself: hello-world has 3 endpoints at 1/3 (10.244.1.10, .1.11,
.2.10 :8080), etp-local-none has no endpoint on node-a (its node port 31614 is
DROPped from outside), no-endpoints-np's node port 30081 is REJECTed.
"""

from __future__ import annotations

import ipaddress
import json
from fractions import Fraction

import pytest

from conftest import FIXTURES, IPT, WILD
from svcinspect.check import check_rules
from svcinspect.completeness import assess_input
from svcinspect.errors import Severity
from svcinspect.simulate import Environment
from svcinspect.dataplane import simulate
from svcinspect.model.flow import Disposition, Hook, Packet
from svcinspect.dataplane.iptables.parse import parse_iptables_save
from svcinspect.dataplane import build_service_ports

EX = FIXTURES / "excerpts"
HW = {"10.244.1.10:8080", "10.244.1.11:8080", "10.244.2.10:8080"}
NODE = "192.168.10.11"


def parse(path):
    return parse_iptables_save(path.read_text(), path.name)


def port(ruleset, name):
    (sp,) = [p for p in build_service_ports(ruleset) if p.name == name]
    return sp


def services_json(cli, path):
    r = cli("services", "--rules", str(path), "-o", "json")
    assert r.code == 0, r.err
    return json.loads(r.out)


def test_sep_dnats_without_the_svc_chain_are_seen_with_unknown_shares(cli):
    doc = services_json(cli, EX / "hello-world-dnat-grep.rules")
    assert doc["input"]["complete"] is False and doc["input"]["dataplane"] == "iptables"
    assert any("grep hello-world" in r for r in doc["input"]["reasons"])
    (hw,) = doc["services"]
    assert hw["name"] == "default/hello-world" and hw["clusterIP"] == "10.96.10.10"
    assert hw["endpointsComplete"] is False
    assert {e["endpoint"] for e in hw["endpoints"]} == HW
    assert all(e["share"] is None and e["fraction"] is None for e in hw["endpoints"])
    assert any("KUBE-SVC-DZ6LTOHRG6HQWHYE" in u and "not in the input" in u for u in hw["unknown"])


def test_trace_of_that_grep_never_says_none(cli):
    r = cli("trace", "default/hello-world", "--rules", str(EX / "hello-world-dnat-grep.rules"))
    assert r.code == 0, r.err
    assert "endpoints: none" not in r.out and "found no usable endpoints" not in r.out
    assert "10.244.2.10:8080  unknown" in r.out
    doc = json.loads(cli("trace", "default/hello-world", "--rules", str(EX / "hello-world-dnat-grep.rules"),
                         "-o", "json").out)
    (p,) = doc["ports"]
    assert p["endpointsComplete"] is False and {e["endpoint"] for e in p["endpoints"]} == HW
    # A first packet to the cluster IP jumps to the absent KUBE-SVC chain: unknown, not "no rule decided".
    cip = [e for e in p["entries"] if e["kind"] == "clusterIP"][0]
    assert {o["disposition"] for sc in cip["scenarios"] for o in sc["outcomes"]} == {"unknown"}


def test_rules_pasted_twice_count_once_and_give_the_real_shares(cli):
    rs = parse(EX / "hello-world-overlapping-greps.rules")
    sp = port(rs, "default/hello-world")
    assert sp.endpoints_complete and sorted(e.endpoint for e in sp.endpoints) == sorted(HW)
    assert [e.share for e in sp.endpoints] == [Fraction(1, 3)] * 3
    assert not sp.warnings
    repeats = [d for d in rs.diagnostics if "pasted more than once" in d.message]
    assert any(d.line == 24 and "24 repeats 12" in d.message for d in repeats)
    report = check_rules(rs)
    assert not [f for f in report.findings if f.code == "uneven-shares"]
    # The AKS paste from a bug report: its SVC block is pasted twice; 2 endpoints at 1/2, not 4.
    aks = port(parse(WILD / "059-aks-1.30-lb-local-kube-ext-svl-azv-no-dport-duplicated.rules"),
               "app-routing-system/nginx:http")
    assert [e.share for e in aks.endpoints] == [Fraction(1, 2)] * 2
    assert not [f for f in check_rules(parse(WILD / "059-aks-1.30-lb-local-kube-ext-svl-azv-no-dport-duplicated.rules"))
                .findings if f.code == "uneven-shares"]


@pytest.mark.parametrize("path,name,endpoints", [
    (EX / "hello-world-sep-only.rules", "default/hello-world", HW),
    # No comments: KUBE-SEP-43JXX3WIN2SOR6EG is hash16("kube-system/kube-dns:dns" "udp" "192.168.78.125:53").
    (WILD / "009-kubeadm-v1.4.21-2019-nat-head-excerpt.rules", "kube-system/kube-dns:dns", {"192.168.78.125:53"}),
], ids=["grep KUBE-SEP", "009 kubeadm head"])
def test_endpoint_chains_alone_list_the_service_ports_they_evidence(cli, path, name, endpoints):
    doc = services_json(cli, path)
    (sp,) = [s for s in doc["services"] if s["name"] == name]
    assert sp["endpointsComplete"] is False
    assert {e["endpoint"] for e in sp["endpoints"]} == endpoints
    assert all(e["share"] is None for e in sp["endpoints"])
    r = cli("trace", name, "--rules", str(path))
    assert r.code == 0 and "endpoints: only those above are proven" in r.out


def test_journald_prefixes_are_stripped():
    plain = parse(WILD / "049-cka-grep-with-legacy-warning-trailer.rules")
    logged = parse(EX / "049-journald-prefixed.rules")
    assert logged == plain
    assert any("journald/syslog prefixes from 7 line(s)" in d.message for d in logged.diagnostics)
    sp = port(logged, "project-hamster/p2-service")
    assert [e.endpoint for e in sp.endpoints] == ["10.44.0.31:80"] and sp.cluster_ip.address == "10.105.128.247"


def test_a_grepped_kube_services_sends_filter_rules_to_filter():
    rs = parse(EX / "etp-local-none-grep.rules")
    filt = rs.table("filter")
    assert "KUBE-EXTERNAL-SERVICES" in filt.chains
    nat = rs.table("nat")
    assert all(" -j DROP" not in t and " -j REJECT" not in t for _, t in nat.raw_rules("KUBE-SERVICES") or ())


def _sim(rs, src, dst, dport, hook="prerouting"):
    return simulate(rs, Packet(ipaddress.ip_address(src), ipaddress.ip_address(dst), dport, "tcp", Hook(hook)),
                    Environment(frozenset({ipaddress.ip_address(NODE)})))


def test_missing_standard_chains_are_assumed_and_said():
    # eTP=Local with no local endpoint: from outside, kube-proxy DROPs the node port.
    rs = parse(EX / "etp-local-none-grep.rules")
    sim = _sim(rs, "203.0.113.5", NODE, 31614)
    assert {o.disposition for o in sim.outcomes} == {Disposition.DROP}
    assert any("KUBE-SERVICES -> KUBE-NODEPORTS rule is not in the input" in w for w in sim.warnings)
    # A pod reaching that node port is sent to all endpoints (pod short-circuit), and from the node it is
    # masqueraded by the assumed KUBE-MARK-MASQ / KUBE-POSTROUTING, as in the whole dump.
    whole = parse_iptables_save((IPT / "iptables-save.txt").read_text())
    for src, hook in (("10.244.1.7", "prerouting"), (NODE, "output")):
        got = _sim(rs, src, "10.96.100.11", 80, hook)
        want = _sim(whole, src, "10.96.100.11", 80, hook)
        assert sorted((o.endpoint, o.masquerade, o.probability) for o in got.outcomes) == \
            sorted((o.endpoint, o.masquerade, o.probability) for o in want.outcomes)
    assert any(o.masquerade for o in _sim(rs, NODE, "10.96.100.11", 80, "output").outcomes)
    assert any("KUBE-MARK-MASQ is not in the input" in w for w in sim.warnings)


def test_no_endpoints_node_port_from_the_node_in_an_excerpt_is_rejected():
    rs = parse(EX / "no-endpoints-np-grep.rules")
    for src in (NODE, "127.0.0.1"):
        dst = NODE if src == NODE else "127.0.0.1"
        sim = _sim(rs, src, dst, 30081, "output")
        assert {o.disposition for o in sim.outcomes} == {Disposition.REJECT}


@pytest.mark.parametrize("path", [
    WILD / "049-cka-grep-with-legacy-warning-trailer.rules",
    WILD / "018-no-comments-svc-affinity-calico-excerpt.rules",
    WILD / "016-counters-xlb-user-annotated-excerpt.rules",
    EX / "hello-world-dnat-grep.rules",
], ids=lambda p: p.name)
def test_check_on_an_excerpt_reports_no_error_for_what_is_outside_it(cli, path):
    r = cli("check", "--rules", str(path), "-o", "json")
    doc = json.loads(r.out)
    assert r.code == 0, doc["findings"]
    assert doc["summary"]["error"] == 0 and doc["input"]["complete"] is False
    whole = {f["code"] for f in doc["findings"] if f["code"] in ("missing-hook", "orphan-chain", "dangling-jump")}
    assert whole and all(f["severity"] == "info" and f["message"].startswith("cannot tell from an excerpt")
                         for f in doc["findings"] if f["code"] in whole)
    assert not any("restart kube-proxy" in f["hint"] or "left over" in f["message"] for f in doc["findings"])


def test_check_on_the_whole_dump_still_reports_a_missing_hook(cli, tmp_path):
    text = (IPT / "iptables-save.txt").read_text().replace(
        '-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES\n', "")
    (tmp_path / "d").write_text(text)
    doc = json.loads(cli("check", "--rules", str(tmp_path / "d"), "-o", "json").out)
    assert doc["input"]["complete"] is True
    assert [f["severity"] for f in doc["findings"] if f["code"] == "missing-hook"] == ["error"]


def test_check_with_objects_on_an_excerpt_does_not_call_other_ports_missing(cli):
    r = cli("check", "--rules", str(EX / "hello-world-overlapping-greps.rules"), "--objects",
            str(IPT / "objects.json"), "--node", "node-a", "-o", "json")
    doc = json.loads(r.out)
    assert r.code == 0 and doc["summary"]["error"] == 0
    missing = [f for f in doc["findings"] if f["code"] == "missing-service-port"]
    assert missing and all(f["severity"] == "info" for f in missing)
    assert not [f for f in doc["findings"] if f["servicePort"] == "default/hello-world" and f["severity"] != "info"]


def test_well_known_hashes_name_uncommented_chains():
    rs = parse(WILD / "018-no-comments-svc-affinity-calico-excerpt.rules")
    names = {p.key: p.name for p in build_service_ports(rs)}
    assert names["NPX46M4PTMTKRN6Y"] == "default/kubernetes:https"
    assert names["ERIFXISQEP7F7OF4"] == "kube-system/kube-dns:dns-tcp"
    names = {p.key: p.name for p in build_service_ports(parse(WILD / "009-kubeadm-v1.4.21-2019-nat-head-excerpt.rules"))}
    assert names["TCOU7JCQXEZGVUNU"] == "kube-system/kube-dns:dns"


def test_a_whole_dump_is_complete_and_unchanged():
    rs = parse_iptables_save((IPT / "iptables-save.txt").read_text(), "iptables-save.txt")
    c = assess_input(rs)
    assert c.complete and c.dataplane == "iptables" and c.reasons == ()
    assert all(p.endpoints_complete and all(e.share is not None for e in p.endpoints)
               for p in build_service_ports(rs))


@pytest.mark.parametrize("cut", ["no COMMIT", "no header"])
def test_a_truncated_or_headerless_dump_is_an_excerpt(cut):
    text = (IPT / "iptables-save.txt").read_text()
    nat = text[text.index("*nat"):]
    if cut == "no COMMIT":
        nat = nat[:nat.rindex("COMMIT")]
    else:
        nat = "\n".join(ln for ln in nat.splitlines() if ln.startswith("-A "))
    c = assess_input(parse_iptables_save(nat))
    assert not c.complete and c.reasons
    assert ("COMMIT" in c.reasons[0]) == (cut == "no COMMIT")


def test_severity_of_stale_rules_in_an_excerpt_is_kept():
    """What the excerpt does show is still judged: rules for a Service the API does not have."""
    rs = parse(EX / "hello-world-dnat-grep.rules")
    from svcinspect.parse.kube_objects import parse_objects
    state = parse_objects('{"kind": "List", "items": []}', "empty.json")
    report = check_rules(rs, state, "node-a")
    assert [f.severity for f in report.findings if f.code == "stale-service-port"] == [Severity.ERROR]


@pytest.mark.parametrize("path", [EX / "hello-world-dnat-grep.rules", EX / "hello-world-sep-only.rules",
                                  EX / "hello-world-overlapping-greps.rules", IPT / "iptables-save.txt"],
                         ids=lambda p: p.name)
def test_every_command_agrees_on_what_the_input_proves(cli, path):
    """One model: services, trace, check, packet and graph say the same about completeness."""
    rules = ["--rules", str(path)]
    services = json.loads(cli("services", *rules, "-o", "json").out)
    (sp,) = [s for s in services["services"] if s["name"] == "default/hello-world"]
    trace = json.loads(cli("trace", "default/hello-world", *rules, "-o", "json").out)
    check = json.loads(cli("check", *rules, "-o", "json").out)
    packet = json.loads(cli("packet", *rules, "--src", "10.244.1.7", "--dst", "10.96.10.10", "--dport", "80",
                            "-o", "json").out)
    graph = json.loads(cli("graph", "default/hello-world", *rules, "-o", "json").out)
    complete = services["input"]["complete"]
    assert trace["input"]["complete"] == check["input"]["complete"] == packet["input"]["complete"] == complete
    assert complete == (path.parent == IPT)
    (tp,) = trace["ports"]
    assert tp["endpointsComplete"] == sp["endpointsComplete"]
    assert [e["share"] for e in tp["endpoints"]] == [e["share"] for e in sp["endpoints"]]
    unknown_shares = sp["endpointsComplete"] is False and all(e["share"] is None for e in sp["endpoints"])
    graph_unknown = [e for e in graph["edges"] if e.get("share") == "?"]
    assert bool(graph_unknown) == unknown_shares
    if unknown_shares:
        assert len(graph_unknown) == len(sp["endpoints"]) == 3
    dispositions = {o["disposition"] for o in packet["outcomes"]}
    if sp["endpointsComplete"]:
        assert dispositions == {"dnat"} and {o["endpoint"] for o in packet["outcomes"]} == HW
    else:
        assert dispositions == {"unknown"}


def test_old_xlb_drop_without_kube_mark_drop_in_the_paste_is_still_a_drop():
    """kube-proxy 1.16's "has no local endpoints" jumps to KUBE-MARK-DROP (0x8000), dropped by KUBE-FIREWALL
    in filter; neither is in the paste, both are assumed (and said), so the node port DROPs from outside."""
    rs = parse(EX / "xlb-no-local-endpoints-k8s116-shape.rules")
    sim = simulate(rs, Packet(ipaddress.ip_address("203.0.113.5"), ipaddress.ip_address(NODE), 30125, "udp"),
                   Environment(frozenset({ipaddress.ip_address(NODE)})))
    assert {o.disposition for o in sim.outcomes} == {Disposition.DROP}
    assert any("KUBE-MARK-DROP is not in the input" in w for w in sim.warnings)
    (o,) = sim.outcomes
    assert o.verdict_step.source == "<assumed kube-proxy chain>" and "0x8000" in o.verdict_step.rule
    # From the node itself, the route-LOCAL rule sends it to KUBE-SVC, which is not in the paste: unknown.
    own = simulate(rs, Packet(ipaddress.ip_address(NODE), ipaddress.ip_address(NODE), 30125, "udp", Hook.OUTPUT),
                   Environment(frozenset({ipaddress.ip_address(NODE)})))
    assert {o.disposition for o in own.outcomes} == {Disposition.UNKNOWN}


def test_a_table_pasted_twice_counts_each_rule_once(cli, tmp_path):
    text = (IPT / "iptables-save.txt").read_text()
    nat = text[text.index("*nat"):]
    twice = tmp_path / "twice.rules"
    twice.write_text(nat + nat)
    rs = parse(twice)
    sp = port(rs, "default/hello-world")
    assert [e.share for e in sp.endpoints] == [Fraction(1, 3)] * 3 and not sp.warnings
    assert any("pasted more than once" in d.message for d in rs.diagnostics)
    assert rs.rule_count() == parse_iptables_save(nat).rule_count()
