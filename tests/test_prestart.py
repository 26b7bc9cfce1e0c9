"""The console entry point starts a live read's commands before the CLI loads
(sources.prestart): it must start exactly what the read runs, the read must
take those over (each command runs once), the output must be what it is
without it, and whatever the read does not take must be killed."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import IPT
from svcinspect.cli import cli
from svcinspect.sources import command, prestart

ROOT = Path(__file__).resolve().parent.parent
DUMP = IPT / "iptables-save.txt"
ALL_CAPS = (1 << 40) - 1
SAVES = ["iptables-nft-save", "ip6tables-nft-save", "iptables-legacy-save", "ip6tables-legacy-save"]


def _nft(fam: str) -> list[str]:
    return ["nft", "list", "table", fam, "kube-proxy"]


# --- what the command line plans --------------------------------------------------------

def test_plan_of_a_plain_live_read_is_the_nft_listing_then_every_save():
    assert prestart.plan(["services"]) == [_nft("ip"), _nft("ip6")] + [[s] for s in SAVES]


@pytest.mark.parametrize("args, want", [
    (["services", "--family", "4"], [_nft("ip"), ["iptables-nft-save"], ["iptables-legacy-save"]]),
    (["check", "--family=6", "-o", "json"], [_nft("ip6"), ["ip6tables-nft-save"], ["ip6tables-legacy-save"]]),
    (["--debug", "--max-input-size", "1G", "--command-timeout=30", "-v", "dump", "--family", "4"],
     [_nft("ip"), ["iptables-nft-save"], ["iptables-legacy-save"]]),
    (["services", "--reader", "iptc", "--family", "4"], [_nft("ip"), ["iptables-nft-save"]]),
    (["services", "--family", "4", "--family", "6"], [_nft("ip6"), ["ip6tables-nft-save"], ["ip6tables-legacy-save"]]),
    (["trace", "default/web", "--family", "4", "--reader=save"],
     [_nft("ip"), ["iptables-nft-save"], ["iptables-legacy-save"]]),
])
def test_plan_reads_the_live_options_as_click_does(args, want):
    assert prestart.plan(args) == want


def test_plan_enters_the_namespace_given(tmp_path):
    ns = tmp_path / "ns"  # (a path: taken as it is; it must exist)
    ns.write_text("")
    got = prestart.plan(["services", "--netns", str(ns), "--family", "4"])
    assert got == [["nsenter", f"--net={ns}", "--"] + a for a in ([_nft("ip"), ["iptables-nft-save"],
                                                                    ["iptables-legacy-save"]])]
    assert prestart.plan(["services", f"--netns={tmp_path / 'absent'}"]) == []
    assert prestart.plan(["services", "--netns", "no-such-namespace-here"]) == []


@pytest.mark.parametrize("args", [
    [], ["--version"], ["--help"], ["services", "--help"], ["services", "-h"], ["services", "--rules", "x"],
    ["services", f"--rules={DUMP}"], ["check", "--", "x"], ["balance"], ["serve"], ["diff", "live", "x"],
    ["completion", "bash"], ["services", "--family", "5"], ["services", "--reader", "nope"], ["services", "--netns"],
    ["--bogus", "services"], ["--max-input-size"],
])
def test_plan_starts_nothing_where_no_live_read_is_certain(args):
    assert prestart.plan(args) == []


# --- the plan is what the read runs ------------------------------------------------------

def _fake_bin(tmp_path: Path, log: Path, dump: Path | None = DUMP, sleep: float = 0) -> Path:
    """Fake save and nft commands that log each run (argv) and print ``dump`` as iptables-legacy-save."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name in SAVES + ["nft"]:
        body = f'echo "{name} $*" >> {log}\n'
        if sleep:
            body += f"echo $$ >> {log}.pids\nexec sleep {sleep}\n"
        elif name == "nft":
            body += "echo 'Error: No such file or directory' >&2; exit 1\n"
        elif name == "iptables-legacy-save" and dump is not None:
            body += f"cat {dump}\n"
        (bin_dir / name).write_text("#!/bin/sh\n" + body)
        (bin_dir / name).chmod(0o755)
    return bin_dir


@pytest.mark.parametrize("args", [
    ["services"], ["services", "--family", "4"], ["services", "-o", "json", "--reader", "save"],
    ["check", "--family", "4"], ["dump"], ["graph", "-o", "dot"], ["trace", "default/hello-world", "--family", "4"],
    ["explain", "default/hello-world", "--family", "4"], ["report", "--family", "4"],
])
def test_plan_is_exactly_what_the_read_runs(tmp_path, monkeypatch, args):
    """Each command's live read, in process, with the commands it starts
    recorded: the rules' read runs the argvs plan() gives, in that order."""
    log = tmp_path / "log"
    bin_dir = _fake_bin(tmp_path, log)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setattr(command, "effective_capabilities", lambda: ALL_CAPS)
    ran = []
    spawn = prestart.spawn
    monkeypatch.setattr(prestart, "spawn", lambda argv: ran.append(list(argv)) or spawn(argv))
    if args[0] == "report":
        args = args + ["--out", str(tmp_path / "r.html")]
    result = CliRunner().invoke(cli, args)
    # (the other commands, e.g. trace's `ip -j address show`, are not started early)
    assert [a for a in ran if a[0] in SAVES + ["nft"]] == prestart.plan(args), result.output


