"""Human-readable text: tables via tabulate, for people who never read iptables."""

from __future__ import annotations

import operator
import os
import re
from collections import Counter
from typing import TYPE_CHECKING

from svcinspect.errors import Diagnostic, Severity

if TYPE_CHECKING:  # services (and kubeproxy) load only for the commands that list them
    from svcinspect.model.service import EndpointShare, ServicePortRules


def tabulate(rows, **kwargs) -> str:
    """tabulate, imported on first use: it costs ~0.13 s of start-up on a small
    machine, which JSON output never needs. Wide-character width handling is
    switched off when every cell is ASCII (Kubernetes names always are): same
    output, a third faster on 10k rows."""
    rows = list(rows)
    if _direct_tables and set(kwargs) == {"headers", "tablefmt", "disable_numparse"} \
            and kwargs["tablefmt"] == "simple" and kwargs["disable_numparse"] is True:
        direct = _simple_table(rows, kwargs["headers"])
        if direct is not None:
            return direct
    import tabulate as _tabulate_module
    ascii_only = all(str(cell).isascii() for row in rows for cell in row)
    saved = _tabulate_module.WIDE_CHARS_MODE
    try:
        if ascii_only:
            _tabulate_module.WIDE_CHARS_MODE = False
        return _tabulate_module.tabulate(rows, **kwargs)
    finally:
        _tabulate_module.WIDE_CHARS_MODE = saved


_direct_tables = os.environ.get("SVCINSPECT_NO_FAST", "") in ("", "0")
_PLAIN = re.compile(r"[ -~]*")  # printable ASCII: one column per character
_PLAIN_CELLS = re.compile(r"[ -~\x00]*")  # the same, the cells joined by NUL


def _simple_table(rows: list, headers) -> str | None:
    """What ``tabulate(rows, headers, tablefmt="simple", disable_numparse=True)``
    prints, for rows of plain strings, without tabulate (~0.6 s less on 10k rows):
    cells stripped and left-aligned, each column as wide as its widest cell and
    at least its header plus two, two blanks between columns, trailing blanks cut.
    None when a cell is not a printable-ASCII string or a row is short or long."""
    headers = list(headers)
    n = len(headers)
    if not all(type(h) is str and _PLAIN.fullmatch(h) for h in headers):
        return None
    cells = [c for row in rows for c in row]
    if any(len(row) != n for row in rows) or (cells and set(map(type, cells)) != {str}):
        return None
    joined = "\x00".join(cells)  # (NUL: a separator no printable cell holds)
    if not _PLAIN_CELLS.fullmatch(joined) or (cells and joined.count("\x00") != len(cells) - 1):
        return None
    # Printable ASCII's only blank is the space: a cell needs strip() only if it
    # begins or ends with one (rarely: then every cell is stripped, as before).
    if joined.startswith(" ") or joined.endswith(" ") or " \x00" in joined or "\x00 " in joined:
        rows = [list(map(str.strip, row)) for row in rows]
        cells = [c for row in rows for c in row]
    widths = [max(len(h) + 2, max(map(len, cells[i::n]), default=0)) for i, h in enumerate(headers)]
    pad = [f"{{:<{w}}}" for w in widths]
    fmt = "  ".join(pad)
    lines = [fmt.format(*headers).rstrip(), "  ".join("-" * w for w in widths)]
    lines.extend(fmt.format(*row).rstrip() for row in rows)
    return "\n".join(lines)


def pct(share) -> str:
    return f"{float(share) * 100:.1f}%"


