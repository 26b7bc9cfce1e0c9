"""Live `services`, round 4: the compiled ``RawScan`` (``_rawscan.c``) reads a
save command's bytes in the thread that drains its pipe, without the GIL, for
two things the stream's thread did per piece before: the backend tally
(``sources.command._tally_py`` of the whole text) and the nat table's jump
targets that are not declared chains (what ``completeness._maybe_missing``
asks of ``PrescannedChains.take_jump_targets``).

- ``RawScan`` against :func:`reference` below (the spec in Python, on the text
  as the stream decodes it): on every fixture, on hostile lines (overlapping
  ``-A KUBE-``, patterns inside comments, a second nat table, non-ASCII
  declarations, invalid UTF-8, ``\\r``, no final line break, lines over its
  carry bound, more distinct missing names than it keeps), fed whole, in
  random pieces, byte by byte and through ``read`` from a real pipe; and on
  hypothesis texts built from the patterns' pieces.
- The live path with the RawScan gives what it gives without one: the same
  ruleset, the same backend note (its counts), the same missing-chain
  findings, on every fixture and on an excerpt whose cascade jumps to a chain
  that is not there (so a wrong "nothing is missing" would show).
"""

from __future__ import annotations

import os
import random
import re
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import FIXTURES, IPT
from svcinspect.dataplane.iptables import bulk
from svcinspect.dataplane.iptables.stream import SaveStream
from svcinspect.model.netfilter import Family
from svcinspect.sources import command

native = bulk.native_scanner
needs_native = pytest.mark.skipif(native is None or not hasattr(native, "RawScan"),
                                  reason="the compiled scanner svcinspect.dataplane.iptables._scan is not built "
                                         "(no C compiler at install time?): there is no RawScan to compare")

SAVES = sorted(p for p in FIXTURES.rglob("*") if p.is_file() and p.suffix in (".txt", ".rules"))
CARRY_MAX = 1 << 20
MISSING_MAX = 65536
_WS = " \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f"  # str.isspace within ASCII
_JUMP = re.compile(r" -[jg] (KUBE-[A-Za-z0-9_.-]+)")


def reference(data: bytes):
    """What RawScan.result() says of ``data``, in Python."""
    text = data.decode("utf-8", "replace")
    lines = text.split("\n")
    too_long = _longest_line(data) > CARRY_MAX  # (in bytes, as RawScan counts)
    tally = None if too_long else command._tally_py(text)
    declared: set[str] = set()
    missing: set[str] = set()
    in_nat, nats, ok = False, 0, True
    for line in lines:
        s = line.strip(_WS)
        if s.startswith("*"):
            in_nat = s[1:].lstrip(_WS) == "nat"
            if in_nat:
                nats += 1
                if nats > 1:
                    ok = False
            continue
        if not in_nat or not ok:
            continue
        if s == "COMMIT":
            in_nat = False
            continue
        if s.startswith("#"):
            continue
        t = line.lstrip(" \t")
        if t.startswith(":"):
            name = re.match(r":([^ \t\n\r\x0b\x0c\x1c-\x1f]*)", t).group(1)
            if not name.isascii():
                ok = False
            elif name:
                declared.add(name)
            continue
        for name in _JUMP.findall(line):
            if name not in declared:
                missing.add(name)
        if len(missing) > MISSING_MAX:
            ok = False
    return len(data), tally, (missing if ok and not too_long else None), len(declared), nats


def _longest_line(data: bytes) -> int:
    return max(map(len, data.split(b"\n")))


def _result(data: bytes, cuts=None):
    scan = native.RawScan()
    if cuts is None:
        scan.feed(data)
    else:
        at = 0
        for cut in cuts:
            scan.feed(data[at:cut])
            at = cut
        scan.feed(data[at:])
    return scan.result()


def _random_cuts(n: int, seed: int, most: int) -> list[int]:
    rnd = random.Random(seed)
    cuts, at = [], 0
    while True:
        at += rnd.randint(1, most)
        if at >= n:
            return cuts
        cuts.append(at)


