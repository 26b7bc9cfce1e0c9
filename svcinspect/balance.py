"""Does a service port's traffic really split as kube-proxy's rules say?

Three pieces of evidence per endpoint, side by side:

- the **expected share** of new connections: the exact share of the random
  cascade (:mod:`svcinspect.dataplane.iptables.services`);
- the **new connections counted**: the packet counter of the endpoint chain's
  DNAT rule (``iptables-save -c``). Only the first packet of a connection
  traverses the nat table, so the counter is the number of connections that
  rule rewrote since the chain was last written (kube-proxy rewrites a service's
  chains when its endpoints change, which resets them together);
- the **connections open now**: conntrack entries whose original destination is
  one of the service port's entry points and whose reply comes from the
  endpoint (TCP/SCTP ``ESTABLISHED``; any UDP flow).

A chi-square goodness-of-fit test compares each count with the expected shares.
The verdict separates kube-proxy's doing from the clients':

- ``consistent``: both fit kube-proxy's random split;
- ``new-connections-skewed``: the rules did not split new connections as their
  probabilities say (hand-edited or stale rules, session affinity, a second
  writer of the nat table);
- ``open-connections-skewed``: new connections split as expected but the open
  ones do not: long-lived connections (HTTP keep-alive, gRPC, pools) pile up on
  some endpoints; a client or L7 matter, not kube-proxy;
- ``not-enough-data``: fewer connections than the test needs (every endpoint
  must expect at least :data:`MIN_EXPECTED` of them, Cochran's rule);
- ``unknown``: the input has no evidence (a dump without ``-c`` counters and no
  conntrack listing), or the expected split is not one distribution (see the
  reason).

kube-proxy's nftables mode writes no ``counter`` statements, so there the new
connections are unknown (never 0) and conntrack is the only evidence: the
expected shares come from the ``numgen random mod N`` vmaps, and the test runs
on the open connections alone. A skew of open connections without counted new
connections says the open ones do not fit the rules' shares, not why (rules or
long-lived connections cannot be told apart without the new-connection counts).

Pure: ``value -> value``; reading counters and conntrack is the caller's job.
"""

from __future__ import annotations

import enum
import ipaddress
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction

from svcinspect.model.conntrack import ConntrackEntry
from svcinspect.model.netfilter import Family, Ruleset
from svcinspect.model.service import EndpointShare, EntryKind, ServicePortRules

#: Significance level of the tests: a p-value below it rejects "random split".
#: Small on purpose: an exporter tests every service port every 30 s, and a
#: false "skewed" should be rare (1 in 1000 evenly split service ports).
ALPHA = 0.001
#: Cochran's rule for the chi-square approximation: every expected count >= 5.
MIN_EXPECTED = 5


class Verdict(str, enum.Enum):
    CONSISTENT = "consistent"
    NEW_SKEWED = "new-connections-skewed"
    OPEN_SKEWED = "open-connections-skewed"
    NOT_ENOUGH_DATA = "not-enough-data"
    UNKNOWN = "unknown"
    NO_ENDPOINTS = "no-endpoints"

    def __str__(self) -> str:
        return self.value


# --- the chi-square distribution -------------------------------------------------

def regularized_gamma_q(a: float, x: float) -> float:
    """Q(a, x) = Γ(a, x) / Γ(a), the upper regularized incomplete gamma function.

    Series for x < a + 1, Lentz's continued fraction otherwise (Numerical
    Recipes §6.2); relative error below 1e-14.

    >>> round(regularized_gamma_q(1.0, 2.0), 12) == round(math.exp(-2.0), 12)
    True
    """
    if a <= 0:
        raise ValueError("a must be > 0")
    if x <= 0:
        return 1.0
    log_prefactor = -x + a * math.log(x) - math.lgamma(a)
    if x < a + 1:
        term = total = 1.0 / a
        ap = a
        for _ in range(10000):
            ap += 1
            term *= x / ap
            total += term
            if abs(term) < abs(total) * 1e-16:
                break
        return max(0.0, 1.0 - total * math.exp(log_prefactor))
    tiny = 1e-300
    b = x + 1 - a
    c = 1 / tiny
    d = 1 / b
    h = d
    for i in range(1, 10000):
        an = -i * (i - a)
        b += 2
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1 / d
        delta = d * c
        h *= delta
        if abs(delta - 1) < 1e-16:
            break
    return min(1.0, math.exp(log_prefactor) * h)


