"""Graph queries (dangling jumps, unreferenced chains, cycles, one service's chains)
and the networkx graph, on the real v1.36.2 dump, wild dumps and small edited ones."""

from __future__ import annotations

import pytest

from conftest import IPT, WILD
from svcinspect.graph import (
    ChainRef,
    DanglingJump,
    chains_of_service,
    find_cycles,
    find_dangling_jumps,
    find_unreferenced_chains,
    raw_target,
)
from svcinspect.model.netfilter import Family
from svcinspect.dataplane.iptables.parse import parse_iptables_save

HELLO = "DZ6LTOHRG6HQWHYE"  # default/hello-world tcp
HELLO_SEPS = {"KUBE-SEP-TTFDDCQ6CXER73EZ", "KUBE-SEP-HKT7TYOO7KSAV3CZ", "KUBE-SEP-ADT6UDJPDQHGYNFU"}


@pytest.fixture(scope="module")
def v4_text() -> str:
    return (IPT / "iptables-save.txt").read_text()


@pytest.fixture(scope="module")
def v4(v4_text):
    return parse_iptables_save(v4_text, "v4")


def edited(text: str, old: str, new: str):
    assert old in text, old
    return parse_iptables_save(text.replace(old, new, 1), "edited")


# --- the raw-text reading of targets -------------------------------------------------

@pytest.mark.parametrize("text, expect", [
    ("-A KUBE-SVC-X -m statistic --mode random --probability 0.5 -j KUBE-SEP-A", ("KUBE-SEP-A", False)),
    ('-A KUBE-SERVICES -m comment --comment "a -j b" -j KUBE-SVC-X', ("KUBE-SVC-X", False)),
    ("-A KUBE-SEP-A -p tcp -m tcp -j DNAT --to-destination 10.0.0.1:80", ("DNAT", False)),
    ("-A cali-FORWARD -g cali-to-hep", ("cali-to-hep", True)),
    ("[3:180] -A KUBE-NODEPORTS -p tcp -j KUBE-EXT-X", ("KUBE-EXT-X", False)),
    ('-A KUBE-FW-X -m comment --comment "other traffic -j x"', False),   # flag inside a quote: decode
    ('-A X -j LOG --log-prefix "a b"', False),                          # quoted target option: decode
    ("-A X --jump ACCEPT", False),
    ("-A X -j", False),                                                   # truncated line
    ("-A KUBE-FW-X -s 10.0.0.0/8", None),
])
def test_raw_target(text, expect):
    assert raw_target(text) == expect


# --- queries on real dumps --------------------------------------------------------------

def test_real_kube_proxy_dump_is_clean(v4):
    """A dump kube-proxy v1.36.2 wrote: nothing dangles, no orphans, no loops (the
    canaries are unreferenced on purpose and must not be reported)."""
    assert find_dangling_jumps(v4) == []
    assert find_unreferenced_chains(v4) == []
    assert find_cycles(v4) == []


def test_chains_of_hello_world(v4):
    assert chains_of_service(v4, HELLO) == {"KUBE-SVC-" + HELLO, "KUBE-EXT-" + HELLO} | HELLO_SEPS
    assert chains_of_service(v4, HELLO, Family.V6) == set()
    assert chains_of_service(v4, "AAAAAAAAAAAAAAAA") == set()


def test_chains_of_eTP_local_service_include_svl(v4):
    chains = chains_of_service(v4, "XZPXZFXLZG6VBDNQ")
    assert {"KUBE-SVC-XZPXZFXLZG6VBDNQ", "KUBE-SVL-XZPXZFXLZG6VBDNQ", "KUBE-EXT-XZPXZFXLZG6VBDNQ"} <= chains
    assert any(c.startswith("KUBE-SEP-") for c in chains)


def test_chains_of_lb_service_include_fw(v4):
    assert "KUBE-FW-QQNROL5V7PXTXB4C" in chains_of_service(v4, "QQNROL5V7PXTXB4C")


