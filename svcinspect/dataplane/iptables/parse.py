"""Read ``iptables-save`` / ``ip6tables-save`` text (and ``iptables -S``) into the model.

Lenient by default: anything odd becomes a :class:`Diagnostic` with the source,
line number and text, and the rule is kept. ``strict=True`` turns the first
diagnostic into a :class:`ParseError`. Input that is not a dump at all raises
:class:`NotADumpError` saying what it looks like and what to run instead.

Two passes keep large dumps fast: :func:`parse_iptables_save` only splits lines
into tables and chains (str methods, no tokenising); rule bodies are decoded by
:func:`decode_rule` when a chain's rules are first used.
"""

from __future__ import annotations

import ipaddress
import operator
import re
from collections.abc import Mapping
from functools import lru_cache

from svcinspect.errors import Diagnostic, NotADumpError, ParseError, Severity
from svcinspect.dataplane.iptables.kubeproxy import interpret_probability
from svcinspect.model.netfilter import (
    AddressMatch,
    Chain,
    Counters,
    Family,
    Match,
    Option,
    RawRule,
    Rule,
    RuleList,
    Ruleset,
    RuleSpec,
    Table,
    Target,
    ValueMatch,
    split_lines,
)
from svcinspect.dataplane.iptables import bulk
from svcinspect.parse.paste import clean_paste, describe_filter
from svcinspect.parse.recognise import describe_other_input, looks_like_prose

_TABLE_NAME = re.compile(r"[a-z][a-z0-9_]*")

# Match modules iptables ships (so a dump using them is "recognised"); the
# evaluator understands only some of them and says so when it meets the others.
KNOWN_MODULES = frozenset("""
addrtype ah bpf cgroup cluster comment connbytes connlabel connlimit connmark conntrack
cpu dccp devgroup dscp dst ecn esp eui64 frag hashlimit hbh helper hl icmp icmp6
iprange ipv6header ipvs length limit mac mark mh multiport nfacct osf owner physdev
pkttype policy quota rateest realm recent rpfilter rt sctp set socket state statistic
string tcp tcpmss time tos ttl u32 udp udplite
""".split())

KNOWN_TARGETS = frozenset("""
ACCEPT DROP REJECT RETURN QUEUE DNAT SNAT MASQUERADE REDIRECT NETMAP MARK CONNMARK
LOG NFLOG ULOG TRACE AUDIT CT NOTRACK CHECKSUM TCPMSS TCPOPTSTRIP TOS DSCP ECN TTL HL
CLASSIFY NFQUEUE SET SECMARK CONNSECMARK TPROXY TEE IDLETIMER LED RATEEST SYNPROXY
CLUSTERIP HMARK
""".split())

# Options whose single argument may look like an option (``--comment "-x"``).
_ONE_ARG = frozenset({"--comment", "--log-prefix", "--nflog-prefix", "--string",
                      "--hex-string", "--name", "--nfacct-name"})

_GENERIC = {
    "-s": "s", "--source": "s", "--src": "s",
    "-d": "d", "--destination": "d", "--dst": "d",
    "-p": "p", "--protocol": "p",
    "-i": "i", "--in-interface": "i",
    "-o": "o", "--out-interface": "o",
    "-f": "f", "--fragment": "f",
    "-m": "m", "--match": "m",
    "-j": "j", "--jump": "j",
    "-g": "g", "--goto": "g",
    "-c": "c", "--set-counters": "c",
}


class _Unbalanced(ValueError):
    pass


def tokenize(body: str) -> list[str]:
    """Split a rule body like iptables-restore does: whitespace, ``"..."`` and
    ``'...'`` quoting with backslash escapes.

    >>> tokenize('-m comment --comment "a \\\\"b\\\\" c" -j X')
    ['-m', 'comment', '--comment', 'a "b" c', '-j', 'X']
    """
    if '"' not in body and "'" not in body:
        return body.split()
    if "\\" not in body and "'" not in body:
        # Fast path: double quotes only, each quoted word delimited by spaces.
        parts = body.split('"')
        if len(parts) % 2 == 1 and all(
            (i == 0 or not parts[i] or parts[i][0].isspace())
            and (i == len(parts) - 1 or not parts[i] or parts[i][-1].isspace())
            for i in range(0, len(parts), 2)
        ):
            out: list[str] = []
            for i, part in enumerate(parts):
                if i % 2:
                    out.append(part)
                else:
                    out.extend(part.split())
            return out
    return _tokenize_slow(body)


def _tokenize_slow(body: str) -> list[str]:
    out: list[str] = []
    cur: list[str] = []
    have = False
    quote = ""
    i, n = 0, len(body)
    while i < n:
        ch = body[i]
        if quote:
            if ch == "\\" and i + 1 < n and body[i + 1] in (quote, "\\"):
                cur.append(body[i + 1])
                i += 2
                continue
            if ch == quote:
                quote = ""
            else:
                cur.append(ch)
        elif ch in "\"'":
            quote, have = ch, True
        elif ch.isspace():
            if have:
                out.append("".join(cur))
                cur, have = [], False
        else:
            cur.append(ch)
            have = True
        i += 1
    if quote:
        raise _Unbalanced("unterminated quote (truncated line?)")
    if have:
        out.append("".join(cur))
    return out


