"""nftables mode -> the shared service-port model (``svcinspect.dataplane.iptables.services``).

kube-proxy's nftables table names every per-service-port object after the port:
``service-``/``local-``/``external-``/``firewall-`` + ``H`` + ``-ns/name/proto/port``
(``H`` = the first 8 base32 characters of SHA-256 of ``ns/name/proto/port``),
``endpoint-H'-ns/name/proto/port__IP/port`` and ``affinity-...`` sets. Entry points
come from the dispatch maps (``service-ips``, ``service-nodeports``), verdicts for
ports without endpoints from ``no-endpoint-services`` / ``no-endpoint-nodeports``
(whose elements carry the ``ns/name:port`` comment), source ranges from
``firewall-ips`` and the ``firewall-`` chains. Endpoint shares are exact: a
``numgen random mod N`` map gives each index 1/N (an element ``0-1 : ...`` gets
2/N).

The result is the same ``ServicePortRules`` the iptables reader builds, with
``key`` set to the service port's iptables-mode hash (``hash16(spn + proto)``) so
that the objects, ``check`` and a comparison of the two modes line up; the nft
names are in ``chains``. What the nft rules cannot tell (an external IP from a
load-balancer IP without source ranges, health-check node ports) is a note.
"""

from __future__ import annotations

import base64
import difflib
import hashlib
import re
from dataclasses import dataclass
from fractions import Fraction

from svcinspect.dataplane.nftables.model import NftChain, NftRule, NftRuleset, NftSet, NftTable
from svcinspect.errors import UnknownServiceError
from svcinspect.dataplane.iptables.kubeproxy import hash16
from svcinspect.model.netfilter import Family
from svcinspect.model.service import EndpointShare, EntryKind, EntryPoint, ServicePortRules

PREFIXES = ("service", "local", "external", "firewall", "endpoint", "affinity")
ROLE = {"service": "svc", "local": "svl", "external": "ext", "firewall": "fw"}
_NAME = re.compile(r"^(service|local|external|firewall|endpoint|affinity)-([A-Z2-7]{8})-(.+)$")
EXTERNAL_NOTE = "external or load-balancer IP (nftables rules do not say which, unless source ranges apply)"


def chain_hash(base: str) -> str:
    """kube-proxy's nftables name hash: base32(sha256(name))[:8].

    >>> chain_hash("default/hello-world/tcp/")
    'AN52JS3S'
    """
    return base64.b32encode(hashlib.sha256(base.encode()).digest()).decode()[:8]


@dataclass(frozen=True, slots=True)
class NftName:
    """A per-service-port object name, split: ``service-AN52JS3S-default/hello-world/tcp/``."""

    prefix: str
    hash: str
    base: str            # ns/name/proto/port (endpoint/affinity: + "__IP/port")
    port_base: str       # ns/name/proto/port
    endpoint: str | None  # "IP:port" / "[IPv6]:port" for endpoint-/affinity- names

    @property
    def verified(self) -> bool:
        return chain_hash(self.base) == self.hash

    @property
    def spn(self) -> str:
        return spn_of(self.port_base)

    @property
    def protocol(self) -> str | None:
        parts = self.port_base.split("/")
        return parts[2] if len(parts) >= 4 else None


def split_name(name: str) -> NftName | None:
    m = _NAME.match(name)
    if not m:
        return None
    prefix, h, base = m.groups()
    port_base, endpoint = base, None
    if "__" in base:
        port_base, _, ep = base.rpartition("__")
        ip, _, port = ep.rpartition("/")
        if ip.count(".") > 3:  # IPv6 with ':' written as '.'
            ip = ip.replace(".", ":")
            endpoint = f"[{ip}]:{port}"
        else:
            endpoint = f"{ip}:{port}"
    return NftName(prefix, h, base, port_base, endpoint)


def spn_of(port_base: str) -> str:
    """``ns/name/proto/port`` -> ``ns/name:port`` (``ns/name`` for an unnamed port)."""
    parts = port_base.split("/")
    if len(parts) < 4:
        return port_base
    ns, name, port = parts[0], parts[1], "/".join(parts[3:])
    return f"{ns}/{name}:{port}" if port else f"{ns}/{name}"


