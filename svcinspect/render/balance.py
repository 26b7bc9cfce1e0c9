"""``balance`` results as text (one table per service port) and JSON."""

from __future__ import annotations

from typing import Any

from svcinspect.balance import ALPHA, MIN_EXPECTED, ChiSquare, EndpointBalance, PortBalance
from svcinspect.errors import Diagnostic
from svcinspect.render.json import diagnostic_json, document
from svcinspect.render.text import tabulate


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x * 100:.1f}%"


def _count(n: int | None) -> str:
    return "unknown" if n is None else str(n)


def render_balance_text(ports: list[PortBalance]) -> str:
    out: list[str] = []
    for pb in ports:
        fam = f"IPv{int(pb.family)}"
        head = f"{pb.name} ({pb.protocol or '?'}, {fam}, {pb.policy} policy"
        head += f", affinity {pb.affinity_seconds} s)" if pb.affinity_seconds is not None else ")"
        out.append(head)
        if pb.endpoints:
            nt, ot = pb.new_total, pb.open_total
            rows = [[e.endpoint or f"<{e.sep}: no DNAT>", _pct(float(e.expected_share)), _count(e.new_connections),
                     _pct(EndpointBalance.share(e.new_connections, nt)), _count(e.open_connections),
                     _pct(EndpointBalance.share(e.open_connections, ot))] for e in pb.endpoints]
            rows.append(["total", "100.0%", _count(nt), "", _count(ot), ""])
            table = tabulate(rows, headers=["ENDPOINT", "EXPECTED", "NEW CONNS", "SHARE", "OPEN NOW", "SHARE"],
                             tablefmt="simple", disable_numparse=True)
            out.extend("  " + ln for ln in table.splitlines())
        if pb.open_elsewhere:
            out.append(f"  {pb.open_elsewhere} open connection(s) to this service answered by an address that is "
                       "no endpoint of the rules (stale conntrack entries?)")
        out.append(f"  verdict: {pb.verdict}: {pb.reason}")
        out.append("")
    if any(pb.dataplane == "nftables" for pb in ports):
        new = ("New connections: unknown, nftables mode has no rule counters (kube-proxy writes no counter "
               "statements); expected shares from the numgen random mod N vmaps.")
    else:
        new = ("New connections: the packet counter of each endpoint's DNAT rule (iptables-save -c), since its "
               "chain was last written.")
    out.append(f"{new} Open now: conntrack ESTABLISHED (TCP/SCTP) or any UDP flow. Test: chi-square vs "
               f"the expected shares, skewed when p < {ALPHA}, at least {MIN_EXPECTED} expected per endpoint.")
    return "\n".join(out) + "\n"


def _test_json(t: ChiSquare | None) -> dict[str, Any] | None:
    if t is None:
        return None
    return {"statistic": t.statistic if t.statistic != float("inf") else None, "df": t.df, "p_value": t.p_value,
            "total": t.total, "minimum": t.minimum, "enough": t.enough, "rejects_random_split": t.rejects}


def balance_json(ports: list[PortBalance], diags: list[Diagnostic]) -> dict[str, Any]:
    return document(command="balance", alpha=ALPHA, min_expected_per_endpoint=MIN_EXPECTED, service_ports=[{
        "name": pb.name, "chain_hash": pb.key, "dataplane": pb.dataplane, "family": int(pb.family),
        "protocol": pb.protocol,
        "policy": pb.policy, "affinity_seconds": pb.affinity_seconds,
        "verdict": pb.verdict.value, "reason": pb.reason,
        "new_connections": pb.new_total, "open_connections": pb.open_total, "open_elsewhere": pb.open_elsewhere,
        "skew_ratio": pb.skew_ratio, "new_test": _test_json(pb.new_test), "open_test": _test_json(pb.open_test),
        "endpoints": [{"endpoint": e.endpoint, "chain": e.sep, "line": e.line,
                       "expected_share": float(e.expected_share), "fraction": str(e.expected_share),
                       "new_connections": e.new_connections,
                       "new_share": EndpointBalance.share(e.new_connections, pb.new_total),
                       "open_connections": e.open_connections,
                       "open_share": EndpointBalance.share(e.open_connections, pb.open_total)}
                      for e in pb.endpoints],
    } for pb in ports], diagnostics=[diagnostic_json(d) for d in diags])
