"""Read the live node's tables: ``iptables-*-save`` subprocesses, backend detection.

:func:`read_live` is what the CLI calls without ``--rules``. It runs
``iptables-legacy-save`` and ``iptables-nft-save`` (and the ``ip6tables`` ones)
at once, optionally through ``nsenter --net=PATH``, counts kube-proxy's rules in
each backend, keeps the backend with more of them (as kube-proxy's own images
decide) and parses its text with the ordinary parser. Both backends holding KUBE
chains ("split brain") is a warning on the ruleset saying which one looks stale.

The outputs are fed, in this thread, as the commands print them
(``limits.run_streamed``: one helper thread drains the pipes) into
:class:`~svcinspect.dataplane.iptables.stream.SaveStream` objects, which count
what the backend choice needs as the text comes and, for callers that parse
the whole dump (``prework=True``: ``read_live_rules``), do the parser's first
stages and ``bulk.scan_nat``'s passes while the save is still printing (and,
for `services` and `check`, the service analysis: ``dataplane.iptables.early``);
the result is ``parse_iptables_save``'s, exactly. The console entry point
may have started these commands before the CLI loaded
(:mod:`svcinspect.sources.prestart`, with the argvs built here): the runner
takes them over, and ``run_saves`` kills whatever it did not take.

Readers (``--reader``):

- ``save``: the subprocesses above.
- ``iptc``: python-iptables for the legacy backend (in-process, see
  :mod:`svcinspect.sources.iptc`); the nft backend is still checked with
  ``iptables-nft-save`` so rules kept there are never taken for "no services".
- ``auto`` (default): ``save``, because it is much faster (10000 services x 10
  endpoints, 440k lines: ``iptables-legacy-save`` 2.3 s, python-iptables 167 s;
  ``benchmarks/bench_live.py``). Falls back to python-iptables only when no
  ``*-save`` binary is installed.

Read-only: the save commands neither write nor take the xtables lock, and only
tables that already exist are read (opening a legacy table would create it).
The command runner is injectable (:class:`FakeRunner` in tests).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from svcinspect.errors import Diagnostic, EnvironmentProblem, Severity
from svcinspect.model.netfilter import Family, Ruleset
from svcinspect.dataplane.iptables import bulk as _bulk
from svcinspect.dataplane.iptables.parse import parse_iptables_save
from svcinspect.sources import prestart
from svcinspect.sources.netns import NetnsRef, nsenter_argv, resolve_netns
from svcinspect.sources.prestart import BACKENDS  # (on a tie kube-proxy's wrapper picks nft)

READERS = ("auto", "iptc", "save")
INSTALL_IPTABLES = "install iptables (apt-get install iptables)"
CAP_NET_ADMIN = 12
CAP_SYS_ADMIN = 21


@dataclass(frozen=True, slots=True)
class CommandResult:
    returncode: int
    stdout: str
    stderr: str


# Runs every argv (concurrently if it likes) and returns their results in order.
# A missing executable is returncode 127 with "No such file or directory".
Runner = Callable[[Sequence[list[str]]], list[CommandResult]]


def run_commands(argvs: Sequence[list[str]]) -> list[CommandResult]:
    """The real runner: all commands at once (the backends are read in parallel),
    bounded in time and output together (``sources.limits.run_streamed``)."""
    return _results(argvs, None)


def stream_commands(argvs: Sequence[list[str]], streams: Sequence) -> list[CommandResult]:
    """The real runner's streaming form: all commands at once, each one's stdout
    fed to its :class:`~svcinspect.dataplane.iptables.stream.SaveStream` as it
    prints (``stdout`` of the results is then empty: the text is the stream's),
    in this thread (a helper thread drains the pipes), so that the parse runs while the commands print
    (``sources.limits.run_streamed``; the same bounds as :func:`run_commands`)."""
    return _results(argvs, streams)


def _no_reader() -> None:
    return None


def _results(argvs: Sequence[list[str]], streams: Sequence | None) -> list[CommandResult]:
    """``run_streamed``'s answers as :class:`CommandResult`: a command that could
    not start is 127 ("No such file or directory") or 126 ("Permission denied")."""
    from svcinspect.sources.limits import Started, run_streamed

    sinks = [None] * len(argvs) if streams is None else [s.feed for s in streams]
    readers = None if streams is None or _NO_NATIVE_TALLY else \
        [getattr(s, "drain_reader", _no_reader)() for s in streams]
    out = []
    for argv, one in zip(argvs, run_streamed([list(a) for a in argvs], sinks, readers)):
        if isinstance(one, Started):
            missing = isinstance(one.error, FileNotFoundError)
            out.append(CommandResult(127 if missing else 126, "", f"{argv[0]}: "
                                     + ("No such file or directory" if missing else "Permission denied")))
        else:
            out.append(CommandResult(one.returncode, one.stdout.decode("utf-8", "replace"),
                                     one.stderr.decode("utf-8", "replace")))
    return out


# A runner with a ``stream`` attribute can feed the save commands' output to
# streams as it comes (``run_saves``); one without gets each text whole.
run_commands.stream = stream_commands  # type: ignore[attr-defined]


class FakeRunner:
    """A runner answering from a dict ``{command name: CommandResult or text}``;
    commands it does not know are missing binaries. Records what was run."""

    def __init__(self, answers: dict[str, CommandResult | str]):
        self.answers = answers
        self.calls: list[list[str]] = []

    def __call__(self, argvs: Sequence[list[str]]) -> list[CommandResult]:
        out = []
        for argv in argvs:
            self.calls.append(list(argv))
            name = argv[argv.index("--") + 1] if argv[0] == "nsenter" else argv[0]
            answer = self.answers.get(name)
            if answer is None:
                out.append(CommandResult(127, "", f"{name}: No such file or directory"))
            else:
                out.append(answer if isinstance(answer, CommandResult) else CommandResult(0, answer, ""))
        return out


def save_command(backend: str, family: Family) -> str:
    return prestart.save_name(backend, int(family))


@dataclass(frozen=True, slots=True)
class KubeCount:
    """How much of kube-proxy one backend holds (IPv4 and IPv6 together)."""

    rules: int = 0
    chains: int = 0
    canary: bool = False
    total_rules: int = 0

    def __add__(self, other: KubeCount) -> KubeCount:
        return KubeCount(self.rules + other.rules, self.chains + other.chains,
                         self.canary or other.canary, self.total_rules + other.total_rules)

    def describe(self) -> str:
        canary = "with" if self.canary else "no"
        return f"{self.rules} KUBE rules in {self.chains} KUBE chains ({canary} KUBE-PROXY-CANARY)"


def count_kube(text: str) -> KubeCount:
    """Count kube-proxy's chains and rules in ``iptables-save`` text (str.count: a
    440k-line dump takes milliseconds)."""
    return KubeCount(rules=text.count("-A KUBE-"), chains=text.count("\n:KUBE-") + text.startswith(":KUBE-"),
                     canary=":KUBE-PROXY-CANARY " in text, total_rules=text.count("-A "))


def choose_backend(counts: dict[str, KubeCount]) -> tuple[str, list[Diagnostic]]:
    """Pick the backend kube-proxy uses: more KUBE rules wins (nft on a tie, and
    when neither has any, the one with more rules at all). Warns about split brain
    and about a node without kube-proxy chains. ``counts`` has the readable backends."""
    if not counts:
        raise EnvironmentProblem(f"no iptables backend could be read: {INSTALL_IPTABLES}")

    def key(backend: str) -> tuple:
        c = counts[backend]
        return (c.rules, c.chains, c.canary, c.total_rules, backend == "nft")

    chosen = max(counts, key=key)
    diags: list[Diagnostic] = []
    others = [b for b in counts if b != chosen]
    if counts[chosen].chains == 0:
        where = ", ".join(f"iptables-{b}: {c.total_rules} rules" for b, c in counts.items())
        diags.append(Diagnostic(Severity.WARNING,
                                f"no kube-proxy (KUBE-*) chains in any iptables backend ({where}); is kube-proxy "
                                "running in iptables mode here? (its nftables mode keeps rules in "
                                "`nft list table ip kube-proxy`, which svcinspect reads when it is there)", "live"))
    for other in others:
        if counts[other].chains:
            diags.append(Diagnostic(Severity.WARNING, _split_brain(chosen, other, counts), "live"))
    diags.append(Diagnostic(Severity.INFO, f"reading the iptables-{chosen} backend: {counts[chosen].describe()}", "live"))
    return chosen, diags


def _split_brain(chosen: str, other: str, counts: dict[str, KubeCount]) -> str:
    mine, theirs = counts[chosen], counts[other]
    why = (["fewer KUBE rules"] if theirs.rules < mine.rules else []) + (
        ["no KUBE-PROXY-CANARY"] if mine.canary and not theirs.canary else [])
    verdict = (f"the iptables-{other} rules look stale ({', '.join(why)})" if why
               else "unclear which is stale")
    if theirs.canary:
        verdict += f"; iptables-{other} has KUBE-PROXY-CANARY too, so a kube-proxy may still be writing it"
    return (f"kube-proxy chains in both iptables backends (split brain): iptables-{chosen} has {mine.describe()}, "
            f"iptables-{other} has {theirs.describe()}; reading iptables-{chosen} (more KUBE rules, as kube-proxy "
            f"decides); {verdict}. To inspect the other: iptables-{other}-save > FILE, then --rules FILE")


def effective_capabilities() -> int:
    """This process's effective capability mask (from /proc/self/status)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("CapEff:"):
                    return int(line.split()[1], 16)
    except OSError:
        pass
    return -1 if os.geteuid() == 0 else 0


