"""The exporter without a kernel: figures from the real captures, the failure
policy (a failing read keeps the last good figures and counts an error), the
HTTP endpoints on 127.0.0.1, the atomic textfile and `serve --once`."""

from __future__ import annotations

import os
import threading
import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import IPT, ROOT
from svcinspect.errors import EnvironmentProblem
from svcinspect.dataplane.iptables.parse import parse_dumps
from svcinspect.parse.kube_objects import parse_objects
from svcinspect.serve.agent import Agent, Readers, make_server, write_textfile
from svcinspect.serve.metrics import METRICS
from svcinspect.serve.snapshot import build_snapshot
from svcinspect.sources.files import read_text

SEQ = IPT / "sequence"
STEP0, STEP1 = SEQ / "step0-initial", SEQ / "step1-hello-world-scaled-3-to-5"
HELLO = {"namespace": "default", "service": "hello-world", "port": "", "protocol": "TCP", "ip_family": "IPv4"}


def _rules(*paths):
    return parse_dumps([read_text(str(p)) for p in paths])


def _samples(text: str) -> dict[tuple[str, tuple], float]:
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def _get(samples, name, **labels):
    return samples.get((name, tuple(sorted(labels.items()))))


def _agent(rules, objects, node="node-a", **kw):
    return Agent(Readers(rules, objects, lambda rs: None, node), log=lambda m: None, **kw)


def test_snapshot_of_rules_behind_objects_has_the_finding_per_service_port():
    rs = _rules(STEP0 / "iptables-save.txt")
    state = parse_objects((STEP1 / "objects.json").read_text(), "objects.json")
    snap = build_snapshot(rs, state, "node-a", None)
    assert snap.findings_by_code == {("endpoints-mismatch", "error"): 1}
    ((labels, code, sev),) = snap.port_findings
    assert (labels, code, sev) == (("default", "hello-world", "", "TCP", "IPv4"), "endpoints-mismatch", "error")
    assert snap.endpoints[(("default", "hello-world", "", "TCP", "IPv4"), "cluster")] == 3
    ok = build_snapshot(_rules(STEP1 / "iptables-save.txt"), state, "node-a", None)
    assert ok.findings_by_code == {} and ok.endpoints[(labels, "cluster")] == 5


def test_every_metric_has_help_type_and_conventional_name():
    agent = _agent(lambda: (_rules(IPT / "iptables-save-counters.txt"), "file"), lambda: None, per_endpoint=True)
    assert agent.cycle()
    text = agent.exposition().decode()
    fams = {f.name: f for f in text_string_to_metric_families(text)}
    for name, (kind, _, labels) in METRICS.items():
        base = name[:-len("_total")] if kind == "counter" else name
        assert name.startswith("svcinspect_")
        assert (kind == "counter") == name.endswith("_total")
        if base in fams:
            assert fams[base].type == kind
    s = _samples(text)
    assert _get(s, "svcinspect_service_port_new_connections_total", **HELLO) == 3
    assert _get(s, "svcinspect_endpoint_new_connections_total", **HELLO, endpoint="10.244.1.11:8080") == 2
    assert _get(s, "svcinspect_endpoint_expected_share_ratio", **HELLO, endpoint="10.244.1.11:8080") == \
        pytest.approx(1 / 3)
    assert _get(s, "svcinspect_service_port_balance_verdict", **HELLO, verdict="not-enough-data") == 1
    assert _get(s, "svcinspect_findings", severity="error") == 0
    assert _get(s, "svcinspect_dataplane_info", mode="iptables", backend="file", ip_families="IPv4",
                node_name="node-a") == 1


def test_failing_read_keeps_last_good_figures_and_counts_the_error():
    good = _rules(IPT / "iptables-save.txt")
    answers = [good, EnvironmentProblem("iptables-nft-save failed: boom"), RuntimeError("bug"), good]

    def rules():
        a = answers.pop(0)
        if isinstance(a, Exception):
            raise a
        return a, "nft"

    agent = _agent(rules, lambda: None)
    assert agent.cycle() is True
    first = _samples(agent.exposition().decode())
    stamp = _get(first, "svcinspect_last_success_timestamp_seconds")
    assert agent.cycle() is False and agent.cycle() is False
    after = _samples(agent.exposition().decode())
    assert _get(after, "svcinspect_read_errors_total", stage="rules") == 2
    assert _get(after, "svcinspect_reads_total") == 3
    assert _get(after, "svcinspect_last_success_timestamp_seconds") == stamp
    assert _get(after, "svcinspect_service_port_endpoints", **HELLO, policy="cluster") == 3
    assert agent.healthy()[0] and "bug" in agent.healthy()[1]
    assert agent.cycle() is True


