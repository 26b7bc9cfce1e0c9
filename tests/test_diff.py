"""svcinspect diff: real capture pairs, edited variants of one capture, and the CLI.

Every case compares what a user would read: which service ports differ, how,
and whether the sides count as different (the exit code)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace

import pytest

from svcinspect.diff import (LOCALHOST_NODEPORTS, NODEPORT_ADDRESSES_DEFAULT, Side, compare_sides,
                             iptables_side)
from svcinspect.model.netfilter import Family
from svcinspect.dataplane.iptables.parse import parse_dumps
from svcinspect.sources.files import TextSource
from conftest import IPT, KP

SEQ = IPT / "sequence"
STEP0 = SEQ / "step0-initial"
STEP1 = SEQ / "step1-hello-world-scaled-3-to-5"
STEP2 = SEQ / "step2-web-multi-deleted"
LEGACY = KP / "iptables-legacy"
PRIMARY = KP / "iptables-nodeport-addresses-primary"


def both(folder, v4="iptables-save.txt", v6="ip6tables-save.txt") -> list:
    return [folder / v4, folder / v6]


def side_of(paths, label="x") -> Side:
    return iptables_side(parse_dumps([TextSource(str(p), p.read_text()) for p in paths]), label)


def side_of_text(text: str, label="edited") -> Side:
    return iptables_side(parse_dumps([TextSource(label, text)]), label)


def changes(report) -> set[tuple]:
    """(service port, IPv, what) of every port change; ("node", IPv?, what) for node-wide ones."""
    out = {(p.service_port, int(p.family), c.what) for p in report.ports for c in p.changes}
    out |= {("node", c.what) for c in report.node}
    return out


# --- real capture pairs -------------------------------------------------------------------

@dataclass(frozen=True)
class PairCase:
    name: str
    a: list
    b: list
    different: bool
    expect: set        # exactly these (port, family, what) / ("node", what) changes


PAIRS = [
    PairCase("step0 -> step1: hello-world scaled", both(STEP0), both(STEP1), True,
             {("default/hello-world", 4, "endpoints")}),
    PairCase("step1 -> step2: web-multi deleted", both(STEP1), both(STEP2), True,
             {("default/web-multi:http", 4, "removed"), ("default/web-multi:metrics", 4, "removed")}),
    PairCase("step2 -> step0: web-multi back, hello-world 3", both(STEP2), both(STEP0), True,
             {("default/web-multi:http", 4, "added"), ("default/web-multi:metrics", 4, "added"),
              ("default/hello-world", 4, "endpoints")}),
    PairCase("iptables-nft vs iptables-legacy backend", both(IPT), both(LEGACY), False, set()),
    PairCase("without vs with counters", both(IPT),
             both(IPT, "iptables-save-counters.txt", "ip6tables-save-counters.txt"), False, set()),
    PairCase("a dump with itself", both(STEP1), both(STEP1), False, set()),
]


@pytest.mark.parametrize("case", PAIRS, ids=lambda c: c.name)
def test_real_pairs(case: PairCase) -> None:
    report = compare_sides(side_of(case.a, "A"), side_of(case.b, "B"))
    assert changes(report) == case.expect
    assert report.different is case.different
    assert report.families == (Family.V4, Family.V6)


def test_scaled_endpoints_are_exact_shares() -> None:
    report = compare_sides(side_of(both(STEP0)), side_of(both(STEP1)))
    (port,) = report.ports
    (c,) = port.changes
    assert c.message.splitlines()[0] == "endpoints: 3 -> 5 (1/3 -> 1/5 each)"
    assert set(c.before.values()) == {"1/3"} and len(c.before) == 3
    assert set(c.after.values()) == {"1/5"} and len(c.after) == 5
    assert set(c.after) - set(c.before) == {"10.244.2.11:8080", "10.244.2.12:8080"}
    assert "+ 10.244.2.11:8080 (1/5)" in c.message.splitlines()


def test_nodeport_addresses_primary() -> None:
    """--nodeport-addresses=primary: each node port is bound to the node IP only and
    no longer answers on 127.0.0.1; nothing else about the Services changes."""
    report = compare_sides(side_of(both(IPT)), side_of(both(PRIMARY)))
    whats = {c.what for p in report.ports for c in p.changes}
    assert whats == {"node-port-addresses", "node-port-localhost"}
    bound = {(p.service_port, int(p.family)): c.after for p in report.ports for c in p.changes
             if c.what == "node-port-addresses"}
    assert bound[("default/hello-world", 4)] == ["192.168.10.11"]
    assert bound[("default/dual-stack:http", 6)] == ["fd00:10:11::11"]
    assert all(c.before == "every local address" for p in report.ports for c in p.changes
               if c.what == "node-port-addresses")
    # a service without endpoints: its REJECT matches every local address in both captures
    assert "default/no-endpoints-np" not in {p.service_port for p in report.ports}
    localhost = {p.service_port for p in report.ports for c in p.changes if c.what == "node-port-localhost"}
    assert "default/hello-world" in localhost and all(
        (c.before, c.after) == (True, False) for p in report.ports for c in p.changes if c.what == "node-port-localhost")
    nodewide = {c.message for c in report.node if c.what == "nodeport-addresses"}
    assert nodewide == {"IPv4 node ports accepted on: every local address -> 192.168.10.11",
                        "IPv6 node ports accepted on: every local address -> fd00:10:11::11"}
    # the localnet block kubelet/kube-proxy adds for localhost node ports went too
    assert any("block incoming localnet" in c.message and c.after is None for c in report.node)
    assert report.different


# --- edits of one real capture: each kind of change, and noise that must be ignored ------------

BASE = (IPT / "iptables-save.txt").read_text()


def _edit(text: str, old: str, new: str, count: int = 1) -> str:
    assert text.count(old) >= count, old
    return text.replace(old, new) if count == 0 else text.replace(old, new, count)


def _sorted_rules(text: str) -> str:
    """-A lines of each table regrouped by chain name (order inside a chain kept)."""
    out, block = [], []
    for line in text.splitlines():
        if line.startswith("-A "):
            block.append(line)
            continue
        if block:
            out.extend(sorted(block, key=lambda l: l.split()[1]))
            block = []
        out.append(line)
    return "\n".join(out) + "\n"


def _rename_sep(text: str) -> str:
    """Give hello-world's first endpoint chain another hash (as if renamed)."""
    return text.replace("KUBE-SEP-TTFDDCQ6CXER73EZ", "KUBE-SEP-AAAAAAAAAAAAAAAA")


