"""The fast paths of ``services`` give the answers of their pure-Python references.

- ``_scan.uniform_shares`` (compiled) against ``bulk._uniform_shares`` on every
  cascade of every fixture and of the real dump, and on hand-made cascades that
  must be declined (a missing or DNAT-less endpoint chain, a comment that
  disagrees with the DNAT, a cascade not yet known or known to be uneven);
- ``services._fast_shares`` against ``services._uniform_endpoint_shares``
  (what ``_finish`` used before), with either scanner;
- ``kubeproxy.hash16`` against base64's own base32 encoder.

The whole-command comparisons (every command, fast paths on and off) are in
test_perf_equivalence.py.
"""

from __future__ import annotations

import base64
import hashlib
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import IPT, ALL_RULE_FILES
from svcinspect import perf
from svcinspect.dataplane.iptables import bulk, services
from svcinspect.dataplane.iptables.kubeproxy import hash16
from svcinspect.dataplane.iptables.parse import parse_iptables_save
from svcinspect.model.service import EndpointShare

native = bulk.native_scanner
needs_native = pytest.mark.skipif(native is None, reason="the compiled scanner svcinspect.dataplane.iptables._scan is not "
                                                         "built (no C compiler at install time?): nothing to compare")

RULES = ALL_RULE_FILES
SEP = "KUBE-SEP-ABCDEFGHIJKLMN%02d"


def _scans():
    """(fixture, NatScan) of every nat table the bulk pass reads."""
    for path in [*RULES, IPT / "iptables-save.txt"]:
        try:
            rs = parse_iptables_save(path.read_text(errors="replace"), path.name)
        except Exception:  # not a dump (a README, an nft ruleset): nothing to scan
            continue
        for table in rs.tables:
            if table.name == "nat":
                scan = bulk.scan_nat(table)
                if scan is not None and scan.cascades:
                    yield path.name, scan


def _known(rows_list) -> dict:
    """What ``services._fast_shares`` learns: every cascade's share or None."""
    known: dict = {}
    for rows in rows_list:
        cascade = [r for r in rows if r[4] is None]
        if cascade:
            probs = tuple(r[3] for r in cascade)
            known[probs] = services._one_in(len(probs)) if services._uniform_probabilities(probs) else None
    return known


def _same(a, b) -> None:
    """Equal answers, and the share the very object both were given (the JSON
    renderer caches by object)."""
    assert a == b
    if a is not None and a[0] is not None:
        assert [type(e) for e in a[0]] == [EndpointShare] * len(a[0])
        assert all(x.share is y.share for x, y in zip(a[0], b[0]))


SCANS = list(_scans())


def test_fixtures_have_cascades_to_compare():
    assert len(SCANS) > 5
    assert sum(len(scan.cascades) for _, scan in SCANS) > 50


@needs_native
@pytest.mark.parametrize("name,scan", SCANS, ids=[n for n, _ in SCANS])
def test_compiled_uniform_shares_on_every_fixture_cascade(name, scan):
    known = _known(scan.cascades.values())
    answered = 0
    for chain, rows in scan.cascades.items():
        for k in (known, {}):  # learnt, and not yet known
            py = bulk._uniform_shares(rows, scan.dnat, EndpointShare, k)
            c = native.uniform_shares(rows, scan.dnat, EndpointShare, k)
            _same(c, py)
            answered += py is not None and py[0] is not None
    assert answered or name != "iptables-save.txt"


def _rows(n, probs=None, said=None, affinity=None):
    probs = probs or [f"{1 / (n - i):.10f}"[:12] if i < n - 1 else None for i in range(n)]
    rows = [(SEP % i, 10 + i, None, probs[i], None, said[i] if said else f"10.0.0.{i}:80") for i in range(n)]
    if affinity is not None:
        rows = [(SEP % i, 1 + i, None, None, affinity, None) for i in range(n)] + rows
    return rows


def _dnat(n):
    return {SEP % i: f"10.0.0.{i}:80" for i in range(n)}


KUBE_PROXY_3 = ["0.33333333349", "0.50000000000", None]  # what kube-proxy prints for 3 endpoints


