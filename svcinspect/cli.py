"""The command line: a thin click layer over the library.

Each command builds its sources from options, calls one library function and
renders the result. Errors become one line on stderr and an exit code (see
``svcinspect.errors``); ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import sys
from collections.abc import Callable
from typing import Any

import click

from svcinspect import __version__
from svcinspect.errors import EXIT_INPUT, Diagnostic, InputError, SvcinspectError
from svcinspect.model.netfilter import Family, Ruleset
from svcinspect.dataplane.iptables.parse import parse_dumps
from svcinspect.render import json as render_json
from svcinspect.render import text as render_text
from svcinspect.sources.files import read_text

EXIT_CODES_HELP = """\b
Exit codes:
  0  success
  1  check: findings at or above --fail-on
  2  bad input or usage (unreadable or non-dump input, unknown service, bad option)
  3  environment (privilege, missing binary or library, namespace, API server)
"""


class _State:
    debug = False
    verbose = False


def _for_a_person() -> bool:
    """Indent JSON on a terminal; compact when piped to a program (or a file)."""
    return sys.stdout.isatty()


def _print_result(output: str, to_json: Callable[[], dict], to_text: Callable[[], str],
                  diags: list[Diagnostic]) -> None:
    """A command's result on stdout (JSON document or text), then its diagnostics on stderr."""
    if output == "json":
        _write_output(render_json.dumps_bytes(to_json(), pretty=_for_a_person()), None)
    elif output == "yaml":
        import json

        import yaml
        doc = json.loads(render_json.dumps(to_json(), pretty=False))  # the JSON document's own types
        click.echo(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True), nl=False)
    else:
        click.echo(_shown(to_text()), nl=False)
    _emit_diagnostics(diags)


def _emit_diagnostics(diags: list[Diagnostic]) -> None:
    text = render_text.render_diagnostics(list(diags), verbose=_State.verbose)
    if text:
        click.echo(_shown(text), err=True)


def _shown(text: str) -> str:
    """Text for a terminal: control characters from the input shown as ``\\x1b``."""
    from svcinspect.render.escape import escape_text
    return escape_text(text)


_LIVE_OPTIONS = "svcinspect.live_options"


