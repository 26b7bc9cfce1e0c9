"""``diff``: what changed between two rule sets, in Service terms.

The comparison, :func:`compare_sides`, is a pure function of two :class:`Side`
values: each is a list of service-port models (``services.ServicePortRules``,
whichever dataplane produced them), node-wide facts (:class:`NodeFacts`) and a
dataplane name. It matches service ports by ``namespace/name:port`` + protocol +
family (never by chain hash), and reports, per service port: added / removed,
cluster IP, node port (and where it is bound), external / load-balancer IPs,
source ranges, health-check node port, endpoints with their exact shares before
and after, traffic policies, affinity, REJECT/DROP verdicts and masquerade per
client kind; node-wide: hooks, shared kube-proxy rules, where node ports are
bound, KUBE-SERVICES ordering that changes behaviour, dangling jumps and orphan
chains present on one side only.

Ignored on purpose (noise): counters, line order, chain-name hashes (a port is
its name; an endpoint is its ``IP:port``), comments, and probabilities printed
differently for the same exact share.

What differs *by design* is labelled, not hidden:

- ``node_local``: local-endpoint sets of ``externalTrafficPolicy``/
  ``internalTrafficPolicy: Local`` ports (and the DROP that replaces them when
  a node has none) differ between two nodes of one cluster;
- ``expected``: a difference the two dataplanes are known to make for the same
  Services (a per-dataplane-pair hook, :data:`EXPECTED_DIFFERENCES`), e.g.
  iptables vs nftables mode: node ports on 127.0.0.1, the
  ``--nodeport-addresses`` default, external vs load-balancer IPs, health-check
  node ports (and a note on ``cluster-ips-check``).

The iptables adapter (:func:`iptables_side`) builds a :class:`Side` from a
``Ruleset``, the nftables one (:func:`nftables_side`) from an ``NftRuleset``;
another dataplane supplies its own adapter producing the same types, and
:func:`compare_sides` does not change.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from fractions import Fraction
from typing import Any

from svcinspect.dataplane.iptables.kubeproxy import ChainKind, chain_hash, classify_chain, parse_comment
from svcinspect.model.netfilter import Family, Ruleset
from svcinspect.dataplane.iptables.parse import raw_comment, raw_target
from svcinspect.model.service import EndpointShare, EntryKind, ServicePortRules

# --- the dataplane-neutral inputs ----------------------------------------------------


@dataclass(frozen=True)
class NodeFacts:
    """What one side's rules say about the node as a whole, per family.

    Strings are descriptions that do not depend on chain-name hashes, so two
    sides can be compared as sets. ``nodeport_addresses``: family -> the
    addresses node ports are bound to, ``None`` for every local address, absent
    when no rule sends traffic to node ports at all."""

    families: tuple[Family, ...]
    hooks: frozenset[tuple[Family, str]] = frozenset()          # built-in chain -> kube-proxy chain jumps
    node_rules: frozenset[tuple[Family, str]] = frozenset()     # shared (not per-service) kube-proxy rules
    nodeport_addresses: Mapping[Family, tuple[str, ...] | None] = field(default_factory=dict)
    ordering: frozenset[tuple[Family, str]] = frozenset()       # dispatch-order facts that change behaviour
    dangling: frozenset[tuple[Family, str]] = frozenset()
    orphans: frozenset[tuple[Family, str]] = frozenset()


# Masquerade per client kind of one service port: "cluster IP, from a pod" -> "masqueraded".
Masquerade = Mapping[str, str]


@dataclass(frozen=True)
class Side:
    """One side of a comparison. ``masq_signature(sp)``: a cheap value that is
    equal on two sides of the same dataplane when their masquerade behaviour for
    ``sp`` cannot differ (None: always compute); ``masquerade(sp)``: masquerade
    per client kind (None: this dataplane cannot tell)."""

    label: str
    dataplane: str
    ports: tuple[ServicePortRules, ...]
    facts: NodeFacts
    masq_signature: Callable[[ServicePortRules], Hashable] | None = None
    masquerade: Callable[[ServicePortRules], Masquerade] | None = None


# --- the result -------------------------------------------------------------------------


@dataclass(frozen=True)
class Change:
    """One difference. ``what`` is a stable code (``endpoints``, ``cluster-ip``,
    ``node-port``, ...); ``before``/``after`` are JSON-ready values."""

    what: str
    message: str
    before: Any = None
    after: Any = None
    node_local: bool = False       # differs between nodes by design (Local traffic policies)
    expected: str | None = None    # why the two dataplanes are expected to differ here


@dataclass(frozen=True)
class PortDiff:
    service_port: str              # "ns/name:port" as kube-proxy writes it (or "<no comment: HASH>")
    protocol: str | None
    family: Family
    status: str                    # "added", "removed", "changed"
    changes: tuple[Change, ...]
    objects: str | None = None     # with --objects: which side matches the API ("A", "B", "both", "neither")
    objects_detail: tuple[str, ...] = ()


@dataclass(frozen=True)
class DiffReport:
    a: str
    b: str
    a_dataplane: str
    b_dataplane: str
    compared: int                  # service ports matched or present on one side
    families: tuple[Family, ...]
    ports: tuple[PortDiff, ...]
    node: tuple[Change, ...]
    notes: tuple[str, ...] = ()
    across_nodes: bool = False
    objects_compared: bool = False

    def counts(self, change: Change) -> bool:
        """Does this change make the sides different (exit 1)?"""
        if change.expected is not None:
            return False
        return not (change.node_local and self.across_nodes)

    @property
    def different(self) -> bool:
        return any(self.counts(c) for p in self.ports for c in p.changes) or any(self.counts(c) for c in self.node)

    def summary(self) -> dict[str, int]:
        out = {"added": 0, "removed": 0, "changed": 0, "nodeLocal": 0, "expected": 0, "nodeWide": 0}
        for p in self.ports:
            if any(self.counts(c) for c in p.changes):
                out[p.status] += 1
            out["nodeLocal"] += sum(1 for c in p.changes if c.node_local and c.expected is None)
            out["expected"] += sum(1 for c in p.changes if c.expected is not None)
        out["nodeWide"] = sum(1 for c in self.node if c.expected is None)
        out["expected"] += sum(1 for c in self.node if c.expected is not None)
        return out


# --- expected differences between dataplanes -------------------------------------------

LOCALHOST_NODEPORTS = ("nftables mode never accepts node-port connections to 127.0.0.1 (iptables mode does, "
                       "through route_localnet, unless --nodeport-addresses excludes loopback)")
NODEPORT_ADDRESSES_DEFAULT = ("--nodeport-addresses defaults to the node's primary IPs in nftables mode and to every "
                              "local address in iptables mode")


HEALTH_CHECK_NO_RULE = ("nftables mode writes no rule for a health-check node port (iptables mode writes an explicit "
                        "ACCEPT in filter), and nothing there drops it either")
EXTERNAL_VS_LB = ("nftables mode's service-ips does not say whether an address is an external IP or a load-balancer "
                  "IP (only one with source ranges is known to be a load-balancer IP); the addresses are the same")


def _iptables_vs_nftables(change: Change, a: Side, b: Side, pa: ServicePortRules | None = None,
                          pb: ServicePortRules | None = None) -> str | None:
    if change.what in ("external-ip", "load-balancer-ip") and pa is not None and pb is not None:
        ipt, nft = (pa, pb) if a.dataplane == "iptables" else (pb, pa)
        ipt_lb, nft_lb = set(_addrs(ipt, EntryKind.LOAD_BALANCER)), set(_addrs(nft, EntryKind.LOAD_BALANCER))
        same = ipt_lb | set(_addrs(ipt, EntryKind.EXTERNAL_IP)) == nft_lb | set(_addrs(nft, EntryKind.EXTERNAL_IP))
        return EXTERNAL_VS_LB if same and nft_lb <= ipt_lb else None
    if change.what == "health-check-node-port":
        ipt, nft = (change.before, change.after) if a.dataplane == "iptables" else (change.after, change.before)
        return HEALTH_CHECK_NO_RULE if ipt and not nft else None
    if change.what == "node-port-localhost":
        ipt = change.before if a.dataplane == "iptables" else change.after
        return LOCALHOST_NODEPORTS if ipt is True else None
    if change.what in ("node-port-addresses", "nodeport-addresses"):
        ipt = change.before if a.dataplane == "iptables" else change.after
        return NODEPORT_ADDRESSES_DEFAULT if ipt == "every local address" else None
    return None


CLUSTER_IPS_CHECK = ("nftables mode rejects other ports and protocols of a cluster IP and drops unallocated IPs of "
                     "the service CIDR (cluster-ips-check); iptables mode lets them pass untouched")


def _iptables_vs_nftables_notes(a: Side, b: Side) -> list[str]:
    """Mode differences that are not about any one service port, when the nftables side shows them."""
    nft = a if a.dataplane == "nftables" else b
    if any(text.startswith("cluster-ips-check: ") and "reject" in text for _, text in nft.facts.node_rules):
        return [f"expected: {CLUSTER_IPS_CHECK}"]
    return []


# Per pair of dataplanes: a function naming why a change is expected (None: a real difference).
# It is given the change, both sides and, for a service port's change, both ports.
EXPECTED_DIFFERENCES: dict[frozenset[str], Callable[..., str | None]] = {
    frozenset({"iptables", "nftables"}): _iptables_vs_nftables,
}
# Per pair of dataplanes: notes on node-wide behaviour the modes are known to differ in.
EXPECTED_NOTES: dict[frozenset[str], Callable[[Side, Side], list[str]]] = {
    frozenset({"iptables", "nftables"}): _iptables_vs_nftables_notes,
}


# --- the comparison ------------------------------------------------------------------------


def port_identity(sp: ServicePortRules) -> tuple[str, str, int]:
    """How a service port is matched across sides: name + protocol + family."""
    return (sp.name or f"<no comment: {sp.key}>", sp.protocol or "?", int(sp.family))


# Across dataplanes no cheap signature tells which ports' masquerade could differ,
# so every matched port is simulated on both sides: each simulation walks the
# dispatch, so the cost grows with ports x ports. Above this many matched ports the
# comparison is skipped, with a note (``-n NAMESPACE`` narrows it).
MASQUERADE_ACROSS_MODES_LIMIT = 1000


def compare_sides(a: Side, b: Side, *, across_nodes: bool = False, namespace: str | None = None,
                  masquerade_limit: int = MASQUERADE_ACROSS_MODES_LIMIT) -> DiffReport:
    """Everything that differs between ``a`` and ``b`` in Service terms.

    ``across_nodes``: the sides are two nodes of one cluster, so node-local
    differences (Local traffic policies) are expected and do not make the sides
    different. ``namespace``: only service ports of this namespace (node-wide
    facts are still compared). Families present on one side only are not
    compared (a note says so)."""
    notes: list[str] = []
    families = tuple(f for f in a.facts.families if f in b.facts.families)
    for f in sorted(set(a.facts.families) ^ set(b.facts.families)):
        only, other = ("A", "B") if f in a.facts.families else ("B", "A")
        notes.append(f"IPv{int(f)} rules are only in {only}: IPv{int(f)} not compared (give {f.save_command} "
                     f"output for {other} too)")
    same_plane = a.dataplane == b.dataplane
    hook = None if same_plane else EXPECTED_DIFFERENCES.get(frozenset({a.dataplane, b.dataplane}))
    if not same_plane and hook is None:
        notes.append(f"no known expected differences between {a.dataplane} and {b.dataplane} mode: every difference "
                     f"is reported as real")

    if not same_plane and frozenset({a.dataplane, b.dataplane}) in EXPECTED_NOTES:
        notes.extend(EXPECTED_NOTES[frozenset({a.dataplane, b.dataplane})](a, b))

    def label(c: Change, pa: ServicePortRules | None = None, pb: ServicePortRules | None = None) -> Change:
        if hook is None:
            return c
        why = hook(c, a, b, pa, pb)
        return replace(c, expected=why) if why else c

    def wanted(sp: ServicePortRules) -> bool:
        return sp.family in families and (namespace is None or (sp.name or "").startswith(namespace + "/"))

    by_a = {port_identity(sp): sp for sp in a.ports if wanted(sp)}
    by_b = {port_identity(sp): sp for sp in b.ports if wanted(sp)}
    matched = len(by_a.keys() & by_b.keys())
    if not same_plane and matched > masquerade_limit and a.masquerade is not None and b.masquerade is not None:
        notes.append(f"masquerade per client kind not compared: {matched} service ports matched across modes, more "
                     f"than {masquerade_limit} (each mode's evaluator would simulate every one); narrow with "
                     f"-n NAMESPACE or raise --masquerade-limit to compare it")
        a, b = replace(a, masquerade=None), replace(b, masquerade=None)
    out: list[PortDiff] = []
    for ident in sorted(by_a.keys() | by_b.keys(), key=lambda i: (i[0], i[2], i[1])):
        pa, pb = by_a.get(ident), by_b.get(ident)
        if pa is None or pb is None:
            sp = pa or pb
            status = "removed" if pb is None else "added"
            node_local = _only_local(sp)
            c = Change(status, f"{status} ({_describe(sp, (a if pb is None else b).facts)})",
                       _brief(sp) if pb is None else None, _brief(sp) if pa is None else None, node_local=node_local)
            out.append(PortDiff(ident[0], sp.protocol, sp.family, status, (label(c),)))
            continue
        changes = [label(c, pa, pb) for c in _compare_port(pa, pb, a, b)]
        if changes:
            out.append(PortDiff(ident[0], pa.protocol, pa.family, "changed", tuple(changes)))
    node = [label(c) for c in _compare_facts(a.facts, b.facts, families, same_plane, notes)]
    return DiffReport(a.label, b.label, a.dataplane, b.dataplane, len(by_a.keys() | by_b.keys()), families,
                      tuple(out), tuple(node), tuple(notes), across_nodes)


def _only_local(sp: ServicePortRules) -> bool:
    """A port whose rules here are only a Local policy's (no cluster endpoints, a
    local-endpoint chain): another node may well have none."""
    return not sp.endpoints and bool(sp.local_endpoints)


# --- one service port -----------------------------------------------------------------------

_KIND_WORDS = {EntryKind.CLUSTER_IP: "cluster IP", EntryKind.EXTERNAL_IP: "external IP",
               EntryKind.LOAD_BALANCER: "load-balancer IP", EntryKind.NODE_PORT: "node port",
               EntryKind.HEALTH_CHECK: "health-check node port"}


def _addrs(sp: ServicePortRules, kind: str) -> list[str]:
    out = set()
    lb = {e.address for e in sp.entries if e.kind == EntryKind.LOAD_BALANCER and e.table == "nat"}
    for e in sp.entries:
        if e.kind == kind and e.address is not None:
            if kind == EntryKind.EXTERNAL_IP and e.table == "filter" and e.address in lb:
                continue  # a KUBE-EXTERNAL-SERVICES DROP/REJECT for the load-balancer IP, not an external IP
            out.add(_hostport(e.address, e.port))
    return sorted(out)


def _hostport(address: str, port: int | None) -> str:
    if port is None:
        return address
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def _node_ports(sp: ServicePortRules, facts: NodeFacts) -> dict[int, dict[str, Any]]:
    """node port -> where it is bound ("every local address" or addresses) and localhost."""
    out: dict[int, dict[str, Any]] = {}
    default = facts.nodeport_addresses.get(sp.family, None)
    nat_ports = set()
    for e in sp.entries:
        if e.kind != EntryKind.NODE_PORT or e.port is None:
            continue
        d = out.setdefault(e.port, {"addresses": None, "localhost": False})
        if e.table == "nat":
            nat_ports.add(e.port)
            d["localhost"] = d["localhost"] or e.localhost
        if e.address is not None:
            d["addresses"] = sorted(set(d["addresses"] or ()) | {e.address})
    for port, d in out.items():
        if d["addresses"] is None:
            # Forwarded node ports are reached through the node-ports jump (bound by
            # --nodeport-addresses); a filter REJECT/DROP matches every local address.
            d["addresses"] = list(default) if default is not None and port in nat_ports else "every local address"
    return out


def _health_checks(sp: ServicePortRules) -> list[int]:
    return sorted({e.port for e in sp.entries if e.kind == EntryKind.HEALTH_CHECK and e.port is not None})


_VERDICT_WORDS = {"reject": "REJECT", "drop": "DROP"}


def _verdicts(sp: ServicePortRules) -> dict[str, str]:
    """"cluster IP 10.96.0.5:80" -> "REJECT": the filter rules that refuse traffic."""
    out: dict[str, str] = {}
    lb = {e.address for e in sp.entries if e.kind == EntryKind.LOAD_BALANCER and e.table == "nat"}
    for e in sp.entries:
        if e.table != "filter" or e.verdict not in _VERDICT_WORDS:
            continue
        kind = EntryKind.LOAD_BALANCER if e.kind == EntryKind.EXTERNAL_IP and e.address in lb else e.kind
        where = _KIND_WORDS.get(kind, kind)
        if e.kind == EntryKind.NODE_PORT:
            where += f" {e.port}"
        elif e.address is not None:
            where += " " + _hostport(e.address, e.port)
        if e.kind == EntryKind.LOAD_BALANCER and e.note and "not accepted" in e.note.lower():
            where += " (source ranges)"
        out[where] = _VERDICT_WORDS[e.verdict]
    return out


def _shares(eps: Iterable[EndpointShare]) -> dict[str, Fraction]:
    """endpoint -> its exact share (an endpoint listed twice gets both shares)."""
    out: dict[str, Fraction] = {}
    for e in eps:
        k = e.endpoint or f"<{e.sep}: no DNAT>"
        prev = out.get(k)
        out[k] = e.share if prev is None else prev + e.share
    return out


def _quick_key(sp: ServicePortRules) -> tuple:
    """Everything _compare_port looks at, in model order: equal keys need no
    comparison (most ports of two dumps of one cluster)."""
    return (tuple((e.kind, e.address, e.port, e.protocol, e.table, e.verdict, e.localhost, _to_svl(sp, e.chain))
                  for e in sp.entries),
            tuple((e.endpoint, e.sep, e.share) for e in sp.endpoints),
            None if sp.local_endpoints is None else tuple((e.endpoint, e.share) for e in sp.local_endpoints),
            sp.affinity_seconds, sp.source_ranges, tuple(sorted(sp.chains)), sp.warnings)


def _to_svl(sp: ServicePortRules, chain: str | None) -> bool:
    """Does an entry lead to the port's local-endpoints chain (iptables KUBE-SVL-, nftables local-)?"""
    return chain is not None and (chain.startswith("KUBE-SVL-") or chain == sp.chains.get("svl"))