def port_base_of(spn: str, proto: str) -> str:
    ns_name, _, port = spn.partition(":") if ":" in spn.split("/", 1)[-1] else (spn, "", "")
    return f"{ns_name}/{proto}/{port}"


# --- values ------------------------------------------------------------------------

def elem_key(key):
    """An element's key without its ``{"elem": ...}`` wrapper (comment, timeout)."""
    if isinstance(key, dict) and "elem" in key:
        return key["elem"]["val"]
    return key


def concat_parts(v) -> list:
    v = elem_key(v)
    if isinstance(v, dict) and "concat" in v:
        return list(v["concat"])
    return [v]


def verdict_target(v) -> tuple[str, str | None]:
    """("goto", chain) / ("jump", chain) / ("drop", None) ... of a verdict value."""
    if isinstance(v, dict) and len(v) == 1:
        (k, x), = v.items()
        return k, (x or {}).get("target") if isinstance(x, dict) else None
    return str(v), None


def fmt_endpoint(addr: str, port) -> str:
    return f"[{addr}]:{port}" if ":" in str(addr) else f"{addr}:{port}"


def index_count(key, mod: int) -> int:
    """How many numgen values a map key covers (``0``, ``0-2``, ...)."""
    key = elem_key(key)
    if isinstance(key, int):
        return 1 if 0 <= key < mod else 0
    if isinstance(key, dict) and "range" in key:
        lo, hi = key["range"]
        lo, hi = max(int(lo), 0), min(int(hi), mod - 1)
        return max(hi - lo + 1, 0)
    return 0


# --- the walk -------------------------------------------------------------------------

class _Acc:
    __slots__ = ("entries", "filter_entries", "names", "protocol", "warnings")

    def __init__(self) -> None:
        self.entries: list[EntryPoint] = []
        self.filter_entries: list[EntryPoint] = []
        self.names: list[str] = []
        self.protocol: str | None = None
        self.warnings: list[str] = []


def build_service_ports(ruleset: NftRuleset, only=None) -> list[ServicePortRules]:
    """Every service port of the kube-proxy tables, sorted by name then family.
    ``only``: restrict to these keys (``hash16(spn + proto)``)."""
    out: list[ServicePortRules] = []
    for fam in ruleset.families:
        table = ruleset.kube_proxy(fam)
        if table is None:
            continue
        for sp in _table_ports(table, fam):
            if only is None or sp.key in only:
                out.append(sp)
    out.sort(key=lambda s: (s.name is None, s.name or s.key, int(s.family)))
    return out


