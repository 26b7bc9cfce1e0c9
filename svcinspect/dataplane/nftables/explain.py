"""``explain``'s reading of kube-proxy's nftables mode.

The same sections and sentence kinds as iptables mode (:mod:`svcinspect.explain`),
from the steps the nftables evaluator took: each chain's and set's role, the
journey of one packet (the hook, the ``@service-ips`` / ``@service-nodeports``
verdict maps, the masquerade mark, the ``numgen`` draw, DNAT, the
``masquerading`` chain), and what would change. Each sentence cites the nft rule
or map element it is about, as read. Messages live in :mod:`svcinspect.render.explain`
under ``nft.*`` keys; a message that says the same in both modes is shared.
"""

from __future__ import annotations

import re
from svcinspect.dataplane.nftables.model import NftChain, NftRuleset
from svcinspect.dataplane.nftables.services import split_name
from svcinspect.explain import Citation, Sentence, _frac, _hostport, _pct
from svcinspect.model.flow import Outcome, Step
from svcinspect.model.service import ServicePortRules

# Named objects kube-proxy writes in every generation that has them (the rest are
# per service port and carry a hash: service-, local-, external-, endpoint-, firewall-).
KNOWN_SETS = ("cluster-ips", "nodeport-ips", "service-ips", "service-nodeports", "no-endpoint-services",
              "no-endpoint-nodeports", "firewall-ips", "hairpin-connections")
KNOWN_CHAINS = ("services", "masquerading", "mark-for-masquerade", "firewall-check", "cluster-ips-check",
                "service-endpoints-check", "nodeport-endpoints-check", "endpoints-check", "reject-chain",
                "nodeports")
PER_SERVICE = ("service", "local", "external", "endpoint", "firewall")
_NAT_HOOKS = ("nat-prerouting", "nat-output")
_POST = ("nat-postrouting", "masquerading")
_NOT_FROM = re.compile(r"ip6? saddr != (\S+)")


def _chain(ruleset: NftRuleset | None, sp: ServicePortRules, name: str) -> NftChain | None:
    t = ruleset.kube_proxy(sp.family) if isinstance(ruleset, NftRuleset) else None
    return t.chains.get(name) if t is not None else None


def role(ruleset: NftRuleset | None, sp: ServicePortRules, table: str, chain: str) -> tuple[str, dict]:
    """The message key (and its extra arguments) saying what ``chain`` (or ``@set``) is for."""
    if chain.startswith("@"):
        name = chain[1:]
        if name.startswith("affinity-"):
            return "nft.set.affinity", {}
        return (f"nft.set.{name}", {}) if name in KNOWN_SETS else ("chain.other", {})
    n = split_name(chain)
    if n is not None and n.prefix in PER_SERVICE:
        return f"nft.chain.{n.prefix}", {}
    c = _chain(ruleset, sp, chain)
    if c is not None and c.is_base:
        return "nft.chain.hook", {"hook": c.hook or "", "type": c.type or table,
                                  "priority": c.priority_text or str(c.priority)}
    return (f"nft.chain.{chain}", {}) if chain in KNOWN_CHAINS else ("chain.other", {})


def rank(s) -> tuple:
    """Order of the chains section: hooks, dispatch, per-service chains, postrouting."""
    chain = s.args.get("chain", "")
    order = ("nft.chain.hook", "nft.chain.services", "nft.set.cluster-ips", "nft.set.nodeport-ips",
             "nft.set.service-ips", "nft.set.service-nodeports", "nft.set.no-endpoint-services",
             "nft.set.no-endpoint-nodeports", "nft.set.firewall-ips", "nft.chain.firewall-check", "nft.chain.firewall",
             "nft.chain.external", "nft.chain.service", "nft.chain.local", "nft.set.affinity", "nft.chain.endpoint",
             "nft.chain.mark-for-masquerade", "nft.chain.masquerading", "nft.set.hairpin-connections")
    key = s.key if s.key in order else "~"
    if s.key == "nft.chain.hook" and "postrouting" in chain:
        return (len(order) - 2, chain)
    return (order.index(key) if key in order else len(order), chain)