def _policies(sp: ServicePortRules) -> dict[str, str]:
    """internalTrafficPolicy / externalTrafficPolicy as the rules show them."""
    internal = "Cluster"
    cips = [e for e in sp.entries if e.kind == EntryKind.CLUSTER_IP]
    if any(_to_svl(sp, e.chain) for e in cips) or any(
            e.verdict == "drop" for e in cips if e.table == "filter"):
        internal = "Local"
    elif not cips or (not sp.endpoints and not sp.local_endpoints):
        internal = "unknown"
    out = {"internalTrafficPolicy": internal}
    external_entries = [e for e in sp.entries if e.kind in (EntryKind.NODE_PORT, EntryKind.EXTERNAL_IP,
                                                             EntryKind.LOAD_BALANCER)]
    if external_entries:
        if "xlb" in sp.chains or (sp.local_endpoints is not None and internal != "Local") or any(
                e.verdict == "drop" and e.table == "filter" and e.kind != EntryKind.LOAD_BALANCER
                for e in external_entries) or _health_checks(sp):
            external = "Local"
        elif not sp.endpoints and not sp.local_endpoints:
            external = "unknown"
        else:
            external = "Cluster"
        out["externalTrafficPolicy"] = external
    return out


def _fmt_share(s: Fraction) -> str:
    return "all" if s == 1 else str(s)


