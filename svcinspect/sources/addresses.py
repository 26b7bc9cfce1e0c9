"""This node's own addresses, from ``ip -j address show`` (in a network namespace
with ``--netns``): what ``-m addrtype --dst-type LOCAL`` matches when a trace
reads the live node."""

from __future__ import annotations

import ipaddress
import json

from svcinspect.sources.command import Runner, run_commands
from svcinspect.sources.netns import nsenter_argv, resolve_netns


def parse_ip_addresses(text: str) -> frozenset:
    """Global and site addresses from ``ip -j address show`` output (loopback
    and link-local ones are left out: the evaluator treats loopback itself).

    >>> sorted(map(str, parse_ip_addresses('[{"ifname": "eth0", "addr_info": '
    ...     '[{"local": "192.168.10.11", "scope": "global"}, {"local": "fe80::1", "scope": "link"}]}]')))
    ['192.168.10.11']
    """
    out = set()
    for link in json.loads(text or "[]"):
        for a in link.get("addr_info", ()):
            if a.get("scope") not in (None, "global", "site"):
                continue
            try:
                ip = ipaddress.ip_address(a.get("local", ""))
            except ValueError:
                continue
            if not ip.is_loopback and not ip.is_link_local:
                out.add(ip)
    return frozenset(out)


def read_node_addresses(netns: str | None = None, runner: Runner = run_commands) -> frozenset | None:
    """The addresses of the node (or of network namespace ``netns``); None when
    they cannot be read (no ``ip`` binary, unexpected output): then locality stays
    an explicit assumption in the trace rather than a guess."""
    ref = resolve_netns(netns) if netns else None
    (res,) = runner([nsenter_argv(ref, ["ip", "-j", "address", "show"])])
    if res.returncode != 0:
        return None
    try:
        found = parse_ip_addresses(res.stdout)
    except (ValueError, AttributeError, TypeError):
        return None
    return found or None
