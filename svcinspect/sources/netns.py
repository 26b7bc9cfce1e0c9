"""Network namespaces: name them, check them, and run code inside one.

``--netns`` accepts an ``ip netns`` name (``/run/netns/NAME``), ``/proc/PID/ns/net``
or any path where a network namespace is bind-mounted. The calling process never
changes namespace: subprocesses go through ``nsenter --net=PATH`` and in-process
readers run in a forked child that calls ``setns(2)`` (Python 3.11 has no
``os.setns``).
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from svcinspect.errors import EnvironmentProblem, SvcinspectError
from svcinspect.sources.prestart import NETNS_RUN_DIR, in_netns, netns_path

CLONE_NEWNET = 0x40000000
NS_GET_NSTYPE = 0xB703  # ioctl on an nsfs file: which kind of namespace (Linux 4.11+)
_NS_KINDS = {CLONE_NEWNET: "net", 0x00020000: "mount", 0x04000000: "uts", 0x08000000: "ipc",
             0x10000000: "user", 0x20000000: "pid", 0x02000000: "cgroup", 0x00000080: "time"}


@dataclass(frozen=True, slots=True)
class NetnsRef:
    """A network namespace to read: what the user typed and the path to open."""

    name: str
    path: str

    @property
    def label(self) -> str:
        """For source names: ``@netns:NAME``."""
        return f"@netns:{self.name}"


def resolve_netns(spec: str) -> NetnsRef:
    """``NAME`` -> ``/run/netns/NAME``; a path is taken as it is. Checks that it
    exists and is a network namespace; raises :class:`EnvironmentProblem` if not.
    """
    path = netns_path(spec)
    if not os.path.exists(path):
        if "/" in spec:
            raise EnvironmentProblem(f"unknown network namespace {spec}: no such file "
                                     "(give an `ip netns` name, /proc/PID/ns/net or a bind-mounted namespace)")
        raise EnvironmentProblem(f"unknown network namespace {spec}: no {path} "
                                 "(see `ip netns list`, or give /proc/PID/ns/net)")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except PermissionError:
        raise EnvironmentProblem(f"cannot open network namespace {spec}: permission denied (run as root)") from None
    except OSError as exc:
        raise EnvironmentProblem(f"cannot open network namespace {spec}: {exc.strerror}") from None
    try:
        kind = _ns_kind(fd)
    finally:
        os.close(fd)
    if kind is not None and kind != "net":
        raise EnvironmentProblem(f"{spec} is a {kind} namespace, not a network namespace "
                                 "(for a process use /proc/PID/ns/net)")
    if kind is None:
        raise EnvironmentProblem(f"{spec} is not a network namespace "
                                 "(give an `ip netns` name, /proc/PID/ns/net or a bind-mounted namespace)")
    return NetnsRef(spec, path)


def _ns_kind(fd: int) -> str | None:
    """``net``, ``mnt``... for a namespace file descriptor, None for an ordinary file."""
    try:
        kind = fcntl.ioctl(fd, NS_GET_NSTYPE)
    except OSError:  # ENOTTY: not an nsfs file
        return None
    return _NS_KINDS.get(kind, "other")


def nsenter_argv(ref: NetnsRef | None, argv: list[str]) -> list[str]:
    """Prefix ``argv`` so that it runs in ``ref`` (unchanged when ``ref`` is None)."""
    return in_netns(ref.path if ref is not None else None, argv)


def _setns(path: str) -> None:
    import ctypes  # (here, not at the top: the live saves start before it would load; ~13 ms with pickle)
    import ctypes.util

    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            hint = " (needs CAP_SYS_ADMIN: run as root)" if err == 1 else ""
            raise EnvironmentProblem(f"cannot enter network namespace {path}: {os.strerror(err)}{hint}")
    finally:
        os.close(fd)


def call_in_netns(ref: NetnsRef | None, func: Callable[[], Any]) -> Any:
    """Run ``func()`` in a forked child (inside ``ref`` when given) and return its
    result, which must pickle. A :class:`SvcinspectError` raised by ``func`` is
    raised here; other exceptions come back as :class:`EnvironmentProblem`.

    The child keeps C libraries' global state (and any namespace switch) away
    from the caller; the caller's namespace never changes.
    """
    import pickle

    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never return into the caller's code
        status = 0
        try:
            os.close(rfd)
            try:
                if ref is not None:
                    _setns(ref.path)
                payload = pickle.dumps(("ok", func()), protocol=pickle.HIGHEST_PROTOCOL)
            except SvcinspectError as exc:
                payload = pickle.dumps(("error", exc))
            except BaseException as exc:  # noqa: BLE001 - reported to the parent
                payload = pickle.dumps(("error", EnvironmentProblem(f"{type(exc).__name__}: {exc}")))
            with os.fdopen(wfd, "wb") as out:
                out.write(payload)
        except BaseException:  # noqa: BLE001
            status = 1
        finally:
            os._exit(status)
    os.close(wfd)
    with os.fdopen(rfd, "rb") as inp:
        data = inp.read()
    _, wait_status = os.waitpid(pid, 0)
    if not data:
        code = os.waitstatus_to_exitcode(wait_status)
        how = f"killed by signal {-code}" if code < 0 else f"exit status {code}"
        raise EnvironmentProblem(f"the reader process died ({how}) before answering; try --reader save")
    kind, value = pickle.loads(data)
    if kind == "error":
        raise value
    return value
