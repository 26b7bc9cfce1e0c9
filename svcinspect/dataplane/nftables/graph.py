"""The chain graph of kube-proxy's nftables table, in the shared graph schema.

Nodes and edges carry the attributes :mod:`svcinspect.graph` gives iptables
graphs (``type``, ``label``, ``family``, ``kind``, ``cluster``; edges ``line``,
``match``, ``goto``, ``share``, ``affinity``, ``masquerade``, ``note``), so the DOT
and node-link renderers draw both modes alike. Jumps through maps (``vmap
@service-ips``, ``numgen ... vmap {...}``) are edges too, labelled with the
element.
"""

from __future__ import annotations

import networkx as nx

from svcinspect.dataplane.nftables.model import NftChain, NftRuleset, NftTable
from svcinspect.dataplane.nftables.render import render_element, render_stmt
from svcinspect.dataplane.nftables.services import (
    build_service_ports, select_service_ports, split_name, verdict_target,
)
from svcinspect.graph import chain_node, endpoint_node
from svcinspect.model.netfilter import Family
from svcinspect.model.service import ServicePortRules

TABLE = "kube-proxy"


def _fam(f: Family) -> str:
    return f"v{int(f)}"


def _chain_attrs(fam: Family, t: NftTable, name: str, service: str | None) -> dict:
    n = split_name(name)
    kind = n.prefix if n else ("base" if t.chains[name].is_base else "kube-proxy")
    return {"type": "chain", "label": name, "table": TABLE, "family": _fam(fam), "chain": name, "kind": kind,
            "service": service or "", "rules": len(t.chains[name].rules)}


def _targets(t: NftTable, c: NftChain):
    """(line, match text, target chain or verdict, goto, element text) for each way out of ``c``."""
    for r in c.rules:
        match = " ".join(render_stmt(s) for s in r.exprs if isinstance(s, dict) and "match" in s)
        for s in r.exprs:
            if not isinstance(s, dict):
                continue
            if "jump" in s or "goto" in s:
                k = "jump" if "jump" in s else "goto"
                yield r.line, match, s[k]["target"], k == "goto", ""
            elif "vmap" in s:
                data = s["vmap"]["data"]
                if isinstance(data, str):
                    m = t.sets.get(data[1:])
                    pairs = [(e, e.value) for e in m.elements] if m else []
                    for e, v in pairs:
                        k, target = verdict_target(v)
                        yield e.line, f"{data} {render_element(e).split(' : ')[0]}", target or k.upper(), \
                            k == "goto", render_element(e)
                else:
                    for key, v in data.get("set", []):
                        k, target = verdict_target(v)
                        yield r.line, match, target or k.upper(), k == "goto", f"{key}"
            elif "reject" in s or "drop" in s:
                yield r.line, match, "REJECT" if "reject" in s else "DROP", False, ""