def endpoints_summary(endpoints: tuple[EndpointShare, ...] | None, sp: ServicePortRules) -> str:
    if not sp.cluster_complete and endpoints is sp.endpoints:
        return _unknown_summary(endpoints or ())
    if not endpoints:
        verdicts = {e.verdict for e in sp.entries if e.verdict in ("reject", "drop")}
        if "reject" in verdicts:
            return "none (REJECT)"
        if "drop" in verdicts:
            return "none (DROP)"
        return "none"
    if len(endpoints) == 1:
        return "1 (all)"
    if _one_share(endpoints):
        return f"{len(endpoints)} ({_share_text(endpoints[0].share)} each)"
    return f"{len(endpoints)} (" + " / ".join(pct(e.share) for e in endpoints) + ")"


_SHARE_OF = operator.attrgetter("share")


def _one_share(endpoints) -> bool:
    """``len({e.share for e in endpoints}) == 1``, without hashing: a uniform
    cascade's endpoints share one Fraction object (``list.count`` tests identity
    before equality), and Fraction's hash is Python code."""
    shares = list(map(_SHARE_OF, endpoints))
    return shares.count(shares[0]) == len(shares)


# str() of the share objects seen (a cascade of n endpoints shares one 1/n object;
# Fraction's str is Python code), held with the object so its id is not reused.
_SHARE_TEXT: dict[int, tuple[object, str]] = {}


def _share_text(share) -> str:
    hit = _SHARE_TEXT.get(id(share))
    if hit is not None and hit[0] is share:
        return hit[1]
    text = f"{share}"
    if len(_SHARE_TEXT) < 4096:
        _SHARE_TEXT[id(share)] = (share, text)
    return text


def _unknown_summary(endpoints) -> str:
    """An excerpt's endpoints: those seen, shares only where the cascade is in the input."""
    if not endpoints:
        return "unknown (not in the input)"
    if any(e.share is None for e in endpoints):
        return f"{len(endpoints)} seen, shares unknown"
    where = ", some addresses unknown" if any(e.endpoint is None for e in endpoints) else ""
    shares = {e.share for e in endpoints}
    if len(shares) == 1:
        return (f"{len(endpoints)} ({next(iter(shares))} each{where})" if len(endpoints) > 1
                else f"1 (all{where})")
    return f"{len(endpoints)} (" + " / ".join(pct(e.share) for e in endpoints) + where + ")"


