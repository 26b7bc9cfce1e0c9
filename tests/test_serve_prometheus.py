"""A real Prometheus scrapes a real `svcinspect serve` reading a real kernel.

The exporter reads the node namespace of the lab (tests/netlab.py: client, node,
endpoints, all created and deleted here) loaded with the real kube-proxy
sequence captures, and re-reads an objects file the test swaps. Prometheus
(Debian's package, on 127.0.0.1, temp config and storage) scrapes it every
second and evaluates the alerts of deploy/prometheus/alerts.yaml with their
`for:` durations and the stale threshold scaled from minutes to seconds (the
expressions are otherwise those of the file). The test, through Prometheus'
HTTP API:

- drift: rules step0 with the objects of step1 (hello-world scaled 3 -> 5) is
  an error finding on hello-world, SvcinspectRulesDrift fires; loading step1's
  rules clears it; step2's objects (web-multi deleted) make web-multi's ports
  stale until step2's rules are loaded;
- skew: 40 real connections to the affinity Service from one client all land on
  one endpoint; the counters say so and SvcinspectServiceSkewed fires;
- every dashboard panel's query and every alert's expression return what the
  phase implies;
- stale: the node namespace disappears, reads fail, the last good figures stay,
  the error counter grows and SvcinspectExporterStale fires.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request

import pytest
import yaml

from conftest import IPT, ROOT, netns_unavailable_reason
from netlab import Lab
from test_deploy import dashboard_exprs

pytestmark = [
    pytest.mark.netns,
    pytest.mark.skipif(netns_unavailable_reason() is not None, reason=netns_unavailable_reason() or ""),
    pytest.mark.skipif(shutil.which("prometheus") is None, reason="needs prometheus (apt-get install prometheus)"),
    pytest.mark.skipif(shutil.which("conntrack") is None, reason="needs conntrack-tools (apt-get install conntrack)"),
]

SEQ = IPT / "sequence"
STEPS = ["step0-initial", "step1-hello-world-scaled-3-to-5", "step2-web-multi-deleted"]
ALERTS = yaml.safe_load((ROOT / "deploy" / "prometheus" / "alerts.yaml").read_text())["groups"]
ALERT_EXPR = {r["alert"]: r["expr"] for g in ALERTS for r in g["rules"]}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _scaled_alerts() -> dict:
    """The alert file with `for:` in seconds instead of minutes and the stale
    threshold 3 s instead of 300 s; expressions otherwise unchanged."""
    groups = json.loads(json.dumps(ALERTS))
    for g in groups:
        for r in g["rules"]:
            r["for"] = "2s"
            r["expr"] = r["expr"].replace("> 300", "> 3")
    return {"groups": groups}


class Prom:
    def __init__(self, tmp, target: str):
        self.port = _free_port()
        (tmp / "alerts.yaml").write_text(yaml.safe_dump(_scaled_alerts()))
        cfg = {"global": {"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "1s"},
               "rule_files": [str(tmp / "alerts.yaml")],
               "scrape_configs": [{"job_name": "svcinspect", "static_configs": [
                   {"targets": [target], "labels": {"node": "node-a"}}]}]}
        (tmp / "prometheus.yml").write_text(yaml.safe_dump(cfg))
        check = subprocess.run(["promtool", "check", "config", str(tmp / "prometheus.yml")], capture_output=True,
                               text=True, timeout=60)
        assert check.returncode == 0, check.stdout + check.stderr
        self.proc = subprocess.Popen(
            ["prometheus", f"--config.file={tmp / 'prometheus.yml'}", f"--storage.tsdb.path={tmp / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"],
            stdout=subprocess.DEVNULL, stderr=open(tmp / "prometheus.log", "w"))
        wait_for(lambda: self._ready(), "prometheus ready")

    def _ready(self) -> bool:
        try:
            return urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=1).status == 200
        except OSError:
            return False

    def query(self, expr: str) -> list[dict]:
        url = f"http://127.0.0.1:{self.port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        doc = json.load(urllib.request.urlopen(url, timeout=5))
        assert doc["status"] == "success", doc
        return doc["data"]["result"]

    def value(self, expr: str) -> float | None:
        res = self.query(expr)
        return float(res[0]["value"][1]) if res else None

    def firing(self) -> set[str]:
        return {r["metric"]["alertname"] for r in self.query('ALERTS{alertstate="firing"}')}

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


def wait_for(pred, what: str, timeout: float = 40.0):
    deadline = time.monotonic() + timeout
    while True:
        got = pred()
        if got:
            return got
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.25)


def _restore(lab: Lab, step: str) -> None:
    lab.node.restore((SEQ / step / "iptables-save.txt").read_text(), 4, "legacy")
    lab.node.restore((SEQ / step / "ip6tables-save.txt").read_text(), 6, "legacy")


def _objects(path, step: str) -> None:
    tmp = path.with_suffix(".tmp")
    shutil.copy(SEQ / step / "objects.json", tmp)
    os.replace(tmp, path)  # the exporter never reads half a file


@pytest.fixture
def stack(tmp_path):
    lab = Lab((SEQ / STEPS[0] / "iptables-save.txt").read_text())
    procs = []
    try:
        lab.node.restore((SEQ / STEPS[0] / "ip6tables-save.txt").read_text(), 6, "legacy")
        objects = tmp_path / "objects.json"
        _objects(objects, STEPS[0])
        port = _free_port()
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        serve = subprocess.Popen([sys.executable, "-m", "svcinspect", "serve", "--netns", lab.node.name,
                                  "--objects", str(objects), "--node", "node-a", "--interval", "1",
                                  "--listen", f"127.0.0.1:{port}"], env=env, stdout=subprocess.DEVNULL,
                                 stderr=open(tmp_path / "serve.log", "w"))
        procs.append(serve)
        prom = Prom(tmp_path, f"127.0.0.1:{port}")
        yield lab, prom, objects, serve
    finally:
        for p in procs:
            p.terminate()
            p.wait(timeout=10)
        if "prom" in locals():
            prom.close()
        lab.close()


HELLO = 'namespace="default", service="hello-world"'


def test_prometheus_sees_findings_appear_and_clear_and_the_skew(stack, tmp_path):
    lab, prom, objects, serve = stack
    # --- clean: rules and objects of step0 agree -----------------------------------
    wait_for(lambda: prom.value('svcinspect_findings{severity="error"}') == 0, "the first scrape")
    assert prom.value('svcinspect_service_port_endpoints{%s, policy="cluster", ip_family="IPv4"}' % HELLO) == 3
    assert prom.value("svcinspect_objects_compared_service_ports") > 20
    assert prom.value('up{job="svcinspect"}') == 1
    info = prom.query("svcinspect_dataplane_info")[0]["metric"]
    assert (info["backend"], info["node_name"], info["ip_families"]) == ("legacy", "node-a", "IPv4,IPv6")
    for name in ALERT_EXPR:
        assert prom.query(ALERT_EXPR[name]) == [], name  # nothing to alert about yet

    # --- skew: one client, the affinity Service, 40 connections ----------------------
    client, seen = lab.connect("10.96.70.10", 80, 40)
    (endpoint,) = seen["made"]
    wait_for(lambda: prom.value('svcinspect_service_port_balance_verdict{service="affinity", '
                                'verdict="new-connections-skewed", ip_family="IPv4"}') == 1, "the skew verdict")
    assert prom.value('svcinspect_service_port_new_connections_total{service="affinity", ip_family="IPv4"}') == 40
    assert prom.value('svcinspect_service_port_open_connections{service="affinity", ip_family="IPv4"}') == 40
    assert prom.value('svcinspect_service_port_share_skew_ratio{service="affinity", ip_family="IPv4"}') == \
        pytest.approx(3.0)  # all on one of three endpoints
    wait_for(lambda: "SvcinspectServiceSkewed" in prom.firing(), "SvcinspectServiceSkewed firing")

    # --- drift: step1's objects (hello-world has 5 endpoints), step0's rules -----------
    _objects(objects, STEPS[1])
    wait_for(lambda: prom.value('svcinspect_findings{severity="error"}') == 1, "the drift finding")
    assert prom.value('svcinspect_service_port_findings{%s, code="endpoints-mismatch", severity="error"}'
                      % HELLO) == 1
    wait_for(lambda: "SvcinspectRulesDrift" in prom.firing(), "SvcinspectRulesDrift firing")
    drift = prom.query(ALERT_EXPR["SvcinspectRulesDrift"])
    assert [(r["metric"]["node"], r["value"][1]) for r in drift] == [("node-a", "1")]
    skew = prom.query(ALERT_EXPR["SvcinspectServiceSkewed"])
    assert [(r["metric"]["service"], r["metric"]["port"]) for r in skew] == [("affinity", "http")]
    for name in ("SvcinspectExporterStale", "SvcinspectExporterDown", "SvcinspectServiceOpenConnectionsSkewed"):
        assert prom.query(ALERT_EXPR[name]) == [], name
    # every dashboard panel has data now; the ones with a known answer give it
    wait_for(lambda: prom.query('rate(svcinspect_service_port_new_connections_total[1m]) > 0'), "a rate")
    panels = {title: prom.query(expr) for title, expr in dashboard_exprs()}
    empty = [t for t, res in panels.items() if not res]
    assert not empty, f"dashboard panels without data: {empty}"

    def scalar(title):
        (r,) = panels[title]
        return float(r["value"][1])

    assert scalar("Nodes reporting") == 1 and scalar("Nodes with drift") == 1 and scalar("Stale agents") == 0
    assert scalar("Skewed service ports") == 1
    assert [r["metric"]["node"] for r in panels["Drifting nodes"]] == ["node-a"]
    failing = {(r["metric"]["service"], r["metric"]["code"]) for r in panels["Failing service ports"]}
    assert failing == {("hello-world", "endpoints-mismatch")}
    eps = {(r["metric"]["service"], r["metric"]["ip_family"], r["metric"]["policy"]): float(r["value"][1])
           for r in panels["Endpoints per Service"]}
    assert eps[("hello-world", "IPv4", "cluster")] == 3
    assert {r["metric"]["service"] for r in panels["Share skew per Service"]} >= {"affinity"}
    client.stdin.close()

    # --- kube-proxy catches up: step1's rules clear the finding -------------------------
    _restore(lab, STEPS[1])
    wait_for(lambda: prom.value('svcinspect_findings{severity="error"}') == 0, "the finding to clear")
    assert prom.value('svcinspect_service_port_endpoints{%s, policy="cluster", ip_family="IPv4"}' % HELLO) == 5
    wait_for(lambda: "SvcinspectRulesDrift" not in prom.firing(), "SvcinspectRulesDrift resolved")
    assert prom.query(ALERT_EXPR["SvcinspectRulesDrift"]) == []

    # --- step2: web-multi deleted in the API, still in the rules, then gone ------------
    _objects(objects, STEPS[2])
    stale = wait_for(lambda: prom.query('svcinspect_service_port_findings{service="web-multi", '
                                        'code="stale-service-port"}'), "web-multi stale")
    assert {r["metric"]["port"] for r in stale} == {"http", "metrics"}
    _restore(lab, STEPS[2])
    wait_for(lambda: prom.value('svcinspect_findings{severity="error"}') == 0, "step2 clean")
    assert prom.query('svcinspect_service_port_endpoints{service="web-multi"}') == []

    # --- the node's namespace disappears: reads fail, last good figures stay ------------
    errors = prom.value('svcinspect_read_errors_total{stage="rules"}')
    lab.node.close()
    wait_for(lambda: prom.value('svcinspect_read_errors_total{stage="rules"}') > errors + 2, "read errors")
    assert serve.poll() is None  # the exporter is still running
    assert prom.value('svcinspect_service_port_endpoints{%s, policy="cluster", ip_family="IPv4"}' % HELLO) == 5
    wait_for(lambda: "SvcinspectExporterStale" in prom.firing(), "SvcinspectExporterStale firing")
    assert "cannot enter" in (tmp_path / "serve.log").read_text() or \
        "namespace" in (tmp_path / "serve.log").read_text()
