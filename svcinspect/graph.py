"""The chain graph: queries over jumps (dangling, unreferenced, cycles, one service's
chains) and a networkx graph of chains, entry points and endpoints for rendering.

Pure values: a :class:`Ruleset` in, lists, sets and ``networkx`` graphs out.

Large dumps (~330k rules) are scanned from the raw rule text: the target of a rule
is the word after its last `` -j ``/`` -g `` when no quote follows it (so it cannot
sit inside a comment or a quoted option). Only rules that do not fit that shape are
decoded, one by one.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from itertools import filterfalse
from dataclasses import dataclass
from typing import TYPE_CHECKING

from svcinspect.dataplane.iptables.kubeproxy import (_HASHED, ChainKind, chain_hash, classify_chain, normalize_spn,
                                                     parse_comment)
from svcinspect.model.netfilter import BUILTIN_CHAINS, Family, Ruleset, Table
from svcinspect import perf
from svcinspect.dataplane.iptables import bulk
from svcinspect.dataplane.iptables.parse import KNOWN_TARGETS, raw_comment, raw_target
from svcinspect.model.service import ServicePortRules
from svcinspect.dataplane import select_service_ports as _select

if TYPE_CHECKING:
    import networkx as nx

# The optional compiled edge pass (svcinspect/dataplane/iptables/_edges.c, built by
# pip install where a C compiler is present); SVCINSPECT_NO_NATIVE=1 or
# :func:`set_native` (svcinspect.perf) uses the pure-Python reference instead.
try:
    from svcinspect.dataplane.iptables import _edges as native_edges
except ImportError:  # not built: the pure-Python pass, same answers
    native_edges = None
_native = native_edges if os.environ.get("SVCINSPECT_NO_NATIVE", "") in ("", "0") else None


def set_native(on: bool) -> bool:
    """Use the compiled edge pass (when built) or the pure-Python one; returns the old setting."""
    global _native
    was, _native = _native is not None, native_edges if on else None
    return was

# Chains kube-proxy and kubelet create on purpose with nothing jumping to them.
UNREFERENCED_OK = frozenset({"KUBE-PROXY-CANARY", "KUBE-KUBELET-CANARY", "KUBE-IPTABLES-HINT"})
_PER_SERVICE_PREFIXES = ("SVC", "SVL", "EXT", "FW", "XLB")


@dataclass(frozen=True, slots=True)
class DanglingJump:
    """A rule that jumps (or goes) to a name that is neither a chain of its table
    nor a target iptables knows: iptables-restore would refuse it, or it is an excerpt."""

    family: Family
    table: str
    chain: str
    line: int
    text: str
    target: str


@dataclass(frozen=True, slots=True)
class ChainRef:
    """A chain, located: ``line`` is where it is declared (or first used)."""

    family: Family
    table: str
    chain: str
    line: int


# --- jumps, read from raw text ------------------------------------------------------

# One rule's jump as the scan sees it: (chain, index in chain, line, text, target, goto).
_RawJump = tuple[str, int, int, str, str, bool]


def _scan(table: Table, names=None) -> Iterator[_RawJump]:
    """Every rule with a target in ``table`` (or in the chains ``names``)."""
    for cname in (table.chains if names is None else names):
        raw = table.raw_rules(cname) or ()
        for i, (line, text) in enumerate(raw):
            t = raw_target(text)
            if t is None:
                continue
            if t is False:
                target = table.chains[cname].rules[i].target
                if target is None:
                    continue
                t = (target.name, target.goto)
            yield cname, i, line, text, t[0], t[1]


# The last few tables scanned (a `check` asks several questions of one dump).
_CACHE: list[tuple[Table, tuple[_RawJump, ...]]] = []


def _jumps(table: Table) -> tuple[_RawJump, ...]:
    for t, jumps in _CACHE:
        if t is table:
            return jumps
    jumps = tuple(_scan(table))
    _CACHE.insert(0, (table, jumps))
    del _CACHE[4:]
    return jumps


# A rule line's first " -j " / " -g ", its name and the rest of the line. raw_target
# reads the last flag: the two agree when the rest holds no other flag and no quote
# (a line where they might not is read by _scan).
_FIRST_JUMP = re.compile(r" -[jg] ([^ \n]*)([^\n]*)$", re.M)
_EDGE_CACHE: list[tuple[Table, dict]] = []


def _edge_pass(names: list[str], segs: list) -> tuple[dict[str, tuple[str, ...]], list[str]]:
    """The fast edge pass, in pure Python (the reference of the compiled
    ``_edges.edges``): ``segs[i]`` is the segment list of chain ``names[i]``
    (``table.chains.blocks``). A chain that is one ASCII block of whole lines
    without tabs or long options, each line's first ``-j``/``-g`` a name with
    no quote or other flag after it, maps to its targets (each once, in
    first-seen order); every other chain is returned in the slow list, in order."""
    out: dict[str, tuple[str, ...]] = {}
    slow: list[str] = []
    for name, seg in zip(names, segs):
        block = seg[0][1] if isinstance(seg, (list, tuple)) and len(seg) == 1 else None
        if (not isinstance(block, str) or not block.endswith("\n") or not block.isascii() or "\t" in block
                or "--jump" in block or "--goto" in block):
            slow.append(name)
            continue
        found = _FIRST_JUMP.findall(block)
        if len(found) != block.count("\n") or any(not n or n[0] == "-" or '"' in rest or " -j " in rest
                                                   or " -g " in rest for n, rest in found):
            slow.append(name)
            continue
        out[name] = tuple(dict.fromkeys([n for n, _ in found]))
    return out, slow


def _edges(table: Table) -> dict[str, tuple[str, ...]]:
    """chain -> the names its rules jump or go to (each once), as :func:`_scan`
    finds them, without a tuple per rule: one pass over the chain blocks of a
    dump shaped as iptables-save prints it (:func:`_edge_pass`, compiled when
    built); a chain it declines (quotes after the flag, tabs, long options,
    lines without a flag, several runs) is read by :func:`_scan`. Computed once
    per table for every graph question. Same answer either way
    (tests/test_perf_equivalence.py, tests/test_perf_edges.py)."""
    for t, edges in _EDGE_CACHE:
        if t is table:
            return edges
    blocks = getattr(table.chains, "blocks", None) if bulk.enabled() else None
    if blocks is not None:
        names = list(table.chains)
        out, slow = (_native.edges if _native is not None else _edge_pass)(names, list(map(blocks, names)))
    else:
        out, slow = {}, list(table.chains)
    found: dict[str, dict[str, None]] = {}
    for cname, _, _, _, target, _ in _scan(table, slow):
        found.setdefault(cname, {})[target] = None
    out.update((cname, tuple(targets)) for cname, targets in found.items())
    _EDGE_CACHE.insert(0, (table, out))
    del _EDGE_CACHE[4:]
    return out


def edges_of(ruleset: Ruleset) -> None:
    """Read the jumps of every table now (``check`` asks several questions of them)."""
    for table in ruleset.tables:
        _summary(table)


def jumps_read(table: Table) -> bool:
    """Whether the jumps of ``table`` were read already (then :func:`undeclared_targets` costs nothing)."""
    return any(t is table for t, _ in _SUMMARY_CACHE)


@dataclass(frozen=True, slots=True)
class _Summary:
    """What check asks of a table's jumps. ``unreferenced``: the chains (in dump
    order) no other chain jumps to; ``declared``: every target is a chain or a
    known target; ``down``: every jump to a chain goes down kube-proxy's layers
    (:func:`_kube_rank`), which proves there is no loop."""

    unreferenced: tuple[str, ...]
    declared: bool
    down: bool


def _jump_facts(edges: dict[str, tuple[str, ...]], is_name, known=KNOWN_TARGETS, builtins=None,
                layers=None) -> tuple[frozenset[str], bool, bool]:
    """(referenced, declared, down) of an edge map: the chains some other chain
    jumps to, and ``declared``/``down`` as :class:`_Summary` says; ``is_name``
    answers ``in`` for the table's chain names."""
    every = frozenset().union(*edges.values())  # one C-level union, no Python step per rule
    declared = all(map(is_name.__contains__, every - known))
    # Every target is referenced, but for a chain that only its own rules jump to.
    self_jumps = [c for c, targets in edges.items() if c in targets]
    if len(self_jumps) > 16:  # (a pass per self-jump would be quadratic in a hand-made dump)
        referenced = frozenset(t for c, targets in edges.items() for t in targets if t != c)
    else:
        alone = [c for c in self_jumps if not any(c in ts for other, ts in edges.items() if other != c)]
        referenced = every.difference(alone) if alone else every
    down = True
    rank: dict[str, float] = {}
    for c, targets in edges.items():
        rc = None
        for t in targets:
            if t not in is_name:
                continue
            if rc is None:
                rc = rank.get(c)
                if rc is None:
                    rc = rank[c] = _kube_rank(c, builtins, layers)
            rt = rank.get(t)
            if rt is None:
                rt = rank[t] = _kube_rank(t, builtins, layers)
            if not rc < rt:
                down = False
                break
        if not down:
            break
    return referenced, declared, down


