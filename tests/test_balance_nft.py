"""balance on kube-proxy's nftables mode: the rules carry no counters, so new
connections are unknown (never 0) and conntrack's open connections are the
evidence, tested against the shares of the ``numgen random mod N`` vmaps.

Offline on the real v1.36.2 nftables capture with conntrack listings made by real
connections (fixtures/kube-proxy-v1.36.2/nftables/README.md), and on a real
kernel: the capture loaded with ``nft -f`` into the node namespace of
``tests/netlab.py``, connections from a client namespace to endpoint hosts in a
third (all created and deleted here), balance reading ``--netns`` live.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter

import pytest

from conftest import KP, needs_netns

NFT = KP / "nftables"
RULES = NFT / "nft-list-ruleset.txt"
CT_150 = NFT / "conntrack-L-hello-world-150.txt"
CT_KEEP = NFT / "conntrack-L-hello-world-keep-one.txt"
HELLO = ("10.244.1.10:8080", "10.244.1.11:8080", "10.244.2.10:8080")


def _established(path) -> Counter:
    """What the listing itself says: ESTABLISHED flows to 10.96.10.10:80 per replying endpoint."""
    out: Counter = Counter()
    for line in path.read_text().splitlines():
        f = line.split()
        if "ESTABLISHED" in f and "dst=10.96.10.10" in f and "dport=80" in f:
            src = [x for x in f if x.startswith("src=")][1][4:]
            sport = [x for x in f if x.startswith("sport=")][1][6:]
            out[f"{src}:{sport}"] += 1
    return out


def _balance(cli, *args):
    r = cli("balance", *args, "-o", "json")
    assert r.code in (0, 1), r.err
    (sp,) = [s for s in json.loads(r.out)["service_ports"] if s["family"] == 4]
    return r.code, sp, {e["endpoint"]: e for e in sp["endpoints"]}


def test_rules_alone_new_and_open_unknown_never_zero(cli):
    code, sp, eps = _balance(cli, "default/hello-world", "--rules", str(RULES))
    assert code == 0 and sp["dataplane"] == "nftables"
    assert set(eps) == set(HELLO) and {e["fraction"] for e in eps.values()} == {"1/3"}
    assert all(e["new_connections"] is None and e["open_connections"] is None for e in eps.values())
    assert sp["new_connections"] is None and sp["verdict"] == "unknown"
    assert "nftables mode has no rule counters" in sp["reason"]
    text = cli("balance", "default/hello-world", "--rules", str(RULES)).out
    assert "new connections: unknown, nftables mode has no rule counters" in text
    assert " 0 " not in text.split("verdict")[0]


@pytest.mark.parametrize("service,shares", [
    ("default/cascade-2ep:http", {"1/2"}),
    ("default/cascade-4ep:http", {"1/4"}),
    ("default/cascade-7ep:http", {"1/7"}),
])
def test_expected_shares_are_the_numgen_split(cli, service, shares):
    _, sp, eps = _balance(cli, service, "--rules", str(RULES))
    assert {e["fraction"] for e in eps.values()} == shares
    assert len(eps) == int(next(iter(shares)).split("/")[1])


def test_open_connections_from_a_real_listing_are_counted_and_tested(cli):
    code, sp, eps = _balance(cli, "default/hello-world", "--rules", str(RULES), "--conntrack", str(CT_150))
    want = _established(CT_150)
    assert sum(want.values()) == 150
    assert {ep: e["open_connections"] for ep, e in eps.items()} == {ep: want[ep] for ep in HELLO}
    assert all(e["new_connections"] is None for e in eps.values())
    assert sp["open_test"]["total"] == 150 and sp["open_test"]["enough"] and sp["new_test"] is None
    assert code == 0 and sp["verdict"] == "consistent"
    assert "new connections: unknown, nftables mode has no rule counters" in sp["reason"]


def test_open_skew_without_counters_does_not_blame_the_clients(cli):
    # the real listing: 48 kept open to one endpoint, 102 closed (TIME_WAIT, not open)
    code, sp, eps = _balance(cli, "default/hello-world", "--rules", str(RULES), "--conntrack", str(CT_KEEP))
    assert {ep: e["open_connections"] for ep, e in eps.items()} == \
        {"10.244.1.10:8080": 48, "10.244.1.11:8080": 0, "10.244.2.10:8080": 0}
    assert code == 1 and sp["verdict"] == "open-connections-skewed"
    assert sp["open_test"]["p_value"] < 1e-10
    # without new-connection counts, rules and long-lived connections cannot be told apart
    assert "nftables mode has no rule counters" in sp["reason"] and "not kube-proxy" not in sp["reason"]
    assert "which one is unknown" in sp["reason"]


def test_too_few_open_connections_is_not_enough_data(cli, tmp_path):
    few = tmp_path / "ct"
    few.write_text("\n".join(CT_150.read_text().splitlines()[:4]) + "\n")
    code, sp, _ = _balance(cli, "default/hello-world", "--rules", str(RULES), "--conntrack", str(few))
    assert code == 0 and sp["verdict"] == "not-enough-data" and sp["open_connections"] == 4
    assert "nftables mode has no rule counters" in sp["reason"]


def test_all_ports_and_json_rules_agree(cli):
    r = cli("balance", "-A", "--rules", str(NFT / "nft-list-ruleset.json"), "--conntrack", str(CT_150), "-o", "json")
    assert r.code == 0, r.err
    ports = {(s["name"], s["family"]): s for s in json.loads(r.out)["service_ports"]}
    assert all(s["dataplane"] == "nftables" and s["new_connections"] is None for s in ports.values())
    assert ports[("default/hello-world", 4)]["open_connections"] == 150
    assert ports[("default/cascade-3ep:http", 4)]["open_connections"] == 0
    assert ("default/dual-stack:http", 6) in ports


# --- a real kernel ---------------------------------------------------------------

@pytest.fixture
def lab():
    from netlab import lab_of

    yield from lab_of(RULES.read_text(), mode="nftables")


@needs_netns
@pytest.mark.netns
@pytest.mark.skipif(shutil.which("conntrack") is None, reason="needs conntrack-tools (apt-get install conntrack)")
def test_live_nft_node_counts_the_connections_made(cli, lab, tmp_path):
    client, seen = lab.connect("10.96.10.10", 80, 150)
    made = seen["made"]
    assert sum(made.values()) == 150 and set(made) <= set(HELLO)
    code, sp, eps = _balance(cli, "default/hello-world", "--netns", lab.node.name)
    assert sp["dataplane"] == "nftables"
    assert {ep: e["open_connections"] for ep, e in eps.items()} == {ep: made.get(ep, 0) for ep in HELLO}
    assert all(e["new_connections"] is None for e in eps.values())
    # the kernel's numgen split: "consistent" except with probability ALPHA (0.001)
    assert code == 0 and sp["verdict"] == "consistent", sp["reason"]
    # the same from what the node shows: nft list ruleset and conntrack -L of that namespace
    (tmp_path / "rules").write_text(lab.node.run("nft", "list", "ruleset").stdout)
    (tmp_path / "ct").write_text(lab.node.run("conntrack", "-L").stdout)
    code2, sp2, eps2 = _balance(cli, "default/hello-world", "--rules", str(tmp_path / "rules"),
                                "--conntrack", str(tmp_path / "ct"))
    # the live read is nft -j JSON, the file is text: positions differ, the figures must not
    assert code2 == code and sp2["verdict"] == sp["verdict"]
    assert {ep: e["open_connections"] for ep, e in eps2.items()} == {ep: e["open_connections"] for ep, e in eps.items()}
    client.stdin.close()


@needs_netns
@pytest.mark.netns
@pytest.mark.skipif(shutil.which("conntrack") is None, reason="needs conntrack-tools (apt-get install conntrack)")
def test_live_nft_long_lived_on_one_endpoint(cli, lab):
    client, seen = lab.connect("10.96.10.10", 80, 150, keep="10.244.1.10:8080")
    code, sp, eps = _balance(cli, "default/hello-world", "--netns", lab.node.name)
    assert {ep: e["open_connections"] for ep, e in eps.items()} == {ep: seen["open"].get(ep, 0) for ep in HELLO}
    assert code == 1 and sp["verdict"] == "open-connections-skewed"
    client.stdin.close()
