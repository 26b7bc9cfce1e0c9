"""The console entry point ends the process without tearing the interpreter
down (cli.leave): the output, the exit status and the exit handlers must be
exactly those of a normal exit, and a normal exit must take over whenever the
fast one could lose something."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from conftest import IPT
from svcinspect.cli import cli

ROOT = Path(__file__).resolve().parent.parent
HELLO = str(IPT / "iptables-save.txt")


def _python(code: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=120)


def test_piped_output_is_whole_and_equal_to_the_in_process_run():
    """Nothing buffered is lost: the module entry's stdout, piped, is byte for
    byte what the CLI prints in process (table and JSON)."""
    for args in (["services", "--rules", HELLO], ["services", "--rules", HELLO, "-o", "json"],
                 ["dump", "--rules", HELLO]):
        piped = subprocess.run([sys.executable, "-m", "svcinspect", *args], capture_output=True, cwd=ROOT, timeout=120)
        inproc = CliRunner().invoke(cli, args)
        assert piped.returncode == inproc.exit_code == 0
        assert piped.stdout.decode() == inproc.stdout and len(piped.stdout) > 200


def test_exit_status_and_error_line_of_bad_input(tmp_path):
    bad = tmp_path / "bad.rules"
    bad.write_bytes(b"\x00\x01 this is not iptables-save output\n")
    p = subprocess.run([sys.executable, "-m", "svcinspect", "services", "--rules", str(bad)], capture_output=True,
                       text=True, cwd=ROOT, timeout=120)
    assert p.returncode == 2
    assert p.stdout == ""
    assert p.stderr.startswith("svcinspect: error: ") and p.stderr.count("\n") == 1


def test_exit_handlers_run_after_the_output_and_teardown_is_skipped():
    """atexit handlers still run (after everything the command printed); the
    module teardown does not (a finalizer of a module global never runs)."""
    code = ("import atexit, sys\n"
            "class Last:\n"
            "    def __del__(self):\n"
            "        sys.stdout.write('teardown\\n')\n"
            "kept = Last()\n"
            "atexit.register(lambda: sys.stdout.write('atexit ran\\n'))\n"
            "from svcinspect.cli import console\n"
            "sys.argv = ['svcinspect'] + sys.argv[1:]\n"
            "console()\n")
    p = _python(code, "services", "--rules", HELLO, "-o", "name")
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[-1] == "atexit ran" and "teardown" not in lines
    assert "default/hello-world" in lines[:-1]
    # the same without the fast exit: the finalizer runs (so the check above can fail)
    p = _python(code.replace("console()", "from svcinspect.cli import main\nmain()"), "services", "--rules", HELLO,
                "-o", "name")
    assert "teardown" in p.stdout.splitlines()


def test_a_running_thread_gets_the_normal_exit():
    """A non-daemon thread still running: the process waits for it, as Python does."""
    code = ("import sys, threading, time\n"
            "def late():\n"
            "    time.sleep(0.3)\n"
            "    sys.stdout.write('thread done\\n')\n"
            "threading.Thread(target=late).start()\n"
            "from svcinspect.cli import console\n"
            "sys.argv = ['svcinspect', '--version']\n"
            "console()\n")
    p = _python(code)
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines()[-1] == "thread done"


def test_exit_status_of_a_failing_check_is_kept(tmp_path):
    """A non-zero status of a command that ran to its end (check's findings: 1)
    comes out unchanged, with its whole report."""
    text = Path(HELLO).read_text()
    sep = re.search(r"KUBE-SEP-[A-Z2-7]{16}", text).group(0)  # an endpoint chain the cascade jumps to, removed
    broken = tmp_path / "missing-endpoint-chain.rules"
    broken.write_text("".join(ln for ln in text.splitlines(keepends=True)
                              if not ln.startswith((f"-A {sep} ", f":{sep} "))))
    args = ["check", "--rules", str(broken), "-o", "json"]
    inproc = CliRunner().invoke(cli, args)
    piped = subprocess.run([sys.executable, "-m", "svcinspect", *args], capture_output=True, text=True, cwd=ROOT,
                           timeout=120)
    assert piped.returncode == inproc.exit_code == 1
    assert json.loads(piped.stdout) == json.loads(inproc.stdout)


def test_the_rules_model_is_held_until_the_process_ends():
    """Under the console entry point the ruleset load_rules built is not freed
    when the command returns (a finalizer on it never runs); in process (tests,
    an import of the CLI) nothing is held."""
    code = ("import sys\n"
            "import svcinspect.cli as c\n"
            "class Watched(tuple):\n"
            "    def __del__(self):\n"
            "        sys.stderr.write('freed\\n')\n"
            "load = c._load_rules\n"
            "def watched(*a):\n"
            "    rs = load(*a)\n"
            "    object.__setattr__(rs, 'diagnostics', Watched(rs.diagnostics))  # (only the ruleset holds it)\n"
            "    return rs\n"
            "c._load_rules = watched\n"
            "if sys.argv[-1] == 'main':\n"
            "    c.main(sys.argv[1:-1])\n"
            "sys.argv = ['svcinspect'] + sys.argv[1:]\n"
            "c.console()\n")
    p = _python(code, "services", "--rules", HELLO)
    assert p.returncode == 0, p.stderr
    assert "freed" not in p.stderr and "default/hello-world" in p.stdout
    p = _python(code, "services", "--rules", HELLO, "main")
    assert "freed" in p.stderr  # (without the console entry it is freed: the check above can fail)
    import svcinspect.cli as c
    assert c._KEPT is None and c.keep_until_exit("x") == "x" and c._KEPT is None


def test_the_exporter_holds_no_read(tmp_path):
    """serve re-reads the rules every --interval: under the console entry point
    nothing it reads may be held until exit (that would grow without end)."""
    code = ("import sys\n"
            "import svcinspect.cli as c\n"
            "held = []\n"
            "load = c._load_rules\n"
            "def counted(*a):\n"
            "    rs = load(*a)\n"
            "    held.append(c._KEPT is not None)\n"
            "    return rs\n"
            "c._load_rules = counted\n"
            "import atexit\n"
            "atexit.register(lambda: sys.stderr.write('held %s kept %s\\n' % (held, c._KEPT)))\n"
            "sys.argv = ['svcinspect'] + sys.argv[1:]\n"
            "c.console()\n")
    out = tmp_path / "metrics.prom"
    p = _python(code, "serve", "--once", "--rules", HELLO, "--textfile", str(out))
    assert p.returncode == 0, p.stderr
    assert "held [False] kept None" in p.stderr
    assert out.read_text().count("svcinspect_") > 5
    # (a one-shot command under the same entry point does hold its read: the check above can fail)
    p = _python(code, "services", "--rules", HELLO)
    assert "held [True]" in p.stderr


def test_no_collection_walks_the_model_before_the_fast_exit():
    """The cyclic GC is off while a command runs; under the console entry point
    it stays off to the end, since turning it back on would make the next
    allocation walk every object the command built (10000 services: 0.15-0.23 s
    of nothing). Called in process, main() turns it back on."""
    code = ("import gc, sys, atexit\n"
            "seen = []\n"
            "gc.callbacks.append(lambda phase, info: seen.append(phase))\n"
            "import svcinspect.cli as c\n"
            "start = len(seen)\n"
            "atexit.register(lambda: sys.stderr.write('collections %d enabled %s\\n' % (len(seen) - start, gc.isenabled())))\n"
            "if sys.argv[-1] == 'main':\n"
            "    c.main(sys.argv[1:-1])\n"
            "    [object() for _ in range(1000)]; [[] for _ in range(2000)]\n"
            "    sys.exit(0)\n"
            "sys.argv = ['svcinspect'] + sys.argv[1:]\n"
            "c.console()\n")
    p = _python(code, "services", "--rules", HELLO)
    assert p.returncode == 0, p.stderr
    assert "collections 0 enabled False" in p.stderr and "default/hello-world" in p.stdout
    # in process the GC is back on, and it collects again (so the check above can fail)
    p = _python(code, "services", "--rules", HELLO, "main")
    assert p.returncode == 0, p.stderr
    m = re.search(r"collections (\d+) enabled True", p.stderr)
    assert m and int(m.group(1)) > 0, p.stderr
    # a thread still running: the normal exit, with the GC on again
    p = _python(code.replace("c.console()", "import threading, time\n"
                             "threading.Thread(target=time.sleep, args=(0.2,)).start()\nc.console()"),
                "services", "--rules", HELLO)
    assert p.returncode == 0 and "enabled True" in p.stderr, p.stderr
