"""The command line: a thin click layer over the library.

Each command builds its sources from options, calls one library function and
renders the result. Errors become one line on stderr and an exit code (see
``svcinspect.errors``); ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import functools
import gc
import sys
from collections.abc import Callable
from typing import Any

import click

from svcinspect import __version__
from svcinspect.errors import EXIT_INPUT, Diagnostic, InputError, SvcinspectError
from svcinspect.model.netfilter import Family, Ruleset
from svcinspect.parse.iptables_save import parse_dumps
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
        click.echo(render_json.dumps(to_json(), pretty=_for_a_person()), nl=False)
    else:
        click.echo(to_text(), nl=False)
    _emit_diagnostics(diags)


def _emit_diagnostics(diags: list[Diagnostic]) -> None:
    text = render_text.render_diagnostics(list(diags), verbose=_State.verbose)
    if text:
        click.echo(text, err=True)


_LIVE_OPTIONS = "svcinspect.live_options"


def rules_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Options every rules-reading command shares: ``--rules``/``--strict`` (passed
    to the command), and ``--reader``/``--netns``/``--family``, which the wrapper
    keeps on the click context so that ``load_rules(rules, strict)`` sees them
    without every command passing them along."""

    @click.option("--rules", "rules", multiple=True, metavar="PATH",
                  help="iptables-save / ip6tables-save output to analyse (repeatable; - for stdin). "
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
               family: str | None = None, texts: list | None = None) -> Ruleset:
    """Build the ruleset from the rules options: the ``--rules`` files (``texts``
    when already read), or the live node (``--reader``/``--netns``/``--family``
    default to the command line's)."""
    reader, netns, families = _live_options(reader, netns, family)
    if not rules:
        from svcinspect.sources.command import read_live
        return read_live(reader or "auto", families, netns, strict=strict)
    if reader or netns:
        raise InputError("--reader and --netns read the live node; they cannot be combined with --rules")
    if texts is None:
        texts = [read_text(p) for p in rules]
    return parse_dumps(texts, strict=strict).only(families)


def analyse_rules(rules: tuple[str, ...], strict: bool, analysis: Callable[[Ruleset], Any]) -> tuple[Ruleset, Any]:
    """``analysis(ruleset)`` for commands that read a few chains (packet, trace,
    graph of a service): first on an index of the dumps (files, or the live
    node's save output) that finds chains by bisection, when they are shaped as
    iptables-save prints them and the lookups are confirmed whole
    (``parse.save_index``); otherwise on the full parse of the same text. Same
    answer, less time."""
    from svcinspect.parse.save_index import analyse_indexed, index_dumps

    reader, netns, families = _live_options(None, None, None)
    if not rules:
        from svcinspect.sources.command import index_live, parse_live, read_live_dump

        dump = read_live_dump(reader or "auto", families, netns)
        done = None if strict else analyse_indexed(index_live(dump), analysis)
        if done is not None:
            return done
        ruleset = parse_live(dump, strict)
        return ruleset, analysis(ruleset)
    texts = [read_text(p) for p in rules] if not (reader or netns) else None
    if texts is not None and not strict:
        indexed = index_dumps(texts)
        done = analyse_indexed(indexed.only(families) if indexed is not None else None, analysis)
        if done is not None:
            return done
    ruleset = load_rules(rules, strict, texts=texts)
    return ruleset, analysis(ruleset)