def _add_port(g: nx.MultiDiGraph, rs: NftRuleset, sp: ServicePortRules, clusters: str) -> None:
    fam = sp.family
    t = rs.kube_proxy(fam)
    if t is None:
        return
    name = sp.display_name
    svc_cluster = f"{_fam(fam)}/{sp.key}"
    if clusters == "service":
        g.graph["clusters"][svc_cluster] = f"{name} ({sp.protocol or '?'}, IPv{int(fam)})"
    chains = {v for k, v in sp.chains.items() if k != "sep" and v} | set(sp.chains.get("sep", ()))

    def put(node: str, **attrs) -> None:
        if "type" not in g.nodes.get(node, {}):
            g.add_node(node, **attrs)
            g.nodes[node]["cluster"] = svc_cluster if clusters == "service" else ""

    for e in sp.entries:
        where = f"{e.address or '*'}:{e.port if e.port is not None else '*'}"
        node = f"{_fam(fam)}/entry/{e.kind}/{where}/{e.protocol or '?'}"
        title = {"clusterIP": "cluster IP", "externalIP": "external IP", "loadBalancer": "load-balancer IP",
                 "nodePort": "node port", "healthCheckNodePort": "health-check node port"}.get(e.kind, e.kind)
        put(node, type="entry", label=f"{title}\n{where}/{e.protocol or '?'}", kind=e.kind, family=_fam(fam),
            address=e.address or "", port=e.port if e.port is not None else "", protocol=e.protocol or "",
            service=name, table=e.table)
        if clusters == "entry":
            g.graph["clusters"][node] = f"{title} {where}"
            g.nodes[node]["cluster"] = node
        if e.chain is not None and e.chain in t.chains:
            target = chain_node(fam, TABLE, e.chain)
        else:
            target = f"{_fam(fam)}/target/{(e.verdict or 'accept').upper()}"
            put(target, type="target", label=target.rsplit("/", 1)[1], family=_fam(fam))
        g.add_edge(node, target, line=e.line, match=e.text, goto=True, share="", affinity="", masquerade=False,
                   note=e.note or "")
    shares = {}
    for ep in sp.endpoints + (sp.local_endpoints or ()):
        shares.setdefault(ep.sep, []).append(ep)
    for cname in sorted(chains):
        if cname not in t.chains:
            continue
        node = chain_node(fam, TABLE, cname)
        put(node, **_chain_attrs(fam, t, cname, name), masquerade="")
        c = t.chains[cname]
        for r in c.rules:
            for s in r.exprs:
                if isinstance(s, dict) and "mangle" in s and "|" in (s["mangle"].get("value") or {}):
                    g.nodes[node]["masquerade"] = "; ".join(filter(None, (g.nodes[node]["masquerade"],
                                                                          render_stmt(r.exprs[0]) if len(r.exprs) > 1
                                                                          else "always")))
                if isinstance(s, dict) and "dnat" in s:
                    for ep in shares.get(cname, ()):
                        if ep.endpoint is None:
                            continue
                        dst = endpoint_node(fam, ep.endpoint)
                        put(dst, type="endpoint", label=ep.endpoint, family=_fam(fam), endpoint=ep.endpoint)
                        g.add_edge(node, dst, line=r.line, match="DNAT",
                                   goto=False, share=str(ep.share) if cname.startswith(("service-", "local-")) else "",
                                   affinity="set" if any(isinstance(x, dict) and "set" in x and "op" in x["set"]
                                                         for x in r.exprs) else "",
                                   masquerade=False, note="")
        by_target = {ep.sep: ep for ep in sp.endpoints + (sp.local_endpoints or ()) if ep.sep.startswith("endpoint-")}
        for line, match, target, goto, elem in _targets(t, c):
            if target in t.chains:
                dst = chain_node(fam, TABLE, target)
                if target not in chains:
                    put(dst, **_chain_attrs(fam, t, target, None))
                ep = by_target.get(target)
                aff = "affinity" in match
                g.add_edge(node, dst, line=line, match=match, goto=goto,
                           share=str(ep.share) if ep is not None and not aff else "",
                           affinity=str(sp.affinity_seconds or "") if aff else "", masquerade=False, note=elem)
            else:
                dst = f"{_fam(fam)}/target/{target}"
                put(dst, type="target", label=target, family=_fam(fam))
                g.add_edge(node, dst, line=line, match=match, goto=goto, share="", affinity="", masquerade=False,
                           note=elem)


def build_overview_graph(rs: NftRuleset, *, expand: bool = False) -> nx.MultiDiGraph:
    """Every chain that is not per-service, and one node per service port (its
    ``service-``/``local-``/``external-``/``firewall-``/``endpoint-`` chains)."""
    g = nx.MultiDiGraph(clusters={}, view="expanded" if expand else "collapsed")
    for fam in rs.families:
        t = rs.kube_proxy(fam)
        if t is None:
            continue

        def node_of(cname: str) -> str:
            n = split_name(cname)
            if expand or n is None:
                node = chain_node(fam, TABLE, cname)
                if node not in g:
                    g.add_node(node, cluster="", **_chain_attrs(fam, t, cname, None))
                return node
            key = n.port_base
            node = f"{_fam(fam)}/service/{key}"
            if node not in g:
                g.add_node(node, type="service", label=n.spn, key=key, family=_fam(fam), table=TABLE,
                           service=n.spn, kind="service", chains=[], endpoints=0, masquerade=False, cluster="")
            if n.prefix != "endpoint" and cname not in g.nodes[node]["chains"]:
                g.nodes[node]["chains"].append(cname)
            return node

        for cname, c in t.chains.items():
            src = node_of(cname)
            for line, match, target, goto, elem in _targets(t, c):
                if target not in t.chains:
                    continue
                dst = node_of(target)
                if dst == src:
                    continue
                g.add_edge(src, dst, line=line, match=match, goto=goto, share="", affinity="", masquerade=False,
                           note=elem)
        if not expand:
            for sp in build_service_ports(rs):
                for role in ("svc", "svl"):
                    if sp.family is fam and sp.chains.get(role):
                        n = split_name(sp.chains[role])
                        node = f"{_fam(fam)}/service/{n.port_base}"
                        if node in g:
                            g.nodes[node]["endpoints"] = max(g.nodes[node]["endpoints"],
                                                             len(sp.endpoints if role == "svc"
                                                                 else sp.local_endpoints or ()))
    return g


def build_graph(rs: NftRuleset, service: str | None = None, namespace: str | None = None, *,
                expand: bool = False) -> tuple[nx.MultiDiGraph, str]:
    if service is None and namespace is None:
        g = build_overview_graph(rs, expand=expand)
        n = sum(1 for _, t in g.nodes(data="type") if t == "service")
        return g, "all chains" if expand else f"{n} service ports (one node each; --expand shows chains)"
    ports = select_service_ports(rs, service, namespace)
    g = nx.MultiDiGraph(clusters={}, view="services")
    clusters = "entry" if service is not None and len(ports) == 1 else "service"
    for sp in ports:
        _add_port(g, rs, sp, clusters)
    title = ", ".join(sorted({p.display_name for p in ports})) if service is not None else f"namespace {namespace}"
    return g, title


