"""``explain``: the journey of a Service in sentences, each citing its rule.

The done-when check of issue 16: a student reading ``explain default/hello-world``
on the real capture (with the objects and --node node-a) can answer which chains
exist, why a pod's request is not masqueraded but a node's is, what 31611 does,
and what happens with 127.0.0.1:31611. Each answer is asserted as a sentence of
the right kind that cites the right line of the real dump, and every citation is
checked against the dump's own text. Golden files: SVCINSPECT_UPDATE_GOLDEN=1.
"""

from __future__ import annotations

import re
import string

import pytest

from conftest import IPT, check_golden
from svcinspect.simulate import Environment
from svcinspect.explain import explain_trace, sentences
from svcinspect.dataplane.iptables.parse import parse_dumps
from svcinspect.parse.kube_objects import parse_objects
from svcinspect.render.explain import EN, ZH, render_explanation, sentence_text
from svcinspect.sources.files import read_text
from svcinspect.trace import trace_service

DUMP = IPT / "iptables-save.txt"
LINES = DUMP.read_text().splitlines()
NODE_A = "192.168.10.11"


@pytest.fixture(scope="module")
def ruleset():
    return parse_dumps([read_text(str(DUMP))])


def explanation(ruleset, query, node_ip=NODE_A):
    from svcinspect.expected import build_expected, endpoints_by_port
    state = parse_objects((IPT / "objects.json").read_text(), "objects.json")
    objects = endpoints_by_port(build_expected(state, "node-a", ruleset.families))
    import ipaddress
    env = Environment(frozenset({ipaddress.ip_address(node_ip)}) if node_ip else None)
    return explain_trace(trace_service(ruleset, query, env, objects), ruleset)


@pytest.fixture(scope="module")
def hello(ruleset):
    return explanation(ruleset, "default/hello-world")


def way(expl, client, entry):
    found = [sec for sec in expl.ports[0].sections if sec.key == "section.way"
             and sec.args["client"] == client and sec.args["entry"] == entry]
    assert len(found) == 1, (client, entry)
    return found[0]


def one(section, key):
    found = [s for s in section.sentences if s.key == key]
    assert found, f"no {key} sentence in {section.args}: {[s.key for s in section.sentences]}"
    return found[0]


def lines_of(sentence):
    return [c.line for c in sentence.cites]


# --- every citation is the dump's own line --------------------------------------

def test_every_citation_quotes_the_dump_line_it_names(hello):
    cited = 0
    for _, _, s in sentences(hello):
        for c in s.cites:
            assert c.line > 0
            assert LINES[c.line - 1] == c.rule, (s.key, c.line)
            cited += 1
    assert cited > 50


UNCITED = {"way.start.prerouting", "way.start.output", "split.intro", "result.condition", "result.none",
           "result.masq_differs", "split.affinity"}


def test_every_sentence_cites_a_rule_or_says_it_is_general(hello):
    for _, sec, s in sentences(hello):
        if s.key in UNCITED:
            continue
        assert s.cites or s.general, f"{s.key} in {sec.key} cites nothing"


# --- which chains exist ---------------------------------------------------------

def test_the_chains_of_hello_world_are_named_with_their_roles(hello):
    chains = next(sec for sec in hello.ports[0].sections if sec.key == "section.chains")
    named = {s.args.get("chain") for s in chains.sentences}
    for chain in ("KUBE-SERVICES", "KUBE-NODEPORTS", "KUBE-SVC-DZ6LTOHRG6HQWHYE", "KUBE-EXT-DZ6LTOHRG6HQWHYE",
                  "KUBE-MARK-MASQ", "KUBE-POSTROUTING", "PREROUTING", "OUTPUT", "POSTROUTING"):
        assert chain in named, chain
    seps = one(chains, "chain.sep")
    assert seps.args["n"] == "3"
    assert sorted(lines_of(seps)) == [216, 240, 288]  # the three DNAT rules
    svc = next(s for s in chains.sentences if s.args.get("chain") == "KUBE-SVC-DZ6LTOHRG6HQWHYE")
    assert svc.key == "chain.svc" and lines_of(svc) == [338]


# --- pod -> cluster IP is not masqueraded; node -> cluster IP is ------------------

def test_a_pods_request_keeps_its_source_and_says_why(hello):
    sec = way(hello, "pod", "clusterIP")
    assert lines_of(one(sec, "step.dispatch")) == [309]
    post = one(sec, "post.no_mark")
    assert lines_of(post) == [150, 188]          # POSTROUTING -> KUBE-POSTROUTING, RETURN when unmarked
    assert not any(s.key.startswith("masq.") for s in sec.sentences)
    kept = one(sec, "result.dnat_kept")
    assert kept.args["src"] == kept.args["src_after"]
    assert one(sec, "reply.kept").general


