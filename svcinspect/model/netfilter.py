"""The netfilter model: Ruleset -> Table -> Chain -> Rule (RuleSpec, Match, Target).

Values only: nothing here reads files or the kernel. Every rule keeps the text it
was read from, its source name and line number, so errors and trace steps can quote
it. Rule bodies are decoded lazily, per chain, by the decoder the parser hands to
:class:`RuleList` (a large dump has ~440k rules; most commands touch a few).
Equality is semantic: line numbers, sources and raw spelling do not count, so a
rule read in kube-proxy's restore order equals the kernel's ``iptables-save`` form.
"""

from __future__ import annotations

import enum
import ipaddress
import operator
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from svcinspect.errors import Diagnostic

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

BUILTIN_CHAINS: dict[str, tuple[str, ...]] = {
    "raw": ("PREROUTING", "OUTPUT"),
    "mangle": ("PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"),
    "filter": ("INPUT", "FORWARD", "OUTPUT"),
    "nat": ("PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"),
    "security": ("INPUT", "FORWARD", "OUTPUT"),
}
TABLE_ORDER = ("raw", "mangle", "filter", "nat", "security")


class Family(enum.IntEnum):
    V4 = 4
    V6 = 6

    @property
    def save_command(self) -> str:
        return "iptables-save" if self is Family.V4 else "ip6tables-save"


@dataclass(frozen=True, slots=True)
class Counters:
    packets: int
    bytes: int

    def __str__(self) -> str:
        return f"[{self.packets}:{self.bytes}]"


@dataclass(frozen=True, slots=True)
class Option:
    """One ``--name arg...`` of a match or target; ``negated`` for ``! --name``."""

    name: str
    args: tuple[str, ...] = ()
    negated: bool = False

    @property
    def value(self) -> str | None:
        return self.args[0] if self.args else None


@dataclass(frozen=True, slots=True)
class Match:
    """A ``-m MODULE`` with its options. Unknown modules are kept as they are."""

    module: str
    options: tuple[Option, ...] = ()

    def option(self, name: str) -> Option | None:
        for opt in self.options:
            if opt.name == name:
                return opt
        return None

    def has(self, name: str) -> bool:
        return self.option(name) is not None

    def value(self, name: str) -> str | None:
        opt = self.option(name)
        return opt.value if opt else None


@dataclass(frozen=True, slots=True)
class Target:
    """``-j NAME`` (or ``-g NAME`` with ``goto=True``) and its options."""

    name: str
    options: tuple[Option, ...] = ()
    goto: bool = False

    def value(self, name: str) -> str | None:
        for opt in self.options:
            if opt.name == name:
                return opt.value
        return None

    def has(self, name: str) -> bool:
        return any(opt.name == name for opt in self.options)


@dataclass(frozen=True, slots=True)
class AddressMatch:
    network: IPNetwork
    negated: bool = False


@dataclass(frozen=True, slots=True)
class ValueMatch:
    """A negatable plain value: protocol, interface name."""

    value: str
    negated: bool = False


@dataclass(frozen=True, slots=True)
class RuleSpec:
    """What a rule matches and does, independent of how it was spelled.

    ``fragment`` is True for ``-f``, False for ``! -f``, None when absent.
    ``leftovers`` keeps tokens that fitted nowhere (the rule is still kept).
    """

    source: AddressMatch | None = None
    destination: AddressMatch | None = None
    protocol: ValueMatch | None = None
    in_interface: ValueMatch | None = None
    out_interface: ValueMatch | None = None
    fragment: bool | None = None
    matches: tuple[Match, ...] = ()
    target: Target | None = None
    leftovers: tuple[str, ...] = ()

    def match(self, module: str) -> Match | None:
        for m in self.matches:
            if m.module == module:
                return m
        return None

    @property
    def comment(self) -> str | None:
        for m in self.matches:
            if m.module == "comment":
                return m.value("--comment")
        return None


@dataclass(frozen=True, slots=True, eq=False)
class Rule:
    """One ``-A`` line, decoded. ``index`` is its 1-based position in the chain."""

    table: str
    chain: str
    index: int
    spec: RuleSpec
    text: str
    line: int = 0
    source: str = ""
    counters: Counters | None = None
    diagnostics: tuple[Diagnostic, ...] = ()

    @property
    def target(self) -> Target | None:
        return self.spec.target

    @property
    def comment(self) -> str | None:
        return self.spec.comment

    def _key(self) -> tuple:
        return (self.table, self.chain, self.spec, self.counters)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Rule) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return f"Rule({self.table}/{self.chain}#{self.index} line {self.line}: {self.text!r})"


