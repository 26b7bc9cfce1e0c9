"""`svcinspect graph`: DOT (parsed back with pydot, golden files), JSON node-link data,
SVG through Graphviz, the selection of services, and the errors a user meets."""

from __future__ import annotations

import json
import shutil

import networkx as nx
import pydot
import pytest

from conftest import IPT, WILD, check_golden
from svcinspect.graph import build_graph, build_overview_graph
from svcinspect.dataplane.iptables.parse import parse_iptables_save

V4 = str(IPT / "iptables-save.txt")
V6 = str(IPT / "ip6tables-save.txt")
HELLO_SEPS = {"KUBE-SEP-TTFDDCQ6CXER73EZ", "KUBE-SEP-HKT7TYOO7KSAV3CZ", "KUBE-SEP-ADT6UDJPDQHGYNFU"}
DOT_MISSING = None if shutil.which("dot") else "Graphviz `dot` not installed (apt-get install graphviz)"


def parse_dot(text: str) -> pydot.Dot:
    [g] = pydot.graph_from_dot_data(text)
    return g


def all_nodes(g) -> dict[str, pydot.Node]:
    out = {n.get_name().strip('"'): n for n in g.get_nodes()}
    for sub in g.get_subgraphs():
        out.update(all_nodes(sub))
    return out


def edges(g) -> dict[tuple[str, str], list[str]]:
    out: dict[tuple[str, str], list[str]] = {}
    for e in g.get_edges():
        label = (e.get_label() or "").strip('"')
        out.setdefault((e.get_source().strip('"'), e.get_destination().strip('"')), []).append(label)
    return out


@pytest.fixture(scope="module")
def v4():
    return parse_iptables_save((IPT / "iptables-save.txt").read_text(), "v4")


def test_hello_world_dot(cli):
    r = cli("graph", "default/hello-world", "--rules", V4)
    assert r.code == 0, r.err
    check_golden("graph-hello-world.dot", r.out)
    g = parse_dot(r.out)
    nodes = all_nodes(g)
    e = edges(g)
    svc, ext = "v4/nat/KUBE-SVC-DZ6LTOHRG6HQWHYE", "v4/nat/KUBE-EXT-DZ6LTOHRG6HQWHYE"
    # from both entry points to the service chain ...
    assert ("v4/entry/clusterIP/10.96.10.10:80/tcp", svc) in e
    assert ("v4/entry/nodePort/*:31611/tcp", ext) in e and e[(ext, svc)] == ["masqueraded"]
    # ... 1/3 to each endpoint chain, each DNATing to its pod
    assert sorted((v.rsplit("/", 1)[1], lbl) for (u, v), lbls in e.items() if u == svc for lbl in lbls) == \
        sorted((s, "1/3") for s in HELLO_SEPS)
    assert {v.rsplit("/", 1)[1] for (u, v) in e if u.startswith("v4/nat/KUBE-SEP-")} == \
        {"10.244.1.10:8080", "10.244.1.11:8080", "10.244.2.10:8080"}
    # one cluster per entry point (the node port's holds its KUBE-EXT chain), and a legend
    clusters = {s.get_label().strip('"'): {n.get_name().strip('"') for n in s.get_nodes()} for s in g.get_subgraphs()}
    assert clusters["node port *:31611"] == {"v4/entry/nodePort/*:31611/tcp", ext}
    assert clusters["cluster IP 10.96.10.10:80"] == {"v4/entry/clusterIP/10.96.10.10:80/tcp"}
    assert "KUBE-SVC (cluster policy)" in {n.get_label().strip('"') for n in clusters["legend"] and
                                           next(s for s in g.get_subgraphs() if s.get_name() == "cluster_legend").get_nodes()}
    assert "masquerade: ! -s 10.244.0.0/16" in nodes[svc].get_label()
    assert nodes[svc].get("fillcolor") != nodes[ext].get("fillcolor")  # coloured by kind


def test_hello_world_is_small_enough_to_read(v4):
    g, title = build_graph(v4, "default/hello-world")
    assert title == "default/hello-world"
    # 2 entry points, KUBE-EXT, KUBE-SVC, 3 KUBE-SEP, 3 endpoints
    assert g.number_of_nodes() == 10 <= 15
    assert sorted(t for _, t in g.nodes(data="type")) == ["chain"] * 5 + ["endpoint"] * 3 + ["entry"] * 2


def test_affinity_and_no_endpoints_are_shown(cli):
    r = cli("graph", "default/affinity:http", "--rules", V4)
    e = edges(parse_dot(r.out))
    labels = [lbl for (u, _), lbls in e.items() if u == "v4/nat/KUBE-SVC-WJRUPVUBKQNHSPX2" for lbl in lbls]
    assert sorted(labels) == ["1/3"] * 3 + ["affinity: same client 600s"] * 3
    assert sum(lbls.count("DNAT, records affinity") for lbls in e.values()) == 3
    r = cli("graph", "default/no-endpoints:http", "--rules", V4)
    assert e_of(r.out) == {("v4/entry/clusterIP/10.96.50.10:80/tcp", "v4/target/REJECT"):
                           ["default/no-endpoints:http has no endpoints"]}


