"""Issue 11: inputs that are not an iptables-mode dump are recognised and said.

IPVS mode (its iptables part), kube-proxy's nftables mode, iptables-nft rules
printed by ``nft`` (text and ``nft -j``), ``ipvsadm`` output, a README, gzip
attachments. The nft files are real: ``nft list ruleset`` / ``nft -j list
ruleset`` of the real captures loaded into a network namespace (see
fixtures/kube-proxy-v1.36.2/README.md).
"""

from __future__ import annotations

import gzip
import json

import pytest

from conftest import FIXTURES, IPT, KP, ROOT, WILD

IPVS = FIXTURES / "ipvs-mode" / "iptables-save.txt"


@pytest.mark.parametrize("path", [
    KP / "not-iptables" / "nft-list-ruleset.txt", KP / "not-iptables" / "nft-j-list-ruleset.json",
    WILD / "036-kube-proxy-nftables-k3s-full-table-spaces.nft",
], ids=lambda v: v.name)
def test_kube_proxy_nftables_mode_is_read_as_nftables(cli, path):
    """Once refused with what to run, kube-proxy's nftables mode is now read (issue 13)."""
    r = cli("services", "--rules", str(path), "-o", "json")
    assert r.code == 0, r.err
    doc = json.loads(r.out)
    assert doc["input"]["dataplane"] == "nftables" and doc["services"]
    assert all(s["dataplane"] == "nftables" for s in doc["services"])


@pytest.mark.parametrize("path,words", [
    (IPT / "nft-list-ruleset-iptables-nft-backend.txt", ["iptables-nft backend", "run `iptables-save`"]),
    (IPT / "nft-j-list-ruleset-iptables-nft-backend.json", ["`nft -j` JSON", "iptables-nft backend"]),
    (WILD / "003-ipvsadm-Ln-calico-nodeport.ipvs", ["ipvsadm", "IPVS mode"]),
    (ROOT / "README.md", ["Markdown or other documentation"]),
], ids=lambda v: v.name if hasattr(v, "name") else None)
def test_other_inputs_are_refused_saying_what_they_are(cli, path, words):
    r = cli("services", "--rules", str(path))
    assert r.code == 2 and r.out == ""
    assert r.err.count("\n") == 1 and r.err.startswith(f"svcinspect: error: {path}:"), r.err
    for w in words:
        assert w in r.err
    assert "Kubernetes objects" not in r.err


def test_nftables_mode_and_iptables_nft_printed_by_nft_are_told_apart(cli):
    kp = cli("services", "--rules", str(KP / "not-iptables" / "nft-list-ruleset.txt"), "-o", "json")
    ipt = cli("services", "--rules", str(IPT / "nft-list-ruleset-iptables-nft-backend.txt"))
    assert kp.code == 0 and json.loads(kp.out)["input"]["dataplane"] == "nftables"
    assert ipt.code == 2 and "nftables mode" not in ipt.err and "iptables-save" in ipt.err


def test_an_empty_capture_is_refused(cli, tmp_path):
    # The shared IPVS capture's iptables-save.txt is empty (kube-proxy could not start IPVS there).
    empty = tmp_path / "iptables-save.txt"
    empty.write_text("")
    r = cli("services", "--rules", str(empty))
    assert r.code == 2 and "empty input" in r.err


@pytest.mark.parametrize("name", ["iptables-save.txt.gz", "attachment"])
def test_gzip_rules_and_objects_are_read_transparently(cli, tmp_path, name):
    rules = tmp_path / name
    rules.write_bytes(gzip.compress((IPT / "iptables-save.txt").read_bytes()))
    objects = tmp_path / ("objects.json.gz" if name.endswith(".gz") else "objects")
    objects.write_bytes(gzip.compress((IPT / "objects.json").read_bytes()))
    plain = cli("services", "--rules", str(IPT / "iptables-save.txt"), "--objects", str(IPT / "objects.json"),
                "--node", "node-a", "-o", "json")
    packed = cli("services", "--rules", str(rules), "--objects", str(objects), "--node", "node-a", "-o", "json")
    assert packed.code == plain.code == 0, packed.err
    strip = lambda doc: json.dumps(doc).replace(str(rules), "F").replace(str(IPT / "iptables-save.txt"), "F")
    assert strip(json.loads(packed.out)) == strip(json.loads(plain.out))
    assert len(json.loads(packed.out)["services"]) == 28  # the IPv4 capture


def test_corrupt_gzip_is_a_one_line_error(cli, tmp_path):
    bad = tmp_path / "dump.gz"
    bad.write_bytes(gzip.compress(b"*nat\nCOMMIT\n")[:12])
    r = cli("services", "--rules", str(bad))
    assert r.code == 2 and "gzip" in r.err and "Traceback" not in r.err


def test_ipvs_mode_is_recognised_and_its_leftovers_called_leftovers(cli):
    doc = json.loads(cli("services", "--rules", str(IPVS), "-o", "json").out)
    assert doc["input"]["dataplane"] == "ipvs" and doc["input"]["complete"] is True
    assert any("ipvsadm -Ln" in n for n in doc["input"]["notes"])
    (sp,) = doc["services"]
    assert any("left over from iptables mode" in w for w in sp["warnings"])
    r = cli("check", "--rules", str(IPVS), "-o", "json")
    check = json.loads(r.out)
    assert r.code == 0 and check["input"]["dataplane"] == "ipvs"
    assert {f["code"] for f in check["findings"]} == {"iptables-mode-leftover"}
    assert all(f["severity"] == "info" for f in check["findings"])


def test_ipvs_node_with_objects_does_not_call_every_service_missing(cli):
    r = cli("check", "--rules", str(IPVS), "--objects", str(IPT / "objects.json"), "--node", "node-a", "-o", "json")
    doc = json.loads(r.out)
    assert r.code == 0 and doc["summary"]["error"] == 0
    assert any("IPVS virtual servers" in n for n in doc["notes"])


def test_iptables_mode_dump_is_dataplane_iptables(cli):
    doc = json.loads(cli("services", "--rules", str(IPT / "iptables-save.txt"), "-o", "json").out)
    assert doc["input"] == {"dataplane": "iptables", "complete": True, "reasons": [], "notes": []}


def test_trace_on_an_ipvs_node_says_where_services_live(cli):
    r = cli("trace", "default/hello-world", "--rules", str(IPVS))
    assert r.code == 2 and "IPVS mode" in r.err and "ipvsadm -Ln" in r.err