HOSTILE = [
    b"",
    b"*nat\n:KUBE-A - [0:0]\n-A KUBE-A -j KUBE-B\n-A KUBE-A -g KUBE-A\nCOMMIT\n",
    b"*nat\n-A KUBE-A -j KUBE-B\n:KUBE-B - [0:0]\nCOMMIT\n",  # declared after the jump: a (safe) false candidate
    b"*filter\n:KUBE-X - [0:0]\n-A KUBE-X -j KUBE-FORWARD\nCOMMIT\n*nat\n-A KUBE-Y -j KUBE-X\nCOMMIT\n",
    b"*nat\n-A X -j KUBE-A\nCOMMIT\n*nat\n-A Y -j KUBE-B\nCOMMIT\n",  # two nat tables: no answer
    b"  *nat  \n  :KUBE-A - [0:0]\n\t-A KUBE-A -j KUBE-B \n COMMIT \n-A Z -j KUBE-C\n",
    b"*nat\n# -A KUBE-A -j KUBE-COMMENTED\n-A X -m comment --comment \"x -j KUBE-INSIDE\" -j KUBE-OUT\nCOMMIT\n",
    b"*nat\n:KUB\xc3\x89-A - [0:0]\n-A X -j KUBE-A\nCOMMIT\n",  # a declaration not ASCII: no answer
    b"*nat\n:KUBE-A\xff - [0:0]\n-A X -j KUBE-A\xff\nCOMMIT\n",
    b"*nat\n-A X -j KUBE-\n-A X -j KUBE--\n-A X  -j KUBE-A.b_9-c\n-A X -jKUBE-N\n-A X -j  KUBE-N\n",
    b"*nat\n-A X -j KUBE-A\r\n:KUBE-B\r\n-A X -j KUBE-B\r\nCOMMIT\r\n",
    b"*nat\n:KUBE-A - [0:0]\n-A KUBE-A -j KUBE-Z",  # no final line break
    b"-A KUBE-A KUBE-A KUBE-\n-A -A -A \n:KUBE-PROXY-CANARY - [0:0]\n:KUBE-SERVICES - [0:0]\n",
    b"x:KUBE-PROXY-CANARY :KUBE-SERVICES \n*\n\n*nat\n",
    b"\xe2\x82-A KUBE-X\n\xff:KUBE-Y\n-\xffA \n-A\xff KUBE-\n",
    b"*nat\n" + b"-A X -j KUBE-" + b"L" * (CARRY_MAX + 10) + b"\n" + b"-A X -j KUBE-B\nCOMMIT\n",  # over the carry
    b"*nat\n" + b"".join(b"-A X -j KUBE-M%d\n" % i for i in range(MISSING_MAX + 2)) + b"COMMIT\n",
]


@needs_native
@pytest.mark.parametrize("path", SAVES, ids=lambda p: str(p.relative_to(FIXTURES)))
def test_fixtures_whole_and_in_pieces(path):
    data = path.read_bytes()
    want = reference(data)
    assert _result(data) == want
    assert _result(data, _random_cuts(len(data), 7, 4096)) == want
    assert _result(data, _random_cuts(len(data), 11, 13)) == want


@needs_native
@pytest.mark.parametrize("data", HOSTILE, ids=lambda d: repr(d[:40]))
def test_hostile_lines(data):
    want = reference(data)
    assert _result(data) == want
    if len(data) < 4096:
        assert _result(data, list(range(1, len(data)))) == want  # byte by byte
    assert _result(data, _random_cuts(len(data), 3, 97)) == want


@needs_native
def test_what_the_hostile_lines_say():
    """The reference is not vacuous: the answers the cases above are about."""
    assert reference(HOSTILE[1])[2] == {"KUBE-B"}
    assert reference(HOSTILE[2])[2] == {"KUBE-B"}
    assert reference(HOSTILE[3])[2] == {"KUBE-X"}  # the filter table's chain is not the nat table's
    assert reference(HOSTILE[4])[2] is None
    assert reference(HOSTILE[6])[2] == {"KUBE-INSIDE", "KUBE-OUT"}
    assert reference(HOSTILE[7])[2] is None
    assert reference(HOSTILE[15])[1] is None and reference(HOSTILE[15])[2] is None
    assert reference(HOSTILE[16])[2] is None
    assert _result(HOSTILE[1])[1] == command._tally_py(HOSTILE[1].decode())


@needs_native
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from([b"-A ", b"-A KUBE-", b"KUBE-", b"-", b"A", b" ", b":", b":KUBE-", b"\n", b"*nat",
                                 b"*filter", b"COMMIT", b"#", b" -j ", b" -g ", b"KUBE-A", b"KUBE-B", b"\t", b"\r",
                                 b"PROXY-CANARY ", b"SERVICES ", b"\xc3\xa9", b"\xff", b"x", b"."]), max_size=80),
       st.integers(1, 9))
