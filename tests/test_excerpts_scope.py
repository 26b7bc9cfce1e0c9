"""Issue 11: -n NS narrows the output, and node ports bound to addresses
(``--nodeport-addresses=primary``, real capture) are shown and simulated per address."""

from __future__ import annotations

import json

from conftest import IPT, KP

PRIMARY = KP / "iptables-nodeport-addresses-primary" / "iptables-save.txt"


def test_services_namespace_narrows_rules_and_objects(cli):
    r = cli("services", "--rules", str(IPT / "iptables-save.txt"), "--objects", str(IPT / "objects.json"),
            "--node", "node-a", "-n", "kube-system", "-o", "json")
    doc = json.loads(r.out)
    assert r.code == 0
    assert {s["name"] for s in doc["services"]} == {"kube-system/kube-dns:dns", "kube-system/kube-dns:dns-tcp",
                                                   "kube-system/kube-dns:metrics"}
    text = cli("services", "--rules", str(IPT / "iptables-save.txt"), "--objects", str(IPT / "objects.json"),
               "--node", "node-a", "-n", "kube-system").out
    assert "default/" not in text and "not in any EndpointSlice" not in text


def test_check_namespace_narrows_findings(cli, tmp_path):
    # Break one default and one kube-system service port: -n kube-system reports only the latter.
    text = (IPT / "iptables-save.txt").read_text()
    text = text.replace("--dport 53 -j KUBE-SVC-TCOU7JCQXEZGVUNU", "--dport 54 -j KUBE-SVC-TCOU7JCQXEZGVUNU")
    text = text.replace("-d 10.96.10.10/32 -p tcp -m comment --comment \"default/hello-world cluster IP\" -m tcp "
                        "--dport 80 -j", "-d 10.96.10.10/32 -p tcp -m comment --comment \"default/hello-world cluster "
                        "IP\" -m tcp --dport 81 -j")
    (tmp_path / "d").write_text(text)
    base = ["check", "--rules", str(tmp_path / "d"), "--objects", str(IPT / "objects.json"), "--node", "node-a",
            "-o", "json"]
    everything = {f["servicePort"] for f in json.loads(cli(*base).out)["findings"]}
    assert {"kube-system/kube-dns:dns", "default/hello-world"} <= everything
    narrowed = {f["servicePort"] for f in json.loads(cli(*base, "-n", "kube-system").out)["findings"]}
    assert narrowed and all(n.startswith("kube-system/") for n in narrowed if n)


def test_node_ports_bound_to_addresses_are_shown_per_address(cli):
    doc = json.loads(cli("services", "--rules", str(PRIMARY), "-o", "json").out)
    (hw,) = [s for s in doc["services"] if s["name"] == "default/hello-world"]
    assert [(e["address"], e["port"]) for e in hw["entries"] if e["kind"] == "nodePort"] == [("192.168.10.11", 31611)]
    text = cli("services", "--rules", str(PRIMARY)).out
    assert "31611 on 192.168.10.11" in text
    # The default (all local addresses) capture keeps "every local address".
    whole = json.loads(cli("services", "--rules", str(IPT / "iptables-save.txt"), "-o", "json").out)
    (hw,) = [s for s in whole["services"] if s["name"] == "default/hello-world"]
    assert [e["address"] for e in hw["entries"] if e["kind"] == "nodePort"] == [None]


def test_node_ports_bound_to_addresses_are_simulated_per_address(cli):
    r = cli("trace", "default/hello-world", "--rules", str(PRIMARY), "--node-ip", "192.168.10.11",
            "--node-ip", "10.0.5.11")
    assert r.code == 0 and "node port 31611/tcp on 192.168.10.11" in r.out
    assert "every local address" not in r.out
    doc = json.loads(cli("trace", "default/hello-world", "--rules", str(PRIMARY), "--node-ip", "192.168.10.11",
                         "--node-ip", "10.0.5.11", "-o", "json").out)
    (np,) = [e for e in doc["ports"][0]["entries"] if e["kind"] == "nodePort"]
    by_client = {sc["packet"]["dst"]: {o["disposition"] for o in sc["outcomes"]} for sc in np["scenarios"]
                 if sc["client"].startswith("from outside")}
    assert by_client == {"192.168.10.11": {"dnat"}, "10.0.5.11": {"none"}}
    # packet agrees: the node port is not open on the node's other address.
    for dst, want in (("192.168.10.11", "dnat"), ("10.0.5.11", "none")):
        p = json.loads(cli("packet", "--rules", str(PRIMARY), "--src", "203.0.113.5", "--dst", dst, "--dport", "31611",
                           "--node-ip", "192.168.10.11", "--node-ip", "10.0.5.11", "-o", "json").out)
        assert {o["disposition"] for o in p["outcomes"]} == {want}
