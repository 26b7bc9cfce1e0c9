"""The API source with the real `kubernetes` client against a small HTTP server on
127.0.0.1 that answers list calls with the real objects of the fixture (split per
kind into the API's list shapes), and 401/403/404/slow/garbage answers on demand."""

from __future__ import annotations

import json
import time
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, urlparse

import pytest

from conftest import IPT
from fakeapi import LocalServer, send, serving, write_kubeconfig

from svcinspect.errors import EXIT_ENVIRONMENT, EXIT_INPUT, EnvironmentProblem, InputError
from svcinspect.sources.kubeapi import ApiRequest, load_cluster_state

pytest.importorskip("kubernetes")

OBJECTS = json.loads((IPT / "objects.json").read_text())
_LISTS = {"Service": ("ServiceList", "v1"), "EndpointSlice": ("EndpointSliceList", "discovery.k8s.io/v1"),
          "Node": ("NodeList", "v1")}


def _items(kind: str, namespace: str | None = None) -> list[dict]:
    out = []
    for item in OBJECTS["items"]:
        if item["kind"] != kind:
            continue
        if namespace and item["metadata"].get("namespace") != namespace:
            continue
        # The API server's list items carry no kind/apiVersion; the list does.
        out.append({k: v for k, v in item.items() if k not in ("kind", "apiVersion")})
    return out


def _endpoints_items(namespace: str | None = None) -> list[dict]:
    """v1 Endpoints made from the fixture's slices (what an old cluster would serve)."""
    out = []
    for sl in _items("EndpointSlice", namespace):
        if sl["addressType"] != "IPv4":
            continue
        ready = [e for e in sl.get("endpoints") or [] if e.get("conditions", {}).get("ready", True)]
        not_ready = [e for e in sl.get("endpoints") or [] if not e.get("conditions", {}).get("ready", True)]
        addr = lambda e: {"ip": e["addresses"][0], **({"nodeName": e["nodeName"]} if "nodeName" in e else {}),  # noqa: E731
                          **({"targetRef": e["targetRef"]} if "targetRef" in e else {})}
        subset = {"addresses": [addr(e) for e in ready], "notReadyAddresses": [addr(e) for e in not_ready],
                  "ports": [{k: v for k, v in p.items() if k in ("name", "port", "protocol")}
                            for p in sl.get("ports") or []]}
        out.append({"metadata": {"name": sl["metadata"]["labels"]["kubernetes.io/service-name"],
                                 "namespace": sl["metadata"]["namespace"]}, "subsets": [subset]})
    return out


class FakeApi:
    """Routes: /api/v1/{services,nodes,endpoints}, /apis/discovery.k8s.io/v1/endpointslices,
    and their /namespaces/NS/ variants. ``override`` maps a resource name to a
    behaviour: ("status", code, body), ("sleep", seconds) or ("garbage", bytes)."""

    def __init__(self) -> None:
        self.token = "good-token"
        self.override: dict[str, tuple] = {}
        self.page: int | None = None
        self.requests: list[str] = []
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep pytest output clean
                pass

            def do_GET(self):  # noqa: N802
                api.requests.append(self.path)
                url = urlparse(self.path)
                q = parse_qs(url.query)
                parts = url.path.strip("/").split("/")
                ns = parts[parts.index("namespaces") + 1] if "namespaces" in parts else None
                resource = parts[-1]
                if self.headers.get("Authorization") != f"Bearer {api.token}":
                    return self.send(401, _status(401, "Unauthorized", "Unauthorized"))
                how = api.override.get(resource)
                if how and how[0] == "status":
                    return self.send(how[1], how[2])
                if how and how[0] == "sleep":
                    time.sleep(how[1])
                if how and how[0] == "garbage":
                    return self.send(200, how[1], "application/json")
                if resource == "endpoints":
                    return self.send(200, _list("EndpointsList", "v1", _endpoints_items(ns)))
                kind = {"services": "Service", "endpointslices": "EndpointSlice", "nodes": "Node"}.get(resource)
                if kind is None:
                    return self.send(404, _status(404, "NotFound", "the server could not find the requested resource"))
                items = _items(kind, ns)
                start = int(q.get("continue", ["0"])[0])
                size = min(int(q.get("limit", [len(items)])[0]), api.page or len(items))
                page = items[start:start + size]
                doc = _list(*_LISTS[kind], page)
                if start + size < len(items):
                    doc["metadata"]["continue"] = str(start + size)
                self.send(200, doc)

            def send(self, code, body, ctype="application/json"):
                send(self, code, body, ctype)

        local = LocalServer(Handler)
        self.server, self.url, self.thread = local.server, local.url, local.thread

    def kubeconfig(self, tmp_path, token: str | None = None, server: str | None = None) -> str:
        return write_kubeconfig(tmp_path, server or self.url, token or self.token, more_contexts=(
            {"name": "other", "context": {"cluster": "lab", "user": "viewer", "namespace": "x"}},))