@lru_cache(maxsize=65536)
def parse_network(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    """``10.0.0.1``, ``10.0.0.1/32``, ``10.0.0.0/255.0.0.0``, ``fd00::1/128`` -> network."""
    return ipaddress.ip_network(text, strict=False)


def decode_rule(table: str, chain: str, index: int, raw: RawRule, source: str) -> Rule:
    """Decode one raw ``-A`` line into a :class:`Rule`; never raises.

    Problems (unknown module, unbalanced quote, stray token) become diagnostics
    on the rule, and what could not be placed is kept in ``spec.leftovers``.
    """
    line, text = raw
    counters = None
    body = text
    if body.startswith("["):
        end = body.find("]")
        counters = _parse_counters(body[: end + 1])
        body = body[end + 1:].lstrip()
    # "-A CHAIN rest" (the chain was already split off by the scanner).
    rest = body[3 + len(chain):] if body.startswith("-A ") else body
    diags: list[Diagnostic] = []
    try:
        spec = decode_spec(rest, diags)
    except _Unbalanced as exc:
        diags.append(Diagnostic(Severity.WARNING, str(exc), source, line, text))
        spec = RuleSpec(leftovers=tuple(rest.split()))
    else:
        if diags:
            diags = [Diagnostic(d.severity, d.message, source, line, text) for d in diags]
    return Rule(table, chain, index, spec, text, line, source, counters, tuple(diags))


_RAW_COMMENT = re.compile(r' --comment (?:"((?:[^"\\]|\\.)*)"|(\S+))')
_UNESCAPE = re.compile(r"\\(.)")


def raw_comment(text: str) -> str | None:
    r"""The ``--comment`` of a raw rule line, unquoted, without decoding the rule.

    >>> raw_comment('-A X -m comment --comment "a \\"b\\" c" -j Y')
    'a "b" c'
    """
    m = _RAW_COMMENT.search(text)
    if m is None:
        return None
    if m.group(1) is None:
        return m.group(2)
    quoted = m.group(1)
    return quoted if "\\" not in quoted else _UNESCAPE.sub(r"\1", quoted)


def raw_target(text: str) -> tuple[str, bool] | None | bool:
    """``(target, goto)`` of a raw rule line, ``None`` when it has no target, or
    ``False`` when only the decoder can tell (quotes after the flag, tabs, long
    options, a truncated line).

    >>> raw_target('-A KUBE-SERVICES -m comment --comment "a -j b" -j KUBE-SVC-X')
    ('KUBE-SVC-X', False)
    """
    j = text.rfind(" -j ")
    g = text.rfind(" -g ")
    i = j if j > g else g
    if "\t" in text or "--jump" in text or "--goto" in text:
        return False
    if i < 0:
        # No flag: no target, unless the line ends in a bare flag (truncated) or
        # a quote could hide something.
        if text.endswith((" -j", " -g")) or '"' in text:
            return False
        return None
    rest = text[i + 4:]
    if '"' in rest:
        return False
    name = rest.split(" ", 1)[0]
    if not name:
        return False
    return name, i == g


def decode_chain(table: str, chain: str, source: str, raws, first: int = 1) -> tuple[Rule, ...]:
    """Decode raw rules of a chain (``first`` is the index of ``raws[0]``); flags
    rules identical to an earlier one (a dump pasted twice, or a hand-made copy),
    which skews a probability cascade."""
    rules = []
    seen: dict[str, int] = {}
    for i, raw in enumerate(raws, first):
        rule = decode_rule(table, chain, i, raw, source)
        body = raw[1].split("] ", 1)[1] if raw[1].startswith("[") and "] " in raw[1] else raw[1]
        first = seen.setdefault(body, raw[0])
        if first != raw[0]:
            dup = Diagnostic(Severity.WARNING, f"duplicate of the rule on line {first} (pasted twice?)", source, raw[0], raw[1])
            rule = Rule(rule.table, rule.chain, rule.index, rule.spec, rule.text, rule.line, rule.source,
                        rule.counters, rule.diagnostics + (dup,))
        rules.append(rule)
    return tuple(rules)


def decode_spec(body: str, diags: list[Diagnostic] | None = None) -> RuleSpec:
    """Decode the part of a rule after ``-A CHAIN`` into a :class:`RuleSpec`.

    Accepts kube-proxy's order (``-m comment --comment C -m tcp -p tcp -d X --dport 80``)
    and the kernel's (``-d X/32 -p tcp -m comment --comment "C" -m tcp --dport 80``):
    ``--options`` belong to the last ``-m`` module (or the target after ``-j``),
    and ``--dport`` after a bare ``-p tcp`` opens the implicit protocol match.
    """
    toks = tokenize(body)
    n = len(toks)
    src = dst = proto = iin = iout = None
    frag: bool | None = None
    matches: list[tuple[str, list[Option]]] = []
    target_name: str | None = None
    target_goto = False
    target_opts: list[Option] = []
    current: list[Option] | None = None  # options list being filled
    leftovers: list[str] = []
    i = 0
    while i < n:
        tok = toks[i]
        neg = False
        if tok == "!":
            neg = True
            i += 1
            if i >= n:
                leftovers.append("!")
                break
            tok = toks[i]
        kind = _GENERIC.get(tok)
        if kind is not None:
            if kind == "f":
                frag = not neg
                i += 1
                continue
            if i + 1 >= n:
                leftovers.append(tok)
                _note(diags, f"option {tok} has no value (truncated line?)")
                break
            arg = toks[i + 1]
            i += 2
            if kind == "s" or kind == "d":
                try:
                    am = AddressMatch(parse_network(arg), neg)
                except ValueError:
                    _note(diags, f"bad address {arg!r} after {tok}")
                    leftovers.extend((("!",) if neg else ()) + (tok, arg))
                    continue
                if kind == "s":
                    src = am
                else:
                    dst = am
            elif kind == "p":
                proto = ValueMatch(arg.lower(), neg)
            elif kind == "i":
                iin = ValueMatch(arg, neg)
            elif kind == "o":
                iout = ValueMatch(arg, neg)
            elif kind == "m":
                if arg not in KNOWN_MODULES:
                    _note(diags, f"unknown match module '{arg}' (kept, not evaluated)")
                current = []
                matches.append((arg, current))
            elif kind == "j" or kind == "g":
                target_name, target_goto = arg, kind == "g"
                current = target_opts
            elif kind == "c":
                # -c PKTS BYTES inside a restore line: counters, not a match.
                if i < n:
                    i += 1
            continue
        if tok.startswith("--"):
            j = i + 1
            if tok in _ONE_ARG:
                j = min(i + 2, n)
            else:
                while j < n:
                    t = toks[j]
                    if t == "!" or (t[0] == "-" and len(t) > 1 and not (t[1].isdigit() and _is_number(t))):
                        break
                    j += 1
            opt = Option(tok, tuple(toks[i + 1:j]), neg)
            if current is None:
                if proto is not None and proto.value in ("tcp", "udp", "sctp", "icmp", "icmpv6", "udplite", "dccp"):
                    current = []
                    matches.append((proto.value if proto.value != "icmpv6" else "icmp6", current))
                else:
                    leftovers.extend((("!",) if neg else ()) + tuple(toks[i:j]))
                    _note(diags, f"option {tok} before any -m module")
                    i = j
                    continue
            current.append(opt)
            i = j
            continue
        leftovers.append(("! " if neg else "") + tok)
        _note(diags, f"unexpected token {tok!r}")
        i += 1
    target = None
    if target_name is not None:
        target = Target(target_name, tuple(target_opts), target_goto)
    if diags is not None:
        for module, opts in matches:
            _check_values(module, opts, diags)
        if target_name is not None:
            _check_values("-j " + target_name, target_opts, diags)
    return RuleSpec(src, dst, proto, iin, iout, frag,
                    tuple(Match(m, tuple(o)) for m, o in matches), target, tuple(leftovers))


# --- values checked where they are decoded ----------------------------------
# A value iptables would never print (a corrupted or hand-edited dump) is a
# diagnostic on its rule (an error with --strict); the evaluator then treats the
# test as unknown instead of failing on it.

_NUMBER = re.compile(r"(?:0[xX][0-9a-fA-F]{1,8}|[0-9]{1,10})\Z")
_PORT_TEXT = re.compile(r"[0-9]{1,5}\Z")
_PORT_OPTIONS = frozenset({"--dport", "--sport", "--destination-port", "--source-port"})
_MULTIPORT_OPTIONS = frozenset({"--dports", "--sports", "--ports", "--destination-ports", "--source-ports"})
_MARK_OPTIONS = frozenset({"--set-xmark", "--set-mark", "--or-mark", "--and-mark", "--xor-mark", "--mark"})


def parse_number(text: str) -> int | None:
    """A 32-bit mark or mask as iptables prints it (``0x4000``, ``16384``), else None.

    >>> parse_number("0x4000"), parse_number("zz"), parse_number("0x100000000")
    (16384, None, None)
    """
    if not _NUMBER.match(text):
        return None
    value = int(text, 0) if not text.isdigit() else int(text)
    return value if value <= 0xFFFFFFFF else None


def parse_mark(text: str) -> tuple[int, int | None] | None:
    """``VALUE[/MASK]`` -> (value, mask or None), or None when malformed."""
    value, sep, mask = text.partition("/")
    v = parse_number(value)
    m = parse_number(mask) if sep else None
    if v is None or (sep and m is None):
        return None
    return v, m


def parse_port_range(text: str) -> tuple[int, int] | None:
    """``80``, ``30000:32767``, ``:1024``, ``1024:`` -> (low, high), or None when malformed.

    >>> parse_port_range("80"), parse_port_range("80:x"), parse_port_range("5x0")
    ((80, 80), None, None)
    """
    lo, sep, hi = text.partition(":")
    if not sep:
        lo = hi = text
    try:
        low = int(lo) if lo else 0
        high = int(hi) if hi else 65535
    except ValueError:
        return None
    if not ((not lo or _PORT_TEXT.match(lo)) and (not hi or _PORT_TEXT.match(hi))):
        return None
    if not 0 <= low <= high <= 65535:
        return None
    return low, high


def parse_nat_destination(text: str) -> tuple[str, str | None] | None:
    """``ADDR[-ADDR][:PORT[-PORT]]`` (IPv6 in brackets) -> (first address, port
    text or None), or None when malformed."""
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else None
        if rest and port is None:
            return None
    elif text.count(":") == 1:
        host, port = text.split(":")
    elif text.count(":") == 0:
        host, port = text, None
    else:
        host, port = text, None  # a bare IPv6 address
    first = host.split("-")[0]
    for addr in host.split("-"):
        try:
            ipaddress.ip_address(addr)
        except ValueError:
            return None
    if port is not None:
        for part in port.split("-"):
            if not _PORT_TEXT.match(part) or int(part) > 65535:
                return None
    return first, port


def _check_values(module: str, opts: list[Option], diags: list[Diagnostic]) -> None:
    for opt in opts:
        name, value = opt.name, opt.args[0] if opt.args else None
        if value is None:
            continue
        bad = None
        if name in _PORT_OPTIONS and module in ("tcp", "udp", "sctp", "udplite", "dccp"):
            if parse_port_range(value) is None:
                bad = "not a port or port range"
        elif name in _MULTIPORT_OPTIONS and module == "multiport":
            if any(parse_port_range(p) is None for p in value.split(",")):
                bad = "not a list of ports or port ranges"
        elif name in _MARK_OPTIONS and module in ("mark", "-j MARK", "-j CONNMARK", "connmark"):
            if parse_mark(value) is None:
                bad = "not a 32-bit VALUE[/MASK]"
        elif name in ("--to-destination", "--to-source") and module in ("-j DNAT", "-j SNAT"):
            if parse_nat_destination(value) is None:
                bad = "not ADDRESS[:PORT]"
        elif name == "--probability" and module == "statistic":
            if interpret_probability(value).exact is None:
                bad = "not a probability between 0 and 1"
        if bad:
            shown = value if len(value) <= 40 else value[:40] + "..."
            effect = "its effect is not simulated" if module.startswith("-j ") else "the test is taken as unknown"
            _note(diags, f"bad value {shown!r} for {name}: {bad} ({effect})")


def _is_number(tok: str) -> bool:
    try:
        float(tok)
        return True
    except ValueError:
        return False


def _note(diags: list[Diagnostic] | None, message: str) -> None:
    if diags is not None:
        severity = Severity.INFO if message.startswith("unknown match") else Severity.WARNING
        diags.append(Diagnostic(severity, message))


def _parse_counters(text: str) -> Counters | None:
    try:
        p, b = text.strip("[]").split(":")
        return Counters(int(p), int(b))
    except ValueError:
        return None


# --- the line scanner -------------------------------------------------------

_PROMPT = re.compile(r"[#$%]\s*(sudo\s+)?\S*(iptables|ip6tables|nft|ipvsadm|kubectl|grep|cat|diff)\b|^\S*@[^\s:]+:\S*\s*[#$]\s*$")
_COMMAND = re.compile(r"^(sudo\s+)?(iptables|ip6tables|iptables-save|ip6tables-save|iptables-legacy-save|iptables-nft-save|nft|grep|cat|kubectl)\b")
_V6_ADDR = re.compile(r" -[sd] [0-9a-fA-F]*:[0-9a-fA-F:.]*[/ ]")


class _TableBuilder:
    __slots__ = ("name", "family", "source", "line", "chains", "committed", "undeclared")

    def __init__(self, name: str, family: Family | None, source: str, line: int):
        self.name, self.family, self.source, self.line = name, family, source, line
        # chain name -> [policy, counters, line, [(first line, block of rule lines)], declared]
        self.chains: dict[str, list] = {}
        self.committed = False
        self.undeclared: list[tuple[str, int]] = []

    def declare(self, name: str, policy: str | None, counters: Counters | None, line: int) -> bool:
        entry = self.chains.get(name)
        if entry is not None and entry[4]:
            return False
        if entry is None:
            self.chains[name] = [policy, counters, line, [], True]
        else:
            entry[0], entry[1], entry[2], entry[4] = policy, counters, line, True
        return True


# One regex pass cuts the text into segments, each one of: a run of consecutive
# rules of one chain, a run of chain declarations, or any other single line.
# Python then loops over ~one segment per chain instead of one per line.
_SEGMENTS = re.compile(
    r"(?P<r>^[ \t]*(?:\[\d+:\d+\][ \t]*)?-A[ \t]+(?P<c>\S+)[^\n]*\n"
    r"(?:[ \t]*(?:\[\d+:\d+\][ \t]*)?-A[ \t]+(?P=c)(?=[ \t\n])[^\n]*\n)*)"
    r"|(?P<d>(?:^[ \t]*:[^\n]*\n)+)"
    r"|(?P<o>^[^\n]*\n)",
    re.M,
)


_NO_COUNTERS = ("0", "0")  # [0:0], on nearly every chain: one tuple for all


def _declared(policy: str, pk: str, by: str, line: int) -> list:
    """The chain map's entry for a declaration ``:NAME POLICY [pk:by]`` on ``line``
    (as the compiled ``fold_decls`` makes it): [policy, None for "-"; counters,
    None without; line; the rule runs, none yet; declared]."""
    return [None if policy in ("-", "") else policy,
            ((_NO_COUNTERS if pk == by == "0" else (pk, by)) if pk else None), line, [], True]


_DECL = re.compile(r"^[ \t]*:(\S*)(?:[ \t]+(\S+))?(?:[ \t]+\[(\d+):(\d+)\])?[^\n]*$", re.M)


def parse_iptables_save(text: str, source: str = "<stdin>", *, strict: bool = False,
                        family: Family | None = None) -> Ruleset:
    """Parse a whole ``iptables-save`` (or ``ip6tables-save``, ``iptables -S``) text.

    ``family`` forces the address family; otherwise the ``# Generated by
    ip6tables-save`` header or IPv6 addresses in the rules decide (default IPv4).
    Raises :class:`NotADumpError` when nothing in the text is a dump line, and
    :class:`ParseError` on the first diagnostic when ``strict``.
    """
    if "\x00" in text[:4096]:
        raise NotADumpError("binary data, not iptables-save text; run `iptables-save > FILE` and pass that file", source)
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    if not text.endswith("\n"):
        text += "\n"
    cleaned = clean_paste(text, source)
    text = cleaned.text
    diags: list[Diagnostic] = list(cleaned.diagnostics)
    tables: list[_TableBuilder] = []
    cur: _TableBuilder | None = None
    loose: _TableBuilder | None = None  # rules seen outside any *table block
    next_family = family
    recognised = 0
    unrecognised: list[tuple[int, str]] = []

    def builder() -> _TableBuilder:
        nonlocal loose
        if cur is not None:
            return cur
        if loose is None:
            loose = _TableBuilder("", next_family, source, 0)
        return loose

    other_format = describe_other_input(text)
    if other_format:
        raise NotADumpError(other_format, source)
    rule_lines = 0
    lineno = 1
    segments = bulk.segments(text)
    fold = bulk.native_fold() if segments is not None else None
    fold_decls = bulk.native_scanner.fold_decls if fold is not None else None
    skip = 0
    for index, (block, chain, decls, other) in enumerate(segments if segments is not None else _SEGMENTS.findall(text)):
        if index < skip:  # rule blocks the compiled fold already placed
            continue
        if block and fold is not None:  # this loop's next branch, for the whole run of rule blocks
            tb = cur if cur is not None else builder()
            skip, lineno, lines, count = fold(segments, index, tb.chains, tb.undeclared, lineno)
            rule_lines += lines
            recognised += count
            continue
        if block:
            lines = block.count("\n")
            rule_lines += lines
            tb = cur if cur is not None else builder()
            entry = tb.chains.get(chain)
            if entry is None:
                entry = tb.chains[chain] = [None, None, lineno, [], False]
                tb.undeclared.append((chain, lineno))
            entry[3].append((lineno, block))
            lineno += lines
            recognised += 1
            continue
        if decls:
            tb = cur if cur is not None else builder()
            chains = tb.chains
            # The compiled loop adds the new chains and leaves the rest (empty
            # names, repeats) to this one, in order.
            left = fold_decls(decls, chains, lineno, _NO_COUNTERS) if fold is not None else None
            rows = ((i, *row) for i, row in enumerate(_DECL.findall(decls))) if left is None else left
            for i, name, policy, pk, by in rows:
                if not name:
                    unrecognised.append((lineno + i, split_lines(decls)[i]))
                    continue
                entry = chains.get(name)
                if entry is None:
                    chains[name] = _declared(policy, pk, by, lineno + i)
                elif entry[4]:
                    diags.append(Diagnostic(Severity.WARNING, f"chain {name} declared twice", source, lineno + i, ":" + name))
                else:  # rules came first (a hand-made file); the declaration completes it
                    entry[0], entry[1], entry[4] = (None if policy in ("-", "") else policy), ((pk, by) if pk else None), True
            lineno += decls.count("\n")
            recognised += 1
            continue
        here = lineno
        lineno += 1
        line = other.strip()
        if not line:
            continue
        c = line[0]
        if c == "*" and not _TABLE_NAME.fullmatch(line[1:].strip()):
            unrecognised.append((here, other))  # "* item" in Markdown, not a table header
        elif c == "*":
            name = line[1:].strip()
            if cur is not None and not cur.committed:
                diags.append(Diagnostic(Severity.WARNING, f"table {cur.name} has no COMMIT before the next table", source, here, other))
            cur = _TableBuilder(name, next_family, source, here)
            tables.append(cur)
            recognised += 1
        elif c == "#":
            if line.startswith("# Generated by"):
                if family is None:
                    next_family = Family.V6 if "ip6tables" in line else Family.V4
            elif "Warning:" in line:
                diags.append(Diagnostic(Severity.INFO, "the dump says other iptables tables exist on the node ("
                                        + line.lstrip("# ").strip() + ")", source, here, other))
        elif line == "COMMIT":
            if cur is None:
                diags.append(Diagnostic(Severity.WARNING, "COMMIT outside a table", source, here, other))
            else:
                cur.committed = True
                cur = None
            recognised += 1
        elif line.startswith("-N "):
            builder().declare(line[3:].strip(), None, None, here)
            recognised += 1
        elif line.startswith("-P ") and len(line.split()) >= 3:
            _, name, policy = line.split()[:3]
            tb = builder()
            entry = tb.chains.get(name)
            if entry is None:
                tb.declare(name, policy, None, here)
            else:
                entry[0] = policy
            recognised += 1
        else:
            unrecognised.append((here, other))

    if recognised == 0:
        raise NotADumpError(_describe_non_dump(text), source)
    if len(unrecognised) >= 20 and len(unrecognised) > 2 * rule_lines:
        # A file that is mostly something else (a README with a rule or two in it):
        # refuse, rather than show an empty table and hundreds of warnings.
        why = looks_like_prose([ln.strip() for _, ln in unrecognised]) or "this is mostly not iptables-save text"
        raise NotADumpError(f"{why}: {len(unrecognised)} of its lines are not dump lines and only {rule_lines} are "
                            f"rules; pass the output of `iptables-save` (or cut the rules out of this file)", source)

    for lineno, raw in unrecognised:
        diags.append(Diagnostic(Severity.WARNING, _why_skipped(raw), source, lineno, raw))
    if cur is not None and not cur.committed:
        diags.append(Diagnostic(Severity.WARNING, f"table {cur.name} has no COMMIT (truncated dump?)", source, cur.line, "*" + cur.name))

    gaps: list[str] = []
    grep = describe_filter(cleaned.commands)
    if grep:
        gaps.append(grep)
    for tb in tables:
        if not tb.committed:
            gaps.append(f"table {tb.name} has no COMMIT: the dump is cut short ({source} line {tb.line})")
    built: list[Table] = [_finish(tb, diags) for tb in tables]
    if loose is not None:
        loose_tables = _split_loose(loose, diags)
        built.extend(loose_tables)
        gaps.append("rules without a *table header (an excerpt, not a whole iptables-save): "
                    + ", ".join(f"{len(t.chains)} chain(s) taken as {t.name}" for t in loose_tables))
    built = _merge_duplicates(built, diags)
    ruleset = Ruleset(tuple(built), tuple(diags), (source,), gaps=tuple(gaps))
    if strict:
        everything = list(diags) + [d for d in _decode_diagnostics(ruleset)]
        if everything:
            first = everything[0]
            more = f" (and {len(everything) - 1} more)" if len(everything) > 1 else ""
            raise ParseError(f"{first.message}: {first.text.strip()[:120]}{more}", source, first.line)
    return ruleset


def _decode_diagnostics(ruleset: Ruleset):
    for t in ruleset.tables:
        for ch in t.chains.values():
            for r in ch.rules:
                yield from r.diagnostics


def _finish(tb: _TableBuilder, diags: list[Diagnostic]) -> Table:
    fam = tb.family
    if fam is None:
        fam = Family.V4
        for entry in list(tb.chains.values())[:200]:
            if any(_V6_ADDR.search(block) for _, block in entry[3][:5]):
                fam = Family.V6
                break
    if tb.undeclared and tb.name:
        chain, lineno = tb.undeclared[0]
        more = f" (and {len(tb.undeclared) - 1} more chains)" if len(tb.undeclared) > 1 else ""
        diags.append(Diagnostic(Severity.WARNING, f"chain {chain} is used in table {tb.name} but never declared{more}", tb.source, lineno))
    return Table(tb.name, fam, LazyChains(tb.name, tb.source, tb.chains), tb.source, tb.line)


class BuiltOnDemand(Mapping[str, Chain]):
    """What the lazy chain maps (this module's and ``save_index``'s) share: the
    chains built so far in ``_built``, and equality by content."""

    __slots__ = ()
    _built: dict[str, Chain]

    def decoded_chains(self) -> list[Chain]:
        """The chains built so far (for reporting the diagnostics of what was read)."""
        return list(self._built.values())

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Mapping):
            return NotImplemented
        return self.keys() == other.keys() and all(self[k] == other[k] for k in self)

    __hash__ = None  # type: ignore[assignment]