def _reprint_probabilities(text: str) -> str:
    """0.33333333349 (float32, as the kernel prints it) -> 0.3333333333 (as a person would)."""
    return text.replace("--probability 0.33333333349", "--probability 0.3333333333")


@dataclass(frozen=True)
class EditCase:
    name: str
    edit: object       # text -> text, applied to B
    expect: set


EDITS = [
    EditCase("noise: rule order", _sorted_rules, set()),
    EditCase("noise: endpoint chain renamed", _rename_sep, set()),
    EditCase("noise: probabilities printed otherwise", _reprint_probabilities, set()),
    EditCase("noise: comments removed from KUBE-SVC jumps",
             lambda t: re.sub(r'(-A KUBE-SVC-\S+) -m comment --comment "[^"]*" (-m statistic)', r"\1 \2", t), set()),
    EditCase("verdict: REJECT removed",
             lambda t: "\n".join(l for l in t.splitlines() if "default/no-endpoints:http has no endpoints" not in l)
             + "\n", {("default/no-endpoints:http", 4, "removed")}),
    EditCase("affinity timeout",
             lambda t: t.replace("--rcheck --seconds 600", "--rcheck --seconds 300"),
             {("default/affinity:http", 4, "affinity")}),
    EditCase("masquerade: external traffic no longer masqueraded",
             lambda t: "\n".join(l for l in t.splitlines()
                                 if "masquerade traffic for default/hello-world external" not in l) + "\n",
             {("default/hello-world", 4, "masquerade")}),
    EditCase("cluster IP moved", lambda t: t.replace("10.96.20.2/32", "10.96.20.22/32"),
             {("default/cascade-2ep:http", 4, "cluster-ip")}),
    EditCase("hook removed",
             lambda t: t.replace('-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES\n',
                                 ""), {("node", "hooks")}),
    EditCase("dangling endpoint chain",
             lambda t: "\n".join(l for l in t.splitlines() if "KUBE-SEP-PX4AO2FNO5XIUDDZ" not in l
                                 or "-j KUBE-SEP-PX4AO2FNO5XIUDDZ" in l) + "\n",
             {("default/cascade-2ep:http", 4, "warning"), ("node", "dangling")}),
    EditCase("node-ports jump no longer last", lambda t: _nodeports_first(t), {("node", "ordering")}),
    EditCase("another service port dispatched first for hello-world's cluster IP", lambda t: _shadow(t),
             {("default/cascade-1ep:http", 4, "cluster-ip"), ("node", "ordering")}),
]


