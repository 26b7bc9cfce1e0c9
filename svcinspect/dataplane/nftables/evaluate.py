"""Run one first packet through kube-proxy's nftables table, the way the kernel does.

nft semantics, not the iptables evaluator's: base chains are taken per hook in
priority order (``filter-prerouting-pre-dnat`` at -110 before ``nat-prerouting``
at -100 ...); ``accept`` ends one base chain only, ``drop``/``reject`` end the
packet; ``jump``/``goto``/``return`` as nft(8) says; a ``dnat``/``snat``/
``masquerade`` statement ends its nat chain, and once a connection has a NAT
binding for a hook the later nat chains of that hook are skipped. Sets and maps
(named and anonymous, with prefixes, ranges and concatenations) are looked up;
``vmap`` and ``map`` lookups that find no element end the rule; ``numgen random
mod N`` splits the packet into one outcome per element with its exact share
(``k/N`` for an element covering ``k`` values).

What the ruleset cannot tell is stated, as in the iptables evaluator:
which addresses are the node's (``fib ... type local`` and the routing decision:
``Environment.node_ips``, else an "if"/"if not" pair of outcomes); dynamic sets
(``affinity-*``: a first packet has no entry, so ``ip saddr @affinity-X``
does not match unless the listing shows the client in it); interfaces and
anything unknown become alternatives named in the outcome.
"""

from __future__ import annotations

import ipaddress
from fractions import Fraction
from typing import Any

from svcinspect.dataplane.nftables.model import NftChain, NftRule, NftRuleset, NftSet, NftTable
from svcinspect.dataplane.nftables.render import render_element, render_value
from svcinspect.simulate import Environment, merge_irrelevant
from svcinspect.simulate import World as BaseWorld
from svcinspect.model.flow import Disposition, Hook, Outcome, Packet, Simulation, Step
from svcinspect.model.netfilter import Family

MAX_DEPTH = 50
_PROTO_NAMES = {6: "tcp", 17: "udp", 132: "sctp", 1: "icmp", 58: "icmpv6", 136: "udplite", 33: "dccp"}
LOCALHOST_NOTE = ("nftables mode does not serve node ports on localhost (127.0.0.1 / ::1): unlike iptables mode, "
                  "kube-proxy writes no rule for them, so this connection is not load-balanced")


class _World(BaseWorld):
    """The iptables evaluator's world (header, mark, probability, history, forks)
    plus :meth:`note`."""

    __slots__ = ()

    def note(self, text: str) -> None:
        if text not in self.assumptions:
            self.assumptions.append(text)


def _fmt(ip) -> str:
    return f"[{ip}]" if ip.version == 6 else str(ip)


def _norm(v: Any) -> Any:
    """A constant from the rules as a comparable Python value."""
    if isinstance(v, str):
        if v and (v[0].isdigit() or ":" in v) and ("." in v or ":" in v):
            try:
                return ipaddress.ip_address(v)
            except ValueError:
                return v
        return v
    if isinstance(v, int):
        return v
    if isinstance(v, dict) and len(v) == 1:
        (k, x), = v.items()
        if k == "prefix":
            return ipaddress.ip_network(f"{x['addr']}/{x['len']}", strict=False)
        if k == "range":
            return ("range", _norm(x[0]), _norm(x[1]))
        if k == "concat":
            return tuple(_norm(y) for y in x)
        if k == "elem":
            return _norm(x["val"])
    return v


def _scalar_matches(value: Any, const: Any) -> bool:
    if isinstance(const, (ipaddress.IPv4Network, ipaddress.IPv6Network)):
        return isinstance(value, (ipaddress.IPv4Address, ipaddress.IPv6Address)) and value.version == \
            const.version and value in const
    if isinstance(const, tuple) and const and const[0] == "range":
        try:
            return const[1] <= value <= const[2]
        except TypeError:
            return False
    if isinstance(value, int) and isinstance(const, str) and const in _PROTO_BY_NAME:
        return _PROTO_BY_NAME[const] == value
    if isinstance(value, str) and isinstance(const, int):
        return _PROTO_NAMES.get(const) == value
    return value == const


