"""What both dataplanes' packet evaluators share.

A packet's alternative ``World`` (its header, mark, probability and path as it
goes), the node ``Environment`` the rules do not state, and the folding of
alternatives whose difference does not change the result. The iptables
evaluator (:mod:`svcinspect.dataplane.iptables.evaluate`) and the nftables one
(:mod:`svcinspect.dataplane.nftables.evaluate`) walk their own rules over these.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from svcinspect.model.flow import Disposition, IPAddress, Packet, Step

NOT_IN_INPUT = "not in the input: "
UNKNOWN_VERDICT = "UNKNOWN"      # an excerpt: the packet went where the input does not show


class World:
    """One way the packet can be going: its header, mark, probability, history."""

    __slots__ = ("src", "dst", "dport", "proto", "mark", "prob", "steps", "assumptions", "facts", "said",
                 "dnat", "masq", "snat", "decided", "verdict_step")

    def __init__(self, p: Packet):
        self.src, self.dst, self.dport, self.proto, self.mark = p.src, p.dst, p.dport, p.proto, p.mark
        self.prob = Fraction(1)
        self.steps: list[Step] = []
        self.assumptions: list[str] = []
        self.facts: dict[str, bool] = {}
        self.said: dict[str, str] = {}  # fact key -> the assumption text it added
        self.dnat: str | None = None
        self.masq = False
        self.snat: str | None = None
        self.decided = False
        self.verdict_step: Step | None = None

    def fork(self) -> World:
        w = type(self).__new__(type(self))  # a dataplane's subclass forks as itself
        w.src, w.dst, w.dport, w.proto, w.mark = self.src, self.dst, self.dport, self.proto, self.mark
        w.prob, w.steps, w.assumptions, w.facts = self.prob, list(self.steps), list(self.assumptions), dict(self.facts)
        w.said = dict(self.said)
        w.dnat, w.masq, w.snat, w.decided, w.verdict_step = self.dnat, self.masq, self.snat, self.decided, self.verdict_step
        return w


@dataclass(frozen=True, slots=True)
class Environment:
    """What the dump does not say: the node's addresses (``None``: unknown)."""

    node_ips: frozenset[IPAddress] | None = None
    cluster_cidrs: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()


def disposition(w: World, verdict: str) -> Disposition:
    if verdict == UNKNOWN_VERDICT:
        return Disposition.UNKNOWN
    if verdict == "DROP":
        return Disposition.DROP
    if verdict == "REJECT":
        return Disposition.REJECT
    if w.dnat is not None:
        return Disposition.DNAT
    if w.decided:
        return Disposition.ACCEPT
    if any(a.startswith(NOT_IN_INPUT) for a in w.assumptions):
        return Disposition.UNKNOWN
    return Disposition.NONE


def result_key_of(w: World, verdict: str) -> tuple:
    """What a user sees of an outcome (the path aside)."""
    return (disposition(w, verdict), w.dnat, w.masq, w.snat, w.src, w.dst, w.dport, w.prob)


def merge_irrelevant(done: list[tuple[Any, str]], limit: int = 256, result_key=None) -> list[tuple[Any, str]]:
    """Fold alternatives that differ in one assumption but end the same way: the
    assumption does not matter for the result, so it is not listed as a condition
    (a note says the path, not the result, depends on it).
    ``result_key(world, verdict)``: what a user sees of an outcome; each dataplane's
    evaluator passes its own (its worlds have ``facts``, ``said`` and ``assumptions``)."""
    key_of = result_key_of if result_key is None else result_key
    items = list(done)
    if len(items) > limit:
        return items
    merged = True
    while merged:
        merged = False
        for i in range(len(items)):
            a, va = items[i]
            for j in range(i + 1, len(items)):
                b, vb = items[j]
                if key_of(a, va) != key_of(b, vb) or a.facts.keys() != b.facts.keys():
                    continue
                diff = [k for k in a.facts if a.facts[k] != b.facts[k]]
                if len(diff) != 1:
                    continue
                key = diff[0]
                text = a.said[key]
                a.assumptions = [x for x in a.assumptions if x != text]
                del a.facts[key]
                condition = text.split(": ", 1)[1] if text.startswith("if not: ") else text[3:]
                a.assumptions.append(f"the rules taken depend on whether {condition}; the result does not")
                del a.said[key]
                items.pop(j)
                merged = True
                break
            if merged:
                break
    return items
