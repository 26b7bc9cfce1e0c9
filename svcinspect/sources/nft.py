"""Read kube-proxy's nftables tables from the live node, and tell which mode is live.

``nft list table ip kube-proxy`` (and ``ip6``, both at once), through
``nsenter --net=PATH`` for ``--netns``. Text, not ``nft -j``: at 10000 services
nft prints the text with less CPU (2.3-3.0 s against 4.1 s of user time, the
kernel's ~30 s netlink dump being the same for both), half the bytes, and the
analysis of it peaks lower (about 200 against 245 MB for ``services``); the text reader is exact, and
every nft has it. Read-only: ``nft list`` never writes. :func:`read_live_rules` is what the CLI
calls without ``--rules``: the kube-proxy tables in nft, KUBE chains in either
iptables backend, or both; both is a warning saying which one looks live
(kube-proxy cleans up the other mode's rules when it starts, so the other is a
migration leftover): iptables mode keeps a ``KUBE-PROXY-CANARY`` chain, so with
the canary present the iptables rules are taken as live, without it the
nftables table.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from svcinspect.errors import Diagnostic, EnvironmentProblem, Severity
from svcinspect.model.netfilter import Family
from svcinspect.sources.command import CommandResult, Runner, check_privileges, run_commands
from svcinspect.sources.files import TextSource
from svcinspect.sources.netns import NetnsRef, resolve_netns
from svcinspect.sources.prestart import NFT_FAMILY as _NFT_NAMES, nft_argvs

NFT_FAMILY = {f: _NFT_NAMES[int(f)] for f in (Family.V4, Family.V6)}


def _absent(r: CommandResult) -> bool:
    """The table does not exist (nft: "No such file or directory")."""
    return r.returncode != 0 and "No such file or directory" in r.stderr and "nft:" not in r.stderr[:5]


def _no_binary(r: CommandResult) -> bool:
    return r.returncode == 127


NftTables = tuple[list[TextSource], list[Diagnostic], bool]


def read_nft_tables(families: Sequence[Family], ref: NetnsRef | None, runner: Runner | None = None) -> NftTables:
    """(texts of the kube-proxy tables found, diagnostics, whether nft is installed).
    At 10000 services `nft list table` takes ~35 s (the kernel's dump): a caller
    that asked already hands its answer on (``read_live_rules(nft_tables=...)``)."""
    runner = runner or run_commands
    where = ref.label if ref else ""
    argvs = nft_argvs(families, ref.path if ref else None)
    try:
        results = runner(argvs)
    except EnvironmentProblem as exc:
        if "did not finish within" not in str(exc):
            raise
        raise EnvironmentProblem(f"{exc}; nft lists a large table slowly (its kernel dump: minutes at 20000 "
                                 "services): give --command-timeout more, or save it once with `nft list table "
                                 "ip kube-proxy > FILE` and pass --rules FILE") from None
    texts: list[TextSource] = []
    diags: list[Diagnostic] = []
    if results and all(_no_binary(r) for r in results):
        return [], [Diagnostic(Severity.INFO, "nft not found: kube-proxy's nftables mode was not checked "
                                              "(apt-get install nftables)", "live")], False
    for fam, r in zip(families, results):
        tool = f"nft list table {NFT_FAMILY[fam]} kube-proxy"
        if r.returncode == 0 and r.stdout.strip():
            texts.append(TextSource(f"live:{tool}{where}", r.stdout))
        elif r.returncode != 0 and not _absent(r):
            err = next((ln.strip() for ln in r.stderr.splitlines() if ln.strip()), f"exit status {r.returncode}")
            if "ermission denied" in err or "Operation not permitted" in err:
                raise EnvironmentProblem("nft: permission denied (run as root, or with CAP_NET_ADMIN)")
            if "reassociate" in r.stderr:
                raise EnvironmentProblem(f"cannot enter network namespace {ref.name if ref else ''}: {err}")
            raise EnvironmentProblem(f"nft list table {NFT_FAMILY[fam]} kube-proxy failed: {err}")
    return texts, diags, True


def read_live_rules(reader: str | None, families: Sequence[Family], netns: str | None, *, strict: bool = False,
                    runner: Runner | None = None, caps: int | None = None, counters: bool = False,
                    nft_tables: NftTables | None = None) -> Any:
    """The live node's kube-proxy rules in whichever mode they are: an
    ``NftRuleset`` or the iptables ``Ruleset`` (see the module docstring);
    ``counters``: the iptables rules with their counters (``-c``, for balance);
    ``nft_tables``: what :func:`read_nft_tables` answered already for them."""
    from svcinspect.sources.command import read_live_dump, parse_live

    ref = resolve_netns(netns) if netns else None
    check_privileges(ref, caps)
    # Every reader looks for kube-proxy's nftables tables: --reader chooses how
    # iptables is read (save binaries or python-iptables), not the mode.
    texts, diags, _ = nft_tables if nft_tables is not None else read_nft_tables(families, ref, runner)
    dump = None
    try:
        dump = read_live_dump(reader or "auto", families, netns, counters=counters, runner=runner, caps=caps,
                              probe_nft=not texts, prework=True)
    except EnvironmentProblem:
        if not texts:
            raise
    ipt_chains = 0
    canary = False
    if dump is not None:
        ipt_chains, canary = dump.kube_chains()  # counted as the saves printed
    if not texts:
        ruleset = parse_live(dump, strict)  # type: ignore[arg-type]
        return ruleset
    from svcinspect.dataplane.nftables.parse import parse_nfts  # (only now: the saves start sooner without it)

    nft = parse_nfts(texts, strict=strict)
    kube_iptables = ipt_chains > (1 if canary else 0) or canary
    if kube_iptables:
        live = "iptables" if canary else "nftables"
        stale = "nftables" if live == "iptables" else "iptables"
        msg = (f"kube-proxy rules in both modes: the nftables table{'s' if len(texts) > 1 else ''} "
               f"({', '.join(t.name.split(':', 1)[1] for t in texts)}) and {ipt_chains} KUBE chains in iptables "
               f"({'with' if canary else 'no'} KUBE-PROXY-CANARY); the {live} rules look live, the {stale} ones a "
               f"leftover of a mode change (kube-proxy removes the other mode's rules when it starts); reading "
               f"{live}")
        if live == "iptables":
            ruleset = parse_live(dump, strict)  # type: ignore[arg-type]
            from dataclasses import replace
            return replace(ruleset, diagnostics=tuple(ruleset.diagnostics) + (
                Diagnostic(Severity.WARNING, msg, "live"),))
        diags.append(Diagnostic(Severity.WARNING, msg, "live"))
    diags.append(Diagnostic(Severity.INFO, "reading kube-proxy's nftables mode: "
                            + ", ".join(t.name for t in texts), "live"))
    if reader == "iptc":
        diags.append(Diagnostic(Severity.INFO, "--reader iptc reads iptables only (python-iptables); kube-proxy's "
                                "nftables table is read with nft", "live"))
    from svcinspect.dataplane.nftables.model import NftRuleset
    return NftRuleset(nft.tables, tuple(diags) + nft.diagnostics, nft.origin, nft.form, nft.complete)
