"""``packet`` on nftables rules against the real kernel, beyond IPv4 TCP on v1.36.

Like tests/test_nft_kernel.py, each lab is three network namespaces this test
creates and deletes: the node (a ruleset loaded with ``nft -f``, forwarding on),
clients and endpoints (every endpoint address, listening on its port over TCP and
UDP, answering with the address it serves and the peer it sees). Service VIPs are
routed from the node to the endpoints namespace; nothing leaves the namespaces.

- the v1.36.2 capture: UDP (kube-dns) and the ``ip6 kube-proxy`` table (IPv6 pods,
  outside clients, node port, wrong port, unallocated service IP, from the node);
- session affinity: every connection after the first from one client reaches the
  endpoint of the first, and the ruleset listed back afterwards (client now in the
  ``affinity-`` set) makes ``packet`` predict exactly that endpoint.
"""

from __future__ import annotations

import ipaddress
import json
import subprocess
import sys
import textwrap
import uuid

import pytest

from conftest import FIXTURES, netns_unavailable_reason, tries_to_see_every_endpoint
from svcinspect.dataplane.nftables.parse import parse_nft
from svcinspect.simulate import Environment
from svcinspect.dataplane import simulate
from svcinspect.model.flow import Hook, Packet

pytestmark = pytest.mark.skipif(netns_unavailable_reason() is not None, reason=netns_unavailable_reason() or "")

SERVER = textwrap.dedent("""
    import selectors, socket, sys
    sel = selectors.DefaultSelector()
    for item in sys.argv[1:]:
        ip, port = item.rsplit(":", 1)
        ip = ip.strip("[]"); fam = socket.AF_INET6 if ":" in ip else socket.AF_INET
        for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
            s = socket.socket(fam, kind); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((ip, int(port)))
            if kind == socket.SOCK_STREAM:
                s.listen(64)
            s.setblocking(False); sel.register(s, selectors.EVENT_READ, (item, kind))
    print("ready", flush=True)
    while True:
        for key, _ in sel.select():
            item, kind = key.data
            try:
                if kind == socket.SOCK_STREAM:
                    c, peer = key.fileobj.accept(); c.sendall(f"{item} {peer[0]}\\n".encode()); c.close()
                else:
                    _, peer = key.fileobj.recvfrom(100); key.fileobj.sendto(f"{item} {peer[0]}\\n".encode(), peer)
            except (BlockingIOError, OSError):
                continue
""")

CLIENT = textwrap.dedent("""
    import json, socket, sys
    out = []
    for src, dst, port, proto, n in json.loads(sys.argv[1]):
        res = []
        fam = socket.AF_INET6 if ":" in dst else socket.AF_INET
        for _ in range(n):
            s = socket.socket(fam, socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM)
            s.settimeout(1.0 if n > 1 else 2.5)  # single tries (drop/reject): past the first SYN retransmit
            try:
                s.bind((src, 0)); s.connect((dst, port))
                if proto == "udp":
                    s.send(b"hi")
                res.append(s.recv(200).decode().strip())
            except ConnectionRefusedError:
                res.append("refused")
            except (socket.timeout, TimeoutError):
                res.append("timeout")
            except OSError as e:
                res.append("error " + str(e))
            finally:
                s.close()
        out.append(res)
    print(json.dumps(out))
""")


