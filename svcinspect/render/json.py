"""JSON documents (``"schema": "svcinspect/v1"``) for every command's result."""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any

from svcinspect.errors import Diagnostic

if TYPE_CHECKING:  # services (and kubeproxy) load only for the commands that list them
    from svcinspect.model.service import EndpointShare, ServicePortRules

SCHEMA = "svcinspect/v1"


def document(**fields: Any) -> dict[str, Any]:
    return {"schema": SCHEMA, **fields}


def dumps(doc: dict[str, Any], pretty: bool = True) -> str:
    """Indented for people, compact for programs: indenting makes CPython use its
    pure-Python encoder, ~5x slower (3.2 s vs 0.6 s for 10k services).

    orjson writes the same bytes ~10x faster, except for what :func:`_orjson`
    declines: those documents go through the standard library as before."""
    if _fast_json:
        fast = _orjson_bytes(doc, pretty)
        if fast is not None:
            del doc  # the caller's temporary: freed before the text copy of the output is made
            return fast.decode("ascii")
    return _stdlib_dumps(doc, pretty)


def _stdlib_dumps(doc: dict[str, Any], pretty: bool) -> str:
    if pretty:
        return json.dumps(doc, indent=2, sort_keys=False, default=_stdlib_default) + "\n"
    return json.dumps(doc, separators=(",", ":"), sort_keys=False, default=_stdlib_default) + "\n"


def dumps_bytes(doc: dict[str, Any], pretty: bool = True) -> bytes:
    """:func:`dumps` as the ASCII bytes it encodes to, for writing straight to a
    binary stream: orjson's bytes are not decoded to a str that the stream then
    encodes again (2 x 35 MB at 10k services)."""
    if _fast_json:
        fast = _orjson_bytes(doc, pretty)
        if fast is not None:
            return fast
    return _stdlib_dumps(doc, pretty).encode("ascii")  # (json.dumps escapes every non-ASCII character)


try:
    import orjson
except ImportError:  # optional speed-up: the standard library writes the same bytes
    orjson = None

_fast_json = orjson is not None and os.environ.get("SVCINSPECT_NO_FAST", "") in ("", "0")
# Where orjson's spelling of a finite float differs from json.dumps: below 1e-4
# (0.00009999 vs 9.999e-05) or with an exponent (1e-6 vs 1e-06, 1e16 vs 1e+16).
# A match anywhere in the output (a string that merely looks like one, too) has
# every float of the document compared with its json.dumps spelling. (NaN and
# infinities, which orjson writes as null, cannot occur: every float in our
# documents is a rounded Fraction.)
# (A digit before an "e" is found as "0e" once every digit reads 0: two substring
# searches instead of a regex, which costs ~0.4 s on a 20 MB document.)
_DIGITS_TO_0 = bytes.maketrans(b"123456789", b"000000000")


_CHUNK = 1 << 20


def _orjson_may_differ(out: bytes) -> bool:
    """Whether ``out`` holds "0.0000" or a digit followed by "e" (then every
    float is compared); the compiled scanner's one pass where it is in use."""
    native = _native()
    if native is not None:
        return native.json_floats_may_differ(out)
    return _orjson_may_differ_py(out)


def _native():
    """The compiled scanner (``svcinspect.dataplane.iptables._scan``) when built
    and switched on, else None: its JSON helpers give the bytes the Python
    functions here give."""
    from svcinspect.dataplane.iptables import bulk
    return bulk._native if bulk.enabled() else None


def _orjson_may_differ_py(out: bytes) -> bool:
    if b"0.0000" in out:
        return True
    # Per 1 MiB (one byte of overlap): no second copy of a 40 MB document.
    return any(b"0e" in out[i:i + _CHUNK + 1].translate(_DIGITS_TO_0) for i in range(0, len(out), _CHUNK))


def _orjson(doc: dict[str, Any], pretty: bool) -> str | None:
    """``doc`` as json.dumps would write it (ASCII, \\uXXXX escapes), or None when
    orjson cannot promise the same bytes."""
    out = _orjson_bytes(doc, pretty)
    return None if out is None else out.decode("ascii")


