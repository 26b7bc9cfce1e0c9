"""``explain`` on kube-proxy's nftables mode (the real v1.36.2 nftables capture).

The same questions as tests/test_explain.py asks of iptables mode, answered in
nftables terms: which chains, sets and maps a packet of default/hello-world
meets and what each is for, why a pod's request is not masqueraded but a node's
is, what node port 31611 does, and what 127.0.0.1:31611 does (nothing: the mode
has no localhost node ports). Every citation is checked against the dump's own
line, and the text never talks in iptables words (KUBE-* chains) about nft rules.
"""

from __future__ import annotations

import ipaddress

import pytest

from conftest import KP, check_golden
from svcinspect.dataplane.nftables.parse import parse_nfts
from svcinspect.explain import explain_trace, sentences
from svcinspect.render.explain import render_explanation
from svcinspect.simulate import Environment
from svcinspect.sources.files import read_text
from svcinspect.trace import trace_service

DUMP = KP / "nftables" / "nft-list-ruleset.txt"
LINES = DUMP.read_text().split("\n")
NODE_A = "192.168.10.11"


@pytest.fixture(scope="module")
def ruleset():
    return parse_nfts([read_text(str(DUMP))]).only([4])


def explain(ruleset, query):
    env = Environment(frozenset({ipaddress.ip_address(NODE_A)}))
    return explain_trace(trace_service(ruleset, query, env), ruleset)


@pytest.fixture(scope="module")
def hello(ruleset):
    return explain(ruleset, "default/hello-world")


def way(expl, client, entry):
    found = [sec for sec in expl.ports[0].sections if sec.key == "section.way"
             and sec.args["client"] == client and sec.args["entry"] == entry]
    assert len(found) == 1, (client, entry, [s.args for s in expl.ports[0].sections])
    return found[0]


def keys(section):
    return [s.key for s in section.sentences]


def one(section, key):
    found = [s for s in section.sentences if s.key == key]
    assert found, f"no {key} in {keys(section)}"
    return found[0]


@pytest.mark.parametrize("query", ["default/hello-world", "default/affinity", "default/no-endpoints-np",
                                   "default/lb-ranges", "default/etp-local-has", "kube-system/kube-dns"])
def test_every_citation_is_the_line_of_the_dump_it_names(ruleset, query):
    expl = explain(ruleset, query)
    cited = 0
    for _pe, _sec, s in sentences(expl):
        for c in s.cites:
            if c.line:
                first = c.rule.split(" { ")[0].split(" map { ")[0].strip()
                assert first in LINES[c.line - 1], (query, s.key, c.line, c.rule, LINES[c.line - 1])
                cited += 1
        assert s.cites or s.general or not s.key.startswith(("nft.step", "nft.filter", "nft.post")), s


def test_no_iptables_words_about_nft_rules(ruleset):
    for query in ("default/hello-world", "default/affinity", "default/etp-local-has", "default/no-endpoints-np"):
        text = render_explanation(explain(ruleset, query), "en")
        assert "KUBE-" not in text and "-m recent" not in text and "POSTROUTING" not in text, query


def test_the_chains_and_maps_of_hello_world_each_have_their_role(hello):
    sec = next(s for s in hello.ports[0].sections if s.key == "section.chains")
    roles = {s.args["chain"]: s.key for s in sec.sentences}
    assert roles["services"] == "nft.chain.services"
    assert roles["@service-ips"] == "nft.set.service-ips"
    assert roles["@service-nodeports"] == "nft.set.service-nodeports"
    assert roles["service-AN52JS3S-default/hello-world/tcp/"] == "nft.chain.service"
    assert roles["external-AN52JS3S-default/hello-world/tcp/"] == "nft.chain.external"
    assert roles["masquerading"] == "nft.chain.masquerading"
    hook = next(s for s in sec.sentences if s.args["chain"] == "filter-prerouting-pre-dnat")
    assert hook.key == "nft.chain.hook" and hook.args["priority"] == "dstnat - 10"
    assert "chain.other" not in roles.values(), roles


def test_a_pods_request_is_dispatched_by_the_map_split_exactly_and_not_masqueraded(hello):
    sec = way(hello, "pod", "clusterIP")
    ks = keys(sec)
    assert ks.index("nft.step.hook") < ks.index("nft.step.dispatch") < ks.index("nft.split.intro") \
        < ks.index("nft.step.dnat") < ks.index("nft.post.no_mark")
    dispatch = one(sec, "nft.step.dispatch")
    assert "@service-ips" in {c.chain for c in dispatch.cites}
    element = next(c for c in dispatch.cites if c.chain == "@service-ips")
    assert "10.96.10.10 . tcp . 80 : goto service-AN52JS3S" in LINES[element.line - 1]
    assert one(sec, "nft.split.intro").args["mod"] == "3"
    shares = [s.args for s in sec.sentences if s.key == "nft.split.share"]
    assert [(a["ep"], a["share"]) for a in shares] == [("10.244.1.10:8080", "1/3"), ("10.244.1.11:8080", "1/3"),
                                                       ("10.244.2.10:8080", "1/3")]
    assert "masq.off_cluster" not in ks
    # the pre-DNAT filter hook sees the Service address, the forward hook the endpoint's
    pre, fwd = [s for s in sec.sentences if s.key == "nft.filter.pass"]
    assert pre.args["dst"] == "10.96.10.10:80" and fwd.args["dst"] == "10.244.1.10:8080"


