"""deploy/ is valid: the Kubernetes manifests against the OpenAPI schemas that
kubernetes-validate ships (strict: unknown fields are errors), the Prometheus
Operator objects as far as possible without their CRD schemas, the rules and
scrape config with promtool, the dashboard's PromQL parsed by promtool, and the
DaemonSet's and ClusterRole's promises (host network, every node, read-only,
two capabilities, read-only API access to exactly what svcinspect lists)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest
import yaml

from conftest import ROOT

DEPLOY = ROOT / "deploy"
K8S_VERSION = "1.36.0"  # the release the fixtures were captured from


def _docs(path):
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


KUBE_FILES = sorted((DEPLOY / "kubernetes").glob("*.yaml"))
OPERATOR_FILES = [DEPLOY / "prometheus" / n for n in ("podmonitor.yaml", "servicemonitor.yaml", "prometheusrule.yaml")]


def _objects(kind):
    return [d for p in KUBE_FILES + OPERATOR_FILES for d in _docs(p) if d.get("kind") == kind]


@pytest.mark.parametrize("path", [p for p in KUBE_FILES if p.name != "kustomization.yaml"], ids=lambda p: p.name)
def test_manifest_validates_against_kubernetes_openapi(path):
    kv = pytest.importorskip("kubernetes_validate", reason="needs kubernetes-validate (the test extra)")
    for doc in _docs(path):
        kv.validate(doc, K8S_VERSION, strict=True)


def test_validator_would_catch_a_typo():
    kv = pytest.importorskip("kubernetes_validate", reason="needs kubernetes-validate (the test extra)")
    (ds,) = _objects("DaemonSet")
    ds["spec"]["template"]["spec"]["hostNetwrk"] = True
    with pytest.raises(kv.ValidationError, match="hostNetwrk"):
        kv.validate(ds, K8S_VERSION, strict=True)


def test_kustomization_lists_every_manifest():
    (k,) = _docs(DEPLOY / "kubernetes" / "kustomization.yaml")
    assert sorted(k["resources"]) == sorted(p.name for p in KUBE_FILES if p.name != "kustomization.yaml")


# --- Prometheus Operator objects: no CRD schema ships with kubernetes-validate -----
# Checked structurally: metadata against the Kubernetes ObjectMeta schema (wrapped
# in a ConfigMap), field names against the documented v1 API, selectors against the
# DaemonSet's pod labels, relabelings by promtool in an equivalent scrape config,
# and the PrometheusRule's groups by promtool check rules (below).

MONITOR_FIELDS = {"PodMonitor": ("podMetricsEndpoints", {"port", "path", "interval", "scrapeTimeout", "relabelings"}),
                  "ServiceMonitor": ("endpoints", {"port", "path", "interval", "scrapeTimeout", "relabelings"})}


@pytest.mark.parametrize("path", OPERATOR_FILES, ids=lambda p: p.name)
def test_operator_object_structure(path):
    kv = pytest.importorskip("kubernetes_validate", reason="needs kubernetes-validate (the test extra)")
    (doc,) = _docs(path)
    assert doc["apiVersion"] == "monitoring.coreos.com/v1"
    kv.validate({"apiVersion": "v1", "kind": "ConfigMap", "metadata": doc["metadata"]}, K8S_VERSION, strict=True)
    if doc["kind"] == "PrometheusRule":
        assert set(doc["spec"]) == {"groups"}
        return
    key, allowed = MONITOR_FIELDS[doc["kind"]]
    assert set(doc["spec"]) <= {"selector", "namespaceSelector", key}
    (ds,) = _objects("DaemonSet")
    pod_labels = ds["spec"]["template"]["metadata"]["labels"]
    assert doc["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    ports = {p["name"] for p in ds["spec"]["template"]["spec"]["containers"][0]["ports"]}
    for ep in doc["spec"][key]:
        assert set(ep) <= allowed and ep["port"] in ports
        for r in ep["relabelings"]:
            assert set(r) <= {"sourceLabels", "targetLabel", "action", "regex", "replacement", "separator"}


def test_servicemonitor_service_selects_the_pods():
    (svc,) = _objects("Service")
    (ds,) = _objects("DaemonSet")
    assert svc["spec"]["selector"].items() <= ds["spec"]["template"]["metadata"]["labels"].items()


def test_prometheusrule_has_the_groups_of_the_plain_rule_file():
    (rule,) = _objects("PrometheusRule")
    assert rule["spec"]["groups"] == yaml.safe_load((DEPLOY / "prometheus" / "alerts.yaml").read_text())["groups"]


def test_alerts_cover_drift_stale_and_skew():
    groups = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yaml").read_text())["groups"]
    alerts = {r["alert"]: r for g in groups for r in g["rules"]}
    assert alerts["SvcinspectRulesDrift"]["for"] == "10m"
    assert "svcinspect_findings" in alerts["SvcinspectRulesDrift"]["expr"]
    assert "svcinspect_last_success_timestamp_seconds" in alerts["SvcinspectExporterStale"]["expr"]
    assert "new-connections-skewed" in alerts["SvcinspectServiceSkewed"]["expr"]


# --- the DaemonSet's and the ClusterRole's promises ------------------------------

def test_daemonset_runs_everywhere_reads_only_with_two_capabilities():
    (ds,) = _objects("DaemonSet")
    spec = ds["spec"]["template"]["spec"]
    assert spec["hostNetwork"] is True
    assert {"operator": "Exists"} in spec["tolerations"]  # every taint, every node
    (c,) = spec["containers"]
    sc = c["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"], "add": ["NET_ADMIN", "NET_RAW"]}
    assert c["args"][0] == "serve" and "--api" in c["args"]
    assert {"cpu", "memory"} <= set(c["resources"]["requests"]) and "memory" in c["resources"]["limits"]
    assert spec["serviceAccountName"] == _objects("ServiceAccount")[0]["metadata"]["name"]


def test_clusterrole_reads_exactly_what_svcinspect_lists():
    from svcinspect.sources import kubeapi

    (role,) = _objects("ClusterRole")
    granted = set()
    for rule in role["rules"]:
        assert set(rule["verbs"]) <= {"get", "list", "watch"}
        for group in rule["apiGroups"]:
            for res in rule["resources"]:
                granted.add(res + ("." + group if group else ""))
    read = {r.plural for r in (kubeapi._SERVICES, kubeapi._SLICES, kubeapi._NODES)}
    assert granted == read


# --- promtool ----------------------------------------------------------------------

needs_promtool = pytest.mark.skipif(shutil.which("promtool") is None,
                                    reason="needs promtool (apt-get install prometheus)")


def _promtool(*args):
    return subprocess.run(["promtool", *args], capture_output=True, text=True, timeout=60)


@needs_promtool
def test_promtool_check_rules():
    r = _promtool("check", "rules", str(DEPLOY / "prometheus" / "alerts.yaml"))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "SUCCESS: 5 rules found" in r.stdout


@needs_promtool
def test_promtool_check_scrape_config(tmp_path):
    cfg = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    shutil.copy(DEPLOY / "prometheus" / "alerts.yaml", tmp_path / "alerts.yaml")
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(cfg))
    r = _promtool("check", "config", str(tmp_path / "prometheus.yml"))
    if r.returncode != 0 and "kubernetes_sd_configs not found" in r.stdout + r.stderr:
        # Debian's Prometheus is built without Kubernetes service discovery: check
        # everything else (relabelling, rule files) with the discovery swapped out.
        for job in cfg["scrape_configs"]:
            job.pop("kubernetes_sd_configs")
            job["static_configs"] = [{"targets": ["127.0.0.1:9842"]}]
        (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(cfg))
        r = _promtool("check", "config", str(tmp_path / "prometheus.yml"))
    assert r.returncode == 0, r.stdout + r.stderr


def dashboard_exprs() -> list[tuple[str, str]]:
    """(panel title, PromQL) of every dashboard target, Grafana variables replaced
    by what "All" and a 1-minute rate interval give."""
    dash = json.loads((DEPLOY / "grafana" / "svcinspect-dashboard.json").read_text())
    out = []
    for panel in dash["panels"]:
        for t in panel["targets"]:
            expr = t["expr"].replace('"$node"', '".*"').replace('"$namespace"', '".*"')
            out.append((panel["title"], expr.replace("$__rate_interval", "1m")))
    return out


@needs_promtool
def test_every_dashboard_query_is_valid_promql(tmp_path):
    exprs = dashboard_exprs()
    assert len(exprs) >= 12 and all("$" not in e for _, e in exprs)
    assert len({t for t, _ in exprs}) == len(exprs)  # one query per panel, titles unique
    rules = {"groups": [{"name": "dashboard", "rules": [{"record": f"svcinspect:dashboard_panel_{i}", "expr": e}
                                                         for i, (_, e) in enumerate(exprs)]}]}
    (tmp_path / "d.yaml").write_text(yaml.safe_dump(rules))
    r = _promtool("check", "rules", str(tmp_path / "d.yaml"))
    assert r.returncode == 0, r.stdout + r.stderr


def test_dashboard_uses_only_exported_metrics():
    from svcinspect.serve.metrics import METRICS

    names = set()
    for _, e in dashboard_exprs():
        names |= set(re.findall(r"\b(svcinspect_[a-z_]+)", e))
    assert names and names <= set(METRICS)


# --- kubectl plugin ------------------------------------------------------------------

def test_kubectl_plugin_entry_point(capsys):
    import configparser

    from svcinspect.cli import _State, kubectl_main

    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    scripts = dict(line.split(" = ") for line in cfg["options.entry_points"]["console_scripts"].strip().splitlines())
    # kubectl finds kubectl-NAME on PATH; kubectl_console is kubectl_main ended by cli.leave, after prestart
    assert scripts["kubectl-svcinspect"] == "svcinspect.entry:kubectl_console"
    assert scripts["svcinspect"] == "svcinspect.entry:console"
    _State.debug = _State.verbose = False
    with pytest.raises(SystemExit) as exc:
        kubectl_main(["balance", "--help"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.startswith("Usage: kubectl svcinspect balance [OPTIONS] [SERVICE]")
    with pytest.raises(SystemExit) as exc:
        kubectl_main(["balance", "--rules", str(ROOT / "nonexistent")])
    assert exc.value.code == 2 and "svcinspect: error:" in capsys.readouterr().err