def _summarize(edges: dict[str, tuple[str, ...]], names: list[str], known=KNOWN_TARGETS,
               builtins=None, layers=None) -> tuple[list[str], bool, bool]:
    """(unreferenced, declared, down) of an edge map, as :class:`_Summary` says."""
    referenced, declared, down = _jump_facts(edges, dict.fromkeys(names).keys(), known, builtins, layers)
    return list(filterfalse(referenced.__contains__, names)), declared, down


def _summary_pass(names: list[str], segs: list, known=KNOWN_TARGETS, builtins=None,
                  layers=None) -> tuple[list[str], bool, bool, list[str]]:
    """The fast pass's answers without an edge map, in pure Python (the reference of
    the compiled ``_edges.summary``): :func:`_summarize` of the chains
    :func:`_edge_pass` answers, and the chains it declines."""
    edges, slow = _edge_pass(names, segs)
    return (*_summarize(edges, names, known, builtins, layers), slow)


_SUMMARY_CACHE: list[tuple[Table, _Summary]] = []


def _summary(table: Table) -> _Summary:
    """:class:`_Summary` of ``table``, once per table: from the fast pass
    (compiled when built) plus the declined chains read by :func:`_scan`, or,
    with the fast paths off, from :func:`_edges` (every chain rule by rule)."""
    for t, found in _SUMMARY_CACHE:
        if t is table:
            return found
    blocks = getattr(table.chains, "blocks", None) if bulk.enabled() else None
    names = list(table.chains)
    if blocks is None:
        unref, declared, down = _summarize(_edges(table), names)
    else:
        segs = list(map(blocks, names))
        if _native is not None:
            unref, declared, down, slow = _native.summary(names, segs, KNOWN_TARGETS, _BUILTINS, _FLOAT_LAYERS)
        else:
            unref, declared, down, slow = _summary_pass(names, segs)
        if slow:  # the declined chains' jumps, rule by rule
            found: dict[str, dict[str, None]] = {}
            for cname, _, _, _, target, _ in _scan(table, slow):
                found.setdefault(cname, {})[target] = None
            extra = {c: tuple(ts) for c, ts in found.items()}
            referenced, more_declared, more_down = _jump_facts(extra, _names(table))
            unref = [n for n in unref if n not in referenced]
            declared, down = declared and more_declared, down and more_down
    result = _Summary(tuple(unref), declared, down)
    _SUMMARY_CACHE.insert(0, (table, result))
    del _SUMMARY_CACHE[4:]
    return result


def _names(table: Table):
    """The table's chain names for ``in`` (a dict view when the map has one: no Python call per test)."""
    names = getattr(table.chains, "names", None)
    return names() if names is not None else set(table.chains)


def undeclared_targets(table: Table) -> bool:
    """Whether some rule of ``table`` jumps to a name that is neither a chain nor a known target."""
    return not _summary(table).declared


def find_dangling_jumps(ruleset: Ruleset) -> list[DanglingJump]:
    """Rules whose ``-j``/``-g`` names no chain of their table and no known target,
    in dump order."""
    out = []
    for table in ruleset.tables:
        chains = table.chains
        if not undeclared_targets(table):
            continue  # nothing dangles (the usual case): no per-rule pass to say where
        for cname, _, line, text, target, _ in _jumps(table):
            if target not in chains and target not in KNOWN_TARGETS:
                out.append(DanglingJump(table.family, table.name, cname, line, text, target))
    out.sort(key=lambda d: (int(d.family), d.table, d.line))
    return out


def _is_builtin(table: str, name: str) -> bool:
    return name in BUILTIN_CHAINS.get(table, ()) or classify_chain(name) is ChainKind.BUILTIN


