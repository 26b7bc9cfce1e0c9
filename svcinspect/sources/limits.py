"""Bounds on what svcinspect reads: input size, subprocess time and output.

svcinspect runs as root on production nodes and reads text that anyone who can
create a chain, a comment or a Service controls, so no input may make it read
without end or wait forever:

- a file, stdin or a FIFO is read up to ``max_input_size`` bytes (default
  256 MiB; ``--max-input-size``), beyond that it is refused (exit 2);
  character and block devices, sockets and directories are refused (exit 2);
- a subprocess (``iptables-save``, ``nsenter``, Graphviz's ``dot``) must finish
  within ``command_timeout`` seconds (default 60; ``--command-timeout``) and
  print at most ``max_input_size`` bytes, else it is killed (exit 3).

The CLI sets the limits once per run (:func:`configure`); everything else
reads them from :data:`LIMITS`.
"""

from __future__ import annotations

import contextvars
import math
import os
import re
import signal
import stat
import subprocess
import sys
import threading
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass

from svcinspect.errors import EnvironmentProblem, InputError
from svcinspect.sources import prestart

MiB = 1 << 20
DEFAULT_MAX_INPUT_SIZE = 256 * MiB
DEFAULT_COMMAND_TIMEOUT = 60.0
_STDERR_KEPT = 64 * 1024   # a subprocess's stderr beyond this is dropped, not kept
_CHUNK = 1 << 16


@dataclass
class Limits:
    max_input_size: int = DEFAULT_MAX_INPUT_SIZE
    command_timeout: float = DEFAULT_COMMAND_TIMEOUT


LIMITS = Limits()


def configure(max_input_size: int | None = None, command_timeout: float | None = None) -> None:
    """Set the limits for this process (the CLI does, from its options)."""
    if max_input_size is not None:
        LIMITS.max_input_size = max_input_size
    if command_timeout is not None:
        LIMITS.command_timeout = command_timeout


_SIZE = re.compile(r"\s*([0-9]+)\s*([kKmMgG]?)(i?[bB]?)\s*\Z")


def parse_size(text: str) -> int:
    """``1048576``, ``512K``, ``256M``, ``2G`` (powers of 1024) -> bytes.

    >>> parse_size("256M"), parse_size("1024"), parse_size("2GiB")
    (268435456, 1024, 2147483648)
    """
    m = _SIZE.match(text)
    if not m:
        raise ValueError(f"{text!r} is not a size (bytes, or a number with K, M or G)")
    n = int(m.group(1)) * {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}[m.group(2).lower()]
    if n <= 0:
        raise ValueError(f"{text!r}: the size must be positive")
    return n


def check_timeout(value: float, what: str) -> float:
    """A timeout in seconds: finite and positive (``nan`` and ``inf`` are refused)."""
    if not isinstance(value, (int, float)) or math.isnan(value) or math.isinf(value) or value <= 0:
        raise InputError(f"{what} must be a finite number of seconds greater than 0, not {value!r}")
    return float(value)


def describe_size(n: int) -> str:
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size and n % size == 0:
            return f"{n // size} {unit}"
    return f"{n} bytes"


# --- files and stdin -------------------------------------------------------------