def _table_ports(t: NftTable, fam: Family) -> list[ServicePortRules]:
    accs: dict[str, _Acc] = {}
    cluster_ips = {str(elem_key(e.key)) for e in _set(t, "cluster-ips").elements} if _set(t, "cluster-ips") else set()
    firewalled: dict[tuple, str] = {}
    fw = _set(t, "firewall-ips")
    for e in fw.elements if fw else ():
        parts = concat_parts(e.key)
        _, target = verdict_target(e.value)
        if len(parts) == 3 and target:
            firewalled[(str(parts[0]), str(parts[1]), int(parts[2]))] = target
    nodeport_ips = [str(elem_key(e.key)) for e in _set(t, "nodeport-ips").elements] if _set(t, "nodeport-ips") else []
    np_note = (f"the node-port addresses of @nodeport-ips: {', '.join(nodeport_ips)}" if nodeport_ips
               else None)
    svc_ips = _set(t, "service-ips")
    for e in svc_ips.elements if svc_ips else ():
        parts = concat_parts(e.key)
        kind, target = verdict_target(e.value)
        if len(parts) != 3 or target is None:
            continue
        name = split_name(target)
        if name is None:
            continue
        acc = _acc(accs, name.port_base)
        addr, proto, port = str(parts[0]), str(parts[1]), int(parts[2])
        acc.protocol = acc.protocol or proto
        note = None
        if addr in cluster_ips or name.prefix in ("service", "local"):
            ekind = EntryKind.CLUSTER_IP
        elif (addr, proto, port) in firewalled:
            ekind = EntryKind.LOAD_BALANCER
        else:
            ekind, note = EntryKind.EXTERNAL_IP, EXTERNAL_NOTE
        acc.entries.append(EntryPoint(ekind, addr, port, proto, target, "nat", e.line, e.text or _elem_text(e),
                                      note=note))
    nps = _set(t, "service-nodeports")
    for e in nps.elements if nps else ():
        parts = concat_parts(e.key)
        _, target = verdict_target(e.value)
        name = split_name(target) if target else None
        if len(parts) != 2 or name is None:
            continue
        acc = _acc(accs, name.port_base)
        acc.protocol = acc.protocol or str(parts[0])
        acc.entries.append(EntryPoint(EntryKind.NODE_PORT, None, int(parts[1]), str(parts[0]), target, "nat", e.line,
                                      e.text or _elem_text(e), note=np_note))
    sole = _sole_addresses(t) if "cluster-ips" not in t.sets else {}
    for mapname, is_np in (("no-endpoint-services", False), ("no-endpoint-nodeports", True)):
        m = _set(t, mapname)
        for e in m.elements if m else ():
            parts = concat_parts(e.key)
            kind, target = verdict_target(e.value)
            verdict = "reject" if target == "reject-chain" or kind == "reject" else kind
            if e.comment is None:
                continue
            if is_np and len(parts) == 2:
                proto, port, addr, ekind = str(parts[0]), int(parts[1]), None, EntryKind.NODE_PORT
            elif not is_np and len(parts) == 3:
                addr, proto, port = str(parts[0]), str(parts[1]), int(parts[2])
                ekind = EntryKind.CLUSTER_IP if addr in cluster_ips else (
                    EntryKind.LOAD_BALANCER if (addr, proto, port) in firewalled else EntryKind.EXTERNAL_IP)
                if sole.get(e.comment) == addr and ekind == EntryKind.EXTERNAL_IP:
                    # 1.29 has no @cluster-ips set: a port without endpoints has no service-ips element
                    # either, so only its no-endpoint-services elements name its addresses. Every service
                    # port has one cluster IP per family: a sole address is it; with more, which one is
                    # the cluster IP is unknown and they stay external IPs (with the note).
                    ekind = EntryKind.CLUSTER_IP
            else:
                continue
            acc = _acc(accs, port_base_of(e.comment, proto))
            acc.names.append(e.comment)
            acc.protocol = acc.protocol or proto
            acc.filter_entries.append(EntryPoint(ekind, addr, port, proto, None, "filter", e.line,
                                                 e.text or _elem_text(e), verdict=verdict, note=e.comment))
    for (addr, proto, port), target in firewalled.items():
        name = split_name(target)
        if name is None:
            continue
        acc = _acc(accs, name.port_base)
        acc.filter_entries.append(EntryPoint(EntryKind.LOAD_BALANCER, addr, port, proto, None, "filter",
                                             fw.line if fw else 0, f"{addr} . {proto} . {port} : goto {target}",
                                             verdict="drop", note=f"{spn_of(name.port_base)} traffic not accepted "
                                                                  f"by {target}"))
    # Chains nothing above reached (stale, or an excerpt).
    for cname in t.chains:
        name = split_name(cname)
        if name is not None and name.prefix in ROLE and name.port_base not in accs:
            acc = _acc(accs, name.port_base)
            acc.warnings.append("no entry point: no service-ips or service-nodeports element leads to these chains "
                                "(stale, or an excerpt)")
    by_base: dict[tuple[str, str], str] = {}  # (prefix, ns/name/proto/port) -> chain, whatever its hash
    for cname in t.chains:
        name = split_name(cname)
        if name is not None and name.prefix in ROLE:
            by_base.setdefault((name.prefix, name.base), cname)
    return [_finish(base, fam, acc, t, by_base) for base, acc in accs.items()]


def _sole_addresses(t: NftTable) -> dict[str, str]:
    """``ns/name:port`` -> its address, for the ports that @no-endpoint-services names
    with exactly one address and @service-ips not at all (1.29, without @cluster-ips)."""
    addrs: dict[str, set[str]] = {}
    m = _set(t, "no-endpoint-services")
    for e in m.elements if m else ():
        parts = concat_parts(e.key)
        if e.comment and len(parts) == 3:
            addrs.setdefault(e.comment, set()).add(str(parts[0]))
    served = set()
    svc_ips = _set(t, "service-ips")
    for e in svc_ips.elements if svc_ips else ():
        _, target = verdict_target(e.value)
        name = split_name(target) if target else None
        if name is not None:
            served.add(name.spn)
    return {spn: next(iter(a)) for spn, a in addrs.items() if len(a) == 1 and spn not in served}


