"""`services` round 2 (perf-services2): each new fast path gives the old answer.

- ``services._cluster_entries`` (kube-proxy's cluster-IP dispatch rule read
  with its comment's meaning in one match) against the per-rule reading it
  replaces (``_service_entry_facts`` for every rule): the same service ports,
  names, protocols and entry points, in the same order, on every fixture and on
  hand-edited KUBE-SERVICES rules at the edge of the shape;
- the compiled ``_scan.single_blocks`` against ``LazyChains._single_blocks_py``
  on every fixture, on hypothesis-made dumps and on entries of other shapes;
- the compiled ``jump_targets`` (now led by the "K" of "KUBE-") against the
  regex on hand-made blocks at the edge of the pattern (the fixtures and the
  hypothesis dumps are in test_perf_scan.py);
- ``parse_comment``'s shortcut for comments without a blank against trying
  every pattern;
- ``new_frozen`` / ``uniform_shares`` writing slots at their offset, on classes
  where some fields are not own slots;
- ``services``, ``services -o json`` byte-identical with every fast path on and
  off, with each scanner, on the hand-edited dumps.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import FIXTURES, IPT, RULE_FILES
from fuzzlines import LINES, mutate
from svcinspect import perf
from svcinspect.completeness import _JUMP
from svcinspect.dataplane.iptables import bulk, kubeproxy
from svcinspect.dataplane.iptables import services as S
from svcinspect.dataplane.iptables.parse import parse_iptables_save

native = bulk.native_scanner
needs_native = pytest.mark.skipif(native is None, reason="the compiled scanner svcinspect.dataplane.iptables._scan "
                                                         "is not built (no C compiler at install time?)")

RULES = RULE_FILES
REAL = (IPT / "iptables-save.txt").read_text()
CLUSTER = ('-A KUBE-SERVICES -d 10.96.7.7/32 -p tcp -m comment --comment "ns/web:http cluster IP" '
           '-m tcp --dport 80 -j KUBE-SVC-ABCDEFGHIJKLMN23\n')


def _parse(text: str):
    try:
        return parse_iptables_save(text, "t")
    except Exception:  # noqa: BLE001 - not a dump: nothing to compare
        return None


# --- KUBE-SERVICES: the cluster-IP rule in one match ----------------------------------

def _accs(nat, fast: bool) -> list:
    """What ``_scan_nat`` gathers, as comparable values, with the one-match
    reading of cluster-IP rules (``fast``) or the per-rule reading for every rule."""
    accs: dict = {}
    if fast:
        S._scan_nat(nat, accs, None)
    else:
        keep = S._cluster_entries
        S._cluster_entries = lambda accs: S._service_entry_facts
        try:
            S._scan_nat(nat, accs, None)
        finally:
            S._cluster_entries = keep
    return [(k, a.names, a.protocol, a.entries, a.warnings) for k, a in accs.items()]


def _dispatch_variants() -> dict[str, str]:
    """The real dump with KUBE-SERVICES rules at the edge of the one-match shape
    (each must be read as the per-rule reading reads it), put first in the chain."""
    rules = {
        "plain": CLUSTER,
        "unnamed-port-old-colon": CLUSTER.replace("ns/web:http", "ns/web:"),
        "unnamed-port": CLUSTER.replace("ns/web:http", "ns/web"),
        "two-colons": CLUSTER.replace("ns/web:http", "ns/web:a:b"),
        "uppercase-namespace": CLUSTER.replace("ns/web", "NS/web"),
        "dash-at-end": CLUSTER.replace("ns/web", "ns-/web"),
        "backslash": CLUSTER.replace("ns/web:http", "ns/w\\\\eb:http"),
        "unquoted": CLUSTER.replace('"ns/web:http cluster IP"', "ns/web:http"),
        "external": CLUSTER.replace("cluster IP", "external IP"),
        "loadbalancer": CLUSTER.replace("cluster IP", "loadbalancer IP"),
        "two-blanks": CLUSTER.replace(" cluster IP", "  cluster IP"),
        "tab": CLUSTER.replace(" cluster IP", "\tcluster IP"),
        "trailing-blank": CLUSTER.replace("\n", " \n"),
        "counters": "[5:300] " + CLUSTER,
        "v6": CLUSTER.replace("10.96.7.7/32", "fd00::7/128"),
        "no-prefix": CLUSTER.replace("10.96.7.7/32", "10.96.7.7"),
        "other-prefix": CLUSTER.replace("/32", "/24"),
        "udp-upper": CLUSTER.replace("-p tcp", "-p UDP").replace("-m tcp", "-m UDP"),
        "match-differs": CLUSTER.replace("-m tcp", "-m udp"),
        "big-port": CLUSTER.replace("--dport 80", "--dport 99999"),
        "leading-zero-port": CLUSTER.replace("--dport 80", "--dport 080"),
        "svl": CLUSTER.replace("KUBE-SVC-", "KUBE-SVL-"),
        "ext": CLUSTER.replace("KUBE-SVC-", "KUBE-EXT-"),
        "fw": CLUSTER.replace("KUBE-SVC-", "KUBE-FW-"),
        "sep-target": CLUSTER.replace("KUBE-SVC-", "KUBE-SEP-"),
        "short-hash": CLUSTER.replace("ABCDEFGHIJKLMN23", "ABCDEFGHIJKLMN2"),
        "lowercase-hash": CLUSTER.replace("ABCDEFGHIJKLMN23", "abcdefghijklmn23"),
        "extra-match": CLUSTER.replace(" -j KUBE-SVC", " -m mark --mark 0x1 -j KUBE-SVC"),
        "comment-first": ('-A KUBE-SERVICES -m comment --comment "ns/web:http cluster IP" -m tcp -p tcp '
                          '-d 10.96.7.7/32 --dport 80 -j KUBE-SVC-ABCDEFGHIJKLMN23\n'),
        "non-ascii": CLUSTER.replace("ns/web", "ns/wéb"),
    }
    text = REAL
    head = text.index("-A KUBE-SERVICES", text.index("*nat\n"))
    out = {}
    for name, rule in rules.items():
        out[name] = text[:head] + rule + text[head:]
    # The same service port twice: a rule of another shape first, then kube-proxy's
    # (the first name, protocol and entry seen win, so the order must hold).
    ext = CLUSTER.replace("cluster IP", "external IP").replace("10.96.7.7", "192.0.2.7")
    odd_first = CLUSTER.replace(" cluster IP", "  cluster IP").replace("ns/web", "other/name")
    out["odd-rule-first"] = text[:head] + odd_first + ext + CLUSTER + text[head:]
    out["repeated"] = text[:head] + CLUSTER + CLUSTER + CLUSTER.replace("--dport 80", "--dport 81") + text[head:]
    return out


DISPATCH = _dispatch_variants()


@pytest.mark.parametrize("path", RULES, ids=lambda p: str(p.relative_to(FIXTURES)))
def test_cluster_entries_read_as_rule_by_rule_on_every_fixture(path):
    rs = _parse(path.read_text(errors="replace"))
    if rs is None:
        return
    for t in rs.tables:
        if t.name == "nat":
            assert _accs(t, True) == _accs(t, False)


@pytest.mark.parametrize("name", sorted(DISPATCH))
def test_cluster_entries_read_as_rule_by_rule_on_edge_rules(name):
    nat = _parse(DISPATCH[name]).table("nat")
    assert _accs(nat, True) == _accs(nat, False)


def test_the_one_match_reads_kube_proxys_rule_and_only_it():
    """Not two empty answers: the plain rule is read by the one match (with its
    name and entry), an external-IP rule is left to the per-rule reading."""
    m = S._CLUSTER_ENTRY.match(CLUSTER.rstrip("\n"))
    assert m is not None and m.group("spn", "d", "port", "h") == ("ns/web:http", "10.96.7.7", "80", "ABCDEFGHIJKLMN23")
    for name in ("external", "unquoted", "two-blanks", "comment-first", "extra-match", "backslash"):
        rule = next(ln for ln in DISPATCH[name].splitlines() if "ABCDEFGHIJKLMN2" in ln)
        assert S._CLUSTER_ENTRY.match(rule) is None, name
    nat = _parse(DISPATCH["plain"]).table("nat")
    got = dict((k, (names, proto, entries)) for k, names, proto, entries, _ in _accs(nat, True))
    names, proto, entries = got["ABCDEFGHIJKLMN23"]
    assert names == ["ns/web:http"] and proto == "tcp"
    assert [(e.kind, e.address, e.port, e.chain) for e in entries] == [("clusterIP", "10.96.7.7", 80,
                                                                       "KUBE-SVC-ABCDEFGHIJKLMN23")]


def test_the_real_dump_takes_the_one_match():
    """Every cluster-IP rule of the real capture has kube-proxy's shape."""
    rules = [ln for ln in REAL.splitlines() if ln.startswith("-A KUBE-SERVICES") and "cluster IP" in ln]
    assert len(rules) > 5 and all(S._CLUSTER_ENTRY.match(r) for r in rules)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.data())