def _endpoint_change(what: str, before: dict[str, Fraction], after: dict[str, Fraction],
                     node_local: bool) -> Change | None:
    if before == after:
        return None
    added = sorted(after.keys() - before.keys())
    removed = sorted(before.keys() - after.keys())
    kept = sorted(before.keys() & after.keys())
    moved = [k for k in kept if before[k] != after[k]]
    title = "local endpoints" if what == "local-endpoints" else "endpoints"
    parts = [f"{title}: {len(before)} -> {len(after)}"]
    sb, sa = set(before.values()), set(after.values())
    if len(sb) <= 1 and len(sa) <= 1 and moved:
        parts[0] += f" ({_fmt_share(next(iter(sb)))} -> {_fmt_share(next(iter(sa)))} each)"
        moved_text = []
    else:
        moved_text = [f"~ {k} {_fmt_share(before[k])} -> {_fmt_share(after[k])}" for k in moved]
    lines = [f"+ {k} ({_fmt_share(after[k])})" for k in added] + [f"- {k} (was {_fmt_share(before[k])})"
                                                                  for k in removed] + moved_text
    message = parts[0] + ("\n" + "\n".join(lines) if lines else "")
    return Change(what, message, {k: str(v) for k, v in sorted(before.items())},
                  {k: str(v) for k, v in sorted(after.items())}, node_local=node_local)