def _cases():
    third = services._one_in(3)
    known = {tuple(KUBE_PROXY_3): third, ("0.90000000000", "0.50000000000", None): None}
    rows = _rows(3, KUBE_PROXY_3)
    missing = _dnat(3)
    del missing[SEP % 1]
    no_dnat = dict(_dnat(3), **{SEP % 2: None})
    yield "uniform", rows, _dnat(3), known
    yield "affinity", _rows(3, KUBE_PROXY_3, affinity=10800), _dnat(3), known
    yield "affinity-last-wins", [(SEP % 0, 1, None, None, 5, None)] + _rows(3, KUBE_PROXY_3, affinity=7), _dnat(3), known
    yield "only-affinity", [(SEP % 0, 1, None, None, 5, None)], _dnat(3), known
    yield "empty", [], _dnat(3), known
    yield "not-yet-known", rows, _dnat(3), {}
    yield "uneven", _rows(3, ["0.90000000000", "0.50000000000", None]), _dnat(3), known
    yield "sep-not-read", rows, missing, known
    yield "sep-without-dnat", rows, no_dnat, known
    yield "comment-disagrees", _rows(3, KUBE_PROXY_3, said=["10.0.0.0:80", "10.9.9.9:80", None]), _dnat(3), known
    yield "comment-empty-or-none", _rows(3, KUBE_PROXY_3, said=["", None, "10.0.0.2:80"]), _dnat(3), known
    yield "one-endpoint", _rows(1, [None]), _dnat(1), {(None,): services._one_in(1)}


CASES = list(_cases())


@pytest.mark.parametrize("name,rows,dnat,known", CASES, ids=[c[0] for c in CASES])
def test_reference_uniform_shares(name, rows, dnat, known):
    """What the reference answers, case by case (the compiled one must agree below)."""
    got = bulk._uniform_shares(rows, dnat, EndpointShare, known)
    if name in ("uniform", "affinity", "affinity-last-wins", "comment-empty-or-none", "one-endpoint"):
        shares, affinity = got
        n = len([r for r in rows if r[4] is None])
        assert [e.endpoint for e in shares] == [dnat[SEP % i] for i in range(n)]
        assert all(e.share == Fraction(1, n) for e in shares)
        assert affinity == {"affinity": 10800, "affinity-last-wins": 7}.get(name)
    elif name == "not-yet-known":
        assert got == (None, tuple(KUBE_PROXY_3))
    else:
        assert got is None


@needs_native
@pytest.mark.parametrize("name,rows,dnat,known", CASES, ids=[c[0] for c in CASES])
def test_compiled_uniform_shares_hand_made(name, rows, dnat, known):
    _same(native.uniform_shares(rows, dnat, EndpointShare, known),
          bulk._uniform_shares(rows, dnat, EndpointShare, known))


@needs_native
@pytest.mark.parametrize("args", [
    (None, {}, EndpointShare, {}), ([], None, EndpointShare, {}), ([], {}, EndpointShare, None),
    ([(1, 2)], {}, EndpointShare, {}), ([("a",) * 7], {}, EndpointShare, {}), ([[1, 2, 3, 4, 5, 6]], {}, EndpointShare, {}),
    (_rows(3, KUBE_PROXY_3), _dnat(3), int, {tuple(KUBE_PROXY_3): Fraction(1, 3)}),
    (_rows(3, KUBE_PROXY_3), _dnat(3), tuple, {tuple(KUBE_PROXY_3): Fraction(1, 3)}),
    (_rows(3, KUBE_PROXY_3), _dnat(3), "EndpointShare", {}),
])
def test_compiled_uniform_shares_wrong_arguments(args):
    with pytest.raises(TypeError):
        native.uniform_shares(*args)


@pytest.mark.parametrize("compiled", [False, True])
@pytest.mark.parametrize("name,scan", SCANS, ids=[n for n, _ in SCANS])
def test_fast_shares_is_uniform_endpoint_shares(name, scan, compiled):
    """``_finish``'s per-port answer through the fast function equals the one
    before it, for every cascade of every fixture (warnings included)."""
    if compiled and native is None:
        pytest.skip("the compiled scanner is not built")
    services._CASCADE_SHARES.clear()
    with perf.native_scanner(compiled):
        scan.shares = bulk.uniform_shares()
        for chain, rows in scan.cascades.items():
            for _ in range(2):  # first unknown, then learnt
                got = services._fast_shares(scan, rows, "tcp")
                want = services._uniform_endpoint_shares(rows, scan.dnat, "tcp")
                assert got == want, chain


@given(st.text(max_size=40))
@settings(max_examples=300, deadline=None)
def test_hash16_is_base32_of_sha256(text):
    want = base64.b32encode(hashlib.sha256(text.encode()).digest()).decode()[:16]
    assert hash16(text) == want


