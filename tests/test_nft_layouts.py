"""Every kube-proxy nftables layout generation, 1.29 to 1.37, read the same way.

``fixtures/nftables-layouts/nft-*.nft`` hold one ruleset per generation (written by
hand in the shapes each release writes, listed back by nft itself) for the same
Services (``objects.json``). ``services`` must give the same service ports,
endpoints, exact shares, affinity, node ports and policies for all of them;
``packet`` must give each generation's own dispositions and masquerading (where
two generations really behave differently, the table says so); ``check`` must name
the generation it recognised, find nothing against the matching objects, and find
the stale endpoint once one is removed from the objects, without ever asking a
pre-1.36 table for 1.36's objects.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass

import pytest

from conftest import FIXTURES

LAYOUTS = FIXTURES / "nftables-layouts"
GENERATIONS = ["1.29", "1.30-1.33", "1.34-1.35", "1.36", "1.37"]
RECOGNISED = {"1.29": "1.29", "1.30-1.33": "1.30-1.33", "1.34-1.35": "1.34-1.35", "1.36": "1.36", "1.37": "1.37+"}
NODE = "192.168.10.11"
OBJECTS = LAYOUTS / "objects.json"


def rules(g: str) -> str:
    return str(LAYOUTS / f"nft-{g}.nft")


# --- services ---------------------------------------------------------------------------

# name: (cluster IP, node port, endpoints, local endpoints, affinity, filter verdicts, LB IPs, source ranges)
W, S = "10.244.1.21:8080 10.244.1.22:8080 10.244.2.23:8080".split(), ["10.244.1.31:8080", "10.244.2.32:8080"]
SERVICES = {
    "default/web:http": ("10.96.1.10", None, {e: "1/3" for e in W}, None, None, set(), [], []),
    "default/sticky:http": ("10.96.1.20", None, {e: "1/2" for e in S}, None, 600, set(), [], []),
    "default/local-np:http": ("10.96.1.30", 30100, {"10.244.1.41:8080": "1/2", "10.244.2.42:8080": "1/2"},
                              {"10.244.1.41:8080": "1"}, None, set(), [], []),
    "default/local-none:http": ("10.96.1.70", 30300, {"10.244.2.72:8080": "1"}, None, None,
                                {("nodePort", None, "drop"), ("externalIP", "203.0.113.70", "drop")}, [], []),
    "default/empty:http": ("10.96.1.40", None, {}, None, None, {("clusterIP", "10.96.1.40", "reject")}, [], []),
    "default/lb:http": ("10.96.1.50", 30200, {"10.244.1.51:8080": "1/2", "10.244.2.52:8080": "1/2"}, None, None,
                        {("loadBalancer", "192.0.2.50", "drop")}, ["192.0.2.50"], ["198.51.100.0/24"]),
    "default/single:http": ("10.96.1.60", None, {"10.244.1.61:8080": "1"}, None, None, set(), [], []),
}


def _services(cli, g):
    r = cli("services", "--rules", rules(g), "-o", "json")
    assert r.code == 0, r.err
    return {s["name"]: s for s in json.loads(r.out)["services"]}


@pytest.mark.parametrize("g", GENERATIONS)
def test_services_give_the_objects_facts_in_every_generation(cli, g):
    docs = _services(cli, g)
    assert set(docs) == set(SERVICES)
    for name, (cip, nport, eps, local, aff, filt, lbs, ranges) in SERVICES.items():
        d = docs[name]
        assert d["dataplane"] == "nftables" and d["warnings"] == [], (g, name, d["warnings"])
        assert (d["clusterIP"], d["port"], d["nodePort"]) == (cip, 80, nport), (g, name)
        assert {e["endpoint"]: e["fraction"] for e in d["endpoints"]} == eps, (g, name)
        assert ({e["endpoint"]: e["fraction"] for e in d["localEndpoints"]} if d["localEndpoints"] is not None
                else None) == local, (g, name)
        assert (d["affinity"] or {}).get("timeoutSeconds") == aff, (g, name)
        assert {(f["kind"], f["address"], f["verdict"]) for f in d["filter"]} == filt, (g, name)
        assert d["loadBalancerIPs"] == lbs and d["loadBalancerSourceRanges"] == ranges, (g, name)
    assert docs["default/local-none:http"]["externalIPs"] == ["203.0.113.70"]


def _facts(doc):
    """A service port without what only names one generation's objects (chains, lines)."""
    drop = {"chain", "chains", "line", "key"}
    if isinstance(doc, dict):
        return {k: _facts(v) for k, v in doc.items() if k not in drop}
    if isinstance(doc, list):
        return sorted((_facts(v) for v in doc), key=json.dumps)
    return doc