def read_bounded(path: str) -> tuple[str, bytes]:
    """``(name, bytes)`` of ``path`` (``-``: stdin), at most ``max_input_size``
    bytes; devices, sockets and oversized files are refused with one line."""
    limit = LIMITS.max_input_size
    if path == "-":
        stream = sys.stdin
        buffer = getattr(stream, "buffer", None) if stream is not None else None
        if buffer is None or getattr(stream, "closed", False):
            raise InputError("-: stdin is closed, nothing to read; pipe the input in or pass a file")
        try:
            return "<stdin>", _read_stream(buffer, limit, "<stdin>")
        except ValueError:  # "I/O operation on closed file"
            raise InputError("stdin is closed; pipe the input in or pass a file") from None
    # Non-blocking open: a FIFO without a writer would block the open itself;
    # this way it reads end-of-file at once (empty input). Then fstat what was
    # opened (no race between looking and reading).
    try:
        fh = open(path, "rb", buffering=0, opener=lambda p, f: os.open(p, f | os.O_NONBLOCK))
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory, expected a file") from None
    except PermissionError:
        raise EnvironmentProblem(f"{path}: permission denied (run as a user who can read it)") from None
    except OSError as exc:
        raise EnvironmentProblem(f"{path}: cannot read: {exc.strerror or exc}") from None
    with fh:
        mode = os.fstat(fh.fileno()).st_mode
        if stat.S_ISDIR(mode):
            raise InputError(f"{path}: is a directory, expected a file")
        if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISSOCK(mode):
            kind = "character device" if stat.S_ISCHR(mode) else "block device" if stat.S_ISBLK(mode) else "socket"
            raise InputError(f"{path}: is a {kind}, not a file; save the output to a file (or pipe it to --rules -)")
        size = os.fstat(fh.fileno()).st_size
        if stat.S_ISREG(mode) and size > limit:
            raise InputError(f"{path}: {size} bytes is more than --max-input-size ({describe_size(limit)}); "
                             f"raise it if this really is the input")
        os.set_blocking(fh.fileno(), True)
        try:
            data = _read_stream(fh, limit, path, size if stat.S_ISREG(mode) else 0)
        except OSError as exc:
            raise EnvironmentProblem(f"{path}: cannot read: {exc.strerror or exc}") from None
    if not data and stat.S_ISFIFO(mode):
        raise InputError(f"{path}: a FIFO with no writer, nothing to read; start the writer first or pass a file")
    return path, data


def _read_stream(fh, limit: int, name: str, expected: int = 0) -> bytes:
    chunks: list[bytes] = []
    total = 0
    read = getattr(fh, "read1", None) or fh.read
    # A regular file's size is known: read it in one go (plus one byte, to see
    # whether it grew past the limit meanwhile).
    size = min(max(expected + 1, _CHUNK), limit + 1)
    while True:
        chunk = read(size)
        if not chunk:
            break
        total += len(chunk)
        if total > limit:
            raise InputError(f"{name}: more than --max-input-size ({describe_size(limit)}) to read; "
                             f"raise it if this really is the input")
        chunks.append(chunk)
    return b"".join(chunks)


# --- subprocesses ----------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Completed:
    returncode: int
    stdout: bytes
    stderr: bytes


def run_bounded(argv: list[str], *, input: bytes | None = None, timeout: float | None = None,
                limit: int | None = None) -> Completed:
    """Run ``argv`` to completion within ``timeout`` seconds, keeping at most
    ``limit`` bytes of its stdout; kills its process group and raises
    :class:`EnvironmentProblem` when either is exceeded. ``FileNotFoundError``
    and ``PermissionError`` from starting it propagate as from ``subprocess``."""
    timeout = LIMITS.command_timeout if timeout is None else timeout
    limit = LIMITS.max_input_size if limit is None else limit
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    out: list[bytes] = []
    err: list[bytes] = []
    too_much = threading.Event()

    def kill() -> None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except OSError:
            pass

    def pump(stream, into: list[bytes], cap: int, hard: bool) -> None:
        total = 0
        while True:
            chunk = stream.read1(_CHUNK)
            if not chunk:
                break
            total += len(chunk)
            if total > cap:
                if hard:
                    too_much.set()
                    kill()
                    break
                continue  # stderr: keep the start, drop the rest
            into.append(chunk)

    def feed() -> None:
        try:
            proc.stdin.write(input)
            proc.stdin.close()
        except OSError:
            pass

    threads = [threading.Thread(target=pump, args=(proc.stdout, out, limit, True), daemon=True),
               threading.Thread(target=pump, args=(proc.stderr, err, _STDERR_KEPT, False), daemon=True)]
    if input is not None:
        threads.append(threading.Thread(target=feed, daemon=True))
    for t in threads:
        t.start()
    name = os.path.basename(argv[0])
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill()
        proc.wait()
        raise EnvironmentProblem(f"{name} did not finish within {timeout:g} s and was stopped "
                                 f"(--command-timeout)") from None
    finally:
        for t in threads:
            t.join(timeout=5)
        for stream in (proc.stdout, proc.stderr):
            stream.close()
    if too_much.is_set():
        raise EnvironmentProblem(f"{name} printed more than --max-input-size ({describe_size(limit)}) and was "
                                 f"stopped")
    return Completed(proc.returncode, b"".join(out), b"".join(err))


# --- several subprocesses read as they print ------------------------------------------

# What the calling thread may do once while the commands print and it has
# nothing to read yet (see while_waiting).
_WHILE_WAITING: contextvars.ContextVar = contextvars.ContextVar("svcinspect_while_waiting", default=None)


