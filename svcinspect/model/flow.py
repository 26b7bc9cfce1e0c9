"""Packets, the steps they take through netfilter, and where they end up.

A simulation yields one :class:`Outcome` per distinct way the packet can go
(a probability branch per endpoint, or an alternative under an assumption), each
with its exact probability, the steps that led there and what was assumed.
"""

from __future__ import annotations

import enum
import ipaddress
from dataclasses import dataclass, field
from fractions import Fraction

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class Hook(enum.Enum):
    PREROUTING = "prerouting"   # from a pod (bridge/veth) or from outside the node
    OUTPUT = "output"           # from a process on the node or a hostNetwork pod


class Disposition(enum.Enum):
    DNAT = "dnat"        # rewritten to an endpoint and let through
    ACCEPT = "accept"    # explicitly accepted, not rewritten
    REJECT = "reject"
    DROP = "drop"
    NONE = "none"        # no rule decided anything: passes untouched (not a service)
    UNKNOWN = "unknown"  # an excerpt: the rules that decide are not in the input


@dataclass(frozen=True, slots=True)
class Packet:
    """The first packet of a connection (conntrack state NEW)."""

    src: IPAddress
    dst: IPAddress
    dport: int
    proto: str = "tcp"
    hook: Hook = Hook.PREROUTING
    sport: int = 40000
    mark: int = 0

    @property
    def family(self) -> int:
        return self.dst.version

    def endpoint(self) -> str:
        return f"[{self.dst}]:{self.dport}" if self.dst.version == 6 else f"{self.dst}:{self.dport}"

    def __str__(self) -> str:
        src = f"[{self.src}]" if self.src.version == 6 else str(self.src)
        return f"{self.proto} {src}:{self.sport} -> {self.endpoint()} ({self.hook.value})"


@dataclass(frozen=True, slots=True)
class Step:
    """One rule (or policy) that acted on the packet."""

    table: str
    chain: str
    line: int            # 0 for a chain policy or an assumed (synthesised) hook rule
    rule: str            # the rule's text as read, or a description
    action: str          # "jump KUBE-SVC-X", "DNAT 10.96.0.1:80 -> 10.244.1.5:8080", ...
    source: str = ""


@dataclass(frozen=True)
class Outcome:
    disposition: Disposition
    probability: Fraction
    packet: Packet                   # as it leaves (after DNAT / masquerade)
    endpoint: str | None             # the DNAT destination, if any
    masquerade: bool
    steps: tuple[Step, ...]
    assumptions: tuple[str, ...] = ()
    verdict_step: Step | None = None  # the rule that decided (REJECT/DROP/ACCEPT/DNAT)
    snat_source: str | None = None    # what MASQUERADE/SNAT rewrites the source to


@dataclass(frozen=True)
class Simulation:
    packet: Packet
    outcomes: tuple[Outcome, ...]
    warnings: tuple[str, ...] = field(default=())
    dataplane: str = "iptables"      # which kind of rules was simulated (svcinspect.dataplane)
