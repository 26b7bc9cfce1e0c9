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
    _share_native()
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
    out = _branches_of(found, first, texts=True)
    return UNSURE if out is None else out


# --- every per-service chain of a table ----------------------------------------------

# (each name between two newlines: the literal "\nKUBE-" lets the regex skip to
# the next name instead of trying every position, as a "^" anchor makes it do)
_PER_SERVICE_NAME = re.compile(r"\nKUBE-(?:SVC|SVL|EXT|FW|XLB)-([A-Z2-7]{16})(?=\n)")


def service_chain_hashes(table: Table):
    """The hash of every KUBE-SVC/SVL/EXT/FW/XLB chain of ``table``, in chain
    order (with repeats), or :data:`UNSURE`. One regex over the names instead of
    ``classify_chain`` on each of ~100k chains."""
    if not _enabled:
        return UNSURE
    # Chain names never hold a newline (every reader cuts them at whitespace).
    return _PER_SERVICE_NAME.findall("\n" + "\n".join(table.chains) + "\n")



# --- one pass per region: every cascade and every DNAT of a nat table ----------------

# The first line of an endpoint chain that holds "DNAT", when it is kube-proxy's
# DNAT (``services.sep_endpoint`` reads it by regex too), else the whole line: the
# general reader decides those chains.
_SEP_DNAT_LINE = re.compile(
    r'^(?:\[\d+:\d+\] )?-A (KUBE-SEP-[A-Z2-7]{16}) [^\n]* -j DNAT --to-destination ([^\s"]+)$'
    r"|^([^\n]*DNAT[^\n]*)$",
    re.M,
)

_CASCADE_PREFIXES = ("KUBE-SVC-", "KUBE-SVL-", "KUBE-XLB-")


class NatScan:
    """What one pass over a nat table's kube-proxy chains read: the cascade of
    every KUBE-SVC/SVL/XLB chain and the DNAT destination of every KUBE-SEP chain
    that has kube-proxy's shapes. A chain missing from both maps is left to the
    general reader (an unusual shape, or a chain in several runs)."""

    __slots__ = ("cascades", "dnat", "names", "shares")

    def __init__(self, cascades: dict, dnat: dict, names) -> None:
        self.cascades = cascades  # chain -> [services.Branch field tuples]
        self.dnat = dnat          # chain -> "IP:port", or None when no rule of it says DNAT
        self.names = names        # every chain of the table (``in`` without a Python call)
        self.shares = uniform_shares()  # compiled or pure-Python, as the scan


def scan_nat(table: Table) -> NatScan | None:
    """One bulk pass over ``table``'s endpoint chains and one over its cascades,
    or None when the fast paths are off or the reader keeps no blocks."""
    if not _enabled:
        return None
    pre = getattr(table.chains, "nat_scan", None)  # read while the live dump arrived (iptables.stream)
    if pre is not None and pre[0] == (_native is not None):
        table.chains.nat_scan = None  # handed over once: it is not kept for the rest of the run
        return pre[1]
    single = getattr(table.chains, "single_blocks", None)
    if single is None:
        return None
    seps = single("KUBE-SEP-")
    cascades = single(_CASCADE_PREFIXES)
    names = table.chains.names()
    if _native is not None:
        return NatScan(_native.cascades(cascades), _native.dnat(seps), names)
    return NatScan(_scan_cascades(cascades), _scan_dnat(seps), names)


def _scan_dnat(seps: list[tuple[str, int, str]]) -> dict:
    """chain -> its DNAT destination (None: no rule of it holds "DNAT"), for the
    endpoint chains ``sep_endpoint`` would read without decoding."""
    out: dict = dict.fromkeys(name for name, _, _ in seps)
    if not seps:
        return out
    region = "".join(block for _, _, block in seps)
    found = _SEP_DNAT_LINE.findall(region)
    if any(odd for _, _, odd in found):
        return _scan_dnat_odd(seps, region, out)
    # The first DNAT of each chain wins: build from the last to the first.
    out.update({name: dst for name, dst, _ in reversed(found)})
    return out


def _scan_dnat_odd(seps, region: str, out: dict) -> dict:
    """:func:`_scan_dnat` when some line says DNAT in another shape: a chain whose
    first such line is odd goes to the general reader."""
    starts = []
    pos = 0
    for _, _, block in seps:
        starts.append(pos)
        pos += len(block)
    import bisect

    decided: set[str] = set()
    for m in _SEP_DNAT_LINE.finditer(region):
        name = seps[bisect.bisect_right(starts, m.start()) - 1][0]
        if name in decided:
            continue
        decided.add(name)
        if m.group(3) is not None:
            del out[name]
        else:
            out[name] = m.group(2)
    return out


# Every line of a cascade region is one match: the cascade shapes, or "odd".
_CASCADE_REGION = re.compile(_CASCADE_LINE.pattern + r"|^(?P<odd>[^\n]+)$", re.M)


def _scan_cascades(chains: list[tuple[str, int, str]]) -> dict:
    """chain -> its ``cascade`` answer, for the chains it would answer."""
    out: dict = {}
    if not chains:
        return out
    found = _CASCADE_REGION.findall("".join(block for _, _, block in chains))
    i = 0
    for name, first, block in chains:
        n = block.count("\n")
        rows = found[i:i + n]
        i += n
        if any(row[7] for row in rows):
            continue
        one = _branches_of(rows, first)
        if one is not None:
            out[name] = one
    return out


