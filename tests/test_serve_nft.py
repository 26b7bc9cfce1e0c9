"""The exporter on kube-proxy's nftables mode: `serve --once` on the real
v1.36.2 nftables capture (files) and on a namespace loaded with it (live), with
mode="nftables" in the info metric, the nftables check's findings, open
connections from conntrack and no new-connection counter series (the rules have
none: absent, not 0)."""

from __future__ import annotations

import json
import shutil

import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import KP, needs_netns

NFT = KP / "nftables"
SEQ = NFT / "sequence"
STEP0, STEP1 = SEQ / "step0-initial", SEQ / "step1-hello-world-scaled-3-to-5"
HELLO = (("ip_family", "IPv4"), ("namespace", "default"), ("port", ""), ("protocol", "TCP"),
         ("service", "hello-world"))


def _k(labels=HELLO, **more) -> tuple:
    return tuple(sorted({**dict(labels), **more}.items()))


def _samples(text: str) -> dict[tuple[str, tuple], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples}


def _named(samples, name):
    return {labels: v for (n, labels), v in samples.items() if n == name}


def _serve(cli, *args):
    r = cli("serve", "--once", *args)
    assert r.code == 0, r.err
    return _samples(r.out)


def test_files_export_nftables_mode_and_its_endpoints(cli):
    s = _serve(cli, "--rules", str(NFT / "nft-list-ruleset.txt"), "--conntrack",
               str(NFT / "conntrack-L-hello-world-150.txt"))
    (info,) = _named(s, "svcinspect_dataplane_info")
    assert dict(info)["mode"] == "nftables" and dict(info)["backend"] == "file"
    assert dict(info)["ip_families"] == "IPv4,IPv6"
    assert s[("svcinspect_read_errors_total", (("stage", "rules"),))] == 0
    assert s[("svcinspect_rules", ())] > 0
    eps = _named(s, "svcinspect_service_port_endpoints")
    assert eps[_k(policy="cluster")] == 3
    assert eps[_k(service="cascade-7ep", port="http", policy="cluster")] == 7
    assert s[("svcinspect_service_port_open_connections", HELLO)] == 150
    assert not _named(s, "svcinspect_service_port_new_connections")  # no counters: no series, never 0
    assert s[("svcinspect_service_port_balance_verdict", _k(verdict="consistent"))] == 1
    assert ("svcinspect_service_port_balance_p_value", _k(evidence="open")) in s


def test_findings_come_from_the_nftables_check(cli):
    # step0's rules against step1's objects (hello-world scaled 3 -> 5): kube-proxy has not synced
    stale = _serve(cli, "--rules", str(STEP0 / "nft-list-ruleset.txt"), "--objects", str(STEP1 / "objects.json"))
    synced = _serve(cli, "--rules", str(STEP1 / "nft-list-ruleset.txt"), "--objects", str(STEP1 / "objects.json"))
    key = ("svcinspect_service_port_findings", tuple(sorted(
        dict(HELLO, port="", code="endpoints-mismatch", severity="error").items())))
    assert stale.get(key) == 1 and key not in synced
    # the same findings as `svcinspect check` on the same inputs
    r = cli("check", "--rules", str(STEP0 / "nft-list-ruleset.txt"), "--objects", str(STEP1 / "objects.json"),
            "-o", "json")
    codes: dict = {}
    for f in json.loads(r.out)["findings"]:
        codes[(f["code"], f["severity"])] = codes.get((f["code"], f["severity"]), 0) + 1
    exported = {(dict(k)["code"], dict(k)["severity"]): v for k, v in _named(stale, "svcinspect_check_findings").items()}
    assert exported == codes and codes
    assert not any("no-kube-proxy" in c for c, _ in codes)


@pytest.fixture
def lab():
    from netlab import lab_of

    yield from lab_of((NFT / "nft-list-ruleset.txt").read_text(), mode="nftables")


@needs_netns
@pytest.mark.netns
@pytest.mark.skipif(shutil.which("conntrack") is None, reason="needs conntrack-tools (apt-get install conntrack)")
def test_live_nft_namespace(cli, lab):
    client, seen = lab.connect("10.96.10.10", 80, 60)
    s = _serve(cli, "--netns", lab.node.name, "--per-endpoint")
    (info,) = _named(s, "svcinspect_dataplane_info")
    assert dict(info)["mode"] == "nftables" and dict(info)["backend"] == "nft"
    assert s[("svcinspect_read_errors_total", (("stage", "rules"),))] == 0
    assert s[("svcinspect_service_port_open_connections", HELLO)] == 60
    per = {dict(k)["endpoint"]: v for k, v in _named(s, "svcinspect_endpoint_open_connections").items()
           if dict(k)["service"] == "hello-world"}
    assert per == {ep: seen["made"].get(ep, 0) for ep in per} and len(per) == 3
    assert not _named(s, "svcinspect_service_port_new_connections")
    # what kube-proxy wrote is there: no "no kube-proxy rules" finding on an nftables-mode node
    codes = {dict(k)["code"] for k in _named(s, "svcinspect_check_findings")}
    assert not any("kube-proxy" in c or "missing" in c for c in codes), codes
    assert _named(s, "svcinspect_service_port_endpoints")[_k(policy="cluster")] == 3
    client.stdin.close()