def find_unreferenced_chains(ruleset: Ruleset) -> list[ChainRef]:
    """User-defined chains that no rule of another chain jumps to (stale KUBE-SVC
    or KUBE-SEP chains, leftovers of uninstalled tools). Built-in chains and the
    canaries and hint chain kube-proxy and kubelet leave unreferenced on purpose
    are not reported."""
    out = []
    for table in ruleset.tables:
        for name in _summary(table).unreferenced:
            if name in UNREFERENCED_OK or _is_builtin(table.name, name):
                continue
            out.append(ChainRef(table.family, table.name, name, table.chains[name].line))
    out.sort(key=lambda c: (int(c.family), c.table, c.line, c.chain))
    return out


def find_cycles(ruleset: Ruleset) -> list[list[str]]:
    """Loops of jumps between chains, one per group of chains that reach each other
    (iptables-restore refuses them, so they come from hand-made or merged dumps).

    Each cycle lists chain names in jump order, starting at the smallest name;
    the cycles of one table are never mixed with another's.
    """
    out: list[list[str]] = []
    for table in ruleset.tables:
        if bulk.enabled() and _summary(table).down:
            continue  # every jump goes down kube-proxy's layers: no loop is possible
        names = set(table.chains)
        edges = {(cname, target) for cname, targets in _edges(table).items() for target in targets if target in names}
        # Peel off jumps into chains that lead nowhere (kube-proxy's graph is a DAG),
        # so only loops and what feeds them remain: a chain whose every jump leads to
        # a peeled chain is peeled too. A work list makes this linear in the jumps
        # however deep the graph (a layer at a time was quadratic in the depth).
        out_degree: dict[str, int] = {}
        into: dict[str, list[str]] = {}
        for c, t in edges:
            out_degree[c] = out_degree.get(c, 0) + 1
            into.setdefault(t, []).append(c)
        dead = [t for t in into if t not in out_degree]
        peeled = set(dead)
        while dead:
            for c in into.get(dead.pop(), ()):
                out_degree[c] -= 1
                if out_degree[c] == 0 and c not in peeled:
                    peeled.add(c)
                    dead.append(c)
        edges = {e for e in edges if e[1] not in peeled}
        if not edges:
            continue  # no loop (every kube-proxy dump): no graph to build
        import networkx as nx  # 0.3 s to import: only where a graph algorithm runs

        g = nx.DiGraph()
        g.add_edges_from(sorted(edges))
        for scc in nx.strongly_connected_components(g):
            start = min(scc)
            if len(scc) == 1 and not g.has_edge(start, start):
                continue
            cycle = [u for u, _ in nx.find_cycle(g.subgraph(scc), source=start)]
            first = cycle.index(min(cycle))
            out.append(cycle[first:] + cycle[:first])
    return out


# kube-proxy's layers of chains, top to bottom. A ruleset whose every jump goes
# from a lower number to a strictly higher one has no loop; any other jump (a
# chain of another tool, or one layer jumping sideways) sends find_cycles to its
# general search. The numbers only have to be an order: they prove, never decide.
_LAYERS = (("KUBE-SERVICES", 1), ("KUBE-NODEPORTS", 2), ("KUBE-FW-", 3), ("KUBE-EXT-", 4), ("KUBE-XLB-", 5),
           ("KUBE-SVC-", 6), ("KUBE-SVL-", 6), ("KUBE-SEP-", 7), ("KUBE-MARK-", 8))


def _kube_rank(name: str, builtins=None, layers=None) -> float:
    if name in (_BUILTINS if builtins is None else builtins):
        return 0
    if layers is None and not name.startswith("KUBE-"):
        return -1  # (every one of _LAYERS starts so)
    for prefix, n in (_LAYERS if layers is None else layers):
        if name.startswith(prefix):
            return n
    return 1.5 if name.startswith("KUBE-") else -1  # kube-proxy's other chains jump only to targets


_BUILTINS = frozenset(c for chains in BUILTIN_CHAINS.values() for c in chains)
_FLOAT_LAYERS = tuple((prefix, float(n)) for prefix, n in _LAYERS)


def chains_of_service(ruleset: Ruleset, key: str, family: Family = Family.V4) -> set[str]:
    """Every nat chain of the service port whose chain hash is ``key``: its
    KUBE-SVC/SVL/EXT/FW/XLB chains and the KUBE-SEP chains they jump to.

    >>> # chains_of_service(rs, "DZ6LTOHRG6HQWHYE")
    >>> # {'KUBE-SVC-DZ6LTOHRG6HQWHYE', 'KUBE-EXT-DZ6LTOHRG6HQWHYE', 'KUBE-SEP-...', ...}
    """
    nat = ruleset.table("nat", family)
    if nat is None:
        return set()
    todo = [f"KUBE-{p}-{key}" for p in _PER_SERVICE_PREFIXES if f"KUBE-{p}-{key}" in nat.chains]
    found = set(todo)
    while todo:
        for _, _, _, _, target, _ in _scan(nat, [todo.pop()]):
            if target in found or target not in nat.chains:
                continue
            kind = classify_chain(target)
            if kind is ChainKind.SEP or (kind.per_service and chain_hash(target) == key):
                found.add(target)
                todo.append(target)
    return found


# --- the networkx graph -----------------------------------------------------------------
#
# Node ids are strings that stay readable in DOT and JSON:
#   v4/nat/KUBE-SVC-X           a chain (family/table/name)
#   v4/endpoint/10.244.1.5:8080  an endpoint (a DNAT destination)
#   v4/entry/nodePort/*:31611/tcp  an entry point of a service port
#   v4/service/X                 a service port collapsed to one node (X: its chain hash)
#   v4/target/REJECT             a verdict or non-chain target reached from a service
# Every node has ``type`` (chain, endpoint, entry, service, target) and ``label``;
# ``cluster`` names the group it is drawn in (graph attribute ``clusters``: id -> title).

_MASQ = "KUBE-MARK-MASQ"
_COMMENT_RE = re.compile(r' ?-m comment --comment (?:"(?:[^"\\]|\\.)*"|\S+)')
_NOISE_RE = re.compile(r" ?-m statistic --mode random --probability \S+| ?-m recent .*$| ?-m (?:tcp|udp|sctp)(?= |$)")
_SOURCE_RE = re.compile(r"(?:! )?-s \S+")
_SECONDS_RE = re.compile(r"--rcheck.*?--seconds (\d+)|--seconds (\d+).*?--rcheck")
_DNAT_TO_RE = re.compile(r"--to-destination (\S+)")


def _fam(family: Family) -> str:
    return f"v{int(family)}"


def chain_node(family: Family, table: str, chain: str) -> str:
    return f"{_fam(family)}/{table}/{chain}"


