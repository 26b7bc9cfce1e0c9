"""Bulk reads of many chains at once, for the whole-dump commands.

``services``, ``check`` and the whole-dump ``graph`` read every kube-proxy
chain of a dump: ~10k KUBE-SVC cascades and ~100k KUBE-SEP chains on a large
cluster. The readers here work on the blocks of rule lines the scanner already
cut (``LazyChains.blocks``: in iptables-save output each chain is one block)
with one regex pass per block instead of a Python step per rule, and answer
only for the shapes kube-proxy writes. For anything else they return
:data:`UNSURE` and the caller uses the general (decoding) reader on that chain,
so every answer is the general reader's answer; only the time differs.

``SVCINSPECT_NO_FAST=1`` in the environment (or :func:`set_enabled`) turns the
bulk readers off, to compare both paths (``tests/test_perf_equivalence.py``).
"""

from __future__ import annotations

import os
import re

from svcinspect.model.netfilter import Table

UNSURE = object()
"""Returned when only the general reader can tell (an unusual shape)."""

_enabled = os.environ.get("SVCINSPECT_NO_FAST", "") in ("", "0")


def enabled() -> bool:
    return _enabled


def set_enabled(on: bool) -> bool:
    """Switch the bulk readers on or off; returns the previous setting."""
    global _enabled
    was, _enabled = _enabled, bool(on)
    return was


# Characters str.splitlines() and str.strip() treat as line breaks or spaces
# besides \n and the blank: a line holding one is left to the general reader.
_ODD = "\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"


def _one_block(table: Table, name: str) -> tuple[int, str] | None:
    """The chain's rule lines when they are one block (as iptables-save prints
    every chain), else None."""
    if not _enabled:
        return None
    blocks = getattr(table.chains, "blocks", None)
    segs = blocks(name) if blocks is not None else None
    return segs[0] if segs is not None and len(segs) == 1 else None


# --- KUBE-SVC/SVL/XLB: the cascade -------------------------------------------------

# services._SVC_BRANCH line by line (newlines excluded so a match never spans two
# lines), or a rule the cascade reader skips (a KUBE-MARK-MASQ/DROP jump that is
# neither a probability nor an affinity branch).
_CASCADE_LINE = re.compile(
    r"^(?P<all>(?:\[\d+:\d+\] )?-A \S+ "
    r'(?:-m comment --comment (?P<c>"[^"\\\n' + _ODD + r']*"|[^\s"]+) )?'
    r"(?:-m statistic --mode random --probability (?P<p>[0-9.]+) "
    r"|-m recent --rcheck --seconds (?P<s>\d+) --reap --name \S+ --mask [0-9.]+ --rsource "
    r"|-m recent --name \S+ --rcheck --seconds (?P<s2>\d+) --reap )?"
    r"-j (?P<t>KUBE-SEP-[A-Z2-7]{16}))$"
    r"|^(?P<skip>[^\n" + _ODD + r"]* -j KUBE-MARK-(?:MASQ|DROP))$",
    re.M,
)


def cascade(table: Table, name: str):
    """The endpoint jumps of a SVC/SVL/XLB chain as ``services.Branch`` field
    tuples ``(sep, line, text, probability, affinity seconds, comment endpoint)``,
    in order, or :data:`UNSURE` unless every rule of the chain has one of the
    shapes ``services._branches`` reads without decoding."""
    pb = _one_block(table, name)
    if pb is None:
        return UNSURE
    first, block = pb
    found = _CASCADE_LINE.findall(block)
    if len(found) != block.count("\n") + (not block.endswith("\n")):
        return UNSURE
    out = []
    line = first
    for text, c, p, s, s2, t, skip in found:
        if skip:
            if "--probability" in skip or "--rcheck" in skip:
                return UNSURE
        else:
            ep = c.rstrip('"').rsplit(" -> ", 1)[1] if c and " -> " in c else None
            s = s or s2
            out.append((t, line, text, p or None, int(s) if s else None, ep))
        line += 1
    return out


# --- every per-service chain of a table ----------------------------------------------

_PER_SERVICE_NAME = re.compile(r"^KUBE-(?:SVC|SVL|EXT|FW|XLB)-([A-Z2-7]{16})$", re.M)


def service_chain_hashes(table: Table):
    """The hash of every KUBE-SVC/SVL/EXT/FW/XLB chain of ``table``, in chain
    order (with repeats), or :data:`UNSURE`. One regex over the names instead of
    ``classify_chain`` on each of ~100k chains."""
    if not _enabled:
        return UNSURE
    # Chain names never hold a newline (every reader cuts them at whitespace).
    return _PER_SERVICE_NAME.findall("\n".join(table.chains))

