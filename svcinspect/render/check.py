"""``check`` reports as text (for people) and JSON (``"schema": "svcinspect/v1"``, stable keys)."""

from __future__ import annotations

from typing import Any

from svcinspect.check import CheckReport, Finding
from svcinspect.errors import Diagnostic
from svcinspect.render.json import diagnostic_json, document


def render_check_text(report: CheckReport) -> str:
    fams = "+".join(f"IPv{int(f)}" for f in report.families) or "no tables"
    node = report.node or "unknown (--node not given)"
    head = f"Node {node}; rules: {fams}; "
    head += f"{report.checked} service port(s) compared with the objects" if report.with_objects \
        else "rules only (no objects)"
    out = [head, ""]
    if report.input is not None and not report.input.complete:
        out += ["Input: an excerpt, not a whole dump; what is not in it is unknown, not absent:"]
        out += [f"  - {r}" for r in report.input.reasons] + [""]
    if not report.findings:
        out.append("No findings." + (" The rules match the objects." if report.with_objects else ""))
    for f in report.findings:
        out.extend(_finding_lines(f))
        out.append("")
    counts = report.counts()
    out.append(f"Summary: {counts['error']} error(s), {counts['warning']} warning(s), {counts['info']} info")
    if report.notes:
        out.append("Notes:")
        out.extend(f"  - {n}" for n in report.notes)
    return "\n".join(out) + "\n"


def _finding_lines(f: Finding) -> list[str]:
    who = f.service_port or "(node)"
    fam = f" [IPv{int(f.family)}]" if f.family else ""
    lines = [f"{str(f.severity).upper():7} {who}{fam}  {f.code}", f"  {f.message}"]
    for e in f.evidence:
        text = e.text if len(e.text) <= 200 else e.text[:197] + "..."
        lines.append(f"    {e.where}: {text}" if text else f"    {e.where}")
    if f.hint:
        lines.append(f"  hint: {f.hint}")
    return lines


def finding_json(f: Finding) -> dict[str, Any]:
    return {"severity": str(f.severity), "code": f.code, "servicePort": f.service_port,
            "family": f"IPv{int(f.family)}" if f.family else None, "message": f.message,
            "evidence": [{"kind": e.kind, "where": e.where, "text": e.text} for e in f.evidence],
            "hint": f.hint}


def check_json(report: CheckReport, diagnostics: list[Diagnostic] = ()) -> dict[str, Any]:
    from svcinspect.completeness import input_json

    extra = {} if report.input is None else {"input": input_json(report.input)}
    return document(**extra, node=report.node, withObjects=report.with_objects,
                    families=[f"IPv{int(f)}" for f in report.families], checked=report.checked,
                    summary=report.counts(), findings=[finding_json(f) for f in report.findings],
                    notes=list(report.notes), diagnostics=[diagnostic_json(d) for d in diagnostics])