def test_cluster_entries_on_mutated_rules(data):
    """Real rule lines with tokens spliced in, all put in KUBE-SERVICES."""
    tokens = ['"', " ", "\t", ":", "\\", " cluster IP", "/32", "/128", "-j KUBE-SVC-ABCDEFGHIJKLMN23", "KUBE-FW-",
              "[1:2] ", "ns/x", " -m tcp", " -p udp", "9"]
    picked = data.draw(st.lists(st.sampled_from([ln for ln in LINES if ln.startswith("-A ")] + [CLUSTER.rstrip("\n")]),
                                min_size=1, max_size=12))
    rules = [re.sub(r"^-A \S+", "-A KUBE-SERVICES", ln) for ln in mutate(picked, data, tokens, max_drop=3)]
    text = "*nat\n:KUBE-SERVICES - [0:0]\n" + "\n".join(r for r in rules if "\n" not in r) + "\nCOMMIT\n"
    rs = _parse(text)
    if rs is None or rs.table("nat") is None:
        return
    nat = rs.table("nat")
    assert _accs(nat, True) == _accs(nat, False)


# --- single_blocks, compiled --------------------------------------------------------

PREFIXES = ["KUBE-SEP-", bulk._CASCADE_PREFIXES, "", "KUBE-", ("KUBE-SVC-",), (), "é", "KUBE-SERVICES", "ZZZ"]


