"""Nothing from the input steers a terminal or adds to a graph (issue 12): DOT
labels and ids are quoted by rule, text output shows control characters as
``\\x1b``, JSON stays exact."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pydot
import pytest

from conftest import IPT
from svcinspect.render.escape import dot_quote, escape_text

REAL = (IPT / "iptables-save.txt").read_text()
EVIL = '"a",URL="javascript:alert(1)",b="c"'   # iptables accepts it as a chain name
BACKSLASH = "ends\\"
# A comment naming a service with quotes, and an OSC 8 hyperlink plus a screen clear.
OSC = "\x1b]8;;javascript:alert(1)\x07click\x1b]8;;\x07\x1b[2J"

INJECT = f"""*nat
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:KUBE-SERVICES - [0:0]
:{EVIL} - [0:0]
:{BACKSLASH} - [0:0]
:KUBE-SVC-AAAAAAAAAAAAAAAA - [0:0]
:KUBE-SEP-BBBBBBBBBBBBBBBB - [0:0]
-A PREROUTING -j KUBE-SERVICES
-A KUBE-SERVICES -j {EVIL}
-A KUBE-SERVICES -j {BACKSLASH}
-A KUBE-SERVICES -d 10.96.0.77/32 -p tcp -m tcp --dport 80 -j KUBE-SEP-\x1b[31mGONE
:KUBE-SVC-\x1b]8;;javascript:alert(3)\x07ORPHAN - [0:0]
-A KUBE-SERVICES -d 10.96.0.77/32 -p tcp -m comment --comment "default/x\x1b]8;;evil\x07\\",URL=\\"javascript:alert(2)\\",y=\\"z:http cluster IP" -m tcp --dport 80 -j KUBE-SVC-AAAAAAAAAAAAAAAA
-A KUBE-SVC-AAAAAAAAAAAAAAAA -m comment --comment "default/x\x1b]8;;evil\x07\\",URL=\\"javascript:alert(2)\\",y=\\"z:http -> 10.244.1.5:80" -j KUBE-SEP-BBBBBBBBBBBBBBBB
-A KUBE-SEP-BBBBBBBBBBBBBBBB -p tcp -m comment --comment "{OSC}" -m tcp -j DNAT --to-destination 10.244.1.5:80
-A {EVIL} -j ACCEPT
COMMIT
"""


@pytest.fixture
def inject(tmp_path):
    path = tmp_path / "inject.rules"
    path.write_text(INJECT)
    return path


def _attributes(dot_text: str) -> list[dict]:
    graphs = pydot.graph_from_dot_data(dot_text)
    assert graphs, "not valid DOT"
    out = []

    def walk(g):
        for n in g.get_nodes():
            out.append(n.get_attributes())
        for e in g.get_edges():
            out.append(e.get_attributes())
        for sub in g.get_subgraphs():
            out.append(sub.get_attributes())
            walk(sub)

    out.append(graphs[0].get_attributes())
    walk(graphs[0])
    return out


@pytest.mark.parametrize("args", [("--expand",), (), ("-n", "default")])
def test_dot_has_no_injected_attributes(cli, inject, args):
    r = cli("graph", *args, "--rules", str(inject))
    assert r.code == 0, r.err
    for attrs in _attributes(r.out):
        assert not {k.lower() for k in attrs} & {"url", "href", "b", "y"}, attrs
    if args == ("--expand",):
        labels = [a.get("label", "") for a in _attributes(r.out)]
        assert dot_quote(EVIL) in labels and dot_quote(BACKSLASH) in labels


@pytest.mark.skipif(shutil.which("dot") is None, reason="needs Graphviz's dot (apt-get install graphviz)")
@pytest.mark.parametrize("args", [("--expand",), ()])
def test_svg_has_no_links(cli, inject, tmp_path, args):
    out = tmp_path / "g.svg"
    r = cli("graph", *args, "-o", "svg", "--out", str(out), "--rules", str(inject))
    assert r.code == 0, r.err  # a name ending in a backslash used to be invalid DOT
    svg = out.read_text()
    assert "<svg" in svg
    assert re.search(r"href\s*=", svg) is None and "javascript:" not in svg.replace("javascript:alert", "")
    dot = subprocess.run(["dot", "-Tsvg"], input=cli("graph", "--expand", "--rules", str(inject)).out,
                         capture_output=True, text=True, timeout=60)
    assert dot.returncode == 0, dot.stderr


@pytest.mark.parametrize("cmd", [("trace", "KUBE-SVC-AAAAAAAAAAAAAAAA"), ("services",), ("check",),
                                 ("packet", "--src", "10.244.1.9", "--dst", "10.96.0.77", "--dport", "80")])
def test_text_output_shows_control_characters_escaped(cli, inject, monkeypatch, cmd):
    # As on a terminal: click strips CSI colour codes only when not writing to one.
    import click.utils
    monkeypatch.setattr(click.utils, "should_strip_ansi", lambda *a, **k: False)
    r = cli(*cmd, "--rules", str(inject))
    assert r.code in (0, 1), r.err
    for stream in (r.out, r.err):
        assert "\x1b" not in stream and "\x07" not in stream
    shown = {"packet": "\\x1b]8;;javascript:alert(1)\\x07", "check": "KUBE-SEP-\\x1b[31mGONE",
             "services": "default/x\\x1b]8;;evil\\x07", "trace": "default/x\\x1b]8;;evil\\x07"}[cmd[0]]
    assert shown in r.out  # shown, so the reader sees what is there


@pytest.mark.parametrize("cmd", [("trace", "KUBE-SVC-AAAAAAAAAAAAAAAA"), ("services",),
                                 ("packet", "--src", "10.244.1.9", "--dst", "10.96.0.77", "--dport", "80")])
def test_json_output_is_exact(cli, inject, cmd):
    r = cli(*cmd, "--rules", str(inject), "-o", "json")
    assert r.code == 0, r.err
    assert "\x1b" not in r.out  # JSON escapes it ...
    if cmd[0] == "packet":
        assert any(OSC in text for text in _strings(json.loads(r.out)))  # ... and decodes to the exact text


def _strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


def test_diagnostics_and_errors_are_escaped(cli, tmp_path):
    path = tmp_path / "diag.rules"
    path.write_text("*nat\n:X - [0:0]\n-A X -m bogus\x1b[31m -j ACCEPT\nnot a rule \x1b]0;title\x07\nCOMMIT\n")
    r = cli("services", "--rules", str(path))
    assert "\x1b" not in r.err and "\\x1b" in r.err
    r = cli("trace", "default/\x1b[2Jname", "--rules", str(IPT / "iptables-save.txt"))
    assert r.code == 2 and "\x1b" not in r.err and "\\x1b[2J" in r.err


def test_escape_text_keeps_ordinary_text():
    text = "tcp 10.0.0.1:80 -> 10.244.1.5:8080\n\tüñí — 1/3 (33.3%)\n"
    assert escape_text(text) == text
    assert escape_text("a\u2028b\x85c\u202ed") == "a\\u2028b\\x85c\\u202ed"