def output_option(*choices: str, default: str) -> Callable[..., Any]:
    return click.option("-o", "--output", type=click.Choice(choices), default=default, show_default=True,
                        help="Output format.")


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
    @click.option("--request-timeout", type=click.FloatRange(min=0, min_open=True), default=10.0, show_default=True,
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
    from svcinspect.parse.kube_objects import merge_states, parse_objects

    if src.paths and src.from_api:
        raise InputError("--objects reads files, --kubeconfig/--context/--api read the API server: use one of them")
    if src.paths:
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
    return endpoints_by_port(build_expected(state, node_name(objects_from, rules), ruleset.families))


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


@click.group(context_settings={"help_option_names": ["-h", "--help"]}, epilog=EXIT_CODES_HELP)
@click.version_option(__version__, prog_name="svcinspect")
@click.option("--debug", is_flag=True, help="Show tracebacks instead of one-line errors.")
@click.option("-v", "--verbose", is_flag=True, help="Also show informational diagnostics.")
def cli(debug: bool, verbose: bool) -> None:
    """Explain how this node routes Kubernetes Service traffic, from kube-proxy's
    iptables rules (a saved dump or, as root, the live node). Read-only."""
    _State.debug = debug
    _State.verbose = verbose


@cli.command()
@rules_options
@click.option("--counters/--no-counters", default=True, show_default=True, help="Keep packet/byte counters.")
def dump(rules: tuple[str, ...], strict: bool, counters: bool) -> None:
    """Print what was read as canonical iptables-save text (restorable)."""
    ruleset = load_rules(rules, strict)  # --family (from rules_options) already selected the tables
    from svcinspect.render.iptables import render_dump

    text, diags = render_dump(ruleset, counters=counters)  # diags None: only the decoded rules can tell
    click.echo(text, nl=False)
    _emit_diagnostics(_all_diagnostics(ruleset) if diags is None else diags)


def _all_diagnostics(ruleset: Ruleset) -> list[Diagnostic]:
    """Reader diagnostics plus those of every rule (decodes the whole ruleset)."""
    out = list(ruleset.diagnostics)
    for t in ruleset.tables:
        for ch in t.chains.values():
            for r in ch.rules:
                out.extend(r.diagnostics)
    return out


def _decoded_diagnostics(ruleset: Ruleset) -> list[Diagnostic]:
    """Reader diagnostics plus those of the rules an analysis actually decoded."""
    out = list(ruleset.diagnostics)
    for t in ruleset.tables:
        for ch in t.decoded_chains():
            if ch.rules.decoded:
                for r in ch.rules:
                    out.extend(r.diagnostics)
    return out


@cli.command()
@rules_options
@objects_options
@output_option("table", "json", default="table")
def services(rules: tuple[str, ...], strict: bool, output: str, objects_from: ObjectsSource) -> None:
    """List every service port the rules implement: addresses, ports, endpoints
    with their exact share, affinity, and the chains behind them (with objects:
    pod names and endpoint conditions too)."""
    from svcinspect.services import build_service_ports

    ruleset = load_rules(rules, strict)
    ports = build_service_ports(ruleset)
    objects = _object_endpoints(objects_from, ruleset, rules)
    diags = _decoded_diagnostics(ruleset)
    _print_result(output, lambda: render_json.services_json(ports, diags, objects),
                  lambda: render_text.render_services(ports, objects), diags)


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
    from svcinspect.evaluate import Environment
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
    from svcinspect.evaluate import simulate
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
            raise InputError(f"the rules have no IPv{dst.version} nat or filter table (have: {have}); "
                             f"pass {'ip6tables-save' if dst.version == 6 else 'iptables-save'} output too")
        return simulate(ruleset, first, env)

    ruleset, sim = analyse_rules(source["rules"], source["strict"], analysis)
    _print_result(output, lambda: render_json.simulation_json(sim), lambda: render_text.render_simulation(sim),
                  _decoded_diagnostics(ruleset))


@cli.command("graph")
@rules_options
@click.argument("service", required=False)
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
        g, title = build_graph(ruleset, None, None, expand=expand)
    else:
        ruleset, (g, title) = analyse_rules(rules, strict, lambda rs: build_graph(rs, service, namespace))
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
        click.get_binary_stream("stdout").write(data)
        return
    try:
        with open(path, "wb") as fh:
            fh.write(data)
    except OSError as exc:
        raise EnvironmentProblem(f"{path}: cannot write: {exc.strerror or exc}") from None


@cli.command()
@click.argument("service")
@click.option("--port", "port_name", help="Only this service port (its name, or its number).")
@rules_options
@objects_options
@environment_options
@output_option("text", "json", default="text")
def trace(service, port_name, node_ips, cluster_cidrs, output, objects_from: ObjectsSource, **source) -> None:
    """Explain how SERVICE (NAMESPACE/NAME[:PORT], or NAME with -n) is load-balanced
    on this node: every entry point, the rule path, endpoints with exact shares,
    masquerade; with objects, the pods, nodes and conditions behind the endpoints."""
    from svcinspect.trace import trace_service

    query = service.split(":")[0] + ":" + port_name if port_name else service
    env = _environment(node_ips, cluster_cidrs)
    objects: dict = {}  # read once, whichever ruleset the analysis runs on (both have the same families)

    def analysis(ruleset: Ruleset):
        if "endpoints" not in objects:
            objects["endpoints"] = _object_endpoints(objects_from, ruleset, source.get("rules", ()))
        return trace_service(ruleset, query, env, objects["endpoints"], namespace=objects_from.namespace or "default")

    ruleset, result = analyse_rules(source["rules"], source["strict"], analysis)
    _print_result(output, lambda: render_json.trace_json(result), lambda: render_text.render_trace(result),
                  _decoded_diagnostics(ruleset))


@cli.command()
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

    ruleset = load_rules(**source)
    state = load_objects(objects_from)
    report = check_rules(ruleset, state, node_name(objects_from, source.get("rules", ())), objects_from.namespace)
    diags = _decoded_diagnostics(ruleset)
    _print_result(output, lambda: check_json(report, diags), lambda: render_check_text(report), diags)
    if fails(report, fail_on):
        sys.exit(EXIT_FINDINGS)


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI, mapping svcinspect errors to one line + exit code."""
    # A short-lived process building ~10^5 objects: the cyclic GC only costs time.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        _run(argv)
    finally:
        if gc_was_enabled:
            gc.enable()


def _run(argv: list[str] | None) -> None:
    try:
        cli.main(args=argv, prog_name="svcinspect", standalone_mode=False)
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
        click.echo(f"svcinspect: error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except BrokenPipeError:
        sys.stderr.close()
        sys.exit(0)
    except KeyboardInterrupt:
        click.echo("svcinspect: interrupted", err=True)
        sys.exit(130)
    except Exception as exc:  # a bug: still one line, unless --debug
        if _State.debug:
            raise
        click.echo(f"svcinspect: internal error: {type(exc).__name__}: {exc} (run with --debug for a traceback)",
                   err=True)
        sys.exit(70)
    else:
        sys.exit(0)