def endpoint_node(family: Family, endpoint: str) -> str:
    return f"{_fam(family)}/endpoint/{endpoint}"


def match_summary(text: str) -> str:
    """The matches of a raw rule, short: no chain, comment, cascade or target.

    >>> match_summary('-A KUBE-SVC-X ! -s 10.244.0.0/16 -d 10.96.10.10/32 -p tcp -m comment --comment "c" -m tcp --dport 80 -j KUBE-MARK-MASQ')
    '! -s 10.244.0.0/16 -d 10.96.10.10/32 -p tcp --dport 80'
    """
    body = text.split("] ", 1)[1] if text.startswith("[") else text
    if body.startswith("-A "):
        body = body[3:].partition(" ")[2]
    body = _COMMENT_RE.sub("", body)
    cut = max(body.rfind(" -j "), body.rfind(" -g "), -1)
    if cut >= 0:
        body = body[:cut]
    elif body.startswith(("-j ", "-g ")):
        body = ""
    return _NOISE_RE.sub("", body).strip()


def _chain_attrs(family: Family, table: Table, name: str, service: str | None) -> dict:
    kind = classify_chain(name)
    return {"type": "chain", "label": name, "table": table.name, "family": _fam(family), "chain": name,
            "kind": kind.value, "service": service or "", "rules": len(table.raw_rules(name) or ())}


def build_service_graph(ruleset: Ruleset, ports: list[ServicePortRules], *, clusters: str = "service") -> nx.MultiDiGraph:
    """The chains, entry points and endpoints of the given service ports.

    ``clusters="entry"`` groups each entry point with the chains only it uses (one
    service in detail); ``"service"`` draws one group per service port. Edges carry
    ``line``, ``match``, ``goto``, ``share`` ("1/3", the exact share of new
    connections from build_service_ports), ``affinity`` (seconds of a ClientIP
    affinity branch, or "set" on a DNAT that records it) and ``masquerade`` (every
    packet on this edge is marked for masquerade).
    """
    import networkx as nx

    g = nx.MultiDiGraph(clusters={}, view="services")
    for sp in ports:
        _add_service_port(g, ruleset, sp, clusters)
    return g


def _add_service_port(g: nx.MultiDiGraph, ruleset: Ruleset, sp: ServicePortRules, clusters: str) -> None:
    fam = sp.family
    nat = ruleset.table("nat", fam)
    name = sp.display_name
    svc_cluster = f"{_fam(fam)}/{sp.key}"
    if clusters == "service":
        g.graph["clusters"][svc_cluster] = f"{name} ({sp.protocol or '?'}, IPv{int(fam)})"
    shares = {(e.line, e.sep): e.share for e in sp.endpoints + (sp.local_endpoints or ())}
    chains = chains_of_service(ruleset, sp.key, fam)
    owner: dict[str, set[str]] = {}   # node -> entry clusters that reach it

    def put(node: str, **attrs) -> None:
        if "type" not in g.nodes.get(node, {}):  # new, or only met as an edge's end so far
            g.add_node(node, **attrs)
            if clusters == "service":
                g.nodes[node]["cluster"] = svc_cluster
            elif attrs.get("type") != "target":
                # A node reached through several entries (or services) belongs to none.
                g.nodes[node]["cluster"] = ""
        elif clusters == "service" and g.nodes[node].get("cluster") != svc_cluster:
            g.nodes[node]["cluster"] = ""

    for e in sp.entries:
        where = f"{e.address or '*'}:{e.port if e.port is not None else '*'}"
        node = f"{_fam(fam)}/entry/{e.kind}/{where}/{e.protocol or '?'}"
        title = {"clusterIP": "cluster IP", "externalIP": "external IP", "loadBalancer": "load-balancer IP",
                 "nodePort": "node port", "healthCheckNodePort": "health-check node port"}.get(e.kind, e.kind)
        label = f"{title}\n{where}/{e.protocol or '?'}" + ("\n(also 127.0.0.1)" if e.localhost else "")
        put(node, type="entry", label=label, kind=e.kind, family=_fam(fam), address=e.address or "",
            port=e.port if e.port is not None else "", protocol=e.protocol or "", service=name, table=e.table)
        if clusters == "entry":
            g.graph["clusters"][node] = f"{title} {where}"
            g.nodes[node]["cluster"] = node
        if e.chain is not None:
            target = chain_node(fam, e.table, e.chain)
        else:  # filter REJECT/DROP/ACCEPT: the packet ends here
            target = f"{_fam(fam)}/target/{e.verdict.upper() if e.verdict else 'ACCEPT'}"
            put(target, type="target", label=target.rsplit("/", 1)[1], family=_fam(fam))
        g.add_edge(node, target, line=e.line, match="", goto=False, share="", affinity="",
                   masquerade=False, note=e.note or "")
        if e.chain is not None:
            for reached in _reach(nat, e.chain, chains) if nat is not None else ():
                owner.setdefault(reached, set()).add(node)

    for cname in sorted(chains):
        _add_chain_rules(g, ruleset, fam, nat, cname, chains, shares, name, put)
    if not sp.endpoints_complete and nat is not None:
        _add_unknown(g, fam, nat, sp, chains, shares, name, put)
    if clusters == "entry":
        for cname, entries in owner.items():
            node = chain_node(fam, "nat", cname)
            if node in g and len(entries) == 1:
                g.nodes[node]["cluster"] = next(iter(entries))


def _add_unknown(g, fam, nat, sp: ServicePortRules, chains, shares, service, put) -> None:
    """An excerpt (``sp.endpoints_complete`` False): chains jumped to but not in
    the input are drawn as such, and endpoint chains seen without their cascade
    hang from a "not in the input" node with share "?" (as services and trace say)."""
    for node, data in list(g.nodes(data=True)):
        chain = data.get("chain") or (node.split("/", 2)[2] if node.startswith(f"{_fam(fam)}/nat/") else None)
        if chain and chain not in nat.chains and "type" not in data:
            g.nodes[node].update(type="missing", label=f"{chain}\n(not in the input)", chain=chain, family=_fam(fam),
                                 table="nat", kind=classify_chain(chain).value, service=service, rules=0)
    seen = [e for e in sp.endpoints + (sp.local_endpoints or ()) if e.sep in nat.chains and e.sep not in chains]
    if not seen:
        return
    gap = f"{_fam(fam)}/unknown/{sp.key}"
    put(gap, type="missing", label="not in the input:\n" + (sp.unknown[0] if sp.unknown else "the cascade"),
        family=_fam(fam), service=service)
    for e in seen:
        _add_chain_rules(g, None, fam, nat, e.sep, chains | {e.sep}, shares, service, put)
        g.add_edge(gap, chain_node(fam, "nat", e.sep), line=e.line, match="", goto=False, share="?", affinity="",
                   masquerade=False, note="")


