"""Text and JSON for ``svcinspect diff`` (a :class:`svcinspect.diff.DiffReport`)."""

from __future__ import annotations

from typing import Any

from svcinspect.diff import Change, DiffReport, PortDiff
from svcinspect.errors import Diagnostic
from svcinspect.render.json import diagnostic_json, document

_MARK = {"added": "+", "removed": "-", "changed": "~"}


def _tag(report: DiffReport, c: Change) -> str:
    if c.expected is not None:
        return f"  [expected: {c.expected}]"
    if c.node_local:
        return "  [node-local: differs between nodes by design]" if report.across_nodes else \
            "  [node-local: would differ between nodes by design]"
    return ""


def _port_title(p: PortDiff) -> str:
    return f"{_MARK[p.status]} {p.service_port} ({p.protocol or '?'}, IPv{int(p.family)})"


def render_diff_text(report: DiffReport) -> str:
    """Grouped by service port, then node-wide changes, then a one-line verdict."""
    lines = [f"--- A: {report.a} ({report.a_dataplane})", f"+++ B: {report.b} ({report.b_dataplane})"]
    real = [p for p in report.ports if any(report.counts(c) for c in p.changes)]
    for p in real:
        lines.append(_port_title(p) + (f"  [API matches: {p.objects}]" if p.objects else ""))
        for c in p.changes:
            if report.counts(c):
                lines.extend(_change_lines(report, c, p.status))
        lines.extend(f"    objects: {d}" for d in p.objects_detail)
    node_real = [c for c in report.node if report.counts(c)]
    if node_real:
        lines.append("node-wide")
        for c in node_real:
            lines.extend(_change_lines(report, c, "changed"))
    expected = [(p, c) for p in report.ports for c in p.changes if not report.counts(c)] + \
        [(None, c) for c in report.node if not report.counts(c)]
    if expected:
        lines.append("expected differences (not counted)")
        groups: dict[str, list] = {}
        for p, c in expected:
            why = c.expected or "node-local: differs between nodes by design (Local traffic policies, each node's " \
                                "own addresses)"
            groups.setdefault(why, []).append((p, c))
        for why, items in groups.items():
            lines.append(f"  {why}")
            for p, c in items:
                where = f"{p.service_port} (IPv{int(p.family)}): " if p is not None else ""
                first, *rest = c.message.split("\n")
                lines.append(f"    {where}{first}")
                lines.extend(f"      {r}" for r in rest)
    for n in report.notes:
        lines.append(f"note: {n}")
    lines.append(_verdict(report))
    return "\n".join(lines) + "\n"


def _change_lines(report: DiffReport, c: Change, status: str) -> list[str]:
    first, *rest = c.message.split("\n")
    out = [f"    {first}{_tag(report, c)}"]
    out.extend(f"      {r}" for r in rest)
    return out


def _verdict(report: DiffReport) -> str:
    fams = ", ".join(f"IPv{int(f)}" for f in report.families) or "no family"
    s = report.summary()
    if not report.different:
        extra = f"; {s['expected']} expected difference(s) listed" if s["expected"] else ""
        if report.across_nodes and s["nodeLocal"]:
            extra += f"; {s['nodeLocal']} node-local difference(s) by design"
        return f"same: {report.compared} service port(s) behave alike ({fams}){extra}"
    parts = [f"{s[k]} {k}" for k in ("added", "removed", "changed") if s[k]]
    if s["nodeWide"]:
        parts.append(f"{s['nodeWide']} node-wide")
    return f"different: {', '.join(parts)} of {report.compared} service port(s) ({fams})"


def change_json(c: Change) -> dict[str, Any]:
    return {"what": c.what, "message": c.message, "before": c.before, "after": c.after,
            "nodeLocal": c.node_local, "expected": c.expected}


def diff_json(report: DiffReport, diagnostics: list[Diagnostic] = ()) -> dict[str, Any]:
    """Stable keys; service ports sorted by name, family, protocol."""
    return document(
        command="diff",
        a={"source": report.a, "dataplane": report.a_dataplane},
        b={"source": report.b, "dataplane": report.b_dataplane},
        different=report.different,
        acrossNodes=report.across_nodes,
        families=[f"IPv{int(f)}" for f in report.families],
        compared=report.compared,
        summary=report.summary(),
        servicePorts=[{"servicePort": p.service_port, "protocol": p.protocol, "family": f"IPv{int(p.family)}",
                       "status": p.status, "counted": any(report.counts(c) for c in p.changes),
                       "objects": p.objects, "objectsDetail": list(p.objects_detail),
                       "changes": [change_json(c) for c in p.changes]} for p in report.ports],
        nodeWide=[change_json(c) for c in report.node],
        notes=list(report.notes),
        diagnostics=[diagnostic_json(d) for d in diagnostics],
    )