def render_services(ports: list[ServicePortRules], objects=None, wide: bool = False, headers: bool = True) -> str:
    """``objects``: (chain hash, family) -> endpoints from the EndpointSlices
    (:func:`svcinspect.expected.endpoints_by_port`), to show pods and conditions.
    ``wide`` (``-o wide``) adds every chain, the endpoints themselves and the
    source ranges; ``headers=False`` (``--no-headers``) drops the header lines."""
    from svcinspect.model.service import EntryKind

    rows = []
    cluster_ip, external_ip, load_balancer = EntryKind.CLUSTER_IP, EntryKind.EXTERNAL_IP, EntryKind.LOAD_BALANCER
    node_port_kind, health_check = EntryKind.NODE_PORT, EntryKind.HEALTH_CHECK
    for sp in ports:
        # One pass over the entries: ServicePortRules.cluster_ip, node_port and
        # entries_of(kind) as the columns read them.
        cip = hc = None
        node_port = _NO_ENTRY
        ext = lb = bound_set = None  # (made for the few ports that have them)
        for e in sp.entries:
            kind = e.kind
            if kind == cluster_ip:
                if cip is None:
                    cip = e
            elif kind == external_ip:
                if e.address:
                    (ext if ext is not None else (ext := [])).append(f"ext {e.address}")
            elif kind == load_balancer:
                if e.address and e.table == "nat":
                    (lb if lb is not None else (lb := [])).append(f"lb {e.address}")
            elif kind == node_port_kind:
                if node_port is _NO_ENTRY:
                    node_port = e.port
                if e.address and e.table == "nat":
                    (bound_set if bound_set is not None else (bound_set := set())).add(e.address)
            elif kind == health_check:
                if hc is None:
                    hc = e
        # (an address in nat and in a filter verdict (eTP=Local drop) once)
        ext = ", ".join(dict.fromkeys((ext or []) + (lb or []))) if ext or lb else "-"
        eps = endpoints_summary(sp.endpoints, sp)
        if not sp.local_complete:
            eps += "; local unknown"
        elif sp.local_endpoints is not None:
            eps += f"; local {len(sp.local_endpoints)}"
        np = str(node_port) if node_port is not _NO_ENTRY and node_port else "-"
        if bound_set:
            np += " on " + ", ".join(sorted(bound_set))
        if hc is not None:
            np += f" (hc {hc.port})"
        chains = sp.chains
        rows.append([
            (sp.name or f"<no comment: {sp.key}>") + ("" if sp.family == 4 else " [v6]"),  # (display_name)
            sp.protocol or "?",
            f"{cip.address}:{cip.port}" if cip and cip.address else "-",
            np,
            ext,
            eps,
            f"ClientIP {sp.affinity_seconds}s" if sp.affinity_seconds is not None else "-",
            chains.get("svc") or chains.get("svl") or chains.get("xlb") or "-",
        ])
        if wide:
            rows[-1] += [" ".join(e.endpoint or "?" for e in sp.endpoints) or "-",
                         ", ".join(sp.source_ranges) or "-",
                         " ".join(v for k, v in sp.chains.items() if k not in ("sep", "svc") and isinstance(v, str))
                         or "-"]
    names = ["SERVICE PORT", "PROTO", "CLUSTER IP", "NODE PORT", "EXTERNAL / LB", "ENDPOINTS", "AFFINITY", "CHAIN"]
    if wide:
        names += ["ENDPOINT ADDRESSES", "SOURCE RANGES", "OTHER CHAINS"]
    if headers:
        out = tabulate(rows, headers=names, tablefmt="simple", disable_numparse=True)
    else:
        out = tabulate(rows, tablefmt="plain", disable_numparse=True)
    warned = [sp for sp in ports if sp.warnings]
    if warned:
        out += "\n\nWarnings:\n" + "\n".join(f"  {sp.display_name}: {w}" for sp in warned for w in sp.warnings)
    partial = [sp for sp in ports if not sp.endpoints_complete]
    if partial:
        out += "\n\nNot in the input (unknown, not absent):\n" + "\n".join(
            f"  {sp.display_name}: {w}" for sp in partial for w in sp.unknown)
    if objects is not None:
        out += "\n\n" + render_object_endpoints(ports, objects)
    return out + "\n"


_NO_ENTRY = object()  # no node-port entry (ServicePortRules.node_port is None then)


def render_object_endpoints(ports: list[ServicePortRules], objects) -> str:
    """Every endpoint of the rules and of the EndpointSlices: pod, node, conditions,
    and whether the rules use it."""
    rows = []
    for sp in ports:
        known = {e.endpoint: e for e in objects.get((sp.key, sp.family), ())}
        in_rules = [e.endpoint for e in sp.endpoints + (sp.local_endpoints or ()) if e.endpoint]
        for ep in dict.fromkeys([*in_rules, *known]):
            info = known.get(ep)
            rows.append([sp.display_name + ("" if int(sp.family) == 4 else " [v6]"), ep,
                         (info.pod or "-") if info else "-",
                         ((info.node_name or "-") + (" (this node)" if info.local else "")) if info else "-",
                         info.conditions.describe() if info else "not in any EndpointSlice",
                         "yes" if ep in in_rules else "no"])
    headers = ["SERVICE PORT", "ENDPOINT", "POD", "NODE", "CONDITIONS", "IN RULES"]
    return "Endpoints in the objects:\n" + tabulate(rows, headers=headers, tablefmt="simple", disable_numparse=True)


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


_HOOK_TEXT = {"prerouting": "prerouting (from a pod or from outside the node)",
              "output": "output (from a process on the node or a hostNetwork pod)"}


def _share(p) -> str:
    return f"{p} ({float(p) * 100:.1f}%)" if p != 1 else "1 (100%)"