def journey(sp: ServicePortRules, sc, o: Outcome, ruleset) -> list[Sentence]:
    """The sentences of one packet's way through the nftables rules."""
    steps = list(o.steps)
    out: list[list] = []   # [key, args, cites]; frozen into Sentences at the end
    pending: list = []     # set elements looked up before the rule that used them
    split_done = False
    p = sc.packet
    dst = _hostport(str(p.dst), p.dport)

    def add(key: str, args: dict, *steps_: Step) -> None:
        out.append([key, args, pending[:] + [Citation.of(x) for x in steps_]])
        pending.clear()

    i = 0
    while i < len(steps):
        s = steps[i]
        target = s.action.split(" ", 1)[1] if s.action.startswith(("jump ", "goto ")) else None
        if s.chain.startswith("@"):  # an element looked up: cite it with the rule that used it
            prev = next((x for x in reversed(steps[:i]) if not x.chain.startswith("@")), None)
            nxt = next((x for x in steps[i + 1:] if not x.chain.startswith("@")), None)
            if nxt is not None and s.chain in nxt.rule and not (prev is not None and s.chain in prev.rule):
                pending.append(Citation.of(s))   # looked up by the next rule (its step comes after)
            elif out:
                out[-1][2].append(Citation.of(s))  # by the rule just said (a vmap's element follows its rule)
            else:
                pending.append(Citation.of(s))
            i += 1
            continue
        if s.table == "filter":
            j = i
            while j < len(steps) and steps[j].table == "filter":
                j += 1
            add(*_filter(steps[i:j], o, sc, ruleset, sp), *steps[i:j])
            i = j
            continue
        if s.chain in _POST:
            j = i
            while j < len(steps) and steps[j].table == "nat" and steps[j].chain in _POST:
                j += 1
            add(*_postrouting(steps[i:j], o, sc), *steps[i:j])
            i = j
            continue
        n = split_name(s.chain)
        prefix = n.prefix if n is not None else None
        tn = split_name(target) if target else None
        if s.chain in _NAT_HOOKS and target:
            c = _chain(ruleset, sp, s.chain)
            add("nft.step.hook", {"chain": s.chain, "hook": (c.hook if c is not None else "") or "",
                                  "target": target}, s)
            dispatched = any(x.chain == "services" and x.action.startswith(("goto ", "jump ")) for x in steps[i + 1:])
            if target == "services" and not dispatched:
                key = "nft.step.no_dispatch_no_endpoints" if not sp.endpoints and not sp.local_endpoints \
                    else "nft.step.no_dispatch"
                add(key, {"dst": dst, "proto": p.proto}, s)
        elif s.action.startswith("update @"):
            add("nft.step.affinity_update", {"chain": s.chain, "src": str(p.src),
                                             "seconds": str(sp.affinity_seconds or "?")}, s)
        elif s.chain == "mark-for-masquerade":  # the mark itself, after the rule that jumped here
            if out and out[-1][0].startswith("masq."):
                out[-1][2].append(Citation.of(s))
            else:
                add("masq.other", {"chain": s.chain, "src": str(p.src)}, s)
        elif s.action.startswith("mark for masquerade") or target == "mark-for-masquerade":
            add(*_mark(s, sc, prefix), s)
        elif s.chain == "services" and target and "@service-nodeports" in s.rule:
            add("nft.step.nodeport", {"dst": str(p.dst), "port": str(p.dport), "proto": p.proto,
                                      "target": target}, s)
        elif s.chain == "services" and target and ("@no-endpoint-" in s.rule):
            add("nft.step.no_endpoints", {"dst": dst, "proto": p.proto, "target": target}, s)
        elif s.chain == "services" and target:
            add("nft.step.dispatch", {"dst": dst, "proto": p.proto, "target": target}, s)
        elif prefix == "firewall" and target:
            add("step.fw_allowed", {"src": str(p.src), "target": target}, s)
        elif prefix in ("external", "local") and tn is not None and tn.prefix in ("service", "local"):
            if "pod traffic" in s.rule:
                key = "step.ext_pod_shortcut"
            elif "local traffic" in s.rule.lower() or "fib saddr type local" in s.rule:
                key = "step.ext_local_shortcut"
            else:
                key = "step.ext_to_svl" if tn.prefix == "local" else "step.ext_to_svc"
            add(key, {"target": target, "chain": s.chain}, s)
        elif prefix in ("service", "local") and target and "numgen" not in s.rule and "@affinity-" in s.rule:
            add("nft.step.affinity_hit", {"chain": s.chain, "target": target}, s)
        elif prefix in ("service", "local") and ("numgen" in s.rule or s.action.startswith("DNAT")
                                                  or (tn is not None and tn.prefix == "endpoint")):
            if not split_done:
                out.extend(_split(sp, sc, s))
                split_done = True
            if s.action.startswith("DNAT"):
                before, _, after = s.action[5:].partition(" -> ")
                add("nft.step.dnat", {"before": before, "after": after, "chain": s.chain}, s)
        elif s.action.startswith("DNAT"):
            before, _, after = s.action[5:].partition(" -> ")
            add("nft.step.dnat", {"before": before, "after": after, "chain": s.chain}, s)
        elif s.action.startswith(("masquerade", "MASQUERADE", "SNAT", "snat")):
            add("step.masquerade", {"snat": o.snat_source or "", "src": str(p.src)}, s)
        elif s.action.startswith(("REJECT", "reject")):
            add("step.reject", {"chain": s.chain}, s)
        elif s.action.startswith(("DROP", "drop")):
            add("step.drop", {"chain": s.chain}, s)
        else:
            add("step.generic", {"table": s.table, "chain": s.chain, "action": s.action}, s)
        i += 1
    if pending:
        out.append(["nft.step.elements", {}, pending[:]])
    return [Sentence(k, a, tuple(dict.fromkeys(c))) for k, a, c in out]