def _branches_of(found, first: int, texts: bool = False):
    """Branch field tuples of one chain's ``_CASCADE_LINE`` rows (the chain's
    first line is ``first``), or None when a skipped line is a branch after all.
    Without ``texts`` the rule text is None: ``services`` reads it from the chain
    in the rare case it needs it."""
    out = []
    line = first
    for text, c, p, s, s2, t, skip, *_ in found:
        if skip:
            if "--probability" in skip or "--rcheck" in skip:
                return None
        else:
            ep = c.rstrip('"').rsplit(" -> ", 1)[1] if c and " -> " in c else None
            s = s or s2
            out.append((t, line, text if texts else None, p or None, int(s) if s else None, ep))
        line += 1
    return out


# --- one service port's endpoint shares ------------------------------------------------

def split_affinity(rows) -> tuple[int | None, list]:
    """A cascade's branch tuples (see :func:`_scan_cascades`) as (the affinity
    seconds of its last affinity branch or None, the other branches in order)."""
    affinity = None
    cascade = []
    for row in rows:
        if row[4] is not None:
            affinity = row[4]
        else:
            cascade.append(row)
    return affinity, cascade


def _uniform_shares(rows: list, dnat: dict, cls, known: dict):
    """The endpoint shares of a cascade whose every branch the bulk pass read:
    ``(shares, affinity)`` when ``known[probabilities]`` (the cascade's probability
    strings, affinity branches left out) is its one share and every endpoint chain
    has a DNAT that agrees with the branch's comment; ``(None, probabilities)``
    when ``known`` has no entry for them yet; None when the cascade is not uniform
    (``known`` says None) or something needs a warning (then ``services`` decides).
    ``cls`` is ``EndpointShare``; the compiled ``uniform_shares`` is the same
    function without a Python step per endpoint."""
    affinity, cascade = split_affinity(rows)
    if not cascade:
        return None
    probabilities = tuple(row[3] for row in cascade)
    share = known.get(probabilities, UNSURE)
    if share is UNSURE:
        return None, probabilities
    if share is None:
        return None
    out = []
    for sep, line, _, probability, _, said in cascade:
        endpoint = dnat.get(sep)
        if endpoint is None or (said and said != endpoint):
            return None
        out.append(cls(endpoint, sep, share, probability, line))
    return tuple(out), affinity


def frozen(cls, names: tuple[str, ...], values: tuple):
    """``cls(*values)`` for a frozen dataclass of the model whose ``names`` are all
    its fields in order: built by the compiled ``new_frozen`` without the
    generated __init__ (one object.__setattr__ call per field) when in use."""
    if _native is not None and _enabled:
        return _native.new_frozen(cls, names, values)
    return cls(*values)


def uniform_shares():
    """The compiled ``uniform_shares`` when in use, else :func:`_uniform_shares`."""
    return _native.uniform_shares if _native is not None else _uniform_shares


# --- the optional compiled scanner (svcinspect/dataplane/iptables/_scan.c) -------------------------------
# Built by ``pip install .`` where a C compiler is present; the functions above
# are its reference and its fallback. ``SVCINSPECT_NO_NATIVE=1`` (or
# :func:`set_native`) uses the pure-Python scan even when it is built.
try:
    from svcinspect.dataplane.iptables import _scan as native_scanner
except ImportError:  # not built (no compiler at install time): the same answers, slower
    native_scanner = None

_native = native_scanner if os.environ.get("SVCINSPECT_NO_NATIVE", "") in ("", "0") else None


def _share_native() -> None:
    """Hand the compiled functions other modules call per item to them (or None):
    ``kubeproxy.hash16``'s base32 step."""
    from svcinspect.dataplane.iptables import kubeproxy
    kubeproxy._b32_16 = getattr(_native, "b32_16", None) if _native is not None and _enabled else None


_share_native()


def segments(text: str):
    """``iptables_save._SEGMENTS.findall(text)`` from the compiled scanner, or
    None (not built, switched off, or text it leaves to the regex)."""
    if _native is None or not _enabled:
        return None
    return _native.segments(text)


def native_fold():
    """The compiled counterpart of the parser's loop over a run of rule blocks
    (``_scan.fold``), or None."""
    return _native.fold if _native is not None and _enabled else None


def native_single_blocks():
    """The compiled ``LazyChains.single_blocks`` loop (``_scan.single_blocks``:
    the same list, or None for entries of another shape), or None."""
    return getattr(_native, "single_blocks", None) if _native is not None and _enabled else None


def jump_targets(blocks: list[str]):
    """Every ``KUBE-...`` name after " -j " or " -g " in ``blocks``, as a set, from
    the compiled scanner; None when it is not in use or a block is not ASCII."""
    if _native is None or not _enabled:
        return None
    return _native.jump_targets(blocks)


def set_native(on: bool) -> bool:
    """Use the compiled scanner (when built) or the pure-Python one; returns
    whether the compiled one was in use."""
    global _native
    was, _native = _native is not None, native_scanner if on else None
    _share_native()
    return was
