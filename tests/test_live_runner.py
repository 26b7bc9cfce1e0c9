"""The live reader's runner: every save command at once, read from one thread
as they print (``sources.limits.run_streamed``), within the same bounds as
``run_bounded``; and the CLI reading live through it gives what it gave
reading each output whole.

Fake save commands (shell scripts on PATH) print fixtures: nothing here
touches a netfilter table.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import IPT, ROOT
from svcinspect.errors import EnvironmentProblem
from svcinspect.sources import limits
from svcinspect.sources.command import stream_commands
from svcinspect.sources.limits import Completed, Started, run_streamed

ROOT_ONLY = pytest.mark.skipif(os.geteuid() != 0, reason="live reading checks for root (CAP_NET_ADMIN) first")


def _script(where: Path, name: str, body: str) -> Path:
    path = where / name
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


@pytest.fixture
def bounds():
    was = (limits.LIMITS.max_input_size, limits.LIMITS.command_timeout)
    yield limits.LIMITS
    limits.LIMITS.max_input_size, limits.LIMITS.command_timeout = was


class Sink:
    def __init__(self):
        self.chunks: list[bytes] = []

    def __call__(self, data: bytes) -> None:
        self.chunks.append(data)


def test_every_command_runs_at_once_and_each_sink_gets_its_output_in_order(tmp_path):
    a = _script(tmp_path, "a", "i=0; while [ $i -lt 3 ]; do echo a$i; sleep 0.3; i=$((i+1)); done; echo oops >&2; exit 4")
    b = _script(tmp_path, "b", "i=0; while [ $i -lt 3 ]; do echo b$i; sleep 0.3; i=$((i+1)); done")
    sinks = [Sink(), None]
    start = time.monotonic()
    done = run_streamed([[str(a)], [str(b)]], sinks)
    took = time.monotonic() - start
    assert b"".join(sinks[0].chunks) == b"a0\na1\na2\n"
    assert len(sinks[0].chunks) >= 2, "the output was not handed over as it came"
    assert done[0] == Completed(4, b"", b"oops\n")
    assert done[1] == Completed(0, b"b0\nb1\nb2\n", b"")
    assert took < 1.7, f"the commands ran one after the other ({took:.2f} s)"


def test_a_missing_command_is_reported_not_raised(tmp_path):
    ok = _script(tmp_path, "ok", "echo fine")
    done = run_streamed([[str(tmp_path / "nope")], [str(ok)]], [None, None])
    assert isinstance(done[0], Started) and isinstance(done[0].error, FileNotFoundError)
    assert done[1].stdout == b"fine\n"
    results = stream_commands([[str(tmp_path / "nope")]], [type("S", (), {"feed": lambda self, b: None})()])
    assert (results[0].returncode, results[0].stderr) == (127, f"{tmp_path / 'nope'}: No such file or directory")


def _alive(pid: int) -> bool:
    """Running (a zombie waiting for its reaper is not)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_a_command_that_never_exits_is_stopped_with_its_children(tmp_path, bounds):
    pidfile = tmp_path / "pid"
    hang = _script(tmp_path, "hang", f"sleep 600 & echo $! > {pidfile}; wait")  # a child holding the pipes too
    ok = _script(tmp_path, "ok", "echo fine")
    bounds.command_timeout = 1
    start = time.monotonic()
    with pytest.raises(EnvironmentProblem, match=r"^hang did not finish within 1 s and was stopped"):
        run_streamed([[str(ok)], [str(hang)]], [None, Sink()])
    assert time.monotonic() - start < 10
    time.sleep(0.2)
    assert not _alive(int(pidfile.read_text())), "the command's child was left running"


def test_a_command_printing_without_end_is_stopped(tmp_path, bounds):
    flood = _script(tmp_path, "flood", "yes 'a line of output'")
    bounds.max_input_size = 1 << 20
    sink = Sink()
    with pytest.raises(EnvironmentProblem, match=r"^flood printed more than --max-input-size \(1 MiB\) and was stopped"):
        run_streamed([[str(flood)]], [sink])
    assert sum(map(len, sink.chunks)) <= 1 << 20


def test_stderr_beyond_its_cap_is_dropped_not_an_error(tmp_path, bounds):
    noisy = _script(tmp_path, "noisy", "head -c 3000000 /dev/zero | tr '\\0' e >&2; echo out")
    bounds.max_input_size = 1 << 20
    (done,) = run_streamed([[str(noisy)]], [None])
    assert done.stdout == b"out\n" and len(done.stderr) == limits._STDERR_KEPT


def test_a_failing_sink_leaves_nothing_running(tmp_path):
    pidfile = tmp_path / "pid"
    slow = _script(tmp_path, "slow", f"echo $$ > {pidfile}; echo first; sleep 600")

    def boom(data: bytes) -> None:
        raise RuntimeError("sink failed")

    with pytest.raises(RuntimeError, match="sink failed"):
        run_streamed([[str(slow)]], [boom])
    time.sleep(0.2)
    assert not _alive(int(pidfile.read_text()))


# --- the CLI, live, through real (fake) save commands -------------------------------

