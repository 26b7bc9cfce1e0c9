"""Prometheus metric families for a :class:`~.snapshot.Snapshot` and the agent's health.

Conventions (Prometheus naming, kube-state-metrics labels): the ``svcinspect_``
prefix, base units (seconds, ratios), ``_total`` for counters, ``_info`` gauges
of value 1 carrying labels. A service port is labelled ``namespace``,
``service``, ``port`` (the port's name, ``""`` when unnamed, as kube-proxy
writes ``ns/name``), ``protocol`` and ``ip_family``; per-endpoint series
(``endpoint`` label) only when asked for, because a node of 10000 service ports
x 10 endpoints would otherwise export ~10^5 of them.

The reference of every metric is :data:`METRICS` (also the docs' table).
"""

from __future__ import annotations

import platform
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from svcinspect.errors import EnvironmentProblem

try:  # the optional extra svcinspect[agent]
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
    from prometheus_client.registry import Collector
except ImportError:  # pragma: no cover - depends on the installation
    raise EnvironmentProblem("svcinspect serve needs prometheus_client: pip install 'svcinspect[agent]'") from None

from svcinspect import __version__
from svcinspect.serve.snapshot import Snapshot

PORT = ["namespace", "service", "port", "protocol", "ip_family"]
STAGES = ("rules", "objects", "conntrack", "analysis")

# name -> (type, help, labels)
METRICS: dict[str, tuple[str, str, list[str]]] = {
    "svcinspect_build_info": ("gauge", "svcinspect's version (value 1).", ["version", "python_version"]),
    "svcinspect_dataplane_info": ("gauge", "What the last good read found: the kube-proxy mode (iptables, "
                                  "nftables), the backend read (nft, legacy; file for --rules) and the node "
                                  "(value 1).",
                                  ["mode", "backend", "ip_families", "node_name"]),
    "svcinspect_reads_total": ("counter", "Read cycles attempted.", []),
    "svcinspect_read_errors_total": ("counter", "Read cycles that failed, by the stage that failed; the last good "
                                     "figures are kept.", ["stage"]),
    "svcinspect_read_duration_seconds": ("gauge", "Wall time of each stage of the last successful cycle.",
                                         ["stage"]),
    "svcinspect_last_success_timestamp_seconds": ("gauge", "Unix time the last successful cycle ended.", []),
    "svcinspect_rules": ("gauge", "Rules read (all tables and families): iptables rules, or nft rules of the "
                         "kube-proxy tables in nftables mode.", []),
    "svcinspect_objects_compared_service_ports": ("gauge", "Service ports compared with the Services and "
                                                  "EndpointSlices (0: no objects were read).", []),
    "svcinspect_service_ports": ("gauge", "Service ports with a cascade of this traffic policy in the rules.",
                                 ["ip_family", "policy"]),
    "svcinspect_endpoints": ("gauge", "Endpoints in the rules' cascades of this traffic policy.",
                             ["ip_family", "policy"]),
    "svcinspect_service_port_endpoints": ("gauge", "Endpoints the rules send this service port's traffic to "
                                          "(policy cluster: KUBE-SVC, local: KUBE-SVL).", PORT + ["policy"]),
    "svcinspect_findings": ("gauge", "Findings of `svcinspect check` by severity (error, warning, info; always "
                            "present, 0 when none).", ["severity"]),
    "svcinspect_check_findings": ("gauge", "Findings of `svcinspect check` by code and severity.",
                                  ["code", "severity"]),
    "svcinspect_service_port_findings": ("gauge", "Findings per failing service port (only those with findings).",
                                         PORT + ["code", "severity"]),
    "svcinspect_service_port_new_connections_total": ("counter", "New connections the endpoints' DNAT rules "
                                                      "counted (iptables-save -c; reset when kube-proxy rewrites "
                                                      "the chains; absent in nftables mode, whose rules carry no "
                                                      "counters).", PORT),
    "svcinspect_service_port_open_connections": ("gauge", "Connections open now to the service port's endpoints "
                                                 "(conntrack).", PORT),
    "svcinspect_service_port_share_skew_ratio": ("gauge", "Largest observed/expected share of new connections "
                                                 "over the endpoints (1: exactly as the rules say); only with "
                                                 "enough connections to test.", PORT),
    "svcinspect_service_port_balance_p_value": ("gauge", "p-value of the chi-square test of the counts against "
                                                "the rules' shares (evidence: new or open connections).",
                                                PORT + ["evidence"]),
    "svcinspect_service_port_balance_verdict": ("gauge", "The balance verdict (value 1 on the current one): "
                                                "consistent, new-connections-skewed, open-connections-skewed, "
                                                "not-enough-data, unknown.", PORT + ["verdict"]),
    "svcinspect_endpoint_expected_share_ratio": ("gauge", "The rules' exact share of new connections "
                                                 "(--per-endpoint).", PORT + ["endpoint"]),
    "svcinspect_endpoint_new_connections_total": ("counter", "New connections the endpoint's DNAT rule counted "
                                                  "(--per-endpoint).", PORT + ["endpoint"]),
    "svcinspect_endpoint_open_connections": ("gauge", "Connections open now to the endpoint (conntrack; "
                                             "--per-endpoint).", PORT + ["endpoint"]),
}


