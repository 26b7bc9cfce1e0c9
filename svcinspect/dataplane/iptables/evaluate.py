"""The rule evaluator shared by ``trace`` and ``packet``: run one packet through
nat and filter the way the kernel does, returning every possible outcome.

Semantics follow netfilter: rules in order, jump/goto/RETURN, built-in chain
policies, DNAT ends the nat traversal and later tables see the rewritten
destination, MARK/KUBE-MARK-MASQ set the mark that KUBE-POSTROUTING tests, and
the first packet of a connection is conntrack state NEW (plus DNAT once
rewritten). What the dump cannot tell becomes a stated assumption:

- ``-m statistic --mode random`` splits the outcome with its exact probability;
- ``-m recent --rcheck`` does not match (a first packet: no affinity memory yet);
- which addresses are local (``-m addrtype LOCAL`` and the routing decision) comes
  from ``node_ips``; when it is not given the outcome splits into "if X is a node
  address" and "if not";
- interfaces (``-i``/``-o``), ipsets and modules the evaluator does not know split
  into "matches" and "does not match" alternatives, each named in the outcome.

Dumps without the built-in hooks (kube-proxy's own restore input) are simulated as
if kube-proxy's standard hooks were installed, with a warning.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable

from svcinspect.dataplane.iptables.kubeproxy import interpret_probability
from svcinspect.dataplane.iptables.parse import decode_spec, parse_mark, parse_nat_destination, parse_port_range, raw_target
from svcinspect.model.flow import Disposition, Hook, IPAddress, Outcome, Packet, Simulation, Step
from svcinspect.model.netfilter import Family, Rule, Ruleset, Table
from svcinspect.simulate import NOT_IN_INPUT, UNKNOWN_VERDICT, Environment, World, disposition, merge_irrelevant

MAX_DEPTH = 50
# Budgets of one simulation (hostile or broken rules must not take exponential
# time or memory): at most this many alternatives (each split on something the
# dump cannot tell, or on a probability, makes one more) ...
MAX_ALTERNATIVES = 256
# ... and at most this many rule tests (a rule tried against one alternative).
# A real trace of a 440k-line dump makes a few hundred; a diamond of jumps
# (A jumps to B twice, B to C twice, ...) makes 2^depth.
MAX_RULE_TESTS = 100_000
# An outcome lists at most this many steps (a real path has a dozen).
MAX_STEPS_SHOWN = 500
_PROTO_NUMBERS = {"6": "tcp", "17": "udp", "132": "sctp", "1": "icmp", "58": "ipv6-icmp"}
_TERMINAL = {"ACCEPT", "DROP", "REJECT"}
_NAT_TERMINAL = {"DNAT", "SNAT", "MASQUERADE", "REDIRECT", "NETMAP"}
_CONTINUE_TARGETS = {"LOG", "NFLOG", "ULOG", "TRACE", "AUDIT", "CHECKSUM", "TCPMSS", "CT", "NOTRACK", "CLASSIFY",
                     "CONNMARK", "TOS", "DSCP", "TTL", "HL", "SECMARK", "CONNSECMARK", "IDLETIMER", "LED", "SET"}

# kube-proxy's standard hooks, installed separately from its restore input.
STANDARD_HOOKS: dict[tuple[str, str], tuple[tuple[str, str], ...]] = {
    ("nat", "PREROUTING"): (("KUBE-SERVICES", '-m comment --comment "kubernetes service portals" -j KUBE-SERVICES'),),
    ("nat", "OUTPUT"): (("KUBE-SERVICES", '-m comment --comment "kubernetes service portals" -j KUBE-SERVICES'),),
    ("nat", "POSTROUTING"): (("KUBE-POSTROUTING",
                              '-m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING'),),
    ("filter", "INPUT"): (
        ("KUBE-PROXY-FIREWALL", '-m conntrack --ctstate NEW -m comment --comment "kubernetes load balancer firewall" '
                                '-j KUBE-PROXY-FIREWALL'),
        ("KUBE-NODEPORTS", '-m comment --comment "kubernetes health check service ports" -j KUBE-NODEPORTS'),
        ("KUBE-EXTERNAL-SERVICES", '-m conntrack --ctstate NEW -m comment --comment "kubernetes externally-visible '
                                   'service portals" -j KUBE-EXTERNAL-SERVICES'),
    ),
    ("filter", "FORWARD"): (
        ("KUBE-PROXY-FIREWALL", '-m conntrack --ctstate NEW -m comment --comment "kubernetes load balancer firewall" '
                                '-j KUBE-PROXY-FIREWALL'),
        ("KUBE-FORWARD", '-m comment --comment "kubernetes forwarding rules" -j KUBE-FORWARD'),
        ("KUBE-SERVICES", '-m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" '
                          '-j KUBE-SERVICES'),
        ("KUBE-EXTERNAL-SERVICES", '-m conntrack --ctstate NEW -m comment --comment "kubernetes externally-visible '
                                   'service portals" -j KUBE-EXTERNAL-SERVICES'),
    ),
    ("filter", "OUTPUT"): (
        ("KUBE-PROXY-FIREWALL", '-m conntrack --ctstate NEW -m comment --comment "kubernetes load balancer firewall" '
                                '-j KUBE-PROXY-FIREWALL'),
        ("KUBE-SERVICES", '-m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" '
                          '-j KUBE-SERVICES'),
    ),
}
ASSUMED_HOOK_SOURCE = "<assumed kube-proxy hook>"
ASSUMED_CHAIN_SOURCE = "<assumed kube-proxy chain>"
_STOPS = ("DROP", "REJECT", UNKNOWN_VERDICT)
_CASCADE_PREFIXES = ("KUBE-SVC-", "KUBE-SVL-", "KUBE-XLB-")  # (KUBE-EXT may end open: eTP=Local, no local endpoint)


Result = list[tuple[World, str | None]]  # (world, terminal verdict or None = fell through / returned)


class Evaluator:
    """Simulates packets against one address family of a ruleset."""

    def __init__(self, ruleset: Ruleset, family: Family, env: Environment = Environment()):
        self.family = family
        self.env = env
        self.tables: dict[str, Table] = {}
        for name in ("nat", "filter"):
            t = ruleset.table(name, family)
            if t is not None:
                self.tables[name] = t
        self.warnings: list[str] = []
        self._hooks: dict[tuple[str, str], list[Rule]] = {}
        self._index: dict[tuple[str, str], _ChainIndex | None] = {}
        # Rules of kube-proxy's standard chains an excerpt does not hold, run after
        # the chain's own rules (or as the whole chain when it is absent).
        self._assumed: dict[tuple[str, str], list[Rule]] = {}
        self._excerpt = bool(ruleset.gaps)
        if self._excerpt:
            self._assume_standard_chains()
        self._budget = _Budget()
        self._assume_missing_hooks()

    # --- set-up -------------------------------------------------------------
    def _assume_standard_chains(self) -> None:
        """An excerpt (``Ruleset.gaps``) lacks chains every kube-proxy node has:
        simulate them with kube-proxy's definitions, each a stated assumption."""
        nat = self.tables.get("nat")
        if nat is None:
            return
        texts = [t for name in nat.chains for _, t in (nat.raw_rules(name) or ())]

        def jumped(target: str) -> bool:
            return any(f"-j {target}" in t for t in texts)

        def assume(table: str, chain: str, bodies: tuple[str, ...], why: str) -> None:
            if table not in self.tables:
                self.tables[table] = Table(table, self.family, {}, ASSUMED_CHAIN_SOURCE)
            for body in bodies:
                rule = Rule(table, chain, 0, decode_spec(body), f"-A {chain} {body}", 0, ASSUMED_CHAIN_SOURCE)
                self._assumed.setdefault((table, chain), []).append(rule)
            self.warnings.append(f"{why} is not in the input: simulated with kube-proxy's standard definition "
                                 f"({'; '.join(bodies)})")

        if "KUBE-MARK-MASQ" not in nat.chains and jumped("KUBE-MARK-MASQ"):
            assume("nat", "KUBE-MARK-MASQ", ("-j MARK --or-mark 0x4000",), "KUBE-MARK-MASQ")
        if "KUBE-MARK-DROP" not in nat.chains and jumped("KUBE-MARK-DROP"):
            assume("nat", "KUBE-MARK-DROP", ("-j MARK --or-mark 0x8000",), "KUBE-MARK-DROP")
            filt = self.tables.get("filter")
            if filt is None or "KUBE-FIREWALL" not in filt.chains:
                drop = ('-m comment --comment "kubernetes firewall for dropping marked packets" '
                        '-m mark --mark 0x8000/0x8000 -j DROP',)
                for hook in ("INPUT", "FORWARD", "OUTPUT"):
                    assume("filter", hook, drop, f"the filter {hook} drop of KUBE-MARK-DROP's mark (KUBE-FIREWALL)")
        if "KUBE-POSTROUTING" not in nat.chains and (jumped("KUBE-MARK-MASQ") or "KUBE-MARK-MASQ" in nat.chains):
            assume("nat", "KUBE-POSTROUTING", (
                "-m mark ! --mark 0x4000/0x4000 -j RETURN", "-j MARK --xor-mark 0x4000",
                '-m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE'), "KUBE-POSTROUTING")
        services = nat.raw_rules("KUBE-SERVICES") or ()
        if "KUBE-NODEPORTS" in nat.chains and not any(raw_target(t) == ("KUBE-NODEPORTS", False) for _, t in services):
            assume("nat", "KUBE-SERVICES", ('-m comment --comment "kubernetes service nodeports; NOTE: this must be '
                                            'the last rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS',),
                   "the KUBE-SERVICES -> KUBE-NODEPORTS rule")

    def _has_chain(self, table: str, name: str) -> bool:
        return name in self.tables[table].chains or (table, name) in self._assumed

    def _assume_missing_hooks(self) -> None:
        # Only a table with no hook into kube-proxy's chains at all is kube-proxy's
        # restore input; a real dump missing one hook is that release's layout (or
        # a real fault, which `check` reports), so it is simulated as it is.
        hooked = {name for name, t in self.tables.items() if any(
            " -j KUBE-" in text or " -g KUBE-" in text
            for builtin in ("PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING")
            for _, text in (t.raw_rules(builtin) or ()))}
        for (table, chain), hooks in STANDARD_HOOKS.items():
            t = self.tables.get(table)
            if t is None or table in hooked:
                continue
            targets = set()
            for i, (_, text) in enumerate(t.raw_rules(chain) or ()):
                found = raw_target(text)
                if found is False:  # only the decoder can tell (quotes, long options)
                    rule = t.chains[chain].rules[i]
                    found = (rule.target.name, rule.target.goto) if rule.target else None
                if found:
                    targets.add(found[0])
            for target, body in hooks:
                if (target in t.chains or (table, target) in self._assumed) and target not in targets:
                    spec = decode_spec(body)
                    rule = Rule(table, chain, 0, spec, f"-A {chain} {body}", 0, ASSUMED_HOOK_SOURCE)
                    self._hooks.setdefault((table, chain), []).append(rule)
                    self.warnings.append(
                        f"{table} {chain}'s jump to {target} is not in the input (an excerpt): simulated with "
                        f"kube-proxy's standard hook" if self._excerpt else
                        f"{table} {chain} does not jump to {target}: simulated as if kube-proxy's standard hook "
                        f"were installed (normal for kube-proxy's restore input; on a live node every Service "
                        f"using {target} would be broken)")

    def _rules(self, table: str, chain: str, packet: World) -> Iterable[Rule]:
        hooks = self._hooks.get((table, chain))
        if hooks:
            yield from hooks
        t = self.tables[table]
        ch = t.chains.get(chain)
        assumed = self._assumed.get((table, chain)) if self._assumed else None
        if ch is None:
            if assumed:
                yield from assumed
            return
        if assumed:  # an excerpt: its own rules, then kube-proxy's that it lacks
            yield from ch.rules
            yield from assumed
            return
        # DNAT ends a nat traversal and filter never rewrites, so every world still
        # walking this chain has the entry world's destination: one lookup serves all.
        key = (table, chain)
        if key not in self._index:
            self._index[key] = _ChainIndex.build(t.raw_rules(chain) or ()) if len(ch.rules) >= 64 else None
        index = self._index[key]
        if index is None:
            yield from ch.rules
        else:
            for i in index.candidates(str(packet.dst), packet.dport):
                yield ch.rules[i]

    # --- the packet path ------------------------------------------------------
    def simulate(self, packet: Packet) -> Simulation:
        if packet.family != int(self.family):
            raise ValueError("packet and ruleset families differ")
        self._budget = _Budget()
        start = World(packet)
        done: list[tuple[World, str]] = []
        if packet.hook is Hook.PREROUTING:
            for w, v in self._table_hook("nat", "PREROUTING", start):
                if v in _STOPS:
                    done.append((w, v))
                    continue
                for w2, local in self._locality(w, w.dst, "destination after PREROUTING"):
                    chain = "INPUT" if local else "FORWARD"
                    for w3, v3 in self._table_hook("filter", chain, w2):
                        if v3 in _STOPS:
                            done.append((w3, v3))
                            continue
                        last = "INPUT" if local else "POSTROUTING"
                        for w4, v4 in self._table_hook("nat", last, w3):
                            done.append((w4, v4 or "ACCEPT"))
        else:
            for w, v in self._table_hook("nat", "OUTPUT", start):
                if v in _STOPS:
                    done.append((w, v))
                    continue
                for w3, v3 in self._table_hook("filter", "OUTPUT", w):
                    if v3 in _STOPS:
                        done.append((w3, v3))
                        continue
                    for w4, v4 in self._table_hook("nat", "POSTROUTING", w3):
                        done.extend(self._loopback_input(w4, v4))
        if self._excerpt:
            _unproven_none(done)
        outcomes = tuple(self._outcome(packet, w, v) for w, v in merge_irrelevant(done))
        for note in self._budget.notes():
            if note not in self.warnings:
                self.warnings.append(note)
        return Simulation(packet, outcomes, tuple(self.warnings))

    def _loopback_input(self, w: World, verdict: str | None) -> list[tuple[World, str]]:
        """After nat POSTROUTING, a locally generated packet whose (rewritten)
        destination is an address of this node goes out on loopback and comes
        back in: filter INPUT sees it (conntrack state still NEW). nat
        PREROUTING/INPUT do not run again (the connection's NAT is already set
        up). This is where a REJECT for a node port reached from the node lives."""
        if verdict in _STOPS:
            return [(w, verdict)]
        out: list[tuple[World, str]] = []
        for w2, local in self._locality(w, w.dst, "destination after POSTROUTING"):
            if not local:
                out.append((w2, verdict or "ACCEPT"))
                continue
            for w3, v3 in self._table_hook("filter", "INPUT", w2):
                out.append((w3, v3 if v3 in _STOPS else (verdict or "ACCEPT")))
        return out

    def _outcome(self, packet: Packet, w: World, verdict: str) -> Outcome:
        disp = disposition(w, verdict)
        out = Packet(w.src, w.dst, w.dport, w.proto, packet.hook, packet.sport, w.mark)
        steps, assumptions = tuple(w.steps), tuple(w.assumptions)
        if len(steps) > MAX_STEPS_SHOWN:
            assumptions += (f"only the first {MAX_STEPS_SHOWN} of {len(steps)} steps are shown",)
            steps = steps[:MAX_STEPS_SHOWN]
        return Outcome(disp, w.prob, out, w.dnat, w.masq, steps, assumptions, w.verdict_step, w.snat)

    def _table_hook(self, table: str, chain: str, w: World) -> Result:
        """Traverse a built-in chain; falling off it applies the policy."""
        if table not in self.tables:
            return [(w, None)]
        ch = self.tables[table].chains.get(chain)
        if ch is None and not self._hooks.get((table, chain)) and (table, chain) not in self._assumed:
            return [(w, None)]
        out: Result = []
        for w2, v in self._run(table, chain, w, 0):
            if v is None:
                policy = (ch.policy if ch is not None else None) or "ACCEPT"
                if policy != "ACCEPT" and table == "filter":
                    step = Step(table, chain, 0, f"policy {policy}", f"policy {policy}: nothing accepted the packet",
                                ch.source if ch else "")
                    w2.steps.append(step)
                    w2.verdict_step = step
                    out.append((w2, policy))
                    continue
                out.append((w2, None))
            elif v in _NAT_TERMINAL or v == "ACCEPT":
                out.append((w2, None if table == "nat" else "ACCEPT"))
            else:
                out.append((w2, v))
        return out

    # --- chains -------------------------------------------------------------
    def _run(self, table: str, chain: str, world: World, depth: int) -> Result:
        if depth > MAX_DEPTH:
            world.assumptions.append(f"stopped after {MAX_DEPTH} nested jumps at {chain} (a loop in the rules?)")
            return [(world, None)]
        budget = self._budget
        if budget.exhausted:
            return [(budget.stop(world, chain), None)]
        pending = [world]
        done: Result = []
        for rule in self._rules(table, chain, world):
            if not pending:
                break
            budget.tests += len(pending)
            if budget.tests > MAX_RULE_TESTS:
                budget.exhausted = True
                pending = [budget.stop(w, chain) for w in pending]
                break
            nxt: list[World] = []
            for w in pending:
                for w2, matched in self._match(rule, w, table, chain):
                    if not matched:
                        nxt.append(w2)
                        continue
                    for w3, res in self._apply(rule, w2, table, chain, depth):
                        if res == "CONTINUE":
                            nxt.append(w3)
                        elif res == "RETURN":
                            done.append((w3, None))
                        else:
                            done.append((w3, res))
            pending = _merge_equivalent(nxt) if len(nxt) > 1 else nxt
        if pending and self._excerpt and table == "nat" and chain.startswith(_CASCADE_PREFIXES) \
                and not _ends_closed(self.tables[table].chains.get(chain)):
            # kube-proxy ends each of these chains with a rule every packet takes
            # (an unconditional jump to an endpoint, or XLB's drop mark); falling
            # off one means its end is outside the excerpt.
            for w in pending:
                w.assumptions.append(f"{NOT_IN_INPUT}the end of {chain} (the packet falls off the part that is "
                                     f"shown), so what happens next is unknown")
            done.extend((w, UNKNOWN_VERDICT) for w in pending)
            return done
        done.extend((w, None) for w in pending)
        return done

    def _apply(self, rule: Rule, w: World, table: str, chain: str, depth: int) -> list[tuple[World, str]]:
        t = rule.target
        if t is None:
            return [(w, "CONTINUE")]
        name = t.name
        if self._has_chain(table, name):
            w.steps.append(self._step(rule, ("goto " if t.goto else "jump ") + name))
            out = []
            for w2, v in self._run(table, name, w, depth + 1):
                if v is None:
                    out.append((w2, "RETURN" if t.goto else "CONTINUE"))
                else:
                    out.append((w2, v))
            return out
        if name == "RETURN":
            w.steps.append(self._step(rule, "RETURN"))
            return [(w, "RETURN")]
        if name in _TERMINAL:
            step = self._step(rule, name + (" " + " ".join(" ".join((o.name,) + o.args) for o in t.options)
                                             if t.options else ""))
            w.steps.append(step)
            w.verdict_step = step
            if name == "ACCEPT":
                w.decided = True
            return [(w, name)]
        if name == "DNAT":
            return [(w, self._dnat(rule, w))]
        if name in ("MASQUERADE", "SNAT"):
            w.masq = True
            w.snat = t.value("--to-source") or self._node_address()
            w.steps.append(self._step(rule, f"{name}: source {w.src} -> {w.snat}"))
            w.verdict_step = w.verdict_step or w.steps[-1]
            return [(w, name)]
        if name == "MARK":
            before = w.mark
            if any(o.value and parse_mark(o.value) is None for o in t.options):
                w.assumptions.append(f"line {rule.line}: MARK value is malformed; the mark is taken as unchanged")
                w.steps.append(self._step(rule, "MARK? (malformed value: mark unchanged)"))
                return [(w, "CONTINUE")]
            w.mark = _apply_mark(w.mark, t)
            w.steps.append(self._step(rule, f"MARK {before:#x} -> {w.mark:#x}"))
            return [(w, "CONTINUE")]
        if name in _CONTINUE_TARGETS:
            w.steps.append(self._step(rule, f"{name} (no effect on the path)"))
            return [(w, "CONTINUE")]
        if name == "REDIRECT":
            w.steps.append(self._step(rule, "REDIRECT to a local port"))
            w.decided = True
            return [(w, "REDIRECT")]
        # Unknown target or a chain that does not exist in this table.
        if self._excerpt and name.startswith("KUBE-"):
            # Whatever that chain does (a DNAT ends the traversal), the rules after
            # this one are not known to be reached: the outcome stops here, unknown.
            w.assumptions.append(f"{NOT_IN_INPUT}{name} (line {rule.line} jumps to it), so what happens next is unknown")
            w.steps.append(self._step(rule, f"{name}? (not in the input)"))
            return [(w, UNKNOWN_VERDICT)]
        w.assumptions.append(f"line {rule.line}: target {name} is not a chain of table {table} nor a target the "
                             f"evaluator knows; assumed to continue")
        w.steps.append(self._step(rule, f"{name}? (unknown: assumed to continue)"))
        return [(w, "CONTINUE")]

    def _dnat(self, rule: Rule, w: World) -> str:
        to = rule.target.value("--to-destination") if rule.target else None
        before = f"{_fmt(w.dst)}:{w.dport}"
        if to and parse_nat_destination(to) is None:
            w.assumptions.append(f"line {rule.line}: DNAT destination {to!r} is not ADDRESS[:PORT]; the destination "
                                 f"is shown unchanged")
            to = None
        if to:
            addr, port = _split_hostport(to)
            if "-" in addr:
                w.assumptions.append(f"line {rule.line}: DNAT to a range {addr}; the first address is shown")
                addr = addr.split("-")[0]
            try:
                w.dst = ipaddress.ip_address(addr)
            except ValueError:
                w.assumptions.append(f"line {rule.line}: DNAT destination {to!r} is not an address")
            if port:
                w.dport = int(port.split("-")[0])
        w.dnat = f"{_fmt(w.dst)}:{w.dport}"
        step = self._step(rule, f"DNAT {before} -> {w.dnat}")
        w.steps.append(step)
        w.verdict_step = step
        return "DNAT"

    def _node_address(self) -> str:
        for ip in sorted(self.env.node_ips or (), key=str):
            if ip.version == int(self.family) and not ip.is_loopback:
                return str(ip)
        return "<node address on the outgoing interface>"

    @staticmethod
    def _step(rule: Rule, action: str) -> Step:
        return Step(rule.table, rule.chain, rule.line, rule.text, action, rule.source)

    # --- matches --------------------------------------------------------------
    def _match(self, rule: Rule, w: World, table: str, chain: str) -> list[tuple[World, bool]]:
        s = rule.spec
        if s.source is not None and ((w.src in s.source.network) == s.source.negated):
            return [(w, False)]
        if s.destination is not None and ((w.dst in s.destination.network) == s.destination.negated):
            return [(w, False)]
        if s.protocol is not None and _proto_matches(w.proto, s.protocol.value) == s.protocol.negated:
            return [(w, False)]
        if s.fragment is True:
            return [(w, False)]  # the first packet of a connection is not a fragment
        worlds = [(w, True)]
        for verb, vm in (("arrives on", s.in_interface), ("leaves by", s.out_interface)):
            if vm is not None:  # the dump cannot tell which interface a packet uses
                worlds = self._each(worlds, lambda x, vm=vm, verb=verb: self._assume(
                    x, f"{verb}:{vm.value}", f"the packet {verb} an interface matching {vm.value}"),
                    negated=vm.negated)
        for m in s.matches:
            worlds = self._each(worlds, lambda x, m=m: self._module(m, x, rule))
            if not any(ok for _, ok in worlds):
                break
        return worlds

    @staticmethod
    def _each(worlds, cond, negated: bool = False):
        out = []
        for x, ok in worlds:
            if not ok:
                out.append((x, False))
                continue
            for y, r in cond(x):
                out.append((y, r != negated))
        return out

    def _assume(self, w: World, key: str, text: str) -> list[tuple[World, bool]]:
        """Split on something the dump cannot tell; each side records what it assumed."""
        if key in w.facts:
            return [(w, w.facts[key])]
        budget = self._budget
        budget.unknowns.add(key)
        if budget.alternatives >= MAX_ALTERNATIVES:
            # Folded: taken as false in this alternative, and said so.
            w.facts[key] = False
            w.said[key] = f"assumed not (too many alternatives): {text}"
            w.assumptions.append(w.said[key])
            budget.folded.setdefault(text, None)
            return [(w, False)]
        budget.alternatives += 1
        yes, no = w, w.fork()
        yes.facts[key], no.facts[key] = True, False
        yes.said[key], no.said[key] = "if " + text, "if not: " + text
        yes.assumptions.append(yes.said[key])
        no.assumptions.append(no.said[key])
        return [(yes, True), (no, False)]

    def _locality(self, w: World, addr: IPAddress, what: str) -> list[tuple[World, bool]]:
        if addr.is_loopback:
            return [(w, True)]
        if self.env.node_ips is not None:
            return [(w, addr in self.env.node_ips)]
        if w.dnat is not None and addr == w.dst:
            note = f"the endpoint {addr} is not an address of this node (give --node-ip to decide)"
            if note not in w.assumptions:
                w.assumptions.append(note)
            return [(w, False)]
        return self._assume(w, f"local:{addr}", f"{addr} is an address of this node (give --node-ip to decide)")

    def _module(self, m, w: World, rule: Rule) -> list[tuple[World, bool]]:
        mod = m.module
        if mod in ("comment", "nfacct"):
            return [(w, True)]
        if mod in ("tcp", "udp", "sctp", "udplite", "dccp"):
            if w.proto != mod:
                return [(w, False)]
            for opt in m.options:
                if opt.name in ("--dport", "--destination-port", "--sport", "--source-port"):
                    port = w.dport if opt.name in ("--dport", "--destination-port") else 40000
                    if parse_port_range(opt.value or "") is None:
                        return self._unknown(w, rule, f"{opt.name} {opt.value!r}, not a port")
                    if opt.name in ("--sport", "--source-port"):
                        return self._assume(w, f"sport:{opt.value}", f"the source port is {opt.value}")
                    if _port_in(port, opt.value) == opt.negated:
                        return [(w, False)]
                elif opt.name == "--syn":
                    if opt.negated:
                        return [(w, False)]
                elif opt.name == "--tcp-flags":
                    return self._unknown(w, rule, f"tcp flags {' '.join(opt.args)}")
                else:
                    return self._unknown(w, rule, f"{mod} {opt.name}")
            return [(w, True)]
        if mod == "multiport":
            for opt in m.options:
                if opt.name in ("--dports", "--destination-ports", "--ports"):
                    if any(parse_port_range(p) is None for p in (opt.value or "").split(",")):
                        return self._unknown(w, rule, f"multiport {opt.name} {opt.value!r}, not ports")
                    hit = any(_port_in(w.dport, p) for p in (opt.value or "").split(","))
                    if hit == opt.negated:
                        return [(w, False)]
                else:
                    return self._unknown(w, rule, f"multiport {opt.name}")
            return [(w, True)]
        if mod == "addrtype":
            return self._addrtype(m, w, rule)
        if mod == "statistic":
            return self._statistic(m, w, rule)
        if mod == "recent":
            for opt in m.options:
                if opt.name in ("--rcheck", "--update"):
                    note = ("first packet from this client: no session-affinity entry yet, so "
                            "-m recent --rcheck rules do not match (later packets stick to the endpoint chosen)")
                    if note not in w.assumptions:
                        w.assumptions.append(note)
                    return [(w, opt.negated)]
                if opt.name == "--remove":
                    return [(w, opt.negated)]
            return [(w, True)]  # --set always matches (and records the source)
        if mod == "mark":
            opt = m.option("--mark")
            if opt is None or not opt.value:
                return self._unknown(w, rule, "mark")
            parsed = parse_mark(opt.value)
            if parsed is None:
                return self._unknown(w, rule, f"mark {opt.value!r}, not VALUE[/MASK]")
            value, mask = parsed
            hit = (w.mark & (0xFFFFFFFF if mask is None else mask)) == value
            return [(w, hit != opt.negated)]
        if mod in ("conntrack", "state"):
            for opt in m.options:
                if opt.name in ("--ctstate", "--state"):
                    states = set((opt.value or "").split(","))
                    hit = "NEW" in states or ("DNAT" in states and w.dnat is not None)
                    if hit == opt.negated:
                        return [(w, False)]
                else:
                    return self._unknown(w, rule, f"{mod} {opt.name}")
            return [(w, True)]
        if mod == "physdev":
            note = "the packet is not bridged (-m physdev tests are false)"
            if note not in w.assumptions:
                w.assumptions.append(note)
            hit = True
            for opt in m.options:
                if opt.name.startswith("--physdev"):
                    hit = hit and opt.negated
            return [(w, hit)]
        return self._unknown(w, rule, f"-m {mod}")

    def _unknown(self, w: World, rule: Rule, what: str) -> list[tuple[World, bool]]:
        return self._assume(w, f"rule:{rule.table}:{rule.chain}:{rule.line}:{what}",
                            f"line {rule.line} ({what}, which svcinspect does not evaluate) matches")

    def _addrtype(self, m, w: World, rule: Rule) -> list[tuple[World, bool]]:
        worlds = [(w, True)]
        for opt in m.options:
            if opt.name in ("--dst-type", "--src-type"):
                addr_of = (lambda x: x.dst) if opt.name == "--dst-type" else (lambda x: x.src)
                types = set((opt.value or "").split(","))
                if types <= {"LOCAL"}:
                    worlds = self._each(worlds, lambda x, a=addr_of: self._locality(x, a(x), "address"),
                                        negated=opt.negated)
                elif types <= {"UNICAST"}:
                    worlds = [(x, ok and not opt.negated) for x, ok in worlds]
                else:
                    worlds = self._each(worlds, lambda x: self._unknown(x, rule, f"addrtype {opt.value}"))
            elif opt.name.startswith("--limit-iface"):
                continue
        return worlds

    def _statistic(self, m, w: World, rule: Rule) -> list[tuple[World, bool]]:
        if m.value("--mode") != "random" or m.value("--probability") is None:
            return self._unknown(w, rule, "statistic " + (m.value("--mode") or ""))
        p = interpret_probability(m.value("--probability")).exact
        if p is None:
            return self._unknown(w, rule, f"statistic probability {m.value('--probability')!r}")
        opt = m.option("--probability")
        if opt is not None and opt.negated:
            p = 1 - p
        if p >= 1:
            return [(w, True)]
        if p <= 0:
            return [(w, False)]
        budget = self._budget
        if budget.alternatives >= MAX_ALTERNATIVES:
            text = f"the random branch of line {rule.line} (probability {p}) is taken as not matching"
            w.assumptions.append(f"assumed (too many alternatives): {text}")
            budget.folded.setdefault(text, None)
            return [(w, False)]
        budget.alternatives += 1
        no = w.fork()
        w.prob *= p
        no.prob *= 1 - p
        return [(w, True), (no, False)]


