"""Read dumps and object files from disk or stdin. I/O lives here, not in parse/."""

from __future__ import annotations

import sys
from dataclasses import dataclass

from svcinspect.errors import EnvironmentProblem, InputError, NotADumpError


@dataclass(frozen=True, slots=True)
class TextSource:
    name: str
    text: str


def read_text(path: str) -> TextSource:
    """Read ``path`` (``-`` for stdin) as text; one-line errors for what goes wrong."""
    try:
        if path == "-":
            data = sys.stdin.buffer.read()
            name = "<stdin>"
        else:
            with open(path, "rb") as fh:
                data = fh.read()
            name = path
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory, expected a file") from None
    except PermissionError:
        raise EnvironmentProblem(f"{path}: permission denied (run as a user who can read it)") from None
    except OSError as exc:
        raise EnvironmentProblem(f"{path}: cannot read: {exc.strerror or exc}") from None
    if b"\x00" in data[:4096]:
        raise NotADumpError("binary data, not text; pass the output of `iptables-save` (or the objects as JSON/YAML)", name)
    return TextSource(name, data.decode("utf-8", errors="replace"))