def _compare_port(pa: ServicePortRules, pb: ServicePortRules, a: Side, b: Side) -> list[Change]:
    if a.facts.nodeport_addresses.get(pa.family) == b.facts.nodeport_addresses.get(pb.family) \
            and _quick_key(pa) == _quick_key(pb):
        return _compare_masquerade(pa, pb, a, b)
    out: list[Change] = []
    for kind, code in ((EntryKind.CLUSTER_IP, "cluster-ip"), (EntryKind.EXTERNAL_IP, "external-ip"),
                       (EntryKind.LOAD_BALANCER, "load-balancer-ip")):
        x, y = _addrs(pa, kind), _addrs(pb, kind)
        if x != y:
            out.append(Change(code, f"{_KIND_WORDS[kind]}: {_list(x)} -> {_list(y)}", x, y))
    npa, npb = _node_ports(pa, a.facts), _node_ports(pb, b.facts)
    if sorted(npa) != sorted(npb):
        out.append(Change("node-port", f"node port: {_list(sorted(npa))} -> {_list(sorted(npb))}",
                          sorted(npa), sorted(npb)))
    for port in sorted(npa.keys() & npb.keys()):
        x, y = npa[port], npb[port]
        if x["addresses"] != y["addresses"]:
            out.append(Change("node-port-addresses",
                              f"node port {port} bound to: {_where(x['addresses'])} -> {_where(y['addresses'])}",
                              x["addresses"], y["addresses"], node_local=_is_ips(x["addresses"], y["addresses"])))
        if x["localhost"] != y["localhost"]:
            out.append(Change("node-port-localhost",
                              f"node port {port} on 127.0.0.1: {_yes(x['localhost'])} -> {_yes(y['localhost'])}",
                              x["localhost"], y["localhost"]))
    x, y = _health_checks(pa), _health_checks(pb)
    if x != y:
        out.append(Change("health-check-node-port", f"health-check node port: {_list(x)} -> {_list(y)}", x, y))
    x, y = sorted(pa.source_ranges), sorted(pb.source_ranges)
    if x != y:
        out.append(Change("source-ranges", f"load-balancer source ranges: {_list(x)} -> {_list(y)}", x, y))
    c = _endpoint_change("endpoints", _shares(pa.endpoints), _shares(pb.endpoints), False)
    if c:
        out.append(c)
    la = None if pa.local_endpoints is None else _shares(pa.local_endpoints)
    lb = None if pb.local_endpoints is None else _shares(pb.local_endpoints)
    if la != lb:
        c = _endpoint_change("local-endpoints", la or {}, lb or {}, True)
        if c is not None:
            out.append(c)
    pol_a, pol_b = _policies(pa), _policies(pb)
    for k in sorted(pol_a.keys() & pol_b.keys()):
        if pol_a[k] != pol_b[k] and "unknown" not in (pol_a[k], pol_b[k]):
            out.append(Change("policy", f"{k}: {pol_a[k]} -> {pol_b[k]}", pol_a[k], pol_b[k]))
    if pa.affinity_seconds != pb.affinity_seconds:
        out.append(Change("affinity", f"session affinity: {_affinity(pa.affinity_seconds)} -> "
                                      f"{_affinity(pb.affinity_seconds)}", pa.affinity_seconds, pb.affinity_seconds))
    va, vb = _verdicts(pa), _verdicts(pb)
    local_policy = "Local" in (pol_a.get("externalTrafficPolicy"), pol_b.get("externalTrafficPolicy"),
                               pol_a.get("internalTrafficPolicy"), pol_b.get("internalTrafficPolicy"))
    for where in sorted(va.keys() | vb.keys()):
        x, y = va.get(where), vb.get(where)
        if x != y:
            node_local = local_policy and "DROP" in (x, y) and "REJECT" not in (x, y)
            out.append(Change("verdict", f"{where}: {x or 'no ' + (y or '')} -> {y or 'no ' + (x or '')}".replace(
                "no  ", "no "), x, y, node_local=node_local))
    out.extend(_compare_masquerade(pa, pb, a, b, local_policy))
    wa, wb = _warnings(pa), _warnings(pb)
    for w in sorted(wa - wb):
        out.append(Change("warning", f"problem only in A: {w}", w, None))
    for w in sorted(wb - wa):
        out.append(Change("warning", f"problem only in B: {w}", None, w))
    return out


_LINE_REF = re.compile(r"\s*\(?\bline \d+\)?:?")
_ANY_HASH = re.compile(r"\bKUBE-(SVC|SVL|EXT|FW|XLB|SEP)-[A-Z2-7]{16}\b")


def _warnings(sp: ServicePortRules) -> set[str]:
    """What the model says is wrong with the port, without line numbers or chain hashes."""
    return {_ANY_HASH.sub(lambda m: f"KUBE-{m.group(1)}-*", _LINE_REF.sub("", w)).strip() for w in sp.warnings}


NOT_FORWARDED = "not forwarded to an endpoint"


