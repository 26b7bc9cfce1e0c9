"""What the property tests that feed readers hypothesis-made dumps share: real
rule lines (the v1.36.2 capture and the pastes from bug reports) and one way of
mutating them."""

from __future__ import annotations

from hypothesis import strategies as st

from conftest import IPT, WILD

REAL = (IPT / "iptables-save.txt").read_text().splitlines()
WILD_LINES = [ln for p in sorted(WILD.glob("*.rules")) for ln in p.read_text(errors="replace").splitlines()]
LINES = REAL + WILD_LINES


def mutate(lines: list[str], data, tokens: list[str], max_drop: int = 0) -> list[str]:
    """``lines``, each non-empty one (as ``data`` draws) with one of ``tokens`` or
    nothing put in at a drawn place, replacing up to ``max_drop`` characters there."""
    out = []
    for line in lines:
        if line and data.draw(st.booleans()):
            cut = data.draw(st.integers(0, len(line)))
            drop = data.draw(st.integers(0, max_drop)) if max_drop else 0
            line = line[:cut] + data.draw(st.sampled_from(tokens + [""])) + line[cut + drop:]
        out.append(line)
    return out
