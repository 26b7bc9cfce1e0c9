"""A misbehaving API server cannot keep svcinspect reading (issue 12): the real
`kubernetes` client against a local server on 127.0.0.1 that repeats continue
tokens, never ends its list, trickles its answer or sends an endless body."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, urlparse

import pytest

from conftest import IPT, ROOT
from fakeapi import LocalServer, send, serving, write_kubeconfig
from svcinspect.errors import EnvironmentProblem, InputError
from svcinspect.sources import kubeapi, limits
from svcinspect.sources.kubeapi import ApiRequest, load_cluster_state

pytest.importorskip("kubernetes")

SERVICE = {"metadata": {"name": "web", "namespace": "default"},
           "spec": {"clusterIP": "10.96.10.10", "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}}


def _list(kind: str, items: list, token: str | None = None) -> dict:
    meta = {"resourceVersion": "1", **({"continue": token} if token else {})}
    return {"kind": kind, "apiVersion": "v1", "metadata": meta, "items": items}


class HostileApi:
    """``behaviour[resource]`` is a function (handler, query) that answers."""

    def __init__(self) -> None:
        self.behaviour: dict = {}
        self.requests: list[str] = []
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):  # noqa: N802
                api.requests.append(self.path)
                url = urlparse(self.path)
                resource = url.path.strip("/").split("/")[-1]
                how = api.behaviour.get(resource)
                try:
                    if how is not None:
                        return how(self, parse_qs(url.query))
                    kind = {"services": "ServiceList", "endpointslices": "EndpointSliceList", "nodes": "NodeList",
                            "endpoints": "EndpointsList"}[resource]
                    self.json(200, _list(kind, []))
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def json(self, code: int, doc: dict) -> None:
                send(self, code, doc)

        local = LocalServer(Handler)
        self.server, self.url, self.thread = local.server, local.url, local.thread

    def kubeconfig(self, tmp_path, server: str | None = None, insecure: bool = False) -> str:
        return write_kubeconfig(tmp_path, server or self.url, insecure=insecure)


@pytest.fixture
def api():
    with serving(HostileApi()) as fake:
        yield fake


@pytest.fixture
def budget():
    saved = (limits.LIMITS.max_input_size, limits.LIMITS.command_timeout)
    yield limits
    limits.configure(*saved)


def test_a_repeated_continue_token_stops(api, tmp_path):
    api.behaviour["services"] = lambda h, q: h.json(200, _list("ServiceList", [SERVICE], token="again"))
    with pytest.raises(EnvironmentProblem, match="continue token it gave before"):
        load_cluster_state(ApiRequest(api.kubeconfig(tmp_path), request_timeout=5))
    assert sum(p.startswith("/api/v1/services") for p in api.requests) == 2


def test_a_list_that_never_ends_stops_at_the_page_cap(api, tmp_path, monkeypatch):
    monkeypatch.setattr(kubeapi, "MAX_PAGES", 20)
    counter = iter(range(10**9))
    api.behaviour["services"] = lambda h, q: h.json(200, _list("ServiceList", [], token=f"t{next(counter)}"))
    with pytest.raises(EnvironmentProblem, match="more than 20 pages"):
        load_cluster_state(ApiRequest(api.kubeconfig(tmp_path), request_timeout=5))
    assert sum(p.startswith("/api/v1/services") for p in api.requests) == 20


def _trickle(h, q, pause=0.3, total=60):
    body = json.dumps(_list("ServiceList", [SERVICE])).encode().ljust(total, b" ")
    h.send_response(200)
    h.send_header("Content-Type", "application/json")
    h.send_header("Content-Length", str(len(body)))
    h.end_headers()
    for i in range(len(body)):
        h.wfile.write(body[i:i + 1])
        h.wfile.flush()
        time.sleep(pause)


def test_a_trickling_answer_is_stopped_by_the_request_timeout(api, tmp_path):
    # One byte every 0.3 s never trips a per-read timeout; 300+ bytes take 90 s.
    api.behaviour["services"] = lambda h, q: _trickle(h, q, total=300)
    t0 = time.monotonic()
    with pytest.raises(EnvironmentProblem, match=r"did not answer list services at cluster scope within 1s"):
        load_cluster_state(ApiRequest(api.kubeconfig(tmp_path), request_timeout=1))
    assert time.monotonic() - t0 < 10


def _endless(h, q):
    h.send_response(200)
    h.send_header("Content-Type", "application/json")
    h.send_header("Transfer-Encoding", "chunked")
    h.end_headers()
    h.wfile.write(b'5\r\n{"a":\r\n')
    chunk = b" " * 65536
    while True:
        h.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))


def test_an_endless_body_is_stopped_at_max_input_size(api, tmp_path, budget):
    budget.configure(max_input_size=4 << 20)
    api.behaviour["services"] = _endless
    with pytest.raises(EnvironmentProblem, match=r"larger than --max-input-size \(4 MiB\)"):
        load_cluster_state(ApiRequest(api.kubeconfig(tmp_path), request_timeout=30))


def test_the_whole_reading_has_a_deadline(api, tmp_path, budget):
    budget.configure(command_timeout=1.0)
    counter = iter(range(10**9))

    def slow_pages(h, q):
        time.sleep(0.3)
        h.json(200, _list("ServiceList", [], token=f"t{next(counter)}"))

    api.behaviour["services"] = slow_pages
    t0 = time.monotonic()
    with pytest.raises(EnvironmentProblem, match=r"took longer than 1s \(--command-timeout\)"):
        load_cluster_state(ApiRequest(api.kubeconfig(tmp_path), request_timeout=5))
    assert time.monotonic() - t0 < 5


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "0"])
def test_request_timeout_nan_and_inf_are_refused(cli, api, tmp_path, value):
    r = cli("check", "--rules", str(IPT / "iptables-save.txt"), "--kubeconfig", api.kubeconfig(tmp_path),
            "--request-timeout", value)
    assert r.code == 2 and "finite number of seconds" in r.err and "Traceback" not in r.err
    assert api.requests == []


def test_request_timeout_nan_in_the_library(api, tmp_path):
    with pytest.raises(InputError, match="--request-timeout must be a finite number"):
        load_cluster_state(ApiRequest(api.kubeconfig(tmp_path), request_timeout=float("nan")))


def test_forbidden_endpoints_names_endpoints(api, tmp_path):
    api.behaviour["endpointslices"] = lambda h, q: h.json(404, {"kind": "Status", "code": 404, "message": "nope"})
    api.behaviour["endpoints"] = lambda h, q: h.json(403, {"kind": "Status", "code": 403,
                                                          "message": "endpoints is forbidden"})
    with pytest.raises(EnvironmentProblem) as err:
        load_cluster_state(ApiRequest(api.kubeconfig(tmp_path), request_timeout=5))
    assert str(err.value).startswith("forbidden: list endpoints at cluster scope")
    assert "grant get/list on services, endpoints and nodes" in str(err.value)


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl to make a test certificate")
def test_insecure_skip_tls_verify_warns_once(tmp_path):
    import ssl

    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "1", "-subj", "/CN=127.0.0.1"], check=True, capture_output=True)
    fake = HostileApi()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(cert), str(key))
    fake.server.socket = ctx.wrap_socket(fake.server.socket, server_side=True)
    fake.thread.start()
    try:
        server = fake.url.replace("http:", "https:")
        proc = subprocess.run([sys.executable, "-m", "svcinspect", "check", "--rules", str(IPT / "iptables-save.txt"),
                               "--kubeconfig", fake.kubeconfig(tmp_path, server=server, insecure=True),
                               "--fail-on", "never"],
                              capture_output=True, text=True, timeout=120, cwd=ROOT,
                              env={"PYTHONPATH": str(ROOT), "PATH": os.environ.get("PATH", "/usr/bin:/bin")})
    finally:
        fake.server.shutdown()
        fake.server.server_close()
    assert proc.returncode == 0, proc.stderr
    assert len(fake.requests) >= 3
    assert "InsecureRequestWarning" not in proc.stderr and "Unverified HTTPS" not in proc.stderr
    assert (proc.stdout + proc.stderr).count("certificate was not verified") == 1