def _elem_text(e) -> str:
    from svcinspect.dataplane.nftables.render import render_element
    return render_element(e)


def _set(t: NftTable, name: str) -> NftSet | None:
    return t.sets.get(name)


def _acc(accs: dict[str, _Acc], key: str) -> _Acc:
    a = accs.get(key)
    if a is None:
        a = accs[key] = _Acc()
    return a


def _finish(base: str, fam: Family, acc: _Acc, t: NftTable, by_base: dict) -> ServicePortRules:
    warnings = list(acc.warnings)
    parts = base.split("/")
    proto = parts[2] if len(parts) >= 4 else acc.protocol
    spn = spn_of(base)
    chains: dict[str, object] = {}
    h = chain_hash(base)
    for prefix, role in ROLE.items():
        name = f"{prefix}-{h}-{base}"
        if name in t.chains:
            chains[role] = name
        elif (prefix, base) in by_base:
            wrong = by_base[(prefix, base)]
            chains[role] = wrong
            warnings.append(f"chain {wrong}: its hash is not base32(sha256({base!r}))[:8] = {h} "
                            "(hand-edited or renamed)")
    endpoints: tuple[EndpointShare, ...] = ()
    local: tuple[EndpointShare, ...] | None = None
    affinity: int | None = None
    seps: list[str] = []
    for role in ("svc", "svl"):
        if role not in chains:
            continue
        shares, aff, w = endpoint_shares(t, t.chains[chains[role]])
        warnings.extend(w)
        affinity = affinity if affinity is not None else aff
        seps.extend(s.sep for s in shares if s.sep.startswith("endpoint-") and s.sep not in seps)
        if role == "svc":
            endpoints = shares
        else:
            local = shares
    chains["sep"] = seps
    ranges: list[str] = []
    if "fw" in chains:
        for r in t.chains[chains["fw"]].rules:
            ranges.extend(_source_ranges(r))
    names = [n for n in acc.names if n != spn]
    if names:
        warnings.append(f"element comments name {', '.join(sorted(set(names)))} for the chains of {spn}")
    entries = tuple(acc.entries) + tuple(acc.filter_entries)
    key = hash16(spn + (proto or ""))
    return ServicePortRules(key, fam, spn, proto, entries, chains, endpoints, local, affinity, tuple(ranges),
                            tuple(warnings), dataplane="nftables")


def _source_ranges(r: NftRule) -> list[str]:
    for s in r.exprs:
        m = s.get("match") if isinstance(s, dict) else None
        if m and m["op"] == "!=" and isinstance(m["left"], dict) and m["left"].get("payload", {}).get("field") == "saddr":
            right = m["right"]
            items = right["set"] if isinstance(right, dict) and "set" in right else [right]
            out = []
            for x in items:
                if isinstance(x, dict) and "prefix" in x:
                    out.append(f"{x['prefix']['addr']}/{x['prefix']['len']}")
                elif isinstance(x, str):
                    out.append(x + ("/128" if ":" in x else "/32"))
            return out
    return []


def endpoint_shares(t: NftTable, chain: NftChain) -> tuple[tuple[EndpointShare, ...], int | None, list[str]]:
    """Endpoints of a ``service-``/``local-`` chain with exact shares, the affinity
    timeout (seconds) and warnings about anything kube-proxy would not write."""
    warnings: list[str] = []
    affinity = None
    out: list[EndpointShare] = []
    for r in chain.rules:
        for s in r.exprs:
            if not isinstance(s, dict):
                continue
            if "match" in s and isinstance(s["match"]["right"], str) and s["match"]["right"].startswith("@affinity-"):
                st = t.sets.get(s["match"]["right"][1:])
                if st is not None and st.timeout is not None:
                    affinity = st.timeout
            if "dnat" in s:
                addr = (s["dnat"] or {}).get("addr")
                if isinstance(addr, dict) and "map" in addr and "numgen" in addr["map"]["key"]:
                    mod = addr["map"]["key"]["numgen"]["mod"]
                    pairs = addr["map"]["data"].get("set", []) if isinstance(addr["map"]["data"], dict) else []
                    out.extend(_numgen_shares(chain, r, mod, pairs, None, warnings))
                else:
                    ep = _dnat_endpoint(s["dnat"] or {})
                    out.append(EndpointShare(ep, chain.name, Fraction(1), None, r.line))
            elif "vmap" in s and isinstance(s["vmap"]["key"], dict) and "numgen" in s["vmap"]["key"]:
                mod = s["vmap"]["key"]["numgen"]["mod"]
                data = s["vmap"]["data"]
                pairs = data.get("set", []) if isinstance(data, dict) else []
                out.extend(_numgen_shares(chain, r, mod, pairs, t, warnings))
    return tuple(out), affinity, warnings


