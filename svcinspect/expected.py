"""What kube-proxy (iptables mode) should have programmed on one node, from the objects.

``build_expected(state, node, families)`` takes a :class:`ClusterState` and the
node's name and returns one :class:`ExpectedServicePort` per service port and
address family: the addresses and ports that should have entry rules, the
endpoint sets of the cluster-policy (``KUBE-SVC``) and local-policy (``KUBE-SVL``)
chains, affinity, which filter-table REJECT/DROP rules should exist, and every
chain name (recomputed with kube-proxy's hash).

Modelled (after kube-proxy ~1.28-1.36: servicechangetracker, endpointslicecache,
topology.go CategorizeEndpoints, and the iptables proxier's syncProxyRules):

- which Services are proxied: not headless (``clusterIP: None``), not ExternalName,
  with a cluster IP of the family, and without the ``service.kubernetes.io/
  service-proxy-name`` or ``service.kubernetes.io/headless`` labels;
- per family: the cluster IP from ``clusterIPs``, external IPs and load-balancer
  ingress IPs of that family (ingress with ``ipMode: Proxy`` is skipped), node port,
  health-check node port (LoadBalancer with ``externalTrafficPolicy: Local``);
- endpoints: EndpointSlices labelled with the service name, of the family's
  address type, whose port name and protocol match the service port; the first
  address of each endpoint; absent ``ready``/``serving`` mean true, absent
  ``terminating`` false; duplicates across slices collapse (local wins);
- cluster endpoints: ready ones; if none, serving-and-terminating ones;
- topology: hints are used when every ready endpoint has zone hints (or node
  hints) and one of them names this node's zone (node); then only those;
- local endpoints for ``externalTrafficPolicy: Local`` (when externally
  accessible) and ``internalTrafficPolicy: Local``: ready local ones, else
  serving-terminating local ones;
- which chains exist (SVC only with cluster endpoints, SVL only with local
  endpoints, EXT when externally accessible and there are endpoints, FW with
  source ranges), and the filter rules: REJECT "has no endpoints" when nothing
  is usable anywhere, DROP "has no local endpoints" for a Local policy without
  local endpoints;
- session affinity ClientIP with its timeout (default 10800 s).

Not modelled (stated, not guessed): ``--nodeport-addresses`` (node ports are
expected on every local address), ``--masquerade-all`` and the cluster CIDR in
masquerade rules, the source-range handling when every range is of the other
family, kube-proxy feature gates turned off (e.g. topology hints disabled), the
``PreferSameNode`` gate before it defaulted on, KUBE-XLB chains of releases before
~1.24, and whether a node's addresses are local. With ``node=None`` everything
that depends on the node (Local policies, topology hints) is marked
``node_dependent`` and its endpoint sets are not to be trusted.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from functools import cached_property

from svcinspect.dataplane.iptables.kubeproxy import endpoint_chain, hash16, service_chain
from svcinspect.model.kube import ClusterState, EndpointConditions, EndpointSlice, Service, ServicePort
from svcinspect.model.netfilter import Family

DEFAULT_AFFINITY_SECONDS = 10800   # corev1.DefaultClientIPServiceAffinitySeconds
PREFER_SAME_ZONE = "PreferSameZone"
PREFER_SAME_NODE = "PreferSameNode"


@dataclass(frozen=True, slots=True)
class ExpectedEndpoint:
    """One endpoint of a service port, as kube-proxy sees it on this node."""

    ip: str
    port: int
    endpoint: str                 # "10.244.1.5:8080" / "[fd00::5]:8080", as in DNAT rules
    sep_chain: str                # KUBE-SEP-<hash>
    conditions: EndpointConditions
    node_name: str | None
    zone: str | None
    pod: str | None
    slice: str
    local: bool
    hint_zones: tuple[str, ...] = ()
    hint_nodes: tuple[str, ...] = ()


@dataclass(frozen=True)
class ExpectedServicePort:
    service: Service
    port: ServicePort
    spn: str
    family: Family
    protocol: str
    cluster_ip: str
    node_port: int | None
    health_check_node_port: int | None
    external_ips: tuple[str, ...]
    load_balancer_ips: tuple[str, ...]
    source_ranges: tuple[str, ...]
    internal_local: bool
    external_local: bool
    candidates: tuple[ExpectedEndpoint, ...]       # every endpoint of this port/family in the slices
    cluster_endpoints: tuple[ExpectedEndpoint, ...]
    local_endpoints: tuple[ExpectedEndpoint, ...]
    has_endpoints: bool
    affinity_seconds: int | None
    topology: str | None                           # PreferSameZone / PreferSameNode when hints are in use
    node_dependent: bool = False                   # node unknown and the result depends on it
    notes: tuple[str, ...] = field(default=())

    @cached_property
    def key(self) -> str:
        """The hash shared by this port's KUBE-SVC/SVL/EXT/FW chains."""
        return hash16(self.spn + self.protocol)

    def chain(self, prefix: str) -> str:
        return service_chain(prefix, self.spn, self.protocol)

    @property
    def externally_accessible(self) -> bool:
        return bool(self.node_port or self.load_balancer_ips or self.external_ips)

    @property
    def uses_cluster_endpoints(self) -> bool:
        return not self.internal_local or self.externally_accessible

    @property
    def uses_local_endpoints(self) -> bool:
        return self.internal_local or (self.external_local and self.externally_accessible)

    @property
    def uses_svc(self) -> bool:
        return bool(self.cluster_endpoints) and self.uses_cluster_endpoints

    @property
    def uses_svl(self) -> bool:
        return bool(self.local_endpoints) and self.uses_local_endpoints

    @property
    def uses_ext(self) -> bool:
        return self.has_endpoints and self.externally_accessible

    @property
    def uses_fw(self) -> bool:
        return self.has_endpoints and bool(self.load_balancer_ips) and bool(self.source_ranges)

    @property
    def has_internal_endpoints(self) -> bool:
        return self.has_endpoints and (not self.internal_local or bool(self.local_endpoints))

    @property
    def has_external_endpoints(self) -> bool:
        return self.has_endpoints and (not self.external_local or bool(self.local_endpoints))

    @property
    def internal_chain(self) -> str:
        """Where KUBE-SERVICES sends cluster-IP traffic."""
        return self.chain("SVL" if self.internal_local else "SVC")

    @property
    def internal_verdict(self) -> str | None:
        """The filter verdict for the cluster IP: reject, drop, or None (traffic is DNATed)."""
        if not self.has_endpoints:
            return "reject"
        return None if self.has_internal_endpoints else "drop"

    @property
    def external_verdict(self) -> str | None:
        if not self.externally_accessible:
            return None
        if not self.has_endpoints:
            return "reject"
        return None if self.has_external_endpoints else "drop"

    def expected_chains(self) -> dict[str, str]:
        """Per-service chains that should exist: prefix -> name."""
        out = {}
        for prefix, used in (("SVC", self.uses_svc), ("SVL", self.uses_svl), ("EXT", self.uses_ext),
                             ("FW", self.uses_fw)):
            if used:
                out[prefix] = self.chain(prefix)
        return out

    @property
    def reachable_endpoints(self) -> tuple[ExpectedEndpoint, ...]:
        """Endpoints that get a KUBE-SEP chain: cluster ones and local ones."""
        seen: dict[str, ExpectedEndpoint] = {}
        for e in (self.cluster_endpoints if self.uses_svc else ()) + (self.local_endpoints if self.uses_svl else ()):
            seen.setdefault(e.endpoint, e)
        return tuple(seen.values())


