"""kube-proxy conventions: hashes, chain kinds, comments, probabilities."""

from fractions import Fraction

import pytest

from svcinspect.dataplane.iptables.kubeproxy import (
    ChainKind,
    CommentRole,
    cascade_shares,
    classify_chain,
    endpoint_chain,
    hash16,
    interpret_probability,
    parse_comment,
    service_chain,
)


def test_hash_check_values_from_the_reference():
    assert hash16("ns1/svc1:p80" + "tcp") == "XPGD46QRK7WJZT7O"
    assert hash16("ns1/svc1:p80" + "tcp" + "10.180.0.1:80") == "SXIVWICOYRO3J4NJ"
    assert hash16("ns1/svc1" + "tcp") == "AQI2S6QIMU7PVVRP"


def test_hashes_match_the_real_dump():
    assert service_chain("SVC", "default/hello-world", "tcp") == "KUBE-SVC-DZ6LTOHRG6HQWHYE"
    assert service_chain("FW", "default/lb-ranges:http", "TCP") == "KUBE-FW-QQNROL5V7PXTXB4C"
    assert endpoint_chain("default/hello-world", "tcp", "10.244.1.10:8080") == "KUBE-SEP-TTFDDCQ6CXER73EZ"
    assert endpoint_chain("default/dual-stack:http", "tcp", "[fd00:10:244:1::130]:8080") == "KUBE-SEP-3IORRR5F35KQJH32"


@pytest.mark.parametrize("name,kind", [
    ("KUBE-SVC-DZ6LTOHRG6HQWHYE", ChainKind.SVC), ("KUBE-SVL-XZPXZFXLZG6VBDNQ", ChainKind.SVL),
    ("KUBE-EXT-DZ6LTOHRG6HQWHYE", ChainKind.EXT), ("KUBE-FW-QQNROL5V7PXTXB4C", ChainKind.FW),
    ("KUBE-XLB-5DULF7GDAT3CNN73", ChainKind.XLB), ("KUBE-SEP-TTFDDCQ6CXER73EZ", ChainKind.SEP),
    ("KUBE-SERVICES", ChainKind.SERVICES), ("KUBE-NODEPORTS", ChainKind.NODEPORTS),
    ("KUBE-MARK-MASQ", ChainKind.MARK_MASQ), ("KUBE-POSTROUTING", ChainKind.POSTROUTING),
    ("KUBE-PROXY-FIREWALL", ChainKind.PROXY_FIREWALL), ("KUBE-IPTABLES-HINT", ChainKind.KUBE_OTHER),
    ("DOCKER", ChainKind.FOREIGN), ("cali-PREROUTING", ChainKind.FOREIGN), ("PREROUTING", ChainKind.BUILTIN),
    ("KUBE-SVC-notahash", ChainKind.KUBE_OTHER),
])
def test_classify_chain(name, kind):
    assert classify_chain(name) is kind


@pytest.mark.parametrize("text,role,spn,ep", [
    ("default/hello-world cluster IP", CommentRole.CLUSTER_IP, "default/hello-world", None),
    ("default/extip:http external IP", CommentRole.EXTERNAL_IP, "default/extip:http", None),
    ("default/lb-plain:https loadbalancer IP", CommentRole.LOADBALANCER_IP, "default/lb-plain:https", None),
    ("default/web-multi:http -> 10.244.1.30:8080", CommentRole.ENDPOINT, "default/web-multi:http", "10.244.1.30:8080"),
    ("default/v6-only:http -> [fd00:10:244:1::131]:8080", CommentRole.ENDPOINT, "default/v6-only:http",
     "[fd00:10:244:1::131]:8080"),
    ("default/no-endpoints:http has no endpoints", CommentRole.NO_ENDPOINTS, "default/no-endpoints:http", None),
    ("default/etp-local-none:http has no local endpoints", CommentRole.NO_LOCAL_ENDPOINTS, "default/etp-local-none:http", None),
    ("default/etp-local-has:http health check node port", CommentRole.HEALTH_CHECK, "default/etp-local-has:http", None),
    ("masquerade LOCAL traffic for infra/statsd:dogstatsd LB IP", CommentRole.EXT_MASQ_LOCAL, "infra/statsd:dogstatsd", None),
    ("pod traffic for default/etp-local-has:http external destinations", CommentRole.EXT_POD, "default/etp-local-has:http", None),
    ("kube-system/monitoring-grafana:", CommentRole.SERVICE, "kube-system/monitoring-grafana", None),
    ("kubernetes service portals", CommentRole.HOOK, None, None),
])
def test_parse_comment(text, role, spn, ep):
    info = parse_comment(text)
    assert (info.role, info.spn, info.endpoint) == (role, spn, ep)


@pytest.mark.parametrize("text,exact,k", [
    ("0.33333333349", Fraction(1, 3), 3), ("0.3333333333", Fraction(1, 3), 3),
    ("0.14285714272", Fraction(1, 7), 7), ("0.20000000019", Fraction(1, 5), 5),
    ("0.50000000000", Fraction(1, 2), 2), ("0.7", Fraction(7, 10), None), ("0.3", Fraction(3, 10), None),
])
def test_probability_rendering_is_recognised(text, exact, k):
    p = interpret_probability(text)
    assert (p.exact, p.intended_k) == (exact, k)


def test_cascade_shares_are_exact():
    assert cascade_shares([Fraction(1, 4), Fraction(1, 3), Fraction(1, 2), None]) == [Fraction(1, 4)] * 4
    assert cascade_shares([Fraction(7, 10), None]) == [Fraction(7, 10), Fraction(3, 10)]
    left = cascade_shares([Fraction(1, 2), Fraction(1, 2)])
    assert left == [Fraction(1, 2), Fraction(1, 4)] and sum(left) == Fraction(3, 4)
