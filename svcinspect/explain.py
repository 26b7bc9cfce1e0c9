"""``explain``: a Service's journey through the node, in plain sentences.

Built on :mod:`svcinspect.trace` (which runs representative first packets through
the shared evaluator): every step a packet takes becomes a sentence that cites the
rule it comes from. The result is data (:class:`Explanation`): sections of
:class:`Sentence` records, each a message key, its arguments and its citations;
``svcinspect.render.explain`` turns them into English or Chinese text.

What the analysis reads is the shared flow model (steps with table, chain, line and
rule text, outcomes with exact probabilities) and the shared service-port model.
Chain roles are recognised from kube-proxy's iptables chain names; a chain of
another dataplane (or one svcinspect does not know) is described by what the
packet did there (jump, DNAT, masquerade), so the explanation stays right even
where it is less specific. Facts that no rule in the input shows (kube-proxy's
route_localnet sysctl, conntrack undoing NAT on replies, what a policy would
change) are marked ``general`` instead of citing a rule.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from fractions import Fraction

from svcinspect.dataplane import dataplane_of
from svcinspect.dataplane.iptables.kubeproxy import ChainKind, classify_chain
from svcinspect.model.flow import Disposition, Outcome, Step
from svcinspect.model.netfilter import Ruleset
from svcinspect.model.service import EntryKind, ServicePortRules
from svcinspect.trace import EntryTrace, PortTrace, Scenario, ServiceTrace, conditions


@dataclass(frozen=True, slots=True)
class Citation:
    """The rule a sentence is about, as read (line 0: a chain policy or an assumed hook)."""

    table: str
    chain: str
    line: int
    rule: str
    source: str = ""

    @classmethod
    def of(cls, step: Step) -> Citation:
        return cls(step.table, step.chain, step.line, step.rule, step.source)


@dataclass(frozen=True)
class Sentence:
    """One statement: a message ``key`` (see ``render.explain``), its arguments
    (plain strings), the rules that show it, and ``general`` when it is kube-proxy's
    or the kernel's behaviour rather than something a rule in the input says."""

    key: str
    args: Mapping[str, str] = field(default_factory=dict)
    cites: tuple[Citation, ...] = ()
    general: bool = False


@dataclass(frozen=True)
class Section:
    key: str
    args: Mapping[str, str]
    sentences: tuple[Sentence, ...]


@dataclass(frozen=True)
class PortExplanation:
    name: str
    family: int
    protocol: str
    sections: tuple[Section, ...]


@dataclass(frozen=True)
class Explanation:
    query: str
    ports: tuple[PortExplanation, ...]
    warnings: tuple[str, ...] = ()


def explain_trace(trace: ServiceTrace, ruleset: Ruleset | None = None) -> Explanation:
    """The explanation of a traced service. ``ruleset`` (optional) lets sentences
    about rules no example packet matched (the localhost firewall, affinity checks,
    another Service's REJECT rule as an example) cite those rules too."""
    ports = tuple(_explain_port(pt, ruleset) for pt in trace.ports)
    return Explanation(trace.query, ports, trace.warnings)


# --- one service port ------------------------------------------------------------

def _explain_port(pt: PortTrace, ruleset: Ruleset | None) -> PortExplanation:
    sp = pt.port
    sections = [_overview(pt), _chains(pt, ruleset)]
    for et in pt.entries:
        for sc in et.scenarios:
            sections.append(_way(sp, et, sc, ruleset))
    sections.append(_changes(pt, ruleset))
    return PortExplanation(sp.display_name, int(sp.family), sp.protocol or "tcp", tuple(sections))


def _all_steps(pt: PortTrace):
    for et in pt.entries:
        for sc in et.scenarios:
            for o in sc.outcomes:
                yield from o.steps