def _reach(nat: Table, start: str, chains: set[str]) -> set[str]:
    seen, todo = {start}, [start]
    while todo:
        for _, _, _, _, target, _ in _scan(nat, [todo.pop()]):
            if target in chains and target not in seen:
                seen.add(target)
                todo.append(target)
    return seen


def _add_chain_rules(g, ruleset, fam, nat, cname, chains, shares, service, put) -> None:
    node = chain_node(fam, "nat", cname)
    put(node, **_chain_attrs(fam, nat, cname, service), masquerade="")
    masq_all = False
    for _, i, line, text, target, goto in _scan(nat, [cname]):
        match = match_summary(text)
        if target == _MASQ:
            # Shown on the chain, not as an edge: where masquerading is decided.
            src = _SOURCE_RE.search(match)
            why = src.group(0) if src else (match or "always")
            if src and classify_chain(cname) is ChainKind.SEP:
                why = f"hairpin {why}"
            g.nodes[node]["masquerade"] = "; ".join(filter(None, (g.nodes[node].get("masquerade", ""), why)))
            masq_all = masq_all or not match
            continue
        sec = _SECONDS_RE.search(text)
        attrs = dict(line=line, match=match, goto=goto, share="", affinity="", masquerade=masq_all, note="")
        if target == "DNAT":
            m = _DNAT_TO_RE.search(text)
            ep = m.group(1) if m else "?"
            dst = endpoint_node(fam, ep)
            put(dst, type="endpoint", label=ep, family=_fam(fam), endpoint=ep)
            attrs.update(affinity="set" if " --set" in text else "", match="DNAT")
        elif target in nat.chains:
            dst = chain_node(fam, "nat", target)
            if target not in chains:
                put(dst, **_chain_attrs(fam, nat, target, None))
            share = shares.get((line, target))
            attrs.update(share=str(share) if share is not None else "",
                         affinity=(sec.group(1) or sec.group(2)) if sec else "")
        else:
            dst = f"{_fam(fam)}/target/{target}"
            put(dst, type="target", label=target, family=_fam(fam))
        g.add_edge(node, dst, **attrs)


def build_overview_graph(ruleset: Ruleset, *, expand: bool = False) -> nx.MultiDiGraph:
    """The whole kube-proxy graph: every chain that is not per-service, and one node
    per service port standing for its KUBE-SVC/SVL/EXT/FW/XLB/SEP chains (so 10k
    services stay drawable). ``expand=True`` keeps every chain and adds endpoints.

    Collapsed, endpoint chains are counted on their service node and not scanned
    (they only mark for masquerade and DNAT); jumps into KUBE-MARK-MASQ from a
    service are shown as its ``masquerade`` attribute.
    """
    if not expand and bulk.enabled():
        return overview_parts(ruleset).to_networkx()
    return _build_overview_graph(ruleset, expand)


def _build_overview_graph(ruleset: Ruleset, expand: bool) -> nx.MultiDiGraph:
    # The reference builder (and the only one for --expand): overview_parts gives
    # the same nodes and edges in the same order.
    import networkx as nx

    g = nx.MultiDiGraph(clusters={}, view="expanded" if expand else "collapsed")
    for table in ruleset.tables:
        fam = table.family
        chains = set(table.chains)
        for cname in table.chains:
            if not expand and cname.startswith("KUBE-SEP-"):
                continue  # ~10 per service: skip before the (regex) classification
            kind = classify_chain(cname)
            if kind is ChainKind.SEP and not expand:
                continue
            collapse = kind.per_service and not expand
            src = _overview_node(g, fam, table, cname, expand)
            attrs = g.nodes[src]
            n_sep = 0
            for i, (line, text) in enumerate(table.raw_rules(cname) or ()):
                if collapse:
                    # Inside a service: only count endpoints and note masquerading.
                    if text.endswith(" -j " + _MASQ):
                        attrs["masquerade"] = True
                        continue
                    if " -j KUBE-SEP-" in text and '"' not in text[text.rfind(" -j "):]:
                        if "--rcheck" not in text:  # affinity rules repeat the cascade's jumps
                            n_sep += 1
                        continue
                t = raw_target(text)
                if t is False:
                    rt = table.chains[cname].rules[i].target
                    t = (rt.name, rt.goto) if rt is not None else None
                if t is None:
                    continue
                target, goto = t
                if target in chains:
                    if collapse and (target == _MASQ or classify_chain(target) is ChainKind.SEP):
                        continue
                    dst = _overview_node(g, fam, table, target, expand)
                    if dst == src and not expand:
                        continue  # EXT -> SVC inside one service
                elif expand and target == "DNAT":
                    m = _DNAT_TO_RE.search(text)
                    ep = m.group(1) if m else "?"
                    dst = endpoint_node(fam, ep)
                    if dst not in g:
                        g.add_node(dst, type="endpoint", label=ep, family=_fam(fam), endpoint=ep, cluster="")
                else:
                    continue
                g.add_edge(src, dst, line=line, match=match_summary(text), goto=goto, share="", affinity="",
                           masquerade=False, note="")
                if not expand and kind in (ChainKind.SERVICES, ChainKind.NODEPORTS) and "--comment" in text:
                    _name_service(g, dst, text)
            if collapse and kind in (ChainKind.SVC, ChainKind.SVL, ChainKind.XLB):
                # The cluster- or local-policy chain with the most endpoints.
                attrs["endpoints"] = max(attrs["endpoints"], n_sep)
    return g


def _service_attrs(key: str, family: str, table: str) -> dict:
    """A new collapsed service node's attributes (in the order they are written),
    before its chains, endpoints and name are filled in."""
    return {"type": "service", "label": key, "key": key, "family": family, "table": table, "service": "",
            "kind": "service", "chains": [], "endpoints": 0, "masquerade": False, "cluster": ""}


def _overview_node(g: nx.MultiDiGraph, fam: Family, table: Table, cname: str, expand: bool) -> str:
    kind = classify_chain(cname)
    if expand or not kind.per_service:
        node = chain_node(fam, table.name, cname)
        if node not in g:
            g.add_node(node, cluster="", **_chain_attrs(fam, table, cname, None))
        return node
    key = chain_hash(cname) or cname
    node = f"{_fam(fam)}/service/{key}"
    if node not in g:
        g.add_node(node, **_service_attrs(key, _fam(fam), table.name))
    if kind is not ChainKind.SEP and cname not in g.nodes[node]["chains"]:
        g.nodes[node]["chains"].append(cname)
    return node