def test_all_generations_give_the_same_services_json(cli):
    base = {n: _facts(d) for n, d in _services(cli, "1.36").items()}
    for g in GENERATIONS:
        assert {n: _facts(d) for n, d in _services(cli, g).items()} == base, g


# --- packet ------------------------------------------------------------------------------

@dataclass(frozen=True)
class PacketCase:
    name: str
    src: str
    dst: str
    port: int
    expect: dict | str        # {endpoint: masqueraded} for DNAT outcomes, else "reject" / "drop" / "none"
    only: tuple = ()          # generations where this answer holds (default: all)


POD, OUTSIDE = "10.244.1.9", "203.0.113.5"
ALL_W = {"10.244.1.21:8080": False, "10.244.1.22:8080": False, "10.244.2.23:8080": False}
CASES = [
    PacketCase("pod to cluster IP: 1/3 each, source kept", POD, "10.96.1.10", 80, ALL_W),
    PacketCase("hairpin: a pod through its own service is masqueraded when it reaches itself", "10.244.1.21",
               "10.96.1.10", 80, {**ALL_W, "10.244.1.21:8080": True}),
    PacketCase("outside the pod network to a cluster IP: masqueraded", "192.168.50.5", "10.96.1.10", 80,
               {e: True for e in ALL_W}),
    PacketCase("the node to a cluster IP: masqueraded", NODE, "10.96.1.10", 80, {e: True for e in ALL_W}),
    PacketCase("affinity: a first packet splits 1/2 each", POD, "10.96.1.20", 80,
               {"10.244.1.31:8080": False, "10.244.2.32:8080": False}),
    PacketCase("node port, eTP Local, from outside: the local endpoint, source kept", OUTSIDE, NODE, 30100,
               {"10.244.1.41:8080": False}),
    PacketCase("node port, eTP Local, from a pod: short-circuit to every endpoint", POD, NODE, 30100,
               {"10.244.1.41:8080": False, "10.244.2.42:8080": False}),
    PacketCase("node port, eTP Local without a local endpoint, from outside: dropped", OUTSIDE, NODE, 30300, "drop"),
    PacketCase("external IP, eTP Local without a local endpoint, from outside: dropped", OUTSIDE, "203.0.113.70",
               80, "drop"),
    PacketCase("external IP, eTP Local without a local endpoint, from a pod: short-circuit", POD, "203.0.113.70",
               80, {"10.244.2.72:8080": False}),
    PacketCase("the node to that external IP: dropped before DNAT (filter-output at -110, #131765)", NODE,
               "203.0.113.70", 80, "drop", ("1.29", "1.30-1.33")),
    PacketCase("the node to that external IP: served, masqueraded (filter-output at 0 since #132456)", NODE,
               "203.0.113.70", 80, {"10.244.2.72:8080": True}, ("1.34-1.35", "1.36", "1.37")),
    PacketCase("the node to that node port: dropped (1.29 checks node ports in filter-output)", NODE, NODE,
               30300, "drop", ("1.29",)),
    PacketCase("the node to that node port: served, masqueraded (node ports checked in filter-input only)",
               NODE, NODE, 30300, {"10.244.2.72:8080": True}, ("1.30-1.33", "1.34-1.35", "1.36", "1.37")),
    PacketCase("no endpoints: rejected", POD, "10.96.1.40", 80, "reject"),
    PacketCase("no endpoints, from the node: rejected", NODE, "10.96.1.40", 80, "reject"),
    PacketCase("LB IP from an allowed source: masqueraded, 1/2 each", "198.51.100.7", "192.0.2.50", 80,
               {"10.244.1.51:8080": True, "10.244.2.52:8080": True}),
    PacketCase("LB IP from a source outside the ranges: dropped", "100.64.0.1", "192.0.2.50", 80, "drop"),
    PacketCase("LB node port from outside: masqueraded", OUTSIDE, NODE, 30200,
               {"10.244.1.51:8080": True, "10.244.2.52:8080": True}),
    PacketCase("one endpoint: all of it", POD, "10.96.1.60", 80, {"10.244.1.61:8080": False}),
    PacketCase("another port of a cluster IP: not handled (no cluster-ips-check in 1.29)", POD, "10.96.1.10", 81,
               "none", ("1.29",)),
    PacketCase("another port of a cluster IP: rejected (cluster-ips-check, #122692)", POD, "10.96.1.10", 81,
               "reject", ("1.30-1.33", "1.34-1.35", "1.36", "1.37")),
    PacketCase("an unallocated service IP: not handled (1.29)", POD, "10.96.9.9", 80, "none", ("1.29",)),
    PacketCase("an unallocated service IP: dropped (cluster-ips-check)", POD, "10.96.9.9", 80, "drop",
               ("1.30-1.33", "1.34-1.35", "1.36", "1.37")),
]
MATRIX = [(g, c) for g in GENERATIONS for c in CASES if not c.only or g in c.only]