def _overview(pt: PortTrace) -> Section:
    sp = pt.port
    out: list[Sentence] = []
    cip = sp.cluster_ip
    args = {"name": sp.display_name, "proto": sp.protocol or "tcp", "n": str(len(sp.endpoints))}
    out.append(Sentence("overview.what", args, tuple(_entry_cite(pt, e) for e in sp.entries[:1])))
    for e in sp.entries:
        cite = (_entry_cite(pt, e),)
        if e.kind == EntryKind.CLUSTER_IP and e.address:
            out.append(Sentence("overview.cluster_ip", {"addr": _hostport(e.address, e.port), "proto": e.protocol
                                                        or args["proto"]}, cite))
        elif e.kind == EntryKind.NODE_PORT:
            key = "overview.node_port_localhost" if e.localhost else "overview.node_port"
            target = cip.port if cip and cip.port else ""
            out.append(Sentence(key, {"port": str(e.port), "proto": e.protocol or args["proto"],
                                      "addr": e.address or "", "svcport": str(target)}, cite))
        elif e.kind == EntryKind.EXTERNAL_IP and e.address:
            out.append(Sentence("overview.external_ip", {"addr": _hostport(e.address, e.port)}, cite))
        elif e.kind == EntryKind.LOAD_BALANCER and e.address and e.table == "nat":
            out.append(Sentence("overview.load_balancer", {"addr": _hostport(e.address, e.port),
                                                           "ranges": ", ".join(sp.source_ranges)}, cite))
        elif e.kind == EntryKind.HEALTH_CHECK:
            out.append(Sentence("overview.health_check", {"port": str(e.port)}, cite))
    known = {e.endpoint: e for e in pt.objects or ()}
    for ep in sp.endpoints:
        info = known.get(ep.endpoint)
        a = {"ep": ep.endpoint or "?", "share": _frac(ep.share), "pct": _pct(ep.share), "chain": ep.sep,
             "pod": (info.pod or "") if info else "", "node": (info.node_name or "") if info else "",
             "local": "yes" if info is not None and info.local else ""}
        cite = _branch_cite(pt, ep.sep, ep.line)
        key = "overview.endpoint_pod" if a["pod"] else "overview.endpoint"
        out.append(Sentence(key if ep.endpoint else "overview.endpoint_unknown", a, cite))
    if not sp.endpoints and not sp.local_endpoints:
        rej = [e for e in sp.entries if e.verdict in ("reject", "drop")]
        out.append(Sentence("overview.no_endpoints", {"verdict": (rej[0].verdict or "").upper() if rej else ""},
                            tuple(_entry_cite(pt, e) for e in rej)))
    return Section("section.overview", {"name": sp.display_name}, tuple(out))


def _entry_cite(pt: PortTrace, e) -> Citation:
    """The rule (iptables) or map element (nftables) an entry point was read from."""
    if e.text.startswith("-A "):
        return Citation(e.table, e.text.split()[1], e.line, e.text)
    for s in _all_steps(pt):  # nftables: the set or map whose element this is, as the trace looked it up
        if s.line == e.line and s.chain.startswith("@"):
            return Citation.of(s)
    return Citation(e.table, _entry_place(pt.port, e), e.line, e.text)


def _entry_place(sp: ServicePortRules, e) -> str:
    """Where an entry point is written: its iptables chain, or its nft map."""
    if sp.dataplane == "nftables":
        np = e.kind == EntryKind.NODE_PORT
        if e.table == "nat":
            return "@service-nodeports" if np else "@service-ips"
        if e.verdict in ("reject", "drop") and "goto firewall-" not in e.text:
            return "@no-endpoint-nodeports" if np else "@no-endpoint-services"
        return "@firewall-ips"
    return "KUBE-SERVICES" if e.table == "nat" else e.text.split()[1]


def _branch_cite(pt: PortTrace, sep: str, line: int) -> tuple[Citation, ...]:
    for s in _all_steps(pt):
        if s.action == f"jump {sep}" and s.line == line:
            return (Citation.of(s),)
    return ()


_SHARED_ORDER = ("PREROUTING", "OUTPUT", "KUBE-SERVICES", "KUBE-NODEPORTS", "KUBE-FW", "KUBE-EXT", "KUBE-SVC",
                 "KUBE-SVL", "KUBE-XLB", "KUBE-MARK-MASQ", "KUBE-SEP")


