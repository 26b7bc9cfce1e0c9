"""Read ``nft list ruleset`` / ``nft list table`` text and ``nft -j`` JSON.

``parse_nft(text, source)`` picks the form. Text is read as nft 0.9.x-1.1.x
prints it: tabs or spaces, ``-a`` handles (``# handle N``), symbolic or numeric
priorities, multi-line element lists, per-element comments, pasted prompts and
elisions (kept as diagnostics, and the ruleset is marked incomplete). Rule
statements come out in the libnftables-json shapes ``nft -j`` prints, e.g.

>>> from svcinspect.dataplane.nftables.parse import parse_rule_text
>>> parse_rule_text("ct state new jump firewall-check", "ip")[0]
({'match': {'op': 'in', 'left': {'ct': {'key': 'state'}}, 'right': 'new'}}, {'jump': {'target': 'firewall-check'}})

Statements the reader does not know are kept as ``{"unknown": text}`` so the
evaluator can say so instead of guessing.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from typing import Any

from svcinspect.parse.recognise import NFT_ADD
from svcinspect.errors import Diagnostic, NotADumpError, ParseError, Severity
from svcinspect.model.netfilter import split_lines
from svcinspect.dataplane.nftables.model import (
    PRIORITY_NAMES, NftChain, NftElement, NftRule, NftRuleset, NftSet, NftTable,
)

_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[{};,]|[^\s{};,"]+')
_FAMILIES = ("ip", "ip6", "inet", "arp", "bridge", "netdev")
_TABLE_START = re.compile(r"^\s*table\s+(ip|ip6|inet|arp|bridge|netdev)\s+(\S+)\s*\{\s*(?:#.*)?$")
_BLOCK_START = re.compile(r"^\s*(chain|set|map|flowtable|ct\s+helper|counter|quota|limit)\s+(\S+)\s*\{\s*(?:#.*)?$")
_HANDLE = re.compile(r"\s+# handle (\d+)\s*$")
_VERDICTS = ("accept", "drop", "continue", "return", "queue")
_TIME = re.compile(r"(\d+)(d|h|m|s|ms)")


def parse_nft(text: str, source: str = "<input>", *, strict: bool = False) -> NftRuleset:
    try:
        return _parse_nft(text, source, strict=strict)
    finally:
        _parse_done()


def _parse_nft(text: str, source: str, *, strict: bool) -> NftRuleset:
    if text.lstrip().startswith("{"):
        return parse_nft_json(text, source, strict=strict)
    if _ADD.search(text[:200000]) and not re.search(r"^\s*table\s+\S+\s+\S+\s*\{", text[:200000], re.M):
        return parse_nft_commands(text, source, strict=strict)
    return parse_nft_text(text, source, strict=strict)


# --- kube-proxy's own transactions: `add rule ip kube-proxy CHAIN ...` (knftables, nft -f) ---------

_ADD = NFT_ADD
_ADD_LINE = re.compile(r"^\s*(add|create|flush|delete|destroy)\s+(table|chain|rule|set|map|element)\s+"
                       r"(ip|ip6|inet|arp|bridge|netdev)\s+(\S+)(?:\s+(.*))?$")


def parse_nft_commands(text: str, source: str = "<input>", *, strict: bool = False) -> NftRuleset:
    """The ``add table/chain/set/map/rule/element`` lines kube-proxy sends to nft
    (its test expectations and ``--v=9`` logs have them). Rules are read as kube-proxy
    wrote them (``mark and 0x4000 == 0``), before nft prints them back."""
    diags: list[Diagnostic] = []
    tables: dict[tuple[str, str], dict] = {}
    order: list[tuple[str, str]] = []
    for ln, raw in enumerate(split_lines(text), 1):
        s = raw.strip()
        if not s or s.startswith("#"):
            continue
        m = _ADD_LINE.match(s)
        if not m:
            diags.append(Diagnostic(Severity.WARNING, "not an nft command; skipped", source, ln, raw))
            continue
        verb, kind, fam, tname, rest = m.group(1), m.group(2), m.group(3), m.group(4), m.group(5) or ""
        key = (fam, tname)
        if key not in tables:
            tables[key] = {"chains": {}, "sets": {}, "rules": {}, "elements": {}, "line": ln, "comment": None}
            order.append(key)
        t = tables[key]
        if verb in ("flush", "delete", "destroy"):
            diags.append(Diagnostic(Severity.INFO, f"{verb} {kind}: the state before it is not modelled; ignored",
                                    source, ln, raw))
            continue
        if kind == "table":
            c = re.search(r'comment\s+("(?:[^"\\]|\\.)*")', s)
            t["comment"] = _unquote(c.group(1)) if c else t["comment"]
            continue
        name, _, body = rest.partition(" ")
        if kind == "chain":
            spec = body.strip().strip("{}").strip()
            t["chains"].setdefault(name, {"line": ln, "spec": spec})
        elif kind in ("set", "map"):
            t["sets"].setdefault(name, {"line": ln, "spec": body.strip().strip("{}").strip(), "map": kind == "map"})
        elif kind == "rule":
            t["rules"].setdefault(name, []).append((ln, body.strip()))
        elif kind == "element":
            t["elements"].setdefault(name, []).append((ln, body.strip()))
    out: list[NftTable] = []
    for fam, tname in order:
        t = tables[(fam, tname)]
        sets: dict[str, NftSet] = {}
        for name, sd in t["sets"].items():
            fields = dict(_spec_fields(sd["spec"]))
            typ = fields.get("type", "")
            data = None
            if sd["map"] and " : " in typ:
                typ, _, data = typ.partition(" : ")
            elems: list[NftElement] = []
            for ln, body in t["elements"].get(name, ()):
                toks = [(tok, ln) for tok in _TOKEN.findall(body)]
                if toks and toks[0][0] == "{" and toks[-1][0] == "}":
                    toks = toks[1:-1]
                elems.extend(_elements_from(toks, sd["map"], fam, source, [body] * ln, diags))
            flags = tuple(f.strip() for f in fields.get("flags", "").split(",") if f.strip())
            timeout = parse_seconds(fields["timeout"]) if "timeout" in fields else None
            sets[name] = NftSet(fam, tname, name, sd["map"], tuple(p.strip() for p in typ.split(" . ") if p.strip()),
                                data, flags, tuple(elems), _unquote(fields["comment"]) if "comment" in fields else None,
                                timeout, sd["line"], source)
        chains: dict[str, NftChain] = {}
        for name in list(t["chains"]) + [c for c in t["rules"] if c not in t["chains"]]:
            cd = t["chains"].get(name, {"line": t["rules"][name][0][0], "spec": ""})
            fields = dict(_spec_fields(cd["spec"]))
            ctype = hook = prio_text = None
            if "type" in fields:
                m2 = re.match(r"(\w+)\s+hook\s+(\w+)(?:\s+priority\s+(.+))?", fields["type"])
                if m2:
                    ctype, hook, prio_text = m2.group(1), m2.group(2), (m2.group(3) or fields.get("priority", "0"))
            rules = []
            for ln, body in t["rules"].get(name, ()):
                exprs, comment, unknown = parse_rule_text(body, fam)
                if unknown:
                    diags.append(Diagnostic(Severity.WARNING, f"statement not understood ({unknown}); the rule is "
                                            "kept and treated as unknown", source, ln, body))
                rules.append(NftRule(fam, tname, name, exprs, body, ln, source, None, comment, unknown))
            chains[name] = NftChain(fam, tname, name, tuple(rules), ctype, hook,
                                    parse_priority(prio_text) if prio_text else None, prio_text,
                                    fields.get("policy", "accept") if hook else None,
                                    _unquote(fields["comment"]) if "comment" in fields else None, cd["line"], source)
        out.append(NftTable(fam, tname, chains, sets, t["comment"], t["line"], source))
    if not out:
        raise NotADumpError("no `add table/chain/rule` commands found", source)
    if strict:
        bad = [d for d in diags if d.severity >= Severity.WARNING]
        if bad:
            raise ParseError(bad[0].message, source, bad[0].line)
    return NftRuleset(tuple(out), tuple(diags), (source,), "commands", True)


def _spec_fields(spec: str):
    """``type filter hook input priority -110 ; comment "x" ;`` -> (key, value) pairs."""
    for part in re.split(r';(?=(?:[^"]*"[^"]*")*[^"]*$)', spec):
        part = part.strip()
        if not part:
            continue
        key, _, value = part.partition(" ")
        yield key, value.strip()


def _text_of(source) -> str:
    """The source's text, its bytes released once decoded (a ``TextSource``
    holds both; at 20000 services that is 25 MB of text, 56 MB of JSON, kept for
    the whole run otherwise)."""
    text = source.text
    release = getattr(source, "release_data", None)
    if release is not None:
        release()
    return text


def parse_nfts(sources, *, strict: bool = False) -> NftRuleset:
    """Several inputs (``ip`` and ``ip6`` tables of one node, say) as one ruleset."""
    parsed = [parse_nft(_text_of(s), s.name, strict=strict) for s in sources]
    if len(parsed) == 1:
        return parsed[0]
    tables: list[NftTable] = []
    diags: list[Diagnostic] = []
    for r in parsed:
        diags.extend(r.diagnostics)
        for t in r.tables:
            if any((x.family, x.name) == (t.family, t.name) for x in tables):
                diags.append(Diagnostic(Severity.WARNING, f"table {t.family} {t.name} given twice; the first is used",
                                        t.source, t.line))
                continue
            tables.append(t)
    return NftRuleset(tuple(tables), tuple(diags), tuple(o for r in parsed for o in r.origin),
                      parsed[0].form, all(r.complete for r in parsed))


# --- text -------------------------------------------------------------------------

def parse_seconds(text: str) -> int | None:
    """``10m`` -> 600, ``1h30m`` -> 5400, ``10800s`` -> 10800."""
    total, pos = 0, 0
    for m in _TIME.finditer(text):
        if m.start() != pos:
            return None
        n, unit = int(m.group(1)), m.group(2)
        total += {"d": 86400, "h": 3600, "m": 60, "s": 1, "ms": 0}[unit] * n
        pos = m.end()
    return total if pos == len(text) and pos else None


def _unquote(tok: str) -> str:
    return tok[1:-1].replace('\\"', '"') if tok.startswith('"') else tok


def parse_nft_text(text: str, source: str = "<input>", *, strict: bool = False) -> NftRuleset:
    lines = split_lines(text)  # at "\n" only: a comment may hold \x0c, \x1c, \u2028 ...
    diags: list[Diagnostic] = []
    tables: list[NftTable] = []
    complete = True
    i = 0
    n = len(lines)

    def diag(sev, msg, ln, raw=""):
        diags.append(Diagnostic(sev, msg, source, ln, raw))

    while i < n:
        raw = lines[i]
        s = raw.strip()
        m = _TABLE_START.match(raw)
        if m:
            i, table, ok = _parse_table(lines, i, m.group(1), m.group(2), source, diags)
            tables.append(table)
            complete = complete and ok
            continue
        if s and not s.startswith("#"):
            if s in ("...", "…") or s.startswith(("[...]", "...")):
                complete = False
                diag(Severity.WARNING, "an elision in the paste: what was left out is unknown", i + 1, raw)
            else:
                diag(Severity.WARNING, "skipped a line outside any table (a prompt or a note?)", i + 1, raw)
        i += 1
    if not tables:
        raise NotADumpError("no `table FAMILY NAME {` block found: not `nft list ruleset` output", source)
    if strict:
        bad = [d for d in diags if d.severity >= Severity.WARNING]
        if bad:
            raise ParseError(bad[0].message + (f": {bad[0].text.strip()}" if bad[0].text else ""), source, bad[0].line)
    return NftRuleset(tuple(tables), tuple(diags), (source,), "text", complete)


def _strip_handle(s: str) -> tuple[str, int | None]:
    m = _HANDLE.search(s)
    if m:
        return s[: m.start()], int(m.group(1))
    return s, None


def _parse_table(lines, i, family, name, source, diags) -> tuple[int, NftTable, bool]:
    start = i + 1
    _, handle = _strip_handle(lines[i])
    chains: dict[str, NftChain] = {}
    sets: dict[str, NftSet] = {}
    comment = None
    complete = True
    i += 1
    while i < len(lines):
        raw = lines[i]
        s = _strip_handle(raw.strip())[0].strip()
        if s == "}":
            return i + 1, NftTable(family, name, chains, sets, comment, start, source, handle), complete
        one = _ONE_LINE_SET.match(raw)
        if one is not None:  # `set x { type ...; elements = { ... } }` on one line (hand-written nft -f files)
            kind, bname = one.group(1), one.group(2)
            parts = _split_statements(one.group(3))
            if parts is not None:
                sub: list[Diagnostic] = []
                _, st, _ = _parse_set([f"{kind} {bname} {{", *parts, "}"], 0, family, name, bname, kind == "map",
                                      source, sub)
                diags.extend(Diagnostic(d.severity, d.message, source, i + 1, raw) for d in sub)  # all this line
                st = dataclasses.replace(st, line=i + 1, elements=tuple(dataclasses.replace(e, line=i + 1)
                                                                        for e in st.elements))
                sets.setdefault(bname, st)
                i += 1
                continue
        m = _BLOCK_START.match(raw)
        if m:
            kind, bname = m.group(1), m.group(2)
            if kind == "chain":
                i, ch, ok = _parse_chain(lines, i, family, name, bname, source, diags)
                if bname in chains:
                    diags.append(Diagnostic(Severity.WARNING, f"chain {bname} listed twice; the first is kept",
                                            source, ch.line, lines[ch.line - 1]))
                else:
                    chains[bname] = ch
            elif kind in ("set", "map"):
                i, st, ok = _parse_set(lines, i, family, name, bname, kind == "map", source, diags)
                sets.setdefault(bname, st)
            else:
                i, ok = _skip_block(lines, i), True
                diags.append(Diagnostic(Severity.INFO, f"{kind} {bname}: not used by kube-proxy; skipped",
                                        source, start, raw))
            complete = complete and ok
            continue
        if s.startswith("comment "):
            comment = _unquote(s[len("comment "):].strip())
        elif s.startswith("flags "):
            pass
        elif s in ("...", "…"):
            complete = False
            diags.append(Diagnostic(Severity.WARNING, "an elision in the paste: what was left out is unknown",
                                    source, i + 1, raw))
        elif s and not s.startswith("#"):
            diags.append(Diagnostic(Severity.WARNING, "not understood inside a table; skipped", source, i + 1, raw))
        i += 1
    diags.append(Diagnostic(Severity.WARNING, f"table {family} {name} is not closed: the paste is truncated",
                            source, start))
    return i, NftTable(family, name, chains, sets, comment, start, source, handle), False


_ONE_LINE_SET = re.compile(r"^\s*(set|map)\s+(\S+)\s*\{(.*;.*)\}\s*(?:#.*)?$")


def _split_statements(body: str) -> list[str] | None:
    """A one-line block's body split at its top-level ``;`` (not inside braces or
    quotes), or None when its braces or quotes do not balance."""
    parts, cur, depth, quoted = [], [], 0, False
    for ch in body:
        if ch == '"':
            quoted = not quoted
        elif not quoted and ch == "{":
            depth += 1
        elif not quoted and ch == "}":
            depth -= 1
            if depth < 0:
                return None
        elif not quoted and ch == ";" and depth == 0:
            parts.append("".join(cur).strip())
            cur = []
            continue
        cur.append(ch)
    if depth or quoted:
        return None
    parts.append("".join(cur).strip())
    return [x for x in parts if x]


def _skip_block(lines, i) -> int:
    depth = 0
    while i < len(lines):
        depth += lines[i].count("{") - lines[i].count("}")
        i += 1
        if depth <= 0:
            break
    return i


def parse_priority(text: str) -> int | None:
    """``dstnat - 10`` -> -110, ``-110`` -> -110, ``filter`` -> 0."""
    t = text.replace(" ", "")
    m = re.fullmatch(r"([a-z]+)?([+-]?\d+)?", t)
    if not m or not (m.group(1) or m.group(2)):
        return None
    base = 0
    if m.group(1):
        if m.group(1) not in PRIORITY_NAMES:
            return None
        base = PRIORITY_NAMES[m.group(1)]
    return base + (int(m.group(2)) if m.group(2) else 0)


_CHAIN_HEAD = re.compile(r"^type\s+(\w+)\s+hook\s+(\w+)(?:\s+device\s+\"?([^\";]+)\"?)?\s+priority\s+([^;]+);"
                         r"(?:\s*policy\s+(\w+);)?")


def _parse_chain(lines, i, family, table, name, source, diags) -> tuple[int, NftChain, bool]:
    start = i + 1
    _, handle = _strip_handle(lines[i])
    rules: list[NftRule] = []
    ctype = hook = prio_text = policy = comment = device = None
    prio = None
    i += 1
    while i < len(lines):
        raw = lines[i]
        body, rhandle = _strip_handle(raw.rstrip())
        s = body.strip()
        if s == "}":
            return i + 1, NftChain(family, table, name, tuple(rules), ctype, hook, prio, prio_text, policy, comment,
                                   start, source, handle, device), True
        if not s or s.startswith("#"):
            i += 1
            continue
        m = _CHAIN_HEAD.match(s)
        if m and not rules:
            ctype, hook, device, prio_text, policy = m.group(1), m.group(2), m.group(3), m.group(4).strip(), m.group(5)
            prio = parse_priority(prio_text)
            if prio is None:
                diags.append(Diagnostic(Severity.WARNING, f"priority {prio_text!r} not understood", source, i + 1, raw))
        elif s.startswith("policy ") and not rules:
            policy = s.split()[1].rstrip(";")
        elif s.startswith("comment ") and not rules and s.count('"') == 2 and s.endswith('"'):
            comment = _unquote(s[len("comment "):].strip())
        elif s in ("...", "…"):
            diags.append(Diagnostic(Severity.WARNING, "an elision in the paste: what was left out is unknown",
                                    source, i + 1, raw))
            i += 1
            return _finish_truncated(lines, i, family, table, name, rules, ctype, hook, prio, prio_text, policy,
                                     comment, start, source, handle, device)
        else:
            if _fast and s.startswith("meta l4proto ") and _NUMGEN_DNAT.fullmatch(s):
                exprs, rcomment, unknown = None, None, None  # understood; built when used (decode_deferred)
            else:
                exprs, rcomment, unknown = parse_rule_text(s, family)
            if unknown:
                diags.append(Diagnostic(Severity.WARNING, f"statement not understood ({unknown}); the rule is kept "
                                        f"and treated as unknown", source, i + 1, raw))
            rules.append(NftRule(family, table, name, exprs, s, i + 1, source, rhandle, rcomment, unknown))
        i += 1
    diags.append(Diagnostic(Severity.WARNING, f"chain {name} is not closed: the paste is truncated", source, start))
    return i, NftChain(family, table, name, tuple(rules), ctype, hook, prio, prio_text, policy, comment, start, source,
                       handle, device), False


# kube-proxy's load-balancing rule, one per service port with endpoints, printed
# by nft exactly so: ``meta l4proto tcp dnat ip to numgen random mod 3 map { 0 :
# 10.244.1.5 . 8080, 1 : ..., 2 : ... }``. The text reader keeps such a rule as
# its text (NftRule.stored_exprs None) and builds its statements on each use,
# exactly what parse_rule_text gives (tests/test_nft_memory.py compares them),
# in a tenth of its time. Only this shape: decimal integers, addresses that are
# plain IPv4/IPv6 strings, single spaces; anything else takes the full decoder.
_INTEGER = r"(?:0|[1-9][0-9]*)"
_PLAIN_ADDR = r"(?:[0-9]{1,3}(?:\.[0-9]{1,3}){3}|[0-9a-fA-F]*:[0-9a-fA-F:.]*)"
_LB_PAIR = rf"{_INTEGER} : {_PLAIN_ADDR} \. {_INTEGER}"
_NUMGEN_DNAT = re.compile(rf"meta l4proto (tcp|udp|sctp) dnat (ip|ip6) to numgen (random|inc) mod ({_INTEGER}) "
                          rf"map \{{ ((?:{_LB_PAIR}, )*{_LB_PAIR}) \}}")
_LB_PAIRS = re.compile(rf"({_INTEGER}) : ({_PLAIN_ADDR}) \. ({_INTEGER})")

# SVCINSPECT_NO_FAST=1 (or set_fast(False)): every rule through the full decoder.
_fast = os.environ.get("SVCINSPECT_NO_FAST", "") in ("", "0")


def set_fast(on: bool) -> bool:
    """Turn the deferred load-balancing rules on or off; returns the old setting."""
    global _fast
    was, _fast = _fast, on
    return was


_SMALL_INTS = {str(i): i for i in range(256)} | {p: int(p) for p in ("8080", "8443", "9153", "443", "53", "80")}


def decode_deferred(text: str, family: str = "ip") -> tuple[Any, ...]:
    """The statements of a rule the text reader deferred (see _NUMGEN_DNAT)."""
    m = _NUMGEN_DNAT.fullmatch(text)
    if m is None:  # not produced by the reader; decode it in full all the same
        return parse_rule_text(text, family)[0]
    proto, fam, mode, mod, body = m.groups()
    num = _SMALL_INTS.get
    pairs = [[num(k) if num(k) is not None else int(k), {"concat": [addr, num(port) or int(port)]}]
             for k, addr, port in _LB_PAIRS.findall(body)]
    return ({"match": {"op": "==", "left": {"meta": {"key": "l4proto"}}, "right": proto}},
            {"dnat": {"family": fam, "addr": {"map": {"key": {"numgen": {"mode": mode, "mod": int(mod), "offset": 0}},
                                                      "data": {"set": pairs}}}}})


def _finish_truncated(lines, i, family, table, name, rules, ctype, hook, prio, prio_text, policy, comment, start,
                      source, handle, device):
    while i < len(lines) and lines[i].strip() != "}":
        i += 1
    return i + 1, NftChain(family, table, name, tuple(rules), ctype, hook, prio, prio_text, policy, comment, start,
                           source, handle, device), False


def _parse_set(lines, i, family, table, name, is_map, source, diags) -> tuple[int, NftSet, bool]:
    start = i + 1
    _, handle = _strip_handle(lines[i])
    key_type: tuple[str, ...] = ()
    data_type = None
    flags: tuple[str, ...] = ()
    comment = None
    timeout = size = None
    elements: list[NftElement] = []
    complete = True
    i += 1
    while i < len(lines):
        raw = lines[i]
        s = _strip_handle(raw.strip())[0].strip()
        if s == "}":
            return i + 1, NftSet(family, table, name, is_map, key_type, data_type, flags, tuple(elements), comment,
                                 timeout, start, source, handle, size), complete
        if s.startswith("type ") or s.startswith("typeof "):
            body = s.split(None, 1)[1].rstrip(";")
            if is_map and " : " in body:
                k, _, v = body.partition(" : ")
                data_type = v.strip()
            else:
                k = body
            key_type = tuple(p.strip() for p in k.split(" . "))
        elif s.startswith("flags "):
            flags = tuple(f.strip() for f in s[6:].rstrip(";").split(","))
        elif s.startswith("timeout "):
            timeout = parse_seconds(s.split()[1].rstrip(";"))
        elif s.startswith("size ") and s.split()[1].rstrip(";").isdigit():
            size = int(s.split()[1].rstrip(";"))
        elif s.startswith("comment "):
            comment = _unquote(s[len("comment "):].strip().rstrip(";"))
        elif s.startswith("elements = {"):
            i, elements, ok = _parse_elements(lines, i, is_map, family, source, diags)
            complete = complete and ok
            continue
        elif s.startswith(("policy ", "counter", "gc-interval ", "auto-merge")):
            pass
        elif s:
            diags.append(Diagnostic(Severity.WARNING, f"not understood in {'map' if is_map else 'set'} {name}; "
                                    "skipped", source, i + 1, raw))
        i += 1
    diags.append(Diagnostic(Severity.WARNING, f"{'map' if is_map else 'set'} {name} is not closed: the paste is "
                            f"truncated", source, start))
    return i, NftSet(family, table, name, is_map, key_type, data_type, flags, tuple(elements), comment, timeout,
                     start, source, handle, size), False


def _parse_elements(lines, i, is_map, family, source, diags) -> tuple[int, list[NftElement], bool]:
    """``elements = { a, b,\\n c }``: tokens with their line numbers, split at
    top-level commas; returns the index after the closing brace."""
    toks: list[tuple[str, int]] = []
    depth = 0
    first = True
    while i < len(lines):
        raw = lines[i]
        s = _strip_handle(raw)[0]
        if first:
            s = s.split("=", 1)[1]
            first = False
        for tok in _TOKEN.findall(s):
            if tok == "{":
                depth += 1
                if depth == 1:
                    continue
            elif tok == "}":
                depth -= 1
                if depth == 0:
                    return i + 1, _elements_from(toks, is_map, family, source, lines, diags), True
            toks.append((tok, i + 1))
        i += 1
    diags.append(Diagnostic(Severity.WARNING, "element list is not closed: the paste is truncated", source, i))
    return i, _elements_from(toks, is_map, family, source, lines, diags), False


def _elements_from(toks, is_map, family, source, lines, diags) -> list[NftElement]:
    out: list[NftElement] = []
    cur: list[tuple[str, int]] = []
    depth = 0
    for tok, ln in toks + [(",", 0)]:
        if tok == "{":
            depth += 1
        elif tok == "}":
            depth -= 1
        if tok == "," and depth == 0:
            if cur:
                line = cur[0][1]
                try:
                    out.append(_element([t for t, _ in cur], is_map, family, line,
                                        lines[line - 1].strip() if line else ""))
                except (_Unknown, IndexError, ValueError) as exc:
                    diags.append(Diagnostic(Severity.WARNING, f"element not understood ({exc or 'incomplete'})",
                                            source, line,
                                            lines[line - 1] if line else ""))
            cur = []
            continue
        cur.append((tok, ln))
    return out


def _element(toks: list[str], is_map: bool, family: str, line: int, text: str) -> NftElement:
    value = None
    if is_map:
        if ":" not in toks:
            raise _Unknown("a map element without ' : '")
        at = toks.index(":")
        toks, vtoks = toks[:at], toks[at + 1:]
        value = _data(vtoks, family)
    comment = None
    opts: dict[str, Any] = {}
    key_toks: list[str] = []
    j = 0
    while j < len(toks):
        t = toks[j]
        if t == "comment" and j + 1 < len(toks):
            comment = _unquote(toks[j + 1])
            j += 2
            continue
        if t in ("timeout", "expires") and j + 1 < len(toks):
            opts[t] = parse_seconds(toks[j + 1])
            j += 2
            continue
        if t == "counter":
            j += 1
            while j + 1 < len(toks) and toks[j] in ("packets", "bytes"):
                j += 2
            continue
        key_toks.append(t)
        j += 1
    key = _Expr(key_toks, family).value_concat()
    if comment is not None or opts:
        key = {"elem": {"val": key, **opts, **({"comment": comment} if comment is not None else {})}}
    from svcinspect.dataplane.nftables.render import render_element
    e = NftElement(key, value, comment, line, "")
    return NftElement(key, value, comment, line, render_element(e))


def _data(toks: list[str], family: str) -> Any:
    if toks and toks[0] in ("goto", "jump") and len(toks) == 2:
        return {toks[0]: {"target": toks[1]}}
    if len(toks) == 1 and toks[0] in _VERDICTS:
        return {toks[0]: None}
    return _Expr(toks, family).value_concat()


class _Unknown(Exception):
    pass


_RESUME = {"accept", "drop", "reject", "return", "jump", "goto", "masquerade", "dnat", "snat", "continue", "comment"}


def parse_rule_text(text: str, family: str) -> tuple[tuple[Any, ...], str | None, str | None]:
    """(statements, comment, what was not understood) for one rule line."""
    toks = _TOKEN.findall(text)
    p = _Expr(toks, family)
    stmts: list[Any] = []
    comment = None
    unknown = None
    while not p.done():
        start = p.pos
        try:
            if p.peek() == "comment":
                p.next()
                comment = _unquote(p.next())
                continue
            stmts.append(p.statement())
        except (_Unknown, IndexError, ValueError) as exc:
            # Keep what is not understood as one opaque statement, up to the next
            # verdict, so that the verdict after it still counts.
            j = start + 1
            while j < len(toks) and toks[j] not in _RESUME:
                j += 1
            part = " ".join(toks[start:j])
            stmts.append({"unknown": part})
            unknown = unknown or (f"{exc}: {part[:80]}" if isinstance(exc, _Unknown) else f"{part[:80]}")
            p.pos = j
    return tuple(stmts), comment, unknown


_PAYLOAD = {"ip": ("saddr", "daddr", "protocol", "length", "ttl", "dscp", "version", "id"),
            "ip6": ("saddr", "daddr", "nexthdr", "hoplimit", "flowlabel", "length", "version"),
            "tcp": ("dport", "sport", "flags"), "udp": ("dport", "sport"), "sctp": ("dport", "sport"),
            "th": ("dport", "sport"), "udplite": ("dport", "sport"), "dccp": ("dport", "sport"),
            "icmp": ("type", "code"), "icmpv6": ("type", "code"), "ether": ("saddr", "daddr", "type")}
_META = ("l4proto", "mark", "iifname", "oifname", "iif", "oif", "nfproto", "protocol", "skuid", "skgid", "iiftype",
         "oiftype", "pkttype", "length", "priority", "cgroup", "nftrace", "cpu", "random", "secmark")
_BARE_META = ("mark", "iifname", "oifname", "iif", "oif", "iiftype", "oiftype", "skuid", "skgid", "pkttype",
              "priority", "nftrace", "cgroup")
_CT = ("state", "status", "mark", "direction", "expiration", "helper", "l3proto", "protocol", "zone", "count")
_OPS = {"==": "==", "!=": "!=", "<": "<", ">": ">", "<=": "<=", ">=": ">=", "eq": "==", "ne": "!=", "lt": "<",
        "gt": ">", "le": "<=", "ge": ">="}
_BINOPS = {"&": "&", "|": "|", "^": "^", "<<": "<<", ">>": ">>", "and": "&", "or": "|", "xor": "^"}
_FLAG_KEYS = {("ct", "state"), ("ct", "status"), ("tcp", "flags")}


class _Expr:
    """A tiny recursive-descent reader of nft statements over whitespace tokens."""

    def __init__(self, toks: list[str], family: str):
        self.toks, self.pos, self.family = toks, 0, family

    def done(self) -> bool:
        return self.pos >= len(self.toks)

    def peek(self, k: int = 0) -> str | None:
        j = self.pos + k
        return self.toks[j] if j < len(self.toks) else None

    def next(self) -> str:
        t = self.toks[self.pos]
        self.pos += 1
        return t

    # -- statements
    def statement(self) -> Any:
        t = self.peek()
        if t in ("jump", "goto"):
            self.next()
            return {t: {"target": self.next()}}
        if t in _VERDICTS:
            self.next()
            return {t: None}
        if t == "reject":
            return self._reject()
        if t == "counter":
            self.next()
            c: dict[str, int] = {}
            while self.peek() in ("packets", "bytes"):
                k = self.next()
                c[k] = int(self.next())
            return {"counter": c or None}
        if t == "masquerade":
            self.next()
            flags = self._nat_flags()
            return {"masquerade": {"flags": flags[0] if len(flags) == 1 else flags} if flags else None}
        if t in ("dnat", "snat"):
            return self._nat()
        if t in ("update", "add", "delete") and (self.peek(1) or "").startswith("@"):
            op = self.next()
            name = self.next()
            if self.next() != "{":
                raise _Unknown("expected { after the set name")
            elem = self.concat()
            extra: dict[str, Any] = {}
            while self.peek() not in ("}", None):
                k = self.next()
                if k == "timeout":
                    extra["timeout"] = parse_seconds(self.next())
                else:
                    raise _Unknown(f"{k} in a set update")
            self.next()
            if extra:
                elem = {"elem": {"val": elem, **extra}}
            return {"set": {"op": op, "elem": elem, "set": name}}
        if t == "log":
            self.next()
            opts: dict[str, Any] = {}
            while self.peek() in ("prefix", "level", "group", "flags"):
                k = self.next()
                opts[k] = _unquote(self.next())
            return {"log": opts or None}
        if t in ("notrack",):
            self.next()
            return {t: None}
        # A match, a mangle (X set V), or a map lookup (X vmap M).
        left = self.concat()
        nxt = self.peek()
        if nxt == "set":
            self.next()
            return {"mangle": {"key": left, "value": self.arith()}}
        if nxt == "vmap":
            self.next()
            return {"vmap": {"key": left, "data": self._map_data(verdicts=True)}}
        op = "=="
        if nxt in _OPS:
            op = _OPS[self.next()]
        right = self.right()
        if op == "==" and _flag_key(left) and not isinstance(right, dict):
            op = "in"
        return {"match": {"op": op, "left": left, "right": right}}

    def _reject(self) -> Any:
        self.next()
        if self.peek() == "with":
            self.next()
            kind = self.next()
            if kind == "tcp":
                self.next()  # reset
                return {"reject": {"type": "tcp reset"}}
            if self.peek() == "type":
                self.next()
            return {"reject": {"type": kind, "expr": self.next()}}
        default = {"ip": "icmp", "ip6": "icmpv6"}.get(self.family, "icmpx")
        return {"reject": {"type": default, "expr": "port-unreachable"}}

    def _nat_flags(self) -> list[str]:
        flags = []
        while self.peek() in ("fully-random", "random", "persistent", ","):
            t = self.next()
            if t != ",":
                flags.append(t)
        return flags

    def _nat(self) -> Any:
        kind = self.next()
        out: dict[str, Any] = {}
        if self.peek() in ("ip", "ip6"):
            out["family"] = self.next()
            if self.peek() == "addr":  # "dnat ip addr . port to A . P": the address and port together
                self.next()
                if self.peek() == "." and self.peek(1) == "port":
                    self.pos += 2
        if self.peek() != "to":
            if self.done():
                return {kind: out or None}
            raise _Unknown(f"{kind} without 'to'")
        self.next()
        if self.peek() == "numgen" or (self.peek(1) == "map"):
            key = self.primary()
            if self.next() != "map":
                raise _Unknown("expected map")
            out["addr"] = {"map": {"key": key, "data": self._map_data(verdicts=False)}}
        else:
            tok = self.next()
            if self.peek() == ".":  # A . P (one endpoint, 1.37)
                self.next()
                out["addr"] = {"concat": [_scalar(tok), _scalar(self.next())]}
            else:
                addr, port = _split_host_port(tok)
                out["addr"] = addr
                if port is not None:
                    out["port"] = port
        flags = self._nat_flags()
        if flags:
            out["flags"] = flags[0] if len(flags) == 1 else flags
        return {kind: out}

    def _map_data(self, verdicts: bool) -> Any:
        t = self.peek()
        if t is not None and t.startswith("@"):
            return self.next()
        if self.next() != "{":
            raise _Unknown("expected a map")
        pairs = []
        cur: list[str] = []
        depth = 0
        while True:
            tok = self.next()
            if tok == "{":
                depth += 1
            if tok == "}" and depth == 0:
                if cur:
                    pairs.append(self._pair(cur))
                break
            if tok == "}":
                depth -= 1
            if tok == "," and depth == 0:
                pairs.append(self._pair(cur))
                cur = []
                continue
            cur.append(tok)
        return {"set": pairs}

    def _pair(self, toks: list[str]) -> list[Any]:
        if ":" not in toks:
            raise _Unknown("a map element without ' : '")
        at = toks.index(":")
        key = _Expr(toks[:at], self.family).value_concat()
        return [key, _data(toks[at + 1:], self.family)]

    # -- expressions
    def concat(self) -> Any:
        parts = [self.arith_primary()]
        while self.peek() == ".":
            self.next()
            parts.append(self.arith_primary())
        return parts[0] if len(parts) == 1 else {"concat": parts}

    def arith_primary(self) -> Any:
        left = self.primary()
        while self.peek() in _BINOPS and self.peek(1) is not None:
            op = _BINOPS[self.next()]
            left = {op: [left, _scalar(self.next())]}
        return left

    def arith(self) -> Any:
        """A mangle value: ``meta mark | 0x4000`` or a constant."""
        t = self.peek()
        if t in ("meta", "ct") or t in _BARE_META:
            left = self.primary()
            while self.peek() in _BINOPS:
                op = _BINOPS[self.next()]
                left = {op: [left, _scalar(self.next())]}
            return left
        return _scalar(self.next())

    def primary(self) -> Any:
        t = self.next()
        if t in _PAYLOAD and self.peek() in _PAYLOAD[t]:
            f = self.next()
            return _SHARED.get(("payload", t, f)) or _SHARED.setdefault(
                ("payload", t, f), {"payload": {"protocol": t, "field": f}})
        if t == "meta" and self.peek() in _META:
            k = self.next()
            return _SHARED.get(("meta", k)) or _SHARED.setdefault(("meta", k), {"meta": {"key": k}})
        if t in _BARE_META:
            return _SHARED.get(("meta", t)) or _SHARED.setdefault(("meta", t), {"meta": {"key": t}})
        if t == "ct" and self.peek() in _CT:
            k = self.next()
            return _SHARED.get(("ct", k)) or _SHARED.setdefault(("ct", k), {"ct": {"key": k}})
        if t == "fib":
            flags = [self.next()]
            while self.peek() == ".":
                self.next()
                flags.append(self.next())
            return {"fib": {"result": self.next(), "flags": flags}}
        if t == "numgen":
            mode = self.next()
            if self.next() != "mod":
                raise _Unknown("numgen without mod")
            mod = int(self.next(), 0)
            offset = 0
            if self.peek() == "offset":
                self.next()
                offset = int(self.next(), 0)
            return {"numgen": {"mode": mode, "mod": mod, "offset": offset}}
        raise _Unknown(f"unknown expression {t!r}")

    def right(self) -> Any:
        t = self.peek()
        if t == "{":
            self.next()
            items = []
            cur: list[str] = []
            while True:
                tok = self.next()
                if tok in (",", "}"):
                    if cur:
                        items.append(_Expr(cur, self.family).value_concat())
                    cur = []
                    if tok == "}":
                        break
                    continue
                cur.append(tok)
            return {"set": items}
        vals = [self._value()]
        while self.peek() == ",":
            self.next()
            vals.append(self._value())
        return vals[0] if len(vals) == 1 else vals

    def _value(self) -> Any:
        first = _scalar(self.next())
        if self.peek() == ".":
            parts = [first]
            while self.peek() == ".":
                self.next()
                parts.append(_scalar(self.next()))
            return {"concat": parts}
        return first

    def value_concat(self) -> Any:
        parts = [_scalar(self.next())]
        while self.peek() == ".":
            self.next()
            parts.append(_scalar(self.next()))
        if not self.done():
            raise _Unknown(f"unexpected {self.peek()!r}")
        return parts[0] if len(parts) == 1 else {"concat": parts}


def _flag_key(left: Any) -> bool:
    if isinstance(left, dict) and len(left) == 1:
        (k, v), = left.items()
        if k == "ct":
            return ("ct", v.get("key")) in _FLAG_KEYS
        if k == "payload":
            return (v.get("protocol"), v.get("field")) in _FLAG_KEYS
    return False


_INT = re.compile(r"^(?:0x[0-9a-fA-F]+|\d+)$")


# Memory at 20000 services: the text reader gives equal values one object
# (``ip daddr``, port 8080, an endpoint's address in its chain and in its
# service's map) instead of one per occurrence. Values are never mutated; the
# tables live for one parse (:func:`_parse_done`), so nothing grows across runs.
_SHARED: dict[Any, Any] = {}
_SCALARS: dict[str, Any] = {}


def _parse_done() -> None:
    _SHARED.clear()
    _SCALARS.clear()


def _scalar(tok: str) -> Any:
    """A constant as libnftables-json writes it: ints, prefixes, ranges, strings
    (one object per distinct token within a parse)."""
    try:
        return _SCALARS[tok]
    except KeyError:
        pass
    v = _SCALARS[tok] = _new_scalar(tok)
    return v


def _new_scalar(tok: str) -> Any:
    if tok.startswith('"'):
        return _unquote(tok)
    if _INT.match(tok):
        return int(tok, 0)
    if "/" in tok and not tok.startswith("@"):
        addr, _, plen = tok.rpartition("/")
        if plen.isdigit() and _looks_address(addr):
            return {"prefix": {"addr": addr, "len": int(plen)}}
    if "-" in tok and not tok.startswith("@"):
        lo, _, hi = tok.partition("-")
        if (_INT.match(lo) and _INT.match(hi)) or (_looks_address(lo) and _looks_address(hi)):
            return {"range": [_scalar(lo), _scalar(hi)]}
    return tok


def _looks_address(s: str) -> bool:
    return bool(re.fullmatch(r"\d{1,3}(?:\.\d{1,3}){3}|[0-9a-fA-F:]*:[0-9a-fA-F:.]*", s))


def _split_host_port(tok: str) -> tuple[Any, int | None]:
    if tok.startswith("["):
        host, _, rest = tok[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") and rest[1:].isdigit() else None
    if tok.count(":") == 1:
        host, port = tok.split(":")
        return host, int(port) if port.isdigit() else None
    return _scalar(tok), None


# --- JSON ---------------------------------------------------------------------------

# Bounds on hostile JSON: nft's own nests about 10 levels; deeper input is
# refused before anything recursive (rendering, evaluating) walks it. Items that
# are not objects are said individually only up to a count, then summed.
MAX_JSON_DEPTH = 100
MAX_SKIPPED_SAID = 20


def _loads_bounded(text: str) -> Any:
    """``json.loads`` refusing nesting deeper than :data:`MAX_JSON_DEPTH` levels
    (RecursionError). The C decoder stops by itself at the interpreter's recursion
    limit; what it returns is then measured without recursion. (Lowering the limit
    around the call would be process-wide: the exporter's other threads would feel it.)"""
    doc = json.loads(text)
    stack = [(doc, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise RecursionError(f"nested more than {MAX_JSON_DEPTH} levels")
        items = value.values() if isinstance(value, dict) else value
        stack.extend((v, depth + 1) for v in items if isinstance(v, (dict, list)))
    return doc


class _NotStreamable(Exception):
    """The JSON is not one ``{"nftables": [...]}`` read item by item without error:
    read it whole instead (json.loads), which says what is wrong the usual way."""


_JSON_WS = re.compile(r"[ \t\n\r]*")
_JSON_HEAD = re.compile(r'[ \t\n\r]*\{[ \t\n\r]*"nftables"[ \t\n\r]*:[ \t\n\r]*\[[ \t\n\r]*')
_DECODER = json.JSONDecoder()


def _stream_items(text: str):
    """The items of ``{"nftables": [ ... ]}`` decoded one at a time (the same
    decoder json.loads uses, so the same values), each measured against
    :data:`MAX_JSON_DEPTH` as the whole document would be. The whole decoded
    document is never held: at 20000 services it is ~410 MB, and the model keeps
    only part of each item. Anything else (another shape, invalid or too deep
    JSON, text after the end) raises _NotStreamable, even after some items."""
    m = _JSON_HEAD.match(text)
    if m is None:
        raise _NotStreamable
    pos, ws, decode = m.end(), _JSON_WS.match, _DECODER.raw_decode
    if text.startswith("]", pos):
        pos += 1
    else:
        while True:
            try:
                item, pos = decode(text, pos)
            except (ValueError, RecursionError):
                raise _NotStreamable from None
            if isinstance(item, (dict, list)):
                stack = [(item, 3)]  # the document is level 1, the array 2
                while stack:
                    value, depth = stack.pop()
                    if depth > MAX_JSON_DEPTH:
                        raise _NotStreamable
                    vals = value.values() if isinstance(value, dict) else value
                    stack.extend((v, depth + 1) for v in vals if isinstance(v, (dict, list)))
            yield item
            pos = ws(text, pos).end()
            c = text[pos:pos + 1]
            pos = ws(text, pos + 1).end()
            if c == "]":
                break
            if c != ",":
                raise _NotStreamable
    pos = ws(text, pos).end()
    if text[pos:pos + 1] != "}" or ws(text, pos + 1).end() != len(text):
        raise _NotStreamable


def parse_nft_json(text: str, source: str = "<input>", *, strict: bool = False) -> NftRuleset:
    """``nft -j list ruleset`` (libnftables-json): positions are 1-based indexes in
    the ``nftables`` array, which is what rules and elements quote as their line."""
    if _fast:
        try:
            return _parse_json_items(_stream_items(text), source, strict)
        except _NotStreamable:
            pass  # read whole below: the same answer, or the error json.loads gives
    try:
        doc = _loads_bounded(text)
    except json.JSONDecodeError as exc:
        raise ParseError(f"not valid JSON ({exc.msg})", source, exc.lineno) from None
    except RecursionError:
        raise ParseError(f"JSON nested more than {MAX_JSON_DEPTH} levels deep: not `nft -j` output (nft's own "
                         "nests about 10)", source) from None
    items = doc.get("nftables") if isinstance(doc, dict) else None
    if not isinstance(items, list):
        raise NotADumpError("JSON without an \"nftables\" array: not `nft -j list ruleset` output", source)
    del doc
    return _parse_json_items(iter(items), source, strict)


def _json_rule(fam, tname, r: dict, pos: int, source: str, names: dict[str, str], render_rule) -> NftRule:
    """One ``{"rule": ...}`` item as the model keeps it (built as it is read, so
    the decoded item can go)."""
    fam, tname = names.setdefault(fam, fam), names.setdefault(tname, tname)
    chain = r.get("chain")
    chain = names.setdefault(chain, chain) if isinstance(chain, str) else chain
    exprs = tuple(r.get("expr", ()))
    text = render_rule(NftRule(fam, tname, chain, exprs, "", pos, source, r.get("handle"), r.get("comment")))
    unknown = None
    if "<?" in text:
        unknown = "an expression svcinspect does not know"
    elif _fast and text.startswith("meta l4proto ") and _NUMGEN_DNAT.fullmatch(text) \
            and decode_deferred(text, fam) == exprs:
        exprs = None  # its text builds exactly these statements again (see _NUMGEN_DNAT)
    return NftRule(fam, tname, chain, exprs, text, pos, source, r.get("handle"), r.get("comment"), unknown)


def _parse_json_items(items, source: str, strict: bool) -> NftRuleset:
    from svcinspect.dataplane.nftables.render import render_rule

    diags: list[Diagnostic] = []
    tables: dict[tuple[str, str], dict[str, Any]] = {}
    order: list[tuple[str, str]] = []

    def tab(fam: str, name: str, pos: int) -> dict[str, Any]:
        key = (fam, name)
        if key not in tables:
            tables[key] = {"chains": {}, "sets": {}, "rules": {}, "line": pos, "comment": None, "handle": None}
            order.append(key)
        return tables[key]

    skipped = 0
    names: dict[str, str] = {}  # one string per family, table and chain name, not one per rule
    for pos, item in enumerate(items, 1):
        if not isinstance(item, dict) or len(item) != 1:
            skipped += 1
            if skipped <= MAX_SKIPPED_SAID:
                diags.append(Diagnostic(Severity.WARNING, "not an nftables object; skipped", source, pos))
            continue
        (kind, obj), = item.items()
        if kind == "metainfo":
            continue
        if not isinstance(obj, dict):
            continue
        fam, tname = obj.get("family"), obj.get("table") if kind != "table" else obj.get("name")
        if kind == "table":
            t = tab(fam, tname, pos)
            t["comment"], t["handle"], t["line"] = obj.get("comment"), obj.get("handle"), pos
        elif kind == "chain":
            t = tab(fam, tname, pos)
            prio = obj.get("prio")
            t["chains"][obj["name"]] = dict(obj, _pos=pos, _prio=prio)
        elif kind in ("set", "map"):
            t = tab(fam, tname, pos)
            t["sets"][obj["name"]] = dict(obj, _pos=pos, _map=kind == "map")
        elif kind == "rule":
            t = tab(fam, tname, pos)
            t["rules"].setdefault(obj.get("chain"), []).append((pos, _json_rule(fam, tname, obj, pos, source,
                                                                                names, render_rule)))
        else:
            diags.append(Diagnostic(Severity.INFO, f"{kind} objects are not used by kube-proxy; skipped", source, pos))
    if skipped > MAX_SKIPPED_SAID:
        diags.append(Diagnostic(Severity.WARNING, f"{skipped - MAX_SKIPPED_SAID} more items that are not nftables "
                                "objects skipped", source))
    out: list[NftTable] = []
    for fam, tname in order:
        t = tables[(fam, tname)]
        sets = {}
        for name, s in t["sets"].items():
            types = s.get("type")
            types = tuple(types) if isinstance(types, list) else ((types,) if types else ())
            elems = []
            for e in s.get("elem", ()) or ():
                if s["_map"] and isinstance(e, list) and len(e) == 2:
                    key, val = e
                else:
                    key, val = e, None
                comment = key.get("elem", {}).get("comment") if isinstance(key, dict) and "elem" in key else None
                elems.append(NftElement(key, val, comment, s["_pos"], ""))
            flags = s.get("flags", ())
            flags = tuple(flags) if isinstance(flags, list) else ((flags,) if flags else ())
            sets[name] = NftSet(fam, tname, name, s["_map"], types, s.get("map"), flags, tuple(elems),
                                s.get("comment"), s.get("timeout"), s["_pos"], source, s.get("handle"), s.get("size"))
        chains = {}
        for name, c in t["chains"].items():
            rules = []
            for pos, rule in t["rules"].get(name, ()):
                if rule.unknown:
                    diags.append(Diagnostic(Severity.WARNING, f"statement not understood ({rule.unknown}); the rule "
                                            "is kept and treated as unknown", source, pos, rule.text))
                rules.append(rule)
            prio = c.get("_prio")
            chains[name] = NftChain(fam, tname, name, tuple(rules), c.get("type"), c.get("hook"),
                                    prio if isinstance(prio, int) else None, None if prio is None else str(prio),
                                    c.get("policy"), c.get("comment"), c["_pos"], source, c.get("handle"),
                                    c.get("dev"))
        for cname, rs in t["rules"].items():
            if cname not in chains:
                diags.append(Diagnostic(Severity.WARNING, f"rules for chain {cname}, which is not listed", source,
                                        rs[0][0]))
        out.append(NftTable(fam, tname, chains, sets, t["comment"], t["line"], source, t["handle"]))
    if strict:
        bad = [d for d in diags if d.severity >= Severity.WARNING]
        if bad:
            raise ParseError(bad[0].message, source, bad[0].line)
    return NftRuleset(tuple(out), tuple(diags), (source,), "json", True)
