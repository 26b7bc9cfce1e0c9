"""Each nftables layout generation, 1.29 to 1.37, in the real kernel.

For every ruleset of ``fixtures/nftables-layouts/`` this test creates four network
namespaces (and deletes them): the node (the ruleset loaded with ``nft -f``,
forwarding on, 192.168.10.11), clients (a pod 10.244.1.9 and outside addresses),
endpoints (every endpoint address but one, listening on :8080 and answering with
the address it serves and the peer it sees) and one pod, 10.244.1.21, that is an
endpoint of ``default/web`` and also the client of the hairpin flow. Service VIPs
are routed from the node to the endpoints namespace; nothing leaves the namespaces.

1. Reading the namespace live (``--netns``) gives the answers the file gives
   (services, packet, check), and ``nft list ruleset`` is byte-identical before
   and after.
2. Real TCP connections for every ``packet`` case of ``test_nft_layouts`` that
   holds for the generation: dispositions (refused = reject, timeout or EPERM =
   drop / not handled), every predicted endpoint reached and no other, and the
   source the endpoint sees (the node's address when ``packet`` says masqueraded).
   With session affinity every connection of the client reaches one endpoint, and
   the ruleset listed back (the client now in that endpoint's ``affinity-`` set)
   makes ``packet`` predict exactly that one. The generations' real differences (1.29 without cluster-ips-check, node-origin
   traffic to an eTP=Local external IP before and after 1.34) are thereby shown by
   the kernel, not only by the evaluator.
"""

from __future__ import annotations

import ipaddress
import json
import subprocess
import sys
import uuid

import pytest

from conftest import netns_unavailable_reason, tries_to_see_every_endpoint
from svcinspect.dataplane.nftables.parse import parse_nft
from tcpprobe import CONNECTOR, LISTENER, exec_in, ip_in
from svcinspect.simulate import Environment
from svcinspect.dataplane import simulate
from svcinspect.model.flow import Hook, Packet
from test_nft_layouts import CASES, GENERATIONS, LAYOUTS, NODE, OBJECTS, packet_answer, rules

pytestmark = pytest.mark.skipif(netns_unavailable_reason() is not None or
                                subprocess.run(["which", "nft"], capture_output=True).returncode != 0,
                                reason=netns_unavailable_reason() or "needs nft (apt-get install nftables)")

HAIRPIN_POD = "10.244.1.21"
ENDPOINTS = ["10.244.1.22", "10.244.2.23", "10.244.1.31", "10.244.2.32", "10.244.1.41", "10.244.2.42",
             "10.244.1.51", "10.244.2.52", "10.244.1.61", "10.244.2.72"]
CLIENTS = sorted({c.src for c in CASES} - {NODE, HAIRPIN_POD})
VIP_ROUTES = ["10.96.0.0/16", "192.0.2.0/24", "203.0.113.70/32"]
STICKY = "10.96.1.20"  # default/sticky:http, ClientIP affinity




def _svcinspect(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "svcinspect", *args], capture_output=True, text=True,
                          timeout=300)