def check_privileges(netns: NetnsRef | None, caps: int | None = None) -> None:
    """Raise a one-line :class:`EnvironmentProblem` when reading would be refused."""
    caps = effective_capabilities() if caps is None else caps
    if not caps & (1 << CAP_NET_ADMIN):
        raise EnvironmentProblem("reading the live tables needs root (CAP_NET_ADMIN): run with sudo, "
                                 "or pass --rules FILE with saved iptables-save output")
    if netns is not None and not caps & (1 << CAP_SYS_ADMIN):
        raise EnvironmentProblem(f"entering network namespace {netns.name} needs root (CAP_SYS_ADMIN): run with sudo")


def _missing(result: CommandResult) -> bool:
    return result.returncode == 127 or (
        result.returncode != 0 and ("No such file or directory" in result.stderr
                                    and "failed to execute" in result.stderr))


def _check(result: CommandResult, argv: list[str], netns: NetnsRef | None) -> None:
    """Map a failed save to one line naming the fix (missing binaries are handled by the caller)."""
    if result.returncode == 0:
        return
    err = result.stderr
    cmd = argv[argv.index("--") + 1] if argv[0] == "nsenter" else argv[0]
    first = _error_line(err) or f"exit status {result.returncode}"
    if "xtables lock" in err:
        raise EnvironmentProblem(f"{cmd}: the xtables lock is held by another iptables command; "
                                 "retry in a moment (check `fuser /run/xtables.lock`)")
    if argv[0] == "nsenter" and "reassociate" in err:
        raise EnvironmentProblem(f"cannot enter network namespace {netns.name if netns else ''}: "
                                 f"{first.split(': ')[-1]} (run as root)")
    if "ermission denied" in err or "Operation not permitted" in err or "must be root" in err:
        raise EnvironmentProblem(f"{cmd}: permission denied (run as root, or with CAP_NET_ADMIN)")
    raise EnvironmentProblem(f"{cmd} failed: {first}")


