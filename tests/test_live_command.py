"""Live reading without a kernel: backend detection, split brain, error mapping and
the CLI options, through a fake command runner (svcinspect.sources.command)."""

from __future__ import annotations

import json

import pytest

from conftest import IPT, KP
from svcinspect.errors import EnvironmentProblem, Severity
from svcinspect.model.netfilter import Family
from svcinspect.dataplane.iptables.parse import parse_iptables_save
from svcinspect.sources import command
from svcinspect.sources.command import CommandResult, FakeRunner, choose_backend, count_kube, read_live

V4 = (IPT / "iptables-save-counters.txt").read_text()
V6 = (IPT / "ip6tables-save-counters.txt").read_text()
ROOT_CAPS = (1 << command.CAP_NET_ADMIN) | (1 << command.CAP_SYS_ADMIN)
# What kubelet alone leaves in a backend (old kubelets wrote these to legacy).
KUBELET_ONLY = """*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:KUBE-FIREWALL - [0:0]
:KUBE-KUBELET-CANARY - [0:0]
-A INPUT -j KUBE-FIREWALL
-A KUBE-FIREWALL -m comment --comment "block incoming localnet connections" -j DROP
COMMIT
"""


def node(nft4="", nft6="", legacy4="", legacy6="", **extra) -> FakeRunner:
    return FakeRunner({"iptables-nft-save": nft4, "ip6tables-nft-save": nft6,
                       "iptables-legacy-save": legacy4, "ip6tables-legacy-save": legacy6, **extra})


def live(runner, **kw):
    kw.setdefault("caps", ROOT_CAPS)
    return read_live(runner=runner, **kw)


def warnings(ruleset) -> list[str]:
    return [d.message for d in ruleset.diagnostics if d.severity >= Severity.WARNING]


def test_nft_node_reads_the_nft_backend_as_the_parser_would():
    rs = live(node(nft4=V4, nft6=V6))
    assert rs == parse_iptables_save(V4 + V6)
    assert rs.rule_count() == 288 + 41
    assert rs.origin == ("live:iptables-nft-save", "live:ip6tables-nft-save")
    assert warnings(rs) == []
    assert any("reading the iptables-nft backend" in d.message for d in rs.diagnostics)


@pytest.mark.parametrize("counters", [False, True])
def test_legacy_node_reads_legacy_and_runs_every_save(counters):
    runner = node(legacy4=V4, legacy6=V6)
    rs = live(runner, counters=counters)
    assert rs.origin == ("live:iptables-legacy-save", "live:ip6tables-legacy-save")
    flag = ("-c",) if counters else ()
    assert sorted(map(tuple, runner.calls)) == sorted([(c, *flag) for c in (
        "iptables-nft-save", "ip6tables-nft-save", "iptables-legacy-save", "ip6tables-legacy-save")])


def test_split_brain_warns_and_says_which_backend_looks_stale():
    rs = live(node(nft4=V4, legacy4=KUBELET_ONLY))
    assert rs.origin == ("live:iptables-nft-save",)
    [warning] = warnings(rs)
    assert "split brain" in warning
    assert "iptables-legacy rules look stale (fewer KUBE rules, no KUBE-PROXY-CANARY)" in warning
    assert "iptables-legacy-save > FILE" in warning


def test_split_brain_with_the_legacy_backend_ahead():
    rs = live(node(nft4=KUBELET_ONLY, legacy4=V4, legacy6=V6))
    assert rs.origin[0] == "live:iptables-legacy-save"
    assert "iptables-nft rules look stale" in warnings(rs)[0]


def test_two_live_looking_backends_say_a_kube_proxy_may_still_write_the_other():
    step2 = (IPT / "sequence" / "step2-web-multi-deleted" / "iptables-save.txt").read_text()
    rs = live(node(nft4=V4, legacy4=step2))
    assert rs.origin == ("live:iptables-nft-save",)
    assert "may still be writing it" in warnings(rs)[0]


def test_a_node_without_kube_proxy_says_so_instead_of_listing_nothing():
    rs = live(node(legacy4=KUBELET_ONLY.replace("KUBE-", "DOCKER-")))
    assert "no kube-proxy (KUBE-*) chains in any iptables backend" in warnings(rs)[0]


