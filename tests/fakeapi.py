"""What the fake API servers of the kube-API tests share: a threaded HTTP
server on 127.0.0.1 only, a JSON answer, and a kubeconfig pointing at it."""

from __future__ import annotations

import json
import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def send(handler: BaseHTTPRequestHandler, code: int, body, ctype: str = "application/json") -> None:
    """Answer ``body`` (a document, or bytes as they are); a client that gave up is no error."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    try:
        handler.send_response(code)
        handler.send_header("Content-Type", ctype)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)
    except (BrokenPipeError, ConnectionResetError):
        pass


class LocalServer:
    """``handler`` served on an ephemeral port of 127.0.0.1 by a daemon thread."""

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)


@contextmanager
def serving(fake):
    """Run a fake (anything with ``.server`` and ``.thread``) for one test."""
    fake.thread.start()
    try:
        yield fake
    finally:
        fake.server.shutdown()
        fake.server.server_close()


def write_kubeconfig(tmp_path, server: str, token: str = "t", insecure: bool = False,
                     more_contexts: tuple = ()) -> str:
    """A kubeconfig with context "lab" (cluster "lab" at ``server``, bearer ``token``)."""
    path = tmp_path / "kubeconfig"
    cluster = {"server": server, **({"insecure-skip-tls-verify": True} if insecure else {})}
    path.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "lab",
        "clusters": [{"name": "lab", "cluster": cluster}],
        "users": [{"name": "viewer", "user": {"token": token}}],
        "contexts": [{"name": "lab", "context": {"cluster": "lab", "user": "viewer"}}, *more_contexts]}))
    return str(path)
