"""``check`` for nftables mode: the rules alone, and the rules against the objects.

Returns the shared :class:`svcinspect.check.CheckReport`. Finding codes are the
iptables mode's where the fault is the same (``missing-service-port``,
``endpoints-mismatch``, ``local-endpoints-mismatch``, ``stale-service-port``,
``cluster-ip-mismatch``, ``node-port-mismatch``, ``affinity-mismatch``,
``uneven-shares``, ``dangling-jump``, ``orphan-chain``, ``no-hooks``) and new where
the mode differs: ``missing-set`` (a rule names a set or map that is not there),
``stale-element`` (a map element leads to a chain that does not exist),
``numgen-elements`` (``numgen random mod N`` and its map disagree),
``chain-hash`` (a name whose hash is not kube-proxy's), ``missing-element`` (no
``no-endpoint-services`` / ``no-endpoint-nodeports`` drop or reject element where
the objects call for one), ``stale-element`` (also: such an element for a port that
has endpoints, a black hole), ``external-policy-mismatch`` (the ``external-``
chain ignores or invents externalTrafficPolicy: Local), ``missing-hairpin`` (a pod
reaching itself through its Service would not be masqueraded).

Each table is judged by the layout generation it is recognised as
(:func:`recognise_layout`, reported as a ``layout:`` note): 1.36's
``@hairpin-connections`` is only looked for in a 1.36+ table, an ``endpoint-``
chain's hairpin rule only before 1.36, ``@cluster-ips`` only from 1.30 on.
"""

from __future__ import annotations

from svcinspect.check import CheckReport, Evidence, Finding
from svcinspect.dataplane.nftables.model import NftRuleset, NftTable
from svcinspect.dataplane.nftables.services import (
    ROLE, Layout, build_service_ports, concat_parts, elem_key, recognise_layout, split_name, verdict_target,
)
from svcinspect.errors import Severity
from svcinspect.model.netfilter import Family
from svcinspect.model.service import EntryKind

_ORDER = {Severity.ERROR: 0, Severity.WARNING: 1, Severity.INFO: 2}
SYNC_HINT = ("kube-proxy on this node has not applied the latest Services/EndpointSlices: check that it runs "
             "and its log for sync or nft errors (kubectl -n kube-system logs <kube-proxy pod>)")


class _EMPTY:  # a chain with no rules, for a port without a firewall- chain
    rules = ()


def check_rules(ruleset: NftRuleset, state=None, node: str | None = None,
                namespace: str | None = None) -> CheckReport:
    findings: list[Finding] = []
    notes: list[str] = []
    ports = build_service_ports(ruleset)

    def add(sev, code, spn, fam, msg, ev=(), hint=""):
        if namespace is None or (spn or "").split("/", 1)[0] == namespace or spn is None:
            findings.append(Finding(sev, code, spn, fam, msg, tuple(ev), hint))

    layouts: dict[Family, Layout] = {}
    for fam in ruleset.families:
        t = ruleset.kube_proxy(fam)
        if t is not None:
            layouts[fam] = recognise_layout(t)
            notes.append(f"{t.family} {t.name}: {layouts[fam].describe()}")
            _check_table(t, fam, add)
            _check_hairpin_rules(t, fam, layouts[fam], add)
    for sp in ports:
        for w in sp.warnings:
            code = ("numgen-elements" if "numgen" in w else "uneven-shares" if "equal shares" in w else
                    "chain-hash" if "hash is not" in w else "orphan-chain" if "no entry point" in w else
                    "dangling-jump" if "does not exist" in w else "rules-warning")
            sev = Severity.ERROR if code in ("numgen-elements", "dangling-jump") else Severity.WARNING
            add(sev, code, sp.name, sp.family, w,
                _rule_evidence(ruleset, sp.family, [e.line for e in sp.endpoints]))
    checked = 0
    if state is not None:
        from svcinspect.expected import build_expected
        scoped = state.in_namespace(namespace)
        expected = build_expected(scoped, node, ruleset.families)
        notes.extend(scoped.notes)
        notes.extend(expected.notes)
        checked = _check_objects(ruleset, ports, expected, add, notes)
        _check_layout_objects(ruleset, layouts, expected, node, add, notes)
    else:
        notes.append("no objects given: only the rules were checked (pass --objects or --kubeconfig to compare "
                     "with Services and EndpointSlices)")
    if not ruleset.complete:
        notes.append("the input is an excerpt (elided or truncated): what it leaves out was not checked")
    findings.sort(key=lambda f: (_ORDER[f.severity], f.service_port or "", f.code, int(f.family) if f.family else 0))
    return CheckReport(node, tuple(findings), tuple(dict.fromkeys(notes)), checked, ruleset.families,
                       state is not None)


