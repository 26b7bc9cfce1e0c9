"""Which service ports the rules implement, with entry points and exact endpoint shares.

``build_service_ports(ruleset)`` groups kube-proxy's per-service chains by their
shared hash (``KUBE-SVC-X``, ``KUBE-EXT-X``, ``KUBE-FW-X``... of one service port),
finds every entry point (cluster IP, external IP, load-balancer IP, node port,
health-check node port, filter REJECT/DROP), and walks the cascade of the
cluster-policy and local-policy chains to the endpoints' DNAT targets.

Works without comments (kube-proxy's large-cluster mode, or old releases):
chains are tied together by their hash; names come from comments when present.
"""

from __future__ import annotations

import dataclasses
import difflib
import operator
import re
from collections.abc import Iterable
from dataclasses import replace
from fractions import Fraction
from functools import lru_cache

from svcinspect.dataplane.iptables.kubeproxy import (
    ChainKind,
    CommentRole,
    cascade_shares,
    chain_hash,
    classify_chain,
    hash16,
    hash_candidates,
    interpret_probability,
    parse_comment,
    well_known_hashes,
)
from svcinspect.errors import UnknownServiceError
from svcinspect.dataplane.iptables.kubeproxy import endpoint_chain
from svcinspect.model.netfilter import Chain, Family, Rule, Ruleset, Table
from svcinspect.model.service import Branch, EndpointShare, EntryKind, EntryPoint, ServicePortRules, find_service
from svcinspect.dataplane.iptables import bulk
from svcinspect.dataplane.iptables.parse import raw_comment, raw_target


# --- fast facts from raw lines -------------------------------------------------
# kube-proxy's own shapes, in both argument orders; anything else is decoded.
_COMMENT = r'(?:-m comment --comment (?P<c>"[^"\\]*"|[^\s"]+) )?'
_SVC_BRANCH = re.compile(
    r"^(?:\[\d+:\d+\] )?-A \S+ " + _COMMENT +
    r"(?:-m statistic --mode random --probability (?P<p>[0-9.]+) "
    r"|-m recent --rcheck --seconds (?P<s>\d+) --reap --name \S+ --mask [0-9.]+ --rsource "
    r"|-m recent --name \S+ --rcheck --seconds (?P<s2>\d+) --reap )?"
    r"-j (?P<t>KUBE-SEP-[A-Z2-7]{16})$"
)
_DNAT = re.compile(r" -j DNAT --to-destination (\S+)$")
_SIMPLE_TAIL = re.compile(r" -j (KUBE-MARK-MASQ|KUBE-MARK-DROP)$")


def _branches(chain: Chain) -> tuple[list[Branch], list[str]]:
    """The endpoint jumps of a SVC/SVL/XLB chain, in order, plus other targets."""
    out: list[Branch] = []
    others: list[str] = []
    raw = chain.rules.raw
    for i, (line, text) in enumerate(raw):
        m = _SVC_BRANCH.match(text)
        if m:
            c = m.group("c")
            ep = c.rstrip('"').rsplit(" -> ", 1)[1] if c and " -> " in c else None
            s = m.group("s") or m.group("s2")
            out.append(Branch(m.group("t"), line, text, m.group("p"), int(s) if s else None, ep))
            continue
        if _SIMPLE_TAIL.search(text) and "--probability" not in text and "--rcheck" not in text:
            others.append(_SIMPLE_TAIL.search(text).group(1))
            continue
        rule = chain.rules[i]
        b = branch_of(rule)
        if b is not None:
            out.append(b)
        elif rule.target is not None:
            others.append(rule.target.name)
    return out, others


def _scanned_branches(nat: Table, name: str, rows) -> list[Branch]:
    """Branches from the bulk pass's field tuples; the region pass keeps no rule
    text (it is ~40 MB at 20k services), so it is taken from the chain here."""
    if rows and rows[0][2] is None:
        texts = dict(nat.raw_rules(name) or ())
        return [Branch(t, line, texts[line], p, s, ep) for t, line, _, p, s, ep in rows]
    return [Branch(*f) for f in rows]


def branch_of(rule: Rule) -> Branch | None:
    """The general (decoded) reading of a cascade rule; None if not a SEP jump."""
    t = rule.target
    if t is None or classify_chain(t.name) is not ChainKind.SEP:
        return None
    prob = None
    seconds = None
    st = rule.spec.match("statistic")
    if st is not None and st.value("--mode") == "random":
        prob = st.value("--probability")
    rc = rule.spec.match("recent")
    if rc is not None and rc.has("--rcheck"):
        sec = rc.value("--seconds")
        seconds = int(sec) if sec and sec.isdigit() else 0
    info = parse_comment(rule.comment)
    return Branch(t.name, rule.line, rule.text, prob, seconds, info.endpoint if info else None)


def sep_endpoint(table: Table, name: str) -> str | None:
    """The DNAT destination (``IP:port``) of endpoint chain ``name``."""
    for i, (_, text) in enumerate(table.raw_rules(name) or ()):
        m = _DNAT.search(text)
        if m and '"' not in text[m.start():]:
            return m.group(1)
        if "DNAT" in text:
            rule = table.chains[name].rules[i]
            if rule.target is not None and rule.target.name == "DNAT":
                return rule.target.value("--to-destination")
    return None


# --- the walk -------------------------------------------------------------------

class _Acc:
    __slots__ = ("names", "protocol", "entries", "filter_entries", "warnings")

    def __init__(self) -> None:
        self.names: list[str] = []
        self.protocol: str | None = None
        self.entries: list[EntryPoint] = []
        self.filter_entries: list[EntryPoint] = []
        self.warnings: list[str] = []