def chi2_sf(statistic: float, df: int) -> float:
    """P(X >= statistic) for X chi-square with ``df`` degrees of freedom.

    >>> round(chi2_sf(3.841458820694124, 1), 6)
    0.05
    >>> round(chi2_sf(2 * math.log(100), 2), 12)   # df=2: exactly exp(-x/2)
    0.01
    """
    if df <= 0:
        raise ValueError("df must be >= 1")
    return regularized_gamma_q(df / 2, statistic / 2)


@dataclass(frozen=True, slots=True)
class ChiSquare:
    statistic: float
    df: int
    p_value: float
    total: int
    minimum: int          # the total the test needs (MIN_EXPECTED per endpoint)

    @property
    def enough(self) -> bool:
        return self.total >= self.minimum

    @property
    def rejects(self) -> bool:
        return self.enough and self.p_value < ALPHA


def chi_square_test(observed: Sequence[int], shares: Sequence[Fraction]) -> ChiSquare:
    """Goodness of fit of ``observed`` counts to the expected ``shares``.

    Cells with a zero share take no part in the statistic; any count there
    is impossible under the shares, so the p-value is 0.

    >>> t = chi_square_test([50, 50], [Fraction(1, 2), Fraction(1, 2)])
    >>> (t.statistic, t.df, t.p_value, t.minimum)
    (0.0, 1, 1.0, 10)
    """
    total = sum(observed)
    live = [(o, s) for o, s in zip(observed, shares) if s > 0]
    smallest = min((s for _, s in live), default=Fraction(1))
    minimum = math.ceil(MIN_EXPECTED / smallest)
    df = len(live) - 1
    if any(o > 0 for o, s in zip(observed, shares) if s <= 0):
        return ChiSquare(math.inf, max(df, 1), 0.0, total, minimum)
    if total == 0 or df < 1:
        return ChiSquare(0.0, max(df, 1), 1.0, total, minimum)
    stat = 0.0
    for o, s in live:
        e = total * float(s)
        stat += (o - e) ** 2 / e
    return ChiSquare(stat, df, chi2_sf(stat, df), total, minimum)


# --- evidence ----------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class EndpointBalance:
    endpoint: str | None           # "10.244.1.5:8080"
    sep: str
    expected_share: Fraction
    new_connections: int | None    # None: the rules carry no counters
    open_connections: int | None   # None: no conntrack listing
    line: int                      # the DNAT rule (or the branch) the counter came from

    @staticmethod
    def share(count: int | None, total: int | None) -> float | None:
        if count is None or not total:
            return None
        return count / total


@dataclass(frozen=True)
class PortBalance:
    name: str                      # "ns/name:port"
    key: str
    family: Family
    protocol: str | None
    policy: str                    # "cluster" (KUBE-SVC) or "local" (KUBE-SVL)
    affinity_seconds: int | None
    endpoints: tuple[EndpointBalance, ...]
    new_test: ChiSquare | None
    open_test: ChiSquare | None
    open_elsewhere: int | None     # open connections to this port answered by no endpoint of the rules
    verdict: Verdict
    reason: str
    dataplane: str = "iptables"    # "nftables": the rules carry no counters, new connections are unknown

    @property
    def new_total(self) -> int | None:
        counts = [e.new_connections for e in self.endpoints]
        return None if not counts or any(c is None for c in counts) else sum(counts)

    @property
    def open_total(self) -> int | None:
        counts = [e.open_connections for e in self.endpoints]
        return None if not counts or any(c is None for c in counts) else sum(counts)

    @property
    def skew_ratio(self) -> float | None:
        """The largest observed/expected share of new connections (1 = exact; None
        without enough counted connections)."""
        total = self.new_total
        if not total or self.new_test is None or not self.new_test.enough:
            return None
        return max((e.new_connections / total) / float(e.expected_share)
                   for e in self.endpoints if e.expected_share > 0)


def dnat_packets(ruleset: Ruleset, family: Family, sep: str) -> tuple[int | None, int]:
    """(packets of the endpoint chain's DNAT rule, its line); None when the rule
    has no counters (a dump without ``-c``, or nftables mode, whose rules carry
    none) or the chain is missing."""
    if getattr(ruleset, "dataplane", "iptables") != "iptables":
        return None, 0
    nat = ruleset.table("nat", family)
    if nat is None:
        return None, 0
    raw = nat.raw_rules(sep) or ()
    for i, (line, text) in enumerate(raw):
        if " -j DNAT " in text:
            if text.startswith("["):
                end = text.find("]")
                packets, _, _ = text[1:end].partition(":")
                if packets.isdigit():
                    return int(packets), line
            if " -c " not in text and "--set-counters" not in text:
                return None, line  # iptables-save without -c: no counters (not zero)
            counters = nat.chains[sep].rules[i].counters
            return (counters.packets if counters is not None else None), line
    return None, 0