def _rule_evidence(rs: NftRuleset, fam: Family, lines) -> list[Evidence]:
    """The rules at these lines (once each), quoted."""
    t = rs.kube_proxy(fam)
    want = list(dict.fromkeys(lines))[:3]
    out = []
    for c in (t.chains.values() if t is not None else ()):
        for r in c.rules:
            if r.line in want:
                out.append(Evidence("rule", f"{_source(rs, fam)}:{r.line}", r.text))
    return out


def _source(rs: NftRuleset, fam: Family) -> str:
    t = rs.kube_proxy(fam)
    return t.source if t is not None and t.source else "<rules>"


def _check_table(t: NftTable, fam: Family, add) -> None:
    src = t.source or "<rules>"
    hooks = {c.hook for c in t.chains.values() if c.is_base}
    for hook in ("prerouting", "output"):
        if hook not in hooks:
            add(Severity.ERROR, "no-hooks", None, fam,
                f"no base chain at hook {hook} in table {t.family} {t.name}: Service traffic entering there is "
                "not load-balanced", [Evidence("rule", src, f"base chains: {', '.join(sorted(hooks)) or 'none'}")],
                "an excerpt? otherwise kube-proxy's table is damaged: restart kube-proxy")
    referenced: set[str] = set()
    for c in t.chains.values():
        for r in c.rules:
            for s in r.exprs:
                for target, line, text in _refs(t, s, r):
                    referenced.add(target)
                    if target not in t.chains:
                        add(Severity.ERROR, "dangling-jump", _spn(target), fam,
                            f"{c.name} sends packets to chain {target}, which does not exist",
                            [Evidence("rule", f"{src}:{line}", text)], SYNC_HINT)
                for name in _set_refs(s):
                    if name not in t.sets:
                        add(Severity.ERROR, "missing-set", None, fam,
                            f"{c.name} looks up @{name}, which is not in the table: the rule never matches",
                            [Evidence("rule", f"{src}:{r.line}", r.text)], SYNC_HINT)
    for s in t.sets.values():
        if not s.is_map:
            continue
        for e in s.elements:
            k, target = verdict_target(e.value)
            if target is None:
                continue
            referenced.add(target)
            if target not in t.chains:
                add(Severity.ERROR, "stale-element", _spn(target), fam,
                    f"an element of @{s.name} sends packets to chain {target}, which does not exist",
                    [Evidence("rule", f"{src}:{e.line}", e.text)], SYNC_HINT)
    for name, c in t.chains.items():
        n = split_name(name)
        if n is not None and name not in referenced:
            add(Severity.WARNING, "orphan-chain", n.spn, fam,
                f"chain {name} is not reached from any rule or map element (stale)",
                [Evidence("rule", f"{src}:{c.line}", f"chain {name}")],
                "kube-proxy deletes stale chains on its next full sync")
        if n is not None and not n.verified:
            add(Severity.WARNING, "chain-hash", n.spn, fam,
                f"chain {name}: {n.hash} is not base32(sha256({n.base!r}))[:8]: not a name kube-proxy wrote",
                [Evidence("rule", f"{src}:{c.line}", f"chain {name}")])


def _spn(target: str) -> str | None:
    n = split_name(target)
    return n.spn if n else None


def _refs(t: NftTable, s, r):
    if not isinstance(s, dict):
        return
    for k in ("jump", "goto"):
        if k in s:
            yield s[k]["target"], r.line, r.text
    if "vmap" in s and isinstance(s["vmap"]["data"], dict):
        for _, v in s["vmap"]["data"].get("set", []):
            _, target = verdict_target(v)
            if target:
                yield target, r.line, r.text


def _set_refs(s) -> list[str]:
    out = []

    def walk(x):
        if isinstance(x, str) and x.startswith("@"):
            out.append(x[1:])
        elif isinstance(x, dict):
            for v in x.values():
                walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)
    walk(s)
    return out


