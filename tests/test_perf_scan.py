"""The compiled scanner (svcinspect/dataplane/iptables/_scan.c) reads what the pure-Python scanner reads.

The pure-Python functions of ``svcinspect.dataplane.iptables.bulk`` and the ``_SEGMENTS``
regex of the parser are the reference. On every fixture, on the real dump,
and on hypothesis-made dumps (real lines cut and spliced with the tokens that
steer the shapes: quotes, tabs, \\x0b, counters, DNAT, KUBE-MARK-MASQ), the
compiled functions must give the same answers: ``segments`` the same list as
the regex, ``dnat`` and ``cascades`` the same entry for every chain whose block
is ASCII (non-ASCII blocks are left to the general reader by design). The
whole-command comparisons are in test_perf_equivalence.py; a separate run of
the hostile-input tests with the pure-Python scanner is at the end. The
parser's compiled loops (``fold``, ``fold_decls``) must build the same tables,
diagnostics and gaps as its Python loop.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import FIXTURES, IPT, ALL_RULE_FILES
from fuzzlines import LINES, mutate
from svcinspect import perf
from svcinspect.completeness import _JUMP
from svcinspect.dataplane.iptables import bulk
from svcinspect.dataplane.iptables.parse import _SEGMENTS, parse_iptables_save

native = bulk.native_scanner
needs_native = pytest.mark.skipif(native is None, reason="the compiled scanner svcinspect.dataplane.iptables._scan is not built "
                                                         "(no C compiler at install time?): nothing to compare")

RULES = ALL_RULE_FILES
TOKENS = ["-A ", " -g KUBE-", " -j KUBE-", "KUBE-", " -j", "-j ", ":KUBE-SEP-ABCDEFGHIJKLMN23 - [0:0]", ":X", " [12:34]", ":INPUT ACCEPT [1:2]", "KUBE-SEP-ABCDEFGHIJKLMN23", "KUBE-SVC-ABCDEFGHIJKLMN23", " -j DNAT --to-destination ",
          "10.0.0.1:80", '"', " ", "\t", "\x0b", "\x1c", "\r", "[1:2] ", "[1:2]", ":", "DNAT", "\\",
          " -j KUBE-MARK-MASQ", " -j KUBE-MARK-DROP", "-m statistic --mode random --probability 0.5 ",
          "-m recent --rcheck --seconds 10800 --reap --name KUBE-SEP-X --mask 255.255.255.255 --rsource ",
          "-m recent --name KUBE-SEP-X --rcheck --seconds 10 --reap ", "-m comment --comment ", " -> ", "\n"]


def _ascii(block: str) -> bool:
    return block.isascii()


def _compare(text: str) -> None:
    """Both scanners on ``text`` (a dump), as the parser and bulk.scan_nat call them."""
    if not text.endswith("\n"):
        text += "\n"
    got = native.segments(text)
    if text.isascii():
        assert got == _SEGMENTS.findall(text)
    else:
        assert got is None
    parsed = []
    for on in (False, True):  # the parser's compiled loops (fold, fold_decls) build the same tables
        try:
            with perf.native_scanner(on):
                rs = parse_iptables_save(text, "fuzz")
        except Exception as exc:  # our own errors (not a dump): the same on both paths
            parsed.append((type(exc), str(exc)))
        else:
            parsed.append(([(t.name, t.family, t.line, getattr(t.chains, "_entries", None)) for t in rs.tables],
                           rs.diagnostics, rs.gaps))
    assert parsed[0] == parsed[1]
    if not isinstance(parsed[0][0], list):
        return
    for table in rs.tables:
        single = getattr(table.chains, "single_blocks", None)
        if single is None:
            continue
        seps, cascades = single("KUBE-SEP-"), single(bulk._CASCADE_PREFIXES)
        ascii_seps = {name for name, _, block in seps if _ascii(block)}
        ascii_cascades = {name for name, _, block in cascades if _ascii(block)}
        py_dnat, c_dnat = bulk._scan_dnat(seps), native.dnat(seps)
        assert {k: v for k, v in py_dnat.items() if k in ascii_seps} == c_dnat
        py_casc, c_casc = bulk._scan_cascades(cascades), native.cascades(cascades)
        assert {k: v for k, v in py_casc.items() if k in ascii_cascades} == c_casc
        blocks = list(table.chains.raw_blocks())
        targets = native.jump_targets(blocks)
        if all(b.isascii() for b in blocks):
            assert targets == set(_JUMP.findall("".join(blocks)))
        else:
            assert targets is None


def _can_build() -> bool:
    """A C compiler and this interpreter's headers: what ``pip install`` needs to build the scanner."""
    import shutil
    import sysconfig
    include = sysconfig.get_paths().get("include") or ""
    return bool(shutil.which(sysconfig.get_config_var("CC").split()[0] if sysconfig.get_config_var("CC") else "cc")
                or shutil.which("cc")) and (Path(include) / "Python.h").exists()


def test_the_compiled_scanner_is_built_where_it_can_be():
    """Where a C compiler and Python's headers are present (CI installs gcc and python3-dev
    as root), a build that silently fell back to pure Python fails here instead of
    skipping the comparisons; SVCINSPECT_REQUIRE_NATIVE=1 asks for it anywhere."""
    required = os.environ.get("SVCINSPECT_REQUIRE_NATIVE", "") not in ("", "0")
    if not required and not _can_build():
        pytest.skip("no C compiler or Python headers here: the compiled scanner is optional, and was not built")
    assert native is not None, "svcinspect.dataplane.iptables._scan was not built by pip install, though it could be"