def packet_answer(outcomes: list[dict]):
    """What a user reads off ``packet``: endpoints and masquerade, or the one verdict."""
    disp = {o["disposition"] for o in outcomes}
    if disp == {"dnat"}:
        return {o["endpoint"]: o["masquerade"] for o in outcomes}
    assert len(disp) == 1, disp
    return disp.pop()


@pytest.mark.parametrize("g,case", MATRIX, ids=[f"{g}: {c.name}" for g, c in MATRIX])
def test_packet_per_generation(cli, g, case):
    r = cli("packet", "--rules", rules(g), "--src", case.src, "--dst", case.dst, "--dport", str(case.port),
            "--node-ip", NODE, "-o", "json")
    assert r.code == 0, r.err
    doc = json.loads(r.out)
    assert packet_answer(doc["outcomes"]) == case.expect
    if isinstance(case.expect, dict) and len(case.expect) > 1:  # a random split: exact, equal shares
        assert {o["fraction"] for o in doc["outcomes"]} == {f"1/{len(case.expect)}"}


@pytest.mark.parametrize("g", GENERATIONS)
def test_hairpin_is_masqueraded_the_generation_s_way(cli, g):
    r = cli("packet", "--rules", rules(g), "--src", "10.244.1.21", "--dst", "10.96.1.10", "--dport", "80",
            "--node-ip", NODE, "-o", "json")
    self_ = next(o for o in json.loads(r.out)["outcomes"] if o["endpoint"] == "10.244.1.21:8080")
    rules_on_path = [s["rule"] for s in self_["steps"]]
    if g in ("1.36", "1.37"):
        assert any("@hairpin-connections masquerade" in x for x in rules_on_path)
        assert not any("mark-for-masquerade" in x for x in rules_on_path)
    else:
        assert "ip saddr 10.244.1.21 jump mark-for-masquerade" in rules_on_path
        assert not any("hairpin-connections" in x for x in rules_on_path)


def test_affinity_first_packet_is_an_assumption(cli):
    for g in GENERATIONS:
        doc = json.loads(cli("packet", "--rules", rules(g), "--src", POD, "--dst", "10.96.1.20", "--dport", "80",
                             "--node-ip", NODE, "-o", "json").out)
        assert all(any("affinity" in a for a in o["assumptions"]) for o in doc["outcomes"]), g


# --- check -------------------------------------------------------------------------------

def _check(cli, g, objects=OBJECTS, rules_path=None):
    r = cli("check", "--rules", rules_path or rules(g), "--objects", str(objects), "--node", "node-a", "-o", "json")
    doc = json.loads(r.out)
    return r.code, doc, {(f["code"], f["servicePort"]) for f in doc["findings"]}


@pytest.mark.parametrize("g", GENERATIONS)
def test_check_names_the_generation_and_finds_nothing_with_the_matching_objects(cli, g):
    code, doc, found = _check(cli, g)
    assert (code, found) == (0, set()), doc["findings"]
    layout = [n for n in doc["notes"] if "layout:" in n]
    assert layout and f"layout: kube-proxy {RECOGNISED[g]} (" in layout[0], doc["notes"]


def _without_endpoint(tmp_path, ip: str):
    objs = json.loads(OBJECTS.read_text())
    out = copy.deepcopy(objs)
    for item in out["items"]:
        if item["kind"] == "EndpointSlice":
            item["endpoints"] = [e for e in item["endpoints"] if ip not in e["addresses"]]
    path = tmp_path / "objects.json"
    path.write_text(json.dumps(out))
    return path


