"""``packet``'s nftables predictions against the real kernel running those rules.

Three network namespaces this test creates (and deletes): the node (kube-proxy's
v1.36.2 nftables capture loaded with ``nft -f``, forwarding on, 192.168.10.11),
clients (a pod 10.244.1.7, outside clients) and endpoints (every endpoint
address of the capture, each listening on its port and answering with the
address it serves and the peer it sees). Service VIPs are routed from the node to
the endpoints namespace, so nothing ever leaves the namespaces. Each flow makes
real TCP connections; the outcome (served by which endpoint, masqueraded or not,
refused, timed out) must be what ``packet`` predicts, and every endpoint of a
split must be reached.
"""

from __future__ import annotations

import ipaddress
import json
import subprocess
import sys
import uuid

import pytest

from conftest import FIXTURES, netns_unavailable_reason, tries_to_see_every_endpoint
from svcinspect.dataplane.nftables.parse import parse_nft
from tcpprobe import CONNECTOR, LISTENER, exec_in, ip_in
from svcinspect.dataplane.nftables.services import build_service_ports
from svcinspect.simulate import Environment
from svcinspect.dataplane import simulate
from svcinspect.model.flow import Hook, Packet

pytestmark = pytest.mark.skipif(netns_unavailable_reason() is not None, reason=netns_unavailable_reason() or "")

NFT = FIXTURES / "kube-proxy-v1.36.2" / "nftables"
NODE = "192.168.10.11"
CLIENTS = ["10.244.1.7", "192.168.50.5", "203.0.113.5", "198.51.100.9", "100.64.0.1"]
VIP_ROUTES = ["10.96.0.0/16", "192.0.2.0/24", "203.0.113.10/32"]