@contextmanager
def while_waiting(work: Callable[[], object]):
    """Within this block, the first :func:`run_streamed` that streams output to
    sinks calls ``work()`` once, in the calling thread, the first time it has
    nothing to hand to a sink (a save command spends its first second loading
    the kernel's tables before it prints them). For work that would otherwise be done later on the same
    thread, such as the imports the analysis makes on first use. An error in it
    is left for the later use to raise where it belongs."""
    token = _WHILE_WAITING.set(work)
    try:
        yield
    finally:
        _WHILE_WAITING.reset(token)


_READ = 1 << 20
_BACKLOG = 16 << 20        # read ahead of the sinks at most this much (then the commands wait)


class Started:
    """What :func:`run_streamed` could not start: ``error`` is the ``OSError``
    (``FileNotFoundError``, ``PermissionError``) that ``subprocess`` raised."""

    __slots__ = ("error",)

    def __init__(self, error: OSError):
        self.error = error


def run_streamed(argvs: list[list[str]], sinks: list, readers: list | None = None) -> list[Completed | Started]:
    """Run every ``argv`` at once and hand each one's stdout, as it comes, to its
    sink (``sinks[i](bytes)``; None keeps the output in ``Completed.stdout``).
    ``readers[i]`` (optional): what the helper thread reads command i's stdout
    with instead of ``os.read``: ``.read(fd, size)`` with ``os.read``'s
    contract (the compiled RawScan, which scans what it reads without the GIL).

    The same bounds as :func:`run_bounded`, for all of them together: they must
    all finish within ``command_timeout`` seconds and each may print at most
    ``max_input_size`` bytes, else every one still running is killed (its
    process group) and :class:`EnvironmentProblem` says which.

    The sinks run in this thread, in order, while the commands print on. The
    pipes are drained by one helper thread (:class:`_Drain`: ``select`` and
    ``read``, both without the GIL) into a queue, so a command never waits for
    the sinks: a pipe holds at most 1 MiB (``F_SETPIPE_SZ``; more needs
    CAP_SYS_RESOURCE), which ``iptables-save`` prints in ~20 ms, and a sink's
    work on one piece often takes longer. The helper reads at most 16 MiB
    ahead of the sinks (``_BACKLOG``; then the commands wait, as they would
    for a full pipe), so memory stays bounded when the sinks are slower.

    A command the console entry point started already for this read
    (:mod:`~svcinspect.sources.prestart`, the same argv) is taken over
    instead of started again; the time bound counts from this call.
    """
    import queue
    import time

    timeout, limit = LIMITS.command_timeout, LIMITS.max_input_size
    deadline = time.monotonic() + timeout
    procs: list[subprocess.Popen | Started] = []
    drain: _Drain | None = None
    try:
        for argv in argvs:
            try:  # (started already when the console entry point saw this read coming: prestart)
                proc = prestart.take(argv) or prestart.spawn(argv)
            except (FileNotFoundError, PermissionError) as exc:
                procs.append(Started(exc))
                continue
            procs.append(proc)
        outs: list[list[bytes]] = [[] for _ in argvs]
        errs: list[list[bytes]] = [[] for _ in argvs]
        drain = _Drain(procs, limit, readers)
        drain.start()
        got = drain.got
        # (only where output is streamed to sinks: the saves, not a short command
        # such as the nft listing before them, which this would hold up)
        idle = _WHILE_WAITING.get() if any(sink is not None for sink in sinks) else None
        if idle is not None:
            _WHILE_WAITING.set(None)  # (once per block; its exit restores the value)
        while True:
            if idle is not None and got.empty():
                work, idle = idle, None
                try:
                    work()
                except Exception:  # (see while_waiting)
                    pass
            left = deadline - time.monotonic()
            if left <= 0:
                _timed_out(argvs, procs, timeout)
            try:
                item = got.get(timeout=left)
            except queue.Empty:
                _timed_out(argvs, procs, timeout)
            if item is None:
                break
            i, is_out, chunk = item
            if not is_out:
                errs[i].append(chunk)
                continue
            drain.took(len(chunk))
            if sinks[i] is None:
                outs[i].append(chunk)
            else:
                sinks[i](chunk)
        if drain.failed is not None:
            raise drain.failed
        if drain.too_much is not None:
            _kill_all(procs)
            raise EnvironmentProblem(f"{os.path.basename(argvs[drain.too_much][0])} printed more than "
                                     f"--max-input-size ({describe_size(limit)}) and was stopped")
        done: list[Completed | Started] = []
        for i, proc in enumerate(procs):  # every pipe is closed: they have exited, or are about to
            if isinstance(proc, Started):
                done.append(proc)
                continue
            try:
                proc.wait(timeout=max(deadline - time.monotonic(), 0.001))
            except subprocess.TimeoutExpired:
                _timed_out(argvs, procs, timeout)
            done.append(Completed(proc.returncode, b"".join(outs[i]), b"".join(errs[i])))
        return done
    except BaseException:
        _kill_all(procs)  # a sink's error, ^C: nothing is left running
        raise
    finally:
        if drain is not None:
            drain.stop()
        for proc in procs:
            if isinstance(proc, subprocess.Popen):
                for stream in (proc.stdout, proc.stderr):
                    stream.close()