def _shadow(text: str) -> str:
    """A rule for cascade-1ep's chain with hello-world's address, before every other dispatch rule."""
    first = text.index("-A KUBE-SERVICES -d 10.96.", text.index("*nat"))
    rule = ('-A KUBE-SERVICES -d 10.96.10.10/32 -p tcp -m comment --comment "default/cascade-1ep:http cluster IP" '
            '-m tcp --dport 80 -j KUBE-SVC-6VMOSWLKH7NZMS2W\n')
    return text[:first] + rule + text[first:]


def test_shadowed_dispatch_names_both_ports() -> None:
    report = compare_sides(side_of_text(BASE), side_of_text(_shadow(BASE)))
    (c,) = [c for c in report.node if c.what == "ordering"]
    assert c.message == ("IPv4 KUBE-SERVICES order only in B: 10.96.10.10:80/tcp: default/cascade-1ep:http comes "
                         "first, default/hello-world never matches")


def _nodeports_first(text: str) -> str:
    lines = text.splitlines()
    np = next(i for i, l in enumerate(lines) if l.startswith("-A KUBE-SERVICES") and l.endswith("-j KUBE-NODEPORTS")
              and "addrtype" in l)
    first = next(i for i, l in enumerate(lines) if l.startswith("-A KUBE-SERVICES") and "cluster IP" in l)
    line = lines.pop(np)
    lines.insert(first, line)
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("case", EDITS, ids=lambda c: c.name)
def test_edits(case: EditCase) -> None:
    report = compare_sides(side_of_text(BASE, "A"), side_of_text(case.edit(BASE), "B"))
    assert changes(report) == case.expect
    assert report.different is bool(case.expect)


def test_masquerade_change_names_the_client() -> None:
    edited = "\n".join(l for l in BASE.splitlines() if "masquerade traffic for default/hello-world external" not in l)
    report = compare_sides(side_of_text(BASE), side_of_text(edited + "\n"))
    msgs = {c.message for p in report.ports for c in p.changes}
    assert "masquerade, node port from outside: masqueraded -> not masqueraded" in msgs


def _drop_lines(text: str, *needles: str) -> str:
    return "\n".join(l for l in text.splitlines() if not any(n in l for n in needles)) + "\n"


STRAY_SEP = ":KUBE-SEP-ZZZZZZZZZZZZZZZZ - [0:0]\n"


def _after(text: str, marker: str, insert: str) -> str:
    i = text.index(marker) + len(marker)
    return text[:i] + insert + text[i:]