@pytest.fixture(scope="module", params=GENERATIONS)
def lab(request):
    g = request.param
    tag = uuid.uuid4().hex[:6]
    node, cl, ep, pod = (f"svci-{x}{tag}" for x in "ncep")
    servers, made = [], []
    try:
        for ns in (node, cl, ep, pod):
            subprocess.run(["ip", "netns", "add", ns], check=True)
            made.append(ns)
        for veth, peer_ns in (("vc", cl), ("ve", ep), ("vp", pod)):
            ip_in("", "link", "add", veth, "netns", node, "type", "veth", "peer", "name", "eth0", "netns", peer_ns)
        batch = ["link set lo up"]
        for veth in ("vc", "ve", "vp"):
            batch += [f"addr add {NODE}/32 dev {veth}", f"link set {veth} up"]
        batch += [f"route add {a}/32 dev vc" for a in CLIENTS]
        batch += [f"route add {a}/32 dev ve" for a in ENDPOINTS] + [f"route add {r} dev ve" for r in VIP_ROUTES]
        batch += [f"route add {HAIRPIN_POD}/32 dev vp"]
        ip_in(node, "-batch", "-", input="\n".join(batch) + "\n")
        for ns, addrs in ((cl, CLIENTS), (ep, ENDPOINTS), (pod, [HAIRPIN_POD])):
            b = ["link set lo up", "link set eth0 up"] + [f"addr add {a}/32 dev eth0" for a in addrs]
            b += [f"route add {NODE}/32 dev eth0", f"route add default via {NODE} dev eth0"]
            ip_in(ns, "-batch", "-", input="\n".join(b) + "\n")
        exec_in(node, "sysctl", "-w", "net.ipv4.ip_forward=1", check=True)
        r = exec_in(node, "nft", "-f", rules(g))
        assert r.returncode == 0, r.stderr
        for ns, addrs in ((ep, ENDPOINTS), (pod, [HAIRPIN_POD])):
            listen = [f"{a}:8080" for a in addrs]
            p = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", LISTENER, *listen],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            servers.append(p)
            assert p.stdout.readline().strip() == "ready", p.stderr.read()
        yield {"g": g, "node": node, "clients": cl, "pod": pod}
    finally:
        for p in servers:
            p.kill()
            p.wait()
        for ns in made:
            subprocess.run(["ip", "netns", "del", ns], check=False)


def _strip_lines(x):
    if isinstance(x, dict):
        return {k: _strip_lines(v) for k, v in x.items() if k not in ("line", "source")}
    if isinstance(x, list):
        return [_strip_lines(v) for v in x]
    return x


def test_live_answers_equal_the_file_answers_and_change_nothing(lab, cli):
    g, node = lab["g"], lab["node"]
    before = exec_in(node, "nft", "list", "ruleset").stdout
    assert "table ip kube-proxy" in before
    live = _svcinspect("services", "--netns", node, "-o", "json")
    assert live.returncode == 0, live.stderr
    saved = cli("services", "--rules", rules(g), "-o", "json")
    lv, sv = json.loads(live.stdout), json.loads(saved.out)
    assert _strip_lines(lv["services"]) == _strip_lines(sv["services"])
    # packet live, for the cases where the generations differ, hairpin and a source range (each one a
    # whole svcinspect process: the file answers of every case are test_nft_layouts' business)
    for case in CASES:
        if (case.only and g not in case.only) or not (case.only or "hairpin" in case.name or "LB IP" in case.name):
            continue
        argv = ["packet", "--src", case.src, "--dst", case.dst, "--dport", str(case.port), "--node-ip", NODE,
                "-o", "json"]
        lp = _svcinspect(*argv, "--netns", node)
        assert lp.returncode == 0, lp.stderr
        fp = json.loads(cli(*argv, "--rules", rules(g)).out)
        assert packet_answer(json.loads(lp.stdout)["outcomes"]) == packet_answer(fp["outcomes"]) == case.expect
    lc = _svcinspect("check", "--netns", node, "--objects", str(OBJECTS), "--node", "node-a", "-o", "json")
    fc = json.loads(cli("check", "--rules", rules(g), "--objects", str(OBJECTS), "--node", "node-a",
                        "-o", "json").out)
    assert lc.returncode == 0, lc.stderr + lc.stdout
    lcd = json.loads(lc.stdout)
    assert lcd["findings"] == fc["findings"] == []
    assert [n for n in lcd["notes"] if "layout:" in n] == [n for n in fc["notes"] if "layout:" in n]
    assert exec_in(node, "nft", "list", "ruleset").stdout == before


def _tries(expect) -> int:
    return tries_to_see_every_endpoint(len(expect), at_least=30) if isinstance(expect, dict) else 1


