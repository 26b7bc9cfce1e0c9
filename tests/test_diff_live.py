"""svcinspect diff on live tables: each side in its own network namespace that the
test creates (and deletes); the host's tables are never read or written."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import IPT, NetNS, needs_netns

pytestmark = [needs_netns, pytest.mark.netns]

SEQ = IPT / "sequence"


def svcinspect(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "svcinspect", *args], capture_output=True, text=True, timeout=300)


@pytest.fixture
def two_nodes():
    a, b = NetNS(), NetNS()
    try:
        a.restore((SEQ / "step0-initial" / "iptables-save.txt").read_text(), 4, "legacy")
        b.restore((SEQ / "step1-hello-world-scaled-3-to-5" / "iptables-save.txt").read_text(), 4, "legacy")
        yield a, b
    finally:
        a.close()
        b.close()


def test_live_against_live_each_in_its_namespace(two_nodes) -> None:
    a, b = two_nodes
    r = svcinspect("diff", "live", "live", "--netns-a", a.name, "--netns-b", b.name, "--family", "4", "-o", "json")
    assert r.returncode == 1, r.stderr
    doc = json.loads(r.stdout)
    assert doc["a"]["source"] == f"live netns {a.name}"
    assert [(p["servicePort"], [c["what"] for c in p["changes"]]) for p in doc["servicePorts"]] == [
        ("default/hello-world", ["endpoints"])]
    assert doc["nodeWide"] == []


def test_live_against_the_dump_it_was_loaded_from(two_nodes) -> None:
    a, _ = two_nodes
    r = svcinspect("diff", "live", str(SEQ / "step0-initial" / "iptables-save.txt"), "--netns-a", a.name,
                   "--family", "4")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "same: 28 service port(s)" in r.stdout


@pytest.fixture
def nft_node():
    ns = NetNS()
    try:
        ns.run("nft", "-f", str(IPT.parent / "nftables" / "nft-list-ruleset.txt"))
        yield ns
    finally:
        ns.close()


def test_live_nftables_mode_against_the_iptables_capture(nft_node) -> None:
    """A node migrated to nftables mode (the real capture loaded with nft -f),
    read live, against the iptables-mode dumps of the same objects: only the
    modes' expected differences, and reading changed nothing."""
    before = nft_node.run("nft", "list", "ruleset").stdout
    r = svcinspect("diff", f"{IPT / 'iptables-save.txt'},{IPT / 'ip6tables-save.txt'}", "live",
                   "--netns-b", nft_node.name, "-o", "json")
    assert r.returncode == 0, r.stdout + r.stderr
    doc = json.loads(r.stdout)
    assert doc["b"]["dataplane"] == "nftables" and doc["b"]["source"] == f"live netns {nft_node.name}"
    assert doc["compared"] == 30 and doc["summary"]["expected"] == 22
    assert all(c["expected"] for p in doc["servicePorts"] for c in p["changes"])
    assert nft_node.run("nft", "list", "ruleset").stdout == before