def _numgen_shares(chain: NftChain, r: NftRule, mod: int, pairs, t: NftTable | None, warnings: list[str]):
    shares = []
    covered = 0
    for key, val in pairs:
        n = index_count(key, mod)
        covered += n
        if t is None:  # dnat map: the value is addr . port
            parts = concat_parts(val)
            ep = fmt_endpoint(parts[0], parts[1]) if len(parts) == 2 else str(parts[0])
            sep = chain.name
        else:          # vmap: goto endpoint-...
            _, target = verdict_target(val)
            sep = target or "?"
            ep = None
            if target in t.chains:
                ep = chain_endpoint(t.chains[target])
                if ep is None:
                    warnings.append(f"{target} has no dnat rule: traffic sent there is not redirected")
            else:
                warnings.append(f"{chain.name} line {r.line}: goto {target}, which does not exist: "
                                f"{Fraction(n, mod)} of new connections fail")
                name = split_name(target or "")
                ep = name.endpoint if name else None
        shares.append(EndpointShare(ep, sep, Fraction(n, mod), None, r.line))
    if covered != mod:
        warnings.append(f"{chain.name} line {r.line}: numgen random mod {mod} but the map covers {covered} of the "
                        f"{mod} values: {Fraction(mod - covered, mod)} of new connections match no element")
    if len({s.share for s in shares}) > 1:
        warnings.append(f"{chain.name}: endpoints do not get equal shares ("
                        + ", ".join(f"{s.endpoint} {float(s.share) * 100:.2f}%" for s in shares) + ")")
    return shares


def _dnat_endpoint(d: dict) -> str | None:
    addr = d.get("addr")
    if isinstance(addr, dict) and "concat" in addr and len(addr["concat"]) == 2:
        return fmt_endpoint(addr["concat"][0], addr["concat"][1])
    if isinstance(addr, str):
        return fmt_endpoint(addr, d["port"]) if "port" in d else addr
    return None


def chain_endpoint(chain: NftChain) -> str | None:
    """The dnat destination of an ``endpoint-`` chain."""
    for r in chain.rules:
        for s in r.exprs:
            if isinstance(s, dict) and "dnat" in s:
                return _dnat_endpoint(s["dnat"] or {})
    return None


# --- which kube-proxy release wrote the table ----------------------------------------

@dataclass(frozen=True, slots=True)
class Layout:
    """The kube-proxy layout generation a table was recognised as, and why.

    ``generation``: ``"1.29"``, ``"1.30-1.33"``, ``"1.34-1.35"``, ``"1.36"``,
    ``"1.36+"`` (1.36 or 1.37: they differ only for single-endpoint ports, and the
    table has none to tell), ``"1.37+"``, or ``"unknown"`` (an excerpt without the
    chains that tell)."""

    generation: str
    evidence: tuple[str, ...]

    @property
    def hairpin_set(self) -> bool:
        """Hairpin traffic is masqueraded by @hairpin-connections (1.36+), not per endpoint."""
        return self.generation in ("1.36", "1.36+", "1.37+")

    @property
    def cluster_ips_set(self) -> bool:
        return self.generation not in ("1.29", "unknown")

    def describe(self) -> str:
        if self.generation == "unknown":
            return "layout: not recognised (" + "; ".join(self.evidence) + ")"
        return f"layout: kube-proxy {self.generation} (" + "; ".join(self.evidence) + ")"


