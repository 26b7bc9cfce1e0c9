"""Hostile rules must not make a simulation or a check take exponential (or
quadratic) time and memory: each budget is stated in the answer when it is hit.

Cases from issue 12: interface tests that double the alternatives per rule, a
diamond of jumps, a deep ladder of jumps for ``check``.
"""

from __future__ import annotations

import ipaddress
import subprocess
import sys
from fractions import Fraction

from conftest import IPT, ROOT
from svcinspect.dataplane.iptables import evaluate
from svcinspect.simulate import Environment
from svcinspect.dataplane import simulate
from svcinspect.model.flow import Disposition, Packet
from svcinspect.dataplane.iptables.parse import parse_iptables_save

REAL = (IPT / "iptables-save.txt").read_text()
HOOK = '-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES\n'
DNS = Packet(ipaddress.ip_address("10.244.1.2"), ipaddress.ip_address("10.96.0.10"), 53, "udp")


def _with_interface_marks(n: int) -> str:
    """The real dump plus N rules each doubling the alternatives (an unknown
    interface, then a mark that makes the alternatives differ)."""
    extra = "".join(f"-A PREROUTING -i eth{k} -j MARK --set-xmark {k:#x}/{k:#x}\n" for k in range(1, n + 1))
    assert HOOK in REAL
    return REAL.replace(HOOK, extra + HOOK)


def test_interface_marks_are_capped_and_the_cap_is_stated():
    sim = simulate(parse_iptables_save(_with_interface_marks(12), "hostile"), DNS, Environment())
    # 2^12 = 4096 ways before the budget; the answer still reaches kube-dns.
    assert len(sim.outcomes) <= evaluate.MAX_ALTERNATIVES
    assert {o.endpoint for o in sim.outcomes} == {"10.244.2.2:53"}
    assert sum(o.probability for o in sim.outcomes) == 1
    said = [w for w in sim.warnings if w.startswith("too many alternatives beyond")]
    assert said and "the rules branch on 12 unknowns" in said[0]
    assert "eth12" in said[0] or "more)" in said[0]


def test_random_branches_that_end_alike_are_merged_not_multiplied():
    # 40 random branches that only log: 2^40 ways, one state. Merged as they go,
    # so no budget is hit and the answer is exact.
    extra = "".join(f"-A PREROUTING -m statistic --mode random --probability 0.50000000000 -j LOG\n"
                    for _ in range(40))
    sim = simulate(parse_iptables_save(REAL.replace(HOOK, extra + HOOK), "logs"), DNS, Environment())
    assert not [w for w in sim.warnings if "too many" in w or "stopped" in w]
    assert sorted((o.endpoint, o.probability) for o in sim.outcomes) == [
        ("10.244.1.2:53", Fraction(1, 2)), ("10.244.2.2:53", Fraction(1, 2))]


def test_cap_not_hit_on_the_real_dump():
    sim = simulate(parse_iptables_save(REAL, "real"), DNS, Environment())
    assert not [w for w in sim.warnings if "too many" in w or "budget" in w or "stopped" in w]
    assert all(not any("too many alternatives" in a for a in o.assumptions) for o in sim.outcomes)


def test_thirty_interface_rules_through_the_cli(cli, tmp_path):
    rules = tmp_path / "hostile.rules"
    rules.write_text(_with_interface_marks(30))
    r = cli("packet", "--rules", str(rules), "--src", "10.244.1.2", "--dst", "10.96.0.10", "--dport", "53",
            "--proto", "udp")
    assert r.code == 0
    assert "too many alternatives beyond 256: the rules branch on 30 unknowns" in r.out
    assert "10.244.2.2:53" in r.out


def test_trace_with_fourteen_interface_rules(cli, tmp_path):
    # The report's case: the real dump plus 14 such rules made trace run for minutes.
    rules = tmp_path / "hostile.rules"
    rules.write_text(_with_interface_marks(14))
    r = cli("trace", "kube-system/kube-dns", "--rules", str(rules), "-o", "json")
    assert r.code == 0, r.err
    import json
    doc = json.loads(r.out)
    assert any("too many alternatives beyond 256: the rules branch on 14 unknowns" in w for w in doc["warnings"])


def _diamond(depth: int) -> str:
    lines = ["*nat", ":PREROUTING ACCEPT [0:0]", ":OUTPUT ACCEPT [0:0]", ":POSTROUTING ACCEPT [0:0]"]
    lines += [f":D{k} - [0:0]" for k in range(depth)]
    lines.append("-A PREROUTING -j D0")
    for k in range(depth - 1):
        lines += [f"-A D{k} -j D{k + 1}", f"-A D{k} -p udp -j D{k + 1}"]
    lines.append(f"-A D{depth - 1} -j MARK --set-xmark 0x1/0x1")  # and on: every path is walked
    return "\n".join(lines + ["COMMIT", ""])


def test_diamond_of_jumps_stops_at_the_rule_test_budget():
    # 2^40 paths reach the MARK rule; without a budget this never ends.
    sim = simulate(parse_iptables_save(_diamond(40), "diamond"), DNS, Environment())
    assert any(w.startswith(f"the simulation stopped after {evaluate.MAX_RULE_TESTS} rule tests") for w in sim.warnings)
    assert all(len(o.steps) <= evaluate.MAX_STEPS_SHOWN for o in sim.outcomes)
    assert any("not evaluated beyond" in a for o in sim.outcomes for a in o.assumptions)


def test_small_diamond_is_exact():
    sim = simulate(parse_iptables_save(_diamond(5), "diamond"), DNS, Environment())
    assert not [w for w in sim.warnings if "stopped" in w]
    assert [o.disposition for o in sim.outcomes] == [Disposition.NONE]
    assert sim.outcomes[0].packet.mark == 1
    assert sum(1 for s in sim.outcomes[0].steps if s.action.startswith("MARK")) == 2 ** 4


def _ladder(depth: int) -> str:
    lines = ["*nat", ":PREROUTING ACCEPT [0:0]", ":OUTPUT ACCEPT [0:0]", ":POSTROUTING ACCEPT [0:0]"]
    lines += [f":L{k} - [0:0]" for k in range(depth)]
    lines.append("-A PREROUTING -j L0")
    lines += [f"-A L{k} -j L{k + 1}" for k in range(depth - 1)]
    return "\n".join(lines + ["COMMIT", ""])


def test_check_of_a_deep_ladder_is_linear(tmp_path):
    # 30k chains deep: a layer-by-layer peel took minutes (10k: 22 s); the
    # bound is a hang guard with a wide margin, not a benchmark.
    rules = tmp_path / "ladder.rules"
    rules.write_text(_ladder(30_000) + "*filter\n:INPUT ACCEPT [0:0]\n:X - [0:0]\n:Y - [0:0]\n"
                     "-A X -j Y\n-A Y -j X\nCOMMIT\n")
    proc = subprocess.run([sys.executable, "-m", "svcinspect", "check", "--rules", str(rules), "--fail-on", "never"],
                          capture_output=True, text=True, timeout=60, cwd=ROOT,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr
    assert "chains jump to each other in a loop: X -> Y -> X" in proc.stdout