def rules_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Options every rules-reading command shares: ``--rules``/``--strict`` (passed
    to the command), and ``--reader``/``--netns``/``--family``, which the wrapper
    keeps on the click context so that ``load_rules(rules, strict)`` sees them
    without every command passing them along."""

    @click.option("--rules", "rules", multiple=True, metavar="PATH",
                  help="iptables-save / ip6tables-save output, or `nft list ruleset` text / `nft -j` JSON (kube-proxy's "
                       "nftables mode), to analyse (repeatable; - for stdin). "
                       "Without it, read the live node (root).")
    @click.option("--strict", is_flag=True, help="Treat any diagnostic about the input as an error (exit 2).")
    @click.option("--reader", type=click.Choice(["auto", "iptc", "save"]), default=None,
                  help="Live reading: iptables-*-save subprocesses (save), python-iptables for the legacy "
                       "backend (iptc), or auto (save; it is faster).  [default: auto]")
    @click.option("--netns", metavar="NAME|PATH",
                  help="Live reading: read this network namespace (`ip netns` name, /proc/PID/ns/net or a "
                       "bind-mounted path) instead of the current one.")
    @click.option("--family", type=click.Choice(["4", "6", "both"]), default="both", show_default=True,
                  help="Address families to read (live) or keep (--rules).")
    @functools.wraps(func)
    def wrapper(*args: Any, reader: str | None, netns: str | None, family: str, **kwargs: Any) -> Any:
        click.get_current_context().meta[_LIVE_OPTIONS] = (reader, netns, family)
        return func(*args, **kwargs)

    return wrapper


def _live_options(reader: str | None, netns: str | None, family: str | None) -> tuple:
    ctx = click.get_current_context(silent=True)
    given = ctx.meta.get(_LIVE_OPTIONS, (None, None, "both")) if ctx is not None else (None, None, "both")
    family = family or given[2]
    families = (Family.V4, Family.V6) if family == "both" else (Family(int(family)),)
    return reader or given[0], netns or given[1], families


def load_rules(rules: tuple[str, ...], strict: bool, *, reader: str | None = None, netns: str | None = None,
               family: str | None = None, texts: list | None = None, nft_tables=None) -> Ruleset:
    """Build the ruleset from the rules options: the ``--rules`` files (``texts``
    when already read), or the live node (``--reader``/``--netns``/``--family``
    default to the command line's; ``nft_tables``: its nft listing when read
    already). Held until the process ends (:func:`keep_until_exit`)."""
    return keep_until_exit(_load_rules(rules, strict, reader, netns, family, texts, nft_tables))


# What the console entry point (leave) lets the kernel reclaim when the process
# ends, instead of Python freeing it object by object when the command
# returns; None outside it (tests, an import of the CLI), where nothing is held.
_KEPT: list | None = None
# True while leave() runs the command: the cyclic GC is then left off at its end (_gc_off).
_LEAVING = False


def keep_until_exit(obj):
    """``obj``, held until the process ends when it ends by :func:`leave`: the
    ~10^6 objects of a 10000-service dump's model (and what is built from it)
    then cost nothing to free (~0.05 s each time a command returns otherwise).
    For one-shot commands only: one that reads in a loop calls hold_nothing()."""
    if _KEPT is not None:
        _KEPT.append(obj)
    return obj


def hold_nothing() -> None:
    """For a command that runs on (the exporter): keep_until_exit holds
    nothing from now on, so what each round reads is freed after it."""
    global _KEPT
    _KEPT = None


def let_go(obj) -> None:
    """No longer hold ``obj`` (see keep_until_exit): to free it now, with ``del``."""
    if _KEPT is not None:
        _KEPT[:] = [o for o in _KEPT if o is not obj]


def _load_rules(rules, strict, reader, netns, family, texts, nft_tables):
    reader, netns, families = _live_options(reader, netns, family)
    if not rules:
        from svcinspect.sources.nft import read_live_rules  # nftables or iptables mode, whichever is live
        return read_live_rules(reader, families, netns, strict=strict, nft_tables=nft_tables)
    if reader or netns:
        raise InputError("--reader and --netns read the live node; they cannot be combined with --rules")
    if texts is None:
        texts = [read_text(p) for p in rules]
    if _nft_inputs(texts):
        return _load_nft(texts, strict, families)
    return parse_dumps(texts, strict=strict).only(families)


# --- nftables mode (issue 13): the dispatch points, kept together -----------------------

def _nft_inputs(texts) -> bool:
    """True when the inputs are `nft list` text or `nft -j` JSON (all of them;
    mixing them with iptables-save dumps is refused)."""
    from svcinspect.parse.recognise import looks_like_nft

    kinds = [looks_like_nft(t.data[:262144].decode("utf-8", "replace")) for t in texts]
    if any(kinds) and not all(kinds):
        names = ", ".join(t.name for t, k in zip(texts, kinds) if not k)
        raise InputError(f"{names}: not nftables rules, while the other --rules are; pass one mode's rules at a time")
    return bool(kinds) and all(kinds)


def _load_nft(texts, strict: bool, families):
    from svcinspect.dataplane.nftables.parse import parse_nfts

    ruleset = parse_nfts(texts, strict=strict)
    if not ruleset.families:  # nft text, but not kube-proxy's nftables mode: say what it is instead
        from svcinspect.errors import NotADumpError
        from svcinspect.parse.recognise import describe_other_input

        for t in texts:
            what = describe_other_input(t.text)
            if what is not None:
                raise NotADumpError(what, t.name)
    return ruleset.only(families)


def _live_nft_tables(netns, families):
    """The live node's (or --netns's) kube-proxy nftables tables, as
    ``sources.nft.read_nft_tables`` answers. (Asked for every --reader: it picks
    how iptables is read, not the mode.)"""
    from svcinspect.sources.command import check_privileges
    from svcinspect.sources.netns import resolve_netns
    from svcinspect.sources.nft import read_nft_tables

    ref = resolve_netns(netns) if netns else None
    check_privileges(ref)
    return read_nft_tables(families, ref)


def _is_nft(ruleset) -> bool:
    return getattr(ruleset, "dataplane", "iptables") == "nftables"


def analyse_rules(rules: tuple[str, ...], strict: bool, analysis: Callable[[Ruleset], Any]) -> tuple[Ruleset, Any]:
    """``analysis(ruleset)`` for commands that read a few chains (packet, trace,
    graph of a service): first on an index of the dumps (files, or the live
    node's save output) that finds chains by bisection, when they are shaped as
    iptables-save prints them and the lookups are confirmed whole
    (``dataplane.iptables.index``); otherwise on the full parse of the same text. Same
    answer, less time."""
    from svcinspect.dataplane.iptables.index import analyse_indexed, index_dumps

    reader, netns, families = _live_options(None, None, None)
    if not rules:
        from svcinspect.sources.command import index_live, parse_live, read_live_dump

        nft_tables = _live_nft_tables(netns, families)
        if nft_tables[0]:
            ruleset = load_rules(rules, strict, nft_tables=nft_tables)
            return ruleset, analysis(ruleset)
        dump = read_live_dump(reader or "auto", families, netns)
        done = None if strict else analyse_indexed(index_live(dump), analysis)
        if done is not None:
            return done
        ruleset = parse_live(dump, strict)
        return ruleset, analysis(ruleset)
    texts = [read_text(p) for p in rules] if not (reader or netns) else None
    if texts is not None and _nft_inputs(texts):  # no bisecting index for nft: its reader is one pass
        ruleset = load_rules(rules, strict, texts=texts)
        return ruleset, analysis(ruleset)
    if texts is not None and not strict:
        indexed = index_dumps(texts)
        done = analyse_indexed(indexed.only(families) if indexed is not None else None, analysis)
        if done is not None:
            return done
    ruleset = load_rules(rules, strict, texts=texts)
    return ruleset, analysis(ruleset)


def output_option(*choices: str, default: str) -> Callable[..., Any]:
    """``-o``, with kubectl's names accepted by every command: ``table`` and
    ``text`` are the same, ``yaml`` is the JSON document as YAML, ``wide`` is the
    text with everything (when the command has no wider form: its text), ``name``
    only where a command lists names. The command receives the name it declared."""
    return click.option("-o", "--output", type=OutputFormat(choices), default=default, show_default=True,
                        help="Output format.")


_WIDE = "svcinspect.wide"


class OutputFormat(click.ParamType):
    name = "format"

    def __init__(self, declared: tuple[str, ...]) -> None:
        self.declared = declared
        text = [c for c in declared if c in ("text", "table")]
        self.text = text[0] if text else None
        self.accepted = [c for c in ("table", "text", "wide", "json", "yaml", "name")
                         if c in declared or (c in ("table", "text", "wide") and self.text) or c == "yaml"
                         and "json" in declared] + [c for c in declared if c not in
                                                    ("table", "text", "wide", "json", "yaml", "name")]

    def get_metavar(self, param, ctx=None) -> str:  # click 8.2+ passes ctx by keyword
        return "[" + "|".join(self.accepted) + "]"

    def convert(self, value, param, ctx):
        if value in self.declared:
            return value
        if value in ("table", "text") and self.text:
            return self.text
        if value == "wide" and self.text:
            if ctx is not None:
                ctx.meta[_WIDE] = True
            return self.text
        if value == "yaml" and "json" in self.declared:
            return "yaml"
        self.fail(f"{value!r} is not one of {', '.join(self.accepted)}", param, ctx)

    def shell_complete(self, ctx, param, incomplete):
        from click.shell_completion import CompletionItem
        return [CompletionItem(c) for c in self.accepted if c.startswith(incomplete)]


def wide_output() -> bool:
    """Whether ``-o wide`` was asked for."""
    ctx = click.get_current_context(silent=True)
    return bool(ctx is not None and ctx.meta.get(_WIDE))


class ObjectsSource:
    """Where Kubernetes objects come from (the ``objects_options`` bundle)."""

    def __init__(self, paths: tuple[str, ...], kubeconfig: str | None, context: str | None, api: bool,
                 namespace: str | None, request_timeout: float, node: str | None) -> None:
        self.paths, self.kubeconfig, self.context, self.api = paths, kubeconfig, context, api
        self.namespace, self.request_timeout, self.node = namespace, request_timeout, node

    @property
    def from_api(self) -> bool:
        return bool(self.kubeconfig or self.context or self.api)


def objects_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Options for reading Services, EndpointSlices and Nodes (files or the API
    server) and naming the node; the command gets them as ``objects_from``."""

    @click.option("--objects", "objects", multiple=True, metavar="PATH",
                  help="Kubernetes objects: `kubectl get svc,endpointslices,nodes -A -o json` output, YAML or "
                       "multi-document YAML (repeatable; - for stdin).")
    @click.option("--kubeconfig", metavar="PATH", help="Read the objects from the API server of this kubeconfig.")
    @click.option("--context", metavar="NAME", help="kubeconfig context to use (implies reading the API).")
    @click.option("--api", "use_api", is_flag=True,
                  help="Read the objects from the API server: $KUBECONFIG, ~/.kube/config, or in-cluster config "
                       "when running in a pod.")
    @click.option("-n", "--namespace", "objects_namespace", metavar="NS",
                  help="Only Services of this namespace (and their rules).")
    @click.option("--request-timeout", type=_SecondsParam(), default=10.0, show_default=True,
                  metavar="SECONDS", help="API server request timeout.")
    @click.option("--node", metavar="NAME",
                  help="The node the rules come from (default when reading the live node: its host name). "
                       "Needed for Local traffic policies and topology hints.")
    @functools.wraps(func)
    def wrapper(*args: Any, objects: tuple[str, ...], kubeconfig: str | None, context: str | None, use_api: bool,
                objects_namespace: str | None, request_timeout: float, node: str | None, **kwargs: Any) -> Any:
        src = ObjectsSource(objects, kubeconfig, context, use_api, objects_namespace, request_timeout, node)
        return func(*args, objects_from=src, **kwargs)

    return wrapper


def load_objects(src: ObjectsSource):
    """The ClusterState from ``--objects`` files or the API server; None when neither was asked for."""
    if src.paths and src.from_api:
        raise InputError("--objects reads files, --kubeconfig/--context/--api read the API server: use one of them")
    if src.paths:
        from svcinspect.parse.kube_objects import merge_states, parse_objects  # and PyYAML: only when asked

        state = merge_states(parse_objects(t.text, t.name) for t in (read_text(p) for p in src.paths))
        return state.in_namespace(src.namespace)
    if src.from_api:
        from svcinspect.sources.kubeapi import ApiRequest, load_cluster_state
        return load_cluster_state(ApiRequest(src.kubeconfig, src.context, src.namespace, src.request_timeout))
    return None


def _object_endpoints(objects_from: ObjectsSource, ruleset: Ruleset, rules: tuple[str, ...]):
    """(chain hash, family) -> endpoints of the EndpointSlices, or None without objects."""
    state = load_objects(objects_from)
    if state is None:
        return None
    from svcinspect.expected import build_expected, endpoints_by_port
    node = node_name(objects_from, rules)
    _require_known_node(state, node, objects_from)
    return endpoints_by_port(build_expected(state, node, ruleset.families))


def node_name(src: ObjectsSource, rules: tuple[str, ...]) -> str | None:
    """``--node``, else the live host's node name when the rules are read live
    (kubelet names a node after its host name unless told otherwise)."""
    if src.node:
        return src.node
    if not rules:
        import os
        import socket
        return os.environ.get("NODE_NAME") or socket.gethostname().lower()
    return None


_ALL_NAMESPACES = "svcinspect.all_namespaces"


def all_namespaces_option(func: Callable[..., Any]) -> Callable[..., Any]:
    """kubectl's ``-A/--all-namespaces``: every namespace (the default when no
    ``-n`` is given); a bare Service name is then looked up in all of them.
    Refused together with ``-n``."""

    @click.option("-A", "--all-namespaces", "all_namespaces", is_flag=True,
                  help="Every namespace (a bare NAME is looked up in all of them).")
    @functools.wraps(func)
    def wrapper(*args: Any, all_namespaces: bool, **kwargs: Any) -> Any:
        if all_namespaces and (kwargs.get("objects_namespace") or kwargs.get("namespace")):
            raise InputError("-n/--namespace and -A/--all-namespaces cannot be combined")
        click.get_current_context().meta[_ALL_NAMESPACES] = all_namespaces
        return func(*args, **kwargs)

    return wrapper


# --- limits on what is read (issue 12: hostile and broken input) -------------------

class _SizeParam(click.ParamType):
    name = "SIZE"

    def convert(self, value, param, ctx):
        from svcinspect.sources.limits import parse_size
        if isinstance(value, int):
            return value
        try:
            return parse_size(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


class _SecondsParam(click.ParamType):
    """Seconds, finite and > 0: ``nan`` and ``inf`` are refused here, not deep in a client."""

    name = "SECONDS"

    def convert(self, value, param, ctx):
        import math
        try:
            seconds = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number of seconds", param, ctx)
        if math.isnan(seconds) or math.isinf(seconds) or seconds <= 0:
            self.fail(f"{value!r}: give a finite number of seconds greater than 0", param, ctx)
        return seconds


def limits_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """``--max-input-size`` and ``--command-timeout`` (before the command:
    ``svcinspect --max-input-size 1G services ...``), set for the whole run."""
    from svcinspect.sources.limits import DEFAULT_COMMAND_TIMEOUT, DEFAULT_MAX_INPUT_SIZE

    @click.option("--max-input-size", type=_SizeParam(), default=str(DEFAULT_MAX_INPUT_SIZE // (1 << 20)) + "M",
                  show_default=True, envvar="SVCINSPECT_MAX_INPUT_SIZE",
                  help="Refuse a rules or objects file, stdin, save output or API answer larger than this "
                       "(K, M, G suffixes).")
    @click.option("--command-timeout", type=_SecondsParam(), default=DEFAULT_COMMAND_TIMEOUT, show_default=True,
                  envvar="SVCINSPECT_COMMAND_TIMEOUT",
                  help="Stop a subprocess (iptables-save, nsenter, dot) that runs longer than this.")
    @functools.wraps(func)
    def wrapper(*args: Any, max_input_size: int, command_timeout: float, **kwargs: Any) -> Any:
        from svcinspect.sources.limits import configure
        configure(max_input_size=max_input_size, command_timeout=command_timeout)
        return func(*args, **kwargs)

    return wrapper


def resolve_query(ruleset: Ruleset, service: str, objects_from: ObjectsSource) -> str:
    """What SERVICE names, the kubectl way (svc/NAME, NAME in any namespace, a
    cluster IP[:port], a node port): see ``svcinspect.lookup``."""
    from svcinspect.lookup import resolve_service

    ctx = click.get_current_context(silent=True)
    every = bool(ctx is not None and ctx.meta.get(_ALL_NAMESPACES))
    return resolve_service(ruleset, service, objects_from.namespace, every)


def complete_service(ctx: click.Context, param: click.Parameter, incomplete: str) -> list:
    """Service names for shell completion, from the --rules files already typed
    (nothing without them: completion never reads the live node)."""
    from click.shell_completion import CompletionItem

    paths = [p for p in (ctx.params.get("rules") or ()) if p != "-"]
    if not paths:
        return []
    try:
        from svcinspect.lookup import service_names
        ruleset = parse_dumps([read_text(p) for p in paths])
        names = sorted(service_names(ruleset))
    except Exception:  # completion must never print a traceback into the shell
        return []
    bare = [n.split("/", 1)[1] for n in names]
    return [CompletionItem(n) for n in dict.fromkeys(names + bare) if n.startswith(incomplete)]


def _require_known_node(state, node: str | None, src: ObjectsSource) -> None:
    """Without --node, the host name stands for the node: when it is not a Node of
    the objects, say that (exit 2) instead of blaming kube-proxy for what follows."""
    if state is None or node is None or src.node or not state.nodes:
        return
    names = sorted(n.name for n in state.nodes)
    if node not in names:
        shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
        raise InputError(f"this host's name {node!r} is not a Node in the objects (Nodes: {shown}); "
                         f"pass --node NAME for the node these rules come from")


def _flush_stdout() -> None:
    """Write out what is buffered now, so that a full disk or a closed pipe is an
    error here (exit 3) rather than at interpreter exit."""
    try:
        sys.stdout.flush()
    except (BrokenPipeError, ValueError):
        raise
    except OSError as exc:
        _abandon_stdout()
        from svcinspect.errors import EnvironmentProblem
        raise EnvironmentProblem(f"cannot write the output: {exc.strerror or exc}") from None


def _abandon_stdout() -> None:
    import os
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


@click.group(context_settings={"help_option_names": ["-h", "--help"]}, epilog=EXIT_CODES_HELP)
@click.version_option(__version__, prog_name="svcinspect")
@click.option("--debug", is_flag=True, help="Show tracebacks instead of one-line errors.")
@click.option("-v", "--verbose", is_flag=True, help="Also show informational diagnostics.")
@limits_options
def cli(debug: bool, verbose: bool) -> None:
    """Explain how this node routes Kubernetes Service traffic, from kube-proxy's
    iptables rules (a saved dump or, as root, the live node). Read-only."""
    _State.debug = debug
    _State.verbose = verbose


@cli.command()
@rules_options
@click.option("--counters/--no-counters", default=True, show_default=True, help="Keep packet/byte counters.")
def dump(rules: tuple[str, ...], strict: bool, counters: bool) -> None:
    """Print what was read as canonical iptables-save text (restorable), or nft text for nftables mode."""
    ruleset = load_rules(rules, strict)  # --family (from rules_options) already selected the tables
    if _is_nft(ruleset):  # canonical `nft list ruleset` text (nft -c -f accepts it)
        from svcinspect.dataplane.nftables.render import render_ruleset as render_nft
        click.echo(render_nft(ruleset), nl=False)
        _emit_diagnostics(_all_diagnostics(ruleset))
        return
    from svcinspect.render.iptables import iter_dump

    pieces, diagnostics = iter_dump(ruleset, counters=counters)
    for piece in pieces:  # written as rendered: the whole text is never held at once
        click.echo(piece, nl=False)
    diags = diagnostics()  # None: only the decoded rules can tell
    _emit_diagnostics(_all_diagnostics(ruleset) if diags is None else diags)


def _all_diagnostics(ruleset: Ruleset) -> list[Diagnostic]:
    """Reader diagnostics plus those of every rule (decodes the whole ruleset)."""
    out = list(ruleset.diagnostics)
    if _is_nft(ruleset):  # read whole: the reader's diagnostics are all there is
        return out
    for t in ruleset.tables:
        for ch in t.chains.values():
            for r in ch.rules:
                out.extend(r.diagnostics)
    return out


def _decoded_diagnostics(ruleset: Ruleset) -> list[Diagnostic]:
    """Reader diagnostics plus those of the rules an analysis actually decoded."""
    out = list(ruleset.diagnostics)
    if _is_nft(ruleset):
        return out
    for t in ruleset.tables:
        for ch in t.decoded_chains():
            if ch.rules.decoded:
                for r in ch.rules:
                    out.extend(r.diagnostics)
    return out


def _analysis_imports() -> None:
    """The modules the service analysis, the completeness checks and the
    renderers import on first use: on a live read, imported while the save
    command is still loading the kernel's tables (``limits.while_waiting``)
    instead of after it printed them (~0.02 s, and the regexes they compile)."""
    import importlib

    for name in ("svcinspect.dataplane", "svcinspect.dataplane.iptables.services",
                 "svcinspect.dataplane.iptables.evaluate", "svcinspect.simulate", "svcinspect.graph",
                 "svcinspect.completeness", "svcinspect.render.escape", "svcinspect.perf",
                 "svcinspect.model.service", "svcinspect.model.flow"):
        importlib.import_module(name)


@cli.command()
@all_namespaces_option
@rules_options
@objects_options
@output_option("table", "json", "name", default="table")
@click.option("--no-headers", is_flag=True, help="Table output without the header lines.")
def services(rules: tuple[str, ...], strict: bool, output: str, objects_from: ObjectsSource,
             no_headers: bool = False) -> None:
    """List every service port the rules implement: addresses, ports, endpoints
    with their exact share, affinity, and the chains behind them (with objects:
    pod names and endpoint conditions too)."""
    from svcinspect.dataplane import build_service_ports

    from svcinspect.completeness import assess_input, render_input_text
    from svcinspect.dataplane.iptables.early import wanted as analysed_early
    from svcinspect.sources.limits import while_waiting

    with analysed_early(), while_waiting(_analysis_imports):  # live: while iptables-save prints
        ruleset = load_rules(rules, strict)
    ports = build_service_ports(ruleset)
    if objects_from.namespace:
        ports = _in_namespace(ports, objects_from.namespace)
    objects = _object_endpoints(objects_from, ruleset, rules)
    diags = _decoded_diagnostics(ruleset)
    whole = assess_input(ruleset)
    keep_until_exit(ports)
    if output == "json":
        # The rules are not needed to render, and the JSON document would stack on
        # their model (20000 services: peak 449 MB kept, 390 MB freed). The table
        # peaks lower than the analysis did, so there they are left to the end of
        # the process (cli.leave), which frees them for nothing (0.05 s at 10000).
        let_go(ruleset)
        del ruleset
    if output == "name":
        click.echo("".join(f"{n}\n" for n in dict.fromkeys((p.name or p.key).split(":")[0] for p in ports)), nl=False)
        _emit_diagnostics(diags)
        return
    _print_result(output, lambda: render_json.services_json(ports, diags, objects, whole, compact=not _for_a_person()),
                  lambda: render_input_text(whole) + render_text.render_services(ports, objects, wide=wide_output(),
                                                                                 headers=not no_headers),
                  diags)


def _in_namespace(ports, namespace: str):
    """``-n NS``: the service ports of that namespace (unnamed ones cannot be placed and are left out)."""
    return [sp for sp in ports if sp.name and sp.name.split("/", 1)[0] == namespace]


class _IPParam(click.ParamType):
    name = "IP"

    def convert(self, value, param, ctx):
        import ipaddress
        try:
            return ipaddress.ip_address(value)
        except ValueError:
            self.fail(f"{value!r} is not an IP address", param, ctx)


class _CIDRParam(click.ParamType):
    name = "CIDR"

    def convert(self, value, param, ctx):
        import ipaddress
        try:
            return ipaddress.ip_network(value, strict=False)
        except ValueError:
            self.fail(f"{value!r} is not a CIDR", param, ctx)


def environment_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """What a simulation needs that the rules do not say."""
    func = click.option("--cluster-cidr", "cluster_cidrs", multiple=True, type=_CIDRParam(),
                        help="The pod network (informational: the rules carry ! -s <cidr>).")(func)
    func = click.option("--node-ip", "node_ips", multiple=True, type=_IPParam(),
                        help="An address of this node (repeatable): what -m addrtype LOCAL matches. "
                             "Without it, locality is an explicit assumption per outcome.")(func)
    return func


def _environment(node_ips, cluster_cidrs):
    from svcinspect.simulate import Environment
    return Environment(frozenset(node_ips) if node_ips else None, tuple(cluster_cidrs))


@cli.command()
@rules_options
@click.option("--src", required=True, type=_IPParam(), help="Source address of the first packet.")
@click.option("--dst", required=True, type=_IPParam(), help="Destination address.")
@click.option("--dport", required=True, type=click.IntRange(1, 65535), help="Destination port.")
@click.option("--proto", type=click.Choice(["tcp", "udp", "sctp"]), default="tcp", show_default=True)
@click.option("--hook", type=click.Choice(["prerouting", "output"]), default=None,
              help="Where the packet enters: prerouting (from a pod or outside; default) or output (from the "
                   "node itself; default when --src is a node IP or loopback).")
@environment_options
@output_option("text", "json", default="text")
def packet(src, dst, dport, proto, hook, node_ips, cluster_cidrs, output, **source) -> None:
    """Simulate the first packet of a connection through nat and filter, with
    every possible outcome, its exact probability and the rules on its way."""
    from svcinspect.dataplane import simulate
    from svcinspect.model.flow import Hook, Packet
    from svcinspect.model.netfilter import Family

    if src.version != dst.version:
        raise InputError(f"--src {src} and --dst {dst} are of different address families")
    if hook is None:
        hook = "output" if (src.is_loopback or src in set(node_ips)) else "prerouting"
    first = Packet(src, dst, dport, proto, Hook(hook))
    env = _environment(node_ips, cluster_cidrs)

    def analysis(ruleset: Ruleset):
        if ruleset.table("nat", Family(dst.version)) is None and ruleset.table("filter", Family(dst.version)) is None:
            have = ", ".join(f"IPv{int(f)}" for f in ruleset.families) or "none"
            tool = ('ip6tables-save' if dst.version == 6 else 'iptables-save') if not _is_nft(ruleset) else \
                f"`nft list table {'ip6' if dst.version == 6 else 'ip'} kube-proxy`"
            raise InputError(f"the rules have no IPv{dst.version} nat or filter table (have: {have}); "
                             f"pass {tool} output too")
        return simulate(ruleset, first, env)

    from svcinspect.completeness import assess_input, render_input_text

    ruleset, sim = analyse_rules(source["rules"], source["strict"], analysis)
    whole = assess_input(ruleset, scan_references=False)
    _print_result(output, lambda: render_json.simulation_json(sim, whole),
                  lambda: render_input_text(whole) + render_text.render_simulation(sim),
                  _decoded_diagnostics(ruleset))


@cli.command("graph")
@all_namespaces_option
@rules_options
@click.argument("service", required=False,
                shell_complete=lambda ctx, param, incomplete: complete_service(ctx, param, incomplete))
@click.option("-n", "--namespace", help="Every service port of this namespace, one group each.")
@click.option("-o", "--output", type=click.Choice(["dot", "svg", "png", "json"]), default="dot", show_default=True,
              help="DOT text, SVG/PNG drawn by Graphviz's dot, or networkx node-link JSON.")
@click.option("--out", "out", metavar="FILE", help="Write here instead of stdout.")
@click.option("--expand", is_flag=True, help="Whole dump: draw every chain instead of one node per service port.")
def graph_command(rules, strict, service, namespace, output, out, expand) -> None:
    """Draw the chain graph: SERVICE (ns/name[:port]) from its entry points to its
    endpoints, with exact shares; -n NAMESPACE; or the whole dump, one node per
    service port."""
    from svcinspect.graph import build_graph
    from svcinspect.render.dot import render_dot, render_node_link_json

    if output in ("svg", "png") and out is None and sys.stdout.isatty():
        raise InputError(f"not writing {output} to a terminal: pass --out FILE or redirect stdout")
    if service is None and namespace is None:  # the whole dump: every chain, no lookups to save
        ruleset = load_rules(rules, strict)
        g, title = build_graph(ruleset, None, None, expand=expand, light=output != "json")
    else:
        def analysis(rs: Ruleset):
            query = service
            if service is not None:
                from svcinspect.lookup import resolve_service
                ctx = click.get_current_context(silent=True)
                query = resolve_service(rs, service, namespace, bool(ctx and ctx.meta.get(_ALL_NAMESPACES)))
            return build_graph(rs, query, None if service is not None else namespace)

        ruleset, (g, title) = analyse_rules(rules, strict, analysis)
    if output == "json":
        data = render_node_link_json(g).encode()
    else:
        data = render_dot(g, title).encode()
        if output != "dot":
            from svcinspect.sources.graphviz import render_with_dot
            data = render_with_dot(data.decode(), output)
    _write_output(data, out)
    _emit_diagnostics(_decoded_diagnostics(ruleset))


def _write_output(data: bytes, path: str | None) -> None:
    from svcinspect.errors import EnvironmentProblem

    if path is None:
        # (click.get_binary_stream is deprecated since Click 8.5, gone in 9)
        binary = getattr(sys.stdout, "buffer", None)
        if binary is None:  # a text-only stdout (an embedding host's): the bytes as text
            sys.stdout.write(data.decode("utf-8", "replace"))
            return
        sys.stdout.flush()
        binary.write(data)
        binary.flush()
        return
    try:
        with open(path, "wb") as fh:
            fh.write(data)
    except OSError as exc:
        raise EnvironmentProblem(f"{path}: cannot write: {exc.strerror or exc}") from None


@cli.command()
@all_namespaces_option
@click.argument("service", shell_complete=lambda ctx, param, incomplete: complete_service(ctx, param, incomplete))
@click.option("--port", "port_name", help="Only this service port (its name, or its number).")
@click.option("--wide", is_flag=True, help="Print every rule's whole text (JSON always has it).")
@rules_options
@objects_options
@environment_options
@output_option("text", "json", default="text")
def trace(service, port_name, wide, node_ips, cluster_cidrs, output, objects_from: ObjectsSource, **source) -> None:
    """Explain how SERVICE (NAMESPACE/NAME[:PORT], or NAME with -n) is load-balanced
    on this node: every entry point, the rule path, endpoints with exact shares,
    masquerade; with objects, the pods, nodes and conditions behind the endpoints."""
    from svcinspect.trace import trace_service

    query = service.split(":")[0] + ":" + port_name if port_name else service
    state = load_objects(objects_from)
    node = node_name(objects_from, source.get("rules", ()))
    env = simulation_environment(node_ips, cluster_cidrs, state, node, source.get("rules", ()))
    objects: dict = {}  # read once, whichever ruleset the analysis runs on (both have the same families)

    def analysis(ruleset: Ruleset):
        if "endpoints" not in objects:
            objects["endpoints"] = _endpoints_of_state(state, node, ruleset)
        return trace_service(ruleset, resolve_query(ruleset, query, objects_from), env, objects["endpoints"],
                             namespace=objects_from.namespace or "default")

    ruleset, result = analyse_rules(source["rules"], source["strict"], analysis)
    _print_result(output, lambda: render_json.trace_json(result),
                  lambda: render_text.render_trace(result, wide or wide_output()),
                  _decoded_diagnostics(ruleset))


@cli.command()
@all_namespaces_option
@rules_options
@objects_options
@click.option("--fail-on", type=click.Choice(["error", "warning", "never"]), default="error", show_default=True,
              help="Exit 1 when there is a finding of this severity or worse.")
@output_option("text", "json", default="text")
def check(fail_on: str, output: str, objects_from: ObjectsSource, **source: Any) -> None:
    """Find what is stale, missing or wrong in this node's kube-proxy rules,
    compared with the Services and EndpointSlices (--objects or the API); without
    objects, check the rules alone (hooks, dangling jumps, cascades)."""
    from svcinspect.check import check_rules, fails
    from svcinspect.errors import EXIT_FINDINGS
    from svcinspect.render.check import check_json, render_check_text
    from svcinspect.dataplane.iptables.early import wanted as analysed_early
    from svcinspect.sources.limits import while_waiting

    with analysed_early(), while_waiting(_analysis_imports):  # live: while iptables-save prints
        ruleset = load_rules(**source)
    state = load_objects(objects_from)
    node = node_name(objects_from, source.get("rules", ()))
    _require_known_node(state, node, objects_from)
    report = check_rules(ruleset, state, node, objects_from.namespace)
    diags = _decoded_diagnostics(ruleset)
    _print_result(output, lambda: check_json(report, diags), lambda: render_check_text(report), diags)
    if fails(report, fail_on):
        sys.exit(EXIT_FINDINGS)


# --- issue 16: explain, node addresses from the Node object, kubectl conventions ---------------------------

def node_environment(env, state, node: str | None):
    """``env`` with this node's addresses from its Node object (InternalIP,
    ExternalIP) when no --node-ip was given: a trace then shows the real node
    address instead of a documentation placeholder."""
    if env.node_ips or state is None or not node:
        return env
    import ipaddress

    from svcinspect.simulate import Environment
    found = state.node(node)
    ips = set()
    for kind, addr in (found.addresses if found else ()):
        if kind in ("InternalIP", "ExternalIP"):
            try:
                ips.add(ipaddress.ip_address(addr))
            except ValueError:
                continue
    return Environment(frozenset(ips), env.cluster_cidrs) if ips else env


def simulation_environment(node_ips, cluster_cidrs, state, node: str | None, rules: tuple[str, ...]):
    """What a simulation is told about this node: --node-ip, else the Node
    object's addresses, else (reading the live node, in --netns too) the
    addresses its interfaces have; unknown only when none of these says."""
    env = node_environment(_environment(node_ips, cluster_cidrs), state, node)
    if env.node_ips or rules:
        return env
    from svcinspect.simulate import Environment
    from svcinspect.sources.addresses import read_node_addresses

    _, netns, _ = _live_options(None, None, None)
    ips = read_node_addresses(netns)
    return Environment(ips, env.cluster_cidrs) if ips else env


@cli.command()
@all_namespaces_option
@click.argument("service", shell_complete=lambda ctx, param, incomplete: complete_service(ctx, param, incomplete))
@click.option("--lang", type=click.Choice(["en", "zh"]), default="en", show_default=True,
              help="Language of the explanation (zh: Chinese).")
@click.option("--show-rules", is_flag=True, help="Print the full text of every cited rule under its sentence.")
@rules_options
@objects_options
@environment_options
@output_option("text", "json", default="text")
def explain(service, lang, show_rules, node_ips, cluster_cidrs, output, objects_from: ObjectsSource,
            **source) -> None:
    """Explain in plain sentences what kube-proxy made of SERVICE and how each
    kind of client reaches it, every sentence citing its rule."""
    from svcinspect.explain import explain_trace
    from svcinspect.render.explain import explanation_json, render_explanation
    from svcinspect.trace import trace_service

    state = load_objects(objects_from)
    node = node_name(objects_from, source.get("rules", ()))
    env = simulation_environment(node_ips, cluster_cidrs, state, node, source.get("rules", ()))
    objects: dict = {}

    def analysis(ruleset: Ruleset):
        if "endpoints" not in objects:
            objects["endpoints"] = _endpoints_of_state(state, node, ruleset)
        tr = trace_service(ruleset, resolve_query(ruleset, service, objects_from), env, objects["endpoints"],
                           namespace=objects_from.namespace or "default")
        return explain_trace(tr, ruleset)

    ruleset, result = analyse_rules(source["rules"], source["strict"], analysis)
    _print_result(output, lambda: explanation_json(result, lang),
                  lambda: render_explanation(result, lang, show_rules or wide_output()), _decoded_diagnostics(ruleset))


def _endpoints_of_state(state, node: str | None, ruleset: Ruleset):
    if state is None:
        return None
    from svcinspect.expected import build_expected, endpoints_by_port
    return endpoints_by_port(build_expected(state, node, ruleset.families))


@cli.command()
@all_namespaces_option
@rules_options
@objects_options
@environment_options
@click.option("--out", "out", required=True, metavar="FILE.html", help="Where to write the page.")
@click.option("--lang", type=click.Choice(["en", "zh"]), default="en", show_default=True,
              help="Language of the explanations.")
@click.option("--max-services", type=click.IntRange(min=0), default=50, show_default=True,
              help="Services drawn, traced and explained in detail (all are in the table).")
def report(out, lang, max_services, node_ips, cluster_cidrs, objects_from: ObjectsSource, **source) -> None:
    """Write one self-contained HTML page: the input and its completeness, the
    sortable services table, per Service its graph, trace and explanation,
    check findings (with objects) and diagnostics. Makes no network request."""
    from svcinspect.errors import EnvironmentProblem
    from svcinspect.render.html import render_report_html, safe_svg
    from svcinspect.report import build_report

    ruleset = load_rules(**source)
    state = load_objects(objects_from)
    node = node_name(objects_from, source.get("rules", ()))
    env = simulation_environment(node_ips, cluster_cidrs, state, node, source.get("rules", ()))
    rep = build_report(ruleset, state, node, env, objects_from.namespace, max_services, lang)
    svgs: dict[str, str | None] = {}
    from svcinspect.sources.graphviz import render_with_dot
    for d in rep.details:
        if d.dot is None:
            continue
        try:
            svgs[d.name] = safe_svg(render_with_dot(d.dot, "svg"))
        except (EnvironmentProblem, ValueError):
            svgs[d.name] = None
    _write_output(render_report_html(rep, svgs, lang).encode(), out)
    _emit_diagnostics(list(rep.diagnostics))


@cli.command()
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
def completion(shell: str) -> None:
    """Print the shell completion script for SHELL. Commands, options and (from
    the --rules files on the command line) service names complete.

    \b
      bash: source <(svcinspect completion bash)
      zsh:  source <(svcinspect completion zsh)
      fish: svcinspect completion fish | source
    """
    from click.shell_completion import get_completion_class

    cls = get_completion_class(shell)
    click.echo(cls(cli, {}, "svcinspect", "_SVCINSPECT_COMPLETE").source())


def _set_flag(name: str):
    def callback(ctx: click.Context, param: click.Parameter, value: bool) -> None:
        if value:
            setattr(_State, name, True)
    return callback


def add_common_flags(group: click.Group = None) -> None:
    """``-v/--verbose`` and ``--debug`` after the subcommand too (kubectl's
    habit), on every command, including those registered after this module."""
    group = group or cli
    for command in group.commands.values():
        if any(p.name == "common_verbose" for p in command.params):
            continue
        command.params.append(click.Option(["-v", "--verbose", "common_verbose"], is_flag=True, expose_value=False,
                                           callback=_set_flag("verbose"), help="Also show informational diagnostics."))
        command.params.append(click.Option(["--debug", "common_debug"], is_flag=True, expose_value=False,
                                           callback=_set_flag("debug"), help="Show tracebacks instead of one-line "
                                                                             "errors."))


# --- diff: two rule sets compared in Service terms (issue 17) ---------------------------------

def load_side_rules(spec: str, strict: bool, *, reader: str | None, netns: str | None,
                    family: str) -> tuple[Ruleset, str]:
    """One side of ``diff``: ``live`` (the node, or ``netns``), ``-`` (stdin) or
    ``FILE[,FILE...]`` (e.g. iptables-save and ip6tables-save output of one node).
    Returns the ruleset and a label for it. Unlike ``load_rules`` the live options
    are explicit, because each side has its own."""
    families = (Family.V4, Family.V6) if family == "both" else (Family(int(family)),)
    if spec == "live":
        from svcinspect.sources.nft import read_live_rules  # nftables or iptables mode, whichever is live
        return read_live_rules(reader, families, netns, strict=strict), "live" + (f" netns {netns}" if netns else "")
    if netns:
        raise InputError(f"{spec}: --netns-a/--netns-b apply to a side read live (give `live` for that side)")
    paths = [p for p in spec.split(",") if p]
    if not paths:
        raise InputError(f"{spec!r}: expected a dump file, FILE,FILE, - or live")
    texts = [read_text(p) for p in paths]
    if _nft_inputs(texts):
        return _load_nft(texts, strict, families), spec
    return parse_dumps(texts, strict=strict).only(families), spec


@cli.command("diff", epilog="""\b
Exit codes (like diff(1)):
  0  the two sides behave alike (expected differences may be listed)
  1  they differ
  2  bad input or usage
  3  environment (privilege, namespace, API server)""")
@click.argument("side_a", metavar="A")
@click.argument("side_b", metavar="B")
@click.option("--strict", is_flag=True, help="Treat any diagnostic about the input as an error (exit 2).")
@click.option("--reader", type=click.Choice(["auto", "iptc", "save"]), default=None,
              help="How a `live` side is read (see --rules of other commands).  [default: auto]")
@click.option("--netns-a", metavar="NAME|PATH", help="A is `live`: read this network namespace.")
@click.option("--netns-b", metavar="NAME|PATH", help="B is `live`: read this network namespace.")
@click.option("--family", type=click.Choice(["4", "6", "both"]), default="both", show_default=True,
              help="Address families to compare.")
@click.option("--across-nodes", is_flag=True,
              help="A and B are two nodes of one cluster: node-local differences (Local traffic policies, "
                   "each node's own node-port address) are by design and do not count.")
@click.option("--masquerade-limit", type=click.IntRange(min=0), default=None, metavar="N",
              help="A and B in different modes: simulate masquerade per client kind for at most N matched service "
                   "ports (beyond: not compared, with a note).  [default: 1000]")
@objects_options
@output_option("text", "json", default="text")
def diff_command(side_a: str, side_b: str, strict: bool, reader: str | None, netns_a: str | None,
                 netns_b: str | None, family: str, across_nodes: bool, output: str,
                 objects_from: ObjectsSource, masquerade_limit: int | None) -> None:
    """Compare two rule sets in Service terms: A and B are each a dump file
    (FILE,FILE for iptables-save + ip6tables-save), - for stdin, or `live`.
    Per service port: added/removed, addresses, node ports, endpoints with exact
    shares, policies, affinity, REJECT/DROP, masquerade; node-wide: hooks, shared
    rules, dangling and orphan chains. Counters, order and hashes are ignored."""
    from svcinspect.diff import MASQUERADE_ACROSS_MODES_LIMIT, SIDE_BUILDERS, compare_sides, with_objects
    from svcinspect.errors import EXIT_FINDINGS
    from svcinspect.render.diff import diff_json, render_diff_text

    if side_a == "-" and side_b == "-":
        raise InputError("only one side can be read from stdin (-)")
    ra, la = load_side_rules(side_a, strict, reader=reader, netns=netns_a, family=family)
    rb, lb = load_side_rules(side_b, strict, reader=reader, netns=netns_b, family=family)
    def build(ruleset, label):
        return SIDE_BUILDERS[getattr(ruleset, "dataplane", "iptables")](ruleset, label)
    report = compare_sides(build(ra, la), build(rb, lb), across_nodes=across_nodes,
                           namespace=objects_from.namespace,
                           masquerade_limit=MASQUERADE_ACROSS_MODES_LIMIT if masquerade_limit is None
                           else masquerade_limit)
    state = load_objects(objects_from)
    if state is not None:
        from svcinspect.check import check_rules
        node = objects_from.node or node_name(objects_from, () if "live" in (side_a, side_b) else (side_a,))
        report = with_objects(report, check_rules(ra, state, node, objects_from.namespace).findings,
                              check_rules(rb, state, node, objects_from.namespace).findings)
    diags = list(dict.fromkeys(_decoded_diagnostics(ra) + _decoded_diagnostics(rb)))  # one file on both sides: once
    _print_result(output, lambda: diff_json(report, diags), lambda: render_diff_text(report), diags)
    if report.different:
        sys.exit(EXIT_FINDINGS)




# --- balance and serve (issue 15) ------------------------------------------------

@cli.command()
@click.argument("service", required=False)
@click.option("-A", "--all", "all_ports", is_flag=True, help="Every service port that has endpoints.")
@click.option("-n", "--namespace", help="With a bare SERVICE name: its namespace; with -A: only this namespace.")
@rules_options
@click.option("--conntrack", "conntrack_path", metavar="PATH",
              help="A saved `conntrack -L` listing (- for stdin). Live reading runs conntrack -L itself.")
@click.option("--no-conntrack", is_flag=True, help="Live reading: do not read conntrack (open connections unknown).")
@click.option("--conntrack-timeout", type=click.FloatRange(min=0, min_open=True), default=20.0, show_default=True,
              metavar="SECONDS", help="Give up on a live `conntrack -L` after this long.")
@output_option("text", "json", default="text")
def balance(service, all_ports, namespace, rules, strict, conntrack_path, no_conntrack, conntrack_timeout,
            output) -> None:
    """Does SERVICE's traffic split as the rules say? Per endpoint: the expected
    share, new connections counted by its DNAT rule (iptables-save -c) and open
    connections (conntrack), with a chi-square test and a verdict. Exit 1 when
    new or open connections are skewed."""
    from svcinspect.balance import Verdict, balance_ports
    from svcinspect.errors import EXIT_FINDINGS
    from svcinspect.render.balance import balance_json, render_balance_text
    from svcinspect.dataplane import build_service_ports, select_service_ports
    from svcinspect.sources.conntrack import load_conntrack_file, read_live_conntrack

    if (service is None) == (not all_ports):
        raise InputError("name one SERVICE (ns/name[:port]) or pass -A for every service port")
    reader, netns, families = _live_options(None, None, None)
    ruleset = load_rules(rules, strict) if rules else _read_live_counted(reader, netns, families, strict)
    flows, ct_diags = None, []
    if conntrack_path:
        flows, ct_diags = load_conntrack_file(conntrack_path, strict)
    elif not rules and not no_conntrack:
        flows, ct_diags = read_live_conntrack(ruleset.families, netns, conntrack_timeout)
    if all_ports:
        ports = [p for p in build_service_ports(ruleset) if (p.endpoints or p.local_endpoints)
                 and (namespace is None or (p.name or "").startswith(namespace + "/"))]
    else:
        ports = select_service_ports(ruleset, service, namespace)
    result = balance_ports(ruleset, ports, flows)
    diags = _decoded_diagnostics(ruleset) + list(ct_diags)
    _print_result(output, lambda: balance_json(result, diags), lambda: render_balance_text(result), diags)
    if any(pb.verdict in (Verdict.NEW_SKEWED, Verdict.OPEN_SKEWED) for pb in result):
        sys.exit(EXIT_FINDINGS)


def _read_live_counted(reader, netns, families, strict: bool):
    """The live node's rules in whichever mode is live (one read of each: an nft
    listing of a 10000-service table takes as long as the rest of a cycle),
    iptables ones with their counters (``-c``); nftables mode's rules carry none."""
    from svcinspect.sources.nft import read_live_rules

    return read_live_rules(reader, families, netns, strict=strict, counters=True)


def _listen_address(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise InputError(f"--listen {value!r}: expected HOST:PORT (e.g. 0.0.0.0:9842 or [::]:9842)")
    return host.strip("[]") or "0.0.0.0", int(port)


@cli.command()
@rules_options
@objects_options
@click.option("--listen", metavar="HOST:PORT", default=None,
              help="Serve /metrics and /healthz here.  [default: 0.0.0.0:9842; none with --textfile]")
@click.option("--interval", type=click.FloatRange(min=0, min_open=True), default=30.0, show_default=True,
              metavar="SECONDS", help="Re-read the node (and the objects) this often.")
@click.option("--textfile", metavar="PATH",
              help="Write the metrics to PATH after every read (atomic rename), for node-exporter's textfile "
                   "collector.")
@click.option("--once", is_flag=True, help="One read, print the metrics (or write --textfile) and exit "
                                           "(exit 3 when the read failed).")
@click.option("--objects-interval", type=click.FloatRange(min=0), default=60.0, show_default=True,
              metavar="SECONDS", help="List the objects from the API at most this often (each agent lists every "
                                      "Service and EndpointSlice; files are re-read every cycle).")
@click.option("--per-endpoint", is_flag=True, help="Also export per-endpoint series (cardinality: one per endpoint).")
@click.option("--conntrack", "conntrack_path", metavar="PATH",
              help="Re-read this saved `conntrack -L` listing every cycle instead of the live table.")
@click.option("--no-conntrack", is_flag=True, help="Do not read conntrack (open-connection figures are absent).")
@click.option("--conntrack-timeout", type=click.FloatRange(min=0, min_open=True), default=20.0, show_default=True,
              metavar="SECONDS", help="Give up on a live `conntrack -L` after this long.")
def serve(rules, strict, objects_from: ObjectsSource, listen, interval, textfile, once, objects_interval,
          per_endpoint, conntrack_path, no_conntrack, conntrack_timeout) -> None:
    """Run as a Prometheus exporter: re-read this node's rules (and the Services
    and EndpointSlices: --api in a pod, or --objects files) every --interval and
    export findings, endpoints and balance per service port. A failing read keeps
    the last good figures and counts an error; it never stops the exporter."""
    import signal
    import threading

    hold_nothing()  # (it reads the rules again every --interval: holding each read would grow without end)

    from svcinspect.serve.agent import Agent, Readers, make_server, write_textfile
    from svcinspect.sources.conntrack import load_conntrack_file, read_live_conntrack

    reader, netns, families = _live_options(None, None, None)
    if rules and (reader or netns):
        raise InputError("--reader and --netns read the live node; they cannot be combined with --rules")
    address = _listen_address(listen) if listen else (None if (textfile or once) else ("0.0.0.0", 9842))

    def read_rules():
        if rules:
            return load_rules(rules, strict), "file"  # iptables-save dumps or nft text/JSON
        ruleset = _read_live_counted(reader, netns, families, strict)
        if _is_nft(ruleset):
            return ruleset, "nft"
        backend = next((d.message.split("iptables-", 1)[1].split(" ", 1)[0] for d in ruleset.diagnostics
                        if d.message.startswith("reading the iptables-")), "unknown")
        return ruleset, backend

    def read_conntrack(ruleset):
        if conntrack_path:
            return load_conntrack_file(conntrack_path)[0]
        if rules or no_conntrack:
            return None
        return read_live_conntrack(ruleset.families, netns, conntrack_timeout)[0]

    listed: dict = {}

    def read_objects():
        import time
        if objects_from.from_api and "at" in listed and time.monotonic() - listed["at"] < objects_interval:
            return listed["state"]
        state = load_objects(objects_from)
        listed.update(at=time.monotonic(), state=state)
        return state

    agent = Agent(Readers(read_rules, read_objects, read_conntrack,
                          node_name(objects_from, rules)), interval, per_endpoint)
    publish = (lambda: write_textfile(textfile, agent.exposition())) if textfile else None
    if once:
        ok = agent.cycle()
        if publish:
            publish()
        else:
            click.echo(agent.exposition().decode(), nl=False)
        if not ok:
            from svcinspect.errors import EXIT_ENVIRONMENT
            click.echo(f"svcinspect: error: {agent.status.last_error}", err=True)
            sys.exit(EXIT_ENVIRONMENT)
        return
    server = make_server(agent, *address) if address else None
    if server is not None:
        threading.Thread(target=server.serve_forever, name="http", daemon=True).start()
        agent.log(f"serving http://{address[0]}:{server.server_address[1]}/metrics every {interval:g} s")
    signal.signal(signal.SIGTERM, lambda *_: agent.stop())
    try:
        agent.run_loop(publish)
    finally:
        if server is not None:
            server.shutdown()


def kubectl_main(argv: list[str] | None = None) -> None:
    """Entry point of the ``kubectl-svcinspect`` console script: kubectl runs it for
    ``kubectl svcinspect ARGS`` (any executable named kubectl-NAME on PATH is a
    plugin); the same commands, with kubectl's name in usage lines."""
    with _gc_off():
        _run(argv, prog_name="kubectl svcinspect")


def console() -> None:
    """Entry point of the ``svcinspect`` console script (and ``python -m
    svcinspect``): :func:`main`, then :func:`leave`."""
    leave(main)


def kubectl_console() -> None:
    """Entry point of the ``kubectl-svcinspect`` console script: :func:`kubectl_main`, then :func:`leave`."""
    leave(kubectl_main)


def leave(run: Callable[[], None]) -> None:
    """Run ``run`` (a CLI entry point), then end the process with its exit
    status without tearing the interpreter down: once the output is written,
    freeing what a large dump built (~10^6 objects at 10000 services: 0.05-0.1 s)
    is work the kernel does at once when the process ends (and so is the cyclic
    GC's walk over all of it, which turning the GC back on would start: it is
    left off, see :func:`_gc_off`). Everything a normal
    exit does that anybody can see still happens, in the same order: exit
    handlers (``atexit``) run, and stdout and stderr are flushed. What the
    command held with :func:`keep_until_exit` (the rules' model) is freed
    with the process, not when the command returns. When that
    cannot be done the same way (another non-daemon thread still runs, a flush
    fails, the exit status is not a number), the normal exit takes over, as
    if this function were not there."""
    import atexit
    import os
    import threading

    global _KEPT, _LEAVING
    _KEPT = []
    gc_was_enabled = gc.isenabled()
    _LEAVING = True
    try:
        run()
        code: object = 0
    except SystemExit as exc:
        code = exc.code
    finally:
        _LEAVING = False
    if code is None:
        code = 0
    if type(code) is not int or not 0 <= code <= 255 \
            or any(t.is_alive() and not t.daemon for t in threading.enumerate() if t is not threading.main_thread()):
        if gc_was_enabled:
            gc.enable()  # (the process runs on: a thread still works)
        raise SystemExit(code)
    atexit._run_exitfuncs()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except BaseException:  # (a closed pipe: Python's own exit reports it as it always has)
        raise SystemExit(code) from None
    os._exit(code)


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI, mapping svcinspect errors to one line + exit code."""
    with _gc_off():
        _run(argv)


@contextlib.contextmanager
def _gc_off():
    """The cyclic GC off while a command runs: a short-lived process building
    ~10^6 objects, for which it only costs time. Turned back on afterwards,
    except when the process ends next (:func:`leave`): every object the
    command built is still in the youngest generation then, so the first
    allocation after ``gc.enable()`` would walk all of them (10000 services:
    0.15 s after `services --rules`, 0.23 s after a live read) for nothing."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled and not _LEAVING:
            gc.enable()


def _run(argv: list[str] | None, prog_name: str = "svcinspect") -> None:
    add_common_flags()
    try:
        cli.main(args=argv, prog_name=prog_name, standalone_mode=False)
        _flush_stdout()
    except click.exceptions.Abort:
        click.echo("svcinspect: aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code if exc.exit_code else EXIT_INPUT)
    except SvcinspectError as exc:
        if _State.debug:
            import traceback

            traceback.print_exc()
        click.echo(_shown(f"svcinspect: error: {exc}"), err=True)
        sys.exit(exc.exit_code)
    except BrokenPipeError:
        sys.stderr.close()
        sys.exit(0)
    except KeyboardInterrupt:
        click.echo("svcinspect: interrupted", err=True)
        sys.exit(130)
    except OSError as exc:
        if exc.errno is None or getattr(exc, "filename", None) is not None or _State.debug:
            raise
        # Writing the result failed (a full disk, a vanished terminal): not a bug.
        _abandon_stdout()
        click.echo(f"svcinspect: error: cannot write the output: {exc.strerror or exc}", err=True)
        sys.exit(3)
    except Exception as exc:  # a bug: still one line, unless --debug
        if _State.debug:
            raise
        click.echo(_shown(f"svcinspect: internal error: {type(exc).__name__}: {exc} (run with --debug for a "
                          f"traceback)"), err=True)
        sys.exit(70)
    else:
        sys.exit(0)