def test_hypothesis_texts(parts, most):
    data = b"".join(parts)
    assert _result(data, _random_cuts(len(data), len(data), most)) == reference(data)


@needs_native
def test_read_from_a_pipe():
    data = (IPT / "iptables-save.txt").read_bytes() * 3
    r, w = os.pipe()
    writer = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdout.buffer.write(sys.stdin.buffer.read())"],
                              stdin=subprocess.PIPE, stdout=w)
    os.close(w)
    writer.stdin.write(data)
    writer.stdin.close()
    scan, got = native.RawScan(), []
    while True:
        chunk = scan.read(r, 1000)
        if not chunk:
            break
        got.append(chunk)
    os.close(r)
    writer.wait()
    assert b"".join(got) == data
    assert scan.result() == reference(data)
    with pytest.raises(ValueError):
        scan.feed(b"more")  # after result(): refused, not silently dropped
    with pytest.raises(OSError):
        native.RawScan().read(-1, 10)


# --- the live path with and without it ------------------------------------------------------


def _stream(data: bytes, raw: bool, piece: int = 1 << 16):
    tally = command._Tally()
    stream = SaveStream("live:test", family=Family.V4, observe=tally)
    reader = stream.drain_reader() if raw else None
    assert (reader is not None) == raw
    for at in range(0, len(data), piece):
        chunk = data[at:at + piece]
        if reader is not None:
            reader.feed(chunk)
        stream.feed(chunk)
    stream.close()
    return stream.finish(), tally.count()


def _findings(ruleset):
    from svcinspect.completeness import missing_references
    return missing_references(ruleset)


def _excerpt_missing_a_chain() -> bytes:
    text = (IPT / "iptables-save.txt").read_text()
    sep = re.search(r"KUBE-SEP-[A-Z2-7]{16}", text).group(0)
    return "".join(ln for ln in text.splitlines(keepends=True)
                   if not ln.startswith((f"-A {sep} ", f":{sep} "))).encode()


@needs_native
@pytest.mark.parametrize("path", [p for p in SAVES if b"*nat" in p.read_bytes()][:40] + ["missing-chain"],
                         ids=lambda p: p if isinstance(p, str) else str(p.relative_to(FIXTURES)))
def test_live_stream_same_with_and_without(path):
    data = _excerpt_missing_a_chain() if path == "missing-chain" else path.read_bytes()
    with_raw, tally_raw = _stream(data, True)
    without, tally = _stream(data, False)
    assert tally_raw == tally == command.count_kube(data.decode("utf-8", "replace"))
    assert _findings(with_raw) == _findings(without)
    from svcinspect.dataplane import build_service_ports
    assert build_service_ports(with_raw) == build_service_ports(without)
    if path == "missing-chain":
        assert any("is not in the input" in f for f in _findings(with_raw))


@needs_native
def test_live_stream_uses_the_raw_scan_and_checks_it():
    """On a real dump the RawScan's answer is the one handed over; a declaration
    count that does not agree with the parse hands over none."""
    data = (IPT / "iptables-save.txt").read_bytes()
    ruleset, _ = _stream(data, True)
    nat = ruleset.table("nat", Family.V4)
    assert nat.chains.take_jump_targets() == set()
    # a stream fed bytes the reader did not see: the tally is counted from the text, no targets handed over
    tally = command._Tally()
    stream = SaveStream("live:test", family=Family.V4, observe=tally)
    reader = stream.drain_reader()
    reader.feed(data[:100])
    stream.feed(data)
    stream.close()
    nat = stream.finish().table("nat", Family.V4)
    assert nat.chains.take_jump_targets() is None
    assert tally.count() == command.count_kube(data.decode())


# --- limits.while_waiting: the analysis' imports while the save loads its tables --------------


def test_while_waiting_runs_once_before_the_output_in_this_thread():
    import threading

    from svcinspect.sources.limits import run_streamed, while_waiting

    seen: list = []
    chunks: list = []

    def work():
        seen.append(("work", threading.current_thread() is threading.main_thread(), len(chunks)))

    def boom():
        seen.append("boom")
        raise RuntimeError("left for the later use")

    argv = [sys.executable, "-c", "import time, sys; time.sleep(0.3); sys.stdout.write('x' * 100000)"]
    with while_waiting(work):
        done = run_streamed([argv], [chunks.append])
    assert seen == [("work", True, 0)]  # once, in the calling thread, before any output was handed on
    assert b"".join(chunks) == b"x" * 100000 and done[0].returncode == 0
    with while_waiting(boom):
        done = run_streamed([argv], [chunks.append])
    assert seen[-1] == "boom" and done[0].returncode == 0
    seen.clear()
    run_streamed([argv], [chunks.append])  # outside the block: nothing is called
    assert seen == []