class LazyChains(BuiltOnDemand):
    """A table's chains, each built (and its rules split) on first lookup."""

    __slots__ = ("_table", "_source", "_entries", "_built")

    def __init__(self, table: str, source: str, entries: dict[str, list]):
        self._table, self._source, self._entries = table, source, entries
        self._built: dict[str, Chain] = {}

    def __getitem__(self, name: str) -> Chain:
        ch = self._built.get(name)
        if ch is None:
            policy, counters, line, segments, declared = self._entries[name]
            if counters is not None:
                counters = Counters(int(counters[0]), int(counters[1]))
            rules = RuleList(self._table, name, self._source, None, decode_chain, segments=segments)
            ch = self._built[name] = Chain(self._table, name, rules, policy, counters, line, self._source, declared)
        return ch

    def raw_rules(self, name: str) -> tuple[RawRule, ...] | None:
        built = self._built.get(name)
        if built is not None:
            return built.rules.raw
        entry = self._entries.get(name)
        if entry is None:
            return None
        segments = entry[3]
        if len(segments) == 1:  # the usual case: one contiguous block (every KUBE-SEP chain)
            first, block = segments[0]
            if block.count("\n") <= 1:
                return ((first, block.strip(" \t\n")),)
            return tuple(zip(range(first, first + block.count("\n")), map(_STRIP_BLANKS, split_lines(block))))
        return RuleList(self._table, name, self._source, None, None, segments=segments).raw

    def raw_blocks(self):
        """Every chain's rule lines as the scanner cut them (blocks of text), for
        whole-table regex scans that need no per-rule Python (a list, in dump order)."""
        return [block for entry in self._entries.values() for _, block in entry[3]]

    def blocks(self, name: str) -> list[tuple[int, str]] | None:
        """A chain's rules as the scanner cut them: ``(first line, block of lines)``
        runs in dump order (one run in iptables-save output), None when absent.
        For bulk scans (``parse.bulk``) that read many chains without splitting them."""
        entry = self._entries.get(name)
        return None if entry is None else entry[3]

    def names(self):
        """The chain names as a set-like view (``in`` costs no Python call)."""
        return self._entries.keys()

    def single_blocks(self, prefix: str | tuple[str, ...]) -> list[tuple[str, int, str]]:
        """``(chain, first line, block)`` of every chain named ``prefix``... whose
        rules are one block of whole lines (every chain iptables-save prints), in
        dump order: the regions ``parse.bulk`` scans in one pass."""
        native = bulk.native_single_blocks()  # the same list from the compiled scanner, where in use
        got = native(self._entries, prefix) if native is not None else None
        return self._single_blocks_py(prefix) if got is None else got

    def _single_blocks_py(self, prefix: str | tuple[str, ...]) -> list[tuple[str, int, str]]:
        return [(name, e[3][0][0], e[3][0][1]) for name, e in self._entries.items()
                if name.startswith(prefix) and len(e[3]) == 1 and e[3][0][1].endswith("\n")]

    def head(self, name: str) -> tuple[str | None, Counters | None]:
        """A chain's policy and counters, without building it (``render.iptables``)."""
        built = self._built.get(name)
        if built is not None:
            return built.policy, built.counters
        policy, counters = self._entries[name][:2]
        return policy, None if counters is None else Counters(int(counters[0]), int(counters[1]))

    def heads(self, names) -> list[tuple[str | None, str | None, list[tuple[int, str]]]]:
        """For each chain of ``names``: its policy, its counters as iptables-save
        prints them (``str(Counters)``, None without) and its blocks, as
        :meth:`head` and :meth:`blocks` give them (``render.iptables``, for
        every chain of a dump without a Counters object each)."""
        entries, built = self._entries, self._built
        texts = {_NO_COUNTERS: "[0:0]"}
        out = []
        for name in names:
            entry = entries[name]
            if built and name in built:
                ch = built[name]
                out.append((ch.policy, None if ch.counters is None else str(ch.counters), entry[3]))
                continue
            counters = entry[1]
            if counters is None:
                out.append((entry[0], None, entry[3]))
                continue
            text = texts.get(counters)
            if text is None:
                text = texts[counters] = f"[{int(counters[0])}:{int(counters[1])}]"
            out.append((entry[0], text, entry[3]))
        return out

    def __iter__(self):
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries



_STRIP_BLANKS = operator.methodcaller("strip", " \t")
_FILTER_TARGETS = (" -j REJECT", " -j DROP", " -j ACCEPT")
_FILTER_ONLY = ("KUBE-EXTERNAL-SERVICES", "KUBE-FORWARD", "KUBE-FIREWALL", "KUBE-PROXY-FIREWALL", "INPUT", "FORWARD")


def _guess_table(chain: str, texts: list[str]) -> str:
    if chain in _FILTER_ONLY:
        return "filter"
    if chain in ("KUBE-SERVICES", "KUBE-NODEPORTS", "OUTPUT"):
        if texts and all(any(t in text for t in _FILTER_TARGETS) for text in texts):
            return "filter"
    return "nat"


_SHARED_NAMES = ("KUBE-SERVICES", "KUBE-NODEPORTS", "OUTPUT")


def _filter_rule(text: str) -> bool:
    return any(text.endswith(t) or (t + " ") in text for t in _FILTER_TARGETS) and "--match-set" not in text


def _runs(rules: list[tuple[int, str]]) -> list[tuple[int, str]]:
    """(line, text) rules -> scanner segments: runs of consecutive lines."""
    out: list[tuple[int, str]] = []
    for line, text in rules:
        if out and out[-1][0] + out[-1][1].count("\n") == line:
            out[-1] = (out[-1][0], out[-1][1] + text + "\n")
        else:
            out.append((line, text + "\n"))
    return out


