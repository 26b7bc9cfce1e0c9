#!/usr/bin/env python3
"""Regenerate (or check) every example output in README.md and docs/*.md.

An example is a marked block; the marker says which command made it:

    <!-- example: trace default/hello-world --rules fixtures/.../iptables-save.txt | head=40 -->
    ```
    ... the output, written by this script ...
    ```
    <!-- /example -->

The command is ``svcinspect`` with those arguments, run in-process from the
repository root on the bundled fixtures (no cluster, no root). After ``|``,
filters shape what is shown, applied in order: ``head=N`` (the first N lines),
``after=TEXT`` (drop everything up to the first line containing TEXT),
``section=TEXT`` (from the first line that is TEXT, spaces aside, to the next
blank line), ``bullets=A;B`` (keep the first line and the "- " bullets, with
their continuation lines, that mention A or B), ``json`` (re-indent JSON
output), ``stderr`` (show stderr instead of stdout), ``prompt`` (start with
``$ svcinspect ...``). Several filters are separated by ``|``.

Whole files made by a command (``FILES``: the README's picture,
docs/hello-world.svg, drawn by ``graph -o svg``) are rewritten and checked too.

    python docs/generate_examples.py          # rewrite the stale blocks
    python docs/generate_examples.py --check  # exit 1, with a diff, if any block is stale

The CI test ``tests/test_docs_examples.py`` runs the check, so a documented
example can never go stale.
"""

from __future__ import annotations

import contextlib
import difflib
import io
import json
import os
import re
import shlex
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# Whole files made by a command (the README's picture); skipped without Graphviz.
FILES = {"docs/hello-world.svg":
         "graph default/hello-world --rules fixtures/kube-proxy-v1.36.2/iptables/iptables-save.txt -o svg"}
BLOCK = re.compile(r"(<!-- example: (?P<spec>.*?) -->\n)(?P<fence>```[a-z]*\n)(?P<body>.*?)(```\n<!-- /example -->)",
                   re.S)


def run(args: list[str]) -> tuple[int, str, str]:
    """``svcinspect ARGS`` in this process, from the repository root."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from svcinspect.cli import _State, main

    _State.debug = _State.verbose = False
    out, err = io.StringIO(), io.StringIO()
    cwd = os.getcwd()
    os.chdir(ROOT)
    code = 0
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            main(args)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 0
    finally:
        os.chdir(cwd)
    return code, out.getvalue(), err.getvalue()


def render(spec: str) -> str:
    command, *filters = [p.strip() for p in spec.split("|")]
    args = shlex.split(command)
    code, out, err = run(args)
    text = err if "stderr" in filters else out
    for f in filters:
        name, _, value = f.partition("=")
        if name == "json":
            text = json.dumps(json.loads(text), indent=2) + "\n"
        elif name == "head":
            lines = text.splitlines()
            n = int(value)
            text = "\n".join(lines[:n]) + ("\n..." if len(lines) > n else "") + "\n"
        elif name == "after":
            lines = text.splitlines()
            start = next(i for i, ln in enumerate(lines) if value in ln)
            text = "\n".join(lines[start + 1:]) + "\n"
        elif name == "section":
            lines = text.splitlines()
            start = next(i for i, ln in enumerate(lines) if ln.strip() == value.strip())
            end = next((i for i in range(start, len(lines)) if not lines[i].strip()), len(lines))
            text = "\n".join(lines[start:end]) + "\n"
        elif name == "bullets":
            text = _bullets(text, value.split(";"))
    if "prompt" in filters:
        text = "$ svcinspect " + command + "\n" + text
    if code not in (0, 1) and "stderr" not in filters:
        raise RuntimeError(f"example `svcinspect {command}` failed (exit {code}): {err.strip()}")
    return text


def _bullets(text: str, words: list[str]) -> str:
    lines = text.splitlines()
    out, item = lines[:1], []

    def flush():
        if item and any(w in " ".join(item) for w in words):
            out.extend(item)

    for ln in lines[1:]:
        if ln.lstrip().startswith(("- ", "* ")):
            flush()
            item = [ln]
        else:
            item.append(ln)
    flush()
    return "\n".join(out) + "\n"


def regenerate(text: str) -> str:
    def one(m: re.Match) -> str:
        return m.group(1) + m.group("fence") + render(m.group("spec")) + m.group(5)
    return BLOCK.sub(one, text)


def main(argv: list[str]) -> int:
    check = "--check" in argv
    stale = 0
    for path in DOCS:
        if not path.exists():
            continue
        old = path.read_text()
        new = regenerate(old)
        if new == old:
            continue
        stale += 1
        if check:
            sys.stdout.writelines(difflib.unified_diff(old.splitlines(True), new.splitlines(True),
                                                       str(path.relative_to(ROOT)), "regenerated"))
        else:
            path.write_text(new)
            print(f"rewrote {path.relative_to(ROOT)}")
    stale += _files(check)
    if check and stale:
        print(f"\n{stale} file(s) have stale examples: run python docs/generate_examples.py", file=sys.stderr)
        return 1
    return 0


def _files(check: bool) -> int:
    import shutil
    if shutil.which("dot") is None:
        print("Graphviz's dot is missing: the pictures are not checked", file=sys.stderr)
        return 0
    stale = 0
    import tempfile
    for name, command in FILES.items():
        with tempfile.TemporaryDirectory() as tmp:
            target = os.path.join(tmp, "out")
            code, _, err = run(shlex.split(command) + ["--out", target])
            if code != 0:
                raise RuntimeError(f"`svcinspect {command}` failed (exit {code}): {err.strip()}")
            out = Path(target).read_text()
        path = ROOT / name
        if path.exists() and path.read_text() == out:
            continue
        stale += 1
        if check:
            print(f"{name} is stale: svcinspect {command}")
        else:
            path.write_text(out)
            print(f"rewrote {name}")
    return stale


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
