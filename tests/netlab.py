"""A three-namespace lab for real connections through real kube-proxy rules.

    client (10.250.0.2) --veth-- node (the captured rules) --veth-- endpoints
                                                                   (every endpoint
                                                                    address and the
                                                                    cluster IPs)

The node namespace gets the rules; the endpoints namespace holds every endpoint
address and every service VIP of the rules (so a packet the rules do not rewrite
still reaches a host of ours), with listeners on 8080 and 80 that greet each
connection with the address it was accepted on. The client namespace opens
connections and reports which endpoint answered. No namespace has a route toward
a real interface; veth pairs are created inside the namespaces, never in the
host's. ``close()`` kills the processes and deletes the namespaces.

``Lab(text, mode="nftables")`` loads an ``nft list ruleset`` capture with
``nft -f`` instead of an iptables-save dump with iptables-legacy-restore.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys

from conftest import NetNS

SERVER = r"""
import socket, sys, threading
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1]))); s.listen(512)
print("ready", flush=True)
def serve(c):
    try:
        ip, port = c.getsockname()
        c.sendall(f"{ip}:{port}\n".encode())
        while c.recv(100):
            pass
    finally:
        c.close()
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
"""

CLIENT = r"""
import json, socket, sys
vip, port, n, keep = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
counts, kept, socks = {}, {}, []
for _ in range(n):
    c = socket.create_connection((vip, port), timeout=5)
    f = c.makefile()
    ep = f.readline().strip()
    counts[ep] = counts.get(ep, 0) + 1
    if keep == "all" or ep == keep:
        kept[ep] = kept.get(ep, 0) + 1
        socks.append((c, f))
    else:
        f.close(); c.close()
print(json.dumps({"made": counts, "open": kept}), flush=True)
sys.stdin.readline()
"""


def _endpoint_addresses(text: str) -> set[str]:
    # iptables: --to-destination A:P; nftables: "dnat to A:P" or "dnat ip to numgen ... map { 0 : A . P, ... }"
    return {a for line in text.splitlines() if "--to-destination" in line or "dnat " in line
            for a in re.findall(r"(\d+\.\d+\.\d+\.\d+)(?::| \. )\d+", line)}


def _vips(text: str) -> set[str]:
    # iptables: the KUBE-SERVICES matches; nftables: the service-ips map's "10.96.x.y . tcp . 80" keys
    return set(re.findall(r"-A KUBE-SERVICES -d (10\.96\.\d+\.\d+)/32", text)) | \
        set(re.findall(r"(10\.96\.\d+\.\d+) \. (?:tcp|udp|sctp) \. \d+", text))


class Lab:
    """client -> node -> endpoints, all in namespaces of this test."""

    def __init__(self, rules: str, mode: str = "iptables"):
        self.client, self.node, self.eps = NetNS(), NetNS(), NetNS()
        self.procs: list[subprocess.Popen] = []
        try:
            self._setup(rules, mode)
        except BaseException:
            self.close()  # no namespace outlives a failed setup
            raise

    def _setup(self, rules: str, mode: str) -> None:
        c, n, e = self.client, self.node, self.eps
        c.run("ip", "link", "add", "c0", "type", "veth", "peer", "name", "n0", "netns", n.name)
        e.run("ip", "link", "add", "e0", "type", "veth", "peer", "name", "n1", "netns", n.name)
        for ns in (c, n, e):
            ns.run("ip", "link", "set", "lo", "up")
        c.run("ip", "addr", "add", "10.250.0.2/24", "dev", "c0")
        c.run("ip", "link", "set", "c0", "up")
        c.run("ip", "route", "add", "10.96.0.0/16", "via", "10.250.0.1")
        n.run("ip", "addr", "add", "10.250.0.1/24", "dev", "n0")
        n.run("ip", "addr", "add", "10.251.0.1/24", "dev", "n1")
        n.run("ip", "link", "set", "n0", "up")
        n.run("ip", "link", "set", "n1", "up")
        n.run("ip", "route", "add", "10.244.0.0/16", "via", "10.251.0.2")
        n.run("ip", "route", "add", "10.96.0.0/16", "via", "10.251.0.2")
        n.run("sysctl", "-qw", "net.ipv4.ip_forward=1")
        e.run("ip", "addr", "add", "10.251.0.2/24", "dev", "e0")
        e.run("ip", "link", "set", "e0", "up")
        e.run("ip", "route", "add", "10.250.0.0/24", "via", "10.251.0.1")
        for addr in sorted(_endpoint_addresses(rules) | _vips(rules)):
            e.run("ip", "addr", "add", f"{addr}/32", "dev", "lo")
        if mode == "nftables":
            n.run("nft", "-f", "-", input=rules)
        else:
            n.restore(rules, 4, "legacy")  # counters start at zero: the [p:b] are not restored without -c
        for port in ("8080", "80"):
            self._spawn(e, SERVER, port).stdout.readline()

    def _spawn(self, ns: NetNS, code: str, *args: str) -> subprocess.Popen:
        p = subprocess.Popen(["ip", "netns", "exec", ns.name, sys.executable, "-c", code, *args],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.procs.append(p)
        return p

    def connect(self, vip: str, port: int, n: int, keep: str = "all") -> tuple[subprocess.Popen, dict]:
        p = self._spawn(self.client, CLIENT, vip, str(port), str(n), keep)
        line = p.stdout.readline()
        assert line, "client failed"
        return p, json.loads(line)

    def close(self) -> None:
        for p in self.procs:
            p.kill()
            p.wait()
        for ns in (self.client, self.node, self.eps):
            ns.close()


def lab_of(rules: str, mode: str = "iptables"):
    """A pytest fixture body: the lab with ``rules`` for one test, skipping when
    ``mode`` is nftables and nft is not installed; closed afterwards."""
    import shutil

    import pytest

    if mode == "nftables" and shutil.which("nft") is None:
        pytest.skip("needs nft (apt-get install nftables)")
    lab = Lab(rules, mode=mode)
    try:
        yield lab
    finally:
        lab.close()
