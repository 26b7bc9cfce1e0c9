"""`check`: the real before/after sequences paired right give nothing, paired wrong
give the expected findings; edited copies of real dumps (built here with
str.replace on the real text) give every other kind of finding."""

from __future__ import annotations

import copy
import json
import re

import pytest

from conftest import IPT, KP

from svcinspect.check import check_rules
from svcinspect.errors import Severity
from svcinspect.dataplane.iptables.parse import parse_dumps
from svcinspect.parse.kube_objects import parse_documents, parse_objects
from svcinspect.sources.files import TextSource

SEQ = IPT / "sequence"
STEPS = ["step0-initial", "step1-hello-world-scaled-3-to-5", "step2-web-multi-deleted"]
V4 = (IPT / "iptables-save.txt").read_text()
V6 = (IPT / "ip6tables-save.txt").read_text()
OBJ = json.loads((IPT / "objects.json").read_text())


def edit(text: str, old: str, new: str) -> str:
    assert old in text, f"fixture changed: {old!r} not found"
    return text.replace(old, new)


def run(rules_v4: str = V4, objects: dict | None = OBJ, node: str | None = "node-a", namespace=None, v6: str | None = None):
    sources = [TextSource("iptables-save.txt", rules_v4)] + ([TextSource("ip6tables-save.txt", v6)] if v6 else [])
    state = parse_documents([objects], "objects.json") if objects is not None else None
    return check_rules(parse_dumps(sources), state, node, namespace)


def codes(report, severity=None) -> set[tuple[str, str | None]]:
    return {(f.code, f.service_port) for f in report.findings if severity is None or f.severity is severity}


def obj_edit(fn) -> dict:
    doc = copy.deepcopy(OBJ)
    fn({(i["kind"], i["metadata"]["name"]): i for i in doc["items"]})
    return doc


# --- consistent pairings: nothing to say ------------------------------------------------------

@pytest.mark.parametrize("folder", [IPT, *(SEQ / s for s in STEPS), KP / "iptables-legacy"],
                         ids=["iptables", *STEPS, "iptables-legacy"])
def test_consistent_pairs_give_no_findings(cli, folder):
    r = cli("check", "--rules", str(folder / "iptables-save.txt"), "--rules", str(folder / "ip6tables-save.txt"),
            "--objects", str(folder / "objects.json"), "--node", "node-a", "-o", "json")
    assert r.code == 0, r.out
    doc = json.loads(r.out)
    assert doc["findings"] == [] and doc["checked"] >= 28


def test_main_pair_v4_only_gives_no_findings_and_says_v6_was_not_checked(cli):
    r = cli("check", "--rules", str(IPT / "iptables-save.txt"), "--objects", str(IPT / "objects.json"),
            "--node", "node-a")
    assert r.code == 0
    assert "No findings. The rules match the objects." in r.out
    assert "IPv6 not checked: no ip6tables-save output was given" in r.out


# --- inconsistent pairings of the real sequence -----------------------------------------------

def test_rules_before_scale_up_objects_after_miss_two_endpoints(cli):
    r = cli("check", "--rules", str(SEQ / STEPS[0] / "iptables-save.txt"),
            "--objects", str(SEQ / STEPS[1] / "objects.json"), "--node", "node-a", "-o", "json")
    assert r.code == 1
    (f,) = json.loads(r.out)["findings"]
    assert (f["severity"], f["code"], f["servicePort"], f["family"]) == (
        "error", "endpoints-mismatch", "default/hello-world", "IPv4")
    assert "the rules have 3" in f["message"] and "the API has 5" in f["message"]
    assert "2 missing from the rules (10.244.2.11:8080, 10.244.2.12:8080)" in f["message"]
    assert [e["text"] for e in f["evidence"]] == ["10.244.2.11:8080 pod hello-world-3 on node-b: ready",
                                                  "10.244.2.12:8080 pod hello-world-4 on node-b: ready"]
    assert f["hint"]


def test_rules_after_scale_up_objects_before_have_two_extra_endpoints():
    rules = (SEQ / STEPS[1] / "iptables-save.txt").read_text()
    before = json.loads((SEQ / STEPS[0] / "objects.json").read_text())
    (f,) = run(rules, before).findings
    assert f.code == "endpoints-mismatch" and "2 in the rules but not usable in the API" in f.message
    assert [e.text.split(" -j ")[-1] for e in f.evidence] == ["KUBE-SEP-CQS5ZEBMNZWS66PI", "KUBE-SEP-JU4DAXEJ36QSVWYC"]
    assert all(e.where.startswith("iptables-save.txt:") for e in f.evidence)


