"""Live `services`: the service analysis done while iptables-save prints
(``dataplane.iptables.early``) gives the bytes the whole-text path gives.

For every fixture and for hand-edited variants that push a table, a chain or a
service port off the early path (chains out of order or in two runs, a
declaration after the rules, an undeclared chain, the nat table twice, a
filter rule for a service that has endpoints, cascades and dispatch rules the
decoder has to read, missing endpoint chains, stale chains...), fed to the
stream cut at fixed and at hypothesis-chosen byte positions with rounds of 1
to 5000 characters: the `services` table, its JSON document, the diagnostics
(verbose) and the chains each table decoded (their order decides the
diagnostics' order) equal those of ``parse_iptables_save`` of the whole text,
and those of the stream with the early analysis off. With the compiled and the
pure-Python scanner. Then through the CLI with fake save commands, and in a
network namespace with the real iptables-legacy-save.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import FIXTURES, IPT, ROOT, needs_netns, RULE_FILES
from svcinspect.cli import _decoded_diagnostics
from svcinspect.completeness import assess_input, render_input_text
from svcinspect.dataplane import build_service_ports
from svcinspect.dataplane.iptables import early as early_mod
from svcinspect.dataplane.iptables.parse import parse_iptables_save
from svcinspect.dataplane.iptables.stream import SaveStream
from svcinspect.errors import SvcinspectError
from svcinspect.model.netfilter import Family
from svcinspect.render import json as render_json
from svcinspect.render import text as render_text
from svcinspect.sources.command import count_kube

RULES = RULE_FILES
REAL = (IPT / "iptables-save.txt").read_text()


pytestmark = pytest.mark.usefixtures("in_each_scanner")  # (conftest)


def family_of(name: str) -> Family:
    return Family.V6 if "ip6" in name else Family.V4


def services_output(ruleset) -> tuple:
    """What `services` and `services -o json` print (stdout, stderr with
    --verbose), and which chains each table decoded, in order."""
    ports = build_service_ports(ruleset)
    diags = _decoded_diagnostics(ruleset)
    whole = assess_input(ruleset)
    table = render_input_text(whole) + render_text.render_services(ports, None)
    doc = render_json.dumps(render_json.services_json(ports, diags, None, whole), pretty=False)
    decoded = [[c.name for c in t.decoded_chains()] for t in ruleset.tables]
    return table, doc, render_text.render_diagnostics(list(diags), verbose=True), decoded


def whole_text(text: str, family: Family) -> tuple:
    try:
        return services_output(parse_iptables_save(text, "live", family=family))
    except SvcinspectError as exc:
        return type(exc), str(exc)


def streamed(pieces: list[bytes], family: Family, piece: int, early: bool = True):
    """(services output of the stream's ruleset, the nat tables' EarlyServices)."""
    was, early_mod.ENABLED = early_mod.ENABLED, early
    try:
        stream = SaveStream("live", family=family, piece=piece)
        with early_mod.wanted():
            for p in pieces:
                stream.feed(p)
            try:
                ruleset = stream.finish()
            except SvcinspectError as exc:
                return (type(exc), str(exc)), []
        attached = [getattr(t.chains, "early", None) for t in ruleset.tables if t.name == "nat"]
        return services_output(ruleset), [e for e in attached if e is not None]
    finally:
        early_mod.ENABLED = was


def cut(data: bytes, size: int) -> list[bytes]:
    return [data[i:i + size] for i in range(0, len(data), size)] or [b""]


def cut_at(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(c, len(data)) for c in cuts})
    return [data[a:b] for a, b in zip([0] + points, points + [len(data)])]


def check_same(text: str, family: Family, pieces: list[bytes], piece: int):
    want = whole_text(text, family)
    got, early = streamed(pieces, family, piece)
    off, none = streamed(pieces, family, piece, early=False)
    assert got == want
    assert off == want
    assert all(e.used == 0 for e in none)
    return early


# --- every fixture -------------------------------------------------------------------

@pytest.mark.parametrize("path", RULES, ids=lambda p: str(p.relative_to(FIXTURES)))
@pytest.mark.parametrize("size,piece", [(1, 64), (7, 1), (4096, 5000), (1 << 30, 1 << 20)])
def test_every_fixture_gives_the_same_services(path, size, piece):
    data = path.read_bytes()
    check_same(data.decode("utf-8", "replace"), family_of(path.name), cut(data, size), piece)


@pytest.mark.parametrize("path", [IPT / "iptables-save.txt", IPT / "iptables-save-counters.txt",
                                  IPT / "ip6tables-save.txt"], ids=lambda p: p.name)
@pytest.mark.parametrize("piece", [1, 200, 1 << 20])
def test_real_saves_are_analysed_early(path, piece):
    """The fixtures kube-proxy wrote take the early path: most service ports
    are handed back from it (the rest built a chain, or are finished at the end)."""
    data = path.read_bytes()
    early = check_same(data.decode(), family_of(path.name), cut(data, 997), piece)
    assert len(early) == 1
    ports = len(build_service_ports(parse_iptables_save(data.decode(), "x", family=family_of(path.name))))
    assert early[0].used >= ports // 2, (early[0].used, ports)


# --- hand-edited and hostile variants --------------------------------------------------

def _nat_bounds(text: str) -> tuple[int, int]:
    start = text.index("*nat\n")
    return start, text.index("COMMIT\n", start)


def _lines_of(text: str, prefix: str) -> list[str]:
    return [ln for ln in text.split("\n") if ln.startswith(prefix)]


def _move_to_nat_end(text: str, line: str) -> str:
    text = text.replace(line + "\n", "", 1)
    _, end = _nat_bounds(text)
    return text[:end] + line + "\n" + text[end:]


def _swap_chains(text: str, a: str, b: str) -> str:
    """The rule runs of chains ``a`` and ``b`` (consecutive in the dump) in the other order."""
    ra = "".join(ln + "\n" for ln in _lines_of(text, f"-A {a} "))
    rb = "".join(ln + "\n" for ln in _lines_of(text, f"-A {b} "))
    assert ra + rb in text
    return text.replace(ra + rb, rb + ra)


def _variants() -> dict[str, str]:
    svc = sorted({ln.split()[1] for ln in _lines_of(REAL, "-A KUBE-SVC-")})
    sep = sorted({ln.split()[1] for ln in _lines_of(REAL, "-A KUBE-SEP-")})
    svc_rule = _lines_of(REAL, f"-A {svc[1]} ")[-1]
    services = _lines_of(REAL, "-A KUBE-SERVICES ")
    cluster = next(ln for ln in services if "cluster IP" in ln and "KUBE-SVC-" in ln)
    spn = re.search(r'--comment "([^ "]+) cluster IP"', cluster).group(1)
    dnat = next(ln for ln in _lines_of(REAL, "-A KUBE-SEP-") if "DNAT" in ln)
    start, end = _nat_bounds(REAL)
    nat = REAL[start:end + len("COMMIT\n")]
    filt_start = REAL.index("*filter\n")
    filt_end = REAL.index("COMMIT\n", filt_start) + len("COMMIT\n")
    filt = REAL[filt_start:filt_end]
    before_commit = REAL[:end]
    out = {
        "real": REAL,
        # off the early path for the whole table
        "svc-in-two-runs": _move_to_nat_end(REAL, svc_rule),
        "svc-chains-swapped": _swap_chains(REAL, svc[1], svc[2]),
        "sep-chains-swapped": _swap_chains(REAL, sep[3], sep[4]),
        "declared-after-rules": before_commit + ":KUBE-SVC-AAAAAAAAAAAAAAAA - [0:0]\n" + REAL[end:],
        "undeclared-chain": before_commit + "-A KUBE-SVC-BBBBBBBBBBBBBBBB -j KUBE-SEP-CCCCCCCCCCCCCCCC\n" + REAL[end:],
        "nat-twice": REAL + nat,
        # the early path for the table, not for some service ports
        "filter-after-nat": REAL[:filt_start] + REAL[filt_end:] + filt,
        "reject-for-a-service-with-endpoints": _reject_for(REAL, spn),
        "cascade-with-an-extra-match": REAL.replace(svc_rule, svc_rule.replace(" -j KUBE-SEP-", " -m mark ! --mark "
                                                                                   "0x4000/0x4000 -j KUBE-SEP-")),
        "dispatch-rule-decoded": REAL.replace(cluster, cluster.replace(" -j KUBE-SVC-", " -m conntrack --ctstate "
                                                                             "NEW -j KUBE-SVC-")),
        "dispatch-rule-unknown-option": REAL.replace(cluster, cluster.replace(" -j KUBE-SVC-", " --frobnicate 7 -j "
                                                                                   "KUBE-SVC-")),
        "missing-endpoint-chain": "\n".join(ln for ln in REAL.split("\n")
                                            if not (ln.startswith(f"-A {sep[0]} ") or ln.startswith(f":{sep[0]} "))),
        "endpoint-without-dnat": REAL.replace(dnat, dnat.replace("-j DNAT --to-destination", "-j MARK --set-mark")),
        "comment-disagrees": REAL.replace(dnat, re.sub(r"--to-destination [0-9.]+:", "--to-destination 10.9.9.9:", dnat)),
        # a cascade no dispatch rule reaches, where iptables-save prints it, and out of order
        "stale-service-chain": _stale(REAL, svc, sep[0], in_order=True),
        "stale-service-chain-out-of-order": _stale(REAL, svc, sep[0], in_order=False),
        "no-dispatch-chains": "\n".join(ln for ln in REAL.split("\n") if "KUBE-SERVICES" not in ln
                                        and "KUBE-NODEPORTS" not in ln),
        "builtin-rule-after-kube-chains": before_commit + "-A PREROUTING -s 10.0.0.9/32 -j KUBE-MARK-MASQ\n" + REAL[end:],
        "uneven-cascade": REAL.replace("--probability 0.50000000000", "--probability 0.25000000000", 1),
        "no-commit": REAL[:end] + REAL[end + len("COMMIT\n"):],
    }
    assert all(v != REAL for k, v in out.items() if k != "real"), [k for k, v in out.items() if v == REAL and k != "real"]
    return out


def _stale(text: str, svc: list[str], sep: str, in_order: bool) -> str:
    name = "KUBE-SVC-ZZZZZZZZZZZZZZZZ"
    text = text.replace(f":{svc[0]} ", f":{name} - [0:0]\n:{svc[0]} ", 1)
    rule = f"-A {name} -j {sep}\n"
    if in_order:
        last = _lines_of(text, f"-A {svc[-1]} ")[-1] + "\n"
        return text.replace(last, last + rule)
    _, end = _nat_bounds(text)
    return text[:end] + rule + text[end:]


def _reject_for(text: str, spn: str) -> str:
    """A filter REJECT rule naming a service port that has endpoints (the filter
    scan adds to its accumulator after the early analysis finished it)."""
    fs = text.index("*filter\n")
    commit = text.index("COMMIT\n", fs)
    rule = (f'-A KUBE-SERVICES -d 10.96.99.99/32 -p tcp -m comment --comment "{spn} has no endpoints" '
            f"-m tcp --dport 80 -j REJECT --reject-with icmp-port-unreachable\n")
    return text[:commit] + rule + text[commit:]


VARIANTS = _variants()
OFF_THE_EARLY_PATH = {"svc-in-two-runs", "svc-chains-swapped", "sep-chains-swapped", "declared-after-rules",
                      "undeclared-chain", "nat-twice", "no-commit", "stale-service-chain-out-of-order"}
NOTHING_EARLY = {"no-dispatch-chains"}  # every service port comes from the end of _scan_nat


@pytest.mark.parametrize("name", sorted(VARIANTS))
@pytest.mark.parametrize("size,piece", [(1, 64), (500, 1), (333, 3000), (1 << 30, 1 << 20)])
def test_edited_and_hostile_variants_give_the_same_services(name, size, piece):
    data = VARIANTS[name].encode()
    early = check_same(VARIANTS[name], Family.V4, cut(data, size), piece)
    if name in OFF_THE_EARLY_PATH:
        assert early == []
    elif name in NOTHING_EARLY:
        assert len(early) == 1 and early[0].used == 0
    else:
        assert len(early) == 1 and early[0].used > 0


def test_a_service_port_the_filter_scan_adds_to_is_finished_again():
    text = VARIANTS["reject-for-a-service-with-endpoints"]
    got, early = streamed(cut(text.encode(), 300), Family.V4, 64)
    assert got == whole_text(text, Family.V4)
    ports = build_service_ports(parse_iptables_save(text, "live", family=Family.V4))
    rejected = [p for p in ports if p.endpoints and any(e.verdict == "reject" for e in p.entries)]
    assert len(rejected) == 1 and early[0].used <= len(ports) - 1


def test_a_second_analysis_of_the_same_ruleset_is_the_same():
    stream = SaveStream("live", family=Family.V4, piece=100)
    with early_mod.wanted():
        for p in cut(REAL.encode(), 700):
            stream.feed(p)
        ruleset = stream.finish()
    first = services_output(ruleset)
    (early,) = [t.chains.early for t in ruleset.tables if t.name == "nat"]
    used = early.used
    assert used > 0
    assert services_output(ruleset) == first  # computed afresh: the early answers are handed over once
    assert early.used == used


def test_the_fast_paths_off_turn_the_early_analysis_off(monkeypatch):
    from svcinspect.dataplane.iptables import bulk

    was = bulk.set_enabled(False)
    try:
        got, early = streamed(cut(REAL.encode(), 500), Family.V4, 64)
        want = whole_text(REAL, Family.V4)
    finally:
        bulk.set_enabled(was)
    assert early == [] and got == want


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from(sorted(VARIANTS)),
       cuts=st.lists(st.integers(min_value=0, max_value=70000), max_size=12),
       piece=st.integers(min_value=1, max_value=5000))
def test_arbitrary_cuts_and_rounds(name, cuts, piece):
    data = VARIANTS[name].encode()
    want = whole_text(VARIANTS[name], Family.V4)
    got, _ = streamed(cut_at(data, cuts), Family.V4, piece)
    assert got == want


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(drop=st.sets(st.integers(min_value=0, max_value=500), max_size=6),
       dup=st.sets(st.integers(min_value=0, max_value=500), max_size=3),
       piece=st.integers(min_value=1, max_value=3000))
def test_lines_dropped_or_repeated_anywhere(drop, dup, piece):
    """Rule lines removed or printed twice (a chain in two runs, a cascade
    without its endpoint chain, a dispatch rule without its chains...)."""
    lines = REAL.split("\n")
    out = []
    for i, ln in enumerate(lines):
        if i in drop and ln.startswith("-A "):
            continue
        out.append(ln)
        if i in dup and ln.startswith("-A "):
            out.append(ln)
    text = "\n".join(out)
    got, _ = streamed(cut(text.encode(), 811), Family.V4, piece)
    assert got == whole_text(text, Family.V4)


# --- through the CLI, with fake save commands ------------------------------------------

ROOT_ONLY = pytest.mark.skipif(os.geteuid() != 0, reason="live reading checks for root (CAP_NET_ADMIN) first")


def _fake_legacy(tmp_path: Path, dump: Path) -> dict:
    """iptables-legacy-save printing ``dump`` in small pieces, slowly; the
    other save commands print nothing."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    printer = (f"{sys.executable} -c 'import sys, time\n"
               "data = open(sys.argv[1], \"rb\").read()\n"
               "for i in range(0, len(data), 1499):\n"
               "    sys.stdout.buffer.write(data[i:i + 1499]); sys.stdout.flush(); time.sleep(0.0003)' ")
    for name in ("iptables-nft-save", "ip6tables-nft-save", "iptables-legacy-save", "ip6tables-legacy-save"):
        path = bin_dir / name
        path.write_text("#!/bin/sh\n" + (printer + str(dump) if name == "iptables-legacy-save" else "true") + "\n")
        path.chmod(0o755)
    nft = bin_dir / "nft"
    nft.write_text("#!/bin/sh\necho 'Error: No such file or directory' >&2; exit 1\n")
    nft.chmod(0o755)
    return {"PATH": f"{bin_dir}:/usr/bin:/bin", "PYTHONPATH": str(ROOT)}


