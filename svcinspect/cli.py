"""The command line: a thin click layer over the library.

Each command builds its sources from options, calls one library function and
renders the result. Errors become one line on stderr and an exit code (see
``svcinspect.errors``); ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import functools
import gc
import sys
import traceback
from collections.abc import Callable
from typing import Any

import click

from svcinspect import __version__
from svcinspect.errors import EXIT_INPUT, Diagnostic, InputError, SvcinspectError
from svcinspect.model.netfilter import Family, Ruleset
from svcinspect.parse.iptables_save import parse_dumps
from svcinspect.render import json as render_json
from svcinspect.render import text as render_text
from svcinspect.render.iptables import render_ruleset
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


def _emit_diagnostics(diags: list[Diagnostic]) -> None:
    text = render_text.render_diagnostics(list(diags), verbose=_State.verbose)
    if text:
        click.echo(text, err=True)


def rules_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Options every rules-reading command shares."""

    @click.option("--rules", "rules", multiple=True, metavar="PATH",
                  help="iptables-save / ip6tables-save output to analyse (repeatable; - for stdin).")
    @click.option("--strict", is_flag=True, help="Treat any diagnostic about the input as an error (exit 2).")
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return func(*args, **kwargs)

    return wrapper


def load_rules(rules: tuple[str, ...], strict: bool) -> Ruleset:
    """Build the ruleset from the rules options."""
    if not rules:
        raise InputError("no rules to read: pass --rules FILE (the output of iptables-save; - for stdin)")
    return parse_dumps([read_text(p) for p in rules], strict=strict)


def output_option(*choices: str, default: str) -> Callable[..., Any]:
    return click.option("-o", "--output", type=click.Choice(choices), default=default, show_default=True,
                        help="Output format.")


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
@click.option("--family", type=click.Choice(["4", "6", "both"]), default="both", show_default=True,
              help="Which address family to print.")
@click.option("--counters/--no-counters", default=True, show_default=True, help="Keep packet/byte counters.")
def dump(rules: tuple[str, ...], strict: bool, family: str, counters: bool) -> None:
    """Print what was read as canonical iptables-save text (restorable)."""
    ruleset = load_rules(rules, strict)
    fam = None if family == "both" else Family(int(family))
    click.echo(render_ruleset(ruleset, counters=counters, family=fam), nl=False)
    _emit_diagnostics(_all_diagnostics(ruleset))


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
        built = getattr(t.chains, "_built", None)
        chains = built.values() if built is not None else t.chains.values()
        for ch in chains:
            if ch.rules.decoded:
                for r in ch.rules:
                    out.extend(r.diagnostics)
    return out


@cli.command()
@rules_options
@output_option("table", "json", default="table")
def services(rules: tuple[str, ...], strict: bool, output: str) -> None:
    """List every service port the rules implement: addresses, ports, endpoints
    with their exact share, affinity, and the chains behind them."""
    from svcinspect.services import build_service_ports

    ruleset = load_rules(rules, strict)
    ports = build_service_ports(ruleset)
    diags = _decoded_diagnostics(ruleset)
    if output == "json":
        click.echo(render_json.dumps(render_json.services_json(ports, diags)), nl=False)
    else:
        click.echo(render_text.render_services(ports), nl=False)
    _emit_diagnostics(diags)


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