def _error_line(err: str) -> str | None:
    """The line of a failed command's stderr that says what went wrong: not the
    ``# Warning: iptables-legacy tables present`` notice iptables-nft prints first."""
    lines = [ln.strip() for ln in err.split("\n") if ln.strip()]
    said = [ln for ln in lines if not ln.startswith("#")]
    return (said or lines or [None])[0]


def _tally_py(piece: str, canary: bool = False, kube_proxy: bool = False, tables: bool = False) -> tuple:
    """What :class:`_Tally` adds for one piece: ``(rules, chains, total, canary,
    kube_proxy, tables)``, each as ``count_kube`` counts it (str.count, non-overlapping;
    the flags only looked for when not known yet: a flag already true comes back
    as given or true). The reference of the compiled ``_scan.save_tally``."""
    return (piece.count("-A KUBE-"), piece.count("\n:KUBE-") + piece.startswith(":KUBE-"), piece.count("-A "),
            canary or ":KUBE-PROXY-CANARY " in piece,
            kube_proxy or ":KUBE-SERVICES " in piece,
            tables or piece.startswith("*") or "\n*" in piece)


_NO_NATIVE_TALLY = False  # tests: True counts with _tally_py even when the scanner is built


def bulk_native():
    """The compiled scanner in use (None: not built, ``SVCINSPECT_NO_NATIVE=1``,
    or the fast paths off)."""
    return _bulk._native if _bulk.enabled() else None