def _svc(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "svcinspect", *args], capture_output=True, text=True,
                          timeout=300, cwd=ROOT, env=env)


@ROOT_ONLY
@pytest.mark.parametrize("name", ["real", "reject-for-a-service-with-endpoints", "cascade-with-an-extra-match",
                                  "svc-in-two-runs", "dispatch-rule-unknown-option"])
@pytest.mark.parametrize("argv", [("services",), ("services", "-o", "json"), ("services", "--verbose")])
def test_live_services_through_the_cli_with_and_without_the_early_analysis(tmp_path, name, argv):
    dump = tmp_path / "dump.txt"
    dump.write_text(VARIANTS[name])
    env = _fake_legacy(tmp_path, dump)
    live = _svc(*argv, "--family", "4", env=env)
    plain = _svc(*argv, "--family", "4", env={**env, "SVCINSPECT_NO_FAST": "1"})
    assert (live.returncode, live.stdout, live.stderr) == (plain.returncode, plain.stdout, plain.stderr)
    assert live.returncode in (0, 1) and live.stdout
    if argv == ("services",):  # and what `services --rules` of the saved text prints
        files = _svc("services", "--rules", str(dump), env=env)
        assert files.stdout == live.stdout


# --- the real iptables-legacy-save, in a namespace of our own --------------------------

