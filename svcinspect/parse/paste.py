"""Clean a dump pasted from a terminal or a log before it is parsed.

What people paste into bug reports is iptables-save text wrapped in other
things: journald or syslog prefixes on every line (``Dec 01 09:45:36 node-a
kube-proxy[812]: -A KUBE-SVC-...``), shell prompts and the command that printed
it (``root@node:~# iptables-save | grep web``). :func:`clean_paste` cuts the
log prefixes, keeping line numbers, and says so; the parser skips prompt lines
with a diagnostic. The commands are kept as facts: ``grep`` means only matching
rules are shown.

Only the first 64 KiB are examined to decide whether there is anything to do, so
a 400k-line ``iptables-save`` file costs one small regex search.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from svcinspect.errors import Diagnostic, Severity

_PROBE = 1 << 16

# "Dec 01 09:45:36 host unit[pid]: ", "Dec  1 09:45:36 host unit: ",
# "2024-05-09T10:00:00.123+0000 host unit[pid]: " (journalctl -o short-iso),
# "<13>1 2024-05-09T10:00:00Z host unit pid - - " is rare in pastes and not handled.
_LOG_PREFIX = re.compile(
    r"^(?:[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d(?:\.\d+)?|\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)?)"
    r" \S+ [\w.@/-]+(?:\[\d+\])?: ", re.M)
# A prompt, possibly followed by a command: "root@node:~# ", "[root@node ~]# ", "$ ", "➜ root@x:~# ".
_PROMPT = re.compile(
    r"^\s*(?:\S+\s+)?(?:\[?[\w.-]+@[\w.-]+[: ][^\s#$]*\]?\s?[#$]|[#$%])\s*(?P<cmd>(?:sudo\s+)?"
    r"(?:iptables|ip6tables|iptables-save|ip6tables-save|iptables-legacy-save|iptables-nft-save|"
    r"ip6tables-legacy-save|ip6tables-nft-save|nft|ipvsadm|grep|egrep|cat|zcat|kubectl)\b.*)?$")
# A command without a prompt, alone on its line (as some authors paste it).
_BARE_COMMAND = re.compile(r"^\s*(?P<cmd>(?:sudo\s+)?(?:iptables-save|ip6tables-save|iptables-legacy-save|"
                           r"iptables-nft-save|ip6tables-legacy-save|ip6tables-nft-save|iptables|ip6tables)"
                           r"(?:\s+-\S+)*(?:\s*\|.*)?)$")
_COUNTERS = re.compile(r"\s*\[\d+:\d+\]")
_GREP = re.compile(r"\|\s*(?:e?grep|rg)\s+(.*)$")


@dataclass(frozen=True, slots=True)
class Cleaned:
    text: str
    diagnostics: tuple[Diagnostic, ...]
    commands: tuple[str, ...]      # the commands the paste shows, as typed
    filtered: bool                 # one of them was a grep: only matching rules are in the input


def clean_paste(text: str, source: str) -> Cleaned:
    """``text`` with log prefixes cut (same lines, same numbers), and the commands the paste shows."""
    head = text[:_PROBE]
    has_prefix = _LOG_PREFIX.search(head) is not None
    diags: list[Diagnostic] = []
    prefixed = first_prefixed = 0
    if has_prefix:
        lines = text.split("\n")
        for i, line in enumerate(lines):
            m = _LOG_PREFIX.match(line)
            if m:
                lines[i] = line[m.end():]
                prefixed += 1
                first_prefixed = first_prefixed or i + 1
        text = "\n".join(lines)
        head = text[:_PROBE]
    # Prompts and commands sit at the start or the end of a paste: look there only.
    edges = head.split("\n") + (text[-4096:].split("\n")[1:] if len(text) > _PROBE else [])
    commands: list[str] = []
    for line in edges:
        if not line or line.startswith(("-A", ":", "*", "COMMIT", "# Generated", "# Completed", "# Warning")) \
                or _COUNTERS.match(line):
            continue  # dump syntax (the common case)
        m = _PROMPT.match(line) or _BARE_COMMAND.match(line)
        if m is not None and m.group("cmd"):
            commands.append(m.group("cmd").strip())
    if prefixed:
        diags.append(Diagnostic(Severity.INFO, f"removed journald/syslog prefixes from {prefixed} line(s)",
                                source, first_prefixed))
    filtered = any(_GREP.search(c) for c in commands)
    # Prompt and command lines stay: the parser skips them with a diagnostic naming the line.
    return Cleaned(text, tuple(diags), tuple(dict.fromkeys(commands)), filtered)


def _looks_like_prompt(line: str) -> bool:
    s = line.strip()
    return "@" in s and s.endswith(("#", "$"))


def describe_filter(commands: tuple[str, ...]) -> str | None:
    """``"the input is `iptables-save | grep web` output: only rules matching it"`` for a grep."""
    for c in commands:
        if _GREP.search(c):
            return f"the input is the output of `{c}`: only the rules it matched are shown"
    return None