def recognise_layout(t: NftTable) -> Layout:
    """Tell kube-proxy's nftables layout generations apart by the objects only some
    of them write (docs/nftables.md, "kube-proxy's layouts, 1.29 to 1.37")."""
    ev: list[str] = []
    chains, sets = t.chains, t.sets
    mark_chain = "mark-for-masquerade" in chains
    one_rule_dnat = single_plain = single_map = False
    for name, c in chains.items():
        n = split_name(name)
        if n is None or n.prefix not in ("service", "local"):
            continue
        for r in c.rules:
            for x in r.exprs:
                if isinstance(x, dict) and "dnat" in x:
                    addr = (x["dnat"] or {}).get("addr")
                    if isinstance(addr, dict) and "map" in addr:
                        one_rule_dnat = True
                        data = addr["map"].get("data")
                        if isinstance(data, dict) and len(data.get("set", [])) == 1:
                            single_map = True
                    else:
                        single_plain = True
    if "hairpin-connections" in sets or (not mark_chain and one_rule_dnat):
        if "hairpin-connections" in sets:
            ev.append("@hairpin-connections set")
        if not mark_chain:
            ev.append("no mark-for-masquerade chain")
        if single_plain:
            ev.append("a single endpoint's plain dnat in its service- chain (#140723)")
            return Layout("1.37+", tuple(ev))
        if single_map:
            ev.append("a single endpoint behind 'numgen random mod 1 map'")
            return Layout("1.36", tuple(ev))
        ev.append("no single-endpoint port to tell 1.36 from 1.37")
        return Layout("1.36+", tuple(ev))
    if "filter-prerouting-pre-dnat" in chains or "filter-output-pre-dnat" in chains:
        ev.append("filter-prerouting-pre-dnat at dstnat - 10")
        if mark_chain:
            ev.append("mark-for-masquerade chain")
        return Layout("1.34-1.35", tuple(ev))
    if "filter-output-post-dnat" in chains or "cluster-ips-check" in chains or \
            "service-endpoints-check" in chains or "cluster-ips" in sets:
        ev += [f"{x}" for x in ("filter-output-post-dnat", "cluster-ips-check", "service-endpoints-check")
               if x in chains]
        ev += ["@cluster-ips set"] if "cluster-ips" in sets else []
        if "filter-prerouting" in chains:
            ev.append("filter-prerouting, no filter-*-pre-dnat")
        return Layout("1.30-1.33", tuple(ev))
    if "endpoints-check" in chains:
        return Layout("1.29", ("one endpoints-check chain", "no @cluster-ips set, no cluster-ips-check"))
    return Layout("unknown", ("none of the chains or sets that tell the generations apart is in the input",))


# --- selecting ports by name ----------------------------------------------------------

_CHAIN_QUERY = re.compile(r"^(?:service|local|external|firewall)-[A-Z2-7]{8}-(.+)$")


def select_service_ports(ruleset: NftRuleset, query: str | None = None,
                         namespace: str | None = None) -> list[ServicePortRules]:
    """The service ports ``query`` names (``ns/name``, ``ns/name:portname``,
    ``ns/name:portnumber``, a bare name with ``namespace``, or an nft chain name),
    or every port of ``namespace``. Raises UnknownServiceError with the closest names."""
    ports = build_service_ports(ruleset)
    if query is None:
        found = [p for p in ports if p.name and p.name.startswith(f"{namespace}/")]
        if not found:
            raise UnknownServiceError(f"no service in namespace {namespace!r} in the rules")
        return found
    m = _CHAIN_QUERY.match(query)
    if m:
        query = spn_of(m.group(1))
    elif "/" not in query and namespace:
        query = f"{namespace}/{query}"
    base, _, port = query.partition(":") if "/" in query else (query, "", "")
    found = []
    for p in ports:
        pb = (p.name or "").split(":")[0]
        if pb != base and p.key != query:
            continue
        if port:
            pname = p.name.split(":", 1)[1] if p.name and ":" in p.name else ""
            if port != pname and not (port.isdigit() and any(e.port == int(port) for e in p.entries
                                                               if e.kind != EntryKind.HEALTH_CHECK)):
                continue
        found.append(p)
    if not found:
        names = sorted({(p.name or "").split(":")[0] for p in ports} | {p.name or "" for p in ports})
        close = difflib.get_close_matches(query, names, n=5, cutoff=0.4)
        raise UnknownServiceError(f"no service {query!r} in the rules" + (f"; closest: {', '.join(close)}"
                                                                          if close else ""))
    return found