def _ends_closed(chain) -> bool:
    """Does the chain's last rule catch every packet (only a comment, then a target)?
    Then its end is in the input, even in an excerpt."""
    if chain is None or not len(chain.rules):
        return False
    last = chain.rules[len(chain.rules) - 1]
    sp = last.spec
    return (last.target is not None and sp.source is None and sp.destination is None and sp.protocol is None
            and sp.in_interface is None and sp.out_interface is None and all(m.module == "comment" for m in sp.matches))


def _unproven_none(done: list[tuple[World, str]]) -> None:
    """In an excerpt "no rule decided" is not proven: the rule that would may be outside it."""
    for w, v in done:
        if disposition(w, v) is Disposition.NONE:
            w.assumptions.append(f"{NOT_IN_INPUT}the rest of the rules: the input is an excerpt, so no rule "
                                 f"deciding here does not prove that none would")


class _Budget:
    """What one simulation has spent of its budgets, and what it folded."""

    __slots__ = ("alternatives", "tests", "exhausted", "unknowns", "folded")

    def __init__(self) -> None:
        self.alternatives = 1
        self.tests = 0
        self.exhausted = False
        self.unknowns: set[str] = set()
        self.folded: dict[str, None] = {}  # condition texts, in the order met

    def stop(self, w: World, chain: str) -> World:
        if not any(a.startswith("not evaluated beyond ") for a in w.assumptions):
            w.assumptions.append(f"not evaluated beyond {chain}: the simulation used up its budget of "
                                 f"{MAX_RULE_TESTS} rule tests (jumps into the same chains many times over?); "
                                 f"this outcome is incomplete")
        return w

    def notes(self) -> list[str]:
        out = []
        if self.folded:
            shown = list(self.folded)[:5]
            more = f" (and {len(self.folded) - len(shown)} more)" if len(self.folded) > len(shown) else ""
            out.append(f"too many alternatives beyond {MAX_ALTERNATIVES}: the rules branch on {len(self.unknowns)} "
                       f"unknowns; later conditions were taken as not matching: " + "; ".join(shown) + more)
        if self.exhausted:
            out.append(f"the simulation stopped after {MAX_RULE_TESTS} rule tests (the rules jump into the same "
                       f"chains many times over, e.g. a diamond of jumps): outcomes marked 'not evaluated beyond' "
                       f"are incomplete")
        return out