@pytest.mark.parametrize("name,edit,expect", [
    ("node port rule removed: EXT chain orphaned",
     lambda t: _drop_lines(t, '-A KUBE-NODEPORTS -p tcp -m comment --comment "default/hello-world" ',
                           '-A KUBE-NODEPORTS -d 127.0.0.0/8 -p tcp -m comment --comment "default/hello-world" '),
     {"nat KUBE-EXT of default/hello-world"}),
    ("cluster IP rule removed: SVC chain orphaned",
     lambda t: _drop_lines(t, '"default/cascade-2ep:http cluster IP" -m tcp --dport 80 -j KUBE-SVC-'),
     {"nat KUBE-SVC of default/cascade-2ep:http"}),
    ("stray endpoint chain in nat", lambda t: _after(t, "*nat\n", STRAY_SEP), {"nat KUBE-SEP-ZZZZZZZZZZZZZZZZ"}),
])
def test_orphans_agree_with_the_graph(name, edit, expect) -> None:
    """The model-based orphans are the per-service chains graph.find_unreferenced_chains finds."""
    from svcinspect import graph

    text = edit(BASE)
    rs = parse_dumps([TextSource("b", text)])
    by_graph = {(r.table, r.chain) for r in graph.find_unreferenced_chains(rs) if r.chain.startswith("KUBE-") and
                r.chain.rsplit("-", 1)[0] in ("KUBE-SVC", "KUBE-SVL", "KUBE-EXT", "KUBE-FW", "KUBE-XLB", "KUBE-SEP")}
    report = compare_sides(side_of_text(BASE), iptables_side(rs, "b"))
    found = {c.after for c in report.node if c.what == "orphans"}
    assert found == expect
    assert len(by_graph) == len(found)


def test_dangling_names_the_endpoint_not_the_hash() -> None:
    edited = "\n".join(l for l in BASE.splitlines() if "KUBE-SEP-PX4AO2FNO5XIUDDZ" not in l
                       or "-j KUBE-SEP-PX4AO2FNO5XIUDDZ" in l) + "\n"
    report = compare_sides(side_of_text(BASE), side_of_text(edited))
    (d,) = [c for c in report.node if c.what == "dangling"]
    assert d.message == ("IPv4 dangling jump only in B: nat KUBE-SVC of default/cascade-2ep:http -> "
                         "KUBE-SEP of default/cascade-2ep:http 10.244.2.211:8080")


def test_verdict_change_names_the_entry_point() -> None:
    edited = "\n".join(l for l in BASE.splitlines() if "lb-ranges:http traffic not accepted" not in l) + "\n"
    report = compare_sides(side_of_text(BASE), side_of_text(edited))
    assert [(p.service_port, c.what, c.message, c.node_local) for p in report.ports for c in p.changes] == [
        ("default/lb-ranges:http", "verdict", "load-balancer IP 192.0.2.100:80 (source ranges): DROP -> no DROP",
         False)]


def test_affinity_message() -> None:
    report = compare_sides(side_of_text(BASE), side_of_text(BASE.replace("--seconds 600", "--seconds 300")))
    (c,) = [c for p in report.ports for c in p.changes]
    assert c.message == "session affinity: ClientIP 600s -> ClientIP 300s"


# --- node-local differences (two nodes) -------------------------------------------------------

def _as_other_node(side: Side) -> Side:
    """Side with etp-local-has's local endpoint moved to another node's pod."""
    ports = []
    for sp in side.ports:
        if sp.name == "default/etp-local-has:http":
            (ep,) = sp.local_endpoints
            sp = replace(sp, local_endpoints=(replace(ep, endpoint="10.244.2.100:8080"),))
        ports.append(sp)
    return replace(side, ports=tuple(ports), label="node-b")


def test_local_endpoints_are_node_local() -> None:
    a = side_of(both(IPT))
    b = _as_other_node(a)
    report = compare_sides(a, b)
    (p,) = report.ports
    (c,) = p.changes
    assert (p.service_port, c.what, c.node_local) == ("default/etp-local-has:http", "local-endpoints", True)
    assert report.different                                # same node over time: a real change
    assert not compare_sides(a, b, across_nodes=True).different   # two nodes: by design


