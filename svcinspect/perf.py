"""Switches for the fast paths of the whole-dump commands (all on by default).

Each fast path gives the same bytes as the general code it bypasses; the
switches exist so that tests (``tests/test_perf_equivalence.py``) and
benchmarks can run both and compare. ``SVCINSPECT_NO_FAST=1`` in the
environment starts with them off. The compiled scanner (``svcinspect.dataplane.iptables._scan``,
when ``pip install`` could build it) is one of them: ``SVCINSPECT_NO_NATIVE=1``
or :func:`native_scanner` uses the pure-Python scan instead, with the same output;
the same goes for the graph's compiled edge pass (``_edges``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


@contextlib.contextmanager
def all_fast_paths(on: bool) -> Iterator[None]:
    """Within the block, every fast path is on (True) or off (False)."""
    from svcinspect import graph
    from svcinspect.dataplane.iptables import bulk
    from svcinspect.dataplane.nftables import parse as nft_parse
    from svcinspect.render import iptables as render_iptables
    from svcinspect.render import json as render_json
    from svcinspect.render import text as render_text

    was = (bulk.set_enabled(on), render_json._fast_json, render_text._direct_tables, render_iptables._fast_dump,
           bulk.set_native(on), graph.set_native(on), nft_parse.set_fast(on))
    render_json._fast_json = on and render_json.orjson is not None
    render_text._direct_tables = render_iptables._fast_dump = on
    try:
        yield
    finally:
        bulk.set_enabled(was[0])
        render_json._fast_json, render_text._direct_tables, render_iptables._fast_dump = was[1:4]
        bulk.set_native(was[4])
        graph.set_native(was[5])
        nft_parse.set_fast(was[6])


def native_built() -> bool:
    """Whether the compiled scanner was built with this installation."""
    from svcinspect.dataplane.iptables import bulk

    return bulk.native_scanner is not None


@contextlib.contextmanager
def native_scanner(on: bool) -> Iterator[None]:
    """Within the block, the bulk readers use the compiled scanner (True, when
    built) or the pure-Python one (False); the graph's compiled edge pass
    (``_edges``) follows the same switch."""
    from svcinspect import graph
    from svcinspect.dataplane.iptables import bulk

    was = bulk.set_native(on), graph.set_native(on)
    try:
        yield
    finally:
        bulk.set_native(was[0])
        graph.set_native(was[1])


def native_edges_built() -> bool:
    """Whether the compiled edge pass of the chain graph was built with this installation."""
    from svcinspect import graph

    return graph.native_edges is not None


def fast_paths() -> bool:
    """Whether the fast paths are on (``SVCINSPECT_NO_FAST=1`` or
    :func:`all_fast_paths` turn them off): the one switch renderers ask."""
    from svcinspect.dataplane.iptables import bulk

    return bulk.enabled()


def native(name: str):
    """The compiled scanner's function ``name`` when the scanner is built and
    in use and the fast paths are on, else None (then the pure-Python
    reference runs, with the same output)."""
    from svcinspect.dataplane.iptables import bulk

    return getattr(bulk._native, name, None) if bulk.enabled() else None