def _name_service(g: nx.MultiDiGraph, node: str, text: str) -> None:
    attrs = g.nodes[node]
    if attrs.get("type") != "service" or attrs["service"]:
        return
    info = parse_comment(raw_comment(text))
    if info is not None and info.spn:
        attrs["service"] = info.spn
        attrs["label"] = info.spn


# --- the collapsed overview without a networkx object per rule ------------------------
#
# The whole-dump `graph` draws ~10k service nodes and ~12k edges from ~440k rule
# lines. overview_parts reads each per-service chain as the block of text the
# scanner cut (str.count and one regex over the block instead of a Python step
# per rule) and keeps nodes and edges in plain dicts and lists; render_dot writes
# them directly, and to_networkx() gives build_overview_graph's graph for JSON.
# networkx stays the graph library where graph algorithms are needed (cycles,
# the per-service and namespace graphs, node-link JSON).

_SEP_END = re.compile(r" -j KUBE-SEP-[A-Z2-7]{16}$", re.M)
_SEP_END_RCHECK = re.compile(r"--rcheck[^\n]* -j KUBE-SEP-[A-Z2-7]{16}$", re.M)


class OverviewParts:
    """A graph as plain values: ``graph`` (its attributes), ``nodes(data=True)``
    and ``edges(data=True)`` as networkx gives them (edges grouped by source node
    in node order, then by destination in the order first joined), which is
    everything the DOT writers read."""

    __slots__ = ("graph", "_nodes", "_succ")

    def __init__(self, **attrs) -> None:
        self.graph = attrs
        self._nodes: dict[str, dict] = {}
        self._succ: dict[str, dict[str, list[dict]]] = {}

    def add_node(self, node: str, **attrs) -> dict:
        self._nodes[node] = attrs
        self._succ[node] = {}
        return attrs

    def add_edge(self, u: str, v: str, **attrs) -> None:
        self._succ[u].setdefault(v, []).append(attrs)

    def nodes(self, data: bool = True):
        return self._nodes.items()

    def edges(self, data: bool = True):
        return [(u, v, a) for u, nbrs in self._succ.items() for v, attrs in nbrs.items() for a in attrs]

    def to_networkx(self) -> nx.MultiDiGraph:
        import networkx as nx

        g = nx.MultiDiGraph(**self.graph)
        for node, attrs in self._nodes.items():
            g.add_node(node, **attrs)
        for u, v, attrs in self.edges():
            g.add_edge(u, v, **attrs)
        return g


def _clean_block(table: Table, name: str) -> tuple[int, str] | None:
    """The chain's rules as one block of text whose lines are exactly the raw
    rule texts (no blanks to strip), else None."""
    blocks = getattr(table.chains, "blocks", None)
    segs = blocks(name) if blocks is not None else None
    if segs is None or len(segs) != 1:
        return None
    first, block = segs[0]
    if "\t" in block or " \n" in block or "\n " in block or block.startswith(" ") or not block.endswith("\n"):
        return None
    return first, block


def _tally(block: str) -> tuple[int, int, int, int] | None:
    """A clean block's (see _clean_block) lines, masquerade jumps, endpoint
    jumps and endpoint jumps after ``--rcheck``; None when it is not clean.
    (The compiled ``overview_tally`` gives the same for ASCII text.)"""
    if "\t" in block or " \n" in block or "\n " in block or block.startswith(" ") or not block.endswith("\n"):
        return None
    return (block.count("\n"), block.count(" -j " + _MASQ + "\n"), len(_SEP_END.findall(block)),
            len(_SEP_END_RCHECK.findall(block)))


def _tally_chain(table: Table, name: str, native) -> tuple[int, int, int, int] | None:
    """``_tally`` of the chain's rules when they are one block, else None
    (``native``: ``perf.native("overview_tally")``, asked once per overview)."""
    blocks = getattr(table.chains, "blocks", None)
    segs = blocks(name) if blocks is not None else None
    if segs is None or len(segs) != 1:
        return None
    block = segs[0][1]
    found = native(block) if native is not None else False
    return _tally(block) if found is False else found


# kube-proxy's entry rules as iptables-save prints them (KUBE-SERVICES and
# KUBE-NODEPORTS of nat, KUBE-SERVICES and KUBE-EXTERNAL-SERVICES of filter):
# one findall over a chain's block gives each line as (-d part, protocol, service
# port name, port, target) when it has exactly this shape, else as the line
# itself (the last group). For a line of this shape (and a block without
# "--jump" or "--goto", see _entry_rules): match_summary is "[-d X ]-p P --dport N"
# (the comment and the "-m P" dropped); raw_target is the last word, not a goto
# (no other " -j "/" -g " and no quote can follow it); parse_comment's service
# port name is the comment without " cluster IP" (or external/loadbalancer IP):
# the name has no blank, so the first pattern that accepts the comment is the
# one for its suffix and the name it reads is the same (a subset of its _SPN, no
# quote or backslash). tests/test_perf_graph2.py checks these against the
# general functions line by line.
_ENTRY_RULE = re.compile(
    r'(?:-A [^\s"]+ (?:(-d [0-9a-fA-F.:/]+) )?-p (tcp|udp|sctp) -m comment --comment '
    r'"([a-z0-9](?:[-a-z0-9.]*[a-z0-9])?/[^\s:"\\]+(?::[^\s"\\]*)?)(?: cluster IP| external IP| loadbalancer IP)?"'
    r' -m \2 --dport ([0-9]+) -j ([A-Z0-9][-A-Z0-9]*)|(.*))\n')


# A rule line of a collapsed chain that only jumps to another chain of the service
# (KUBE-EXT -> KUBE-SVC/SVL): raw_target reads that name (no quote, no --jump,
# nothing after it) and the per-rule code draws no edge for it.
_SAME_SERVICE = re.compile(r"^-A [A-Z0-9-]+ -j (KUBE-(?:SVC|SVL|EXT|FW|XLB)-[A-Z2-7]{16})$", re.M)