def _check_objects(rs: NftRuleset, ports, expected, add, notes) -> int:
    by_key = {(sp.key, sp.family): sp for sp in ports}
    matched = set()
    checked = 0
    for exp in expected.ports:
        if exp.family not in rs.families:
            continue
        checked += 1
        sp = by_key.get((exp.key, exp.family))
        obj = Evidence("object", f"{exp.service.source}: Service {exp.service.namespace}/{exp.service.name}",
                       f"port {exp.port.port}/{exp.protocol}")
        if sp is None:
            add(Severity.ERROR, "missing-service-port", exp.spn, exp.family,
                "no rules for this service port on the node (no service-ips element, no no-endpoint-services "
                "element)", [obj], SYNC_HINT)
            continue
        matched.add((exp.key, exp.family))
        cips = {e.address for e in sp.entries if e.kind == EntryKind.CLUSTER_IP}
        if exp.cluster_ip and exp.cluster_ip not in cips:
            add(Severity.ERROR, "cluster-ip-mismatch", exp.spn, exp.family,
                f"the rules have cluster IP {', '.join(sorted(a for a in cips if a)) or 'none'}, the Service has "
                f"{exp.cluster_ip}", [obj], SYNC_HINT)
        if exp.has_endpoints and exp.node_port and sp.node_port != exp.node_port:
            add(Severity.ERROR, "node-port-mismatch", exp.spn, exp.family,
                f"the rules have node port {sp.node_port or 'none'}, the Service has {exp.node_port}", [obj],
                SYNC_HINT)
        if exp.uses_ext:
            # nft's service-ips map does not tell an external IP from a load-balancer IP: compare them together.
            have_ext = {e.address for e in sp.entries if e.table == "nat" and
                        e.kind in (EntryKind.EXTERNAL_IP, EntryKind.LOAD_BALANCER)}
            want_ext = set(exp.external_ips) | set(exp.load_balancer_ips)
            if have_ext != want_ext:
                add(Severity.ERROR, "external-ip-mismatch", exp.spn, exp.family,
                    f"the rules take external/load-balancer traffic on {', '.join(sorted(have_ext)) or 'nothing'}, "
                    f"the Service has {', '.join(sorted(want_ext)) or 'none'} (spec.externalIPs and "
                    "status.loadBalancer.ingress)", [obj], SYNC_HINT)
        if exp.uses_fw or sp.source_ranges:
            import ipaddress
            want_r = {str(ipaddress.ip_network(r.strip(), strict=False)) for r in exp.source_ranges} \
                if exp.uses_fw else set()
            have_r = {str(ipaddress.ip_network(r, strict=False)) for r in sp.source_ranges}
            if want_r != have_r:
                add(Severity.ERROR, "source-ranges-mismatch", exp.spn, exp.family,
                    f"the rules allow {', '.join(sorted(have_r)) or 'any source'}, the Service allows "
                    f"{', '.join(sorted(want_r)) or 'any source'}",
                    _rule_evidence(rs, exp.family, [t.line for t in rs.kube_proxy(exp.family).chains.get(
                        sp.chains.get("fw", ""), _EMPTY).rules]) + [obj], SYNC_HINT)
        verdicts = {e.verdict for e in sp.entries if e.table == "filter" and e.kind == EntryKind.CLUSTER_IP}
        want = exp.internal_verdict
        if want in ("reject", "drop") and want not in verdicts:
            add(Severity.ERROR, "missing-element", exp.spn, exp.family,
                f"the Service has {'no endpoints' if want == 'reject' else 'no node-local endpoints'}, but "
                f"@no-endpoint-services has no '{want}' element for {exp.cluster_ip}", [obj], SYNC_HINT)
        if exp.node_dependent:
            continue
        _check_external(rs, sp, exp, add, obj)
        for which, want_eps, have in (("cluster", exp.cluster_endpoints if exp.uses_svc else (), sp.endpoints),
                                      ("local", exp.local_endpoints if exp.uses_svl else (),
                                       sp.local_endpoints or ())):
            if which == "local" and not (exp.uses_local_endpoints or sp.local_endpoints):
                continue
            w = {e.endpoint for e in want_eps}
            h = {s.endpoint for s in have}
            if w != h:
                add(Severity.ERROR, "endpoints-mismatch" if which == "cluster" else "local-endpoints-mismatch",
                    exp.spn, exp.family,
                    f"{which} endpoints: the rules have {sorted(x for x in h if x)}, the API has {sorted(w)} usable",
                    _rule_evidence(rs, exp.family, [s.line for s in have]) + [obj],
                    SYNC_HINT)
        if (sp.endpoints or sp.local_endpoints) and sp.affinity_seconds != exp.affinity_seconds:
            add(Severity.WARNING, "affinity-mismatch", exp.spn, exp.family,
                f"session affinity in the rules is {sp.affinity_seconds}, the Service says {exp.affinity_seconds}",
                [obj], SYNC_HINT)
    for key, sp in by_key.items():
        if key not in matched and any(k in sp.chains for k in ROLE.values()):
            add(Severity.ERROR, "stale-service-port", sp.name, sp.family,
                "rules for a service port that does not exist in the API",
                [Evidence("rule", f"{_source(rs, sp.family)}:{e.line}", e.text) for e in sp.entries[:3]],
                "stale rules keep sending traffic to old endpoints; " + SYNC_HINT)
    dependent = [p for p in expected.ports if p.node_dependent]
    if dependent:
        notes.append(f"{len(dependent)} service port(s) depend on the node (Local traffic policy or topology "
                     "hints); their endpoint sets were not compared: pass --node NAME")
    return checked