class _Tally:
    """What ``read_live_dump`` asks of a save's text, counted piece by piece as
    the text arrives (each piece ends at a line break, and no pattern holds
    one, so the sums are the whole text's: see ``count_kube``)."""

    __slots__ = ("rules", "chains", "canary", "total", "kube_proxy", "tables")

    def __init__(self) -> None:
        self.rules = self.chains = self.total = 0
        self.canary = self.kube_proxy = self.tables = False

    def __call__(self, piece: str) -> None:
        got = None
        if not _NO_NATIVE_TALLY:
            native = getattr(bulk_native(), "save_tally", None)
            if native is not None:
                got = native(piece)   # one compiled pass (None: a str it leaves to str.count)
        if got is None:
            got = _tally_py(piece, self.canary, self.kube_proxy, self.tables)
        self.merge(got)

    def merge(self, got: tuple) -> None:
        """Add counts ``(rules, chains, total, canary, kube_proxy, tables)`` of
        the next text (``_tally_py``'s, or a ``RawScan``'s of the bytes)."""
        rules, chains, total, canary, kube_proxy, tables = got
        self.rules += rules
        self.chains += chains
        self.total += total
        self.canary = self.canary or canary
        self.kube_proxy = self.kube_proxy or self.canary or kube_proxy
        self.tables = self.tables or tables

    def count(self) -> KubeCount:
        return KubeCount(self.rules, self.chains, self.canary, self.total)


def run_saves(backends: Sequence[str], families: Sequence[Family], netns: NetnsRef | None,
              runner: Runner, counters: bool = False, *, prework: bool = False):
    """``{(backend, family): SaveStream of its output, or None if the binary is
    missing}``, each stream with a ``tally`` (:class:`_Tally`) of its text.
    ``prework``: parse while the commands print (``SaveStream``; only when the
    runner can stream, and the text is parsed as a whole after all); without
    it the streams only keep the text."""
    from svcinspect.dataplane.iptables.stream import SaveStream

    keys = [(b, f) for b in backends for f in families]
    argvs = prestart.save_argvs(backends, families, netns.path if netns else None, counters)
    where = netns.label if netns else ""
    streams = []
    for b, f in keys:
        stream = SaveStream(f"live:{save_command(b, f)}{where}", family=f, observe=_Tally())
        stream.on = stream.on and prework
        streams.append(stream)
    stream_fn = getattr(runner, "stream", None)
    try:
        if stream_fn is not None:
            results = stream_fn(argvs, streams)
        else:
            results = runner(argvs)
            for stream, result in zip(streams, results):
                if result.returncode == 0:
                    stream.feed_text(result.stdout)
    finally:
        prestart.discard()  # (what the console entry point started for this read and it did not take)
    for stream in streams:
        stream.close()
    out: dict = {}
    for key, argv, result, stream in zip(keys, argvs, results, streams):
        if _missing(result):
            if argv[0] == "nsenter" and result.stderr.startswith("nsenter: No such file"):
                raise EnvironmentProblem("nsenter not found, needed for --netns: install util-linux "
                                         "(apt-get install util-linux)")
            out[key] = None
            continue
        _check(result, argv, netns)
        out[key] = stream
    return out


def _has_tables(text: str) -> bool:
    return text.startswith("*") or "\n*" in text


@dataclass(frozen=True, slots=True)
class LiveDump:
    """What the live node gave: the chosen backend's save text per family
    (``(family, source name, text)``) and what the reader noticed."""

    texts: tuple[tuple[Family, str, str | None], ...]   # text None: it is in the stream (see text_of)
    diagnostics: tuple[Diagnostic, ...]
    notes: tuple[str, ...] = ()   # facts for the analyses (LIVE_NO_KUBE_PROXY, LIVE_NFTABLES_MODE)
    # per text, the SaveStream it came through (None: python-iptables, or a runner's whole text)
    streams: tuple = ()

    def text_of(self, i: int) -> str:
        """The ``i``-th text (joined from its stream when that holds it)."""
        text = self.texts[i][2]
        return text if text is not None else self.streams[i].text

    def kube_chains(self) -> tuple[int, bool]:
        """KUBE chains in the texts and whether one is KUBE-PROXY-CANARY (as
        ``count_kube`` counts them), without joining a streamed text."""
        chains, canary = 0, False
        for i, (_, _, text) in enumerate(self.texts):
            stream = self.streams[i] if i < len(self.streams) else None
            if stream is not None:
                chains += stream.observe.chains
                canary = canary or stream.observe.canary
            else:
                assert text is not None
                chains += text.count("\n:KUBE-") + text.startswith(":KUBE-")
                canary = canary or ":KUBE-PROXY-CANARY " in text
        return chains, canary