def _entry_rules(table: Table, name: str) -> tuple[int, list[tuple[str, str, str, str, str, str]]] | None:
    """(first line, one _ENTRY_RULE tuple per rule line) of a chain whose rules are
    one clean block (:func:`_clean_block`) without "--jump"/"--goto", else None."""
    found = _clean_block(table, name)
    if found is None or "--jump" in found[1] or "--goto" in found[1]:
        return None
    return found[0], _ENTRY_RULE.findall(found[1])


def _entry_match(dport: str, proto: str, port: str) -> str:
    """match_summary of an _ENTRY_RULE line of that shape."""
    return f"{dport} -p {proto} --dport {port}" if dport else f"-p {proto} --dport {port}"


# A per-service chain the collapsed overview reads from its tally alone (no KUBE-SEP:
# those are skipped; \Z, not $: a name ending in a newline goes to the general code).
_RUN_CHAIN = re.compile(r"KUBE-(SVC|SVL|EXT|FW|XLB)-([A-Z2-7]{16})\Z")


def _overview_run(names: list, start: int, blocks, tally, prefix: str, family: str, tname: str,
                  nodes: dict, succ: dict, node_of: dict, known) -> int:
    """The collapsed overview's loop over ``names[start:]`` for as long as each chain
    is a KUBE-SEP-* chain (skipped) or a per-service chain (_RUN_CHAIN) whose one
    block ``tally`` (``_tally`` or the compiled ``overview_tally``) answers as only
    endpoint jumps and masquerade marks, or those and (in an ASCII block) jumps
    within the service (_SAME_SERVICE, the chain's own hash): its service node
    ``prefix + hash`` made as node_for makes it (with ``family``, ``tname``; a new
    entry in ``succ``), the chain added to the node's chains and to ``node_of``,
    then the node of each in-service target that is in ``known`` (as node_for
    makes it, in order), ``masquerade`` and ``endpoints`` set as the per-rule
    code sets them. Returns the index of the first chain it leaves to the caller
    (``len(names)`` when none), before any change for that chain. The
    pure-Python reference of the compiled ``_edges.overview_run``
    (tests/test_perf_graph2.py), which raises TypeError for arguments of other
    shapes (segments not as the parser cuts them, nodes not dicts, a node's
    chains not a list)."""
    n = len(names)
    i = max(start, 0)
    match = _RUN_CHAIN.match

    def service_node(name: str, key: str) -> dict:
        src = node_of.get(name)
        if src is not None:
            return nodes[src]
        src = prefix + key
        attrs = nodes.get(src)
        if attrs is None:
            attrs = nodes[src] = _service_attrs(key, family, tname)
            succ[src] = {}
        chain_list = attrs["chains"]
        if name not in chain_list:
            chain_list.append(name)
        node_of[name] = src
        return attrs

    while i < n:
        cname = names[i]
        if cname.startswith("KUBE-SEP-"):
            i += 1
            continue
        m = match(cname)
        if m is None:
            return i
        segs = blocks(cname)
        if segs is None or len(segs) != 1:
            return i
        block = segs[0][1]
        counts = tally(block)
        if not counts:  # None: not a clean block; False: not ASCII (for the regexes)
            return i
        n_lines, n_masq, seps, rchecks = counts
        key = m.group(2)
        same = ()
        if n_masq + seps != n_lines:
            if not block.isascii():
                return i
            same = _SAME_SERVICE.findall(block)
            if n_masq + seps + len(same) != n_lines or not all(t.endswith(key) for t in same):
                return i
        attrs = service_node(cname, key)
        for t in same:
            if t in known:
                service_node(t, key)
        if n_masq:
            attrs["masquerade"] = True
        if m.group(1) in ("SVC", "SVL", "XLB"):
            attrs["endpoints"] = max(attrs["endpoints"], seps - rchecks)
        i += 1
    return n


def _entry_run(items: list, start: int, first: int, src: str, names, node_for, prefix: str, family: str,
               tname: str, naming: bool, nodes: dict, succ: dict, node_of: dict) -> int:
    """The overview's loop over the _ENTRY_RULE tuples ``items[start:]`` of the
    chain whose node is ``src`` (item i is the rule on line ``first + i``) for as
    long as each is a line of kube-proxy's entry shape: a target not in ``names``,
    or whose node (``node_for``'s) is ``src``, draws nothing; any other gets its
    edge, and with ``naming`` an unnamed service node takes the comment's name.
    Returns the index of the first line of another shape (``len(items)`` when
    none), before any change for it. The pure-Python reference of the compiled
    ``_edges.entry_run`` (which makes a _RUN_CHAIN target's node itself, as
    node_for makes it; ``prefix``, ``family`` and ``tname`` are node_for's, and
    it raises TypeError for arguments of other shapes)."""
    out = succ[src]
    n = len(items)
    i = max(start, 0)
    while i < n:
        dport, proto, spn, port, target, _ = items[i]
        if not target:
            return i
        i += 1
        if target not in names:
            continue
        dst = node_of.get(target) or node_for(target)
        if dst == src:
            continue
        edge = {"line": first + i - 1, "match": f"{dport} -p {proto} --dport {port}" if dport else
                f"-p {proto} --dport {port}", "goto": False, "share": "", "affinity": "", "masquerade": False,
                "note": ""}
        to = out.get(dst)
        if to is None:
            out[dst] = [edge]
        else:
            to.append(edge)
        if naming:
            d = nodes[dst]
            if d.get("type") == "service" and not d["service"]:
                d["service"] = d["label"] = normalize_spn(spn)
    return n