def _compare_masquerade(pa: ServicePortRules, pb: ServicePortRules, a: Side, b: Side,
                        local_policy: bool = False) -> list[Change]:
    if a.masquerade is None or b.masquerade is None:
        return []
    if a.dataplane == b.dataplane and a.masq_signature is not None and b.masq_signature is not None:
        if a.masq_signature(pa) == b.masq_signature(pb):
            return []
    ma, mb = a.masquerade(pa), b.masquerade(pb)
    if a.dataplane != b.dataplane:
        # One mode may call an address an external IP that the other knows is a
        # load-balancer IP (nftables without source ranges): compare it as one entry.
        for x, y in ((ma, mb), (mb, ma)):
            for client in list(x):
                if client not in y:
                    for one, other in (("load-balancer IP ", "external IP "), ("external IP ", "load-balancer IP ")):
                        alias = other + client[len(one):] if client.startswith(one) else None
                        if alias in y and alias not in x:
                            y[client] = y.pop(alias)
                            break
    out = []
    for client in sorted(ma.keys() & mb.keys()):
        if ma[client] != mb[client]:
            # With a Local policy, a node without local endpoints forwards nothing: by design.
            node_local = local_policy and NOT_FORWARDED in (ma[client], mb[client])
            out.append(Change("masquerade", f"masquerade, {client}: {ma[client]} -> {mb[client]}",
                              ma[client], mb[client], node_local=node_local))
    return out


def _is_ips(x, y) -> bool:
    """Both sides bound to explicit addresses: each node's own IPs differ by design."""
    return isinstance(x, list) and isinstance(y, list)


def _where(v) -> str:
    return v if isinstance(v, str) else ", ".join(v) or "nothing"


def _list(v: list) -> str:
    return ", ".join(str(x) for x in v) if v else "none"


def _yes(v: bool) -> str:
    return "yes" if v else "no"


def _affinity(s: int | None) -> str:
    return "none" if s is None else f"ClientIP {s}s"


def _brief(sp: ServicePortRules) -> dict[str, Any]:
    return {"clusterIP": _addrs(sp, EntryKind.CLUSTER_IP), "endpoints": {k: str(v) for k, v in
                                                                        sorted(_shares(sp.endpoints).items())}}


def _describe(sp: ServicePortRules, facts: NodeFacts) -> str:
    parts = []
    cip = _addrs(sp, EntryKind.CLUSTER_IP)
    if cip:
        parts.append("cluster IP " + ", ".join(cip))
    nps = _node_ports(sp, facts)
    if nps:
        parts.append("node port " + ", ".join(str(p) for p in sorted(nps)))
    n = len(_shares(sp.endpoints))
    if n:
        parts.append(f"{n} endpoint" + ("s" if n > 1 else ""))
    if sp.local_endpoints:
        parts.append(f"{len(_shares(sp.local_endpoints))} local")
    v = _verdicts(sp)
    if v:
        parts.append(", ".join(sorted(set(v.values()))))
    return "; ".join(parts) or "no entry point"


# --- node-wide ------------------------------------------------------------------------------------

def _compare_facts(fa: NodeFacts, fb: NodeFacts, families: tuple[Family, ...], same_plane: bool,
                   notes: list[str]) -> list[Change]:
    out: list[Change] = []
    sets = [("dangling", "dangling jump", fa.dangling, fb.dangling),
            ("orphans", "orphan chain", fa.orphans, fb.orphans)]
    if same_plane:
        sets[:0] = [("hooks", "hook", fa.hooks, fb.hooks),
                    ("node-rules", "kube-proxy rule", fa.node_rules, fb.node_rules),
                    ("ordering", "KUBE-SERVICES order", fa.ordering, fb.ordering)]
    else:
        notes.append("hooks, shared chains and dispatch order are laid out differently by each mode: not compared "
                     "(their effect on each service port is)")
    for code, word, x, y in sets:
        x = {i for i in x if i[0] in families}
        y = {i for i in y if i[0] in families}
        for fam, text in sorted(x - y, key=lambda i: (int(i[0]), i[1])):
            out.append(Change(code, f"IPv{int(fam)} {word} only in A: {text}", text, None))
        for fam, text in sorted(y - x, key=lambda i: (int(i[0]), i[1])):
            out.append(Change(code, f"IPv{int(fam)} {word} only in B: {text}", None, text))
    for fam in families:
        x = fa.nodeport_addresses.get(fam, "absent") if fam in fa.nodeport_addresses else "absent"
        y = fb.nodeport_addresses.get(fam, "absent") if fam in fb.nodeport_addresses else "absent"
        if x != y:
            sx, sy = _np_words(x), _np_words(y)
            out.append(Change("nodeport-addresses", f"IPv{int(fam)} node ports accepted on: {sx} -> {sy}",
                              sx if x is None or x == "absent" else list(x), sy if y is None or y == "absent"
                              else list(y), node_local=isinstance(x, tuple) and isinstance(y, tuple)))
    return out


def _np_words(v) -> str:
    if v is None:
        return "every local address"
    if v == "absent":
        return "no address (no rule leads to node ports)"
    return ", ".join(v)


# --- against the objects ------------------------------------------------------------------------------

def with_objects(report: DiffReport, a_findings: Iterable, b_findings: Iterable) -> DiffReport:
    """Say, for each differing service port, which side matches the API: ``*_findings``
    are ``check.Finding``-like values (``service_port``, ``family``, ``message``)
    from comparing each side's rules with the same Services and EndpointSlices."""
    def index(findings) -> dict[tuple[str, int], list[str]]:
        out: dict[tuple[str, int], list[str]] = {}
        for f in findings:
            if f.service_port is None or f.family is None:
                continue
            out.setdefault((f.service_port, int(f.family)), []).append(f.message)
        return out

    ia, ib = index(a_findings), index(b_findings)
    ports = []
    for p in report.ports:
        key = (p.service_port, int(p.family))
        fa, fb = ia.get(key, []), ib.get(key, [])
        verdict = {(False, False): "both", (False, True): "A", (True, False): "B", (True, True): "neither"}[
            (bool(fa), bool(fb))]
        detail = tuple(f"A: {m}" for m in fa) + tuple(f"B: {m}" for m in fb)
        ports.append(replace(p, objects=verdict, objects_detail=detail))
    return replace(report, ports=tuple(ports), objects_compared=True)


# --- the iptables adapter -----------------------------------------------------------------------------

_COUNTERS = re.compile(r"^\[\d+:\d+\] ")
_COMMENT_ARG = re.compile(r' ?-m comment --comment (?:"(?:[^"\\]|\\.)*"|\S+)')
_HASHED = re.compile(r"\bKUBE-(SVC|SVL|EXT|FW|XLB|SEP)-[A-Z2-7]{16}\b")
_SHARED_DISPATCH = ("KUBE-SERVICES", "KUBE-NODEPORTS", "KUBE-EXTERNAL-SERVICES", "KUBE-PROXY-FIREWALL")