def split_endpoint(text: str | None) -> tuple[str, int] | None:
    """``10.0.0.1:80`` / ``[fd00::1]:80`` -> (normalized address, port)."""
    if not text:
        return None
    host, _, port = text.rpartition(":")
    host = host.strip("[]")
    try:
        return str(ipaddress.ip_address(host)), int(port)
    except ValueError:
        return None


def _canonical(address: str) -> str:
    """IPv4 text as conntrack prints it is canonical already; IPv6 is normalised."""
    return str(ipaddress.ip_address(address)) if ":" in address else address


def _entry_matcher(sp: ServicePortRules):
    """A predicate: does a flow's original (dst, dport) reach this service port?"""
    addrs: set[tuple[str, int]] = set()
    node_ports: set[int] = set()
    for e in sp.entries:
        if e.table != "nat" or e.port is None:
            continue
        if e.kind == EntryKind.NODE_PORT:
            node_ports.add(e.port)
        elif e.address is not None and "/" not in e.address:
            addrs.add((_canonical(e.address), e.port))

    def match(dst: str, dport: int | None) -> bool:
        return dport is not None and ((dst, dport) in addrs or dport in node_ports)

    return match


def open_by_endpoint(sp: ServicePortRules, flows: Iterable[ConntrackEntry]) -> tuple[dict[tuple[str, int], int], int]:
    """Open connections to ``sp``'s entry points per replying endpoint, and those
    answered by an address that is no endpoint of the rules."""
    match = _entry_matcher(sp)
    proto = sp.protocol or "tcp"
    known = {split_endpoint(e.endpoint) for e in _cascade(sp)[1]}
    counts: dict[tuple[str, int], int] = {}
    elsewhere = 0
    want_v6 = sp.family is Family.V6
    for f in flows:
        if f.protocol != proto or not f.open or not f.dnat:
            continue
        if (":" in f.original.dst) != want_v6:
            continue
        if not match(_canonical(f.original.dst), f.original.dport):
            continue
        ep = (_canonical(f.reply.src), f.reply.sport)
        if ep in known:
            counts[ep] = counts.get(ep, 0) + 1
        else:
            elsewhere += 1
    return counts, elsewhere


def _cascade(sp: ServicePortRules) -> tuple[str, tuple[EndpointShare, ...], str | None]:
    """(policy, endpoints, why the split is not one distribution or None)."""
    if sp.endpoints:
        if sp.local_endpoints and {e.sep for e in sp.local_endpoints} != {e.sep for e in sp.endpoints}:
            return ("cluster", sp.endpoints,
                    "the cluster and local cascades differ (externalTrafficPolicy: Local): the counters mix "
                    "internal traffic (all endpoints) and external traffic (local endpoints only) in proportions "
                    "the rules do not say")
        return "cluster", sp.endpoints, None
    if sp.local_endpoints:
        return "local", sp.local_endpoints, None
    return "cluster", (), None


def balance_port(ruleset: Ruleset, sp: ServicePortRules, flows: Sequence[ConntrackEntry] | None) -> PortBalance:
    """The balance of one service port: ``flows`` None when no conntrack listing was read."""
    policy, cascade, mixed = _cascade(sp)
    name = sp.display_name
    dataplane = getattr(ruleset, "dataplane", "iptables")
    if not cascade:
        return PortBalance(name, sp.key, sp.family, sp.protocol, policy, sp.affinity_seconds, (), None, None,
                           None, Verdict.NO_ENDPOINTS, "the rules have no endpoints for this service port",
                           dataplane)
    opened, elsewhere = open_by_endpoint(sp, flows) if flows is not None else ({}, None)
    rows = []
    for e in cascade:
        packets, line = dnat_packets(ruleset, sp.family, e.sep)
        open_n = None
        if flows is not None:
            ep = split_endpoint(e.endpoint)
            open_n = opened.get(ep, 0) if ep else 0
        rows.append(EndpointBalance(e.endpoint, e.sep, e.share, packets, open_n, line or e.line))
    shares = [r.expected_share for r in rows]
    new_test = None if any(r.new_connections is None for r in rows) else \
        chi_square_test([r.new_connections for r in rows], shares)
    open_test = None if flows is None else chi_square_test([r.open_connections for r in rows], shares)
    if len([s for s in shares if s > 0]) == 1 and not mixed:
        verdict, reason = Verdict.CONSISTENT, "one endpoint: every connection goes to it, there is nothing to split"
    else:
        verdict, reason = _verdict(new_test, open_test, sp.affinity_seconds, mixed, _no_counters(dataplane))
    return PortBalance(name, sp.key, sp.family, sp.protocol, policy, sp.affinity_seconds, tuple(rows), new_test,
                       open_test, elsewhere, verdict, reason, dataplane)