@needs_netns
@pytest.mark.netns
@pytest.mark.parametrize("argv", [("services",), ("services", "-o", "json")])
def test_services_in_a_namespace_is_services_of_its_saved_text(netns, tmp_path, argv):
    netns.restore(_generated(300, 4))
    saved = netns.run("iptables-legacy-save").stdout
    (tmp_path / "saved.txt").write_text(saved)
    env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"), "PYTHONPATH": str(ROOT)}
    live = _svc(*argv, "--netns", netns.name, "--reader", "save", "--family", "4", env=env)
    files = _svc(*argv, "--rules", str(tmp_path / "saved.txt"), env=env)
    assert live.returncode == files.returncode == 0, live.stderr
    if argv == ("services",):
        assert live.stdout == files.stdout and len(live.stdout.splitlines()) == 302
    else:  # the live document adds the reader's one note about the backend it read
        import json
        got, want = json.loads(live.stdout), json.loads(files.stdout)
        assert [d["message"] for d in got.pop("diagnostics")] == [
            f"reading the iptables-legacy backend: {count_kube(saved).describe()}"]
        want.pop("diagnostics")
        assert got == want


def _generated(services: int, endpoints: int) -> str:
    """A kube-proxy-shaped nat table (restore input): ``services`` ClusterIP
    services with ``endpoints`` endpoints each, every tenth with a node port."""
    from svcinspect.dataplane.iptables.kubeproxy import hash16

    decls, rules = [], []
    for i in range(services):
        spn = f"ns{i % 7}/svc{i}:http"
        svc = "KUBE-SVC-" + hash16(spn + "tcp")
        ip = f"10.96.{i // 250}.{i % 250 + 1}"
        decls.append(f":{svc} - [0:0]")
        rules.append(f'-A KUBE-SERVICES -d {ip}/32 -p tcp -m comment --comment "{spn} cluster IP" '
                     f"-m tcp --dport 80 -j {svc}")
        if i % 10 == 0:
            ext = "KUBE-EXT-" + hash16(spn + "tcp")
            decls.append(f":{ext} - [0:0]")
            rules.append(f'-A KUBE-NODEPORTS -p tcp -m comment --comment "{spn}" -m tcp --dport {30000 + i} -j {ext}')
            rules.append(f'-A {ext} -m comment --comment "masquerade traffic for {spn} external destinations" '
                         f"-j KUBE-MARK-MASQ")
            rules.append(f"-A {ext} -j {svc}")
        for k in range(endpoints):
            ep = f"10.244.{i // 60}.{(i % 60) * 4 + k + 1}:8080"
            sep = "KUBE-SEP-" + hash16(spn + "tcp" + ep)
            decls.append(f":{sep} - [0:0]")
            rules.append(f'-A {sep} -s {ep.split(":")[0]}/32 -m comment --comment "{spn}" -j KUBE-MARK-MASQ')
            rules.append(f'-A {sep} -p tcp -m comment --comment "{spn}" -m tcp -j DNAT --to-destination {ep}')
            left = endpoints - k
            prob = f" -m statistic --mode random --probability {1 / left:.11f}" if left > 1 else ""
            rules.append(f'-A {svc} -m comment --comment "{spn} -> {ep}"{prob} -j {sep}')
    rules.append('-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last '
                 'rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS')
    head = [":PREROUTING ACCEPT [0:0]", ":INPUT ACCEPT [0:0]", ":OUTPUT ACCEPT [0:0]", ":POSTROUTING ACCEPT [0:0]",
            ":KUBE-MARK-MASQ - [0:0]", ":KUBE-NODEPORTS - [0:0]", ":KUBE-SERVICES - [0:0]"]
    tail = ["-A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES",
            "-A OUTPUT -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES",
            "-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000"]
    return "*nat\n" + "\n".join(head + decls + tail + rules) + "\nCOMMIT\n"