@dataclass
class AgentStatus:
    """The agent's own counters (mutable; the agent holds the lock)."""

    reads: int = 0
    errors: dict[str, int] = field(default_factory=lambda: {s: 0 for s in STAGES})
    durations: dict[str, float] = field(default_factory=dict)
    last_success: float | None = None
    last_error: str | None = None


def _family(name: str) -> Metric:
    kind, doc, labels = METRICS[name]
    base = name[:-len("_total")] if kind == "counter" else name
    cls = CounterMetricFamily if kind == "counter" else GaugeMetricFamily
    return cls(base, doc, labels=labels)


def metric_families(snap: Snapshot | None, status: AgentStatus, per_endpoint: bool = False) -> list[Metric]:
    fams = {name: _family(name) for name in METRICS}

    def add(name: str, labels: list[str], value: float) -> None:
        fams[name].add_metric(labels, value)

    add("svcinspect_build_info", [__version__, platform.python_version()], 1)
    add("svcinspect_reads_total", [], status.reads)
    for stage in STAGES:
        add("svcinspect_read_errors_total", [stage], status.errors.get(stage, 0))
    for stage, seconds in status.durations.items():
        add("svcinspect_read_duration_seconds", [stage], seconds)
    if status.last_success is not None:
        add("svcinspect_last_success_timestamp_seconds", [], status.last_success)
    if snap is not None:
        _snapshot_metrics(snap, add, per_endpoint)
    return [f for name, f in fams.items() if f.samples or not METRICS[name][2]]


def _snapshot_metrics(snap: Snapshot, add: Callable[[str, list[str], float], None], per_endpoint: bool) -> None:
    add("svcinspect_dataplane_info", [snap.dataplane, snap.backend, ",".join(snap.families), snap.node or ""], 1)
    add("svcinspect_rules", [], snap.rules)
    add("svcinspect_objects_compared_service_ports", [], snap.compared)
    for (fam, policy), (ports, eps) in sorted(snap.totals().items()):
        add("svcinspect_service_ports", [fam, policy], ports)
        add("svcinspect_endpoints", [fam, policy], eps)
    for (labels, policy), n in sorted(snap.endpoints.items()):
        add("svcinspect_service_port_endpoints", [*labels, policy], n)
    for sev in ("error", "warning", "info"):
        add("svcinspect_findings", [sev], sum(n for (_, s), n in snap.findings_by_code.items() if s == sev))
    for (code, sev), n in sorted(snap.findings_by_code.items()):
        add("svcinspect_check_findings", [code, sev], n)
    for (labels, code, sev), n in sorted(snap.port_findings.items()):
        add("svcinspect_service_port_findings", [*labels, code, sev], n)
    for labels, pb in sorted(snap.balance.items()):
        _balance_metrics(list(labels), pb, add, per_endpoint)


def _balance_metrics(labels: list[str], pb, add, per_endpoint: bool) -> None:
    add("svcinspect_service_port_balance_verdict", [*labels, pb.verdict.value], 1)
    if pb.new_total is not None:
        add("svcinspect_service_port_new_connections_total", labels, pb.new_total)
    if pb.open_total is not None:
        add("svcinspect_service_port_open_connections", labels, pb.open_total)
    if pb.skew_ratio is not None:
        add("svcinspect_service_port_share_skew_ratio", labels, pb.skew_ratio)
    for evidence, test in (("new", pb.new_test), ("open", pb.open_test)):
        if test is not None and test.enough and len(pb.endpoints) > 1:
            add("svcinspect_service_port_balance_p_value", [*labels, evidence], test.p_value)
    if not per_endpoint:
        return
    for e in pb.endpoints:
        ep = e.endpoint or e.sep
        add("svcinspect_endpoint_expected_share_ratio", [*labels, ep], float(e.expected_share))
        if e.new_connections is not None:
            add("svcinspect_endpoint_new_connections_total", [*labels, ep], e.new_connections)
        if e.open_connections is not None:
            add("svcinspect_endpoint_open_connections", [*labels, ep], e.open_connections)


class SnapshotCollector(Collector):
    """A prometheus_client collector publishing whatever ``current()`` returns."""

    def __init__(self, current: Callable[[], tuple[Snapshot | None, AgentStatus]], per_endpoint: bool = False):
        self.current = current
        self.per_endpoint = per_endpoint

    def collect(self) -> Iterator[Metric]:
        snap, status = self.current()
        yield from metric_families(snap, status, self.per_endpoint)