@pytest.fixture(scope="module")
def lab():
    tag = uuid.uuid4().hex[:6]
    node, cl, ep = f"svci-n{tag}", f"svci-c{tag}", f"svci-e{tag}"
    ruleset = parse_nft((NFT / "nft-list-ruleset.txt").read_text(), "nft-list-ruleset.txt")
    endpoints = sorted({e.endpoint for sp in build_service_ports(ruleset) if int(sp.family) == 4
                        for e in sp.endpoints + (sp.local_endpoints or ()) if e.endpoint})
    ep_ips = sorted({e.rsplit(":", 1)[0] for e in endpoints}, key=ipaddress.ip_address)
    server = None
    made = []
    try:
        for ns in (node, cl, ep):
            subprocess.run(["ip", "netns", "add", ns], check=True)
            made.append(ns)
        ip_in("", "link", "add", "vc", "netns", node, "type", "veth", "peer", "name", "eth0", "netns", cl)
        ip_in("", "link", "add", "ve", "netns", node, "type", "veth", "peer", "name", "eth0", "netns", ep)
        batch = [f"addr add {NODE}/32 dev vc", f"addr add {NODE}/32 dev ve", "link set lo up", "link set vc up",
                 "link set ve up"]
        batch += [f"route add {a}/32 dev vc" for a in CLIENTS]
        batch += [f"route add {a}/32 dev ve" for a in ep_ips] + [f"route add {r} dev ve" for r in VIP_ROUTES]
        ip_in(node, "-batch", "-", input="\n".join(batch) + "\n")
        for ns, addrs in ((cl, CLIENTS), (ep, ep_ips)):
            b = ["link set lo up", "link set eth0 up"] + [f"addr add {a}/32 dev eth0" for a in addrs]
            b += [f"route add {NODE}/32 dev eth0", f"route add default via {NODE} dev eth0"]
            ip_in(ns, "-batch", "-", input="\n".join(b) + "\n")
        exec_in(node, "sysctl", "-w", "net.ipv4.ip_forward=1", check=True)
        r = exec_in(node, "nft", "-f", str(NFT / "nft-list-ruleset.txt"))
        assert r.returncode == 0, r.stderr
        server = subprocess.Popen(["ip", "netns", "exec", ep, sys.executable, "-c", LISTENER, *endpoints],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert server.stdout.readline().strip() == "ready", server.stderr.read()
        yield {"node": node, "clients": cl, "ruleset": ruleset}
    finally:
        if server is not None:
            server.kill()
            server.wait()
        for ns in made:
            subprocess.run(["ip", "netns", "del", ns], check=False)


def _connect(ns: str, flows: list) -> list[list[str]]:
    r = exec_in(ns, sys.executable, "-c", CONNECTOR, json.dumps(flows), timeout=300)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


# (client, destination, port, hook): the PacketCase flows a kernel can show.
FLOWS = [
    ("10.244.1.7", "10.96.10.10", 80, "prerouting"),      # cluster IP from a pod: 1/3 each, source kept
    ("192.168.50.5", "10.96.10.10", 80, "prerouting"),    # from outside the cluster CIDR: masqueraded
    ("203.0.113.5", NODE, 31611, "prerouting"),           # node port from outside
    ("10.244.1.7", "10.96.20.5", 80, "prerouting"),       # seven endpoints
    ("10.244.1.7", "10.96.50.10", 80, "prerouting"),      # no endpoints: reject
    ("198.51.100.9", "192.0.2.100", 80, "prerouting"),    # LB source range allowed
    ("100.64.0.1", "192.0.2.100", 80, "prerouting"),      # LB source range blocked: drop
    ("203.0.113.5", "192.0.2.101", 80, "prerouting"),     # eTP=Local: the local endpoint, source kept
    ("203.0.113.5", NODE, 31614, "prerouting"),           # eTP=Local, no local endpoint: drop
    ("10.244.1.7", "10.96.110.11", 80, "prerouting"),     # iTP=Local, no local endpoint: drop
    ("10.244.1.7", "10.96.10.10", 81, "prerouting"),      # cluster IP, wrong port: reject (nftables mode)
    ("10.244.1.7", "10.96.99.99", 80, "prerouting"),      # unallocated service IP: drop
    (NODE, "10.96.10.10", 80, "output"),                  # from the node itself: masqueraded
]


def test_kernel_agrees_with_packet(lab):
    env = Environment(frozenset({ipaddress.ip_address(NODE)}))
    predictions = []
    for src, dst, port, hook in FLOWS:
        sim = simulate(lab["ruleset"], Packet(ipaddress.ip_address(src), ipaddress.ip_address(dst), port, "tcp",
                                              Hook(hook)), env)
        assert not any(o.assumptions for o in sim.outcomes if "affinity" not in " ".join(o.assumptions))
        predictions.append(sim)
    def tries(sim) -> int:  # enough to see every endpoint of a random split (P(one unseen) < 1e-9)
        eps = {o.endpoint for o in sim.outcomes if o.endpoint}
        return tries_to_see_every_endpoint(len(eps), at_least=40) if eps else 1

    forwarded = [(s, d, p, tries(sim)) for (s, d, p, h), sim in zip(FLOWS, predictions) if h == "prerouting"]
    local = [(s, d, p, tries(sim)) for (s, d, p, h), sim in zip(FLOWS, predictions) if h == "output"]
    results = _connect(lab["clients"], forwarded) + _connect(lab["node"], local)
    print("\n".join(f"{f[:3]}: {sorted(set(g))}" for f, g in zip(FLOWS, results)))  # shown with -s or on failure
    for (src, dst, port, _), sim, got in zip(FLOWS, predictions, results):
        dispositions = {o.disposition.value for o in sim.outcomes}
        where = f"{src} -> {dst}:{port}"
        if dispositions == {"dnat"}:
            want_eps = {o.endpoint for o in sim.outcomes}
            served = [g.split() for g in got]
            assert all(len(s) == 2 for s in served), (where, got)
            assert {s[0] for s in served} == want_eps, where  # every endpoint reached, no other
            for o in sim.outcomes:
                peers = {s[1] for s in served if s[0] == o.endpoint}
                assert peers == {NODE if o.masquerade else src}, (where, o.endpoint, peers)
        elif dispositions == {"reject"}:
            assert got == ["refused"], (where, got)
        else:
            assert dispositions <= {"drop", "none"}, where
            assert got == ["timeout"], (where, got)