def test_objects_stage_failure_is_attributed():
    def objects():
        raise EnvironmentProblem("API server unreachable")
    agent = _agent(lambda: (_rules(IPT / "iptables-save.txt"), "nft"), objects)
    assert agent.cycle() is False
    s = _samples(agent.exposition().decode())
    assert _get(s, "svcinspect_read_errors_total", stage="objects") == 1
    assert _get(s, "svcinspect_read_errors_total", stage="rules") == 0
    assert _get(s, "svcinspect_service_port_endpoints", **HELLO, policy="cluster") is None


def test_http_metrics_and_healthz_on_loopback():
    agent = _agent(lambda: (_rules(IPT / "iptables-save.txt"), "nft"), lambda: None)
    server = make_server(agent, "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        assert urllib.request.urlopen(base + "/healthz").read().startswith(b"starting")
        agent.cycle()
        with urllib.request.urlopen(base + "/metrics") as r:
            assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
            s = _samples(r.read().decode())
        assert _get(s, "svcinspect_service_port_endpoints", **HELLO, policy="cluster") == 3
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(base + "/nope")
        assert e.value.code == 404
        agent.last_cycle_end -= 3600  # a wedged loop
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(base + "/healthz")
        assert e.value.code == 503
    finally:
        server.shutdown()


def test_textfile_is_replaced_atomically(tmp_path):
    path = tmp_path / "svcinspect.prom"
    path.write_text("old\n")
    write_textfile(str(path), b"new 1\n")
    assert path.read_text() == "new 1\n"
    assert [p.name for p in tmp_path.iterdir()] == ["svcinspect.prom"]  # no temp file left
    with pytest.raises(EnvironmentProblem, match="cannot write the textfile"):
        write_textfile(str(tmp_path / "no" / "dir.prom"), b"x")


def test_serve_once_cli(cli, tmp_path):
    out = tmp_path / "m.prom"
    r = cli("serve", "--once", "--rules", str(STEP0 / "iptables-save.txt"), "--objects", str(STEP1 / "objects.json"),
            "--node", "node-a", "--textfile", str(out))
    assert r.code == 0, r.err
    s = _samples(out.read_text())
    assert _get(s, "svcinspect_findings", severity="error") == 1
    assert _get(s, "svcinspect_service_port_findings", **HELLO, code="endpoints-mismatch", severity="error") == 1
    r = cli("serve", "--once", "--rules", str(tmp_path / "missing"))
    assert r.code == 3 and "rules: " in r.err and "no such file" in r.err
    assert _get(_samples(r.out), "svcinspect_read_errors_total", stage="rules") == 1
    r = cli("serve", "--listen", "nonsense", "--rules", str(STEP0 / "iptables-save.txt"))
    assert r.code == 2 and "HOST:PORT" in r.err
    r = cli("serve", "--once", "--netns", "x", "--rules", str(STEP0 / "iptables-save.txt"))
    assert r.code == 2 and "cannot be combined" in r.err


def test_textfile_loop_rewrites_each_cycle_and_stops_on_sigterm(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "svcinspect.prom"
    rules = tmp_path / "rules.txt"
    rules.write_text((STEP0 / "iptables-save.txt").read_text())
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    p = subprocess.Popen([sys.executable, "-m", "svcinspect", "serve", "--rules", str(rules), "--textfile", str(out),
                          "--interval", "0.2"], env=env, stderr=subprocess.PIPE, text=True)
    try:
        def reads():
            if not out.exists():
                return 0
            return _get(_samples(out.read_text()), "svcinspect_reads_total") or 0

        deadline = time.monotonic() + 60
        while reads() < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert reads() >= 2  # rewritten every cycle
        rules.unlink()  # the next reads fail: the file keeps the last good figures
        deadline = time.monotonic() + 60
        while (_get(_samples(out.read_text()), "svcinspect_read_errors_total", stage="rules") or 0) < 1 \
                and time.monotonic() < deadline:
            time.sleep(0.1)
        s = _samples(out.read_text())
        assert _get(s, "svcinspect_read_errors_total", stage="rules") >= 1
        assert _get(s, "svcinspect_service_port_endpoints", **HELLO, policy="cluster") == 3
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=30) == 0
        assert "no such file" in p.stderr.read()
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
