"""Switches for the fast paths of the whole-dump commands (all on by default).

Each fast path gives the same bytes as the general code it bypasses; the
switches exist so that tests (``tests/test_perf_equivalence.py``) and
benchmarks can run both and compare. ``SVCINSPECT_NO_FAST=1`` in the
environment starts with them off.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


@contextlib.contextmanager
def all_fast_paths(on: bool) -> Iterator[None]:
    """Within the block, every fast path is on (True) or off (False)."""
    from svcinspect.dataplane.iptables import bulk
    from svcinspect.render import iptables as render_iptables
    from svcinspect.render import json as render_json
    from svcinspect.render import text as render_text

    was = (bulk.set_enabled(on), render_json._fast_json, render_text._direct_tables, render_iptables._fast_dump)
    render_json._fast_json = on and render_json.orjson is not None
    render_text._direct_tables = render_iptables._fast_dump = on
    try:
        yield
    finally:
        bulk.set_enabled(was[0])
        render_json._fast_json, render_text._direct_tables, render_iptables._fast_dump = was[1:]