def _single_blocks_agree(rs) -> None:
    for t in rs.tables:
        chains = t.chains
        if not hasattr(chains, "_single_blocks_py"):
            continue
        for prefix in PREFIXES:
            assert native.single_blocks(chains._entries, prefix) == chains._single_blocks_py(prefix), prefix
            assert chains.single_blocks(prefix) == chains._single_blocks_py(prefix)


@needs_native
@pytest.mark.parametrize("path", RULES, ids=lambda p: str(p.relative_to(FIXTURES)))
def test_single_blocks_on_every_fixture(path):
    rs = _parse(path.read_text(errors="replace"))
    if rs is not None:
        _single_blocks_agree(rs)


@needs_native
def test_single_blocks_on_split_and_odd_chains():
    """A chain in two runs, a chain without rules, a non-ASCII chain name: the
    compiled list leaves out and keeps what the comprehension does."""
    lines = REAL.splitlines(keepends=True)
    svc = next(i for i, ln in enumerate(lines) if ln.startswith("-A KUBE-SVC-"))
    commit = next(i for i, ln in enumerate(lines) if ln == "COMMIT\n" and i > svc)
    moved = lines[:svc] + lines[svc + 1:commit] + [lines[svc]] + lines[commit:]
    text = "".join(moved).replace("*nat\n", "*nat\n:KUBE-SEP-EMPTYCHAINAAAAAA - [0:0]\n:KUBE-SVC-ÉÉ - [0:0]\n", 1)
    end = text.index("COMMIT\n", text.index("*nat\n"))
    text = text[:end] + "-A KUBE-SVC-ÉÉ -j KUBE-SEP-ÉÉ\n" + text[end:]
    rs = _parse(text)
    nat = rs.table("nat")
    split = lines[svc].split()[1]
    assert split not in {n for n, _, _ in nat.chains._single_blocks_py(bulk._CASCADE_PREFIXES)}
    assert "KUBE-SVC-ÉÉ" in {n for n, _, _ in nat.chains._single_blocks_py(bulk._CASCADE_PREFIXES)}
    _single_blocks_agree(rs)