def test_each_nodes_own_nodeport_address_is_node_local() -> None:
    """Two nodes with --nodeport-addresses=primary bind node ports to their own IPs."""
    text = (PRIMARY / "iptables-save.txt").read_text()
    assert "192.168.10.11" in text
    a, b = side_of_text(text, "node-a"), side_of_text(text.replace("192.168.10.11", "192.168.10.12"), "node-b")
    report = compare_sides(a, b)
    all_changes = [c for p in report.ports for c in p.changes] + list(report.node)
    assert all_changes and all(c.node_local for c in all_changes)
    assert report.different and not compare_sides(a, b, across_nodes=True).different


SVL_LINE = ('-A KUBE-SVL-XZPXZFXLZG6VBDNQ -m comment --comment "default/etp-local-has:http -> 10.244.1.100:8080" '
            '-j KUBE-SEP-5EGCAAPWRQNZD7OP\n')


def _node_b_local_endpoints(text: str) -> str:
    """etp-local-has as node-b would write it: its two local endpoints, 1/2 each."""
    return _edit(text, SVL_LINE,
                 '-A KUBE-SVL-XZPXZFXLZG6VBDNQ -m comment --comment "default/etp-local-has:http -> 10.244.2.100:8080" '
                 '-m statistic --mode random --probability 0.50000000000 -j KUBE-SEP-JQTQRMXZWWBFXLBL\n'
                 '-A KUBE-SVL-XZPXZFXLZG6VBDNQ -m comment --comment "default/etp-local-has:http -> 10.244.2.101:8080" '
                 '-j KUBE-SEP-NW247EA6UNOLOK7Z\n')


def _node_without_local_endpoints(text: str) -> str:
    """etp-local-has on a node with none of its endpoints: no SVL chain, a DROP instead."""
    text = _edit(text, SVL_LINE, "")
    text = _edit(text, ":KUBE-SVL-XZPXZFXLZG6VBDNQ - [0:0]\n", "")
    text = _edit(text, "-A KUBE-EXT-XZPXZFXLZG6VBDNQ -j KUBE-SVL-XZPXZFXLZG6VBDNQ\n", "")
    drop = ('-A KUBE-EXTERNAL-SERVICES -p tcp -m comment --comment "default/etp-local-has:http has no local '
            'endpoints" -m addrtype --dst-type LOCAL -m tcp --dport 31613 -j DROP\n'
            '-A KUBE-EXTERNAL-SERVICES -d 192.0.2.101/32 -p tcp -m comment --comment "default/etp-local-has:http has '
            'no local endpoints" -m tcp --dport 80 -j DROP\n')
    return _edit(text, "-A KUBE-EXTERNAL-SERVICES ", drop + "-A KUBE-EXTERNAL-SERVICES ")


@pytest.mark.parametrize("edit,whats", [
    (_node_b_local_endpoints, {"local-endpoints"}),
    (_node_without_local_endpoints, {"local-endpoints", "verdict", "masquerade"}),
], ids=["other local endpoints", "no local endpoint"])
def test_two_nodes_of_an_etp_local_service(edit, whats) -> None:
    a, b = side_of_text(BASE, "node-a"), side_of_text(edit(BASE), "node-b")
    report = compare_sides(a, b)
    got = [(p.service_port, c.what, c.node_local) for p in report.ports for c in p.changes]
    assert {w for _, w, _ in got} == whats
    assert all(name == "default/etp-local-has:http" and node_local for name, _, node_local in got), got
    assert report.different and not compare_sides(a, b, across_nodes=True).different


def test_cluster_endpoints_are_not_node_local() -> None:
    a = side_of(both(STEP0))
    report = compare_sides(a, side_of(both(STEP1)), across_nodes=True)
    assert report.different and not any(c.node_local for p in report.ports for c in p.changes)


# --- traffic policies (models edited as kube-proxy would write them) ------------------------------

def _with_port(side: Side, name: str, edit) -> Side:
    return replace(side, ports=tuple(edit(sp) if sp.name == name else sp for sp in side.ports))