def test_rules_before_delete_objects_after_report_web_multi_stale(cli):
    r = cli("check", "--rules", str(SEQ / STEPS[1] / "iptables-save.txt"),
            "--rules", str(SEQ / STEPS[1] / "ip6tables-save.txt"),
            "--objects", str(SEQ / STEPS[2] / "objects.json"), "--node", "node-a", "-o", "json")
    assert r.code == 1
    found = {(f["code"], f["servicePort"]) for f in json.loads(r.out)["findings"]}
    assert found == {("stale-service-port", "default/web-multi:http"),
                     ("stale-service-port", "default/web-multi:metrics")}
    stale = json.loads(r.out)["findings"][0]
    assert "no such Service in the API" in stale["message"]
    assert any("KUBE-SVC-" in e["text"] for e in stale["evidence"])


def test_rules_after_delete_objects_before_report_missing_service_ports():
    rules = (SEQ / STEPS[2] / "iptables-save.txt").read_text()
    objects = json.loads((SEQ / STEPS[1] / "objects.json").read_text())
    assert codes(run(rules, objects)) == {("missing-service-port", "default/web-multi:http"),
                                          ("missing-service-port", "default/web-multi:metrics")}


def test_namespace_narrows_the_check():
    rules = (SEQ / STEPS[1] / "iptables-save.txt").read_text()
    objects = json.loads((SEQ / STEPS[2] / "objects.json").read_text())
    assert run(rules, objects, namespace="kube-system").findings == ()
    assert run(rules, objects, namespace="default").findings != ()


# --- edited copies of the real dump --------------------------------------------------------------

HOOK = '-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES\n'


def test_missing_prerouting_hook_breaks_every_service_with_or_without_objects():
    rules = edit(V4, HOOK, "")
    for objects in (OBJ, None):
        (f,) = run(rules, objects).findings
        assert (f.severity, f.code, f.service_port) == (Severity.ERROR, "missing-hook", None)
        assert "nat PREROUTING does not jump to KUBE-SERVICES" in f.message


def test_reject_although_ready_endpoints_exist():
    no_ep = ('-A KUBE-SERVICES -d 10.96.50.10/32 -p tcp -m comment --comment "default/no-endpoints:http has no '
             'endpoints" -m tcp --dport 80 -j REJECT --reject-with icmp-port-unreachable\n')
    bogus = ('-A KUBE-SERVICES -d 10.96.10.10/32 -p tcp -m comment --comment "default/hello-world has no endpoints" '
             '-m tcp --dport 80 -j REJECT --reject-with icmp-port-unreachable\n')
    report = run(edit(V4, no_ep, no_ep + bogus))
    (f,) = report.findings
    assert (f.code, f.service_port) == ("reject-with-endpoints", "default/hello-world")
    assert "3 ready endpoint(s)" in f.message and f.evidence[0].text == bogus.strip()


def test_no_reject_for_a_service_without_endpoints():
    line = ('-A KUBE-SERVICES -d 10.96.120.12/32 -p tcp -m comment --comment "default/only-notready:http has no '
            'endpoints" -m tcp --dport 80 -j REJECT --reject-with icmp-port-unreachable\n')
    report = run(edit(V4, line, ""))
    assert codes(report) == {("missing-service-port", "default/only-notready:http")}


def test_endpoints_gone_not_ready_but_rules_still_dnat():
    def not_ready(items):
        for ep in items[("EndpointSlice", "hello-world-abc12")]["endpoints"]:
            ep["conditions"] = {"ready": False, "serving": False, "terminating": False}
    report = run(V4, obj_edit(not_ready))
    assert ("endpoints-mismatch", "default/hello-world") in codes(report, Severity.ERROR)
    assert ("missing-reject", "default/hello-world") in codes(report, Severity.WARNING)