def _split_loose(tb: _TableBuilder, diags: list[Diagnostic]) -> list[Table]:
    """Rules with no ``*table`` header (a grep, an excerpt): guess nat or filter per chain."""
    by_table: dict[str, _TableBuilder] = {}
    for name, entry in tb.chains.items():
        entry[3] = _drop_repeats(name, entry[3], tb.source, diags)
        raw = RuleList("", name, "", None, segments=entry[3]).raw
        guess = _guess_table(name, [t for _, t in raw])
        if guess == "nat" and name in _SHARED_NAMES:
            # A grep of KUBE-SERVICES mixes nat jumps with filter REJECT/DROP rules
            # ("has no endpoints"): each rule goes to the table that holds it.
            filt = [(ln, t) for ln, t in raw if _filter_rule(t)]
            if filt:
                nat_rules = [(ln, t) for ln, t in raw if not _filter_rule(t)]
                by_table.setdefault("filter", _TableBuilder("filter", tb.family, tb.source, 0)).chains[name] = \
                    [None, None, filt[0][0], _runs(filt), False]
                entry = [entry[0], entry[1], entry[2], _runs(nat_rules), entry[4]]
        dest = by_table.setdefault(guess, _TableBuilder(guess, tb.family, tb.source, 0))
        dest.chains[name] = entry
    out = []
    for name, dest in sorted(by_table.items()):
        n = sum(len(e[3]) for e in dest.chains.values())
        diags.append(Diagnostic(Severity.INFO, f"no *{name} header: {n} rules in {len(dest.chains)} chains taken as table {name} (guessed from chain names and targets)", tb.source))
        out.append(_finish(dest, diags))
    return out


