"""``conntrack -L`` text (conntrack-tools) -> :class:`ConntrackEntry` records.

Accepts what conntrack-tools prints, one flow a line, and the
``/proc/net/nf_conntrack`` / ``conntrack -L -o extended`` form that starts with
the layer-3 family::

    tcp      6 431999 ESTABLISHED src=10.250.0.2 dst=10.96.10.10 sport=40000 dport=80 \
src=10.244.1.10 dst=10.250.0.2 sport=8080 dport=40000 [ASSURED] mark=0 use=1
    ipv4     2 udp      17 29 src=... dst=... sport=... dport=... [UNREPLIED] src=... ...

The first ``src= dst= sport= dport=`` group is the original direction, the
second the reply direction: a DNATed flow replies from the endpoint, so the reply
source is where kube-proxy sent it. The summary line conntrack prints
(``conntrack v1.4.7 (conntrack-tools): N flow entries have been shown.``) and
blank lines are skipped; anything else that is not a flow is a diagnostic with
its line number, never a crash.

>>> entries, diags = parse_conntrack(
...     "tcp      6 431999 ESTABLISHED src=10.250.0.2 dst=10.96.10.10 sport=40000 dport=80 "
...     "src=10.244.1.10 dst=10.250.0.2 sport=8080 dport=40000 [ASSURED] mark=0 use=1\\n")
>>> e = entries[0]
>>> (e.protocol, e.state, e.original.dst, e.original.dport, e.reply.src, e.reply.sport, e.dnat)
('tcp', 'ESTABLISHED', '10.96.10.10', 80, '10.244.1.10', 8080, True)
"""

from __future__ import annotations

import ipaddress

from svcinspect.errors import Diagnostic, ParseError, Severity
from svcinspect.model.conntrack import ConntrackEntry, Tuple5

_FAMILIES = {"ipv4", "ipv6"}
_PORTS = ("sport", "dport")


def parse_conntrack(text: str, source: str = "<conntrack>", strict: bool = False
                    ) -> tuple[list[ConntrackEntry], list[Diagnostic]]:
    """Every flow of a listing, plus diagnostics for lines that are not flows.

    ``strict``: the first such line raises :class:`ParseError` instead.
    A text with lines but not one flow, whose lines all fail, is refused
    (it is not a conntrack listing) unless it is empty.
    """
    entries: list[ConntrackEntry] = []
    diags: list[Diagnostic] = []
    bad = 0
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("conntrack v") or stripped.startswith("#"):
            continue
        try:
            entries.append(_parse_line(stripped, source, number))
        except ValueError as exc:
            if strict:
                raise ParseError(f"not a conntrack entry ({exc})", source, number) from None
            bad += 1
            diags.append(Diagnostic(Severity.WARNING, f"not a conntrack entry ({exc}); skipped", source, number,
                                    line))
    if bad and not entries:
        first = diags[0]
        raise ParseError(f"not a `conntrack -L` listing: {first.message}", source, first.line)
    return entries, diags


def _parse_line(line: str, source: str, number: int) -> ConntrackEntry:
    tokens = line.split()
    i = 0
    if tokens[0] in _FAMILIES:
        i = 2  # "ipv4 2"
    if len(tokens) < i + 3:
        raise ValueError("too short")
    protocol = tokens[i]
    if not tokens[i + 1].isdigit():
        raise ValueError(f"no protocol number after {protocol!r}")
    i += 2
    timeout = None
    if i < len(tokens) and tokens[i].isdigit():
        timeout = int(tokens[i])
        i += 1
    state = None
    if i < len(tokens) and "=" not in tokens[i] and not tokens[i].startswith("["):
        state = tokens[i]
        i += 1
    groups: list[dict[str, str]] = []
    flags: list[str] = []
    extra: dict[str, str] = {}
    for tok in tokens[i:]:
        if tok.startswith("[") and tok.endswith("]"):
            flags.append(tok[1:-1])
            continue
        key, eq, value = tok.partition("=")
        if not eq:
            raise ValueError(f"unexpected token {tok!r}")
        if key == "src":
            groups.append({})
        if key in ("src", "dst", "sport", "dport", "type", "code", "id") and groups and len(groups) <= 2 \
                and key not in groups[-1]:
            groups[-1][key] = value
        else:
            extra[key] = value
    if len(groups) < 2:
        raise ValueError("no original and reply src=/dst= groups")
    orig, reply = (_tuple(g) for g in groups[:2])
    return ConntrackEntry(protocol.lower(), state, orig, reply, tuple(flags), timeout, source, number,
                          extra.get("zone"), extra.get("mark"))


def _tuple(g: dict[str, str]) -> Tuple5:
    if "src" not in g or "dst" not in g:
        raise ValueError("a direction without src= or dst=")
    for key in ("src", "dst"):
        try:
            ipaddress.ip_address(g[key])
        except ValueError:
            raise ValueError(f"{key}={g[key]} is not an address") from None
    ports = []
    for key in _PORTS:
        v = g.get(key)
        if v is not None and not v.isdigit():
            raise ValueError(f"{key}={v} is not a port")
        ports.append(int(v) if v is not None else None)
    return Tuple5(g["src"], g["dst"], ports[0], ports[1])