def build_service_ports(ruleset: Ruleset, only: Iterable[str] | None = None) -> list[ServicePortRules]:
    """Every service port found in the rules, sorted by name then family.

    ``only``: restrict to these chain hashes (a trace of one service needs no more).
    """
    wanted = set(only) if only is not None else None
    out: list[ServicePortRules] = []
    for family in ruleset.families:
        nat = ruleset.table("nat", family)
        filt = ruleset.table("filter", family)
        accs: dict[str, _Acc] = {}
        # A live table analysed while iptables-save printed it (iptables/early.py): the same answers, earlier.
        early = getattr(nat.chains, "early", None) if nat is not None and wanted is None else None
        if nat is not None:
            (_scan_nat if early is None else early.scan_nat)(nat, accs, wanted)
        if filt is not None:
            _scan_filter(filt, accs, wanted)
        scan = bulk.scan_nat(nat) if nat is not None and wanted is None else None
        if early is None:
            ports = [_finish(key, family, acc, nat, scan) for key, acc in accs.items()]
        else:
            ports = early.finish_all(accs, family, nat, scan)
        if nat is not None and ruleset.gaps:
            ports = excerpt_view(ports, nat, family, wanted)
        if ports and nat is not None and any(c in nat.chains for c in IPVS_CHAINS):
            ports = [replace(sp, warnings=sp.warnings + (IPVS_LEFTOVER,)) for sp in ports]
        out.extend(ports)
    if len(ruleset.families) == 1 and None not in map(_NAME_OF, out):
        out.sort(key=_NAME_OF)  # (the same order: the other two parts of the key are equal throughout)
    else:
        out.sort(key=lambda s: (s.name is None, s.name or s.key, int(s.family)))
    return out


_NAME_OF = operator.attrgetter("name")


def _acc(accs: dict[str, _Acc], key: str) -> _Acc:
    a = accs.get(key)
    if a is None:
        a = accs[key] = _Acc()
    return a


def _port(rule: Rule) -> int | None:
    for m in rule.spec.matches:
        if m.module in ("tcp", "udp", "sctp", "multiport"):
            v = m.value("--dport") or m.value("--destination-port") or m.value("--dports")
            if v and v.isdigit():
                return int(v)
    return None


def _address(rule: Rule) -> str | None:
    d = rule.spec.destination
    if d is None or d.negated:
        return None
    net = d.network
    return str(net.network_address) if net.prefixlen == net.max_prefixlen else str(net)


def _proto(rule: Rule) -> str | None:
    p = rule.spec.protocol
    return p.value if p is not None and not p.negated else None


_ENTRY_BY_ROLE = {CommentRole.CLUSTER_IP: EntryKind.CLUSTER_IP, CommentRole.EXTERNAL_IP: EntryKind.EXTERNAL_IP,
                  CommentRole.LOADBALANCER_IP: EntryKind.LOAD_BALANCER}


def _scan_nat(nat: Table, accs: dict[str, _Acc], wanted: set[str] | None) -> None:
    services = nat.chains.get("KUBE-SERVICES")
    if services is not None:
        facts_of = _service_entry_facts if wanted is not None or not bulk.enabled() else _cluster_entries(accs)
        for facts in facts_of(services, wanted):
            dst, proto, comment, port, target, line, text = facts
            kind = classify_chain(target)
            if kind not in (ChainKind.SVC, ChainKind.SVL, ChainKind.EXT, ChainKind.FW, ChainKind.XLB):
                continue
            key = chain_hash(target)
            if wanted is not None and key not in wanted:
                continue
            info = parse_comment(comment)
            acc = accs.get(key)
            if acc is None:
                acc = accs[key] = _Acc()
            note = None
            # (the cluster IP tested by identity first: an Enum's hash is Python code)
            if info is not None and info.role is CommentRole.CLUSTER_IP:
                ekind = EntryKind.CLUSTER_IP
            elif info is not None and info.role in _ENTRY_BY_ROLE:
                ekind = _ENTRY_BY_ROLE[info.role]
            elif kind in (ChainKind.SVC, ChainKind.SVL):
                ekind = EntryKind.CLUSTER_IP
            elif kind is ChainKind.FW:
                ekind = EntryKind.LOAD_BALANCER
            else:
                ekind, note = EntryKind.EXTERNAL_IP, "external or load-balancer IP (the rule has no comment to tell)"
            if info is not None and info.spn:
                acc.names.append(info.spn)
            acc.protocol = acc.protocol or proto
            entry = bulk.frozen(EntryPoint, _ENTRY_FIELDS, (ekind, dst, port, proto, target, "nat", line, text, None,
                                                           False, note))
            if not acc.entries or not any((e.kind, e.address, e.port) == (entry.kind, entry.address, entry.port)
                                          for e in acc.entries):
                acc.entries.append(entry)
    nodeports = nat.chains.get("KUBE-NODEPORTS")
    if nodeports is not None:
        for target, comment, proto, port, localhost, addr, line, text in _node_port_facts(nodeports, wanted):
            if classify_chain(target) not in (ChainKind.EXT, ChainKind.SVC, ChainKind.XLB, ChainKind.SVL, ChainKind.FW):
                continue
            key = chain_hash(target)
            if wanted is not None and key not in wanted:
                continue
            acc = _acc(accs, key)
            info = parse_comment(comment)
            if info is not None and info.spn:
                acc.names.append(info.spn)
            acc.protocol = acc.protocol or proto
            prev = [e for e in acc.entries if e.kind == EntryKind.NODE_PORT and e.port == port]
            if prev:
                if localhost and not prev[0].localhost:
                    acc.entries[acc.entries.index(prev[0])] = _replace_localhost(prev[0])
                continue
            acc.entries.append(bulk.frozen(EntryPoint, _ENTRY_FIELDS, (EntryKind.NODE_PORT, addr, port, proto, target,
                                                                       "nat", line, text, None, localhost, None)))
    if nodeports is not None and services is not None:
        _bind_node_ports(services, accs)
    # Per-service chains that nothing above reached (excerpts, stale chains).
    if wanted is not None:  # a targeted lookup: test the few names instead of every chain
        for key in wanted:
            if key not in accs and any(f"KUBE-{p}-{key}" in nat.chains for p in ("SVC", "SVL", "EXT", "FW", "XLB")):
                accs[key] = _Acc()
        return
    fast = bulk.service_chain_hashes(nat)
    if fast is not bulk.UNSURE:
        for key in fast:
            if key not in accs:
                accs[key] = _Acc()
        return
    for name in nat.chains:
        kind = classify_chain(name)
        if kind in (ChainKind.SVC, ChainKind.SVL, ChainKind.EXT, ChainKind.FW, ChainKind.XLB):
            key = chain_hash(name)
            if key not in accs:
                accs[key] = _Acc()


# KUBE-SERVICES dispatch rules as the kernel prints them and as kube-proxy writes them.
_TAIL = r"-j (?P<t>KUBE-(?:SVC|SVL|EXT|FW|XLB)-[A-Z2-7]{16})$"
_QC = r'(?:"(?P<c>[^"\\]*)"|(?P<c2>[^\s"]+))'
_ENTRY_SHAPES = (
    re.compile(r"^(?:\[\d+:\d+\] )?-A \S+ -d (?P<d>[0-9a-fA-F.:]+?)(?:/(?:32|128))? -p (?P<p>\w+) "
               r"-m comment --comment " + _QC + r" -m (?P=p) --dport (?P<port>\d+) " + _TAIL),
    re.compile(r"^(?:\[\d+:\d+\] )?-A \S+ -m comment --comment " + _QC + r" -m (?P<m>\w+) -p (?P<p>\w+) "
               r"-d (?P<d>[0-9a-fA-F.:]+?)(?:/(?:32|128))? --dport (?P<port>\d+) " + _TAIL),
)