def test_uneven_cascade_is_a_warning_lifted_from_the_rules():
    old = '--comment "default/hello-world -> 10.244.1.10:8080" -m statistic --mode random --probability 0.33333333349'
    report = run(edit(V4, old, old.replace("0.33333333349", "0.50000000000")))
    (f,) = report.findings
    assert (f.severity, f.code, f.service_port) == (Severity.WARNING, "uneven-shares", "default/hello-world")
    assert any("0.50000000000" in e.text for e in f.evidence)
    assert run(edit(V4, old, old.replace("0.33333333349", "0.50000000000")), None).findings == (f,)


def test_affinity_mismatch():
    report = run(edit(V4, "--rcheck --seconds 600", "--rcheck --seconds 300"))
    (f,) = report.findings
    assert (f.code, f.service_port) == ("affinity-mismatch", "default/affinity:http")
    assert "ClientIP 300s" in f.message and "ClientIP 600s" in f.message


def test_policy_mismatch_when_external_traffic_skips_the_local_chain():
    report = run(edit(V4, "-A KUBE-EXT-XZPXZFXLZG6VBDNQ -j KUBE-SVL-XZPXZFXLZG6VBDNQ",
                      "-A KUBE-EXT-XZPXZFXLZG6VBDNQ -j KUBE-SVC-XZPXZFXLZG6VBDNQ"))
    assert ("policy-mismatch", "default/etp-local-has:http") in codes(report, Severity.ERROR)
    # The SVL chain is now unreachable: an orphan.
    assert ("orphan-chain", "default/etp-local-has:http") in codes(report, Severity.WARNING)


def test_policy_mismatch_when_the_service_changed_to_internal_local():
    def itp_local(items):
        items[("Service", "cascade-2ep")]["spec"]["internalTrafficPolicy"] = "Local"
    report = run(V4, obj_edit(itp_local))
    assert {("policy-mismatch", "default/cascade-2ep:http"),
            ("endpoints-mismatch", "default/cascade-2ep:http")} <= codes(report, Severity.ERROR)


def test_orphan_endpoint_chain_and_dangling_jump():
    sep = ":KUBE-SEP-Z6M7ZHWCTBNMPLD7 - [0:0]\n"
    orphan = ":KUBE-SEP-AAAAAAAAAAAAAAAA - [0:0]\n"
    rules = edit(V4, sep, sep + orphan)
    rules = edit(rules, '-j KUBE-SEP-TTFDDCQ6CXER73EZ\n', '-j KUBE-SEP-ZZZZZZZZZZZZZZZZ\n')
    report = run(rules)
    found = codes(report)
    assert ("orphan-chain", None) in found                          # no comment, no service to name
    assert ("dangling-jump", "default/hello-world") in found
    dangling = next(f for f in report.findings if f.code == "dangling-jump")
    assert "KUBE-SEP-ZZZZZZZZZZZZZZZZ, which is not declared" in dangling.message
    assert dangling.evidence[0].where.startswith("iptables-save.txt:")


def test_wrong_node_port_and_cluster_ip():
    def change(items):
        items[("Service", "hello-world")]["spec"]["ports"][0]["nodePort"] = 31612
        items[("Service", "cascade-1ep")]["spec"]["clusterIP"] = "10.96.20.99"
        items[("Service", "cascade-1ep")]["spec"]["clusterIPs"] = ["10.96.20.99"]
    found = codes(run(V4, obj_edit(change)), Severity.ERROR)
    assert found == {("wrong-node-port", "default/hello-world"), ("wrong-cluster-ip", "default/cascade-1ep:http")}


def test_source_ranges_mismatch():
    def change(items):
        items[("Service", "lb-ranges")]["spec"]["loadBalancerSourceRanges"] = ["203.0.113.0/24"]
    (f,) = run(V4, obj_edit(change)).findings
    assert (f.code, f.severity) == ("source-ranges-mismatch", Severity.ERROR)
    assert "198.51.100.0/25" in f.message


def test_rules_for_a_service_that_became_headless_are_stale():
    def headless(items):
        items[("Service", "cascade-1ep")]["spec"]["clusterIP"] = "None"
        items[("Service", "cascade-1ep")]["spec"]["clusterIPs"] = ["None"]
    (f,) = run(V4, obj_edit(headless)).findings
    assert (f.code, f.service_port) == ("stale-service-port", "default/cascade-1ep:http")
    assert "headless service" in f.message


