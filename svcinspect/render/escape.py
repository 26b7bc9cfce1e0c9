r"""Escaping for output that a person or another program reads.

Chain names, comments and object names come from whoever can create a chain,
a comment or a Service, so nothing they hold may steer a terminal or add to a
DOT graph:

- :func:`escape_text`: control characters in text output (tables, traces,
  check reports, diagnostics, error lines) are shown as ``\x1b``, ``\x85``,
  ``\u2028``, so an ANSI or OSC escape sequence is printed, not obeyed. Line
  feeds and tabs stay. JSON output is exact (its encoder escapes them itself),
  and so is ``dump`` (iptables-save text that must restore byte for byte).
- :func:`dot_quote`: a DOT double-quoted string by rule (backslash and quote
  escaped, line breaks as ``\n``, control characters shown as text), so no
  label, tooltip or title can end the string and add attributes such as
  ``URL="javascript:..."``, and a name ending in ``\`` stays valid DOT.

>>> escape_text("a\x1b]8;;http://x\x07b\n")
'a\\x1b]8;;http://x\\x07b\n'
>>> dot_quote('"a",URL="javascript:alert(1)",b="c"')
'"\\"a\\",URL=\\"javascript:alert(1)\\",b=\\"c\\""'
>>> dot_quote("ends\\")
'"ends\\\\"'
"""

from __future__ import annotations

import re

# C0 and C1 controls except tab and line feed, DEL, and the Unicode line and
# paragraph separators and bidirectional overrides (which reorder what is shown).
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def _shown(m: re.Match) -> str:
    c = ord(m.group(0))
    return f"\\x{c:02x}" if c <= 0xFF else f"\\u{c:04x}"


def escape_text(text: str) -> str:
    """``text`` with control characters shown as escapes (``\\x1b``)."""
    if _CONTROL.search(text) is None:
        return text
    return _CONTROL.sub(_shown, text)


_DOT_ID = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_DOT_KEYWORDS = frozenset({"node", "edge", "graph", "digraph", "subgraph", "strict"})


def dot_quote(text: str) -> str:
    """``text`` as one DOT value (for labels, tooltips, titles): a plain
    identifier as it is, anything else a double-quoted string."""
    if _DOT_ID.match(text) and text.lower() not in _DOT_KEYWORDS:
        return text
    body = text.replace("\\", "\\\\").replace('"', '\\"')
    body = _CONTROL.sub(lambda m: "\\" + _shown(m), body)
    return '"' + body.replace("\n", "\\n") + '"'
