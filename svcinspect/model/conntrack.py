"""Connection-tracking entries (what ``conntrack -L`` lists), as frozen records."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Tuple5:
    """One direction of a flow; ports are None for protocols without them (icmp)."""

    src: str
    dst: str
    sport: int | None
    dport: int | None


@dataclass(frozen=True, slots=True)
class ConntrackEntry:
    protocol: str            # "tcp", "udp", "sctp", "icmp", ...
    state: str | None        # TCP/SCTP state ("ESTABLISHED", "TIME_WAIT"...); None for udp/icmp
    original: Tuple5
    reply: Tuple5
    flags: tuple[str, ...]   # "ASSURED", "UNREPLIED", ...
    timeout: int | None
    source: str = ""
    line: int = 0
    zone: str | None = None
    mark: str | None = None

    @property
    def dnat(self) -> bool:
        """The reply does not come from where the client sent it: destination NAT."""
        return (self.reply.src, self.reply.sport) != (self.original.dst, self.original.dport)

    @property
    def open(self) -> bool:
        """A connection open now: TCP/SCTP ESTABLISHED; any UDP flow (no states)."""
        if self.protocol in ("tcp", "sctp", "dccp"):
            return self.state == "ESTABLISHED"
        return True
