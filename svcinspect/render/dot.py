"""Render a chain graph (from :mod:`svcinspect.graph`) as DOT, through pydot, or as
networkx node-link JSON.

DOT: one ``cluster_*`` subgraph per group the graph names (entry point or service
port), nodes coloured by chain kind with a legend of the kinds shown, edges labelled
with the exact share ("1/3"), ClientIP affinity, masquerade and goto.
"""

from __future__ import annotations

import json

import networkx as nx
import pydot

from svcinspect.render.escape import dot_quote

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


def _q(node_id: str) -> str:
    """A DOT id: quoted, so ``:`` is not read as a port and ``/`` is allowed
    (JSON's escapes are valid inside a DOT string: a backslash always comes in a
    pair with the character after it)."""
    return json.dumps(node_id)


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
    data = nx.node_link_data(graph, edges="edges")
    data["graph"] = {"schema": "svcinspect/v1", **data.get("graph", {})}
    return json.dumps(data, indent=1, sort_keys=False) + "\n"
