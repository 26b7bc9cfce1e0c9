"""Bounded input: sizes, devices, FIFOs, closed stdin, a full disk, subprocesses
that never end or print without end (issue 12). Every case is one line on
stderr and a documented exit code, in bounded time."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import IPT, ROOT
from svcinspect.errors import EnvironmentProblem
from svcinspect.sources import command, limits
from svcinspect.sources.command import CommandResult, FakeRunner, read_live
from svcinspect.sources.limits import run_bounded

REAL = IPT / "iptables-save.txt"
ROOT_CAPS = (1 << command.CAP_NET_ADMIN) | (1 << command.CAP_SYS_ADMIN)


def _svc(*args: str, stdin=subprocess.DEVNULL, env: dict | None = None, timeout: float = 60, **kw):
    full_env = {"PYTHONPATH": str(ROOT), "PATH": os.environ.get("PATH", "/usr/bin:/bin"), **(env or {})}
    return subprocess.run([sys.executable, "-m", "svcinspect", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT, env=full_env, stdin=stdin, **kw)


def _one_line_error(proc, code: int, *words: str) -> None:
    assert proc.returncode == code, (proc.returncode, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("svcinspect: error: "), proc.stderr
    for w in words:
        assert w in lines[0], proc.stderr


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/urandom"])
def test_devices_are_refused(device):
    _one_line_error(_svc("services", "--rules", device), 2, device, "character device")
    _one_line_error(_svc("check", "--rules", str(REAL), "--objects", device), 2, device, "character device")


def test_fifo_without_writer_does_not_hang(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    _one_line_error(_svc("services", "--rules", str(fifo), timeout=30), 2, "FIFO with no writer")


def test_fifo_with_a_writer_is_read(tmp_path):
    # What `--rules <(ssh node iptables-save)` gives: a pipe with its writer.
    proc = subprocess.run(["bash", "-c", f'"$0" -m svcinspect services --rules <(cat "$1")', sys.executable,
                           str(REAL)], capture_output=True, text=True, timeout=60, cwd=ROOT,
                          env={"PYTHONPATH": str(ROOT), "PATH": os.environ.get("PATH", "/usr/bin:/bin")})
    assert proc.returncode == 0, proc.stderr
    assert "kube-system/kube-dns:dns" in proc.stdout


def test_stdin_closed():
    proc = _svc("services", "--rules", "-", stdin=None, pass_fds=(), preexec_fn=lambda: os.close(0))
    _one_line_error(proc, 2, "stdin is closed")


def test_max_input_size_for_files_stdin_and_the_environment(tmp_path):
    _one_line_error(_svc("--max-input-size", "10K", "services", "--rules", str(REAL)), 2,
                    "more than --max-input-size (10 KiB)")
    with open(REAL, "rb") as fh:
        _one_line_error(_svc("--max-input-size", "10K", "services", "--rules", "-", stdin=fh), 2,
                        "<stdin>", "--max-input-size")
    _one_line_error(_svc("services", "--rules", str(REAL), env={"SVCINSPECT_MAX_INPUT_SIZE": "1K"}), 2,
                    "--max-input-size (1 KiB)")
    assert _svc("--max-input-size", "1M", "services", "--rules", str(REAL)).returncode == 0
    bad = _svc("--max-input-size", "lots", "services", "--rules", str(REAL))
    assert bad.returncode == 2 and "is not a size" in bad.stderr


def test_a_100_mb_line_and_a_10_mb_comment(tmp_path):
    text = REAL.read_text()
    long_line = tmp_path / "line.rules"
    long_line.write_text(text.replace("COMMIT\n", "COMMIT\n# " + "y" * 100_000_000 + "\n", 1))
    r = _svc("services", "--rules", str(long_line), timeout=120)
    assert r.returncode == 0 and "kube-system/kube-dns:dns" in r.stdout, r.stderr[:300]
    _one_line_error(_svc("--max-input-size", "64M", "services", "--rules", str(long_line)), 2, "--max-input-size")
    old = '--comment "kube-system/kube-dns:dns -> 10.244.2.2:53"'
    assert old in text
    comment = tmp_path / "comment.rules"
    comment.write_text(text.replace(old, old[:-1] + "x" * 10_000_000 + '"'))
    r = _svc("trace", "kube-system/kube-dns", "--rules", str(comment), timeout=120)
    assert r.returncode == 0, r.stderr[:300]
    assert "10.244.2.2:53" in r.stdout


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
@pytest.mark.parametrize("args", [("services",), ("services", "-o", "json"), ("graph", "kube-system/kube-dns"),
                                  ("dump",), ("check",)])
def test_stdout_on_a_full_disk(args):
    with open("/dev/full", "w") as full:
        proc = subprocess.run([sys.executable, "-m", "svcinspect", *args, "--rules", str(REAL)], stdout=full,
                              stderr=subprocess.PIPE, text=True, timeout=60, cwd=ROOT,
                              env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 3, proc.stderr
    assert proc.stderr.strip().splitlines() == ["svcinspect: error: cannot write the output: No space left on device"]


# --- subprocesses --------------------------------------------------------------

def _script(tmp_path: Path, name: str, body: str) -> Path:
    path = tmp_path / name
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def test_run_bounded_stops_a_command_that_never_exits(tmp_path):
    hang = _script(tmp_path, "hang", "sleep 600 & wait")  # a child holding the pipes too
    with pytest.raises(EnvironmentProblem, match=r"hang did not finish within 1 s"):
        run_bounded([str(hang)], timeout=1)


def test_run_bounded_stops_a_command_printing_without_end(tmp_path):
    flood = _script(tmp_path, "flood", "yes 'a line of output'")
    with pytest.raises(EnvironmentProblem, match=r"flood printed more than --max-input-size \(1 MiB\)"):
        run_bounded([str(flood)], limit=1 << 20, timeout=30)


def test_run_bounded_keeps_output_and_stderr(tmp_path):
    ok = _script(tmp_path, "ok", "echo out; echo err >&2; exit 3")
    done = run_bounded([str(ok)])
    assert (done.returncode, done.stdout, done.stderr) == (3, b"out\n", b"err\n")
    cat = run_bounded(["cat"], input=b"x" * 300_000)
    assert cat.stdout == b"x" * 300_000


def _fake_saves(tmp_path: Path, body: str) -> dict:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("iptables-nft-save", "ip6tables-nft-save", "iptables-legacy-save", "ip6tables-legacy-save"):
        _script(bin_dir, name, body)
    return {"PATH": f"{bin_dir}:/usr/bin:/bin"}


@pytest.mark.skipif(os.geteuid() != 0, reason="live reading checks for root first")
def test_live_save_that_never_exits(tmp_path):
    # Fake save commands on PATH: nothing touches a netfilter table.
    env = _fake_saves(tmp_path, "sleep 600")
    _one_line_error(_svc("--command-timeout", "1", "services", "--family", "4", env=env), 3,
                    "did not finish within 1 s")


@pytest.mark.skipif(os.geteuid() != 0, reason="live reading checks for root first")
def test_live_save_printing_gigabytes(tmp_path):
    env = _fake_saves(tmp_path, "echo '*filter'; yes '# filler'")
    _one_line_error(_svc("--max-input-size", "4M", "services", "--family", "4", env=env), 3,
                    "printed more than --max-input-size (4 MiB)")


def test_command_timeout_refuses_nan_and_inf():
    for value in ("nan", "inf", "0", "-1"):
        r = _svc("--command-timeout", value, "services", "--rules", str(REAL))
        assert r.returncode == 2 and "finite number of seconds" in r.stderr, (value, r.stderr)


def test_failed_save_quotes_the_error_not_the_legacy_warning():
    err = ("# Warning: iptables-legacy tables present, use iptables-legacy-save to see them\n"
           "iptables-nft-save v1.8.9 (nf_tables): Could not fetch rule set generation id: Invalid argument\n")
    runner = FakeRunner({"iptables-nft-save": CommandResult(1, "", err), "iptables-legacy-save": ""})
    with pytest.raises(EnvironmentProblem) as exc:
        read_live(runner=runner, families=(command.Family.V4,), caps=ROOT_CAPS)
    assert "Could not fetch rule set generation id" in str(exc.value)
    assert "Warning" not in str(exc.value)


def test_parse_size():
    assert limits.parse_size("256M") == 256 << 20
    with pytest.raises(ValueError):
        limits.parse_size("0")