@dataclass(frozen=True)
class ExpectedState:
    node: str | None
    ports: tuple[ExpectedServicePort, ...]
    not_proxied: tuple[tuple[Service, str], ...]    # services kube-proxy writes no rules for, and why
    notes: tuple[str, ...] = ()

def build_expected(state: ClusterState, node: str | None,
                   families: tuple[Family, ...] = (Family.V4, Family.V6)) -> ExpectedState:
    """Every service port kube-proxy should program on ``node``, per family."""
    notes: list[str] = []
    zone = None
    if node is not None:
        n = state.node(node)
        if n is None:
            if state.nodes:
                notes.append(f"node {node} is not among the Node objects ({', '.join(x.name for x in state.nodes)}): "
                             "its zone is unknown, zone hints are not applied")
        else:
            zone = n.zone
    ports: list[ExpectedServicePort] = []
    skipped: list[tuple[Service, str]] = []
    for svc in state.services:
        why = not_proxied_reason(svc)
        if why:
            skipped.append((svc, why))
            continue
        slices = state.slices_for(svc)
        for family in families:
            cip = _of_family(svc.cluster_ips, family)
            if cip is None:
                continue
            for port in svc.ports:
                ports.append(_expected_port(svc, port, family, cip, slices, node, zone))
    ports.sort(key=lambda p: (p.spn, p.protocol, int(p.family)))
    return ExpectedState(node, tuple(ports), tuple(skipped), tuple(notes))