@needs_native
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.data())
def test_single_blocks_on_mutated_dumps(data):
    tokens = ["\n", "-A KUBE-SEP-ABCDEFGHIJKLMN23 -j ACCEPT\n", ":KUBE-SVC-ABCDEFGHIJKLMN23 - [0:0]\n", "é", " ", "\t"]
    start = data.draw(st.integers(0, len(LINES) - 40))
    text = "\n".join(mutate(LINES[start:start + 40], data, tokens)) + "\n"
    rs = _parse(text)
    if rs is not None:
        _single_blocks_agree(rs)


@needs_native
def test_single_blocks_declines_entries_of_another_shape():
    good = {"KUBE-SEP-A": [None, None, 1, [(2, "-A KUBE-SEP-A -j X\n")], True]}
    assert native.single_blocks(good, "KUBE-SEP-") == [("KUBE-SEP-A", 2, "-A KUBE-SEP-A -j X\n")]
    for bad in ({"KUBE-SEP-A": (None, None, 1, [(2, "x\n")], True)},        # a tuple, not the parser's list
                {"KUBE-SEP-A": [None, None, 1]},                           # too short
                {"KUBE-SEP-A": [None, None, 1, ((2, "x\n"),), True]},      # runs not a list
                {"KUBE-SEP-A": [None, None, 1, [[2, "x\n"]], True]},       # a run not a tuple
                {"KUBE-SEP-A": [None, None, 1, [(2, b"x\n")], True]},      # bytes
                {1: [None, None, 1, [(2, "x\n")], True]}):                 # a name that is not str
        assert native.single_blocks(bad, "KUBE-SEP-") is None
    # Entries the prefix does not select are not looked at; a chain in two runs is left out.
    assert native.single_blocks({"OTHER": 5, "KUBE-SEP-B": [0, 0, 0, [(1, "a\n"), (3, "b\n")], 0]}, "KUBE-SEP-") == []
    assert native.single_blocks({"KUBE-SEP-C": [0, 0, 0, [(1, "no newline")], 0]}, "KUBE-SEP-") == []


@needs_native
@pytest.mark.parametrize("args", [(), ({},), ([], "x"), ({}, 1), ({}, ("a", 1)), ({}, ["KUBE-"])])
def test_single_blocks_wrong_arguments(args):
    with pytest.raises(TypeError):
        native.single_blocks(*args)


# --- jump_targets: led by the "K" of "KUBE-" -----------------------------------------

JUMP_BLOCKS = [
    "-A X -j KUBE-A\n", "-A X -g KUBE-A\n", "-A X -j KUBE-A-KUBE-B\n", "-A X -j -j KUBE-C\n", "-A X x-j KUBE-D\n",
    "-j KUBE-E\n", " -j KUBE-F", " -j KUBE-", " -j KUBE-\n", "-A X -j KUBE-G -j KUBE-H\n", "-A X -jKUBE-I\n",
    "-A X -j  KUBE-J\n", "-A X -j KUBEX-K\n", "-A X -k KUBE-L\n", "-A X -j KUBE-M.n_o-9\n", "K", "KUBE-", "",
    "-A X -j KUBE-MARK-MASQ\n-A Y -j KUBE-MARK-MASQ\n-A Z -j KUBE-MARK-MASQX\n-A W -j KUBE-MARK-MAS\n",
    "-A X -j KUBE-N -j KUBE-N\n", "-A KUBE-SVC-X -m comment --comment \" -j KUBE-IN-COMMENT\" -j KUBE-SEP-Y\n",
    "-A X -j KUBE-P\t-j KUBE-Q\n", "  -j KUBE-R", "-A X -g KUBE-S -j KUBE-S\n",
]


@needs_native
@pytest.mark.parametrize("block", JUMP_BLOCKS)
def test_jump_targets_at_the_edges(block):
    assert native.jump_targets([block]) == set(_JUMP.findall(block))