def normalize_rule(text: str, drop_comment: bool = True) -> str:
    """A rule's text without counters, its ``-A CHAIN`` prefix, (optionally) its
    comment, and with per-service chain hashes blanked: what it does, not how it
    was named or how often it matched."""
    text = _COUNTERS.sub("", text)
    if text.startswith("-A "):
        text = text.split(" ", 2)[2] if text.count(" ") >= 2 else ""
    if drop_comment:
        text = _COMMENT_ARG.sub("", text)
    text = " ".join(text.split())  # iptables prints "--nfacct-name  x" with two spaces; a re-dump one
    return _HASHED.sub(lambda m: f"KUBE-{m.group(1)}-*", text)


def iptables_side(ruleset: Ruleset, label: str) -> Side:
    """The :class:`Side` of an iptables-mode ruleset (files or the live node)."""
    from svcinspect.dataplane import build_service_ports

    return _side(ruleset, label, "iptables", build_service_ports, iptables_node_facts, _IptablesMasquerade)


def _side(ruleset: Any, label: str, mode: str, ports_of: Callable, facts_of: Callable, masquerade: type) -> Side:
    """One side: its service ports, its node facts and how it masquerades."""
    ports = tuple(ports_of(ruleset))
    facts = facts_of(ruleset, ports)
    masq = masquerade(ruleset, facts)
    return Side(label, mode, ports, facts, masq.signature, masq.masquerade)


def iptables_node_facts(ruleset: Ruleset, ports: Iterable[ServicePortRules] = ()) -> NodeFacts:
    from svcinspect.dataplane.iptables.parse import KNOWN_TARGETS

    ports = tuple(ports)
    names = {(sp.key, sp.family): sp.name for sp in ports if sp.name}
    dangling: set[tuple[Family, str]] = set()
    hooks: set[tuple[Family, str]] = set()
    node_rules: set[tuple[Family, str]] = set()
    ordering: set[tuple[Family, str]] = set()
    npa: dict[Family, tuple[str, ...] | None] = {}
    for table in ruleset.tables:
        fam = table.family
        for cname in table.chains:
            kind = classify_chain(cname)
            if kind.per_service:
                continue
            raw = table.raw_rules(cname) or ()
            builtin = table.chains[cname].builtin
            if not builtin and cname.startswith("KUBE-"):
                node_rules.add((fam, f"{table.name} {cname} (chain)"))
            for i, (_, text) in enumerate(raw):
                target = raw_target(text)
                if target is False:
                    t = table.chains[cname].rules[i].target
                    target = (t.name, t.goto) if t is not None else None
                tname = target[0] if isinstance(target, tuple) else ""
                if tname and tname not in table.chains and tname not in KNOWN_TARGETS and (
                        tname.startswith("KUBE-") or cname.startswith("KUBE-")):
                    dangling.add((fam, f"{table.name} {cname} -> "
                                       f"{_chain_words(ruleset, fam, tname, names, missing=True, text=text)}"))
                if builtin:
                    if tname.startswith("KUBE-"):
                        hooks.add((fam, f"{table.name} {cname}: {normalize_rule(text, False)}"))
                    continue
                if not cname.startswith("KUBE-"):
                    continue
                if cname in _SHARED_DISPATCH:
                    if classify_chain(tname).per_service or (cname, tname) == ("KUBE-SERVICES", "KUBE-NODEPORTS"):
                        # per-port rules are compared per port; the node-ports jump as nodeport_addresses
                        continue
                    info = parse_comment(raw_comment(text))
                    if info is not None and info.spn:
                        continue  # a service port's own REJECT/DROP/ACCEPT: compared per port
                node_rules.add((fam, f"{table.name} {cname}: {normalize_rule(text, False)}"))
        if table.name == "nat":
            npa_fam, order = _dispatch_facts(table, names)
            if npa_fam != "absent":
                npa[fam] = npa_fam
            ordering.update((fam, o) for o in order)
    dangling |= _model_dangling(ruleset, ports)
    orphans = _model_orphans(ruleset, ports, names)
    return NodeFacts(ruleset.families, frozenset(hooks), frozenset(node_rules), npa, frozenset(ordering),
                     frozenset(dangling), frozenset(orphans))


def _model_dangling(ruleset: Ruleset, ports: tuple[ServicePortRules, ...]) -> set[tuple[Family, str]]:
    """Cascade jumps to endpoint chains that do not exist, from the port model (a
    scan of every rule of a 100k-chain dump would cost more than the comparison).
    Shared and built-in chains are scanned rule by rule in iptables_node_facts."""
    out = set()
    for sp in ports:
        nat = ruleset.table("nat", sp.family)
        if nat is None:
            continue
        for prefix, shares in (("svc", sp.endpoints), ("svl", sp.local_endpoints or ())):
            for e in shares:
                if e.sep not in nat.chains:
                    chain = sp.chains.get(prefix) or sp.chains.get("xlb") or prefix
                    ep = f" {e.endpoint}" if e.endpoint else ""
                    out.add((sp.family, f"nat {chain.rsplit('-', 1)[0]} of {sp.display_name} -> KUBE-SEP of "
                                        f"{sp.display_name}{ep}"))
    return out


def _model_orphans(ruleset: Ruleset, ports: tuple[ServicePortRules, ...], names) -> set[tuple[Family, str]]:
    """Per-service chains nothing jumps to, as graph.find_unreferenced_chains
    reports them, from the port model: a port's SVC/SVL/EXT/FW/XLB chain that no
    entry point and none of the port's EXT/FW/XLB rules lead to (SVC and SVL
    chains jump only to endpoint chains), and endpoint chains no cascade jumps to."""
    out = set()
    used: dict[Family, set[str]] = {}
    for sp in ports:
        used.setdefault(sp.family, set()).update(sp.chains.get("sep") or ())
        own = {prefix: sp.chains[prefix] for prefix in ("svc", "svl", "ext", "fw", "xlb") if sp.chains.get(prefix)}
        if not own:
            continue
        referenced = {e.chain for e in sp.entries if e.chain}
        nat = ruleset.table("nat", sp.family)
        for prefix in ("ext", "fw", "xlb"):
            if prefix in own and nat is not None:
                for _, text in nat.raw_rules(own[prefix]) or ():
                    t = raw_target(text)
                    if isinstance(t, tuple):
                        referenced.add(t[0])
                    elif t is False:
                        referenced.update(r.target.name for r in nat.chains[own[prefix]].rules if r.target)
        for prefix, chain in own.items():
            if chain not in referenced:
                out.add((sp.family, f"nat KUBE-{prefix.upper()} of {sp.display_name}"))
    for table in ruleset.tables:
        if table.name != "nat":
            continue
        seps = used.get(table.family, set())
        for name in table.chains:
            if name.startswith("KUBE-SEP-") and name not in seps:
                out.add((table.family, f"nat {_chain_words(ruleset, table.family, name, names)}"))
    return out