def test_live_services_imports_the_analysis_while_waiting(monkeypatch):
    """What cli.services hands to while_waiting imports every module the
    analysis and the table import on first use: after it, a services run on a
    dump imports nothing more."""
    code = ("import sys\n"
            "import svcinspect.cli as c\n"
            "from svcinspect.dataplane.iptables import parse\n"
            "c._analysis_imports()\n"
            "before = set(sys.modules)\n"
            "rs = c.load_rules((sys.argv[1],), False)\n"
            "from svcinspect.dataplane import build_service_ports\n"
            "from svcinspect.completeness import assess_input\n"
            "from svcinspect.render.text import render_services\n"
            "ports = build_service_ports(rs)\n"
            "render_services(ports)\n"
            "assess_input(rs)\n"
            "print(sorted(m for m in set(sys.modules) - before if m.startswith('svcinspect')))\n")
    p = subprocess.run([sys.executable, "-c", code, str(IPT / "iptables-save.txt")], capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "[]"


# --- _scan.fold with ``last``: kube_runs read in the same pass -----------------------------


def _blocks_of(text: str) -> list:
    segs = native.segments(text)
    return [seg for seg in segs if seg[0]] if segs is not None else []


def _runs_both(blocks: list, last: str):
    fused_chains, plain_chains = {}, {}
    fused = native.fold(list(blocks), 0, fused_chains, [], 1, last)
    plain = native.fold(list(blocks), 0, plain_chains, [], 1)
    assert fused[:4] == plain and fused_chains == plain_chains  # the fold itself is unchanged
    return fused[4], native.kube_runs(list(blocks), 0, plain[0], last, plain_chains)


@needs_native
@pytest.mark.parametrize("path", [p for p in SAVES if b"-A KUBE-" in p.read_bytes()][:60],
                         ids=lambda p: str(p.relative_to(FIXTURES)))
def test_fold_reads_the_kube_runs_as_kube_runs_does(path):
    blocks = _blocks_of(path.read_text(errors="replace"))
    for last in ("", "KUBE-SEP-", "KUBE-ZZZ", "A"):
        got, want = _runs_both(blocks, last)
        assert got == want
        if got is not None:
            assert got[0] is want[0] or got[0] == want[0]
    shuffled = list(blocks)
    random.Random(5).shuffle(shuffled)
    got, want = _runs_both(shuffled, "")
    assert got == want


@needs_native
def test_fold_runs_on_edited_orders():
    text = ("-A KUBE-SEP-AAAAAAAAAAAAAAAA -j DNAT --to-destination 10.0.0.1:80\n"
            "-A KUBE-SERVICES -j KUBE-SVC-BBBBBBBBBBBBBBBB\n"
            "-A KUBE-SVC-BBBBBBBBBBBBBBBB -j KUBE-SEP-AAAAAAAAAAAAAAAA\n"
            "-A OTHER -j ACCEPT\n")
    blocks = _blocks_of(text)
    got, want = _runs_both(blocks, "")
    assert got == want and got[0] == "KUBE-SVC-BBBBBBBBBBBBBBBB" and len(got[1]) == 1 and len(got[2]) == 1
    twice = blocks + [blocks[0]]  # a chain's second run: out of order
    assert _runs_both(twice, "") == (None, None)
    assert _runs_both(blocks[::-1], "")[0] is None


def test_while_waiting_skips_a_call_without_sinks_and_runs_once():
    """The nft listing before the saves is not held up by the work (no sinks),
    and two streaming calls in one block run it once."""
    from svcinspect.sources.limits import run_streamed, while_waiting

    seen: list = []
    argv = [sys.executable, "-c", "import time; time.sleep(0.2); print('x')"]
    with while_waiting(lambda: seen.append(1)):
        run_streamed([argv], [None])
        assert seen == []
        run_streamed([argv], [lambda chunk: None])
        run_streamed([argv], [lambda chunk: None])
    assert seen == [1]


# --- _scan.cluster_entry: services._CLUSTER_ENTRY's match in one compiled pass ---------------

_CLUSTER_LINE = ('-A KUBE-SERVICES -d 10.96.0.10/32 -p udp -m comment --comment "kube-system/kube-dns:dns cluster IP" '
                 '-m udp --dport 53 -j KUBE-SVC-TCOU7JCQXEZGVUNU')


def _regex_groups(text: str):
    from svcinspect.dataplane.iptables.services import _CLUSTER_ENTRY
    m = _CLUSTER_ENTRY.match(text)
    return m.group("d", "p", "spn", "port", "t", "h") if m is not None else None


def _check_cluster(text: str) -> None:
    got = native.cluster_entry(text)
    if got is False:
        assert not text.isascii()
    else:
        assert got == _regex_groups(text), text


@needs_native
def test_cluster_entry_on_every_fixture_rule():
    matched = 0
    for path in SAVES:
        for line in path.read_text(errors="replace").splitlines():
            if "-A " in line:
                _check_cluster(line)
                matched += _regex_groups(line) is not None
    assert matched > 200


_CLUSTER_EDITS = [
    _CLUSTER_LINE, _CLUSTER_LINE + "\n", _CLUSTER_LINE + "\n\n", "[5:300] " + _CLUSTER_LINE, "[5:] " + _CLUSTER_LINE,
    "[:3] " + _CLUSTER_LINE, "[5:3]" + _CLUSTER_LINE, _CLUSTER_LINE.replace("/32", ""),
    _CLUSTER_LINE.replace("/32", "/128"), _CLUSTER_LINE.replace("/32", "/24"), _CLUSTER_LINE.replace("/32", "/321"),
    _CLUSTER_LINE.replace("10.96.0.10", "fd00::a"), _CLUSTER_LINE.replace("10.96.0.10", ""),
    _CLUSTER_LINE.replace("10.96.0.10", "g.1"), _CLUSTER_LINE.replace("-m udp", "-m tcp"),
    _CLUSTER_LINE.replace("udp", "UDP"), _CLUSTER_LINE.replace("-p udp", "-p u_d9"),
    _CLUSTER_LINE.replace("kube-system/", "Kube-system/"), _CLUSTER_LINE.replace("kube-system/", "-kube/"),
    _CLUSTER_LINE.replace("kube-system/", "kube./"), _CLUSTER_LINE.replace("kube-system/", "a/"),
    _CLUSTER_LINE.replace("kube-system/", "/"), _CLUSTER_LINE.replace("kube-dns:dns", "kube-dns:"),
    _CLUSTER_LINE.replace("kube-dns:dns", "kube-dns"), _CLUSTER_LINE.replace("kube-dns:dns", "kube-dns:a:b"),
    _CLUSTER_LINE.replace("kube-dns:dns", ":dns"), _CLUSTER_LINE.replace("kube-dns:dns", "kube\\\\dns:dns"),
    _CLUSTER_LINE.replace("kube-dns:dns", 'kube"dns'), _CLUSTER_LINE.replace(" cluster IP", " cluster  IP"),
    _CLUSTER_LINE.replace(" cluster IP", " external IP"), _CLUSTER_LINE.replace("--dport 53", "--dport "),
    _CLUSTER_LINE.replace("--dport 53", "--dport 5a3"), _CLUSTER_LINE.replace("KUBE-SVC-", "KUBE-FW-"),
    _CLUSTER_LINE.replace("KUBE-SVC-", "KUBE-XLB-"), _CLUSTER_LINE.replace("KUBE-SVC-", "KUBE-SEP-"),
    _CLUSTER_LINE.replace("TCOU7JCQXEZGVUNU", "TCOU7JCQXEZGVUN"), _CLUSTER_LINE.replace("TCOU7JCQXEZGVUNU", "tcou7jcqxezgvunu"),
    _CLUSTER_LINE + "X", _CLUSTER_LINE + " ", _CLUSTER_LINE.replace("-A KUBE-SERVICES", "-A  KUBE-SERVICES"),
    _CLUSTER_LINE.replace("-A KUBE-SERVICES", "-A KUBE\u00e9SERVICES"), _CLUSTER_LINE.replace("dns:dns", "dns:d\u0660"),
    _CLUSTER_LINE.replace("\u0020-d ", "\t-d "), _CLUSTER_LINE.replace("kube-dns:dns", "kube-dns:d\x1fns"),
]


@needs_native
@pytest.mark.parametrize("text", _CLUSTER_EDITS, ids=range(len(_CLUSTER_EDITS)))
def test_cluster_entry_on_edited_lines(text):
    _check_cluster(text)


@needs_native
@settings(max_examples=400, deadline=None)
@given(st.integers(0, len(_CLUSTER_LINE)), st.integers(0, 6),
       st.text(alphabet=" -/:.\"\\[]0123456789aAfFgz_\n\t\x1fé", max_size=6))
def test_cluster_entry_on_mutated_lines(at, cut, insert):
    _check_cluster(_CLUSTER_LINE[:at] + insert + _CLUSTER_LINE[at + cut:])


# --- the compiled loop of services._cluster_entries (cluster_entries) -----------------------

class _WithoutLoop:
    """The compiled scanner without its cluster_entries loop: the reference."""

    def __getattr__(self, name):
        if name == "cluster_entries":
            raise AttributeError(name)
        return getattr(native, name)


def _entry_facts(raw: tuple, monkeypatch, loop: bool):
    from svcinspect.dataplane.iptables import services
    from svcinspect.dataplane.iptables.parse import decode_chain
    from svcinspect.model.netfilter import Chain, RuleList

    monkeypatch.setattr(bulk, "_native", native if loop else _WithoutLoop())
    accs: dict = {}
    chain = Chain("nat", "KUBE-SERVICES", RuleList("nat", "KUBE-SERVICES", "<test>", raw, decode_chain))
    facts = list(services._cluster_entries(accs)(chain, None))
    monkeypatch.undo()
    return facts, {k: (a.names, a.protocol, a.entries, a.filter_entries, a.warnings) for k, a in accs.items()}


def _dispatch_raws():
    from svcinspect.dataplane.iptables.parse import parse_iptables_save

    for path in SAVES:
        try:
            ruleset = parse_iptables_save(path.read_text(errors="replace"), str(path))
        except Exception:  # (a fixture that is not a dump: nothing to read here)
            continue
        for table in ruleset.tables:
            chain = table.chains.get("KUBE-SERVICES") if table.name == "nat" else None
            if chain is not None and len(chain.rules.raw):
                yield path.name, tuple(chain.rules.raw)


@needs_native
def test_cluster_entries_loop_on_every_fixture(monkeypatch):
    """The compiled loop leaves the accumulators and the yielded facts exactly
    as the Python loop does, on every fixture's KUBE-SERVICES chain."""
    seen = read = 0
    for name, raw in _dispatch_raws():
        got = _entry_facts(raw, monkeypatch, True)
        assert got == _entry_facts(raw, monkeypatch, False), name
        seen += 1
        read += sum(len(v[2]) for v in got[1].values())
    assert seen > 20 and read > 200


_OTHER_LINES = [
    '-A KUBE-SERVICES -d 203.0.113.7/32 -p udp -m comment --comment "kube-system/kube-dns:dns external IP" '
    '-m udp --dport 53 -j KUBE-EXT-TCOU7JCQXEZGVUNU',
    '-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in '
    'this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS',
    _CLUSTER_LINE.replace("kube-dns:dns", "kube-dns:"),
    _CLUSTER_LINE.replace("-p udp", "-p UDP").replace("-m udp", "-m UDP"),
    _CLUSTER_LINE.replace("10.96.0.10", "10.96.0.11"),
    _CLUSTER_LINE.replace("kube-dns:dns", "kube-dns:d\u00e9"),
    _CLUSTER_LINE.replace("TCOU7JCQXEZGVUNU", "ERIFXISQEP7F7OF4").replace("kube-dns:dns", "kube-dns:dns-tcp"),
    _CLUSTER_LINE.replace("--dport 53", "--dport 0053"),
    "-A KUBE-SERVICES -j RETURN",
]


@needs_native
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.sampled_from([_CLUSTER_LINE] + _OTHER_LINES), max_size=12))
def test_cluster_entries_loop_on_mixed_rules(monkeypatch, lines):
    """Any mix of kube-proxy's cluster-IP rule, the same port twice, another
    entry of the same port before or after it, a non-ASCII, upper-case or
    other rule: the same accumulators (names, protocol and entry order) and
    facts, in the same order."""
    raw = tuple((i + 10, text) for i, text in enumerate(lines))
    assert _entry_facts(raw, monkeypatch, True) == _entry_facts(raw, monkeypatch, False)