def _filter(steps: list[Step], o: Outcome, sc, ruleset, sp) -> tuple[str, dict]:
    first = steps[0]
    c = _chain(ruleset, sp, first.chain)
    where = {"base": first.chain, "hook": (c.hook if c is not None else None) or "?"}
    last = steps[-1]
    checks = ", ".join(dict.fromkeys(s.action.split(" ", 1)[1] for s in steps
                                     if s.action.startswith(("jump ", "goto ")))) or "none"
    if last.action.startswith(("REJECT", "reject")):
        return "nft.filter.reject", {**where, "chain": last.chain, "checks": checks}
    if last.action.startswith(("DROP", "drop", "policy drop", "policy DROP")):
        return "nft.filter.drop", {**where, "chain": last.chain, "checks": checks}
    if last.action.startswith(("ACCEPT", "accept")):
        return "nft.filter.accept", {**where, "chain": last.chain, "checks": checks}
    # a filter chain at prerouting or output before dstnat (-100) sees the Service address; every later
    # hook (forward, input, postrouting) comes after the DNAT and sees the endpoint's
    before_dnat = c is not None and c.hook in ("prerouting", "output") and c.priority is not None \
        and c.priority < -100
    p = sc.packet
    dst = _hostport(str(p.dst), p.dport) if before_dnat or not o.endpoint else o.endpoint
    return "nft.filter.pass", {**where, "checks": checks, "dst": dst}


