"""The iptables-save parser: what real nodes and bug reports contain."""

from __future__ import annotations

import ipaddress

import pytest

from conftest import IPT, KP, WILD, fixture_text
from svcinspect.errors import NotADumpError, ParseError, Severity
from svcinspect.model.netfilter import Family
from svcinspect.dataplane.iptables.parse import decode_spec, parse_iptables_save, tokenize

KERNEL = ('-A KUBE-SERVICES -d 172.30.0.41/32 -p tcp -m comment --comment "ns1/svc1:p80 cluster IP" '
          '-m tcp --dport 80 -j KUBE-SVC-XPGD46QRK7WJZT7O')
RESTORE = ('-A KUBE-SERVICES -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp '
           '-d 172.30.0.41 --dport 80 -j KUBE-SVC-XPGD46QRK7WJZT7O')


def one_rule(line: str, table: str = "nat"):
    rs = parse_iptables_save(f"*{table}\n:KUBE-SERVICES - [0:0]\n:X - [0:0]\n{line}\nCOMMIT\n", "t")
    chain = line.split()[1] if not line.startswith("[") else line.split()[2]
    return rs.table(table).chains[chain].rules[0]


def test_kernel_and_restore_order_give_the_same_rule():
    k, r = one_rule(KERNEL), one_rule(RESTORE)
    assert k == r
    assert k.spec.destination.network == ipaddress.ip_network("172.30.0.41/32")
    assert k.spec.protocol.value == "tcp"
    assert k.spec.match("tcp").value("--dport") == "80"
    assert k.comment == "ns1/svc1:p80 cluster IP"
    assert k.target.name == "KUBE-SVC-XPGD46QRK7WJZT7O"


@pytest.mark.parametrize("body,expected", [
    ('-m comment --comment "a \\"quoted\\" word" -j X', ["-m", "comment", "--comment", 'a "quoted" word', "-j", "X"]),
    ("-m comment --comment kube-system/monitoring-grafana: -j X",
     ["-m", "comment", "--comment", "kube-system/monitoring-grafana:", "-j", "X"]),
    ('-m comment --comment "" -j X', ["-m", "comment", "--comment", "", "-j", "X"]),
    ("-m comment --comment 'single quoted' -j X", ["-m", "comment", "--comment", "single quoted", "-j", "X"]),
])
def test_tokenize_quoting(body, expected):
    assert tokenize(body) == expected


def test_negation_before_generic_options_and_inside_modules():
    spec = decode_spec('! -s 10.244.0.0/16 -d 10.96.0.1/32 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT '
                       '-m mark ! --mark 0x4000/0x4000 -j RETURN')
    assert spec.source.negated and str(spec.source.network) == "10.244.0.0/16"
    assert not spec.destination.negated
    ct = spec.match("conntrack").option("--ctstate")
    assert ct.negated and ct.args == ("RELATED,ESTABLISHED,DNAT",)
    assert spec.match("mark").option("--mark").negated


def test_goto_and_target_options():
    spec = decode_spec("-p tcp -m tcp -g KUBE-SEP-X")
    assert spec.target.goto and spec.target.name == "KUBE-SEP-X"
    dnat = decode_spec("-p tcp -m tcp -j DNAT --to-destination [fd00:10:244:1::130]:8080")
    assert dnat.target.value("--to-destination") == "[fd00:10:244:1::130]:8080"
    assert decode_spec("-j MARK --set-xmark 0x4000/0x4000").target.value("--set-xmark") == "0x4000/0x4000"
    rej = decode_spec("-j REJECT --reject-with icmp-port-unreachable")
    assert rej.target.value("--reject-with") == "icmp-port-unreachable"
    masq = decode_spec('-m comment --comment "x" -j MASQUERADE --random-fully')
    assert masq.target.has("--random-fully")


def test_recent_options_without_arguments_and_implicit_protocol_match():
    spec = decode_spec("-m recent --rcheck --seconds 10800 --reap --name KUBE-SEP-A --mask 255.255.255.255 "
                       "--rsource -j KUBE-SEP-A")
    rc = spec.match("recent")
    assert rc.has("--rcheck") and rc.option("--rcheck").args == ()
    assert rc.value("--seconds") == "10800" and rc.value("--name") == "KUBE-SEP-A"
    implicit = decode_spec("-p udp --dport 53 -j ACCEPT")
    assert implicit.match("udp").value("--dport") == "53"


def test_nfacct_with_two_spaces_as_the_kernel_prints_it():
    line = ("-A KUBE-NODEPORTS -d 127.0.0.0/8 -p tcp -m comment --comment \"default/hello-world\" -m tcp "
            "--dport 31611 -m nfacct --nfacct-name  localhost_nps_accepted_pkts -j KUBE-EXT-DZ6LTOHRG6HQWHYE")
    rs = parse_iptables_save("*nat\n:KUBE-NODEPORTS - [0:0]\n" + line + "\nCOMMIT\n")
    rule = rs.table("nat").chains["KUBE-NODEPORTS"].rules[0]
    assert rule.spec.match("nfacct").value("--nfacct-name") == "localhost_nps_accepted_pkts"
    assert rule.diagnostics == ()