# What a live read found about kube-proxy itself, as Ruleset.notes (check reads them).
LIVE_NO_KUBE_PROXY = "live: no kube-proxy rules in any iptables backend"
LIVE_NFTABLES_MODE = "live: kube-proxy runs in nftables mode (`nft list tables` shows its table)"
_NFT_KUBE_TABLE = re.compile(r"^table (ip|ip6|inet) kube-proxy\b", re.M)


def nftables_mode(netns: NetnsRef | None, runner: Runner) -> bool | None:
    """Does ``nft list tables`` show kube-proxy's nftables-mode table? None when nft cannot tell."""
    (result,) = runner([nsenter_argv(netns, ["nft", "list", "tables"])])
    if result.returncode != 0:
        return None
    return _NFT_KUBE_TABLE.search(result.stdout) is not None


def read_live(reader: str = "auto", families: Sequence[Family] = (Family.V4, Family.V6),
              netns: str | None = None, *, counters: bool = False, strict: bool = False,
              runner: Runner | None = None, caps: int | None = None) -> Ruleset:
    """Read the node's (or ``netns``'s) current tables into a :class:`Ruleset`.

    Chooses the backend that holds kube-proxy's rules; the ruleset's diagnostics
    say which one and warn about split brain. ``counters`` adds rule counters
    (``-c``; it makes iptables-nft-save a third slower, and no analysis needs
    them yet; chain counters are always there). Raises :class:`EnvironmentProblem`
    (exit 3) for missing privilege, binaries, python-iptables or namespace.
    """
    return parse_live(read_live_dump(reader, families, netns, counters=counters, runner=runner, caps=caps), strict)


def parse_live(dump: LiveDump, strict: bool = False) -> Ruleset:
    """The ruleset of a live dump, every chain split (see :func:`index_live`):
    what the streams already parsed while the save printed, the rest now."""
    streams = dump.streams or (None,) * len(dump.texts)
    ruleset = _assemble(dump, [stream.finish(strict) if stream is not None else
                               parse_iptables_save(dump.text_of(i), source, family=fam, strict=strict)
                               for i, ((fam, source, _), stream) in enumerate(zip(dump.texts, streams))])
    for stream in streams:
        if stream is not None:
            stream.release()  # the ruleset is all a caller of parse_live wants
    return ruleset


def index_live(dump: LiveDump) -> Ruleset | None:
    """The live dump indexed for chain lookups (``parse.save_index``), or None
    when a text is not shaped for it (python-iptables' text, say)."""
    from svcinspect.dataplane.iptables.index import index_iptables_save

    parsed = []
    for i, (fam, source, _) in enumerate(dump.texts):
        one = index_iptables_save(dump.text_of(i).encode("utf-8", "surrogateescape"), source)
        if one is None or any(t.family != fam for t in one.tables):
            return None
        parsed.append(one)
    return _assemble(dump, parsed)


def _assemble(dump: LiveDump, parsed: list[Ruleset]) -> Ruleset:
    diags = list(dump.diagnostics)
    for one in parsed:
        # The "legacy tables present" banner is what this reader just resolved.
        diags.extend(d for d in one.diagnostics if "other iptables tables exist" not in d.message)
    return Ruleset(tuple(t for one in parsed for t in one.tables), tuple(diags),
                   tuple(source for _, source, _ in dump.texts), dump.notes)