def _chains(pt: PortTrace, ruleset: Ruleset | None = None) -> Section:
    """Each chain a packet of this service goes through, with its role, citing the
    first rule of it that an example packet used."""
    first: dict[tuple[str, str], Step] = {}
    for s in _all_steps(pt):
        if s.line and ((s.table, s.chain) not in first or s.line < first[(s.table, s.chain)].line):
            first[(s.table, s.chain)] = s
    if pt.port.dataplane == "nftables":
        from svcinspect.dataplane.nftables import explain as nft
        out = []
        for (table, chain), step in first.items():
            key, extra = nft.role(ruleset, pt.port, table, chain)
            out.append(Sentence(key, {"chain": chain, "table": table, "n": str(len(pt.port.endpoints)), **extra},
                                (Citation.of(step),)))
        out.sort(key=nft.rank)
        return Section("section.chains", {"name": pt.port.display_name}, tuple(out))
    own = {v for k, v in pt.port.chains.items() if k != "sep" and isinstance(v, str)}
    seps = [c for c in pt.port.chains.get("sep", ()) or ()]
    out: list[Sentence] = []
    sep_cites: list[Citation] = []
    for (table, chain), step in first.items():
        kind = classify_chain(chain)
        if kind is ChainKind.SEP:
            sep_cites.append(Citation.of(_dnat_step(pt, chain) or step))
            continue
        if kind is ChainKind.BUILTIN:
            key = f"chain.builtin.{table}.{chain}"
        elif kind is ChainKind.SVC and not any(x.chain == chain and x.action == "jump KUBE-MARK-MASQ"
                                               for x in _all_steps(pt)):
            key = "chain.svc_plain"  # no masquerade rule (no --cluster-cidr given to kube-proxy)
        elif kind.per_service:
            key = f"chain.{kind.value}"
        else:
            key = f"chain.{table}.{kind.value}"
        out.append(Sentence(key, {"chain": chain, "table": table, "own": "yes" if chain in own else "",
                                  "n": str(len(pt.port.endpoints))}, (Citation.of(step),)))
    if seps or sep_cites:
        out.append(Sentence("chain.sep", {"chains": ", ".join(seps), "n": str(len(seps))}, tuple(sep_cites)))
    out.sort(key=lambda s: _chain_rank(s))
    return Section("section.chains", {"name": pt.port.display_name}, tuple(out))


def _chain_rank(s: Sentence) -> tuple:
    chain = s.args.get("chain", "KUBE-SEP")
    table = s.args.get("table", "nat")
    order = {"nat": 0, "filter": 1}.get(table, 2)
    if chain == "POSTROUTING" or chain == "KUBE-POSTROUTING":
        return (3, chain)
    for i, p in enumerate(_SHARED_ORDER):
        if chain.startswith(p):
            return (order, i, chain)
    return (order, len(_SHARED_ORDER), chain)


def _dnat_step(pt: PortTrace, chain: str) -> Step | None:
    for s in _all_steps(pt):
        if s.chain == chain and s.action.startswith("DNAT"):
            return s
    return None


# --- one way in ------------------------------------------------------------------

def _way(sp: ServicePortRules, et: EntryTrace, sc: Scenario, ruleset: Ruleset | None) -> Section:
    p = sc.packet
    title = {"client": sc.client or "other", "src": str(p.src), "dst": _hostport(str(p.dst), p.dport),
             "proto": p.proto, "entry": et.entry.kind, "label": sc.label}
    out: list[Sentence] = [Sentence(f"way.start.{p.hook.value}", {"src": str(p.src), "dst": title["dst"],
                                                                     "proto": p.proto})]
    if not sc.outcomes:
        return Section("section.way", title, tuple(out))
    rep = next((o for o in sc.outcomes if o.disposition is Disposition.DNAT), sc.outcomes[0])
    if sp.dataplane == "nftables":
        from svcinspect.dataplane.nftables import explain as nft
        journey = nft.journey(sp, sc, rep, ruleset)
    else:
        journey = _journey(sp, sc, rep)
    no_localhost = ruleset is not None and not dataplane_of(ruleset).localhost_node_ports
    if sc.client == "localhost" and no_localhost:
        journey[0:0] = _localhost(ruleset, sp)  # said first: nothing below is a node port
    elif sc.client == "localhost":  # before the masquerade that the sentences lead up to
        at = next((i for i, x in enumerate(journey) if x.key.startswith("post.")), len(journey))
        journey[at:at] = _localhost(ruleset, sp)
    out.extend(journey)
    out.extend(_result(sc, rep))
    return Section("section.way", title, tuple(out))