def test_counters_on_rules_and_chains():
    rs = parse_iptables_save(fixture_text("kube-proxy-v1.36.2", "iptables", "iptables-save-counters.txt"), "c")
    inp = rs.table("filter").chains["INPUT"]
    assert inp.policy == "ACCEPT"
    first = inp.rules[0]
    assert (first.counters.packets, first.counters.bytes) == (13, 1050)
    assert first.target.name == "KUBE-FIREWALL"


def test_several_tables_line_numbers_and_raw_text_are_kept():
    text = (IPT / "iptables-save.txt").read_text()
    rs = parse_iptables_save(text, "iptables-save.txt")
    assert [t.name for t in rs.tables] == ["mangle", "filter", "nat"]
    assert rs.diagnostics == ()
    rule = rs.table("nat").chains["KUBE-SVC-DZ6LTOHRG6HQWHYE"].rules[1]
    lines = text.splitlines()
    assert lines[rule.line - 1] == rule.text
    assert "0.33333333349" in rule.text and rule.index == 2


def test_ipv6_dump_is_family_6():
    rs = parse_iptables_save((IPT / "ip6tables-save.txt").read_text(), "ip6")
    assert rs.families == (Family.V6,)
    rule = rs.table("nat", Family.V6).chains["KUBE-SERVICES"].rules[0]
    assert rule.spec.destination.network == ipaddress.ip_network("fd00:10:96::130/128")


def test_ipv6_detected_without_header_from_addresses():
    rs = parse_iptables_save("*nat\n:X - [0:0]\n-A X -d fd00::1/128 -j RETURN\nCOMMIT\n")
    assert rs.families == (Family.V6,)


def test_crlf_blank_lines_indentation_and_missing_commit():
    text = "\r\n\t# Generated by iptables-save v1.4.21\r\n   *nat\r\n:KUBE-MARK-MASQ - [0:0]\r\n\r\n" \
           "\t-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000   \r\n"
    rs = parse_iptables_save(text, "t")
    rule = rs.table("nat").chains["KUBE-MARK-MASQ"].rules[0]
    assert rule.target.value("--set-xmark") == "0x4000/0x4000"
    assert any("no COMMIT" in d.message for d in rs.diagnostics)


def test_tab_indented_wild_dump():
    rs = parse_iptables_save((WILD / "011-tab-indented-legacy-v1.4.21-2018-excerpt.rules").read_text(), "011")
    assert rs.table("nat").chains["PREROUTING"].rules[0].target.name == "KUBE-SERVICES"


def test_unknown_module_and_target_are_kept_and_reported():
    rs = parse_iptables_save("*filter\n:INPUT ACCEPT [0:0]\n"
                             "-A INPUT -m frobnicate --wibble 3 -j ACCEPT\nCOMMIT\n", "u")
    rule = rs.table("filter").chains["INPUT"].rules[0]
    assert rule.spec.match("frobnicate").value("--wibble") == "3"
    assert rule.target.name == "ACCEPT"
    assert any("frobnicate" in d.message and d.line == 3 for d in rule.diagnostics)


def test_truncated_rule_is_kept_with_a_diagnostic():
    rs = parse_iptables_save('*nat\n:X - [0:0]\n-A X -m comment --comment "cut off here\nCOMMIT\n', "t")
    rule = rs.table("nat").chains["X"].rules[0]
    assert rule.target is None and rule.spec.leftovers
    assert rule.diagnostics[0].severity == Severity.WARNING and rule.diagnostics[0].line == 3


def test_shell_prompt_lines_are_skipped_with_a_diagnostic():
    rs = parse_iptables_save((WILD / "042-gke-2016-v1.4.14-loadbalancer-prefw-full.rules").read_text(), "042")
    skipped = [d for d in rs.diagnostics if "shell prompt" in d.message]
    assert [d.line for d in skipped] == [1, 101]
    assert rs.table("nat").chains["KUBE-SERVICES"].rules


def test_legacy_warning_line_becomes_a_note():
    rs = parse_iptables_save((WILD / "049-cka-grep-with-legacy-warning-trailer.rules").read_text(), "049")
    notes = [d for d in rs.diagnostics if "iptables-legacy tables present" in d.message]
    assert len(notes) == 1 and notes[0].line == 7


