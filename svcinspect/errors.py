"""The exception hierarchy and the Diagnostic record.

Every error a user can cause or meet carries an exit code; the CLI turns it into
one line on stderr and that code (``--debug`` shows the traceback):

====  ==========================================================================
0     success (``check``: no finding at or above ``--fail-on``)
1     ``check`` found problems at or above ``--fail-on``
2     bad input or usage: unreadable dump, not a dump, unknown service, bad flag
3     environment: missing privilege, binary, library, namespace, API trouble
====  ==========================================================================
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

EXIT_OK = 0
EXIT_FINDINGS = 1
EXIT_INPUT = 2
EXIT_ENVIRONMENT = 3


class Severity(enum.IntEnum):
    INFO = 0
    WARNING = 1
    ERROR = 2

    def __str__(self) -> str:
        return self.name.lower()


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """Something the parser or an analysis noticed about the input.

    ``source`` and ``line`` point at the input line (line 0: no single line).
    """

    severity: Severity
    message: str
    source: str = ""
    line: int = 0
    text: str = ""

    def location(self) -> str:
        if self.source and self.line:
            return f"{self.source}:{self.line}"
        return self.source or "<input>"

    def __str__(self) -> str:
        quoted = f": {self.text.strip()[:160]}" if self.text else ""
        return f"{self.location()}: {self.severity}: {self.message}{quoted}"


class SvcinspectError(Exception):
    """Base of every error svcinspect raises on purpose."""

    exit_code = EXIT_INPUT


class InputError(SvcinspectError):
    """The input (a dump, objects, an argument) is wrong. Exit 2."""

    exit_code = EXIT_INPUT


class ParseError(InputError):
    """A dump could not be read; carries the location when there is one."""

    def __init__(self, message: str, source: str = "", line: int = 0):
        self.source = source
        self.line = line
        where = f"{source}:{line}: " if source and line else (f"{source}: " if source else "")
        super().__init__(where + message)


class NotADumpError(ParseError):
    """The input is something else (``iptables -L``, a diff, nft, binary)."""


class UnknownServiceError(InputError):
    """The service asked for is not in the rules (or objects)."""


class EnvironmentProblem(SvcinspectError):
    """The machine is missing something: privilege, binary, library, API. Exit 3."""

    exit_code = EXIT_ENVIRONMENT
