"""``trace``: how one Service is load-balanced on this node, entry point by entry point.

For each service port the rules implement, and each way in (cluster IP, external
IP, load-balancer IP, node port, health-check node port, filter REJECT/DROP),
``trace_service`` simulates representative first packets with the shared
evaluator (from a pod, from this node, from outside, from allowed and blocked
load-balancer sources, from each endpoint for hairpin) and reports the rule path,
the endpoints with their exact shares, and who is masqueraded and why.
"""

from __future__ import annotations

import ipaddress
import itertools
import re
from dataclasses import dataclass, field, replace
from fractions import Fraction

from svcinspect.completeness import InputCompleteness, assess_input
from svcinspect.dataplane import dataplane_of
from svcinspect.simulate import Environment
from svcinspect.dataplane.iptables.evaluate import Evaluator
from svcinspect.model.flow import Disposition, Hook, Outcome, Packet, Step
from svcinspect.model.netfilter import Family, Ruleset
from svcinspect.dataplane.iptables.parse import raw_target
from svcinspect.model.service import EntryKind, EntryPoint, ServicePortRules
from svcinspect.dataplane import select_service_ports

# How the nftables evaluator names a step that sets kube-proxy's masquerade mark.
MARK_FOR_MASQUERADE = "mark for masquerade"
_IPTABLES_HAIRPIN = "the '-s <endpoint> -j KUBE-MARK-MASQ' rule in its KUBE-SEP chain"

# Addresses used for representative clients when the user gives none. They are
# documentation ranges (RFC 5737 / 3849), never a real peer.
OUTSIDE = {4: ipaddress.ip_address("203.0.113.99"), 6: ipaddress.ip_address("2001:db8::99")}
PLACEHOLDER_NODE = {4: ipaddress.ip_address("192.0.2.1"), 6: ipaddress.ip_address("2001:db8::1")}


@dataclass(frozen=True)
class Scenario:
    """One kind of client hitting one entry point, and what happens to it."""

    label: str
    packet: Packet
    outcomes: tuple[Outcome, ...]
    client: str = ""   # pod, node, outside, localhost, allowed, blocked: what kind of client this is

    @property
    def masquerade_reason(self) -> Step | None:
        """The rule that sent the packet to KUBE-MARK-MASQ (why it is SNATed)."""
        for o in self.outcomes:
            for s in o.steps:
                if s.action == "jump KUBE-MARK-MASQ" or s.action.startswith(MARK_FOR_MASQUERADE):
                    return s
        return None


@dataclass(frozen=True)
class EntryTrace:
    entry: EntryPoint
    title: str
    path: tuple[Step, ...]                 # the common part of the representative flow
    branches: tuple[tuple[Outcome, tuple[Step, ...]], ...]  # per outcome: the steps after the common part
    scenarios: tuple[Scenario, ...]
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class PortTrace:
    port: ServicePortRules
    entries: tuple[EntryTrace, ...]
    notes: tuple[str, ...]
    objects: tuple | None = None   # ExpectedEndpoint of this port from the EndpointSlices, when given


@dataclass(frozen=True)
class ServiceTrace:
    query: str
    ports: tuple[PortTrace, ...]
    warnings: tuple[str, ...] = field(default=())
    input: InputCompleteness | None = None