@needs_native
def test_jump_targets_across_blocks():
    """The name added last is remembered across blocks: the same set either way."""
    assert native.jump_targets(JUMP_BLOCKS) == set().union(*(set(_JUMP.findall(b)) for b in JUMP_BLOCKS))
    assert native.jump_targets(["-A X -j KUBE-MARK-MASQ\n"] * 3 + ["-A X -j KUBE-MARK-MASQX\n"]) == {
        "KUBE-MARK-MASQ", "KUBE-MARK-MASQX"}


@needs_native
@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(alphabet=" -jgKUBE_.AZ\nX", max_size=40), max_size=6))
def test_jump_targets_on_made_up_blocks(blocks):
    assert native.jump_targets(blocks) == set().union(*(set(_JUMP.findall(b)) for b in blocks))


# --- parse_comment: a comment without a blank ------------------------------------------

def _parse_comment_every_pattern(text):
    if not text:
        return None
    for pattern, role in kubeproxy._COMMENT_PATTERNS:
        m = pattern.match(text)
        if m:
            spn = m.groupdict().get("spn")
            return kubeproxy.CommentInfo(role, kubeproxy.normalize_spn(spn) if spn else None, m.groupdict().get("ep"))
    return kubeproxy.CommentInfo(kubeproxy.CommentRole.OTHER)


COMMENTS = ["ns/svc:http", "ns/svc", "ns/svc:", "kubernetes", "kubernetes\tservice", "ns/svc\tcluster IP",
            "ns/svc:http\x0bcluster IP", "ns/svc:http cluster IP", "ns/svc:http -> 10.0.0.1:80", "ns/svc->10.0.0.1:80",
            "Redirect", "NS/svc", "a/b:c:d", "", "x", "ns/svc\n", "kubernetes-service", "ns/svc:http\u00a0cluster IP"]


@pytest.mark.parametrize("text", COMMENTS)
def test_parse_comment_as_every_pattern(text):
    assert kubeproxy.parse_comment.__wrapped__(text) == _parse_comment_every_pattern(text)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="ns/vc:-> 1.0\t\x0bkubernetesIPclustr", max_size=30))
def test_parse_comment_on_made_up_comments(text):
    assert kubeproxy.parse_comment.__wrapped__(text) == _parse_comment_every_pattern(text)


# --- objects built with their slots written at the offset ----------------------------

class _Mixed:
    """A slot, a slot of the base class's kind behind a property, and a __dict__."""
    __slots__ = ("a", "_b", "__dict__")

    @property
    def b(self):
        return self._b

    @b.setter
    def b(self, v):
        object.__setattr__(self, "_b", ("set", v))


@needs_native
def test_new_frozen_sets_what_object_setattr_sets():
    obj = native.new_frozen(_Mixed, ("a", "b", "c"), (1, 2, 3))
    ref = object.__new__(_Mixed)
    for k, v in (("a", 1), ("b", 2), ("c", 3)):
        object.__setattr__(ref, k, v)
    assert (obj.a, obj.b, obj.c, obj.__dict__) == (ref.a, ref.b, ref.c, ref.__dict__) == (1, ("set", 2), 3, {"c": 3})
    twice = native.new_frozen(_Mixed, ("a", "a"), ("x", "y"))  # a field named twice: the last value, no leak
    assert twice.a == "y"


@needs_native
def test_uniform_shares_sets_slots_of_a_class_without_them_too():
    class Plain:  # no slots: every field goes through the generic setter into __dict__
        pass

    rows = [("KUBE-SEP-A", 3, None, "0.5", None, None), ("KUBE-SEP-B", 4, None, None, None, None)]
    got, affinity = native.uniform_shares(rows, {"KUBE-SEP-A": "1:1", "KUBE-SEP-B": "2:2"}, Plain, {("0.5", None): 7})
    assert affinity is None and [vars(o) for o in got] == [
        {"endpoint": "1:1", "sep": "KUBE-SEP-A", "share": 7, "probability": "0.5", "line": 3},
        {"endpoint": "2:2", "sep": "KUBE-SEP-B", "share": 7, "probability": None, "line": 4}]