@pytest.mark.skipif(os.geteuid() != 0, reason="nsenter needs root (CAP_SYS_ADMIN)")
def test_plan_in_a_namespace_is_what_the_read_runs(tmp_path, monkeypatch):
    log = tmp_path / "log"
    monkeypatch.setenv("PATH", f"{_fake_bin(tmp_path, log)}:{os.environ['PATH']}")
    ran = []
    spawn = prestart.spawn
    monkeypatch.setattr(prestart, "spawn", lambda argv: ran.append(list(argv)) or spawn(argv))
    args = ["services", "--netns", "/proc/self/ns/net", "--family", "4"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert ran == prestart.plan(args) and ran[0][:2] == ["nsenter", "--net=/proc/self/ns/net"]


# --- through the console entry point ------------------------------------------------------

def _entry(args: list[str], env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "svcinspect", *args], capture_output=True, text=True, cwd=ROOT,
                          env=env, timeout=120)


def _env(bin_dir: Path, **extra: str) -> dict:
    return {"PATH": f"{bin_dir}:/usr/sbin:/usr/bin:/sbin:/bin", "PYTHONPATH": str(ROOT), **extra}


@pytest.mark.skipif(os.geteuid() != 0, reason="live reading checks for root (CAP_NET_ADMIN) first")
@pytest.mark.parametrize("args", [["services"], ["services", "-o", "json", "--family", "4"], ["check"],
                                  ["trace", "default/hello-world"]])
def test_each_command_runs_once_and_the_output_is_unchanged(tmp_path, args):
    """With the commands started by the entry point, each one runs once (the
    read took it over: otherwise it would be started again after the first was
    killed) and what svcinspect prints is what it prints without them."""
    log = tmp_path / "log"
    bin_dir = _fake_bin(tmp_path, log)
    early = _entry(args, _env(bin_dir))
    runs = log.read_text().splitlines()
    log.unlink()
    plain = _entry(args, _env(bin_dir, SVCINSPECT_NO_PRESTART="1"))
    assert (early.returncode, early.stdout, early.stderr) == (plain.returncode, plain.stdout, plain.stderr)
    assert early.returncode in (0, 1) and early.stdout
    assert sorted(runs) == sorted(log.read_text().splitlines())  # the same commands...
    assert len(runs) == len(set(runs)) == len(prestart.plan(args))  # ...each once


def test_nothing_is_started_for_a_saved_dump(tmp_path):
    log = tmp_path / "log"
    p = _entry(["services", "--rules", str(DUMP)], _env(_fake_bin(tmp_path, log)))
    assert p.returncode == 0 and "default/hello-world" in p.stdout
    assert not log.exists()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.parametrize("args, status", [(["services", "-o", "bogus"], 2), (["services", "--family", "4", "--strict",
                                                                               "--no-such-option"], 2)])
def test_what_the_read_does_not_take_is_killed(tmp_path, args, status):
    """A command line that stops before its read (a usage error): the commands
    started for it are killed and reaped at once, not left running or waited for."""
    log = tmp_path / "log"
    bin_dir = _fake_bin(tmp_path, log, sleep=120)
    began = time.monotonic()
    p = _entry(args, _env(bin_dir))
    assert time.monotonic() - began < 60  # (not held until they end by themselves: they sleep 120 s)
    assert p.returncode == status, p.stderr
    assert p.stderr.count("\n") >= 1 and "Traceback" not in p.stderr
    deadline = time.monotonic() + 10
    while not Path(f"{log}.pids").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    pids = [int(x) for x in Path(f"{log}.pids").read_text().split()]
    assert len(pids) == len(prestart.plan(args)) > 0  # (they were started: the check below can fail)
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(_alive(p) for p in pids)


@pytest.mark.skipif(os.geteuid() != 0, reason="live reading checks for root (CAP_NET_ADMIN) first")
def test_a_command_the_read_does_not_ask_for_is_killed_when_the_read_is_done(tmp_path, monkeypatch):
    """A prestarted command no read takes (here: one the plan added that the
    read does not run) is gone once the read's saves have run."""
    log = tmp_path / "log"
    bin_dir = _fake_bin(tmp_path, log)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    stray = subprocess.Popen  # (the real class: the stray is a real process)
    prestart.start([["sleep", "60"]])
    proc = prestart._started[("sleep", "60")]
    assert isinstance(proc, stray) and proc.poll() is None
    result = CliRunner().invoke(cli, ["services", "--family", "4"])
    assert result.exit_code == 0, result.output
    assert proc.poll() is not None and not prestart._started