def _unconditional_gotos(chain) -> list[tuple[str, object]]:
    """``goto`` targets of rules without a match (taken by every packet reaching them)."""
    out = []
    for r in chain.rules:
        if any(isinstance(x, dict) and "match" in x for x in r.exprs):
            continue
        out += [(x["goto"]["target"], r) for x in r.exprs if isinstance(x, dict) and "goto" in x]
    return out


def _check_external(rs: NftRuleset, sp, exp, add, obj) -> None:
    """Node-port and external/LB-IP verdicts in @no-endpoint-nodeports / @no-endpoint-services,
    and the external- chain's wiring, against the Service's externalTrafficPolicy."""
    import ipaddress
    if not exp.externally_accessible:
        return
    src = _source(rs, exp.family)
    want = exp.external_verdict
    filt = [e for e in sp.entries if e.table == "filter" and e.kind != EntryKind.CLUSTER_IP
            and "goto firewall-" not in e.text]  # source-range drops are checked with the ranges
    why = "no endpoints" if want == "reject" else "externalTrafficPolicy Local and no endpoint on this node"
    places = [("node port", e_np, None) for e_np in ([exp.node_port] if exp.node_port else [])]
    places += [("external/LB IP", exp.port.port, a) for a in exp.external_ips + exp.load_balancer_ips
               if ipaddress.ip_address(a).version == int(exp.family)]
    for what, port, addr in places:
        have = [e for e in filt if e.port == port and e.protocol == exp.protocol and
                (e.kind == EntryKind.NODE_PORT if addr is None else e.address == addr)]
        verdicts = {e.verdict for e in have}
        m = "@no-endpoint-nodeports" if addr is None else "@no-endpoint-services"
        label = f"{what} {addr + ' ' if addr else ''}{port}/{exp.protocol}"
        if want in ("reject", "drop") and want not in verdicts:
            add(Severity.ERROR, "missing-element", exp.spn, exp.family,
                f"the Service has {why}, but {m} has no '{want}' element for the {label}"
                + (f" (it has {', '.join(sorted(v for v in verdicts if v))})" if verdicts else ""),
                [Evidence("rule", f"{src}:{e.line}", e.text) for e in have] + [obj], SYNC_HINT)
        elif want is None and verdicts & {"reject", "drop"}:
            add(Severity.ERROR, "stale-element", exp.spn, exp.family,
                f"{m} {'/'.join(sorted(verdicts & {'reject', 'drop'}))}s the {label}, but the Service has "
                "endpoints for it: that traffic is lost",
                [Evidence("rule", f"{src}:{e.line}", e.text) for e in have] + [obj], SYNC_HINT)
    t = rs.kube_proxy(exp.family)
    ext = t.chains.get(sp.chains.get("ext", "")) if t is not None else None
    if ext is None or not exp.uses_ext:
        return
    role = {v: k for k, v in ROLE.items()}
    gotos = [(split_name(g), g, r) for g, r in _unconditional_gotos(ext)]
    kinds = [n.prefix if n else g for n, g, _ in gotos]
    ev = [Evidence("rule", f"{src}:{r.line}", r.text) for _, _, r in gotos] or \
        [Evidence("rule", f"{src}:{ext.line}", f"chain {ext.name}")]
    if exp.external_local:
        want_k = ["local"] if exp.local_endpoints else []
        if kinds != want_k:
            add(Severity.ERROR, "external-policy-mismatch", exp.spn, exp.family,
                f"externalTrafficPolicy is Local, but {ext.name} sends outside traffic "
                f"{'to ' + ', '.join(kinds) + ' chain(s)' if kinds else 'nowhere'}; kube-proxy sends it "
                + ("to the local- chain (node-local endpoints, source kept)" if want_k else
                   "nowhere (no endpoint on this node: @no-endpoint-services drops it)"),
                ev + [obj], SYNC_HINT)
    elif kinds != ["service"] or role.get("svc") is None:
        add(Severity.ERROR, "external-policy-mismatch", exp.spn, exp.family,
            f"externalTrafficPolicy is Cluster, but {ext.name} sends outside traffic "
            f"{'to ' + ', '.join(kinds) + ' chain(s)' if kinds else 'nowhere'}; kube-proxy masquerades it and "
            "sends it to the service- chain (every endpoint)", ev + [obj], SYNC_HINT)


