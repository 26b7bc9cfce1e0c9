"""Read Services, EndpointSlices and Nodes from the Kubernetes API server.

The only module that imports ``kubernetes`` (lazily: it is the optional extra
``svcinspect[kube]``). Answers are fetched raw (``_preload_content=False``) and
parsed by :mod:`svcinspect.parse.kube_objects`, so files and the API share one
code path. Only ``list`` calls are made (RBAC: get/list on services,
endpointslices.discovery.k8s.io, nodes; endpoints on old clusters).

Every failure becomes one line: :class:`EnvironmentProblem` (exit 3) for an
unreachable or misbehaving server, TLS trouble, 401/403, timeouts and garbage
answers; :class:`InputError` (exit 2) for a bad kubeconfig or context.
"""

from __future__ import annotations

import json
import os
import time
import warnings
from dataclasses import dataclass
from typing import Any

from svcinspect.errors import EnvironmentProblem, InputError
from svcinspect.model.kube import ClusterState
from svcinspect.parse.kube_objects import merge_states, parse_documents

PAGE_SIZE = 500
# Bounds on what one command reads from the API server (a broken or hostile
# server must not keep it reading): pages of one list, and the answers' total
# size (--max-input-size); the whole reading also has --command-timeout.
MAX_PAGES = 1000


@dataclass(frozen=True, slots=True)
class ApiRequest:
    kubeconfig: str | None = None
    context: str | None = None
    namespace: str | None = None
    request_timeout: float = 10.0


@dataclass(frozen=True, slots=True)
class _Resource:
    api: str          # "core" or "discovery"
    plural: str       # for messages and RBAC: services, endpointslices.discovery.k8s.io, nodes
    all_ns: str       # client method listing across namespaces (or cluster-scoped)
    namespaced: str | None


_SERVICES = _Resource("core", "services", "list_service_for_all_namespaces", "list_namespaced_service")
_SLICES = _Resource("discovery", "endpointslices.discovery.k8s.io", "list_endpoint_slice_for_all_namespaces",
                    "list_namespaced_endpoint_slice")
_ENDPOINTS = _Resource("core", "endpoints", "list_endpoints_for_all_namespaces", "list_namespaced_endpoints")
_NODES = _Resource("core", "nodes", "list_node", None)


def load_cluster_state(request: ApiRequest) -> ClusterState:
    """List Services, EndpointSlices (or v1 Endpoints) and Nodes through the API.

    Each request has ``request_timeout`` seconds for its connection and its
    whole body (a server trickling bytes is stopped); all of them together
    have ``--command-timeout`` and ``--max-input-size``; a list may take at
    most :data:`MAX_PAGES` pages and never repeat a ``continue`` token."""
    from svcinspect.sources.limits import check_timeout

    check_timeout(request.request_timeout, "--request-timeout")
    k8s = _import_kubernetes()
    api_client, server = _api_client(k8s, request)
    with warnings.catch_warnings():
        # urllib3 warns on every request without TLS verification: said once, below.
        warnings.filterwarnings("ignore", message="Unverified HTTPS request")
        state = _load(k8s, api_client, server, request)
    if server.startswith("https:") and not api_client.configuration.verify_ssl:
        note = (f"the API server's certificate was not verified (insecure-skip-tls-verify in the kubeconfig): "
                f"anyone between this host and {server} could have answered")
        state = ClusterState(state.services, state.slices, state.nodes, state.notes + (note,), state.sources)
    return state


class _Spent:
    """What one command has used of its API budget."""

    def __init__(self) -> None:
        from svcinspect.sources.limits import LIMITS

        self.deadline = time.monotonic() + LIMITS.command_timeout
        self.timeout = LIMITS.command_timeout
        self.bytes = 0
        self.limit = LIMITS.max_input_size


def _load(k8s, api_client, server: str, request: ApiRequest) -> ClusterState:
    spent = _Spent()
    try:
        core = k8s.client.CoreV1Api(api_client)
        discovery = k8s.client.DiscoveryV1Api(api_client)
        apis = {"core": core, "discovery": discovery}
        source = f"api:{server}"
        states = [_list(k8s, apis, _SERVICES, request, server, source, spent)]
        try:
            states.append(_list(k8s, apis, _SLICES, request, server, source, spent))
        except _NotFound:
            # discovery.k8s.io/v1 arrived in 1.21: older servers only have v1 Endpoints.
            state = _list(k8s, apis, _ENDPOINTS, request, server, source, spent)
            states.append(ClusterState(state.services, state.slices, state.nodes,
                                       state.notes + (f"{server} has no discovery.k8s.io/v1 EndpointSlices; "
                                                      "read v1 Endpoints instead",), state.sources))
        states.append(_list(k8s, apis, _NODES, request, server, source, spent))
    finally:
        api_client.close()
    return merge_states(states)


class _NotFound(Exception):
    pass