def _naming(raw: tuple[tuple[int, str], ...], needles: Iterable[str] | None) -> Iterable[int]:
    """Indexes of the raw rules whose text contains one of ``needles`` (all of
    them for None). Long chains (KUBE-SERVICES: one rule per service port) are
    searched as one text, not tested rule by rule in Python."""
    if needles is None:
        return range(len(raw))
    needles = [n for n in needles]
    if len(raw) < 64 or "" in needles:
        return [i for i, (_, t) in enumerate(raw) if any(n in t for n in needles)]
    text = "\n".join(t for _, t in raw)
    hits = set()
    for n in needles:
        pos = text.find(n)
        while pos >= 0:
            hits.add(pos)
            pos = text.find(n, pos + 1)
    out: list[int] = []
    line = last = 0
    for pos in sorted(hits):
        line += text.count("\n", last, pos)
        last = pos
        if not out or out[-1] != line:
            out.append(line)
    return out


# kube-proxy's cluster-IP dispatch rule (the first of _ENTRY_SHAPES, its comment
# "<service port> cluster IP" as parse_comment's first pattern reads it, in
# quotes): read, with its comment's meaning, in one match.
_CLUSTER_ENTRY = re.compile(
    r"(?:\[\d+:\d+\] )?-A \S+ -d (?P<d>[0-9a-fA-F.:]+?)(?:/(?:32|128))? -p (?P<p>\w+) "
    r'-m comment --comment "(?P<spn>[a-z0-9](?:[-a-z0-9.]*[a-z0-9])?/[^\s:"\\]+(?::[^\s"\\]*)?) cluster IP" '
    r"-m (?P=p) --dport (?P<port>\d+) -j (?P<t>KUBE-(?:SVC|SVL|EXT|FW|XLB)-(?P<h>[A-Z2-7]{16}))$")


def _cluster_entries(accs: dict[str, _Acc]):
    """:func:`_service_entry_facts` for a whole-table scan (fast paths on), which
    handles the rules of :data:`_CLUSTER_ENTRY`'s shape itself: their entry point
    is added to ``accs`` here, as :func:`_scan_nat` would add it, and only the
    other rules are yielded, each in its place (read as before)."""
    match = _CLUSTER_ENTRY.match
    general = _service_entry_facts
    cluster_ip = EntryKind.CLUSTER_IP
    make = bulk.frozen
    fields = _ENTRY_FIELDS
    # (the compiled matcher: the regex's six groups, None where it does not match, False: the regex decides)
    native = getattr(bulk._native, "cluster_entry", None) if bulk.enabled() else None
    # (and the compiled loop: the rules below, up to the first it leaves to this one)
    loop = getattr(bulk._native, "cluster_entries", None) if native is not None else None
    consts = (_Acc, EntryPoint, fields, cluster_ip)

    def facts(services: Chain, wanted: None):
        raw = services.rules.raw
        i, n = 0, len(raw)
        batch = loop if type(raw) is tuple else None
        while i < n:
            if batch is not None:
                i = batch(raw, i, accs, consts)
                if i >= n:
                    break
            line, text = raw[i]
            i += 1
            got = native(text) if native is not None else False
            if got is False:
                m = match(text)
                got = m.group("d", "p", "spn", "port", "t", "h") if m is not None else None
            if got is None:  # read as before, in its place (the first name and protocol seen win)
                yield from general(services, None, (i - 1,))
                continue
            dst, proto, spn, port, target, key = got
            acc = accs.get(key)
            if acc is None:
                acc = accs[key] = _Acc()
            acc.names.append(spn[:-1] if spn.endswith(":") else spn)  # kubeproxy.normalize_spn
            proto = proto.lower()
            acc.protocol = acc.protocol or proto
            port = int(port)
            entries = acc.entries
            if not entries or not any(e.kind == cluster_ip and e.address == dst and e.port == port for e in entries):
                entries.append(make(EntryPoint, fields, (cluster_ip, dst, port, proto, target, "nat", line, text, None,
                                                         False, None)))

    return facts


def _service_entry_facts(services: Chain, wanted: set[str] | None, only: list[int] | None = None):
    """(dst, proto, comment, port, target, line, text) for each KUBE-SERVICES rule
    that jumps somewhere; standard shapes are read by regex, others decoded."""
    raw = services.rules.raw
    for i in _naming(raw, wanted) if only is None else only:
        line, text = raw[i]
        for shape in _ENTRY_SHAPES:
            m = shape.match(text)
            if m:
                yield (m.group("d"), m.group("p").lower(), m.group("c") if m.group("c") is not None else m.group("c2"),
                       int(m.group("port")), m.group("t"), line, text)
                break
        else:
            rule = services.rules[i]
            if rule.target is not None:
                yield (_address(rule), _proto(rule), rule.comment, _port(rule), rule.target.name, line, text)


# The KUBE-NODEPORTS rule kube-proxy writes for a node port (no -d: every bound
# address), as iptables-save prints it; any other rule is decoded.
_NODE_PORT_SHAPE = re.compile(
    r'-A \S+ -p (?P<p>tcp|udp|sctp) -m comment --comment (?:"(?P<c>[^"\\]*)"|(?P<c2>[^\s"\\\']+)) '
    r"-m (?P=p) --dport (?P<port>[0-9]{1,5}) -j (?P<t>KUBE-(?:SVC|SVL|EXT|FW|XLB)-[A-Z2-7]{16})\Z")