def _final(o) -> str:
    src = o.snat_source if o.masquerade and o.snat_source else str(o.packet.src)
    return f"{src} -> {o.packet.endpoint()}"


def render_steps(steps, indent: str = "    ", width: int | None = 110) -> str:
    """One step per two lines: table, chain, line and action, then the rule's
    text (cut at ``width`` characters; None: whole)."""
    rows = []
    for s in steps:
        where = f"line {s.line}" if s.line else ("assumed" if s.source.startswith("<assumed") else "-")
        rule = s.rule if width is None or len(s.rule) <= width else s.rule[: width - 3] + "..."
        rows.append(f"{indent}{s.table:<6} {s.chain:<26} {where:<10} {s.action}\n{indent}{'':<44}{rule}")
    return "\n".join(rows)


def render_simulation(sim) -> str:
    p = sim.packet
    out = [f"Packet: {p.proto} {p.src}:{p.sport} -> {p.endpoint()}, entering at {_HOOK_TEXT[p.hook.value]}", ""]
    rows = []
    for i, o in enumerate(sim.outcomes, 1):
        rows.append([i, o.disposition.value, _share(o.probability), o.endpoint or "-",
                     "yes" if o.masquerade else "no", _final(o)])
    out.append(tabulate(rows, headers=["#", "DISPOSITION", "PROBABILITY", "ENDPOINT", "MASQUERADE", "LEAVES AS"],
                        tablefmt="simple", disable_numparse=True))
    for i, o in enumerate(sim.outcomes, 1):
        what = {"dnat": f"DNAT to {o.endpoint}", "reject": "rejected", "drop": "dropped",
                "accept": "accepted", "none": "no rule decided (passes untouched)",
                "unknown": "unknown: the rules that decide are not in the input"}[o.disposition.value]
        out += ["", f"Outcome {i}: {what}, probability {_share(o.probability)}"
                    + (", masqueraded" if o.masquerade else "")]
        out.append(render_steps(o.steps))
        for a in o.assumptions:
            out.append(f"    assumes: {a}")
    if sim.warnings:
        out += ["", "Warnings:"] + [f"  {w}" for w in sim.warnings]
    return "\n".join(out) + "\n"


def _scenario_path(sc, width: int | None) -> list[str]:
    """Every step one client's first packet takes, through nat, filter and
    POSTROUTING: the shared start, each outcome's own steps, the shared end."""
    from svcinspect.trace import scenario_paths

    path, branches, tail = scenario_paths(sc)
    out = [f"    path {sc.label}:"]
    if path:
        out.append(render_steps(path, indent="      ", width=width))
    for o, steps in branches[:16]:
        if len(branches) > 1 or steps:
            lead = f"{o.probability} ->" if o.probability != 1 else "->"
            out.append(f"      {lead} {o.endpoint or o.disposition.value.upper()}")
        if steps:
            out.append(render_steps(steps, indent="         ", width=width))
    if len(branches) > 16:
        out.append(f"      ... and {len(branches) - 16} more outcomes")
    if tail:
        out.append("      then, for each of these:")
        out.append(render_steps(tail, indent="         ", width=width))
    return out