def test_external_policy_local() -> None:
    a = side_of(both(IPT))

    def local(sp):
        return replace(sp, local_endpoints=sp.endpoints[:1], chains={**sp.chains, "svl": "KUBE-SVL-X"})

    report = compare_sides(a, _with_port(a, "default/hello-world", local))
    got = {(c.what, c.message, c.node_local) for p in report.ports for c in p.changes}
    assert ("policy", "externalTrafficPolicy: Cluster -> Local", False) in got
    assert any(w == "local-endpoints" and nl for w, _, nl in got)
    assert compare_sides(a, _with_port(a, "default/hello-world", local), across_nodes=True).different


def test_internal_policy_local() -> None:
    a = side_of(both(IPT))

    def local(sp):
        entries = tuple(replace(e, chain="KUBE-SVL-" + sp.key) if e.kind == "clusterIP" else e for e in sp.entries)
        return replace(sp, entries=entries)

    report = compare_sides(a, _with_port(a, "default/cascade-2ep:http", local))
    assert [(p.service_port, c.message) for p in report.ports for c in p.changes] == [
        ("default/cascade-2ep:http", "internalTrafficPolicy: Cluster -> Local")]


def test_real_local_policies_read_from_the_rules() -> None:
    from svcinspect.diff import _policies

    ports = {sp.name: sp for sp in side_of(both(IPT)).ports if sp.family is Family.V4}
    assert _policies(ports["default/etp-local-has:http"])["externalTrafficPolicy"] == "Local"
    assert _policies(ports["default/etp-local-none:http"])["externalTrafficPolicy"] == "Local"
    assert _policies(ports["default/hello-world"])["externalTrafficPolicy"] == "Cluster"
    assert _policies(ports["default/itp-local-has:http"])["internalTrafficPolicy"] == "Local"
    assert _policies(ports["default/itp-local-none:http"])["internalTrafficPolicy"] == "Local"
    assert _policies(ports["default/cascade-2ep:http"]) == {"internalTrafficPolicy": "Cluster"}
    assert _policies(ports["default/no-endpoints:http"])["internalTrafficPolicy"] == "unknown"


# --- modes: the expected-differences hook -------------------------------------------------------

def _as_nftables(side: Side) -> Side:
    """What nftables mode of the same node shows for the same Services: no localhost
    node ports, node ports on the primary IPs (its --nodeport-addresses default)."""
    ports = tuple(replace(sp, entries=tuple(replace(e, localhost=False) for e in sp.entries)) for sp in side.ports)
    facts = replace(side.facts, nodeport_addresses={Family.V4: ("192.168.10.11",), Family.V6: ("fd00:10:11::11",)},
                    hooks=frozenset(), node_rules=frozenset())
    return Side("nft", "nftables", ports, facts)


def test_mode_differences_are_named_and_not_counted() -> None:
    a = side_of(both(IPT))
    report = compare_sides(a, _as_nftables(a))
    all_changes = [c for p in report.ports for c in p.changes] + list(report.node)
    assert all_changes and all(c.expected for c in all_changes)
    assert {c.expected for c in all_changes if c.what == "node-port-localhost"} == {LOCALHOST_NODEPORTS}
    assert {c.expected for c in all_changes if "addresses" in c.what} == {NODEPORT_ADDRESSES_DEFAULT}
    assert not report.different


def test_mode_diff_still_reports_real_differences() -> None:
    a = side_of(both(STEP0))
    b = _as_nftables(side_of(both(STEP1)))
    report = compare_sides(a, b)
    real = [(p.service_port, c.what) for p in report.ports for c in p.changes if c.expected is None]
    assert real == [("default/hello-world", "endpoints")]
    assert report.different


def test_unknown_dataplane_pair_counts_everything() -> None:
    a = side_of(both(IPT))
    b = replace(_as_nftables(a), dataplane="ipvs")
    report = compare_sides(a, b)
    assert report.different and any("no known expected differences" in n for n in report.notes)


# --- families -----------------------------------------------------------------------------------

def test_family_on_one_side_only_is_a_note_not_a_difference() -> None:
    report = compare_sides(side_of(both(STEP0)), side_of([STEP0 / "iptables-save.txt"]))
    assert not report.different and report.families == (Family.V4,)
    assert any("IPv6 rules are only in A" in n for n in report.notes)


