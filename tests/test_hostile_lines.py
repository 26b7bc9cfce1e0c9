r"""Lines end at ``\n`` only, everywhere: the characters ``str.splitlines`` also
splits at are legal inside a comment (``iptables -m comment --comment $'a\x0cb'``)
and must not cut a rule in two (issue 12)."""

from __future__ import annotations

import ipaddress
import json

import pytest

from conftest import IPT
from svcinspect.simulate import Environment
from svcinspect.dataplane import simulate
from svcinspect.model.flow import Disposition, Packet
from svcinspect.dataplane.iptables.parse import parse_iptables_save, raw_comment
from svcinspect.dataplane.iptables.index import index_iptables_save

REAL = (IPT / "iptables-save.txt").read_text()
FIRST = "-A KUBE-SERVICES -d 10.96.30.10/32"  # the first rule of nat KUBE-SERVICES
SEPARATORS = ["\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"]
DNS = Packet(ipaddress.ip_address("10.244.1.2"), ipaddress.ip_address("10.96.0.10"), 53, "udp")


def _hostile(sep: str) -> tuple[str, str]:
    """The real dump with a first KUBE-SERVICES rule that RETURNs everything; its
    comment holds SEP and, after it, what would read as a jump into kube-dns."""
    comment = f"stop{sep}-A KUBE-SERVICES -j KUBE-SVC-TCOU7JCQXEZGVUNU"
    rule = f'-A KUBE-SERVICES -m comment --comment "{comment}" -j RETURN\n'
    assert FIRST in REAL
    return REAL.replace(FIRST, rule + FIRST, 1), comment


@pytest.mark.parametrize("sep", SEPARATORS, ids=[f"U+{ord(c):04X}" for c in SEPARATORS])
def test_separator_in_a_comment_keeps_the_rule_whole(sep):
    text, comment = _hostile(sep)
    rs = parse_iptables_save(text, "hostile")
    nat = rs.table("nat")
    first = nat.chains["KUBE-SERVICES"].rules[0]
    assert first.target.name == "RETURN"
    assert raw_comment(first.text) == comment
    assert not first.diagnostics
    sim = simulate(rs, DNS, Environment())
    assert [o.disposition for o in sim.outcomes] == [Disposition.NONE]  # not a DNAT to kube-dns
    # Line numbers after the rule are the file's own.
    dns = [r for r in nat.chains["KUBE-SERVICES"].rules if "kube-dns:dns cluster IP" in r.text][0]
    assert text.split("\n")[dns.line - 1] == dns.text


@pytest.mark.parametrize("sep", SEPARATORS, ids=[f"U+{ord(c):04X}" for c in SEPARATORS])
def test_separator_fast_index_equals_full_parse(sep):
    text, _ = _hostile(sep)
    full = parse_iptables_save(text, "hostile")
    indexed = index_iptables_save(text.encode(), "hostile")
    assert indexed is not None
    for name in ("KUBE-SERVICES", "KUBE-SVC-TCOU7JCQXEZGVUNU"):
        assert indexed.table("nat").chains[name].rules.raw == full.table("nat").chains[name].rules.raw


@pytest.mark.parametrize("sep", SEPARATORS, ids=[f"U+{ord(c):04X}" for c in SEPARATORS])
def test_separator_dump_check_packet_cli(cli, tmp_path, sep):
    text, comment = _hostile(sep)
    path = tmp_path / "hostile.rules"
    path.write_bytes(text.encode())
    dumped = cli("dump", "--rules", str(path))
    assert dumped.code == 0, dumped.err
    again = parse_iptables_save(dumped.out, "again")
    assert raw_comment(again.table("nat").chains["KUBE-SERVICES"].rules[0].text) == comment  # restorable
    assert len(again.table("nat").chains["KUBE-SERVICES"].rules) == len(
        parse_iptables_save(text, "x").table("nat").chains["KUBE-SERVICES"].rules)
    checked = cli("check", "--rules", str(path), "-o", "json")
    assert checked.code in (0, 1), checked.err
    assert "internal error" not in checked.err
    json.loads(checked.out)
    pkt = cli("packet", "--rules", str(path), "--src", "10.244.1.2", "--dst", "10.96.0.10", "--dport", "53",
              "--proto", "udp", "-o", "json")
    assert pkt.code == 0, pkt.err
    assert [o["disposition"] for o in json.loads(pkt.out)["outcomes"]] == ["none"]


def test_separator_in_a_declaration_line_is_quoted_whole():
    text = "*nat\n:A - [0:0]\n: x\x0cy\n:D - [0:0]\n-A A -j D\nCOMMIT\n"
    rs = parse_iptables_save(text, "decl")
    skipped = [d for d in rs.diagnostics if d.line == 3]
    assert [d.text for d in skipped] == [": x\x0cy"]
    assert rs.table("nat").chains["A"].rules[0].line == 5