def _chain_words(ruleset: Ruleset, family: Family, chain: str, names, missing: bool = False,
                 text: str = "") -> str:
    """A chain described without its hash: "KUBE-SVC of default/web:http", "KUBE-SEP of ... 10.244.1.5:80"."""
    kind = classify_chain(chain)
    if not kind.per_service:
        return chain
    prefix = chain.rsplit("-", 1)[0]
    if kind is not ChainKind.SEP:
        name = names.get((chain_hash(chain), family))
        return f"{prefix} of {name}" if name else chain
    from svcinspect.dataplane.iptables.services import _sep_meta, sep_endpoint

    nat = ruleset.table("nat", family)
    if missing or nat is None:
        info = parse_comment(raw_comment(text)) if text else None
        if info is not None and info.spn:
            return f"{prefix} of {info.spn}" + (f" {info.endpoint}" if info.endpoint else "")
        return chain
    spn, _ = _sep_meta(nat.raw_rules(chain) or ())
    ep = sep_endpoint(nat, chain)
    if spn or ep:
        return f"{prefix} of {spn[0] if spn else '?'} {ep or '(no DNAT)'}"
    return chain


def _dispatch_facts(nat, names) -> tuple[Any, list[str]]:
    """(where node ports are accepted, ordering facts) from nat KUBE-SERVICES."""
    raw = nat.raw_rules("KUBE-SERVICES") or ()
    bound: list[str] = []
    anywhere = False
    found = False
    seen: dict[tuple, str] = {}
    after_nodeports = 0
    order: list[str] = []
    np_seen = False
    for i, (_, text) in enumerate(raw):
        target = raw_target(text)
        tname = target[0] if isinstance(target, tuple) else ""
        if tname == "KUBE-NODEPORTS":
            found = np_seen = True
            if "--dst-type LOCAL" in text:
                anywhere = True
            else:
                rule = nat.chains["KUBE-SERVICES"].rules[i]
                d = rule.spec.destination
                if d is None or d.negated:
                    anywhere = True
                else:
                    net = d.network
                    bound.append(str(net.network_address) if net.prefixlen == net.max_prefixlen else str(net))
            continue
        if not classify_chain(tname).per_service:
            continue
        if np_seen:
            after_nodeports += 1
        key = _dispatch_key(text)
        if key is None:
            continue
        who = names.get((chain_hash(tname), nat.family)) or "<no comment>"
        if key in seen and seen[key] != who:
            order.append(f"{key[0]}:{key[2]}/{key[1]}: {seen[key]} comes first, {who} never matches")
        else:
            seen.setdefault(key, who)
    if after_nodeports:
        order.append(f"{after_nodeports} service rule(s) after the node-ports jump (kube-proxy writes it last): "
                     "traffic to those addresses that is also to a local address goes to node ports first")
    if not found:
        return "absent", order
    return (None if anywhere else tuple(sorted(set(bound)))), order


_DISPATCH_KEY = re.compile(r"(?:^|\s)-d (\S+?)(?:/(?:32|128))? .*?-p (\w+) .*?--dport (\d+)|"
                           r"(?:^|\s)-p (\w+) .*?-d (\S+?)(?:/(?:32|128))? .*?--dport (\d+)")


def _dispatch_key(text: str) -> tuple[str, str, str] | None:
    m = _DISPATCH_KEY.search(text)
    if not m:
        return None
    if m.group(1):
        return (m.group(1), m.group(2).lower(), m.group(3))
    return (m.group(5), m.group(4).lower(), m.group(6))


class _IptablesMasquerade:
    """Masquerade per client kind, from the shared evaluator, computed only for
    the ports whose masquerade-relevant rules differ (the signature)."""

    def __init__(self, ruleset: Ruleset, facts: NodeFacts) -> None:
        self.ruleset = ruleset
        self.facts = facts
        self.evaluators: dict[Family, Any] = {}

    def signature(self, sp: ServicePortRules) -> Hashable:
        nat = self.ruleset.table("nat", sp.family)
        if nat is None:
            return None
        out = []
        for prefix in ("svc", "svl", "ext", "fw", "xlb"):
            name = sp.chains.get(prefix)
            if not name:
                continue
            for _, text in nat.raw_rules(name) or ():
                if " -j KUBE-SEP-" in text:
                    continue  # an endpoint branch: compared as endpoints
                out.append((prefix, normalize_rule(text)))
        return tuple(out)

    def _evaluator(self, family: Family):
        from svcinspect.simulate import Environment
        from svcinspect.trace import PLACEHOLDER_NODE

        ev = self.evaluators.get(family)
        if ev is None:
            local = {PLACEHOLDER_NODE[int(family)]}
            for a in self.facts.nodeport_addresses.get(family) or ():
                try:
                    local.add(ipaddress.ip_address(a))
                except ValueError:
                    pass
            ev = self.evaluators[family] = self._new_evaluator(family, Environment(frozenset(local), ()))
        return ev

    def _new_evaluator(self, family: Family, env):
        from svcinspect.dataplane.iptables.evaluate import Evaluator
        return Evaluator(self.ruleset, family, env)

    def masquerade(self, sp: ServicePortRules) -> dict[str, str]:
        from svcinspect.model.flow import Disposition, Hook, Packet
        from svcinspect.trace import OUTSIDE, PLACEHOLDER_NODE, _pod_address

        fam = int(sp.family)
        ev = self._evaluator(sp.family)
        pod = _pod_address(sp, ev, fam)
        bound = self.facts.nodeport_addresses.get(sp.family)
        node = ipaddress.ip_address(bound[0]) if bound else PLACEHOLDER_NODE[fam]
        out: dict[str, str] = {}
        for e in sp.entries:
            if e.table != "nat" or e.port is None:
                continue
            proto = e.protocol or sp.protocol or "tcp"
            clients = []
            if e.kind == EntryKind.CLUSTER_IP and e.address:
                dst = ipaddress.ip_address(e.address)
                clients = [("from a pod", pod, dst, Hook.PREROUTING), ("from this node", node, dst, Hook.OUTPUT)]
                where = "cluster IP"
            elif e.kind in (EntryKind.EXTERNAL_IP, EntryKind.LOAD_BALANCER) and e.address:
                dst = ipaddress.ip_address(e.address.split("/")[0])
                clients = [("from outside", OUTSIDE[fam], dst, Hook.PREROUTING),
                           ("from a pod", pod, dst, Hook.PREROUTING)]
                where = _KIND_WORDS[e.kind]
            elif e.kind == EntryKind.NODE_PORT:
                dst = ipaddress.ip_address(e.address) if e.address else node
                clients = [("from outside", OUTSIDE[fam], dst, Hook.PREROUTING),
                           ("from a pod", pod, dst, Hook.PREROUTING)]
                where = "node port"
            else:
                continue
            for who, src, dst, hook in clients:
                if src is None:
                    continue
                outcomes = ev.simulate(Packet(src, dst, e.port, proto, hook)).outcomes
                dnat = [o for o in outcomes if o.disposition is Disposition.DNAT]
                if not dnat:
                    value = NOT_FORWARDED
                elif all(o.masquerade for o in dnat):
                    value = "masqueraded"
                elif not any(o.masquerade for o in dnat):
                    value = "not masqueraded"
                else:
                    value = "masqueraded on some paths"
                out[f"{where} {who}"] = value
        return out