def _node_port_facts(nodeports: Chain, wanted: set[str] | None):
    """(target, comment, proto, port, localhost, address, line, text) of each
    KUBE-NODEPORTS rule that jumps somewhere. With the fast paths on, rules of
    kube-proxy's shape are read by regex; for the whole chain only when every
    rule has it and none repeats another (the decoder would say nothing about
    them), else the chain is decoded and its diagnostics reported as before."""
    raw = nodeports.rules.raw
    read = None
    if bulk.enabled():
        shape = _NODE_PORT_SHAPE.match
        read = [(i, shape(raw[i][1])) for i in _naming(raw, wanted)]
        if wanted is None and not all(m is not None and int(m.group("port")) <= 65535 for _, m in read) \
                or wanted is None and len({text for _, text in raw}) != len(raw):
            read = None
    if read is None and wanted is None:
        rules = [(rule, None) for rule in nodeports.rules]  # every rule decoded
    else:
        if read is None:
            read = [(i, None) for i in _naming(raw, wanted)]
        rules = [(nodeports.rules[i] if m is None else None, (m, raw[i])) for i, m in read]
    for rule, fast in rules:
        if rule is None:
            m, (line, text) = fast
            c = m.group("c")
            yield m.group("t"), c if c is not None else m.group("c2"), m.group("p"), int(m.group("port")), \
                False, None, line, text
            continue
        t = rule.target
        if t is None:
            continue
        d = rule.spec.destination
        localhost = d is not None and not d.negated and d.network.is_loopback
        addr = None if d is None or d.negated or localhost else _address(rule)
        yield t.name, rule.comment, _proto(rule), _port(rule), localhost, addr, rule.line, rule.text


def node_port_addresses(services: Chain) -> list[str] | None:
    """The addresses node ports are bound to (``--nodeport-addresses``: one
    ``KUBE-SERVICES -d ADDR -j KUBE-NODEPORTS`` rule each), or None when a rule
    sends every local address (``-m addrtype --dst-type LOCAL``) or there is none."""
    raw = services.rules.raw
    bound: list[str] = []
    for i in _naming(raw, ("KUBE-NODEPORTS",)):
        rule = services.rules[i]
        if rule.target is None or rule.target.name != "KUBE-NODEPORTS":
            continue
        addr = _address(rule)
        if addr is None:
            return None
        bound.append(addr)
    return bound or None


def _bind_node_ports(services: Chain, accs: dict[str, _Acc]) -> None:
    """Node ports reach KUBE-NODEPORTS only on the bound addresses: one entry per address."""
    bound = node_port_addresses(services)
    if not bound:
        return
    for acc in accs.values():
        out: list[EntryPoint] = []
        for e in acc.entries:
            if e.kind == EntryKind.NODE_PORT and e.address is None:
                out.extend(replace(e, address=a, note=f"node ports are bound to {', '.join(bound)} "
                                                      "(kube-proxy --nodeport-addresses)") for a in bound)
            else:
                out.append(e)
        acc.entries = out


def _replace_localhost(e: EntryPoint) -> EntryPoint:
    return EntryPoint(e.kind, e.address, e.port, e.protocol, e.chain, e.table, e.line, e.text, e.verdict, True, e.note)


def _rules_for(chain: Chain, wanted: set[str] | None) -> Iterable[Rule]:
    """All rules, or (for a targeted lookup) only those naming a wanted hash."""
    if wanted is None:
        return chain.rules
    return [chain.rules[i] for i in _naming(chain.rules.raw, wanted)]


_FILTER_CHAINS = ("KUBE-SERVICES", "KUBE-EXTERNAL-SERVICES", "KUBE-NODEPORTS", "KUBE-PROXY-FIREWALL")
_FILTER_ROLES = {CommentRole.NO_ENDPOINTS: "reject", CommentRole.NO_LOCAL_ENDPOINTS: "drop",
                 CommentRole.HEALTH_CHECK: "accept", CommentRole.FIREWALL_DROP: "drop"}


def _scan_filter(filt: Table, accs: dict[str, _Acc], wanted: set[str] | None) -> None:
    for cname in _FILTER_CHAINS:
        chain = filt.chains.get(cname)
        if chain is None:
            continue
        for rule in chain.rules:
            info = parse_comment(rule.comment)
            if info is None or info.spn is None or info.role not in _FILTER_ROLES:
                continue
            proto = _proto(rule) or "tcp"
            key = _key_for(info.spn, proto, accs)
            if wanted is not None and key not in wanted:
                continue
            acc = _acc(accs, key)
            acc.names.append(info.spn)
            acc.protocol = acc.protocol or proto
            verdict = _FILTER_ROLES[info.role]
            local_dst = rule.spec.match("addrtype")
            if info.role is CommentRole.HEALTH_CHECK:
                kind = EntryKind.HEALTH_CHECK
            elif cname == "KUBE-PROXY-FIREWALL":
                kind = EntryKind.LOAD_BALANCER
            elif local_dst is not None and local_dst.value("--dst-type") == "LOCAL":
                kind = EntryKind.NODE_PORT
            elif cname == "KUBE-EXTERNAL-SERVICES":
                kind = EntryKind.EXTERNAL_IP
            else:
                kind = EntryKind.CLUSTER_IP
            addr = None if kind in (EntryKind.NODE_PORT, EntryKind.HEALTH_CHECK) else _address(rule)
            acc.filter_entries.append(EntryPoint(kind, addr, _port(rule), proto, None, "filter", rule.line,
                                                 rule.text, verdict=verdict, note=rule.comment))


def _key_for(spn: str, proto: str, accs: dict[str, _Acc]) -> str:
    for candidate in hash_candidates(spn):
        h = hash16(candidate + proto)
        if h in accs:
            return h
    return hash16(spn + proto)