def _list(kind: str, api_version: str, items: list[dict]) -> dict:
    return {"kind": kind, "apiVersion": api_version, "metadata": {"resourceVersion": "123"}, "items": items}


def _status(code: int, reason: str, message: str) -> dict:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message,
            "reason": reason, "code": code}


@pytest.fixture
def api():
    with serving(FakeApi()) as fake:
        yield fake


def test_lists_services_slices_and_nodes_like_the_file(api, tmp_path):
    from svcinspect.parse.kube_objects import parse_objects

    state = load_cluster_state(ApiRequest(api.kubeconfig(tmp_path)))
    from_file = parse_objects((IPT / "objects.json").read_text(), "objects.json")
    assert len(state.services) == 28 and len(state.slices) == 27 and [n.name for n in state.nodes] == ["node-a", "node-b"]
    # Same model as the file, apart from where it came from.
    assert {(s.ref, s.cluster_ips, s.ports) for s in state.services} == \
        {(s.ref, s.cluster_ips, s.ports) for s in from_file.services}
    assert {(s.name, s.endpoints) for s in state.slices} == {(s.name, s.endpoints) for s in from_file.slices}
    assert state.services[0].source == f"api:{api.url}"
    assert any(p.startswith("/apis/discovery.k8s.io/v1/endpointslices") for p in api.requests)
    assert state.notes == ()


def test_namespace_narrows_namespaced_lists(api, tmp_path):
    state = load_cluster_state(ApiRequest(api.kubeconfig(tmp_path), namespace="kube-system"))
    assert [s.ref for s in state.services] == ["kube-system/kube-dns"]
    assert {s.namespace for s in state.slices} == {"kube-system"}
    assert any(p.startswith("/api/v1/namespaces/kube-system/services") for p in api.requests)
    assert any(p.startswith("/api/v1/nodes") for p in api.requests)   # nodes are cluster-scoped


def test_follows_continue_tokens(api, tmp_path):
    api.page = 5
    state = load_cluster_state(ApiRequest(api.kubeconfig(tmp_path)))
    assert len(state.services) == 28
    assert sum(p.startswith("/api/v1/services") for p in api.requests) == 6


def test_context_selects_kubeconfig_context_and_unknown_context_is_a_one_line_input_error(api, tmp_path):
    cfg = api.kubeconfig(tmp_path)
    assert len(load_cluster_state(ApiRequest(cfg, context="other")).services) == 28
    with pytest.raises(InputError) as err:
        load_cluster_state(ApiRequest(cfg, context="nope"))
    assert "nope" in str(err.value) and "\n" not in str(err.value)


def test_forbidden_names_the_verb_and_resource(api, tmp_path):
    api.override["endpointslices"] = ("status", 403, _status(
        403, "Forbidden", 'endpointslices.discovery.k8s.io is forbidden: User "system:serviceaccount:default:viewer" '
                          'cannot list resource "endpointslices" in API group "discovery.k8s.io" at the cluster scope'))
    with pytest.raises(EnvironmentProblem) as err:
        load_cluster_state(ApiRequest(api.kubeconfig(tmp_path)))
    msg = str(err.value)
    assert msg.startswith("forbidden: list endpointslices.discovery.k8s.io at cluster scope")
    assert "system:serviceaccount:default:viewer" in msg and "\n" not in msg
    assert err.value.exit_code == EXIT_ENVIRONMENT


def test_forbidden_in_a_namespace_says_which_namespace(api, tmp_path):
    api.override["services"] = ("status", 403, _status(403, "Forbidden", "services is forbidden"))
    with pytest.raises(EnvironmentProblem, match="^forbidden: list services in namespace default"):
        load_cluster_state(ApiRequest(api.kubeconfig(tmp_path), namespace="default"))


def test_bad_token_is_401(api, tmp_path):
    with pytest.raises(EnvironmentProblem, match=r"refused the credentials \(401 Unauthorized\) for list services"):
        load_cluster_state(ApiRequest(api.kubeconfig(tmp_path, token="wrong")))


def test_slow_answer_times_out_with_the_timeout_named(api, tmp_path):
    api.override["nodes"] = ("sleep", 3)
    t0 = time.monotonic()
    with pytest.raises(EnvironmentProblem) as err:
        load_cluster_state(ApiRequest(api.kubeconfig(tmp_path), request_timeout=0.5))
    assert time.monotonic() - t0 < 2.5          # no silent retries
    assert "did not answer list nodes at cluster scope within 0.5s (--request-timeout)" in str(err.value)


