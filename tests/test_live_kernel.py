"""Live reading on the real kernel, inside private network namespaces the tests
create (conftest ``netns``): both readers give the model the parser gives for
``iptables-*-save`` of the same tables, every command works with ``--netns`` from
outside and from inside the namespace, and svcinspect never changes a byte of
netfilter state. The host's own tables are never read or written.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import IPT, KP, WILD, NetNS, needs_netns
from svcinspect.model.netfilter import Family
from svcinspect.dataplane.iptables.parse import parse_iptables_save
from svcinspect.sources.command import read_live
from svcinspect.sources.iptc import read_iptc_texts
from svcinspect.sources.netns import resolve_netns

pytestmark = [needs_netns, pytest.mark.netns]

V4 = (IPT / "iptables-save.txt").read_text()
V6 = (IPT / "ip6tables-save.txt").read_text()

# Every fixture that is a complete dump (the wild excerpts with prompts, "..."
# elisions or truncation cannot be restored; those that can are listed).
FIXTURES = [
    (KP / "iptables" / "iptables-save.txt", 4),
    (KP / "iptables" / "ip6tables-save.txt", 6),
    (KP / "iptables" / "iptables-save-counters.txt", 4),
    (KP / "iptables" / "ip6tables-save-counters.txt", 6),
    (KP / "iptables-legacy" / "iptables-save.txt", 4),
    (KP / "iptables-legacy" / "ip6tables-save.txt", 6),
    (KP / "iptables-nodeport-addresses-primary" / "iptables-save.txt", 4),
    (KP / "iptables-nodeport-addresses-primary" / "ip6tables-save.txt", 6),
    *[(KP / "iptables" / "sequence" / step / f"{tool}-save.txt", fam)
      for step in ("step0-initial", "step1-hello-world-scaled-3-to-5", "step2-web-multi-deleted")
      for tool, fam in (("iptables", 4), ("ip6tables", 6))],
    (WILD / "004-flannel-docker-k8s127-full-2024.rules", 4),
]


def _id(p) -> str:
    return "/".join(p.parts[-2:]) if hasattr(p, "parts") else str(p)


def save(ns: NetNS, family: int, backend: str, counters: bool = False) -> str:
    tool = ("iptables" if family == 4 else "ip6tables") + f"-{backend}-save"
    return ns.run(tool, *(["-c"] if counters else [])).stdout


def svcinspect(*args: str, inside: NetNS | None = None) -> subprocess.CompletedProcess:
    argv = [sys.executable, "-m", "svcinspect", *args]
    if inside is not None:
        argv = ["ip", "netns", "exec", inside.name, *argv]
    return subprocess.run(argv, capture_output=True, text=True)


@pytest.mark.parametrize("counters", [True, False], ids=["-c", "no-c"])
@pytest.mark.parametrize("path,family", FIXTURES, ids=[_id(p) for p, _ in FIXTURES])
def test_iptc_reader_gives_the_model_of_parsed_legacy_save(netns, path, family, counters):
    netns.restore(path.read_text(), family, "legacy")
    # Some traffic, so that counters are not all zero.
    netns.run("ip", "link", "set", "lo", "up")
    netns.run(sys.executable, "-c", "import socket; s = socket.socket(socket.AF_INET6 if %d == 6 else socket.AF_INET, "
              "socket.SOCK_DGRAM); [s.sendto(b'x', ('::1' if %d == 6 else '127.0.0.1', 9)) for _ in range(3)]"
              % (family, family))
    fam = Family(family)
    text = read_iptc_texts((fam,), resolve_netns(netns.name), counters)[fam]
    from_iptc = parse_iptables_save(text, "iptc", family=fam)
    from_save = parse_iptables_save(save(netns, family, "legacy", counters), "save", family=fam)
    assert from_iptc == from_save
    assert (from_iptc.chain("filter", "OUTPUT", fam).counters.packets > 0) is True
    # Not two empty reads: every rule of the fixture is there.
    assert from_iptc.rule_count() == parse_iptables_save(path.read_text()).rule_count() > 0


@pytest.mark.parametrize("backend", ["legacy", "nft"])
@pytest.mark.parametrize("path,family", FIXTURES[:2] + FIXTURES[-1:], ids=_id)
def test_save_reader_gives_the_model_of_parsed_save(netns, backend, path, family):
    netns.restore(path.read_text(), family, backend)
    rs = read_live("save", (Family(family),), netns.name)
    assert rs == parse_iptables_save(save(netns, family, backend), family=Family(family))
    assert rs.rule_count() == parse_iptables_save(path.read_text()).rule_count()
    assert rs.origin == (f"live:{'ip6' if family == 6 else 'ip'}tables-{backend}-save@netns:{netns.name}",)


@pytest.mark.parametrize("backend,reader", [("legacy", "auto"), ("legacy", "iptc"), ("legacy", "save"),
                                            ("nft", "auto"), ("nft", "save")])
def test_services_live_equals_services_of_the_saved_dump(netns, backend, reader):
    netns.restore(V4, 4, backend)
    netns.restore(V6, 6, backend)
    live = svcinspect("services", "-o", "json", "--netns", netns.name, "--reader", reader)
    inside = svcinspect("services", "-o", "json", "--reader", reader, inside=netns)
    offline = svcinspect("services", "-o", "json", "--rules", str(IPT / "iptables-save.txt"),
                         "--rules", str(IPT / "ip6tables-save.txt"))
    assert live.returncode == inside.returncode == offline.returncode == 0, live.stderr + inside.stderr
    assert live.stdout == inside.stdout
    # Line numbers differ (legacy-save prints nat first) and live adds a note on the backend.
    assert _without_lines(json.loads(live.stdout)) == _without_lines(json.loads(offline.stdout))
    assert len(json.loads(live.stdout)["services"]) == 30


@pytest.mark.parametrize("backend,reader", [("legacy", "save"), ("nft", "save"), ("legacy", "iptc")])
@pytest.mark.parametrize("argv", [
    ["packet", "--src", "10.244.1.7", "--dst", "10.96.10.10", "--dport", "80", "--node-ip", "192.168.10.11"],
    ["packet", "--src", "203.0.113.5", "--dst", "192.168.10.11", "--dport", "31611", "--node-ip", "192.168.10.11"],
    ["trace", "default/hello-world", "--node-ip", "192.168.10.11"],
    ["graph", "default/web-multi", "-o", "json"],
], ids=lambda a: " ".join(a[:2]) + (" " + a[6] if a[0] == "packet" else ""))
def test_lookup_commands_live_equal_them_on_the_saved_dump(netns, backend, reader, argv):
    """packet, trace and graph SERVICE look chains up in the live save output
    (python-iptables' text is read in full): the same answer as on the file."""
    netns.restore(V4, 4, backend)
    netns.restore(V6, 6, backend)
    json_argv = argv if argv[0] == "graph" else argv + ["-o", "json"]
    live = svcinspect(*json_argv, "--netns", netns.name, "--reader", reader)
    offline = svcinspect(*json_argv, "--rules", str(IPT / "iptables-save.txt"), "--rules", str(IPT / "ip6tables-save.txt"))
    assert live.returncode == offline.returncode == 0, live.stderr + offline.stderr
    skip = ("source", "origin", "warnings", "tooltip")
    assert _without_lines(_without(json.loads(live.stdout), skip)) == \
        _without_lines(_without(json.loads(offline.stdout), skip))


def _without(doc, keys):
    if isinstance(doc, dict):
        return {k: _without(v, keys) for k, v in doc.items() if k not in keys}
    if isinstance(doc, list):
        return [_without(v, keys) for v in doc]
    return doc


def _without_lines(doc):
    if isinstance(doc, dict):
        return {k: _without_lines(v) for k, v in doc.items() if k not in ("line", "diagnostics")}
    if isinstance(doc, list):
        return [_without_lines(v) for v in doc]
    return doc


def test_netns_accepts_a_name_a_path_and_proc_pid(netns):
    netns.restore(V4, 4, "nft")
    sleeper = subprocess.Popen(["ip", "netns", "exec", netns.name, "sleep", "60"])
    try:
        outs = [svcinspect("services", "--family", "4", "--netns", spec).stdout
                for spec in (netns.name, netns.path, f"/proc/{sleeper.pid}/ns/net")]
    finally:
        sleeper.kill()
        sleeper.wait()
    assert outs[0] == outs[1] == outs[2] and "default/hello-world" in outs[0]


def test_iptc_reader_on_an_nft_namespace_says_where_the_rules_are(netns):
    netns.restore(V4, 4, "nft")
    r = svcinspect("services", "--netns", netns.name, "--reader", "iptc")
    assert r.returncode == 3 and r.stdout == ""
    assert "kube-proxy's rules are in iptables-nft" in r.stderr and "--reader save" in r.stderr


def test_split_brain_is_a_warning_naming_the_stale_backend(netns):
    netns.restore(V4, 4, "nft")
    netns.restore("*filter\n:KUBE-FIREWALL - [0:0]\n:KUBE-KUBELET-CANARY - [0:0]\n"
                  "-A KUBE-FIREWALL -j DROP\nCOMMIT\n", 4, "legacy")
    r = svcinspect("services", "--netns", netns.name)
    assert r.returncode == 0 and "default/hello-world" in r.stdout
    assert "split brain" in r.stderr and "iptables-legacy rules look stale" in r.stderr


def test_an_empty_namespace_is_not_silently_empty(netns):
    r = svcinspect("services", "--netns", netns.name)
    assert r.returncode == 0
    assert "no kube-proxy (KUBE-*) chains in any iptables backend" in r.stderr


def test_without_net_admin_the_cli_says_to_run_as_root(netns):
    r = subprocess.run(["setpriv", "--bounding-set=-net_admin,-sys_admin", "--inh-caps=-all",
                        sys.executable, "-m", "svcinspect", "services", "--netns", netns.name],
                       capture_output=True, text=True)
    assert r.returncode == 3, r.stderr
    assert r.stderr.startswith("svcinspect: error: reading the live tables needs root") and "Traceback" not in r.stderr


# --- read-only, provably ----------------------------------------------------------

# Every command that reads rules: adding one is one line here.
COMMANDS = [
    ["services"],
    ["services", "-o", "json"],
    ["dump"],
    ["dump", "--family", "6"],
    ["packet", "--src", "10.244.1.5", "--dst", "10.96.10.10", "--dport", "80"],
    ["trace", "default/hello-world"],
    ["check", "--fail-on", "never"],
    ["graph", "default/hello-world"],
]
READERS = ["auto", "save", "iptc"]


def _snapshot(ns: NetNS) -> dict[str, str]:
    """Every view of netfilter state in the namespace, minus save's timestamp lines."""
    out = {}
    for tool in ("iptables-legacy-save", "iptables-nft-save", "ip6tables-legacy-save", "ip6tables-nft-save"):
        text = ns.run(tool, "-c").stdout
        out[tool] = "\n".join(ln for ln in text.splitlines() if not ln.startswith(("# Generated by", "# Completed on")))
    out["nft list ruleset"] = ns.run("nft", "list", "ruleset").stdout
    for names in ("/proc/net/ip_tables_names", "/proc/net/ip6_tables_names"):
        out[names] = ns.run("cat", names, check=False).stdout
    return out


@pytest.fixture(scope="module")
def loaded_ns():
    """Rules in both backends and both families: kube-proxy's (v1.36.2) in legacy;
    in nft an older, smaller IPv4 set (sequence step 2) and a kubelet-like IPv6 filter
    table, so legacy wins for either family and every reader has work."""
    ns = NetNS()
    try:
        ns.restore((KP / "iptables-legacy" / "iptables-save.txt").read_text(), 4, "legacy")
        ns.restore((KP / "iptables-legacy" / "ip6tables-save.txt").read_text(), 6, "legacy")
        step2 = KP / "iptables" / "sequence" / "step2-web-multi-deleted"
        ns.restore((step2 / "iptables-save.txt").read_text(), 4, "nft")
        ns.restore("*filter\n:KUBE-FIREWALL - [0:0]\n-A KUBE-FIREWALL -s ::1/128 -j DROP\nCOMMIT\n", 6, "nft")
        yield ns
    finally:
        ns.close()


@pytest.mark.parametrize("where", ["--netns", "ip netns exec"])
@pytest.mark.parametrize("reader", READERS)
@pytest.mark.parametrize("argv", COMMANDS, ids=" ".join)
def test_commands_never_change_netfilter_state(loaded_ns, argv, reader, where):
    before = _snapshot(loaded_ns)
    assert "KUBE-SERVICES" in before["iptables-legacy-save"] and "KUBE-SERVICES" in before["nft list ruleset"]
    if where == "--netns":
        r = svcinspect(*argv, "--reader", reader, "--netns", loaded_ns.name)
    else:
        r = svcinspect(*argv, "--reader", reader, inside=loaded_ns)
    assert r.returncode == 0, r.stderr
    assert r.stdout
    after = _snapshot(loaded_ns)
    for view in before:
        assert after[view] == before[view], f"{' '.join(argv)} --reader {reader} changed {view}"


def test_reading_does_not_create_legacy_tables(netns):
    """Opening a legacy table creates it: readers must only open tables that exist."""
    netns.restore(V4, 4, "nft")
    for reader in READERS[:2]:
        assert svcinspect("services", "--netns", netns.name, "--reader", reader).returncode == 0
    assert netns.run("cat", "/proc/net/ip_tables_names", check=False).stdout == ""
    assert "Warning" not in netns.run("iptables-nft-save").stderr
    # python-iptables itself, on a namespace with no legacy tables at all
    texts = read_iptc_texts((Family.V4, Family.V6), resolve_netns(netns.name))
    assert texts == {Family.V4: "", Family.V6: ""}
    assert netns.run("cat", "/proc/net/ip_tables_names", check=False).stdout == ""