def _journey(sp: ServicePortRules, sc: Scenario, o: Outcome) -> list[Sentence]:
    out: list[Sentence] = []
    steps = list(o.steps)
    i = 0
    split_done = False
    while i < len(steps):
        s = steps[i]
        kind = classify_chain(s.chain)
        target = s.action.split(" ", 1)[1] if s.action.startswith(("jump ", "goto ")) else None
        tkind = classify_chain(target) if target else None
        if s.table == "filter":
            j = i
            while j < len(steps) and steps[j].table == "filter":
                j += 1
            out.append(_filter(steps[i:j], o, sc))
            i = j
            continue
        if s.table == "nat" and s.chain == "POSTROUTING" or kind is ChainKind.POSTROUTING:
            j = i
            while j < len(steps) and steps[j].table == "nat" and (steps[j].chain == "POSTROUTING" or classify_chain(
                    steps[j].chain) is ChainKind.POSTROUTING):
                j += 1
            out.append(_postrouting(steps[i:j], o, sc))
            i = j
            continue
        if target == "KUBE-MARK-MASQ":
            cites = [Citation.of(s)]
            if i + 1 < len(steps) and classify_chain(steps[i + 1].chain) is ChainKind.MARK_MASQ:
                cites.append(Citation.of(steps[i + 1]))
                i += 1
            out.append(_mark_masq(s, sc, tuple(cites)))
        elif kind is ChainKind.MARK_MASQ:
            out.append(Sentence("step.mark", {"action": s.action}, (Citation.of(s),)))
        elif kind is ChainKind.BUILTIN and s.table == "nat" and s.chain in ("PREROUTING", "OUTPUT"):
            key = "step.hook_assumed" if s.source.startswith("<assumed") else f"step.hook.{s.chain}"
            out.append(Sentence(key, {"target": target or s.action, "chain": s.chain}, (Citation.of(s),)))
            following = steps[i + 1] if i + 1 < len(steps) else None
            if target == "KUBE-SERVICES" and (following is None or following.table != "nat"
                                              or following.chain != "KUBE-SERVICES"):
                out.append(Sentence("step.no_dispatch", {"dst": _hostport(str(sc.packet.dst), sc.packet.dport),
                                                         "proto": sc.packet.proto}, (Citation.of(s),)))
        elif kind is ChainKind.SERVICES and tkind is ChainKind.NODEPORTS:
            out.append(Sentence("step.to_nodeports", {"dst": str(sc.packet.dst)}, (Citation.of(s),)))
        elif kind is ChainKind.SERVICES and target:
            e = sc.packet
            out.append(Sentence("step.dispatch", {"dst": _hostport(str(e.dst), e.dport), "proto": e.proto,
                                                  "target": target}, (Citation.of(s),)))
        elif kind is ChainKind.NODEPORTS and target:
            key = "step.nodeport_localhost" if "127.0.0.0/8" in s.rule else "step.nodeport"
            out.append(Sentence(key, {"port": str(sc.packet.dport), "target": target}, (Citation.of(s),)))
        elif kind is ChainKind.FW and tkind in (ChainKind.EXT, ChainKind.SVC, ChainKind.SVL, ChainKind.XLB):
            out.append(Sentence("step.fw_allowed", {"src": str(sc.packet.src), "target": target},
                                (Citation.of(s),)))
        elif kind in (ChainKind.EXT, ChainKind.XLB) and tkind in (ChainKind.SVC, ChainKind.SVL):
            if "pod traffic for" in s.rule:
                key = "step.ext_pod_shortcut"
            elif "route LOCAL traffic" in s.rule:
                key = "step.ext_local_shortcut"
            else:
                key = "step.ext_to_svl" if tkind is ChainKind.SVL else "step.ext_to_svc"
            out.append(Sentence(key, {"target": target, "chain": s.chain}, (Citation.of(s),)))
        elif kind in (ChainKind.SVC, ChainKind.SVL, ChainKind.XLB) and tkind is ChainKind.SEP:
            if not split_done:
                out.extend(_split(sp, sc, s.chain))
                split_done = True
        elif kind is ChainKind.SEP and s.action.startswith("DNAT"):
            before, _, after = s.action[5:].partition(" -> ")
            others = tuple(Citation.of(d) for d in _other_dnats(sc, s))
            out.append(Sentence("step.dnat", {"before": before, "after": after, "chain": s.chain}, (Citation.of(s),)))
            if others:
                out.append(Sentence("step.dnat_others", {"n": str(len(others))}, others))
        elif s.action.startswith("DNAT"):
            before, _, after = s.action[5:].partition(" -> ")
            out.append(Sentence("step.dnat", {"before": before, "after": after, "chain": s.chain}, (Citation.of(s),)))
        elif s.action.startswith("MASQUERADE") or s.action.startswith("SNAT"):
            out.append(Sentence("step.masquerade", {"snat": o.snat_source or "", "src": str(sc.packet.src)},
                                (Citation.of(s),)))
        elif s.action in ("REJECT",) or s.action.startswith(("REJECT", "DROP")):
            out.append(Sentence("step.reject" if s.action.startswith("REJECT") else "step.drop",
                                {"chain": s.chain}, (Citation.of(s),)))
        else:
            out.append(Sentence("step.generic", {"table": s.table, "chain": s.chain, "action": s.action},
                                (Citation.of(s),)))
        i += 1
    return out