_COUNTER_PREFIX = re.compile(r"^\[\d+:\d+\]\s*")


def _drop_repeats(chain: str, segments: list, source: str, diags: list[Diagnostic]) -> list:
    """A table-less paste often holds the same rules twice (overlapping greps,
    a block pasted again): keep the first copy of each rule (counters aside) and
    say which lines repeat which. A whole dump is never changed: iptables keeps
    identical rules, and so does the parser there."""
    seen: dict[str, int] = {}
    kept: list[tuple[int, str]] = []
    repeats: list[tuple[int, int]] = []
    for first, block in segments:
        for i, text in enumerate(split_lines(block)):
            body = _COUNTER_PREFIX.sub("", text.strip())
            line = first + i
            if body in seen:
                repeats.append((line, seen[body]))
            else:
                seen[body] = line
                kept.append((line, text))
    if not repeats:
        return segments
    pairs = ", ".join(f"{a} repeats {b}" for a, b in repeats[:8]) + (f" and {len(repeats) - 8} more" if len(repeats) > 8 else "")
    diags.append(Diagnostic(Severity.WARNING, f"{len(repeats)} rule(s) of {chain} pasted more than once, counted once: "
                            f"line {pairs}", source, repeats[0][0]))
    return _runs(kept)


def _merge_duplicates(tables: list[Table], diags: list[Diagnostic]) -> list[Table]:
    seen: dict[tuple[Family, str], int] = {}
    out: list[Table] = []
    for t in tables:
        key = (t.family, t.name)
        if key not in seen:
            seen[key] = len(out)
            out.append(t)
            continue
        prev = out[seen[key]]
        merged = dict(prev.chains.items())
        for name, ch in t.chains.items():
            if name in merged:
                old = merged[name]
                # The same table twice (pasted again, or one file given twice): a
                # rule already there is the same rule, counted once.
                have = {_COUNTER_PREFIX.sub("", text): line for line, text in old.rules.raw}
                again = [(line, have[_COUNTER_PREFIX.sub("", text)]) for line, text in ch.rules.raw
                         if _COUNTER_PREFIX.sub("", text) in have]
                if again:
                    pairs = ", ".join(f"{a} repeats {b}" for a, b in again[:8]) + \
                        (f" and {len(again) - 8} more" if len(again) > 8 else "")
                    diags.append(Diagnostic(Severity.WARNING, f"{len(again)} rule(s) of {name} pasted more than once, "
                                            f"counted once: line {pairs}", ch.source, again[0][0]))
                raw = old.rules.raw + tuple(r for r in ch.rules.raw if _COUNTER_PREFIX.sub("", r[1]) not in have)
                merged[name] = Chain(old.table, name, RuleList(old.table, name, old.source, raw, decode_chain),
                                     old.policy or ch.policy, old.counters or ch.counters, old.line, old.source,
                                     old.declared or ch.declared)
            else:
                merged[name] = ch
        diags.append(Diagnostic(Severity.INFO, f"table {t.name} (IPv{int(t.family)}) appears more than once; rules merged", t.source, t.line))
        out[seen[key]] = Table(prev.name, prev.family, merged, prev.source, prev.line)
    return out