_PROTO_BY_NAME = {v: k for k, v in _PROTO_NAMES.items()}


def _matches(value: Any, const: Any) -> bool:
    if isinstance(value, tuple) and isinstance(const, tuple) and (not const or const[0] != "range"):
        return len(value) == len(const) and all(_scalar_matches(a, b) for a, b in zip(value, const))
    return _scalar_matches(value, const)


class _SetIndex:
    """Exact elements in a dict, intervals (prefixes, ranges) in a list."""

    __slots__ = ("exact", "intervals", "set")

    def __init__(self, s: NftSet):
        self.set = s
        self.exact: dict[Any, Any] = {}
        self.intervals: list[tuple[Any, Any]] = []
        for e in s.elements:
            key = _norm(e.key)
            parts = key if isinstance(key, tuple) and (not key or key[0] != "range") else (key,)
            if any(isinstance(p, (ipaddress.IPv4Network, ipaddress.IPv6Network)) or
                   (isinstance(p, tuple) and p and p[0] == "range") for p in parts):
                self.intervals.append((key, e))
            else:
                self.exact.setdefault(_hashable(key), e)

    def lookup(self, value: Any):
        e = self.exact.get(_hashable(value))
        if e is not None:
            return e
        for key, el in self.intervals:
            if _matches(value, key):
                return el
        return None


def _hashable(v: Any) -> Any:
    if isinstance(v, tuple):
        return tuple(_hashable(x) for x in v)
    if isinstance(v, int) and not isinstance(v, bool):
        return v
    return v