def test_excerpt_reports_the_chains_it_cut_off():
    """A grep excerpt jumps to chains it does not contain: those are dangling."""
    rs = parse_iptables_save((WILD / "018-no-comments-svc-affinity-calico-excerpt.rules").read_text(), "018")
    dangling = find_dangling_jumps(rs)
    assert dangling and all(d.target.startswith("KUBE-SEP-") for d in dangling)
    assert all(isinstance(d, DanglingJump) and d.text.endswith("-j " + d.target) for d in dangling)


# --- edited dumps --------------------------------------------------------------------

def test_dangling_jump_to_removed_sep(v4_text):
    rs = edited(v4_text, "-j KUBE-SEP-HKT7TYOO7KSAV3CZ\n", "-j KUBE-SEP-GONEGONEGONEGONE\n")
    [d] = find_dangling_jumps(rs)
    assert (d.family, d.table, d.chain, d.target) == (Family.V4, "nat", "KUBE-SVC-" + HELLO, "KUBE-SEP-GONEGONEGONEGONE")
    assert d.line == 340 and "default/hello-world -> 10.244.1.11:8080" in d.text
    # ... and the endpoint chain nobody jumps to any more is an orphan
    assert [(c.table, c.chain) for c in find_unreferenced_chains(rs)] == [("nat", "KUBE-SEP-HKT7TYOO7KSAV3CZ")]


def test_known_targets_and_quoted_flags_are_not_dangling(v4_text):
    rs = edited(v4_text, "-A KUBE-MARK-MASQ -j MARK", '-A KUBE-MARK-MASQ -m comment --comment "x -j NOPE" -j MARK')
    assert find_dangling_jumps(rs) == []


def test_orphan_sep_chain_is_unreferenced(v4_text):
    rs = edited(v4_text, ":KUBE-SVL-XZPXZFXLZG6VBDNQ - [0:0]\n",
                ":KUBE-SVL-XZPXZFXLZG6VBDNQ - [0:0]\n:KUBE-SEP-ORPHANORPHANORPH - [0:0]\n")
    [c] = find_unreferenced_chains(rs)
    assert c == ChainRef(Family.V4, "nat", "KUBE-SEP-ORPHANORPHANORPH", c.line) and c.line > 0


def test_stale_service_chains_are_unreferenced(v4_text):
    """Drop the cluster-IP dispatch rule of a ClusterIP-only service: its SVC chain
    is stale (its SEP chains are still referenced, by the SVC chain)."""
    line = next(l for l in v4_text.splitlines() if "default/affinity:http cluster IP" in l and "-A KUBE-SERVICES" in l)
    rs = edited(v4_text, line + "\n", "")
    assert [c.chain for c in find_unreferenced_chains(rs)] == ["KUBE-SVC-WJRUPVUBKQNHSPX2"]


def test_cycle(v4_text):
    rs = edited(v4_text, "-A KUBE-SEP-ADT6UDJPDQHGYNFU -s 10.244.2.10/32",
                "-A KUBE-SEP-ADT6UDJPDQHGYNFU -j KUBE-EXT-DZ6LTOHRG6HQWHYE\n-A KUBE-SEP-ADT6UDJPDQHGYNFU -s 10.244.2.10/32")
    assert find_cycles(rs) == [["KUBE-EXT-" + HELLO, "KUBE-SVC-" + HELLO, "KUBE-SEP-ADT6UDJPDQHGYNFU"]]


def test_self_loop_and_per_table_cycles():
    text = "\n".join([
        "*filter", ":INPUT ACCEPT [0:0]", ":A - [0:0]", ":B - [0:0]",
        "-A INPUT -j A", "-A A -j B", "-A B -j A", "COMMIT",
        "*nat", ":PREROUTING ACCEPT [0:0]", ":A - [0:0]", ":B - [0:0]",
        "-A PREROUTING -j A", "-A A -j A", "-A A -j B", "COMMIT", ""])
    assert find_cycles(parse_iptables_save(text, "t")) == [["A", "B"], ["A"]]
