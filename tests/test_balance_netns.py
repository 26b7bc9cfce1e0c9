"""balance on real connections through real kube-proxy rules: the lab of
``tests/netlab.py`` (client, node and endpoint namespaces, created and deleted
here) with the real kube-proxy capture in the node namespace. The client opens N
connections to a cluster IP and records which endpoint answered; balance reads
the node namespace (``iptables-save -c`` and ``conntrack -L``, live through
``--netns`` and from saved files) and must count exactly those connections.
"""

from __future__ import annotations

import json
import shutil

import pytest

from conftest import IPT, needs_netns
from netlab import lab_of

pytestmark = [needs_netns, pytest.mark.netns,
              pytest.mark.skipif(shutil.which("conntrack") is None,
                                 reason="needs conntrack-tools (apt-get install conntrack)")]

CAPTURE = (IPT / "iptables-save-counters.txt").read_text()


@pytest.fixture
def lab():
    yield from lab_of(CAPTURE)


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
    # the new connections still split at random: this verdict needs them "consistent",
    # which the kernel's random split gives except with probability ALPHA (0.001)
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
