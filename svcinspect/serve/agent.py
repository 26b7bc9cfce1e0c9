"""The exporter's loop, HTTP server and textfile writer.

Every ``interval`` seconds the agent runs one cycle: read the rules (stage
``rules``), the objects (``objects``), the conntrack flows (``conntrack``), then
build the snapshot (``analysis``). A stage that raises keeps the last good
snapshot in place, bumps ``svcinspect_read_errors_total{stage}`` and logs one
line; nothing a read does can stop the loop or the server.

``/metrics`` serves the Prometheus text format; ``/healthz`` answers 200 while the
loop is alive (its last cycle, good or bad, ended less than
``max(3 * interval, 60)`` s ago) and 503 otherwise, so a liveness probe restarts a
wedged agent but not one whose reads fail (those show in the metrics).
"""

from __future__ import annotations

import gc
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from svcinspect.errors import EnvironmentProblem, SvcinspectError

try:  # the optional extra svcinspect[agent]
    from prometheus_client import CollectorRegistry, generate_latest
except ImportError:  # pragma: no cover - depends on the installation
    raise EnvironmentProblem("svcinspect serve needs prometheus_client: pip install 'svcinspect[agent]'") from None

from svcinspect.serve.metrics import AgentStatus, SnapshotCollector
from svcinspect.serve.snapshot import Snapshot, build_snapshot

# What generate_latest writes: the classic text format (Prometheus 2.x parses it by this type).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@dataclass
class Readers:
    """Where one cycle's inputs come from (each a callable, so tests inject fakes)."""

    rules: Callable[[], tuple[Any, str]]            # -> (Ruleset, backend name)
    objects: Callable[[], Any]                      # -> ClusterState or None
    conntrack: Callable[[Any], Any]                 # ruleset -> flows or None
    node: str | None = None


class Agent:
    def __init__(self, readers: Readers, interval: float = 30.0, per_endpoint: bool = False,
                 log: Callable[[str], None] | None = None):
        self.readers = readers
        self.interval = interval
        self.status = AgentStatus()
        self.snapshot: Snapshot | None = None
        self.lock = threading.Lock()
        self.last_cycle_end: float | None = None
        self.started = time.time()
        self.log = log or (lambda msg: print(f"svcinspect serve: {msg}", file=sys.stderr, flush=True))
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(SnapshotCollector(self.current, per_endpoint))
        self._stop = threading.Event()

    def current(self) -> tuple[Snapshot | None, AgentStatus]:
        with self.lock:
            return self.snapshot, self.status

    def cycle(self) -> bool:
        """One read; True when it succeeded. Never raises (except KeyboardInterrupt).

        The cyclic GC is off during the read (it only costs time while ~10^6
        objects are built) and one collection runs after it, so a long-running
        agent holds at most one cycle's garbage."""
        was_enabled = gc.isenabled()
        gc.disable()
        try:
            return self._cycle()
        finally:
            _bound_caches()
            gc.collect()
            if was_enabled:
                gc.enable()

    def _cycle(self) -> bool:
        stage = "rules"
        durations: dict[str, float] = {}
        try:
            t = time.perf_counter()
            ruleset, backend = self.readers.rules()
            durations["rules"] = time.perf_counter() - t
            stage = "objects"
            t = time.perf_counter()
            state = self.readers.objects()
            durations["objects"] = time.perf_counter() - t
            stage = "conntrack"
            t = time.perf_counter()
            flows = self.readers.conntrack(ruleset)
            durations["conntrack"] = time.perf_counter() - t
            stage = "analysis"
            t = time.perf_counter()
            snap = build_snapshot(ruleset, state, self.readers.node, flows, backend)
            durations["analysis"] = time.perf_counter() - t
        except Exception as exc:  # noqa: BLE001 - the agent must survive anything a read does
            what = str(exc) if isinstance(exc, SvcinspectError) else f"{type(exc).__name__}: {exc}"
            with self.lock:
                self.status.reads += 1
                self.status.errors[stage] = self.status.errors.get(stage, 0) + 1
                self.status.last_error = f"{stage}: {what}"
                self.last_cycle_end = time.time()
            self.log(f"read failed at stage {stage} (keeping the last good figures): {what}")
            return False
        with self.lock:
            self.status.reads += 1
            self.status.durations = durations
            self.status.last_success = time.time()
            self.snapshot = snap
            self.last_cycle_end = self.status.last_success
        return True

    def exposition(self) -> bytes:
        return generate_latest(self.registry)

    def healthy(self) -> tuple[bool, str]:
        limit = max(3 * self.interval, 60.0)
        with self.lock:
            end, last_ok, err = self.last_cycle_end, self.status.last_success, self.status.last_error
        now = time.time()
        if end is None:
            ok = now - self.started < limit
            return ok, "starting: no cycle finished yet" if ok else f"no cycle finished in {limit:g} s"
        if now - end > limit:
            return False, f"the read loop is stuck: last cycle ended {now - end:.0f} s ago"
        if last_ok is None:
            return True, f"alive; no successful read yet ({err})"
        return True, f"ok; last successful read {now - last_ok:.0f} s ago" + (f"; last error: {err}" if err else "")

    # --- running -------------------------------------------------------------------

    def run_loop(self, after_cycle: Callable[[], None] | None = None) -> None:
        while not self._stop.is_set():
            t0 = time.monotonic()
            self.cycle()
            if after_cycle is not None:
                try:
                    after_cycle()
                except Exception as exc:  # noqa: BLE001
                    self.log(f"after-cycle step failed: {exc}")
            self._stop.wait(max(0.0, self.interval - (time.monotonic() - t0)))

    def stop(self) -> None:
        self._stop.set()


# Memos made for one-shot commands, emptied by the long-running agent after each
# cycle: graph's last scanned tables would keep the previous cycle's rules alive
# (~300 MB on a 10000 x 10 node), and the chain-name memo grows with every
# endpoint chain a churning cluster ever had.
_CACHE_BOUND = 250_000


def _bound_caches() -> None:
    from svcinspect import graph
    from svcinspect.dataplane.iptables.kubeproxy import classify_chain

    graph._CACHE.clear()
    if classify_chain.cache_info().currsize > _CACHE_BOUND:
        classify_chain.cache_clear()


def write_textfile(path: str, data: bytes) -> None:
    """Atomically replace ``path`` (node-exporter's textfile collector never sees half a file)."""
    directory = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(prefix=".svcinspect-", suffix=".prom.tmp", dir=directory)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
    except OSError as exc:
        raise EnvironmentProblem(f"{path}: cannot write the textfile: {exc.strerror or exc}") from None


def make_server(agent: Agent, host: str, port: int) -> ThreadingHTTPServer:
    """The HTTP server (not started): /metrics, /healthz, / (a pointer)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._send(200, agent.exposition(), CONTENT_TYPE)
            elif path == "/healthz":
                ok, why = agent.healthy()
                self._send(200 if ok else 503, (why + "\n").encode(), "text/plain; charset=utf-8")
            elif path == "/":
                self._send(200, b"svcinspect exporter: /metrics, /healthz\n", "text/plain; charset=utf-8")
            else:
                self._send(404, b"not found\n", "text/plain; charset=utf-8")

        def _send(self, code: int, body: bytes, ctype: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:  # scrapes every few seconds: no access log
            pass

    try:
        server = ThreadingHTTPServer((host, port), Handler)
    except OSError as exc:
        raise EnvironmentProblem(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    server.daemon_threads = True
    return server
