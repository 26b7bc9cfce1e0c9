"""One read of a node, reduced to the numbers the exporter publishes.

:func:`build_snapshot` is pure: it takes what the sources read (the ruleset,
the objects or None, the conntrack flows or None) and returns plain data, so the
exporter's figures are tested with strings like every other analysis.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from svcinspect.balance import PortBalance, balance_port
from svcinspect.check import check_rules
from svcinspect.dataplane.iptables.kubeproxy import split_spn
from svcinspect.model.conntrack import ConntrackEntry
from svcinspect.model.kube import ClusterState
from svcinspect.model.netfilter import Family, Ruleset
from svcinspect.model.service import ServicePortRules
from svcinspect.dataplane import build_service_ports

# (namespace, service, port, protocol, ip_family): a service port, as kube-state-metrics labels a Service
PortLabels = tuple[str, str, str, str, str]


def ip_family(family: Family | None) -> str:
    return f"IPv{int(family)}" if family is not None else ""


def port_labels(name: str | None, key: str, protocol: str | None, family: Family | None) -> PortLabels:
    """``ns/name:port`` -> labels; a port without comments keeps its chain hash as ``service``."""
    if name and "/" in name:
        ns, svc, port = split_spn(name)
    else:
        ns, svc, port = "", key, ""
    return ns, svc, port, (protocol or "").upper(), ip_family(family)


@dataclass(frozen=True)
class Snapshot:
    node: str | None
    backend: str                           # "nft", "legacy", "file" (nftables mode: "nft" or "file")
    families: tuple[str, ...]
    rules: int
    with_objects: bool
    compared: int                          # service ports compared with the objects
    # per service port
    endpoints: dict[tuple[PortLabels, str], int]          # (port, policy) -> endpoints in the rules
    findings_by_code: dict[tuple[str, str], int]          # (code, severity) -> count
    port_findings: dict[tuple[PortLabels, str, str], int]  # (port, code, severity) -> count
    balance: dict[PortLabels, PortBalance]
    notes: tuple[str, ...] = field(default=())
    dataplane: str = "iptables"            # kube-proxy's mode: "iptables" or "nftables"

    def totals(self) -> dict[tuple[str, str], tuple[int, int]]:
        """(ip_family, policy) -> (service ports, endpoints)."""
        out: dict[tuple[str, str], list[int]] = {}
        for (labels, policy), n in self.endpoints.items():
            t = out.setdefault((labels[4], policy), [0, 0])
            t[0] += 1
            t[1] += n
        return {k: (v[0], v[1]) for k, v in out.items()}


def _policies(sp: ServicePortRules) -> list[tuple[str, int]]:
    out = []
    if sp.chains.get("svc") is not None:
        out.append(("cluster", len(sp.endpoints)))
    if sp.local_endpoints is not None:
        out.append(("local", len(sp.local_endpoints)))
    return out


def build_snapshot(ruleset: Ruleset, state: ClusterState | None, node: str | None,
                   flows: Sequence[ConntrackEntry] | None, backend: str = "file") -> Snapshot:
    """Everything the exporter publishes about one read."""
    ports = build_service_ports(ruleset)
    by_name: dict[tuple[str | None, Family], ServicePortRules] = {(sp.name, sp.family): sp for sp in ports}
    endpoints: dict[tuple[PortLabels, str], int] = {}
    balance: dict[PortLabels, PortBalance] = {}
    for sp in ports:
        labels = port_labels(sp.name, sp.key, sp.protocol, sp.family)
        for policy, n in _policies(sp):
            endpoints[(labels, policy)] = n
        if sp.endpoints or sp.local_endpoints:
            balance[labels] = balance_port(ruleset, sp, flows)
    report = check_rules(ruleset, state, node, ports=ports)
    by_code: Counter = Counter()
    per_port: Counter = Counter()
    for f in report.findings:
        sev = str(f.severity)
        by_code[(f.code, sev)] += 1
        if f.service_port:
            sp = by_name.get((f.service_port, f.family)) if f.family is not None else None
            proto = sp.protocol if sp is not None else None
            per_port[(port_labels(f.service_port, "", proto, f.family), f.code, sev)] += 1
    return Snapshot(node, backend, tuple(ip_family(f) for f in ruleset.families), _rule_count(ruleset),
                    state is not None, report.checked, endpoints, dict(by_code), dict(per_port), balance,
                    report.notes, getattr(ruleset, "dataplane", "iptables"))


def _rule_count(ruleset) -> int:
    """Rules read: iptables rules, or in nftables mode the rules of the nft tables read."""
    if getattr(ruleset, "dataplane", "iptables") == "nftables":
        return sum(len(c.rules) for t in ruleset.tables for c in t.chains.values())
    return ruleset.rule_count()