def test_only_a_caller_that_wants_it_gets_the_early_analysis():
    """Live dump, graph, diff... never build every service port: no work for them."""
    stream = SaveStream("live", family=Family.V4, piece=100)
    for p in cut(REAL.encode(), 700):
        stream.feed(p)
    ruleset = stream.finish()
    assert [getattr(t.chains, "early", None) for t in ruleset.tables if t.name == "nat"] == [None]
    assert services_output(ruleset) == whole_text(REAL, Family.V4)


def test_a_table_with_more_chains_than_the_bound_is_analysed_at_the_end(monkeypatch):
    """Memory: above early.MAX_CHAINS nat chains nothing is held early (the
    answers are the same, all computed at the end)."""
    monkeypatch.setattr(early_mod, "MAX_CHAINS", 50)
    got, early = streamed(cut(REAL.encode(), 900), Family.V4, 64)
    assert got == whole_text(REAL, Family.V4)
    assert early == []


@ROOT_ONLY
def test_live_check_and_dump_with_and_without_the_early_analysis(tmp_path):
    dump = tmp_path / "dump.txt"
    dump.write_text(VARIANTS["reject-for-a-service-with-endpoints"])
    env = _fake_legacy(tmp_path, dump)
    for argv in (("check",), ("check", "-o", "json"), ("dump",)):
        live = _svc(*argv, "--family", "4", env=env)
        plain = _svc(*argv, "--family", "4", env={**env, "SVCINSPECT_NO_FAST": "1"})
        assert (live.returncode, live.stdout, live.stderr) == (plain.returncode, plain.stdout, plain.stderr), argv
        assert live.stdout


