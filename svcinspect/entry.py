"""The console entry points (``svcinspect``, ``kubectl-svcinspect``, ``python -m
svcinspect``), kept to the standard library until the command line is read: a
live read's commands start first (:mod:`svcinspect.sources.prestart`), then
the CLI loads and runs (:func:`svcinspect.cli.console`)."""

import sys


def console() -> None:
    _run("console")


def kubectl_console() -> None:
    _run("kubectl_console")


def _run(entry: str) -> None:
    from svcinspect.sources import prestart

    prestart.start_for(sys.argv[1:])
    import svcinspect.cli

    getattr(svcinspect.cli, entry)()