def test_ipv6_changes_are_seen() -> None:
    v6 = (STEP0 / "ip6tables-save.txt").read_text()
    assert v6.count("--probability 0.50000000000") >= 1
    edited = v6.replace("fd00:10:96::131/128", "fd00:10:96::132/128")
    report = compare_sides(iptables_side(parse_dumps([TextSource("a", v6)]), "a"),
                           iptables_side(parse_dumps([TextSource("b", edited)]), "b"))
    assert changes(report) == {("default/v6-only:http", 6, "cluster-ip")}


WILD_DUMPS = sorted(p for p in (KP.parent / "wild").glob("*.rules") if not p.name.startswith("043-"))


@pytest.mark.parametrize("path", WILD_DUMPS, ids=lambda p: p.name[:3])
def test_wild_dump_with_itself_is_the_same(cli, path) -> None:
    """Excerpts, old releases, no comments, pasted prompts: nothing differs from itself."""
    r = cli("diff", str(path), str(path))
    assert r.code == 0, r.out
    assert "same:" in r.out and "Traceback" not in r.err


# --- the CLI ------------------------------------------------------------------------------------

def _arg(paths) -> str:
    return ",".join(str(p) for p in paths)


def test_cli_exit_codes_and_text(cli) -> None:
    r = cli("diff", _arg(both(STEP0)), _arg(both(STEP1)))
    assert r.code == 1
    assert "~ default/hello-world (tcp, IPv4)\n    endpoints: 3 -> 5 (1/3 -> 1/5 each)\n" in r.out
    assert r.out.rstrip().endswith("different: 1 changed of 30 service port(s) (IPv4, IPv6)")
    r = cli("diff", _arg(both(IPT)), _arg(both(LEGACY)))
    assert r.code == 0 and "same: 30 service port(s) behave alike (IPv4, IPv6)" in r.out


@pytest.mark.parametrize("args,message", [
    (("/nonexistent/rules", str(STEP0 / "iptables-save.txt")), "/nonexistent/rules: no such file"),
    (("-", "-"), "only one side can be read from stdin"),
    ((str(KP / "iptables" / "nft-list-ruleset-iptables-nft-backend.txt"), str(STEP0 / "iptables-save.txt")),
     "nftables ruleset: these are iptables rules"),
    ((str(STEP0 / "iptables-save.txt"), str(STEP1 / "iptables-save.txt"), "--netns-b", "x"), "apply to a side read live"),
])
def test_cli_bad_input_is_exit_2(cli, args, message) -> None:
    r = cli("diff", *args)
    assert r.code == 2 and message in r.err and "Traceback" not in r.err
    assert len(r.err.strip().splitlines()) == 1


def test_cli_stdin_side(cli) -> None:
    r = cli("diff", "-", str(STEP1 / "iptables-save.txt"), stdin=(STEP0 / "iptables-save.txt").read_text())
    assert r.code == 1 and "1/3 -> 1/5 each" in r.out


def test_dump_round_trip_is_empty(cli, tmp_path) -> None:
    for src in (both(IPT), both(IPT, "iptables-save-counters.txt", "ip6tables-save-counters.txt")):
        r = cli("dump", *[x for p in src for x in ("--rules", str(p))])
        assert r.code == 0
        out = tmp_path / "dumped.txt"
        out.write_text(r.out)
        r = cli("diff", _arg(src), str(out), "-o", "json")
        doc = json.loads(r.out)
        assert r.code == 0, r.out
        assert doc["servicePorts"] == [] and doc["nodeWide"] == [] and doc["families"] == ["IPv4", "IPv6"]