def _state_key(w: World) -> tuple:
    """Everything the rest of the traversal can look at: two alternatives with
    the same key go on exactly alike (only their probability and path differ)."""
    return (w.src, w.dst, w.dport, w.proto, w.mark, w.dnat, w.masq, w.snat, w.decided, w.verdict_step,
            frozenset(w.facts.items()))


def _merge_equivalent(worlds: list[World]) -> list[World]:
    """Alternatives still walking a chain in the same state become one, their
    probabilities added (e.g. a random branch whose rule only logs or marks the
    same way as the other branch): their futures are the same, so keeping both
    only doubles the work. The merged one keeps the first path and says so."""
    first: dict[tuple, World] = {}
    out: list[World] = []
    for w in worlds:
        key = _state_key(w)
        kept = first.get(key)
        if kept is None:
            first[key] = w
            out.append(w)
            continue
        kept.prob += w.prob
        note = "other paths through the rules end in this same state; their probability is included"
        if note not in kept.assumptions:
            kept.assumptions.append(note)
    return out


class _ChainIndex:
    """For long chains (KUBE-SERVICES has one rule per service address): which
    rules can match a destination address and port.

    Read in one regex pass (``findall``: no match objects) rather than with
    three regexes per rule: 10k rules cost ~15 ms instead of ~70 ms, and each
    question after that ~1 ms. A rule is left out only when one of
    its own plain tests rules the packet out, in the order iptables-save prints
    them: a leading ``-d host`` (after an optional ``-s``) naming another
    address, or ``-p P [-m comment ...] -m P --dport N`` naming another port.
    Rules of any other shape are classified one by one (kube-proxy's restore
    input puts ``-d`` after the comment), and those testing neither in a
    simple form are always candidates.
    """

    __slots__ = ("dsts", "ports", "by_dst", "by_port", "always", "_asked")

    # Each rule is matched from the newline before it (the text starts with
    # one): a literal first character lets re skip ahead, where ``^`` with re.M
    # would try every position (20x slower).
    _SHAPES = re.compile(
        r"\n(?:"
        + r"(?:\[\d+:\d+\] )?-A \S+ (?:(?:! )?-s \S+ )?-d ([0-9a-fA-F:.]+)(?:/32|/128)? "
        + r'|(?:\[\d+:\d+\] )?-A \S+ -p \S+ (?:-m comment --comment (?:"(?:[^"\\\n]|\\.)*"|[^ "\n]+) )?'
        + r"-m \S+ --dport (\d+) "
        + r"|)")
    _UPPER_HEX = re.compile(r"\n(?:\[\d+:\d+\] )?-A \S+ (?:(?:! )?-s \S+ )?-d [0-9a-f:.]*[A-F]")

    _QUOTED = re.compile(r'"(?:[^"\\]|\\.)*"')
    _DST = re.compile(r"(?:^|\s)(!\s+)?-d\s+([0-9a-fA-F:.]+)(/\d+)?(?=\s|$)")
    _PORT = re.compile(r"(?:^|\s)(!\s+)?--dport\s+(\d+)(?=\s|$)")

    def __init__(self) -> None:
        self.dsts: tuple[str, ...] = ()   # per rule: its leading plain -d host, or ""
        self.ports: tuple[str, ...] = ()  # per rule: its --dport in the port-only shape, or ""
        self.by_dst: dict[str, list[int]] = {}  # rules of other shapes, classified one by one
        self.by_port: dict[int, list[int]] = {}
        self.always: list[int] = []
        self._asked: dict[tuple[str, int], list[int]] = {}

    @classmethod
    def build(cls, raw) -> _ChainIndex:
        idx = cls()
        text = "\n" + "\n".join(t for _, t in raw) + "\n"
        rows = cls._SHAPES.findall(text)[:len(raw)]  # (the last newline ends the text)
        if not rows:
            return idx
        dsts, ports = zip(*rows)
        if cls._UPPER_HEX.search(text):  # hand-written IPv6; iptables-save prints lower case
            dsts = tuple(_norm(d) for d in dsts)
        idx.dsts, idx.ports = dsts, ports
        for i, (dst, port) in enumerate(rows):
            if not dst and not port:
                idx._classify(i, raw[i][1])
        return idx

    def _classify(self, i: int, text: str) -> None:
        """Any other order (kube-proxy's restore input, hand-written rules)."""
        bare = self._QUOTED.sub('""', text) if '"' in text else text
        d = self._DST.findall(bare)
        if len(d) == 1 and not d[0][0] and d[0][2] in ("", "/32", "/128"):
            self.by_dst.setdefault(_norm(d[0][1]), []).append(i)
            return
        p = self._PORT.findall(bare)
        if not d and len(p) == 1 and not p[0][0] and " --dports" not in bare:
            self.by_port.setdefault(int(p[0][1]), []).append(i)
            return
        self.always.append(i)

    def candidates(self, dst: str, dport: int) -> list[int]:
        found = self._asked.get((dst, dport))
        if found is None:
            port = str(dport)
            shaped = [i for i, d in enumerate(self.dsts) if d == dst]
            shaped += [i for i, p in enumerate(self.ports) if p == port]
            found = self._asked[(dst, dport)] = sorted(
                shaped + self.by_dst.get(dst, []) + self.by_port.get(dport, []) + self.always)
        return found


