"""``check``: compare what kube-proxy should have programmed with what the rules say.

``check_rules(ruleset, state, node, namespace)`` returns a :class:`CheckReport`:
findings (severity, a stable ``code``, the service port, what is wrong, the
evidence as rule lines and object fields, and a hint) plus notes about what was
not checked. With ``state=None`` only the rules are examined (hooks, dangling
jumps, loops, orphan chains, uneven cascades, missing comments).

Severity: ``error`` when traffic goes somewhere it should not or nowhere (missing
rules, stale endpoints, wrong addresses, REJECT with endpoints, no hooks);
``warning`` when something is off but traffic mostly flows (uneven shares,
affinity, orphan chains, a missing REJECT); ``info`` for what only limits the
analysis (comments missing in large-cluster mode).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from svcinspect import graph
from svcinspect.completeness import IPVS, InputCompleteness, assess_input, detect_dataplane, is_excerpt
from svcinspect.errors import Severity
from svcinspect.expected import ExpectedEndpoint, ExpectedServicePort, ExpectedState, build_expected
from svcinspect.dataplane.iptables.kubeproxy import ChainKind, chain_hash, classify_chain, hash16, hash_candidates, split_spn
from svcinspect.model.kube import ClusterState
from svcinspect.model.netfilter import Family, Ruleset
from svcinspect.model.service import EntryKind, EntryPoint, ServicePortRules
from svcinspect.dataplane import build_service_ports
from svcinspect.dataplane.iptables import bulk
from svcinspect.dataplane.iptables.services import IPVS_LEFTOVER

# Findings that rest on something being absent from the whole dump.
WHOLE_DUMP_CODES = frozenset({"missing-hook", "dangling-jump", "orphan-chain", "no-kube-services",
                              "missing-service-port", "missing-cluster-ip", "missing-node-port", "missing-reject",
                              "missing-drop", "health-check-node-port-mismatch"})

SYNC_HINT = ("kube-proxy on this node has not applied the latest Services/EndpointSlices: check that it runs "
             "and its log for sync or iptables-restore errors (kubectl -n kube-system logs <kube-proxy pod>)")


@dataclass(frozen=True, slots=True)
class Evidence:
    """``kind`` is "rule" (``where`` = file:line) or "object" (``where`` = source and object)."""

    kind: str
    where: str
    text: str


@dataclass(frozen=True, slots=True)
class Finding:
    severity: Severity
    code: str                     # stable identifier, e.g. "endpoints-mismatch"
    service_port: str | None      # "ns/name:port" as kube-proxy writes it
    family: Family | None
    message: str
    evidence: tuple[Evidence, ...] = ()
    hint: str = ""


@dataclass(frozen=True)
class CheckReport:
    node: str | None
    findings: tuple[Finding, ...]
    notes: tuple[str, ...]
    checked: int                  # service ports compared with objects (0 in rules-only mode)
    families: tuple[Family, ...]
    with_objects: bool
    input: InputCompleteness | None = None

    def at_or_above(self, severity: Severity) -> list[Finding]:
        return [f for f in self.findings if f.severity >= severity]

    def counts(self) -> dict[str, int]:
        return {str(s): sum(1 for f in self.findings if f.severity is s)
                for s in (Severity.ERROR, Severity.WARNING, Severity.INFO)}


def fails(report: CheckReport, fail_on: str) -> bool:
    """True when the report has a finding at or above ``fail_on`` (error, warning, never)."""
    if fail_on == "never":
        return False
    return bool(report.at_or_above(Severity.ERROR if fail_on == "error" else Severity.WARNING))


def check_rules(ruleset: Ruleset, state: ClusterState | None = None, node: str | None = None,
                namespace: str | None = None, ports: list[ServicePortRules] | None = None) -> CheckReport:
    if getattr(ruleset, "dataplane", "iptables") == "nftables":  # what nftables mode should program
        from svcinspect.dataplane.nftables.check import check_rules as check_nft
        from dataclasses import replace
        return replace(check_nft(ruleset, state, node, namespace), input=assess_input(ruleset))
    # ``ports``: build_service_ports(ruleset) when the caller has it already (the exporter)
    ports = build_service_ports(ruleset) if ports is None else ports
    c = _Checker(ruleset, ports, namespace)
    graph.edges_of(ruleset)  # one edge pass per table, for assess_input and check_graph alike
    whole = assess_input(ruleset)
    if whole.dataplane == IPVS:
        c.notes.append(whole.notes[0])
    c.check_kube_proxy_present()
    c.check_hooks()
    c.check_graph()
    c.check_rule_warnings()
    c.check_comments()
    checked = 0
    if state is not None:
        scoped = state.in_namespace(namespace)
        families = ruleset.families or ((Family.V4, Family.V6) if c.no_kube_proxy else ())
        expected = build_expected(scoped, node, families)
        c.notes.extend(scoped.notes)
        c.notes.extend(expected.notes)
        if c.ipvs:  # the Services live in IPVS, not in these rules: comparing would call every one missing
            c.notes.append("the Services were not compared with the rules: in IPVS mode they are IPVS virtual "
                           "servers (`ipvsadm -Ln`), which svcinspect does not read")
        else:
            checked = c.check_objects(expected)
    else:
        c.notes.append("no objects given: only the rules were checked (pass --objects or --kubeconfig to compare "
                       "with Services and EndpointSlices)")
    missing = [f for f in (Family.V4, Family.V6) if f not in ruleset.families]
    if state is not None and missing and not c.no_kube_proxy:
        c.notes.append(" and ".join(f"IPv{int(f)}" for f in missing) + " not checked: no "
                       + " / ".join(f.save_command for f in missing) + " output was given")
    if c.excerpt:
        c.notes.append("the rules are an excerpt (" + "; ".join(ruleset.gaps) + "): findings that need the whole "
                       "dump (hooks, orphan chains, dangling jumps, service ports missing from the rules) are info "
                       "'cannot tell from an excerpt'; pass the whole `iptables-save` output to check them")
    order = {Severity.ERROR: 0, Severity.WARNING: 1, Severity.INFO: 2}
    findings = sorted(c.findings, key=lambda f: (order[f.severity], f.service_port or "", f.code,
                                                 int(f.family) if f.family else 0))
    return CheckReport(node, tuple(findings), tuple(dict.fromkeys(c.notes)), checked, ruleset.families,
                       state is not None, whole)


class _Checker:
    def __init__(self, ruleset: Ruleset, ports: list[ServicePortRules], namespace: str | None) -> None:
        self.rs = ruleset
        self.ports = ports
        self.namespace = namespace
        self.findings: list[Finding] = []
        self.notes: list[str] = []
        self.names = {(sp.key, sp.family): sp.name for sp in ports if sp.name}
        self.broken_families: set[Family] = set()
        self.excerpt = is_excerpt(ruleset)
        self.no_kube_proxy = False
        self.nftables_mode = False
        self.ipvs = detect_dataplane(ruleset) == IPVS

    # --- helpers ----------------------------------------------------------------------

    def add(self, severity: Severity, code: str, spn: str | None, family: Family | None, message: str,
            evidence: Iterable[Evidence] = (), hint: str = "", absence: bool = False) -> None:
        if self.excerpt and (code in WHOLE_DUMP_CODES or absence):
            # Absence in an excerpt proves nothing: say what cannot be told instead.
            severity, message = Severity.INFO, "cannot tell from an excerpt: " + message
            hint = "these rules may simply be outside the paste; pass the whole iptables-save output to check"
        self.findings.append(Finding(severity, code, spn, family, message, tuple(evidence), hint))

    def source(self, family: Family, table: str = "nat") -> str:
        t = self.rs.table(table, family) or self.rs.table("nat", family) or self.rs.table("filter", family)
        return t.source if t is not None and t.source else "<rules>"

    def rule(self, family: Family, table: str, line: int, text: str) -> Evidence:
        return Evidence("rule", f"{self.source(family, table)}:{line}", text)

    def entry(self, sp: ServicePortRules, e: EntryPoint) -> Evidence:
        return self.rule(sp.family, e.table, e.line, e.text)

    def in_scope(self, name: str | None) -> bool:
        if self.namespace is None:
            return True
        return name is not None and name.split("/", 1)[0] == self.namespace

    def name_of_chain(self, family: Family, chain: str) -> str | None:
        key = chain_hash(chain)
        return self.names.get((key, family)) if key else None

    # --- rules only -------------------------------------------------------------------------

    def check_kube_proxy_present(self) -> None:
        """A whole dump (or a live node) without any KUBE- chain: kube-proxy has programmed nothing here."""
        if self.rs.notes:  # (no notes, as from a file: nothing to look for, no import of the live sources)
            from svcinspect.sources.command import LIVE_NFTABLES_MODE, LIVE_NO_KUBE_PROXY
        else:
            LIVE_NFTABLES_MODE = LIVE_NO_KUBE_PROXY = None
        live_none = LIVE_NO_KUBE_PROXY in self.rs.notes
        if not live_none and (self.excerpt or not self.rs.tables or any(
                name in t.chains for t in self.rs.tables for name in ("KUBE-SERVICES", "KUBE-PROXY-CANARY"))):
            return
        self.no_kube_proxy = True
        where = ", ".join(self.rs.origin) or "the rules"
        if LIVE_NFTABLES_MODE in self.rs.notes:
            self.nftables_mode = True
            self.add(Severity.ERROR, "no-kube-proxy-rules", None, None,
                     "no kube-proxy rules in any iptables backend: kube-proxy runs in nftables mode on this node "
                     "(`nft list tables` shows table ip/ip6 kube-proxy), which svcinspect does not check yet",
                     [Evidence("rule", where, "no KUBE-SERVICES / KUBE-PROXY-CANARY in iptables-legacy or -nft")],
                     "read its rules with `nft list table ip kube-proxy` (and ip6)")
            return
        self.add(Severity.ERROR, "no-kube-proxy-rules", None, None,
                 "no kube-proxy rules on this node: no KUBE-SERVICES or KUBE-PROXY-CANARY chain in any table"
                 + (" of either iptables backend (legacy, nft)" if live_none else "")
                 + ", so no Service is routed here by kube-proxy",
                 [Evidence("rule", where, "no KUBE-SERVICES / KUBE-PROXY-CANARY chain")],
                 "check that kube-proxy runs on this node (kubectl -n kube-system get pods -o wide) and its log; "
                 "with another service proxy (Cilium, kube-router...) this check does not apply")

    def check_hooks(self) -> None:
        for family in self.rs.families:
            nat = self.rs.table("nat", family)
            if nat is None or "KUBE-SERVICES" not in nat.chains:
                continue
            for hook in ("PREROUTING", "OUTPUT"):
                chain = nat.chains.get(hook)
                raw = chain.rules.raw if chain is not None else ()
                if not any(_jumps_to(text, "KUBE-SERVICES") for _, text in raw):
                    where = "traffic from pods and from outside" if hook == "PREROUTING" else "traffic from the node itself"
                    self.add(Severity.ERROR, "missing-hook", None, family,
                             f"nat {hook}'s jump to KUBE-SERVICES (for {where}) is not in the input"
                             if self.excerpt else
                             f"nat {hook} does not jump to KUBE-SERVICES: no Service works for {where} "
                             f"(IPv{int(family)})",
                             [Evidence("rule", self.source(family), f"nat {hook}: {len(raw)} rule(s), none -j KUBE-SERVICES")],
                             "kube-proxy installs this jump when it starts; if the dump is complete, restart kube-proxy "
                             "and look for a tool that flushes built-in chains (a firewall service, iptables -F)")
            post = nat.chains.get("POSTROUTING")
            if "KUBE-POSTROUTING" in nat.chains and not any(
                    _jumps_to(text, "KUBE-POSTROUTING") for _, text in (post.rules.raw if post else ())):
                self.add(Severity.WARNING, "missing-hook", None, family,
                         "nat POSTROUTING does not jump to KUBE-POSTROUTING: traffic marked for masquerade is not "
                         "masqueraded (hairpin and external traffic to Services can fail)",
                         [Evidence("rule", self.source(family), "nat POSTROUTING: no -j KUBE-POSTROUTING")],
                         "restart kube-proxy; check what else manages nat POSTROUTING")

    def check_graph(self) -> None:
        for d in graph.find_dangling_jumps(self.rs):
            if not d.target.startswith("KUBE-") and not d.chain.startswith("KUBE-"):
                continue   # someone else's excerpt; not ours to judge
            self.add(Severity.ERROR, "dangling-jump", self.name_of_chain(d.family, d.chain)
                     or self.name_of_chain(d.family, d.target), d.family,
                     f"{d.table} {d.chain} jumps to {d.target}, which is not in the input" if self.excerpt else
                     f"{d.table} {d.chain} jumps to {d.target}, which is not declared: packets taking this rule fail",
                     [self.rule(d.family, d.table, d.line, d.text)],
                     "iptables-restore refuses such a rule, so the dump was edited or is an excerpt; if it is the "
                     "whole table, kube-proxy's last sync was cut short: restart it")
        for ref in graph.find_unreferenced_chains(self.rs):
            kind = classify_chain(ref.chain)
            if ref.table != "nat" or not kind.per_service:
                continue
            name = self.name_of_chain(ref.family, ref.chain) or _sep_name(self.rs, ref.family, ref.chain)
            if not self.in_scope(name):
                continue
            what = "endpoint" if kind is ChainKind.SEP else "service port"
            if self.ipvs:
                self.add(Severity.INFO, "iptables-mode-leftover", name, ref.family,
                         f"{ref.chain} is left over from iptables mode: this node runs kube-proxy in IPVS mode, "
                         "which does not use it",
                         [Evidence("rule", f"{self.source(ref.family)}:{ref.line}", f":{ref.chain} - [0:0]")],
                         "harmless; deleting the old iptables-mode chains (kube-proxy --cleanup) tidies the dump")
                continue
            self.add(Severity.WARNING, "orphan-chain", name, ref.family,
                     f"nothing in the input jumps to {ref.chain}" if self.excerpt else
                     f"{ref.chain} is declared but nothing jumps to it: left over from a deleted {what}",
                     [Evidence("rule", f"{self.source(ref.family)}:{ref.line}", f":{ref.chain} - [0:0]")],
                     "harmless for traffic, but kube-proxy normally deletes such chains at its next full sync; "
                     "many of them point to a kube-proxy that stopped syncing")
        for cycle in graph.find_cycles(self.rs):
            self.add(Severity.ERROR, "jump-cycle", None, None,
                     "chains jump to each other in a loop: " + " -> ".join(cycle + cycle[:1]),
                     [Evidence("rule", "<rules>", " -> ".join(cycle))],
                     "iptables refuses loops, so this dump was merged or edited by hand")

    def check_rule_warnings(self) -> None:
        for sp in self.ports:
            if not self.in_scope(sp.name):
                continue
            # dangling-jump and orphan-chain report these two with their rule lines.
            ws = [w for w in sp.warnings if "does not exist" not in w and "no entry point" not in w
                  and not w.startswith("named by recomputing")  # check_comments covers unnamed rules
                  and w != IPVS_LEFTOVER]                        # check_graph says it per chain
            cascade = [w for w in ws if any(k in w for k in ("shares", "probability", "unconditional", "add up"))]
            if cascade:
                chain = _svc_chain(sp)
                self.add(Severity.WARNING, "uneven-shares", sp.name, sp.family, "; ".join(cascade),
                         [self.rule(sp.family, "nat", e.line, _raw_line(self.rs, sp.family, chain, e.line))
                          for e in (sp.endpoints or sp.local_endpoints or ())],
                         "kube-proxy always writes 1/(n-i) cascades; these rules were edited or are left from an "
                         "interrupted sync")
            for w in ws:
                if w not in cascade:
                    self.add(Severity.WARNING, "rules-warning", sp.name, sp.family, w)

    def check_comments(self) -> None:
        for family in self.rs.families:
            nat = self.rs.table("nat", family)
            if nat is None:
                continue
            bare = total = 0
            names = [name for name in nat.chains
                     # (the prefix test first: classify_chain on each of ~100k endpoint chains costs 0.2 s)
                     if name.startswith(("KUBE-SVC-", "KUBE-SVL-")) and classify_chain(name) in (ChainKind.SVC,
                                                                                                 ChainKind.SVL)]
            text, names = _clean_text(nat, names) if bulk.enabled() else ("", names)
            total, bare = _line_counts(text, " -j KUBE-SEP-", "--comment")  # one text, not rule by rule
            for name in names:
                for _, line in nat.raw_rules(name) or ():
                    if " -j KUBE-SEP-" in line:
                        total += 1
                        bare += "--comment" not in line
            if bare and total:
                self.add(Severity.INFO, "no-endpoint-comments", None, family,
                         f"{bare} of {total} endpoint jumps have no comment: kube-proxy's large-cluster mode "
                         "(more than 1000 endpoints) or an old release; service ports are matched by chain hash",
                         [Evidence("rule", self.source(family), "KUBE-SVC/SVL rules without -m comment")],
                         "nothing to fix; names come from the service-level comments or the objects")

    # --- against the objects ---------------------------------------------------------------

    def check_objects(self, expected: ExpectedState) -> int:
        by_rules = {(sp.key, sp.family): sp for sp in self.ports}
        matched: set[tuple[str, Family]] = set()
        checked = 0
        for family in self.rs.families:
            nat = self.rs.table("nat", family)
            wanted = [p for p in expected.ports if p.family is family]
            if self.no_kube_proxy and not self.nftables_mode:
                continue  # every expected port is reported missing below
            if wanted and (nat is None or "KUBE-SERVICES" not in nat.chains):
                self.broken_families.add(family)
                self.add(Severity.ERROR, "no-kube-services", None, family,
                         f"the IPv{int(family)} rules have no nat KUBE-SERVICES chain, but the API has "
                         f"{len(wanted)} service port(s) for this family: kube-proxy (iptables mode) has not "
                         "programmed this node" + ("" if nat is not None else " (no nat table in the input)"),
                         [Evidence("rule", self.source(family), "no *nat table with KUBE-SERVICES")],
                         "pass the whole iptables-save output; otherwise check that kube-proxy runs in iptables mode")
        for exp in expected.ports:
            if exp.family in self.broken_families or (exp.family not in self.rs.families and not self.no_kube_proxy):
                continue
            sp = None
            for cand in hash_candidates(exp.spn):
                key = (hash16(cand + exp.protocol), exp.family)
                if key in by_rules:
                    sp = by_rules[key]
                    matched.add(key)
                    break
            checked += 1
            self.check_port(exp, sp)
        self.check_stale(expected, by_rules, matched)
        dependent = [p for p in expected.ports if p.node_dependent]
        if dependent:
            self.notes.append(f"{len(dependent)} service port(s) depend on the node (Local traffic policy or topology "
                              "hints); their endpoint sets were not compared: pass --node NAME")
        return checked

    def check_port(self, exp: ExpectedServicePort, sp: ServicePortRules | None) -> None:
        spn, fam = exp.spn, exp.family
        obj = _object_evidence(exp)
        if sp is None or (not sp.entries and not sp.chains.get("svc") and not sp.chains.get("svl")):
            want = "REJECT rules (the service has no endpoints)" if not exp.has_endpoints else \
                f"a cluster IP rule for {exp.cluster_ip}:{exp.port.port}"
            self.add(Severity.ERROR, "missing-service-port", spn, fam,
                     f"no rules for this service port on the node (expected {want})", [obj], SYNC_HINT)
            return
        nat_entries = [e for e in sp.entries if e.table == "nat"]
        filt = [e for e in sp.entries if e.table == "filter"]
        self._cluster_ip(exp, sp, nat_entries, obj)
        self._verdicts(exp, sp, filt, obj)
        if exp.has_endpoints:
            self._node_port(exp, sp, nat_entries, obj)
            self._addresses(exp, sp, nat_entries, obj, EntryKind.EXTERNAL_IP, exp.external_ips, "external IP",
                            "external-ip-mismatch", "spec.externalIPs")
            self._addresses(exp, sp, nat_entries, obj, EntryKind.LOAD_BALANCER, exp.load_balancer_ips,
                            "load-balancer IP", "load-balancer-ip-mismatch", "status.loadBalancer.ingress")
            self._source_ranges(exp, sp, nat_entries, obj)
        self._health_check(exp, sp, filt, obj)
        if exp.node_dependent:
            return
        self._endpoints(exp, sp, obj)
        self._policy(exp, sp, nat_entries, obj)
        if (exp.uses_svc or exp.uses_svl) and (sp.endpoints or sp.local_endpoints) \
                and sp.affinity_seconds != exp.affinity_seconds:
            have = "none" if sp.affinity_seconds is None else f"ClientIP {sp.affinity_seconds}s"
            want = "none" if exp.affinity_seconds is None else f"ClientIP {exp.affinity_seconds}s"
            self.add(Severity.WARNING, "affinity-mismatch", spn, fam,
                     f"session affinity in the rules is {have}, the Service says {want}",
                     [self.rule(fam, "nat", e.line, _raw_line(self.rs, fam, _svc_chain(sp), e.line))
                      for e in sp.endpoints[:1]] + [Evidence("object", obj.where,
                                                             f"spec.sessionAffinity: {exp.service.session_affinity}, "
                                                             f"timeoutSeconds: {exp.service.affinity_timeout}")],
                     SYNC_HINT)

    def _cluster_ip(self, exp, sp, nat_entries, obj) -> None:
        if not exp.has_internal_endpoints:
            if exp.node_dependent and exp.has_endpoints:
                return   # whether this node has a local endpoint is unknown without --node
            stale = [e for e in nat_entries if e.kind == EntryKind.CLUSTER_IP]
            if stale:
                self.add(Severity.ERROR, "endpoints-mismatch", exp.spn, exp.family,
                         "the cluster IP is still DNATed to endpoints, but the API has "
                         + ("no usable endpoint" if not exp.has_endpoints else "no endpoint on this node "
                            "(internalTrafficPolicy: Local)"),
                         [self.entry(sp, e) for e in stale] + [obj], SYNC_HINT)
            return
        cips = [e for e in nat_entries if e.kind == EntryKind.CLUSTER_IP]
        good = [e for e in cips if e.address == exp.cluster_ip and e.port == exp.port.port]
        if good:
            return
        if not cips:
            self.add(Severity.ERROR, "missing-cluster-ip", exp.spn, exp.family,
                     f"no KUBE-SERVICES rule for the cluster IP {exp.cluster_ip}:{exp.port.port} "
                     f"({exp.protocol}); the service port's other rules exist", [obj], SYNC_HINT)
        else:
            have = ", ".join(f"{e.address}:{e.port}" for e in cips)
            self.add(Severity.ERROR, "wrong-cluster-ip", exp.spn, exp.family,
                     f"the rules send {have} to this service port, the Service says "
                     f"{exp.cluster_ip}:{exp.port.port}", [self.entry(sp, e) for e in cips] + [obj], SYNC_HINT)

    def _verdicts(self, exp, sp, filt, obj) -> None:
        internal = [e for e in filt if e.kind == EntryKind.CLUSTER_IP and e.verdict in ("reject", "drop")]
        external = [e for e in filt if e.kind in (EntryKind.NODE_PORT, EntryKind.EXTERNAL_IP, EntryKind.LOAD_BALANCER)
                    and e.verdict in ("reject", "drop") and "traffic not accepted by" not in (e.note or "")]
        for where, want, have in (("cluster IP", exp.internal_verdict, internal),
                                  ("external", exp.external_verdict, external)):
            verdicts = {e.verdict for e in have}
            ev = [self.entry(sp, e) for e in have]
            usable = [e for e in exp.candidates if e.conditions.is_ready]
            if want is None and "reject" in verdicts:
                self.add(Severity.ERROR, "reject-with-endpoints", exp.spn, exp.family,
                         f"{where} traffic is REJECTed as 'has no endpoints', but the API has "
                         f"{len(usable)} ready endpoint(s)", ev + [obj], SYNC_HINT)
            elif want is None and "drop" in verdicts and not exp.node_dependent:
                self.add(Severity.ERROR, "drop-with-local-endpoints", exp.spn, exp.family,
                         f"{where} traffic is DROPped as 'has no local endpoints', but "
                         f"{len(exp.local_endpoints)} endpoint(s) run on this node", ev + [obj], SYNC_HINT)
            elif want == "reject" and not verdicts:
                self.add(Severity.WARNING, "missing-reject", exp.spn, exp.family,
                         f"the service has no usable endpoint, but no rule REJECTs {where} traffic: clients "
                         "time out instead of being refused", [obj], SYNC_HINT)
            elif want == "drop" and not verdicts and not exp.node_dependent:
                self.add(Severity.WARNING, "missing-drop", exp.spn, exp.family,
                         f"no endpoint on this node for a Local traffic policy, but no rule DROPs {where} traffic",
                         [obj], SYNC_HINT)
            elif want is not None and verdicts and want not in verdicts and not exp.node_dependent:
                self.add(Severity.ERROR, "verdict-mismatch", exp.spn, exp.family,
                         f"{where} traffic gets {'/'.join(sorted(verdicts)).upper()}, expected {want.upper()}",
                         ev + [obj], SYNC_HINT)

    def _node_port(self, exp, sp, nat_entries, obj) -> None:
        nps = [e for e in nat_entries if e.kind == EntryKind.NODE_PORT]
        have = {e.port for e in nps}
        if exp.node_port is None:
            if nps:
                self.add(Severity.WARNING, "unexpected-node-port", exp.spn, exp.family,
                         f"the rules open node port {', '.join(str(p) for p in sorted(have))}, the Service has none",
                         [self.entry(sp, e) for e in nps] + [obj], SYNC_HINT)
            return
        if exp.node_port in have:
            return
        if nps:
            self.add(Severity.ERROR, "wrong-node-port", exp.spn, exp.family,
                     f"the rules use node port {', '.join(str(p) for p in sorted(have))}, the Service says "
                     f"{exp.node_port}", [self.entry(sp, e) for e in nps] + [obj], SYNC_HINT)
        else:
            self.add(Severity.ERROR, "missing-node-port", exp.spn, exp.family,
                     f"no KUBE-NODEPORTS rule for node port {exp.node_port}", [obj], SYNC_HINT)

    def _addresses(self, exp, sp, nat_entries, obj, kind, want, what, code, field) -> None:
        entries = [e for e in nat_entries if e.kind == kind]
        have = {e.address for e in entries if e.address and e.port == exp.port.port}
        missing, extra = sorted(set(want) - have), sorted(have - set(want))
        # Without a comment, a KUBE-SERVICES rule to KUBE-EXT reads as "external or
        # load-balancer IP" (services.py notes it): do not count such an LB IP twice.
        if kind == EntryKind.EXTERNAL_IP:
            extra = [a for a in extra if a not in exp.load_balancer_ips]
        if kind == EntryKind.LOAD_BALANCER:
            missing = [a for a in missing if a not in {e.address for e in nat_entries if e.note}]
        if not missing and not extra:
            return
        parts = []
        if missing:
            parts.append(f"missing for {', '.join(missing)}")
        if extra:
            parts.append(f"still present for {', '.join(extra)} (not in the Service)")
        self.add(Severity.ERROR, code, exp.spn, exp.family, f"{what} rules " + "; ".join(parts),
                 [self.entry(sp, e) for e in entries if e.address in extra]
                 + [Evidence("object", obj.where, f"{field}: {', '.join(sorted(want)) or '(none)'}")], SYNC_HINT)

    def _source_ranges(self, exp, sp, nat_entries, obj) -> None:
        lbs = [e for e in nat_entries if e.kind == EntryKind.LOAD_BALANCER]
        want = {str(ipaddress.ip_network(r, strict=False)) for r in exp.source_ranges}
        have = {str(ipaddress.ip_network(r, strict=False)) for r in sp.source_ranges}
        fw = exp.chain("FW")
        to_fw = [e for e in lbs if e.chain == fw]
        ev = [self.entry(sp, e) for e in lbs] + [Evidence(
            "object", obj.where, f"spec.loadBalancerSourceRanges: {', '.join(exp.service.load_balancer_source_ranges) or '(none)'}")]
        if exp.uses_fw and lbs and not to_fw:
            self.add(Severity.ERROR, "source-ranges-mismatch", exp.spn, exp.family,
                     "loadBalancerSourceRanges are not enforced: load-balancer IP traffic skips the KUBE-FW chain",
                     ev, SYNC_HINT)
        elif exp.uses_fw and want != have:
            self.add(Severity.ERROR, "source-ranges-mismatch", exp.spn, exp.family,
                     f"the rules allow {', '.join(sorted(have)) or 'nothing'}, the Service allows "
                     f"{', '.join(sorted(want))}", ev, SYNC_HINT)
        elif not exp.uses_fw and to_fw:
            self.add(Severity.ERROR, "source-ranges-mismatch", exp.spn, exp.family,
                     f"the rules still restrict load-balancer traffic to {', '.join(sorted(have)) or 'nothing'}, "
                     "the Service has no loadBalancerSourceRanges", ev, SYNC_HINT)

    def _health_check(self, exp, sp, filt, obj) -> None:
        have = {e.port for e in filt if e.kind == EntryKind.HEALTH_CHECK}
        want = {exp.health_check_node_port} if exp.health_check_node_port else set()
        if have != want:
            self.add(Severity.WARNING, "health-check-node-port-mismatch", exp.spn, exp.family,
                     f"the rules accept health checks on {', '.join(map(str, sorted(have))) or 'no port'}, the Service "
                     f"says {', '.join(map(str, sorted(want))) or 'none'}: the load balancer may mark this node "
                     "wrongly", [Evidence("object", obj.where, f"spec.healthCheckNodePort: "
                                                                 f"{exp.service.health_check_node_port}")], SYNC_HINT)

    def _endpoints(self, exp, sp, obj) -> None:
        self._endpoint_set(exp, sp, "cluster", exp.cluster_endpoints if exp.uses_svc else (), sp.endpoints,
                           sp.chains.get("svc"))
        if exp.uses_local_endpoints or sp.local_endpoints:
            self._endpoint_set(exp, sp, "local", exp.local_endpoints if exp.uses_svl else (),
                               sp.local_endpoints or (), sp.chains.get("svl"))

    def _endpoint_set(self, exp, sp, which, want_eps, have_shares, chain) -> None:
        if not exp.has_internal_endpoints and not exp.uses_ext and which == "cluster" and not have_shares:
            return
        want = {e.endpoint: e for e in want_eps}
        have = {s.endpoint or s.sep: s for s in have_shares}
        known = sp.cluster_complete if which == "cluster" else sp.local_complete
        missing = [want[k] for k in want if k not in have] if known else []
        extra = [have[k] for k in have if k not in want]
        if not missing and not extra:
            return
        known = {e.endpoint: e for e in exp.candidates}
        words = []
        if missing:
            words.append(f"{len(missing)} missing from the rules ({', '.join(e.endpoint for e in missing)})")
        if extra:
            words.append(f"{len(extra)} in the rules but not usable in the API ("
                         + ", ".join(_extra_why(s.endpoint or s.sep, known) for s in extra) + ")")
        label = "endpoints" if which == "cluster" else "node-local endpoints"
        ev = [self.rule(exp.family, "nat", s.line, _raw_line(self.rs, exp.family, chain, s.line)) for s in extra]
        ev += [Evidence("object", f"{exp.service.source}: EndpointSlice {exp.service.namespace}/{e.slice}",
                        _describe_endpoint(e)) for e in missing]
        self.add(Severity.ERROR, "endpoints-mismatch" if which == "cluster" else "local-endpoints-mismatch",
                 exp.spn, exp.family,
                 f"{label}: the rules have {len(have)} ({chain or 'no chain'}), the API has {len(want)} usable; "
                 + "; ".join(words), ev, SYNC_HINT)

    def _policy(self, exp, sp, nat_entries, obj) -> None:
        svl, svc = exp.chain("SVL"), exp.chain("SVC")
        ev_obj = Evidence("object", obj.where, f"spec.internalTrafficPolicy: {exp.service.internal_traffic_policy}, "
                                               f"spec.externalTrafficPolicy: {exp.service.external_traffic_policy}")
        if exp.has_internal_endpoints:
            for e in nat_entries:
                if e.kind == EntryKind.CLUSTER_IP and e.address == exp.cluster_ip and e.chain != exp.internal_chain:
                    want = "KUBE-SVL (node-local endpoints only)" if exp.internal_local else "KUBE-SVC (all endpoints)"
                    self.add(Severity.ERROR, "policy-mismatch", exp.spn, exp.family,
                             f"cluster IP traffic goes to {e.chain}, expected {want} for internalTrafficPolicy "
                             f"{exp.service.internal_traffic_policy or 'Cluster'}", [self.entry(sp, e), ev_obj], SYNC_HINT)
        ext = sp.chains.get("ext")
        if exp.uses_ext and ext:
            nat = self.rs.table("nat", exp.family)
            raw = nat.raw_rules(ext) or () if nat is not None else ()
            to_svl = [(ln, t) for ln, t in raw if _jumps_to(t, svl)]
            if exp.external_local and exp.has_external_endpoints and not to_svl:
                self.add(Severity.ERROR, "policy-mismatch", exp.spn, exp.family,
                         f"externalTrafficPolicy is Local, but {ext} never sends external traffic to {svl}: it "
                         "reaches endpoints on other nodes and loses the client address",
                         [self.rule(exp.family, "nat", ln, t) for ln, t in raw] + [ev_obj], SYNC_HINT, absence=True)
            elif not exp.external_local and to_svl:
                self.add(Severity.ERROR, "policy-mismatch", exp.spn, exp.family,
                         f"externalTrafficPolicy is Cluster, but {ext} sends external traffic to {svl} "
                         "(node-local endpoints only)", [self.rule(exp.family, "nat", ln, t) for ln, t in to_svl]
                         + [ev_obj], SYNC_HINT)
            if not exp.external_local and not any(_jumps_to(t, svc) for _, t in raw) and exp.uses_svc:
                self.add(Severity.ERROR, "policy-mismatch", exp.spn, exp.family,
                         f"{ext} does not jump to {svc}: external traffic reaches no endpoint",
                         [self.rule(exp.family, "nat", ln, t) for ln, t in raw] + [ev_obj], SYNC_HINT, absence=True)

    def check_stale(self, expected: ExpectedState, by_rules, matched) -> None:
        not_proxied = {(s.namespace, s.name): why for s, why in expected.not_proxied}
        services = {(p.service.namespace, p.service.name) for p in expected.ports}
        for key, sp in by_rules.items():
            if key in matched or sp.family in self.broken_families:
                continue
            if not (sp.entries or sp.chains.get("svc") or sp.chains.get("svl") or sp.chains.get("ext")):
                continue
            if not self.in_scope(sp.name):
                continue
            if sp.name:
                ns, name, _ = split_spn(sp.name)
                if (ns, name) in not_proxied:
                    why = f"the Service exists but kube-proxy writes no rules for it: {not_proxied[(ns, name)]}"
                elif (ns, name) in services:
                    why = "the Service exists but has no such port (or protocol, or address family)"
                else:
                    why = "no such Service in the API"
            else:
                why = "no Service port in the API hashes to these chains"
            first = sorted(sp.entries, key=lambda e: e.line)[:3]
            chains = [c for c in (sp.chains.get(k) for k in ("svc", "svl", "ext", "fw")) if c]
            ev = [self.entry(sp, e) for e in first]
            if chains:
                ev.append(Evidence("rule", self.source(sp.family), "chains: " + ", ".join(chains + list(sp.chains.get("sep") or []))))
            self.add(Severity.ERROR, "stale-service-port", sp.name, sp.family,
                     f"rules for a service port that does not exist: {why}", ev,
                     "stale rules keep sending traffic to old endpoints (or to nothing); " + SYNC_HINT)


# --- small helpers -------------------------------------------------------------------------------

def _jumps_to(text: str, chain: str) -> bool:
    return text.endswith((f" -j {chain}", f" -g {chain}")) or f" -j {chain} " in text or f" -g {chain} " in text


def _clean_text(table, names: list[str]) -> tuple[str, list[str]]:
    """The rules of the chains ``names`` that are one block of whole lines, as one
    text (its lines are their rules, before raw_rules strips blanks), and the
    other chains (to read rule by rule)."""
    blocks = getattr(table.chains, "blocks", None)
    if blocks is None:
        return "", names
    fits, rest = [], []
    for name in names:
        segs = blocks(name)
        if segs is not None and len(segs) == 1 and segs[0][1].endswith("\n"):
            fits.append(segs[0][1])
        else:
            rest.append(name)
    return "".join(fits), rest


def _line_counts(text: str, needle: str, absent: str) -> tuple[int, int]:
    """How many raw rules among the lines of ``text`` hold ``needle``, and how many
    of those do not hold ``absent`` (``absent`` holds no blank, ``needle`` does
    not end in one). Lines are read as
    raw_rules gives them, blanks stripped; the compiled ``_edges.line_counts``
    counts when no line starts with a blank."""
    native = graph._native.line_counts(text, needle, absent) if graph._native is not None else None
    if native is not None and not native[2]:
        return native[0], native[1]
    total = without = 0
    for line in text.split("\n"):
        if needle in line:
            if line[0] in " \t" and needle not in line.strip(" \t"):
                continue  # (raw_rules strips blanks: the needle began with the first one)
            total += 1
            without += absent not in line
    return total, without


def _raw_line(rs: Ruleset, family: Family, chain: str | None, line: int) -> str:
    nat = rs.table("nat", family)
    if nat is None or chain is None:
        return ""
    for ln, text in nat.raw_rules(chain) or ():
        if ln == line:
            return text
    return ""


def _svc_chain(sp: ServicePortRules) -> str | None:
    return sp.chains.get("svc") or sp.chains.get("svl")


def _sep_name(rs: Ruleset, family: Family, chain: str) -> str | None:
    from svcinspect.dataplane.iptables.kubeproxy import parse_comment
    nat = rs.table("nat", family)
    for _, text in (nat.raw_rules(chain) or ()) if nat is not None else ():
        if "--comment" in text:
            body = text.split("--comment ", 1)[1]
            comment = body[1:].split('"', 1)[0] if body.startswith('"') else body.split(" ", 1)[0]
            info = parse_comment(comment)
            if info is not None and info.spn:
                return info.spn
    return None


def _object_evidence(exp: ExpectedServicePort) -> Evidence:
    svc, p = exp.service, exp.port
    bits = [f"clusterIPs: {', '.join(svc.cluster_ips)}", f"port {p.port}/{p.protocol.upper()}"]
    if p.node_port:
        bits.append(f"nodePort {p.node_port}")
    bits.append(f"{len(exp.candidates)} endpoint(s) in EndpointSlices, {len(exp.cluster_endpoints)} usable")
    return Evidence("object", f"{svc.source}: Service {svc.ref}", "; ".join(bits))


def _describe_endpoint(e: ExpectedEndpoint) -> str:
    where = f"on {e.node_name}" if e.node_name else "node unknown"
    pod = f"pod {e.pod} " if e.pod else ""
    return f"{e.endpoint} {pod}{where}: {e.conditions.describe()}"


def _extra_why(endpoint: str, known: dict[str, ExpectedEndpoint]) -> str:
    e = known.get(endpoint)
    if e is None:
        return f"{endpoint}: not in any EndpointSlice"
    return f"{endpoint}: {e.conditions.describe()}" + (f", pod {e.pod}" if e.pod else "")