class NftEvaluator:
    """Simulates first packets against one address family of an nftables ruleset."""

    def __init__(self, ruleset: NftRuleset, family: Family, env: Environment = Environment()):
        self.family = family
        self.env = env
        self.tables: dict = {}          # the iptables evaluator's per-table view: none here
        self.warnings: list[str] = []
        self.table: NftTable | None = ruleset.kube_proxy(family)
        self._sets: dict[str, _SetIndex] = {}
        self._anon: dict[int, _SetIndex] = {}
        self._ctype_now = "filter"
        self.hooks: dict[str, list[NftChain]] = {}
        if self.table is None:
            self.warnings.append(f"no {'ip6' if int(family) == 6 else 'ip'} kube-proxy table in the input: "
                                 f"nothing to simulate for IPv{int(family)}")
            return
        for c in self.table.chains.values():
            if c.is_base:
                self.hooks.setdefault(c.hook, []).append(c)
        for chains in self.hooks.values():
            chains.sort(key=lambda c: c.priority if c.priority is not None else 0)
        for t in ruleset.tables:
            if t is not self.table and t.address_family in (family, None) and t.family in ("ip", "ip6", "inet") \
                    and any(c.is_base for c in t.chains.values()):
                self.warnings.append(f"table {t.family} {t.name} also has base chains; only kube-proxy's table is "
                                     f"simulated")
        if not ruleset.complete:
            self.warnings.append("the input is an excerpt (elided or truncated): what it leaves out is not simulated")

    localhost_node_ports = False  # kube-proxy's nftables mode writes no rule for 127.0.0.1 node ports
    hairpin_rule = "the @hairpin-connections set in the masquerading chain, or, before 1.36, the per-endpoint " \
                   "'ip saddr <endpoint> jump mark-for-masquerade'"

    @property
    def cluster_cidr(self):
        """The pod network, from kube-proxy's own ``ip saddr != <cidr>`` masquerade rule."""
        if self.table is None:
            return None
        for c in self.table.chains.values():
            if not (c.name == "services" or c.name.startswith("service-")):
                continue
            for r in c.rules:
                for s in r.exprs:
                    m = s.get("match") if isinstance(s, dict) else None
                    if m and m["op"] == "!=" and isinstance(m["right"], dict) and "prefix" in m["right"] and \
                            m["left"] == {"payload": {"protocol": "ip6" if int(self.family) == 6 else "ip",
                                                      "field": "saddr"}}:
                        p = m["right"]["prefix"]
                        return ipaddress.ip_network(f"{p['addr']}/{p['len']}", strict=False)
            if c.name == "services":
                break
        return None

    # --- the packet path ------------------------------------------------------------
    def simulate(self, packet: Packet) -> Simulation:
        if packet.family != int(self.family):
            raise ValueError("packet and ruleset families differ")
        warnings = list(self.warnings)
        done: list[tuple[_World, str]] = []
        start = _World(packet)
        if packet.hook is Hook.PREROUTING:
            for w, v in self._hook("prerouting", [start]):
                if v in ("drop", "reject"):
                    done.append((w, v))
                    continue
                for w2, local in self._locality(w, w.dst):
                    after = self._hook("input", [w2]) if local else self._hook("forward", [w2])
                    for w3, v3 in after:
                        if v3 in ("drop", "reject") or local:
                            done.append((w3, v3))
                            continue
                        done.extend(self._hook("postrouting", [w3]))
        else:
            for w, v in self._hook("output", [start]):
                if v in ("drop", "reject"):
                    done.append((w, v))
                    continue
                for w2, v2 in self._hook("postrouting", [w]):
                    if v2 in ("drop", "reject"):
                        done.append((w2, v2))
                        continue
                    for w3, local in self._locality(w2, w2.dst):
                        done.extend(self._hook("input", [w3]) if local else [(w3, v2)])
        if packet.dst.is_loopback and self._is_node_port(packet):
            warnings.append(LOCALHOST_NOTE)
        outcomes = tuple(self._outcome(packet, w, v) for w, v in merge_irrelevant(done, result_key=_result_key))
        return Simulation(packet, outcomes, tuple(warnings), "nftables")

    def _is_node_port(self, p: Packet) -> bool:
        """A node port of a Service with endpoints (service-nodeports) or without
        (no-endpoint-nodeports): either way 127.0.0.1 is not served."""
        for name in ("service-nodeports", "no-endpoint-nodeports"):
            s = self._set_index(name)
            if s is not None and s.lookup((p.proto, p.dport)) is not None:
                return True
        return False

    def _outcome(self, packet: Packet, w: _World, verdict: str) -> Outcome:
        if verdict == "drop":
            disp = Disposition.DROP
        elif verdict == "reject":
            disp = Disposition.REJECT
        elif w.dnat is not None:
            disp = Disposition.DNAT
        else:
            disp = Disposition.ACCEPT if w.decided else Disposition.NONE
        out = Packet(w.src, w.dst, w.dport, w.proto, packet.hook, packet.sport, w.mark)
        return Outcome(disp, w.prob, out, w.dnat, w.masq, tuple(w.steps), tuple(w.assumptions), w.verdict_step,
                       w.snat)

    def _hook(self, hook: str, worlds: list[_World]) -> list[tuple[_World, str]]:
        """Every base chain of ``hook`` in priority order; ``accept`` or falling off
        (policy accept) passes the packet to the next one."""
        live = [(w, "accept") for w in worlds]
        for chain in self.hooks.get(hook, ()):
            nxt: list[tuple[_World, str]] = []
            for w, v in live:
                if v in ("drop", "reject"):
                    nxt.append((w, v))
                    continue
                if chain.type == "nat" and self._nat_done(w, hook):
                    nxt.append((w, v))
                    continue
                ctype = chain.type or "filter"
                for w2, v2 in self._run(chain, w, 0, ctype):
                    if v2 is None:
                        policy = chain.policy or "accept"
                        if policy == "drop":
                            step = Step(ctype, chain.name, chain.line, f"policy {policy}",
                                        "policy drop: nothing accepted the packet", chain.source)
                            w2.steps.append(step)
                            w2.verdict_step = step
                            nxt.append((w2, "drop"))
                            continue
                        nxt.append((w2, "accept"))
                    elif v2 == "nat":
                        nxt.append((w2, "accept"))
                    else:
                        nxt.append((w2, v2))
            live = nxt
        return live

    @staticmethod
    def _nat_done(w: _World, hook: str) -> bool:
        if hook in ("prerouting", "output"):
            return w.dnat is not None
        if hook in ("postrouting", "input"):
            return w.masq
        return False

    # --- chains -----------------------------------------------------------------------
    def _run(self, chain: NftChain, world: _World, depth: int, ctype: str) -> list[tuple[_World, str | None]]:
        """(world, verdict): None = fell off the end or returned; "accept", "drop",
        "reject", "nat" = decided."""
        if depth > MAX_DEPTH:
            world.note(f"stopped after {MAX_DEPTH} nested jumps at {chain.name} (a loop in the rules?)")
            return [(world, None)]
        pending = [world]
        done: list[tuple[_World, str | None]] = []
        for rule in chain.rules:
            if not pending:
                break
            nxt: list[_World] = []
            for w in pending:
                for w2, res in self._rule(rule, w, depth, ctype):
                    if res == "continue":
                        nxt.append(w2)
                    elif res == "return":
                        done.append((w2, None))
                    else:
                        done.append((w2, res))
            pending = nxt
        done.extend((w, None) for w in pending)
        return done

    def _step(self, rule: NftRule, ctype: str, action: str) -> Step:
        return Step(ctype, rule.chain, rule.line, rule.text, action, rule.source)

    def _rule(self, rule: NftRule, w: _World, depth: int, ctype: str) -> list[tuple[_World, str]]:
        """Statements in order; a failed match ends the rule ("continue" to the next)."""
        self._ctype_now = ctype
        states: list[tuple[_World, int]] = [(w, 0)]
        out: list[tuple[_World, str]] = []
        stmts = rule.exprs
        while states:
            x, i = states.pop()
            if i >= len(stmts):
                out.append((x, "continue"))
                continue
            for y, res in self._statement(rule, stmts[i], x, depth, ctype):
                if res is True:
                    states.append((y, i + 1))
                elif res is False:
                    out.append((y, "continue"))
                else:
                    out.append((y, res))
        return out

    def _statement(self, rule: NftRule, s: Any, w: _World, depth: int, ctype: str):
        """Yields (world, True: go on / False: rule ends, no match / verdict string)."""
        if not isinstance(s, dict) or len(s) != 1:
            return self._unknown(w, rule, "a statement")
        (k, v), = s.items()
        if k == "match":
            return self._match(rule, v, w)
        if k in ("jump", "goto"):
            return self._jump(rule, k, v["target"], w, depth, ctype, rule.text)
        if k in ("accept", "drop", "continue", "return"):
            return [self._verdict(rule, k, w, ctype)]
        if k == "reject":
            step = self._step(rule, ctype, "reject")
            w.steps.append(step)
            w.verdict_step = step
            return [(w, "reject")]
        if k in ("counter", "log", "notrack", "limit"):
            return [(w, True)]
        if k == "mangle":
            return self._mangle(rule, v, w, ctype)
        if k == "set" and isinstance(v, dict) and "op" in v:
            w.steps.append(self._step(rule, ctype, f"{v['op']} {v['set']}: remember this client (session affinity)"))
            w.note(f"first packet from this client: {v['set']} has no entry for it yet, so the 'ip saddr "
                   f"@affinity-...' rules before the random choice do not match (later connections within the "
                   f"timeout stick to the endpoint chosen)")
            return [(w, True)]
        if k == "vmap":
            return self._vmap(rule, v, w, depth, ctype)
        if k == "dnat":
            return self._dnat(rule, v, w, ctype)
        if k in ("masquerade", "snat"):
            w.masq = True
            addr = (v or {}).get("addr") if k == "snat" else None
            w.snat = str(addr) if addr and not isinstance(addr, dict) else self._node_address()
            step = self._step(rule, ctype, f"{k}: source {_fmt(w.src)} -> {w.snat}")
            w.steps.append(step)
            w.verdict_step = w.verdict_step or step
            return [(w, "nat")]
        return self._unknown(w, rule, k)

    def _verdict(self, rule: NftRule, k: str, w: _World, ctype: str) -> tuple[_World, Any]:
        if k == "continue":
            return (w, True)
        step = self._step(rule, ctype, k)
        w.steps.append(step)
        if k == "return":
            return (w, "return")
        w.verdict_step = step
        if k == "accept":
            w.decided = True
        return (w, k)

    def _jump(self, rule: NftRule, kind: str, target: str, w: _World, depth: int, ctype: str, text: str,
              pre: Step | None = None):
        assert self.table is not None
        chain = self.table.chains.get(target)
        if chain is None:
            w.note(f"line {rule.line}: {kind} {target}, a chain that is not in the input: assumed to "
                   f"return (an excerpt?)")
            w.steps.append(self._step(rule, ctype, f"{kind} {target}? (not in the input)"))
            return [(w, True)]
        w.steps.append(self._step(rule, ctype, f"{kind} {target}"))
        if pre is not None:  # the map element that chose the target, quoted after the rule
            w.steps.append(pre)
        out = []
        for w2, v in self._run(chain, w, depth + 1, ctype):
            if v is None:
                out.append((w2, "return" if kind == "goto" else True))
            else:
                out.append((w2, v))
        return out

    # --- matches -----------------------------------------------------------------------
    def _match(self, rule: NftRule, m: dict, w: _World):
        op, left, right = m["op"], m["left"], m["right"]
        if isinstance(left, dict) and left.get("meta", {}).get("key") in ("iifname", "oifname", "iif", "oif"):
            # The input cannot say which interface a packet uses.
            verb = "arrives on" if left["meta"]["key"].startswith("i") else "leaves by"
            shown = render_value(right)
            return self._assume(w, f"{verb}:{shown}", f"the packet {verb} an interface matching {shown}",
                                negated=op == "!=")
        out = []
        for x, value in self._eval(rule, left, w):
            if value is _MISMATCH or (isinstance(value, tuple) and _MISMATCH in value):
                out.append((x, False))  # tcp dport on a udp packet: nft's implied l4proto test fails
                continue
            if value is _UNKNOWN:
                out.extend(self._unknown(x, rule, _describe(left)))
                continue
            for y, hit in self._compare(rule, op, left, value, right, x):
                out.append((y, hit))
        return out

    def _compare(self, rule: NftRule, op: str, left: Any, value: Any, right: Any, w: _World):
        if isinstance(right, str) and right.startswith("@"):
            idx = self._set_index(right[1:])
            if idx is None:
                return self._assume(w, f"set:{right}", f"{right} (a set that is not in the input) contains "
                                                      f"{_show(value)}", negated=op == "!=")
            s = idx.set
            hit = idx.lookup(value) is not None
            if not hit and ("dynamic" in s.flags or s.timeout is not None) and not s.elements:
                w.note(f"first packet from this client: {right} is filled by the rules at run time "
                       f"(session affinity) and holds no entry for it yet, so it does not match")
            if hit and s.elements:
                el = idx.lookup(value)
                w.steps.append(Step(self._ctype_now, "@" + s.name, el.line, el.text or render_element(el),
                                    f"element of @{s.name}", s.source))
            return [(w, hit != (op == "!="))]
        if op == "in":  # flag match: ct state new, ct status dnat
            want = right if isinstance(right, list) else [right]
            have = value if isinstance(value, set) else {value}
            return [(w, bool(have & set(want)))]
        consts = [_norm(x) for x in right["set"]] if isinstance(right, dict) and "set" in right else [_norm(right)]
        if isinstance(value, set):
            hit = bool({str(x) for x in value} & {str(c) for c in consts})
        else:
            hit = any(_matches(value, c) for c in consts)
        if op in ("==", "!="):
            return [(w, hit != (op == "!="))]
        try:
            c = consts[0]
            res = {"<": value < c, ">": value > c, "<=": value <= c, ">=": value >= c}[op]
        except (TypeError, KeyError):
            return self._unknown(w, rule, f"{op} comparison")
        return [(w, res)]

    def _eval(self, rule: NftRule, e: Any, w: _World) -> list[tuple[_World, Any]]:
        """The packet's value of expression ``e`` (forking on what the input cannot tell)."""
        if isinstance(e, dict) and len(e) == 1:
            (k, v), = e.items()
            if k == "payload":
                return [(w, self._payload(v["protocol"], v["field"], w))]
            if k == "meta":
                key = v["key"]
                if key == "l4proto":
                    return [(w, w.proto)]
                if key == "mark":
                    return [(w, w.mark)]
                if key == "nfproto":
                    return [(w, "ipv6" if int(self.family) == 6 else "ipv4")]
                if key in ("iifname", "oifname", "iif", "oif"):
                    return [(w, _INTERFACE)]
                return [(w, _UNKNOWN)]
            if k == "ct":
                if v["key"] == "state":
                    return [(w, {"new"})]
                if v["key"] == "status":
                    return [(w, {"dnat"} if w.dnat is not None else set())]
                return [(w, _UNKNOWN)]
            if k == "fib":
                flags = v.get("flags", [])
                flags = [flags] if isinstance(flags, str) else flags
                if v.get("result") == "type" and flags in (["saddr"], ["daddr"]):
                    addr = w.src if flags == ["saddr"] else w.dst
                    out = []
                    for x, local in self._locality(w, addr):
                        out.append((x, "local" if local else "unicast"))
                    return out
                return [(w, _UNKNOWN)]
            if k == "concat":
                results: list[tuple[_World, tuple]] = [(w, ())]
                for part in v:
                    nxt = []
                    for x, acc in results:
                        for y, val in self._eval(rule, part, x):
                            nxt.append((y, acc + (val,)))
                    results = nxt
                return [(x, _UNKNOWN if any(p is _UNKNOWN for p in t) else
                         _MISMATCH if any(p is _MISMATCH for p in t) else t) for x, t in results]
            if k in ("&", "|", "^"):
                out = []
                for x, a in self._eval(rule, v[0], w):
                    b = v[1]
                    if not isinstance(a, int) or not isinstance(b, int):
                        out.append((x, _UNKNOWN))
                    else:
                        out.append((x, a & b if k == "&" else a | b if k == "|" else a ^ b))
                return out
        if isinstance(e, (int, str)):
            return [(w, _norm(e))]
        return [(w, _UNKNOWN)]

    def _payload(self, proto: str, field: str, w: _World) -> Any:
        if proto in ("ip", "ip6"):
            if (proto == "ip6") != (int(self.family) == 6):
                return _UNKNOWN
            if field == "saddr":
                return w.src
            if field == "daddr":
                return w.dst
            if field in ("protocol", "nexthdr"):
                return w.proto
            return _UNKNOWN
        if proto in ("th", "tcp", "udp", "sctp", "udplite", "dccp"):
            if proto != "th" and proto != w.proto:
                return _MISMATCH
            if field == "dport":
                return w.dport
            return _UNKNOWN
        return _UNKNOWN

    def _locality(self, w: _World, addr):
        if addr.is_loopback:
            return [(w, True)]
        if self.env.node_ips is not None:
            return [(w, addr in self.env.node_ips)]
        if w.dnat is not None and addr == w.dst:
            w.note(f"the endpoint {addr} is not an address of this node (give --node-ip to decide)")
            return [(w, False)]
        return self._assume(w, f"local:{addr}", f"{addr} is an address of this node (give --node-ip to decide)")

    def _assume(self, w: _World, key: str, text: str, negated: bool = False):
        if key in w.facts:
            return [(w, w.facts[key] != negated)]
        yes, no = w, w.fork()
        yes.facts[key], no.facts[key] = True, False
        yes.said[key], no.said[key] = "if " + text, "if not: " + text
        yes.assumptions.append(yes.said[key])
        no.assumptions.append(no.said[key])
        return [(yes, not negated), (no, negated)]

    def _unknown(self, w: _World, rule: NftRule, what: str):
        return self._assume(w, f"rule:{rule.chain}:{rule.line}:{what}",
                            f"line {rule.line} ({what}, which svcinspect does not evaluate) matches")

    def _set_index(self, name: str) -> _SetIndex | None:
        idx = self._sets.get(name)
        if idx is None and self.table is not None:
            s = self.table.sets.get(name)
            if s is None:
                return None
            idx = self._sets[name] = _SetIndex(s)
        return idx

    # --- effects -----------------------------------------------------------------------
    def _mangle(self, rule: NftRule, v: dict, w: _World, ctype: str):
        key = v["key"]
        if key != {"meta": {"key": "mark"}}:
            w.steps.append(self._step(rule, ctype, f"{render_value(key)} set (no effect on the path)"))
            return [(w, True)]
        out = []
        for x, val in self._eval(rule, v["value"], w):
            if not isinstance(val, int):
                out.extend((y, True) for y, _ in self._unknown(x, rule, "the mark value"))
                continue
            before = x.mark
            x.mark = val & 0xFFFFFFFF
            value = v["value"]
            marking = isinstance(value, dict) and "|" in value
            what = "mark for masquerade: " if marking else ""
            x.steps.append(self._step(rule, ctype, f"{what}meta mark {before:#x} -> {x.mark:#x}"))
            out.append((x, True))
        return out

    def _vmap(self, rule: NftRule, v: dict, w: _World, depth: int, ctype: str):
        out = []
        for x, el, verdict, _ in self._lookup(rule, v["key"], v["data"], w):
            if verdict is None:
                out.append((x, False))
                continue
            (vk, vv), = verdict.items() if isinstance(verdict, dict) else ((str(verdict), None),)
            pre = Step(ctype, el[0], el[1], el[2], f"element of {el[0]}", el[3]) if el else None
            if vk in ("goto", "jump"):
                out.extend(self._jump(rule, vk, vv["target"], x, depth, ctype, rule.text, pre))
            else:
                res = self._verdict(rule, vk, x, ctype) if vk != "reject" else (x, "reject")
                if pre is not None:
                    x.steps.append(pre)
                out.append(res)
        return out

    def _lookup(self, rule: NftRule, key: Any, data: Any, w: _World):
        """(world, (where, line, text, source) of the element or None, its value or None, probability note)."""
        if isinstance(key, dict) and "numgen" in key:
            return self._numgen(rule, key["numgen"], data, w)
        out = []
        for x, value in self._eval(rule, key, w):
            if value is _UNKNOWN or value is _MISMATCH or (isinstance(value, tuple) and _MISMATCH in value):
                if value is not _UNKNOWN:
                    out.append((x, None, None, None))
                    continue
                for y, hit in self._unknown(x, rule, _describe(key)):
                    out.append((y, None, None, None))
                continue
            if isinstance(data, str) and data.startswith("@"):
                idx = self._set_index(data[1:])
                if idx is None:
                    x.note(f"line {rule.line}: map {data} is not in the input: assumed to hold no element")
                    out.append((x, None, None, None))
                    continue
                el = idx.lookup(value)
                if el is None:
                    out.append((x, None, None, None))
                else:
                    out.append((x, ("@" + idx.set.name, el.line, el.text or render_element(el), idx.set.source),
                                el.value, None))
            else:
                idx = self._anon_index(data)
                el = idx.lookup(value)
                out.append((x, None, el.value if el is not None else None, None))
        return out

    def _anon_index(self, data: Any) -> _SetIndex:
        key = id(data)
        idx = self._anon.get(key)
        if idx is None:
            from svcinspect.dataplane.nftables.model import NftElement
            pairs = data.get("set", []) if isinstance(data, dict) else []
            s = NftSet("", "", "<anonymous>", True, (), None, (), tuple(NftElement(k, v) for k, v in pairs))
            idx = self._anon[key] = _SetIndex(s)
        return idx

    def _numgen(self, rule: NftRule, ng: dict, data: Any, w: _World):
        mod = int(ng.get("mod", 1))
        offset = int(ng.get("offset", 0))
        if ng.get("mode") != "random" or mod <= 0:
            return [(y, None, None, None) for y, _ in self._unknown(w, rule, f"numgen {ng.get('mode')}")]
        if isinstance(data, str):
            idx = self._set_index(data[1:])
            pairs = [(e.key, e.value) for e in idx.set.elements] if idx else []
        else:
            pairs = data.get("set", []) if isinstance(data, dict) else []
        from svcinspect.dataplane.nftables.services import index_count
        out = []
        covered = 0
        for k, val in pairs:
            if isinstance(k, int):
                k = k - offset
            elif isinstance(k, dict) and "range" in k:
                k = {"range": [int(k["range"][0]) - offset, int(k["range"][1]) - offset]}
            n = index_count(k, mod)
            if n == 0:
                continue
            covered += n
            x = w.fork()
            x.prob *= Fraction(n, mod)
            out.append((x, None, val, None))
        if covered < mod:
            x = w.fork()
            x.prob *= Fraction(mod - covered, mod)
            x.note(f"line {rule.line}: numgen random mod {mod} gives a value no element holds "
                   f"({Fraction(mod - covered, mod)} of new connections): the rule does not match")
            out.append((x, None, None, None))
        return out

    def _dnat(self, rule: NftRule, v: dict, w: _World, ctype: str):
        v = v if isinstance(v, dict) else {}
        addr = v.get("addr")
        targets: list[tuple[_World, Any, Any]] = []
        if isinstance(addr, dict) and "map" in addr:
            for x, _, val, _ in self._lookup(rule, addr["map"]["key"], addr["map"]["data"], w):
                if val is None:
                    targets.append((x, None, None))
                    continue
                parts = val["concat"] if isinstance(val, dict) and "concat" in val else [val]
                targets.append((x, parts[0], parts[1] if len(parts) > 1 else v.get("port")))
        elif isinstance(addr, dict) and "concat" in addr:
            targets.append((w, addr["concat"][0], addr["concat"][1]))
        else:
            targets.append((w, addr, v.get("port")))
        out = []
        for x, a, p in targets:
            if a is None:
                out.append((x, False))
                continue
            before = f"{_fmt(x.dst)}:{x.dport}"
            try:
                x.dst = ipaddress.ip_address(str(a))
            except ValueError:
                x.note(f"line {rule.line}: dnat destination {a!r} is not an address")
            if p is not None:
                x.dport = int(p)
            x.dnat = f"{_fmt(x.dst)}:{x.dport}"
            step = self._step(rule, ctype, f"DNAT {before} -> {x.dnat}")
            x.steps.append(step)
            x.verdict_step = step
            out.append((x, "nat"))
        return out

    def _node_address(self) -> str:
        for ip in sorted(self.env.node_ips or (), key=str):
            if ip.version == int(self.family) and not ip.is_loopback:
                return str(ip)
        return "<node address on the outgoing interface>"


class _Sentinel:
    def __init__(self, name: str):
        self.name = name

    def __repr__(self) -> str:
        return self.name


_UNKNOWN = _Sentinel("<unknown>")
_MISMATCH = _Sentinel("<other protocol>")
_INTERFACE = _Sentinel("<interface>")


def _describe(e: Any) -> str:
    from svcinspect.dataplane.nftables.render import render_expr
    return render_expr(e)


def _show(v: Any) -> str:
    if isinstance(v, tuple):
        return " . ".join(_show(x) for x in v)
    return str(v)


def _result_key(w: _World, verdict: str) -> tuple:
    return (verdict if verdict in ("drop", "reject") else None, w.dnat, w.masq, w.snat, w.src, w.dst, w.dport,
            w.prob, w.decided)