def trace_service(ruleset: Ruleset, query: str, env: Environment = Environment(),
                  objects: dict | None = None, namespace: str | None = None) -> ServiceTrace:
    """Trace every service port ``query`` names (``ns/name``, ``ns/name:portname``
    or ``ns/name:portnumber``). Raises UnknownServiceError with the closest names
    when the rules have no such service. ``objects``: (chain hash, family) ->
    endpoints from the EndpointSlices (``expected.endpoints_by_port``), to show
    pods, nodes and conditions beside the rules. ``namespace`` completes a bare
    name (a chain name or hash needs none)."""
    ports = select_service_ports(ruleset, query, namespace)
    evaluators: dict[Family, Evaluator] = {}
    traces = []
    warnings: list[str] = []
    for sp in ports:
        ev = evaluators.get(sp.family)
        if ev is None:
            fam_env = env
            if _node_address(env, int(sp.family)) is None:
                # Node ports need a local address to aim at: use a documentation
                # address and say so, rather than guessing the node's.
                placeholder = PLACEHOLDER_NODE[int(sp.family)]
                fam_env = Environment(frozenset(env.node_ips or ()) | {placeholder}, env.cluster_cidrs)
                warnings.append(f"no --node-ip for IPv{int(sp.family)}: this node is shown as {placeholder} "
                                f"(give --node-ip to see its real addresses)")
            ev = evaluators[sp.family] = dataplane_of(ruleset).evaluator(ruleset, sp.family, fam_env)
        pt = _trace_port(sp, ev, ev.env)
        if objects is not None:
            pt = replace(pt, objects=tuple(objects.get((sp.key, sp.family), ())))
        traces.append(pt)
    for ev in evaluators.values():
        warnings.extend(w for w in ev.warnings if w not in warnings)
        if "nat" in ev.tables and not ev._has_chain("nat", "KUBE-SERVICES"):
            warnings.append(f"the IPv{int(ev.family)} nat table has no KUBE-SERVICES chain (an excerpt?): packets "
                            f"cannot be followed into the service's chains, so the paths below are incomplete")
    return ServiceTrace(query, tuple(traces), tuple(warnings), assess_input(ruleset, scan_references=False))


# --- per port -------------------------------------------------------------------

def _trace_port(sp: ServicePortRules, ev: Evaluator, env: Environment) -> PortTrace:
    fam = int(sp.family)
    notes: list[str] = []
    if sp.affinity_seconds is not None and sp.dataplane == "nftables":
        notes.append(f"session affinity ClientIP, {sp.affinity_seconds} s: a client's first connection takes the "
                     f"numgen split; its later ones within {sp.affinity_seconds} s go to the same endpoint "
                     f"('ip saddr @affinity-... goto endpoint-...' before the split, 'update @affinity-... "
                     f"{{ ip saddr }}' in each endpoint- chain)")
    elif sp.affinity_seconds is not None:
        notes.append(f"session affinity ClientIP, {sp.affinity_seconds} s: a client's first connection takes the "
                     f"probability cascade; its later ones within {sp.affinity_seconds} s go to the same endpoint "
                     f"(-m recent --rcheck before the cascade, --set in each KUBE-SEP chain)")
    if sp.local_endpoints is not None and sp.local_complete:
        scope = "external traffic (externalTrafficPolicy: Local)" if "ext" in sp.chains or "xlb" in sp.chains \
            else "cluster traffic (internalTrafficPolicy: Local)"
        notes.append(f"{scope} only goes to the {len(sp.local_endpoints)} endpoint(s) on this node "
                     f"({sp.chains.get('svl') or sp.chains.get('xlb')})")
    if "svc" not in sp.chains and "svl" not in sp.chains and not sp.endpoints and sp.endpoints_complete:
        notes.append("no endpoint chains: kube-proxy found no usable endpoints for this port")
    pod = _pod_address(sp, ev, fam)
    node = _node_address(env, fam)
    entries = []
    for e in _entries_to_trace(sp):
        entries.append(_trace_entry(sp, e, ev, fam, pod, node, env))
    return PortTrace(sp, tuple(entries), tuple(notes))


def _entries_to_trace(sp: ServicePortRules) -> list[EntryPoint]:
    """nat entries, plus filter entries that nat does not cover (no endpoints,
    health check); a drop rule for the same address is shown by simulation."""
    out = [e for e in sp.entries if e.table == "nat"]
    covered = {(e.kind, e.address, e.port) for e in out}
    for e in sp.entries:
        if e.table == "filter" and (e.kind, e.address, e.port) not in covered:
            if e.kind == EntryKind.LOAD_BALANCER and any(x.kind == EntryKind.LOAD_BALANCER for x in out):
                continue  # the KUBE-PROXY-FIREWALL drop: shown as the blocked-source scenario
            out.append(e)
            covered.add((e.kind, e.address, e.port))
    return out