def test_endpoints_fallback_when_discovery_is_missing(api, tmp_path):
    api.override["endpointslices"] = ("status", 404, _status(404, "NotFound", "the server could not find it"))
    state = load_cluster_state(ApiRequest(api.kubeconfig(tmp_path)))
    assert any("no discovery.k8s.io/v1 EndpointSlices; read v1 Endpoints" in n for n in state.notes)
    assert any("using" in n and "v1 Endpoints" in n for n in state.notes)
    hw = state.service("default", "hello-world")
    eps = [e for sl in state.slices_for(hw) for e in sl.endpoints]
    assert sorted(e.addresses[0] for e in eps) == ["10.244.1.10", "10.244.1.11", "10.244.2.10"]
    assert all(sl.from_endpoints for sl in state.slices)
    mixed = [e for sl in state.slices_for(state.service("default", "mixed-readiness")) for e in sl.endpoints]
    assert sorted((e.addresses[0], e.conditions.is_ready) for e in mixed) == [
        ("10.244.1.120", True), ("10.244.2.120", False), ("10.244.2.121", False)]


@pytest.mark.parametrize("body,words", [
    (b"<html>hello</html>", "not JSON"),
    (b'{"foo": 1}', "not a Kubernetes list"),
    (json.dumps(_list("ServiceList", "v1", [{"metadata": {"name": "x", "namespace": "d"},
                                               "spec": {"ports": [{"port": "eighty"}]}}])).encode(),
     "spec.ports[0].port: expected an integer"),
])
def test_garbage_answers_are_environment_errors(api, tmp_path, body, words):
    api.override["services"] = ("garbage", body)
    with pytest.raises(EnvironmentProblem) as err:
        load_cluster_state(ApiRequest(api.kubeconfig(tmp_path)))
    assert words in str(err.value) and "\n" not in str(err.value)


def test_unreachable_server(api, tmp_path):
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()   # nothing listens there now
    with pytest.raises(EnvironmentProblem, match=f"cannot reach the API server at http://127.0.0.1:{port}"):
        load_cluster_state(ApiRequest(api.kubeconfig(tmp_path, server=f"http://127.0.0.1:{port}")))


def test_tls_problem_is_named(api, tmp_path):
    # An https URL to a plain-HTTP server: the TLS handshake fails.
    with pytest.raises(EnvironmentProblem, match="^TLS problem talking to https://127.0.0.1"):
        load_cluster_state(ApiRequest(api.kubeconfig(tmp_path, server=api.url.replace("http:", "https:")),
                                      request_timeout=3))


def test_missing_kubeconfig_file_is_input_error(tmp_path):
    with pytest.raises(InputError, match="no such kubeconfig file") as err:
        load_cluster_state(ApiRequest(str(tmp_path / "nope")))
    assert err.value.exit_code == EXIT_INPUT


def test_missing_client_names_the_extra(monkeypatch, tmp_path):
    import builtins
    real = builtins.__import__

    def no_kubernetes(name, *args, **kwargs):
        if name == "kubernetes" or name.startswith("kubernetes."):
            raise ImportError(name)
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_kubernetes)
    with pytest.raises(EnvironmentProblem, match=r"pip install 'svcinspect\[kube\]'"):
        load_cluster_state(ApiRequest(str(tmp_path / "x")))


# --- through the CLI --------------------------------------------------------------------

def test_check_against_the_api_gives_no_findings_on_the_consistent_fixture(api, tmp_path, cli):
    r = cli("check", "--rules", str(IPT / "iptables-save.txt"), "--rules", str(IPT / "ip6tables-save.txt"),
            "--kubeconfig", api.kubeconfig(tmp_path), "--node", "node-a", "-o", "json")
    assert r.code == 0, r.err
    doc = json.loads(r.out)
    assert doc["findings"] == [] and doc["checked"] == 30 and doc["withObjects"] is True


def test_check_with_forbidden_api_is_one_line_exit_3(api, tmp_path, cli):
    api.override["nodes"] = ("status", 403, _status(403, "Forbidden", 'nodes is forbidden: User "u" cannot list'))
    r = cli("check", "--rules", str(IPT / "iptables-save.txt"), "--kubeconfig", api.kubeconfig(tmp_path),
            "--node", "node-a")
    assert r.code == 3
    assert r.err.strip().startswith("svcinspect: error: forbidden: list nodes at cluster scope")
    assert len(r.err.strip().splitlines()) == 1 and "Traceback" not in r.err
