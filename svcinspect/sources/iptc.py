"""Read the iptables-legacy tables in-process with python-iptables (``iptc``).

python-iptables talks to the kernel through libiptc, which only knows the legacy
backend: on an iptables-nft node it sees nothing (the caller checks the other
backend, see :mod:`svcinspect.sources.command`).

Each rule is rendered back to the exact syntax ``iptables-legacy-save`` prints
(the match and target text comes from the same xtables ``save`` functions) and the
whole text goes through the ordinary parser, so this reader yields the same model
as parsing a saved dump. The work happens in a forked child (see
:func:`svcinspect.sources.netns.call_in_netns`): that is how another namespace is
entered without moving the caller, and it keeps libiptc's handles and the
C-stdout juggling python-iptables does for every match out of the caller.

Strictly read-only: tables are opened with ``autocommit=False`` (python-iptables
otherwise commits when a handle is freed) and only tables the kernel already
lists are opened, because opening a legacy table instantiates it.
"""

from __future__ import annotations

import importlib.util
import ipaddress

from svcinspect.errors import EnvironmentProblem
from svcinspect.model.netfilter import Family
from svcinspect.sources.netns import NetnsRef, call_in_netns

INSTALL_HINT = "pip install 'svcinspect[live]' (or use --reader save)"
_NAMES_FILE = {Family.V4: "/proc/net/ip_tables_names", Family.V6: "/proc/net/ip6_tables_names"}


def check_iptc_installed() -> None:
    """Raise :class:`EnvironmentProblem` when python-iptables is not installed."""
    if importlib.util.find_spec("iptc") is None:
        raise EnvironmentProblem(f"python-iptables is not installed: {INSTALL_HINT}")


def read_iptc_texts(families: tuple[Family, ...], netns: NetnsRef | None = None,
                    counters: bool = False) -> dict[Family, str]:
    """The legacy tables of each family as ``iptables-legacy-save`` text (``-c``
    with ``counters``; "" when the family has no legacy tables), read in a child
    process (inside ``netns``)."""
    check_iptc_installed()
    # One child per family: python-iptables cannot load IPv4 and IPv6 extensions
    # of the same name in one process ("can't find target MASQUERADE").
    return {f: call_in_netns(netns, lambda f=f: _save_family(f, counters)) for f in families}


def _import_iptc():
    try:
        import iptc  # noqa: F401 - lazy: an optional extra with C libraries
    except ImportError as exc:
        if "iptc" in str(getattr(exc, "name", "")) and "." not in str(exc.name or ""):
            raise EnvironmentProblem(f"python-iptables is not installed: {INSTALL_HINT}") from None
        raise EnvironmentProblem(f"python-iptables cannot load: {exc}: {INSTALL_HINT}") from None
    except Exception as exc:  # XTablesError / OSError when libiptc or libxtables is missing
        raise EnvironmentProblem(f"python-iptables cannot load its C libraries (libiptc, libxtables: {exc}); "
                                 "install them with `apt-get install iptables`, or use --reader save") from None
    return iptc


def _legacy_table_names(family: Family) -> list[str]:
    try:
        with open(_NAMES_FILE[family]) as fh:
            return [ln.strip() for ln in fh if ln.strip()]
    except FileNotFoundError:  # the module is not loaded: no legacy tables at all
        return []


def _save_family(family: Family, counters: bool) -> str:
    names = _legacy_table_names(family)
    if not names:
        return ""
    iptc = _import_iptc()
    out: list[str] = []
    for name in names:
        try:
            table = (iptc.Table if family is Family.V4 else iptc.Table6)(name, autocommit=False)
        except iptc.IPTCError as exc:
            if "ermission" in str(exc) or "not permitted" in str(exc):
                raise EnvironmentProblem("python-iptables: permission denied reading the tables "
                                         "(run as root, or with CAP_NET_ADMIN)") from None
            raise EnvironmentProblem(f"python-iptables cannot read table {name}: {exc}") from None
        table.refresh()  # Table objects are cached per process; read the kernel now
        out.append(f"*{name}")
        chains = table.chains
        for chain in chains:
            policy, chain_counters = table.get_policy(chain.name)
            if policy is None:
                out.append(f":{chain.name} - [0:0]")
            else:
                # Like iptables-save, chain counters are printed with or without -c.
                out.append(f":{chain.name} {policy.name} [{chain_counters[0]}:{chain_counters[1]}]")
        for chain in chains:
            for rule in chain.rules:
                out.append(render_iptc_rule(chain.name, rule, family, counters))
        out.append("COMMIT")
    return "\n".join(out) + "\n"


def _prefix_length(value: str) -> str:
    """``10.244.0.0/255.255.0.0`` (python-iptables) as iptables-save prints it,
    ``10.244.0.0/16``, so that rule texts read live match a saved dump; a mask
    that is not a prefix stays as it is, as iptables-save leaves it."""
    addr, _, mask = value.partition("/")
    if "." not in mask:
        return value
    try:
        return f"{addr}/{ipaddress.IPv4Network('0.0.0.0/' + mask).prefixlen}"
    except ValueError:
        return value


def render_iptc_rule(chain: str, rule, family: Family, counters: bool = False) -> str:
    """One python-iptables rule as ``iptables-save`` (``-c`` with ``counters``) prints it."""
    if counters:
        packets, nbytes = rule.counters
        parts = [f"[{packets}:{nbytes}] -A {chain}"]
    else:
        parts = [f"-A {chain}"]
    for flag, value in (("-s", rule.src), ("-d", rule.dst)):
        neg = value.startswith("!")
        value = value.lstrip("!")
        if neg or value not in ("0.0.0.0/0.0.0.0", "::/0"):
            parts.append(f"{'! ' if neg else ''}{flag} {_prefix_length(value)}")
    for flag, value in (("-i", rule.in_interface), ("-o", rule.out_interface)):
        if value:
            parts.append(f"! {flag} {value[1:]}" if value.startswith("!") else f"{flag} {value}")
    proto = rule.protocol
    if proto not in ("all", "ip", "0", "!all", "!0"):
        parts.append(f"! -p {proto[1:]}" if proto.startswith("!") else f"-p {proto}")
    if family is Family.V4:
        ip = rule.entry.ip
        if ip.flags & ip.IPT_F_FRAG:
            parts.append("! -f" if ip.invflags & ip.IPT_INV_FRAG else "-f")
    raw_ip = rule.get_ip()
    for match in rule.matches:
        parts.append(f"-m {match.name}{_saved(match, raw_ip)}")
    target = rule.target
    if target is not None and target.name:
        parts.append(f"{'-g' if target.goto else '-j'} {target.name}{_saved(target, raw_ip)}")
    return " ".join(parts)


def _saved(module, raw_ip) -> str:
    """The xtables ``save`` output of a match or target (``" --dport 80"``)."""
    buf = module._get_saved_buf(raw_ip)  # python-iptables' capture of the C save()
    if not buf:
        return ""
    return buf.decode("utf-8", errors="replace").rstrip("\n")