_MASQ_UNLESS = re.compile(r"(?:^|\s)! -s (\S+) .*-j KUBE-MARK-MASQ$")


def _cluster_cidr(sp: ServicePortRules, ev: Evaluator, env: Environment):
    """--cluster-cidr, else what kube-proxy's own masquerade rules say it is
    (``! -s <cidr> ... -j KUBE-MARK-MASQ``), in this service's chains or another's."""
    for net in env.cluster_cidrs:
        if net.version == int(sp.family):
            return net
    known = getattr(ev, "cluster_cidr", None)  # an evaluator that reads it from its own dataplane's rules
    if known is not None:
        return known
    nat = ev.tables.get("nat")
    if nat is None:
        return None
    own = [sp.chains[k] for k in ("svc", "svl") if sp.chains.get(k)]

    def others():
        """Other services' chains, as KUBE-SERVICES jumps to them (a generator: it
        runs only when this service's own chains do not tell). Listing every chain
        name would be a question about the whole table, which a dump read by
        bisection cannot answer cheaply; excerpts without KUBE-SERVICES still do."""
        seen = 0
        for _, text in nat.raw_rules("KUBE-SERVICES") or ():
            target = raw_target(text)
            if target and target[0].startswith(("KUBE-SVC-", "KUBE-SVL-")):
                seen += 1
                yield target[0]
                if seen >= 50:
                    return
        if not seen:
            yield from itertools.islice((n for n in nat.chains if n.startswith(("KUBE-SVC-", "KUBE-SVL-"))), 50)

    for chain in itertools.chain(own, others()):
        for _, text in nat.raw_rules(chain) or ():
            m = _MASQ_UNLESS.search(text)
            if m:
                try:
                    return ipaddress.ip_network(m.group(1), strict=False)
                except ValueError:
                    continue
    return None


def _pod_address(sp: ServicePortRules, ev: Evaluator, fam: int):
    """An address in the cluster CIDR that is not an endpoint: 'a pod'."""
    cidr = _cluster_cidr(sp, ev, ev.env)
    taken = {(e.endpoint or "").rsplit(":", 1)[0].strip("[]") for e in sp.endpoints + (sp.local_endpoints or ())}
    if cidr is not None:
        for i, host in enumerate(cidr.hosts()):
            if str(host) not in taken:
                return host
            if i > 1000:
                break
    return None


def _node_address(env: Environment, fam: int):
    for ip in sorted(env.node_ips or (), key=str):
        if ip.version == fam and not ip.is_loopback:
            return ip
    return None