def test_a_nodes_request_is_masqueraded_because_it_is_outside_the_pod_network(hello):
    sec = way(hello, "node", "clusterIP")
    assert sec.args["src"] == NODE_A             # the Node object's address, not a placeholder
    why = one(sec, "masq.off_cluster")
    assert why.args["cidr"] == "10.244.0.0/16"
    assert lines_of(why) == [338, 173]           # the ! -s rule, then KUBE-MARK-MASQ's MARK
    post = one(sec, "post.masq_same")
    assert 190 in lines_of(post) and "MASQUERADE" in LINES[189]


# --- what 31611 does ------------------------------------------------------------

def test_node_port_31611_leads_to_the_same_endpoints(hello):
    overview = next(sec for sec in hello.ports[0].sections if sec.key == "section.overview")
    np = one(overview, "overview.node_port_localhost")
    assert np.args["port"] == "31611" and np.args["svcport"] == "80"
    sec = way(hello, "outside", "nodePort")
    assert lines_of(one(sec, "step.to_nodeports")) == [329]
    step = one(sec, "step.nodeport")
    assert step.args["port"] == "31611" and lines_of(step) == [177]
    assert lines_of(one(sec, "masq.external")) == [151, 173]
    shares = [s for s in sec.sentences if s.key.startswith("split.") and s.key != "split.intro"]
    assert [(s.args["ep"], s.args["share"]) for s in shares] == [
        ("10.244.1.10:8080", "1/3"), ("10.244.1.11:8080", "1/3"), ("10.244.2.10:8080", "1/3")]
    assert [lines_of(s) for s in shares] == [[339], [340], [341]]
    assert [s.args["p"] for s in shares] == ["0.33333333349", "0.50000000000", ""]
    assert lines_of(one(sec, "filter.accept_marked"))[-1] == 38
    masq = one(sec, "post.masq")
    assert masq.args["snat"] == NODE_A and masq.args["src"] == "203.0.113.99"


# --- what happens with 127.0.0.1:31611 -------------------------------------------

def test_localhost_31611_is_dnated_masqueraded_and_only_local(hello):
    sec = way(hello, "localhost", "nodePort")
    assert sec.args["dst"] == "127.0.0.1:31611"
    assert lines_of(one(sec, "step.hook.OUTPUT")) == [149]
    assert lines_of(one(sec, "step.nodeport_localhost")) == [176]
    assert "127.0.0.0/8" in LINES[175]
    assert one(sec, "localhost.route_localnet").general
    fw = one(sec, "localhost.firewall")
    assert fw.cites[0].chain == "KUBE-FIREWALL" and "-d 127.0.0.0/8" in fw.cites[0].rule
    masq = one(sec, "post.masq")
    assert masq.args == {"src": "127.0.0.1", "snat": NODE_A}
    keys = [s.key for s in sec.sentences]
    assert keys.index("localhost.route_localnet") < keys.index("post.masq")
    assert one(sec, "reply.localhost").args["orig"] == "127.0.0.1:31611"


# --- the rendered text says it ----------------------------------------------------

def test_the_english_text_answers_the_four_questions(hello):
    text = render_explanation(hello, "en")
    flat = " ".join(text.split())
    assert "not in the pod network 10.244.0.0/16" in flat
    assert "KUBE-POSTROUTING returns at once, because the packet has no mark: the source 10.244.0.1 is kept" in flat
    assert "port 31611/tcp on the node's own addresses, and on 127.0.0.1" in flat
    assert "destination port 31611 to 127.0.0.0/8 matches the localhost rule" in flat
    assert "[nat KUBE-NODEPORTS, line 176]" in flat
    assert "route_localnet" in flat


def test_show_rules_prints_each_cited_rule_in_full(cli):
    r = cli("explain", "default/hello-world", "--rules", str(DUMP), "--objects", str(IPT / "objects.json"),
            "--node", "node-a", "--show-rules")
    assert r.code == 0, r.err
    assert LINES[338] in r.out  # line 339: the --probability rule, whole
    assert "--to-destination 10.244.1.10:8080" in r.out


