"""The CLI contract: output formats, exit codes, one-line errors, --debug."""

import json

import pytest

from conftest import IPT, WILD, KP

HELLO = str(IPT / "iptables-save.txt")


def test_services_json_has_the_schema_and_exact_shares(cli):
    r = cli("services", "--rules", HELLO, "-o", "json")
    assert r.code == 0, r.err
    doc = json.loads(r.out)
    assert doc["schema"] == "svcinspect/v1"
    hw = [s for s in doc["services"] if s["name"] == "default/hello-world"][0]
    assert (hw["protocol"], hw["clusterIP"], hw["port"], hw["nodePort"]) == ("tcp", "10.96.10.10", 80, 31611)
    assert [(e["endpoint"], e["share"], e["fraction"]) for e in hw["endpoints"]] == [
        ("10.244.1.10:8080", 0.3333333333, "1/3"), ("10.244.1.11:8080", 0.3333333333, "1/3"),
        ("10.244.2.10:8080", 0.3333333333, "1/3")]
    assert hw["affinity"] is None and hw["externalIPs"] == [] and hw["loadBalancerIPs"] == []
    assert hw["chains"]["svc"] == "KUBE-SVC-DZ6LTOHRG6HQWHYE"
    aff = [s for s in doc["services"] if s["name"] == "default/affinity:http"][0]
    assert aff["affinity"] == {"timeoutSeconds": 600}


def test_services_table_lists_every_service_port(cli):
    r = cli("services", "--rules", HELLO, "--rules", str(IPT / "ip6tables-save.txt"))
    assert r.code == 0
    lines = r.out.splitlines()
    assert lines[0].split()[:3] == ["SERVICE", "PORT", "PROTO"]
    row = [ln for ln in lines if ln.startswith("default/hello-world ")][0]
    assert "10.96.10.10:80" in row and "31611" in row and "3 (1/3 each)" in row
    assert any(ln.startswith("default/v6-only:http [v6]") for ln in lines)
    assert any("none (REJECT)" in ln for ln in lines if ln.startswith("default/no-endpoints:http"))


def test_rules_from_stdin(cli):
    r = cli("services", "--rules", "-", "-o", "json", stdin=(IPT / "iptables-save.txt").read_text())
    assert r.code == 0 and len(json.loads(r.out)["services"]) == 28


@pytest.mark.parametrize("args,code,words", [
    (["services", "--rules", "/does/not/exist"], 2, "no such file"),
    (["services", "--rules", str(WILD / "043-gke-2016-diff-of-two-iptables-save.rules")], 2, "diff"),
    (["services", "--rules", str(WILD / "047-kind-lnv-v-kmg-suffix-filter.lnv")], 2, "iptables -L"),
    (["services", "--rules", str(KP)], 2, "is a directory"),
    (["services", "--rules", str(WILD / "042-gke-2016-v1.4.14-loadbalancer-prefw-full.rules"), "--strict"], 2, ":1:"),
    (["services", "--rules", HELLO, "-o", "xml"], 2, "Invalid value"),
    (["nosuchcommand"], 2, "No such command"),
])
def test_errors_are_one_line_with_documented_exit_codes(cli, args, code, words):
    r = cli(*args)
    assert r.code == code
    assert words in r.err
    assert "Traceback" not in r.err
    assert len([ln for ln in r.err.splitlines() if ln.startswith("svcinspect: error")]) <= 1


def test_unreadable_file_is_an_environment_error(cli, tmp_path, monkeypatch):
    # Root reads any file, so the refusal is injected where the OS would raise it.
    import builtins
    real_open = builtins.open
    locked = str(tmp_path / "locked")

    def fake_open(path, *a, **k):
        if str(path) == locked:
            raise PermissionError(13, "Permission denied", locked)
        return real_open(path, *a, **k)

    monkeypatch.setattr(builtins, "open", fake_open)
    r = cli("services", "--rules", locked)
    assert r.code == 3 and "permission denied" in r.err and "Traceback" not in r.err


def test_debug_shows_the_traceback(cli):
    r = cli("--debug", "services", "--rules", "/does/not/exist")
    assert r.code == 2 and "Traceback" in r.err and "no such file" in r.err


def test_diagnostics_go_to_stderr_and_do_not_fail(cli):
    r = cli("services", "--rules", str(WILD / "042-gke-2016-v1.4.14-loadbalancer-prefw-full.rules"))
    assert r.code == 0
    assert "042-gke-2016-v1.4.14-loadbalancer-prefw-full.rules:1: warning: skipped a shell prompt" in r.err
    assert "shell prompt" not in r.out


def test_version_and_module_entry(cli):
    import subprocess
    import sys
    r = cli("--version")
    assert r.code == 0 and "svcinspect" in r.out
    p = subprocess.run([sys.executable, "-m", "svcinspect", "services", "--rules", HELLO, "-o", "json"],
                       capture_output=True, text=True)
    assert p.returncode == 0 and json.loads(p.stdout)["schema"] == "svcinspect/v1"


def test_every_command_has_help(cli):
    """``--help`` works on every command (an -o type once broke it on click 8.2+)."""
    from svcinspect.cli import cli as group

    for name in sorted(group.commands):
        r = cli(name, "--help")
        assert r.code == 0, (name, r.err)
        assert "Usage:" in r.out, name
