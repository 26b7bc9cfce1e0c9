"""What the input proves: one model of completeness that every command shares.

``assess_input(ruleset)`` says which dataplane the rules belong to (kube-proxy's
iptables mode, its IPVS mode, or nftables) and whether the input is a whole dump:
table headers, a COMMIT per table, and no rule jumping to a kube-proxy chain that
is not there. Anything less is an *excerpt*, and the reasons say why.

On an excerpt the analyses do not turn absence into facts: a service port whose
KUBE-SVC chain is not in the input has endpoints "seen" (with shares unknown),
not "none"; a missing hook or an unreferenced chain is "cannot tell from an
excerpt", not an error; kube-proxy's standard chains that are not in the paste
(KUBE-MARK-MASQ, KUBE-MARK-DROP, KUBE-POSTROUTING, the KUBE-SERVICES ->
KUBE-NODEPORTS rule) are simulated with kube-proxy's definitions, each as a
stated assumption.

>>> from svcinspect.dataplane.iptables.parse import parse_iptables_save
>>> c = assess_input(parse_iptables_save('-A KUBE-SEP-X -p tcp -j DNAT --to-destination 10.0.0.1:80\\n'))
>>> c.complete, c.dataplane
(False, 'iptables')
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from svcinspect.model.netfilter import Ruleset

IPTABLES, IPVS, NFTABLES = "iptables", "ipvs", "nftables"

# Chains only kube-proxy's IPVS mode writes (its iptables part: masquerade and
# filtering; the load balancing itself is in the kernel's IPVS tables).
IPVS_CHAINS = ("KUBE-LOAD-BALANCER", "KUBE-NODE-PORT")
_IPVS_SET = re.compile(r"--match-set (KUBE-CLUSTER-IP|KUBE-LOAD-BALANCER|KUBE-NODE-PORT-\w+|KUBE-EXTERNAL-IP)\b")

IPVS_NOTE = ("kube-proxy runs in IPVS mode here: Services are load-balanced by the kernel's IPVS tables, which "
             "iptables-save does not show; run `ipvsadm -Ln` (and `ipset list`) on the node for the virtual "
             "servers and their real servers. The iptables rules below only mark, masquerade and filter.")


@dataclass(frozen=True, slots=True)
class InputCompleteness:
    """``complete``: a whole dump (headers, COMMIT, nothing referenced missing)."""

    dataplane: str
    complete: bool
    reasons: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def excerpt(self) -> bool:
        return not self.complete


def is_excerpt(ruleset: Ruleset) -> bool:
    """What the reader alone saw (no header, no COMMIT, a grep): cheap, no scan."""
    return bool(ruleset.gaps)


def detect_dataplane(ruleset: Ruleset) -> str:
    for t in ruleset.tables:
        if t.name != "nat":
            continue
        if any(c in t.chains for c in IPVS_CHAINS):
            return IPVS
        for _, text in t.raw_rules("KUBE-SERVICES") or ():
            if "--match-set" in text and _IPVS_SET.search(text):
                return IPVS
    return IPTABLES


def assess_input(ruleset: Ruleset, *, scan_references: bool = True) -> InputCompleteness:
    """The input as a whole. ``scan_references``: also look for jumps to absent
    kube-proxy chains (one pass over the raw rules); commands that read only a few
    chains of a large dump pass False and add what their own lookups found."""
    if getattr(ruleset, "dataplane", IPTABLES) == NFTABLES:
        return _assess_nftables(ruleset)
    reasons = list(ruleset.gaps)
    live_empty = any(n.startswith("live: no kube-proxy rules") for n in ruleset.notes)
    if not ruleset.tables and not live_empty:
        reasons.append("no tables in the input")
    if scan_references and ruleset.tables:
        reasons.extend(missing_references(ruleset))
    dataplane = NFTABLES if any("nftables mode" in n for n in ruleset.notes) else detect_dataplane(ruleset)
    notes = [IPVS_NOTE] if dataplane == IPVS else []
    return InputCompleteness(dataplane, not reasons, tuple(dict.fromkeys(reasons)), tuple(notes))


def _assess_nftables(ruleset) -> InputCompleteness:
    """kube-proxy's nftables mode: whole when its tables were listed without
    elision (the reader marks a paste cut short or with ``...``)."""
    reasons = list(ruleset.gaps)
    if not ruleset.families:
        reasons.append("no `table ip kube-proxy` or `table ip6 kube-proxy` in the input")
    return InputCompleteness(NFTABLES, not reasons, tuple(dict.fromkeys(reasons)))


_JUMP = re.compile(r" -[jg] (KUBE-[A-Za-z0-9_.-]+)")


def _batches(blocks: list[str], count: int = 2048):
    """The blocks joined ``count`` at a time (~1 MB of kube-proxy rules)."""
    for i in range(0, len(blocks), count):
        yield "".join(blocks[i:i + count])


def _maybe_missing(ruleset: Ruleset) -> bool:
    """Cheap first pass: could any rule jump to an absent KUBE- chain? (one regex
    over each table's text; a quote could hide a false candidate, never a real one)"""
    from svcinspect.graph import jumps_read, undeclared_targets

    for t in ruleset.tables:
        if jumps_read(t):  # the graph's edge pass ran already (check): its exact targets
            if undeclared_targets(t):
                return True
            continue
        blocks = getattr(t.chains, "raw_blocks", None)
        if blocks is None:
            return True
        from svcinspect.dataplane.iptables import bulk

        take = getattr(t.chains, "take_jump_targets", None)  # a live table's, read while it printed (iptables.stream)
        targets = take() if take is not None else None
        if targets is None:
            every = list(blocks())
            targets = bulk.jump_targets(every)  # the compiled scanner's pass, when built
            if targets is None:
                targets = set()
                for chunk in _batches(every):  # a table's text in ~1 MB pieces, not one 100 MB copy
                    targets.update(_JUMP.findall(chunk))
        names = getattr(t.chains, "names", None)  # a dict view: membership without a Python call
        if names is not None:
            if not names() >= targets:  # (the view's own subset test: no Python call per target)
                return True
        elif not all(map(t.chains.__contains__, targets)):
            return True
    return False


def missing_references(ruleset: Ruleset, limit: int = 5) -> list[str]:
    """"chain X is jumped to (file line N) but is not in the input", for kube-proxy chains."""
    if not _maybe_missing(ruleset):
        return []
    from svcinspect.graph import find_dangling_jumps  # networkx: imported only when needed

    out = []
    seen: set[str] = set()
    dangling = [d for d in find_dangling_jumps(ruleset) if d.target.startswith("KUBE-")]
    for d in dangling:
        if d.target in seen:
            continue
        seen.add(d.target)
        if len(out) < limit:
            out.append(f"{d.target} is jumped to ({d.table} {d.chain}, line {d.line}) but is not in the input")
    if len(seen) > limit:
        out.append(f"... and {len(seen) - limit} more chains referenced but not in the input")
    return out


def input_json(c: InputCompleteness) -> dict:
    return {"dataplane": c.dataplane, "complete": c.complete, "reasons": list(c.reasons), "notes": list(c.notes)}


def render_input_text(c: InputCompleteness) -> str:
    """A short header for text output; empty for a complete iptables-mode dump."""
    lines = []
    if not c.complete:
        lines.append("Input: an excerpt, not a whole dump; what is not in it is unknown, not absent:")
        lines += [f"  - {r}" for r in c.reasons]
    lines += [f"Note: {n}" for n in c.notes]
    return "\n".join(lines) + "\n\n" if lines else ""