def test_json_has_every_sentence_with_its_rules(cli):
    import json
    r = cli("explain", "default/hello-world", "--rules", str(DUMP), "-o", "json", "--lang", "zh")
    assert r.code == 0, r.err
    doc = json.loads(r.out)
    assert doc["lang"] == "zh"
    cites = [c for p in doc["ports"] for sec in p["sections"] for s in sec["sentences"] for c in s["cites"]]
    assert any(c["line"] == 176 and c["rule"] == LINES[175] for c in cites)
    assert "第 176 行" not in r.out  # JSON carries lines as numbers; the text is per sentence
    assert any("节点端口" in s["text"] for p in doc["ports"] for sec in p["sections"] for s in sec["sentences"])


def test_without_node_ip_the_placeholder_is_said(cli):
    r = cli("explain", "default/hello-world", "--rules", str(DUMP))
    assert r.code == 0
    assert "192.0.2.1" in r.out and "no --node-ip" in r.out


def test_node_address_comes_from_the_node_object(cli):
    r = cli("explain", "default/hello-world", "--rules", str(DUMP), "--objects", str(IPT / "objects.json"),
            "--node", "node-a")
    assert "192.0.2.1" not in r.out and NODE_A in r.out


# --- golden files -------------------------------------------------------------------

@pytest.mark.parametrize("lang", ["en", "zh"])
def test_golden_hello_world(cli, lang):
    r = cli("explain", "default/hello-world", "--rules", str(DUMP), "--objects", str(IPT / "objects.json"),
            "--node", "node-a", "--lang", lang)
    assert r.code == 0, r.err
    check_golden(f"explain-hello-world.{lang}.txt", r.out)


# --- the catalogs -----------------------------------------------------------------

def _fields(template):
    return {f for _, f, _, _ in string.Formatter().parse(template) if f}


def test_both_catalogs_have_the_same_messages_and_placeholders():
    assert EN.keys() == ZH.keys()
    for key in EN:
        assert _fields(EN[key]) == _fields(ZH[key]), key


def test_chinese_text_is_chinese(hello):
    for _, _, s in sentences(hello):
        text = sentence_text(s, "zh")
        assert re.search(r"[\u4e00-\u9fff]", text) or s.key == "step.mark", (s.key, text)


@pytest.mark.parametrize("query,key", [
    ("default/affinity", "change.affinity_on"),
    ("default/etp-local-has", "change.external_local"),
    ("default/itp-local-has", "change.internal_local"),
    ("default/no-endpoints", "result.reject_always"),
    ("default/lb-ranges", "filter.drop"),
    ("default/no-endpoints-np", "step.no_dispatch"),
    ("kube-system/kube-dns", "split.intro"),
])
def test_other_services_are_explained_and_cited(ruleset, query, key):
    expl = explanation(ruleset, query)
    found = [s for _, _, s in sentences(expl) if s.key == key]
    assert found, [s.key for _, _, s in sentences(expl)]
    for _, _, s in sentences(expl):
        for c in s.cites:
            assert LINES[c.line - 1] == c.rule
        assert s.key in EN, s.key  # no sentence without a text
    if key == "change.affinity_on":
        assert all("--rcheck" in c.rule for c in found[0].cites) and len(found[0].cites) == 3
    if key == "result.reject_always":
        assert "REJECT" in found[0].cites[0].rule


def test_dual_stack_citations_name_their_file(cli):
    r = cli("explain", "default/dual-stack", "--rules", str(DUMP), "--rules", str(IPT / "ip6tables-save.txt"),
            "--objects", str(IPT / "objects.json"), "--node", "node-a")
    assert r.code == 0, r.err
    flat = " ".join(r.out.split())
    assert "default/dual-stack:http (IPv6)" in r.out
    assert "[ip6tables-save.txt: nat" in flat and "[iptables-save.txt: nat" in flat
    assert "From this node itself (fd00:10:11::11)" in r.out  # the Node object's IPv6 address


def test_restore_input_without_hooks_says_the_hook_is_assumed(cli, tmp_path):
    hooks = ("-A PREROUTING", "-A OUTPUT", "-A POSTROUTING", "-A INPUT", "-A FORWARD")
    path = tmp_path / "restore-input.txt"
    path.write_text("".join(ln + "\n" for ln in LINES if not ln.startswith(hooks)))
    r = cli("explain", "default/hello-world", "--rules", str(path), "--node-ip", NODE_A)
    assert r.code == 0, r.err
    flat = " ".join(r.out.split())
    assert "The input has no nat PREROUTING rule jumping to KUBE-SERVICES" in flat
    assert "[assumed nat PREROUTING hook, not in the input]" in flat
    assert "<assumed" not in r.out
