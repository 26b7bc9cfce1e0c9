"""The fast paths of the whole-dump commands change time, never output.

Every rules fixture (and a few hand-edited variants that push chains off the
fast path) goes through services, check, graph and dump twice: with the bulk
readers (``svcinspect.dataplane.iptables.bulk``, the compiled scanner when it is built, the
fast encoders and formatters) and with all of them off. stdout, stderr and the
exit code must be byte-identical. Every test here runs twice: with the
compiled scanner (``svcinspect.dataplane.iptables._scan``; skipped, saying so, when it is not
built) and with the pure-Python scanner as the fast path.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from conftest import FIXTURES, IPT, KP, RULE_FILES
from svcinspect import perf

RULES = RULE_FILES


def _variants(tmp: Path) -> list[Path]:
    """Hand edits of the real 1.36 dump that the bulk readers must decline
    (or read exactly as the decoder does)."""
    text = (IPT / "iptables-save.txt").read_text()
    lines = text.splitlines(keepends=True)
    out = []

    def write(name: str, new: list[str]) -> None:
        p = tmp / name
        p.write_text("".join(new))
        out.append(p)

    sep_dnat = next(i for i, ln in enumerate(lines) if ln.startswith("-A KUBE-SEP-") and " DNAT " in ln)
    svc_branch = next(i for i, ln in enumerate(lines) if ln.startswith("-A KUBE-SVC-") and "--probability" in ln)
    commit = max(i for i, ln in enumerate(lines) if ln == "COMMIT\n")
    # A chain split in two runs: its first rule moved to the end of nat.
    moved = lines[:svc_branch] + lines[svc_branch + 1:commit] + [lines[svc_branch]] + lines[commit:]
    write("split-chain.txt", moved)
    # A DNAT with a quote in its tail, and one with an extra option.
    q = list(lines)
    q[sep_dnat] = q[sep_dnat].rstrip("\n") + ' -m comment --comment "x"\n'
    write("dnat-quoted-tail.txt", q)
    r = list(lines)
    r[sep_dnat] = r[sep_dnat].replace(" -j DNAT ", " -j DNAT --random ")
    write("dnat-random.txt", r)
    # Tabs and stray spaces, a cascade rule the fast shapes do not cover.
    t = list(lines)
    t[svc_branch] = t[svc_branch].replace(" -m statistic", "  -m statistic")
    t[sep_dnat] = "  " + t[sep_dnat]
    write("spaces.txt", t)
    u = list(lines)
    u[svc_branch] = u[svc_branch].replace("-j KUBE-SEP-", "-m mark --mark 0x1 -j KUBE-SEP-")
    write("unusual-branch.txt", u)
    # A duplicated endpoint rule and a corrupt probability.
    d = lines[:sep_dnat + 1] + [lines[sep_dnat]] + lines[sep_dnat + 1:]
    write("duplicate-dnat.txt", d)
    p = [re.sub(r"--probability [0-9.]+", "--probability 0.5x", ln) if i == svc_branch else ln
         for i, ln in enumerate(lines)]
    write("bad-probability.txt", p)
    # Rules that are not in canonical form, or not valid, among canonical ones
    # of the same shapes (dump renders them; the others pass through).
    odd = ["-A ODD -p tcp --dport 80 -j ACCEPT\n", "-A ODD --source 10.0.0.1 -j ACCEPT\n",
           "-A ODD -s 10.0.0.01/32 -j ACCEPT\n", "-A ODD -s 10.244.0.5/16 -j ACCEPT\n",
           "-A ODD -s 10.244.0.5/32 -j ACCEPT\n", "-A ODD -m comment --comment plain -j ACCEPT\n",
           "-A ODD -m comment --comment \"with \\\"quote\\\"\" -j ACCEPT\n", "-A ODD -m nosuchmodule -j ACCEPT\n",
           "-A ODD -p TCP -m tcp --dport 80 -j ACCEPT\n", "-A ODD  -s 10.244.0.6/32 -j ACCEPT\n",
           "-A ODD -m statistic --mode random --probability 0.5 -j ACCEPT\n",
           "-A ODD -m statistic --mode random --probability .5 -j ACCEPT\n",
           "-A ODD -m tcp -p tcp --dport 0080 -j ACCEPT\n", "-A ODD -j DNAT --to-destination 10.0.0.1:80\n"]
    nat_commit = next(i for i, ln in enumerate(lines) if ln == "COMMIT\n" and i > lines.index("*nat\n"))
    decl = lines.index("*nat\n") + 1
    for name, extra in (("odd-rules.txt", odd), ("odd-rules-duplicate.txt", odd + odd[-1:])):
        write(name, lines[:decl] + [":ODD - [0:0]\n"] + lines[decl:nat_commit] + extra + lines[nat_commit:])
    c = [("[007:0] " if ln.startswith("-A KUBE-SEP-") else "[1:2] ") + ln if ln.startswith("-A ") else ln
         for ln in lines]
    write("counters-leading-zero.txt", c)
    return out


def _commands(path: Path) -> list[list[str]]:
    r = ["--rules", str(path)]
    cmds = [["services", *r], ["services", *r, "-o", "json"], ["check", *r, "--fail-on", "never"],
            ["check", *r, "-o", "json"], ["graph", *r, "-o", "dot", "--out", OUT], ["graph", *r, "-o", "json", "--out", OUT],
            ["dump", *r], ["dump", *r, "--no-counters"]]
    objects = path.parent / "objects.json"
    if objects.exists():
        cmds += [["services", *r, "--objects", str(objects), "-o", "json"], ["services", *r, "--objects", str(objects)],
                 ["check", *r, "--objects", str(objects), "--node", "kind-worker", "-o", "json"]]
    return cmds


OUT = "@OUT@"  # graph writes bytes to the real stdout, past capsys: give it a file


@pytest.fixture(params=["native", "python"], ids=["native-scanner", "python-scanner"])
def scanner(request):
    """The scanner the fast path uses in this test (the slow path uses none)."""
    if request.param == "native" and not perf.native_built():
        pytest.skip("the compiled scanner svcinspect.dataplane.iptables._scan is not built (no C compiler at install time?): "
                    "only the pure-Python scanner is tested")
    return request.param == "native"


def _run(cli, args: list[str], on: bool, out: Path, native: bool = True) -> tuple:
    out.unlink(missing_ok=True)
    with perf.all_fast_paths(on), perf.native_scanner(on and native):
        r = cli(*[str(out) if a == OUT else a for a in args])
    return r.code, r.out, r.err, out.read_bytes() if out.exists() else None


def _both(cli, args: list[str], tmp: Path, native: bool) -> None:
    slow = _run(cli, args, False, tmp / "out.slow")
    fast = _run(cli, args, True, tmp / "out.fast", native)
    assert fast == slow, args
    assert slow[0] in (0, 1, 2), (args, slow[2])  # never a crash (70)


def test_the_fixture_list_is_not_empty():
    assert len(RULES) >= 20 and IPT / "iptables-save.txt" in RULES


@pytest.mark.parametrize("path", RULES, ids=lambda p: str(p.relative_to(FIXTURES)))
def test_every_fixture_reads_the_same_on_both_paths(cli, path, tmp_path, scanner):
    for args in _commands(path):
        _both(cli, args, tmp_path, scanner)


def test_hand_edited_dumps_read_the_same_on_both_paths(cli, tmp_path, scanner):
    for path in _variants(tmp_path):
        for args in _commands(path):
            _both(cli, args, tmp_path, scanner)


def test_both_families_together(cli, tmp_path, scanner):
    for d in (IPT, KP / "iptables-legacy"):
        for counters in ("", "-counters"):
            r = ["--rules", str(d / f"iptables-save{counters}.txt"), "--rules", str(d / f"ip6tables-save{counters}.txt")]
            for args in (["services", *r, "-o", "json"], ["services", *r], ["check", *r, "-o", "json"],
                         ["dump", *r], ["graph", *r, "--out", OUT]):
                _both(cli, args, tmp_path, scanner)


def test_the_fast_paths_are_taken(cli, scanner):
    """Guard against a comparison of the slow path with itself: on the real
    dump the bulk readers answer for every cascade and endpoint chain."""
    from svcinspect.dataplane.iptables import bulk
    from svcinspect.dataplane.iptables.parse import parse_iptables_save
    from svcinspect.dataplane import build_service_ports

    rs = parse_iptables_save((IPT / "iptables-save.txt").read_text(), "x")
    nat = rs.table("nat")
    with perf.all_fast_paths(True), perf.native_scanner(scanner):
        assert (bulk._native is not None) == scanner
        svcs = [n for n in nat.chains if n.startswith("KUBE-SVC-")]
        seps = [n for n in nat.chains if n.startswith("KUBE-SEP-")]
        assert svcs and seps
        assert all(bulk.cascade(nat, n) is not bulk.UNSURE for n in svcs)
        assert bulk.service_chain_hashes(nat) is not bulk.UNSURE
        scan = bulk.scan_nat(nat)
        assert set(scan.cascades) >= set(svcs) and set(scan.dnat) == set(seps)
        assert all(scan.dnat[n] for n in seps)  # every endpoint chain of the real dump DNATs
        assert build_service_ports(rs)
    with perf.all_fast_paths(False):
        assert bulk.cascade(nat, svcs[0]) is bulk.UNSURE
        assert bulk.scan_nat(nat) is None


@pytest.mark.parametrize("value", [
    1 / 3, 0.1, 1e-05, 9.999e-05, 3.3333e-05, 0.0001, 1e-10, 1e16, 1.5e300, 0.0, -0.0, 2 ** 63 - 1, 2 ** 70,
    "plain", "caf\u00e9", "\x7f", "\x00\x1b\b\f\n\r\t\"\\/", "\u2028", "10.0.0.1e", [], {}, [[], {}], None, True,
    (1, 2), {"nested": [{"share": 1e-07, "x": [0.5]}]},
])
@pytest.mark.parametrize("pretty", [False, True])
def test_the_json_encoder_writes_what_json_dumps_writes(value, pretty):
    from svcinspect.render.json import dumps

    doc = {"schema": "svcinspect/v1", "value": value, "list": [value, {"k": value}]}
    with perf.all_fast_paths(False):
        slow = dumps(doc, pretty)
    with perf.all_fast_paths(True):
        fast = dumps(doc, pretty)
    assert fast == slow


def test_the_json_encoder_is_fast_for_our_documents():
    """orjson (when installed) writes the services document itself, not the fallback."""
    from svcinspect.render import json as rj
    from svcinspect.dataplane.iptables.parse import parse_iptables_save
    from svcinspect.dataplane import build_service_ports

    if rj.orjson is None:
        pytest.skip("orjson is not installed: the standard library encoder is the only path")
    doc = rj.services_json(build_service_ports(parse_iptables_save((IPT / "iptables-save.txt").read_text(), "x")), [])
    import json

    with perf.all_fast_paths(True):
        assert rj._orjson(doc, False) == json.dumps(doc, separators=(",", ":")) + "\n"
        assert rj._orjson(doc, True) == json.dumps(doc, indent=2) + "\n"


def test_the_direct_table_formatter_prints_what_tabulate_prints():
    import random

    import tabulate as tabulate_module

    from svcinspect.render.text import _simple_table, tabulate

    rnd = random.Random(14)
    alphabet = ["a", "B", "7", " ", "-", ":", "/", "(", "%"]
    tried = 0
    for _ in range(400):
        ncol = rnd.randint(1, 6)
        headers = ["".join(rnd.choice(alphabet[:4]) for _ in range(rnd.randint(1, 12))).strip() or "H"
                   for _ in range(ncol)]
        rows = [["".join(rnd.choice(alphabet) for _ in range(rnd.choice([0, 1, 3, 15, 40]))) for _ in range(ncol)]
                for _ in range(rnd.randint(0, 8))]
        expected = tabulate_module.tabulate(rows, headers=headers, tablefmt="simple", disable_numparse=True)
        direct = _simple_table(rows, headers)
        assert direct == expected, (headers, rows)
        with perf.all_fast_paths(True):
            assert tabulate(rows, headers=headers, tablefmt="simple", disable_numparse=True) == expected
        tried += 1
    assert tried == 400
    # What it leaves to tabulate: multi-line, wide, non-string cells, uneven rows.
    for rows in ([["a\nb", "c"]], [["caf\u00e9", "x"]], [[1, "x"]], [["a"]], [["a", "b", "c"]], [["\t", "x"]],
                 [["a\x00b", "x"]], [["\x00", "x"]], [["x", "\x00"], ["y", "z"]]):
        assert _simple_table(rows, ["H1", "H2"]) is None


@pytest.mark.parametrize("service", ["default/hello-world", "default/affinity:http", "default/lb-ranges"])
def test_trace_and_packet_read_the_same_on_both_paths(cli, tmp_path, service, scanner):
    """They share the renderers (tables, JSON encoder) with the whole-dump commands."""
    r = ["--rules", str(IPT / "iptables-save.txt"), "--rules", str(IPT / "ip6tables-save.txt")]
    objects = ["--objects", str(IPT / "objects.json"), "--node", "kind-worker"]
    for args in (["trace", service, *r], ["trace", service, *r, "-o", "json"], ["trace", service, *r, *objects],
                 ["trace", service, *r, *objects, "-o", "json"],
                 ["packet", *r, "--src", "10.244.1.7", "--dst", "10.96.10.10", "--dport", "80"],
                 ["packet", *r, "--src", "10.244.1.7", "--dst", "10.96.10.10", "--dport", "80", "-o", "json"]):
        _both(cli, args, tmp_path, scanner)