# A rule as read, before decoding: (line number, the stripped line).
RawRule = tuple[int, str]


def split_lines(block: str) -> list[str]:
    r"""The lines of ``block``, split at ``\n`` only (as iptables-restore does):
    ``str.splitlines`` also splits at ``\x0b \x0c \x1c-\x1e \x85 \u2028
    \u2029``, which a comment may hold, and would cut such a rule in two.

    >>> split_lines('-A X -m comment --comment "a\x0cb" -j RETURN\n-A X\n')
    ['-A X -m comment --comment "a\x0cb" -j RETURN', '-A X']
    """
    lines = block.split("\n")
    if lines and not lines[-1]:
        lines.pop()
    return lines


def strip_line(line: str) -> str:
    """A line without the blanks around it (spaces and tabs, not the other
    characters ``str.strip`` removes)."""
    return line.strip(" \t")


_STRIP_BLANKS = operator.methodcaller("strip", " \t")  # strip_line, called from C in map()
# Decodes raw rules of one chain: (table, chain, source, raw rules, index of the
# first one) -> rules. Given the whole chain it also flags duplicates.
ChainDecoder = Callable[[str, str, str, Sequence[RawRule], int], tuple[Rule, ...]]


class RuleList(Sequence[Rule]):
    """The rules of a chain, decoded on first access.

    ``raw`` gives the undecoded ``(line, text)`` pairs for cheap scans. The
    parser may hand over ``segments`` instead: ``(first line, block of lines)``
    pairs that are split into raw rules only when someone looks.
    """

    __slots__ = ("_table", "_chain", "_source", "_raw", "_segments", "_decoder", "_rules", "_some")

    def __init__(self, table: str, chain: str, source: str, raw: Sequence[RawRule] | None,
                 decoder: ChainDecoder | None = None, rules: Sequence[Rule] | None = None,
                 segments: Sequence[tuple[int, str]] | None = None):
        self._table, self._chain, self._source = table, chain, source
        self._raw = tuple(raw) if raw is not None else None
        self._segments = segments
        self._decoder = decoder
        self._rules: tuple[Rule, ...] | None = tuple(rules) if rules is not None else None
        self._some: dict[int, Rule] | None = None

    @property
    def raw(self) -> tuple[RawRule, ...]:
        raw = self._raw
        if raw is None:
            out: list[RawRule] = []
            for first, block in self._segments or ():
                if block.count("\n") <= 1:
                    out.append((first, block.strip(" \t\n")))
                else:  # zip/map rather than a generator: 10k rules of KUBE-SERVICES in C
                    lines = split_lines(block)
                    out.extend(zip(range(first, first + len(lines)), map(_STRIP_BLANKS, lines)))
            raw = self._raw = tuple(out)
        return raw

    @property
    def decoded(self) -> bool:
        return self._rules is not None

    def _all(self) -> tuple[Rule, ...]:
        if self._rules is None:
            assert self._decoder is not None
            self._rules = self._decoder(self._table, self._chain, self._source, self.raw, 1)
        return self._rules

    def __len__(self) -> int:
        if self._raw is None and self._segments is not None and len(self._segments) == 1:
            return self._segments[0][1].count("\n") or 1
        return len(self.raw)

    def __getitem__(self, i):  # type: ignore[override]
        if self._rules is not None or not isinstance(i, int):
            return self._all()[i]
        # One rule of a long chain (KUBE-SERVICES has ~10k): decode just that one.
        raw = self.raw
        if i < 0:
            i += len(raw)
        if not 0 <= i < len(raw):
            raise IndexError(i)
        if self._some is None:
            self._some = {}
        rule = self._some.get(i)
        if rule is None:
            assert self._decoder is not None
            rule = self._some[i] = self._decoder(self._table, self._chain, self._source, raw[i:i + 1], i + 1)[0]
        return rule

    def __iter__(self) -> Iterator[Rule]:
        return iter(self._all())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, RuleList):
            return self._all() == other._all()
        if isinstance(other, tuple):
            return self._all() == other
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"RuleList({self._table}/{self._chain}, {len(self)} rules)"