def test_hash16_known_names():
    assert hash16("ns1/svc1:p80" + "tcp") == "XPGD46QRK7WJZT7O"
    assert hash16("") == base64.b32encode(hashlib.sha256(b"").digest()).decode()[:16]


def _old_summary(endpoints) -> str:
    """render.text.endpoints_summary's uniform/uneven part as it was written
    before the share texts were cached (a set of the shares, str of the one)."""
    from svcinspect.render.text import pct
    shares = {e.share for e in endpoints}
    if len(shares) == 1:
        share = next(iter(shares))
        return f"{len(endpoints)} ({share} each)" if len(endpoints) > 1 else "1 (all)"
    return f"{len(endpoints)} (" + " / ".join(pct(e.share) for e in endpoints) + ")"


def _eps(*shares):
    return tuple(EndpointShare(f"10.0.0.{i}:80", SEP % i, s, None, i) for i, s in enumerate(shares))


@pytest.mark.parametrize("endpoints", [
    _eps(*[Fraction(1, 3)] * 3), _eps(*[services._one_in(4)] * 4), _eps(Fraction(1, 2), Fraction(1, 2)),
    _eps(Fraction(1, 2), Fraction(1, 4), Fraction(1, 4)), _eps(Fraction(1)), _eps(Fraction(1, 3), Fraction(2, 3)),
    _eps(Fraction(1, 3), Fraction(1, 3), Fraction(1, 6)), _eps(*[Fraction(1, 10)] * 10),
], ids=["same-object", "one-in", "equal-objects", "uneven", "one", "two-shares", "tail-differs", "ten"])
def test_endpoint_summary_is_what_it_was(endpoints):
    from svcinspect.model.netfilter import Family
    from svcinspect.model.service import ServicePortRules
    from svcinspect.render.text import endpoints_summary
    sp = ServicePortRules("K", Family(4), "ns/a:p", "tcp", (), {}, endpoints, None, None, ())
    for _ in range(2):  # the share text cached the second time
        assert endpoints_summary(endpoints, sp) == _old_summary(endpoints)


# --- render.json: where orjson may spell a float unlike json.dumps ------------------------

JSON_TOKENS = [b"0", b"7", b"e", b"E", b".", b"0.0000", b"0.000", b"1e-05", b'"', b"x", b",", b" ", b"-", b"+"]


@needs_native
@given(st.lists(st.sampled_from(JSON_TOKENS), max_size=30))
@settings(max_examples=500, deadline=None)
def test_compiled_float_check_is_the_python_one(tokens):
    from svcinspect.render import json as rj
    data = b"".join(tokens)
    assert native.json_floats_may_differ(data) is rj._orjson_may_differ_py(data)


@needs_native
def test_compiled_float_check_across_chunks():
    """The pure-Python check reads 1 MiB at a time with one byte of overlap: a
    digit and its "e" on both sides of a chunk edge are found by both."""
    from svcinspect.render import json as rj
    for cut in (rj._CHUNK - 1, rj._CHUNK, rj._CHUNK + 1):
        for tail in (b"1e", b"0.0000", b"e1", b"0.000"):
            data = b"x" * cut + tail + b"x" * 10
            assert native.json_floats_may_differ(data) is rj._orjson_may_differ_py(data), (cut, tail)
    with pytest.raises(TypeError):
        native.json_floats_may_differ("1e5")


# --- KUBE-NODEPORTS: kube-proxy's shape by regex, anything else decoded ---------------------

