"""Human-readable text: tables via tabulate, for people who never read iptables."""

from __future__ import annotations

from collections import Counter

from tabulate import tabulate

from svcinspect.errors import Diagnostic, Severity
from svcinspect.services import EndpointShare, EntryKind, ServicePortRules


def pct(share) -> str:
    return f"{float(share) * 100:.1f}%"


def endpoints_summary(endpoints: tuple[EndpointShare, ...] | None, sp: ServicePortRules) -> str:
    if not endpoints:
        verdicts = {e.verdict for e in sp.entries if e.verdict in ("reject", "drop")}
        if "reject" in verdicts:
            return "none (REJECT)"
        if "drop" in verdicts:
            return "none (DROP)"
        return "none"
    shares = {e.share for e in endpoints}
    if len(shares) == 1:
        share = next(iter(shares))
        return f"{len(endpoints)} ({share} each)" if len(endpoints) > 1 else "1 (all)"
    return f"{len(endpoints)} (" + " / ".join(pct(e.share) for e in endpoints) + ")"


def render_services(ports: list[ServicePortRules]) -> str:
    rows = []
    for sp in ports:
        cip = sp.cluster_ip
        ext = [f"ext {e.address}" for e in sp.entries_of(EntryKind.EXTERNAL_IP) if e.address]
        ext += [f"lb {e.address}" for e in sp.entries_of(EntryKind.LOAD_BALANCER) if e.address and e.table == "nat"]
        eps = endpoints_summary(sp.endpoints, sp)
        if sp.local_endpoints is not None:
            eps += f"; local {len(sp.local_endpoints)}"
        hc = sp.entries_of(EntryKind.HEALTH_CHECK)
        np = str(sp.node_port) if sp.node_port else "-"
        if hc:
            np += f" (hc {hc[0].port})"
        rows.append([
            sp.display_name + ("" if int(sp.family) == 4 else " [v6]"),
            sp.protocol or "?",
            f"{cip.address}:{cip.port}" if cip and cip.address else "-",
            np,
            ", ".join(ext) or "-",
            eps,
            f"ClientIP {sp.affinity_seconds}s" if sp.affinity_seconds is not None else "-",
            sp.chains.get("svc") or sp.chains.get("svl") or sp.chains.get("xlb") or "-",
        ])
    headers = ["SERVICE PORT", "PROTO", "CLUSTER IP", "NODE PORT", "EXTERNAL / LB", "ENDPOINTS", "AFFINITY", "CHAIN"]
    out = tabulate(rows, headers=headers, tablefmt="simple", disable_numparse=True)
    warned = [sp for sp in ports if sp.warnings]
    if warned:
        out += "\n\nWarnings:\n" + "\n".join(f"  {sp.display_name}: {w}" for sp in warned for w in sp.warnings)
    return out + "\n"


def render_diagnostics(diags: list[Diagnostic], verbose: bool = False, limit: int = 20) -> str:
    """Diagnostics for stderr: warnings and errors (info too with ``verbose``),
    at most ``limit`` lines, then a count of the rest by message."""
    shown = [d for d in diags if verbose or d.severity >= Severity.WARNING]
    lines = [str(d) for d in shown[:limit]]
    rest = shown[limit:]
    if rest:
        counts = Counter(d.message for d in rest)
        lines.append(f"... and {len(rest)} more: " + "; ".join(f"{n} x {m}" for m, n in counts.most_common(5)))
    hidden = len(diags) - len(shown)
    if hidden and not verbose:
        lines.append(f"({hidden} informational note(s); --verbose shows them)")
    return "\n".join(lines)
