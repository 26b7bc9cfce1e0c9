"""The service analysis of a live nat table, done while ``iptables-save`` prints it.

``iptables-save`` prints a table's chain declarations first and then each
chain's rules as one run, the runs in name order: ``KUBE-EXT-*``,
``KUBE-FW-*``, ``KUBE-NODEPORTS``, ``KUBE-SEP-*``, ``KUBE-SERVICES``,
``KUBE-SVC-*``, ``KUBE-SVL-*``, ``KUBE-XLB-*``. So once a chain's run has been
folded (``stream.SaveStream``), every chain whose name sorts before it is
complete, and when a ``KUBE-SVC`` chain arrives, every endpoint chain and
``KUBE-SERVICES`` are in already.

:class:`EarlyServices` uses that to run two steps of
``services.build_service_ports`` during the stream, with services.py's own
functions on views of the chains that have arrived:

- ``services._scan_nat`` on ``KUBE-SERVICES`` and ``KUBE-NODEPORTS`` (once
  both are complete): the entry points of every service port;
- ``services._finish`` of each of those service ports, once every one of its
  per-service chains (``KUBE-SVC/SVL/EXT/FW/XLB-<hash>``) is complete.

What depends on later input stays for the end: the filter table (its REJECT
and DROP entries), the per-service chains no dispatch rule reaches (the rest
of ``_scan_nat``), excerpt gaps, the IPVS leftovers, the other family.
``build_service_ports`` then asks :meth:`EarlyServices.scan_nat` and
:meth:`EarlyServices.finish_all` (through ``nat.chains.early``) instead of
``_scan_nat`` and ``_finish``; each hands back the early answer only when it is
exactly what the call would compute now:

- the table stayed in the shape above to its end: the runs of KUBE chains in
  strictly increasing name order (so each has one run, and one that sorts
  before a folded one had all its rules; the built-in chains, printed first
  in hook order, are not read early), every declaration before the first
  rule, no undeclared chain, one nat table per family (``stream`` checks these
  and attaches nothing otherwise);
- the service port's accumulator is the very object the early step built, and
  the filter scan added nothing to it (names, protocol, entries, warnings);
- the nat scan handed to ``finish_all`` is the stream's (same maps, same scanner);
- the early ``_finish`` built no chain object: it read only the bulk scan's
  maps and the chains' raw text. A service port whose finishing had to build
  (and so maybe decode) a chain is finished again at the end, so the chains
  the final table builds, their order and their decoded diagnostics, are the
  ones the whole-text path gives. The two dispatch chains built for the early
  ``_scan_nat`` are put into the final table's built chains exactly where
  ``_scan_nat`` would have built them (and only if nothing built them before).

Anything else is computed at the end, as before. ``SVCINSPECT_NO_FAST=1``
turns the pre-work of the stream off, and with it this. Only the commands
that build every service port ask for it (:func:`wanted`: `services`, `check`).
"""

from __future__ import annotations

import contextvars
from contextlib import contextmanager

from svcinspect.dataplane.iptables import bulk
from svcinspect.dataplane.iptables import parse as _parse
from svcinspect.model.netfilter import Family, Table

# Off (tests compare the two): the stream does no early analysis; everything is done at the end.
ENABLED = True

# Asked for by the commands that build every service port of what they read
# (live `services`, `check`: see :func:`wanted`); the others (dump, graph, diff...)
# would only pay for it.
_WANTED: contextvars.ContextVar[bool] = contextvars.ContextVar("svcinspect_early_services", default=False)


@contextmanager
def wanted():
    """Within this block, live reads analyse their service ports while the save prints."""
    token = _WANTED.set(True)
    try:
        yield
    finally:
        _WANTED.reset(token)


def is_wanted() -> bool:
    return ENABLED and _WANTED.get()

# Memory: the early answers are held while the stream still holds the save's
# bytes (kept for the whole-text fallback until the end), where the end-of-run
# analysis builds them after those are freed. At 10000 services x 10 endpoints
# (~110k nat chains) that is ~60 MB more at the peak (~290 MB), at 20000 (~220k
# chains) ~73 MB more: 518 MB against 445 MB, over the 500 MB bound. So a nat
# table with more chains than this is analysed at the end, as before.
MAX_CHAINS = 160_000

_DISPATCH = ("KUBE-SERVICES", "KUBE-NODEPORTS")
_HEADS = ("KUBE-SVC-", "KUBE-SVL-", "KUBE-EXT-", "KUBE-FW-", "KUBE-XLB-")
_END = "\U0010ffff"  # sorts after every chain name: the table is complete


class _Hiding(_parse.LazyChains):
    """A table's chains without the two dispatch chains (the early
    ``_scan_nat`` read them): ``_scan_nat`` on it does only its last step."""

    __slots__ = ()

    def __getitem__(self, name: str):
        if name in _DISPATCH:
            raise KeyError(name)
        return super().__getitem__(name)

    def __contains__(self, name: object) -> bool:
        return name not in _DISPATCH and name in self._entries


def _snapshot(acc) -> tuple:
    return len(acc.names), acc.protocol, len(acc.entries), len(acc.filter_entries), len(acc.warnings)


