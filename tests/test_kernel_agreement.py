"""``packet``'s predictions against the real kernel, with real connections.

The real v1.36.2 capture is loaded with iptables-legacy-restore into a "node"
network namespace this test creates. Every address a connection can end at is
given to a host in another namespace the test creates, with a listener:

    client ns (10.244.1.7 "a pod", 203.0.113.5 "outside")
        | veth
    node ns   (192.168.10.11, kube-proxy's rules, listeners on the node ports)
        | veth
    pods ns   (the endpoints 10.244.x and the cluster IPs, listeners on 8080 and 80)

Each listener answers with the address it was reached at and the peer it saw,
so a connection shows which endpoint it reached and whether it was
masqueraded. Listeners sit on the original destinations too (the node ports,
the cluster IPs): a packet that no rule handled would connect there, so
"refused" and "timed out" are the rules' REJECT and DROP, not a missing
listener. Nothing leaves these namespaces; they are deleted at the end.
"""

from __future__ import annotations

import ipaddress
import json
import subprocess
import sys
import time
from dataclasses import dataclass

import pytest

from conftest import IPT, NetNS, netns_unavailable_reason
from svcinspect.simulate import Environment
from svcinspect.dataplane import simulate
from svcinspect.model.flow import Disposition, Hook, Packet
from svcinspect.dataplane.iptables.parse import parse_iptables_save

pytestmark = [pytest.mark.skipif(netns_unavailable_reason() is not None, reason=netns_unavailable_reason() or ""),
              pytest.mark.netns]

NODE = "192.168.10.11"
GW = "169.254.1.1"       # the node's side of both veths (link addresses only)
POD = "10.244.1.7"
OUTSIDE = "203.0.113.5"
CAPTURE = IPT / "iptables-save.txt"
# Endpoints and cluster IPs of the services the cases use (from the capture's rules).
ENDPOINT_ADDRS = ["10.244.1.10", "10.244.1.11", "10.244.2.10", "10.244.2.102", "10.244.2.103"]
VIPS = ["10.96.10.10", "10.96.50.10", "10.96.100.11"]
NODE_PORTS = [31611, 30081, 31614]

LISTENER = r"""
import socket, sys, threading
def serve(port):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port)); s.listen(128)
    while True:
        c, peer = s.accept()
        c.sendall(("%s %s\n" % (c.getsockname()[0], peer[0])).encode()); c.close()
for p in sys.argv[1:]:
    threading.Thread(target=serve, args=(int(p),), daemon=True).start()
print("ready", flush=True)
threading.Event().wait()
"""

CLIENT = r"""
import json, socket, sys
src, dst, port, n, timeout = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
out = []
for _ in range(n):
    try:
        s = socket.create_connection((dst, port), timeout=timeout, source_address=(src, 0))
        s.settimeout(timeout)
        line = s.makefile().readline().split()
        out.append(["connected"] + line); s.close()
    except ConnectionRefusedError:
        out.append(["refused"])
    except socket.timeout:
        out.append(["timeout"])
    except OSError as e:
        out.append(["error", str(e)])
print(json.dumps(out))
"""


@dataclass(frozen=True)
class PacketCase:
    name: str
    src: str
    dst: str
    dport: int
    hook: str            # where packet (svcinspect) enters: prerouting (client ns) or output (node ns)


CASES = [
    PacketCase("pod -> cluster IP", POD, "10.96.10.10", 80, "prerouting"),
    PacketCase("node -> cluster IP", NODE, "10.96.10.10", 80, "output"),
    PacketCase("node -> its own node port", NODE, NODE, 31611, "output"),
    PacketCase("node -> 127.0.0.1 node port", "127.0.0.1", "127.0.0.1", 31611, "output"),
    PacketCase("outside -> node port", OUTSIDE, NODE, 31611, "prerouting"),
    PacketCase("pod -> cluster IP without endpoints: REJECT", POD, "10.96.50.10", 80, "prerouting"),
    PacketCase("node -> own node port without endpoints: REJECT in INPUT", NODE, NODE, 30081, "output"),
    PacketCase("node -> 127.0.0.1 node port without endpoints: REJECT in INPUT", "127.0.0.1", "127.0.0.1", 30081,
               "output"),
    PacketCase("outside -> eTP=Local node port without local endpoint: DROP", OUTSIDE, NODE, 31614, "prerouting"),
    PacketCase("pod -> eTP=Local service's cluster IP", POD, "10.96.100.11", 80, "prerouting"),
]