def _finish(key: str, family: Family, acc: _Acc, nat: Table | None,
            scan: bulk.NatScan | None = None) -> ServicePortRules:
    warnings = list(acc.warnings)
    chains: dict[str, object] = {}
    endpoints: tuple[EndpointShare, ...] = ()
    local: tuple[EndpointShare, ...] | None = None
    affinity: int | None = None
    ranges: list[str] = []
    names = list(acc.names)
    protocol = acc.protocol
    cascaded = False  # a KUBE-SVC/SVL/XLB chain of this port is here
    if nat is not None:
        have = scan.names if scan is not None else nat.chains
        for prefix, head in _CHAIN_HEADS:
            name = head + key
            if name in have:
                chains[prefix] = name
        seps: dict[str, None] | None = None  # in order, once each
        for prefix in _CASCADE_KEYS:
            cname = chains.get(prefix)
            if cname is None:
                continue
            cascaded = True
            fast = scan.cascades.get(cname, bulk.UNSURE) if scan is not None else bulk.cascade(nat, cname)
            done = None
            if fast is not bulk.UNSURE and scan is not None and names and protocol is not None:
                # (the usual answer straight from the compiled or pure-Python pass; else _fast_shares decides)
                got = scan.shares(fast, scan.dnat, EndpointShare, _CASCADE_SHARES)
                done = (got[0], got[1], (), (), protocol) if got is not None and got[0] is not None \
                    else _fast_shares(scan, fast, protocol)
            if done is None:
                branches = _branches(nat.chains[cname])[0] if fast is bulk.UNSURE else _scanned_branches(nat, cname, fast)
                done = _endpoint_shares(nat, cname, branches, bool(names), protocol,
                                        scan.dnat if scan is not None else None)
            shares, aff, w, pnames, pproto = done
            if w:
                warnings.extend(w)
            if pnames:
                names.extend(pnames)
            protocol = protocol or pproto
            affinity = affinity if affinity is not None else aff
            if seps is None:
                seps = dict.fromkeys(map(_SEP_OF, shares))
            else:
                seps.update(dict.fromkeys(map(_SEP_OF, shares)))
            if prefix == "svc":
                endpoints = shares
            else:
                local = shares if local is None else local + shares
        chains["sep"] = list(seps) if seps is not None else []
        if "fw" in chains:
            for rule in nat.chains[chains["fw"]].rules:
                s = rule.spec.source
                if s is not None and not s.negated and rule.target is not None:
                    ranges.append(str(s.network))
        for prefix in ("svc", "svl", "ext", "fw", "xlb") if not names else ():
            if prefix in chains and not names:
                names.extend(_names_in(nat.chains[chains[prefix]]))
    if not names and key in well_known_hashes():
        known, kproto = well_known_hashes()[key]
        names.append(known)
        protocol = protocol or kproto
        warnings.append(f"named by recomputing the chain hash of the well-known service port {known} {kproto}: "
                        f"the rules carry no comment that names it")
    return _port_rules(key, family, acc, names, protocol, chains, endpoints, local, affinity, ranges, warnings,
                       cascaded)


def _finish_plain(key: str, family: Family, acc: _Acc, scan: bulk.NatScan, present) -> ServicePortRules | None:
    """``_finish(key, family, acc, nat, scan)`` for the usual service port, with
    less on the way (the early analysis of a live read finishes ~10^4 of them
    while the save prints): named, with a protocol, its chains (``present``:
    those of ``KUBE-{SVC,SVL,EXT,FW,XLB}-<key>`` the table has) a KUBE-SVC
    chain and at most a KUBE-EXT one, the cascade read by the bulk scan and
    answered by ``scan.shares`` without a warning. None for any other port
    (then ``_finish`` decides)."""
    names = acc.names
    protocol = acc.protocol
    if not names or protocol is None:
        return None
    svc = ext = None
    for chain in present:
        if chain.startswith("KUBE-SVC-"):
            svc = chain
        elif chain.startswith("KUBE-EXT-"):
            ext = chain
        else:
            return None
    if svc is None:
        return None
    rows = scan.cascades.get(svc, bulk.UNSURE)
    if rows is bulk.UNSURE:
        return None
    got = scan.shares(rows, scan.dnat, EndpointShare, _CASCADE_SHARES)
    if got is None or got[0] is None:
        return None
    shares, affinity = got
    chains: dict[str, object] = {"svc": svc, "ext": ext} if ext is not None else {"svc": svc}
    chains["sep"] = list(dict.fromkeys(map(_SEP_OF, shares)))
    return _port_rules(key, family, acc, list(names), protocol, chains, shares, None, affinity, (), list(acc.warnings),
                       True)


def _port_rules(key, family, acc, names, protocol, chains, endpoints, local, affinity, ranges, warnings,
                cascaded) -> ServicePortRules:
    """The end of ``_finish`` (and of ``_finish_plain``): the name, the naming
    warnings, the entry points and the object."""
    name = names[0] if names else None
    if len(names) > 1 and len(set(names)) > 1:
        warnings.append(f"comments name different services for the same chains: {', '.join(sorted(set(names)))}")
    # (name itself is one of its hash candidates: tested first, the others only when it is not the hash)
    if name and protocol and chains and hash16(name + protocol) != key \
            and not any(hash16(c + protocol) == key for c in hash_candidates(name)):
        warnings.append(f"chain hash {key} is not the hash of {name} {protocol}: hand-edited or stale comments")
    entries = tuple(acc.entries + acc.filter_entries) if acc.filter_entries else tuple(acc.entries)
    if cascaded and not acc.entries:
        warnings.append("no entry point: no KUBE-SERVICES or KUBE-NODEPORTS rule jumps to these chains (stale, or an excerpt)")
    return bulk.frozen(ServicePortRules, _PORT_FIELDS, (key, family, name, protocol, entries, chains, endpoints,
                                                        local, affinity, tuple(ranges), tuple(warnings)) + _PORT_DEFAULTS)


_CASCADE_KEYS = ("svc", "svl", "xlb")


# Every field of the model objects built through bulk.frozen, in order, and the
# defaults of the ServicePortRules fields _finish does not set.
_ENTRY_FIELDS = tuple(f.name for f in dataclasses.fields(EntryPoint))
_PORT_FIELDS = tuple(f.name for f in dataclasses.fields(ServicePortRules))
_PORT_DEFAULTS = tuple(f.default for f in dataclasses.fields(ServicePortRules)[11:])
assert dataclasses.MISSING not in _PORT_DEFAULTS and len(_ENTRY_FIELDS) == 11


_CHAIN_HEADS = tuple((p.lower(), f"KUBE-{p}-") for p in ("SVC", "SVL", "EXT", "FW", "XLB"))
_SEP_OF = operator.attrgetter("sep")


def _names_in(chain: Chain) -> list[str]:
    for i, (_, text) in enumerate(chain.rules.raw):
        if "--comment" in text:
            info = parse_comment(chain.rules[i].comment)
            if info is not None and info.spn:
                return [info.spn]
    return []