_NOT_FROM = re.compile(r"! -s (\S+)")


def _mark_masq(s: Step, sc: Scenario, cites: tuple[Citation, ...]) -> Sentence:
    kind = classify_chain(s.chain)
    src = str(sc.packet.src)
    m = _NOT_FROM.search(s.rule)
    if m:
        return Sentence("masq.off_cluster", {"src": src, "cidr": m.group(1)}, cites)
    if kind is ChainKind.SEP:
        return Sentence("masq.hairpin", {"src": src}, cites)
    if "--src-type LOCAL" in s.rule:
        return Sentence("masq.local_source", {"src": src}, cites)
    if kind in (ChainKind.EXT, ChainKind.XLB, ChainKind.FW):
        return Sentence("masq.external", {"src": src}, cites)
    return Sentence("masq.other", {"src": src, "chain": s.chain}, cites)


def _split(sp: ServicePortRules, sc: Scenario, chain: str) -> list[Sentence]:
    """The random choice of an endpoint: each rule's probability and what it
    comes to overall (exactly), citing each rule."""
    eps = sp.local_endpoints if chain == sp.chains.get("svl") and sp.local_endpoints is not None else sp.endpoints
    jumps: dict[str, Step] = {}
    for o in sc.outcomes:
        for s in o.steps:
            if s.chain == chain and s.action.startswith("jump KUBE-SEP-"):
                jumps.setdefault(s.action[5:], s)
    out: list[Sentence] = []
    if len(eps) == 1:
        e = eps[0]
        cite = (Citation.of(jumps[e.sep]),) if e.sep in jumps else ()
        return [Sentence("split.one", {"chain": chain, "ep": e.endpoint or "?", "sep": e.sep}, cite)]
    rule_lines = [str(jumps[e.sep].line) for e in eps if e.sep in jumps]
    out.append(Sentence("split.intro", {"chain": chain, "n": str(len(eps)), "lines": ", ".join(rule_lines)}))
    rest = Fraction(1)
    for i, e in enumerate(eps):
        cite = (Citation.of(jumps[e.sep]),) if e.sep in jumps else ()
        a = {"ep": e.endpoint or "?", "share": _frac(e.share), "pct": _pct(e.share), "sep": e.sep,
             "p": e.probability or "", "rest": _frac(rest), "line": str(e.line)}
        if e.probability is None:
            key = "split.last"
        elif i == 0:
            key = "split.first"
        else:
            key = "split.next"
        out.append(Sentence(key, a, cite))
        rest -= e.share
    if sp.affinity_seconds is not None:
        out.append(Sentence("split.affinity", {"seconds": str(sp.affinity_seconds)}))
    return out