def render_trace(tr, wide: bool = False) -> str:
    """``wide``: every rule's whole text (otherwise cut at 110 characters)."""
    from svcinspect.completeness import render_input_text
    from svcinspect.trace import summarize

    width = None if wide else 110

    out: list[str] = []
    if tr.input is not None and render_input_text(tr.input):
        out += render_input_text(tr.input).rstrip("\n").split("\n") + [""]
    for pt in tr.ports:
        sp = pt.port
        fam = "" if int(sp.family) == 4 else " (IPv6)"
        out.append(f"Service port {sp.display_name}{fam}, protocol {sp.protocol or '?'}")
        chains = [f"{v} ({k})" for k, v in sp.chains.items() if k != "sep" and v]
        if chains:
            out.append("  chains: " + ", ".join(chains))
        known = {e.endpoint: e for e in pt.objects or ()}
        svc_word = "service- chain" if sp.dataplane == "nftables" else "KUBE-SVC"
        for title, eps in ((f"endpoints (cluster policy, {svc_word})", sp.endpoints),
                           ("endpoints (local policy, this node only)", sp.local_endpoints)):
            if eps:
                out.append(f"  {title}:")
                headers = ["ENDPOINT", "SHARE", "CHAIN", "JUMP"]
                rows = [[e.endpoint or "?", f"{e.share} ({float(e.share) * 100:.1f}%)" if e.share is not None
                         else "unknown", e.sep, f"line {e.line}"] for e in eps]
                if pt.objects is not None:
                    headers += ["POD", "NODE", "CONDITIONS"]
                    for row, e in zip(rows, eps):
                        info = known.get(e.endpoint)
                        row.extend([info.pod or "-", (info.node_name or "-") + (" (this node)" if info.local else ""),
                                    info.conditions.describe()] if info else ["-", "-", "not in any EndpointSlice"])
                out.append(_indent(tabulate(rows, headers=headers, tablefmt="simple", disable_numparse=True), "    "))
        if not sp.endpoints_complete:
            out.append("  endpoints: " + ("unknown" if not sp.endpoints and not sp.local_endpoints else
                                          "only those above are proven") + ", because:")
            out += [f"    - {w}" for w in sp.unknown]
        elif not sp.endpoints and not sp.local_endpoints:
            out.append("  endpoints: none")
        in_rules = {e.endpoint for e in sp.endpoints + (sp.local_endpoints or ())}
        for e in pt.objects or ():
            if e.endpoint not in in_rules:
                out.append(f"  not in the rules: {e.endpoint} (pod {e.pod or '-'}, node {e.node_name or '-'}, "
                           f"{e.conditions.describe()})")
        for n in pt.notes:
            out.append(f"  note: {n}")
        for w in sp.warnings:
            out.append(f"  WARNING: {w}")
        for et in pt.entries:
            out.append("")
            out.append(f"  Entry: {et.title}")
            for sc in et.scenarios:
                out.extend(_scenario_path(sc, width))
            out.append("    who gets where:")
            for sc in et.scenarios:
                groups = summarize(sc)
                if len(groups) == 1 and not groups[0][0]:
                    out.append(f"      {sc.label}: " + "; ".join(_describe(*row) for row in groups[0][1]))
                else:  # alternatives the dump cannot decide between, each on its own line
                    out.append(f"      {sc.label}:")
                    for cond, rows in groups:
                        out.append(f"        {' and '.join(cond) or 'in every case'}: "
                                   + "; ".join(_describe(*row) for row in rows))
                reason = sc.masquerade_reason
                if reason is not None and any(row[3] for _, rows in groups for row in rows):
                    out.append(f"        masqueraded because of {reason.chain} line {reason.line}: {reason.rule}")
                for a in sorted({a for o in sc.outcomes for a in o.assumptions if not a.startswith("if ")}):
                    out.append(f"        assumes: {a}")
            for n in et.notes:
                out.append(f"    note: {n}")
        out.append("")
    if tr.warnings:
        out.append("Warnings:")
        out += [f"  {w}" for w in tr.warnings]
    return "\n".join(out).rstrip() + "\n"


def _describe(disp: str, ep: str, p, masq: bool) -> str:
    share = "" if p == 1 else f"{p} "
    if disp == "dnat":
        return f"{share}{ep}" + (" (masqueraded)" if masq else " (source kept)")
    return f"{share}{disp.upper()}" if disp != "none" else f"{share}not handled (no rule matches)"


def _indent(text: str, prefix: str) -> str:
    return "\n".join(prefix + ln for ln in text.split("\n"))