def _endpoint_shares(nat: Table, chain_name: str, branches: list[Branch], named: bool = False,
                     protocol: str | None = None, dnat: dict | None = None):
    """Exact shares of a cascade; warnings for anything kube-proxy would not write."""
    warnings: list[str] = []
    names: list[str] = []
    affinity = None
    for b in branches:
        if b.affinity_seconds is not None:
            affinity = b.affinity_seconds
    cascade = [b for b in branches if b.affinity_seconds is None]
    n = len(cascade)
    uniform = _is_uniform(cascade)
    if uniform:
        # p_i = 1/(n-i) on every branch, the last unconditional: exactly 1/n each.
        shares = [_one_in(n)] * n
    else:
        probs: list[Fraction | None] = []
        for b in cascade:
            p = None if b.probability is None else interpret_probability(b.probability).exact
            if b.probability is not None and p is None:
                warnings.append(f"line {b.line}: probability {b.probability!r} is not a number between 0 and 1; "
                                "counted as never matching")
                p = Fraction(0)
            probs.append(p)
        shares = cascade_shares(probs)
    out: list[EndpointShare] = []
    for i, (b, share) in enumerate(zip(cascade, shares)):
        # (the bulk pass read only chains that exist)
        endpoint = dnat.get(b.sep, _UNREAD) if dnat is not None else _UNREAD
        if endpoint is _UNREAD and b.sep not in nat.chains:
            warnings.append(f"{chain_name} jumps to {b.sep}, which does not exist (line {b.line}): "
                            f"{_pct(share)} of new connections fail")
            endpoint = b.comment_endpoint
        else:
            if endpoint is _UNREAD:
                endpoint = sep_endpoint(nat, b.sep)
            if endpoint is None:
                warnings.append(f"{b.sep} has no DNAT rule: traffic sent there is not redirected")
            if not (named or names) or protocol is None:
                n2, p2 = _sep_meta(nat.raw_rules(b.sep) or ())
                names.extend(n2)
                protocol = protocol or p2
        if b.comment_endpoint and endpoint and b.comment_endpoint != endpoint:
            warnings.append(f"line {b.line}: comment says {b.comment_endpoint} but {b.sep} DNATs to {endpoint}")
        if not uniform:
            if b.probability is not None:
                if interpret_probability(b.probability).intended_k != n - i:
                    warnings.append(f"line {b.line}: probability {b.probability} where kube-proxy writes "
                                    f"1/{n - i} for endpoint {i + 1} of {n}")
            elif i != n - 1:
                warnings.append(f"line {b.line}: unconditional jump before the end of the cascade; "
                                f"the {n - 1 - i} rule(s) after it are never reached")
        out.append(EndpointShare(endpoint, b.sep, share, b.probability, b.line))
    if not uniform and cascade:
        total = sum(shares, Fraction(0))
        if total != 1:
            warnings.append(f"{chain_name}: the shares add up to {_pct(total)}; the other {_pct(1 - total)} of new "
                            f"connections fall through the chain")
        elif len(set(shares)) > 1:
            warnings.append(f"{chain_name}: endpoints do not get equal shares ("
                            + ", ".join(f"{s.endpoint or s.sep} {_pct(s.share)}" for s in out) + ")")
    return tuple(out), affinity, warnings, names, protocol


_UNREAD = object()  # an endpoint chain the bulk pass left to sep_endpoint

# The share of every cascade seen, by its probability strings (kube-proxy writes
# the same ones for every cascade of n endpoints): 1/n, or None (not uniform).
_CASCADE_SHARES: dict[tuple[str | None, ...], Fraction | None] = {}


def _fast_shares(scan: bulk.NatScan, rows, protocol: str):
    """:func:`_uniform_endpoint_shares` through ``bulk.uniform_shares`` (compiled
    where built): the same answer, without a Python step per endpoint when no
    endpoint needs a warning."""
    known = _CASCADE_SHARES
    got = scan.shares(rows, scan.dnat, EndpointShare, known)
    if got is not None and got[0] is None:
        probabilities = got[1]
        if len(known) >= 4096:
            known.clear()
        known[probabilities] = _one_in(len(probabilities)) if _uniform_probabilities(probabilities) else None
        got = scan.shares(rows, scan.dnat, EndpointShare, known)
    if got is not None and got[0] is not None:  # (still unknown: ``known`` was cleared meanwhile)
        return got[0], got[1], [], [], protocol
    return _uniform_endpoint_shares(rows, scan.dnat, protocol)


def _uniform_endpoint_shares(rows, dnat: dict, protocol: str):
    """What :func:`_endpoint_shares` returns for a named service port, from the
    bulk pass's branch tuples, when the cascade is kube-proxy's 1/(n-i) one and
    the pass read every endpoint chain of it; None otherwise (then the general
    function decides). No Branch objects and no Fraction per endpoint: 1/n is
    one object per n."""
    affinity, cascade = bulk.split_affinity(rows)
    if not cascade or not _uniform_probabilities(tuple(row[3] for row in cascade)):
        return None
    share = _one_in(len(cascade))
    warnings: list[str] = []
    out = []
    for sep, line, _, probability, _, said in cascade:
        endpoint = dnat.get(sep, _UNREAD)
        if endpoint is _UNREAD:
            return None
        if endpoint is None:
            warnings.append(f"{sep} has no DNAT rule: traffic sent there is not redirected")
        elif said and said != endpoint:
            warnings.append(f"line {line}: comment says {said} but {sep} DNATs to {endpoint}")
        out.append(EndpointShare(endpoint, sep, share, probability, line))
    return tuple(out), affinity, warnings, [], protocol


@lru_cache(maxsize=4096)
def _uniform_probabilities(probabilities: tuple[str | None, ...]) -> bool:
    """:func:`_is_uniform` of a cascade with these probabilities (kube-proxy
    writes the same strings for every cascade of n endpoints)."""
    return _is_uniform([Branch("", 0, "", p) for p in probabilities])


@lru_cache(maxsize=1024)
def _one_in(n: int) -> Fraction:
    return Fraction(1, n)


def _is_uniform(cascade: list[Branch]) -> bool:
    n = len(cascade)
    if n == 0:
        return False
    for i, b in enumerate(cascade):
        if i == n - 1:
            if b.probability is not None:
                return False
        elif b.probability is None or interpret_probability(b.probability).intended_k != n - i:
            return False
    return True


_RAW_PROTO = re.compile(r"(?:^|\s)-p (\w+)")


def _sep_meta(raw) -> tuple[list[str], str | None]:
    """Service name (from comments) and protocol of an endpoint chain, read from raw text."""
    names: list[str] = []
    proto = None
    for _, text in raw:
        if not names:
            info = parse_comment(raw_comment(text))
            if info is not None and info.spn:
                names.append(info.spn)
        if proto is None:
            m = _RAW_PROTO.search(text)
            if m and " ! -p " not in text:
                proto = m.group(1).lower()
    return names, proto


def _pct(x: Fraction) -> str:
    return f"{float(x) * 100:.2f}%"


# --- finding service ports by name ------------------------------------------------

_DISPATCH = (("nat", "KUBE-SERVICES"), ("nat", "KUBE-NODEPORTS"), ("filter", "KUBE-SERVICES"),
             ("filter", "KUBE-EXTERNAL-SERVICES"), ("filter", "KUBE-NODEPORTS"), ("filter", "KUBE-PROXY-FIREWALL"))


