"""The Kubernetes objects model: Services, EndpointSlices and Nodes as kube-proxy reads them.

Values only. Both sources (``--objects`` files and the API server) produce a
:class:`ClusterState`; nothing here knows where the objects came from except the
``source`` string kept for evidence ("objects.json", "api:https://10.0.0.1:6443").
Fields keep the API's words (``clusterIPs``, ``externalTrafficPolicy``...) in
snake case; absent optional fields stay ``None`` so that kube-proxy's defaults are
applied in one place (:mod:`svcinspect.expected`), not silently here.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class ServicePort:
    """One entry of ``spec.ports``; ``name`` is '' when the port is unnamed."""

    name: str
    protocol: str          # lower case: tcp, udp, sctp
    port: int
    node_port: int | None = None
    target_port: str | None = None


@dataclass(frozen=True, slots=True)
class LoadBalancerIngress:
    ip: str | None
    hostname: str | None = None
    ip_mode: str | None = None     # "VIP" (default) or "Proxy" (kube-proxy then skips the IP)


@dataclass(frozen=True, slots=True)
class Service:
    namespace: str
    name: str
    type: str                                  # ClusterIP, NodePort, LoadBalancer, ExternalName
    cluster_ips: tuple[str, ...]               # spec.clusterIPs (or clusterIP); ("None",) when headless,
                                               # () when not allocated yet (a manifest without one)
    ports: tuple[ServicePort, ...]
    external_ips: tuple[str, ...] = ()
    load_balancer_ingress: tuple[LoadBalancerIngress, ...] = ()
    load_balancer_source_ranges: tuple[str, ...] = ()
    external_traffic_policy: str | None = None  # Cluster / Local
    internal_traffic_policy: str | None = None  # Cluster / Local
    session_affinity: str | None = None         # None / ClientIP
    affinity_timeout: int | None = None         # sessionAffinityConfig.clientIP.timeoutSeconds
    health_check_node_port: int | None = None
    traffic_distribution: str | None = None
    proxy_name: str | None = None               # label service.kubernetes.io/service-proxy-name
    headless_label: bool = False                # label service.kubernetes.io/headless
    source: str = ""

    @property
    def ref(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def headless(self) -> bool:
        return bool(self.cluster_ips) and self.cluster_ips[0] == "None"

    def spn(self, port: ServicePort) -> str:
        """The service port name exactly as kube-proxy writes it: ``ns/name:port`` or ``ns/name``."""
        return f"{self.namespace}/{self.name}:{port.name}" if port.name else f"{self.namespace}/{self.name}"


@dataclass(frozen=True, slots=True)
class EndpointConditions:
    """As stored in the object: ``None`` when the field is absent."""

    ready: bool | None = None
    serving: bool | None = None
    terminating: bool | None = None

    # kube-proxy's reading (pkg/proxy/endpointslicecache.go): absent ready/serving
    # mean true, absent terminating means false.
    @property
    def is_ready(self) -> bool:
        return self.ready is None or self.ready

    @property
    def is_serving(self) -> bool:
        return self.serving is None or self.serving

    @property
    def is_terminating(self) -> bool:
        return bool(self.terminating)

    def describe(self) -> str:
        words = ["ready" if self.is_ready else "not ready"]
        if self.is_terminating:
            words.append("serving" if self.is_serving else "not serving")
            words.append("terminating")
        return ", ".join(words)


@dataclass(frozen=True, slots=True)
class Endpoint:
    addresses: tuple[str, ...]
    conditions: EndpointConditions = EndpointConditions()
    node_name: str | None = None
    zone: str | None = None
    hint_zones: tuple[str, ...] = ()
    hint_nodes: tuple[str, ...] = ()
    pod: str | None = None          # targetRef.name when targetRef.kind is Pod


@dataclass(frozen=True, slots=True)
class EndpointPort:
    name: str                       # '' when unnamed
    protocol: str                   # lower case
    port: int | None


@dataclass(frozen=True, slots=True)
class EndpointSlice:
    namespace: str
    name: str
    service_name: str | None        # label kubernetes.io/service-name
    address_type: str               # IPv4, IPv6, FQDN
    endpoints: tuple[Endpoint, ...]
    ports: tuple[EndpointPort, ...]
    source: str = ""
    from_endpoints: bool = False    # converted from a v1 Endpoints object (old clusters)


@dataclass(frozen=True, slots=True)
class Node:
    name: str
    addresses: tuple[tuple[str, str], ...] = ()   # (type, address), e.g. ("InternalIP", "192.168.10.11")
    zone: str | None = None                       # label topology.kubernetes.io/zone
    source: str = ""


@dataclass(frozen=True)
class ClusterState:
    """Every object read, from one or more sources, plus what the reader wants said
    (``notes``: e.g. that v1 Endpoints were used because no EndpointSlices exist)."""

    services: tuple[Service, ...] = ()
    slices: tuple[EndpointSlice, ...] = ()
    nodes: tuple[Node, ...] = ()
    notes: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()
    _by_service: dict = field(default=None, init=False, repr=False, compare=False)  # type: ignore[assignment]

    def service(self, namespace: str, name: str) -> Service | None:
        for s in self.services:
            if s.namespace == namespace and s.name == name:
                return s
        return None

    def slices_for(self, service: Service) -> tuple[EndpointSlice, ...]:
        if self._by_service is None:
            index: dict[tuple[str, str], list[EndpointSlice]] = {}
            for sl in self.slices:
                if sl.service_name:
                    index.setdefault((sl.namespace, sl.service_name), []).append(sl)
            object.__setattr__(self, "_by_service", {k: tuple(v) for k, v in index.items()})
        return self._by_service.get((service.namespace, service.name), ())

    def node(self, name: str | None) -> Node | None:
        for n in self.nodes:
            if n.name == name:
                return n
        return None

    def in_namespace(self, namespace: str | None) -> ClusterState:
        """Only the namespaced objects of ``namespace`` (nodes are kept)."""
        if namespace is None:
            return self
        return ClusterState(tuple(s for s in self.services if s.namespace == namespace),
                            tuple(s for s in self.slices if s.namespace == namespace),
                            self.nodes, self.notes, self.sources)
