"""kube-proxy's conventions: chain-name hashes, chain kinds, comments, probabilities.

Everything release-specific lives here (see ``docs/kube-proxy-rules.md`` in the
shared reference): the names kube-proxy gives its chains, the comment texts it
has written from ~1.2 to today, and how it prints the probability cascade.
"""

from __future__ import annotations

import enum
import hashlib
import re
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache


def hash16(text: str) -> str:
    """First 16 base32 characters of SHA-256(text), as kube-proxy names chains.

    >>> hash16("ns1/svc1:p80" + "tcp")
    'XPGD46QRK7WJZT7O'
    """
    digest = hashlib.sha256(text.encode()).digest()
    b32 = _b32_16
    return b32(digest) if b32 is not None else _b32_16_py(digest)


def _b32_16_py(digest: bytes) -> str:
    """The first 16 characters of ``base64.b32encode(digest)`` (the compiled
    scanner's ``b32_16`` is the same function, where in use)."""
    # 16 base32 characters are exactly the first 10 bytes (base32 codes 5 bytes at a
    # time): eight 10-bit pairs of the 80-bit number, looked up in one table
    # (base64.b32encode is Python code, ~3 us a call; ``services`` hashes every port).
    n = int.from_bytes(digest[:10], "big")
    p = _B32_PAIRS
    return (p[n >> 70] + p[(n >> 60) & 1023] + p[(n >> 50) & 1023] + p[(n >> 40) & 1023]
            + p[(n >> 30) & 1023] + p[(n >> 20) & 1023] + p[(n >> 10) & 1023] + p[n & 1023])


_B32_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"  # RFC 4648, as base64.b32encode
_B32_PAIRS = tuple(a + b for a in _B32_ALPHABET for b in _B32_ALPHABET)
_b32_16 = None  # the compiled one while the scanner is in use (set by bulk)


def service_chain(prefix: str, spn: str, protocol: str) -> str:
    """``KUBE-SVC-``/``SVL``/``EXT``/``FW``/``XLB`` chain name of a service port."""
    return f"KUBE-{prefix}-" + hash16(spn + protocol.lower())


def endpoint_chain(spn: str, protocol: str, endpoint: str) -> str:
    """``KUBE-SEP-`` chain name; ``endpoint`` is ``IP:port`` or ``[IPv6]:port``."""
    return "KUBE-SEP-" + hash16(spn + protocol.lower() + endpoint)


def hash_candidates(spn: str) -> tuple[str, ...]:
    """Spellings of a service port name kube-proxy has hashed: releases before
    ~1.8 wrote an unnamed port as ``ns/name:`` (trailing colon)."""
    if ":" in spn.split("/", 1)[-1]:
        base, port = spn.rsplit(":", 1)
        return (spn,) if port else (base, spn)
    return (spn, spn + ":")


# Service ports nearly every cluster has, so that rules without comments
# (kube-proxy's large-cluster mode, old releases) still name them: their chain
# hashes are recomputed, never guessed.
WELL_KNOWN_SERVICE_PORTS: tuple[tuple[str, str], ...] = (
    ("default/kubernetes:https", "tcp"),
    ("kube-system/kube-dns:dns", "udp"),
    ("kube-system/kube-dns:dns-tcp", "tcp"),
    ("kube-system/kube-dns:metrics", "tcp"),
    ("kube-system/coredns:dns", "udp"),
    ("kube-system/coredns:dns-tcp", "tcp"),
    ("kube-system/coredns:metrics", "tcp"),
    ("kube-system/metrics-server:https", "tcp"),
    ("kube-system/metrics-server", "tcp"),
    ("kube-system/kubernetes-dashboard", "tcp"),
    ("kubernetes-dashboard/kubernetes-dashboard", "tcp"),
    ("kubernetes-dashboard/dashboard-metrics-scraper", "tcp"),
    ("ingress-nginx/ingress-nginx-controller:http", "tcp"),
    ("ingress-nginx/ingress-nginx-controller:https", "tcp"),
    ("ingress-nginx/ingress-nginx-controller-admission:https-webhook", "tcp"),
    ("kube-system/traefik:web", "tcp"),
    ("kube-system/traefik:websecure", "tcp"),
)


@lru_cache(maxsize=1)
def well_known_hashes() -> dict[str, tuple[str, str]]:
    """chain hash -> (service port name, protocol) for :data:`WELL_KNOWN_SERVICE_PORTS`.

    >>> well_known_hashes()[hash16("default/kubernetes:https" + "tcp")]
    ('default/kubernetes:https', 'tcp')
    """
    out: dict[str, tuple[str, str]] = {}
    for spn, proto in WELL_KNOWN_SERVICE_PORTS:
        for cand in hash_candidates(spn):
            out.setdefault(hash16(cand + proto), (spn, proto))
    return out