def _dispatch_index(ruleset: Ruleset, match, needle: str) -> tuple[dict[str, tuple[str, str] | None], set[str]]:
    """(chain hashes of the service ports whose comment name satisfies ``match``,
    every name seen), from the raw dispatch rules; lines without ``needle`` are skipped."""
    keys: dict[str, tuple[str, str] | None] = {}
    names: set[str] = set()
    for table in ruleset.tables:
        for tname, cname in _DISPATCH:
            if table.name != tname:
                continue
            raw = table.raw_rules(cname) or ()
            for i in _naming(raw, (needle,)):
                text = raw[i][1]
                if "--comment" not in text:
                    continue
                info = parse_comment(raw_comment(text))
                if info is None or info.spn is None:
                    continue
                names.add(info.spn)
                if not match(info.spn):
                    continue
                target = raw_target(text)
                key = chain_hash(target[0]) if target else None
                if key is None:  # a filter REJECT/DROP: the hash kube-proxy uses for the port
                    p = _RAW_PROTO.search(text)
                    key = hash16(info.spn + (p.group(1).lower() if p else "tcp"))
                keys.setdefault(key, None)
    return keys, names


def select_service_ports(ruleset: Ruleset, query: str | None = None,
                         namespace: str | None = None) -> list[ServicePortRules]:
    """The service ports ``query`` names: ``ns/name``, ``ns/name:portname``,
    ``ns/name:portnumber``, a bare name with ``namespace``, a chain name or hash;
    or, with no query, every service port of ``namespace``.

    Only those ports are analysed (a 10k-service dump stays fast). Without
    comments (kube-proxy's large-cluster mode, old releases) a named port is found
    by recomputing its chain hash, and gets its name back. Raises
    UnknownServiceError with the closest names when nothing matches.
    """
    if query is not None and "/" not in query and namespace and not _HASH_QUERY.fullmatch(query):
        query = f"{namespace}/{query}"
    if query is None:
        prefix = f"{namespace}/"
        keys, _ = _dispatch_index(ruleset, lambda spn: spn.startswith(prefix), prefix)
        ports = [p for p in build_service_ports(ruleset, only=set(keys)) if p.name and p.name.startswith(prefix)]
        if not ports:
            raise UnknownServiceError(f"no service in namespace {namespace!r} in the rules")
        return ports
    base, _, port = query.partition(":") if "/" in query else (query, "", "")
    number = int(port) if port.isdigit() else None
    named = query if port and number is None else None
    keys, _ = _dispatch_index(ruleset, lambda spn: spn == named if named else spn.split(":")[0] == base, base)
    for fam in ruleset.families:
        nat = ruleset.table("nat", fam)
        if nat is None:
            continue
        for cand in hash_candidates(named or base):
            for proto in ("tcp", "udp", "sctp"):
                h = hash16(cand + proto)
                if any(f"KUBE-{p}-{h}" in nat.chains for p in ("SVC", "SVL", "EXT", "FW", "XLB")):
                    keys[h] = (named or base, proto)
    m = _HASH_QUERY.fullmatch(query)
    if m:
        keys.setdefault(m.group(1), None)
    ports = []
    for p in build_service_ports(ruleset, only=set(keys)) if keys else []:
        found = keys.get(p.key)
        if p.name is None and found is not None:
            p = replace(p, name=found[0], protocol=p.protocol or found[1],
                        warnings=p.warnings + (f"named by recomputing the chain hash of {found[0]} {found[1]}: "
                                               f"the rules carry no comments",))
        if m or p.name is None or p.name.split(":")[0] == base:
            ports.append(p)
    if number is not None:
        ports = [p for p in ports if any(e.port == number for e in p.entries if e.kind != EntryKind.HEALTH_CHECK)]
    if not ports and ruleset.gaps:  # an excerpt may hold only endpoint chains: they name their service too
        ports = find_service(build_service_ports(ruleset), query)
    if not ports:
        _, names = _dispatch_index(ruleset, lambda spn: True, "")
        bases = sorted({n.split(":")[0] for n in names} | names)
        close = difflib.get_close_matches(query, bases, n=5, cutoff=0.4)
        ipvs = any(c in t.chains for t in ruleset.tables if t.name == "nat" for c in IPVS_CHAINS)
        raise UnknownServiceError(f"no service {query!r} in the rules" + (f"; closest: {', '.join(close)}"
                                                                          if close else "")
                                  + ("; kube-proxy runs in IPVS mode here, where Services are IPVS virtual "
                                     "servers: see `ipvsadm -Ln`" if ipvs else ""))
    return ports


_HASH_QUERY = re.compile(r"(?:KUBE-(?:SVC|SVL|EXT|FW|XLB)-)?([A-Z2-7]{16})")


# kube-proxy's IPVS mode writes no per-service chains: any here were left by an
# earlier iptables-mode kube-proxy (svcinspect.completeness detects the mode).
IPVS_CHAINS = ("KUBE-LOAD-BALANCER", "KUBE-NODE-PORT")
IPVS_LEFTOVER = ("left over from iptables mode: kube-proxy runs in IPVS mode on this node and does not use "
                 "these chains (IPVS load-balances this service; see `ipvsadm -Ln`)")


# --- excerpts: what the input does not prove -------------------------------------
# Kept apart from the walk above: it runs only when the reader saw an excerpt
# (``Ruleset.gaps``), and never changes the answer on a whole dump.

_CASCADE_WORDS = ("probability", "unconditional", "add up", "equal shares", "does not exist", "has no DNAT")


