"""svcinspect diff across dataplanes: iptables mode vs nftables mode of the same
node (real v1.36.2 captures of the same objects), nftables vs nftables along the
real capture sequence, and edited copies of the nftables capture that make a
real difference.

What a migration check needs: the modes' known differences are named and do
not count (exit 0), anything else counts (exit 1)."""

from __future__ import annotations

import json

import pytest

from svcinspect.dataplane.nftables.parse import parse_nfts
from svcinspect.diff import (CLUSTER_IPS_CHECK, EXTERNAL_VS_LB, HEALTH_CHECK_NO_RULE, LOCALHOST_NODEPORTS,
                             NODEPORT_ADDRESSES_DEFAULT, compare_sides, iptables_side, nftables_side)
from svcinspect.model.netfilter import Family
from svcinspect.dataplane.iptables.parse import parse_dumps
from svcinspect.sources.files import TextSource
from conftest import IPT, KP

NFT = KP / "nftables"
NFT_TXT = NFT / "nft-list-ruleset.txt"
NFT_JSON = NFT / "nft-list-ruleset.json"
NSEQ = NFT / "sequence"
N0, N1, N2 = (NSEQ / d / "nft-list-ruleset.txt" for d in
              ("step0-initial", "step1-hello-world-scaled-3-to-5", "step2-web-multi-deleted"))
ISEQ = IPT / "sequence"
I1 = ISEQ / "step1-hello-world-scaled-3-to-5"

MODE_REASONS = {LOCALHOST_NODEPORTS, NODEPORT_ADDRESSES_DEFAULT, EXTERNAL_VS_LB, HEALTH_CHECK_NO_RULE}


def ipt(folder=IPT, label="iptables"):
    paths = [folder / "iptables-save.txt", folder / "ip6tables-save.txt"]
    return iptables_side(parse_dumps([TextSource(str(p), p.read_text()) for p in paths]), label)


def nft(path=NFT_TXT, label="nftables", text: str | None = None):
    return nftables_side(parse_nfts([TextSource(str(path), path.read_text() if text is None else text)]), label)


def all_changes(report):
    return [(p.service_port, int(p.family), c) for p in report.ports for c in p.changes] + [
        ("node", 0, c) for c in report.node]


def real(report):
    return sorted((port, fam, c.what) for port, fam, c in all_changes(report) if c.expected is None)


def _arg(folder=IPT) -> str:
    return f"{folder / 'iptables-save.txt'},{folder / 'ip6tables-save.txt'}"


# --- the same node in both modes ------------------------------------------------------------------

@pytest.mark.parametrize("nft_path", [NFT_TXT, NFT_JSON], ids=["text", "json"])
@pytest.mark.parametrize("order", ["ipt-nft", "nft-ipt"])
def test_same_objects_in_both_modes_differ_only_as_the_modes_do(nft_path, order) -> None:
    a, b = ipt(), nft(nft_path)
    report = compare_sides(a, b) if order == "ipt-nft" else compare_sides(b, a)
    got = all_changes(report)
    assert real(report) == []
    assert not report.different
    assert report.families == (Family.V4, Family.V6)
    # Every known mode difference turns up on this capture, and nothing else is labelled expected.
    assert {c.expected for _, _, c in got} == MODE_REASONS
    by_reason = {}
    for port, fam, c in got:
        by_reason.setdefault(c.expected, set()).add((port, fam, c.what))
    assert by_reason[HEALTH_CHECK_NO_RULE] == {("default/etp-local-has:http", 4, "health-check-node-port")}
    assert by_reason[EXTERNAL_VS_LB] == {(p, 4, w) for p in ("default/etp-local-has:http", "default/lb-plain:https")
                                         for w in ("external-ip", "load-balancer-ip")}
    # lb-ranges has source ranges: nftables knows it is a load-balancer IP, so no difference there.
    assert not any(p == "default/lb-ranges:http" and c.expected == EXTERNAL_VS_LB for p, _, c in got)
    # both families: the IPv6 node port of dual-stack is bound to the IPv6 node IP
    assert ("default/dual-stack:http", 6, "node-port-addresses") in by_reason[NODEPORT_ADDRESSES_DEFAULT]
    assert ("node", 0, "nodeport-addresses") in by_reason[NODEPORT_ADDRESSES_DEFAULT]
    assert any(CLUSTER_IPS_CHECK in n for n in report.notes)


def test_nft_text_and_json_are_the_same_rules() -> None:
    report = compare_sides(nft(NFT_TXT), nft(NFT_JSON))
    assert all_changes(report) == [] and not report.different and report.compared == 30


