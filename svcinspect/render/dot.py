"""Render a chain graph (from :mod:`svcinspect.graph`) as DOT, through pydot, or as
networkx node-link JSON.

DOT: one ``cluster_*`` subgraph per group the graph names (entry point or service
port), nodes coloured by chain kind with a legend of the kinds shown, edges labelled
with the exact share ("1/3"), ClientIP affinity, masquerade and goto.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING

from svcinspect.render.escape import dot_quote

if TYPE_CHECKING:
    import networkx as nx

# networkx (0.3 s) and pydot are imported where they are used: the whole-dump DOT
# output needs neither.

# Fill colours by node kind (chains: kubeproxy.ChainKind values).
COLOURS = {
    "services": "#9ecae1", "nodeports": "#9ecae1", "external-services": "#9ecae1",
    "svc": "#a1d99b", "svl": "#c7e9c0", "ext": "#fdd0a2", "fw": "#fc9272", "xlb": "#fdae6b",
    "sep": "#dadaeb", "mark-masq": "#fff7bc", "mark-drop": "#fff7bc", "postrouting": "#fff7bc",
    "builtin": "#f0f0f0", "service": "#a1d99b",
    "endpoint": "#ffffff", "entry": "#c6dbef", "target": "#fcbba1",
}
LEGEND = {
    "entry": "entry point", "services": "KUBE-SERVICES / NODEPORTS", "service": "service port (collapsed)",
    "ext": "KUBE-EXT (external traffic)", "fw": "KUBE-FW (LB source ranges)", "xlb": "KUBE-XLB (old eTP=Local)",
    "svc": "KUBE-SVC (cluster policy)", "svl": "KUBE-SVL (local policy)", "sep": "KUBE-SEP (one endpoint)",
    "endpoint": "endpoint (DNAT destination)", "target": "verdict",
}
_SHAPES = {"entry": "box", "endpoint": "ellipse", "target": "octagon"}


# Printable ASCII without a quote or a backslash: json.dumps and dot_quote only
# wrap it in quotes (dot_quote also spells \n); anything else goes through them.
_PLAIN_ID = re.compile(r"[ !#-\[\]-~]*\Z")
_PLAIN_TEXT = re.compile(r"[\t\n !#-\[\]-~]*\Z")
_DOT_ID = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_DOT_KEYWORDS = frozenset({"node", "edge", "graph", "digraph", "subgraph", "strict"})


def _q(node_id: str, _cache: dict[str, str] = {}) -> str:
    """A DOT id: quoted, so ``:`` is not read as a port and ``/`` is allowed
    (JSON's escapes are valid inside a DOT string: a backslash always comes in a
    pair with the character after it)."""
    out = _cache.get(node_id)
    if out is None:
        out = '"' + node_id + '"' if _PLAIN_ID.match(node_id) else json.dumps(node_id)
        if len(_cache) < 1 << 17:
            _cache[node_id] = out
    return out


def _dq(text: str) -> str:
    """``dot_quote(text)``, without its escaping passes for plain ASCII text."""
    if _PLAIN_TEXT.match(text) is None:
        return dot_quote(text)
    if _DOT_ID.match(text) and text.lower() not in _DOT_KEYWORDS:
        return text
    return '"' + text.replace("\n", "\\n") + '"'


def _style_key(attrs: dict) -> str:
    t = attrs.get("type")
    if t in ("entry", "endpoint", "target", "service"):
        return t
    kind = attrs.get("kind", "")
    return "services" if kind in ("nodeports", "external-services") else kind


def _node_label(attrs: dict) -> str:
    lines = [str(attrs.get("label", ""))]
    if attrs.get("type") == "chain" and attrs.get("service") and attrs.get("kind") in ("svc", "svl", "xlb"):
        lines.append(attrs["service"])
    if attrs.get("type") == "service":
        n = attrs.get("endpoints", 0)
        lines.append(f"{n} endpoint{'s' if n != 1 else ''}")
    masq = attrs.get("masquerade")
    if attrs.get("type") == "chain" and masq:
        lines.append("masquerade: " + (masq if len(masq) <= 40 else masq[:39] + "…"))
    return "\n".join(lines)


def _edge_label(attrs: dict) -> str:
    parts = []
    if attrs.get("share"):
        parts.append(attrs["share"])
    aff = attrs.get("affinity")
    if aff == "set":
        parts.append("DNAT, records affinity")
    elif aff:
        parts.append(f"affinity: same client {aff}s")
    elif attrs.get("match") == "DNAT":
        parts.append("DNAT")
    if attrs.get("goto"):
        parts.append("goto")
    if attrs.get("masquerade"):
        parts.append("masqueraded")
    if attrs.get("note"):
        parts.append(attrs["note"])
    return "\n".join(parts)


def render_dot(graph: nx.MultiDiGraph, title: str = "svcinspect") -> str:
    """DOT text for ``graph``; nodes keep their graph ids (quoted) and a label."""
    from svcinspect import perf

    if perf.fast_paths():
        return write_dot(graph.graph.get("clusters", {}), graph.nodes(data=True), graph.edges(data=True), title)
    return _render_dot_pydot(graph, title)


def _render_dot_pydot(graph: nx.MultiDiGraph, title: str) -> str:
    # The reference writer: write_dot gives these bytes without a pydot object per
    # node and edge (tests/test_dot_writer.py compares the two).
    import pydot

    # Every text from the input goes through dot_quote, never through pydot's
    # guess (which passes a text that looks quoted as DOT source).
    dot = pydot.Dot("svcinspect", graph_type="digraph", rankdir="LR", fontname="Helvetica", label=dot_quote(title),
                    labelloc="t")
    dot.set_node_defaults(fontname="Helvetica", fontsize="10", style="filled", shape="box", fillcolor="#ffffff")
    dot.set_edge_defaults(fontname="Helvetica", fontsize="9")
    clusters = graph.graph.get("clusters", {})
    subgraphs: dict[str, pydot.Subgraph] = {}
    for i, (cid, ctitle) in enumerate(clusters.items()):
        sub = pydot.Subgraph(f"cluster_{i}", label=dot_quote(str(ctitle)), style="rounded", color="#888888")
        subgraphs[cid] = sub
        dot.add_subgraph(sub)
    used: set[str] = set()
    for node, attrs in graph.nodes(data=True):
        key = _style_key(attrs)
        used.add(key)
        # Only what differs from the node defaults: 10k-node graphs stay quick to write.
        style = {}
        if _SHAPES.get(key, "box") != "box":
            style["shape"] = _SHAPES[key]
        if COLOURS.get(key, "#ffffff") != "#ffffff":
            style["fillcolor"] = COLOURS[key]
        pn = pydot.Node(_q(node), label=dot_quote(_node_label(attrs)), **style)
        (subgraphs.get(attrs.get("cluster", "")) or dot).add_node(pn)
    for u, v, attrs in graph.edges(data=True):
        extra = {"style": "dashed"} if attrs.get("affinity") and attrs["affinity"] != "set" else {}
        label = _edge_label(attrs)
        if label:
            extra["label"] = dot_quote(label)
        tooltip = ": ".join(filter(None, (f"line {attrs.get('line', '')}", attrs.get("match"))))
        dot.add_edge(pydot.Edge(_q(u), _q(v), tooltip=dot_quote(tooltip), **extra))
    shown = [k for k in LEGEND if k in used]
    if shown:
        legend = pydot.Subgraph("cluster_legend", label="legend", style="rounded", color="#bbbbbb")
        for k in shown:
            legend.add_node(pydot.Node(_q("legend/" + k), label=dot_quote(LEGEND[k]), shape=_SHAPES.get(k, "box"),
                                       fillcolor=COLOURS.get(k, "#ffffff")))
        dot.add_subgraph(legend)
    return dot.to_string()


def render_node_link_json(graph: nx.MultiDiGraph) -> str:
    """networkx node-link data (``nodes``, ``edges``), with the graph attributes."""
    import networkx as nx

    data = nx.node_link_data(graph, edges="edges")
    data["graph"] = {"schema": "svcinspect/v1", **data.get("graph", {})}
    return json.dumps(data, indent=1, sort_keys=False) + "\n"


# --- the direct writer ---------------------------------------------------------------
#
# pydot builds an object per node and edge and re-checks every value's quoting
# character by character: ~60% of a whole-dump `graph -o dot`. write_dot prints
# what pydot's Dot.to_string prints for the graphs render_dot builds: the graph's
# attributes, the node and edge defaults, the cluster subgraphs (their nodes inside),
# the other nodes, the edges, the legend, each in the order render_dot adds them
# (pydot orders a graph's children by when they were added).

_KEYWORDS = frozenset({"graph", "subgraph", "digraph", "node", "edge", "strict"})
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_COLOUR = re.compile(r"#[0-9a-f]{6}\Z")


def _attr(value: str, _cache: dict[str, str] = {}) -> str:
    """pydot's quoting of one attribute value (``Common._format_attr`` and
    ``quote_attr_if_necessary``), answered here for the values render_dot
    gives (quoted strings, identifiers, digits, colours) and by pydot itself
    for anything else."""
    if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
        return value  # a quoted string (dot_quote's or _q's): pydot keeps it as it is
    out = _cache.get(value)
    if out is not None:
        return out
    if value == "":
        out = '""'
    elif value.lower() in _KEYWORDS:
        out = None
    elif value.isdigit():
        out = value
    elif value.isalnum():
        out = None if value[0].isdigit() else value
    elif _IDENT.match(value) or _COLOUR.match(value):
        out = '"' + value + '"'  # pydot finds no rule that leaves it bare, and nothing to escape
    if out is None:
        import pydot

        out = pydot.core.quote_attr_if_necessary(value)
    _cache[value] = out
    return out


def _attrs(pairs) -> str:
    return "[" + ", ".join(f"{k}={_attr(v)}" for k, v in pairs) + "]"


_NODE_DEFAULTS = _attrs((("fontname", "Helvetica"), ("fontsize", "10"), ("style", "filled"), ("shape", "box"),
                         ("fillcolor", "#ffffff")))
_EDGE_DEFAULTS = _attrs((("fontname", "Helvetica"), ("fontsize", "9")))


def _node_line(node: str, attrs: dict) -> tuple[str, str]:
    """(style key, the node's DOT line) as render_dot's pydot.Node prints it."""
    key = _style_key(attrs)
    parts = ["label=" + _attr(_dq(_node_label(attrs)))]
    shape = _SHAPES.get(key, "box")
    if shape != "box":
        parts.append("shape=" + _attr(shape))
    colour = COLOURS.get(key, "#ffffff")
    if colour != "#ffffff":
        parts.append("fillcolor=" + _attr(colour))
    return key, f"{_q(node)} [{', '.join(parts)}];\n"


def _edge_line(u: str, v: str, attrs: dict) -> str:
    tooltip = ": ".join(filter(None, (f"line {attrs.get('line', '')}", attrs.get("match"))))
    parts = ["tooltip=" + _attr(_dq(tooltip))]
    if attrs.get("affinity") and attrs["affinity"] != "set":
        parts.append("style=dashed")
    label = _edge_label(attrs)
    if label:
        parts.append("label=" + _attr(_dq(label)))
    return f"{_q(u)} -> {_q(v)} [{', '.join(parts)}];\n"


# What _node_line prints after a service node's label (its shape and fill colour).
_SERVICE_STYLE = _node_line("n", {"type": "service", "label": "x", "endpoints": 0})[1].split('x\\n0 endpoints"', 1)[1]


def _service_lines(pairs: list, start: int, top: list, style: str) -> int:
    """_node_line's lines for the ``(id, attrs)`` pairs of ``pairs[start:]`` as long as
    each is a service node (attrs a dict, "type" the str "service", "endpoints" an
    int and "label" a str, or absent) whose id and label are plain (printable ASCII
    without a quote or backslash; the label may hold tabs and newlines): such a
    label is never a bare DOT id (it holds a blank), so it is written quoted, its
    newlines as \\n; the id as _q quotes it. Appends each line to ``top`` and
    returns the index of the first pair left to the caller. The pure-Python
    reference of the compiled ``_edges.service_lines``."""
    n = len(pairs)
    i = max(start, 0)
    if not style.isascii():
        return i
    while i < n:
        pair = pairs[i]
        if not isinstance(pair, tuple) or len(pair) != 2 or not isinstance(pair[1], dict):
            return i
        node, attrs = pair
        kind = attrs.get("type")
        count = attrs.get("endpoints", 0)
        label = attrs.get("label", "")
        if (type(kind) is not str or kind != "service" or type(count) is not int or type(label) is not str
                or type(node) is not str or not _PLAIN_ID.match(node)):
            return i
        text = f"{label}\n{count} endpoint{'s' if count != 1 else ''}"
        if not _PLAIN_TEXT.match(text):
            return i
        top.append('"' + node + '" [label="' + text.replace("\n", "\\n") + '"' + style)
        i += 1
    return n


def _plain_edge_lines(triples: list, start: int, out: list) -> int:
    """_edge_line's lines for the ``(u, v, attrs)`` triples of ``triples[start:]`` as
    long as each has no share, affinity, goto, masquerade or note (all false or
    absent), a "match" that is a str (or absent) and a "line" that is an int or a
    str, and plain ids and tooltip: the label is "DNAT" (a bare id) for a DNAT
    match, else none; the tooltip is never a bare id (it holds a blank), so it is
    written quoted, its newlines as \\n. Appends each line to ``out`` and returns
    the index of the first triple left to the caller. The pure-Python reference
    of the compiled ``_edges.plain_edge_lines``."""
    n = len(triples)
    i = max(start, 0)
    while i < n:
        triple = triples[i]
        if not isinstance(triple, tuple) or len(triple) != 3 or not isinstance(triple[2], dict):
            return i
        u, v, attrs = triple
        get = attrs.get
        if get("share") or get("affinity") or get("goto") or get("masquerade") or get("note"):
            return i
        match = get("match")
        line = get("line", "")
        if ((match is not None and type(match) is not str) or type(line) not in (int, str)
                or type(u) is not str or type(v) is not str or not _PLAIN_ID.match(u) or not _PLAIN_ID.match(v)):
            return i
        tip = f"line {line}: {match}" if match else f"line {line}"
        if not _PLAIN_TEXT.match(tip):
            return i
        tip = tip.replace("\n", "\\n")
        out.append(f'"{u}" -> "{v}" [tooltip="{tip}", label=DNAT];\n' if match == "DNAT" else
                   f'"{u}" -> "{v}" [tooltip="{tip}"];\n')
        i += 1
    return n


def write_dot(clusters: dict, nodes, edges, title: str = "svcinspect") -> str:
    """The DOT text render_dot gives for a graph with these ``clusters`` (id ->
    title), ``nodes`` (``(id, attrs)`` pairs) and ``edges`` (``(u, v, attrs)``), in
    that order: networkx's ``graph.nodes(data=True)`` and ``graph.edges(data=True)``
    or plain lists (the whole-dump overview is written without building a graph)."""
    out = ["digraph svcinspect {\n", "rankdir=LR;\n", "fontname=Helvetica;\n",
           f"label={_attr(dot_quote(title))};\n", "labelloc=t;\n",
           f"node {_NODE_DEFAULTS};\n", f"edge {_EDGE_DEFAULTS};\n"]
    inside: dict[str, list[str]] = {cid: [] for cid in clusters}
    used: set[str] = set()
    top = []
    # Plain service nodes and edges (most of the whole-dump overview) from templates,
    # compiled when built; the first of any other kind goes through _node_line/_edge_line.
    from svcinspect import graph as _graph

    native = _graph._native if _graph.bulk.enabled() else None
    service_lines = getattr(native, "service_lines", None) or _service_lines
    edge_lines = getattr(native, "plain_edge_lines", None) or _plain_edge_lines
    pairs = nodes if type(nodes) is list else list(nodes)
    i, n = 0, len(pairs)
    while i < n:
        if not inside:  # (no clusters: every node is written at the top)
            j = service_lines(pairs, i, top, _SERVICE_STYLE)
            if j > i:
                used.add("service")
            i = j
            if i >= n:
                break
        node, attrs = pairs[i]
        i += 1
        key, line = _node_line(node, attrs)
        used.add(key)
        (inside.get(attrs.get("cluster", "")) if attrs.get("cluster", "") in inside else top).append(line)
    for i, (cid, ctitle) in enumerate(clusters.items()):
        out.append(f"subgraph cluster_{i} {{\nlabel={_attr(dot_quote(str(ctitle)))};\nstyle=rounded;\n"
                   f"color={_attr('#888888')};\n")
        out.extend(inside[cid])
        out.append("}\n")
    out.extend(top)
    triples = edges if type(edges) is list else list(edges)
    i, n = 0, len(triples)
    while i < n:
        i = edge_lines(triples, i, out)
        if i < n:
            out.append(_edge_line(*triples[i]))
            i += 1
    shown = [k for k in LEGEND if k in used]
    if shown:
        out.append(f"subgraph cluster_legend {{\nlabel=legend;\nstyle=rounded;\ncolor={_attr('#bbbbbb')};\n")
        for k in shown:
            out.append(f"{_q('legend/' + k)} [label={_attr(dot_quote(LEGEND[k]))}, "
                       f"shape={_attr(_SHAPES.get(k, 'box'))}, fillcolor={_attr(COLOURS.get(k, '#ffffff'))}];\n")
        out.append("}\n")
    out.append("}\n")
    return "".join(out)