def test_backend_choice_follows_kube_proxy_rule_counts():
    big, small = count_kube(V4), count_kube(KUBELET_ONLY)
    assert (big.rules, big.chains, big.canary) == (274, 102, True)
    assert choose_backend({"nft": big, "legacy": small})[0] == "nft"
    assert choose_backend({"nft": small, "legacy": big})[0] == "legacy"
    assert choose_backend({"nft": big, "legacy": big})[0] == "nft"  # a tie: nft, like kube-proxy's wrapper


def test_family_4_runs_only_the_ipv4_commands():
    runner = node(nft4=V4, nft6=V6)
    rs = live(runner, families=(Family.V4,))
    assert rs.families == (Family.V4,)
    assert all(c[0].startswith("iptables-") for c in runner.calls)


def test_netns_goes_through_nsenter_and_is_named_in_the_source():
    runner = node(nft4=V4)
    rs = live(runner, netns="/proc/self/ns/net", families=(Family.V4,))
    assert runner.calls[0][:3] == ["nsenter", "--net=/proc/self/ns/net", "--"]
    assert rs.origin == ("live:iptables-nft-save@netns:/proc/self/ns/net",)


@pytest.mark.parametrize("answers,words", [
    ({"iptables-nft-save": CommandResult(4, "", "iptables-nft-save v1.8.9 (nf_tables): Could not fetch rule set "
                                                 "generation id: Permission denied (you must be root)\n")},
     "permission denied (run as root"),
    ({"iptables-legacy-save": CommandResult(1, "", "Failed to list table names in /proc/net/ip_tables_names: "
                                                    "Permission denied\n")}, "permission denied"),
    ({"iptables-nft-save": CommandResult(4, "", "Another app is currently holding the xtables lock. "
                                                 "Perhaps you want to use the -w option?\n")}, "xtables lock is held"),
    ({"iptables-nft-save": CommandResult(1, "", "iptables-nft-save: something odd\n")},
     "iptables-nft-save failed: iptables-nft-save: something odd"),
    ({"iptables-nft-save": None, "iptables-legacy-save": None}, "install iptables (apt-get install iptables)"),
])
def test_save_failures_become_one_line_naming_the_fix(monkeypatch, answers, words):
    monkeypatch.setattr(command, "_iptc_available", lambda: False)
    base = {"iptables-nft-save": V4, "iptables-legacy-save": ""}
    base.update(answers)
    runner = FakeRunner({k: v for k, v in base.items() if v is not None})
    with pytest.raises(EnvironmentProblem) as exc:
        live(runner, families=(Family.V4,))
    assert words in str(exc.value) and "\n" not in str(exc.value)


def test_auto_falls_back_to_python_iptables_when_no_save_binary_exists(monkeypatch):
    import svcinspect.sources.iptc as iptc_source
    monkeypatch.setattr(command, "_iptc_available", lambda: True)
    monkeypatch.setattr(iptc_source, "read_iptc_texts", lambda fams, ref=None, counters=False: {f: V4 for f in fams})
    rs = live(FakeRunner({}), families=(Family.V4,))
    assert rs.origin == ("live:python-iptables-ipv4",) and rs == parse_iptables_save(V4)
    assert any("only the iptables-legacy backend (python-iptables) was read" in d.message for d in rs.diagnostics)


def test_one_missing_backend_is_not_an_error():
    rs = live(FakeRunner({"iptables-legacy-save": V4}), families=(Family.V4,))
    assert rs.origin == ("live:iptables-legacy-save",)


def test_netns_errors():
    with pytest.raises(EnvironmentProblem, match="ip netns list"):
        live(node(), netns="svci-no-such-namespace")
    with pytest.raises(EnvironmentProblem, match="not a network namespace"):
        live(node(), netns=str(IPT / "iptables-save.txt"))
    with pytest.raises(EnvironmentProblem, match="mount namespace, not a network namespace"):
        live(node(), netns="/proc/self/ns/mnt")
    refused = CommandResult(1, "", "nsenter: reassociate to namespace 'ns/net' failed: Operation not permitted\n")
    with pytest.raises(EnvironmentProblem, match="cannot enter network namespace"):
        live(FakeRunner({"nsenter": refused, "iptables-nft-save": refused}), netns="/proc/self/ns/net")