class EarlyServices:
    """One nat table's service analysis, step by step as its chains arrive.

    ``entries`` is the stream's chain map of the table (``_TableBuilder.chains``,
    growing), ``cascades`` and ``dnat`` the stream's bulk scan maps of it."""

    def __init__(self, table: str, source: str, family: Family, line: int, entries: dict,
                 cascades: dict, dnat: dict) -> None:
        self.family = family
        self.entries = entries
        self.ok = True            # False: the table left the shape above; nothing early is used
        self.last = ""            # the greatest KUBE chain name whose run has been folded (set by the stream)
        # What the early steps read: the chains that have arrived, each built
        # into a scratch map (see finish: a port that built one is redone).
        self._scratch: dict = {}
        view = _parse.LazyChains(table, source, entries)
        view._built = self._scratch
        self._table = Table(table, family, view, source, line)
        self._scan = bulk.NatScan(cascades, dnat, entries.keys())
        self._accs: dict | None = None     # the early _scan_nat's accumulators
        self._dispatch_built: dict = {}    # the dispatch chains it built, in order
        self._queue: list = []             # (last chain name, key, its chains) of the ports to finish, in name order
        self._next = 0
        self.ports: dict = {}              # key -> (acc, snapshot, ServicePortRules)
        self.used = 0                      # how many finish_all() handed back from the early analysis
        self._final_scan = None            # the final table's nat scan (attach)

    # --- during the stream ---------------------------------------------------------

    def declarations(self) -> None:
        """Chain declarations were folded after a rule run: the names were not known up front."""
        self.ok = False

    def commit(self) -> None:
        """The table's COMMIT: every chain is complete."""
        self.last = _END

    def advance(self) -> None:
        """Run what the chains folded so far allow (after the round's bulk scans).
        Whatever goes wrong here (hostile input the end-of-run analysis would
        report in its own way) leaves it all to the end."""
        if not self.ok or not ENABLED or not bulk.enabled():
            return
        try:
            self._advance()
        except Exception:
            self.ok = False
            self.ports, self._accs = {}, None

    def _advance(self) -> None:
        last = self.last
        if self._accs is None:
            if last < "KUBE-SERVICES":
                return
            if len(self.entries) > MAX_CHAINS:
                self.ok = False
                return
            self._start()
        queue, i, n = self._queue, self._next, len(self._queue)
        if i >= n or queue[i][0] > last:
            return
        from svcinspect.dataplane.iptables.services import _finish, _finish_plain
        table, scan, scratch, accs, ports, family = self._table, self._scan, self._scratch, self._accs, self.ports, self.family
        while i < n and queue[i][0] <= last:
            _, key, present = queue[i]
            i += 1
            acc = accs[key]
            port = _finish_plain(key, family, acc, scan, present)  # (builds no chain: reads the scan's maps only)
            if port is None:
                port = _finish(key, family, acc, table, scan)
            if scratch:
                scratch.clear()  # it built a chain: finished again at the end (see the module docstring)
                continue
            ports[key] = (acc, _snapshot(acc), port)
        self._next = i

    def _start(self) -> None:
        from svcinspect.dataplane.iptables.services import _scan_nat
        entries = self.entries
        both = {name: entries[name] for name in _DISPATCH if name in entries}
        view = _parse.LazyChains(self._table.name, self._table.source, both)
        accs: dict = {}
        _scan_nat(Table(self._table.name, self.family, view, self._table.source, self._table.line), accs, None)
        self._dispatch_built = view._built
        self._accs = accs
        queue = []
        for key in accs:
            present = tuple(h + key for h in _HEADS if h + key in entries)
            if present:
                queue.append((max(present), key, present))
        queue.sort()
        self._queue = queue

    # --- at the end ------------------------------------------------------------------

    def attach(self, scan) -> bool:
        """The final table's nat scan; False when nothing early can be used. (The
        final chains are the ones whose ``early`` is this object: no reference
        back, so no cycle keeps the table alive when the caller drops it.)"""
        self._table = self._scan = None  # type: ignore[assignment]
        self._scratch = {}
        self._queue = []
        if not self.ok or self._accs is None:
            self.ports = {}
            self._accs = None
            return False
        self._final_scan = scan
        return True

    def scan_nat(self, nat: Table, accs: dict, wanted) -> None:
        """``services._scan_nat(nat, accs, wanted)``, its dispatch part done early."""
        from svcinspect.dataplane.iptables.services import _scan_nat
        early, self._accs = self._accs, None  # handed over once: a second analysis starts afresh
        chains = nat.chains
        built = getattr(chains, "_built", None)
        if (early is None or wanted is not None or accs or getattr(chains, "early", None) is not self
                or nat.family != self.family
                or built is None or any(name in built for name in _DISPATCH) or not bulk.enabled()):
            self.ports = {}
            return _scan_nat(nat, accs, wanted)
        built.update(self._dispatch_built)  # where _scan_nat would have built them
        self._dispatch_built = {}
        accs.update(early)
        rest = _Hiding(nat.name, chains._source, chains._entries)
        rest._built = built
        _scan_nat(Table(nat.name, nat.family, rest, nat.source, nat.line), accs, None)

    def finish_all(self, accs: dict, family: Family, nat: Table | None, scan) -> list:
        """``[services._finish(key, family, acc, nat, scan) for key, acc in
        accs.items()]``, each one's early answer where it is exactly that (see
        the module docstring)."""
        from svcinspect.dataplane.iptables.services import _finish

        ports, out = self.ports, []
        same = (scan is self._final_scan and scan is not None and family is self.family and nat is not None
                and getattr(nat.chains, "early", None) is self)
        pop, append, used = ports.pop, out.append, 0
        for key, acc in accs.items():
            got = pop(key, None)
            if same and got is not None and got[0] is acc and got[1] == _snapshot(acc):
                used += 1
                append(got[2])
            else:
                append(_finish(key, family, acc, nat, scan))
        self.used += used
        return out