def not_proxied_reason(svc: Service) -> str | None:
    """Why kube-proxy writes no rules for this Service, or None when it does."""
    if svc.type == "ExternalName":
        return "ExternalName service (DNS only)"
    if svc.headless:
        return "headless service (clusterIP: None)"
    if not svc.cluster_ips:
        return "no cluster IP allocated in the object"
    if svc.proxy_name is not None:
        return f"labelled service.kubernetes.io/service-proxy-name={svc.proxy_name} (another proxy owns it)"
    if svc.headless_label:
        return "labelled service.kubernetes.io/headless"
    return None


def format_endpoint(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def _of_family(addresses, family: Family) -> str | None:
    found = _all_of_family(addresses, family)
    return found[0] if found else None


def _all_of_family(addresses, family: Family) -> tuple[str, ...]:
    out = []
    for a in addresses:
        try:
            ip = ipaddress.ip_address(a)
        except ValueError:
            continue
        if ip.version == int(family):
            out.append(str(ip))
    return tuple(dict.fromkeys(out))


def _slice_family(sl: EndpointSlice) -> Family | None:
    return {"IPv4": Family.V4, "IPv6": Family.V6}.get(sl.address_type)


def _endpoints_of(svc: Service, port: ServicePort, family: Family, slices, spn: str,
                  node: str | None) -> tuple[ExpectedEndpoint, ...]:
    found: dict[str, ExpectedEndpoint] = {}
    for sl in slices:
        if _slice_family(sl) is not family:
            continue
        for sp in sl.ports:
            if sp.name != port.name or sp.protocol != port.protocol or sp.port is None:
                continue
            for ep in sl.endpoints:
                if not ep.addresses:
                    continue
                try:
                    ip = str(ipaddress.ip_address(ep.addresses[0]))
                except ValueError:
                    continue
                text = format_endpoint(ip, sp.port)
                local = node is not None and ep.node_name == node
                if text in found and not local:
                    continue   # kube-proxy keeps the first copy unless a later one is local
                found[text] = ExpectedEndpoint(ip, sp.port, text, endpoint_chain(spn, port.protocol, text),
                                               ep.conditions, ep.node_name, ep.zone, ep.pod, sl.name, local,
                                               ep.hint_zones, ep.hint_nodes)
    return tuple(found.values())


def _topology_mode(eps, node: str | None, zone: str | None) -> str | None:
    """topology.go topologyModeFromHints: hints count only if every ready endpoint has them."""
    ready = [e for e in eps if e.conditions.is_ready]
    if ready and all(e.hint_nodes for e in ready) and node is not None and any(node in e.hint_nodes for e in ready):
        return PREFER_SAME_NODE
    if ready and all(e.hint_zones for e in ready) and zone is not None and any(zone in e.hint_zones for e in ready):
        return PREFER_SAME_ZONE
    return None


def _available(e: ExpectedEndpoint, mode: str | None, node: str | None, zone: str | None) -> bool:
    if mode == PREFER_SAME_NODE:
        return node in e.hint_nodes
    if mode == PREFER_SAME_ZONE:
        return zone in e.hint_zones
    return True


def _expected_port(svc: Service, port: ServicePort, family: Family, cip: str, slices, node: str | None,
                   zone: str | None) -> ExpectedServicePort:
    spn = svc.spn(port)
    eps = _endpoints_of(svc, port, family, slices, spn, node)
    ext_ips = _all_of_family(svc.external_ips, family)
    lb_ips = _all_of_family([i.ip for i in svc.load_balancer_ingress if i.ip and i.ip_mode != "Proxy"], family)
    ranges = tuple(r for r in svc.load_balancer_source_ranges
                   if ipaddress.ip_network(r, strict=False).version == int(family))
    externally = bool(port.node_port or lb_ips or ext_ips)
    # apiservice.ExternalPolicyLocal: the Service type decides, the port's addresses do not.
    svc_external = svc.type in ("NodePort", "LoadBalancer") or (svc.type == "ClusterIP" and bool(svc.external_ips))
    ext_local = svc_external and svc.external_traffic_policy == "Local"
    int_local = svc.internal_traffic_policy == "Local"
    uses_cluster = not int_local or externally
    uses_local = int_local or (ext_local and externally)

    cluster: list[ExpectedEndpoint] = []
    topology = None
    has_any = False
    if uses_cluster:
        topology = _topology_mode(eps, node, zone)
        cluster = [e for e in eps if e.conditions.is_ready and _available(e, topology, node, zone)]
        if not cluster:
            # No ready endpoint anywhere: kube-proxy falls back to serving, terminating ones.
            cluster = [e for e in eps if e.conditions.is_serving and e.conditions.is_terminating
                       and _available(e, topology, node, zone)]
        has_any = bool(cluster)
    local: list[ExpectedEndpoint] = []
    if uses_local:
        usable = [e for e in eps if e.conditions.is_ready or (e.conditions.is_serving and e.conditions.is_terminating)]
        has_any = has_any or bool(usable)
        local = [e for e in eps if e.local and e.conditions.is_ready]
        if not local:
            local = [e for e in eps if e.local and e.conditions.is_serving and e.conditions.is_terminating]

    affinity = None
    if svc.session_affinity == "ClientIP":
        affinity = svc.affinity_timeout or DEFAULT_AFFINITY_SECONDS
    hcnp = svc.health_check_node_port if (svc.type == "LoadBalancer" and svc.external_traffic_policy == "Local") \
        else None
    notes = []
    hinted = any(e.hint_zones or e.hint_nodes for e in eps)
    node_dependent = node is None and (uses_local or hinted)
    if node_dependent:
        notes.append("depends on the node (Local traffic policy or topology hints) and --node was not given")
    return ExpectedServicePort(
        service=svc, port=port, spn=spn, family=family, protocol=port.protocol, cluster_ip=cip,
        node_port=port.node_port, health_check_node_port=hcnp, external_ips=ext_ips, load_balancer_ips=lb_ips,
        source_ranges=ranges if lb_ips else (), internal_local=int_local, external_local=ext_local,
        candidates=eps, cluster_endpoints=tuple(cluster) if uses_cluster else (),
        local_endpoints=tuple(local), has_endpoints=has_any, affinity_seconds=affinity, topology=topology,
        node_dependent=node_dependent, notes=tuple(notes))


def endpoints_by_port(expected: ExpectedState) -> dict[tuple[str, Family], tuple[ExpectedEndpoint, ...]]:
    """(chain hash, family) -> every endpoint of that service port in the slices,
    for showing pod names and conditions next to the rules."""
    return {(p.key, p.family): p.candidates for p in expected.ports}