def _orjson_bytes(doc: dict[str, Any], pretty: bool) -> bytes | None:
    """:func:`_orjson` as ASCII bytes."""
    try:
        # (the newline by orjson: ``+ "\n"`` on the str would copy a 60 MB document once more)
        out = orjson.dumps(doc, option=(orjson.OPT_INDENT_2 if pretty else 0) | orjson.OPT_PASSTHROUGH_DATACLASS
                           | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_SUBCLASS
                           | orjson.OPT_APPEND_NEWLINE,
                           # (a compact text inside an indented document: the dicts instead)
                           default=_stdlib_default if pretty else _orjson_default)
    except TypeError:  # (orjson.JSONEncodeError) objects json.dumps would refuse too, ints > 64 bits
        return None
    # json.dumps escapes non-ASCII and DEL (ensure_ascii); orjson writes UTF-8.
    if not out.isascii() or b"\x7f" in out:
        return None
    if _orjson_may_differ(out) and _floats_differ(doc):
        return None
    return out


def _floats_differ(value: Any) -> bool:
    """Whether ``value`` holds a float orjson spells unlike json.dumps (or one it
    writes as null)."""
    stack = [value]
    while stack:
        v = stack.pop()
        t = type(v)
        if t is float:
            if v != v or v in (float("inf"), float("-inf")) or orjson.dumps(v) != repr(v).encode():
                return True
        elif t is dict:
            stack.extend(v.values())
        elif t is list or t is tuple:
            stack.extend(v)
    return False


def diagnostic_json(d: Diagnostic) -> dict[str, Any]:
    return {"severity": str(d.severity), "source": d.source, "line": d.line, "message": d.message, "text": d.text.strip()}


def endpoint_json(e: EndpointShare) -> dict[str, Any]:
    share, fraction = _share_texts(e)
    return {"endpoint": e.endpoint, "share": share, "fraction": fraction,
            "probability": e.probability, "chain": e.sep, "line": e.line}


# (share_float, str) of the Fraction objects seen: a cascade of n endpoints shares
# one 1/n object, and Fraction's float and str are Python code (~100k calls).
_SHARES: dict[int, tuple[Any, float, str]] = {}


def _share_texts(e: EndpointShare) -> tuple[float | None, str | None]:
    s = e.share
    if s is None:  # an excerpt's endpoint whose cascade is not in the input
        return None, None
    hit = _SHARES.get(id(s))
    if hit is not None and hit[0] is s:
        return hit[1], hit[2]
    value, text = e.share_float, str(s)
    if len(_SHARES) < 4096:
        _SHARES[id(s)] = (s, value, text)  # holding s keeps its id from being reused
    return value, text


def _endpoints_json(endpoints) -> list[dict[str, Any]]:
    """``[endpoint_json(e) for e in endpoints]``, the share texts looked up once per
    run of endpoints with the same share (all of a uniform cascade's)."""
    out = []
    last: Any = out  # no share is this list
    share = fraction = None
    for e in endpoints:
        if e.share is not last:
            last = e.share
            share, fraction = _share_texts(e)
        out.append({"endpoint": e.endpoint, "share": share, "fraction": fraction,
                    "probability": e.probability, "chain": e.sep, "line": e.line})
    return out


def object_endpoint_json(e) -> dict[str, Any]:
    """An endpoint as the EndpointSlices describe it (an ``expected.ExpectedEndpoint``)."""
    c = e.conditions
    return {"endpoint": e.endpoint, "pod": e.pod, "node": e.node_name, "local": e.local, "zone": e.zone,
            "slice": e.slice, "conditions": {"ready": c.is_ready, "serving": c.is_serving,
                                             "terminating": c.is_terminating}}