# --- the nftables adapter ------------------------------------------------------------------------------

_NFT_HASHED = re.compile(r"\b(service|local|external|firewall|endpoint|affinity)-[A-Z2-7]{8}-")


def _nft_words(text: str) -> str:
    """An nft rule's text without chain-name hashes and comments."""
    text = re.sub(r' comment "(?:[^"\\]|\\.)*"', "", text)
    return " ".join(_NFT_HASHED.sub(lambda m: f"{m.group(1)}-*-", text).split())


def nftables_side(ruleset: Any, label: str) -> Side:
    """The :class:`Side` of a kube-proxy nftables-mode ruleset (``NftRuleset``)."""
    from svcinspect.dataplane.nftables.services import build_service_ports as nft_ports

    return _side(ruleset, label, "nftables", nft_ports, nftables_node_facts, _NftMasquerade)


def nftables_node_facts(ruleset: Any, ports: Iterable[ServicePortRules] = ()) -> NodeFacts:
    """Node-wide facts of an nftables ruleset, per family: hooks are the base
    chains (type, hook, priority, policy) and the jumps in them; shared rules the
    rules of kube-proxy's non-per-service chains; node ports are accepted on the
    elements of ``@nodeport-ips`` (or every local address with ``fib daddr type
    local``); dangling jumps and orphan chains as ``check`` finds them."""
    from svcinspect.dataplane.nftables.services import split_name, verdict_target

    hooks: set[tuple[Family, str]] = set()
    node_rules: set[tuple[Family, str]] = set()
    dangling: set[tuple[Family, str]] = set()
    orphans: set[tuple[Family, str]] = set()
    npa: dict[Family, tuple[str, ...] | None] = {}
    for fam in ruleset.families:
        t = ruleset.kube_proxy(fam)
        if t is None:
            continue
        referenced: set[str] = set()
        for c in t.chains.values():
            per_service = split_name(c.name) is not None
            if c.is_base:
                hooks.add((fam, f"{c.name}: type {c.type} hook {c.hook} priority "
                                f"{c.priority if c.priority is not None else c.priority_text} policy {c.policy or 'accept'}"))
            elif not per_service:
                node_rules.add((fam, f"{c.name} (chain)"))
            for r in c.rules:
                for target in _nft_targets(r):
                    referenced.add(target)
                    if target not in t.chains:
                        dangling.add((fam, f"{_nft_words(c.name)} -> {_nft_words(target)}"))
                if c.is_base:
                    hooks.add((fam, f"{c.name}: {_nft_words(r.text)}"))
                elif not per_service:
                    node_rules.add((fam, f"{c.name}: {_nft_words(r.text)}"))
                if c.name == "services" and "fib daddr type local" in r.text and "vmap @service-nodeports" in r.text:
                    npa[fam] = None
        for s in t.sets.values():
            if s.is_map:
                for e in s.elements:
                    _, target = verdict_target(e.value)
                    if target is not None:
                        referenced.add(target)
                        if target not in t.chains:
                            dangling.add((fam, f"@{s.name} -> {_nft_words(target)}"))
        for name in t.chains:
            if split_name(name) is not None and name not in referenced:
                orphans.add((fam, f"chain {_nft_words(name)}"))
        if fam not in npa and "service-nodeports" in t.sets and any(
                "@nodeport-ips" in r.text and "@service-nodeports" in r.text
                for r in (t.chains["services"].rules if "services" in t.chains else ())):
            ips = t.sets.get("nodeport-ips")
            from svcinspect.dataplane.nftables.services import elem_key
            npa[fam] = tuple(sorted(str(elem_key(e.key)) for e in (ips.elements if ips else ())))
    return NodeFacts(ruleset.families, frozenset(hooks), frozenset(node_rules), npa, frozenset(),
                     frozenset(dangling), frozenset(orphans))


def _nft_targets(r) -> Iterable[str]:
    from svcinspect.dataplane.nftables.services import verdict_target

    for s in r.exprs:
        if not isinstance(s, dict):
            continue
        for k in ("jump", "goto"):
            if k in s:
                yield s[k]["target"]
        if "vmap" in s and isinstance(s["vmap"].get("data"), dict):
            for _, v in s["vmap"]["data"].get("set", []):
                _, target = verdict_target(v)
                if target:
                    yield target


class _NftMasquerade(_IptablesMasquerade):
    """Masquerade per client kind from the nftables evaluator; the signature is
    the port's own chains' rules without the endpoint (dnat) rules."""

    def signature(self, sp: ServicePortRules) -> Hashable:
        t = self.ruleset.kube_proxy(sp.family)
        if t is None:
            return None
        out = []
        for prefix in ("svc", "svl", "ext", "fw"):
            name = sp.chains.get(prefix)
            if not name or name not in t.chains:
                continue
            for r in t.chains[name].rules:
                if "dnat" in r.text or "numgen" in r.text:
                    continue  # the endpoint choice: compared as endpoints
                out.append((prefix, _nft_words(r.text)))
        return tuple(out)

    def _new_evaluator(self, family: Family, env):
        from svcinspect.dataplane.nftables.evaluate import NftEvaluator
        return NftEvaluator(self.ruleset, family, env)


# How to build a Side per dataplane: the CLI picks one by what it read; a new
# dataplane adds one line here and its own adapter, nothing in compare_sides.
SIDE_BUILDERS: dict[str, Callable[[Any, str], Side]] = {"iptables": iptables_side, "nftables": nftables_side}
