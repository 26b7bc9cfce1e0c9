"""Issue 11, live: a node without kube-proxy's rules is a finding, nftables mode
is named, and a host name that is not a Node is a usage error, not kube-proxy's fault.

Fake runners (no kernel) first, then the real kernel in namespaces the tests
create (skipped without root)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from conftest import IPT, KP, needs_netns
from svcinspect.check import check_rules
from svcinspect.errors import Severity
from svcinspect.parse.kube_objects import parse_objects
from svcinspect.sources import command
from svcinspect.sources.command import LIVE_NFTABLES_MODE, LIVE_NO_KUBE_PROXY, FakeRunner, read_live

ROOT_CAPS = (1 << command.CAP_NET_ADMIN) | (1 << command.CAP_SYS_ADMIN)
KUBELET_ONLY = ("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
                ":KUBE-FIREWALL - [0:0]\n:KUBE-KUBELET-CANARY - [0:0]\n-A INPUT -j KUBE-FIREWALL\nCOMMIT\n")
OBJECTS = IPT / "objects.json"


def fake(nft_tables: str | None, legacy4: str = KUBELET_ONLY) -> FakeRunner:
    answers = {"iptables-nft-save": "", "ip6tables-nft-save": "", "iptables-legacy-save": legacy4,
               "ip6tables-legacy-save": ""}
    if nft_tables is not None:
        answers["nft"] = nft_tables
    return FakeRunner(answers)


def test_no_kube_proxy_rules_in_either_backend_is_an_error_finding():
    rs = read_live(runner=fake(None), caps=ROOT_CAPS)
    assert LIVE_NO_KUBE_PROXY in rs.notes and LIVE_NFTABLES_MODE not in rs.notes
    (f,) = [f for f in check_rules(rs).findings if f.code == "no-kube-proxy-rules"]
    assert f.severity is Severity.ERROR and "nftables" not in f.message


def test_nft_list_tables_showing_kube_proxy_says_nftables_mode():
    runner = fake("table ip filter\ntable ip kube-proxy\ntable ip6 kube-proxy\n")
    rs = read_live(runner=runner, caps=ROOT_CAPS)
    assert ["nft", "list", "tables"] in runner.calls
    assert LIVE_NFTABLES_MODE in rs.notes
    assert any("nftables mode" in d.message for d in rs.diagnostics if d.severity >= Severity.WARNING)
    (f,) = [f for f in check_rules(rs).findings if f.code == "no-kube-proxy-rules"]
    assert f.severity is Severity.ERROR and "nftables mode" in f.message


def test_a_node_with_kube_proxy_rules_never_asks_nft():
    runner = fake("table ip kube-proxy\n", legacy4=(IPT / "iptables-save.txt").read_text())
    rs = read_live(runner=runner, caps=ROOT_CAPS)
    assert ["nft", "list", "tables"] not in runner.calls and LIVE_NO_KUBE_PROXY not in rs.notes
    assert not [f for f in check_rules(rs).findings if f.code == "no-kube-proxy-rules"]


def test_check_objects_on_a_node_without_rules_reports_every_expected_port_missing():
    rs = read_live(runner=fake(None), families=(command.Family.V4, command.Family.V6), caps=ROOT_CAPS)
    state = parse_objects(OBJECTS.read_text(), str(OBJECTS))
    report = check_rules(rs, state, "node-a")
    missing = {(f.service_port, f.family) for f in report.findings if f.code == "missing-service-port"}
    # The whole dump of that node has 30 service ports (28 IPv4, 2 IPv6); none is in the rules here.
    whole = check_rules(read_live(runner=fake(None, legacy4=(IPT / "iptables-save.txt").read_text()),
                                  caps=ROOT_CAPS), state, "node-a")
    assert len(missing) >= 28 and whole.checked >= 28
    assert all(f.severity is Severity.ERROR for f in report.findings if f.code == "missing-service-port")


def svcinspect(*args, env=None):
    return subprocess.run([sys.executable, "-m", "svcinspect", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})})


@needs_netns
@pytest.mark.netns
def test_live_empty_namespace_check_fails_with_the_finding(netns):
    r = svcinspect("check", "--netns", netns.name, "-o", "json")
    doc = json.loads(r.stdout)
    assert r.returncode == 1, r.stderr
    assert [f["code"] for f in doc["findings"] if f["severity"] == "error"] == ["no-kube-proxy-rules"]
    r = svcinspect("check", "--netns", netns.name, "--objects", str(OBJECTS), "--node", "node-a", "-o", "json")
    doc = json.loads(r.stdout)
    assert r.returncode == 1
    assert len([f for f in doc["findings"] if f["code"] == "missing-service-port"]) >= 28


@needs_netns
@pytest.mark.netns
def test_live_nftables_mode_namespace_is_named(netns):
    netns.run("nft", "-f", str(KP / "not-iptables" / "nft-list-ruleset.txt"))
    r = svcinspect("check", "--netns", netns.name, "-o", "json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["input"]["dataplane"] == "nftables"  # read as nftables mode (issue 13), not "no kube-proxy rules"
    assert not [f for f in doc["findings"] if f["code"] == "no-kube-proxy-rules"]


@needs_netns
@pytest.mark.netns
def test_live_host_name_that_is_not_a_node_is_a_one_line_usage_error(netns):
    netns.restore((IPT / "iptables-save.txt").read_text(), 4, "nft")
    r = svcinspect("check", "--netns", netns.name, "--objects", str(OBJECTS), env={"NODE_NAME": "not-a-node"})
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.count("\n") == 1 and "'not-a-node' is not a Node" in r.stderr and "--node" in r.stderr
    svc = svcinspect("services", "--netns", netns.name, "--objects", str(OBJECTS), env={"NODE_NAME": "not-a-node"})
    assert svc.returncode == 2 and "'not-a-node' is not a Node" in svc.stderr
    ok = svcinspect("check", "--netns", netns.name, "--objects", str(OBJECTS), env={"NODE_NAME": "node-a"})
    assert ok.returncode in (0, 1) and "is not a Node" not in ok.stderr