def service_port_json(sp: ServicePortRules, objects=None, texts=None) -> dict[str, Any]:
    """``objects``: (chain hash, family) -> endpoints from the EndpointSlices; when
    given, endpoints carry pod, node and conditions, and ``objectEndpoints`` lists
    every endpoint of the slices with ``inRules``. ``texts``: see
    :func:`services_json` (``compact``)."""
    from svcinspect.model.service import EntryKind

    # One pass over the entries (what cluster_ip, node_port and entries_of(kind) read).
    cip = hc = None
    node_port: Any = _NO_ENTRY
    ext, lb, filt, nat = set(), set(), [], []
    for e in sp.entries:
        kind = e.kind
        if kind == EntryKind.CLUSTER_IP:
            if cip is None:
                cip = e
        elif kind == EntryKind.NODE_PORT:
            if node_port is _NO_ENTRY:
                node_port = e.port
        elif kind == EntryKind.EXTERNAL_IP:
            if e.address:
                ext.add(e.address)
        elif kind == EntryKind.LOAD_BALANCER:
            if e.address:
                lb.add(e.address)
        elif kind == EntryKind.HEALTH_CHECK:
            if hc is None:
                hc = e
        if e.table == "filter":
            filt.append({"verdict": e.verdict, "kind": e.kind, "address": e.address, "port": e.port, "line": e.line,
                         "comment": e.note})
        elif e.table == "nat":
            nat.append({"kind": e.kind, "address": e.address, "port": e.port, "chain": e.chain, "line": e.line,
                        "localhost": e.localhost})
    doc = {
        "name": sp.name,
        "key": sp.key,
        "family": f"IPv{int(sp.family)}",
        "protocol": sp.protocol,
        "clusterIP": cip.address if cip else None,
        "port": cip.port if cip else None,
        "nodePort": None if node_port is _NO_ENTRY else node_port,
        "externalIPs": sorted(ext),
        "loadBalancerIPs": sorted(lb),
        "loadBalancerSourceRanges": list(sp.source_ranges),
        "healthCheckNodePort": hc.port if hc else None,
        "endpoints": _endpoints_json(sp.endpoints) if texts is None else _endpoints_value(sp.endpoints, texts),
        "localEndpoints": None if sp.local_endpoints is None else (
            _endpoints_json(sp.local_endpoints) if texts is None else _endpoints_value(sp.local_endpoints, texts)),
        "affinity": None if sp.affinity_seconds is None else {"timeoutSeconds": sp.affinity_seconds},
        "filter": filt,
        "entries": nat,
        "chains": sp.chains,
        "warnings": list(sp.warnings),
        "endpointsComplete": sp.endpoints_complete,
        "unknown": list(sp.unknown),
    }
    if sp.dataplane != "iptables" or objects is not None:
        doc = doc | _dataplane_json(sp) | ({} if objects is None else _with_objects(sp, objects))
    return doc


_NO_ENTRY = object()  # no node-port entry: "nodePort" is null


def _dataplane_json(sp) -> dict[str, Any]:
    """``"dataplane"`` beside the facts that depend on it (chains, lines), for
    every mode but iptables (whose documents predate the key and stay as they were)."""
    return {} if sp.dataplane == "iptables" else {"dataplane": sp.dataplane}


def _with_objects(sp: ServicePortRules, objects) -> dict[str, Any]:
    known = {e.endpoint: e for e in objects.get((sp.key, sp.family), ())}
    in_rules = {e.endpoint for e in sp.endpoints + (sp.local_endpoints or ())}

    def enrich(e: EndpointShare) -> dict[str, Any]:
        info = known.get(e.endpoint)
        extra = object_endpoint_json(info) if info else {"pod": None, "node": None, "local": None, "zone": None,
                                                         "slice": None, "conditions": None}
        return endpoint_json(e) | {k: v for k, v in extra.items() if k != "endpoint"}

    return {"endpoints": [enrich(e) for e in sp.endpoints],
            "localEndpoints": None if sp.local_endpoints is None else [enrich(e) for e in sp.local_endpoints],
            "objectEndpoints": [object_endpoint_json(e) | {"inRules": e.endpoint in in_rules}
                                for e in known.values()]}


def services_json(ports: list[ServicePortRules], diagnostics: list[Diagnostic], objects=None,
                  input=None, compact: bool = False) -> dict[str, Any]:
    """``input``: the :class:`svcinspect.completeness.InputCompleteness` of the rules.

    ``compact``: the document is only for :func:`dumps` / :func:`dumps_bytes`
    with ``pretty=False``; then (fast paths on, compiled scanner built) each
    endpoints list may be an :class:`EndpointsText` holding its compact text."""
    texts = _endpoints_text() if compact and objects is None else None
    return document(**_input_field(input), services=[service_port_json(sp, objects, texts) for sp in ports],
                    diagnostics=[diagnostic_json(d) for d in diagnostics])


# --- endpoints written as compact JSON text (perf-services2) ------------------------

class EndpointsText:
    """A service port's endpoints list in a document made for compact output:
    ``text`` is exactly what ``json.dumps(_endpoints_json(endpoints),
    separators=(",", ":"))`` writes (the compiled ``endpoints_text``, which
    declines anything it cannot write so). orjson inserts the text as it is;
    the standard library encoder gets the dicts back from ``endpoints``."""

    __slots__ = ("text", "endpoints")

    def __init__(self, text: bytes, endpoints) -> None:
        self.text, self.endpoints = text, endpoints


def _endpoints_text():
    """The compiled ``endpoints_text`` when the fast paths and the scanner are on, else None."""
    if not _fast_json or not hasattr(orjson, "Fragment"):
        return None
    return getattr(_native(), "endpoints_text", None)