def test_a_nodes_request_is_marked_because_it_is_outside_the_pod_network(hello):
    sec = way(hello, "node", "clusterIP")
    mark = one(sec, "masq.off_cluster")
    assert mark.args["cidr"] == "10.244.0.0/16"
    assert any("meta mark set" in c.rule for c in mark.cites)
    assert one(sec, "nft.post.masq_same").args["snat"] == NODE_A


def test_node_port_31611_goes_through_the_nodeport_map_and_is_masqueraded(hello):
    sec = way(hello, "outside", "nodePort")
    np = one(sec, "nft.step.nodeport")
    assert np.args["port"] == "31611" and np.args["target"] == "external-AN52JS3S-default/hello-world/tcp/"
    element = next(c for c in np.cites if c.chain == "@service-nodeports")
    assert "tcp . 31611 : goto external-AN52JS3S" in LINES[element.line - 1]
    assert "masq.external" in keys(sec)
    assert one(sec, "nft.post.masq").args == {"src": "203.0.113.99", "snat": NODE_A}


def test_localhost_31611_is_said_to_be_no_node_port_in_this_mode(hello):
    sec = way(hello, "localhost", "nodePort")
    ks = keys(sec)
    assert ks[1] == "localhost.not_served" and one(sec, "localhost.not_served").args["mode"] == "nftables"
    assert "localhost.route_localnet" not in ks and "result.none_always" in ks
    assert "nft.step.dnat" not in ks


def test_affinity_remembers_the_client_in_the_endpoints_set(ruleset):
    sec = way(explain(ruleset, "default/affinity"), "pod", "clusterIP")
    upd = one(sec, "nft.step.affinity_update")
    assert upd.args["seconds"] == "600" and "update @affinity-" in upd.cites[0].rule
    assert "split.affinity" in keys(sec)


def test_a_service_without_endpoints_is_rejected_by_filter_after_nat_leaves_it(ruleset):
    sec = way(explain(ruleset, "default/no-endpoints-np"), "pod", "clusterIP")
    ks = keys(sec)
    assert "nft.step.no_dispatch_no_endpoints" in ks
    rej = one(sec, "nft.filter.reject")
    assert rej.args["chain"] == "reject-chain" and "service-endpoints-check" in rej.args["checks"]
    assert "@no-endpoint-services" in {c.chain for c in rej.cites}


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_golden_nftables_hello_world(cli, lang):
    r = cli("explain", "default/hello-world", "--rules", str(DUMP), "--objects", str(KP / "nftables" / "objects.json"),
            "--node", "node-a", "--lang", lang)
    assert r.code == 0, r.err
    assert "numgen random mod 3" in r.out and "@service-nodeports" in r.out
    check_golden(f"explain-nft-hello-world.{lang}.txt", r.out)


def test_before_1_36_the_mark_chain_and_the_endpoint_chains_are_told_too():
    """1.30-1.33 (hand-written layout, fixtures/nftables-layouts/): the masquerade mark is
    a jump to mark-for-masquerade from the service chain, the draw a numgen vmap to
    endpoint- chains, and filter-output sits at -110, before DNAT."""
    path = KP.parent / "nftables-layouts" / "nft-1.30-1.33.nft"
    rs = parse_nfts([read_text(str(path))]).only([4])
    lines = path.read_text().split("\n")
    sec = way(explain(rs, "default/local-np"), "node", "clusterIP")
    mark = one(sec, "masq.off_cluster")
    assert [c.chain for c in mark.cites][-1] == "mark-for-masquerade"
    assert "jump mark-for-masquerade" in lines[mark.cites[0].line - 1]
    assert one(sec, "nft.split.intro").args["mod"] == "2"
    assert "is one endpoint's chain" in render_explanation(explain(rs, "default/local-np"), "en")
    pre = next(s for s in sec.sentences if s.key == "nft.filter.pass" and s.args["base"] == "filter-output")
    assert pre.args["dst"] == "10.96.1.30:80"  # priority -110: before the DNAT
    post = next(s for s in sec.sentences if s.key == "nft.filter.pass" and s.args["base"] == "filter-output-post-dnat")
    assert post.args["dst"].startswith("10.244.")