class _Drain(threading.Thread):
    """Reads every command's stdout and stderr as they print, into ``got``:
    ``(index, is stdout, bytes)`` items, then None once every pipe is at its end
    (or a command printed more than ``limit``: ``too_much`` is its index, and
    the rest is not read)."""

    def __init__(self, procs: list, limit: int, readers: list | None = None) -> None:
        import queue

        super().__init__(name="svcinspect-drain", daemon=True)
        self.procs, self.limit = procs, limit
        self.readers = readers if readers is not None else [None] * len(procs)
        self.got: queue.SimpleQueue = queue.SimpleQueue()
        self.too_much: int | None = None
        self.failed: BaseException | None = None
        self._halt = threading.Event()
        self.backlog = 0  # stdout bytes read and not yet taken (taken: took())
        self._room = threading.Condition()

    def took(self, size: int) -> None:
        """The caller took ``size`` bytes of stdout off the queue."""
        with self._room:
            self.backlog -= size
            self._room.notify()

    def run(self) -> None:
        import selectors

        got, limit = self.got, self.limit
        try:
            sizes = [0] * len(self.procs)
            err_sizes = [0] * len(self.procs)
            with selectors.DefaultSelector() as sel:
                for i, proc in enumerate(self.procs):
                    if isinstance(proc, subprocess.Popen):
                        sel.register(proc.stdout, selectors.EVENT_READ, (i, True))
                        sel.register(proc.stderr, selectors.EVENT_READ, (i, False))
                while sel.get_map() and not self._halt.is_set():
                    for key, _ in sel.select(0.5):
                        i, is_out = key.data
                        reader = self.readers[i] if is_out else None
                        chunk = reader.read(key.fd, _READ) if reader is not None else \
                            os.read(key.fd, _READ if is_out else _CHUNK)
                        if not chunk:
                            sel.unregister(key.fileobj)
                            continue
                        if not is_out:
                            if err_sizes[i] < _STDERR_KEPT:
                                got.put((i, False, chunk[:_STDERR_KEPT - err_sizes[i]]))
                            err_sizes[i] += len(chunk)
                            continue
                        sizes[i] += len(chunk)
                        if sizes[i] > limit:
                            self.too_much = i
                            return
                        with self._room:  # at most _BACKLOG bytes the sinks have not taken
                            while self.backlog > _BACKLOG and not self._halt.is_set():
                                self._room.wait(0.5)
                            self.backlog += len(chunk)
                        got.put((i, True, chunk))
        except BaseException as exc:  # (a closed pipe after stop(): nobody waits for the answer)
            self.failed = exc
        finally:
            got.put(None)

    def stop(self) -> None:
        """Stop reading (the commands have been killed or have ended) and wait for it."""
        self._halt.set()
        with self._room:
            self._room.notify()
        self.join(timeout=5)


def _kill_all(procs: list) -> None:
    for proc in procs:
        if isinstance(proc, subprocess.Popen) and proc.poll() is None:
            prestart.kill_group(proc)


def _timed_out(argvs: list[list[str]], procs: list, timeout: float):
    running = [i for i, p in enumerate(procs) if isinstance(p, subprocess.Popen) and p.poll() is None]
    _kill_all(procs)
    name = os.path.basename(argvs[running[0] if running else 0][0])
    raise EnvironmentProblem(f"{name} did not finish within {timeout:g} s and was stopped (--command-timeout)")
