"""Objects files that would take unbounded memory or blow the stack are refused
with one line and exit 2 (issue 12)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from conftest import IPT, ROOT
from svcinspect.errors import InputError
from svcinspect.parse.kube_objects import parse_objects

RULES = IPT / "iptables-save.txt"

# 569 bytes in the report; this one is smaller and expands to ~10^9 nodes.
BOMB = """\
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
kind: List
items: *i
"""

SERVICE_WITH_ANCHORS = """\
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default, labels: &labels {app: web}}
spec:
  clusterIP: 10.96.10.10
  selector: *labels
  ports: [{name: http, port: 80, protocol: TCP, targetPort: 8080}]
"""


def _check(path) -> subprocess.CompletedProcess:
    # A subprocess with a timeout: before the fix the bomb grew without limit.
    return subprocess.run([sys.executable, "-m", "svcinspect", "check", "--rules", str(RULES), "--objects", str(path)],
                          capture_output=True, text=True, timeout=60, cwd=ROOT,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})


@pytest.mark.parametrize("name, text, words", [
    ("bomb.yaml", BOMB, "YAML aliases expand"),
    ("self.yaml", "a: &a [1, *a]\n", "refers to the node that contains it"),
    ("deep.json", "[" * 100_000 + "]" * 100_000, "nested too deeply"),
    ("deep-map.json", '{"a":' * 100_000 + "1" + "}" * 100_000, "nested too deeply"),
    ("deep.yaml", "x: " + "[" * 20_000 + "]" * 20_000 + "\n", "nested too deeply"),
    ("deep-block.yaml", "a:\n" + "".join(" " * i + "- \n" for i in range(1, 3000)), "nested too deeply"),
])
def test_refused_with_one_line(tmp_path, name, text, words):
    path = tmp_path / name
    path.write_text(text)
    r = _check(path)
    assert r.returncode == 2, r.stderr[-500:]
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"svcinspect: error: {path}: ") and words in lines[0], r.stderr


def test_ordinary_anchors_still_work():
    state = parse_objects(SERVICE_WITH_ANCHORS, "anchors.yaml")
    assert [s.name for s in state.services] == ["web"]


def test_bomb_refused_in_the_library():
    with pytest.raises(InputError, match="alias bomb"):
        parse_objects(BOMB, "bomb.yaml")
