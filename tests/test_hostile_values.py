"""Rule values iptables would never print are a diagnostic naming the file and
line (exit 2 with --strict), never an internal error (issue 12)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import IPT, ROOT

REAL = (IPT / "iptables-save.txt").read_text()
DNS_RULE = '-m udp --dport 53 -j KUBE-SVC-TCOU7JCQXEZGVUNU'

# (name, text replaced in the real dump, replacement, the option named in the diagnostic)
BAD_VALUES = [
    ("mark-mask", "--mark 0x4000/0x4000", "--mark 0x4000/zz", "--mark"),
    ("dport", DNS_RULE, "-m udp --dport 5x0 -j KUBE-SVC-TCOU7JCQXEZGVUNU", "--dport"),
    ("dports", DNS_RULE, "-m multiport --dports 80:x -j KUBE-SVC-TCOU7JCQXEZGVUNU", "--dports"),
    ("to-destination", "--to-destination 10.244.2.2:53", "--to-destination 10.244.1", "--to-destination"),
    ("set-xmark", "--set-xmark 0x4000/0x4000", "--set-xmark 0xq/0x4000", "--set-xmark"),
    ("dport-range", DNS_RULE, "-m udp --dport 60:50 -j KUBE-SVC-TCOU7JCQXEZGVUNU", "--dport"),
    ("probability", "--probability 0.50000000000", "--probability 1e-9999999", "--probability"),
]
COMMANDS = [
    ("packet", "--src", "10.244.1.2", "--dst", "10.96.0.10", "--dport", "53", "--proto", "udp"),
    ("packet", "--src", "203.0.113.9", "--dst", "10.96.0.10", "--dport", "53", "--proto", "udp"),
    ("trace", "kube-system/kube-dns"),
    ("services",),
    ("check",),
    ("graph", "kube-system/kube-dns"),
    ("graph", "-n", "kube-system", "-o", "json"),
]


def _run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    # A subprocess: before the fix, --probability 1e-9999999 computed 10**9999999.
    return subprocess.run([sys.executable, "-m", "svcinspect", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})


@pytest.mark.parametrize("case", BAD_VALUES, ids=[c[0] for c in BAD_VALUES])
def test_bad_value_is_a_located_diagnostic(tmp_path, cli, case):
    name, old, new, option = case
    run = _run
    if name != "probability":  # in-process is quicker; the others never hung
        def run(*args):
            r = cli(*args)
            return subprocess.CompletedProcess(args, r.code, r.out, r.err)
    assert old in REAL
    path = tmp_path / "bad.rules"
    path.write_text(REAL.replace(old, new))
    lines = [i for i, ln in enumerate(REAL.replace(old, new).split("\n"), 1) if new in ln]
    for cmd in COMMANDS:
        r = run(*cmd, "--rules", str(path))
        assert r.returncode in (0, 1), (cmd, r.stderr)
        assert "internal error" not in r.stderr and "Traceback" not in r.stderr, (cmd, r.stderr)
    strict = run("services", "--rules", str(path), "--strict")
    assert strict.returncode == 2, strict.stderr
    assert f"bad value" in strict.stderr and option in strict.stderr
    assert f"{path}:" in strict.stderr.splitlines()[-1]
    loud = run("packet", "--src", "10.244.1.2", "--dst", "10.96.0.10", "--dport", "53", "--proto", "udp",
                "--rules", str(path))
    if option not in ("--set-xmark",):  # (the KUBE-MARK-MASQ chain is not on this packet's path)
        assert any(f"{path}:{n}: warning: bad value" in loud.stderr for n in lines), loud.stderr


def test_graph_namespace_json_with_a_service_jumping_into_another(tmp_path):
    old = '-A KUBE-SVC-TCOU7JCQXEZGVUNU -m comment --comment "kube-system/kube-dns:dns -> 10.244.2.2:53" -j KUBE-SEP-TCIZBYBD3WWXNWF5'
    assert old in REAL
    path = tmp_path / "cross.rules"
    path.write_text(REAL.replace(old, old.replace("KUBE-SEP-TCIZBYBD3WWXNWF5", "KUBE-SVC-ERIFXISQEP7F7OF4")))
    r = _run("graph", "-n", "kube-system", "-o", "json", "--rules", str(path))
    assert r.returncode == 0, r.stderr
    nodes = {n["id"]: n for n in json.loads(r.stdout)["nodes"]}
    # The jumped-into service keeps its own masquerade rule on its chain.
    assert "! -s 10.244.0.0/16" in nodes["v4/nat/KUBE-SVC-ERIFXISQEP7F7OF4"]["masquerade"]