def _no_counters(dataplane: str) -> str:
    """Why the new connections are unknown, in the words of the reason."""
    if dataplane == "nftables":
        return "nftables mode has no rule counters"
    return "the rules have no counters (read them with iptables-save -c)"


def _p(t: ChiSquare) -> str:
    return f"chi-square {t.statistic:.2f}, df {t.df}, p = {t.p_value:.3g}"


def _verdict(new: ChiSquare | None, opened: ChiSquare | None, affinity: int | None,
             mixed: str | None, no_counters: str = _no_counters("iptables")) -> tuple[Verdict, str]:
    if mixed:
        return Verdict.UNKNOWN, mixed
    if new is None and opened is None:
        return Verdict.UNKNOWN, (f"new connections: unknown, {no_counters}; open connections: unknown, because no "
                                 "conntrack listing was given")
    notes = []
    if affinity is not None:
        notes.append(f"session affinity ({affinity} s): a client's later connections follow its first one, so "
                     "only first connections split at random")
    if new is not None and new.enough and new.rejects:
        why = "new connections do not split as the rules' probabilities say (" + _p(new) + \
              f" < {ALPHA}): session affinity, hand-edited or stale rules, or another writer of the nat table"
        return Verdict.NEW_SKEWED, "; ".join([why, *notes])
    if opened is not None and opened.rejects:
        if new is None:  # conntrack alone: the open connections are off the shares, the cause is not in the input
            return Verdict.OPEN_SKEWED, "; ".join([
                f"new connections: unknown, {no_counters}; the connections open now do not split as the rules' "
                "shares say (" + _p(opened) + f" < {ALPHA}): long-lived connections (HTTP keep-alive, gRPC, "
                "connection pools) piling up on some endpoints, or rules that do not split as they say; which one "
                "is unknown, because the new connections are not counted", *notes])
        if new.enough:
            lead = "new connections split as expected (" + _p(new) + "), but "
        else:
            lead = f"too few new connections counted to test them ({new.total} < {new.minimum}); "
        return Verdict.OPEN_SKEWED, "; ".join([
            lead + "the connections open now do not (" + _p(opened) + "): long-lived connections (HTTP "
            "keep-alive, gRPC, connection pools) pile up on some endpoints; a client or L7 matter, not kube-proxy",
            *notes])
    if new is not None and not new.enough and (opened is None or not opened.enough):
        return Verdict.NOT_ENOUGH_DATA, "; ".join([
            f"{new.total} new connections counted; the test needs at least {new.minimum} ({MIN_EXPECTED} "
            "expected per endpoint)", *notes])
    if new is None and opened is not None and not opened.enough:
        return Verdict.NOT_ENOUGH_DATA, "; ".join([
            f"new connections: unknown, {no_counters}; {opened.total} open connections, the test needs at least "
            f"{opened.minimum}", *notes])
    parts = []
    if new is not None:
        parts.append("new connections " + (_p(new) if new.enough else f"too few to test ({new.total} < {new.minimum})"))
    else:
        parts.append(f"new connections: unknown, {no_counters}")
    if opened is not None:
        parts.append("open connections " + (_p(opened) if opened.enough
                                            else f"too few to test ({opened.total} < {opened.minimum})"))
    else:
        parts.append("open connections unknown (no conntrack listing)")
    return Verdict.CONSISTENT, "; ".join(["consistent with kube-proxy's random split: " + ", ".join(parts), *notes])


def balance_ports(ruleset: Ruleset, ports: Iterable[ServicePortRules],
                  flows: Sequence[ConntrackEntry] | None) -> list[PortBalance]:
    """:func:`balance_port` for each service port, in the order given."""
    return [balance_port(ruleset, sp, flows) for sp in ports]