def _run(*argv: str, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(list(argv), check=check, input=input, text=True, capture_output=True)


def _batch(ns: str, lines: list[str]) -> None:
    for fam, sel in (("-4", lambda l: ":" not in l), ("-6", lambda l: ":" in l)):
        mine = [l for l in lines if sel(l)]
        if mine:
            _run("ip", "-n", ns, fam, "-batch", "-", input="\n".join(mine) + "\n")


class Lab:
    """node / clients / endpoints namespaces around one loaded ruleset."""

    def __init__(self, ruleset_text: str, node_ips: list[str], clients: list[str], endpoints: list[str],
                 vip_routes: list[str]):
        tag = uuid.uuid4().hex[:6]
        self.node, self.cl, self.ep = f"svci-n{tag}", f"svci-c{tag}", f"svci-e{tag}"
        self.made: list[str] = []
        self.server = None
        self.node_ips = node_ips
        ep_ips = sorted({e.rsplit(":", 1)[0].strip("[]") for e in endpoints})
        try:
            for ns in (self.node, self.cl, self.ep):
                _run("ip", "netns", "add", ns)
                self.made.append(ns)
            for dev, peer in (("vc", self.cl), ("ve", self.ep)):
                _run("ip", "link", "add", dev, "netns", self.node, "type", "veth", "peer", "name", "eth0",
                     "netns", peer)
            for ns in self.made:
                _run("ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.accept_dad=0",
                     "net.ipv6.conf.default.accept_dad=0")
            _run("ip", "-n", self.node, "link", "set", "lo", "up")
            for dev in ("vc", "ve"):
                _run("ip", "-n", self.node, "link", "set", dev, "up")
            lines = []
            for a in node_ips:
                pl = 128 if ":" in a else 32
                lines += [f"addr add {a}/{pl} dev vc nodad" if ":" in a else f"addr add {a}/{pl} dev vc",
                          f"addr add {a}/{pl} dev ve nodad" if ":" in a else f"addr add {a}/{pl} dev ve"]
            lines += [f"route add {a}/{128 if ':' in a else 32} dev vc" for a in clients]
            lines += [f"route add {a}/{128 if ':' in a else 32} dev ve" for a in ep_ips]
            lines += [f"route add {r} dev ve" for r in vip_routes]
            _batch(self.node, lines)
            for ns, addrs in ((self.cl, clients), (self.ep, ep_ips)):
                _run("ip", "-n", ns, "link", "set", "lo", "up")
                _run("ip", "-n", ns, "link", "set", "eth0", "up")
                b = [f"addr add {a}/{128 if ':' in a else 32} dev eth0" + (" nodad" if ":" in a else "")
                     for a in addrs]
                for n in node_ips:
                    if any((":" in a) == (":" in n) for a in addrs):
                        b += [f"route add {n}/{128 if ':' in n else 32} dev eth0", f"route add default via {n} dev eth0"]
                _batch(ns, b)
            _run("ip", "netns", "exec", self.node, "sysctl", "-qw", "net.ipv4.ip_forward=1",
                 "net.ipv6.conf.all.forwarding=1")
            r = _run("ip", "netns", "exec", self.node, "nft", "-f", "-", input=ruleset_text, check=False)
            assert r.returncode == 0, r.stderr
            self.server = subprocess.Popen(["ip", "netns", "exec", self.ep, sys.executable, "-c", SERVER,
                                            *endpoints], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            assert self.server.stdout.readline().strip() == "ready", self.server.stderr.read()
            for ns, addrs in ((self.cl, clients), (self.ep, ep_ips)):  # resolve neighbours both ways first
                for a in addrs:                                           # (IPv6 ND eats the first SYNs)
                    for n in (n for n in node_ips if (":" in n) == (":" in a)):
                        _run("ip", "netns", "exec", ns, "ping", "-c1", "-W2", "-I", a, n, check=False)
        except BaseException:
            self.close()
            raise

    def connect(self, where: str, flows: list) -> list[list[str]]:
        ns = {"clients": self.cl, "node": self.node, "endpoints": self.ep}[where]
        r = _run("ip", "netns", "exec", ns, sys.executable, "-c", CLIENT, json.dumps(flows), check=False)
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)

    def icmp6_unreachables(self, where: str) -> int:
        ns = {"clients": self.cl, "node": self.node, "endpoints": self.ep}[where]
        snmp = _run("ip", "netns", "exec", ns, "cat", "/proc/net/snmp6").stdout
        return int(dict(l.split() for l in snmp.splitlines() if l.strip())["Icmp6InDestUnreachs"])

    def listing(self) -> str:
        return _run("ip", "netns", "exec", self.node, "nft", "list", "ruleset").stdout

    def close(self) -> None:
        if self.server is not None:
            self.server.kill()
            self.server.wait()
            self.server = None
        for ns in self.made:
            subprocess.run(["ip", "netns", "del", ns], check=False)
        self.made = []


def _check(lab: Lab, ruleset, flows, n: int = 30) -> None:
    """flows: (where, src, dst, port, proto, hook). Every prediction must be what the
    kernel does: endpoints reached (all, no other), masqueraded or not, refused, timed out."""
    env = Environment(frozenset(ipaddress.ip_address(a) for a in lab.node_ips))
    preds, results, icmp6 = [], [], []
    for where, src, dst, port, proto, hook in flows:
        sim = simulate(ruleset, Packet(ipaddress.ip_address(src), ipaddress.ip_address(dst), port, proto,
                                       Hook(hook)), env)
        preds.append(sim)
        eps = {o.endpoint for o in sim.outcomes if o.endpoint}
        k = tries_to_see_every_endpoint(len(eps), at_least=n) if eps else 1
        if k > 1:  # right after the namespaces come up IPv6 neighbour discovery can eat a first SYN:
            lab.connect(where, [(src, dst, port, proto, 3)])  # one discarded warm-up round
        before = lab.icmp6_unreachables(where)
        results.append(lab.connect(where, [(src, dst, port, proto, k)])[0])
        icmp6.append(lab.icmp6_unreachables(where) - before)
    print("\n".join(f"{f[1:5]}: {sorted(set(g))}" for f, g in zip(flows, results)))  # shown on failure
    for (where, src, dst, port, proto, _), sim, got, unreach in zip(flows, preds, results, icmp6):
        dispositions = {o.disposition.value for o in sim.outcomes}
        what = f"{src} -> {dst}:{port}/{proto}"
        if dispositions == {"dnat"}:
            served = [g.split() for g in got]
            assert all(len(s) == 2 for s in served), (what, got)
            assert {s[0] for s in served} == {o.endpoint for o in sim.outcomes}, (what, got)
            for o in sim.outcomes:
                peers = {s[1] for s in served if s[0] == o.endpoint}
                want = {a for a in lab.node_ips if (":" in a) == (":" in src)} if o.masquerade else {src}
                assert peers <= want and peers, (what, o.endpoint, peers)
        elif dispositions == {"reject"} and ":" in src:
            # nft's reject in an ip6 table: ICMPv6 port unreachable (type 1 code 4). The
            # client's connect() is refused only by the error for the retransmitted SYN
            # (~1 s later), hence the longer timeout of single tries; the error is counted too
            assert got == ["refused"] and unreach >= 1, (what, got, unreach)
        elif dispositions == {"reject"}:
            assert got == ["refused"], (what, got)
        else:
            assert dispositions <= {"drop", "none"}, (what, dispositions)
            assert got == ["timeout"] and unreach == 0, (what, got, unreach)


NFT = FIXTURES / "kube-proxy-v1.36.2" / "nftables" / "nft-list-ruleset.txt"
V136_ENDPOINTS = ["10.244.1.2:53", "10.244.2.2:53", "10.244.1.70:8080", "10.244.2.70:8080", "10.244.2.71:8080",
                  "[fd00:10:244:1::130]:8080", "[fd00:10:244:2::130]:8080",
                  "[fd00:10:244:1::131]:8080", "[fd00:10:244:2::131]:8080"]


@pytest.fixture(scope="module")
def v136():
    lab = Lab(NFT.read_text(), ["192.168.10.11", "fd00:10:11::11"],
              ["10.244.1.7", "192.168.50.5", "10.244.1.8", "fd00:10:244:9::7", "2001:db8:99::5"],
              V136_ENDPOINTS, ["10.96.0.0/16", "fd00:10:96::/112"])
    try:
        yield lab
    finally:
        lab.close()


def test_udp_and_ipv6_agree_with_the_kernel(v136):
    rs = parse_nft(NFT.read_text(), NFT.name)
    _check(v136, rs, [
        ("clients", "10.244.1.7", "10.96.0.10", 53, "udp", "prerouting"),      # kube-dns over UDP: 1/2 each
        ("clients", "192.168.50.5", "10.96.0.10", 53, "udp", "prerouting"),    # from outside: masqueraded
        ("clients", "10.244.1.7", "10.96.0.10", 54, "udp", "prerouting"),      # wrong UDP port: ICMP reject
        ("clients", "10.244.1.7", "10.96.0.10", 53, "tcp", "prerouting"),      # the TCP twin
        ("clients", "fd00:10:244:9::7", "fd00:10:96::130", 80, "tcp", "prerouting"),   # IPv6 pod
        ("clients", "2001:db8:99::5", "fd00:10:96::130", 80, "tcp", "prerouting"),     # IPv6 outside: masq
        ("clients", "2001:db8:99::5", "fd00:10:11::11", 31615, "tcp", "prerouting"),   # IPv6 node port
        ("clients", "fd00:10:244:9::7", "fd00:10:96::131", 80, "tcp", "prerouting"),   # v6-only service
        ("clients", "fd00:10:244:9::7", "fd00:10:96::131", 81, "tcp", "prerouting"),   # wrong port: reject
        ("clients", "fd00:10:244:9::7", "fd00:10:96::99", 80, "tcp", "prerouting"),    # unallocated: drop
        ("node", "fd00:10:11::11", "fd00:10:96::130", 80, "tcp", "output"),            # from the node, v6
    ])


def test_affinity_sticks_and_the_listing_is_followed(v136):
    rs = parse_nft(NFT.read_text(), NFT.name)
    env = Environment(frozenset({ipaddress.ip_address("192.168.10.11")}))
    pkt = Packet(ipaddress.ip_address("10.244.1.8"), ipaddress.ip_address("10.96.70.10"), 80, "tcp",
                 Hook("prerouting"))
    first = simulate(rs, pkt, env)
    assert len({o.endpoint for o in first.outcomes}) == 3  # a first packet: any of the three
    got = v136.connect("clients", [("10.244.1.8", "10.96.70.10", 80, "tcp", 12)])[0]
    served = {g.split()[0] for g in got}
    assert len(served) == 1 and served <= {o.endpoint for o in first.outcomes}, got  # sticky
    after = simulate(parse_nft(v136.listing(), "listed"), pkt, env)  # the client is in an affinity set now
    assert {o.endpoint for o in after.outcomes} == served
