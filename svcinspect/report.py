"""``report``: everything svcinspect knows about one input, gathered for one page.

``build_report`` runs the analyses (services, per Service its graph, trace and
explanation, ``check`` when objects are given) and returns plain data; drawing
the graphs (Graphviz, a subprocess) happens in the CLI and the page is written by
``svcinspect.render.html``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from svcinspect.errors import Diagnostic, SvcinspectError
from svcinspect.simulate import Environment
from svcinspect.explain import Explanation, explain_trace
from svcinspect.model.netfilter import Ruleset
from svcinspect.model.service import ServicePortRules
from svcinspect.dataplane import dataplane_of
from svcinspect.trace import ServiceTrace, trace_service


@dataclass(frozen=True)
class ServiceDetail:
    name: str                        # ns/name, or the chain hash of a comment-less port
    dot: str | None                  # the graph as DOT text (None: could not be built)
    trace: ServiceTrace | None
    explanation: Explanation | None
    problems: tuple[str, ...] = ()   # what could not be built, and why


@dataclass(frozen=True)
class TableSummary:
    family: int
    table: str
    chains: int
    rules: int


@dataclass(frozen=True)
class Report:
    origin: tuple[str, ...]
    tables: tuple[TableSummary, ...]
    completeness: tuple[str, ...]      # what the input does or does not let us see
    ports: tuple[ServicePortRules, ...]
    objects: dict | None               # (chain hash, family) -> endpoints of the EndpointSlices
    details: tuple[ServiceDetail, ...]
    omitted: int                       # Services beyond ``max_services``: in the table, without details
    check: object | None               # a CheckReport when objects were given
    node: str | None
    diagnostics: tuple[Diagnostic, ...] = field(default=())


def build_report(ruleset: Ruleset, state=None, node: str | None = None, env: Environment = Environment(),
                 namespace: str | None = None, max_services: int = 50, lang: str = "en") -> Report:
    """Summaries, the services table and up to ``max_services`` Services in
    detail (graph, trace, explanation), plus ``check`` findings with objects."""
    from svcinspect.graph import build_graph
    from svcinspect.render.dot import render_dot

    ports = [p for p in dataplane_of(ruleset).build_service_ports(ruleset)
             if not namespace or (p.name or "").startswith(namespace + "/")]
    objects = None
    if state is not None:
        from svcinspect.expected import build_expected, endpoints_by_port
        objects = endpoints_by_port(build_expected(state, node, ruleset.families))
    names = list(dict.fromkeys((p.name.split(":")[0] if p.name else p.key) for p in ports))
    details = []
    for name in names[:max_services]:
        problems: list[str] = []
        dot = tr = expl = None
        try:
            g, title = build_graph(ruleset, name, None)
            dot = render_dot(g, title)
        except SvcinspectError as exc:
            problems.append(f"graph: {exc}")
        try:
            tr = trace_service(ruleset, name, env, objects)
            expl = explain_trace(tr, ruleset)
        except SvcinspectError as exc:
            problems.append(f"trace: {exc}")
        details.append(ServiceDetail(name, dot, tr, expl, tuple(problems)))
    check = None
    if state is not None:
        from svcinspect.check import check_rules
        check = check_rules(ruleset, state, node, namespace)
    tables = tuple(_table_summary(t) for t in ruleset.tables)
    return Report(tuple(ruleset.origin), tables, _completeness(ruleset, ports, state, node), tuple(ports), objects,
                  tuple(details), max(0, len(names) - max_services), check, node, tuple(_diagnostics(ruleset)))


def _table_summary(t) -> TableSummary:
    if hasattr(t, "raw_rules"):  # an iptables table
        return TableSummary(int(t.family), t.name, len(t.chains), sum(len(t.raw_rules(c) or ()) for c in t.chains))
    fam = t.address_family  # an nft table: "ip kube-proxy"
    return TableSummary(int(fam) if fam is not None else 0, f"{t.family} {t.name}", len(t.chains),
                        sum(len(c.rules) for c in t.chains.values()))


def _completeness(ruleset: Ruleset, ports, state, node) -> tuple[str, ...]:
    if dataplane_of(ruleset).name == "nftables":
        return _completeness_nft(ruleset, ports, state, node)
    out = []
    fams = sorted({int(t.family) for t in ruleset.tables})
    for fam in (4, 6):
        if fam not in fams:
            out.append(f"no IPv{fam} tables in the input: IPv{fam} Services cannot be seen")
    for t in ruleset.tables:
        if t.name == "nat" and "KUBE-SERVICES" not in t.chains:
            out.append(f"IPv{int(t.family)} nat has no KUBE-SERVICES chain: an excerpt, or kube-proxy is not in "
                       f"iptables mode")
        if t.name == "nat" and not any(" -j KUBE-SERVICES" in text for _, text in t.raw_rules("PREROUTING") or ()):
            out.append(f"IPv{int(t.family)} nat PREROUTING does not jump to KUBE-SERVICES (kube-proxy's restore "
                       f"input, or an excerpt): the hooks are simulated")
    if not any(t.name == "filter" for t in ruleset.tables):
        out.append("no filter table: REJECT/DROP for Services without endpoints cannot be seen")
    out.extend(_objects_completeness(state, node, ports))
    return tuple(out)


def _completeness_nft(ruleset, ports, state, node) -> tuple[str, ...]:
    from svcinspect.completeness import assess_input
    out = list(assess_input(ruleset).reasons)
    for fam in (4, 6):
        if fam not in {int(f) for f in ruleset.families}:
            out.append(f"no {'ip' if fam == 4 else 'ip6'} kube-proxy table in the input: IPv{fam} Services cannot "
                       f"be seen")
    out.extend(_objects_completeness(state, node, ports))
    return tuple(out)


def _objects_completeness(state, node, ports) -> list[str]:
    out = []
    if state is None:
        out.append("no Kubernetes objects given (--objects or the API): pods, nodes and check findings are unknown")
    elif not node:
        out.append("no --node given: Local traffic policies and topology cannot be compared with the objects")
    if not ports:
        out.append("no kube-proxy service ports found in the rules")
    return out


def _diagnostics(ruleset: Ruleset) -> list[Diagnostic]:
    out = list(ruleset.diagnostics)
    for t in ruleset.tables:
        if not hasattr(t, "decoded_chains"):  # nft tables decode everything when read
            continue
        for ch in t.decoded_chains():
            if ch.rules.decoded:
                for r in ch.rules:
                    out.extend(r.diagnostics)
    return out