def test_nsenter_missing_names_util_linux():
    def no_nsenter(argvs):
        return [CommandResult(127, "", "nsenter: No such file or directory") for _ in argvs]

    with pytest.raises(EnvironmentProblem, match="util-linux"):
        live(no_nsenter, netns="/proc/self/ns/net")


def test_privileges_are_checked_first():
    runner = node(nft4=V4)
    with pytest.raises(EnvironmentProblem, match=r"needs root \(CAP_NET_ADMIN\).*--rules FILE"):
        live(runner, caps=0)
    with pytest.raises(EnvironmentProblem, match="CAP_SYS_ADMIN"):
        live(runner, caps=1 << command.CAP_NET_ADMIN, netns="/proc/self/ns/net")
    assert runner.calls == []


def test_iptc_reader_on_an_nft_node_refuses_instead_of_reporting_no_services(monkeypatch):
    import svcinspect.sources.iptc as iptc_source
    # python-iptables on an nft node: the legacy tables are simply absent.
    monkeypatch.setattr(iptc_source, "read_iptc_texts", lambda fams, ref=None, counters=False: {f: "" for f in fams})
    with pytest.raises(EnvironmentProblem) as exc:
        live(node(nft4=V4, nft6=V6), reader="iptc")
    assert "reads only the iptables-legacy backend" in str(exc.value)
    assert "kube-proxy's rules are in iptables-nft (301 KUBE rules" in str(exc.value)
    assert "--reader save" in str(exc.value)


def test_iptc_reader_missing_python_iptables(monkeypatch):
    import importlib.util
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "iptc" else real(name, *a))
    with pytest.raises(EnvironmentProblem, match=r"pip install 'svcinspect\[live\]'"):
        live(node(nft4=V4), reader="iptc")


def test_iptc_c_libraries_missing(monkeypatch):
    import builtins

    from svcinspect.sources.iptc import _import_iptc
    real_import = builtins.__import__

    def fake(name, *a, **k):
        if name == "iptc":
            raise OSError("libxtables.so.12: cannot open shared object file")
        return real_import(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", fake)
    with pytest.raises(EnvironmentProblem, match=r"C libraries .*apt-get install iptables"):
        _import_iptc()


# --- the CLI options ------------------------------------------------------------

def test_cli_live_options_conflict_with_rules(cli):
    for extra in (["--netns", "x"], ["--reader", "save"]):
        r = cli("services", "--rules", str(IPT / "iptables-save.txt"), *extra)
        assert r.code == 2 and "cannot be combined with --rules" in r.err and "Traceback" not in r.err


def test_cli_family_selects_tables_of_a_dump(cli):
    both = str(KP / "iptables" / "iptables-save.txt"), str(KP / "iptables" / "ip6tables-save.txt")
    r = cli("dump", "--rules", both[0], "--rules", both[1], "--family", "6", "--no-counters")
    assert r.code == 0 and "(ip6tables-save format)" in r.out and "(iptables-save format)" not in r.out


def test_cli_without_rules_reads_live_and_maps_errors(cli, monkeypatch):
    monkeypatch.setattr(command, "effective_capabilities", lambda: 0)
    r = cli("services")
    assert r.code == 3 and r.err.startswith("svcinspect: error: reading the live tables needs root")
    assert len(r.err.strip().splitlines()) == 1


def test_cli_reads_live_through_the_runner(cli, monkeypatch):
    monkeypatch.setattr(command, "effective_capabilities", lambda: ROOT_CAPS)
    monkeypatch.setattr(command, "run_commands", node(nft4=V4, nft6=V6))
    r = cli("services", "-o", "json")
    want = cli("services", "-o", "json", "--rules", str(IPT / "iptables-save-counters.txt"),
               "--rules", str(IPT / "ip6tables-save-counters.txt"))
    assert r.code == 0 and want.code == 0
    got, expected = json.loads(r.out), json.loads(want.out)
    assert [d["message"] for d in got.pop("diagnostics")] == [
        "reading the iptables-nft backend: 301 KUBE rules in 122 KUBE chains (with KUBE-PROXY-CANARY)"]
    expected.pop("diagnostics")
    assert got == expected and len(got["services"]) == 30