def overview_parts(ruleset: Ruleset) -> OverviewParts:
    """The collapsed whole-dump overview (see :func:`build_overview_graph`) as an
    :class:`OverviewParts`; the same nodes, edges and attributes in the same order."""
    g = OverviewParts(clusters={}, view="collapsed")
    nodes = g._nodes
    succ = g._succ
    tally = perf.native("overview_tally")
    # (the compiled run with the compiled tally only: each answers what its reference does)
    run = (getattr(_native, "overview_run", None) if tally is not None else None) or _overview_run
    entry = getattr(_native, "entry_run", None) or _entry_run
    hashed = _HASHED.match
    for table in ruleset.tables:
        fam = table.family
        f = _fam(fam)
        chains = table.chains
        names = _names(table)
        blocks = getattr(chains, "blocks", None)
        node_of: dict[str, str] = {}
        tname = table.name

        def node_for(cname: str) -> str:
            node = node_of.get(cname)
            if node is not None:
                return node
            # A per-service chain is one _HASHED names (classify_chain's kinds SVC..SEP).
            m = _HASHED.match(cname)
            if m is None:
                node = f"{f}/{tname}/{cname}"
                if node not in nodes:
                    g.add_node(node, cluster="", **_chain_attrs(fam, table, cname, None))
            else:
                key = m.group(2)
                node = f"{f}/service/{key}"
                attrs = nodes.get(node)
                if attrs is None:
                    attrs = nodes[node] = _service_attrs(key, f, tname)
                    succ[node] = {}
                if m.group(1) != "SEP" and cname not in attrs["chains"]:
                    attrs["chains"].append(cname)
            node_of[cname] = node
            return node

        def entry_rule(cname: str, src: str, kind: ChainKind, i: int, line: int, text: str,
                       collapse: bool = False) -> None:
            # One rule's edge (rule i of the chain, on that line); a collapsed chain
            # draws none to its masquerade mark or its endpoint chains.
            t = raw_target(text)
            if t is False:
                rt = chains[cname].rules[i].target
                t = (rt.name, rt.goto) if rt is not None else None
            if t is None:
                return
            target, goto = t
            if target not in names:
                return
            if collapse and (target == _MASQ or classify_chain(target) is ChainKind.SEP):
                return
            dst = node_for(target)
            if dst == src:
                return
            g.add_edge(src, dst, line=line, match=match_summary(text), goto=goto, share="", affinity="",
                       masquerade=False, note="")
            if kind in (ChainKind.SERVICES, ChainKind.NODEPORTS) and "--comment" in text:
                d = nodes[dst]
                if d.get("type") == "service" and not d["service"]:
                    info = parse_comment(raw_comment(text))
                    if info is not None and info.spn:
                        d["service"] = d["label"] = info.spn

        order = list(chains)
        run_args = (blocks, tally or _tally, f"{f}/service/", f, tname, nodes, succ, node_of, names)
        at, end = 0, len(order)
        while at < end:
            # The plain service chains (most of a dump) in one call; the next chain it leaves here.
            if blocks is not None:
                at = run(order, at, *run_args)
                if at >= end:
                    break
            cname = order[at]
            at += 1
            if cname.startswith("KUBE-SEP-"):
                continue
            m = hashed(cname)  # a per-service chain (classify_chain's SVC..SEP kinds), collapsed
            n_sep = 0
            rules = None
            if m is not None:
                kind = classify_chain(cname)
                collapse = True
                src = node_of.get(cname) or node_for(cname)
                attrs = nodes[src]
                segs = blocks(cname) if blocks is not None else None
                counts = None
                if segs is not None and len(segs) == 1:  # (_tally_chain, inline)
                    block = segs[0][1]
                    counts = tally(block) if tally is not None else False
                    if counts is False:
                        counts = _tally(block)
                if counts is not None:
                    n_lines, n_masq, seps, rchecks = counts
                    if n_masq + seps == n_lines:  # nothing but endpoint jumps and masquerade marks
                        rules = ()
                    else:  # and jumps within the service (KUBE-EXT -> KUBE-SVC): no edge, but
                        # the target's name joins the node's chains, as the per-rule code does
                        same = _SAME_SERVICE.findall(block)
                        key = m.group(2)
                        if n_masq + seps + len(same) == n_lines and all(t.endswith(key) for t in same):
                            for t in same:
                                if t in names:
                                    node_for(t)
                            rules = ()
                    if rules is not None:
                        if n_masq:
                            attrs["masquerade"] = True
                        n_sep = seps - rchecks
            else:
                kind = classify_chain(cname)
                collapse = False
                src = node_of.get(cname) or node_for(cname)
                attrs = nodes[src]
                found = _entry_rules(table, cname)
                if found is not None:
                    first, items = found
                    naming = kind in (ChainKind.SERVICES, ChainKind.NODEPORTS)
                    k, stop = 0, len(items)
                    while k < stop:
                        k = entry(items, k, first, src, names, node_for, f"{f}/service/", f, tname, naming, nodes,
                                  succ, node_of)
                        if k < stop:  # a line of another shape
                            entry_rule(cname, src, kind, k, first + k, items[k][5])
                            k += 1
                    continue
            if rules is None:
                rules = table.raw_rules(cname) or ()
            for i, (line, text) in enumerate(rules):
                if collapse:
                    if text.endswith(" -j " + _MASQ):
                        attrs["masquerade"] = True
                        continue
                    if " -j KUBE-SEP-" in text and '"' not in text[text.rfind(" -j "):]:
                        if "--rcheck" not in text:
                            n_sep += 1
                        continue
                entry_rule(cname, src, kind, i, line, text, collapse)
            if collapse and kind in (ChainKind.SVC, ChainKind.SVL, ChainKind.XLB):
                attrs["endpoints"] = max(attrs["endpoints"], n_sep)
    return g


# --- choosing what to draw ----------------------------------------------------------------

def select_service_ports(ruleset: Ruleset, service: str | None = None,
                         namespace: str | None = None) -> list[ServicePortRules]:
    """The service ports named by ``service`` (or every one of ``namespace``); see
    :func:`svcinspect.dataplane.iptables.services.select_service_ports`."""
    return _select(ruleset, service, namespace)


def build_graph(ruleset: Ruleset, service: str | None = None, namespace: str | None = None, *,
                expand: bool = False, light: bool = False) -> tuple[nx.MultiDiGraph, str]:
    """The graph the ``graph`` command draws and its title: one service port in
    detail (a group per entry point), every service of a namespace (a group each),
    or, with neither, the whole dump collapsed to one node per service port.

    ``light=True`` (for DOT output only): the collapsed whole dump may come back as
    an :class:`OverviewParts` instead of a networkx graph (same nodes and edges)."""
    if getattr(ruleset, "dataplane", "iptables") == "nftables":  # the nftables dataplane draws its own chains
        from svcinspect.dataplane.nftables.graph import build_graph as build_nft_graph
        return build_nft_graph(ruleset, service, namespace, expand=expand)
    if service is None and namespace is None:
        if light and not expand and bulk.enabled():
            g = overview_parts(ruleset)
        else:
            g = build_overview_graph(ruleset, expand=expand)
        n = sum(1 for _, a in g.nodes(data=True) if a.get("type") == "service")
        return g, "all chains" if expand else f"{n} service ports (one node each; --expand shows chains)"
    ports = select_service_ports(ruleset, service, namespace)
    if service is not None:
        title = ", ".join(sorted({p.display_name for p in ports}))
        return build_service_graph(ruleset, ports, clusters="entry" if len(ports) == 1 else "service"), title
    return build_service_graph(ruleset, ports, clusters="service"), f"namespace {namespace}"