def _import_kubernetes():
    try:
        import kubernetes
        import kubernetes.client
        import kubernetes.config
    except ImportError:
        raise EnvironmentProblem("reading the API needs the kubernetes Python client: "
                                 "pip install 'svcinspect[kube]'") from None
    return kubernetes


def _api_client(k8s, request: ApiRequest):
    """An ApiClient for the kubeconfig/context, or in-cluster when running in a pod."""
    cfg = k8s.client.Configuration()
    config_exc = k8s.config.config_exception.ConfigException
    path = request.kubeconfig
    in_cluster = (path is None and request.context is None and "KUBERNETES_SERVICE_HOST" in os.environ
                  and not os.environ.get("KUBECONFIG"))
    try:
        if in_cluster:
            k8s.config.load_incluster_config(client_configuration=cfg)
        else:
            if path is not None and not os.path.isfile(path):
                raise InputError(f"{path}: no such kubeconfig file")
            k8s.config.load_kube_config(config_file=path, context=request.context, client_configuration=cfg,
                                        persist_config=False)
    except config_exc as exc:
        where = "in-cluster config" if in_cluster else (path or "kubeconfig (KUBECONFIG or ~/.kube/config)")
        raise InputError(f"{where}: {_one_line(str(exc))}") from None
    except (OSError, ValueError, TypeError) as exc:
        raise InputError(f"{path or 'kubeconfig'}: cannot use it: {_one_line(str(exc))}") from None
    # Fail fast with one clear message rather than retry silently: this is a diagnostic tool.
    cfg.retries = False
    return k8s.client.ApiClient(cfg), cfg.host


def _list(k8s, apis: dict[str, Any], res: _Resource, request: ApiRequest, server: str, source: str,
          spent: _Spent | None = None) -> ClusterState:
    spent = spent or _Spent()
    api = apis[res.api]
    scoped = request.namespace is not None and res.namespaced is not None
    scope = f"in namespace {request.namespace}" if scoped else "at cluster scope"
    what = f"list {res.plural} {scope}"
    docs = []
    token = None
    tokens: set[str] = set()
    while True:
        if len(docs) >= MAX_PAGES:
            raise EnvironmentProblem(f"{server} answered {what} with more than {MAX_PAGES} pages of {PAGE_SIZE}: "
                                     f"stopped (a server that never ends its list?)")
        if time.monotonic() > spent.deadline:
            raise EnvironmentProblem(f"reading the objects from {server} took longer than {spent.timeout:g}s "
                                     f"(--command-timeout); stopped at {what}")
        kwargs: dict[str, Any] = {"limit": PAGE_SIZE, "_preload_content": False,
                                  "_request_timeout": request.request_timeout}
        if token:
            kwargs["_continue"] = token
        try:
            started = time.monotonic()
            if scoped:
                resp = getattr(api, res.namespaced)(request.namespace, **kwargs)
            else:
                resp = getattr(api, res.all_ns)(**kwargs)
            body = _read_body(resp, min(started + request.request_timeout, spent.deadline), spent)
        except k8s.client.exceptions.ApiException as exc:
            if exc.status == 404 and res is _SLICES:
                raise _NotFound() from None
            raise _api_error(exc, what, server, request, res) from None
        except _TooSlow:
            if time.monotonic() > spent.deadline:
                raise EnvironmentProblem(f"reading the objects from {server} took longer than {spent.timeout:g}s "
                                         f"(--command-timeout); stopped at {what}") from None
            raise EnvironmentProblem(f"{server} did not answer {what} within {request.request_timeout:g}s "
                                     "(--request-timeout; the answer was still arriving)") from None
        except _TooLarge:
            from svcinspect.sources.limits import describe_size
            raise EnvironmentProblem(f"{server}'s answers to {what} (and before) are larger than --max-input-size "
                                     f"({describe_size(spent.limit)}): stopped") from None
        except Exception as exc:   # urllib3 and socket errors: classified by name, no urllib3 import needed
            raise _transport_error(exc, what, server, request) from None
        try:
            doc = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise EnvironmentProblem(f"{server} answered {what} with something that is not JSON "
                                     f"({_preview(body)}): is this a Kubernetes API server?") from None
        if not isinstance(doc, dict) or not isinstance(doc.get("items", []), list) or "kind" not in doc:
            raise EnvironmentProblem(f"{server} answered {what} with JSON that is not a Kubernetes list "
                                     f"({_preview(body)})")
        docs.append(doc)
        token = (doc.get("metadata") or {}).get("continue")
        if not token:
            break
        if not isinstance(token, str) or token in tokens:
            raise EnvironmentProblem(f"{server} answered {what} with a continue token it gave before "
                                     f"({_preview(str(token))}): stopped instead of reading the same pages forever")
        tokens.add(token)
    try:
        return parse_documents(docs, source)
    except InputError as exc:
        raise EnvironmentProblem(f"malformed answer to {what}: {exc}") from None