def test_large_cluster_mode_comments_missing_is_info_only():
    rules, n = re.subn(r'-m comment --comment "[^"]* -> [^"]*" ', "", V4)
    assert n > 30
    report = run(rules)
    assert [(f.severity, f.code) for f in report.findings] == [(Severity.INFO, "no-endpoint-comments")]


def test_without_node_node_local_checks_are_skipped_and_said():
    report = run(V4, OBJ, node=None)
    assert report.findings == ()
    assert any("pass --node NAME" in n for n in report.notes)


# --- the command's contract -----------------------------------------------------------------------

def test_fail_on_decides_the_exit_code(cli, tmp_path):
    dump = tmp_path / "iptables-save.txt"
    dump.write_text(edit(V4, "--rcheck --seconds 600", "--rcheck --seconds 300"))   # a warning only
    base = ["check", "--rules", str(dump), "--objects", str(IPT / "objects.json"), "--node", "node-a"]
    assert cli(*base).code == 0
    assert cli(*base, "--fail-on", "warning").code == 1
    assert cli(*base, "--fail-on", "never").code == 0
    r = cli(*base, "-o", "json")
    doc = json.loads(r.out)
    assert doc["schema"] == "svcinspect/v1"
    assert list(doc) == ["schema", "input", "node", "withObjects", "families", "checked", "summary", "findings",
                         "notes", "diagnostics"]
    assert doc["input"] == {"dataplane": "iptables", "complete": True, "reasons": [], "notes": []}
    assert list(doc["findings"][0]) == ["severity", "code", "servicePort", "family", "message", "evidence", "hint"]
    assert doc["summary"] == {"error": 0, "warning": 1, "info": 0}


def test_text_report_quotes_rule_lines(cli, tmp_path):
    dump = tmp_path / "iptables-save.txt"
    dump.write_text(edit(V4, HOOK, ""))
    r = cli("check", "--rules", str(dump))
    assert r.code == 1
    assert r.out.splitlines()[0].startswith("Node unknown (--node not given); rules: IPv4; rules only")
    assert "ERROR   (node) [IPv4]  missing-hook" in r.out
    assert "no objects given" in r.out


def test_objects_and_kubeconfig_together_are_refused(cli, tmp_path):
    r = cli("check", "--rules", str(IPT / "iptables-save.txt"), "--objects", str(IPT / "objects.json"),
            "--kubeconfig", str(tmp_path / "k"))
    assert r.code == 2 and "use one of them" in r.err


def test_services_shows_pods_and_conditions_with_objects(cli):
    r = cli("services", "--rules", str(IPT / "iptables-save.txt"), "--objects", str(IPT / "objects.json"),
            "--node", "node-a")
    assert r.code == 0
    rows = [ln.split() for ln in r.out.splitlines()]
    assert ["default/only-terminating:http", "10.244.2.123:8080", "term-notserving", "node-b", "not", "ready,",
            "not", "serving,", "terminating", "no"] in rows
    assert ["default/hello-world", "10.244.1.10:8080", "hello-world-0", "node-a", "(this", "node)", "ready",
            "yes"] in rows
    j = cli("services", "--rules", str(IPT / "iptables-save.txt"), "--objects", str(IPT / "objects.json"),
            "--node", "node-a", "-o", "json")
    hw = next(s for s in json.loads(j.out)["services"] if s["name"] == "default/hello-world")
    assert hw["endpoints"][0]["pod"] == "hello-world-0"
    assert hw["endpoints"][0]["conditions"] == {"ready": True, "serving": True, "terminating": False}
    mixed = next(s for s in json.loads(j.out)["services"] if s["name"] == "default/mixed-readiness:http")
    assert {e["endpoint"]: e["inRules"] for e in mixed["objectEndpoints"]} == {
        "10.244.1.120:8080": True, "10.244.2.120:8080": False, "10.244.2.121:8080": False}
    plain = cli("services", "--rules", str(IPT / "iptables-save.txt"), "-o", "json")
    assert "objectEndpoints" not in json.loads(plain.out)["services"][0]


def test_scenario_manifests_as_objects_match_the_rules_except_the_missing_kubernetes_service():
    text = "\n---\n".join(p.read_text() for p in sorted((KP / "scenario").glob("*.yaml")))
    state = parse_objects(text, "scenario")
    report = check_rules(parse_dumps([TextSource("iptables-save.txt", V4)]), state, "node-a")
    assert codes(report) == {("stale-service-port", "default/kubernetes:https")}