def _trace_entry(sp, e: EntryPoint, ev: Evaluator, fam: int, pod, node, env) -> EntryTrace:
    proto = e.protocol or sp.protocol or "tcp"
    port = e.port or 0
    notes: list[str] = []
    node_dst = node or PLACEHOLDER_NODE[fam]
    scenarios: list[tuple[str, IPish, IPish, Hook, str]] = []
    if e.kind == EntryKind.CLUSTER_IP and e.address:
        dst = ipaddress.ip_address(e.address)
        if pod is not None:
            scenarios.append((f"from a pod ({pod})", pod, dst, Hook.PREROUTING, "pod"))
        scenarios.append((f"from this node ({node_dst})", node_dst, dst, Hook.OUTPUT, "node"))
    elif e.kind in (EntryKind.EXTERNAL_IP, EntryKind.LOAD_BALANCER) and e.address:
        dst = ipaddress.ip_address(e.address.split("/")[0])
        if e.kind == EntryKind.LOAD_BALANCER and sp.source_ranges:
            for r in sp.source_ranges:
                net = ipaddress.ip_network(r)
                if net.version == fam:
                    src = next(net.hosts(), net.network_address)
                    scenarios.append((f"from an allowed source ({src}, in {r})", src, dst, Hook.PREROUTING, "allowed"))
            blocked = _outside_ranges(sp.source_ranges, fam)
            scenarios.append((f"from a source outside the allowed ranges ({blocked})", blocked, dst,
                              Hook.PREROUTING, "blocked"))
        else:
            scenarios.append((f"from outside the cluster ({OUTSIDE[fam]})", OUTSIDE[fam], dst, Hook.PREROUTING,
                              "outside"))
        if pod is not None:
            scenarios.append((f"from a pod ({pod})", pod, dst, Hook.PREROUTING, "pod"))
    elif e.kind in (EntryKind.NODE_PORT, EntryKind.HEALTH_CHECK):
        dst = ipaddress.ip_address(e.address) if e.address else node_dst
        scenarios.append((f"from outside the cluster ({OUTSIDE[fam]} -> {dst})", OUTSIDE[fam], dst, Hook.PREROUTING,
                          "outside"))
        if pod is not None and e.kind == EntryKind.NODE_PORT:
            scenarios.append((f"from a pod ({pod} -> {dst})", pod, dst, Hook.PREROUTING, "pod"))
        if e.kind == EntryKind.NODE_PORT and not getattr(ev, "localhost_node_ports", True):
            lo = ipaddress.ip_address("127.0.0.1" if fam == 4 else "::1")
            scenarios.append((f"from this node via localhost ({lo}): not a node port in this mode", lo, lo,
                              Hook.OUTPUT, "localhost"))
        if e.localhost:
            lo = ipaddress.ip_address("127.0.0.1")
            scenarios.append(("from this node via localhost (127.0.0.1)", lo, lo, Hook.OUTPUT, "localhost"))
        if e.address and e.kind == EntryKind.NODE_PORT:  # bound (--nodeport-addresses): not on the others
            bound = {x.address for x in sp.entries_of(EntryKind.NODE_PORT)}
            for other in sorted(env.node_ips or (), key=str):
                if other.version == fam and not other.is_loopback and str(other) not in bound:
                    scenarios.append((f"from outside to another address of this node ({OUTSIDE[fam]} -> {other}, "
                                      f"not a node-port address)", OUTSIDE[fam], other, Hook.PREROUTING, "outside"))
                    break
    done = [Scenario(label, p, ev.simulate(p).outcomes, client) for label, p, client in
            ((label, Packet(src, dst, port, proto, hook), client) for label, src, dst, hook, client in scenarios)]
    # Hairpin: an endpoint reaching its own service lands on itself masqueraded.
    if e.kind == EntryKind.CLUSTER_IP and e.address:
        hairpin = []
        for ep in sp.endpoints[:8]:
            if ep.endpoint:
                try:
                    ip = ipaddress.ip_address(ep.endpoint.rsplit(":", 1)[0].strip("[]"))
                except ValueError:  # a malformed --to-destination (the parser said so)
                    continue
                sim = ev.simulate(Packet(ip, ipaddress.ip_address(e.address), port, proto, Hook.PREROUTING))
                own = [o for o in sim.outcomes if o.endpoint == ep.endpoint]
                if own and own[0].masquerade and not any(o.masquerade for o in sim.outcomes if o not in own):
                    hairpin.append(ep.endpoint)
        if hairpin:
            notes.append("hairpin: a pod that is an endpoint and reaches this service is masqueraded only when it "
                         f"lands on itself ({getattr(ev, 'hairpin_rule', _IPTABLES_HAIRPIN)}), so "
                         "its own replies come back through the node")
    first = done[0] if done else None
    path, branches = _split_paths(first.outcomes if first else ())
    title = _title(e, proto)
    return EntryTrace(e, title, path, branches, tuple(done), tuple(notes))


IPish = ipaddress.IPv4Address | ipaddress.IPv6Address


def _outside_ranges(ranges, fam: int):
    nets = [ipaddress.ip_network(r) for r in ranges if ipaddress.ip_network(r).version == fam]
    for cand in ("8.8.8.8", "192.0.2.200", "100.64.0.1") if fam == 4 else ("2001:db8:ffff::1",):
        ip = ipaddress.ip_address(cand)
        if not any(ip in n for n in nets):
            return ip
    return OUTSIDE[fam]