class _TooSlow(Exception):
    pass


class _TooLarge(Exception):
    pass


def _read_body(resp, deadline: float, spent: _Spent) -> bytes:
    """The answer's body, read as it arrives: stopped at ``deadline`` (a body
    trickling in keeps each socket read within the read timeout) and when the
    command's answers exceed their size budget."""
    read = getattr(resp, "read1", None) or resp.read
    chunks: list[bytes] = []
    try:
        while True:
            if time.monotonic() > deadline:
                raise _TooSlow()
            chunk = read(1 << 16)
            if not chunk:
                break
            spent.bytes += len(chunk)
            if spent.bytes > spent.limit:
                raise _TooLarge()
            chunks.append(chunk)
    finally:
        close = getattr(resp, "close", None)
        if close is not None:
            close()
    return b"".join(chunks)


def _api_error(exc, what: str, server: str, request: ApiRequest, res: _Resource | None = None) -> EnvironmentProblem:
    status = exc.status or 0
    message = _status_message(exc.body)
    if status == 0:
        reason = str(exc.reason or "")
        if "SSL" in reason or "certificate" in reason.lower():
            return EnvironmentProblem(f"TLS problem talking to {server} ({what}): {_tls_reason(reason)}; check the "
                                      "kubeconfig's certificate-authority (or the server name)")
        return EnvironmentProblem(f"cannot {what} at {server}: {_one_line(reason)}")
    if status == 401:
        return EnvironmentProblem(f"{server} refused the credentials (401 Unauthorized) for {what}: the token or "
                                  "client certificate in the kubeconfig is missing, expired or wrong")
    if status == 403:
        detail = f" (server says: {message})" if message else ""
        needed = ("services", "endpoints" if res is _ENDPOINTS else "endpointslices.discovery.k8s.io", "nodes")
        return EnvironmentProblem(f"forbidden: {what}{detail}; grant get/list on {needed[0]}, {needed[1]} and "
                                  f"{needed[2]} (see the README's RBAC section)")
    if status == 404:
        return EnvironmentProblem(f"{server} has no API for {what} (404 Not Found)")
    detail = f": {message}" if message else ""
    return EnvironmentProblem(f"{server} answered {status} {exc.reason or ''} to {what}{detail}".replace("  ", " "))


def _transport_error(exc: Exception, what: str, server: str, request: ApiRequest) -> EnvironmentProblem:
    # MaxRetryError wraps the real cause in .reason.
    cause = getattr(exc, "reason", None) if type(exc).__name__ == "MaxRetryError" else exc
    cause = cause if isinstance(cause, BaseException) else exc
    names = {type(cause).__name__, type(exc).__name__} | {c.__name__ for c in type(cause).__mro__}
    text = _one_line(str(cause))
    # urllib3's NewConnectionError subclasses ConnectTimeoutError: look at it first.
    if type(cause).__name__ in ("NewConnectionError", "NameResolutionError", "ConnectionRefusedError"):
        return EnvironmentProblem(f"cannot reach the API server at {server} ({what}): {text}")
    if names & {"ReadTimeoutError", "ConnectTimeoutError", "TimeoutError", "socket.timeout", "TimeoutStateError"}:
        return EnvironmentProblem(f"{server} did not answer {what} within {request.request_timeout:g}s "
                                  "(--request-timeout)")
    if "SSLError" in names or "CertificateError" in names:
        return EnvironmentProblem(f"TLS problem talking to {server} ({what}): {_tls_reason(text)}")
    if names & {"NewConnectionError", "ConnectionError", "ConnectionRefusedError", "NameResolutionError",
                "ProtocolError", "OSError", "ProxyError", "LocationParseError", "URLSchemeUnknown"}:
        return EnvironmentProblem(f"cannot reach the API server at {server} ({what}): {text}")
    return EnvironmentProblem(f"{what} at {server} failed: {type(cause).__name__}: {text}")


def _status_message(body: Any) -> str:
    """The ``message`` of a Kubernetes Status body, if the answer is one."""
    if not body:
        return ""
    try:
        doc = json.loads(body)
    except (ValueError, TypeError):
        return _preview(body)
    if isinstance(doc, dict) and isinstance(doc.get("message"), str):
        return _one_line(doc["message"])
    return ""


def _tls_reason(text: str) -> str:
    for word in ("CERTIFICATE_VERIFY_FAILED", "certificate verify failed", "WRONG_VERSION_NUMBER",
                 "hostname mismatch", "doesn't match"):
        if word in text:
            i = text.index(word)
            return _one_line(text[i:])[:160]
    return _one_line(text)[:160]


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _preview(body: Any) -> str:
    if isinstance(body, bytes):
        body = body.decode("utf-8", errors="replace")
    text = _one_line(body or "")
    return repr(text[:60] + ("..." if len(text) > 60 else "")) if text else "an empty answer"
