"""Read conntrack entries: a saved ``conntrack -L`` listing, or the live node's.

Live reading runs ``conntrack -L -f ipv4`` and ``-f ipv6`` (conntrack-tools;
through ``nsenter --net=PATH`` for ``--netns``) with a timeout: a node with a
million flows must not hang the caller. It needs CAP_NET_ADMIN, as
``iptables-save`` does (both talk nfnetlink).
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence

from svcinspect.errors import Diagnostic, EnvironmentProblem
from svcinspect.model.conntrack import ConntrackEntry
from svcinspect.model.netfilter import Family
from svcinspect.parse.conntrack import parse_conntrack
from svcinspect.sources.files import read_text
from svcinspect.sources.netns import nsenter_argv, resolve_netns

INSTALL = "install conntrack-tools (apt-get install conntrack)"


def load_conntrack_file(path: str, strict: bool = False) -> tuple[list[ConntrackEntry], list[Diagnostic]]:
    """Entries of a saved listing (``-`` for stdin)."""
    src = read_text(path)
    return parse_conntrack(src.text, src.name, strict)


def read_live_conntrack(families: Sequence[Family] = (Family.V4, Family.V6), netns: str | None = None,
                        timeout: float = 20.0) -> tuple[list[ConntrackEntry], list[Diagnostic]]:
    """The node's (or ``netns``'s) conntrack table; EnvironmentProblem (exit 3)
    for a missing binary, privilege, or a listing slower than ``timeout``."""
    ref = resolve_netns(netns) if netns else None
    entries: list[ConntrackEntry] = []
    diags: list[Diagnostic] = []
    for fam in families:
        name = "ipv4" if fam is Family.V4 else "ipv6"
        argv = nsenter_argv(ref, ["conntrack", "-L", "-f", name])
        try:
            proc = subprocess.run(argv, capture_output=True, stdin=subprocess.DEVNULL, timeout=timeout)
        except FileNotFoundError:
            raise EnvironmentProblem(f"{argv[0]} not found: {INSTALL}") from None
        except subprocess.TimeoutExpired:
            raise EnvironmentProblem(f"conntrack -L -f {name} took longer than {timeout:g} s; "
                                     "save a listing with `conntrack -L > FILE` and pass --conntrack FILE") from None
        err = proc.stderr.decode("utf-8", "replace")
        if proc.returncode != 0:
            first = next((ln.strip() for ln in err.splitlines() if ln.strip()), f"exit status {proc.returncode}")
            if "No such file" in err and "conntrack" in err and argv[0] == "nsenter":
                raise EnvironmentProblem(f"conntrack not found: {INSTALL}")
            if "ermission denied" in err or "Operation not permitted" in err:
                raise EnvironmentProblem("conntrack -L: permission denied (run as root, or with CAP_NET_ADMIN)")
            raise EnvironmentProblem(f"conntrack -L -f {name} failed: {first}")
        got, d = parse_conntrack(proc.stdout.decode("utf-8", "replace"), f"conntrack -L -f {name}")
        entries.extend(got)
        diags.extend(d)
    return entries, diags