# --- whole commands ----------------------------------------------------------------------

@pytest.fixture(params=["native", "python"], ids=["native-scanner", "python-scanner"])
def scanner(request):
    if request.param == "native" and not perf.native_built():
        pytest.skip("the compiled scanner is not built: only the pure-Python scanner is tested")
    return request.param == "native"


def _run(cli, args, on: bool, native_on: bool = True):
    with perf.all_fast_paths(on), perf.native_scanner(on and native_on):
        r = cli(*args)
    return r.code, r.out, r.err


@pytest.mark.parametrize("name", sorted(DISPATCH))
def test_services_print_the_same_with_the_fast_paths_on_and_off(cli, tmp_path, name, scanner):
    p = tmp_path / f"{name}.txt"
    p.write_text(DISPATCH[name])
    for extra in ([], ["-o", "json"]):
        args = ["services", "--rules", str(p), *extra]
        slow = _run(cli, args, False)
        assert _run(cli, args, True, scanner) == slow, args
        assert slow[0] in (0, 1), slow[2]


# --- endpoints written as compact JSON text --------------------------------------------

import json  # noqa: E402
from fractions import Fraction  # noqa: E402

from svcinspect.model.service import EndpointShare  # noqa: E402
from svcinspect.render import json as render_json  # noqa: E402


def _reference_text(endpoints) -> bytes:
    return json.dumps(render_json._endpoints_json(endpoints), separators=(",", ":")).encode()


def _fixture_ports():
    from svcinspect.dataplane import build_service_ports
    for path in RULES:
        rs = _parse(path.read_text(errors="replace"))
        if rs is not None:
            yield from build_service_ports(rs)


@needs_native
def test_endpoints_text_on_every_fixture_port():
    seen = 0
    for sp in _fixture_ports():
        for eps in (sp.endpoints, sp.local_endpoints or ()):
            got = native.endpoints_text(eps, render_json._share_texts)
            if got is not None:
                assert got == _reference_text(eps)
                seen += len(eps)
    assert seen > 50  # the fixtures' endpoints are written, not declined


def _e(endpoint="10.244.1.5:8080", sep="KUBE-SEP-ABCDEFGHIJKLMN23", share=Fraction(1, 3), probability="0.33333333349",
       line=7):
    return EndpointShare(endpoint, sep, share, probability, line)


ODD_ENDPOINTS = {
    "plain": (_e(), _e(line=8)),
    "empty": (),
    "none-endpoint": (_e(endpoint=None),),
    "none-share": (_e(share=None, probability=None),),
    "none-probability": (_e(probability=None),),
    "two-runs": (_e(), _e(share=Fraction(1, 2)), _e(share=Fraction(1, 2))),
    "tiny-share": (_e(share=Fraction(1, 100000)),),
    "huge-n": (_e(share=Fraction(1, 3 * 10**12)),),
    "one": (_e(share=Fraction(1)),),
    "zero": (_e(share=Fraction(0)),),
    "quote": (_e(endpoint='10.0.0.1:"80'),),
    "backslash": (_e(endpoint="10.0.0.1:\\80"),),
    "control": (_e(endpoint="10.0.0.1:\x0180"),),
    "tab": (_e(probability="0.5\t"),),
    "del": (_e(endpoint="10.0.0.1:80\x7f"),),
    "non-ascii": (_e(endpoint="10.0.0.1:8é"),),
    "line-big": (_e(line=2**63),),
    "line-negative": (_e(line=-5),),
    "line-bool": (_e(line=True),),
    "line-max": (_e(line=2**63 - 1),),
    "str-subclass": (_e(endpoint=type("S", (str,), {})("10.0.0.1:80")),),
    "sep-none": (_e(sep=None),),
}


@needs_native
@pytest.mark.parametrize("name", sorted(ODD_ENDPOINTS))
def test_endpoints_text_writes_the_reference_or_declines(name):
    eps = ODD_ENDPOINTS[name]
    got = native.endpoints_text(eps, render_json._share_texts)
    if got is not None:
        assert got == _reference_text(eps)
    # What must be written and what must be declined:
    written = {"plain", "empty", "none-endpoint", "none-share", "none-probability", "two-runs", "tiny-share", "huge-n",
               "one", "zero", "line-negative", "line-max"}
    assert (got is not None) == (name in written), got