@needs_native
@pytest.mark.parametrize("path", RULES + [None], ids=lambda p: "generated" if p is None else str(p.relative_to(FIXTURES)))
def test_every_fixture_scans_the_same(path):
    if path is None:  # kube-proxy's shapes at some size: many chains per region
        text = (IPT / "iptables-save.txt").read_text()
        nat = text.index("*nat\n")
        extra = []
        for i in range(300):
            sep = f"KUBE-SEP-{i:0>16}".replace("0", "A").replace("1", "B")[:25]
            extra.append(f"-A {sep} -s 10.244.{i // 250}.{i % 250}/32 -m comment --comment \"ns/s{i}:p\" -j KUBE-MARK-MASQ\n"
                         f"-A {sep} -p tcp -m comment --comment \"ns/s{i}:p\" -m tcp -j DNAT --to-destination "
                         f"10.244.{i // 250}.{i % 250}:80\n")
        commit = text.index("COMMIT\n", nat)
        text = text[:commit] + "".join(extra) + text[commit:]
    else:
        text = path.read_text(errors="replace")
    _compare(text)


@needs_native
def test_the_scanners_answer_for_the_real_dump():
    """Not a comparison of two empty answers: the real dump's chains are all read."""
    rs = parse_iptables_save((IPT / "iptables-save.txt").read_text(), "x")
    nat = rs.table("nat")
    seps, cascades = nat.chains.single_blocks("KUBE-SEP-"), nat.chains.single_blocks(bulk._CASCADE_PREFIXES)
    assert len(native.dnat(seps)) == len(seps) > 5
    assert all(native.dnat(seps).values())
    assert len(native.cascades(cascades)) == len(cascades) > 5
    assert any(len(v) > 1 for v in native.cascades(cascades).values())


@needs_native
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(LINES), max_size=40), st.data())
def test_mutated_dumps_scan_the_same(lines, data):
    out = mutate(lines, data, TOKENS, max_drop=3)
    _compare("*nat\n:KUBE-SEP-ABCDEFGHIJKLMN23 - [0:0]\n" + "\n".join(out) + "\nCOMMIT\n")


@needs_native
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.lists(st.sampled_from(TOKENS), max_size=12).map("".join), max_size=20))
def test_token_soup_scans_the_same(lines):
    _compare("*nat\n" + "\n".join(lines) + "\nCOMMIT\n")


@needs_native
@pytest.mark.parametrize("bad", [None, 1, [1], [("a", 1)], [("a", "1", "b")], [(1, 1, "x")], [("a", 1, b"x")]])
def test_wrong_arguments_are_type_errors(bad):
    for fn in (native.dnat, native.cascades):
        with pytest.raises(TypeError):
            fn(bad)
    with pytest.raises(TypeError):
        native.segments(bad)
    if bad is not None and bad != [] and not (isinstance(bad, list) and all(isinstance(x, str) for x in bad)):
        with pytest.raises(TypeError):
            native.jump_targets(bad)
    with pytest.raises(TypeError):
        native.fold(bad, 0, {}, [], 1)
    with pytest.raises(TypeError):
        native.fold_decls(bad, {}, 1, ("0", "0"))


@needs_native
def test_long_lines_and_huge_numbers():
    """Bounded loops: a 1 MB line, a 200-digit affinity timeout, a line of quotes."""
    long = "-A KUBE-SVC-ABCDEFGHIJKLMN23 " + "x" * 1_000_000 + " -j KUBE-MARK-MASQ\n"
    digits = "9" * 200
    aff = (f"-A KUBE-SVC-ABCDEFGHIJKLMN23 -m recent --name KUBE-SEP-X --rcheck --seconds {digits} --reap "
           f"-j KUBE-SEP-ABCDEFGHIJKLMN23\n")
    quotes = "-A KUBE-SEP-ABCDEFGHIJKLMN23 " + '"' * 10000 + " -j DNAT --to-destination 1.2.3.4:5\n"
    for block in (long, aff, quotes, long + aff):
        _compare("*nat\n" + block + "COMMIT\n")
    got = native.cascades([("KUBE-SVC-ABCDEFGHIJKLMN23", 1, aff)])
    assert got["KUBE-SVC-ABCDEFGHIJKLMN23"][0][4] == int(digits)


HOSTILE = ["tests/test_parse_fuzz.py", "tests/test_hostile_input.py", "tests/test_hostile_lines.py",
           "tests/test_hostile_values.py", "tests/test_hostile_properties.py", "tests/test_hostile_output.py"]


@needs_native
def test_hostile_inputs_with_the_pure_python_scanner():
    """The suite runs the hostile-input tests with the compiled scanner (the
    default when built); this runs them again with the pure-Python one."""
    root = Path(__file__).resolve().parent.parent
    env = dict(os.environ, SVCINSPECT_NO_NATIVE="1")
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x", *HOSTILE],
                       cwd=root, env=env, capture_output=True, text=True, timeout=1500)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
