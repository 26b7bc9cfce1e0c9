"""Finding the Service a user means, the way kubectl users name things.

``resolve_service(ruleset, arg, namespace, all_namespaces)`` turns what was typed
into a query ``select_service_ports`` understands:

- ``ns/name[:port]`` and chain names or hashes: as they are;
- ``svc/NAME``, ``service/NAME``, ``services/NAME``: NAME (kubectl's TYPE/NAME);
- a bare ``NAME``: in ``-n NS`` when given; otherwise ``default/NAME`` when it
  exists, else the one namespace that has a Service NAME (two or more: an error
  listing them; none: an error with the closest names of every namespace);
- a cluster, external or load-balancer IP, with or without ``:port``
  (``10.96.10.10:80``, ``[fd00::10]:80``), found in nat KUBE-SERVICES;
- a node port number (``31611``), found in nat KUBE-NODEPORTS.

Read from the raw dispatch rules only (no decoding), so it stays fast on a large
dump, and it works on an index read by bisection as on a full parse.
"""

from __future__ import annotations

import difflib
import ipaddress
import re

from svcinspect.errors import InputError, UnknownServiceError
from svcinspect.dataplane.iptables.kubeproxy import chain_hash, parse_comment
from svcinspect.model.netfilter import Ruleset
from svcinspect.dataplane.iptables.parse import raw_comment, raw_target

_TYPE_PREFIXES = ("svc/", "service/", "services/")
_HASH = re.compile(r"(?:KUBE-(?:SVC|SVL|EXT|FW|XLB)-)?[A-Z2-7]{16}")
_DST = re.compile(r"(?:^|\s)-d (\S+?)(?:/(?:32|128))?(?:\s|$)")
_DPORT = re.compile(r"--dport (\d+)(?:\s|$)")


def resolve_service(ruleset: Ruleset, arg: str, namespace: str | None = None,
                    all_namespaces: bool = False) -> str:
    """The query for ``arg`` (see the module docstring). Raises
    UnknownServiceError (exit 2) with suggestions when nothing matches, and
    InputError when a bare name is in several namespaces."""
    q = arg.strip()
    for prefix in _TYPE_PREFIXES:
        if q.startswith(prefix):
            q = q[len(prefix):]
            break
    if _HASH.fullmatch(q):
        return q
    address = _as_address(q)
    if address is not None:
        return _by_address(ruleset, *address)
    if q.isdigit():
        return _by_node_port(ruleset, int(q))
    if "/" in q:
        return q
    name, sep, port = q.partition(":")
    if namespace and not all_namespaces:
        return f"{namespace}/{q}"
    names = service_names(ruleset)
    if not all_namespaces and f"default/{name}" in names:
        return f"default/{q}"
    found = sorted(n for n in names if n.split("/", 1)[1] == name)
    if len(found) == 1:
        return found[0] + sep + port
    if len(found) > 1:
        raise InputError(f"service {name!r} is in {len(found)} namespaces ({', '.join(found)}): "
                         f"give NAMESPACE/{name} or -n NAMESPACE")
    close = difflib.get_close_matches(name, sorted({n.split("/", 1)[1] for n in names}), n=5, cutoff=0.5)
    hits = [n for n in sorted(names) if n.split("/", 1)[1] in close]
    where = "any namespace" if all_namespaces or not namespace else namespace
    raise UnknownServiceError(f"no service {name!r} in {where} of the rules"
                              + (f"; closest: {', '.join(hits[:8])}" if hits else ""))


def service_names(ruleset: Ruleset) -> set[str]:
    """Every ``namespace/name`` the dispatch rules' comments name (ports stripped)."""
    out: set[str] = set()
    for spn in service_port_names(ruleset):
        out.add(spn.split(":", 1)[0])
    return out


def service_port_names(ruleset: Ruleset) -> set[str]:
    """Every service port name (``ns/name[:port]``) in nat KUBE-SERVICES and KUBE-NODEPORTS comments."""
    out: set[str] = set()
    for table in ruleset.tables:
        if table.name != "nat":
            continue
        for chain in ("KUBE-SERVICES", "KUBE-NODEPORTS"):
            for _, text in table.raw_rules(chain) or ():
                info = parse_comment(raw_comment(text)) if "--comment" in text else None
                if info is not None and info.spn and "/" in info.spn:
                    out.add(info.spn)
    return out


def _as_address(q: str):
    """(ip, port or None) for ``1.2.3.4``, ``1.2.3.4:80``, ``fd00::1``, ``[fd00::1]:80``; else None."""
    host, port = q, None
    if q.startswith("["):
        host, _, rest = q[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else None
    elif q.count(":") == 1:
        host, port = q.split(":")
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return None
    if port is not None and not port.isdigit():
        raise InputError(f"{q!r}: the port after the address must be a number")
    return ip, int(port) if port else None


def _by_address(ruleset: Ruleset, ip, port: int | None) -> str:
    hits: dict[str, set[int]] = {}
    for table in ruleset.tables:
        if table.name != "nat" or int(table.family) != ip.version:
            continue
        for _, text in table.raw_rules("KUBE-SERVICES") or ():
            m = _DST.search(text)
            if m is None or m.group(1) != str(ip):
                continue
            p = _DPORT.search(text)
            if port is not None and (p is None or int(p.group(1)) != port):
                continue
            key = _name_or_hash(text)
            if key:
                hits.setdefault(key, set()).add(int(p.group(1)) if p else 0)
    return _one(hits, f"{ip}" + (f":{port}" if port else ""), "address", port)


def _by_node_port(ruleset: Ruleset, port: int) -> str:
    hits: dict[str, set[int]] = {}
    for table in ruleset.tables:
        if table.name != "nat":
            continue
        for _, text in table.raw_rules("KUBE-NODEPORTS") or ():
            p = _DPORT.search(text)
            if p is None or int(p.group(1)) != port:
                continue
            key = _name_or_hash(text)
            if key:
                hits.setdefault(key, set()).add(port)
    return _one(hits, str(port), "node port", port)


def _name_or_hash(text: str) -> str | None:
    info = parse_comment(raw_comment(text)) if "--comment" in text else None
    if info is not None and info.spn:
        return info.spn
    target = raw_target(text)
    return chain_hash(target[0]) if target else None


def _one(hits: dict[str, set[int]], what: str, kind: str, port: int | None) -> str:
    if not hits:
        raise UnknownServiceError(f"no service has the {kind} {what} in the rules")
    if len(hits) == 1:
        (key,) = hits
        return key
    bases = {k.split(":", 1)[0] for k in hits}
    if len(bases) == 1:  # one Service, several ports: all of them (or the one port asked for)
        (base,) = bases
        return base
    raise InputError(f"several services have the {kind} {what}: {', '.join(sorted(hits))}")