def _other_dnats(sc: Scenario, shown: Step) -> list[Step]:
    seen = {shown.chain}
    out = []
    for o in sc.outcomes:
        for s in o.steps:
            if s.action.startswith("DNAT") and s.chain not in seen:
                seen.add(s.chain)
                out.append(s)
    return out


def _filter(steps: list[Step], o: Outcome, sc: Scenario) -> Sentence:
    hook = steps[0].chain if classify_chain(steps[0].chain) is ChainKind.BUILTIN else ""
    cites = tuple(Citation.of(s) for s in steps)
    last = steps[-1]
    if last.action == "ACCEPT" and classify_chain(last.chain) is ChainKind.FORWARD:
        return Sentence("filter.accept_marked", {"hook": hook, "chain": last.chain}, cites)
    if last.action == "ACCEPT":
        return Sentence("filter.accept", {"hook": hook, "chain": last.chain}, cites)
    if last.action.startswith("REJECT"):
        return Sentence("filter.reject", {"hook": hook, "chain": last.chain}, cites)
    if last.action.startswith("DROP") or last.action.startswith("policy DROP"):
        return Sentence("filter.drop", {"hook": hook, "chain": last.chain}, cites)
    return Sentence("filter.pass", {"hook": hook, "dst": o.endpoint or str(o.packet.dst)}, cites)


def _postrouting(steps: list[Step], o: Outcome, sc: Scenario) -> Sentence:
    cites = tuple(Citation.of(s) for s in steps)
    if any(s.action.startswith(("MASQUERADE", "SNAT")) for s in steps):
        key = "post.masq_same" if o.snat_source == str(sc.packet.src) else "post.masq"
        return Sentence(key, {"src": str(sc.packet.src), "snat": o.snat_source or ""}, cites)
    if steps and steps[-1].action == "RETURN":
        return Sentence("post.no_mark", {"src": str(sc.packet.src)}, cites)
    return Sentence("post.other", {}, cites)


def _localhost(ruleset: Ruleset | None, sp: ServicePortRules) -> list[Sentence]:
    if ruleset is not None and not dataplane_of(ruleset).localhost_node_ports:
        return [Sentence("localhost.not_served", {"mode": dataplane_of(ruleset).name}, general=True)]
    out = [Sentence("localhost.route_localnet", {}, general=True)]
    for line, text in _raw(ruleset, sp, "filter", "KUBE-FIREWALL"):
        if "127.0.0.0/8" in text and "DROP" in text:
            out.append(Sentence("localhost.firewall", {}, (Citation("filter", "KUBE-FIREWALL", line, text),)))
            break
    return out


def _raw(ruleset: Ruleset | None, sp: ServicePortRules, table: str, chain: str):
    if ruleset is None:
        return ()
    t = ruleset.table(table, sp.family)
    if t is None:
        return ()
    if not hasattr(t, "raw_rules"):  # an nftables table: its chains hold the rules with their lines
        c = t.chains.get(chain) if hasattr(t, "chains") else None
        return tuple((r.line, r.text) for r in c.rules) if c is not None else ()
    return t.raw_rules(chain) or ()


def _result(sc: Scenario, rep: Outcome) -> list[Sentence]:
    out: list[Sentence] = []
    dnat = [o for o in sc.outcomes if o.disposition is Disposition.DNAT]
    masq = {o.masquerade for o in dnat}
    if dnat:
        src_after = rep.snat_source if rep.masquerade and rep.snat_source else str(sc.packet.src)
        key = "result.dnat_kept"
        if rep.masquerade:
            key = "result.dnat_masq_same" if src_after == str(sc.packet.src) else "result.dnat_masq"
        last = [s for s in rep.steps if s.action.startswith(("DNAT", "MASQUERADE", "SNAT"))]
        out.append(Sentence(key, {"src": str(sc.packet.src), "src_after": src_after, "n": str(len(dnat)),
                                  "orig": _hostport(str(sc.packet.dst), sc.packet.dport)},
                            tuple(Citation.of(s) for s in last)))
        if len(masq) > 1:
            out.append(Sentence("result.masq_differs", {}))
        reply = "reply.masq" if rep.masquerade else ("reply.kept" if sc.client == "pod" else "reply.kept_direct")
        if sc.client == "localhost":
            reply = "reply.localhost"
        out.append(Sentence(reply, {"ep": rep.endpoint or "", "orig": _hostport(str(sc.packet.dst), sc.packet.dport),
                                    "src": str(sc.packet.src), "snat": rep.snat_source or ""}, general=True))
    for o in sc.outcomes:
        if o.disposition in (Disposition.REJECT, Disposition.DROP) and o.verdict_step is not None:
            always = "_always" if o.probability == 1 else ""
            out.append(Sentence(f"result.{o.disposition.value}{always}", {"p": _frac(o.probability)},
                                (Citation.of(o.verdict_step),)))
        elif o.disposition is Disposition.NONE:
            out.append(Sentence("result.none_always" if o.probability == 1 else "result.none",
                                {"p": _frac(o.probability)}))
    conds = sorted({c for o in sc.outcomes for c in conditions(o)})
    for c in conds:
        out.append(Sentence("result.condition", {"text": c}))
    return out