class Lab:
    """Three namespaces wired as in the module docstring."""

    def __init__(self) -> None:
        self.spaces: list[NetNS] = []
        self.procs: list[subprocess.Popen] = []
        self.node, self.client, self.pods = NetNS(), NetNS(), NetNS()
        self.spaces += [self.node, self.client, self.pods]

    def wire(self) -> None:
        tag = self.node.name[-6:]
        self.node.run("ip", "link", "set", "lo", "up")
        self.node.run("ip", "addr", "add", f"{NODE}/32", "dev", "lo")   # the node's address, on no real network
        for peer, short in ((self.client, "c"), (self.pods, "p")):
            outer, inner = f"n{short}{tag}", f"i{short}{tag}"
            subprocess.run(["ip", "link", "add", outer, "netns", self.node.name, "type", "veth", "peer", "name",
                            inner, "netns", peer.name], check=True)
            self.node.run("ip", "addr", "add", f"{GW}/32", "dev", outer)
            self.node.run("ip", "link", "set", outer, "up")
            peer.run("ip", "link", "set", inner, "up")
            peer.run("ip", "link", "set", "lo", "up")
            peer.run("ip", "route", "add", GW, "dev", inner)
            peer.run("ip", "route", "add", "default", "via", GW, "dev", inner)
            if short == "c":
                self.c_out = outer
                for a in (POD, OUTSIDE):
                    peer.run("ip", "addr", "add", f"{a}/32", "dev", inner)
                    self.node.run("ip", "route", "add", f"{a}/32", "dev", outer)
            else:
                self.p_out = outer
                for a in ENDPOINT_ADDRS + VIPS:
                    peer.run("ip", "addr", "add", f"{a}/32", "dev", inner)
                self.node.run("ip", "route", "add", "10.244.0.0/16", "dev", outer)
                # The node reaches cluster IPs from its own address (then DNAT reroutes).
                self.node.run("ip", "route", "add", "10.96.0.0/12", "dev", outer, "src", NODE)
        for key, value in (("net.ipv4.ip_forward", "1"), ("net.ipv4.conf.all.route_localnet", "1"),
                           ("net.ipv4.conf.all.rp_filter", "0"), ("net.ipv4.conf.default.rp_filter", "0")):
            self.node.run("sysctl", "-qw", f"{key}={value}")
        for ifname in (self.c_out, self.p_out):
            self.node.run("sysctl", "-qw", f"net.ipv4.conf.{ifname}.rp_filter=0")

    def listen(self, ns: NetNS, ports) -> None:
        p = subprocess.Popen(["ip", "netns", "exec", ns.name, sys.executable, "-c", LISTENER, *map(str, ports)],
                             stdout=subprocess.PIPE, text=True)
        self.procs.append(p)
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"

    def connect(self, case: PacketCase, n: int, timeout: float) -> list[list[str]]:
        ns = self.node if case.hook == "output" else self.client
        r = ns.run(sys.executable, "-c", CLIENT, case.src, case.dst, str(case.dport), str(n), str(timeout))
        return json.loads(r.stdout)

    def close(self) -> None:
        for p in self.procs:
            p.kill()
            p.wait()
        for ns in self.spaces:
            ns.close()


@pytest.fixture(scope="module")
def lab():
    reason = netns_unavailable_reason()
    if reason:
        pytest.skip(reason)
    lab = Lab()
    try:
        lab.wire()
        lab.node.restore(CAPTURE.read_text(), 4, "legacy")
        lab.listen(lab.pods, [8080, 80])
        lab.listen(lab.node, NODE_PORTS)
        time.sleep(0.2)
        yield lab
    finally:
        lab.close()


@pytest.fixture(scope="module")
def ruleset():
    return parse_iptables_save(CAPTURE.read_text(), CAPTURE.name)


def predict(ruleset, case: PacketCase):
    """What svcinspect says the kernel does: endpoints reached (with masquerade), or a verdict."""
    sim = simulate(ruleset, Packet(ipaddress.ip_address(case.src), ipaddress.ip_address(case.dst), case.dport, "tcp",
                                   Hook(case.hook)), Environment(frozenset({ipaddress.ip_address(NODE)})))
    kinds = {o.disposition for o in sim.outcomes}
    if kinds == {Disposition.DNAT}:
        return "connected", {o.endpoint.rsplit(":", 1)[0] for o in sim.outcomes}, {o.masquerade for o in sim.outcomes}
    if kinds == {Disposition.REJECT}:
        return "refused", set(), set()
    if kinds == {Disposition.DROP}:
        return "timeout", set(), set()
    if kinds <= {Disposition.NONE, Disposition.ACCEPT}:
        return "connected", {case.dst}, {False}
    raise AssertionError(f"mixed prediction {kinds} for {case.name}")


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_the_kernel_does_what_packet_predicts(lab, ruleset, case):
    what, where, masq = predict(ruleset, case)
    # Random cascades: enough connections to see every endpoint (3 at 1/3: P(one unseen) < 1e-4 with 30).
    n = 30 if what == "connected" and len(where) > 1 else 1
    got = lab.connect(case, n, timeout=1.5)
    assert {r[0] for r in got} == {what}, got
    if what == "connected":
        assert {r[1] for r in got} == where, got
        # The listener saw the client's own address unless the rules masqueraded it.
        assert {r[2] != case.src for r in got} == masq, got
