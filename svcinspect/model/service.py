"""The service-port model both dataplanes produce.

Each dataplane (:mod:`svcinspect.dataplane`) turns its own rules into these:
a service port's entry points, its endpoints with their exact shares, its
policies, and what the input does not show. The analyses and renderers above
the dataplanes read only this model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction

from svcinspect.model.netfilter import Family


class EntryKind:
    CLUSTER_IP = "clusterIP"
    EXTERNAL_IP = "externalIP"
    LOAD_BALANCER = "loadBalancer"
    NODE_PORT = "nodePort"
    HEALTH_CHECK = "healthCheckNodePort"


@dataclass(frozen=True, slots=True)
class EntryPoint:
    """Where traffic enters a service port. ``address`` None: any local address
    (node ports); ``verdict`` is set for filter-table REJECT/DROP/ACCEPT entries."""

    kind: str
    address: str | None
    port: int | None
    protocol: str | None
    chain: str | None
    table: str
    line: int
    text: str
    verdict: str | None = None
    localhost: bool = False
    note: str | None = None


@dataclass(frozen=True, slots=True)
class Branch:
    """One jump of a KUBE-SVC/SVL chain to an endpoint chain."""

    sep: str
    line: int
    text: str
    probability: str | None = None       # as printed; None = unconditional
    affinity_seconds: int | None = None  # set on ``-m recent --rcheck`` branches
    comment_endpoint: str | None = None


@dataclass(frozen=True, slots=True)
class EndpointShare:
    endpoint: str | None   # "10.244.1.5:8080"; None when the SEP chain is missing
    sep: str
    share: Fraction | None  # None: the cascade that decides it is not in the input (an excerpt)
    probability: str | None
    line: int

    @property
    def share_float(self) -> float | None:
        return None if self.share is None else round(float(self.share), 10)


@dataclass(frozen=True)
class ServicePortRules:
    """Everything the rules say about one service port in one address family."""

    key: str                       # the chain hash, or the name when there is no chain
    family: Family
    name: str | None
    protocol: str | None
    entries: tuple[EntryPoint, ...]
    chains: dict[str, object]
    endpoints: tuple[EndpointShare, ...]          # cluster policy (KUBE-SVC)
    local_endpoints: tuple[EndpointShare, ...] | None  # local policy (KUBE-SVL), None if absent
    affinity_seconds: int | None
    source_ranges: tuple[str, ...]
    warnings: tuple[str, ...] = field(default=())
    # False when the input (an excerpt) does not hold everything that decides the
    # endpoints and their shares; ``unknown`` says what is missing.
    endpoints_complete: bool = True
    unknown: tuple[str, ...] = field(default=())
    cluster_complete: bool = True    # the KUBE-SVC part of ``endpoints_complete``
    local_complete: bool = True      # the KUBE-SVL/XLB part
    dataplane: str = "iptables"    # which of kube-proxy's modes wrote these rules (svcinspect.dataplane)

    @property
    def display_name(self) -> str:
        return self.name or f"<no comment: {self.key}>"

    def entries_of(self, kind: str) -> list[EntryPoint]:
        return [e for e in self.entries if e.kind == kind]

    @property
    def cluster_ip(self) -> EntryPoint | None:
        found = self.entries_of(EntryKind.CLUSTER_IP)
        return found[0] if found else None

    @property
    def node_port(self) -> int | None:
        for e in self.entries_of(EntryKind.NODE_PORT):
            return e.port
        return None


def find_service(ports: list[ServicePortRules], query: str) -> list[ServicePortRules]:
    """Service ports matching ``ns/name``, ``ns/name:port`` or a chain name/hash."""
    q = query.strip()
    hits = []
    for sp in ports:
        if q in (sp.key, f"KUBE-SVC-{sp.key}", f"KUBE-SVL-{sp.key}", f"KUBE-EXT-{sp.key}"):
            hits.append(sp)
            continue
        if sp.name is None:
            continue
        base, _, port = sp.name.partition(":") if "/" in sp.name else (sp.name, "", "")
        if sp.name == q or base == q or sp.key == q:
            hits.append(sp)
        elif ":" in q and q.rsplit(":", 1)[0] == base and port == q.rsplit(":", 1)[1]:
            hits.append(sp)
    return hits