@dataclass(frozen=True, slots=True, eq=False)
class Chain:
    """A chain: built-in (with a policy) or user-defined (``policy`` None)."""

    table: str
    name: str
    rules: RuleList
    policy: str | None = None
    counters: Counters | None = None
    line: int = 0
    source: str = ""
    declared: bool = True

    @property
    def builtin(self) -> bool:
        return self.name in BUILTIN_CHAINS.get(self.table, ())

    def _key(self) -> tuple:
        return (self.table, self.name, self.policy, self.counters, self.rules)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Chain) and self._key() == other._key()

    __hash__ = None  # type: ignore[assignment]


@dataclass(frozen=True, slots=True, eq=False)
class Table:
    name: str
    family: Family
    chains: Mapping[str, Chain]
    source: str = ""
    line: int = 0

    def chain(self, name: str) -> Chain | None:
        return self.chains.get(name)

    def raw_rules(self, name: str) -> tuple[RawRule, ...] | None:
        """A chain's undecoded ``(line, text)`` rules, without building the chain
        when the reader can avoid it (cheap scans over 100k endpoint chains)."""
        quick = getattr(self.chains, "raw_rules", None)
        if quick is not None:
            return quick(name)
        ch = self.chains.get(name)
        return ch.rules.raw if ch is not None else None

    def decoded_chains(self) -> list[Chain]:
        """The chains a lazy reader has built so far (all of them for a plain mapping)."""
        built = getattr(self.chains, "decoded_chains", None)
        return built() if built is not None else list(self.chains.values())

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, Table) and (self.name, self.family) == (other.name, other.family)
                and self.chains == other.chains)

    __hash__ = None  # type: ignore[assignment]


@dataclass(frozen=True, slots=True, eq=False)
class Ruleset:
    """Every table read, of one or both families, plus what the reader noticed.

    ``origin`` says where it came from (file names, ``live:iptables-nft-save``...).
    """

    tables: tuple[Table, ...]
    diagnostics: tuple[Diagnostic, ...] = ()
    origin: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default=())
    # Why the input is not a whole dump, as the reader saw it (no *table header,
    # no COMMIT, a grep): empty for complete iptables-save output. See
    # ``svcinspect.completeness``.
    gaps: tuple[str, ...] = field(default=())

    def table(self, name: str, family: Family = Family.V4) -> Table | None:
        for t in self.tables:
            if t.name == name and t.family == family:
                return t
        return None

    def chain(self, table: str, name: str, family: Family = Family.V4) -> Chain | None:
        t = self.table(table, family)
        return t.chains.get(name) if t else None

    @property
    def families(self) -> tuple[Family, ...]:
        return tuple(sorted({t.family for t in self.tables}))

    def only(self, families) -> Ruleset:
        """The tables of these address families (the same ruleset when that is all of them)."""
        if all(t.family in families for t in self.tables):
            return self
        return Ruleset(tuple(t for t in self.tables if t.family in families), self.diagnostics, self.origin,
                       self.notes, self.gaps)

    def rule_count(self) -> int:
        return sum(len(c.rules) for t in self.tables for c in t.chains.values())

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Ruleset):
            return NotImplemented
        mine = {(t.family, t.name): t for t in self.tables}
        theirs = {(t.family, t.name): t for t in other.tables}
        return mine == theirs

    __hash__ = None  # type: ignore[assignment]


def sorted_tables(tables: Sequence[Table]) -> list[Table]:
    """Tables in iptables-save's usual order (v4 before v6)."""

    def key(t: Table) -> tuple:
        known = TABLE_ORDER.index(t.name) if t.name in TABLE_ORDER else len(TABLE_ORDER)
        return (int(t.family), known, t.name)

    return sorted(tables, key=key)


def sorted_chains(table: Table) -> list[Chain]:
    """Built-in chains in kernel order, then user chains by name."""
    builtins = BUILTIN_CHAINS.get(table.name, ())
    first = [table.chains[n] for n in builtins if n in table.chains]
    rest = sorted((c for n, c in table.chains.items() if n not in builtins), key=lambda c: c.name)
    return first + rest