def test_cli_json_has_stable_keys(cli) -> None:
    r = cli("diff", _arg(both(STEP1)), _arg(both(STEP2)), "-o", "json")
    doc = json.loads(r.out)
    assert r.code == 1
    assert list(doc) == ["schema", "command", "a", "b", "different", "acrossNodes", "families", "compared",
                         "summary", "servicePorts", "nodeWide", "notes", "diagnostics"]
    assert [(p["servicePort"], p["status"]) for p in doc["servicePorts"]] == [
        ("default/web-multi:http", "removed"), ("default/web-multi:metrics", "removed")]
    assert list(doc["servicePorts"][0]["changes"][0]) == ["what", "message", "before", "after", "nodeLocal",
                                                          "expected"]
    assert doc["summary"]["removed"] == 2 and doc["different"] is True


def test_cli_objects_say_which_side_matches(cli) -> None:
    r = cli("diff", _arg(both(STEP0)), _arg(both(STEP2)), "--objects", str(STEP2 / "objects.json"),
            "--node", "node-a", "-o", "json")
    doc = json.loads(r.out)
    assert {p["servicePort"]: p["objects"] for p in doc["servicePorts"]} == {
        "default/hello-world": "B", "default/web-multi:http": "B", "default/web-multi:metrics": "B"}
    r = cli("diff", _arg(both(STEP0)), _arg(both(STEP2)), "--objects", str(STEP0 / "objects.json"),
            "--node", "node-a")
    assert "~ default/hello-world (tcp, IPv4)  [API matches: A]" in r.out


def test_cli_namespace_scope(cli) -> None:
    r = cli("diff", _arg(both(STEP1)), _arg(both(STEP2)), "-n", "kube-system")
    assert r.code == 0 and "- default/web-multi" not in r.out
    assert "same: 3 service port(s)" in r.out


def test_cli_family_option(cli) -> None:
    r = cli("diff", _arg(both(STEP0)), _arg(both(STEP1)), "--family", "6")
    assert r.code == 0 and "(IPv6)" in r.out


# --- rendered text (golden files; SVCINSPECT_UPDATE_GOLDEN=1 rewrites them) ----------------------

def _rel(paths) -> str:
    return ",".join(str(p.relative_to(KP.parent.parent)) for p in paths)


def _golden_report(name: str):
    from svcinspect.check import check_rules
    from svcinspect.diff import with_objects
    from svcinspect.parse.kube_objects import parse_objects

    if name == "diff-step0-step1.txt":
        return compare_sides(side_of(both(STEP0), _rel(both(STEP0))), side_of(both(STEP1), _rel(both(STEP1))))
    if name == "diff-step0-step2-objects.txt":
        ra = parse_dumps([TextSource("a", p.read_text()) for p in both(STEP0)])
        rb = parse_dumps([TextSource("b", p.read_text()) for p in both(STEP2)])
        state = parse_objects((STEP2 / "objects.json").read_text(), "objects.json")
        report = compare_sides(iptables_side(ra, _rel(both(STEP0))), iptables_side(rb, _rel(both(STEP2))))
        return with_objects(report, check_rules(ra, state, "node-a").findings, check_rules(rb, state, "node-a").findings)
    if name == "diff-nodeport-addresses-primary.txt":
        return compare_sides(side_of(both(IPT), _rel(both(IPT))), side_of(both(PRIMARY), _rel(both(PRIMARY))))
    if name == "diff-modes-synthetic.txt":
        a = side_of(both(STEP0), _rel(both(STEP0)))
        return compare_sides(a, _as_nftables(side_of(both(STEP1), "nftables (synthetic: step1 as nftables mode)")))
    if name == "diff-two-nodes.txt":
        a = side_of(both(IPT), "node-a")
        return compare_sides(a, _as_other_node(a), across_nodes=True)
    raise KeyError(name)


@pytest.mark.parametrize("name", ["diff-step0-step1.txt", "diff-step0-step2-objects.txt",
                                  "diff-nodeport-addresses-primary.txt", "diff-modes-synthetic.txt",
                                  "diff-two-nodes.txt"])
def test_text_golden(name: str) -> None:
    from conftest import check_golden
    from svcinspect.render.diff import render_diff_text

    check_golden(name, render_diff_text(_golden_report(name)))