def _check_hairpin_rules(t: NftTable, fam: Family, layout: Layout, add) -> None:
    """Before 1.36 every ``endpoint-`` chain starts by marking a pod that reaches
    itself (``ip saddr <endpoint> jump mark-for-masquerade``); from 1.36 on that is
    @hairpin-connections' job (checked against the objects)."""
    if layout.hairpin_set or layout.generation == "unknown":
        return
    src = t.source or "<rules>"
    for name, c in t.chains.items():
        n = split_name(name)
        if n is None or n.prefix != "endpoint" or n.endpoint is None:
            continue
        ip = n.endpoint.rsplit(":", 1)[0].strip("[]")
        if not any(f"saddr {ip} " in f"{r.text} " and "mark-for-masquerade" in r.text for r in c.rules):
            add(Severity.WARNING, "missing-hairpin", n.spn, fam,
                f"{name} has no 'ip saddr {ip} jump mark-for-masquerade' rule ({layout.generation} layout): a pod "
                "that reaches itself through the Service is not masqueraded and its connection fails",
                [Evidence("rule", f"{src}:{c.line}", f"chain {name}")], SYNC_HINT)


def _check_layout_objects(rs: NftRuleset, layouts: dict, expected, node, add, notes) -> None:
    """The generation-specific sets against the objects: @cluster-ips (1.30+) and
    @hairpin-connections (1.36+)."""
    for fam, layout in layouts.items():
        t = rs.kube_proxy(fam)
        src = t.source or "<rules>"
        want = [p for p in expected.ports if p.family == fam]
        cips = t.sets.get("cluster-ips")
        if layout.cluster_ips_set and cips is not None:
            have = {str(elem_key(e.key)) for e in cips.elements}
            for p in want:
                if p.cluster_ip and p.cluster_ip not in have:
                    add(Severity.WARNING, "missing-element", p.spn, fam,
                        f"@cluster-ips has no element {p.cluster_ip} ({layout.generation} layout): other ports of "
                        "that IP are not rejected" + (", and clients outside the pod network are not masqueraded"
                                                      if layout.hairpin_set else ""),
                        [Evidence("rule", f"{src}:{cips.line}", "set cluster-ips")], SYNC_HINT)
        hp = t.sets.get("hairpin-connections")
        if not layout.hairpin_set:
            continue
        if node is None:
            notes.append("@hairpin-connections was not compared: which endpoints are on this node needs --node")
            continue
        wanted: dict[tuple, str] = {}
        for p in want:
            if not p.has_endpoints:
                continue
            for e in tuple(p.cluster_endpoints) + tuple(p.local_endpoints):
                if e.local:
                    wanted[(e.ip, e.ip, p.protocol, e.port)] = p.spn
        have_h: dict[tuple, object] = {}
        for e in hp.elements if hp is not None else ():
            parts = concat_parts(e.key)
            if len(parts) == 4:
                have_h[(str(parts[0]), str(parts[1]), str(parts[2]), int(parts[3]))] = e
        for key, spn in sorted(wanted.items()):
            if key not in have_h:
                add(Severity.WARNING, "missing-hairpin", spn, fam,
                    f"@hairpin-connections has no element {key[0]} . {key[1]} . {key[2]} . {key[3]} "
                    f"({layout.generation} layout): the pod {key[0]} reaching itself through the Service is not "
                    "masqueraded and its connection fails",
                    [Evidence("rule", f"{src}:{hp.line if hp is not None else 0}", "set hairpin-connections")],
                    SYNC_HINT)
        for key, e in have_h.items():
            if key not in wanted:
                add(Severity.WARNING, "stale-element", None, fam,
                    f"@hairpin-connections has {key[0]} . {key[1]} . {key[2]} . {key[3]}, which is no endpoint of "
                    f"this node in the objects (stale)", [Evidence("rule", f"{src}:{e.line}", e.text)], SYNC_HINT)