class ChainKind(enum.Enum):
    BUILTIN = "builtin"
    SERVICES = "services"            # KUBE-SERVICES (nat: dispatch; filter: reject/drop)
    NODEPORTS = "nodeports"          # KUBE-NODEPORTS
    EXTERNAL_SERVICES = "external-services"
    SVC = "svc"                      # cluster policy
    SVL = "svl"                      # local policy
    EXT = "ext"                      # external traffic
    FW = "fw"                        # LB source ranges
    XLB = "xlb"                      # pre-1.24 eTP=Local
    SEP = "sep"                      # one endpoint
    MARK_MASQ = "mark-masq"
    MARK_DROP = "mark-drop"
    POSTROUTING = "postrouting"      # KUBE-POSTROUTING
    FORWARD = "forward"              # KUBE-FORWARD
    PROXY_FIREWALL = "proxy-firewall"
    FIREWALL = "firewall"            # KUBE-FIREWALL (kubelet / kube-proxy)
    CANARY = "canary"
    KUBE_OTHER = "kube-other"        # other KUBE-* chains (kubelet, IPVS mode, hints)
    FOREIGN = "foreign"              # Docker, Calico, Flannel, Cilium, Istio, ...

    @property
    def per_service(self) -> bool:
        return self in _PER_SERVICE


_PER_SERVICE = {ChainKind.SVC, ChainKind.SVL, ChainKind.EXT, ChainKind.FW, ChainKind.XLB, ChainKind.SEP}
_PREFIX_KIND = {"SVC": ChainKind.SVC, "SVL": ChainKind.SVL, "EXT": ChainKind.EXT, "FW": ChainKind.FW,
                "XLB": ChainKind.XLB, "SEP": ChainKind.SEP}
_FIXED_KIND = {
    "KUBE-SERVICES": ChainKind.SERVICES, "KUBE-NODEPORTS": ChainKind.NODEPORTS,
    "KUBE-EXTERNAL-SERVICES": ChainKind.EXTERNAL_SERVICES, "KUBE-MARK-MASQ": ChainKind.MARK_MASQ,
    "KUBE-MARK-DROP": ChainKind.MARK_DROP, "KUBE-POSTROUTING": ChainKind.POSTROUTING,
    "KUBE-FORWARD": ChainKind.FORWARD, "KUBE-PROXY-FIREWALL": ChainKind.PROXY_FIREWALL,
    "KUBE-FIREWALL": ChainKind.FIREWALL, "KUBE-PROXY-CANARY": ChainKind.CANARY,
    "KUBE-KUBELET-CANARY": ChainKind.CANARY,
}
_BUILTINS = {"PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"}
_HASHED = re.compile(r"^KUBE-(SVC|SVL|EXT|FW|XLB|SEP)-([A-Z2-7]{16})$")


@lru_cache(maxsize=None)
def classify_chain(name: str) -> ChainKind:
    """What role a chain plays, from its name alone.

    >>> classify_chain("KUBE-SEP-SXIVWICOYRO3J4NJ")
    <ChainKind.SEP: 'sep'>
    """
    if name in _BUILTINS:
        return ChainKind.BUILTIN
    kind = _FIXED_KIND.get(name)
    if kind is not None:
        return kind
    m = _HASHED.match(name)
    if m:
        return _PREFIX_KIND[m.group(1)]
    if name.startswith("KUBE-"):
        return ChainKind.KUBE_OTHER
    return ChainKind.FOREIGN


def chain_hash(name: str) -> str | None:
    """The 16-character hash of a per-service chain, shared by SVC/SVL/EXT/FW/XLB."""
    m = _HASHED.match(name)
    return m.group(2) if m else None


class CommentRole(enum.Enum):
    CLUSTER_IP = "cluster IP"
    EXTERNAL_IP = "external IP"
    LOADBALANCER_IP = "loadbalancer IP"
    NODEPORT = "nodeport"                     # bare "<spn>" in KUBE-NODEPORTS (and SEP rules)
    SERVICE = "service"                       # bare "<spn>"
    ENDPOINT = "endpoint"                     # "<spn> -> <endpoint>"
    HEALTH_CHECK = "health check node port"
    NO_ENDPOINTS = "has no endpoints"
    NO_LOCAL_ENDPOINTS = "has no local endpoints"
    FIREWALL_DROP = "traffic not accepted by"
    FW_OTHER = "other traffic will be dropped"
    EXT_MASQ = "masquerade traffic for external destinations"
    EXT_POD = "pod traffic for external destinations"
    EXT_MASQ_LOCAL = "masquerade LOCAL traffic"
    EXT_ROUTE_LOCAL = "route LOCAL traffic"
    LB_REDIRECT = "redirect pods to cluster IP"  # old XLB text
    HOOK = "hook"                             # "kubernetes service portals" etc.
    OTHER = "other"


@dataclass(frozen=True, slots=True)
class CommentInfo:
    role: CommentRole
    spn: str | None = None
    endpoint: str | None = None