def _fake_node(tmp_path: Path, nft4: Path | None, nft6: Path | None, legacy4: Path | None = None) -> dict:
    """Save commands that print the given dumps in small pieces, slowly (as a
    large iptables-save does), and nothing for the others."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    printer = (f"{sys.executable} -c 'import sys, time\n"
               "data = open(sys.argv[1], \"rb\").read()\n"
               "for i in range(0, len(data), 997):\n"
               "    sys.stdout.buffer.write(data[i:i + 997]); sys.stdout.flush(); time.sleep(0.0005)' ")
    for name, dump in (("iptables-nft-save", nft4), ("ip6tables-nft-save", nft6),
                       ("iptables-legacy-save", legacy4), ("ip6tables-legacy-save", None)):
        _script(bin_dir, name, printer + str(dump) if dump is not None else "true")
    _script(bin_dir, "nft", "echo 'Error: No such file or directory' >&2; exit 1")  # no kube-proxy table
    return {"PATH": f"{bin_dir}:/usr/bin:/bin", "PYTHONPATH": str(ROOT)}


def _svc(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "svcinspect", *args], capture_output=True, text=True,
                          timeout=300, cwd=ROOT, env=env)


@ROOT_ONLY
@pytest.mark.parametrize("argv", [("services",), ("services", "-o", "json"), ("check",), ("dump",),
                                  ("graph", "-o", "dot")])
def test_live_commands_give_what_reading_the_outputs_whole_gave(tmp_path, argv):
    env = _fake_node(tmp_path, IPT / "iptables-save-counters.txt", IPT / "ip6tables-save-counters.txt")
    streamed = _svc(*argv, env=env)
    whole = _svc(*argv, env={**env, "SVCINSPECT_NO_FAST": "1"})
    assert (streamed.returncode, streamed.stdout, streamed.stderr) == (whole.returncode, whole.stdout, whole.stderr)
    assert streamed.returncode in (0, 1) and streamed.stdout


@ROOT_ONLY
def test_live_services_equal_services_of_the_saved_files(tmp_path):
    env = _fake_node(tmp_path, IPT / "iptables-save-counters.txt", IPT / "ip6tables-save-counters.txt")
    live = _svc("services", "-o", "json", env=env)
    files = _svc("services", "-o", "json", "--rules", str(IPT / "iptables-save-counters.txt"),
                 "--rules", str(IPT / "ip6tables-save-counters.txt"), env=env)
    assert live.returncode == files.returncode == 0, live.stderr
    got, want = json.loads(live.stdout), json.loads(files.stdout)
    assert [d["message"] for d in got.pop("diagnostics")] == [
        "reading the iptables-nft backend: 301 KUBE rules in 122 KUBE chains (with KUBE-PROXY-CANARY)"]
    want.pop("diagnostics")
    assert got == want and len(got["services"]) == 30


@ROOT_ONLY
def test_split_brain_is_still_said_when_both_backends_stream(tmp_path):
    env = _fake_node(tmp_path, IPT / "iptables-save-counters.txt", None, legacy4=IPT / "iptables-save.txt")
    r = _svc("services", "--family", "4", env=env)
    assert r.returncode == 0, r.stderr
    assert "split brain" in r.stderr and "reading iptables-nft" in r.stderr


@pytest.mark.parametrize("piece", [150, 1 << 20])
def test_the_live_read_is_the_parse_of_the_saved_texts(tmp_path, monkeypatch, piece):
    """In process, through the real runner: the streams parse in rounds of
    ``piece`` characters while the fake saves print, and the ruleset is the
    one parse_iptables_save builds from each text whole."""
    from svcinspect.dataplane.iptables import stream as stream_mod
    from svcinspect.dataplane.iptables.parse import parse_iptables_save
    from svcinspect.model.netfilter import Family
    from svcinspect.sources import command
    from test_live_stream import shape

    env = _fake_node(tmp_path, IPT / "iptables-save-counters.txt", IPT / "ip6tables-save-counters.txt")
    monkeypatch.setenv("PATH", env["PATH"])
    monkeypatch.setattr(stream_mod, "PIECE", piece)
    dump = command.read_live_dump("auto", caps=-1, probe_nft=False, prework=True)
    streams = dump.streams
    ruleset = command.parse_live(dump)
    assert [s.prebuilt for s in streams] == [True, True]
    want = [parse_iptables_save((IPT / name).read_text(), f"live:{tool}", family=fam) for name, tool, fam in
            (("iptables-save-counters.txt", "iptables-nft-save", Family.V4),
             ("ip6tables-save-counters.txt", "ip6tables-nft-save", Family.V6))]
    assert shape(ruleset) == shape(command._assemble(dump, want))


def test_a_slow_sink_does_not_hold_the_command_up(tmp_path):
    """The pipes are drained by a helper thread: a command printing 6 MiB
    finishes while the sink is still busy with its first pieces (with one
    thread it would wait for the sink at every full pipe), and the sink still
    gets every byte, in order."""
    flag = tmp_path / "done"
    big = _script(tmp_path, "big", f"head -c 6291456 /dev/zero | tr '\\0' x; date +%s.%N > {flag}")
    seen: list[bytes] = []
    finished_during_sink: list[bool] = []

    def slow(data: bytes) -> None:
        if len(seen) < 3:
            time.sleep(0.4)
            finished_during_sink.append(flag.exists())
        seen.append(data)

    (done,) = run_streamed([[str(big)]], [slow])
    assert done.returncode == 0
    assert b"".join(seen) == b"x" * 6291456
    assert finished_during_sink[-1], "the command waited for the sink"


def test_the_read_ahead_is_bounded(tmp_path, monkeypatch):
    """At most _BACKLOG bytes are read ahead of a slow sink (then the command waits)."""
    monkeypatch.setattr(limits, "_BACKLOG", 1 << 20)
    big = _script(tmp_path, "big", "head -c 8388608 /dev/zero")
    ahead: list[int] = []
    got = [0]

    def slow(data: bytes) -> None:
        got[0] += len(data)
        time.sleep(0.01)

    real_put = limits._Drain.took

    def took(self, size):
        ahead.append(self.backlog)
        real_put(self, size)

    monkeypatch.setattr(limits._Drain, "took", took)
    (done,) = run_streamed([[str(big)]], [slow])
    assert done.returncode == 0 and got[0] == 8388608
    assert max(ahead) <= (1 << 20) + limits._READ