H = "K7ZVFMM3TUXRXRZR"
NODE_PORT_RULES = [
    f'-A KUBE-NODEPORTS -p tcp -m comment --comment "ns0/svc0:http" -m tcp --dport 30000 -j KUBE-EXT-{H}',
    f"-A KUBE-NODEPORTS -p tcp -m comment --comment ns0/svc0:http -m tcp --dport 30001 -j KUBE-EXT-{H}",
    f'-A KUBE-NODEPORTS -p udp -m comment --comment "ns0/svc0:dns" -m udp --dport 030002 -j KUBE-SVC-{H}',
    f'-A KUBE-NODEPORTS -p sctp -m comment --comment "ns0/svc0:s" -m sctp --dport 30003 -j KUBE-SVL-{H}',
    f'-A KUBE-NODEPORTS -p TCP -m comment --comment "ns0/svc0:http" -m TCP --dport 30004 -j KUBE-EXT-{H}',
    f'-A KUBE-NODEPORTS -p tcp -m comment --comment "ns0/svc0:http" -m udp --dport 30005 -j KUBE-EXT-{H}',
    f'-A KUBE-NODEPORTS  -p tcp -m comment --comment "ns0/svc0:http" -m tcp --dport 30006 -j KUBE-EXT-{H}',
    f'-A KUBE-NODEPORTS -d 127.0.0.0/8 -p tcp -m comment --comment "ns0/svc0:http" -m tcp --dport 30000 '
    f"-m nfacct --nfacct-name  localhost_nps_accepted_pkts -j KUBE-EXT-{H}",
    f'-A KUBE-NODEPORTS -d 192.168.1.5/32 -p tcp -m comment --comment "ns0/svc0:http" -m tcp --dport 30007 -j KUBE-EXT-{H}',
    f"-A KUBE-NODEPORTS -p tcp -m comment --comment ns0/svc0:it\\'s -m tcp --dport 30008 -j KUBE-EXT-{H}",
    f'-A KUBE-NODEPORTS -p tcp -m comment --comment "ns0/svc0:a b" -m tcp --dport 30009 -j KUBE-EXT-{H}',
    f'-A KUBE-NODEPORTS -p tcp -m comment --comment "ns0/svc0:http" -m tcp --dport 30010 -j KUBE-MARK-MASQ',
    f'-A KUBE-NODEPORTS -p tcp -m comment --comment "ns0/svc0:http" -m tcp --dport 30011 -j ACCEPT',
    f'[3:4] -A KUBE-NODEPORTS -p tcp -m comment --comment "ns0/svc0:http" -m tcp --dport 30012 -j KUBE-EXT-{H}',
    f'-A KUBE-NODEPORTS -p tcp -m comment --comment "ns0/svc0:http" -m tcp --dport 30013 -j KUBE-EXT-{H}x',
    f'-A KUBE-NODEPORTS -p tcp -m comment --comment "ns0/svc0:http" -m tcp --dport 3001٤ -j KUBE-EXT-{H}',
    f'-A KUBE-NODEPORTS ! -p tcp -m comment --comment "ns0/svc0:http" -m tcp --dport 30015 -j KUBE-EXT-{H}',
]


def _node_port_dump(rules) -> str:
    return ("*nat\n:KUBE-SERVICES - [0:0]\n:KUBE-NODEPORTS - [0:0]\n"
            f":KUBE-EXT-{H} - [0:0]\n:KUBE-SVC-{H} - [0:0]\n:KUBE-SVL-{H} - [0:0]\n"
            + "".join(r + "\n" for r in rules)
            + "-A KUBE-SERVICES -m comment --comment \"kubernetes service nodeports\" -m addrtype --dst-type LOCAL "
              "-j KUBE-NODEPORTS\nCOMMIT\n")


def _ports_and_diagnostics(text: str, fast: bool):
    from svcinspect.dataplane import build_service_ports
    with perf.all_fast_paths(fast):
        rs = parse_iptables_save(text, "np")
        ports = build_service_ports(rs)
        diags = list(rs.diagnostics)
        for t in rs.tables:
            for ch in t.decoded_chains():
                if ch.rules.decoded:
                    for r in ch.rules:
                        diags.extend(r.diagnostics)
    return ports, diags


@pytest.mark.parametrize("i", range(len(NODE_PORT_RULES)))
def test_node_port_rules_read_alike_on_both_paths(i):
    """Each rule alone, then after the others (where an earlier entry for the same
    port decides): the same service ports and the same diagnostics."""
    for rules in ([NODE_PORT_RULES[i]], NODE_PORT_RULES[:i + 1], [NODE_PORT_RULES[i]] + NODE_PORT_RULES):
        text = _node_port_dump(rules)
        assert _ports_and_diagnostics(text, True) == _ports_and_diagnostics(text, False)


def test_node_port_shape_is_read_without_decoding():
    """The fast path is taken for kube-proxy's shape (else this file tests nothing)."""
    rules = [NODE_PORT_RULES[0], NODE_PORT_RULES[1], NODE_PORT_RULES[2].replace("030002", "30002"), NODE_PORT_RULES[3]]
    rs = parse_iptables_save(_node_port_dump(rules), "np")
    nat = rs.tables[0]
    facts = list(services._node_port_facts(nat.chains["KUBE-NODEPORTS"], None))
    assert [f[3] for f in facts] == [30000, 30001, 30002, 30003]
    assert [f[1] for f in facts] == ["ns0/svc0:http", "ns0/svc0:http", "ns0/svc0:dns", "ns0/svc0:s"]
    assert not nat.chains["KUBE-NODEPORTS"].rules.decoded


