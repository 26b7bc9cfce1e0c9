"""Start a live read's commands before the CLI has loaded.

Reading the live node starts with ``nft list table ip kube-proxy`` (and
``ip6``) and then ``iptables-{nft,legacy}-save`` and the ``ip6tables`` ones,
all read-only. ``iptables-legacy-save`` spends most of its run in the kernel
and in libiptc before it prints the nat table (about 1 s of 1.7 s at 10000
services); importing svcinspect's CLI and analysis takes ~0.1 s before the
first of those commands would start. So the console entry point
(``svcinspect.entry``) looks at the command line before anything else is
imported: for a command that reads the live rules (``services``, ``check``,
``dump``, ``graph``, ``trace``, ``packet``, ``explain``, ``report``, without
``--rules``) it starts exactly the commands that read will run, built by the
functions below, which the read itself uses to build them. The read then
takes each one over (:func:`take`, in ``limits.run_streamed``) instead of
starting it again; everything after that is unchanged (the same pipes, the
same bounds on time and size, the same handling of its output and status).
The commands start earlier, nothing else about them differs: they would run
anyway, in the same order relative to each other's output, and read only.

A command started here that the read does not take (the command line was not
what this module took it for, or the command stopped before its read: a
usage error, no privilege) is killed and reaped when the read's commands have
run (:func:`discard`, from ``command.run_saves``) or at exit. Anything this
module cannot read for certain on the command line (``--help``, ``--``, an
unknown option before the command, a value it does not know) starts nothing.
``SVCINSPECT_NO_PRESTART=1`` turns it off.

Only the standard library here: it runs before the rest of svcinspect loads.
"""

from __future__ import annotations

import os
import subprocess

BACKENDS = ("nft", "legacy")  # (on a tie kube-proxy's wrapper picks nft; the read's order)
NFT_FAMILY = {4: "ip", 6: "ip6"}
NETNS_RUN_DIR = "/run/netns"
PIPE_SIZE = 1 << 20   # asked for each stdout pipe: the command prints on while it is parsed
F_SETPIPE_SZ = 1031

# The commands that read the live rules with the default reader when no --rules is given.
LIVE_COMMANDS = frozenset({"services", "check", "dump", "graph", "trace", "packet", "explain", "report"})
_GROUP_FLAGS = frozenset({"--debug", "-v", "--verbose"})
_GROUP_VALUED = frozenset({"--max-input-size", "--command-timeout"})
_STOP = frozenset({"--rules", "--help", "-h", "--", "--version"})
_CHOICES = {"--reader": ("auto", "save", "iptc"), "--family": ("4", "6", "both")}

_started: dict[tuple[str, ...], subprocess.Popen] = {}
_cleanup_registered = False


def netns_path(spec: str) -> str:
    """``--netns`` as a path: an ``ip netns`` name is ``/run/netns/NAME``; a path is itself."""
    return spec if "/" in spec else os.path.join(NETNS_RUN_DIR, spec)


def in_netns(path: str | None, argv: list[str]) -> list[str]:
    """``argv`` run inside the network namespace at ``path`` (unchanged for None)."""
    return argv if path is None else ["nsenter", f"--net={path}", "--", *argv]


def save_name(backend: str, family: int) -> str:
    return ("iptables" if family == 4 else "ip6tables") + f"-{backend}-save"


def save_argvs(backends, families, path: str | None, counters: bool = False) -> list[list[str]]:
    """The save commands of a live read, in its order (backend, then family)."""
    return [in_netns(path, [save_name(b, int(f))] + (["-c"] if counters else [])) for b in backends for f in families]


def nft_argvs(families, path: str | None) -> list[list[str]]:
    """The ``nft list table FAMILY kube-proxy`` commands of a live read."""
    return [in_netns(path, ["nft", "list", "table", NFT_FAMILY[int(f)], "kube-proxy"]) for f in families]


def plan(args: list[str]) -> list[list[str]]:
    """The commands a live read of this command line (``sys.argv[1:]``) runs,
    in order; [] when it reads no live rules or this cannot tell for certain."""
    i = 0
    while i < len(args) and args[i].startswith("-"):
        name, eq, _ = args[i].partition("=")
        if args[i] in _GROUP_FLAGS or (name in _GROUP_VALUED and eq):
            i += 1
        elif args[i] in _GROUP_VALUED:
            i += 2
        else:
            return []
    if i >= len(args) or args[i] not in LIVE_COMMANDS:
        return []
    given = {"--netns": None, "--reader": "auto", "--family": "both"}
    rest = args[i + 1:]
    j = 0
    while j < len(rest):
        name, eq, value = rest[j].partition("=")
        if name in _STOP or rest[j] in _STOP:
            return []
        if name in given:
            if not eq:
                if j + 1 >= len(rest):
                    return []
                j += 1
                value = rest[j]
            if name in _CHOICES and value not in _CHOICES[name]:
                return []
            given[name] = value
        j += 1
    spec = given["--netns"]
    path = None
    if spec is not None:
        path = netns_path(spec)
        if not spec or not os.path.exists(path):
            return []  # (the read stops at the namespace: nothing to start)
    families = (4, 6) if given["--family"] == "both" else (int(given["--family"]),)
    backends = ("nft",) if given["--reader"] == "iptc" else BACKENDS
    return nft_argvs(families, path) + save_argvs(backends, families, path)


def spawn(argv: list[str]) -> subprocess.Popen:
    """Start one command of a live read (``limits.run_streamed``'s way: no
    stdin, stdout and stderr piped, a session of its own, a 1 MiB stdout pipe
    where the kernel allows it). ``OSError`` as ``subprocess.Popen`` raises it."""
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        import fcntl
        fcntl.fcntl(proc.stdout.fileno(), F_SETPIPE_SZ, PIPE_SIZE)
    except OSError:
        pass
    return proc


def start(argvs: list[list[str]]) -> None:
    """Start ``argvs`` now, for :func:`take`. One that cannot start is left
    for the read to start (and to report) as it would have."""
    global _cleanup_registered
    for argv in argvs:
        key = tuple(argv)
        if key in _started:
            continue
        try:
            _started[key] = spawn(argv)
        except OSError:
            continue
    if _started and not _cleanup_registered:
        import atexit
        atexit.register(discard)
        _cleanup_registered = True


def start_for(args: list[str]) -> None:
    """The console entry point's call: start what the command line's live read will run."""
    if os.environ.get("SVCINSPECT_NO_PRESTART") == "1":
        return
    start(plan(args))


def take(argv: list[str]) -> subprocess.Popen | None:
    """The command started for ``argv`` (the same list), handed over once; None if none was."""
    return _started.pop(tuple(argv), None) if _started else None


def kill_group(proc: subprocess.Popen) -> None:
    """Kill the process group of a command started in a session of its own
    (:func:`spawn`) and reap it (``limits`` stops its commands this way too)."""
    import signal

    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except OSError:  # (it ended already)
        pass
    proc.wait()


def discard() -> None:
    """Kill and reap every started command nobody took."""
    while _started:
        _, proc = _started.popitem()
        kill_group(proc)
        for pipe in (proc.stdout, proc.stderr):
            pipe.close()