_SPN = r"(?P<spn>[a-z0-9]([-a-z0-9.]*[a-z0-9])?/[^\s:]+(?::[^\s]*)?)"
_COMMENT_PATTERNS: tuple[tuple[re.Pattern[str], CommentRole], ...] = tuple(
    (re.compile(p), role) for p, role in (
        (rf"^{_SPN} cluster IP$", CommentRole.CLUSTER_IP),
        (rf"^{_SPN} external IP$", CommentRole.EXTERNAL_IP),
        (rf"^{_SPN} loadbalancer IP$", CommentRole.LOADBALANCER_IP),
        (rf"^{_SPN} -> (?P<ep>\S+)$", CommentRole.ENDPOINT),
        (rf"^{_SPN} health check node port$", CommentRole.HEALTH_CHECK),
        (rf"^{_SPN} has no endpoints$", CommentRole.NO_ENDPOINTS),
        (rf"^{_SPN} has no local endpoints$", CommentRole.NO_LOCAL_ENDPOINTS),
        (rf"^{_SPN} traffic not accepted by \S+$", CommentRole.FIREWALL_DROP),
        (rf"^other traffic to {_SPN} will be dropped by \S+$", CommentRole.FW_OTHER),
        (rf"^masquerade traffic for {_SPN} external destinations$", CommentRole.EXT_MASQ),
        (rf"^pod traffic for {_SPN} external destinations$", CommentRole.EXT_POD),
        (rf"^masquerade LOCAL traffic for {_SPN} (external destinations|LB IP)$", CommentRole.EXT_MASQ_LOCAL),
        (rf"^route LOCAL traffic for {_SPN} (external destinations|LB IP)$", CommentRole.EXT_ROUTE_LOCAL),
        (r"^Redirect pods trying to reach external loadbalancer VIP to clusterIP$", CommentRole.LB_REDIRECT),
        (r"^kubernetes .*", CommentRole.HOOK),
        (rf"^{_SPN}$", CommentRole.SERVICE),
    )
)

assert all(" " in p.pattern.replace(_SPN, "") for p, _ in _COMMENT_PATTERNS[:-1]) and " " not in _SPN  # (parse_comment)


@lru_cache(maxsize=65536)
def parse_comment(text: str | None) -> CommentInfo | None:
    """Read a kube-proxy rule comment, any release.

    >>> parse_comment("default/web:http -> 10.244.1.5:8080")
    CommentInfo(role=<CommentRole.ENDPOINT: 'endpoint'>, spn='default/web:http', endpoint='10.244.1.5:8080')
    """
    if not text:
        return None
    # Every pattern but the last (a bare service port name) holds a blank: a
    # comment without one (every KUBE-NODEPORTS and KUBE-SEP comment) can match
    # only that one.
    for pattern, role in _COMMENT_PATTERNS if " " in text else _COMMENT_PATTERNS[-1:]:
        m = pattern.match(text)
        if m:
            spn = m.groupdict().get("spn")
            return CommentInfo(role, normalize_spn(spn) if spn else None, m.groupdict().get("ep"))
    return CommentInfo(CommentRole.OTHER)


def normalize_spn(spn: str) -> str:
    """``ns/name:`` (old releases, unnamed port) -> ``ns/name``."""
    return spn[:-1] if spn.endswith(":") else spn


def split_spn(spn: str) -> tuple[str, str, str]:
    """``ns/name:port`` -> (ns, name, port); port is '' when unnamed."""
    ns, rest = spn.split("/", 1)
    name, _, port = rest.partition(":")
    return ns, name, port


# --- the probability cascade --------------------------------------------------

@dataclass(frozen=True, slots=True)
class Probability:
    """A ``--probability`` value as printed, and what kube-proxy meant by it.

    kube-proxy writes 1/k with 10 decimals; the kernel stores it in 31 bits and
    prints it back with 11 (``0.33333333349``). ``exact`` is 1/k when the text is
    one of those renderings, else the decimal itself (hand-edited rules).
    """

    text: str
    exact: Fraction | None   # None: not a number (a corrupted or truncated dump)
    intended_k: int | None


_PROBABILITY = re.compile(r"[0-9]{0,40}(?:\.[0-9]{0,40})?(?:[eE][-+]?[0-9]{1,2})?\Z")


@lru_cache(maxsize=4096)
def interpret_probability(text: str) -> Probability:
    if not _PROBABILITY.match(text):  # Fraction("1e-9999999") would compute 10**9999999
        return Probability(text, None, None)
    try:
        value = Fraction(text)
    except (ValueError, ZeroDivisionError):
        return Probability(text, None, None)
    if not 0 <= value <= 1:
        return Probability(text, None, None)
    if value > 0:
        k = round(1 / value)
        if k >= 1 and abs(value - Fraction(1, k)) <= Fraction(1, 10**9):
            return Probability(text, Fraction(1, k), k)
    return Probability(text, value, None)


def cascade_shares(probabilities: list[Fraction | None]) -> list[Fraction]:
    """Exact share of each branch of a first-match cascade.

    ``None`` means unconditional. Branch i gets p_i times the product of
    (1 - p_j) for j < i; whatever is left after the last branch falls through.

    >>> [str(s) for s in cascade_shares([Fraction(1, 3), Fraction(1, 2), None])]
    ['1/3', '1/3', '1/3']
    """
    left = Fraction(1)
    out = []
    for p in probabilities:
        share = left if p is None else left * p
        out.append(share)
        left -= share
    return out