def e_of(text: str):
    return edges(parse_dot(text))


def test_namespace_one_cluster_per_service_port(cli):
    r = cli("graph", "-n", "kube-system", "--rules", V4)
    assert r.code == 0, r.err
    check_golden("graph-kube-system.dot", r.out)
    labels = sorted(s.get_label().strip('"') for s in parse_dot(r.out).get_subgraphs())
    assert labels == ["kube-system/kube-dns:dns (udp, IPv4)", "kube-system/kube-dns:dns-tcp (tcp, IPv4)",
                      "kube-system/kube-dns:metrics (tcp, IPv4)", "legend"]


def test_dual_stack_service_has_both_families(cli):
    r = cli("graph", "default/dual-stack", "--rules", V4, "--rules", V6, "-o", "json")
    doc = json.loads(r.out)
    eps = {n["id"] for n in doc["nodes"] if n["type"] == "endpoint"}
    assert eps == {"v4/endpoint/10.244.1.130:8080", "v4/endpoint/10.244.2.130:8080",
                   "v6/endpoint/[fd00:10:244:1::130]:8080", "v6/endpoint/[fd00:10:244:2::130]:8080"}


def test_json_is_node_link_data(cli):
    r = cli("graph", "default/hello-world", "--rules", V4, "-o", "json")
    doc = json.loads(r.out)
    assert doc["graph"]["schema"] == "svcinspect/v1"
    g = nx.node_link_graph(doc, edges="edges")
    assert (g.number_of_nodes(), g.number_of_edges()) == (10, 9)
    shares = sorted(d["share"] for _, _, d in g.edges(data=True) if d["share"])
    assert shares == ["1/3", "1/3", "1/3"]
    assert g.is_directed() and g.is_multigraph()


def test_whole_dump_collapses_each_service_port(cli, v4):
    r = cli("graph", "--rules", V4)
    assert r.code == 0, r.err
    check_golden("graph-all.dot", r.out)
    g = build_overview_graph(v4)
    services = {a["service"]: a for _, a in g.nodes(data=True) if a["type"] == "service"}
    assert services["default/hello-world"]["endpoints"] == 3
    assert services["default/cascade-7ep:http"]["endpoints"] == 7
    assert not any(a.get("kind") == "sep" for _, a in g.nodes(data=True))
    hello = "v4/service/DZ6LTOHRG6HQWHYE"
    assert g.has_edge("v4/nat/KUBE-SERVICES", hello) and g.has_edge("v4/nat/KUBE-NODEPORTS", hello)
    # expanded: every chain is there, with its endpoints
    x = build_overview_graph(v4, expand=True)
    assert x.has_edge("v4/nat/KUBE-SVC-DZ6LTOHRG6HQWHYE", "v4/nat/KUBE-SEP-TTFDDCQ6CXER73EZ")
    assert x.has_edge("v4/nat/KUBE-SEP-TTFDDCQ6CXER73EZ", "v4/endpoint/10.244.1.10:8080")
    assert x.number_of_nodes() > g.number_of_nodes()


def test_wild_dump_without_comments_still_draws(cli):
    r = cli("graph", "--rules", str(WILD / "018-no-comments-svc-affinity-calico-excerpt.rules"), "-o", "json")
    assert r.code == 0, r.err
    doc = json.loads(r.out)
    assert any(n["type"] == "service" and n["label"] == "NPX46M4PTMTKRN6Y" for n in doc["nodes"])


@pytest.mark.skipif(DOT_MISSING is not None, reason=DOT_MISSING or "")
def test_svg_renders(cli, tmp_path):
    out = tmp_path / "hw.svg"
    r = cli("graph", "default/hello-world", "--rules", V4, "-o", "svg", "--out", str(out))
    assert r.code == 0, r.err
    svg = out.read_text()
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg
    assert "10.244.2.10:8080" in svg and "1/3" in svg


@pytest.mark.skipif(DOT_MISSING is not None, reason=DOT_MISSING or "")
def test_png_renders(cli, tmp_path):
    out = tmp_path / "hw.png"
    r = cli("graph", "default/hello-world", "--rules", V4, "-o", "png", "--out", str(out))
    assert r.code == 0, r.err
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_missing_graphviz_is_one_line_exit_3(cli, monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    r = cli("graph", "default/hello-world", "--rules", V4, "-o", "svg", "--out", "/dev/null")
    assert r.code == 3
    assert r.err.count("\n") == 1 and "apt-get install graphviz" in r.err


def test_binary_refused_on_a_terminal(cli, monkeypatch):
    import sys
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    r = cli("graph", "default/hello-world", "--rules", V4, "-o", "png")
    assert r.code == 2 and "--out FILE" in r.err


def test_unknown_service_names_the_closest(cli):
    r = cli("graph", "default/hello-wrld", "--rules", V4)
    assert r.code == 2
    assert "no service 'default/hello-wrld' in the rules" in r.err and "closest: default/hello-world" in r.err
    r = cli("graph", "-n", "nope", "--rules", V4)
    assert r.code == 2 and "no service in namespace 'nope'" in r.err
