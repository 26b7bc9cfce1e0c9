"""The nftables-specific model: tables, chains, rules, sets, maps and elements.

Rule statements are kept in the shape libnftables-json(5) gives them (``nft -j``):
plain dicts and lists, e.g. ``{"match": {"op": "==", "left": {"payload":
{"protocol": "ip", "field": "daddr"}}, "right": "@cluster-ips"}}``. The text
parser produces the same shapes, so one evaluator serves both inputs and a test
can compare the two readings of one ruleset. Everything else is frozen
dataclasses; every rule, set and element keeps its source line (text) or its
position in the ``nftables`` array (JSON) for quoting.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from svcinspect.errors import Diagnostic
from svcinspect.model.netfilter import Family

# nft's symbolic chain priorities (ip, ip6, inet families; see nft(8) CHAINS).
PRIORITY_NAMES = {"raw": -300, "mangle": -150, "dstnat": -100, "filter": 0, "security": 50, "srcnat": 100}
FAMILY_OF = {"ip": Family.V4, "ip6": Family.V6}


@dataclass(frozen=True, slots=True)
class NftRule:
    family: str
    table: str
    chain: str
    stored_exprs: tuple[Any, ...] | None  # the statements, or None: decoded from ``text`` when asked (exprs)
    text: str                   # as printed (text input) or rendered back to nft syntax (JSON input)
    line: int                   # text line, or 1-based position in the JSON "nftables" array
    source: str = ""
    handle: int | None = None
    comment: str | None = None
    unknown: str | None = None  # what the parser did not understand (the rule is kept, opaque)

    @property
    def exprs(self) -> tuple[Any, ...]:
        """The libnftables-json statements. A kube-proxy load-balancing rule
        (``dnat ip to numgen random mod N map { ... }``, the bulk of a large
        table) is kept as its text and built again on each use, the same values
        every time: at 20000 services holding them decoded would cost ~120 MB."""
        if self.stored_exprs is not None:
            return self.stored_exprs
        return _deferred()(self.text, self.family)


_DECODE: list = []


def _deferred():
    """parse.decode_deferred, imported once (parse imports this module)."""
    if not _DECODE:
        from svcinspect.dataplane.nftables.parse import decode_deferred

        _DECODE.append(decode_deferred)
    return _DECODE[0]


@dataclass(frozen=True, slots=True)
class NftElement:
    key: Any                    # libnftables-json value: "10.96.0.1", 80, {"concat": [...]}, {"prefix": ...}
    value: Any = None           # map data / verdict ({"goto": {"target": ...}}), None in a set
    comment: str | None = None
    line: int = 0
    text: str = ""


@dataclass(frozen=True, slots=True)
class NftSet:
    family: str
    table: str
    name: str
    is_map: bool
    key_type: tuple[str, ...]
    data_type: str | None
    flags: tuple[str, ...]
    elements: tuple[NftElement, ...]
    comment: str | None = None
    timeout: int | None = None   # seconds
    line: int = 0
    source: str = ""
    handle: int | None = None
    size: int | None = None


@dataclass(frozen=True, slots=True)
class NftChain:
    family: str
    table: str
    name: str
    rules: tuple[NftRule, ...]
    type: str | None = None      # filter / nat / route for a base chain
    hook: str | None = None
    priority: int | None = None
    priority_text: str | None = None  # as printed: "dstnat - 10"
    policy: str | None = None
    comment: str | None = None
    line: int = 0
    source: str = ""
    handle: int | None = None
    device: str | None = None

    @property
    def is_base(self) -> bool:
        return self.hook is not None


@dataclass(frozen=True, slots=True)
class NftTable:
    family: str
    name: str
    chains: dict[str, NftChain]
    sets: dict[str, NftSet]
    comment: str | None = None
    line: int = 0
    source: str = ""
    handle: int | None = None

    @property
    def address_family(self) -> Family | None:
        return FAMILY_OF.get(self.family)


@dataclass(frozen=True, slots=True)
class NftRuleset:
    """What ``nft list ruleset`` (or one table, text or JSON) showed."""

    tables: tuple[NftTable, ...]
    diagnostics: tuple[Diagnostic, ...] = ()
    origin: tuple[str, ...] = ()
    form: str = "text"          # "text" or "json"
    complete: bool = True       # False: the paste was elided or truncated
    dataplane: ClassVar[str] = "nftables"

    @property
    def families(self) -> tuple[Family, ...]:
        out = []
        for t in self.tables:
            fam = t.address_family
            if fam is not None and fam not in out and t.name == "kube-proxy":
                out.append(fam)
        return tuple(sorted(out, key=int))

    def kube_proxy(self, family: Family) -> NftTable | None:
        for t in self.tables:
            if t.name == "kube-proxy" and t.address_family == family:
                return t
        return None

    def table(self, name: str, family: Family) -> NftTable | None:
        """The table holding kube-proxy's ``name`` ("nat"/"filter") chains of ``family``:
        in nftables mode both kinds live in one ``kube-proxy`` table."""
        return self.kube_proxy(family) if name in ("nat", "filter") else None

    def only(self, families) -> NftRuleset:
        keep = set(families)
        tables = tuple(t for t in self.tables if t.address_family is None or t.address_family in keep)
        return NftRuleset(tables, self.diagnostics, self.origin, self.form, self.complete)

    def decoded_chains(self):  # the iptables model's interface for diagnostics: nothing is lazy here
        return ()

    @property
    def gaps(self) -> tuple[str, ...]:
        """Why this is not the whole ruleset (the iptables model's ``Ruleset.gaps``)."""
        return () if self.complete else ("the nft listing is elided or cut short (see the warnings): what is "
                                         "not in it is unknown, not absent",)

    @property
    def notes(self) -> tuple[str, ...]:
        return ()


@dataclass(frozen=True)
class Parsed:
    """Internal: one parse result before merging several inputs."""

    tables: list[NftTable] = field(default_factory=list)
    diagnostics: list[Diagnostic] = field(default_factory=list)