def test_nft_node_facts() -> None:
    side = nft()
    f = side.facts
    assert f.families == (Family.V4, Family.V6)
    assert f.nodeport_addresses == {Family.V4: ("192.168.10.11",), Family.V6: ("fd00:10:11::11",)}
    hooks = {t for fam, t in f.hooks if fam is Family.V4}
    assert "nat-prerouting: type nat hook prerouting priority -100 policy accept" in hooks
    assert "nat-prerouting: jump services" in hooks
    assert any(t.startswith("cluster-ips-check: ") and "reject" in t for _, t in f.node_rules)
    assert not f.dangling and not f.orphans


def test_itp_local_is_read_from_nft_local_chains() -> None:
    from svcinspect.diff import _policies

    ports = {sp.name: sp for sp in nft().ports if sp.family is Family.V4}
    assert _policies(ports["default/itp-local-has:http"])["internalTrafficPolicy"] == "Local"
    assert _policies(ports["default/hello-world"]) == {"internalTrafficPolicy": "Cluster",
                                                       "externalTrafficPolicy": "Cluster"}


def test_masquerade_per_client_kind_from_the_nft_evaluator_matches_iptables_mode() -> None:
    a, b = ipt(), nft()
    pa = {(sp.name, sp.family): sp for sp in a.ports}
    for sp in b.ports:
        mb = b.masquerade(sp)
        ma = a.masquerade(pa[(sp.name, sp.family)])
        if sp.name == "default/hello-world":
            assert mb == {"cluster IP from a pod": "not masqueraded", "cluster IP from this node": "masqueraded",
                          "node port from outside": "masqueraded", "node port from a pod": "masqueraded"}
        if sp.name not in ("default/etp-local-has:http", "default/lb-plain:https"):  # external vs LB words
            assert ma == mb, sp.name


# --- real differences across modes ----------------------------------------------------------------

def test_endpoint_change_across_modes_is_real() -> None:
    report = compare_sides(ipt(I1), nft(N0))
    assert real(report) == [("default/hello-world", 4, "endpoints")]
    c = next(c for p, _, c in all_changes(report) if p == "default/hello-world" and c.what == "endpoints")
    assert c.message.splitlines()[0] == "endpoints: 5 -> 3 (1/5 -> 1/3 each)"
    assert report.different


def test_edited_nft_masquerade_is_real() -> None:
    text = NFT_TXT.read_text()
    chain = "chain external-AN52JS3S-default/hello-world/tcp/ {\n\t\tmeta mark set meta mark | 0x00004000 comment " \
            "\"masquerade\"\n"
    assert chain in text
    edited = text.replace(chain, "chain external-AN52JS3S-default/hello-world/tcp/ {\n")
    report = compare_sides(ipt(), nft(text=edited))
    got = {(p, c.message) for p, _, c in all_changes(report) if c.expected is None}
    assert got == {("default/hello-world", "masquerade, node port from outside: masqueraded -> not masqueraded"),
                   ("default/hello-world", "masquerade, node port from a pod: masqueraded -> not masqueraded")}
    assert report.different


def test_external_ip_moved_is_not_excused_as_a_mode_difference() -> None:
    text = NFT_TXT.read_text()
    assert text.count("192.0.2.102 . tcp . 443") == 1
    edited = text.replace("192.0.2.102 . tcp . 443", "192.0.2.109 . tcp . 443")
    report = compare_sides(ipt(), nft(text=edited))
    assert ("default/lb-plain:https", 4, "external-ip") in real(report)
    assert ("default/lb-plain:https", 4, "load-balancer-ip") in real(report)
    assert report.different


def test_health_check_port_on_the_nft_side_is_not_excused() -> None:
    from svcinspect.diff import Change, _iptables_vs_nftables

    a, b = ipt(), nft()
    assert _iptables_vs_nftables(Change("health-check-node-port", "", [32001], []), a, b) == HEALTH_CHECK_NO_RULE
    assert _iptables_vs_nftables(Change("health-check-node-port", "", [], [32001]), a, b) is None
    assert _iptables_vs_nftables(Change("health-check-node-port", "", [32001], [32002]), a, b) is None


# --- nftables vs nftables: the real sequence ------------------------------------------------------

def test_nft_sequence_step0_step1_hello_world_scaled() -> None:
    report = compare_sides(nft(N0), nft(N1))
    assert real(report) == [("default/hello-world", 4, "endpoints")]
    c = all_changes(report)[0][2]
    assert c.message == ("endpoints: 3 -> 5 (1/3 -> 1/5 each)\n+ 10.244.2.11:8080 (1/5)\n+ 10.244.2.12:8080 (1/5)")
    assert c.before == {"10.244.1.10:8080": "1/3", "10.244.1.11:8080": "1/3", "10.244.2.10:8080": "1/3"}
    assert report.different


def test_nft_sequence_step1_step2_web_multi_deleted() -> None:
    report = compare_sides(nft(N1), nft(N2))
    assert real(report) == [("default/web-multi:http", 4, "removed"), ("default/web-multi:metrics", 4, "removed")]
    assert {p.status for p in report.ports} == {"removed"}


