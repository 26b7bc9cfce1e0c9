"""``trace`` on nftables mode: the same answers per entry point and client as
the iptables capture of the same objects, quoting nft rules and map elements."""

from __future__ import annotations

import ipaddress
import json

import pytest

from conftest import FIXTURES, IPT, check_golden
from svcinspect.dataplane.nftables.parse import parse_nft
from svcinspect.simulate import Environment
from svcinspect.dataplane.iptables.parse import parse_dumps
from svcinspect.render.json import trace_json
from svcinspect.render.text import render_trace
from svcinspect.dataplane import build_service_ports
from svcinspect.sources.files import read_text
from svcinspect.trace import trace_service

NFT = FIXTURES / "kube-proxy-v1.36.2" / "nftables"
ENV = Environment(frozenset({ipaddress.ip_address("192.168.10.11"), ipaddress.ip_address("fd00:10:11::11")}))
LOCALHOST = "from this node via localhost"


@pytest.fixture(scope="module")
def rulesets():
    ipt = parse_dumps([read_text(str(IPT / "iptables-save.txt")), read_text(str(IPT / "ip6tables-save.txt"))])
    nft = parse_nft((NFT / "nft-list-ruleset.txt").read_text(), "nft-list-ruleset.txt")
    return ipt, nft


def _scenarios(doc):
    out = {}
    for p in doc["ports"]:
        for e in p["entries"]:
            kind = "external" if e["kind"] in ("externalIP", "loadBalancer") else e["kind"]
            for sc in e["scenarios"]:
                label = sc["client"].split(" (")[0]
                out[(p["name"], p["family"], kind, e["address"], e["port"], label)] = sorted(
                    (o["disposition"], o["endpoint"], o["fraction"], o["masquerade"], tuple(o["conditions"]))
                    for o in sc["outcomes"])
    return out


def test_every_entry_point_and_client_agrees_with_iptables_mode(rulesets):
    ipt, nft = rulesets
    names = sorted({p.name.split(":")[0] for p in build_service_ports(nft)})
    assert len(names) > 20
    compared = 0
    for name in names:
        a = _scenarios(trace_json(trace_service(ipt, name, ENV)))
        b = _scenarios(trace_json(trace_service(nft, name, ENV)))
        for key in set(a) | set(b):
            if key[5] == LOCALHOST:  # the mode difference: iptables DNATs, nftables does not
                if key in b:
                    assert {o[0] for o in b[key]} == {"none"}, key
                if key in a and key in b:
                    assert {o[0] for o in a[key]} == {"dnat"}, key
                continue
            if key[2] == "healthCheckNodePort":  # iptables mode's explicit ACCEPT; nothing in nft mode
                assert key not in b
                continue
            assert a.get(key) == b.get(key), key
            compared += 1
    assert compared > 60


def test_trace_text_quotes_nft_rules_and_elements(rulesets):
    _, nft = rulesets
    text = render_trace(trace_service(nft, "default/hello-world", ENV))
    assert "@service-nodeports" in text and "tcp . 31611 : goto external-AN52JS3S-default/hello-world/tcp/" in text
    assert "masqueraded because of external-AN52JS3S-default/hello-world/tcp/ line" in text
    assert "via localhost (127.0.0.1): not a node port in this mode: not handled" in text
    check_golden("nft-trace-default_hello-world.txt", text)


def test_trace_command_on_json_input_gives_the_same_outcomes(cli):
    a = cli("trace", "default/etp-local-has", "--rules", str(NFT / "nft-list-ruleset.txt"), "--node-ip",
            "192.168.10.11", "-o", "json")
    b = cli("trace", "default/etp-local-has", "--rules", str(NFT / "nft-list-ruleset.json"), "--node-ip",
            "192.168.10.11", "-o", "json")
    assert a.code == b.code == 0, (a.err, b.err)
    assert _scenarios(json.loads(a.out)) == _scenarios(json.loads(b.out))
    ports = json.loads(a.out)["ports"]
    assert [e["endpoint"] for e in ports[0]["localEndpoints"]] == ["10.244.1.100:8080"]
    unknown = cli("trace", "default/nope", "--rules", str(NFT / "nft-list-ruleset.txt"))
    assert unknown.code == 2 and "no service" in unknown.err
