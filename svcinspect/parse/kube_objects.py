"""Read Kubernetes objects (JSON or YAML) into :class:`~svcinspect.model.kube.ClusterState`.

Accepted input, as text (:func:`parse_objects`) or already decoded
(:func:`parse_documents`, which the API source uses for the server's answers):

- ``kubectl get svc,endpointslices,nodes -A -o json`` (a ``List``), typed lists as
  the API server returns them (``ServiceList``... whose items carry no ``kind``),
  a JSON array of objects;
- YAML, multi-document YAML (``---``), single objects;
- Services, EndpointSlices (discovery.k8s.io/v1), Nodes, and v1 Endpoints for old
  clusters. Endpoints are used only when there is no EndpointSlice at all (kube-proxy
  reads EndpointSlices); :attr:`ClusterState.notes` says which was used.

Other kinds are skipped and counted in a note. A malformed object raises
:class:`InputError` naming the source, the object and the field:
``objects.json: Service default/web: spec.ports[0].port: expected an integer, got 'http'``.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections import Counter
from collections.abc import Iterable
from typing import Any

import yaml

from svcinspect.errors import InputError
from svcinspect.model.kube import (
    ClusterState,
    Endpoint,
    EndpointConditions,
    EndpointPort,
    EndpointSlice,
    LoadBalancerIngress,
    Node,
    Service,
    ServicePort,
)

_LIST_KINDS = {"ServiceList": "Service", "EndpointSliceList": "EndpointSlice", "NodeList": "Node",
               "EndpointsList": "Endpoints"}
_DUMP_LINE = re.compile(r"^(\*(nat|filter|mangle|raw)\s*$|:KUBE-|-A [A-Z])", re.M)


# YAML aliases may repeat a node, never multiply a document: a document's nodes
# counted with every alias expanded may exceed its distinct nodes by at most this
# many (a 569-byte "billion laughs" expands to 10^9).
MAX_ALIAS_EXPANSION = 100_000


def parse_objects(text: str, source: str = "<objects>") -> ClusterState:
    """Objects from a file's text (JSON or YAML, one or many documents).

    Nesting deeper than Python's recursion allows (real objects are a dozen
    levels deep) and YAML aliases expanding beyond :data:`MAX_ALIAS_EXPANSION`
    nodes are refused with :class:`InputError`."""
    try:
        return _parse_objects(text, source)
    except RecursionError:
        raise InputError(f"{source}: nested too deeply to be Kubernetes objects (hundreds of levels of "
                         f"lists or maps)") from None


def _parse_objects(text: str, source: str) -> ClusterState:
    stripped = text.lstrip("\ufeff \t\r\n")
    if not stripped:
        raise InputError(f"{source}: empty; expected Kubernetes objects (kubectl get svc,endpointslices,nodes -A -o json)")
    if stripped[0] in "{[":
        try:
            return parse_documents([json.loads(stripped)], source)
        except json.JSONDecodeError as exc:
            if stripped[0] == "{" and not _looks_like_yaml_flow(stripped):
                raise InputError(f"{source}:{exc.lineno}: not valid JSON: {exc.msg}") from None
    if _DUMP_LINE.search(text[:20000]):
        raise InputError(f"{source}: this is iptables-save output, not Kubernetes objects; pass it with --rules")
    try:
        docs = list(_load_yaml_documents(stripped, source))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark is not None else source
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise InputError(f"{where}: not valid YAML or JSON: {problem}") from None
    return parse_documents(docs, source)


def _load_yaml_documents(text: str, source: str):
    """``yaml.safe_load_all``, refusing documents whose aliases expand too far
    (or refer to themselves) before anything is built from them."""
    loader = yaml.SafeLoader(text)
    try:
        while loader.check_node():
            node = loader.get_node()
            _check_aliases(node, source)
            yield loader.construct_document(node)
    finally:
        loader.dispose()


def _check_aliases(root, source: str) -> None:
    """Distinct nodes vs nodes with aliases expanded, without recursion."""
    expanded: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        if done:
            on_path.discard(key)
            total = 1
            for child in _children(node):
                total += expanded[id(child)]
            expanded[key] = total
            continue
        if key in expanded:
            continue
        if key in on_path:
            raise InputError(f"{source}: a YAML alias refers to the node that contains it (a recursive "
                             f"document is not Kubernetes objects)")
        on_path.add(key)
        stack.append((node, True))
        for child in _children(node):
            if id(child) not in expanded:
                stack.append((child, False))
    if expanded[id(root)] > len(expanded) + MAX_ALIAS_EXPANSION:
        raise InputError(f"{source}: YAML aliases expand {len(expanded)} nodes to {expanded[id(root)]} (more than "
                         f"{MAX_ALIAS_EXPANSION} extra): refused (an alias bomb?)")


def _children(node) -> list:
    value = node.value
    if isinstance(node, yaml.MappingNode):
        return [n for pair in value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(value)
    return []


def _looks_like_yaml_flow(text: str) -> bool:
    # `{kind: List, items: []}` is YAML flow style, not broken JSON.
    return bool(re.match(r"\{\s*[A-Za-z_]+\s*:", text))


def parse_documents(docs: Iterable[Any], source: str) -> ClusterState:
    """Objects from decoded documents (dicts, lists, ``List`` objects)."""
    reader = _Reader(source)
    for i, doc in enumerate(docs):
        reader.document(doc, f"document {i + 1}")
    return merge_states([reader.state()])


def merge_states(states: Iterable[ClusterState]) -> ClusterState:
    """One state from several sources. Endpoints-derived slices are kept only when
    no source has a real EndpointSlice (kube-proxy reads EndpointSlices)."""
    states = list(states)
    services = tuple(s for st in states for s in st.services)
    slices = [s for st in states for s in st.slices]
    nodes = tuple(n for st in states for n in st.nodes)
    notes = [n for st in states for n in st.notes]
    sources = tuple(src for st in states for src in st.sources)
    real = [s for s in slices if not s.from_endpoints]
    legacy = [s for s in slices if s.from_endpoints]
    if legacy and real:
        names = {(s.namespace, s.service_name) for s in legacy}
        notes.append(f"ignored {len(names)} v1 Endpoints object(s): EndpointSlices are present, "
                     "and kube-proxy reads EndpointSlices")
        slices = real
    elif legacy:
        names = {(s.namespace, s.service_name) for s in legacy}
        notes.append(f"no EndpointSlices: using {len(names)} v1 Endpoints object(s) instead "
                     "(old cluster; serving/terminating conditions and zones are not known)")
    return ClusterState(services, tuple(slices), nodes, tuple(dict.fromkeys(notes)), tuple(dict.fromkeys(sources)))


class _Reader:
    def __init__(self, source: str) -> None:
        self.source = source
        self.services: list[Service] = []
        self.slices: list[EndpointSlice] = []
        self.nodes: list[Node] = []
        self.skipped: Counter[str] = Counter()

    def state(self) -> ClusterState:
        if not (self.services or self.slices or self.nodes):
            if self.skipped:
                raise InputError(f"{self.source}: no Services, EndpointSlices or Nodes here (only "
                                 + ", ".join(sorted(self.skipped)) + ")")
        notes = []
        if self.skipped:
            notes.append(f"{self.source}: skipped " + ", ".join(f"{n} {k}" for k, n in sorted(self.skipped.items()))
                         + " (not used to check Service rules)")
        return ClusterState(tuple(self.services), tuple(self.slices), tuple(self.nodes), tuple(notes), (self.source,))

    def fail(self, where: str, what: str) -> InputError:
        return InputError(f"{self.source}: {where}: {what}")

    def document(self, doc: Any, where: str, kind_hint: str | None = None) -> None:
        if doc is None:
            return
        if isinstance(doc, list):
            for i, item in enumerate(doc):
                self.document(item, f"{where} item {i + 1}", kind_hint)
            return
        if not isinstance(doc, dict):
            raise self.fail(where, f"expected a Kubernetes object (a mapping with kind), got {_show(doc)}")
        kind = doc.get("kind") or kind_hint
        if kind is None:
            raise self.fail(where, "no `kind`: not a Kubernetes object")
        if not isinstance(kind, str):
            raise self.fail(where, f"kind: expected a string, got {_show(kind)}")
        if kind == "List" or kind in _LIST_KINDS:
            items = doc.get("items")
            if items is None:
                return
            if not isinstance(items, list):
                raise self.fail(where, f"{kind}.items: expected a list, got {_show(items)}")
            for i, item in enumerate(items):
                self.document(item, f"{kind} item {i + 1}", _LIST_KINDS.get(kind))
            return
        meta = _dict(doc.get("metadata"), "metadata", self, f"{kind} in {where}", required=True)
        name = _str(meta.get("name"), "metadata.name", self, f"{kind} in {where}", required=True)
        ns = _str(meta.get("namespace"), "metadata.namespace", self, f"{kind} {name}") or "default"
        ref = f"{kind} {ns}/{name}" if kind != "Node" else f"Node {name}"
        labels = _dict(meta.get("labels"), "metadata.labels", self, ref)
        if kind == "Service":
            self.services.append(self._service(doc, ns, name, labels, ref))
        elif kind == "EndpointSlice":
            self.slices.append(self._slice(doc, ns, name, labels, ref))
        elif kind == "Endpoints":
            self.slices.extend(self._endpoints(doc, ns, name, ref))
        elif kind == "Node":
            self.nodes.append(self._node(doc, name, labels, ref))
        else:
            self.skipped[kind] += 1

    # --- Service -----------------------------------------------------------------

    def _service(self, doc: dict, ns: str, name: str, labels: dict, ref: str) -> Service:
        spec = _dict(doc.get("spec"), "spec", self, ref, required=True)
        stype = _str(spec.get("type"), "spec.type", self, ref) or "ClusterIP"
        ips = _str_list(spec.get("clusterIPs"), "spec.clusterIPs", self, ref)
        if not ips:
            one = _str(spec.get("clusterIP"), "spec.clusterIP", self, ref)
            ips = (one,) if one else ()
        for i, ip in enumerate(ips):
            if ip != "None":
                _ip(ip, f"spec.clusterIPs[{i}]", self, ref)
        ports = []
        for i, p in enumerate(_list(spec.get("ports"), "spec.ports", self, ref)):
            field = f"spec.ports[{i}]"
            p = _dict(p, field, self, ref, required=True)
            tp = p.get("targetPort")
            ports.append(ServicePort(
                name=_str(p.get("name"), f"{field}.name", self, ref) or "",
                protocol=_protocol(p.get("protocol"), f"{field}.protocol", self, ref),
                port=_int(p.get("port"), f"{field}.port", self, ref, required=True),
                node_port=_int(p.get("nodePort"), f"{field}.nodePort", self, ref) or None,
                target_port=None if tp is None else str(tp),
            ))
        ext = _str_list(spec.get("externalIPs"), "spec.externalIPs", self, ref)
        for i, ip in enumerate(ext):
            _ip(ip, f"spec.externalIPs[{i}]", self, ref)
        status = _dict(doc.get("status"), "status", self, ref)
        lb = _dict(status.get("loadBalancer"), "status.loadBalancer", self, ref)
        ingress = []
        for i, ing in enumerate(_list(lb.get("ingress"), "status.loadBalancer.ingress", self, ref)):
            field = f"status.loadBalancer.ingress[{i}]"
            ing = _dict(ing, field, self, ref, required=True)
            ip = _str(ing.get("ip"), f"{field}.ip", self, ref)
            if ip:
                _ip(ip, f"{field}.ip", self, ref)
            ingress.append(LoadBalancerIngress(ip or None, _str(ing.get("hostname"), f"{field}.hostname", self, ref),
                                               _str(ing.get("ipMode"), f"{field}.ipMode", self, ref)))
        ranges = tuple(r.strip() for r in _str_list(spec.get("loadBalancerSourceRanges"),
                                                    "spec.loadBalancerSourceRanges", self, ref))
        for i, r in enumerate(ranges):
            try:
                ipaddress.ip_network(r, strict=False)
            except ValueError:
                raise self.fail(ref, f"spec.loadBalancerSourceRanges[{i}]: {r!r} is not a CIDR") from None
        sac = _dict(spec.get("sessionAffinityConfig"), "spec.sessionAffinityConfig", self, ref)
        cip = _dict(sac.get("clientIP"), "spec.sessionAffinityConfig.clientIP", self, ref)
        return Service(
            namespace=ns, name=name, type=stype, cluster_ips=tuple(ips), ports=tuple(ports),
            external_ips=tuple(ext), load_balancer_ingress=tuple(ingress), load_balancer_source_ranges=ranges,
            external_traffic_policy=_str(spec.get("externalTrafficPolicy"), "spec.externalTrafficPolicy", self, ref),
            internal_traffic_policy=_str(spec.get("internalTrafficPolicy"), "spec.internalTrafficPolicy", self, ref),
            session_affinity=_str(spec.get("sessionAffinity"), "spec.sessionAffinity", self, ref),
            affinity_timeout=_int(cip.get("timeoutSeconds"), "spec.sessionAffinityConfig.clientIP.timeoutSeconds",
                                  self, ref),
            health_check_node_port=_int(spec.get("healthCheckNodePort"), "spec.healthCheckNodePort", self, ref) or None,
            traffic_distribution=_str(spec.get("trafficDistribution"), "spec.trafficDistribution", self, ref),
            proxy_name=_str(labels.get("service.kubernetes.io/service-proxy-name"), "metadata.labels", self, ref),
            headless_label="service.kubernetes.io/headless" in labels,
            source=self.source,
        )

    # --- EndpointSlice -------------------------------------------------------------

    def _slice(self, doc: dict, ns: str, name: str, labels: dict, ref: str) -> EndpointSlice:
        atype = _str(doc.get("addressType"), "addressType", self, ref, required=True)
        endpoints = []
        for i, ep in enumerate(_list(doc.get("endpoints"), "endpoints", self, ref)):
            field = f"endpoints[{i}]"
            ep = _dict(ep, field, self, ref, required=True)
            addrs = _str_list(ep.get("addresses"), f"{field}.addresses", self, ref)
            if atype in ("IPv4", "IPv6"):
                for j, a in enumerate(addrs):
                    _ip(a, f"{field}.addresses[{j}]", self, ref)
            cond = _dict(ep.get("conditions"), f"{field}.conditions", self, ref)
            hints = _dict(ep.get("hints"), f"{field}.hints", self, ref)
            target = _dict(ep.get("targetRef"), f"{field}.targetRef", self, ref)
            endpoints.append(Endpoint(
                addresses=addrs,
                conditions=EndpointConditions(*(_bool(cond.get(k), f"{field}.conditions.{k}", self, ref)
                                                for k in ("ready", "serving", "terminating"))),
                node_name=_str(ep.get("nodeName"), f"{field}.nodeName", self, ref),
                zone=_str(ep.get("zone"), f"{field}.zone", self, ref),
                hint_zones=_names(hints.get("forZones"), f"{field}.hints.forZones", self, ref),
                hint_nodes=_names(hints.get("forNodes"), f"{field}.hints.forNodes", self, ref),
                pod=_str(target.get("name"), f"{field}.targetRef.name", self, ref)
                if target.get("kind", "Pod") == "Pod" else None,
            ))
        ports = []
        for i, p in enumerate(_list(doc.get("ports"), "ports", self, ref)):
            field = f"ports[{i}]"
            p = _dict(p, field, self, ref, required=True)
            ports.append(EndpointPort(_str(p.get("name"), f"{field}.name", self, ref) or "",
                                      _protocol(p.get("protocol"), f"{field}.protocol", self, ref),
                                      _int(p.get("port"), f"{field}.port", self, ref)))
        service = _str(labels.get("kubernetes.io/service-name"), "metadata.labels[kubernetes.io/service-name]",
                       self, ref)
        return EndpointSlice(ns, name, service, atype, tuple(endpoints), tuple(ports), self.source)

    # --- v1 Endpoints (old clusters) -------------------------------------------------

    def _endpoints(self, doc: dict, ns: str, name: str, ref: str) -> list[EndpointSlice]:
        out = []
        for i, subset in enumerate(_list(doc.get("subsets"), "subsets", self, ref)):
            field = f"subsets[{i}]"
            subset = _dict(subset, field, self, ref, required=True)
            ports = []
            for j, p in enumerate(_list(subset.get("ports"), f"{field}.ports", self, ref)):
                pf = f"{field}.ports[{j}]"
                p = _dict(p, pf, self, ref, required=True)
                ports.append(EndpointPort(_str(p.get("name"), f"{pf}.name", self, ref) or "",
                                          _protocol(p.get("protocol"), f"{pf}.protocol", self, ref),
                                          _int(p.get("port"), f"{pf}.port", self, ref, required=True)))
            by_family: dict[str, list[Endpoint]] = {}
            for key, ready in (("addresses", True), ("notReadyAddresses", False)):
                for j, a in enumerate(_list(subset.get(key), f"{field}.{key}", self, ref)):
                    af = f"{field}.{key}[{j}]"
                    a = _dict(a, af, self, ref, required=True)
                    ip = _str(a.get("ip"), f"{af}.ip", self, ref, required=True)
                    family = "IPv6" if _ip(ip, f"{af}.ip", self, ref).version == 6 else "IPv4"
                    target = _dict(a.get("targetRef"), f"{af}.targetRef", self, ref)
                    by_family.setdefault(family, []).append(Endpoint(
                        (ip,), EndpointConditions(ready, ready, None),
                        node_name=_str(a.get("nodeName"), f"{af}.nodeName", self, ref),
                        pod=_str(target.get("name"), f"{af}.targetRef.name", self, ref)))
            for family, eps in by_family.items():
                out.append(EndpointSlice(ns, f"{name} (v1 Endpoints, subset {i + 1})", name, family, tuple(eps),
                                         tuple(ports), self.source, from_endpoints=True))
        return out

    # --- Node ---------------------------------------------------------------------------

    def _node(self, doc: dict, name: str, labels: dict, ref: str) -> Node:
        status = _dict(doc.get("status"), "status", self, ref)
        addrs = []
        for i, a in enumerate(_list(status.get("addresses"), "status.addresses", self, ref)):
            a = _dict(a, f"status.addresses[{i}]", self, ref, required=True)
            addrs.append((_str(a.get("type"), f"status.addresses[{i}].type", self, ref) or "",
                          _str(a.get("address"), f"status.addresses[{i}].address", self, ref) or ""))
        zone = labels.get("topology.kubernetes.io/zone") or labels.get("failure-domain.beta.kubernetes.io/zone")
        return Node(name, tuple(addrs), zone if isinstance(zone, str) else None, self.source)


# --- typed field access with errors that name the field -------------------------------

def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _dict(value: Any, field: str, r: _Reader, ref: str, required: bool = False) -> dict:
    if value is None:
        if required:
            raise r.fail(ref, f"{field}: missing")
        return {}
    if not isinstance(value, dict):
        raise r.fail(ref, f"{field}: expected a mapping, got {_show(value)}")
    return value


def _list(value: Any, field: str, r: _Reader, ref: str) -> list:
    if value is None:
        return []
    if not isinstance(value, list):
        raise r.fail(ref, f"{field}: expected a list, got {_show(value)}")
    return value


def _str(value: Any, field: str, r: _Reader, ref: str, required: bool = False) -> str | None:
    if value is None or value == "":
        if required:
            raise r.fail(ref, f"{field}: missing")
        return None
    if not isinstance(value, str):
        raise r.fail(ref, f"{field}: expected a string, got {_show(value)}")
    return value


def _str_list(value: Any, field: str, r: _Reader, ref: str) -> tuple[str, ...]:
    items = _list(value, field, r, ref)
    for i, v in enumerate(items):
        if not isinstance(v, str):
            raise r.fail(ref, f"{field}[{i}]: expected a string, got {_show(v)}")
    return tuple(items)


def _int(value: Any, field: str, r: _Reader, ref: str, required: bool = False) -> int | None:
    if value is None:
        if required:
            raise r.fail(ref, f"{field}: missing")
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise r.fail(ref, f"{field}: expected an integer, got {_show(value)}")
    return value


def _bool(value: Any, field: str, r: _Reader, ref: str) -> bool | None:
    if value is not None and not isinstance(value, bool):
        raise r.fail(ref, f"{field}: expected true or false, got {_show(value)}")
    return value


def _protocol(value: Any, field: str, r: _Reader, ref: str) -> str:
    text = _str(value, field, r, ref) or "TCP"
    if text.upper() not in ("TCP", "UDP", "SCTP"):
        raise r.fail(ref, f"{field}: {text!r} is not TCP, UDP or SCTP")
    return text.lower()


def _ip(value: str, field: str, r: _Reader, ref: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        raise r.fail(ref, f"{field}: {value!r} is not an IP address") from None


def _names(value: Any, field: str, r: _Reader, ref: str) -> tuple[str, ...]:
    out = []
    for i, item in enumerate(_list(value, field, r, ref)):
        item = _dict(item, f"{field}[{i}]", r, ref, required=True)
        name = _str(item.get("name"), f"{field}[{i}].name", r, ref)
        if name:
            out.append(name)
    return tuple(out)