@ROOT_ONLY
@pytest.mark.parametrize("argv,early_wanted", [(("services",), True), (("check",), True), (("dump",), False)])
def test_the_cli_asks_for_the_early_analysis_where_it_is_used(tmp_path, monkeypatch, cli, argv, early_wanted):
    """Live `services` and `check` take the early answers; `dump` does not pay for them."""
    dump = tmp_path / "dump.txt"
    dump.write_text(REAL)
    monkeypatch.setenv("PATH", _fake_legacy(tmp_path, dump)["PATH"])
    made: list = []
    real_init = early_mod.EarlyServices.__init__

    def init(self, *args, **kw):
        real_init(self, *args, **kw)
        made.append(self)

    monkeypatch.setattr(early_mod.EarlyServices, "__init__", init)
    r = cli(*argv, "--family", "4")
    assert r.code in (0, 1) and r.out, r.err
    if early_wanted:
        assert len(made) == 1 and made[0].used > 0
    else:
        assert made == []


def test_an_error_in_the_early_analysis_leaves_it_all_to_the_end(monkeypatch):
    from svcinspect.dataplane.iptables import services

    real = services._finish
    calls = [0]

    def flaky(*args):
        calls[0] += 1
        if calls[0] == 3:
            raise ValueError("boom")
        return real(*args)

    monkeypatch.setattr(services, "_finish", flaky)
    stream = SaveStream("live", family=Family.V4, piece=100)
    with early_mod.wanted():
        for p in cut(REAL.encode(), 700):
            stream.feed(p)
        ruleset = stream.finish()
    assert [getattr(t.chains, "early", None) for t in ruleset.tables if t.name == "nat"] == [None]
    monkeypatch.setattr(services, "_finish", real)
    assert services_output(ruleset) == whole_text(REAL, Family.V4)