@pytest.mark.parametrize("g", GENERATIONS)
def test_check_finds_the_stale_endpoint_when_the_objects_lost_it(cli, g, tmp_path):
    code, doc, found = _check(cli, g, _without_endpoint(tmp_path, "10.244.1.22"))
    assert code == 1
    assert ("endpoints-mismatch", "default/web:http") in found
    web = next(f for f in doc["findings"] if f["code"] == "endpoints-mismatch")
    assert "10.244.1.22:8080" in web["message"]
    hairpin = [f for f in doc["findings"] if "hairpin" in f["message"]]
    if g in ("1.36", "1.37"):  # its @hairpin-connections element is stale too
        assert [(f["code"], "10.244.1.22 . 10.244.1.22 . tcp . 8080" in f["message"]) for f in hairpin] == \
            [("stale-element", True)]
    else:  # before 1.36 there is no such set to ask for
        assert hairpin == []
    assert not any("@cluster-ips" in f["message"] or "hairpin-connections" in f["message"]
                   for f in doc["findings"] if g not in ("1.36", "1.37") and f["code"] != "endpoints-mismatch")


def _edited(tmp_path, g: str, old: str, new: str):
    text = (LAYOUTS / f"nft-{g}.nft").read_text()
    assert old in text
    path = tmp_path / f"edited-{g}.nft"
    path.write_text(text.replace(old, new, 1))
    return str(path)


@pytest.mark.parametrize("g,old,new", [
    ("1.36", "10.244.1.22 . 10.244.1.22 . tcp . 8080,", ""),
    ("1.37", "10.244.1.22 . 10.244.1.22 . tcp . 8080,", ""),
    ("1.30-1.33", "\t\tip saddr 10.244.1.22 jump mark-for-masquerade\n", ""),
    ("1.29", "\t\tip saddr 10.244.1.22 jump mark-for-masquerade\n", ""),
    ("1.34-1.35", "\t\tip saddr 10.244.1.22 jump mark-for-masquerade\n", ""),
], ids=["1.36 set element", "1.37 set element", "1.30-1.33 endpoint rule", "1.29 endpoint rule",
        "1.34-1.35 endpoint rule"])
def test_a_missing_hairpin_is_found_where_the_generation_keeps_it(cli, tmp_path, g, old, new):
    code, doc, found = _check(cli, g, rules_path=_edited(tmp_path, g, old, new))
    assert found == {("missing-hairpin", "default/web:http")}, doc["findings"]
    assert "10.244.1.22" in doc["findings"][0]["message"]
    # and the packet a user would try: the pod reaching itself is no longer masqueraded
    r = cli("packet", "--rules", _edited(tmp_path, g, old, new), "--src", "10.244.1.22", "--dst", "10.96.1.10",
            "--dport", "80", "--node-ip", NODE, "-o", "json")
    assert packet_answer(json.loads(r.out)["outcomes"])["10.244.1.22:8080"] is False


def test_a_missing_cluster_ips_element_is_only_asked_of_1_30_and_later(cli, tmp_path):
    for g in ("1.30-1.33", "1.36"):
        path = _edited(tmp_path, g, "10.96.1.10, ", "")
        code, doc, found = _check(cli, g, rules_path=path)
        assert ("missing-element", "default/web:http") in found, (g, doc["findings"])
    code, doc, found = _check(cli, "1.29")
    assert not any("cluster-ips" in f["message"] for f in doc["findings"])


# --- the wording of trace / explain on every generation -----------------------------------

@pytest.mark.parametrize("g", GENERATIONS)
@pytest.mark.parametrize("svc", ["default/local-np", "default/lb", "default/sticky", "default/empty"])
def test_trace_and_explain_speak_nft_not_iptables(cli, g, svc):
    for cmd in ("trace", "explain"):
        r = cli(cmd, svc, "--rules", rules(g), "--node-ip", NODE)
        assert r.code == 0, (cmd, r.err)
        iptables_words = [ln for ln in r.out.splitlines()
                          if any(w in ln for w in ("KUBE-", "POSTROUTING", "iptables", "[nat ,", "filter ,"))]
        assert iptables_words == [], (cmd, iptables_words)
    explained = cli("explain", "default/web", "--rules", rules(g), "--node-ip", NODE).out
    # before 1.36 every endpoint has its endpoint- chain (explain gives each its role); from 1.36 only with affinity
    said = "is one endpoint's chain" in explained
    assert said if g not in ("1.36", "1.37") else not said