def _why_skipped(raw: str) -> str:
    s = raw.strip()
    if _PROMPT.search(s) or _COMMAND.search(s):
        return "skipped a shell prompt or command line pasted with the dump"
    if s.startswith(("< ", "> ", "---")):
        return "skipped a diff line"
    return "skipped a line that is not iptables-save syntax"


def _describe_non_dump(text: str) -> str:
    lines = [ln.strip() for ln in split_lines(text) if ln.strip()]
    if not lines:
        return "empty input: no iptables-save text; run `iptables-save > FILE` (as root on the node) and pass that file"
    joined = "\n".join(lines[:400])
    diff_lines = sum(1 for ln in lines if ln.startswith(("< ", "> ")) or re.match(r"^\d+(,\d+)?[acd]\d+(,\d+)?$", ln))
    if diff_lines >= max(2, len(lines) // 3):
        return ("this looks like a `diff` of two dumps, not a dump; pass each iptables-save file separately "
                "(svcinspect services --rules before.txt, then --rules after.txt)")
    if re.search(r"^Chain \S+ \((policy \S+|\d+ references)", joined, re.M):
        return "this looks like `iptables -L` output, which loses rule details; run `iptables-save` (or `iptables-save -c`) instead"
    if re.search(r"^(table (ip|ip6|inet|arp|bridge|netdev) \S+|chain \S+) \{", joined, re.M):
        return ("this looks like an nftables ruleset (`nft list ruleset`), not iptables-save output: "
                "read it with svcinspect.dataplane.nftables.parse (the command line does so by itself)")
    if re.search(r"IP Virtual Server|^(TCP|UDP)\s+\S+:\d+\s+\w+", joined, re.M):
        return ("this looks like `ipvsadm -Ln` output: kube-proxy runs in IPVS mode, where Services are "
                "load-balanced by IPVS, which svcinspect does not read; pass `iptables-save` of the node for the "
                "iptables part (marks, masquerade, filtering), and read the virtual servers in this output")
    if joined.lstrip().startswith(("{", "apiVersion", "kind:")):
        return "this looks like Kubernetes objects; pass them with --objects, and the rules (iptables-save output) with --rules"
    prose = looks_like_prose(lines)
    if prose:
        return prose + "; pass the output of `iptables-save > FILE` on the node"
    return "no iptables-save lines found (no *table, :chain or -A lines); run `iptables-save > FILE` on the node and pass that file"


def _text_of(source) -> str:
    """A source's text, its bytes released when it can (``TextSource.release_data``)."""
    text = source.text
    release = getattr(source, "release_data", None)
    if release is not None:
        release()
    return text


def parse_dumps(sources, *, strict: bool = False) -> Ruleset:
    """Parse several dumps (``TextSource``-like: ``.name``, ``.text``) into one ruleset,
    e.g. ``iptables-save`` and ``ip6tables-save`` of the same node."""
    parsed = [parse_iptables_save(_text_of(s), s.name, strict=strict) for s in sources]
    if len(parsed) == 1:
        return parsed[0]
    diags: list[Diagnostic] = [d for r in parsed for d in r.diagnostics]
    tables = _merge_duplicates([t for r in parsed for t in r.tables], diags)
    return Ruleset(tuple(tables), tuple(diags), tuple(o for r in parsed for o in r.origin),
                   gaps=tuple(g for r in parsed for g in r.gaps))