def test_nft_orphan_and_dangling_only_on_one_side() -> None:
    text = N0.read_text()
    marker = "\tchain services {\n"
    assert marker in text
    edited = text.replace(marker, "\tchain service-AAAAAAAA-default/ghost/tcp/http {\n\t\tjump endpoint-gone\n\t}\n\n"
                          + marker, 1)
    report = compare_sides(nft(N0), nft(N0, text=edited))
    node = {(c.what, c.message) for c in report.node}
    assert ("orphans", "IPv4 orphan chain only in B: chain service-*-default/ghost/tcp/http") in node
    assert ("dangling", "IPv4 dangling jump only in B: service-*-default/ghost/tcp/http -> endpoint-gone") in node
    assert report.different


# --- the command ----------------------------------------------------------------------------------

@pytest.mark.parametrize("nft_path", [NFT_TXT, NFT_JSON], ids=["text", "json"])
def test_cli_modes_exit_0_and_json(cli, nft_path) -> None:
    r = cli("diff", _arg(), str(nft_path))
    assert r.code == 0, r.err
    assert "expected differences (not counted)" in r.out
    assert r.out.rstrip().endswith("same: 30 service port(s) behave alike (IPv4, IPv6); 22 expected difference(s) "
                                   "listed")
    r = cli("diff", _arg(), str(nft_path), "-o", "json")
    doc = json.loads(r.out)
    assert r.code == 0 and doc["different"] is False
    assert doc["a"]["dataplane"] == "iptables" and doc["b"]["dataplane"] == "nftables"
    assert doc["summary"]["expected"] == 22 and doc["summary"]["changed"] == 0


def test_cli_modes_real_difference_exit_1(cli) -> None:
    r = cli("diff", _arg(I1), str(N0))
    assert r.code == 1
    assert "~ default/hello-world (tcp, IPv4)\n    endpoints: 5 -> 3 (1/5 -> 1/3 each)\n" in r.out


def test_cli_nft_sequence(cli) -> None:
    r = cli("diff", str(N0), str(N1))
    assert r.code == 1 and r.out.rstrip().endswith("different: 1 changed of 30 service port(s) (IPv4, IPv6)")
    r = cli("diff", str(N1), str(N2))
    assert r.code == 1 and r.out.rstrip().endswith("different: 2 removed of 30 service port(s) (IPv4, IPv6)")


def test_cli_modes_with_objects(cli) -> None:
    r = cli("diff", _arg(I1), str(N0), "--objects", str(NSEQ / "step0-initial" / "objects.json"), "--node", "node-a",
            "-o", "json")
    doc = json.loads(r.out)
    assert r.code == 1
    hw = next(p for p in doc["servicePorts"] if p["servicePort"] == "default/hello-world")
    assert hw["objects"] == "B"   # the nftables side has the 3 endpoints step0's objects list


def test_cli_mixed_modes_on_one_side_is_exit_2(cli) -> None:
    r = cli("diff", f"{NFT_TXT},{IPT / 'iptables-save.txt'}", _arg())
    assert r.code == 2 and "not nftables rules" in r.err and "Traceback" not in r.err
    assert len(r.err.strip().splitlines()) == 1


def test_masquerade_across_modes_is_skipped_with_a_note_above_the_limit() -> None:
    text = NFT_TXT.read_text()
    edited = text.replace("chain external-AN52JS3S-default/hello-world/tcp/ {\n\t\tmeta mark set meta mark | "
                          "0x00004000 comment \"masquerade\"\n", "chain external-AN52JS3S-default/hello-world/tcp/ {\n")
    report = compare_sides(ipt(), nft(text=edited), masquerade_limit=29)
    assert real(report) == []
    assert any(n.startswith("masquerade per client kind not compared: 30 service ports") for n in report.notes)
    # narrowed to a namespace, the same ports are few enough again
    report = compare_sides(ipt(), nft(text=edited), masquerade_limit=29, namespace="default")
    assert [w for _, _, w in real(report)] == ["masquerade", "masquerade"]


def test_cli_masquerade_limit(cli, tmp_path) -> None:
    edited = tmp_path / "edited.nft"
    edited.write_text(NFT_TXT.read_text().replace(
        "chain external-AN52JS3S-default/hello-world/tcp/ {\n\t\tmeta mark set meta mark | 0x00004000 comment "
        "\"masquerade\"\n", "chain external-AN52JS3S-default/hello-world/tcp/ {\n"))
    r = cli("diff", _arg(), str(edited))
    assert r.code == 1 and "masquerade, node port from outside: masqueraded -> not masqueraded" in r.out
    r = cli("diff", _arg(), str(edited), "--masquerade-limit", "10")
    assert r.code == 0 and "note: masquerade per client kind not compared: 30 service ports" in r.out