def _norm(addr: str) -> str:
    # iptables-save prints addresses canonically (IPv6 compressed); only the case
    # of hand-written IPv6 can differ from str(ip_address(...)).
    return addr.lower()


def _fmt(ip: IPAddress) -> str:
    return f"[{ip}]" if ip.version == 6 else str(ip)


def _split_hostport(text: str) -> tuple[str, str | None]:
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        return host, rest[1:] if rest.startswith(":") else None
    if text.count(":") == 1:
        host, port = text.split(":")
        return host, port
    return text, None


def _proto_matches(packet_proto: str, rule_proto: str) -> bool:
    rule_proto = _PROTO_NUMBERS.get(rule_proto, rule_proto)
    return rule_proto in ("all", "0") or rule_proto == packet_proto


def _port_in(port: int, spec: str | None) -> bool:
    if not spec:
        return False
    lo, sep, hi = spec.partition(":")
    if sep:
        return int(lo or 0) <= port <= int(hi or 65535)
    return port == int(spec)


def _apply_mark(mark: int, target) -> int:
    for opt in target.options:
        if not opt.value:
            continue
        value, _, mask = opt.value.partition("/")
        v = int(value, 0)
        if opt.name == "--set-xmark":
            m = int(mask, 0) if mask else 0xFFFFFFFF
            return (mark & ~m & 0xFFFFFFFF) ^ v
        if opt.name == "--set-mark":
            m = int(mask, 0) if mask else 0xFFFFFFFF
            return (mark & ~m & 0xFFFFFFFF) | v
        if opt.name == "--or-mark":
            return mark | v
        if opt.name == "--and-mark":
            return mark & v
        if opt.name == "--xor-mark":
            return mark ^ v
    return mark
