"""Live reading of nftables mode, and which of kube-proxy's modes is live.

Fake runners pin the command lines and the fallbacks; the namespace tests load
the real v1.36.2 capture with ``nft -f`` into a namespace they create and prove
that reading it changes nothing (``nft list ruleset`` byte-identical).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import FIXTURES, IPT, NetNS, needs_netns
from svcinspect.errors import EnvironmentProblem
from svcinspect.model.netfilter import Family
from svcinspect.sources.command import CommandResult
from svcinspect.sources.nft import read_live_rules, read_nft_tables

NFT = FIXTURES / "kube-proxy-v1.36.2" / "nftables"
JSON = (NFT / "nft-list-ruleset.json").read_text()
V4_TEXT = (NFT / "nft-list-table-ip-kube-proxy.txt").read_text()
ROOT_CAPS = (1 << 12) | (1 << 21)


class Runner:
    def __init__(self, answer):
        self.answer, self.calls = answer, []

    def __call__(self, argvs):
        self.calls.extend(list(a) for a in argvs)
        return [self.answer(a) for a in argvs]


def test_reads_the_text_listing_of_both_families_in_one_batch():
    # Text, not -j: at 10000 services it costs nft less CPU than JSON, the
    # analysis peaks lower, and every nft build has it. Both families at once.
    def answer(argv):
        if argv[-2] == "ip":
            return CommandResult(0, V4_TEXT, "")
        return CommandResult(1, "", "Error: No such file or directory\nlist table ip6 kube-proxy\n")
    batches = []

    def run(argvs):
        batches.append([list(a) for a in argvs])
        return [answer(a) for a in argvs]
    texts, diags, found = read_nft_tables((Family.V4, Family.V6), None, run)
    assert found and [t.name for t in texts] == ["live:nft list table ip kube-proxy"]
    assert batches == [[["nft", "list", "table", "ip", "kube-proxy"], ["nft", "list", "table", "ip6", "kube-proxy"]]]
    assert diags == []
    rs = read_live_rules("auto", (Family.V4,), None, runner=_modes_runner(V4_TEXT, ""), caps=ROOT_CAPS)
    assert rs.dataplane == "nftables" and rs.form == "text"
    assert any(s.name == "services" for t in rs.tables for s in t.chains.values())


def test_missing_nft_binary_is_only_a_note():
    texts, diags, found = read_nft_tables((Family.V4,), None, Runner(lambda a: CommandResult(127, "", "nft: No such"
                                                                                             " file or directory")))
    assert (texts, found) == ([], False) and "nft not found" in diags[0].message


def test_nft_failure_is_one_line():
    with pytest.raises(EnvironmentProblem) as exc:
        read_nft_tables((Family.V4,), None, Runner(lambda a: CommandResult(1, "", "Error: Operation not permitted")))
    assert "permission denied" in str(exc.value)


def _modes_runner(nft_json: str | None, iptables: str):
    def answer(argv):
        name = argv[argv.index("--") + 1] if argv[0] == "nsenter" else argv[0]
        if name == "nft":
            if nft_json is None:
                return CommandResult(1, "", "Error: No such file or directory\n")
            return CommandResult(0, nft_json, "")
        if name == "iptables-nft-save":
            return CommandResult(0, iptables, "")
        if name == "ip6tables-nft-save":
            return CommandResult(0, "", "")
        return CommandResult(127, "", f"{name}: No such file or directory")
    return Runner(answer)


def _only_ip(js: str) -> str:
    doc = json.loads(js)
    doc["nftables"] = [o for o in doc["nftables"] if next(iter(o.values())).get("family", "ip") == "ip"]
    return json.dumps(doc)


IPT_SAVE = (IPT / "iptables-save.txt").read_text()
NO_CANARY = "\n".join(ln for ln in IPT_SAVE.splitlines() if "KUBE-PROXY-CANARY" not in ln) + "\n"


@pytest.mark.parametrize("nft,ipt,mode,warn", [
    (_only_ip(JSON), "", "nftables", None),
    (None, IPT_SAVE, "iptables", None),
    (_only_ip(JSON), IPT_SAVE, "iptables", "the iptables rules look live"),
    (_only_ip(JSON), NO_CANARY, "nftables", "the nftables rules look live"),
], ids=["nft only", "iptables only", "both, canary", "both, no canary"])
def test_mode_detection(nft, ipt, mode, warn):
    rs = read_live_rules("auto", (Family.V4,), None, runner=_modes_runner(nft, ipt), caps=ROOT_CAPS)
    assert getattr(rs, "dataplane", "iptables") == mode
    warnings = [d.message for d in rs.diagnostics if d.severity >= 1 and "both modes" in d.message]
    if warn is None:
        assert warnings == []
    else:
        assert len(warnings) == 1 and warn in warnings[0] and "leftover" in warnings[0]


# --- in a namespace the test creates ---------------------------------------------------------

def svcinspect(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "svcinspect", *args], capture_output=True, text=True)


@pytest.fixture(scope="module")
def nft_ns():
    from conftest import netns_unavailable_reason
    reason = netns_unavailable_reason()
    if reason:
        pytest.skip(reason)
    ns = NetNS()
    try:
        ns.run("nft", "-f", str(NFT / "nft-list-ruleset.txt"))
        yield ns
    finally:
        ns.close()


COMMANDS = [["services", "-o", "json"], ["trace", "default/hello-world"],
            ["packet", "--src", "10.244.1.7", "--dst", "10.96.10.10", "--dport", "80"],
            ["check", "--fail-on", "never"], ["dump"], ["graph", "default/affinity"]]


@needs_netns
@pytest.mark.parametrize("argv", COMMANDS, ids=" ".join)
def test_reading_never_changes_the_ruleset(nft_ns, argv):
    before = nft_ns.run("nft", "list", "ruleset").stdout
    assert "table ip kube-proxy" in before
    r = svcinspect(*argv, "--netns", nft_ns.name)
    assert r.returncode == 0, r.stderr
    assert r.stdout
    assert nft_ns.run("nft", "list", "ruleset").stdout == before


@needs_netns
def test_live_services_equal_those_of_the_saved_capture(nft_ns, cli):
    live = json.loads(svcinspect("services", "--netns", nft_ns.name, "-o", "json").stdout)
    saved = json.loads(cli("services", "--rules", str(NFT / "nft-list-ruleset.txt"), "-o", "json").out)

    def strip(doc):
        return [{k: v for k, v in s.items() if k not in ("entries", "endpoints", "localEndpoints", "filter")}
                | {"endpoints": [(e["endpoint"], e["fraction"]) for e in s["endpoints"]],
                   "entries": sorted((e["kind"], e["address"], e["port"]) for e in s["entries"])}
                for s in doc["services"]]
    assert strip(live) == strip(saved)
    assert all(s["dataplane"] == "nftables" for s in live["services"])


@needs_netns
def test_dump_is_accepted_by_nft_check(cli, tmp_path):
    for name in ("nft-list-ruleset.txt", "nft-list-ruleset.json"):
        out = tmp_path / "dump.nft"
        out.write_text(cli("dump", "--rules", str(NFT / name)).out)
        r = subprocess.run(["unshare", "-n", "nft", "-c", "-f", str(out)], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr


@needs_netns
def test_both_modes_in_one_namespace_is_a_warning_naming_the_live_one(netns):
    netns.run("nft", "-f", str(NFT / "nft-list-table-ip-kube-proxy.txt"))
    netns.restore(IPT_SAVE, 4, "nft")  # iptables mode's rules too, with KUBE-PROXY-CANARY
    before = netns.run("nft", "list", "ruleset").stdout
    r = svcinspect("services", "--netns", netns.name, "-o", "json")
    assert r.returncode == 0, r.stderr
    assert "kube-proxy rules in both modes" in r.stderr and "the iptables rules look live" in r.stderr
    doc = json.loads(r.stdout)
    assert doc["input"]["dataplane"] == "iptables"  # iptables mode was read
    assert not any("dataplane" in s for s in doc["services"])
    assert netns.run("nft", "list", "ruleset").stdout == before
    only = svcinspect("services", "--netns", netns.name, "--family", "6")  # no table either way: not silent
    assert only.returncode == 0


@needs_netns
def test_reader_iptc_finds_the_nftables_table_as_save_and_auto_do(nft_ns):
    # --reader picks how iptables is read (python-iptables here); the mode is
    # still detected, so an nftables-mode node is read with nft, not "no services".
    before = nft_ns.run("nft", "list", "ruleset").stdout
    docs = {}
    for reader in ("iptc", "save", "auto"):
        r = svcinspect("services", "--netns", nft_ns.name, "--reader", reader, "-o", "json")
        assert r.returncode == 0, (reader, r.stderr)
        docs[reader] = json.loads(r.stdout)
        if reader == "iptc":
            assert "nftables table is read with nft" in r.stdout  # an informational note in the document
    assert docs["iptc"]["services"] and all(s["dataplane"] == "nftables" for s in docs["iptc"]["services"])
    assert docs["iptc"]["services"] == docs["save"]["services"] == docs["auto"]["services"]
    assert docs["iptc"]["input"]["dataplane"] == "nftables"
    for argv in (["trace", "default/hello-world"], ["packet", "--src", "10.244.1.7", "--dst", "10.96.10.10",
                                                     "--dport", "80"]):
        got = {reader: svcinspect(*argv, "--netns", nft_ns.name, "--reader", reader, "-o", "json")
               for reader in ("iptc", "save")}
        assert got["iptc"].returncode == got["save"].returncode == 0, got["iptc"].stderr
        assert json.loads(got["iptc"].stdout) == json.loads(got["save"].stdout)
    assert nft_ns.run("nft", "list", "ruleset").stdout == before


@needs_netns
@pytest.mark.parametrize("argv", [["trace", "default/hello-world"], ["services"],
                                  ["packet", "--src", "10.244.1.7", "--dst", "10.96.10.10", "--dport", "80"]],
                         ids=" ".join)
def test_one_nft_listing_per_family_per_run(nft_ns, argv, tmp_path):
    # At 10000 services one listing takes ~35 s: asking "nftables mode?" and
    # then reading the rules must not list the table twice.
    import os
    import shutil
    log = tmp_path / "nft.log"
    shim = tmp_path / "bin" / "nft"
    shim.parent.mkdir()
    shim.write_text(f'#!/bin/sh\necho "$*" >> {log}\nexec {shutil.which("nft")} "$@"\n')
    shim.chmod(0o755)
    env = dict(os.environ, PATH=f"{shim.parent}:{os.environ['PATH']}")
    r = subprocess.run([sys.executable, "-m", "svcinspect", *argv, "--netns", nft_ns.name, "-o", "json"],
                       capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    calls = log.read_text().splitlines()
    assert "list tables" not in calls, calls  # the table was listed: no probe for it
    assert sorted(c for c in calls if c.startswith("list table ")) == \
        ["list table ip kube-proxy", "list table ip6 kube-proxy"], calls
