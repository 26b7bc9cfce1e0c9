"""Print the nftables model as nft text: rules read from JSON get the text nft
would print (for quoting in traces), and ``render_ruleset`` gives canonical
``nft list ruleset`` text that ``nft -c -f`` accepts (``dump``).

>>> from svcinspect.dataplane.nftables.parse import parse_rule_text
>>> exprs, _, _ = parse_rule_text("meta mark & 0x00004000 != 0x00000000 meta mark set meta mark ^ 0x00004000", "ip")
>>> render_exprs(exprs)
'meta mark & 0x00004000 != 0x00000000 meta mark set meta mark ^ 0x00004000'
"""

from __future__ import annotations

from typing import Any

from svcinspect.dataplane.nftables.model import NftChain, NftElement, NftRule, NftRuleset, NftSet, NftTable

_MARKISH = {("meta", "mark"), ("ct", "mark")}


def render_rule(rule: NftRule) -> str:
    text = render_exprs(rule.exprs)
    if rule.comment is not None:
        text += f' comment "{rule.comment}"'
    return text


def render_exprs(exprs) -> str:
    return " ".join(render_stmt(s) for s in exprs)


def render_stmt(s: Any) -> str:
    if not isinstance(s, dict) or len(s) != 1:
        return f"<?{s!r}>"
    (k, v), = s.items()
    if k in ("jump", "goto"):
        return f"{k} {v['target']}"
    if k in ("accept", "drop", "continue", "return", "queue", "notrack"):
        return k
    if k == "reject":
        if not v or (v.get("expr") == "port-unreachable" and v.get("type") in ("icmp", "icmpv6", "icmpx")):
            return "reject"
        if v.get("type") == "tcp reset":
            return "reject with tcp reset"
        return f"reject with {v.get('type')} {v.get('expr')}"
    if k == "counter":
        return "counter" + (f" packets {v.get('packets', 0)} bytes {v.get('bytes', 0)}" if v else "")
    if k == "masquerade":
        flags = (v or {}).get("flags")
        if isinstance(flags, list):
            flags = ",".join(flags)
        return "masquerade" + (f" {flags}" if flags else "")
    if k in ("dnat", "snat"):
        v = v if isinstance(v, dict) else {}
        fam = v.get("family")
        addr = v.get("addr")
        out = k + (f" {fam}" if fam else "") + " to "
        if isinstance(addr, dict) and "map" in addr:
            out += f"{render_expr(addr['map']['key'])} map {render_map(addr['map']['data'])}"
        elif isinstance(addr, dict):
            out += render_value(addr)
        else:
            a = str(addr)
            if "port" in v:
                out += (f"[{a}]" if ":" in a else a) + f":{v['port']}"
            else:
                out += a
        flags = v.get("flags")
        if flags:
            out += " " + (",".join(flags) if isinstance(flags, list) else flags)
        return out
    if k == "set" and isinstance(v, dict) and "op" in v:
        return f"{v['op']} {v['set']} {{ {render_expr(v['elem'])} }}"
    if k == "log":
        return "log" + "".join(f' {a} "{b}"' if a == "prefix" else f" {a} {b}" for a, b in (v or {}).items())
    if k == "mangle":
        return f"{render_expr(v['key'])} set {render_expr(v['value'], mark=_is_mark(v['key']))}"
    if k == "vmap":
        return f"{render_expr(v['key'])} vmap {render_map(v['data'])}"
    if k == "match":
        left, right, op = v["left"], v["right"], v["op"]
        mark = _is_mark(left)
        r = render_value(right, mark=mark)
        if op in ("==", "in"):
            return f"{render_expr(left)} {r}"
        return f"{render_expr(left)} {op} {r}"
    if k == "unknown":
        return f"<?{v}>"
    return f"<?{k}>"


def _is_mark(e: Any) -> bool:
    if isinstance(e, dict) and len(e) == 1:
        (k, v), = e.items()
        if k in ("meta", "ct"):
            return (k, v.get("key")) in _MARKISH
        if k in ("&", "|", "^"):
            return _is_mark(v[0])
    return False