def test_services_table_lists_an_external_ip_once(cli):
    # default/local-none's external IP is in @service-ips and in a @no-endpoint-services drop
    for g in GENERATIONS:
        row = next(ln for ln in cli("services", "--rules", rules(g)).out.splitlines() if "local-none" in ln)
        assert row.count("203.0.113.70") == 1, (g, row)


def _match_all_node_ports(tmp_path, g: str) -> str:
    """``--nodeport-addresses`` matching every address: no @nodeport-ips, ``fib daddr type local``
    in ``services`` and the localhost exclusion in ``nodeport-endpoints-check`` instead."""
    import re
    text = (LAYOUTS / f"nft-{g}.nft").read_text()
    text = re.sub(r"\tset nodeport-ips \{.*?\n\t\}\n\n", "", text, flags=re.S)
    text = text.replace("ip daddr @nodeport-ips meta l4proto . th dport vmap @service-nodeports",
                        "fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap @service-nodeports")
    text = text.replace("ip daddr @nodeport-ips meta l4proto . th dport vmap @no-endpoint-nodeports",
                        "ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap @no-endpoint-nodeports")
    assert "@nodeport-ips" not in text
    path = tmp_path / f"match-all-{g}.nft"
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize("g", ["1.34-1.35", "1.36"])
def test_node_ports_on_every_local_address(cli, tmp_path, g):
    path = _match_all_node_ports(tmp_path, g)
    docs = {s["name"]: s for s in json.loads(cli("services", "--rules", path, "-o", "json").out)["services"]}
    assert {n: d["nodePort"] for n, d in docs.items() if d["nodePort"]} == {
        "default/local-np:http": 30100, "default/lb:http": 30200, "default/local-none:http": 30300}
    for port, expect in ((30100, {"10.244.1.41:8080": False}), (30300, "drop")):
        r = cli("packet", "--rules", path, "--src", OUTSIDE, "--dst", NODE, "--dport", str(port), "--node-ip", NODE,
                "-o", "json")
        assert packet_answer(json.loads(r.out)["outcomes"]) == expect, (g, port)
    # another address of the node is a node-port address too; without --node-ip it is an "if"
    r = cli("packet", "--rules", path, "--src", OUTSIDE, "--dst", "192.168.77.1", "--dport", "30100",
            "--node-ip", NODE, "--node-ip", "192.168.77.1", "-o", "json")
    assert packet_answer(json.loads(r.out)["outcomes"]) == {"10.244.1.41:8080": False}
    r = cli("packet", "--rules", path, "--src", OUTSIDE, "--dst", NODE, "--dport", "30100", "-o", "json")
    outs = json.loads(r.out)["outcomes"]
    assert {o["disposition"] for o in outs} >= {"dnat", "none"} and all(o["assumptions"] for o in outs)


# --- the same rulesets as kube-proxy sends them: `add ...` transactions -------------------

def _drop_lines(x):
    if isinstance(x, dict):
        return {k: _drop_lines(v) for k, v in x.items() if k != "line"}
    if isinstance(x, list):
        return [_drop_lines(v) for v in x]
    return x


@pytest.mark.parametrize("g", GENERATIONS)
def test_kube_proxy_s_add_transaction_gives_the_same_answers(cli, g):
    add = str(LAYOUTS / f"nft-{g}.add.nft")
    a = json.loads(cli("services", "--rules", add, "-o", "json").out)["services"]
    b = json.loads(cli("services", "--rules", rules(g), "-o", "json").out)["services"]
    assert _drop_lines(a) == _drop_lines(b)
    for case in CASES:
        if case.only and g not in case.only:
            continue
        argv = ["packet", "--src", case.src, "--dst", case.dst, "--dport", str(case.port), "--node-ip", NODE,
                "-o", "json"]
        assert packet_answer(json.loads(cli(*argv, "--rules", add).out)["outcomes"]) == case.expect, case.name
    code, doc, found = _check(cli, g, rules_path=add)
    assert (code, found) == (0, set()) and any(f"kube-proxy {RECOGNISED[g]} (" in n for n in doc["notes"])