@needs_native
def test_endpoints_text_wrong_arguments():
    for args in ((), ([_e()], render_json._share_texts), ((_e(),), lambda e: (0.5,)), ((_e(),), lambda e: None),
                 ((object(),), render_json._share_texts)):
        with pytest.raises((TypeError, AttributeError)):
            native.endpoints_text(*args)


def _ports_doc(compact: bool, name: str = "ns/web:http"):
    from svcinspect.dataplane import build_service_ports
    rs = parse_iptables_save(REAL.replace("default/hello-world", name), "t")
    return render_json.services_json(build_service_ports(rs), [], None, None, compact=compact)


@needs_native
@pytest.mark.parametrize("name", ["default/hello-world", "default/hellö-world", "default/hello\x7fworld"])
@pytest.mark.parametrize("pretty", [False, True])
def test_a_compact_document_writes_what_the_plain_one_writes(name, pretty):
    """Through orjson, through the standard library (a non-ASCII or DEL name
    elsewhere sends the whole document there) and indented: the same bytes."""
    plain = _ports_doc(False, name)
    compact = _ports_doc(True, name)
    assert any(type(s["endpoints"]) is render_json.EndpointsText for s in compact["services"])
    reference = render_json._stdlib_dumps(plain, pretty)
    assert render_json.dumps(compact, pretty) == reference
    assert render_json.dumps_bytes(compact, pretty) == reference.encode("ascii")
    assert render_json._stdlib_dumps(compact, pretty) == reference
    with perf.all_fast_paths(False):  # and with the fast paths off, nothing but dicts
        doc = _ports_doc(True, name)
        assert not any(type(s["endpoints"]) is render_json.EndpointsText for s in doc["services"])


def test_a_document_with_something_else_still_refuses_it():
    with pytest.raises(TypeError, match="Object of type object is not JSON serializable"):
        render_json.dumps({"x": object()}, False)


# --- hash16's base32 step, compiled ------------------------------------------------------

import base64  # noqa: E402
import hashlib  # noqa: E402


@needs_native
@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=10, max_size=40))
def test_b32_16_is_base32_of_the_first_ten_bytes(digest):
    want = base64.b32encode(digest[:10]).decode()
    assert native.b32_16(digest) == kubeproxy._b32_16_py(digest) == want


@needs_native
@pytest.mark.parametrize("arg", [b"123456789", "0123456789", bytearray(10), None, memoryview(b"0123456789")])
def test_b32_16_wrong_arguments(arg):
    with pytest.raises(TypeError):
        native.b32_16(arg)


def test_hash16_is_the_same_with_either_scanner_and_follows_the_switches():
    names = ["ns1/svc1:p80tcp", "", "default/kubernetes:httpstcp", "é/ü:xudp", "x" * 500]
    want = [base64.b32encode(hashlib.sha256(n.encode()).digest())[:16].decode() for n in names]
    for on in (True, False):
        with perf.native_scanner(on):
            assert (kubeproxy._b32_16 is not None) == (on and native is not None)
            assert [kubeproxy.hash16(n) for n in names] == want
    with perf.all_fast_paths(False):
        assert kubeproxy._b32_16 is None
        assert [kubeproxy.hash16(n) for n in names] == want
    assert (kubeproxy._b32_16 is not None) == (native is not None and bulk._native is not None)


def test_json_to_a_text_only_stdout_is_the_same_document(cli, tmp_path):
    """JSON goes to stdout's binary buffer as bytes; a stream without one (an
    io.StringIO under redirect_stdout, as docs/generate_examples.py uses) gets
    the same text."""
    import contextlib
    import io

    from svcinspect.cli import main
    path = str(IPT / "iptables-save.txt")
    want = cli("services", "--rules", path, "-o", "json").out
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        try:
            main(["services", "--rules", path, "-o", "json"])
        except SystemExit as exc:
            assert exc.code in (0, None)
    assert out.getvalue() == want and want.startswith('{"schema"')