def _postrouting(steps: list[Step], o: Outcome, sc) -> tuple[str, dict]:
    src = str(sc.packet.src)
    if any(s.action.startswith(("masquerade", "MASQUERADE", "SNAT")) for s in steps):
        key = "nft.post.masq_same" if o.snat_source == src else "nft.post.masq"
        return key, {"src": src, "snat": o.snat_source or ""}
    if any(s.chain == "masquerading" for s in steps) or steps[-1].action.startswith("jump masquerading"):
        return "nft.post.no_mark", {"src": src}
    return "post.other", {}


def _mark(s: Step, sc, prefix: str | None) -> tuple[str, dict]:
    src = str(sc.packet.src)
    m = _NOT_FROM.search(s.rule)
    if m:
        return "masq.off_cluster", {"src": src, "cidr": m.group(1)}
    if prefix == "endpoint" or "@hairpin-connections" in s.rule:
        return "masq.hairpin", {"src": src}
    if "fib saddr type local" in s.rule:
        return "masq.local_source", {"src": src}
    if prefix in ("external", "firewall"):
        return "masq.external", {"src": src}
    return "masq.other", {"src": src, "chain": s.chain}


def _split(sp: ServicePortRules, sc, s: Step) -> list:
    """The endpoint draw as [key, args, cites]: ``numgen random mod N`` (each of N
    elements one endpoint, or ranges of elements for unequal weights), or a single endpoint."""
    eps = sp.local_endpoints if s.chain == sp.chains.get("svl") and sp.local_endpoints is not None else sp.endpoints
    cite = [Citation.of(s)]
    if len(eps) == 1:
        return [["nft.split.one", {"chain": s.chain, "ep": eps[0].endpoint or "?"}, cite]]
    m = re.search(r"numgen random mod (\d+)", s.rule)
    out = [["nft.split.intro", {"chain": s.chain, "n": str(len(eps)), "mod": m.group(1) if m else "?"}, cite]]
    for e in eps:
        out.append(["nft.split.share", {"ep": e.endpoint or "?", "share": _frac(e.share), "pct": _pct(e.share)},
                    list(cite)])
    if sp.affinity_seconds is not None:
        out.append(["split.affinity", {"seconds": str(sp.affinity_seconds)}, []])
    return out


def changes(sp: ServicePortRules, ruleset) -> list[Sentence]:
    """What would change: affinity, the traffic policies, losing every endpoint."""
    out = []
    t = ruleset.kube_proxy(sp.family) if isinstance(ruleset, NftRuleset) else None

    def cites(chain: str | None, pred) -> tuple:
        c = t.chains.get(chain or "") if t is not None else None
        return tuple(Citation("nat", c.name, r.line, r.text, r.source) for r in c.rules if pred(r.text)) if c else ()

    svc = sp.chains.get("svc")
    if sp.affinity_seconds is not None:
        out.append(Sentence("change.affinity_on", {"seconds": str(sp.affinity_seconds)},
                     cites(svc, lambda x: "@affinity-" in x)))
    else:
        out.append(Sentence("nft.change.affinity_off", {}, general=True))
    ext = sp.chains.get("ext")
    if sp.local_endpoints is not None:
        svl = sp.chains.get("svl") or ""
        scope = "external" if ext else "internal"
        out.append(Sentence(f"change.{scope}_local", {"chain": svl, "n": str(len(sp.local_endpoints))},
                     cites(svl, lambda x: True)))
    elif ext:
        out.append(Sentence("nft.change.external_cluster", {"chain": ext}, cites(ext, lambda x: "mark" in x)))
    else:
        out.append(Sentence("change.internal_cluster", {}, general=True))
    if sp.endpoints or sp.local_endpoints:
        example = ()
        s = t.sets.get("no-endpoint-services") if t is not None else None
        if s is not None and s.elements:
            e = s.elements[0]
            example = (Citation("nat", "@no-endpoint-services", e.line, e.text, s.source),)
        out.append(Sentence("nft.change.no_endpoints" if example else "nft.change.no_endpoints_general", {}, example,
                     general=not example))
    return out