@pytest.mark.parametrize("odd", [NODE_PORT_RULES[0], NODE_PORT_RULES[2], NODE_PORT_RULES[4],
                                 NODE_PORT_RULES[0].replace("30000", "70000")],
                         ids=["repeated", "six-digit-port", "upper-case-module", "port-above-65535"])
def test_a_rule_the_decoder_has_a_word_on_decodes_the_chain(odd):
    """A repeated line, or a value iptables never prints: the decoder's warning
    or note is reported as before, so the whole chain is decoded."""
    text = _node_port_dump([NODE_PORT_RULES[0], NODE_PORT_RULES[1], odd])
    fast = _ports_and_diagnostics(text, True)
    assert fast == _ports_and_diagnostics(text, False)
    assert any(d.line == 9 for d in fast[1]), fast[1]  # the third rule


# --- model objects built without their __init__ ---------------------------------------------

def _port_values():
    from svcinspect.model.netfilter import Family
    from svcinspect.model.service import EntryPoint
    entry = EntryPoint("clusterIP", "10.96.0.1", 443, "tcp", "KUBE-SVC-" + H, "nat", 7, "-A KUBE-SERVICES ...")
    return (H, Family(6), "default/kubernetes:https", "tcp", (entry,), {"svc": "KUBE-SVC-" + H, "sep": []},
            _eps(Fraction(1, 2), Fraction(1, 2)), None, 10800, ("10.0.0.0/8",), ("a warning",),
            False, ("unknown",), False, True, "iptables")


@pytest.mark.parametrize("compiled", [False, True])
def test_frozen_objects_equal_their_constructors(compiled):
    import dataclasses

    from svcinspect.model.service import EntryPoint, ServicePortRules
    if compiled and native is None:
        pytest.skip("the compiled scanner is not built")
    entry = ("nodePort", None, 30000, "udp", "KUBE-EXT-" + H, "nat", 9, "-A KUBE-NODEPORTS ...", "accept", True, "n")
    cases = [(EntryPoint, services._ENTRY_FIELDS, entry), (ServicePortRules, services._PORT_FIELDS, _port_values()),
             (EndpointShare, tuple(f.name for f in dataclasses.fields(EndpointShare)),
              ("10.0.0.1:80", SEP % 1, Fraction(1, 3), "0.33333333349", 12))]
    with perf.native_scanner(compiled):
        for cls, names, values in cases:
            got, want = bulk.frozen(cls, names, values), cls(*values)
            assert type(got) is cls and got == want and repr(got) == repr(want)
            assert dataclasses.astuple(got) == dataclasses.astuple(want)
            assert dataclasses.replace(got, line=1) == dataclasses.replace(want, line=1) if hasattr(want, "line") \
                else dataclasses.replace(got, name="x") == dataclasses.replace(want, name="x")
            with pytest.raises(dataclasses.FrozenInstanceError):
                got.__setattr__(names[0], "changed")
        assert hash(bulk.frozen(EntryPoint, services._ENTRY_FIELDS, entry)) == hash(EntryPoint(*entry))


def test_port_defaults_are_the_dataclass_defaults():
    from svcinspect.model.service import ServicePortRules
    values = _port_values()[:11]
    assert bulk.frozen(ServicePortRules, services._PORT_FIELDS, values + services._PORT_DEFAULTS) \
        == ServicePortRules(*values)


@needs_native
@pytest.mark.parametrize("args", [
    (int, ("a",), (1,)), (tuple, (), ()), (EndpointShare, ("endpoint",), ()), (EndpointShare, (1,), (1,)),
    (EndpointShare, ["endpoint"], ("x",)), (EndpointShare, ("nosuchfield",), ("x",)), ("EndpointShare", (), ()),
])
def test_new_frozen_wrong_arguments(args):
    with pytest.raises((TypeError, AttributeError)):
        native.new_frozen(*args)


def test_fast_shares_falls_back_when_the_cascade_stays_unknown():
    """Another thread may clear what _fast_shares learnt between its two calls:
    then the general function answers, never the (None, probabilities) marker."""
    class Scan:
        dnat = _dnat(3)

        @staticmethod
        def shares(rows, dnat, cls, known):
            return None, tuple(r[3] for r in rows if r[4] is None)

    rows = _rows(3, KUBE_PROXY_3)
    got = services._fast_shares(Scan, rows, "tcp")
    assert got == services._uniform_endpoint_shares(rows, Scan.dnat, "tcp")
    assert got[0] and all(type(e) is EndpointShare for e in got[0])