def test_real_connections_agree_with_packet(lab):
    g = lab["g"]
    cases = [c for c in CASES if not c.only or g in c.only]
    by_ns: dict[str, list] = {}
    for c in cases:
        ns = lab["node"] if c.src == NODE else lab["pod"] if c.src == HAIRPIN_POD else lab["clients"]
        by_ns.setdefault(ns, []).append(c)
    got = {}
    for ns, cs in by_ns.items():
        flows = [(c.src, c.dst, c.port, _tries(c.expect)) for c in cs]
        r = exec_in(ns, sys.executable, "-c", CONNECTOR, json.dumps(flows), timeout=600)
        assert r.returncode == 0, r.stderr
        got.update({c.name: res for c, res in zip(cs, json.loads(r.stdout))})
    print("\n".join(f"{g} {name}: {sorted(set(res))}" for name, res in got.items()))  # shown on failure / -s
    for c in cases:
        res = got[c.name]
        where = f"{g}: {c.name}"
        if c.dst == STICKY:  # session affinity: the first connection splits, the client then sticks
            served = {tuple(x.split()) for x in res}
            assert len(served) == 1 and len(res) > 1, (where, res)
            (ep, peer), = served
            assert ep in c.expect and peer == (NODE if c.expect[ep] else c.src), (where, res)
            # the ruleset listed back now has the client in that endpoint's affinity- set: packet follows it
            listed = exec_in(lab["node"], "nft", "list", "ruleset").stdout
            assert f"elements = {{ {c.src} " in listed
            sim = simulate(parse_nft(listed, "listed"), Packet(ipaddress.ip_address(c.src),
                                                                ipaddress.ip_address(c.dst), c.port, "tcp",
                                                                Hook.PREROUTING), Environment(frozenset({
                                                                    ipaddress.ip_address(NODE)})))
            assert [(o.endpoint, str(o.probability)) for o in sim.outcomes] == [(ep, "1")], where
        elif isinstance(c.expect, dict):
            served = [x.split() for x in res]
            assert all(len(s) == 2 for s in served), (where, res)
            assert {s[0] for s in served} == set(c.expect), where        # every endpoint reached, no other
            for ep, masq in c.expect.items():
                peers = {s[1] for s in served if s[0] == ep}
                assert peers == {NODE if masq else c.src}, (where, ep, peers)
        elif c.expect == "reject":
            assert res == ["refused"], (where, res)
        else:  # drop, or not handled by the rules (nothing answers the VIP): no answer
            assert res in (["timeout"], ["eperm"]), (where, res)


def test_kube_proxy_s_add_transaction_lists_back_as_the_fixture(netns):
    """``nft-G.add.nft`` (kube-proxy's spelling) and ``nft-G.nft`` (nft's) are one ruleset."""
    for g in GENERATIONS:
        netns.run("nft", "flush", "ruleset")
        r = netns.run("nft", "-f", str(LAYOUTS / f"nft-{g}.add.nft"), check=False)
        assert r.returncode == 0, (g, r.stderr)
        listed = netns.run("nft", "list", "ruleset").stdout
        fixture = "".join(ln for ln in (LAYOUTS / f"nft-{g}.nft").read_text().splitlines(keepends=True)
                          if not ln.startswith("#"))
        assert listed == fixture, g


def test_dump_of_each_generation_loads_back_as_the_same_ruleset(netns, cli):
    """``svcinspect dump`` (canonical nft text) of every generation is the ruleset itself:
    loaded with nft -f, nft lists it back as the fixture."""
    for g in GENERATIONS:
        dumped = cli("dump", "--rules", rules(g))
        assert dumped.code == 0, dumped.err
        netns.run("nft", "flush", "ruleset")
        r = netns.run("nft", "-f", "-", input=dumped.out, check=False)
        assert r.returncode == 0, (g, r.stderr)
        fixture = "".join(ln for ln in (LAYOUTS / f"nft-{g}.nft").read_text().splitlines(keepends=True)
                          if not ln.startswith("#"))
        assert netns.run("nft", "list", "ruleset").stdout == fixture, g