# --- what would change -----------------------------------------------------------

def _changes(pt: PortTrace, ruleset: Ruleset | None) -> Section:
    sp = pt.port
    if sp.dataplane == "nftables":
        from svcinspect.dataplane.nftables import explain as nft
        return Section("section.changes", {"name": sp.display_name}, tuple(nft.changes(sp, ruleset)))
    out: list[Sentence] = []
    svc = sp.chains.get("svc")
    # Session affinity.
    if sp.affinity_seconds is not None:
        cites = tuple(Citation("nat", svc, line, text) for line, text in _raw(ruleset, sp, "nat", svc or "")
                      if "--rcheck" in text)
        out.append(Sentence("change.affinity_on", {"seconds": str(sp.affinity_seconds)}, cites))
    else:
        out.append(Sentence("change.affinity_off", {}, general=True))
    # Traffic policies.
    ext = sp.chains.get("ext")
    if sp.local_endpoints is not None:
        svl = sp.chains.get("svl") or sp.chains.get("xlb") or ""
        cites = tuple(Citation("nat", svl, line, text) for line, text in _raw(ruleset, sp, "nat", svl))
        scope = "external" if ext or sp.chains.get("xlb") else "internal"
        out.append(Sentence(f"change.{scope}_local", {"chain": svl, "n": str(len(sp.local_endpoints))}, cites))
    elif ext:
        cites = tuple(Citation("nat", ext, line, text) for line, text in _raw(ruleset, sp, "nat", ext)
                      if "KUBE-MARK-MASQ" in text)
        out.append(Sentence("change.external_cluster", {"chain": ext}, cites))
    else:
        out.append(Sentence("change.internal_cluster", {}, general=True))
    # No endpoints.
    if sp.endpoints or sp.local_endpoints:
        example = ()
        for line, text in _raw(ruleset, sp, "filter", "KUBE-SERVICES"):
            if "has no endpoints" in text and "REJECT" in text:
                example = (Citation("filter", "KUBE-SERVICES", line, text),)
                break
        out.append(Sentence("change.no_endpoints" if example else "change.no_endpoints_general", {}, example,
                            general=not example))
    return Section("section.changes", {"name": sp.display_name}, tuple(out))


# --- helpers ----------------------------------------------------------------------

def _hostport(addr: str | None, port) -> str:
    if addr is None:
        return f"*:{port}"
    a = f"[{addr}]" if ":" in addr else addr
    return f"{a}:{port}" if port is not None else a


def _frac(x: Fraction | None) -> str:
    """A share as a fraction; "?" when the input does not decide it (an excerpt)."""
    return "?" if x is None else (str(x) if x != 1 else "1")


def _pct(x: Fraction | None) -> str:
    return "?" if x is None else f"{float(x) * 100:.1f}%"


def sentences(expl: Explanation):
    """Every (port, section, sentence) in order: what tests and renderers walk."""
    for pe in expl.ports:
        for sec in pe.sections:
            for s in sec.sentences:
                yield pe, sec, s


__all__ = ["Citation", "Explanation", "PortExplanation", "Section", "Sentence", "explain_trace", "sentences"]