# --- services._finish_plain: the early analysis' short way for the usual service port ---------


def _plain_and_finish(text: str, family):
    """(answered by _finish_plain, declined) over every service port of ``text``;
    asserts each answer is the one _finish gives."""
    from svcinspect.dataplane.iptables import bulk
    from svcinspect.dataplane.iptables import services as svc

    try:
        ruleset = parse_iptables_save(text, "x", family=family)
    except SvcinspectError:  # (not iptables-save text: nothing to finish)
        return 0, 0
    answered = declined = 0
    for nat in ruleset.tables:
        if nat.name != "nat":
            continue
        scan = bulk.scan_nat(nat)
        if scan is None:
            continue
        accs: dict = {}
        svc._scan_nat(nat, accs, None)
        for key, acc in accs.items():
            present = tuple(h + key for h in early_mod._HEADS if h + key in scan.names)
            plain = svc._finish_plain(key, nat.family, acc, scan, present)
            port = svc._finish(key, nat.family, acc, nat, scan)  # (as the early loop does when it declines)
            if plain is None:
                declined += 1
                continue
            answered += 1
            assert plain == port, key
    return answered, declined


def test_finish_plain_answers_as_finish_on_every_fixture_and_variant():
    answered = declined = 0
    for path in RULE_FILES:
        a, d = _plain_and_finish(path.read_text(errors="replace"), family_of(path.name))
        answered, declined = answered + a, declined + d
    for name, text in VARIANTS.items():
        a, d = _plain_and_finish(text, Family.V4)
        answered, declined = answered + a, declined + d
    # (both ways are taken: the comparison above is not vacuous, nor is the fallback)
    assert answered > 100 and declined > 20, (answered, declined)
