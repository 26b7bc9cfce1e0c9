"""Run Graphviz's ``dot`` to turn DOT text into SVG or PNG (a subprocess: I/O)."""

from __future__ import annotations

import shutil

from svcinspect.errors import EnvironmentProblem
from svcinspect.sources.limits import LIMITS, run_bounded


def render_with_dot(dot_text: str, fmt: str) -> bytes:
    """DOT text -> the bytes of ``fmt`` (``svg`` or ``png``) drawn by ``dot``."""
    exe = shutil.which("dot")
    if exe is None:
        raise EnvironmentProblem(f"cannot draw {fmt}: Graphviz's `dot` is not installed "
                                 "(apt-get install graphviz); -o dot or -o json work without it")
    # Drawing a whole large dump can legitimately take minutes: ten times the
    # command timeout (600 s by default), still a bound.
    proc = run_bounded([exe, f"-T{fmt}"], input=dot_text.encode(), timeout=10 * LIMITS.command_timeout)
    if proc.returncode != 0:
        first = (proc.stderr.decode(errors="replace").strip().splitlines() or ["no message"])[0]
        raise EnvironmentProblem(f"Graphviz `dot -T{fmt}` failed (exit {proc.returncode}): {first}")
    return proc.stdout
