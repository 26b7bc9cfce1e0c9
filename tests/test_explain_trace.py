"""trace, for people (issue 16): whole rule texts with --wide, every client's
path (not only the first), the filter and POSTROUTING steps in it, and the
node's real address from the Node object or, live, from its interfaces."""

from __future__ import annotations

import pytest

from conftest import IPT, needs_netns
from svcinspect.sources.addresses import parse_ip_addresses, read_node_addresses
from svcinspect.sources.command import CommandResult, FakeRunner

RULES = str(IPT / "iptables-save.txt")
OBJECTS = ["--objects", str(IPT / "objects.json"), "--node", "node-a"]
LINES = (IPT / "iptables-save.txt").read_text().splitlines()


def trace(cli, *args):
    r = cli("trace", "default/hello-world", "--rules", RULES, *args)
    assert r.code == 0, r.err
    return r.out


def test_wide_prints_the_probability_and_destination_rules_whole(cli):
    narrow, wide = trace(cli, *OBJECTS), trace(cli, *OBJECTS, "--wide")
    for line in (339, 288):  # --probability 0.33333333349 ... ; DNAT --to-destination 10.244.1.10:8080
        assert LINES[line - 1] in wide
        assert LINES[line - 1] not in narrow
    assert "..." in narrow and "--to-destinat..." in narrow


def test_json_always_has_the_whole_rule(cli):
    import json
    doc = json.loads(trace(cli, *OBJECTS, "-o", "json"))
    rules = [s["rule"] for e in doc["ports"][0]["entries"] for s in e["path"]]
    assert LINES[308] in rules  # the KUBE-SERVICES dispatch, never cut


def test_every_client_kind_has_its_own_path(cli):
    out = trace(cli, *OBJECTS)
    for label in ("path from a pod (10.244.0.1):", "path from this node (192.168.10.11):",
                  "path from outside the cluster (203.0.113.99 -> 192.168.10.11):",
                  "path from a pod (10.244.0.1 -> 192.168.10.11):",
                  "path from this node via localhost (127.0.0.1):"):
        assert out.count(label) == 1, label


def _section(out, label):
    start = out.index(label)
    end = out.find("    path ", start + 1)
    who = out.find("    who gets where", start + 1)
    ends = [e for e in (end, who) if e > 0]
    return out[start:min(ends)]


def test_paths_show_filter_and_postrouting_steps(cli):
    out = trace(cli, *OBJECTS)
    pod = _section(out, "path from a pod (10.244.0.1):")
    assert "filter FORWARD" in pod and "line 188   RETURN" in pod  # unmarked: KUBE-POSTROUTING returns
    assert "MASQUERADE" not in pod
    node = _section(out, "path from this node (192.168.10.11):")
    assert "filter OUTPUT" in node and "line 190   MASQUERADE: source 192.168.10.11" in node
    outside = _section(out, "path from outside the cluster")
    assert "line 38    ACCEPT" in outside  # KUBE-FORWARD accepts the marked packet
    lo = _section(out, "path from this node via localhost (127.0.0.1):")
    assert "line 176" in lo and "MASQUERADE: source 127.0.0.1 -> 192.168.10.11" in lo


def test_node_address_from_the_node_object_replaces_the_placeholder(cli):
    with_node = trace(cli, *OBJECTS)
    assert "192.0.2.1" not in with_node and "no --node-ip" not in with_node
    without = trace(cli)
    assert "this node is shown as 192.0.2.1" in without


def test_node_ip_option_still_wins_over_the_node_object(cli):
    out = trace(cli, *OBJECTS, "--node-ip", "192.168.10.99")
    assert "path from this node (192.168.10.99):" in out


IP_J = ('[{"ifname":"lo","addr_info":[{"family":"inet","local":"127.0.0.1","scope":"host"}]},'
        '{"ifname":"eth0","addr_info":[{"family":"inet","local":"192.168.10.11","scope":"global"},'
        '{"family":"inet6","local":"fd00::11","scope":"global"},{"family":"inet6","local":"fe80::1","scope":"link"}]}]')


def test_live_node_addresses_come_from_ip_address_show():
    runner = FakeRunner({"ip": IP_J})
    found = read_node_addresses(None, runner)
    assert sorted(map(str, found)) == ["192.168.10.11", "fd00::11"]
    assert runner.calls == [["ip", "-j", "address", "show"]]


@pytest.mark.parametrize("answer", [CommandResult(1, "", "boom"), CommandResult(0, "not json", ""),
                                    CommandResult(0, "[]", "")])
def test_unreadable_addresses_stay_unknown(answer):
    assert read_node_addresses(None, FakeRunner({"ip": answer})) is None


def test_parse_ignores_loopback_and_link_local():
    assert parse_ip_addresses('[{"addr_info":[{"local":"::1","scope":"host"}]}]') == frozenset()


@needs_netns
@pytest.mark.netns
def test_live_trace_in_a_netns_uses_the_namespaces_own_address(cli, netns):
    netns.restore((IPT / "iptables-save.txt").read_text(), 4, "legacy")
    netns.run("ip", "link", "set", "lo", "up")
    netns.run("ip", "addr", "add", "198.51.100.7/32", "dev", "lo")  # no other interface: nothing leaves
    r = cli("trace", "default/hello-world", "--netns", netns.name, "--family", "4")
    assert r.code == 0, r.err
    assert "path from this node (198.51.100.7):" in r.out
    assert "192.0.2.1" not in r.out
    r = cli("explain", "hello-world", "--netns", netns.name, "--family", "4")
    assert r.code == 0, r.err
    assert "From this node itself (198.51.100.7) to the cluster IP 10.96.10.10:80" in r.out
