"""balance on real connections through real kube-proxy rules.

Three private network namespaces, created and deleted here:

    client (10.250.0.2) --veth-- node (the captured rules) --veth-- endpoints
                                                                   (every endpoint
                                                                    address and the
                                                                    cluster IPs)

The node namespace is loaded with the real kube-proxy capture; the endpoints
namespace holds every endpoint address and the service VIPs (so a packet the
rules would not rewrite still reaches a host of ours) with a listener that
greets each connection with the address it accepted on. The client opens N
connections to a cluster IP and records which endpoint answered. Then balance
reads the node namespace (``iptables-save -c`` and ``conntrack -L``, live through
``--netns`` and from saved files) and must count exactly those connections.
No namespace has a route toward a real interface.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from conftest import IPT, NetNS, needs_netns

pytestmark = [needs_netns, pytest.mark.netns,
              pytest.mark.skipif(shutil.which("conntrack") is None,
                                 reason="needs conntrack-tools (apt-get install conntrack)")]

CAPTURE = (IPT / "iptables-save-counters.txt").read_text()

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
    import re
    return set(re.findall(r"--to-destination (\d+\.\d+\.\d+\.\d+):\d+", text))


def _vips(text: str) -> set[str]:
    import re
    return set(re.findall(r"-A KUBE-SERVICES -d (10\.96\.\d+\.\d+)/32", text))


class Lab:
    """client -> node -> endpoints, all in namespaces of this test."""

    def __init__(self, rules: str):
        self.client, self.node, self.eps = NetNS(), NetNS(), NetNS()
        self.procs: list[subprocess.Popen] = []
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


@pytest.fixture
def lab():
    lab = Lab(CAPTURE)
    try:
        yield lab
    finally:
        lab.close()


def _balance(cli, *args):
    r = cli("balance", *args, "-o", "json")
    assert r.code in (0, 1), r.err
    (sp,) = [s for s in json.loads(r.out)["service_ports"] if s["family"] == 4]
    return r.code, sp, {e["endpoint"]: e for e in sp["endpoints"]}


def test_counts_equal_the_connections_made_and_split_is_consistent(cli, lab, tmp_path):
    client, seen = lab.connect("10.96.10.10", 80, 150)
    made = seen["made"]
    assert sum(made.values()) == 150 and set(made) <= {"10.244.1.10:8080", "10.244.1.11:8080", "10.244.2.10:8080"}
    code, sp, eps = _balance(cli, "default/hello-world", "--netns", lab.node.name)
    assert {ep: e["new_connections"] for ep, e in eps.items()} == {ep: made.get(ep, 0) for ep in eps}
    assert {ep: e["open_connections"] for ep, e in eps.items()} == {ep: made.get(ep, 0) for ep in eps}
    assert sp["new_connections"] == sp["open_connections"] == 150
    # the kernel's random split: "consistent" except with probability ALPHA (0.001)
    assert code == 0 and sp["verdict"] == "consistent", sp["reason"]
    # the same from saved files: iptables-save -c and conntrack -L of that namespace
    (tmp_path / "rules").write_text(lab.node.run("iptables-legacy-save", "-c").stdout)
    (tmp_path / "ct").write_text(lab.node.run("conntrack", "-L").stdout)
    code2, sp2, eps2 = _balance(cli, "default/hello-world", "--rules", str(tmp_path / "rules"),
                                "--conntrack", str(tmp_path / "ct"))
    assert (code2, eps2) == (code, eps)
    client.stdin.close()


def test_long_lived_connections_on_one_endpoint_are_open_skew(cli, lab):
    client, seen = lab.connect("10.96.10.10", 80, 150, keep="10.244.1.10:8080")
    code, sp, eps = _balance(cli, "default/hello-world", "--netns", lab.node.name)
    assert {ep: e["new_connections"] for ep, e in eps.items()} == {ep: seen["made"].get(ep, 0) for ep in eps}
    # closed connections are TIME_WAIT in conntrack, not open
    assert {ep: e["open_connections"] for ep, e in eps.items()} == {ep: seen["open"].get(ep, 0) for ep in eps}
    assert eps["10.244.1.11:8080"]["open_connections"] == 0 < eps["10.244.1.10:8080"]["open_connections"]
    assert code == 1 and sp["verdict"] == "open-connections-skewed", sp["reason"]
    assert "not kube-proxy" in sp["reason"]


def test_session_affinity_sends_one_client_to_one_endpoint(cli, lab):
    client, seen = lab.connect("10.96.70.10", 80, 40)
    (only,) = seen["made"]  # the real recent-module rules: every connection follows the first
    code, sp, eps = _balance(cli, "default/affinity:http", "--netns", lab.node.name)
    assert eps[only]["new_connections"] == 40 and sp["new_connections"] == 40
    assert code == 1 and sp["verdict"] == "new-connections-skewed"
    assert "session affinity (600 s)" in sp["reason"]