def render_expr(e: Any, mark: bool = False) -> str:
    if isinstance(e, dict) and len(e) == 1:
        (k, v), = e.items()
        if k == "payload":
            return f"{v['protocol']} {v['field']}"
        if k == "meta":
            return f"meta {v['key']}" if v["key"] not in ("iifname", "oifname", "iif", "oif") else v["key"]
        if k == "ct":
            return f"ct {v['key']}"
        if k == "fib":
            flags = v.get("flags", [])
            flags = [flags] if isinstance(flags, str) else flags
            return f"fib {' . '.join(flags)} {v['result']}"
        if k == "numgen":
            return f"numgen {v['mode']} mod {v['mod']}" + (f" offset {v['offset']}" if v.get("offset") else "")
        if k == "concat":
            return " . ".join(render_expr(x) for x in v)
        if k in ("&", "|", "^", "<<", ">>"):
            m = _is_mark(v[0]) or mark
            return f"{render_expr(v[0])} {k} {render_value(v[1], mark=m)}"
    return render_value(e, mark=mark)


def render_value(v: Any, mark: bool = False) -> str:
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, int):
        return f"0x{v:08x}" if mark else str(v)
    if isinstance(v, str):
        return v if _plain(v) else f'"{v}"'
    if isinstance(v, list):
        return ",".join(render_value(x) for x in v)
    if isinstance(v, dict) and len(v) == 1:
        (k, x), = v.items()
        if k == "prefix":
            return f"{x['addr']}/{x['len']}"
        if k == "range":
            return f"{render_value(x[0])}-{render_value(x[1])}"
        if k == "concat":
            return " . ".join(render_value(y) for y in x)
        if k == "set":
            return "{ " + ", ".join(render_value(y) for y in x) + " }" if isinstance(x, list) else render_value(x)
        if k == "elem":
            out = render_value(x["val"])
            if x.get("timeout"):
                out += f" timeout {x['timeout']}s"
            if x.get("expires"):
                out += f" expires {x['expires']}s"
            if x.get("comment") is not None:
                out += f' comment "{x["comment"]}"'
            return out
        if k in ("goto", "jump"):
            return f"{k} {x['target']}"
        if k in ("accept", "drop", "return", "continue"):
            return k
    if isinstance(v, dict):
        return render_expr(v)
    return f"<?{v!r}>"


def _plain(s: str) -> bool:
    return bool(s) and all(c.isalnum() or c in "@-_./:" for c in s)


def render_map(data: Any) -> str:
    if isinstance(data, str):
        return data
    pairs = data.get("set", []) if isinstance(data, dict) else []
    return "{ " + ", ".join(f"{render_value(k)} : {render_value(v)}" for k, v in pairs) + " }"


def render_element(e: NftElement) -> str:
    key = render_value(e.key)
    return key if e.value is None else f"{key} : {render_value(e.value)}"


# --- whole rulesets ------------------------------------------------------------------

def _set_block(s: NftSet) -> list[str]:
    kind = "map" if s.is_map else "set"
    out = [f"\t{kind} {s.name} {{"]
    typ = " . ".join(s.key_type)
    if s.is_map:
        typ += f" : {s.data_type}"
    out.append(f"\t\ttype {typ}")
    if s.size is not None:
        out.append(f"\t\tsize {s.size}")
    flags = [f for f in s.flags]
    if s.timeout is not None and "timeout" not in flags:
        flags.append("timeout")
    if flags:
        out.append(f"\t\tflags {','.join(flags)}")
    if s.timeout is not None:
        out.append(f"\t\ttimeout {s.timeout}s")
    if s.comment is not None:
        out.append(f'\t\tcomment "{s.comment}"')
    if s.elements:
        out.append("\t\telements = { " + ",\n\t\t\t     ".join(render_element(e) for e in s.elements) + " }")
    out.append("\t}")
    return out


def _chain_block(c: NftChain) -> list[str]:
    out = [f"\tchain {c.name} {{"]
    if c.hook is not None:
        out.append(f"\t\ttype {c.type} hook {c.hook} priority {c.priority if c.priority is not None else 0}; "
                   f"policy {c.policy or 'accept'};")
    if c.comment is not None:
        out.append(f'\t\tcomment "{c.comment}"')
    for r in c.rules:
        out.append("\t\t" + (r.text if r.unknown is None and r.text else render_rule(r)))
    out.append("\t}")
    return out


def render_table(t: NftTable) -> str:
    out = [f"table {t.family} {t.name} {{"]
    if t.comment is not None:
        out.append(f'\tcomment "{t.comment}"')
    blocks = [_set_block(s) for s in t.sets.values()] + [_chain_block(c) for c in t.chains.values()]
    for i, b in enumerate(blocks):
        if i:
            out.append("")
        out.extend(b)
    out.append("}")
    return "\n".join(out) + "\n"


def render_ruleset(rs: NftRuleset) -> str:
    """Canonical nft text of every table read (numeric priorities, one rule a line)."""
    return "".join(render_table(t) for t in rs.tables)