def excerpt_view(ports: list[ServicePortRules], nat: Table, family: Family,
                 wanted: set[str] | None = None) -> list[ServicePortRules]:
    """The service ports of an excerpt, saying what is unknown instead of absent.

    - a service port whose KUBE-SVC/SVL chain is not in the input: the endpoint
      chains that are (tied to it by their comment or their recomputed hash),
      with shares unknown, and ``endpoints_complete`` False;
    - a cascade that is present but not kube-proxy's whole 1/(n-i) sequence
      (part of it outside the paste): shares unknown rather than "uneven";
    - an endpoint chain jumped to but not in the input: "not in the input", not
      "connections fail";
    - endpoint chains whose service has no other rule here (a paste of KUBE-SEP
      chains only): the service ports they evidence.
    A REJECT "has no endpoints" is a rule that says so: that port stays complete.
    """
    claimed = {sep for sp in ports for sep in sp.chains.get("sep") or ()}
    seen = _unclaimed_endpoints(nat, claimed)
    by_key: dict[str, list[tuple[str, str | None, str | None, str | None, int]]] = {}
    for sep, spn, proto, ep, line in seen:
        keys = {hash16(c + proto) for c in hash_candidates(spn)} if spn and proto else set()
        for k in keys or {""}:
            by_key.setdefault(k, []).append((sep, spn, proto, ep, line))
    out: list[ServicePortRules] = []
    used: set[str] = set()
    for sp in ports:
        extra = list(by_key.get(sp.key, ()))
        if sp.name and sp.protocol:  # no comment on the SEP chain: its hash names it
            for sep, spn, proto, ep, line in by_key.get("", ()):
                if ep and any(endpoint_chain(c, sp.protocol, ep) == sep for c in hash_candidates(sp.name)):
                    extra.append((sep, sp.name, sp.protocol, ep, line))
        used.update(x[0] for x in extra)
        out.append(_excerpt_port(sp, nat, extra))
    groups: dict[str, list] = {}
    for key, items in by_key.items():
        if not key or any(sp.key == key for sp in ports) or (wanted is not None and key not in wanted):
            continue
        fresh = [x for x in items if x[0] not in used]
        if fresh:
            groups[key] = fresh
            used.update(x[0] for x in fresh)
    for key, items in groups.items():
        spn, proto = items[0][1], items[0][2]
        eps = tuple(EndpointShare(ep, sep, None, None, line) for sep, _, _, ep, line in items)
        why = (f"KUBE-SVC-{key} (and every other chain of {spn}) is not in the input: only its endpoint "
               f"chains are, so which of them are used and their shares are unknown")
        out.append(ServicePortRules(key, family, spn, proto, (), {"sep": [x[0] for x in items]}, eps, None, None,
                                    (), (), False, (why,), False, True))
    return out


def _unclaimed_endpoints(nat: Table, claimed: set[str]):
    """(sep, service port name, protocol, endpoint, line) of endpoint chains no cascade here reaches."""
    for name in nat.chains:
        if name in claimed or classify_chain(name) is not ChainKind.SEP:
            continue
        raw = nat.raw_rules(name) or ()
        names, proto = _sep_meta(raw)
        ep = sep_endpoint(nat, name)
        line = raw[0][0] if raw else nat.chains[name].line
        yield name, (names[0] if names else None), proto, ep, line


def _excerpt_port(sp: ServicePortRules, nat: Table, extra) -> ServicePortRules:
    unknown: list[str] = []
    cluster_known = True
    warnings = [w for w in sp.warnings if not any(k in w for k in _CASCADE_WORDS)]
    proves_none = any(e.verdict == "reject" for e in sp.entries if e.table == "filter")
    endpoints = sp.endpoints
    local = sp.local_endpoints
    referenced = _referenced_cascades(sp, nat)
    present = [sp.chains[k] for k in ("svc", "svl", "xlb") if sp.chains.get(k)]
    for chain in referenced:
        if chain not in nat.chains:
            what = ("the cascade of its node-local endpoints" if chain.startswith(("KUBE-SVL-", "KUBE-XLB-"))
                    else "the cascade of its endpoints" if chain.startswith("KUBE-SVC-")
                    else "where its external traffic goes")
            unknown.append(f"{chain} ({what}) is not in the input")
            cluster_known = cluster_known and chain.startswith(("KUBE-SVL-", "KUBE-XLB-"))
    if not present and not proves_none:
        if not referenced:
            unknown.append("no KUBE-SVC/KUBE-SVL chain of this service port is in the input")
        cluster_known = False
        endpoints = tuple(EndpointShare(ep, sep, None, None, line) for sep, _, _, ep, line in extra)
    if not sp.chains.get("svc") and not proves_none:
        cluster_known = False
        if present and not referenced:
            unknown.append(f"KUBE-SVC-{sp.key} (the cascade of its endpoints) is not in the input")
    local_known = not any(c.startswith(("KUBE-SVL-", "KUBE-XLB-")) and c not in nat.chains for c in referenced)
    for prefix in ("svc", "svl", "xlb"):
        name = sp.chains.get(prefix)
        if not name:
            continue
        branches, _ = _branches(nat.chains[name])
        cascade = [b for b in branches if b.affinity_seconds is None]
        shares = sp.endpoints if prefix == "svc" else (sp.local_endpoints or ())
        before = len(unknown)
        if not cascade:
            unknown.append(f"{name} has no endpoint jump in the input (the paste holds only some of its rules)")
            if prefix == "svc":
                shares = tuple(EndpointShare(ep, sep, None, None, line) for sep, _, _, ep, line in extra)
        elif not _is_uniform(cascade):
            unknown.append(f"{name}'s cascade in the input is not kube-proxy's whole 1/(n-i) sequence: the rest of "
                           f"it may be outside the excerpt, so the shares are unknown")
            shares = tuple(replace(e, share=None) for e in shares)
        for e in shares:
            if e.sep not in nat.chains:
                unknown.append(f"{e.sep} is not in the input: its endpoint is "
                               + (f"{e.endpoint} (from the comment)" if e.endpoint else "unknown"))
        if prefix == "svc":
            endpoints = shares
            cluster_known = cluster_known and len(unknown) == before
        else:
            local = shares
            local_known = local_known and len(unknown) == before
    if not unknown:
        return replace(sp, warnings=tuple(warnings))
    return replace(sp, endpoints=endpoints, local_endpoints=local, warnings=tuple(warnings),
                   endpoints_complete=False, unknown=tuple(dict.fromkeys(unknown)), cluster_complete=cluster_known,
                   local_complete=local_known)


def _referenced_cascades(sp: ServicePortRules, nat: Table) -> list[str]:
    """KUBE-SVC/SVL/XLB chains of this port that its entries or its other chains jump to."""
    out: list[str] = []
    for e in sp.entries:
        if e.chain and classify_chain(e.chain).per_service and classify_chain(e.chain) is not ChainKind.SEP:
            out.append(e.chain)
    for prefix in ("ext", "fw"):
        name = sp.chains.get(prefix)
        for _, text in (nat.raw_rules(name) or ()) if name else ():
            t = raw_target(text)
            if t and classify_chain(t[0]) in (ChainKind.SVC, ChainKind.SVL, ChainKind.XLB):
                out.append(t[0])
    return list(dict.fromkeys(out))