def _endpoints_value(endpoints, texts):
    if texts is not None and type(endpoints) is tuple:
        text = texts(endpoints, _share_texts)
        if text is not None:
            return EndpointsText(text, endpoints)
    return _endpoints_json(endpoints)


def _orjson_default(value):
    if type(value) is EndpointsText:
        return orjson.Fragment(value.text)
    raise TypeError  # (orjson: then the standard library encoder decides, and says what it cannot encode)


def _stdlib_default(value):
    if type(value) is EndpointsText:
        return _endpoints_json(value.endpoints)
    raise TypeError(f"Object of type {value.__class__.__name__} is not JSON serializable")  # (json's own words)


def _input_field(input) -> dict[str, Any]:
    if input is None:
        return {}
    from svcinspect.completeness import input_json
    return {"input": input_json(input)}


def packet_json(p) -> dict[str, Any]:
    return {"src": str(p.src), "dst": str(p.dst), "dport": p.dport, "proto": p.proto, "hook": p.hook.value}


def step_json(s) -> dict[str, Any]:
    return {"table": s.table, "chain": s.chain, "line": s.line, "rule": s.rule, "action": s.action}


def outcome_json(o) -> dict[str, Any]:
    return {
        "disposition": o.disposition.value,
        "endpoint": o.endpoint,
        "probability": round(float(o.probability), 10),
        "fraction": str(o.probability),
        "masquerade": o.masquerade,
        "final": {"src": o.snat_source if o.masquerade and o.snat_source else str(o.packet.src), "dst": str(o.packet.dst),
                  "dport": o.packet.dport},
        "steps": [step_json(s) for s in o.steps],
        "assumptions": list(o.assumptions),
    }


def simulation_json(sim, input=None) -> dict[str, Any]:
    return document(**_input_field(input), packet=packet_json(sim.packet),
                    outcomes=[outcome_json(o) for o in sim.outcomes], warnings=list(sim.warnings),
                    **({} if sim.dataplane == "iptables" else {"dataplane": sim.dataplane}))


def trace_json(tr) -> dict[str, Any]:
    from svcinspect.trace import endpoint_masquerade, summarize

    ports = []
    for pt in tr.ports:
        sp = pt.port
        entries = []
        for et in pt.entries:
            masq = endpoint_masquerade(et)
            source = sp.local_endpoints if (sp.local_endpoints and not sp.endpoints) else sp.endpoints
            entries.append({
                "kind": et.entry.kind, "address": et.entry.address, "port": et.entry.port,
                "verdict": et.entry.verdict,
                "path": [step_json(s) for s in et.path],
                "endpoints": [{"endpoint": e.endpoint, "share": e.share_float,
                               "fraction": None if e.share is None else str(e.share),
                               "masquerade": masq.get(e.endpoint)} for e in source],
                "scenarios": [{"client": sc.label, "packet": packet_json(sc.packet),
                               "outcomes": [{"disposition": d, "endpoint": None if ep == "-" else ep,
                                             "probability": round(float(p), 10), "fraction": str(p),
                                             "masquerade": m, "conditions": list(cond)}
                                            for cond, rows in summarize(sc) for d, ep, p, m in rows],
                               "assumptions": sorted({a for o in sc.outcomes for a in o.assumptions})}
                              for sc in et.scenarios],
                "notes": list(et.notes),
            })
        objects = None if pt.objects is None else [
            {"endpoint": e.endpoint, "pod": e.pod, "node": e.node_name, "local": e.local,
             "ready": e.conditions.is_ready, "serving": e.conditions.is_serving,
             "terminating": e.conditions.is_terminating,
             "inRules": e.endpoint in {x.endpoint for x in sp.endpoints + (sp.local_endpoints or ())}}
            for e in pt.objects]
        ports.append({"name": sp.name, "key": sp.key, "family": f"IPv{int(sp.family)}", "protocol": sp.protocol,
                      "objects": objects,
                      "chains": sp.chains, "affinity": None if sp.affinity_seconds is None else
                      {"timeoutSeconds": sp.affinity_seconds},
                      "endpoints": [endpoint_json(e) for e in sp.endpoints],
                      "localEndpoints": None if sp.local_endpoints is None else
                      [endpoint_json(e) for e in sp.local_endpoints],
                      "entries": entries, "notes": list(pt.notes), "warnings": list(sp.warnings),
                      "endpointsComplete": sp.endpoints_complete, "unknown": list(sp.unknown)}
                     | _dataplane_json(sp))
    return document(**_input_field(getattr(tr, "input", None)), service=tr.query, ports=ports,
                    warnings=list(tr.warnings))