def _title(e: EntryPoint, proto: str) -> str:
    where = f"{e.address}:{e.port}/{proto}" if e.port is not None else f"{e.address} (every {proto} port)"
    if e.kind == EntryKind.CLUSTER_IP:
        return f"cluster IP {where}"
    if e.kind == EntryKind.EXTERNAL_IP:
        return f"external IP {where}" + (f" ({e.note})" if e.note else "")
    if e.kind == EntryKind.LOAD_BALANCER:
        return f"load-balancer IP {where}"
    if e.kind == EntryKind.NODE_PORT:
        where = e.address or (e.note if e.table == "nat" and e.note else "every local address")  # nft: @nodeport-ips
        return f"node port {e.port}/{proto} on {where}" + (" and 127.0.0.1" if e.localhost else "")
    return f"health-check node port {e.port}/{proto}"


def _split_paths(outcomes) -> tuple[tuple[Step, ...], tuple[tuple[Outcome, tuple[Step, ...]], ...]]:
    """The steps every outcome shares (up to the cascade), then each outcome's own."""
    if not outcomes:
        return (), ()
    lists = [list(o.steps) for o in outcomes]
    common = 0
    while all(len(s) > common for s in lists) and all(s[common] == lists[0][common] for s in lists):
        common += 1
    path = tuple(lists[0][:common])
    return path, tuple((o, tuple(o.steps[common:])) for o in outcomes)


def scenario_paths(sc: Scenario) -> tuple[tuple[Step, ...], tuple[tuple[Outcome, tuple[Step, ...]], ...],
                                           tuple[Step, ...]]:
    """One client's whole path, split for display: the steps every outcome takes
    first (up to the random choice), each outcome's own steps, and the steps
    every outcome takes after its own (filter, POSTROUTING), when those are the
    same rules for all of them (otherwise they stay in each outcome's part)."""
    path, branches = _split_paths(sc.outcomes)
    if len(branches) < 2:
        return path, branches, ()
    tails = [list(steps) for _, steps in branches]
    same = 0
    while all(len(t) > same for t in tails) and all(
            _same_rule(t[-1 - same], tails[0][-1 - same]) for t in tails):
        same += 1
    if same == 0:
        return path, branches, ()
    return (path, tuple((o, steps[:len(steps) - same]) for o, steps in branches),
            tuple(branches[0][1][len(branches[0][1]) - same:]))


def _same_rule(a: Step, b: Step) -> bool:
    return (a.table, a.chain, a.line, a.rule, a.action) == (b.table, b.chain, b.line, b.rule, b.action)


def conditions(o: Outcome) -> tuple[str, ...]:
    """The alternatives an outcome depends on ("if ..." assumptions)."""
    return tuple(a for a in o.assumptions if a.startswith("if "))


def summarize(scenario: Scenario) -> list[tuple[tuple[str, ...], list[tuple[str, str, Fraction, bool]]]]:
    """Per set of conditions (alternatives are not added up): (disposition,
    endpoint, probability, masquerade) rows, merged by endpoint."""
    groups: dict[tuple[str, ...], dict[tuple, Fraction]] = {}
    for o in scenario.outcomes:
        rows = groups.setdefault(conditions(o), {})
        key = (o.disposition.value, o.endpoint or "-", o.masquerade)
        rows[key] = rows.get(key, Fraction(0)) + o.probability
    return [(cond, [(d, ep, p, m) for (d, ep, m), p in rows.items()]) for cond, rows in groups.items()]


def endpoint_masquerade(trace: EntryTrace) -> dict[str, bool]:
    """Per endpoint: masqueraded for the first scenario's client."""
    if not trace.scenarios:
        return {}
    return {o.endpoint: o.masquerade for o in trace.scenarios[0].outcomes
            if o.disposition is Disposition.DNAT and o.endpoint}