def read_live_dump(reader: str = "auto", families: Sequence[Family] = (Family.V4, Family.V6),
                   netns: str | None = None, *, counters: bool = False, runner: Runner | None = None,
                   caps: int | None = None, probe_nft: bool = True, prework: bool = False) -> LiveDump:
    """The save text of the backend holding kube-proxy's rules, per family (see
    :func:`read_live`). ``probe_nft=False``: the caller has read nft already, so
    no ``nft list tables`` (at 10000 services nft takes ~35 s even for that).
    ``prework=True``: the caller will parse the whole dump (:func:`parse_live`),
    so the parse starts while the save commands print (``dataplane.iptables.stream``)."""
    if reader not in READERS:
        raise ValueError(f"reader must be one of {READERS}")
    runner = runner or run_commands
    families = tuple(families)
    ref = resolve_netns(netns) if netns else None
    check_privileges(ref, caps)

    if reader == "iptc":
        from svcinspect.sources.iptc import check_iptc_installed
        check_iptc_installed()
    saves = run_saves(BACKENDS if reader != "iptc" else ("nft",), families, ref, runner, counters, prework=prework)
    streams = {k: v for k, v in saves.items() if v is not None}
    iptc_texts: dict[tuple[str, Family], str] = {}   # python-iptables' texts, in place of the streams
    diags: list[Diagnostic] = []
    use_iptc = reader == "iptc"
    if reader == "auto" and all(v is None for v in saves.values()):
        use_iptc = _iptc_available()  # no *-save binary at all: python-iptables still reads legacy
        if not use_iptc:
            raise EnvironmentProblem(f"iptables-legacy-save and iptables-nft-save not found: {INSTALL_IPTABLES}")
    if use_iptc:
        from svcinspect.sources.iptc import read_iptc_texts
        for fam, text in read_iptc_texts(families, ref, counters).items():
            iptc_texts[("legacy", fam)] = text
            streams.pop(("legacy", fam), None)
        if all(("nft", f) not in streams for f in families):
            diags.append(Diagnostic(Severity.INFO, "iptables-nft-save not found: only the iptables-legacy backend "
                                    "(python-iptables) was read", "live"))

    counts: dict[str, KubeCount] = {}
    kube_proxy = False
    for key in list(saves) + [k for k in iptc_texts if k not in saves]:
        text = iptc_texts.get(key)
        if text is not None:
            counts[key[0]] = counts.get(key[0], KubeCount()) + count_kube(text)
            kube_proxy = kube_proxy or ":KUBE-SERVICES " in text or ":KUBE-PROXY-CANARY " in text
        elif key in streams:
            tally = streams[key].observe
            counts[key[0]] = counts.get(key[0], KubeCount()) + tally.count()
            kube_proxy = kube_proxy or tally.kube_proxy
    if not counts:
        raise EnvironmentProblem(f"iptables-legacy-save and iptables-nft-save not found: {INSTALL_IPTABLES}")
    chosen, choice_diags = choose_backend(counts)
    if use_iptc and chosen == "nft" and not counts["nft"].rules and "legacy" in counts:
        chosen = "legacy"  # no kube-proxy anywhere: show what the chosen reader sees
        choice_diags = [d for d in choice_diags if d.severity > Severity.INFO] + [
            Diagnostic(Severity.INFO, f"reading the iptables-legacy backend: {counts['legacy'].describe()}", "live")]
    if use_iptc and chosen == "nft" and counts["nft"].rules:
        raise EnvironmentProblem(
            f"python-iptables reads only the iptables-legacy backend ({counts.get('legacy', KubeCount()).describe()}), "
            f"but kube-proxy's rules are in iptables-nft ({counts['nft'].describe()}): use --reader save (or auto)")
    diags.extend(choice_diags)
    notes: list[str] = []
    # kube-proxy's own chains (kubelet alone writes KUBE-FIREWALL and its canary).
    if not kube_proxy:
        notes.append(LIVE_NO_KUBE_PROXY)
        if probe_nft and nftables_mode(ref, runner):
            notes.append(LIVE_NFTABLES_MODE)
            diags.append(Diagnostic(Severity.WARNING, "kube-proxy runs in nftables mode here: `nft list tables` "
                                    "shows table ip/ip6 kube-proxy, and iptables holds none of its rules; "
                                    "read it with `nft list table ip kube-proxy`", "live"))

    where = ref.label if ref else ""
    chosen_texts = []
    chosen_streams = []
    for fam in families:
        key = (chosen, fam)
        stream = streams.get(key) if key not in iptc_texts else None
        text = iptc_texts.get(key)
        if stream is not None:
            if not stream.observe.tables:  # type: ignore[attr-defined]
                continue
            # With the pre-work on, the stream holds the text (joined only if the parser needs it).
            text = None if stream.on else stream.text
        elif not text or not _has_tables(text):
            continue
        tool = f"python-iptables-ipv{int(fam)}" if chosen == "legacy" and use_iptc else save_command(chosen, fam)
        chosen_texts.append((fam, f"live:{tool}{where}", text))
        chosen_streams.append(stream)
    return LiveDump(tuple(chosen_texts), tuple(diags), tuple(notes), tuple(chosen_streams))


def _iptc_available() -> bool:
    from svcinspect.sources.iptc import check_iptc_installed
    try:
        check_iptc_installed()
    except EnvironmentProblem:
        return False
    return True