def test_headerless_grep_output_is_guessed_nat_and_said_so():
    rs = parse_iptables_save((WILD / "013-k8s12-era-restore-order-unquoted-comments.rules").read_text(), "013")
    nat = rs.table("nat")
    assert "KUBE-SVC-JRXTEHDDTAFMSEAS" in nat.chains
    assert any("no *nat header" in d.message for d in rs.diagnostics)
    rule = nat.chains["KUBE-SEP-MMIT5OM2HAUWPNIW"].rules[1]
    assert rule.comment == "kube-system/monitoring-grafana:"
    assert rule.target.value("--to-destination") == "10.245.1.4:3000"


def test_headerless_reject_rules_go_to_filter():
    rs = parse_iptables_save('-A KUBE-SERVICES -d 10.96.50.10/32 -p tcp -m comment --comment '
                             '"default/x:http has no endpoints" -m tcp --dport 80 -j REJECT '
                             '--reject-with icmp-port-unreachable\n', "g")
    assert rs.table("filter").chains["KUBE-SERVICES"].rules[0].target.name == "REJECT"


def test_rules_pasted_twice_are_counted_once_with_the_lines_named():
    # Issue 11: a table-less paste holding a block twice is one chain of 3 rules, not 6
    # (a whole dump keeps identical rules: the kernel evaluates both; see test_duplicate_rules_in_a_dump).
    rs = parse_iptables_save((WILD / "059-aks-1.30-lb-local-kube-ext-svl-azv-no-dport-duplicated.rules").read_text())
    rules = rs.table("nat").chains["KUBE-SVC-EEQNXCJLUUVUU2YK"].rules
    assert [r.line for r in rules] == [12, 13, 14]
    (d,) = [d for d in rs.diagnostics if "KUBE-SVC-EEQNXCJLUUVUU2YK pasted more than once" in d.message]
    assert d.line == 22 and "22 repeats 12, 23 repeats 13, 24 repeats 14" in d.message


def test_duplicate_rules_in_a_dump_are_kept_and_flagged_on_the_rule():
    text = ("*nat\n:KUBE-SVC-X - [0:0]\n-A KUBE-SVC-X -j KUBE-SEP-A\n-A KUBE-SVC-X -j KUBE-SEP-A\nCOMMIT\n")
    rules = list(parse_iptables_save(text).table("nat").chains["KUBE-SVC-X"].rules)
    assert len(rules) == 2 and any("duplicate" in d.message for d in rules[1].diagnostics)


def test_iptables_S_format_is_accepted():
    rs = parse_iptables_save("-P INPUT DROP\n-N KUBE-FIREWALL\n-A INPUT -j KUBE-FIREWALL\n"
                             "-A KUBE-FIREWALL ! -s 127.0.0.0/8 -d 127.0.0.0/8 -j DROP\n", "s")
    filt = rs.table("filter")
    assert filt.chains["INPUT"].policy == "DROP"
    assert filt.chains["KUBE-FIREWALL"].rules[0].spec.source.negated


@pytest.mark.parametrize("path,words", [
    (WILD / "043-gke-2016-diff-of-two-iptables-save.rules", "diff"),
    (WILD / "047-kind-lnv-v-kmg-suffix-filter.lnv", "iptables -L"),
    (WILD / "036-kube-proxy-nftables-k3s-full-table-spaces.nft", "nftables"),
    (KP / "not-iptables" / "nft-list-ruleset.txt", "nftables"),
    (WILD / "003-ipvsadm-Ln-calico-nodeport.ipvs", "ipvsadm"),
    (IPT / "objects.json", "Kubernetes objects"),
])
def test_inputs_that_are_not_dumps_are_refused_with_what_they_look_like(path, words):
    with pytest.raises(NotADumpError) as err:
        parse_iptables_save(path.read_text(), path.name)
    assert words in str(err.value)
    assert path.name in str(err.value)


def test_empty_and_binary_input_are_refused():
    with pytest.raises(NotADumpError, match="empty"):
        parse_iptables_save("\n\n", "e")
    with pytest.raises(NotADumpError, match="binary"):
        parse_iptables_save("\x00\x01\x02", "b")


def test_strict_turns_the_first_diagnostic_into_an_error_with_its_line():
    text = (WILD / "042-gke-2016-v1.4.14-loadbalancer-prefw-full.rules").read_text()
    with pytest.raises(ParseError) as err:
        parse_iptables_save(text, "042", strict=True)
    assert err.value.line == 1 and "042:1" in str(err.value)
    # a clean real dump passes strict
    parse_iptables_save((IPT / "iptables-save.txt").read_text(), "ok", strict=True)


@pytest.mark.parametrize("name", sorted(p.name for p in WILD.glob("*.rules")) )
def test_every_wild_dump_is_read_or_refused_never_crashes(name):
    text = (WILD / name).read_text()
    try:
        rs = parse_iptables_save(text, name)
    except NotADumpError:
        assert name.startswith("043")
        return
    assert rs.rule_count() > 0
    for t in rs.tables:
        for ch in t.chains.values():
            for rule in ch.rules:
                assert rule.text and rule.line > 0
